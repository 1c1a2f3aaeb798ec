"""Scenario benchmark of the camera path: 60-second videos of unseen faces of one expression through the real service.

Each stream shows one held-out face after another, 5 s each (FER-2013 PublicTest faces with their
FER+ majority label: faces no face model of ours trained on; ``--faces val``: the validation slice of
Training that ``train_face.py`` selects checkpoints on, for designing settings without touching the
faces they are reported on), placed in a camera frame the way
``scripts/evaluate.py face --roll`` places them (``scripts/face_conditions.place_in_frame``:
upscaled to 160 px in a 320x320 grey frame, rotated by the roll), with a little sensor noise. Each
expression is played upright and rolled 60 degrees. The video is played as a file camera, as fast
as possible on the service's media clock, into ``edge.service.Service`` with the camera only
(default config: face detector, eye alignment, expression model, fusion, alarm logic, event store,
GPIO on gpiozero's mock pins). Per stream it prints the alarms raised, their priority and the
seconds from the start to the first; the last line is one JSON object.

    python scripts/bench_faces.py [--data ../shared/data] [--seconds 60] [--rolls 0 60] [--only NAME ...] [--faces test|val] [--shuffles N]
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import config as config_mod  # noqa: E402
from edge.labels import LABELS, ferplus_majority  # noqa: E402
from scripts.face_conditions import place_in_frame  # noqa: E402
from scripts.scenario import arg_parser, check_shuffles, run_stream, stream_rng, summary  # noqa: E402

FPS = 15.0
FACE_S = 5.0
# expression, whether a nurse should be called
STREAMS: tuple[tuple[str, bool], ...] = (
    ("fear", True), ("sad", True), ("angry", True), ("disgust", True),
    ("happy", False), ("surprise", False), ("neutral", False),
)


def heldout_faces(data: Path) -> dict[str, np.ndarray]:
    """PublicTest faces (exact pixels, a clear FER+ majority) per expression name."""
    path = data / "fer2013" / "fer2013_trainval.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --data pointing at the shared data folder")
    with np.load(path) as d:
        majority, usable = ferplus_majority(d["ferplus_votes"])
        keep = d["pixels_exact"] & usable & (d["usage"] == 1)
        images = d["images"]
        return {name: images[keep & (majority == k)] for k, name in enumerate(LABELS)}


def validation_faces(data: Path) -> dict[str, np.ndarray]:
    """The validation slice of Training that ``train_face.py`` (seed 1) keeps out of training."""
    from scripts.train_face import load_face_data

    d = load_face_data(data, seed=1)
    return {name: d["val_x"][d["val_y"] == k] for k, name in enumerate(LABELS)}


def write_video(faces: np.ndarray, path: Path, seconds: float, roll: float, rng: np.random.Generator) -> int:
    """An mp4 of ``faces`` in a shuffled order, ``FACE_S`` each, rolled; returns the faces shown."""
    order = rng.permutation(len(faces))
    per_face, n_frames = int(FACE_S * FPS), int(seconds * FPS)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (320, 320))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4 video here (no mp4v encoder)")
    shown = 0
    try:
        for i in range(n_frames):
            if i % per_face == 0:
                frame = place_in_frame(faces[order[shown % len(order)]], roll)
                shown += 1
            noise = rng.normal(0.0, 2.0, frame.shape)
            writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return shown


def main(argv: list[str] | None = None) -> int:
    p = arg_parser(__doc__, seed=5, only_help="expressions to run (default: all seven)",
                   config_help="TOML config (its [alarm], [face] and [fusion] apply)")
    p.add_argument("--rolls", type=float, nargs="+", default=[0.0, 60.0], help="rolls in degrees")
    p.add_argument("--faces", choices=["test", "val"], default="test",
                   help="PublicTest (report) or train_face.py's validation slice (design settings on it)")
    args = p.parse_args(argv)
    check_shuffles(p, args)
    logging.basicConfig(level=logging.ERROR)
    base = config_mod.load(args.config)
    try:
        faces = heldout_faces(args.data) if args.faces == "test" else validation_faces(args.data)
    except (FileNotFoundError, SystemExit) as exc:   # load_face_data exits with its own "error: ..."
        print(str(exc) if str(exc).startswith("error:") else f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r, roll in enumerate(args.rolls):
            for i, (name, should_alarm) in enumerate(STREAMS):
                if args.only and name not in args.only:
                    continue
                for shuffle in range(args.shuffles):
                    rng = stream_rng(args.seed, r * len(STREAMS) + i, shuffle)
                    video = Path(tmp) / f"{len(rows)}.mp4"
                    shown = write_video(faces[name], video, args.seconds, roll, rng)
                    label = f"{name:9s} roll {roll:4.0f}" + (f" #{shuffle + 1}" if args.shuffles > 1 else "")
                    rows.append(run_stream(base, Path(tmp), name, label, should_alarm,
                                           video=video, roll=roll, faces=shown, shuffle=shuffle + 1,
                                           trace=args.trace is not None))
    print(summary(rows, args.seconds, args.seed, args.trace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
