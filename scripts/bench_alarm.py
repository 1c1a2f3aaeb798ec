"""Benchmark of alarm quality: drives the real edge.alarm.AlarmMachine with scripted distress-score
streams on a simulated clock (no sleeping; hours run in about a second).

Streams are raw per-frame distress values at 5 Hz passed through the fusion stage's exponential
smoothing ([fusion] smoothing_s, 2 s), as the machine sees them in the service:

- sustained: calm, then distress (raw 0.7..0.95) for 3..8 minutes with noise, slow waves and two
  short lulls; a nurse acknowledges 20..90 s after the alarm sounds (again after each re-sound), or
  every third episode only after the episode ended (the alarm latched);
- spikes: calm with brief distress spikes (0.5..4 s, raw up to 1.0) every 20..90 s;
- flicker: the raw score flickering around on_threshold (+-0.1, 1..3 s half-periods);
- calm: hours of calm with noise (base wandering 0.05..0.3).

The last line printed is one JSON object: time_to_alarm_s (worst sustained episode, from the start
of distress to the alarm), false_alarms_per_hour (spikes, flicker and calm together),
alarms_per_episode (distress alarms raised per sustained episode), and details.

    python scripts/bench_alarm.py [--seed N] [--calm-hours H] [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import config as config_mod  # noqa: E402
from edge.alarm import AlarmMachine  # noqa: E402
from edge.config import AlarmConfig  # noqa: E402
from edge.events import AlarmEvent  # noqa: E402

DT = 0.2   # 5 fused states per second


class SimClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def calm_raw(rng: random.Random) -> Iterator[float]:
    """Endless calm: a base wandering in 0.05..0.3 plus per-frame noise."""
    base = 0.15
    while True:
        base = min(0.3, max(0.05, base + rng.gauss(0, 0.01)))
        yield min(1.0, max(0.0, base + rng.gauss(0, 0.12)))


class Sim:
    """One machine on a simulated clock, fed smoothed scores; records every event with its time."""

    def __init__(self, cfg: AlarmConfig, smoothing_s: float):
        self.cfg = cfg
        self.clock = SimClock()
        self.machine = AlarmMachine(cfg, self.clock)
        self.alpha = 1.0 - math.exp(-DT / smoothing_s) if smoothing_s > 0 else 1.0
        self.smoothed = 0.15
        self.events: list[tuple[float, AlarmEvent]] = []

    def step(self, raw: float) -> None:
        self.clock.t += DT
        self.smoothed += self.alpha * (raw - self.smoothed)
        for e in self.machine.update(self.smoothed, self.clock.t):
            self.events.append((self.clock.t, e))

    def run(self, seconds: float, raw: Callable[[float], float]) -> None:
        start = self.clock.t
        for i in range(int(round(seconds / DT))):
            self.step(raw(i * DT))
        self.clock.t = start + round(seconds / DT) * DT

    def ack(self, by: str = "bench") -> None:
        for e in self.machine.acknowledge(by, False, self.clock.t):
            self.events.append((self.clock.t, e))

    def raised(self, since: float = 0.0) -> list[float]:
        return [t for t, e in self.events if e.kind == "raised" and e.condition == "distress" and t >= since]


def bench_sustained(cfg: AlarmConfig, smoothing_s: float, rng: random.Random, episodes: int) -> dict:
    sim = Sim(cfg, smoothing_s)
    calm = calm_raw(rng)
    ttas: list[float] = []
    per_episode: list[int] = []
    for n in range(episodes):
        sim.run(15 * 60, lambda _t: next(calm))          # well apart: no re-alarm interval or cap effects
        level = rng.uniform(0.7, 0.95)
        length = rng.uniform(180, 480)
        lulls = sorted(rng.uniform(60, length - 30) for _ in range(2))
        wave_p = rng.uniform(20, 60)
        late_ack = n % 3 == 2                            # every third: acknowledged only after it passed

        def raw(t: float, level: float = level, lulls: list[float] = lulls, wave_p: float = wave_p) -> float:
            if any(lu <= t < lu + 6.0 for lu in lulls):   # patient settles for 6 s (< t_off_s)
                return min(1.0, max(0.0, 0.25 + rng.gauss(0, 0.08)))
            wave = 0.08 * math.sin(2 * math.pi * t / wave_p)
            return min(1.0, max(0.0, level + wave + rng.gauss(0, 0.12)))

        onset = sim.clock.t
        t = 0.0
        sounding_since: float | None = None   # the nurse answers each sounding alarm after a delay
        ack_after = rng.uniform(20, 90)
        while t < length:
            sim.step(raw(t))
            t += DT
            if late_ack or not sim.machine.signal(sim.clock.t).audio:
                sounding_since = None
                continue
            sounding_since = sim.clock.t if sounding_since is None else sounding_since
            if sim.clock.t - sounding_since >= ack_after:
                sim.ack("nurse")
                ack_after = rng.uniform(20, 90)
        sim.run(120, lambda _t: next(calm))
        if sim.machine.active:
            sim.ack("nurse")   # a latched alarm: the nurse comes and sees it
        sim.run(60, lambda _t: next(calm))
        raised = sim.raised(onset)
        per_episode.append(len(raised))
        if raised:
            ttas.append(raised[0] - onset)
        if sim.machine.active:
            per_episode[-1] += 100   # an alarm that never cleared is a failure, make it visible
    return {
        "episodes": episodes,
        "time_to_alarm_s": round(max(ttas), 2) if len(ttas) == episodes else None,
        "time_to_alarm_median_s": round(statistics.median(ttas), 2) if ttas else None,
        "alarms_per_episode": round(sum(per_episode) / episodes, 3),
        "escalations": sum(1 for _, e in sim.events if e.kind == "escalated"),
        "resounds": sum(1 for _, e in sim.events if e.kind == "resounded"),
    }


def bench_false(cfg: AlarmConfig, smoothing_s: float, rng: random.Random, hours: dict[str, float]) -> dict:
    out: dict[str, dict[str, float]] = {}
    for name, h in hours.items():
        sim = Sim(cfg, smoothing_s)
        calm = calm_raw(rng)
        seconds = h * 3600
        if name == "spikes":
            t = 0.0
            while t < seconds:
                gap = rng.uniform(20, 90)
                sim.run(gap, lambda _t, calm=calm: next(calm))
                width, peak = rng.uniform(0.5, 4.0), rng.uniform(0.6, 1.0)
                sim.run(width, lambda _t, peak=peak: min(1.0, peak + rng.gauss(0, 0.05)))
                t += gap + width
        elif name == "flicker":
            thr = cfg.on_threshold
            t = 0.0
            while t < seconds:
                half = rng.uniform(1.0, 3.0)
                sim.run(half, lambda _t, thr=thr: min(1.0, thr + 0.1 + rng.gauss(0, 0.03)))
                sim.run(half, lambda _t, thr=thr: max(0.0, thr - 0.1 + rng.gauss(0, 0.03)))
                t += 2 * half
        else:
            sim.run(seconds, lambda _t, calm=calm: next(calm))
        out[name] = {"hours": h, "false_alarms": len(sim.raised())}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--episodes", type=int, default=12)
    p.add_argument("--calm-hours", type=float, default=8.0)
    p.add_argument("--config", help="TOML config whose [alarm] and [fusion] sections are used")
    args = p.parse_args(argv)
    cfg = config_mod.load(args.config)
    rng = random.Random(args.seed)
    smoothing = cfg.fusion.smoothing_s
    sustained = bench_sustained(cfg.alarm, smoothing, rng, args.episodes)
    false = bench_false(cfg.alarm, smoothing, rng, {"spikes": 2.0, "flicker": 2.0, "calm": args.calm_hours})
    hours = sum(v["hours"] for v in false.values())
    false_total = sum(v["false_alarms"] for v in false.values())
    for name, v in false.items():
        print(f"{name:8s} {v['hours']:5.1f} h  false alarms {v['false_alarms']}")
    print(f"sustained {sustained['episodes']} episodes: time to alarm worst {sustained['time_to_alarm_s']} s, "
          f"median {sustained['time_to_alarm_median_s']} s; alarms/episode {sustained['alarms_per_episode']}")
    result = {
        "time_to_alarm_s": sustained["time_to_alarm_s"],
        "time_to_alarm_median_s": sustained["time_to_alarm_median_s"],
        "false_alarms_per_hour": round(false_total / hours, 4),
        "alarms_per_episode": sustained["alarms_per_episode"],
        "episodes": sustained["episodes"],
        "escalations": sustained["escalations"],
        "resounds": sustained["resounds"],
        "false_alarm_hours": hours,
        "false_alarms": {k: v["false_alarms"] for k, v in false.items()},
        "config": {k: getattr(cfg.alarm, k) for k in ("on_threshold", "off_threshold", "t_on_s", "t_off_s",
                                                    "persist_window_s", "persist_threshold", "latching")},
        "smoothing_s": smoothing,
        "seed": args.seed,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
