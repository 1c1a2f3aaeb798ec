"""Media and fakes shared by the pipeline and service tests (generated on the fly, nothing shipped)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from edge.labels import INDEX, LABELS

REPO = Path(__file__).resolve().parents[1]
DETECTOR = REPO / "models_tflite" / "face_detection_short_range.tflite"
FACE_MODEL = REPO / "models_tflite" / "face_expression_int8.tflite"
SR = 16000


def face_frame() -> np.ndarray:
    """640x480 BGR frame with one smiling face (skimage's astronaut portrait)."""
    from skimage import data

    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, 64:576] = cv2.resize(img, (512, 480))
    return frame


def write_video(path: Path, frame: np.ndarray, frames: int = 30, fps: float = 15.0) -> Path:
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


def empty_frame() -> np.ndarray:
    return np.full((480, 640, 3), 90, np.uint8)


def voiced(seconds: float, f0: float = 140.0) -> np.ndarray:
    """A speech-like harmonic signal with a syllable rhythm (webrtcvad calls it speech)."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 + 20 * np.sin(2 * np.pi * 3 * t)) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    return (x / np.abs(x).max() * 0.5).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    sf.write(str(path), audio, SR)
    return path


def onehot(label: str, p: float = 0.9) -> np.ndarray:
    probs = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    probs[INDEX[label]] = p
    return probs


class FixedClassifier:
    """Stands in for FaceClassifier / a voice window classifier: always the same label."""

    def __init__(self, label: str, p: float = 0.9):
        self.probs = onehot(label, p)
        self.calls = 0

    def classify(self, crop: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.probs

    __call__ = classify
