"""The scenario benchmarks' shared part: play one media file through the real service (only that
source, default alarm logic, event store, GPIO on gpiozero's mock pins, as fast as possible on the
media clock) and turn the alarm events it raised into one result row."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from edge import config as config_mod
from scripts.training import DEFAULT_DATA

PRIORITIES = ["low", "medium", "high"]


async def play(base: config_mod.Config, state_dir: Path, *, video: Path | None = None,
               audio: Path | None = None, trace: list[list[float]] | None = None) -> list[dict[str, Any]]:
    """Run the service on ``video`` (camera only) or ``audio`` (microphone only); every alarm event
    with the media second it happened at. ``trace``, when given, gets ``[second, distress score]``
    of every fused state (what the alarm logic saw: ``scripts/tune_distress_rule.py`` replays it)."""
    from edge.service import Service

    camera = (dataclasses.replace(base.camera, backend="file", file=str(video), realtime=False, loop=False)
              if video else dataclasses.replace(base.camera, backend="none"))
    microphone = (dataclasses.replace(base.microphone, backend="file", file=str(audio), realtime=False, loop=False)
                  if audio else dataclasses.replace(base.microphone, backend="none"))
    cfg = dataclasses.replace(
        base,
        service=dataclasses.replace(base.service, state_dir=str(state_dir)),
        camera=camera, microphone=microphone,
        face=dataclasses.replace(base.face, enabled=video is not None),
        voice=dataclasses.replace(base.voice, enabled=audio is not None),
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

    def note(state: Any) -> None:
        assert trace is not None
        trace.append([round(state.t, 3), round(state.distress, 4)])

    async def record(states: Any) -> None:
        async for state in states:
            note(state)

    states = svc.hub.states.subscribe(maxsize=1 << 20, name="trace") if trace is not None else None
    tasks = [asyncio.create_task(collect())] + ([asyncio.create_task(record(states))] if states else [])
    await svc.run()
    await asyncio.sleep(0)
    for task in tasks:
        task.cancel()
    sub.close()
    if states is not None:
        while states.pending():   # states published after the recorder's last turn
            note(states.get_nowait())
        states.close()
    return seen


def result_row(name: str, events: list[dict[str, Any]], should_alarm: bool, **extra: Any) -> dict[str, Any]:
    """One stream's row: alarms raised, their conditions, the highest priority reached, seconds to
    the first, and whether that is right (an alarm within 20 s, or none)."""
    raised = [e for e in events if e["kind"] == "raised"]
    escalated = [e for e in events if e["kind"] == "escalated"]
    first = raised[0]["t"] if raised else None
    ok = (first is not None and first <= 20.0) if should_alarm else not raised
    return {"stream": name, **extra, "expect_alarm": should_alarm, "alarms": len(raised),
            "conditions": sorted({e["condition"] for e in raised}),
            "priority": max((e["priority"] for e in raised + escalated), key=PRIORITIES.index, default=None),
            "first_s": first, "ok": ok}


def describe(row: dict[str, Any]) -> str:
    """The row as one line of the printed table (after the stream's own label)."""
    first = row["first_s"]
    return (f"{'alarm' if row['expect_alarm'] else 'quiet':5s} expected | alarms {row['alarms']} "
            f"{','.join(row['conditions']) or '-':16s} priority {row['priority'] or '-':6s} first "
            f"{'-' if first is None else f'{first:.1f} s':8s} {'ok' if row['ok'] else 'WRONG'}")


def run_stream(base: config_mod.Config, work: Path, name: str, label: str, should_alarm: bool, *,
               video: Path | None = None, audio: Path | None = None, trace: bool = False,
               **extra: Any) -> dict[str, Any]:
    """Play one stream in a fresh state folder under ``work``; print its line; return its row (with
    ``trace``: the distress score of every fused state under the row's ``trace``)."""
    media = video or audio
    assert media is not None
    state = work / f"state-{media.stem}"
    state.mkdir()
    scores: list[list[float]] | None = [] if trace else None
    events = asyncio.run(play(base, state, video=video, audio=audio, trace=scores))
    row = result_row(name, events, should_alarm, **extra)
    if scores is not None:
        row["trace"], row["raised"] = scores, [e for e in events if e["kind"] == "raised"]
    print(f"{label} {describe(row)}", flush=True)
    return row


def summary(rows: list[dict[str, Any]], seconds: float, seed: int, trace: Path | None = None) -> str:
    """The last line of a scenario benchmark: one JSON object. With ``trace``, the rows with their
    score traces are written there as JSON (and left out of the line)."""
    if trace is not None:
        trace.write_text(json.dumps({"streams": rows, "seconds": seconds, "seed": seed}))
    rows = [{k: v for k, v in r.items() if k not in ("trace", "raised")} for r in rows]
    return json.dumps({"streams": rows, "ok": sum(r["ok"] for r in rows), "n": len(rows),
                       "seconds": seconds, "seed": seed})


def arg_parser(doc: str, *, seed: int, only_help: str, config_help: str) -> argparse.ArgumentParser:
    """The options every scenario benchmark takes: --data, --seconds, --seed, --only, --config, --shuffles."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--only", nargs="*", help=only_help)
    p.add_argument("--config", help=config_help)
    p.add_argument("--shuffles", type=int, default=1,
                   help="streams of each kind, each a different shuffle of its clips or faces (the first is the default run's)")
    p.add_argument("--trace", type=Path,
                   help="write every stream's distress score over time to this JSON file (for scripts/tune_distress_rule.py)")
    return p


def check_shuffles(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.shuffles < 1:
        p.error("--shuffles must be at least 1")


def stream_rng(seed: int, index: int, shuffle: int, part: int | None = None) -> np.random.Generator:
    """The shuffle of one stream: from its kind's place in the benchmark's list (not in this run, so
    ``--only`` replays the same streams), the shuffle number (0 = the default run's) and, for a kind
    played once per speaker, the speaker's number."""
    if part is not None:
        return np.random.default_rng([seed, index, shuffle, part])
    return np.random.default_rng([seed, index] + ([shuffle] if shuffle else []))
