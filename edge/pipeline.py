"""The analysis pipeline: face and voice stages in worker threads, fusion, and state publication.

Data flow: camera source -> ``LatestSlot`` -> face worker (detect, select, align and crop, classify) and
microphone source -> ``AudioRing`` -> voice worker (webrtcvad, the sound-event model on the last
second every hop, the speech-emotion model on what it calls speech). Workers hand results to the
event loop with ``call_soon_threadsafe``; the loop fuses them, feeds each hop's sound to the
``SoundMonitor`` (what the box hears, vocal distress) and publishes an ``EmotionState`` on
``hub.states`` for every result, plus a heartbeat state when nothing arrives (an empty room still
produces states). The face worker always takes the
newest frame: when it falls behind, frames are skipped, never queued.
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
from typing import Any, Protocol

import numpy as np

from edge.audio_format import SAMPLE_RATE
from edge.capture.camera import CameraSource, Frame, LatestSlot
from edge.capture.microphone import AudioRing, MicrophoneSource
from edge.config import Config
from edge.events import EmotionState, ModalityReading
from edge.fusion import Fusion, distress_score
from edge.hub import Hub
from edge.inference.sound_events import SOUND_WINDOW_SAMPLES, SPEECH
from edge.inference.voice_features import VAD_FRAME_SAMPLES, VAD_HANGOVER_FRAMES
from edge.labels import LABELS
from edge.vocal_distress import SoundMonitor

log = logging.getLogger(__name__)



class Timings:
    """Recent stage latencies (ms) and totals."""

    def __init__(self, keep: int = 1024):
        self.recent: deque[float] = deque(maxlen=keep)
        self.count = 0
        self.total_ms = 0.0

    def add(self, ms: float) -> None:
        self.recent.append(ms)
        self.count += 1
        self.total_ms += ms

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.fromiter(self.recent, float), q)) if self.recent else 0.0


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


# ------------------------------------------------------------------------------------ face stage

class Detector(Protocol):
    def detect(self, frame_bgr: np.ndarray) -> list[Any]: ...


class Classifier(Protocol):
    def classify(self, crop: np.ndarray) -> np.ndarray: ...


def _box(det: Any) -> list[int]:
    return [int(round(det.x)), int(round(det.y)), int(round(det.w)), int(round(det.h))]


class FaceStage:
    """detect -> pick the patient (largest | central; ``all`` scores every face and reports the
    most distressed) -> align (eyes level) and crop with margin -> classify.

    ``align`` (default) detects with ``detect_any_roll`` and crops with ``align_face``
    (``edge.inference.face_align``); ``align=False`` is the unaligned path: one detector call and
    ``crop_face``."""

    def __init__(self, detector: Detector, classifier: Classifier, *, select: str = "largest",
                 margin: float = 0.15, distress_weights: dict[str, float] | None = None,
                 select_faces: Callable[..., list[Any]] | None = None,
                 crop_face: Callable[..., np.ndarray] | None = None, align: bool = True):
        if select_faces is None or crop_face is None:
            from edge.inference import detector as det_mod
            from edge.inference import face_align

            select_faces = select_faces or det_mod.select_faces
            crop_face = crop_face or (face_align.align_face if align else det_mod.crop_face)
        if align:
            from edge.inference.face_align import detect_any_roll

            self._detect: Callable[[np.ndarray], list[Any]] = lambda image: detect_any_roll(detector, image)
        else:
            self._detect = detector.detect
        self.align = align
        self.detector = detector
        self.classifier = classifier
        self.select = select
        self.margin = margin
        self.distress_weights = distress_weights or {}
        self._select_faces = select_faces
        self._crop_face = crop_face
        self.timings = Timings()

    def process(self, frame: Frame) -> tuple[ModalityReading | None, dict[str, Any]]:
        """One frame -> (reading, detail); reading is None when no face is in view."""
        start = time.perf_counter()
        dets = self._detect(frame.image)
        chosen = self._select_faces(dets, frame.image.shape, self.select)
        scored = []
        for det in chosen:
            try:
                crop = self._crop_face(frame.image, det, self.margin)
            except ValueError:   # a box entirely outside the frame: not a usable face
                continue
            probs = np.asarray(self.classifier.classify(crop), dtype=np.float64)
            scored.append((distress_score(probs, self.distress_weights), det, probs))
        ms = (time.perf_counter() - start) * 1000.0
        self.timings.add(ms)
        detail: dict[str, Any] = {"faces": len(dets), "latency_ms": round(ms, 2)}
        if not scored:
            return None, detail
        _, det, probs = max(scored, key=lambda s: s[0]) if self.select == "all" else scored[0]
        detail.update(box=_box(det), detector_score=round(float(det.score), 3))
        if self.select == "all":
            detail["scored"] = [{"box": _box(d), "label": LABELS[int(np.argmax(p))],
                                 "confidence": round(float(p.max()), 3), "distress": round(s, 3)}
                                for s, d, p in scored]
        probs = probs / max(float(probs.sum()), 1e-9)
        reading = ModalityReading("face", frame.t, tuple(float(p) for p in probs), float(probs.max()), detail)
        return reading, detail


# ----------------------------------------------------------------------------------- voice stage

WindowClassifier = Callable[[np.ndarray], np.ndarray]


class VoiceStage:
    """Streaming sound-event gating and speech-emotion classification.

    Every 30 ms frame goes through webrtcvad (a cheap first gate) and into a one-window ring of raw
    audio. Every ``hop_s`` the sound-event model (``classify_sound``) labels the last
    ``SOUND_WINDOW_S`` of audio, unless webrtcvad heard nothing in it (then nothing vocal is there
    and the model is not run). The speech frames of that hop join the speech buffer (the last
    ``window_s`` of speech) only when the sound model calls the window speech
    (P(speech) >= ``speech_threshold``): screams, cries, laughter and coughs never reach the
    speech-emotion model. If new speech arrived and the buffer holds ``min_speech_s``, the buffer
    is classified. ``silence_reset_s`` without speech clears the buffer. Each hop's detail carries
    ``sound``: the window's sound probabilities, or None when nothing vocal was heard.
    Without ``classify_sound`` (unit tests of the gating only) webrtcvad alone decides.
    """

    def __init__(self, classify_window: WindowClassifier, *, aggressiveness: int = 2, hop_s: float = 0.5,
                 min_speech_s: float = 0.6, window_s: float = 1.5, silence_reset_s: float = 3.0,
                 vad: Any = None, classify_sound: WindowClassifier | None = None,
                 speech_threshold: float = 0.5):
        if vad is None:
            import webrtcvad

            vad = webrtcvad.Vad(aggressiveness)
        self.vad = vad
        self.classify_window = classify_window
        self.classify_sound = classify_sound
        self.speech_threshold = speech_threshold
        self.hop = int(hop_s * SAMPLE_RATE)
        self.min_speech = int(min_speech_s * SAMPLE_RATE)
        self.window = int(window_s * SAMPLE_RATE)
        self.silence_reset_frames = int(silence_reset_s * SAMPLE_RATE / VAD_FRAME_SAMPLES)
        max_frames = -(-self.window // VAD_FRAME_SAMPLES)
        self._speech: deque[np.ndarray] = deque(maxlen=max_frames)
        self._hop_speech: list[np.ndarray] = []       # VAD-kept frames since the last hop
        self._preroll: deque[np.ndarray] = deque(maxlen=VAD_HANGOVER_FRAMES)
        sound_frames = -(-SOUND_WINDOW_SAMPLES // VAD_FRAME_SAMPLES)
        self._recent: deque[np.ndarray] = deque(maxlen=sound_frames)    # raw audio, last sound window
        self._recent_vad: deque[bool] = deque(maxlen=sound_frames)
        self._pending = np.zeros(0, dtype=np.int16)
        self._hangover = 0
        self._silent_frames = 0
        self._new_speech = 0         # speech frames since the last hop
        self._since_hop = 0          # samples since the last hop
        self.timings = Timings()     # ms per classified speech window
        self.sound_timings = Timings()   # ms per classified sound window
        self.busy_ms = 0.0           # all time spent (VAD + features + models)
        self.audio_s = 0.0           # audio seconds fed

    @property
    def ms_per_audio_s(self) -> float:
        return self.busy_ms / self.audio_s if self.audio_s else 0.0

    def reset(self) -> None:
        """Forget the audio heard so far (a new, unrelated stream); timings and counters stay."""
        for buf in (self._speech, self._preroll, self._recent, self._recent_vad):
            buf.clear()
        self._hop_speech = []
        self._pending = np.zeros(0, dtype=np.int16)
        self._hangover = self._silent_frames = self._new_speech = self._since_hop = 0

    def feed_clip(self, audio: np.ndarray, tail_s: float = 0.0,
                  block_s: float = 0.1) -> list[tuple[ModalityReading | None, float, dict[str, Any]]]:
        """Play a whole clip (float in [-1, 1] or int16), then ``tail_s`` of silence, in
        ``block_s`` blocks as a microphone would, from a fresh stream; every hop's result with
        times in seconds from the clip's start."""
        x = np.asarray(audio)
        if x.dtype != np.int16:
            x = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)
        pcm = np.concatenate([x, np.zeros(int(tail_s * SAMPLE_RATE), np.int16)])
        block = max(1, int(block_s * SAMPLE_RATE))
        self.reset()
        out = []
        for k in range(0, len(pcm), block):
            chunk = pcm[k:k + block]
            out += self.feed(chunk, (k + len(chunk)) / SAMPLE_RATE)
        return out

    def feed(self, samples: np.ndarray, t_end: float) -> list[tuple[ModalityReading | None, float, dict[str, Any]]]:
        """New int16 audio whose last sample was captured at ``t_end`` -> one (reading or None,
        t, detail) per hop boundary crossed."""
        start = time.perf_counter()
        self.audio_s += len(samples) / SAMPLE_RATE
        x = np.concatenate([self._pending, np.asarray(samples, dtype=np.int16)]) if len(self._pending) else \
            np.asarray(samples, dtype=np.int16)
        n_frames = len(x) // VAD_FRAME_SAMPLES
        self._pending = x[n_frames * VAD_FRAME_SAMPLES:].copy()
        out = []
        for i in range(n_frames):
            frame = x[i * VAD_FRAME_SAMPLES:(i + 1) * VAD_FRAME_SAMPLES]
            self._vad_frame(frame)
            self._since_hop += VAD_FRAME_SAMPLES
            if self._since_hop >= self.hop:
                self._since_hop -= self.hop
                remaining = len(x) - (i + 1) * VAD_FRAME_SAMPLES
                out.append(self._hop(t_end - remaining / SAMPLE_RATE))
        self.busy_ms += (time.perf_counter() - start) * 1000.0
        return out

    def _vad_frame(self, frame: np.ndarray) -> None:
        speech = self.vad.is_speech(frame.tobytes(), SAMPLE_RATE)
        self._recent.append(frame)
        self._recent_vad.append(speech)
        if speech:
            if self._hangover == 0 and self._preroll:      # speech starts: keep the context before it
                self._hop_speech.extend(self._preroll)
                self._preroll.clear()
            self._hop_speech.append(frame)
            self._hangover = VAD_HANGOVER_FRAMES
            self._new_speech += 1
            self._silent_frames = 0
            return
        self._silent_frames += 1
        if self._hangover > 0:
            self._hangover -= 1
            self._hop_speech.append(frame)
        else:
            self._preroll.append(frame)
        if self._silent_frames >= self.silence_reset_frames:
            self._speech.clear()

    def _sound(self) -> np.ndarray | None:
        """The sound model's probabilities for the last window, None when webrtcvad heard nothing."""
        if self.classify_sound is None or not any(self._recent_vad):
            return None
        start = time.perf_counter()
        audio = np.concatenate(list(self._recent))[-SOUND_WINDOW_SAMPLES:].astype(np.float32) / 32768.0
        probs = np.asarray(self.classify_sound(audio), dtype=np.float64)
        self.sound_timings.add((time.perf_counter() - start) * 1000.0)
        return probs

    def _hop(self, t: float) -> tuple[ModalityReading | None, float, dict[str, Any]]:
        sound = self._sound()
        new = self._new_speech
        self._new_speech = 0
        is_speech = self.classify_sound is None or (sound is not None and sound[SPEECH] >= self.speech_threshold)
        if is_speech:
            self._speech.extend(self._hop_speech)
        else:
            new = 0    # not speech: the hop's audio never reaches the speech-emotion model
        self._hop_speech = []
        speech_samples = len(self._speech) * VAD_FRAME_SAMPLES
        detail: dict[str, Any] = {"speech_s": round(speech_samples / SAMPLE_RATE, 2),
                                  "new_speech_s": round(new * VAD_FRAME_SAMPLES / SAMPLE_RATE, 2),
                                  "sound": None if sound is None else [round(float(p), 4) for p in sound]}
        if new == 0 or speech_samples < self.min_speech:
            return None, t, detail
        start = time.perf_counter()
        audio = np.concatenate(list(self._speech))[-self.window:]
        probs = np.asarray(self.classify_window(audio.astype(np.float32) / 32768.0), dtype=np.float64)
        ms = (time.perf_counter() - start) * 1000.0
        self.timings.add(ms)
        probs = probs / max(float(probs.sum()), 1e-9)
        coverage = min(1.0, speech_samples / self.window)
        detail["latency_ms"] = round(ms, 2)
        reading = ModalityReading("voice", t, tuple(float(p) for p in probs),
                                  float(probs.max()) * coverage, detail)
        return reading, t, detail


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
