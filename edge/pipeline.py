"""The analysis pipeline: capture -> the face and voice stages in worker threads -> fusion -> states.

Data flow: camera source -> ``LatestSlot`` -> face worker and microphone source -> ``AudioRing`` ->
voice worker; the workers run the stages of ``edge.stages`` (``FaceStage``: detect, select, align
and crop, classify; ``VoiceStage``: the speech gate, the sound-event model on the last second every
hop, the speech-emotion model on what it calls speech) and hand results to the event loop with
``call_soon_threadsafe``; the loop fuses them, feeds each hop's sound to the ``SoundMonitor`` (what
the box hears, vocal distress) and publishes an ``EmotionState`` on ``hub.states`` for every
result, plus a heartbeat state when nothing arrives (an empty room still produces states). The face
worker always takes the newest frame: when it falls behind, frames are skipped, never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from edge.audio_format import SAMPLE_RATE
from edge.capture.camera import CameraSource, LatestSlot
from edge.capture.microphone import AudioRing, MicrophoneSource
from edge.config import Config
from edge.events import EmotionState, ModalityReading
from edge.fusion import Fusion
from edge.hub import Hub
from edge.stages import FaceStage, VoiceStage
from edge.vocal_distress import SoundMonitor

log = logging.getLogger(__name__)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


# -------------------------------------------------------------------------------------- pipeline

class Pipeline:
    """Runs the sources and stage workers; fuses and publishes states on the event loop."""

    def __init__(self, hub: Hub, config: Config, *, face: FaceStage | None = None,
                 voice: VoiceStage | None = None, camera: CameraSource | None = None,
                 microphone: MicrophoneSource | None = None, slot: LatestSlot | None = None,
                 ring: AudioRing | None = None, clock: Callable[[], float] = time.monotonic,
                 heartbeat_s: float = 1.0, analysis_fps: float | None = None):
        self.hub = hub
        self.config = config
        self.face = face
        self.voice = voice
        self.camera = camera
        self.microphone = microphone
        self.slot = slot or (camera.slot if camera else LatestSlot())
        self.ring = ring or (microphone.ring if microphone else AudioRing())
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.period = 1.0 / (analysis_fps or config.face.analysis_fps)
        self.fusion = Fusion(config.fusion, clock=clock)
        self.sounds = SoundMonitor(config.vocal_distress, clock=clock)
        self.frames_analysed = 0
        self.states_published = 0
        self.first_state_at: float | None = None     # time.monotonic() of the first state
        self.sources_ended = asyncio.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_publish = 0.0
        self._mode = ""
        self._errors: dict[str, str] = {}
        self._busy: set[str] = set()
        self._inbox: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._inbox_lock = threading.Lock()
        self._wake_pending = False

    # ---- thread -> loop
    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop. Calls are batched: the loop is woken only when no batch
        is pending (profiling showed one self-pipe write per frame as a top cost at high fps)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._inbox_lock:
            self._inbox.append((fn, args))
            if self._wake_pending:
                return
            self._wake_pending = True
        with contextlib.suppress(RuntimeError):  # loop closing during shutdown
            loop.call_soon_threadsafe(self._run_inbox)

    def _run_inbox(self) -> None:
        with self._inbox_lock:
            batch = list(self._inbox)
            self._inbox.clear()
            self._wake_pending = False
        for fn, args in batch:
            fn(*args)

    def health_callback(self, name: str, status: str, detail: str) -> None:
        """Thread-safe health report from a source."""
        self._post(self._on_health, name, status, detail)

    def _on_health(self, name: str, status: str, detail: str) -> None:
        prev = self.hub.health.get(name)
        cause = detail.split("; retrying in")[0]
        if prev is None or prev.status != status or prev.detail.split("; retrying in")[0] != cause:
            level = logging.INFO if status in ("ok", "disabled") else logging.WARNING
            log.log(level, "%s %s: %s", name, status, detail)
        else:
            log.debug("%s %s: %s", name, status, detail)   # the same failure again: one line per event
        self.hub.set_health(name, status, detail)
        modality = {"camera": "face", "microphone": "voice"}.get(name)
        if modality:
            self.fusion.set_source(modality, status)
            if status != "ok":
                self.fusion.forget(modality)
        self.update_mode()
        if ((self.camera is None or self.camera.ended.is_set())
                and (self.microphone is None or self.microphone.ended.is_set())
                and (self.camera or self.microphone)):
            self.sources_ended.set()

    def _modality_status(self, stage: object, source: object, source_name: str,
                         stage_name: str) -> tuple[bool, str]:
        if stage is not None and source is None:   # e.g. the camera switched off: say so, not "face ok"
            h = self.hub.health.get(source_name)
            return False, f"{source_name} {h.status if h else 'disabled'}"
        if stage is None:
            h = self.hub.health.get(stage_name)
            return False, f"{stage_name} {h.status if h else 'disabled'}"
        h = self.hub.health.get(source_name)
        if h is None or h.status != "ok":
            return False, f"{source_name} {h.status if h else 'starting'}"
        return True, ""

    def update_mode(self) -> None:
        face_ok, face_why = self._modality_status(self.face, self.camera, "camera", "face")
        voice_ok, voice_why = self._modality_status(self.voice, self.microphone, "microphone", "voice")
        if face_ok and voice_ok:
            status, mode = "ok", "face + voice"
        elif face_ok:
            status, mode = "degraded", f"face only ({voice_why})"
        elif voice_ok:
            status, mode = "degraded", f"voice only ({face_why})"
        else:
            status, mode = "down", f"no modality ({face_why}; {voice_why})"
        if mode != self._mode:
            if self._mode:
                failing = any(word in mode for word in ("down", "degraded"))
                log.log(logging.WARNING if failing else logging.INFO, "pipeline running %s", mode)
            self._mode = mode
        self.hub.set_health("pipeline", status, mode)

    def _on_result(self, modality: str, reading: ModalityReading | None, t: float, detail: dict[str, Any]) -> None:
        if self._errors.pop(modality, None) is not None:
            log.info("%s stage recovered", modality)
            self.hub.set_health(modality, "ok", "recovered")
        if self.fusion.sources.get(modality) == "down":
            pass   # a result from input captured just before the source failed: the modality is gone
        else:
            if modality == "voice" and self.voice is not None and self.voice.classify_sound is not None:
                self.sounds.observe(detail.get("sound"), t)
            if reading is not None:
                self.fusion.observe(reading)
            else:
                self.fusion.observe_absent(modality, t, detail)
        self._publish()

    def _publish(self) -> EmotionState:
        now = self.clock()
        state = self.fusion.state(now)
        if self.voice is not None and self.voice.classify_sound is not None:
            state = dataclasses.replace(state, sounds=self.sounds.summary(now))
        self.hub.states.publish(state)
        self.states_published += 1
        self._last_publish = time.monotonic()
        if self.first_state_at is None:
            self.first_state_at = self._last_publish
        return state

    def _stage_error(self, name: str, exc: BaseException) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        if self._errors.get(name) != msg:
            self._errors[name] = msg
            log.error("%s stage failed on one input: %s", name, msg)
        self.hub.set_health(name, "degraded", msg)

    # ---- workers
    def _face_worker(self) -> None:
        assert self.face is not None
        next_due: float | None = None
        tolerance = 0.01   # timestamp jitter of live cameras
        while not self._stop.is_set():
            frame = self.slot.get(timeout=0.25)
            if frame is None or (next_due is not None and frame.t < next_due - tolerance):
                continue   # analysis fps: skip frames that come before the next analysis is due
            # keep the schedule (average rate = analysis_fps); restart it after a gap
            late = next_due is None or frame.t - next_due > self.period
            next_due = frame.t + self.period if late else next_due + self.period  # type: ignore[operator]
            self._busy.add("face")
            try:
                reading, detail = self.face.process(frame)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the stage
                self._post(self._stage_error, "face", exc)
                continue
            else:
                self.frames_analysed += 1
                self._post(self._on_result, "face", reading, frame.t, detail)
            finally:
                self._busy.discard("face")

    def _voice_worker(self) -> None:
        assert self.voice is not None
        while not self._stop.is_set():
            got = self.ring.read(timeout=0.25)
            if got is None:
                continue
            self._busy.add("voice")
            try:
                for reading, t, detail in self.voice.feed(*got):
                    self._post(self._on_result, "voice", reading, t, detail)
            except Exception as exc:  # noqa: BLE001
                self._post(self._stage_error, "voice", exc)
            finally:
                self._busy.discard("voice")

    def idle(self) -> bool:
        """No frame or audio waiting and no stage busy (file sources have been fully analysed)."""
        return self.slot.empty() and self.ring.empty() and not self._busy

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until everything captured so far is analysed and published."""
        deadline = time.monotonic() + timeout
        while not self.idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)   # let the results posted by the workers run

    def metrics(self) -> dict[str, float]:
        m: dict[str, float] = {"frames_analysed": float(self.frames_analysed),
                               "states": float(self.states_published),
                               "frames_dropped": float(self.slot.dropped),
                               "audio_overrun_s": self.ring.overrun_samples / SAMPLE_RATE}
        if self.face is not None:
            m["face_ms_p50"] = round(self.face.timings.percentile(50), 3)
            m["face_ms_p95"] = round(self.face.timings.percentile(95), 3)
        if self.voice is not None:
            m["voice_ms_per_audio_s"] = round(self.voice.ms_per_audio_s, 3)
            m["voice_ms_p50"] = round(self.voice.timings.percentile(50), 3)   # per classified window
            m["sound_ms_p50"] = round(self.voice.sound_timings.percentile(50), 3)
        return m

    # ---- lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        """Start sources and workers, publish until ``stop`` is set, then stop everything."""
        self._loop = asyncio.get_running_loop()
        if self.face is not None and self.camera is not None:
            self._threads.append(threading.Thread(target=self._face_worker, name="face-stage", daemon=True))
        if self.voice is not None and self.microphone is not None:
            self._threads.append(threading.Thread(target=self._voice_worker, name="voice-stage", daemon=True))
        self.update_mode()
        for source in (self.camera, self.microphone):
            if source is not None:
                source.start()
        for th in self._threads:
            th.start()
        last_frames, last_t, last_cpu = 0, time.monotonic(), time.process_time()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.heartbeat_s)
                now = time.monotonic()
                if now - self._last_publish >= self.heartbeat_s:
                    self._publish()
                m = self.metrics()
                cpu = time.process_time()
                m["fps"] = round((self.frames_analysed - last_frames) / max(now - last_t, 1e-6), 2)
                m["process_cpu_percent"] = round(100.0 * (cpu - last_cpu) / max(now - last_t, 1e-6), 1)
                m["process_rss_mb"] = round(_rss_mb(), 1)
                last_frames, last_t, last_cpu = self.frames_analysed, now, cpu
                self.hub.metrics.update(m)
        finally:
            await asyncio.to_thread(self.shutdown)
            self.hub.metrics.update(self.metrics())

    def shutdown(self, timeout: float = 1.0) -> None:
        """Stop sources and workers (blocking; each join bounded by ``timeout``)."""
        self._stop.set()
        self.slot.close()
        self.ring.close()
        for source in (self.camera, self.microphone):
            if source is not None:
                source.stop(timeout)
        for th in self._threads:
            th.join(timeout)
