"""Design the vocal-distress alarm rule from validation speakers: a grid over ``[vocal_distress]``.

Builds the scenario streams of ``scripts/bench_sounds.py`` (clips of one kind from speakers the sound
model never trained on), several shuffles of each, runs them once through the service's voice stage
(``edge.stages.load_voice_stage``, 100 ms blocks) and keeps every half-second's sound
probabilities. Then it replays those on a simulated clock into ``VocalDistressTracker`` for each
candidate (flag_threshold, scream_s, distress_s, window_s) and reports, per candidate, the distress
streams that raise it within 20 s, the worst time to raise, and the non-distress streams that raise it
at all. The last line is one JSON object with the grid, sorted best first: no false alarm, then most
distress streams in time, then the quickest worst case.

    python scripts/tune_vocal_distress.py [--data ../shared/data] [--shuffles 4] [--seconds 60] [--sound-model PATH]
                                          [--background music band talk [--snr 10]]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.config import Config, VocalDistressConfig  # noqa: E402
from edge.vocal_distress import VocalDistressTracker  # noqa: E402
from scripts.bench_sounds import BACKGROUNDS, STREAMS, build_stream, talk_pool, under_background  # noqa: E402
from scripts.sound_data import index_clips, is_val  # noqa: E402
from scripts.training import DEFAULT_DATA  # noqa: E402

VOCAL_STREAMS = [(n, s, a) for n, s, a in STREAMS if not n.endswith("speech")]   # speech alarms via emotion
GRID = {
    "flag_threshold": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9),
    "scream_s": (1.5, 2.0, 3.0),
    "distress_s": (2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0),
    "window_s": (20.0, 30.0),
}


def hop_sounds(stage, pcm: np.ndarray) -> list[tuple[float, np.ndarray | None]]:
    """(t, probabilities or None) for every hop of one stream through a fresh voice stage."""
    return [(t, None if detail["sound"] is None else np.asarray(detail["sound"]))
            for _, t, detail in stage.feed_clip(pcm)]


def background_of(stream: str) -> str:
    """``clean``, or the background a stream was played over (``"laughing over music"``)."""
    return stream.rsplit(" over ", 1)[1] if " over " in stream else "clean"


def first_raise(hops: list[tuple[float, np.ndarray | None]], cfg: VocalDistressConfig) -> float | None:
    clock = [0.0]
    tracker = VocalDistressTracker(cfg, clock=lambda: clock[0])
    for t, probs in hops:
        clock[0] = t
        if probs is None:
            tracker.observe_quiet(t)
        else:
            tracker.observe(probs, t)
        if tracker.present:
            return t
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--shuffles", type=int, default=4, help="streams per kind, each a different order and level")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--top", type=int, default=12, help="candidates printed")
    p.add_argument("--sound-model", type=Path, help="sound-event .tflite to judge (default: the shipped one)")
    p.add_argument("--background", nargs="+", choices=BACKGROUNDS, default=[],
                   help="also judge every stream over this steady background (clean streams always count)")
    p.add_argument("--snr", type=float, default=10.0, help="with --background: its level, dB below the stream's")
    args = p.parse_args(argv)
    from edge.stages import load_voice_stage

    try:
        clips = [c for c in index_clips(args.data) if is_val(c)]
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = Config()
    if args.sound_model:
        cfg = dataclasses.replace(cfg, voice=dataclasses.replace(cfg.voice, sound_model=str(args.sound_model.resolve())))
    stage = load_voice_stage(cfg)
    talk = talk_pool(clips) if "talk" in args.background else []
    streams = []   # (name, should_alarm, hops)
    for k, (name, sources, should) in enumerate(VOCAL_STREAMS):
        paths = [c.path for c in clips if c.source in sources]
        if sources and not paths:
            continue
        for s in range(args.shuffles):
            x = build_stream(paths, args.seconds, np.random.default_rng([100 + s, k]))
            streams.append((name, should, hop_sounds(stage, x)))
            for b, kind in enumerate(args.background, start=1):
                rng = np.random.default_rng([100 + s, k, b])
                y = under_background(build_stream(paths, args.seconds, rng), kind, args.snr, talk, rng)
                streams.append((f"{name} over {kind}", should, hop_sounds(stage, y)))
    results = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values, strict=True))
        if params["scream_s"] > params["distress_s"]:
            continue
        cfg = dataclasses.replace(VocalDistressConfig(), **params)
        times = [(name, should, first_raise(hops, cfg)) for name, should, hops in streams]
        late = [n for n, s, t in times if s and (t is None or t > 20.0)]
        false = [n for n, s, t in times if not s and t is not None]
        worst = max((t for _, s, t in times if s and t is not None), default=None)
        by_bg = {c: {"false": sum(background_of(n) == c for n in false), "late": sum(background_of(n) == c for n in late)}
                 for c in ["clean", *args.background]}
        results.append({**params, "false_alarms": len(false), "false_streams": sorted(set(false)),
                        "by_background": by_bg, "late_or_missed": len(late), "late_streams": sorted(set(late)), "worst_s": worst,
                        "n_alarm_streams": sum(s for _, s, _ in times), "n_quiet_streams": sum(not s for _, s, _ in times)})
    results.sort(key=lambda r: (r["false_alarms"] + r["late_or_missed"], r["false_alarms"], r["worst_s"] or 1e9))
    for r in results[:args.top]:
        print(f"flag {r['flag_threshold']:.2f} scream {r['scream_s']:.1f} s distress {r['distress_s']:.1f} s "
              f"window {r['window_s']:.0f} s | false {r['false_alarms']}/{r['n_quiet_streams']} "
              f"{','.join(r['false_streams'])} | late {r['late_or_missed']}/{r['n_alarm_streams']} "
              f"{','.join(r['late_streams'])} | worst {r['worst_s']}"
              + ("".join(f" | {c}: false {v['false']} late {v['late']}" for c, v in r["by_background"].items())
                 if args.background else ""))
    print(json.dumps({"shuffles": args.shuffles, "seconds": args.seconds, "background": args.background,
                      "snr_db": args.snr if args.background else None, "grid": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
