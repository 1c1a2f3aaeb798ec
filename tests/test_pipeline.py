"""Pipeline stages alone (fake detector/classifier/VAD) and the whole pipeline on file sources played
as fast as possible, asserting on the EmotionStates it publishes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from pipeline_media import (
    DETECTOR,
    FACE_MODEL,
    SR,
    FixedClassifier,
    empty_frame,
    face_frame,
    onehot,
    voiced,
    write_video,
    write_wav,
)

from edge import config
from edge.capture.camera import Frame
from edge.events import EmotionState
from edge.fusion import distress_score
from edge.inference.detector import Detection
from edge.service import Service
from edge.stages import FaceStage, VoiceStage


def Det(x: float, y: float, w: float, h: float) -> Detection:
    return Detection(x, y, w, h, score=0.9, keypoints=())


class FakeDetector:
    def __init__(self, dets: list[Det]):
        self.dets = dets

    def detect(self, frame: np.ndarray) -> list[Det]:
        return list(self.dets)


class CropClassifier:
    """Label by crop size: the small face is afraid, the big one is happy."""

    def classify(self, crop: np.ndarray) -> np.ndarray:
        return onehot("fear" if crop.shape[0] < 100 else "happy")


FRAME = Frame(np.zeros((480, 640, 3), np.uint8), 12.5, 0)
BIG, SMALL = Det(10, 10, 200, 200), Det(400, 300, 60, 60)


# --------------------------------------------------------------------------------- face stage

def test_face_stage_no_face_is_absent() -> None:
    stage = FaceStage(FakeDetector([]), FixedClassifier("happy"))
    reading, detail = stage.process(FRAME)
    assert reading is None and detail["faces"] == 0 and stage.timings.count == 1


def test_face_stage_largest_face() -> None:
    stage = FaceStage(FakeDetector([SMALL, BIG]), CropClassifier(), select="largest")
    reading, detail = stage.process(FRAME)
    assert reading is not None and reading.t == 12.5 and reading.modality == "face"
    assert np.argmax(reading.probs) == 1 and reading.confidence == pytest.approx(0.9)   # happy
    assert detail["faces"] == 2 and detail["box"] == [10, 10, 200, 200]


def test_face_stage_waiting_room_scores_every_face() -> None:
    stage = FaceStage(FakeDetector([BIG, SMALL]), CropClassifier(), select="all",
                      distress_weights={"fear": 1.0})
    reading, detail = stage.process(FRAME)
    assert reading is not None and np.argmax(reading.probs) == 4          # the most distressed: fear
    assert [s["label"] for s in detail["scored"]] == ["happy", "fear"]


class CountingDetector(FakeDetector):
    def __init__(self, dets: list[Det]):
        super().__init__(dets)
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Det]:
        self.calls += 1
        return super().detect(frame)


def textured(shift: int = 0, seed: int = 0) -> Frame:
    """A frame with texture under BIG's box (so a move or a change shows), shifted ``shift`` px."""
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :] = 90
    rng = np.random.default_rng(seed)
    patch = rng.integers(0, 255, (25, 25), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    image[10 + shift:210 + shift, 10:210] = patch[:, :, None]
    return Frame(image, 1.0, 0)


def test_face_stage_reuses_a_still_face_and_detects_again_when_it_moves() -> None:
    det = CountingDetector([BIG])
    stage = FaceStage(det, CropClassifier(), detect_every=3)
    still = textured()
    details = [stage.process(still)[1] for _ in range(7)]
    # detected on frames 1, 4 and 7; the two frames after each detection reuse its face
    assert det.calls == 3 == stage.detector_calls
    assert [d["reused"] for d in details] == [False, True, True, False, True, True, False]
    assert all(d["faces"] == 1 and d["box"] == [10, 10, 200, 200] for d in details)
    # movement under the face: the next frame is detected again, whatever the count
    stage.process(textured(shift=12))
    assert det.calls == 4
    stage.process(textured(seed=1))           # another face in the same place
    assert det.calls == 5
    # a different frame size never reuses; reset() forgets the faces
    stage.process(Frame(np.full((240, 320, 3), 90, np.uint8), 1.0, 0))
    assert det.calls == 6
    stage.process(still)
    stage.reset()
    stage.process(still)
    assert det.calls == 8


def test_face_stage_detects_every_frame_by_default_and_when_no_face() -> None:
    det = CountingDetector([BIG])
    stage = FaceStage(det, CropClassifier())
    for _ in range(4):
        stage.process(textured())
    assert det.calls == 4
    empty = CountingDetector([])
    stage = FaceStage(empty, CropClassifier(), detect_every=5)
    for _ in range(4):
        stage.process(textured())
    assert stage.detector_calls == 4         # nothing to reuse: an empty bed is searched every frame
    with pytest.raises(ValueError, match="detect_every must be at least 1"):
        FaceStage(det, CropClassifier(), detect_every=0)


# -------------------------------------------------------------------------------- voice stage

class EnergyVad:
    def is_speech(self, pcm: bytes, rate: int) -> bool:
        return bool(np.abs(np.frombuffer(pcm, "<i2")).mean() > 1000)


def test_voice_stage_silence_gives_no_reading() -> None:
    clf = FixedClassifier("sad")
    stage = VoiceStage(clf, vad=EnergyVad(), hop_s=0.48, min_speech_s=0.6)   # hop = 16 VAD frames
    results = stage.feed(np.zeros(int(SR * 1.92), np.int16), t_end=1.92)
    assert [r for r, _, _ in results] == [None] * 4 and clf.calls == 0
    assert [t for _, t, _ in results] == pytest.approx([0.48, 0.96, 1.44, 1.92])
    assert stage.audio_s == pytest.approx(1.92)


def test_voice_stage_classifies_speech_windows_only() -> None:
    clf = FixedClassifier("sad")
    stage = VoiceStage(clf, vad=EnergyVad(), hop_s=0.48, min_speech_s=0.6, window_s=1.5)
    loud = np.full(int(SR * 1.92), 5000, np.int16)
    results = stage.feed(np.concatenate([np.zeros(int(SR * 0.96), np.int16), loud]), t_end=2.88)
    kinds = [r is not None for r, _, _ in results]
    assert kinds == [False, False, False, True, True, True]   # 0.6 s of speech needed first
    reading = results[-1][0]
    assert reading is not None and reading.modality == "voice" and np.argmax(reading.probs) == 2
    assert reading.detail["speech_s"] == pytest.approx(1.5, abs=0.05)     # window: last 1.5 s of speech
    # silence after speech: no new speech -> absent, even though the buffer still holds speech
    results = stage.feed(np.zeros(int(SR * 0.96), np.int16), t_end=3.84)
    assert all(r is None for r, _, _ in results)
    assert stage.ms_per_audio_s > 0


def test_voice_stage_real_vad_on_speechlike_signal() -> None:
    clf = FixedClassifier("angry")
    stage = VoiceStage(clf, aggressiveness=2)
    audio = (voiced(2.0) * 32767).astype(np.int16)
    results = stage.feed(audio, t_end=2.0)
    assert any(r is not None for r, _, _ in results) and clf.calls > 0


# ----------------------------------------------------------------------------- whole pipeline

def run_files(tmp_path: Path, video_frame: np.ndarray | None, audio: np.ndarray | None,
              face_clf: object = None, voice_clf: object = None) -> tuple[list[EmotionState], Service]:
    """Play the media once as fast as possible through the real Service; return every state."""
    if not DETECTOR.is_file():
        pytest.skip("BlazeFace model absent; run `python scripts/fetch_face_detector.py`")
    raw: dict[str, dict] = {
        "service": {"state_dir": str(tmp_path / "state")},
        "face": {"analysis_fps": 120.0},
        "fusion": {"smoothing_s": 0.5},
        "camera": {"backend": "none"}, "microphone": {"backend": "none"},
    }
    if video_frame is not None:
        raw["camera"] = {"backend": "file", "file": str(write_video(tmp_path / "v.avi", video_frame, frames=30)),
                         "realtime": False, "loop": False}
    if audio is not None:
        raw["microphone"] = {"backend": "file", "file": str(write_wav(tmp_path / "a.wav", audio)),
                             "realtime": False, "loop": False}
    cfg = config.from_dict(raw)
    face_stage = None
    if face_clf is not None:
        from edge.inference.detector import FaceDetector

        face_stage = FaceStage(FaceDetector(DETECTOR), face_clf, distress_weights=cfg.fusion.distress_weights)
    voice_stage = VoiceStage(voice_clf, aggressiveness=2) if voice_clf is not None else None
    service = Service(cfg, tasks=[], stop_when_sources_end=True, face_stage=face_stage, voice_stage=voice_stage)
    sub = service.hub.states.subscribe(maxsize=100_000)

    async def go() -> None:
        await asyncio.wait_for(service.run(), timeout=60)

    asyncio.run(go())
    states = []
    while sub.pending():
        states.append(sub.get_nowait())
    return states, service


def test_pipeline_face_gives_its_label_and_silence_no_voice(tmp_path: Path) -> None:
    states, service = run_files(tmp_path, face_frame(), np.zeros(SR * 2, np.float32),
                                face_clf=FixedClassifier("happy"), voice_clf=FixedClassifier("sad"))
    assert service.pipeline is not None and service.pipeline.frames_analysed == 30
    face_states = [s for s in states if "face" in s.live]
    assert len(face_states) >= 30
    last = states[-1]
    assert last.label == "happy" and last.live == ("face",)           # silence: voice absent
    assert last.modalities["face"]["faces"] == 1 and last.modalities["voice"]["live"] is False
    assert last.distress < 0.1 and 0 <= last.t <= 2.5                  # media time


def test_pipeline_no_face_and_speech(tmp_path: Path) -> None:
    states, _ = run_files(tmp_path, empty_frame(), voiced(2.0), face_clf=FixedClassifier("happy"),
                          voice_clf=FixedClassifier("angry"))
    assert states and all("face" not in s.live for s in states)      # no face: face modality absent
    assert all(s.modalities["face"]["present"] is False for s in states if "present" in s.modalities["face"])
    voice_states = [s for s in states if "voice" in s.live]
    assert voice_states and voice_states[-1].label == "angry"
    last = voice_states[-1]
    assert last.distress == pytest.approx(distress_score(last.probs, config.FusionConfig().distress_weights), abs=1e-3)


def test_pipeline_with_face_model_smile_is_happy(tmp_path: Path) -> None:
    if not FACE_MODEL.is_file():
        pytest.skip("face_expression_int8.tflite not trained yet")
    from edge.inference.face import FaceClassifier

    states, _ = run_files(tmp_path, face_frame(), None, face_clf=FaceClassifier(FACE_MODEL))
    assert states[-1].label == "happy" and states[-1].live == ("face",)


def test_face_stage_error_is_reported_and_recovers(tmp_path: Path) -> None:
    class Flaky:
        calls = 0

        def classify(self, crop: np.ndarray) -> np.ndarray:
            Flaky.calls += 1
            if Flaky.calls == 3:
                raise RuntimeError("tensor arena exhausted")
            return onehot("happy")

    states, service = run_files(tmp_path, face_frame(), None, face_clf=Flaky())
    assert Flaky.calls == 30 and service.pipeline is not None and service.pipeline.frames_analysed == 29
    assert service.hub.health["face"].status == "ok" and states[-1].label == "happy"
