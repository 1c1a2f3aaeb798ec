"""scripts/face_conditions.py: the room conditions and the camera placement of 48x48 crops."""

from __future__ import annotations

import numpy as np
import pytest
from script_loader import load_script

face_conditions = load_script("face_conditions")


@pytest.fixture()
def faces() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(40, 220, (5, 48, 48), dtype=np.uint8)


def test_dim_conditions_scale_brightness_and_add_noise(faces: np.ndarray) -> None:
    for name, gain in (("dim30", 0.30), ("dim15", 0.15)):
        out = face_conditions.apply_condition(faces, name)
        assert out.dtype == np.uint8 and out.shape == faces.shape
        residual = out.astype(float) - faces * gain
        assert abs(residual.mean()) < 0.5 and 3.0 < residual.std() < 5.0
        np.testing.assert_array_equal(out, face_conditions.apply_condition(faces, name))   # seeded


def test_blur_and_lower_half(faces: np.ndarray) -> None:
    blurred = face_conditions.apply_condition(faces, "blur2")
    assert blurred.shape == faces.shape and np.diff(blurred.astype(float), axis=2).std() < 0.3 * np.diff(
        faces.astype(float), axis=2).std()
    covered = face_conditions.apply_condition(faces[0], "lower_half")
    assert (covered[24:] == 128).all()
    np.testing.assert_array_equal(covered[:24], faces[0, :24])
    with pytest.raises(ValueError, match="dim30"):
        face_conditions.apply_condition(faces, "fog")


def test_place_in_frame() -> None:
    crop = np.zeros((48, 48), np.uint8)
    crop[:, :24] = 255                                           # bright left half
    frame = face_conditions.place_in_frame(crop)
    assert frame.shape == (320, 320, 3) and frame.dtype == np.uint8
    assert frame[0, 0, 0] == 128 and frame[160, 100, 0] == 255 and frame[160, 220, 0] == 0
    turned = face_conditions.place_in_frame(crop, 90)            # counter-clockwise: left half goes down
    assert turned[220, 160, 0] == 255 and turned[100, 160, 0] == 0 and turned[0, 0, 0] == 128
