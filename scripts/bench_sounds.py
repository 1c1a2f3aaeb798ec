"""Scenario benchmark of the voice path: 60-second streams of one kind of sound through the real service.

Each stream is built from validation speakers only (``scripts/sound_data.py``: speakers the sound
model never trained on; RAVDESS actors 17-20), clips of one kind one after another with 0.2-1 s of
quiet room sound between them, over a faint room-noise floor. It is played as a file microphone,
as fast as possible on the service's media clock, into ``edge.service.Service`` with the voice
stage only (default config: sound-event model, speech-emotion model, fusion, alarm logic, event
store, GPIO on gpiozero's mock pins). Per stream it prints the alarms raised, their condition and
priority, and the seconds from the stream's start to the first; the last line is one JSON object.

    python scripts/bench_sounds.py [--data ../shared/data] [--seconds 60] [--only NAME ...] [--config FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import config as config_mod  # noqa: E402
from scripts.sound_data import SR, index_clips, is_val, load_audio, synth_background  # noqa: E402
from scripts.training import DEFAULT_DATA  # noqa: E402

# name, clip sources (sound_data Clip.source), whether a nurse should be called
STREAMS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("screaming", ("deeply/screaming",), True),
    ("crying", ("deeply/crying",), True),
    ("moaning", ("deeply/moaning",), True),
    ("pain bursts", ("emogator/Pain",), True),
    ("distress bursts", ("emogator/Distress",), True),
    ("fearful speech", ("ravdess/fearful",), True),
    ("sad speech", ("ravdess/sad",), True),
    ("angry speech", ("ravdess/angry",), True),
    ("laughing", ("deeply/laughing",), False),
    ("coughing", ("deeply/coughing",), False),
    ("sneezing", ("deeply/sneezing",), False),
    ("sighing", ("deeply/sighing",), False),
    ("yawning", ("deeply/yawning",), False),
    ("throat clearing", ("deeply/throat-clearing",), False),
    ("lip smacking", ("deeply/lip-smacking",), False),
    ("nose blowing", ("deeply/nose-blowing",), False),
    ("amused bursts", ("emogator/Amusement",), False),
    ("relieved bursts", ("emogator/Relief",), False),
    ("contented bursts", ("emogator/Contentment",), False),
    ("calm speech", ("ravdess/calm",), False),
    ("happy speech", ("ravdess/happy",), False),
    ("room sound", (), False),
)


def build_stream(paths: list[Path], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Clips in a shuffled cycle with quiet gaps until ``seconds``; room sound alone when no clips."""
    n = int(seconds * SR)
    floor = rng.standard_normal(n).astype(np.float32) * 10 ** (-62 / 20)     # the microphone's own hiss
    if not paths:
        parts, total = [], 0
        for kind in ("music", "beeps", "fan", "clicks", "hum", "silence"):
            x = synth_background(n // 6, rng, kind)
            parts.append(x)
            total += len(x)
        return (np.concatenate(parts + [np.zeros(n - total, np.float32)]) + floor).astype(np.float32)
    out, pos, order = np.zeros(n, np.float32), int(0.5 * SR), []
    while pos < n:
        if not order:
            order = list(rng.permutation(len(paths)))
        x = load_audio(paths[order.pop()])
        x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(-12, -3) / 20)
        m = min(len(x), n - pos)
        out[pos:pos + m] += x[:m]
        pos += m + int(rng.uniform(0.2, 1.0) * SR)
    return (out + floor).astype(np.float32)


async def play(wav: Path, state_dir: Path, base: config_mod.Config) -> list[dict[str, Any]]:
    """Run the service on one stream; every alarm event with the media second it happened at."""
    import dataclasses

    from edge.service import Service

    cfg = dataclasses.replace(
        base,
        service=dataclasses.replace(base.service, state_dir=str(state_dir)),
        camera=dataclasses.replace(base.camera, backend="none"),
        face=dataclasses.replace(base.face, enabled=False),
        microphone=dataclasses.replace(base.microphone, backend="file", file=str(wav), realtime=False, loop=False),
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
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--only", nargs="*", help="stream names to run (default: all)")
    p.add_argument("--config", help="TOML config (its [alarm], [vocal_distress], [voice] and [fusion] apply)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    base = config_mod.load(args.config)
    try:
        clips = [c for c in index_clips(args.data) if is_val(c)]
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sources, should_alarm in STREAMS:
            if args.only and name not in args.only:
                continue
            paths = [c.path for c in clips if c.source in sources]
            if sources and not paths:
                print(f"{name}: no validation clips, skipped")
                continue
            rng = np.random.default_rng([args.seed, len(rows)])
            wav = Path(tmp) / f"{len(rows)}.wav"
            sf.write(str(wav), build_stream(paths, args.seconds, rng), SR)
            state = Path(tmp) / f"state{len(rows)}"
            state.mkdir()
            events = asyncio.run(play(wav, state, base))
            raised = [e for e in events if e["kind"] == "raised"]
            escalated = [e for e in events if e["kind"] == "escalated"]
            first = raised[0]["t"] if raised else None
            ok = (first is not None and first <= 20.0) if should_alarm else not raised
            rows.append({"stream": name, "expect_alarm": should_alarm, "clips": len(paths), "alarms": len(raised),
                         "conditions": sorted({e["condition"] for e in raised}),
                         "priority": max((e["priority"] for e in raised + escalated),
                                         key=["low", "medium", "high"].index, default=None),
                         "first_s": first, "ok": ok})
            r = rows[-1]
            print(f"{name:18s} {'alarm' if should_alarm else 'quiet':5s} expected | alarms {r['alarms']} "
                  f"{','.join(r['conditions']) or '-':28s} priority {r['priority'] or '-':6s} first "
                  f"{'-' if first is None else f'{first:.1f} s':8s} {'ok' if ok else 'WRONG'}", flush=True)
    print(json.dumps({"streams": rows, "ok": sum(r["ok"] for r in rows), "n": len(rows),
                      "seconds": args.seconds, "seed": args.seed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
