"""`medtrack demo`: the full real pipeline on the demo media that ships with the project.

Real models, fusion, alarm logic, event store, status page, and GPIO on gpiozero's MockFactory (the
buzzer's and LED's patterns are logged). No camera, microphone, GPIO or network needed.

The demo plays a two-minute **story** cut from the bundled clips (:data:`STORY`, built once by
:func:`build_story` into the state dir) and loops it: calm, then sustained distress in face and
voice (the distressed speech over the Grace Hopper portrait stretched vertically, which the face
model reads as sad or fearful), an alarm on the mock buzzer that escalates if nobody acknowledges
it, then calm again. Only the cut is scripted: every reading comes from the real models.

Its state (events, token) lives in :func:`demo_state_dir` and survives the demo; on exit it prints
what happened and the command that exports the events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import config as config_mod
from edge.audio_format import SAMPLE_RATE
from edge.capture import CaptureError
from edge.config import PACKAGE_ROOT, Config
from edge.events import utc_now_iso

log = logging.getLogger(__name__)

DEMO_MEDIA = PACKAGE_ROOT / "demo_media"
VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov", ".webm")
AUDIO_EXT = (".wav", ".flac")
STORY_VERSION = 1
FPS = 10
DEMO_ESCALATE_S = 30.0      # the ward default is 120 s: the demo shows escalation within its 2 minutes
DEMO_MAX_ALARMS_PER_HOUR = 30   # one alarm per 2-minute loop


@dataclass(frozen=True)
class Scene:
    """A stretch of the story: which pictures and which speech, for how long."""

    kind: str          # calm | distress
    seconds: float
    video: str         # calm: the smiling astronaut | distress: the stretched Grace Hopper portrait
    speech: str        # calm | distressed (segments of demo_speech.json), with silences between


STORY: tuple[Scene, ...] = (
    Scene("calm", 15.0, "astronaut", "calm"),
    Scene("distress", 30.0, "distressed_face", "distressed"),
    Scene("calm", 75.0, "astronaut", "calm"),
)


class DemoError(RuntimeError):
    """Demo media or setup missing; one line naming the fix."""


def demo_state_dir() -> Path:
    """Where the demo keeps its events and token between runs: $XDG_STATE_HOME/medtrack-demo
    (default ~/.local/state/medtrack-demo)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "medtrack-demo"


def find_demo_media(folder: Path | None = None) -> tuple[Path, Path]:
    """The demo video and 16 kHz audio in ``folder`` (default: the package's demo_media/)."""
    folder = folder or DEMO_MEDIA
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    videos = [f for f in files if f.suffix.lower() in VIDEO_EXT]
    audios = [f for f in files if f.suffix.lower() in AUDIO_EXT]
    if not videos or not audios:
        raise DemoError(f"demo media missing in {folder}; run `python scripts/make_demo_media.py` "
                        "(or reinstall the package)")
    return videos[0], audios[0]


# ---------------------------------------------------------------------------------- the story

def _segments(meta_path: Path) -> list[dict]:
    try:
        return list(json.loads(meta_path.read_text(encoding="utf-8"))["segments"])
    except (OSError, ValueError, KeyError) as exc:
        raise DemoError(f"cannot read {meta_path} ({exc}); run `python scripts/make_demo_media.py`") from None


def _video_pools(video: Path) -> dict[str, list[np.ndarray]]:
    """Frames for each scene's pictures, from the bundled clip."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    segs = _segments(video.with_suffix(".json"))
    fps = FPS
    pick = {s["kind"]: [] for s in segs}
    for s in segs:
        pick[s["kind"]].extend(frames[round(s["start_s"] * fps) + 3:round(s["end_s"] * fps) - 3])
    if not pick.get("astronaut") or not pick.get("grace_hopper"):
        raise DemoError(f"{video} lacks its astronaut / grace_hopper segments; run `python scripts/make_demo_media.py`")
    h, w = pick["grace_hopper"][0].shape[:2]
    top = h // 6    # a 1.5x vertical stretch: the long, drawn face the model reads as sad or fearful
    distressed = [cv2.resize(f[top:h - top], (w, h), interpolation=cv2.INTER_LINEAR) for f in pick["grace_hopper"]]
    return {"astronaut": pick["astronaut"], "distressed_face": distressed}


def _speech_pools(audio: Path) -> dict[str, list[np.ndarray]]:
    import soundfile as sf

    data, rate = sf.read(str(audio), dtype="int16")
    if rate != SAMPLE_RATE or data.ndim != 1:
        raise DemoError(f"{audio}: expected 16 kHz mono; run `python scripts/make_demo_media.py`")
    pools: dict[str, list[np.ndarray]] = {"calm": [], "distressed": []}
    for s in _segments(audio.with_suffix(".json")):
        if s["kind"] in pools:
            pools[s["kind"]].append(data[int(s["start_s"] * rate):int(s["end_s"] * rate)])
    if not pools["calm"] or not pools["distressed"]:
        raise DemoError(f"{audio} lacks calm / distressed speech; run `python scripts/make_demo_media.py`")
    return pools


def story_timeline(story: tuple[Scene, ...] = STORY) -> list[dict]:
    """The scenes with their start and end in seconds (what the demo prints and the test checks)."""
    out, t = [], 0.0
    for scene in story:
        out.append({"kind": scene.kind, "start_s": t, "end_s": t + scene.seconds})
        t += scene.seconds
    return out


def build_story(out_dir: Path, video: Path, audio: Path, story: tuple[Scene, ...] = STORY) -> tuple[Path, Path]:
    """Cut the story's video (10 fps MJPG .avi) and 16 kHz WAV into ``out_dir``; kept between runs
    while the bundled media and the story are unchanged."""
    import cv2
    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    video_out, audio_out, stamp_path = out_dir / "story.avi", out_dir / "story.wav", out_dir / "story.json"
    stamp = {"version": STORY_VERSION, "story": [vars(s) for s in story],
             "sources": [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in (video, audio)]}
    try:
        if json.loads(stamp_path.read_text()) == stamp and video_out.exists() and audio_out.exists():
            return video_out, audio_out
    except (OSError, ValueError):
        pass
    frames, speech = _video_pools(video), _speech_pools(audio)
    h, w = frames["astronaut"][0].shape[:2]
    writer = cv2.VideoWriter(str(video_out), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    if not writer.isOpened():
        raise DemoError(f"cannot write {video_out}; check the folder is writable")
    track: list[np.ndarray] = []
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.int16)
    pause = np.zeros(int(1.5 * SAMPLE_RATE), np.int16)
    for scene in story:
        pool = frames[scene.video]
        n = round(scene.seconds * FPS)
        for i in range(n):   # back and forth through the clip: no jump cut inside a scene
            k = i % (2 * len(pool) - 2) if len(pool) > 1 else 0
            writer.write(pool[k if k < len(pool) else 2 * len(pool) - 2 - k])
        need, parts, j = int(scene.seconds * SAMPLE_RATE), [], 0
        while sum(len(p) for p in parts) < need:
            clip = speech[scene.speech][j % len(speech[scene.speech])]
            parts += [clip, gap if scene.speech == "distressed" else pause]
            j += 1
        track.append(np.concatenate(parts)[:need])
    writer.release()
    sf.write(str(audio_out), np.concatenate(track), SAMPLE_RATE, subtype="PCM_16")
    stamp_path.write_text(json.dumps(stamp))
    return video_out, audio_out


# ---------------------------------------------------------------------------------- config, CLI

def demo_config(base: Config, video: Path, audio: Path, state_dir: str, host: str, port: int,
                realtime: bool = True, loop: bool = True) -> Config:
    """``base`` with file sources (looped, real-time unless ``realtime`` is false), mock GPIO, the
    given state dir and web address, and escalation after DEMO_ESCALATE_S."""
    alarm = {"t_escalate_s": min(base.alarm.t_escalate_s, DEMO_ESCALATE_S),
             "max_alarms_per_hour": max(base.alarm.max_alarms_per_hour, DEMO_MAX_ALARMS_PER_HOUR)}
    return config_mod.replace(
        base,
        service={"state_dir": state_dir},
        camera={"backend": "file", "file": str(video), "realtime": realtime, "loop": loop},
        microphone={"backend": "file", "file": str(audio), "realtime": realtime, "loop": loop},
        gpio={"pin_factory": "mock"},
        web={"host": host, "port": port, "enabled": True},
        mqtt={"enabled": False},
        alarm=alarm,
    )


def status_url(cfg: Config) -> str:
    host = cfg.web.host if cfg.web.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    scheme = "https" if cfg.web.tls_cert else "http"
    return f"{scheme}://{host}:{cfg.web.port}/"


def access_token(cfg: Config) -> str | None:
    if not cfg.web.auth:
        return None
    from edge.outputs import auth

    return auth.load_or_create_token(auth.token_path(cfg.service.state_dir))


def login_hint(cfg: Config) -> str:
    try:
        token = access_token(cfg)
    except Exception as exc:  # noqa: BLE001 - the page still works with `medtrack token`
        return f"access token unavailable ({exc})"
    return "no login needed" if token is None else f"access token: {token}"


def how_to_act(cfg: Config) -> str:
    """How to acknowledge and pause, from the page and the API (printed at start)."""
    base = status_url(cfg).rstrip("/")
    try:
        token = access_token(cfg)
    except Exception:  # noqa: BLE001
        token = None
    auth = f" -H 'Authorization: Bearer {token}'" if token else ""
    return "\n".join([
        "When the alarm sounds: press Acknowledge on the page (sound off 120 s) or",
        f"  curl -X POST{auth} -H 'Content-Type: application/json' -d '{{\"by\": \"me\"}}' {base}/api/acknowledge",
        "Care in progress: the page's Pause buttons (5, 15, 30 min) or",
        f"  curl -X POST{auth} -H 'Content-Type: application/json' -d '{{\"minutes\": 5}}' {base}/api/pause",
    ])


def cli_demo(args: argparse.Namespace) -> int:
    """`medtrack demo [--duration S] [--port P] [--host H] [--state-dir D] [--config FILE] [--once] [--fast]`."""
    from edge import logsetup
    from edge.service import Service, check_media
    from edge.store import session_summary

    os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")
    base = config_mod.load(getattr(args, "config", None))
    logsetup.setup(base.service.log_level)
    state_dir = Path(getattr(args, "state_dir", None) or demo_state_dir()).expanduser()
    once, fast = bool(getattr(args, "once", False)), bool(getattr(args, "fast", False))
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        video, audio = find_demo_media()
        video, audio = build_story(state_dir / "story", video, audio)
    except (DemoError, OSError) as exc:
        print(f"medtrack: {exc}", file=sys.stderr)
        return 2
    cfg = demo_config(base, video, audio, str(state_dir), getattr(args, "host", "127.0.0.1"),
                      getattr(args, "port", 8080), realtime=not fast, loop=not once)
    try:
        check_media(cfg)
    except CaptureError as exc:
        print(f"medtrack: {exc}", file=sys.stderr)
        return 2
    scenes = ", ".join(f"{s['start_s']:.0f}-{s['end_s']:.0f} s {s['kind']}" for s in story_timeline())
    print(f"MedTrack demo: a {story_timeline()[-1]['end_s']:.0f} s story, {'played once' if once else 'looped'}"
          f" ({scenes}); the real models decide. The alarm escalates after {cfg.alarm.t_escalate_s:g} s"
          f" unacknowledged in the demo ({base.alarm.t_escalate_s:g} s by default).")
    print(f"Status page: {status_url(cfg)}  ({login_hint(cfg)})")
    print(how_to_act(cfg))
    duration = float(getattr(args, "duration", 0.0) or 0.0)
    print(f"State (events, token): {state_dir}. "
          + ("Ctrl-C to stop." if not duration else f"Stopping after {duration:g} s."), flush=True)
    started = utc_now_iso()
    code = asyncio.run(_run(Service(cfg, stop_when_sources_end=once), duration))
    print("\nMedTrack demo stopped.\n" + session_summary(state_dir, started), flush=True)
    return code


async def _run(service: object, duration: float) -> int:
    from edge.service import Service

    assert isinstance(service, Service)
    stop = asyncio.Event()
    if duration > 0:
        asyncio.get_running_loop().call_later(duration, stop.set)
    return await service.run(stop, install_signals=True)

