"""Facial-expression classification: crop preprocessing and the int8 TFLite classifier."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.inference.runtime import ModelError, TFLiteModel
from edge.labels import NUM_LABELS

FACE_INPUT_SIZE = 48


def preprocess_face(crop: np.ndarray) -> np.ndarray:
    """A face crop (grayscale HxW or BGR HxWx3, uint8) -> float32 [48,48,1] in [0, 1].

    The same function feeds training-time evaluation, ``scripts/evaluate.py`` and the service.
    """
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if crop.shape != (FACE_INPUT_SIZE, FACE_INPUT_SIZE):
        interp = cv2.INTER_AREA if min(crop.shape) > FACE_INPUT_SIZE else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (FACE_INPUT_SIZE, FACE_INPUT_SIZE), interpolation=interp)
    return (crop.astype(np.float32) * (1.0 / 255.0))[:, :, None]


class FaceClassifier:
    """Emotion probabilities (canonical order) for face crops."""

    def __init__(self, path: str | Path, num_threads: int = 1):
        self.model = TFLiteModel(path, num_threads=num_threads, name="face_expression")
        shape = self.model.input_shape
        if len(shape) != 4 or shape[1:] != (FACE_INPUT_SIZE, FACE_INPUT_SIZE, 1):
            raise ModelError(f"face model {path} expects input {shape}, not [1,48,48,1]; "
                             "use a model made by scripts/train_face.py")
        if self.model.outputs[0].shape[-1] != NUM_LABELS:
            raise ModelError(f"face model {path} has {self.model.outputs[0].shape[-1]} outputs, "
                             f"not {NUM_LABELS}; use a model made by scripts/train_face.py")

    def classify(self, crop: np.ndarray) -> np.ndarray:
        """One crop -> probabilities [7]."""
        return self.model.run(preprocess_face(crop)[None])[0][0]

    def classify_batch(self, crops: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """Many crops -> probabilities [N,7] (one invoke per crop; batch 1 is what the box runs)."""
        return np.stack([self.classify(c) for c in crops]) if len(crops) else np.zeros((0, NUM_LABELS))
