"""The service: builds the pipeline and its tasks from a Config, supervises them, stops cleanly.

``Service(config).run()`` loads the models (a model that fails leaves its modality down; the other
one still runs), opens what it owns and hands on (the event store, the MQTT outbox, the systemd
readiness), starts every task of ``TASKS`` that exists and is enabled (event store, alarm, GPIO,
web, MQTT, systemd watchdog; each imported lazily, restarted with backoff when it fails, reported
in ``hub.health``), then the capture sources and stage workers. SIGINT/SIGTERM set the stop event:
capture stops, tasks flush and release (buzzer off), and everything is down within ``SHUTDOWN_S``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import config as config_mod
from edge.capture import Backoff, CaptureError, MediaClock
from edge.capture.camera import CameraSource, LatestSlot, VideoFileReader, make_reader
from edge.capture.microphone import AudioFileBackend, AudioRing, MicrophoneSource, make_backend
from edge.config import Config
from edge.events import utc_now_iso
from edge.hub import Hub
from edge.inference.runtime import ModelError
from edge.pipeline import Pipeline
from edge.stages import FaceStage, VoiceStage, load_face_stage, load_voice_stage

if TYPE_CHECKING:
    from edge.outbox import Outbox
    from edge.store import EventStore
    from edge.watchdog import Readiness

log = logging.getLogger(__name__)

SHUTDOWN_S = 1.8
Serve = Callable[[Hub, asyncio.Event], Awaitable[None]]


@dataclass(frozen=True)
class TaskSpec:
    """A long-running task the service supervises beside the pipeline."""

    module: str                   # its entry point is ``module.serve(hub, stop, **needs)``
    section: str | None = None    # the config section whose ``enabled`` gates it (checked here only)
    needs: tuple[str, ...] = ()   # what the service owns and hands it, by keyword: store, outbox, readiness


# The supervised tasks: the outputs (GPIO, web, MQTT) and what stands behind them (event store,
# alarm logic, systemd watchdog).
TASKS: dict[str, TaskSpec] = {
    "store": TaskSpec("edge.store", needs=("store",)),
    "alarm": TaskSpec("edge.alarm_service", needs=("store",)),
    "gpio": TaskSpec("edge.outputs.gpio", "gpio"),
    "web": TaskSpec("edge.outputs.web", "web", needs=("store",)),
    "mqtt": TaskSpec("edge.outputs.mqtt", "mqtt", needs=("outbox",)),
    "watchdog": TaskSpec("edge.watchdog", needs=("readiness",)),
}


def media_problems(cfg: Config) -> dict[str, CaptureError]:
    """Open each configured media file once: {config section: its one-line error} for the bad ones."""
    problems: dict[str, CaptureError] = {}
    if cfg.camera.backend == "file":
        reader = VideoFileReader(cfg.camera.file, loop=False)
        try:
            reader.open()
            reader.read()
        except CaptureError as exc:
            problems["camera"] = exc
        finally:
            reader.close()
    if cfg.microphone.backend == "file":
        backend = AudioFileBackend(cfg.microphone.file)
        try:
            backend.open()
        except CaptureError as exc:
            problems["microphone"] = exc
        finally:
            backend.close()
    return problems


def check_media(cfg: Config) -> None:
    """Open configured media files once; raise CaptureError (one line) when one is missing or bad."""
    for exc in media_problems(cfg).values():
        raise exc


class Service:
    """One running MedTrack box.

    Seams: ``tasks`` names the tasks of ``TASKS`` to run (default: all); ``serves`` gives entry
    points used as they are instead of the modules' (a name there need not be in ``TASKS``);
    ``make_reader`` and ``make_backend`` build the camera and microphone source factories."""

    def __init__(self, config: Config, *, tasks: list[str] | None = None, serves: Mapping[str, Serve] | None = None,
                 stop_when_sources_end: bool = False, keep_serving: bool = False, retry_first_s: float = 0.5,
                 face_stage: FaceStage | None = None, voice_stage: VoiceStage | None = None,
                 pace_fps: float | None = None, analysis_fps: float | None = None,
                 make_reader: Callable[..., Any] = make_reader, make_backend: Callable[..., Any] = make_backend):
        self.config = config
        self.task_names = list(TASKS) if tasks is None else tasks
        self.serves = dict(serves or {})
        self.make_reader = make_reader
        self.make_backend = make_backend
        self.stop_when_sources_end = stop_when_sources_end
        self.exit_code = 0
        self.keep_serving = keep_serving   # media files played to their end: say so, keep the page up
        self.retry_first_s = retry_first_s
        self.pace_fps = pace_fps
        self.analysis_fps = analysis_fps
        self._face_stage = face_stage
        self._voice_stage = voice_stage
        asap = ((config.camera.backend == "file" and not config.camera.realtime)
                or (config.microphone.backend == "file" and not config.microphone.realtime))
        self.clock: Callable[[], float] = MediaClock() if asap else time.monotonic
        self.hub = Hub(config, clock=self.clock)  # alarm timing follows media time in fast playback
        self.pipeline: Pipeline | None = None
        self.stop_event: asyncio.Event | None = None
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.ready_at: float | None = None
        # owned here, handed to the tasks that need them (TaskSpec.needs)
        self.store: EventStore | None = None
        self.outbox: Outbox | None = None
        self.readiness: Readiness | None = None

    # ------------------------------------------------------------------------------- building
    def _load_stage(self, name: str, enabled: bool, loader: Callable[[Config], Any], given: Any) -> Any:
        if given is not None:
            self.hub.set_health(name, "ok", "injected")
            return given
        if not enabled:
            self.hub.set_health(name, "disabled", f"[{name}] enabled = false")
            return None
        try:
            stage = loader(self.config)
        except (ModelError, ImportError, ValueError) as exc:
            log.error("%s model not loaded: %s", name, exc)
            self.hub.set_health(name, "down", str(exc))
            return None
        self.hub.models.extend(getattr(stage, "models", []))
        self.hub.set_health(name, "ok", ", ".join(m.get("file", "?") for m in getattr(stage, "models", [])))
        return stage

    def build(self) -> Pipeline:
        cfg = self.config
        face = self._load_stage("face", cfg.face.enabled, load_face_stage, self._face_stage)
        voice = self._load_stage("voice", cfg.voice.enabled, load_voice_stage, self._voice_stage)
        media = isinstance(self.clock, MediaClock)
        slot = LatestSlot(lossless=media and cfg.camera.backend == "file")
        # played as fast as possible, the file reader drives the media clock: a short lossless ring
        # keeps it within half a second of the audio being analysed, as a live microphone would
        lossless_audio = media and cfg.microphone.backend == "file"
        ring = AudioRing(seconds=0.5 if lossless_audio else 4.0, lossless=lossless_audio)
        pipeline_ref: list[Pipeline] = []

        def on_health(name: str, status: str, detail: str) -> None:
            pipeline_ref[0].health_callback(name, status, detail)

        camera = microphone = None
        reader_factory = self.make_reader(cfg.camera, pace_fps=self.pace_fps)
        if face is None or reader_factory is None:
            self.hub.set_health("camera", "disabled", "no face stage" if face is None else "camera.backend = 'none'")
        else:
            camera = CameraSource(reader_factory, slot, on_health, clock=self.clock,
                                  realtime=cfg.camera.realtime, retry_first_s=self.retry_first_s,
                                  retry_max_s=cfg.camera.retry_max_s)
        backend_factory = self.make_backend(cfg.microphone, self.clock)
        if voice is None or backend_factory is None:
            self.hub.set_health("microphone", "disabled",
                                "no voice stage" if voice is None else "microphone.backend = 'none'")
        else:
            microphone = MicrophoneSource(backend_factory, ring, on_health, retry_first_s=self.retry_first_s,
                                          retry_max_s=cfg.microphone.retry_max_s)
        pipeline = Pipeline(self.hub, cfg, face=face, voice=voice, camera=camera, microphone=microphone,
                            slot=slot, ring=ring, clock=self.clock, analysis_fps=self.analysis_fps)
        pipeline_ref.append(pipeline)
        pipeline.update_mode()
        self.pipeline = pipeline
        return pipeline

    # ---------------------------------------------------------------------------------- tasks
    def _enabled(self, name: str) -> bool:
        """The one check of a task's ``[section] enabled``; a disabled task is reported in health."""
        spec = TASKS.get(name)
        section = spec.section if spec is not None else None
        if section is not None and not getattr(getattr(self.config, section), "enabled", True):
            self.hub.set_health(name, "disabled", f"[{section}] enabled = false")
            return False
        return True

    def _open_owned(self) -> None:
        """Open what the tasks share, before the pipeline starts: the event store (the durable
        recorder goes in before any alarm can fire), the MQTT outbox (records from the first event)
        and the systemd readiness."""
        if "store" in self.task_names:
            with contextlib.suppress(ModuleNotFoundError):
                self.store = importlib.import_module("edge.store").attach(self.hub)
        if "mqtt" in self.task_names and self._enabled("mqtt"):
            try:
                self.outbox = importlib.import_module("edge.outbox").attach(self.hub)
            except Exception as exc:  # noqa: BLE001 - the alarm on the box must run without MQTT
                log.error("MQTT outbox unavailable: %s", exc)
                self.hub.set_health("mqtt", "down", f"outbox unavailable: {exc}")
        if "watchdog" in self.task_names:
            with contextlib.suppress(ModuleNotFoundError):
                self.readiness = importlib.import_module("edge.watchdog").Readiness(self.hub.clock)

    def _resolve(self, name: str) -> Serve | None:
        """The task's entry point with what it needs bound, or None (disabled, not installed)."""
        if not self._enabled(name):
            return None
        if name in self.serves:
            return self.serves[name]
        spec = TASKS[name]
        module_name = spec.module
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                log.debug("task %s not available (%s)", name, module_name)
                return None
            log.error("task %s cannot be imported: %s", name, exc)
            self.hub.set_health(name, "down", f"import failed: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - a broken task must not stop the service
            log.error("task %s cannot be imported: %s", name, exc)
            self.hub.set_health(name, "down", f"import failed: {exc}")
            return None
        return partial(module.serve, **{need: getattr(self, need) for need in spec.needs})

    async def _supervise(self, name: str, serve: Serve, stop: asyncio.Event) -> None:
        backoff = Backoff(1.0, 30.0)
        while not stop.is_set():
            started = time.monotonic()
            try:
                await serve(self.hub, stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - restart the task, keep the pipeline
                if time.monotonic() - started > 60:
                    backoff.reset()
                delay = backoff.next()
                log.error("task %s failed: %s; restarting in %.0f s", name, exc, delay)
                self.hub.set_health(name, "down", f"{type(exc).__name__}: {exc}; restarting")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    # -------------------------------------------------------------------------------- running
    def request_stop(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()

    async def run(self, stop: asyncio.Event | None = None, install_signals: bool = False) -> int:
        """Run until ``stop`` is set (or a signal, or the end of play-once files). Returns 0, or 2
        when play-once files were given and no stage could analyse them."""
        stop = stop or asyncio.Event()
        self.stop_event = stop
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
        pipeline = self.build()
        gc.freeze()   # models and imports are long-lived: keep them out of every GC pass
        self._open_owned()
        for name in self.task_names:
            serve = self._resolve(name)
            if serve is not None:
                self.tasks[name] = asyncio.create_task(self._supervise(name, serve, stop), name=f"task-{name}")
        pipe_task = asyncio.create_task(pipeline.run(stop), name="pipeline")
        ender = asyncio.create_task(self._stop_when_ended(pipeline, stop), name="sources-ended")
        self.ready_at = time.monotonic()
        if "watchdog" in self.tasks and self.readiness is not None:
            self.readiness.mark("running")
        log.info("MedTrack %s started (camera: %s, microphone: %s; tasks: %s)", self.config.service.device_id,
                 self.config.camera.backend, self.config.microphone.backend, ", ".join(self.tasks) or "none")
        try:
            await stop.wait()
        finally:
            stop.set()
            ender.cancel()
            await self._shutdown(pipe_task)
            if install_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        return self.exit_code

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s received: stopping", sig.name)
        self.request_stop()

    async def _stop_when_ended(self, pipeline: Pipeline, stop: asyncio.Event) -> None:
        if not (self.stop_when_sources_end or self.keep_serving):
            return
        if pipeline.camera is None and pipeline.microphone is None:
            # nothing can play (e.g. a model file missing): say why instead of waiting forever
            why = "; ".join(f"{name} {h.status}: {h.detail}" for name in ("face", "voice")
                            if (h := self.hub.health.get(name)) is not None)
            log.error("no media can be analysed (%s): fix the model files or [face]/[voice] enabled", why)
            self.exit_code = 2
            if self.stop_when_sources_end:
                stop.set()
            return
        await pipeline.sources_ended.wait()
        await pipeline.drain()
        if self.stop_when_sources_end:
            log.info("all media files played: stopping")
            stop.set()
        else:
            log.info("all media files played; the status page and API stay up (Ctrl-C to stop)")

    async def _shutdown(self, pipe_task: asyncio.Task[None]) -> None:
        started = time.monotonic()
        tasks = [pipe_task, *self.tasks.values()]
        done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_S)
        for task in pending:
            log.warning("%s did not stop within %.1f s; cancelling it", task.get_name(), SHUTDOWN_S)
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=0.2)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s ended with an error: %s", task.get_name(), task.exception())
        log.info("stopped in %.2f s", time.monotonic() - started)


# ----------------------------------------------------------------------------------------- CLI

def apply_media_args(cfg: Config, video: str | None, audio: str | None) -> Config:
    """`--video FILE --audio FILE`: a user's recordings, paced in real time and played once."""
    changes: dict[str, dict[str, Any]] = {}
    if video:
        changes["camera"] = {"backend": "file", "file": video, "realtime": True, "loop": False}
    if audio:
        changes["microphone"] = {"backend": "file", "file": audio, "realtime": True, "loop": False}
    if video and not audio:
        changes["microphone"] = {"backend": "none"}
    if audio and not video:
        changes["camera"] = {"backend": "none"}
    return config_mod.replace(cfg, **changes) if changes else cfg


def writable_dir(path: str | Path) -> bool:
    """The folder exists (or can be made) and this user may write in it."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def user_state_dir() -> Path:
    """This user's state folder for `medtrack run` with recordings: $XDG_STATE_HOME/medtrack."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "medtrack"


def cli_run(args: argparse.Namespace) -> int:
    """`medtrack run [--config FILE] [--video FILE] [--audio FILE] [--keep-serving]`; with
    recordings, prints what happened at the end."""
    from edge import logsetup

    cfg = config_mod.load(getattr(args, "config", None))
    video, audio = getattr(args, "video", None), getattr(args, "audio", None)
    cfg = apply_media_args(cfg, video, audio)
    logsetup.setup(cfg.service.log_level)
    problems = media_problems(cfg)   # a bad file stops only its own modality
    recordings = bool(video or audio)
    if recordings and len(problems) == bool(video) + bool(audio):
        for exc in problems.values():
            print(f"medtrack: {exc}", file=sys.stderr)
        return 2
    for section, exc in problems.items():
        what = "face" if section == "camera" else "voice"
        then = "is left out" if recordings else "stays down (technical alarm) and is retried"
        print(f"medtrack: {exc}; the {what} side {then}", file=sys.stderr)
    if recordings and problems:   # your recordings: play the good one
        cfg = config_mod.replace(cfg, **{section: {"backend": "none"} for section in problems})
    if recordings and not writable_dir(cfg.service.state_dir):   # a user trying recordings, not the box
        mine = user_state_dir()
        print(f"medtrack: {cfg.service.state_dir} is not writable; events and token go to {mine}", file=sys.stderr)
        cfg = config_mod.replace(cfg, service={"state_dir": str(mine)})
    keep = bool(getattr(args, "keep_serving", False))
    service = Service(cfg, stop_when_sources_end=recordings and not keep, keep_serving=recordings and keep)
    started = utc_now_iso()
    code = asyncio.run(service.run(install_signals=True))
    if recordings:
        from edge.store import session_summary

        hint = "" if keep else " (--keep-serving keeps the status page up after the media end)"
        print(f"\nMedTrack: recordings played{hint}.\n{session_summary(cfg.service.state_dir, started)}",
              flush=True)
    return code

