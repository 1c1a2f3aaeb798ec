"""Face alignment (edge/inference/face_align.py): eye geometry, quarter-turn detection mapping, and
real faces from the demo video rolled in the image plane. Tests with BlazeFace skip without it
(`python scripts/fetch_face_detector.py`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.camera import Frame
from edge.inference.detector import Detection, FaceDetector, crop_face
from edge.inference.face_align import RollSearch, align_face, detect_any_roll, detect_turned, eye_roll_deg
from edge.stages import FaceStage

ROOT = Path(__file__).resolve().parents[1]
SHORT = ROOT / "models_tflite" / "face_detection_short_range.tflite"
VIDEO = ROOT / "edge" / "demo_media" / "demo_video.mp4"
FACE_FRAME = 40  # the astronaut close-up, upright


def _det(x: float, y: float, w: float, h: float, right_eye: tuple[float, float] = (0, 0),
         left_eye: tuple[float, float] = (0, 0), score: float = 0.9) -> Detection:
    return Detection(x, y, w, h, score, (right_eye, left_eye, (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)))


def _small(crop: np.ndarray) -> np.ndarray:
    return cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(_small(a), _small(b))[0, 1])


def _rotate(frame: np.ndarray, center: tuple[float, float], deg: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D(center, deg, 1.0)
    return cv2.warpAffine(frame, m, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    if not SHORT.is_file():
        pytest.skip(f"{SHORT.name} absent; run `python scripts/fetch_face_detector.py`")
    return FaceDetector(SHORT)


@pytest.fixture(scope="module")
def face_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(VIDEO))
    cap.set(cv2.CAP_PROP_POS_FRAMES, FACE_FRAME)
    ok, frame = cap.read()
    cap.release()
    assert ok, f"cannot read frame {FACE_FRAME} of {VIDEO}"
    return frame


# ----------------------------------------------------------------------------------- geometry

def test_eye_roll_geometry() -> None:
    # image y points down; the subject's right eye is on the image left of an upright face
    assert eye_roll_deg(_det(0, 0, 10, 10, (100, 100), (140, 100))) == pytest.approx(0.0)
    assert eye_roll_deg(_det(0, 0, 10, 10, (100, 100), (140, 60))) == pytest.approx(45.0)   # counter-clockwise
    assert eye_roll_deg(_det(0, 0, 10, 10, (100, 100), (140, 140))) == pytest.approx(-45.0)
    assert eye_roll_deg(_det(0, 0, 10, 10, (100, 100), (100, 60))) == pytest.approx(90.0)
    assert eye_roll_deg(_det(0, 0, 10, 10, (140, 100), (100, 100))) == pytest.approx(180.0)  # upside down
    assert eye_roll_deg(Detection(0, 0, 10, 10, 0.9, ())) is None


def test_align_levels_a_drawn_eye_line() -> None:
    """Two dark 'eyes' on a rolled line come out level, at the crop's centre height band."""
    frame = np.full((200, 200, 3), 200, np.uint8)
    right, left = (80.0, 120.0), (120.0, 80.0)              # rolled 45 degrees counter-clockwise
    for cx, cy in (right, left):
        cv2.circle(frame, (int(cx), int(cy)), 6, (0, 0, 0), -1)
    det = _det(60, 60, 80, 80, right, left)
    crop = align_face(frame, det, margin=0.0)
    assert crop.shape == (80, 80) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop < 100)
    left_half, right_half = ys[xs < 40], ys[xs >= 40]
    assert abs(left_half.mean() - right_half.mean()) < 1.5          # eyes level
    assert abs(xs[xs < 40].mean() - (40 - 28.3)) < 1.5                # 40 px apart, centred
    assert abs(xs[xs >= 40].mean() - (40 + 28.3)) < 1.5


def test_align_without_keypoints_crops_as_before() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    det = Detection(-10, -10, 40, 40, 0.9, ())
    np.testing.assert_array_equal(align_face(frame, det, 0.25), crop_face(frame, det, 0.25))
    with pytest.raises(ValueError):
        align_face(frame, _det(500, 500, 10, 10, (501, 501), (505, 501)))


def test_align_at_the_frame_edge_is_square() -> None:
    frame = np.full((100, 100), 50, np.uint8)
    crop = align_face(frame, _det(-20, 60, 60, 60, (-5, 80), (20, 75)), margin=0.15)
    assert crop.shape == (78, 78)



def test_align_warps_only_the_faces_part_of_the_frame_with_the_same_pixels() -> None:
    """``align_face`` makes grey and warps just the region its square samples; the crop matches a
    warp of the whole grey frame (within one grey level of rounding), inside the frame and past its
    edges, at any roll."""
    rng = np.random.default_rng(3)
    for i in range(200):
        h, w = (int(v) for v in rng.integers(60, 400, 2))
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        side = float(rng.uniform(12, 250))
        x, y = float(rng.uniform(-0.7 * side, w - 0.3 * side)), float(rng.uniform(-0.7 * side, h - 0.3 * side))
        a = np.radians(rng.uniform(-180, 180))
        cx, cy, d = x + side / 2, y + side / 2, 0.3 * side
        det = _det(x, y, side, side, (cx - d * np.cos(a), cy + d * np.sin(a)), (cx + d * np.cos(a), cy - d * np.sin(a)))
        roll = eye_roll_deg(det)
        size = max(1, int(round(side * 1.3)))
        m = cv2.getRotationMatrix2D(((det.keypoints[0][0] + det.keypoints[1][0]) / 2,
                                     (det.keypoints[0][1] + det.keypoints[1][1]) / 2), -roll, 1.0)
        rc = m @ np.array([cx, cy, 1.0])
        m[:, 2] += (size / 2 - rc[0], size / 2 - rc[1])
        whole = cv2.warpAffine(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), m, (size, size),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crop = align_face(frame, det)
        assert crop.shape == whole.shape, i
        assert np.abs(crop.astype(int) - whole).max() <= 1, i
        assert (crop != whole).mean() < 0.01, i


class SquareFinder:
    """A stand-in detector: the bright square's box, eyes on its top edge (image left = right eye)."""

    def detect(self, frame: np.ndarray) -> list[Detection]:
        grey = frame if frame.ndim == 2 else frame[:, :, 0]
        ys, xs = np.nonzero(grey > 128)
        if not len(xs):
            return []
        x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        return [_det(x0, y0, x1 - x0, y1 - y0, (x0, y0), (x1, y0))]


@pytest.mark.parametrize("turn", ["cw", "ccw"])
def test_quarter_turn_maps_back_to_the_frame(turn: str) -> None:
    frame = np.zeros((60, 100, 3), np.uint8)
    frame[10:30, 50:90] = 255                                        # box x 50..90, y 10..30
    (det,) = detect_turned(SquareFinder(), frame, turn)
    assert (det.x, det.y, det.w, det.h) == pytest.approx((50, 10, 40, 20))
    # the 'eyes' were the turned frame's top edge: a quarter turn back, they lie on a vertical side
    (rx, ry), (lx, ly) = det.keypoints[:2]
    assert rx == lx and {rx} <= {50.0, 90.0} and abs(ry - ly) == pytest.approx(20)
    assert abs(eye_roll_deg(det)) == pytest.approx(90.0)


# ---------------------------------------------------------------------------------- real faces

def test_alignment_undoes_roll_on_a_real_face(detector: FaceDetector, face_frame: np.ndarray) -> None:
    (upright,) = detector.detect(face_frame)
    reference = align_face(face_frame, upright)
    rolled = _rotate(face_frame, upright.center, 40.0)
    (det,) = detector.detect(rolled)
    assert eye_roll_deg(det) == pytest.approx(40.0 + eye_roll_deg(upright), abs=10)
    aligned, unaligned = _corr(align_face(rolled, det), reference), _corr(crop_face(rolled, det), reference)
    assert aligned > 0.6 and aligned > unaligned + 0.3, (aligned, unaligned)


@pytest.mark.parametrize("deg", [90.0, -90.0])
def test_face_on_its_side_found_and_aligned(detector: FaceDetector, face_frame: np.ndarray, deg: float) -> None:
    (upright,) = detector.detect(face_frame)
    reference = align_face(face_frame, upright)
    rolled = _rotate(face_frame, upright.center, deg)
    dets = detect_any_roll(detector, rolled)
    assert len(dets) == 1
    assert eye_roll_deg(dets[0]) == pytest.approx(deg, abs=12)
    assert _corr(align_face(rolled, dets[0]), reference) > 0.9


def test_upright_face_costs_one_detector_call(detector: FaceDetector, face_frame: np.ndarray) -> None:
    calls: list[tuple[int, ...]] = []

    class Counting:
        def detect(self, frame: np.ndarray) -> list[Detection]:
            calls.append(frame.shape)
            return detector.detect(frame)

    assert len(detect_any_roll(Counting(), face_frame)) == 1 and len(calls) == 1
    assert detect_any_roll(Counting(), np.full_like(face_frame, 127)) == [] and len(calls) == 4


class Counting:
    """A real detector that counts its calls."""

    def __init__(self, detector: FaceDetector):
        self.detector = detector
        self.calls = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        self.calls += 1
        return self.detector.detect(frame)


def test_roll_search_on_a_stream_remembers_the_orientation(detector: FaceDetector, face_frame: np.ndarray) -> None:
    (upright,) = detector.detect(face_frame)
    on_side = _rotate(face_frame, upright.center, 90.0)
    empty = np.full_like(face_frame, 127)
    counting = Counting(detector)
    search = RollSearch(counting, search_every=4)
    # a face on its side: the first frame searches all three ways, later ones only the winning one
    first = search.detect(on_side)
    assert len(first) == 1 and counting.calls == 3 and search.turn is not None
    for _ in range(3):
        (det,) = search.detect(on_side)
        assert eye_roll_deg(det) == pytest.approx(90.0, abs=12)
    assert counting.calls == 3 + 3
    # the bed empties: the first empty frame searches three ways, then one call a frame, three every 4th
    counting.calls = 0
    assert all(search.detect(empty) == [] for _ in range(9))
    assert counting.calls == 3 + 1 + 1 + 1 + 3 + 1 + 1 + 1 + 3
    # an upright face comes back: found within search_every frames, then one call a frame
    results = [search.detect(face_frame) for _ in range(4)]
    assert results[-1] and search.turn is None
    counting.calls = 0
    assert len(search.detect(face_frame)) == 1 and counting.calls == 1
    search.reset()
    assert search.turn is None
    with pytest.raises(ValueError, match="search_every"):
        RollSearch(counting, search_every=0)


def test_face_stage_aligns_by_default(detector: FaceDetector, face_frame: np.ndarray) -> None:
    seen: list[np.ndarray] = []

    class Keep:
        def classify(self, crop: np.ndarray) -> np.ndarray:
            seen.append(crop)
            return np.full(7, 1 / 7)

    (upright,) = detector.detect(face_frame)
    rolled = Frame(_rotate(face_frame, upright.center, 60.0), 0.0, 0)
    FaceStage(detector, Keep()).process(rolled)
    FaceStage(detector, Keep(), align=False).process(rolled)
    reference = align_face(face_frame, upright)
    assert _corr(seen[0], reference) > _corr(seen[1], reference) + 0.3


def test_bench_roll_search_counts_fewer_calls_and_finds_the_same_faces(detector: FaceDetector) -> None:
    from script_loader import load_script

    rows = load_script("bench").bench_roll_search(empty_frames=20)
    for name, row in rows.items():
        assert row["roll_search_found"] == row["fresh_found"], name
        assert row["roll_search_calls_per_frame"] < row["fresh_calls_per_frame"], name
    assert rows["empty room"]["fresh_calls_per_frame"] == 3.0 and rows["demo video"]["fresh_found"] > 0
