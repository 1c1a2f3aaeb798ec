#!/usr/bin/env python3
"""Accuracy against balanced accuracy of a face model as its decision threshold moves.

A face model's predicted class is ``argmax(log p - tau * log prior)``, where ``prior`` is the
FER+ class frequency of the training rows: tau > 0 favours the rare distress classes (fear,
disgust, sad, angry), tau < 0 the common ones (neutral, happy). The shipped model already has its
own tau folded into its last layer, so tau here is relative to it. For each tau this prints
accuracy and balanced accuracy on the validation slice ``train_face.py`` uses (choose a tau there)
and on FER+ PublicTest (report it there), through edge's runtime, and as its last line a JSON list
of the same rows::

    python scripts/face_operating_points.py models_tflite/face_expression_int8.tflite
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.inference.face import FaceClassifier  # noqa: E402
from scripts.cli import value_grid  # noqa: E402
from scripts.metrics import classification_report  # noqa: E402
from scripts.train_face import adjusted_predictions, class_prior, load_face_data  # noqa: E402
from scripts.training import DEFAULT_DATA  # noqa: E402


def operating_points(probs: np.ndarray, y: np.ndarray, prior: np.ndarray,
                     taus: np.ndarray) -> list[tuple[float, float, float]]:
    """(tau, accuracy, balanced accuracy) of ``argmax(log probs - tau*log prior)`` for each tau."""
    rows = []
    for tau in taus:
        rep = classification_report(y, adjusted_predictions(probs, prior, tau))
        rows.append((float(round(tau, 2)) + 0.0, rep["accuracy"], rep["balanced_accuracy"]))   # no -0.0
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a face expression .tflite (float or int8)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding fer2013/ (default ../shared/data)")
    p.add_argument("--seed", type=int, default=1, help="the training run's seed (picks the validation slice)")
    p.add_argument("--taus", type=value_grid, default="-0.6:0.4:0.1", help="start:stop:step, stop included (default -0.6:0.4:0.1; write --taus=-0.4:0.4:0.1 when it starts with a minus)")
    args = p.parse_args(argv)
    taus = np.array(args.taus)

    data = load_face_data(Path(args.data), args.seed)
    prior = class_prior(data["train_y"])
    clf = FaceClassifier(args.model)
    val = operating_points(clf.classify_batch(data["val_x"]), data["val_y"], prior, taus)
    test = operating_points(clf.classify_batch(data["test_x"]), data["test_y"], prior, taus)
    print(f"{'tau':>6}  {'val acc':>8} {'val bal':>8}  {'test acc':>8} {'test bal':>8}")
    rows = []
    for (tau, va, vb), (_, ta, tb) in zip(val, test, strict=True):
        print(f"{tau:+6.2f}  {va:8.4f} {vb:8.4f}  {ta:8.4f} {tb:8.4f}")
        rows.append({"tau": tau, "val_accuracy": va, "val_balanced": vb, "test_accuracy": ta, "test_balanced": tb})
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
