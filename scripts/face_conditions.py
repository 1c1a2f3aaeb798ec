"""Room conditions and camera placement for 48x48 face crops, shared by evaluation and training checks.

Conditions (``apply_condition``; one seeded generator per call, so a set always gets the same noise):

- ``dim30``: 30 % brightness with sensor noise: pixels x 0.3, plus Gaussian read noise of
  sigma 4 grey levels, rounded and clipped to 0-255 (a dim room on a small sensor);
- ``dim15``: the same at 15 % brightness;
- ``blur2``: Gaussian blur, sigma 2 pixels (a face out of focus, or moving);
- ``lower_half``: rows 24-47 (mouth and chin) covered with mid-grey (a mask, a blanket, a hand).

Placement (``place_in_frame``), the protocol of ``scripts/evaluate.py face --roll``: the crop is
upscaled (bicubic) to 160x160, centred in a 320x320 mid-grey (128) BGR frame, and the frame is
rotated by the roll about its centre (counter-clockwise on screen for a positive angle; the uncovered
corners are mid-grey too). The face's diagonal (226 px) stays inside the frame at every roll.
"""

from __future__ import annotations

import cv2
import numpy as np

CONDITIONS = ("dim30", "dim15", "blur2", "lower_half")
NOISE_SIGMA = 4.0      # grey levels of sensor read noise for the dim conditions
FACE_PX, FRAME_PX, BORDER_GREY = 160, 320, 128


def apply_condition(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """uint8 faces [N,48,48] (or one [48,48]) as seen under condition ``name``; same shape and dtype."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown face condition {name!r}; choose one of {', '.join(CONDITIONS)}")
    x = np.asarray(images)
    if name in ("dim30", "dim15"):
        gain = 0.30 if name == "dim30" else 0.15
        noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, x.shape)
        return np.clip(np.rint(x.astype(np.float64) * gain + noise), 0, 255).astype(np.uint8)
    if name == "blur2":
        flat = x.reshape(-1, *x.shape[-2:])
        out = np.stack([cv2.GaussianBlur(im, (0, 0), sigmaX=2.0, borderType=cv2.BORDER_REFLECT101)
                        for im in flat])
        return out.reshape(x.shape)
    out = x.copy()
    out[..., x.shape[-2] // 2:, :] = BORDER_GREY
    return out


def place_in_frame(crop: np.ndarray, roll_deg: float = 0.0) -> np.ndarray:
    """A grey face crop as a camera would frame it: BGR uint8 [320,320,3], face 160 px across in
    the middle, the whole frame rotated by ``roll_deg`` about its centre."""
    face = cv2.resize(crop, (FACE_PX, FACE_PX), interpolation=cv2.INTER_CUBIC)
    pad = (FRAME_PX - FACE_PX) // 2
    frame = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=BORDER_GREY)
    frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if roll_deg:
        m = cv2.getRotationMatrix2D((FRAME_PX / 2.0, FRAME_PX / 2.0), float(roll_deg), 1.0)
        frame = cv2.warpAffine(frame, m, (FRAME_PX, FRAME_PX), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(BORDER_GREY,) * 3)
    return frame
