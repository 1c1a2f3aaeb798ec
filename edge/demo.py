"""`medtrack demo`: the full real pipeline on the demo media that ships with the project.

Real models, fusion, alarm logic, event store (in a temporary state dir), status page, and GPIO on
gpiozero's MockFactory (pin changes are logged). No camera, microphone, GPIO or network needed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from edge import config as config_mod
from edge.capture import CaptureError
from edge.config import PACKAGE_ROOT, Config

log = logging.getLogger(__name__)

DEMO_MEDIA = PACKAGE_ROOT / "demo_media"
VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov", ".webm")
AUDIO_EXT = (".wav", ".flac")


class DemoError(RuntimeError):
    """Demo media or setup missing; one line naming the fix."""


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


def demo_config(base: Config, video: Path, audio: Path, state_dir: str, host: str, port: int) -> Config:
    """``base`` with file sources (real-time, looped), mock GPIO, the given state dir and web address."""
    return config_mod.replace(
        base,
        service={"state_dir": state_dir},
        camera={"backend": "file", "file": str(video), "realtime": True, "loop": True},
        microphone={"backend": "file", "file": str(audio), "realtime": True, "loop": True},
        gpio={"pin_factory": "mock"},
        web={"host": host, "port": port, "enabled": True},
        mqtt={"enabled": False},
    )


def status_url(cfg: Config) -> str:
    host = cfg.web.host if cfg.web.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    scheme = "https" if cfg.web.tls_cert else "http"
    has_web = importlib.util.find_spec("edge.outputs.web") is not None
    return f"{scheme}://{host}:{cfg.web.port}/" + ("" if has_web else "api/status")


def login_hint(cfg: Config) -> str:
    if not cfg.web.auth or importlib.util.find_spec("edge.outputs.web") is None:
        return "no login needed"
    try:
        from edge.outputs import auth

        token = auth.load_or_create_token(auth.token_path(cfg.service.state_dir))
    except Exception as exc:  # noqa: BLE001 - the page still works with `medtrack token`
        return f"access token unavailable ({exc})"
    return f"access token: {token}"


def cli_demo(args: argparse.Namespace) -> int:
    """`medtrack demo [--duration S] [--port P] [--host H] [--state-dir D] [--config FILE]`."""
    from edge import logsetup
    from edge.service import Service, check_media

    os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")
    base = config_mod.load(getattr(args, "config", None))
    logsetup.setup(base.service.log_level)
    # the demo shows what the buzzer, LED and button pins do (mock pins; DEBUG lines of one logger)
    logging.getLogger("edge.outputs.gpio").setLevel(logging.DEBUG)
    try:
        video, audio = find_demo_media()
    except DemoError as exc:
        print(f"medtrack: {exc}", file=sys.stderr)
        return 2
    own_dir = getattr(args, "state_dir", None) is None
    state_dir = tempfile.mkdtemp(prefix="medtrack-demo-") if own_dir else args.state_dir
    try:
        cfg = demo_config(base, video, audio, state_dir, getattr(args, "host", "127.0.0.1"),
                          getattr(args, "port", 8080))
        try:
            check_media(cfg)
        except CaptureError as exc:
            print(f"medtrack: {exc}", file=sys.stderr)
            return 2
        print(f"MedTrack demo: {video.name} + {audio.name}; state in {state_dir}")
        print(f"Status page: {status_url(cfg)}  ({login_hint(cfg)})")
        print("Ctrl-C to stop." if not args.duration else f"Stopping after {args.duration:g} s.", flush=True)
        return asyncio.run(_run(Service(cfg), float(getattr(args, "duration", 0.0) or 0.0)))
    finally:
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


async def _run(service: object, duration: float) -> int:
    from edge.service import Service

    assert isinstance(service, Service)
    stop = asyncio.Event()
    if duration > 0:
        asyncio.get_running_loop().call_later(duration, stop.set)
    return await service.run(stop, install_signals=True)
