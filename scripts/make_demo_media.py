"""Build the demo media committed under edge/demo_media/ (kept under 2 MB in all).

- ``demo_video.mp4``: 640x480, 10 fps, MPEG-4 Part 2 ('mp4v', read by OpenCV's FFmpeg backend
  with no extra codec), about 22 s, meant to be looped. Pan/zoom over two public-domain portraits (scikit-image's
  ``astronaut``, matplotlib's ``grace_hopper.jpg``) with plain-background segments where no face is
  visible. ``demo_video.json`` lists the segments and whether a face is expected in each.
- ``demo_speech.wav``: 16 kHz mono 16-bit speech from espeak-ng (calm, then distressed-sounding,
  then calm again) separated by silence. ``demo_speech.json`` lists the segments.

    python scripts/make_demo_media.py [--out edge/demo_media]

Needs scikit-image, matplotlib and the espeak-ng program (``apt-get install -y espeak-ng``).
Output is deterministic for a given espeak-ng and OpenCV version.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "edge" / "demo_media"
VIDEO_NAME, AUDIO_NAME = "demo_video.mp4", "demo_speech.wav"
WIDTH, HEIGHT, FPS = 640, 480, 10
SAMPLE_RATE = 16000
MAX_TOTAL_BYTES = 2_000_000
BACKGROUND_BGR = (176, 196, 210)  # a plain, warm hospital-wall beige


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    kind: str  # video: astronaut | grace_hopper | background; audio: silence | calm | distressed
    face: bool | None = None  # video only: a face is expected in these frames
    text: str | None = None  # audio only: the words spoken


@dataclass(frozen=True)
class Shot:
    """A camera move over one photo: window centre (x, y) and width in source pixels, and roll in
    degrees, eased from start to end over ``seconds``, then held still for ``hold_s`` (still frames
    cost almost nothing in the video file; moving ones are what fill it)."""

    kind: str
    seconds: float
    start: tuple[float, float, float, float] = (0, 0, 0, 0)  # cx, cy, window width, roll
    end: tuple[float, float, float, float] = (0, 0, 0, 0)
    hold_s: float = 0.0


SHOTS: tuple[Shot, ...] = (
    Shot("astronaut", 3.0, (256, 200, 460, 0), (226, 135, 280, 0), hold_s=2.0),  # zoom onto the face
    Shot("background", 4.0),  # nobody in view
    Shot("grace_hopper", 3.0, (230, 300, 500, 0), (268, 240, 360, 0), hold_s=2.0),  # pan and zoom
    Shot("background", 3.0),
    Shot("astronaut", 4.0, (226, 140, 300, -12), (226, 140, 340, 12), hold_s=1.0),  # head tilt (roll)
)

# (kind, espeak-ng voice, words/minute, pitch 0-99, amplitude, text); silences in between.
SPEECH: tuple[tuple[str, str, int, int, int, str], ...] = (
    ("calm", "en-us", 140, 35, 90,
     "Good morning. I slept quite well last night, thank you."),
    ("distressed", "en-us", 215, 85, 180,
     "Please help me! It hurts, it really hurts! Nurse! Somebody, please come quickly!"),
    ("calm", "en-gb", 130, 30, 90, "Thank you. That is much better now. I am feeling fine."),
)
SILENCE_S = (1.0, 2.0, 2.0, 1.5)  # before, between and after the utterances
NOISE_RMS = 0.002  # a quiet room's noise floor (about -54 dBFS) under everything, fixed seed


def load_photos() -> dict[str, np.ndarray]:
    """The two public-domain portraits as BGR uint8 (from the scikit-image and matplotlib wheels)."""
    from matplotlib import cbook
    from skimage import data

    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return {"astronaut": cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), "grace_hopper": hopper}


def background_frame() -> np.ndarray:
    """A plain wall: the base colour with a gentle vertical light falloff."""
    shade = np.linspace(1.04, 0.9, HEIGHT, dtype=np.float32)[:, None, None]
    frame = np.asarray(BACKGROUND_BGR, np.float32)[None, None, :] * shade
    return np.clip(np.repeat(frame, WIDTH, axis=1), 0, 255).astype(np.uint8)


def render(photo: np.ndarray, cx: float, cy: float, width: float, roll: float) -> np.ndarray:
    """The 4:3 window of ``width`` source pixels centred on (cx, cy), rolled, as a 640x480 frame."""
    scale = WIDTH / width
    m = cv2.getRotationMatrix2D((cx, cy), roll, scale)
    m[:, 2] += (WIDTH / 2 - cx, HEIGHT / 2 - cy)
    return cv2.warpAffine(photo, m, (WIDTH, HEIGHT), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=BACKGROUND_BGR)


def video_frames(photos: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[Segment]]:
    frames: list[np.ndarray] = []
    segments = []
    wall = background_frame()
    for shot in SHOTS:
        start_s = len(frames) / FPS
        n = round(shot.seconds * FPS)
        for i in range(n):
            t = i / max(n - 1, 1)
            t = t * t * (3 - 2 * t)  # smoothstep: ease in and out
            if shot.kind == "background":
                frames.append(wall)
            else:
                params = [a + (b - a) * t for a, b in zip(shot.start, shot.end, strict=True)]
                frames.append(render(photos[shot.kind], *params))
        frames.extend([frames[-1]] * round(shot.hold_s * FPS))
        segments.append(Segment(start_s, len(frames) / FPS, shot.kind, face=shot.kind != "background"))
    return frames, segments


def write_video(path: Path, frames: list[np.ndarray], fps: float = FPS) -> None:
    """MPEG-4 Part 2 ('mp4v') in an .mp4 through OpenCV's FFmpeg backend (in the opencv-python
    wheels and Debian's OpenCV; no extra codec needed). MJPG would be about ten times larger."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}; check the folder is writable and OpenCV "
                           "has its FFmpeg backend (cv2.getBuildInformation())")
    for frame in frames:
        writer.write(frame)
    writer.release()


def write_blank_video(path: Path, seconds: float = 2.0, fps: float = FPS) -> Path:
    """A short clip of plain background only (no face anywhere), for no-face tests."""
    write_video(path, [background_frame()] * max(1, round(seconds * fps)), fps)
    return path


def write_face_video(path: Path, seconds: float = 10.0, fps: float = 15.0) -> Path:
    """One face in view in every frame (the astronaut portrait, framed as in the demo's close-up),
    for benchmarks whose bar is stated "with one face in view"."""
    frame = render(load_photos()["astronaut"], 226, 135, 280, 0)
    write_video(path, [frame] * max(1, round(seconds * fps)), fps)
    return path


def espeak(text: str, voice: str, speed: int, pitch: int, amplitude: int) -> np.ndarray:
    """Synthesize with the espeak-ng program -> float32 mono at 16 kHz."""
    import soundfile as sf
    from scipy.signal import resample_poly

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found; install it with `apt-get install -y espeak-ng`")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "say.wav"
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude),
                        "-w", str(wav), text], check=True, capture_output=True)
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    g = math.gcd(int(rate), SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)


def speech_track() -> tuple[np.ndarray, list[Segment]]:
    parts: list[np.ndarray] = []
    segments = []
    t = 0.0

    def add(audio: np.ndarray, kind: str, text: str | None = None) -> None:
        nonlocal t
        parts.append(audio)
        segments.append(Segment(round(t, 3), round(t + len(audio) / SAMPLE_RATE, 3), kind, text=text))
        t += len(audio) / SAMPLE_RATE

    for i, (kind, voice, speed, pitch, amp, text) in enumerate(SPEECH):
        add(np.zeros(round(SILENCE_S[i] * SAMPLE_RATE), np.float32), "silence")
        add(espeak(text, voice, speed, pitch, amp), kind, text)
    add(np.zeros(round(SILENCE_S[-1] * SAMPLE_RATE), np.float32), "silence")
    audio = np.concatenate(parts)
    audio *= 0.8 / max(float(np.abs(audio).max()), 1e-6)
    audio += np.random.default_rng(0).normal(0.0, NOISE_RMS, len(audio)).astype(np.float32)
    return np.clip(audio, -1.0, 1.0), segments


def espeak_version() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return "unknown"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return out.split("Data at")[0].strip()  # "eSpeak NG text-to-speech: 1.51"


def build(out: Path) -> dict[str, int]:
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    frames, vsegs = video_frames(load_photos())
    write_video(out / VIDEO_NAME, frames)
    (out / "demo_video.json").write_text(json.dumps({
        "file": VIDEO_NAME, "width": WIDTH, "height": HEIGHT, "fps": FPS, "frames": len(frames),
        "codec": "mp4v", "segments": [{k: v for k, v in asdict(s).items() if k != "text"} for s in vsegs],
    }, indent=2) + "\n")
    audio, asegs = speech_track()
    sf.write(out / AUDIO_NAME, audio, SAMPLE_RATE, subtype="PCM_16")
    (out / "demo_speech.json").write_text(json.dumps({
        "file": AUDIO_NAME, "sample_rate": SAMPLE_RATE, "seconds": round(len(audio) / SAMPLE_RATE, 3),
        "synthesizer": espeak_version(),
        "segments": [{k: v for k, v in asdict(s).items() if k != "face"} for s in asegs],
    }, indent=2) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    total = sum(sizes.values())
    if total > MAX_TOTAL_BYTES:
        raise RuntimeError(f"demo media total {total} bytes exceeds {MAX_TOTAL_BYTES}; shorten the "
                           "moving parts of SHOTS or the speech")
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="target folder")
    args = ap.parse_args(argv)
    try:
        sizes = build(args.out)
    except (RuntimeError, ImportError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, size in sizes.items():
        print(f"{args.out / name}: {size} bytes")
    print(f"total: {sum(sizes.values())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
