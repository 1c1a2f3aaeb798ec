"""Scenario benchmark of the camera path: 60-second videos of unseen faces of one expression through the real service.

Each stream shows one held-out face after another, 5 s each (FER-2013 PublicTest faces with their
FER+ majority label: faces no face model of ours trained on), placed in a camera frame the way
``scripts/evaluate.py face --roll`` places them (``scripts/face_conditions.place_in_frame``:
upscaled to 160 px in a 320x320 grey frame, rotated by the roll), with a little sensor noise. Each
expression is played upright and rolled 60 degrees. The video is played as a file camera, as fast
as possible on the service's media clock, into ``edge.service.Service`` with the camera only
(default config: face detector, eye alignment, expression model, fusion, alarm logic, event store,
GPIO on gpiozero's mock pins). Per stream it prints the alarms raised, their priority and the
seconds from the start to the first; the last line is one JSON object.

    python scripts/bench_faces.py [--data ../shared/data] [--seconds 60] [--rolls 0 60] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import config as config_mod  # noqa: E402
from edge.labels import LABELS, ferplus_majority  # noqa: E402
from scripts.face_conditions import place_in_frame  # noqa: E402
from scripts.training import DEFAULT_DATA  # noqa: E402

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


async def play(video: Path, state_dir: Path, base: config_mod.Config) -> list[dict[str, Any]]:
    """Run the service on one video; every alarm event with the media second it happened at."""
    from edge.service import Service

    cfg = dataclasses.replace(
        base,
        service=dataclasses.replace(base.service, state_dir=str(state_dir)),
        camera=dataclasses.replace(base.camera, backend="file", file=str(video), realtime=False, loop=False),
        voice=dataclasses.replace(base.voice, enabled=False),
        microphone=dataclasses.replace(base.microphone, backend="none"),
        gpio=dataclasses.replace(base.gpio, pin_factory="mock"),
        web=dataclasses.replace(base.web, enabled=False),
        mqtt=dataclasses.replace(base.mqtt, enabled=False),
    )
    svc = Service(cfg, tasks=["store", "alarm", "gpio"], stop_when_sources_end=True)
    sub = svc.hub.events.subscribe(maxsize=1024, name="bench")
    seen: list[dict[str, Any]] = []

    async def collect() -> None:
        async for event in sub:
            seen.append({"t": round(svc.hub.clock(), 1), "kind": event.kind, "condition": event.condition,
                         "priority": event.priority})

    task = asyncio.create_task(collect())
    await svc.run()
    await asyncio.sleep(0)
    task.cancel()
    sub.close()
    return seen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rolls", type=float, nargs="+", default=[0.0, 60.0], help="rolls in degrees")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--only", nargs="*", help="expressions to run (default: all seven)")
    p.add_argument("--config", help="TOML config (its [alarm], [face] and [fusion] apply)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    base = config_mod.load(args.config)
    try:
        faces = heldout_faces(args.data)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for roll in args.rolls:
            for name, should_alarm in STREAMS:
                if args.only and name not in args.only:
                    continue
                rng = np.random.default_rng([args.seed, len(rows)])
                video = Path(tmp) / f"{len(rows)}.mp4"
                shown = write_video(faces[name], video, args.seconds, roll, rng)
                state = Path(tmp) / f"state{len(rows)}"
                state.mkdir()
                events = asyncio.run(play(video, state, base))
                raised = [e for e in events if e["kind"] == "raised"]
                escalated = [e for e in events if e["kind"] == "escalated"]
                first = raised[0]["t"] if raised else None
                ok = (first is not None and first <= 20.0) if should_alarm else not raised
                rows.append({"stream": name, "roll": roll, "expect_alarm": should_alarm, "faces": shown,
                             "alarms": len(raised), "conditions": sorted({e["condition"] for e in raised}),
                             "priority": max((e["priority"] for e in raised + escalated),
                                             key=["low", "medium", "high"].index, default=None),
                             "first_s": first, "ok": ok})
                r = rows[-1]
                print(f"{name:9s} roll {roll:4.0f} {'alarm' if should_alarm else 'quiet':5s} expected | "
                      f"alarms {r['alarms']} priority {r['priority'] or '-':6s} first "
                      f"{'-' if first is None else f'{first:.1f} s':8s} {'ok' if ok else 'WRONG'}", flush=True)
    print(json.dumps({"streams": rows, "ok": sum(r["ok"] for r in rows), "n": len(rows),
                      "seconds": args.seconds, "seed": args.seed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
