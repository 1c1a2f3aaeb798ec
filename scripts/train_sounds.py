#!/usr/bin/env python3
"""Train the sound-event model (speech / scream / cry / moan / other vocal / background); export int8 TFLite.

Data and classes: see ``scripts/sound_data.py`` (speaker-independent split: validation speakers
never train). Every epoch draws a fresh, seeded, class-balanced bank of augmented 1 s windows:
speed and pitch change, the window placed at a random offset around the sound's loudest part (a
short burst sits inside room sound), synthetic room reverberation, room noise, music, beeps or
babble at random SNRs, microphone colouring (low- or high-pass), gain; featurised by
``edge.inference.sound_events.sound_features``, the service's own function. Validation scores
whole held-out clips through the service's windows (``sound_windows``) and clip score
(``edge.vocal_distress.clip_distress_score``): the distress AUC on Deeply sounds plus speech, on
EmoGator pain/distress against pleasant bursts, and the clip accuracy per class.

Seeded and resumable (checkpoint per epoch in --out). Writes ``sound_events_float.tflite``,
``sound_events_int8.tflite`` and ``metrics.json`` into --out; ``--install`` copies the int8 model
and metrics to ``models_tflite/``. Needs the ``[train]`` extra; espeak-ng (Debian) adds synthetic
English and French sentences to the speech class when it is installed. The shipped model::

    nohup python scripts/train_sounds.py --out runs/sounds > runs/sounds.log 2>&1 &
    python scripts/train_sounds.py --out runs/sounds --resume --install   # after an interruption
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.inference.sound_events import (  # noqa: E402
    DISTRESS_SOUNDS,
    NUM_SOUNDS,
    SOUND_CLASSES,
    SOUND_FEATURE_SHAPE,
    SOUND_WINDOW_SAMPLES,
    sound_features,
    sound_windows,
)
from edge.vocal_distress import clip_distress_score  # noqa: E402
from scripts.metrics import auc, classification_report  # noqa: E402
from scripts.sound_data import (  # noqa: E402
    BACKGROUND_KINDS,
    EMOGATOR_PLEASANT,
    SR,
    Clip,
    index_clips,
    is_val,
    load_audio,
    song,
    synth_background,
)
from scripts.train_voice import add_at_snr, babble, reverb, spec_augment, speed  # noqa: E402
from scripts.training import (  # noqa: E402
    RunFolder,
    WeightAverage,
    export_float_and_int8,
    install,
    lr_at,
    run_parser,
    start_tensorflow,
)

STEM = "sound_events"
BACKGROUND = SOUND_CLASSES.index("background")
SENTENCES = (
    "Could you please pass me the water, my mouth is dry.",
    "The doctor said she would come back after lunch.",
    "I would like to sit up for a while, thank you.",
    "My daughter is visiting this afternoon with the children.",
    "Did anyone see my glasses? I left them on the table.",
    "It is raining again today, the garden will be happy.",
    "Can you turn the television down a little, please?",
    "We watched the football match last night, it was great.",
    "I don't remember what time the physiotherapist comes.",
    "The soup was warm and the bread was fresh this morning.",
    "Nurse, when is my next medication due?",
    "He told me the bus was late because of the traffic.",
    "Please open the window, it is very warm in here.",
    "I slept well, but I woke up early because of the noise.",
    "Voulez-vous un peu plus de thé avec votre repas ?",
    "Le médecin passera vers quatorze heures cet après-midi.",
    "Je voudrais m'asseoir dans le fauteuil, s'il vous plaît.",
    "Ma fille vient me voir demain avec les enfants.",
    "Il fait beau aujourd'hui, on pourrait sortir dans le jardin.",
    "Pouvez-vous baisser un peu le son de la télévision ?",
    "J'ai bien dormi cette nuit, merci beaucoup.",
    "L'infirmière a changé le pansement ce matin.",
    "Nous avons regardé un film hier soir, c'était très drôle.",
    "Où sont mes lunettes ? Je les avais posées sur la table.",
    "Le repas était bon, surtout la compote de pommes.",
    "Quand est-ce que je pourrai rentrer à la maison ?",
    "Mon voisin de chambre ronfle un peu la nuit.",
    "Il faut que j'appelle mon fils pour son anniversaire.",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = run_parser(__doc__, data_holds="vocal_bursts/ and ravdess/", out="runs/sounds", epochs=36,
                   batch=64, lr=2e-3, width=16)
    p.add_argument("--per-class", type=int, default=2000, help="training windows per class per epoch")
    p.add_argument("--other-factor", type=float, default=1.0,
                   help="other_vocal gets this many times --per-class windows (more non-distress bursts)")
    p.add_argument("--moan-factor", type=float, default=1.0,
                   help="moan gets this many times --per-class windows (the distress class with least data)")
    p.add_argument("--eq", type=float, default=0.0,
                   help="share of training windows given a random microphone response (see random_eq)")
    p.add_argument("--beds", type=float, default=0.0,
                   help="share of training windows over a continuous room bed (music-like sound, several room "
                        "sounds at once, or four to six people talking; see room_bed); the same share of "
                        "background windows is such a bed alone")
    p.add_argument("--songs", type=float, default=0.0,
                   help="share of background windows that are a song (sound_data.song: a singer over a band), "
                        "and of other windows laid over one 8-25 dB below")
    p.add_argument("--pleasant-share", type=float, default=1.0,
                   help="sampling share of each pleasant EmoGator category within other_vocal (a Deeply class is 1)")
    p.add_argument("--stages", default="1,2,3,4",
                   help="channels of the four conv stages as multiples of --width (e.g. 1,2,4,6)")
    p.add_argument("--average-from", type=float, default=0.7,
                   help="average the weights from this fraction of the epochs on (exported when it validates better)")
    p.add_argument("--no-espeak", dest="espeak", action="store_false", help="no synthetic sentences in the speech class")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------- data

def espeak_sentences(cache: Path, seed: int) -> list[np.ndarray]:
    """Synthetic sentences (espeak-ng, English and French voices, varied pitch and rate), cached."""
    if cache.is_file():
        with np.load(cache) as z:
            return [z[k] for k in sorted(z.files, key=int)]
    exe = shutil.which("espeak-ng")
    if exe is None:
        print("note: espeak-ng not installed; the speech class has RAVDESS only", flush=True)
        return []
    rng = np.random.default_rng(seed)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(SENTENCES * 6):
            lang = "fr" if any(c in text for c in "éèàçô") or text.split()[0] in (
                "Le", "Je", "Ma", "Il", "Nous", "Où", "Quand", "Mon", "Voulez-vous", "Pouvez-vous", "L'infirmière") else \
                str(rng.choice(["en", "en-us", "en-gb-x-rp"]))
            voice = f"{lang}+{rng.choice(['m1', 'm3', 'm5', 'f1', 'f2', 'f4'])}"
            wav = Path(tmp) / f"{i}.wav"
            subprocess.run([exe, "-v", voice, "-p", str(int(rng.integers(20, 80))),
                            "-s", str(int(rng.integers(120, 190))), "-w", str(wav), text],
                           check=True, capture_output=True)
            out.append(load_audio(wav))
    np.savez_compressed(cache, **{str(i): x for i, x in enumerate(out)})
    return out


def split_clips(data: Path, limit: int = 0, seed: int = 1, min_val: int = 60) -> tuple[list[Clip], list[Clip]]:
    """(training clips, validation clips) of the shared data, split by speaker; ``limit`` keeps a
    seeded slice (N training clips, N // 4 but at least ``min_val`` validation clips) for smoke tests.
    SystemExit names a missing folder."""
    try:
        clips = index_clips(data)
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {exc}") from None
    train = [c for c in clips if not is_val(c)]
    val = [c for c in clips if is_val(c)]
    if limit:
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.choice(len(train), size=min(limit, len(train)), replace=False))]
        val = [val[i] for i in sorted(rng.choice(len(val), size=min(max(limit // 4, min_val), len(val)), replace=False))]
    assert not {c.speaker for c in train} & {c.speaker for c in val}, "a validation speaker is in training"
    return train, val


def score_tflite(path: Path, val_audio: list[np.ndarray], val: list[Clip]) -> dict:
    """File size and ``clip_report`` of an exported TFLite model on the validation clips, through the
    service's windows (``clip_sound_events``)."""
    from edge.inference.sound_events import SoundClassifier, clip_sound_events

    clf = SoundClassifier(path)
    probs, owner = [], []
    for i, x in enumerate(val_audio):
        p = clip_sound_events(clf, x)
        probs.append(p)
        owner += [i] * len(p)
    return {"bytes": path.stat().st_size, **clip_report(np.concatenate(probs), np.asarray(owner), val)}


def selection_score(report: dict) -> float:
    """What picks the exported epoch: distress AUC on Deeply + speech, on EmoGator, and the clip
    balanced accuracy, summed."""
    return float(np.nansum([report["auc_deeply_speech"], report["auc_emogator"], report["clip_balanced_accuracy"]]))


def load_clips(clips: list[Clip], quiet: bool) -> list[np.ndarray]:
    from tqdm import tqdm

    return [load_audio(c.path) for c in tqdm(clips, desc="loading", disable=quiet, mininterval=10, file=sys.stdout)]


def window_around_peak(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1 s window at a random offset that keeps the clip's loudest 30 ms; shorter clips sit at a
    random place inside a window of room sound."""
    n = SOUND_WINDOW_SAMPLES
    if len(x) >= n:
        frames = len(x) // 480
        peak = int(np.argmax(np.square(x[: frames * 480]).reshape(frames, 480).mean(1))) * 480 + 240 if frames else 0
        lo, hi = max(0, peak - n + 480), min(len(x) - n, peak - 480)
        start = int(rng.integers(lo, hi + 1)) if hi >= lo else int(rng.integers(0, len(x) - n + 1))
        return x[start:start + n].copy()
    out = np.zeros(n, np.float32)
    start = int(rng.integers(0, n - len(x) + 1))
    out[start:start + len(x)] = x
    return out


def colour(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap microphone or distance: a first-order low-pass or high-pass filter."""
    from scipy.signal import lfilter

    if rng.random() < 0.5:
        a = rng.uniform(0.3, 0.9)       # low-pass (far, muffled)
        return lfilter([1 - a], [1, -a], x).astype(np.float32)
    a = rng.uniform(0.8, 0.98)          # high-pass (small phone microphone)
    return lfilter([1, -1], [1, -a], x).astype(np.float32)


EQ_KNOTS_HZ = np.geomspace(80.0, 7000.0, 7)


def random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float = 9.0) -> np.ndarray:
    """Another microphone and room: a smooth random frequency response (gains of +-``max_db`` at
    seven log-spaced frequencies, interpolated on a log-frequency axis), sometimes band-limited as a
    phone or a lossy codec would. Each source of the data has its own channel; without this the
    model can learn the channel instead of the sound."""
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / 16000)
    gain_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(EQ_KNOTS_HZ),
                        rng.uniform(-max_db, max_db, len(EQ_KNOTS_HZ)))
    if rng.random() < 0.25:
        gain_db = gain_db - 40.0 * (freqs > rng.uniform(3400.0, 7000.0))
    y = np.fft.irfft(spec * 10 ** (gain_db / 20), n=len(x))
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    return (y / peak * float(np.max(np.abs(x))) if peak > 0 else y).astype(np.float32)


def music_or_talk(kind: str, n: int, talk: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of a steady background for the off-corpus checks (``bench_sounds.py
    --background``, ``make_eval_sets.py``'s recorded set): ``music``-like sound, or ``talk``, three
    of the ``talk`` clips (fewer if there are not three) at once."""
    if kind == "music":
        return synth_background(n, rng, "music")
    return babble([talk[i] for i in rng.choice(len(talk), size=min(3, len(talk)), replace=False)], n, rng)


def room_bed(n: int, rng: np.random.Generator, speech_pool: list[np.ndarray]) -> np.ndarray:
    """``n`` samples of what a television or a busy room puts under everything: music-like sound
    (40 %), two or three kinds of room sound at once (30 %), or four to six people talking at once,
    with music half the time (30 %; a crowd, not one voice). No dominant voice: alone it is
    ``background``."""
    r = rng.random()
    if r < 0.4:
        return synth_background(n, rng, "music")
    if r < 0.7 or len(speech_pool) < 6:
        kinds = rng.choice(BACKGROUND_KINDS[1:], size=int(rng.integers(2, 4)), replace=False)
        return np.sum([synth_background(n, rng, str(k)) for k in kinds], axis=0).astype(np.float32)
    pool = [speech_pool[i] for i in rng.choice(len(speech_pool), size=int(rng.integers(4, 7)), replace=False)]
    crowd = babble(pool, n, rng) * 10 ** (rng.uniform(-50, -20) / 20)
    if rng.random() < 0.5:
        crowd = crowd + synth_background(n, rng, "music")
    return crowd.astype(np.float32)


def render(x: np.ndarray, kind: str, speech_pool: list[np.ndarray], rng: np.random.Generator,
           eq: float = 0.0, beds: float = 0.0, songs: float = 0.0) -> np.ndarray:
    """One augmented 1 s rendering of a training clip (``eq``: share given a random microphone
    response; ``beds``: share laid over a ``room_bed``, 0-20 dB below the sound, 5-20 dB below
    speech; ``songs``: share laid over a ``sound_data.song`` 8-25 dB below)."""
    x = speed(x, 1.0 + float(rng.uniform(-0.12, 0.12)))
    x = window_around_peak(x, rng)
    if rng.random() < 0.3:
        x = reverb(x, rng)
    if rng.random() < 0.6:
        x = add_at_snr(x, synth_background(len(x), rng), rng.uniform(0, 30))
    elif rng.random() < 0.3 and kind not in ("speech",) and speech_pool:
        # a burst over distant talking keeps its label: the talking is quieter
        pool = [speech_pool[i] for i in rng.choice(len(speech_pool), size=3, replace=False)]
        x = add_at_snr(x, babble(pool, len(x), rng), rng.uniform(8, 25))
    if beds > 0 and rng.random() < beds:
        x = add_at_snr(x, room_bed(len(x), rng, speech_pool), rng.uniform(5.0 if kind == "speech" else 0.0, 20.0))
    if songs > 0 and rng.random() < songs:
        x = add_at_snr(x, song(len(x), rng), rng.uniform(8.0, 25.0))
    if rng.random() < 0.2:
        x = colour(x, rng)
    if rng.random() < eq:
        x = random_eq(x, rng)
    return np.clip(x * 10 ** (rng.uniform(-25, 10) / 20), -1, 1).astype(np.float32)


def group_weights(clips: list[Clip], pleasant_share: float = 1.0) -> dict[str, np.ndarray]:
    """Per class, the sampling probability of each training clip: each source group (a Deeply class,
    an EmoGator category, RAVDESS, espeak) gets an equal share of its class, except EmoGator's
    pleasant categories (``pleasant_share`` each) and its other categories outside
    ``EMOGATOR_PLEASANT``, which share three group shares between them. (EmoGator's recordings fill
    half of every distress class: its non-distress bursts need as much weight, or the model learns
    the recording channel instead of the sound.)"""
    out = {}
    for kind in SOUND_CLASSES:
        idx = [i for i, c in enumerate(clips) if c.kind == kind]
        if not idx:
            continue
        groups: dict[str, list[int]] = {}
        for i in idx:
            src = clips[i].source
            key = "emogator/other" if (kind == "other_vocal" and src.startswith("emogator/")
                                       and src[len("emogator/"):] not in EMOGATOR_PLEASANT) else \
                ("ravdess" if src.startswith("ravdess/") else src)
            groups.setdefault(key, []).append(i)
        w = np.zeros(len(clips))
        share = {k: (3.0 if k == "emogator/other" else
                     pleasant_share if k[len("emogator/"):] in EMOGATOR_PLEASANT else 1.0) for k in groups}
        total = sum(share.values())
        for k, members in groups.items():
            w[members] = share[k] / total / len(members)
        out[kind] = w
    return out


def epoch_bank(clips: list[Clip], audio: list[np.ndarray], weights: dict[str, np.ndarray], epoch: int,
               seed: int, per_class: int, other_factor: float = 1.0,
               moan_factor: float = 1.0, eq: float = 0.0, beds: float = 0.0,
               songs: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, epoch])
    speech_pool = [audio[i] for i, c in enumerate(clips) if c.kind == "speech"]
    feats, labels = [], []
    for k, kind in enumerate(SOUND_CLASSES):
        if kind == "background":
            for _ in range(per_class):
                x = (room_bed(SOUND_WINDOW_SAMPLES, rng, speech_pool) if beds > 0 and rng.random() < beds
                     else synth_background(SOUND_WINDOW_SAMPLES, rng))
                if songs > 0 and rng.random() < songs:
                    x = song(SOUND_WINDOW_SAMPLES, rng) * np.float32(10 ** (rng.uniform(-45, -12) / 20))
                if rng.random() < 0.3:
                    x = reverb(x, rng)
                if rng.random() < eq:
                    x = random_eq(x, rng)
                feats.append(spec_augment(sound_features(np.clip(x, -1, 1)), rng))
                labels.append(k)
            continue
        w = weights[kind]
        n = int(round(per_class * {"other_vocal": other_factor, "moan": moan_factor}.get(kind, 1.0)))
        for i in rng.choice(len(clips), size=n, p=w / w.sum()):
            feats.append(spec_augment(sound_features(render(audio[i], kind, speech_pool, rng, eq, beds, songs)), rng))
            labels.append(k)
    order = rng.permutation(len(feats))
    return np.stack(feats)[order], np.asarray(labels, np.int64)[order]


# --------------------------------------------------------------------------------------- model

def build_model(tf, width: int = 16, stages: tuple[int, ...] = (1, 2, 3, 4)):
    """Four 3x3 conv stages (``width`` x ``stages`` channels) over the 99x40 log-mel window, each
    but the last followed by 2x2 max pooling, then average + max pooling, softmax."""
    layers = tf.keras.layers
    reg = tf.keras.regularizers.l2(1e-4)

    def conv_bn(x, ch):
        x = layers.Conv2D(ch, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inp = layers.Input(SOUND_FEATURE_SHAPE, name="logmel")
    x = conv_bn(inp, width * stages[0])      # 99x40
    x = layers.MaxPooling2D(2)(x)            # 49x20
    x = conv_bn(x, width * stages[1])
    x = layers.MaxPooling2D(2)(x)            # 24x10
    x = conv_bn(x, width * stages[2])
    x = layers.MaxPooling2D(2)(x)            # 12x5
    x = conv_bn(x, width * stages[3])
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dropout(0.3)(x)
    logits = layers.Dense(NUM_SOUNDS, name="logits", kernel_regularizer=reg, dtype="float32")(x)
    return tf.keras.Model(inp, layers.Softmax(name="probs", dtype="float32")(logits), name=STEM)


# ------------------------------------------------------------------------------------ validation

def val_windows(audio: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    feats, owner = [], []
    for i, x in enumerate(audio):
        wins = sound_windows(x)
        feats += [sound_features(w) for w in wins]
        owner += [i] * len(wins)
    return np.stack(feats), np.asarray(owner)


def clip_report(window_probs: np.ndarray, owner: np.ndarray, clips: list[Clip]) -> dict:
    """Clip distress AUCs (the issue's two sets) and clip classification (class of the mean window)."""
    scores, preds = np.zeros(len(clips)), np.zeros(len(clips), int)
    for i in range(len(clips)):
        p = window_probs[owner == i]
        scores[i] = clip_distress_score(p)
        preds[i] = int(p.mean(0).argmax())
    kinds = np.array([c.kind for c in clips])
    src = np.array([c.source for c in clips])
    deeply = np.array([s.startswith("deeply/") or s.startswith("ravdess/") for s in src])
    distress = np.isin(kinds, DISTRESS_SOUNDS)
    emo_pos = np.isin(src, ["emogator/Pain", "emogator/Distress"])
    emo_neg = np.isin(src, [f"emogator/{c}" for c in EMOGATOR_PLEASANT])
    y = np.array([SOUND_CLASSES.index(k) for k in kinds])
    rep = classification_report(y, preds, labels=list(SOUND_CLASSES))
    return {"auc_deeply_speech": auc(scores[deeply & distress], scores[deeply & ~distress]),
            "auc_emogator": auc(scores[emo_pos], scores[emo_neg]),
            "clip_accuracy": rep["accuracy"], "clip_balanced_accuracy": rep["balanced_accuracy"],
            "per_class_recall": rep.get("per_class_recall")}


# ------------------------------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stages = tuple(int(k) for k in args.stages.split(","))
    if len(stages) != 4 or min(stages) < 1:
        raise SystemExit(f"error: --stages needs four positive multiples, not {args.stages!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tf = start_tensorflow(args)
    t0 = time.time()
    train, val = split_clips(Path(args.data), args.limit, args.seed)
    train_audio = load_clips(train, args.quiet)
    val_audio = load_clips(val, args.quiet)
    if args.espeak and not args.limit:
        synth = espeak_sentences(out / "espeak_speech.npz", args.seed)
        train += [Clip(Path("espeak"), "speech", "espeak", f"s:{i}") for i in range(len(synth))]
        train_audio += synth
    weights = group_weights(train, args.pleasant_share)
    val_x, val_owner = val_windows(val_audio)
    print(f"train {len(train)} clips ({len({c.speaker for c in train})} speakers), val {len(val)} clips "
          f"({len({c.speaker for c in val})} speakers, {len(val_x)} windows); loaded in {time.time() - t0:.0f}s",
          flush=True)

    run = RunFolder(out)
    model, state = run.open(tf, args.resume, lambda: build_model(tf, args.width, stages),
                            tf.keras.losses.SparseCategoricalCrossentropy(), args.lr)
    print(f"parameters: {model.count_params():,}", flush=True)
    average = WeightAverage(out / "average.weights.npz", int(args.average_from * args.epochs))
    averaged = build_model(tf, args.width, stages)

    def validate(m) -> dict:
        rep = clip_report(m.predict(val_x, batch_size=512, verbose=0), val_owner, val)
        rep["score"] = selection_score(rep)
        return rep

    bank_x = None
    for epoch in range(state["epoch"], args.epochs):
        start = time.time()
        bank_x, bank_y = epoch_bank(train, train_audio, weights, epoch, args.seed,
                                    args.per_class if not args.limit else min(args.per_class, 64), args.other_factor,
                                    args.moan_factor, args.eq, args.beds, args.songs)
        t_bank = time.time() - start
        model.optimizer.learning_rate.assign(lr_at(epoch, args.epochs, args.lr))
        n = len(bank_x) if not args.steps else min(len(bank_x), args.steps * args.batch)
        hist = model.fit(bank_x[:n], bank_y[:n], batch_size=args.batch, epochs=1, shuffle=False,
                         verbose=2 if args.quiet else 1)
        rep = validate(model)
        entry = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]),
                 "train_accuracy": float(hist.history["accuracy"][-1]), **{k: v for k, v in rep.items()
                                                                            if k != "per_class_recall"},
                 "bank_s": round(t_bank, 1), "epoch_s": round(time.time() - start, 1)}
        if average.add(epoch, model.get_weights()):
            averaged.set_weights(average.weights())
            entry["average"] = {k: v for k, v in validate(averaged).items() if k != "per_class_recall"}
        state["history"].append(entry)
        if rep["score"] > state["best_score"]:
            state["best_score"], state["best_epoch"] = rep["score"], epoch + 1
            model.save_weights(run.best_weights)
        state["epoch"] = epoch + 1
        run.save(model, state)
        avg = entry.get("average")
        print(f"epoch {epoch + 1}/{args.epochs}: loss {entry['loss']:.3f} train acc {entry['train_accuracy']:.3f} | "
              f"val AUC deeply+speech {rep['auc_deeply_speech']:.3f} emogator {rep['auc_emogator']:.3f} "
              f"clip bal acc {rep['clip_balanced_accuracy']:.3f}"
              + (f" | average {avg['auc_deeply_speech']:.3f} {avg['auc_emogator']:.3f} {avg['clip_balanced_accuracy']:.3f}"
                 if avg else "") + f" ({entry['epoch_s']:.0f}s, bank {t_bank:.0f}s)", flush=True)

    tf.keras.mixed_precision.set_global_policy("float32")
    final = build_model(tf, args.width, stages)
    final.load_weights(run.best_weights) if run.best_weights.is_file() else final.set_weights(model.get_weights())
    selected, best_rep = "best_epoch", validate(final)
    if average.count:
        averaged32 = build_model(tf, args.width, stages)
        averaged32.set_weights(average.weights())
        if bank_x is None:
            bank_x, _ = epoch_bank(train, train_audio, weights, state["epoch"] - 1, args.seed, 400)
        from scripts.training import recompute_batchnorm

        rng = np.random.default_rng(args.seed)
        recompute_batchnorm(tf, averaged32, (bank_x[rng.choice(len(bank_x), 256, replace=False)] for _ in range(20)))
        avg_rep = validate(averaged32)
        print(f"best epoch {state.get('best_epoch')} score {best_rep['score']:.4f}; average of {average.count} "
              f"epochs {avg_rep['score']:.4f}", flush=True)
        if avg_rep["score"] > best_rep["score"]:
            final, selected, best_rep = averaged32, "average", avg_rep
    if bank_x is None:
        bank_x, _ = epoch_bank(train, train_audio, weights, max(state["epoch"] - 1, 0), args.seed, 100)
    rng = np.random.default_rng(args.seed)
    rep_feats = bank_x[rng.choice(len(bank_x), size=min(500, len(bank_x)), replace=False)]
    float_path, int8_path = export_float_and_int8(tf, final, out, STEM, [f[None] for f in rep_feats])
    metrics = {"classes": list(SOUND_CLASSES), "parameters": int(final.count_params()), "selected": selected,
               "epochs": state["epoch"], "best_epoch": state.get("best_epoch"), "seed": args.seed,
               "width": args.width, "stages": list(stages), "per_class": args.per_class,
               "other_factor": args.other_factor, "moan_factor": args.moan_factor, "eq": args.eq, "beds": args.beds, "songs": args.songs, "pleasant_share": args.pleasant_share,
               "feature_shape": list(SOUND_FEATURE_SHAPE), "sample_rate": SR,
               "train_clips": len(train), "val_clips": len(val),
               "val_speakers": sorted({c.speaker for c in val}), "keras_validation": best_rep,
               "history": state["history"]}
    for kind, path in (("float", float_path), ("int8", int8_path)):
        metrics[kind] = score_tflite(path, val_audio, val)
        m = metrics[kind]
        print(f"{kind} ({m['bytes']} bytes): AUC deeply+speech {m['auc_deeply_speech']:.4f} emogator "
              f"{m['auc_emogator']:.4f} clip acc {m['clip_accuracy']:.4f} (balanced {m['clip_balanced_accuracy']:.4f})",
              flush=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if args.install:
        install(out, STEM)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
