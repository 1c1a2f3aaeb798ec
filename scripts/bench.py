#!/usr/bin/env python3
"""Benchmarks. Run under ``taskset -c 0`` to measure one core.

``python scripts/bench.py pipeline --seconds 20``: the whole service pipeline (capture threads,
face and voice stages, fusion, state publication, alarm logic and event store) on file sources
played as fast as possible; ``--paced`` plays them like a live 15 fps camera and a live mic. The
last line printed is one JSON object: fps (analysed frames/s), face_ms_p50, face_ms_p95,
voice_ms_per_audio_s, cpu_percent (of one core), rss_mb, rss_peak_mb, startup_s, ...
``--no-align`` runs the face stage as it was before eye alignment (one detector call a frame,
unrotated crop), for a side-by-side run.

``python scripts/bench.py voice [--data ../shared/data] [--rounds 3]``: the cost of the voice path
per second of audio, today's (webrtcvad decides what is speech) against the sound-event gate's
(webrtcvad, sound model, speech model on what it calls speech), alternating in one process on the
same audio: 60 s of held-out RAVDESS speech (actors 17-20) and 60 s of held-out non-verbal vocal
sounds (Deeply and EmoGator validation speakers). The last line is one JSON object with both
figures per stream and their ratios.

``python scripts/bench.py face [--model NAME=PATH ...]``: ms per face of facial-expression models,
side by side in one process (alternating rounds, batch 1, one interpreter thread, the median of the
rounds): the shipped model, the peer model in ``../shared/peers/`` when present (float32, 8 FER+
logits: never shipped, measured here only) and each ``--model NAME=PATH`` (e.g. an earlier model,
or a float export to see the speed without int8 dot-product instructions).
Int8 speed depends on the CPU's dot-product instructions, so only the ratios in one run count.

``python scripts/bench.py roll-search``: detector calls per frame of the face stage's orientation
memory (``RollSearch``) against searching every frame afresh, on the demo video, the demo video
rolled 90 degrees and an empty room (counts, the same on any machine).

``python scripts/bench.py web ...``: the status server benchmark (scripts/bench_web.py).
"""

from __future__ import annotations

import time

T_START = time.monotonic()  # startup_s counts imports too

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    pipe = sub.add_parser("pipeline", help="the capture -> inference -> fusion pipeline on file sources")
    pipe.add_argument("--seconds", type=float, default=20.0, help="measured run time after startup")
    pipe.add_argument("--paced", action="store_true", help="play like a live camera (--fps) and a live mic")
    pipe.add_argument("--fps", type=float, default=15.0, help="camera fps when --paced")
    pipe.add_argument("--analysis-fps", type=float, default=None,
                      help="face analyses per second (default: 120 = every frame; --paced: --fps)")
    pipe.add_argument("--video", help="video file (default: the demo video)")
    pipe.add_argument("--one-face", action="store_true",
                      help="use a generated video with one face in every frame instead of the demo video")
    pipe.add_argument("--audio", help="WAV/FLAC file (default: the demo speech)")
    pipe.add_argument("--config", help="TOML config (models_dir, face/voice model names, threads ...)")
    pipe.add_argument("--face-model", help="face expression .tflite (default: from the config)")
    pipe.add_argument("--voice-model", help="voice emotion .tflite (default: from the config)")
    pipe.add_argument("--no-align", action="store_true",
                      help="the face stage before eye alignment (one detector call a frame, unrotated crop)")
    pipe.add_argument("--warmup", type=float, default=2.0, help="seconds excluded from the measurement")
    pipe.add_argument("--outputs", default="alarm,store", help="outputs to run alongside (comma list)")
    pipe.add_argument("--profile", help="write a cProfile dump of the run to this file")
    web = sub.add_parser("web", help="status server benchmark (scripts/bench_web.py)", add_help=False)
    web.add_argument("rest", nargs=argparse.REMAINDER)
    return p.parse_args(argv)


async def bench_pipeline(args: argparse.Namespace) -> dict[str, float | str | None]:
    from edge import config
    from edge.demo import find_demo_media
    from edge.service import Service

    base = config.load(args.config)
    video, audio = (Path(args.video), Path(args.audio)) if args.video and args.audio else find_demo_media()
    video, audio = Path(args.video or video), Path(args.audio or audio)
    if args.one_face:  # made in a child process: its imports (scikit-image) must not count in rss_mb
        video = Path(tempfile.mkdtemp(prefix="medtrack-bench-")) / "one_face.mp4"
        subprocess.run([sys.executable, "-c", "import sys; from scripts.make_demo_media import write_face_video; "
                        "write_face_video(__import__('pathlib').Path(sys.argv[1]))", str(video)],
                       check=True, cwd=ROOT)
    state_dir = tempfile.mkdtemp(prefix="medtrack-bench-")
    analysis = args.analysis_fps or (args.fps if args.paced else 120.0)
    face = {"analysis_fps": min(120.0, analysis)}
    if args.face_model:
        face["model"] = str(Path(args.face_model).resolve())
    voice = {"model": str(Path(args.voice_model).resolve())} if args.voice_model else {}
    cfg = config.replace(
        base, service={"state_dir": state_dir, "log_level": "WARNING"}, face=face, voice=voice,
        camera={"backend": "file", "file": str(video), "realtime": args.paced, "loop": True},
        microphone={"backend": "file", "file": str(audio), "realtime": args.paced, "loop": True},
        gpio={"pin_factory": "mock"}, web={"enabled": False}, mqtt={"enabled": False},
    )
    outputs = [o for o in args.outputs.split(",") if o]
    extra = {}
    if args.no_align:
        from edge.stages import load_face_stage

        extra["face_stage"] = load_face_stage(cfg, align=False)
    svc = Service(cfg, tasks=outputs, pace_fps=args.fps if args.paced else None, analysis_fps=analysis, **extra)
    sub = svc.hub.states.subscribe(maxsize=1)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.wait_for(sub.get(), 60)
    startup_s = time.monotonic() - T_START
    await asyncio.sleep(args.warmup)
    pipe = svc.pipeline
    assert pipe is not None
    frames0, t0, c0 = pipe.frames_analysed, time.monotonic(), cpu_s()
    audio0 = pipe.voice.audio_s if pipe.voice else 0.0
    busy0 = pipe.voice.busy_ms if pipe.voice else 0.0
    states0 = pipe.states_published
    await asyncio.sleep(args.seconds)
    frames1, t1, c1 = pipe.frames_analysed, time.monotonic(), cpu_s()
    wall = t1 - t0
    m = pipe.metrics()
    voice_audio = (pipe.voice.audio_s - audio0) if pipe.voice else 0.0
    voice_busy = (pipe.voice.busy_ms - busy0) if pipe.voice else 0.0
    result: dict[str, float | str | None] = {
        "mode": "paced" if args.paced else "asap",
        "aligned": not args.no_align,
        "fps": round((frames1 - frames0) / wall, 2),
        "face_ms_p50": m.get("face_ms_p50"),
        "face_ms_p95": m.get("face_ms_p95"),
        "voice_ms_per_audio_s": round(voice_busy / voice_audio, 3) if voice_audio else None,
        "voice_audio_s_per_s": round(voice_audio / wall, 2),
        "states_per_s": round((pipe.states_published - states0) / wall, 1),
        "cpu_percent": round(100.0 * (c1 - c0) / wall, 1),
        "rss_mb": round(rss_mb(), 1),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "startup_s": round(startup_s, 3),
        "frames_dropped": pipe.slot.dropped,
        "seconds": round(wall, 2),
        "face": svc.hub.health.get("face").status if svc.hub.health.get("face") else None,  # type: ignore[union-attr]
        "voice": svc.hub.health.get("voice").status if svc.hub.health.get("voice") else None,  # type: ignore[union-attr]
    }
    stop.set()
    await task
    return result


def voice_streams(data: Path, seconds: float = 60.0) -> dict[str, Any]:
    """Held-out speech and held-out non-verbal vocal sounds, each ``seconds`` long (16 kHz int16)."""
    import numpy as np

    from scripts.sound_data import index_clips, is_val, load_audio

    clips = [c for c in index_clips(data) if is_val(c)]
    rng = np.random.default_rng(0)
    out = {}
    for name, keep in (("speech", lambda c: c.kind == "speech"),
                       ("non-speech vocal sounds", lambda c: c.kind != "speech")):
        pool = [c for c in clips if keep(c)]
        parts, total = [], 0
        for i in rng.permutation(len(pool)):
            x = load_audio(pool[i].path)
            parts += [x, np.zeros(int(0.3 * 16000), np.float32)]
            total += len(x)
            if total >= seconds * 16000:
                break
        out[name] = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype(np.int16)
    return out


def bench_voice(args: argparse.Namespace) -> dict:
    """ms of voice-stage work per audio second, today's path against the sound-gated one."""
    import dataclasses

    from edge.config import Config
    from edge.stages import VoiceStage, load_voice_stage

    cfg = Config()
    cfg = dataclasses.replace(cfg, service=dataclasses.replace(cfg.service, inference_threads=1))
    gated = load_voice_stage(cfg)
    today = VoiceStage(gated.classify_window, aggressiveness=cfg.voice.vad_aggressiveness, hop_s=cfg.voice.hop_s,
                       min_speech_s=cfg.voice.min_speech_s, window_s=gated.window / 16000)
    result: dict = {"rounds": args.rounds}
    for name, pcm in voice_streams(Path(args.data)).items():
        ms = {"today": [], "sound_gated": []}
        for _ in range(args.rounds):
            for key, stage in (("today", today), ("sound_gated", gated)):
                busy0, audio0 = stage.busy_ms, stage.audio_s
                stage.feed_clip(pcm)               # 100 ms blocks, as the microphone delivers them
                ms[key].append((stage.busy_ms - busy0) / (stage.audio_s - audio0))
        best = {k: min(v) for k, v in ms.items()}
        result[name] = {"audio_s": round(len(pcm) / 16000, 1),
                        "today_ms_per_audio_s": round(best["today"], 3),
                        "sound_gated_ms_per_audio_s": round(best["sound_gated"], 3),
                        "ratio": round(best["sound_gated"] / best["today"], 3)}
        print(f"{name:24s} today {best['today']:.2f} ms/s, with the sound gate {best['sound_gated']:.2f} ms/s "
              f"(x{best['sound_gated'] / best['today']:.2f})", flush=True)
    return result


PEER_FACE_MODEL = ROOT.parent / "shared" / "peers" / "vicksam_ferplus_pd.tflite"


def bench_face(models: dict[str, Path], rounds: int, faces: int) -> dict:
    """Median ms per face of each model over ``rounds`` alternating runs of ``faces`` invokes."""
    import numpy as np

    from edge.inference.runtime import TFLiteModel
    from edge.models import FACE_EXPRESSION

    crop = np.random.default_rng(0).random(FACE_EXPRESSION.input_shape, dtype=np.float32)
    loaded = {name: TFLiteModel(path, num_threads=1) for name, path in models.items()}
    times: dict[str, list[float]] = {name: [] for name in loaded}
    for _ in range(rounds):
        for name, model in loaded.items():
            model.run(crop)                                   # warm the caches
            t0 = time.perf_counter()
            for _ in range(faces):
                model.run(crop)
            times[name].append((time.perf_counter() - t0) * 1000 / faces)
    ms = {name: sorted(v)[len(v) // 2] for name, v in times.items()}
    first = next(iter(ms))
    out: dict = {"rounds": rounds, "faces": faces}
    for name, value in ms.items():
        out[name] = {"file": str(models[name]), "ms_per_face": round(value, 4),
                     f"ratio_to_{first}": round(value / ms[first], 3)}
        print(f"{name:10s} {value:7.3f} ms per face  (x{value / ms[first]:.2f} of {first})", flush=True)
    return out


def bench_roll_search(empty_frames: int = 100) -> dict:
    """Detector calls per frame of the face stage's ``RollSearch`` against a fresh three-way search
    (``detect_any_roll``) on the same frames: the demo video, the demo video rolled 90 degrees, and
    an empty room (grey frames with sensor noise). Counts, not timings: the same on any machine."""
    import cv2
    import numpy as np

    from edge.config import Config
    from edge.demo import find_demo_media
    from edge.inference.face_align import RollSearch, detect_any_roll
    from edge.models import face_detector

    cfg = Config()
    detector = face_detector(cfg).load(cfg)

    class Counting:
        calls = 0

        def detect(self, frame: np.ndarray) -> list:
            Counting.calls += 1
            return detector.detect(frame)

    cap = cv2.VideoCapture(str(find_demo_media()[0]))
    frames = []
    while (read := cap.read())[0]:
        frames.append(read[1])
    cap.release()
    h, w = frames[0].shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 90.0, 1.0)
    rng = np.random.default_rng(0)
    sets = {"demo video": frames,
            "demo video rolled 90": [cv2.warpAffine(f, turn, (w, h), borderMode=cv2.BORDER_REPLICATE) for f in frames],
            "empty room": [np.clip(127 + rng.normal(0, 6, frames[0].shape), 0, 255).astype(np.uint8)
                           for _ in range(empty_frames)]}
    out: dict = {}
    for name, stream in sets.items():
        row = {"frames": len(stream)}
        for way, detect in (("fresh", lambda f: detect_any_roll(Counting(), f)), ("roll_search", RollSearch(Counting()).detect)):
            Counting.calls = 0
            row[f"{way}_found"] = sum(bool(detect(f)) for f in stream)
            row[f"{way}_calls_per_frame"] = round(Counting.calls / len(stream), 2)
        out[name] = row
        print(f"{name:22s} {len(stream)} frames | detector calls per frame: searched afresh "
              f"{row['fresh_calls_per_frame']:.2f} (found {row['fresh_found']}), RollSearch "
              f"{row['roll_search_calls_per_frame']:.2f} (found {row['roll_search_found']})", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["roll-search"]:
        argparse.ArgumentParser(description=bench_roll_search.__doc__).parse_args(argv[1:])
        print(json.dumps(bench_roll_search()))
        return 0
    if argv[:1] == ["face"]:
        fp = argparse.ArgumentParser(description="ms per face of face models, side by side in one run")
        fp.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a model to time (repeatable); default: the shipped model and the peer")
        fp.add_argument("--rounds", type=int, default=7)
        fp.add_argument("--faces", type=int, default=300, help="invokes per round")
        fa = fp.parse_args(argv[1:])
        from edge.models import FACE_EXPRESSION

        models = {"shipped": ROOT / "models_tflite" / FACE_EXPRESSION.file}
        if PEER_FACE_MODEL.is_file():
            models["peer"] = PEER_FACE_MODEL
        for item in fa.model:
            name, sep, path = item.partition("=")
            if not sep or not Path(path).is_file():
                fp.error(f"--model {item!r}: give NAME=PATH of an existing .tflite file")
            models[name] = Path(path)
        print(json.dumps(bench_face(models, fa.rounds, fa.faces)))
        return 0
    if argv[:1] == ["voice"]:
        vp = argparse.ArgumentParser(description="voice path cost, today's against the sound-gated one")
        vp.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
        vp.add_argument("--rounds", type=int, default=3, help="alternating runs of each path (best is kept)")
        print(json.dumps(bench_voice(vp.parse_args(argv[1:]))))
        return 0
    if argv[:1] == ["web"]:  # every option after `web` belongs to scripts/bench_web.py
        try:
            from scripts.bench_web import main as web_main
        except ImportError as exc:
            print(f"bench.py: scripts/bench_web.py cannot be loaded ({exc})", file=sys.stderr)
            return 2
        return int(web_main(argv[1:]) or 0)
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        result = asyncio.run(bench_pipeline(args))
        prof.disable()
        prof.dump_stats(args.profile)
    else:
        result = asyncio.run(bench_pipeline(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
