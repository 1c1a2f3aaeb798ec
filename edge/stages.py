"""The face and voice stages: what one camera frame or one stretch of audio becomes, and their loaders.

``FaceStage`` (detect, select, align and crop, classify) and ``VoiceStage`` (the streaming speech
gate, the sound-event model every hop, the speech-emotion model on what it calls speech) run in the
pipeline's worker threads (``edge.pipeline``); each keeps its own ``Timings``. ``load_face_stage``
and ``load_voice_stage`` build them from a Config with the models of ``edge.models``, for the
service, scripts/evaluate.py and the benches alike.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from edge.audio_format import SAMPLE_RATE
from edge.capture.camera import Frame
from edge.config import Config
from edge.events import ModalityReading
from edge.fusion import distress_score
from edge.inference.sound_events import SOUND_WINDOW_SAMPLES, SPEECH
from edge.inference.voice_features import VAD_FRAME_SAMPLES, SpeechGate
from edge.labels import LABELS
from edge.models import FACE_EXPRESSION, SOUND_EVENTS, VOICE_EMOTION, face_detector


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

    ``align`` (default) detects with ``RollSearch`` (quarter turns of the frame for faces on their
    side, the orientation remembered from frame to frame) and crops with ``align_face``
    (``edge.inference.face_align``); ``align=False`` is the unaligned path: one detector call and
    ``crop_face``. ``reset()`` forgets the stream (evaluation judges each frame on its own).

    ``detect_every`` > 1 runs the detector on one frame in that many and reuses its faces on the
    frames between, as long as each face's part of the frame stays still (``_Still``: its small grey
    thumbnail within ``STILL_GREY_LEVELS`` of the one at detection time); any movement, a new frame
    size or a frame without a face detects again at once. The detector is most of the stage's cost,
    and a patient in bed mostly lies still."""

    def __init__(self, detector: Detector, classifier: Classifier, *, select: str = "largest",
                 margin: float = 0.15, distress_weights: dict[str, float] | None = None,
                 select_faces: Callable[..., list[Any]] | None = None,
                 crop_face: Callable[..., np.ndarray] | None = None, align: bool = True,
                 detect_every: int = 1):
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, not {detect_every}")
        if select_faces is None or crop_face is None:
            from edge.inference import detector as det_mod
            from edge.inference import face_align

            select_faces = select_faces or det_mod.select_faces
            crop_face = crop_face or (face_align.align_face if align else det_mod.crop_face)
        self.roll_search: Any = None   # face_align.RollSearch when aligning
        if align:
            from edge.inference.face_align import RollSearch

            self.roll_search = RollSearch(detector)
            self._detect: Callable[[np.ndarray], list[Any]] = self.roll_search.detect
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
        self.detect_every = detect_every
        self._still: _Still | None = None    # the faces of the last detection, while they stay still
        self.timings = Timings()
        self.detector_calls = 0      # frames on which the detector ran (the others reused its faces)

    def reset(self) -> None:
        """Forget what earlier frames taught (the remembered face orientation, the faces to reuse)."""
        if self.roll_search is not None:
            self.roll_search.reset()
        self._still = None

    def _faces(self, image: np.ndarray) -> tuple[list[Any], bool]:
        """The detections for this frame, and whether they were reused from an earlier frame."""
        if self._still is not None and self._still.holds(image):
            return self._still.dets, True
        dets = self._detect(image)
        self.detector_calls += 1
        self._still = _Still(image, dets, self.detect_every - 1) if self.detect_every > 1 and dets else None
        return dets, False

    def process(self, frame: Frame) -> tuple[ModalityReading | None, dict[str, Any]]:
        """One frame -> (reading, detail); reading is None when no face is in view."""
        start = time.perf_counter()
        dets, reused = self._faces(frame.image)
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
        detail: dict[str, Any] = {"faces": len(dets), "latency_ms": round(ms, 2), "reused": reused}
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


STILL_GREY_LEVELS = 6.0     # mean change of a face's 16x16 grey thumbnail that counts as movement


class _Still:
    """The faces of one detection, reusable on up to ``frames`` later frames of the same size while
    every face's box looks the same (a 16x16 grey thumbnail within ``STILL_GREY_LEVELS``)."""

    def __init__(self, image: np.ndarray, dets: list[Any], frames: int):
        self.dets, self.frames, self.shape = dets, frames, image.shape
        self.thumbs = [self._thumb(image, d) for d in dets]

    @staticmethod
    def _thumb(image: np.ndarray, det: Any) -> np.ndarray | None:
        import cv2

        x, y, bw, bh = _box(det)
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + bw), min(h, y + bh)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        roi = image[y0:y1, x0:x1]
        grey = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY) if roi.ndim == 3 else roi
        return cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)

    def holds(self, image: np.ndarray) -> bool:
        """Whether this frame may reuse the faces (and count one more reuse)."""
        if self.frames <= 0 or image.shape != self.shape:
            return False
        for det, ref in zip(self.dets, self.thumbs, strict=True):
            now = self._thumb(image, det)
            if ref is None or now is None or float(np.mean(np.abs(now - ref))) > STILL_GREY_LEVELS:
                return False
        self.frames -= 1
        return True


# ----------------------------------------------------------------------------------- voice stage

WindowClassifier = Callable[[np.ndarray], np.ndarray]


class VoiceStage:
    """Streaming sound-event gating and speech-emotion classification.

    Every 30 ms frame goes through the speech gate (``voice_features.SpeechGate``: webrtcvad, a
    cheap first gate) and into a one-window ring of raw audio. Every ``hop_s`` the sound-event model (``classify_sound``) labels the last
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
        self.gate = SpeechGate(aggressiveness, vad=vad)
        self.classify_window = classify_window
        self.classify_sound = classify_sound
        self.speech_threshold = speech_threshold
        self.hop = int(hop_s * SAMPLE_RATE)
        self.min_speech = int(min_speech_s * SAMPLE_RATE)
        self.window = int(window_s * SAMPLE_RATE)
        self.silence_reset_frames = int(silence_reset_s * SAMPLE_RATE / VAD_FRAME_SAMPLES)
        max_frames = -(-self.window // VAD_FRAME_SAMPLES)
        self._speech: deque[np.ndarray] = deque(maxlen=max_frames)
        self._hop_speech: list[np.ndarray] = []       # gate-kept frames since the last hop
        sound_frames = -(-SOUND_WINDOW_SAMPLES // VAD_FRAME_SAMPLES)
        self._recent: deque[np.ndarray] = deque(maxlen=sound_frames)    # raw audio, last sound window
        self._recent_vad: deque[bool] = deque(maxlen=sound_frames)
        self._pending = np.zeros(0, dtype=np.int16)
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
        for buf in (self._speech, self._recent, self._recent_vad):
            buf.clear()
        self.gate.reset()
        self._hop_speech = []
        self._pending = np.zeros(0, dtype=np.int16)
        self._new_speech = self._since_hop = 0

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
        speech, kept = self.gate.frame(frame)
        self._recent.append(frame)
        self._recent_vad.append(speech)
        self._hop_speech.extend(kept)
        if speech:
            self._new_speech += 1
        elif self.gate.silent_frames >= self.silence_reset_frames:
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


# ------------------------------------------------------------------------------------- loaders

def load_face_stage(cfg: Config, align: bool = True, classifier: Any = None) -> FaceStage:
    """The service's face stage. ``align=False`` is the unaligned path and ``classifier`` replaces
    the expression model (both for scripts/evaluate.py and its tests)."""
    detector = face_detector(cfg).load(cfg)
    if classifier is None:
        classifier = FACE_EXPRESSION.load(cfg)
    stage = FaceStage(detector, classifier, select=cfg.face.select, margin=cfg.face.margin,
                      detect_every=cfg.face.detect_every,
                      distress_weights=cfg.fusion.weights_for("face"), align=align)
    model = getattr(classifier, "model", None)
    stage.models = [detector.info()] + ([model.info()] if model is not None else [])  # type: ignore[attr-defined]
    return stage


def load_voice_stage(cfg: Config) -> VoiceStage:
    """The service's voice stage: the sound-event and speech-emotion models behind the speech gate."""
    sound = SOUND_EVENTS.load(cfg)
    clf = VOICE_EMOTION.load(cfg)
    stage = VoiceStage(clf.classify_window, aggressiveness=cfg.voice.vad_aggressiveness,
                       hop_s=cfg.voice.hop_s, min_speech_s=cfg.voice.min_speech_s,
                       window_s=getattr(clf, "window_s", 1.5), classify_sound=sound.classify_window,
                       speech_threshold=cfg.voice.speech_threshold)
    stage.models = [sound.model.info(), clf.model.info()]  # type: ignore[attr-defined]
    return stage
