"""Design the distress alarm's slower rule on recorded streams: replays the fused distress score that
the alarm logic saw in scenario streams (``bench_faces.py --trace FILE``, ``bench_sounds.py --trace
FILE``) through the real :class:`edge.alarm.AlarmMachine` under a grid of ``[alarm]
persist_window_s`` x ``persist_threshold`` (every other setting as in ``--config``, default the
shipped one), with no service and no models: a grid of rules takes seconds.

A stream is right as in the benchmarks: an alarm within 20 s where one is expected, none where it
is not. An alarm of another condition that the stream raised when it was recorded (``vocal_distress``,
decided by the sound stage, which this rule does not touch) counts as it did then. Rules are ranked
by wrong streams, then by the distress streams' mean seconds to the first alarm; the table shows the
best rules, then the configured rule. The last line is one JSON object.

The replay feeds each recorded score at its state's time; the service's alarm task reads the
same states a moment later, so where a rule sits right at its threshold the two can differ (on
2026-12-01, one stream of 70: the service raised at 25.6 s what the replay raised at 18.1 s).
Design on streams the reported figures do not come from (``bench_faces.py --faces val``), then
check the chosen rule on the reported streams through the service itself.

    python scripts/tune_distress_rule.py TRACE.json [TRACE.json ...] [--windows 0 10 15 20 30]
        [--thresholds 0.3:0.6:0.05] [--config FILE] [--top 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import config as config_mod  # noqa: E402
from edge.alarm import DISTRESS, AlarmMachine  # noqa: E402
from edge.config import AlarmConfig  # noqa: E402
from scripts.cli import value_grid  # noqa: E402

IN_TIME_S = 20.0


def first_distress(trace: list[list[float]], alarm: AlarmConfig) -> float | None:
    """Seconds to the first distress alarm when ``trace`` ([second, score] per fused state) is fed
    to a fresh alarm machine with ``alarm``; None when it raises none."""
    clock = [trace[0][0] if trace else 0.0]
    machine = AlarmMachine(alarm, clock=lambda: clock[0], wall_clock=lambda: 1.7e9 + clock[0])
    for t, score in trace:
        clock[0] = t
        if any(e.kind == "raised" and e.condition == DISTRESS for e in machine.update(score, now=t)):
            return t
    return None


def judge(stream: dict[str, Any], alarm: AlarmConfig) -> tuple[bool, float | None]:
    """(right?, seconds to the first alarm of any condition) for one recorded stream under ``alarm``."""
    others = [e["t"] for e in stream.get("raised", []) if e["condition"] != DISTRESS]
    firsts = [t for t in [first_distress(stream["trace"], alarm), *others] if t is not None]
    first = min(firsts) if firsts else None
    ok = (first is not None and first <= IN_TIME_S) if stream["expect_alarm"] else first is None
    return ok, first


def score_rule(streams: list[dict[str, Any]], alarm: AlarmConfig) -> dict[str, Any]:
    """Wrong streams (false alarms, late or missed ones) per kind, and mean seconds to alarm."""
    false, late, times = Counter(), Counter(), []
    for s in streams:
        ok, first = judge(s, alarm)
        if s["expect_alarm"]:
            times.append(IN_TIME_S * 3 if first is None else first)
            if not ok:
                late[s["stream"]] += 1
        elif not ok:
            false[s["stream"]] += 1
    return {"persist_window_s": alarm.persist_window_s, "persist_threshold": alarm.persist_threshold,
            "wrong": sum(false.values()) + sum(late.values()), "false": dict(false), "late": dict(late),
            "mean_first_s": round(statistics.fmean(times), 1) if times else None}


def load_streams(paths: list[Path]) -> list[dict[str, Any]]:
    streams = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
            rows = data["streams"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"error: {path}: not a trace file ({exc}); make one with "
                             "bench_faces.py --trace FILE or bench_sounds.py --trace FILE") from None
        missing = [r.get("stream") for r in rows if "trace" not in r]
        if missing:
            raise SystemExit(f"error: {path}: streams without a trace ({missing[:3]}); rerun with --trace")
        streams += rows
    return streams


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("traces", type=Path, nargs="+")
    p.add_argument("--windows", type=float, nargs="+", default=[0.0, 10.0, 15.0, 20.0, 30.0],
                   help="persist_window_s values (0 = the slower rule off)")
    p.add_argument("--thresholds", type=value_grid, default="0.3:0.6:0.05", help="persist_threshold values, start:stop:step")
    p.add_argument("--config", help="TOML config whose [alarm] section is the base (default: shipped)")
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args(argv)
    streams = load_streams(args.traces)
    base = config_mod.load(args.config).alarm
    results = []
    for window in sorted(set(args.windows)):
        for threshold in (args.thresholds if window > 0 else [base.persist_threshold]):
            alarm = dataclasses.replace(base, persist_window_s=window, persist_threshold=threshold)
            results.append(score_rule(streams, alarm))
    results.sort(key=lambda r: (r["wrong"], r["mean_first_s"] or 0.0))
    configured = score_rule(streams, base)
    print(f"{len(streams)} streams ({sum(s['expect_alarm'] for s in streams)} expect an alarm)")
    print(f"{'window s':>8s} {'mean >=':>7s} {'wrong':>5s} {'mean first s':>12s}  false alarms / late")
    for r in results[:args.top] + [{**configured, "configured": True}]:
        tag = "  (configured)" if r.get("configured") else ""
        print(f"{r['persist_window_s']:8.0f} {r['persist_threshold']:7.2f} {r['wrong']:5d} "
              f"{r['mean_first_s']!s:>12s}  {r['false'] or '-'} / {r['late'] or '-'}{tag}")
    print(json.dumps({"n": len(streams), "best": results[0], "configured": configured, "rules": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
