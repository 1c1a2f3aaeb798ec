"""Evaluate the shipped face or voice model through the service's own inference code.

    python scripts/evaluate.py face  --npz FILE [--model PATH] [--roll DEG [--no-align]] [--condition NAME]
    python scripts/evaluate.py voice --dir DIR  [--model PATH]
    python scripts/evaluate.py sounds --dir DIR [--model PATH] [--voice-model PATH] [--clips CSV]

face: FILE holds ``images`` uint8 [N,48,48] and ``labels`` [N] in FER-2013 order (0 angry .. 6
neutral); each image goes through ``FaceClassifier`` (the service's preprocessing).
``--condition`` first alters every image (``dim30``, ``dim15``, ``blur2``, ``lower_half``; defined in
``scripts/face_conditions.py``). ``--roll DEG`` goes through the detector instead: each crop is placed
as a camera would frame it (``face_conditions.place_in_frame``: upscaled to 160x160, centred in a
320x320 mid-grey frame, the frame rotated by DEG about its centre, counter-clockwise for a positive
DEG) and that frame goes through the service's own face stage (``edge.stages.load_face_stage``
with the default config: BlazeFace short range, patient selection, alignment, crop, classifier);
``--no-align`` uses the stage's unaligned path (one detector call, unrotated crop) to show the
before. The JSON then adds ``roll``, ``aligned``, ``detected`` (share of faces found) and
``n_detected``; accuracy, balanced_accuracy, per_class_recall, support and confusion are over the
detected faces, while ``accuracy_all`` and ``balanced_accuracy_all`` count an undetected face as a
wrong answer; ``ms_per_item`` is the whole stage per frame.
voice: DIR holds ``index.csv`` with columns ``file`` (path relative to DIR) and ``emotion`` (RAVDESS
names); audio (WAV/FLAC, any rate, mono or multi-channel) is resampled to 16 kHz and classified per
clip with ``VoiceClassifier.classify_clip``; clips without speech count as ``neutral`` predictions
and are reported as ``no_speech``. The JSON adds ``distress_auc`` (each clip's voice distress score,
the default config's ``[fusion]`` voice weights over its mean probabilities; positives fear, sad and
angry, negatives neutral, happy and surprise) and, when index.csv has a ``speaker`` or ``actor``
column, ``distress_by_speaker``: each speaker's mean distress score per true emotion (the model's
errors follow the voice; printed as a table too).

sounds: DIR holds ``index.csv`` with columns ``file`` and ``kind`` (speech, scream, cry, moan,
other_vocal, background); audio (WAV, FLAC or Ogg/Opus, any rate and channels) goes through the
service's own voice stage (``edge.stages.load_voice_stage`` with the default config: webrtcvad, the
sound-event model on 1 s windows every 0.5 s, the speech-emotion model on what it calls speech)
followed by 1 s of silence, as if played to the box one clip at a time. The last line is one JSON
object: n, distress_auc (clip score: the highest vocal-distress score the box reaches on the clip;
positives scream, cry, moan), distress_recall and false_alarm_rate (distress clips, and all others,
with at least one half-second the box counts as distress sound at its shipped ``flag_threshold``),
per_kind (n, flagged, speech_reached, mean score, share of windows per sound class), speech_recall (speech clips
whose audio reached the speech-emotion model), ms_per_audio_s (the whole voice stage), models.

For face and voice, the last line of stdout is one JSON object: n, accuracy, balanced_accuracy, per_class_recall,
support, confusion (7x7, canonical order, rows true), ms_per_item (classifier call only, file
reading excluded), model, sha256, backend. Bad input: a one-line error on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python scripts/evaluate.py` from a checkout
    sys.path.insert(0, str(REPO_ROOT))

from edge.audio_format import SAMPLE_RATE  # noqa: E402
from edge.inference.runtime import ModelError  # noqa: E402
from edge.labels import INDEX, LABELS, fer2013_to_canon, ravdess_to_canon  # noqa: E402
from edge.models import FACE_EXPRESSION, SOUND_EVENTS, VOICE_EMOTION  # noqa: E402
from scripts.face_conditions import CONDITIONS  # noqa: E402
from scripts.metrics import classification_report  # noqa: E402

MODELS_DIR = REPO_ROOT / "models_tflite"
DEFAULT_FACE_MODEL = MODELS_DIR / FACE_EXPRESSION.file          # the shipped models (edge.models)
DEFAULT_VOICE_MODEL = MODELS_DIR / VOICE_EMOTION.file
DEFAULT_SOUND_MODEL = MODELS_DIR / SOUND_EVENTS.file
SOUND_KINDS = ("speech", "scream", "cry", "moan", "other_vocal", "background")
FACE_SIZE = 48
MAKE_SETS = "python scripts/make_eval_sets.py --data ../shared/data --out DIR"


class EvalInputError(ValueError):
    """Bad evaluation input; str(err) is one line naming the thing and the fix."""


class CropClassifier(Protocol):
    def classify(self, crop: np.ndarray) -> np.ndarray: ...


class ClipClassifier(Protocol):
    def classify_clip(self, audio_16k: np.ndarray) -> tuple[np.ndarray, Any]: ...


# ------------------------------------------------------------------------------------------ face

def load_face_set(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Validated (images uint8 [N,48,48], canonical labels [N]) from an npz file."""
    if not path.is_file():
        raise EvalInputError(f"face set {path} not found; make one with `{MAKE_SETS}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise EvalInputError(f"face set {path} is not a readable .npz ({exc}); save it with "
                             "np.savez(FILE, images=..., labels=...)") from None
    for key in ("images", "labels"):
        if key not in arrays:
            raise EvalInputError(f"face set {path} has no `{key}` array (has: {', '.join(arrays) or 'none'}); "
                                 "save it with np.savez(FILE, images=..., labels=...)")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise EvalInputError(f"face set {path}: `images` must be uint8 [N,48,48], got {images.dtype} "
                             f"{list(images.shape)}; store 48x48 grayscale crops as uint8 0-255")
    if len(images) == 0:
        raise EvalInputError(f"face set {path} is empty; store at least one image")
    if labels.ndim != 1 or len(labels) != len(images):
        raise EvalInputError(f"face set {path}: `labels` must be 1-D with one entry per image "
                             f"({len(images)}), got shape {list(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise EvalInputError(f"face set {path}: `labels` must be integers 0-6 (FER-2013 order), "
                             f"got {labels.dtype}; store them with labels.astype(np.int64)")
    if labels.min() < 0 or labels.max() > 6:
        raise EvalInputError(f"face set {path}: labels range {int(labels.min())}..{int(labels.max())}, "
                             "must be 0-6 in FER-2013 order (0 angry ... 6 neutral)")
    return images, fer2013_to_canon(labels)


def evaluate_face(npz: Path, model: Path, num_threads: int = 1,
                  make_classifier: Callable[[Path], CropClassifier] | None = None,
                  roll: float | None = None, align: bool = True, condition: str | None = None) -> dict[str, Any]:
    images, y_true = load_face_set(npz)
    extra: dict[str, Any] = {}
    if condition is not None:
        from scripts.face_conditions import apply_condition

        images = apply_condition(images, condition)
        extra["condition"] = condition
    if make_classifier is None:
        from edge.inference.face import FaceClassifier

        clf: CropClassifier = FaceClassifier(model, num_threads=num_threads)
    else:
        clf = make_classifier(model)
    if roll is not None:
        return {"task": "face", "input": str(npz), **extra,
                **evaluate_face_frames(images, y_true, clf, roll, align, num_threads), **_model_fields(clf, model)}
    clf.classify(images[0])  # warm-up, not timed
    y_pred = np.empty(len(images), dtype=np.int64)
    elapsed = 0.0
    for i, img in enumerate(images):
        t0 = time.perf_counter()
        probs = clf.classify(img)
        elapsed += time.perf_counter() - t0
        y_pred[i] = int(np.argmax(probs))
    return {"task": "face", "input": str(npz), **extra, **classification_report(y_true, y_pred),
            "ms_per_item": 1000.0 * elapsed / len(images), **_model_fields(clf, model)}


def evaluate_face_frames(images: np.ndarray, y_true: np.ndarray, clf: CropClassifier, roll: float,
                         align: bool = True, num_threads: int = 1) -> dict[str, Any]:
    """Each crop placed in a camera-like frame rolled by ``roll`` degrees, through the service's face
    stage (detector, patient selection, alignment, crop) with ``clf`` as its classifier. Each frame is
    judged on its own, as the first frame of a stream (the stage forgets the last face's orientation)."""
    from edge.capture.camera import Frame
    from edge.config import Config
    from edge.stages import load_face_stage
    from scripts.face_conditions import place_in_frame

    cfg = Config()
    cfg = dataclasses.replace(cfg, service=dataclasses.replace(cfg.service, inference_threads=num_threads))
    stage = load_face_stage(cfg, align=align, classifier=clf)
    stage.process(Frame(place_in_frame(images[0], roll), 0.0, 0))  # warm-up, not timed
    y_pred = np.full(len(images), -1, dtype=np.int64)
    elapsed = 0.0
    for i, img in enumerate(images):
        frame = Frame(place_in_frame(img, roll), float(i), i)
        stage.reset()
        t0 = time.perf_counter()
        reading, _ = stage.process(frame)
        elapsed += time.perf_counter() - t0
        if reading is not None:
            y_pred[i] = int(np.argmax(reading.probs))
    found = y_pred >= 0
    if found.any():
        report = classification_report(y_true[found], y_pred[found])
    else:
        report = {**classification_report(y_true[:0], y_pred[:0]), "per_class_recall": dict.fromkeys(LABELS),
                  "support": dict.fromkeys(LABELS, 0)}
    right = y_pred == y_true
    recall_all = [float(right[y_true == k].mean()) for k in range(len(LABELS)) if (y_true == k).any()]
    return {**report, "roll": float(roll), "aligned": bool(align), "detected": float(found.mean()),
            "n_detected": int(found.sum()), "n_all": int(len(images)), "accuracy_all": float(right.mean()),
            "balanced_accuracy_all": float(np.mean(recall_all)), "ms_per_item": 1000.0 * elapsed / len(images)}


# ----------------------------------------------------------------------------------------- voice

def load_voice_index(folder: Path) -> list[tuple[Path, int, str | None]]:
    """Validated [(audio path, canonical label, speaker or None)] from DIR/index.csv (columns file,
    emotion; optional speaker or actor)."""
    items = []
    for line, row in _read_index(folder, ("file", "emotion"), MAKE_SETS):
        try:
            label = ravdess_to_canon(row["emotion"] or "")
        except ValueError as exc:
            raise EvalInputError(f"{folder / 'index.csv'} line {line}: {exc}") from None
        speaker = row.get("speaker") or row.get("actor") or None
        items.append((_index_file(folder, row, line), label, speaker))
    return items


VOICE_DISTRESS_POS, VOICE_DISTRESS_NEG = ("fear", "sad", "angry"), ("neutral", "happy", "surprise")


def voice_distress(probs: np.ndarray, y_true: np.ndarray, speakers: list[str | None]) -> dict[str, Any]:
    """Clip distress scores with the default voice weights: their AUC (fear, sad, angry against
    neutral, happy, surprise) and, when every clip names its speaker, each speaker's mean per true
    emotion."""
    from edge.config import Config
    from edge.fusion import distress_score
    from scripts.metrics import auc

    weights = Config().fusion.weights_for("voice")
    scores = np.array([distress_score(p, weights) for p in probs])
    pos = np.isin(y_true, [INDEX[k] for k in VOICE_DISTRESS_POS])
    neg = np.isin(y_true, [INDEX[k] for k in VOICE_DISTRESS_NEG])
    out: dict[str, Any] = {"distress_auc": auc(scores[pos], scores[neg]) if pos.any() and neg.any() else None}
    if speakers and all(speakers):
        who = np.array(speakers)
        out["distress_by_speaker"] = {
            sp: {LABELS[k]: round(float(scores[(who == sp) & (y_true == k)].mean()), 3)
                 for k in range(len(LABELS)) if ((who == sp) & (y_true == k)).any()}
            for sp in sorted(set(speakers), key=lambda v: (len(v), v))}
    return out


def read_audio_16k(path: Path) -> np.ndarray:
    """Any WAV/FLAC/Ogg -> float32 mono at 16 kHz (channels averaged, polyphase resampling)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise EvalInputError(f"audio file {path} cannot be read ({exc}); convert it to WAV, FLAC or Ogg/Opus") from None
    if audio.size == 0:
        raise EvalInputError(f"audio file {path} holds no samples; remove it from the index or replace it")
    mono = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        g = math.gcd(int(rate), SAMPLE_RATE)
        mono = resample_poly(mono, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _has_speech(probs: np.ndarray, detail: Any) -> bool:
    speech = getattr(detail, "speech", None)
    return bool(speech) if speech is not None else bool(np.asarray(probs).sum() > 0)


def voice_config(model: Path, sound_model: Path, num_threads: int = 1) -> Any:
    """The default service config with these speech-emotion and sound-event model files."""
    from edge.config import Config, VoiceConfig

    cfg = Config(voice=VoiceConfig(model=str(model.resolve()), sound_model=str(sound_model.resolve())))
    return dataclasses.replace(cfg, service=dataclasses.replace(cfg.service, inference_threads=num_threads))


class StageClipClassifier:
    """A clip through the service's live voice stage (webrtcvad, the sound-event gate, the speech
    model on what it calls speech): the mean of the readings it gives; none is "no speech"."""

    def __init__(self, model: Path, sound_model: Path, num_threads: int = 1):
        from edge.stages import load_voice_stage

        self.stage = load_voice_stage(voice_config(model, sound_model, num_threads))
        self.model = None   # several models: see stage.models

    def classify_clip(self, audio_16k: np.ndarray) -> tuple[np.ndarray, Any]:
        probs = [r.probs for r, _, _ in self.stage.feed_clip(audio_16k, tail_s=1.0) if r is not None]
        if not probs:
            return np.zeros(len(LABELS), np.float32), None
        return np.mean(np.asarray(probs), axis=0), None


def evaluate_voice(folder: Path, model: Path, num_threads: int = 1,
                   make_classifier: Callable[[Path], ClipClassifier] | None = None) -> dict[str, Any]:
    items = load_voice_index(folder)
    if make_classifier is None:
        from edge.inference.voice import VoiceClassifier

        clf: ClipClassifier = VoiceClassifier(model, num_threads=num_threads)
    else:
        clf = make_classifier(model)
    y_true = np.array([label for _, label, _ in items], dtype=np.int64)
    y_pred = np.empty(len(items), dtype=np.int64)
    clip_probs = np.zeros((len(items), len(LABELS)))
    no_speech = 0
    audio_s = elapsed = 0.0
    for i, (path, _, _) in enumerate(items):
        audio = read_audio_16k(path)
        audio_s += len(audio) / SAMPLE_RATE
        t0 = time.perf_counter()
        probs, detail = clf.classify_clip(audio)
        elapsed += time.perf_counter() - t0
        if _has_speech(probs, detail):
            y_pred[i] = int(np.argmax(probs))
            clip_probs[i] = probs
        else:
            no_speech += 1
            y_pred[i] = INDEX["neutral"]
    result = {"task": "voice", "input": str(folder), **classification_report(y_true, y_pred),
              "no_speech": no_speech, "audio_s": round(audio_s, 3),
              "ms_per_item": 1000.0 * elapsed / len(items),
              **voice_distress(clip_probs, y_true, [sp for _, _, sp in items])}
    return {**result, **_model_fields(clf, model)}


# ---------------------------------------------------------------------------------------- sounds

def load_sound_index(folder: Path) -> list[tuple[Path, str]]:
    """Validated [(audio path, kind)] from DIR/index.csv (columns file, kind)."""
    rows = _read_index(folder, ("file", "kind"), MAKE_SETS)
    items = []
    for line, row in rows:
        kind = (row["kind"] or "").strip()
        if kind not in SOUND_KINDS:
            raise EvalInputError(f"{folder / 'index.csv'} line {line}: kind {kind!r} is not one of "
                                 f"{', '.join(SOUND_KINDS)}; fix the `kind` column")
        items.append((_index_file(folder, row, line), kind))
    return items


def _read_index(folder: Path, columns: tuple[str, ...], make: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of DIR/index.csv, which must exist, parse and have ``columns``."""
    if not folder.is_dir():
        raise EvalInputError(f"folder {folder} not found; make one with `{make}`")
    index = folder / "index.csv"
    if not index.is_file():
        raise EvalInputError(f"{index} not found; the folder needs an index.csv with columns {', '.join(columns)}")
    try:
        with open(index, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            have = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvalInputError(f"{index} cannot be read as CSV ({exc}); write it as UTF-8 CSV "
                             "with a header row") from None
    missing = [c for c in columns if c not in have]
    if missing:
        raise EvalInputError(f"{index} lacks column(s) {', '.join(missing)} (has: {', '.join(have) or 'none'}); "
                             f"add a header row with at least {','.join(columns)}")
    if not rows:
        raise EvalInputError(f"{index} has no rows; list at least one clip")
    return list(enumerate(rows, start=2))


def _index_file(folder: Path, row: dict[str, str], line: int) -> Path:
    path = folder / (row["file"] or "")
    if not row["file"] or not path.is_file():
        raise EvalInputError(f"{folder / 'index.csv'} line {line}: audio file {path} not found; fix the `file` "
                             "column (paths are relative to the index folder)")
    return path


def hear_clip(stage: Any, tracker: Any, audio: np.ndarray) -> dict[str, Any]:
    """Play one clip (then 1 s of silence) into a fresh voice stage as the microphone would
    (``VoiceStage.feed_clip``); feed each hop's sound to ``tracker``. Returns the clip's score, whether any hop was
    flagged, whether speech reached the emotion model, and each hop's likeliest sound."""
    score, flagged, reached, labels = 0.0, False, False, []
    for reading, t, detail in stage.feed_clip(audio, tail_s=1.0):
        reached = reached or reading is not None
        if detail.get("sound") is None:
            tracker.observe_quiet(t)
            labels.append("background")
            continue
        hop = tracker.observe(detail["sound"], t)
        score, flagged = max(score, hop.score), flagged or hop.flagged
        labels.append(hop.label)
    return {"score": score, "flagged": flagged, "speech_reached": reached, "labels": labels}


def evaluate_sounds(folder: Path, model: Path, voice_model: Path, num_threads: int = 1,
                    clips_csv: Path | None = None) -> dict[str, Any]:
    from edge.inference.sound_events import SOUND_CLASSES
    from edge.stages import load_voice_stage
    from edge.vocal_distress import VocalDistressTracker
    from scripts.metrics import auc

    items = load_sound_index(folder)
    cfg = voice_config(voice_model, model, num_threads)
    results: list[tuple[str, dict[str, Any]]] = []
    audio_s = busy_ms = 0.0
    stage = None
    for path, kind in items:
        audio = read_audio_16k(path)
        stage = load_voice_stage(cfg) if stage is None else stage
        tracker = VocalDistressTracker(cfg.vocal_distress, clock=lambda: 0.0)
        results.append((kind, hear_clip(stage, tracker, audio)))
    if clips_csv is not None:
        with open(clips_csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "kind", "score", "flagged", "speech_reached", "sounds"])
            for (path, _), (kind, r) in zip(items, results, strict=True):
                writer.writerow([path.relative_to(folder), kind, round(r["score"], 4), int(r["flagged"]),
                                 int(r["speech_reached"]), " ".join(r["labels"])])
    if stage is not None:
        audio_s, busy_ms = stage.audio_s, stage.busy_ms
    distress = [r["score"] for k, r in results if k in ("scream", "cry", "moan")]
    others = [r["score"] for k, r in results if k not in ("scream", "cry", "moan")]
    per_kind: dict[str, Any] = {}
    for kind in SOUND_KINDS:
        rs = [r for k, r in results if k == kind]
        if not rs:
            continue
        labels = [lab for r in rs for lab in r["labels"]]
        per_kind[kind] = {"n": len(rs), "flagged": sum(r["flagged"] for r in rs),
                          "speech_reached": sum(r["speech_reached"] for r in rs),
                          "mean_score": round(float(np.mean([r["score"] for r in rs])), 4),
                          "windows": {c: round(labels.count(c) / max(1, len(labels)), 3) for c in SOUND_CLASSES}}
    speech = [r for k, r in results if k == "speech"]
    models = getattr(stage, "models", [])
    return {"task": "sounds", "input": str(folder), "n": len(results),
            "distress_auc": auc(np.array(distress), np.array(others)),
            "distress_recall": (sum(r["flagged"] for k, r in results if k in ("scream", "cry", "moan"))
                                / len(distress)) if distress else None,
            "false_alarm_rate": (sum(r["flagged"] for k, r in results if k not in ("scream", "cry", "moan"))
                                 / len(others)) if others else None,
            "flag_threshold": cfg.vocal_distress.flag_threshold,
            "per_kind": per_kind,
            "speech_recall": (sum(r["speech_reached"] for r in speech) / len(speech)) if speech else None,
            "audio_s": round(audio_s, 2), "ms_per_audio_s": round(busy_ms / max(audio_s, 1e-9), 3),
            "models": [{"name": m.get("name"), "file": m.get("file"), "sha256": m.get("sha256")} for m in models]}


# ------------------------------------------------------------------------------------------ CLI

def _model_fields(clf: Any, path: Path) -> dict[str, Any]:
    """Model file, sha256 and runtime of the classifier's TFLiteModel (a test double has none)."""
    model = getattr(clf, "model", None)
    if model is None:
        return {"model": path.name, "model_path": str(path), "sha256": None, "backend": None}
    return {"model": model.path.name, "model_path": str(model.path), "sha256": model.sha256,
            "backend": model.backend}


def _summary(result: dict[str, Any]) -> list[str]:
    lines = [f"{result['task']}: n={result['n']} accuracy={result['accuracy']:.4f} "
             f"balanced_accuracy={result['balanced_accuracy']:.4f} ms_per_item={result['ms_per_item']:.2f}"
             + (f" no_speech={result['no_speech']}" if "no_speech" in result else "")
             + (f" detected={result['detected']:.4f} balanced_accuracy_all={result['balanced_accuracy_all']:.4f}"
                if "detected" in result else "")]
    for name in LABELS:
        recall = result["per_class_recall"][name]
        shown = "   -  " if recall is None else f"{recall:.3f}"
        lines.append(f"  {name:<9} recall {shown}  support {result['support'][name]}")
    if result.get("distress_auc") is not None:
        lines.append(f"distress_auc={result['distress_auc']:.4f} (fear, sad, angry against neutral, happy, surprise)")
    by_speaker = result.get("distress_by_speaker")
    if by_speaker:
        lines.append("mean distress score by speaker and true emotion:")
        lines.append("  speaker   " + " ".join(f"{name:>8}" for name in LABELS))
        for sp, row in by_speaker.items():
            lines.append(f"  {sp:<9} " + " ".join(f"{row[n]:8.2f}" if n in row else "       -" for n in LABELS))
    return lines


def main(argv: list[str] | None = None,
         make_face_classifier: Callable[[Path], CropClassifier] | None = None,
         make_voice_classifier: Callable[[Path], ClipClassifier] | None = None) -> int:
    """CLI entry; the ``make_*_classifier`` hooks replace the TFLite classifiers (tests only)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="task", required=True)
    face = sub.add_parser("face", help="facial-expression model on a 48x48 npz set")
    face.add_argument("--npz", type=Path, required=True, help="npz with images [N,48,48] and labels [N]")
    face.add_argument("--model", type=Path, default=DEFAULT_FACE_MODEL)
    face.add_argument("--roll", type=float, default=None, metavar="DEG",
                      help="place each crop in a camera-like frame rolled by DEG degrees and run the service's "
                           "face stage (detector, selection, alignment, crop, classifier)")
    face.add_argument("--no-align", action="store_true", help="with --roll: the unaligned path, for comparison")
    face.add_argument("--condition", choices=CONDITIONS, default=None,
                      help="alter each crop first: dim30, dim15 (30 %% / 15 %% brightness with sensor noise), "
                           "blur2 (2-pixel Gaussian blur), lower_half (lower half covered)")
    voice = sub.add_parser("voice", help="speech-emotion model on a folder with index.csv")
    voice.add_argument("--dir", type=Path, required=True, help="folder holding index.csv and audio")
    voice.add_argument("--model", type=Path, default=DEFAULT_VOICE_MODEL)
    voice.add_argument("--sound-gate", action="store_true",
                       help="classify through the service's live voice stage, behind the sound-event gate")
    voice.add_argument("--sound-model", type=Path, default=DEFAULT_SOUND_MODEL, help="with --sound-gate")
    sounds = sub.add_parser("sounds", help="sound-event stage and vocal distress on a folder with index.csv (file, kind)")
    sounds.add_argument("--dir", type=Path, required=True, help="folder holding index.csv and audio")
    sounds.add_argument("--model", type=Path, default=DEFAULT_SOUND_MODEL, help="sound-event model")
    sounds.add_argument("--voice-model", type=Path, default=DEFAULT_VOICE_MODEL, help="speech-emotion model")
    sounds.add_argument("--clips", type=Path, help="also write one CSV row per clip (score, flagged, sounds heard)")
    for p in (face, voice, sounds):
        p.add_argument("--threads", type=int, default=1, help="TFLite interpreter threads")
    args = ap.parse_args(argv)
    try:
        if args.task == "sounds":
            result = evaluate_sounds(args.dir, args.model, args.voice_model, args.threads, args.clips)
            for kind, k in result["per_kind"].items():
                print(f"  {kind:<12} n {k['n']:>5}  flagged {k['flagged']:>5}  mean score {k['mean_score']:.3f}")
            print(json.dumps(result))
            return 0
        if args.task == "face":
            if args.no_align and args.roll is None:
                raise EvalInputError("--no-align only applies with --roll DEG (through the detector)")
            result = evaluate_face(args.npz, args.model, args.threads, make_face_classifier,
                                   roll=args.roll, align=not args.no_align, condition=args.condition)
        else:
            if args.sound_gate and make_voice_classifier is None:
                def make_voice_classifier(path: Path) -> ClipClassifier:
                    return StageClipClassifier(path, args.sound_model, args.threads)
            result = evaluate_voice(args.dir, args.model, args.threads, make_voice_classifier)
            if args.sound_gate:
                result["sound_gate"] = True
    except (EvalInputError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(_summary(result)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
