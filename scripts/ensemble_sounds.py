#!/usr/bin/env python3
"""Combine sound-event models into one that averages their window probabilities (an ensemble),
exported to float and int8 TFLite and scored on the validation speakers like a single run.

A member is a ``.tflite`` file made by ``scripts/train_sounds.py``: a run's
``sound_events_float.tflite`` (exact weights) or an int8 file such as the shipped
``models_tflite/sound_events_int8.tflite`` (its int8 weights are dequantized; batch norm is already
folded into the convolutions). Each member is rebuilt as a Keras model from the file's own tensors
and checked against that file on held-out windows before it is used. The combined model has the
input and output of one member, so the service and ``scripts/evaluate.py`` run it unchanged; it
costs one member's time per member.

Needs the optional ``[train]`` extra (TensorFlow) and ``../shared/data`` (int8 calibration on
augmented training windows, scores on the validation speakers)::

    python scripts/ensemble_sounds.py models_tflite/sound_events_int8.tflite runs/sounds_b/sound_events_float.tflite \\
        --out runs/sounds_ensemble [--install]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.inference.sound_events import NUM_SOUNDS, SOUND_CLASSES, SOUND_FEATURE_SHAPE  # noqa: E402
from scripts.sound_data import SR  # noqa: E402
from scripts.train_sounds import (  # noqa: E402
    STEM,
    epoch_bank,
    group_weights,
    load_clips,
    score_tflite,
    selection_score,
    split_clips,
    val_windows,
)
from scripts.training import average_models, ensemble_parser, export_float_and_int8, install  # noqa: E402

# the layer sequence of a train_sounds.py model as TFLite writes it
EXPECTED_OPS = ("CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "MAX_POOL_2D", "CONV_2D",
                "MEAN", "REDUCE_MAX", "CONCATENATION", "FULLY_CONNECTED", "SOFTMAX")
MAX_MEMBER_DIFF = {"float32": 1e-3, "int8": 0.06}   # largest probability difference allowed per window


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return ensemble_parser(__doc__, members="members", members_help="sound-event .tflite files made by train_sounds.py",
                           data_holds="vocal_bursts/ and ravdess/", out="runs/sounds_ensemble",
                           limit_help="use only N clips (smoke tests)").parse_args(argv)


def _dequantized(interp, index: int) -> np.ndarray:
    """A constant tensor as float32 (per-channel int8/int32 scales applied along their axis)."""
    detail = interp._get_tensor_details(index, 0)   # noqa: SLF001 (the public list has no per-index lookup)
    value = interp.get_tensor(index)
    q = detail["quantization_parameters"]
    if value.dtype == np.float32 or not len(q["scales"]):
        return value.astype(np.float32)
    shape = [1] * value.ndim
    if len(q["scales"]) > 1:
        shape[q["quantized_dimension"]] = -1
    scales = np.asarray(q["scales"], np.float32).reshape(shape)
    zeros = np.asarray(q["zero_points"], np.float32).reshape(shape)
    return ((value.astype(np.float32) - zeros) * scales).astype(np.float32)


def member_weights(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray], str]:
    """([(kernel HWIO, bias)] x 4 convolutions, (dense kernel, bias), input dtype) read from a
    train_sounds.py TFLite file; SystemExit naming the fix for any other file."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # without the default XNNPACK delegate, whose node would replace the layers
    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    ops = interp._get_ops_details()    # noqa: SLF001
    names = tuple(op["op_name"] for op in ops)
    if names != EXPECTED_OPS:
        raise SystemExit(f"error: {path} is not a sound-event model made by scripts/train_sounds.py "
                         f"(its layers: {', '.join(names)}); pass the run's sound_events_float.tflite")
    convs = [(np.transpose(_dequantized(interp, op["inputs"][1]), (1, 2, 3, 0)), _dequantized(interp, op["inputs"][2]))
             for op in ops if op["op_name"] == "CONV_2D"]
    fc = next(op for op in ops if op["op_name"] == "FULLY_CONNECTED")
    dense = (_dequantized(interp, fc["inputs"][1]).T, _dequantized(interp, fc["inputs"][2]))
    if dense[0].shape[1] != NUM_SOUNDS or convs[0][0].shape[:3] != (3, 3, SOUND_FEATURE_SHAPE[-1]):
        raise SystemExit(f"error: {path} does not map a {list(SOUND_FEATURE_SHAPE)} window to {NUM_SOUNDS} sounds")
    return convs, dense, np.dtype(interp.get_input_details()[0]["dtype"]).name


def build_member(tf, convs: list[tuple[np.ndarray, np.ndarray]], dense: tuple[np.ndarray, np.ndarray], name: str):
    """The inference graph of a train_sounds.py model (batch norm folded into each convolution)."""
    layers = tf.keras.layers
    inp = layers.Input(SOUND_FEATURE_SHAPE, name="logmel")
    x = inp
    for k, (kernel, bias) in enumerate(convs):
        conv = layers.Conv2D(kernel.shape[-1], 3, padding="same", activation="relu")
        x = conv(x)
        conv.set_weights([kernel, bias])
        if k < len(convs) - 1:
            x = layers.MaxPooling2D(2)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    head = layers.Dense(NUM_SOUNDS)
    logits = head(x)
    head.set_weights(list(dense))
    return tf.keras.Model(inp, layers.Softmax()(logits), name=name)


def check_member(model, path: Path, windows: np.ndarray, kind: str) -> float:
    """Largest probability difference between the rebuilt member and its file on ``windows``."""
    from edge.inference.sound_events import SoundClassifier

    clf = SoundClassifier(path)
    ref = np.stack([np.asarray(clf.model.run(w[None])[0][0], np.float32) for w in windows])
    ref /= ref.sum(axis=1, keepdims=True)
    diff = float(np.abs(model.predict(windows, verbose=0) - ref).max())
    if diff > MAX_MEMBER_DIFF[kind]:
        raise SystemExit(f"error: the model rebuilt from {path} differs from the file by {diff:.4f}; "
                         "is it a train_sounds.py model?")
    return diff


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for path in args.members:
        if not path.is_file():
            raise SystemExit(f"error: {path} not found; pass sound-event .tflite files made by scripts/train_sounds.py")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    train, val = split_clips(Path(args.data), args.limit, args.seed, min_val=30)
    train_audio, val_audio = load_clips(train, True), load_clips(val, True)
    val_x, _ = val_windows(val_audio[:20])

    members, notes = [], []
    for k, path in enumerate(args.members):
        convs, dense, kind = member_weights(path)
        model = build_member(tf, convs, dense, f"member_{k}")
        diff = check_member(model, path, val_x[:64], kind)
        alone = score_tflite(path, val_audio, val)
        alone["score"] = selection_score(alone)
        members.append(model)
        notes.append({"file": str(path), "weights": kind, "matches_its_file_within": round(diff, 4),
                      **{key: alone[key] for key in ("auc_deeply_speech", "auc_emogator", "clip_balanced_accuracy", "score")}})
        print(f"{path}: {kind}, rebuilt within {diff:.4f}; alone AUC deeply+speech {alone['auc_deeply_speech']:.4f} "
              f"emogator {alone['auc_emogator']:.4f} clip bal acc {alone['clip_balanced_accuracy']:.4f}", flush=True)
    model = average_models(tf, members, SOUND_FEATURE_SHAPE, "sound_events_ensemble")

    # calibration windows: augmented training renderings, like a single run's export
    bank_x, _ = epoch_bank(train, train_audio, group_weights(train), 0, args.seed, 100 if not args.limit else 20)
    rng = np.random.default_rng(args.seed)
    rep_feats = bank_x[rng.choice(len(bank_x), size=min(500, len(bank_x)), replace=False)]
    float_path, int8_path = export_float_and_int8(tf, model, args.out, STEM, [f[None] for f in rep_feats])
    metrics = {"ensemble": "mean of the members' window probabilities", "members": notes,
               "classes": list(SOUND_CLASSES), "parameters": int(model.count_params()),
               "feature_shape": list(SOUND_FEATURE_SHAPE), "sample_rate": SR,
               "train_clips": len(train), "val_clips": len(val), "val_speakers": sorted({c.speaker for c in val})}
    for kind, path in (("float", float_path), ("int8", int8_path)):
        metrics[kind] = score_tflite(path, val_audio, val)
        metrics[kind]["score"] = selection_score(metrics[kind])
        m = metrics[kind]
        print(f"ensemble {kind} ({m['bytes']} bytes): AUC deeply+speech {m['auc_deeply_speech']:.4f} emogator "
              f"{m['auc_emogator']:.4f} clip bal acc {m['clip_balanced_accuracy']:.4f}", flush=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if args.install:
        install(args.out, STEM)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
