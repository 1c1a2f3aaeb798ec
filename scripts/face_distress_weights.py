#!/usr/bin/env python3
"""How the face's distress weights move faces over the alarm threshold, per expression.

For each candidate set of face distress weights (``[fusion] distress_weights`` with
``face_distress_weights`` laid over it) this prints, per FER+ majority expression, the share of
faces whose distress score reaches ``[alarm] on_threshold``: high is wanted on fear, sad, angry and
disgust, low on neutral, happy and surprise (two such faces in a row on a 5 s-per-face stream raise
an alarm). On the validation slice ``train_face.py`` keeps out of training (design the weights
there) and on FER+ PublicTest (report them there), classifier only, through edge's runtime. The
last line is one JSON object::

    python scripts/face_distress_weights.py [--model FILE] [--candidate NAME=LABEL:W,LABEL:W ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config import AlarmConfig, FusionConfig  # noqa: E402
from edge.fusion import distress_score  # noqa: E402
from edge.inference.face import FaceClassifier  # noqa: E402
from edge.labels import LABELS  # noqa: E402
from scripts.bench_faces import heldout_faces, validation_faces  # noqa: E402
from scripts.training import DEFAULT_DATA  # noqa: E402

DEFAULT_MODEL = ROOT / "models_tflite" / "face_expression_int8.tflite"
DEFAULT_CANDIDATES = ("sad1=sad:1.0", "disgust1=disgust:1.0", "sad1_disgust1=sad:1.0,disgust:1.0")


def parse_candidate(text: str) -> tuple[str, dict[str, float]]:
    """``NAME=LABEL:W,LABEL:W`` -> (NAME, {LABEL: W}); the labels replace the shared weights."""
    name, sep, body = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=LABEL:WEIGHT[,LABEL:WEIGHT]")
    own = {}
    for part in filter(None, body.split(",")):
        label, _, weight = part.partition(":")
        if label not in LABELS:
            raise argparse.ArgumentTypeError(f"{text!r}: unknown label {label!r}; use any of {', '.join(LABELS)}")
        try:
            own[label] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {weight!r} is not a number") from None
    return name, own


def shares_over(probs: dict[str, np.ndarray], weights: dict[str, float], threshold: float) -> dict[str, float]:
    """Per expression, the share of faces whose distress score reaches ``threshold``."""
    return {name: round(float(np.mean([distress_score(p, weights) >= threshold for p in ps])), 3)
            for name, ps in probs.items() if len(ps)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="face expression .tflite")
    p.add_argument("--candidate", type=parse_candidate, nargs="+",
                   default=[parse_candidate(c) for c in DEFAULT_CANDIDATES],
                   help="face weights laid over the shared distress_weights, NAME=LABEL:W,LABEL:W")
    args = p.parse_args(argv)
    fusion, threshold = FusionConfig(), AlarmConfig().on_threshold
    candidates = {"shared": dict(fusion.distress_weights), "shipped": fusion.weights_for("face")}
    candidates.update({name: {**fusion.distress_weights, **own} for name, own in args.candidate})
    clf = FaceClassifier(args.model)
    out: dict[str, dict] = {"on_threshold": threshold, "weights": candidates}
    for split, load in (("val", validation_faces), ("test", heldout_faces)):
        faces = load(args.data)
        probs = {name: np.asarray(clf.classify_batch(list(x))) if len(x) else np.zeros((0, len(LABELS)))
                 for name, x in faces.items()}
        out[split] = {c: shares_over(probs, w, threshold) for c, w in candidates.items()}
        print(f"{split}: share of faces with distress >= {threshold:g}")
        print("  " + " ".join(f"{n:>9s}" for n in ["weights", *LABELS]))
        for c, row in out[split].items():
            print("  " + f"{c[:9]:>9s} " + " ".join(f"{row[n]:9.2f}" for n in LABELS))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
