"""Face alignment: level the eyes with one affine warp, then crop as the service always has.

A patient in bed seldom holds the head upright, while the expression model was trained on upright
faces. BlazeFace already returns both eye keypoints; ``align_face`` rotates the face about the
midpoint of its eyes so that they are level and cuts the same square (box side x (1 + 2 margin),
centred on the box) that ``crop_face`` cuts, in a single ``cv2.warpAffine`` of just that square
(only the part of the frame it covers is converted to grey).
The service (``FaceStage``), ``scripts/evaluate.py face --roll`` and training-time checks all use
this one function.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from edge.inference.detector import crop_face

RIGHT_EYE, LEFT_EYE = 0, 1  # MediaPipe keypoint order, from the subject's view


def eye_roll_deg(det: Any) -> float | None:
    """Roll of the face in degrees: the angle of the line from the subject's right eye (image
    left on an upright face) to the left eye, counter-clockwise positive as seen on screen (image
    y points down). 0 for level eyes, None without two eye keypoints. Rotating the frame by minus this
    angle (``cv2.getRotationMatrix2D``'s sense: positive is counter-clockwise) levels the eyes."""
    kps = getattr(det, "keypoints", ())
    if len(kps) <= LEFT_EYE:
        return None
    (rx, ry), (lx, ly) = kps[RIGHT_EYE], kps[LEFT_EYE]
    if rx == lx and ry == ly:
        return None
    return math.degrees(math.atan2(-(ly - ry), lx - rx))


def eye_midpoint(det: Any) -> tuple[float, float]:
    (rx, ry), (lx, ly) = det.keypoints[RIGHT_EYE], det.keypoints[LEFT_EYE]
    return (rx + lx) / 2.0, (ry + ly) / 2.0


def align_face(frame: np.ndarray, det: Any, margin: float = 0.15) -> np.ndarray:
    """Grayscale uint8 crop of ``det``'s face with the eyes level.

    The frame is rotated about the eye midpoint by the face's roll; the square of side
    max(w, h) x (1 + 2 margin) around the (rotated) box centre is cut in the same warp. Pixels past
    the frame edge repeat the edge (``BORDER_REPLICATE``), so the crop is always square. A detection
    without eye keypoints is cropped unrotated by ``crop_face``. Raises ValueError when the box lies
    outside the frame, as ``crop_face`` does."""
    roll = eye_roll_deg(det)
    if roll is None:
        return crop_face(frame, det, margin)
    h, w = frame.shape[:2]
    cx, cy = det.center
    side = max(det.w, det.h) * (1.0 + 2.0 * margin)
    if cx + side / 2 <= 0 or cy + side / 2 <= 0 or cx - side / 2 >= w or cy - side / 2 >= h:
        raise ValueError(f"detection {det} lies outside the {w}x{h} frame")
    size = max(1, int(round(side)))
    # rotation by -roll (clockwise for a positive roll) about the eye midpoint, then shift the rotated
    # box centre to the middle of the output square
    m = cv2.getRotationMatrix2D(eye_midpoint(det), -roll, 1.0)
    rcx, rcy = m @ np.array([cx, cy, 1.0])
    m[:, 2] += (size / 2.0 - rcx, size / 2.0 - rcy)
    # only the part of the frame the square samples is made grey and warped: its bounding box
    # (plus a pixel for the interpolation), clipped to the frame, so the border still repeats the
    # frame's own edge
    corners = cv2.invertAffineTransform(m) @ np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]],
                                                      dtype=np.float64).T
    x0, y0 = (max(0, int(math.floor(v)) - 2) for v in corners.min(axis=1))
    x1, y1 = min(w, int(math.ceil(corners[0].max())) + 2), min(h, int(math.ceil(corners[1].max())) + 2)
    roi = frame[y0:y1, x0:x1]
    if roi.ndim == 3:
        roi = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)
    m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return cv2.warpAffine(roi, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# ------------------------------------------------------------------------- detection at large roll

UPRIGHT_LIMIT_DEG = 45.0  # a lone face rolled further than this is looked for a quarter turn either way too
SURE_SCORE = 0.75         # ... and so is one the detector is less sure of than this
_TURNS = {"cw": cv2.ROTATE_90_CLOCKWISE, "ccw": cv2.ROTATE_90_COUNTERCLOCKWISE}


def _unturn(det: Any, turn: str, frame_shape: tuple[int, ...]) -> Any:
    """A detection made on ``cv2.rotate(frame, turn)`` in the original frame's coordinates."""
    h, w = frame_shape[:2]
    if turn == "cw":    # original (x, y) -> turned (h - y, x)
        def back(px: float, py: float) -> tuple[float, float]:
            return py, h - px
        x, y = det.y, h - det.x - det.w
    else:               # original (x, y) -> turned (y, w - x)
        def back(px: float, py: float) -> tuple[float, float]:
            return w - py, px
        x, y = w - det.y - det.h, det.x
    return type(det)(x, y, det.h, det.w, det.score, tuple(back(px, py) for px, py in det.keypoints))


def detect_turned(detector: Any, frame: np.ndarray, turn: str) -> list[Any]:
    """Faces found on the frame turned a quarter (``cw`` or ``ccw``; ``cv2.rotate``, no
    interpolation), in the original frame's coordinates."""
    return [_unturn(d, turn, frame.shape) for d in detector.detect(cv2.rotate(frame, _TURNS[turn]))]


def _sure(dets: list[Any]) -> bool:
    """Several faces, or one found with score >= ``SURE_SCORE`` and rolled at most
    ``UPRIGHT_LIMIT_DEG`` (in the coordinates it was detected in): no quarter-turn search needed."""
    if len(dets) > 1:
        return True
    if not dets:
        return False
    roll = eye_roll_deg(dets[0])
    return dets[0].score >= SURE_SCORE and (roll is None or abs(roll) <= UPRIGHT_LIMIT_DEG)


def _detect_oriented(detector: Any, frame: np.ndarray, turn: str | None) -> tuple[list[Any], bool]:
    """Faces found with the frame upright (``turn`` None) or turned a quarter, in the frame's
    coordinates, and whether they are sure (``_sure``, judged before turning them back)."""
    if turn is None:
        dets = detector.detect(frame)
        return dets, _sure(dets)
    raw = detector.detect(cv2.rotate(frame, _TURNS[turn]))
    return [_unturn(d, turn, frame.shape) for d in raw], _sure(raw)


def _best(found: dict[str | None, list[Any]]) -> tuple[str | None, list[Any]]:
    """The orientation whose best face scores highest (a face is surest where it is nearest upright)."""
    hits = [(turn, dets) for turn, dets in found.items() if dets]
    if not hits:
        return None, []
    return max(hits, key=lambda td: max(d.score for d in td[1]))


def detect_any_roll(detector: Any, frame: np.ndarray) -> list[Any]:
    """``detector.detect(frame)``, helped at large roll by quarter turns of the frame.

    BlazeFace misses many faces lying on their side and, when it finds one, often misplaces its
    eyes (on FER+ faces rolled 90 degrees, half of the roll estimates are more than 20 degrees
    off). So unless the frame holds several faces, or one face found with score >= ``SURE_SCORE``
    and rolled at most ``UPRIGHT_LIMIT_DEG``, the frame is also searched turned a quarter clockwise
    and a quarter counter-clockwise, and the orientation whose best face scores highest wins. One
    detector call for a confident upright face, three otherwise (a frame without a face included).
    Detections are in the frame's coordinates. For a video stream, ``RollSearch`` does the same
    with fewer calls."""
    dets, sure = _detect_oriented(detector, frame, None)
    if sure:
        return dets
    return _best({None: dets, **{t: _detect_oriented(detector, frame, t)[0] for t in _TURNS}})[1]


class RollSearch:
    """``detect_any_roll`` for a video stream: remembers the orientation that last found a face
    and searches the other two only when needed.

    Each frame is searched first in the remembered orientation (upright at the start); a sure face
    there (``_sure``) costs one detector call, so a patient lying on the side costs one call a
    frame, not three. A face that is not sure makes the frame searched all three ways, as
    ``detect_any_roll`` does, and the winning orientation is remembered. A frame without any face
    (an empty bed: the common case) costs one call; the full three-way search runs on the first empty
    frame after a face and then every ``search_every`` empty frames, so a face that appears on its
    side is found within that many frames."""

    def __init__(self, detector: Any, search_every: int = 5):
        if search_every < 1:
            raise ValueError(f"search_every must be at least 1, not {search_every}")
        self.detector = detector
        self.search_every = search_every
        self.turn: str | None = None
        self._empty = search_every       # empty frames since the last full search

    def reset(self) -> None:
        """Forget the orientation: the next frame is searched as the first of a stream."""
        self.turn = None
        self._empty = self.search_every

    def detect(self, frame: np.ndarray) -> list[Any]:
        dets, sure = _detect_oriented(self.detector, frame, self.turn)
        if sure:
            self._empty = self.search_every
            return dets
        if not dets and self._empty < self.search_every:
            self._empty += 1
            return []
        found = {self.turn: dets}
        found.update({t: _detect_oriented(self.detector, frame, t)[0] for t in (None, *_TURNS) if t != self.turn})
        turn, best = _best(found)
        if best:
            self.turn, self._empty = turn, self.search_every
        else:
            self._empty = 1
        return best
