"""BlazeFace face detection (MediaPipe short/full-range TFLite models) with numpy post-processing.

Pipeline: BGR frame -> letterbox to the model's square input (RGB, float32 in [-1, 1]) -> model ->
decode SSD boxes and 6 keypoints against generated anchors -> sigmoid scores -> weighted NMS (as
MediaPipe does) -> frame pixel coordinates. Models come from ``scripts/fetch_face_detector.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.inference.runtime import ModelError, TFLiteModel

NUM_KEYPOINTS = 6  # MediaPipe order: right eye, left eye, nose tip, mouth, right ear, left ear
RAW_SCORE_LIMIT = 80.0  # MediaPipe clips at 100; 80 keeps float32 sigmoid finite
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold
SELECT_MODES = ("largest", "central", "all")

# (input size, anchor count) -> SSD anchor layout (MediaPipe face_detection_*_range_common.pbtxt):
# strides per layer and whether each layer adds an interpolated-scale anchor (2 anchors a cell).
_ANCHOR_CONFIGS: dict[tuple[int, int], tuple[tuple[int, ...], bool]] = {
    (128, 896): ((8, 16, 16, 16), True),  # short range: 16x16x2 + 8x8x6
    (192, 2304): ((4,), False),  # full range: 48x48x1
}


@dataclass(frozen=True)
class Detection:
    """One face in frame pixel coordinates: box top-left (x, y), size (w, h), score in [0, 1] and
    6 (x, y) keypoints in MediaPipe order. The box may extend slightly past the frame edge."""

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: tuple[tuple[float, float], ...]

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


def ssd_anchors(input_size: int, strides: tuple[int, ...], interpolated: bool) -> np.ndarray:
    """Anchor centres [A, 2] (x, y in [0, 1]) as MediaPipe's SsdAnchorsCalculator makes them with
    fixed anchor size and one aspect ratio; consecutive layers of equal stride share a grid."""
    per_layer = 2 if interpolated else 1
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = input_size // strides[i]
        centers = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        yy, xx = np.meshgrid(centers, centers, indexing="ij")
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(grid, per_layer * (j - i), axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one [x0, y0, x1, y1] box with many [K, 4]."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster around the best remaining box is replaced by the
    score-weighted mean of its boxes and keypoints, keeping the best score."""
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    results = []
    remaining = np.arange(len(scores))
    while remaining.size:
        overlap = _iou(boxes[remaining[0]], boxes[remaining]) > iou_threshold
        cluster = remaining[overlap]
        weights = scores[cluster][:, None]
        total = float(weights.sum())
        box = (boxes[cluster] * weights).sum(axis=0) / total
        kps = (keypoints[cluster] * weights[:, :, None]).sum(axis=0) / total
        results.append((box, kps, float(scores[remaining[0]])))
        remaining = remaining[~overlap]
    return results


class FaceDetector:
    """Faces in a BGR (or grayscale) frame, via a BlazeFace TFLite model."""

    def __init__(self, path: str | Path, num_threads: int = 1, min_score: float = 0.6):
        self.model = TFLiteModel(path, num_threads=num_threads, name="face_detector")
        self.min_score = float(min_score)
        shape = self.model.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ModelError(f"face detector {path} expects input {shape}, not [1,S,S,3]; use a "
                             "BlazeFace model from scripts/fetch_face_detector.py")
        self.input_size = int(shape[1])
        by_width = {s.shape[-1]: i for i, s in enumerate(self.model.outputs)}
        if len(self.model.outputs) != 2 or set(by_width) != {16, 1}:
            raise ModelError(f"face detector {path} has outputs {[s.shape for s in self.model.outputs]}, "
                             "not boxes [1,A,16] and scores [1,A,1]; use a BlazeFace model from "
                             "scripts/fetch_face_detector.py")
        self._box_out, self._score_out = by_width[16], by_width[1]
        num_anchors = int(self.model.outputs[self._box_out].shape[1])
        layout = _ANCHOR_CONFIGS.get((self.input_size, num_anchors))
        if layout is None:
            raise ModelError(f"face detector {path}: no anchor layout for input {self.input_size} "
                             f"with {num_anchors} anchors; use the short- or full-range BlazeFace model")
        self.anchors = ssd_anchors(self.input_size, *layout)

    def _letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """Frame -> model input [1,S,S,3] float32 in [-1, 1], plus (scale, pad_x, pad_y)."""
        if frame.ndim == 2:
            to_rgb = cv2.COLOR_GRAY2RGB
        elif frame.ndim == 3 and frame.shape[2] == 3:
            to_rgb = cv2.COLOR_BGR2RGB
        else:
            raise ValueError(f"expected a BGR or grayscale uint8 frame, got shape {frame.shape}")
        h, w = frame.shape[:2]
        size = self.input_size
        scale = min(size / w, size / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        # resize, then convert: the same pixels as converting first (the resize treats each channel
        # alike), for a colour conversion of the small image instead of the whole frame
        resized = cv2.cvtColor(cv2.resize(frame, (nw, nh), interpolation=interp), to_rgb)
        pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
        tensor = canvas.astype(np.float32) * (2.0 / 255.0) - 1.0
        return tensor[None], scale, pad_x, pad_y

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        """All faces scoring at least min_score, best first, in frame pixel coordinates."""
        tensor, scale, pad_x, pad_y = self._letterbox(frame_bgr)
        outputs = self.model.run(tensor)
        raw = outputs[self._box_out][0]
        logits = np.clip(outputs[self._score_out][0, :, 0], -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        size = float(self.input_size)
        anchors = self.anchors[keep]
        raw = raw[keep]
        cx = raw[:, 0] / size + anchors[:, 0]
        cy = raw[:, 1] / size + anchors[:, 1]
        bw, bh = raw[:, 2] / size, raw[:, 3] / size
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = raw[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) / size + anchors[:, None, :]
        valid = (bw > 0) & (bh > 0)
        detections = []
        for box, kp, score in weighted_nms(boxes[valid], kps[valid], scores[keep][valid]):
            # normalised letterboxed coords -> model pixels -> frame pixels
            x0, y0 = (box[0] * size - pad_x) / scale, (box[1] * size - pad_y) / scale
            x1, y1 = (box[2] * size - pad_x) / scale, (box[3] * size - pad_y) / scale
            points = tuple((float((px * size - pad_x) / scale), float((py * size - pad_y) / scale))
                           for px, py in kp)
            detections.append(Detection(float(x0), float(y0), float(x1 - x0), float(y1 - y0),
                                        score, points))
        return detections

    def info(self) -> dict[str, Any]:
        return {**self.model.info(), "min_score": self.min_score, "anchors": int(len(self.anchors))}


def crop_face(frame: np.ndarray, det: Detection, margin: float = 0.15) -> np.ndarray:
    """Grayscale uint8 crop of a square around det's box, grown by ``margin`` x its size on each
    side and clipped to the frame (so it is not square where it meets the frame edge)."""
    side = max(det.w, det.h) * (1.0 + 2.0 * margin)
    cx, cy = det.center
    h, w = frame.shape[:2]
    x0, y0 = max(0, int(round(cx - side / 2))), max(0, int(round(cy - side / 2)))
    x1, y1 = min(w, int(round(cx + side / 2))), min(h, int(round(cy + side / 2)))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"detection {det} lies outside the {w}x{h} frame")
    crop = frame[y0:y1, x0:x1]
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(crop)


def select_faces(dets: list[Detection], frame_shape: tuple[int, ...], mode: str = "largest") -> list[Detection]:
    """Pick the patient's face: ``largest`` (biggest box), ``central`` (box centre nearest the frame
    centre) or ``all`` (every face, largest first). Empty in, empty out."""
    if mode not in SELECT_MODES:
        raise ValueError(f"face selection mode {mode!r} is not allowed; choose one of {', '.join(SELECT_MODES)}")
    if not dets:
        return []
    if mode == "all":
        return sorted(dets, key=lambda d: -d.area)
    if mode == "largest":
        return [max(dets, key=lambda d: d.area)]
    fy, fx = frame_shape[0] / 2, frame_shape[1] / 2
    return [min(dets, key=lambda d: (d.center[0] - fx) ** 2 + (d.center[1] - fy) ** 2)]
