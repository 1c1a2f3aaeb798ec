#!/usr/bin/env python3
"""Combine finished ``train_voice.py`` runs into one speech-emotion model that averages their
probabilities (a seed ensemble), exported to float and int8 TFLite and scored like a single run.

Each member is rebuilt from its run folder with the weights that run exported (the weight average,
the best or the last epoch, as its ``metrics.json`` says) and checked against that run's float
``.tflite`` before it is used. The combined model has the same input and output as one member, so
the service and ``scripts/evaluate.py`` run it unchanged; it costs one member's time per member.

Needs the optional ``[train]`` extra (TensorFlow) and ``../shared/data`` (int8 calibration and
the held-out scores). The shipped model::

    python scripts/ensemble_voice.py runs/voice_s1 runs/voice_s2 runs/voice_s3 --out runs/voice_ensemble --install
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

from edge.inference.voice_features import FEATURE_SHAPE, WINDOW_S  # noqa: E402
from scripts.train_voice import (  # noqa: E402
    VOICE_STEM,
    build_model,
    calibration_windows,
    clip_set,
    epoch_bank,
    export_and_report,
    load_ravdess,
    noisy_copy,
)
from scripts.training import WeightAverage, average_models, ensemble_parser, install  # noqa: E402

MAX_BYTES = 1_000_000          # the size bar for the int8 speech model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return ensemble_parser(__doc__, members="runs", members_help="finished train_voice.py output folders",
                           data_holds="ravdess/index.csv", out="runs/voice_ensemble",
                           limit_help="use only N training clips (smoke tests)").parse_args(argv)


def run_metrics(run: Path) -> dict:
    """A finished run's metrics, refused when it was trained for other features than edge's."""
    path = run / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} missing; finish that run first (train_voice.py --resume --out {run})")
    meta = json.loads(path.read_text())
    if meta.get("window_s") != WINDOW_S or tuple(meta.get("feature_shape", ())) != FEATURE_SHAPE:
        raise SystemExit(f"error: {run} was trained on {meta.get('window_s')} s windows {meta.get('feature_shape')}; "
                         f"edge uses {WINDOW_S} s {list(FEATURE_SHAPE)}: retrain it or leave it out")
    return meta


def member_model(tf, run: Path, meta: dict):
    """The Keras model a run exported, rebuilt from its run folder."""
    model = build_model(tf, meta["width"], meta.get("head", "pool"))
    selected = meta.get("selected", "last")
    if selected == "average":
        model.set_weights(WeightAverage.stored(run / "average.weights.npz"))
    elif selected == "best":
        model.load_weights(run / "best.weights.h5")
    else:
        model.set_weights(tf.keras.models.load_model(run / "checkpoint.keras").get_weights())
    return model


def check_member(model, run: Path, windows: np.ndarray, tol: float = 1e-3) -> float:
    """Largest probability difference between the rebuilt member and the run's own float TFLite
    file on ``windows``; refuses a member that is not the model that run exported."""
    from edge.inference.runtime import TFLiteModel

    exported = TFLiteModel(run / f"{VOICE_STEM}_float.tflite")
    ref = np.concatenate([exported.run(w[None])[0] for w in windows])
    diff = float(np.abs(model.predict(windows, verbose=0) - ref).max())
    if diff > tol:
        raise SystemExit(f"error: weights rebuilt from {run} differ from its exported model by {diff:.4f}")
    return diff


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    metas = [run_metrics(run) for run in args.runs]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    data = load_ravdess(Path(args.data), args.limit, args.seed)
    noisy_val = noisy_copy(data["val_audio"], data["val_actor"])
    check_windows = clip_set(data["val_audio"][:4])[0][:8]

    members, member_notes = [], []
    for run, meta in zip(args.runs, metas, strict=True):
        model = member_model(tf, run, meta)
        diff = check_member(model, run, check_windows)
        members.append(model)
        member_notes.append({"run": str(run), "seed": meta.get("seed"), "epochs": meta.get("epochs"),
                             "selected": meta.get("selected"), "matches_its_float_tflite_within": diff,
                             "int8_clean": meta["int8"]["clean"]["accuracy"], "int8_noisy": meta["int8"]["noisy"]["accuracy"]})
        print(f"{run}: seed {meta.get('seed')}, int8 alone clean {meta['int8']['clean']['accuracy']:.4f} "
              f"noisy {meta['int8']['noisy']['accuracy']:.4f}", flush=True)
    model = average_models(tf, members, FEATURE_SHAPE, "voice_emotion_ensemble")

    # calibration windows: augmented training renderings, like a single run's export
    bank_x, _ = epoch_bank(data, 0, args.seed, 2, True, metas[0].get("noise_prob", 0.25), metas[0].get("max_speed", 0.05),
                           metas[0].get("vtlp", 0.0))
    rep_feats = calibration_windows(bank_x, args.seed)
    first = metas[0]
    metrics = {"ensemble": "mean of the members' window probabilities", "members": member_notes,
               "parameters": int(model.count_params()), "window_s": first["window_s"], "hop_s": first["hop_s"],
               "feature_shape": first["feature_shape"], "vad_aggressiveness": first["vad_aggressiveness"],
               "aggregation": first["aggregation"]}
    metrics = export_and_report(tf, model, args.out, data, noisy_val, rep_feats, metrics)
    size = metrics["int8"]["bytes"]
    if size > MAX_BYTES:
        raise SystemExit(f"error: the int8 ensemble is {size:,} bytes, over {MAX_BYTES:,}; use fewer or narrower members")
    if args.install:
        install(args.out, VOICE_STEM)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
