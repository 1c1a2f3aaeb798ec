#!/usr/bin/env python3
"""Train the speech-emotion model on RAVDESS (speaker-independent); export float and int8 TFLite.

Actors 01-16 train, actors 17-20 validate (never a trained actor). Every epoch draws a fresh,
seeded bank of augmented training windows: speed perturbation (tempo and pitch), synthetic
exponentially decaying room reverberation, babble from other training speakers and pink noise at
random SNRs, gain, then the service's own VAD gating and a randomly placed (time-shifted) window,
featurised by ``edge.inference.voice_features.window_features``. Final numbers go through
``edge.inference.voice.VoiceClassifier`` (the service's code path) on the clean held-out clips and
on a seeded noisy copy (babble of the three other held-out speakers at 10 dB SNR + pink noise at
20 dB SNR).

Seeded, resumable (a checkpoint per epoch in --out), with a progress bar. Writes into --out:
``voice_emotion_float.tflite``, ``voice_emotion_int8.tflite`` and ``metrics.json``; with
``--install`` it also copies the int8 model and metrics to ``models_tflite/``.

Needs the optional ``[train]`` extra (TensorFlow). Each member of the shipped ensemble: 60 epochs
with mixup and light noise, weights averaged over the last 30 %, then a warm restart to 75 epochs
with noise on half the renderings and a new average from epoch 60 (about 35 + 10 min alone on the
2 cores); seeds 1, 2 and 3 are then joined by ``scripts/ensemble_voice.py``::

    nohup python scripts/train_voice.py --out runs/voice_s1 --seed 1 > runs/voice_s1.log 2>&1 &
    python scripts/train_voice.py --out runs/voice_s1 --seed 1 --resume --epochs 75 --noise-prob 0.5 --average-from 0.8
    python scripts/train_voice.py --resume ...    # continue after an interruption, same options
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # numpy's BLAS threads only fight the trainer
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.inference.voice_features import (  # noqa: E402
    FEATURE_SHAPE,
    HOP_S,
    SAMPLE_RATE,
    VAD_AGGRESSIVENESS,
    WINDOW_S,
    WINDOW_SAMPLES,
    clip_windows,
    speech_only,
    window_features,
)
from edge.labels import LABELS, NUM_LABELS, ravdess_to_canon  # noqa: E402
from scripts.metrics import classification_report  # noqa: E402
from scripts.training import (  # noqa: E402
    RunFolder,
    WeightAverage,
    export_float_and_int8,
    install,
    lr_at,
    run_parser,
    start_tensorflow,
)

VOICE_STEM = "voice_emotion"      # <stem>_float.tflite, <stem>_int8.tflite
TRAIN_ACTORS = tuple(range(1, 17))
VAL_ACTORS = tuple(range(17, 21))
NOISY_SEED = 20240417            # the noisy validation copy is fixed, whatever --seed is
NOISY_BABBLE_SNR_DB = 10.0
NOISY_PINK_SNR_DB = 20.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = run_parser(__doc__, data_holds="ravdess/index.csv", out="runs/voice", epochs=60, batch=64,
                   lr=2e-3, width=32)
    p.add_argument("--variants", type=int, default=2, help="augmented copies of each clip per epoch")
    p.add_argument("--noise-prob", type=float, default=0.25, help="share of training renderings with added noise")
    p.add_argument("--max-speed", type=float, default=0.05, help="largest speed/pitch change (0.1 = +-10 %%)")
    p.add_argument("--vtlp", type=float, default=0.0,
                   help="vocal tract length perturbation: each rendering's frequency axis stretched by a "
                        "random factor in 1 +- VTLP (0.1 = +-10 %%; 0 = off), as from another speaker")
    p.add_argument("--select", choices=("average", "last", "best"), default="average",
                   help="export the average of the weights from --average-from on (default; "
                        "stochastic weight averaging, no epoch picked on validation), the last "
                        "epoch, or the epoch with the best validation score")
    p.add_argument("--average-from", type=float, default=0.7,
                   help="with --select average: share of the epochs after which weights are averaged")
    p.add_argument("--head", choices=("pool", "freq"), default="pool",
                   help="pool: average+max over time and frequency; freq: over time only, keeping "
                        "the frequency (pitch, spectral tilt) layout for the classifier")
    p.add_argument("--mixup", type=float, default=0.2,
                   help="mixup alpha (0 = off): train on convex mixes of window pairs and labels")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------- data

def load_ravdess(data_dir: Path, limit: int = 0, seed: int = 1) -> dict[str, list]:
    """Clips of actors 01-20 as float32 arrays, split by actor; ``limit`` keeps a seeded,
    class-mixed slice (N train clips, N//4 validation clips) for smoke tests."""
    import soundfile as sf

    index = data_dir / "ravdess" / "index.csv"
    if not index.is_file():
        raise SystemExit(f"error: {index} not found; pass --data pointing at the shared data folder")
    with open(index, newline="") as fh:
        rows = list(csv.DictReader(fh))
    split: dict[str, list] = {"train": [], "val": []}
    for r in rows:
        actor = int(r["actor"])
        name = "train" if actor in TRAIN_ACTORS else "val" if actor in VAL_ACTORS else None
        if name:
            split[name].append(r)
    if limit:
        rng = np.random.default_rng(seed)
        split["train"] = [split["train"][i] for i in sorted(rng.permutation(len(split["train"]))[:limit])]
        split["val"] = [split["val"][i] for i in sorted(rng.permutation(len(split["val"]))[:max(limit // 4, 8)])]
    out: dict[str, list] = {}
    for name, sel in split.items():
        audio = []
        for r in sel:
            x, sr = sf.read(data_dir / "ravdess" / r["file"], dtype="float32", always_2d=True)
            if sr != SAMPLE_RATE:
                raise SystemExit(f"error: {r['file']} is {sr} Hz, expected {SAMPLE_RATE}")
            audio.append(x.mean(axis=1))
        out[f"{name}_audio"] = audio
        out[f"{name}_y"] = [ravdess_to_canon(r["emotion"]) for r in sel]
        out[f"{name}_actor"] = [int(r["actor"]) for r in sel]
        out[f"{name}_file"] = [r["file"] for r in sel]
    return out


# --------------------------------------------------------------------------------- augmentation

def active_level(x: np.ndarray) -> float:
    """RMS over the 30 ms frames within 35 dB of the loudest one (active speech level)."""
    n = len(x) // 480
    if n == 0:
        return float(np.sqrt(np.mean(np.square(x)) + 1e-12))
    e = np.mean(np.square(x[: n * 480].reshape(n, 480)), axis=1)
    return float(np.sqrt(np.mean(e[e >= e.max() * 10 ** -3.5]) + 1e-12))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise of n samples (spectral shaping of white noise)."""
    import scipy.fft

    m = scipy.fft.next_fast_len(n, real=True)
    spec = scipy.fft.rfft(rng.standard_normal(m).astype(np.float32))
    spec /= np.sqrt(np.maximum(np.fft.rfftfreq(m, 1.0 / SAMPLE_RATE), 20.0)).astype(np.float32)
    x = scipy.fft.irfft(spec, m)[:n]
    return (x / (np.std(x) + 1e-12)).astype(np.float32)


def babble(pool: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of the given speakers' clips, each at the same active level, circularly offset and
    tiled to n samples; unit active level."""
    out = np.zeros(n, np.float32)
    for clip in pool:
        c = clip / (active_level(clip) + 1e-9)
        c = np.roll(np.tile(c, int(math.ceil(n / len(c))) + 1), -int(rng.integers(len(c))))[:n]
        out += c
    return out / (active_level(out) + 1e-9)


def add_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise scaled so that active level(signal) / active level(noise) = snr_db."""
    scale = active_level(signal) / (active_level(noise) + 1e-12) * 10 ** (-snr_db / 20)
    return signal + noise * scale


def reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room impulse response: direct path plus exponentially decaying
    noise (RT60 0.15-0.8 s, random direct-to-reverberant ratio); the level is kept."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.15, 0.8)
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    ir[: int(0.002 * SAMPLE_RATE)] = 0.0                          # early reflections start after 2 ms
    ir *= 10 ** (-rng.uniform(0, 12) / 20) / (np.sqrt(np.sum(ir ** 2)) + 1e-9)
    ir[0] = 1.0
    y = fftconvolve(x, ir)[: len(x)]
    return (y * (active_level(x) / (active_level(y) + 1e-12))).astype(np.float32)


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation (tempo and pitch together, as in Kaldi's 0.9/1.0/1.1 recipe)."""
    from scipy.signal import resample_poly

    down = int(round(20 * factor))
    return x if down == 20 else resample_poly(x, 20, down).astype(np.float32)


def augment_clip(x: np.ndarray, others: list[np.ndarray], rng: np.random.Generator,
                 noise_prob: float = 0.7, max_speed: float = 0.1) -> np.ndarray:
    """One random training-time rendering of a clip (before VAD gating): speed/pitch change up to
    +-max_speed, reverberation, babble and/or pink noise with probability noise_prob, gain."""
    steps = [-max_speed, -max_speed / 2, 0.0, 0.0, max_speed / 2, max_speed]
    x = speed(x, 1.0 + float(rng.choice(steps)))
    if rng.random() < 0.3:
        x = reverb(x, rng)
    if rng.random() < noise_prob:
        y = x
        kind = rng.random()
        if kind < 0.7 and others:
            k = int(rng.integers(1, min(6, len(others)) + 1))
            pool = [others[i] for i in rng.choice(len(others), size=k, replace=False)]
            y = add_at_snr(y, babble(pool, len(x), rng), rng.uniform(0, 25))
        if kind > 0.4 or not others:
            y = add_at_snr(y, pink_noise(len(x), rng), rng.uniform(5, 35))
        x = y
    x = x * 10 ** (rng.uniform(-20, 12) / 20)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def random_window(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A window at a random offset in the gated speech (time shift); None if there is too little."""
    if len(speech) < int(0.3 * SAMPLE_RATE):
        return None
    if len(speech) <= WINDOW_SAMPLES:
        return speech
    start = int(rng.integers(0, len(speech) - WINDOW_SAMPLES + 1))
    return speech[start:start + WINDOW_SAMPLES]


def spec_augment(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One time mask (<= 20 frames) and one frequency mask (<= 6 bands), each with p=0.5."""
    f = f.copy()
    if rng.random() < 0.5:
        w = int(rng.integers(1, 21))
        s = int(rng.integers(0, f.shape[0] - w))
        f[s:s + w] = 0.0
    if rng.random() < 0.5:
        w = int(rng.integers(1, 7))
        s = int(rng.integers(0, f.shape[1] - w))
        f[:, s:s + w] = 0.0
    return f


def epoch_bank(data: dict, epoch: int, seed: int, variants: int, quiet: bool,
               noise_prob: float = 0.7, max_speed: float = 0.1, vtlp: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The seeded bank of augmented training windows for one epoch (same on --resume). ``vtlp`` > 0
    warps each rendering's mel filterbank by a factor drawn from 1 +- vtlp (``window_features``)."""
    from tqdm import tqdm

    rng = np.random.default_rng([seed, epoch])
    audio, ys, actors = data["train_audio"], data["train_y"], data["train_actor"]
    feats, labels = [], []
    for i in tqdm(range(len(audio)), desc=f"bank {epoch + 1}", disable=quiet, mininterval=5, file=sys.stdout):
        other_idx = [j for j in rng.choice(len(audio), size=min(24, len(audio)), replace=False)
                     if actors[j] != actors[i]]
        others = [audio[j] for j in other_idx]
        for _ in range(variants):
            speech = speech_only(augment_clip(audio[i], others, rng, noise_prob, max_speed), VAD_AGGRESSIVENESS)
            win = random_window(speech, rng)
            if win is None:
                continue
            warp = float(rng.uniform(1.0 - vtlp, 1.0 + vtlp)) if vtlp > 0 else 1.0
            feats.append(spec_augment(window_features(win, warp), rng))
            labels.append(ys[i])
    order = rng.permutation(len(feats))
    return np.stack(feats)[order], np.asarray(labels, np.int64)[order]


def noisy_copy(audio: list[np.ndarray], actors: list[int], seed: int = NOISY_SEED) -> list[np.ndarray]:
    """The noisy validation copy: each clip + babble of three other held-out speakers (one random
    clip each, different actors from the clip's) at 10 dB SNR + pink noise at 20 dB SNR (active
    speech levels). Seeded per clip, so it is identical across runs."""
    out = []
    for i, x in enumerate(audio):
        rng = np.random.default_rng([seed, i])
        others = sorted({a for a in actors if a != actors[i]})
        chosen = rng.choice(others, size=min(3, len(others)), replace=False) if others else []
        pool = []
        for a in chosen:
            idx = [j for j, b in enumerate(actors) if b == a]
            pool.append(audio[int(rng.choice(idx))])
        y = add_at_snr(x, babble(pool, len(x), rng), NOISY_BABBLE_SNR_DB) if pool else x
        y = y + (add_at_snr(x, pink_noise(len(x), rng), NOISY_PINK_SNR_DB) - x)   # SNR re. the speech
        out.append(np.clip(y, -1.0, 1.0).astype(np.float32))
    return out


def mixup(x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): each window mixed with a random partner, weight ~ Beta(alpha,
    alpha) kept >= 0.5 for the window itself; returns the mixed windows and soft (one-hot mixed) labels."""
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    lam = np.maximum(lam, 1.0 - lam)
    partner = rng.permutation(len(x))
    onehot = np.eye(NUM_LABELS, dtype=np.float32)[y]
    mixed_x = lam[:, None, None, None] * x + (1.0 - lam[:, None, None, None]) * x[partner]
    mixed_y = lam[:, None] * onehot + (1.0 - lam[:, None]) * onehot[partner]
    return mixed_x.astype(np.float32), mixed_y


# ---------------------------------------------------------------------------------------- model

def build_model(tf, width: int = 24, head: str = "pool"):
    """A compact log-mel CNN: four conv stages, then average + max pooling over time and frequency
    (``head="pool"``) or over time only, the frequency bands kept apart (``head="freq"``)."""
    layers = tf.keras.layers
    reg = tf.keras.regularizers.l2(1e-4)

    def conv_bn(x, ch):
        x = layers.Conv2D(ch, 3, padding="same", use_bias=False, kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)   # short runs: let the statistics keep up
        return layers.ReLU()(x)

    inp = layers.Input(FEATURE_SHAPE, name="logmel")
    x = conv_bn(inp, width)                        # 249x40
    x = layers.MaxPooling2D(2)(x)                  # 124x20
    x = conv_bn(x, width * 2)
    x = layers.MaxPooling2D(2)(x)                  # 62x10
    x = conv_bn(x, width * 3)
    x = conv_bn(x, width * 3)
    x = layers.MaxPooling2D(2)(x)                  # 31x5
    x = conv_bn(x, width * 5)
    if head == "freq":                             # 31x5xC -> pool over time -> 5*C*2 features
        frames = x.shape[1]
        x = layers.Concatenate()([layers.Flatten()(layers.AveragePooling2D((frames, 1))(x)),
                                  layers.Flatten()(layers.MaxPooling2D((frames, 1))(x))])
    else:
        x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dropout(0.3)(x)
    logits = layers.Dense(NUM_LABELS, name="logits", kernel_regularizer=reg, dtype="float32")(x)
    probs = layers.Softmax(name="probs", dtype="float32")(logits)
    return tf.keras.Model(inp, probs, name="voice_emotion")


# ---------------------------------------------------------------------------------------- train

def clip_set(audio: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All windows of all clips (the service's gating and windowing) and each window's clip id."""
    feats, owner = [], []
    for i, x in enumerate(audio):
        f, _ = clip_windows(x, VAD_AGGRESSIVENESS)
        feats.append(f)
        owner += [i] * len(f)
    return np.concatenate(feats), np.asarray(owner, np.int64)


def clip_predictions(probs: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Mean window probabilities per clip -> predicted class (clips without speech -> 0)."""
    total = np.zeros((n, NUM_LABELS))
    np.add.at(total, owner, probs)
    return total.argmax(1)


def evaluate_clips(path: Path, clips: list[np.ndarray], y: list[int]) -> dict:
    """Clip-level report through VoiceClassifier, the service's code path."""
    from edge.inference.voice import VoiceClassifier

    clf = VoiceClassifier(path, num_threads=1)
    preds, no_speech = [], 0
    for x in clips:
        probs, detail = clf.classify_clip(x)
        no_speech += not detail.speech
        preds.append(int(probs.argmax()))
    rep = classification_report(np.asarray(y), np.asarray(preds))
    rep["no_speech_clips"] = no_speech
    return rep


def calibration_windows(bank_x: np.ndarray, seed: int, n: int = 400) -> np.ndarray:
    """A seeded sample of augmented training windows to calibrate the int8 quantization."""
    rng = np.random.default_rng(seed)
    return bank_x[rng.choice(len(bank_x), size=min(n, len(bank_x)), replace=False)]


def export_and_report(tf, model, out: Path, data: dict, noisy_val: list[np.ndarray], rep_feats: np.ndarray,
                      metrics: dict) -> dict:
    """Export ``model`` to float and int8 TFLite in ``out`` (int8 calibrated on ``rep_feats``),
    score both on the clean and noisy held-out clips through the service's classifier and write
    ``metrics.json`` (``metrics`` plus the scores)."""
    float_path, int8_path = export_float_and_int8(tf, model, out, VOICE_STEM, [f[None] for f in rep_feats])
    metrics = {**metrics, "train_actors": sorted(set(data["train_actor"])), "val_actors": sorted(set(data["val_actor"])),
               "noisy_protocol": {"babble_snr_db": NOISY_BABBLE_SNR_DB, "babble_speakers": 3,
                                  "pink_snr_db": NOISY_PINK_SNR_DB, "seed": NOISY_SEED,
                                  "level": "active speech level (30 ms frames within 35 dB of the loudest)"}}
    for kind, path in (("float", float_path), ("int8", int8_path)):
        metrics[kind] = {
            "bytes": path.stat().st_size,
            "clean": evaluate_clips(path, data["val_audio"], data["val_y"]),
            "noisy": evaluate_clips(path, noisy_val, data["val_y"]),
        }
    metrics["labels"] = list(LABELS)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for kind in ("float", "int8"):
        c, nz = metrics[kind]["clean"], metrics[kind]["noisy"]
        print(f"{kind} ({metrics[kind]['bytes']} bytes): actors 17-20 clip acc clean {c['accuracy']:.4f} "
              f"(balanced {c['balanced_accuracy']:.4f}), noisy {nz['accuracy']:.4f} "
              f"(balanced {nz['balanced_accuracy']:.4f})", flush=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tf = start_tensorflow(args)

    t0 = time.time()
    data = load_ravdess(Path(args.data), args.limit, args.seed)
    noisy_val = noisy_copy(data["val_audio"], data["val_actor"])
    val_clean_x, val_clean_owner = clip_set(data["val_audio"])
    val_noisy_x, val_noisy_owner = clip_set(noisy_val)
    n_val = len(data["val_audio"])
    print(f"train {len(data['train_audio'])} clips (actors {sorted(set(data['train_actor']))})  "
          f"val {n_val} clips (actors {sorted(set(data['val_actor']))}), "
          f"{len(val_clean_x)} clean / {len(val_noisy_x)} noisy windows; loaded in {time.time() - t0:.0f}s",
          flush=True)
    assert not set(data["train_actor"]) & set(data["val_actor"]), "a validation actor is in training"

    run = RunFolder(out)
    best_path = run.best_weights
    loss = (tf.keras.losses.CategoricalCrossentropy() if args.mixup
            else tf.keras.losses.SparseCategoricalCrossentropy())
    model, state = run.open(tf, args.resume, lambda: build_model(tf, args.width, args.head), loss, args.lr)
    print(f"parameters: {model.count_params():,}", flush=True)
    average = WeightAverage(out / "average.weights.npz", int(args.average_from * args.epochs))
    averaged = build_model(tf, args.width, args.head) if args.select == "average" else None

    val_y = np.asarray(data["val_y"])
    val_sets = (("clean", val_clean_x, val_clean_owner), ("noisy", val_noisy_x, val_noisy_owner))

    def val_accuracies(m) -> dict[str, float]:
        """Clip accuracy on the clean and the noisy held-out windows (mean window probabilities)."""
        return {name: float(np.mean(clip_predictions(m.predict(x, batch_size=256, verbose=0), owner, n_val) == val_y))
                for name, x, owner in val_sets}

    bank_x = bank_y = None
    for epoch in range(state["epoch"], args.epochs):
        start = time.time()
        bank_x, bank_y = epoch_bank(data, epoch, args.seed, args.variants, args.quiet,
                                    args.noise_prob, args.max_speed, args.vtlp)
        t_bank = time.time() - start
        model.optimizer.learning_rate.assign(lr_at(epoch, args.epochs, args.lr))
        steps = len(bank_x) // args.batch
        if args.steps:
            steps = min(steps, args.steps) if steps else args.steps
        n = max(steps * args.batch, min(len(bank_x), args.batch))
        train_x, train_y = bank_x[:n], bank_y[:n]
        if args.mixup:
            train_x, train_y = mixup(train_x, train_y, args.mixup, np.random.default_rng([args.seed, epoch, 7]))
        hist = model.fit(train_x, train_y, batch_size=args.batch, epochs=1, shuffle=False,
                         verbose=2 if args.quiet else 1)
        del train_x, train_y
        accs = val_accuracies(model)
        if averaged is not None and average.add(epoch, model.get_weights()):
            averaged.set_weights(average.weights())
            accs.update({f"average_{name}": acc for name, acc in val_accuracies(averaged).items()})
        score = accs["clean"] + accs["noisy"]
        entry = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]),
                 "train_accuracy": float(hist.history["accuracy"][-1]), "val_clean": accs["clean"],
                 "val_noisy": accs["noisy"], "lr": lr_at(epoch, args.epochs, args.lr),
                 "windows": int(n), "bank_s": round(t_bank, 1), "epoch_s": round(time.time() - start, 1)}
        if "average_clean" in accs:
            entry["average_clean"], entry["average_noisy"] = accs["average_clean"], accs["average_noisy"]
        state["history"].append(entry)
        if score > state["best_score"]:
            state["best_score"] = score
            state["best_epoch"] = epoch + 1
            model.save_weights(best_path)
        state["epoch"] = epoch + 1
        run.save(model, state)
        avg_note = (f"  average clean {accs['average_clean']:.4f} noisy {accs['average_noisy']:.4f}"
                    if "average_clean" in accs else "")
        print(f"epoch {epoch + 1}/{args.epochs}: loss {entry['loss']:.3f}  val clip acc clean "
              f"{accs['clean']:.4f} noisy {accs['noisy']:.4f}{avg_note}  ({entry['epoch_s']:.0f}s, bank {t_bank:.0f}s)",
              flush=True)

    # rebuild in float32 for export (mixed-precision variables are float32 already)
    tf.keras.mixed_precision.set_global_policy("float32")
    trained = model
    model = build_model(tf, args.width, args.head)
    model.set_weights(trained.get_weights())
    if args.select == "best" and best_path.is_file():
        model.load_weights(best_path)
    elif args.select == "average":
        if not average.count:
            raise SystemExit(f"error: no averaged weights in {out}; train past --average-from first")
        model.set_weights(average.weights())

    if bank_x is None:
        bank_x, _ = epoch_bank(data, max(state["epoch"] - 1, 0), args.seed, args.variants, args.quiet,
                                 args.noise_prob, args.max_speed, args.vtlp)
    rep_feats = calibration_windows(bank_x, args.seed)
    metrics: dict = {
        "parameters": int(model.count_params()), "epochs": state["epoch"], "selected": args.select,
        "best_epoch": state.get("best_epoch"), "seed": args.seed,
        "window_s": WINDOW_S, "hop_s": HOP_S, "feature_shape": list(FEATURE_SHAPE),
        "vad_aggressiveness": VAD_AGGRESSIVENESS, "width": args.width, "noise_prob": args.noise_prob, "max_speed": args.max_speed, "vtlp": args.vtlp,
        "mixup": args.mixup, "head": args.head, "average_from_epoch": average.start if args.select == "average" else None,
        "averaged_epochs": average.count if args.select == "average" else None, "aggregation": "mean of window probabilities",
        "history": state["history"],
    }
    export_and_report(tf, model, out, data, noisy_val, rep_feats, metrics)
    if args.install:
        install(out, VOICE_STEM)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
