"""The model card's file table names the models that are actually shipped: size and sha256."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[1] / "models_tflite"
ROW = re.compile(r"^\| `(?P<file>[\w.]+\.tflite)` \| [^|]+ \| (?P<size>[\d,]+ bytes|fetched) \| `(?P<sha>[0-9a-f]{64})` \|$",
                 re.MULTILINE)


def card_rows() -> list[re.Match]:
    return list(ROW.finditer((MODELS / "MODELS.md").read_text(encoding="utf-8")))


def test_card_lists_every_committed_model():
    listed = {m["file"] for m in card_rows()}
    committed = {p.name for p in MODELS.glob("*.tflite") if not p.name.startswith("face_detection_")}
    assert committed and committed <= listed


@pytest.mark.parametrize("row", card_rows(), ids=lambda m: m["file"])
def test_card_size_and_sha256_match_the_file(row):
    path = MODELS / row["file"]
    if not path.is_file():
        pytest.skip(f"{row['file']} not fetched here (scripts/fetch_face_detector.py)")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha"]
    if row["size"] != "fetched":
        assert path.stat().st_size == int(row["size"].split()[0].replace(",", ""))
