"""The committed demo media (edge/demo_media/) opens with OpenCV and soundfile, matches its JSON
segment lists, and the face detector agrees with the segments that should (not) show a face."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
from script_loader import load_script

from edge.inference.detector import FaceDetector

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "edge" / "demo_media"
DETECTOR = ROOT / "models_tflite" / "face_detection_short_range.tflite"
EDGE_FRAMES = 3  # frames next to a segment boundary are not checked


def read_frames(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"OpenCV cannot open {path}"
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


@pytest.fixture(scope="module")
def video_meta() -> dict:
    return json.loads((MEDIA / "demo_video.json").read_text())


@pytest.fixture(scope="module")
def speech_meta() -> dict:
    return json.loads((MEDIA / "demo_speech.json").read_text())


@pytest.fixture(scope="module")
def frames(video_meta: dict) -> list[np.ndarray]:
    return read_frames(MEDIA / video_meta["file"])[0]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    if not DETECTOR.is_file():
        pytest.skip(f"{DETECTOR.name} absent; run `python scripts/fetch_face_detector.py`")
    return FaceDetector(DETECTOR, min_score=0.6)


def test_folder_is_small_and_documented(video_meta: dict, speech_meta: dict) -> None:
    files = [p for p in MEDIA.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    provenance = (MEDIA / "PROVENANCE.md").read_text()
    for name in (video_meta["file"], speech_meta["file"], "astronaut", "grace_hopper", "espeak-ng", "public domain"):
        assert name in provenance


def test_video_opens_and_matches_metadata(frames: list[np.ndarray], video_meta: dict) -> None:
    _, fps = read_frames(MEDIA / video_meta["file"])
    assert fps == pytest.approx(video_meta["fps"])
    assert len(frames) == video_meta["frames"]
    assert 20 <= len(frames) / fps <= 30
    assert frames[0].shape == (video_meta["height"], video_meta["width"], 3) == (480, 640, 3)
    segs = video_meta["segments"]
    assert segs[0]["start_s"] == 0 and segs[-1]["end_s"] == pytest.approx(len(frames) / fps)
    assert {s["face"] for s in segs} == {True, False}


def test_speech_opens_and_matches_metadata(speech_meta: dict) -> None:
    path = MEDIA / speech_meta["file"]
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    audio, rate = sf.read(str(path), dtype="float32")
    assert len(audio) / rate == pytest.approx(speech_meta["seconds"], abs=0.01)
    rms: dict[str, list[float]] = {}
    for seg in speech_meta["segments"]:
        part = audio[int(seg["start_s"] * rate):int(seg["end_s"] * rate)]
        rms.setdefault(seg["kind"], []).append(float(np.sqrt(np.mean(part ** 2))))
    assert set(rms) == {"silence", "calm", "distressed"}
    assert max(rms["silence"]) < 0.01 < min(rms["calm"])
    assert min(rms["distressed"]) > max(rms["calm"])  # the distressed voice is louder


def test_detector_agrees_with_segments(frames: list[np.ndarray], video_meta: dict, detector: FaceDetector) -> None:
    fps = video_meta["fps"]
    for seg in video_meta["segments"]:
        first, last = round(seg["start_s"] * fps) + EDGE_FRAMES, round(seg["end_s"] * fps) - EDGE_FRAMES
        for i in range(first, last, 4):
            dets = detector.detect(frames[i])
            if seg["face"]:
                assert len(dets) == 1, f"frame {i} ({seg['kind']}): expected one face, got {len(dets)}"
                assert dets[0].w > 80  # a patient-sized face, not a speck
            else:
                assert dets == [], f"frame {i} ({seg['kind']}): expected no face, got {dets}"


def test_blank_clip_has_no_face(tmp_path: Path, detector: FaceDetector) -> None:
    make = load_script("make_demo_media")
    path = make.write_blank_video(tmp_path / "blank.mp4", seconds=1.0)
    blank, fps = read_frames(path)
    assert len(blank) == 10 and fps == pytest.approx(10)
    assert all(detector.detect(f) == [] for f in blank)
