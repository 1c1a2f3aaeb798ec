"""scripts/evaluate.py and scripts/make_eval_sets.py on tiny synthetic inputs built in tmp_path.

The CLI and its bad-input errors run as subprocesses; the metric plumbing also runs in-process with
test doubles at the classifier boundary, so it is checked without the shipped models. Tests that
need a shipped model skip when it is absent.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from script_loader import load_script

from edge.labels import INDEX, LABELS, canon_to_fer2013

ROOT = Path(__file__).resolve().parents[1]


evaluate = load_script("evaluate")
make_eval_sets = load_script("make_eval_sets")
EVALUATE = ROOT / "scripts" / "evaluate.py"
FACE_MODEL = ROOT / "models_tflite" / "face_expression_int8.tflite"
VOICE_MODEL = ROOT / "models_tflite" / "voice_emotion_int8.tflite"
RATE = 16000


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EVALUATE), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def assert_bad_input(proc: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for phrase in phrases:
        assert phrase in lines[0]


# --------------------------------------------------------------------------------- synthetic sets

def face_npz(path: Path, n: int = 28, **overrides: np.ndarray) -> Path:
    """Flat grey images whose brightness encodes the canonical class (FER-2013 labels stored)."""
    canon = np.arange(n) % len(LABELS)
    arrays = {"images": np.repeat((canon * 30 + 10).astype(np.uint8)[:, None, None], 48, 1).repeat(48, 2),
              "labels": canon_to_fer2013(canon).astype(np.int8)}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def tone(freq: float, seconds: float, rate: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# RAVDESS name -> tone frequency; the voice double maps the frequency back to the label.
VOICE_TONES = {"calm": 200.0, "happy": 300.0, "sad": 400.0, "angry": 500.0, "fearful": 600.0}


def voice_dir(root: Path, rows: list[tuple[str, str]] | None = None) -> Path:
    """index.csv + audio in several formats and rates: WAV 44.1 kHz stereo, FLAC 22.05 kHz, WAV 8 kHz,
    WAV 16 kHz, and one silent clip (no speech)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "clips").mkdir()
    formats = [(44100, "wav", 2), (22050, "flac", 1), (8000, "wav", 1), (16000, "wav", 1), (48000, "flac", 1)]
    written = []
    for (name, freq), (rate, ext, channels) in zip(VOICE_TONES.items(), formats, strict=True):
        audio = tone(freq, 1.2, rate)
        data = np.stack([audio] * channels, axis=1) if channels > 1 else audio
        rel = f"clips/{name}_{rate}.{ext}"
        sf.write(root / rel, data, rate)
        written.append((rel, name))
    sf.write(root / "clips/silence.wav", np.zeros(RATE, np.float32), RATE)
    written.append(("clips/silence.wav", "sad"))
    with open(root / "index.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "actor", "emotion"])
        for rel, name in rows if rows is not None else written:
            w.writerow([rel, 1, name])
    return root


# --------------------------------------------------------------------------------- test doubles

class BrightnessClassifier:
    """Face double: class = round((mean - 10) / 30), except class 'fear' is always called 'sad'."""

    def __init__(self, path: Path):
        self.path = path
        self.seen: list[tuple[int, ...]] = []

    def classify(self, crop: np.ndarray) -> np.ndarray:
        self.seen.append(crop.shape)
        k = int(round((float(crop.mean()) - 10) / 30))
        if k == INDEX["fear"]:
            k = INDEX["sad"]
        return np.eye(len(LABELS), dtype=np.float32)[k]


@dataclass
class Detail:
    speech: bool


class ToneClassifier:
    """Voice double: dominant frequency -> label; near-silent audio -> no speech (zero probs)."""

    def __init__(self, path: Path):
        self.lengths: list[int] = []

    def classify_clip(self, audio_16k: np.ndarray) -> tuple[np.ndarray, Detail]:
        assert audio_16k.dtype == np.float32 and audio_16k.ndim == 1
        self.lengths.append(len(audio_16k))
        if np.sqrt(np.mean(audio_16k ** 2)) < 1e-3:
            return np.zeros(len(LABELS), np.float32), Detail(False)
        spectrum = np.abs(np.fft.rfft(audio_16k))
        freq = np.argmax(spectrum) * RATE / len(audio_16k)
        name = min(VOICE_TONES, key=lambda n: abs(VOICE_TONES[n] - freq))
        canon = {"calm": "neutral", "fearful": "fear"}.get(name, name)
        return np.eye(len(LABELS), dtype=np.float32)[INDEX[canon]], Detail(True)


# ----------------------------------------------------------------------------------- face tests

def test_face_metrics_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made: list[BrightnessClassifier] = []

    def make(path: Path) -> BrightnessClassifier:
        made.append(BrightnessClassifier(path))
        return made[0]

    npz = face_npz(tmp_path / "faces.npz")
    assert evaluate.main(["face", "--npz", str(npz), "--model", "m.tflite"], make_face_classifier=make) == 0
    result = last_json(capsys.readouterr().out)
    assert result["n"] == 28 and result["task"] == "face"
    assert result["accuracy"] == pytest.approx(24 / 28)
    assert result["per_class_recall"]["fear"] == 0.0 and result["per_class_recall"]["angry"] == 1.0
    assert result["balanced_accuracy"] == pytest.approx(6 / 7)
    conf = np.array(result["confusion"])
    assert conf.shape == (7, 7) and conf.sum() == 28
    assert conf[INDEX["fear"], INDEX["sad"]] == 4
    assert result["ms_per_item"] >= 0 and result["model"] == "m.tflite"
    assert set(made[0].seen) == {(48, 48)}


def test_face_accepts_channel_axis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz = tmp_path / "faces.npz"
    face_npz(npz)
    with np.load(npz) as d:
        np.savez(npz, images=d["images"][..., None], labels=d["labels"].astype(np.int64))
    assert evaluate.main(["face", "--npz", str(npz)], make_face_classifier=BrightnessClassifier) == 0
    assert last_json(capsys.readouterr().out)["n"] == 28


@pytest.mark.parametrize("overrides,phrases", [
    ({"images": np.zeros((4, 64, 64), np.uint8)}, ("uint8 [N,48,48]", "[4, 64, 64]")),
    ({"images": np.zeros((28, 48, 48), np.float32)}, ("uint8 [N,48,48]", "float32")),
    ({"labels": np.full(28, 7)}, ("must be 0-6",)),
    ({"labels": np.full(28, -1)}, ("must be 0-6",)),
    ({"labels": np.zeros(5, np.int64)}, ("one entry per image",)),
    ({"labels": np.zeros(28, np.float32)}, ("must be integers",)),
    ({"images": np.zeros((0, 48, 48), np.uint8), "labels": np.zeros(0, np.int64)}, ("empty",)),
])
def test_face_bad_arrays(tmp_path: Path, overrides: dict, phrases: tuple[str, ...]) -> None:
    assert_bad_input(run_cli("face", "--npz", face_npz(tmp_path / "bad.npz", **overrides)), *phrases)


def test_face_bad_files(tmp_path: Path) -> None:
    assert_bad_input(run_cli("face", "--npz", tmp_path / "missing.npz"), "not found", "make_eval_sets.py")
    (tmp_path / "text.npz").write_text("hello")
    assert_bad_input(run_cli("face", "--npz", tmp_path / "text.npz"), "not a readable .npz")
    np.savez(tmp_path / "names.npz", x=np.zeros((2, 48, 48), np.uint8), y=np.zeros(2))
    assert_bad_input(run_cli("face", "--npz", tmp_path / "names.npz"), "no `images` array", "has: x, y")
    assert_bad_input(run_cli("face", "--npz", face_npz(tmp_path / "ok.npz"), "--model", tmp_path / "none.tflite"),
                     "none.tflite not found")


DETECTOR = ROOT / "models_tflite" / "face_detection_short_range.tflite"
DEMO_VIDEO = ROOT / "edge" / "demo_media" / "demo_video.mp4"


class ConstantClassifier:
    """Face double: always 'happy'; remembers the crops it was given."""

    def __init__(self, path: Path):
        self.seen: list[np.ndarray] = []

    def classify(self, crop: np.ndarray) -> np.ndarray:
        self.seen.append(crop)
        return np.eye(len(LABELS), dtype=np.float32)[INDEX["happy"]]


def demo_faces_npz(path: Path) -> Path:
    """48x48 grey face crops cut (upright, the service's way) from the demo video's two portraits,
    plus one flat grey image with no face: labels happy, happy, sad, sad, neutral (FER-2013 order)."""
    import cv2

    from edge.inference.detector import FaceDetector, crop_face

    if not DETECTOR.is_file():
        pytest.skip(f"{DETECTOR.name} absent; run `python scripts/fetch_face_detector.py`")
    det = FaceDetector(DETECTOR)
    cap = cv2.VideoCapture(str(DEMO_VIDEO))
    crops = []
    for index in (40, 120):   # the astronaut close-up, Grace Hopper
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok
        crop = crop_face(frame, det.detect(frame)[0], margin=0.0)
        crops += [cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA)] * 2
    cap.release()
    images = np.stack([*crops, np.full((48, 48), 128, np.uint8)])
    canon = np.array([INDEX[k] for k in ("happy", "happy", "sad", "sad", "neutral")])
    np.savez(path, images=images, labels=canon_to_fer2013(canon).astype(np.int8))
    return path


@pytest.mark.parametrize("roll", ["0", "60", "90"])
def test_face_through_the_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str], roll: str) -> None:
    npz = demo_faces_npz(tmp_path / "demo_faces.npz")
    made: list[ConstantClassifier] = []

    def make(path: Path) -> ConstantClassifier:
        made.append(ConstantClassifier(path))
        return made[-1]

    assert evaluate.main(["face", "--npz", str(npz), "--roll", roll], make_face_classifier=make) == 0
    result = last_json(capsys.readouterr().out)
    assert result["roll"] == float(roll) and result["aligned"] is True
    assert result["detected"] == pytest.approx(4 / 5) and result["n_detected"] == 4 and result["n_all"] == 5
    assert result["n"] == 4 and result["accuracy"] == pytest.approx(0.5)       # over the faces found
    assert result["balanced_accuracy"] == pytest.approx(0.5)                    # happy 1, sad 0
    assert result["accuracy_all"] == pytest.approx(2 / 5)                        # the blank counts as wrong
    assert result["balanced_accuracy_all"] == pytest.approx(1 / 3)              # happy 1, sad 0, neutral 0
    assert result["ms_per_item"] > 0
    crops = made[0].seen[1:]   # after the warm-up
    assert len(crops) == 4 and all(c.ndim == 2 and c.shape[0] == c.shape[1] for c in crops)


def test_face_no_align_and_conditions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz = demo_faces_npz(tmp_path / "demo_faces.npz")
    assert evaluate.main(["face", "--npz", str(npz), "--roll", "30", "--no-align"],
                         make_face_classifier=ConstantClassifier) == 0
    result = last_json(capsys.readouterr().out)
    assert result["aligned"] is False and result["n_detected"] == 4
    seen: list[BrightnessClassifier] = []

    def make(path: Path) -> BrightnessClassifier:
        seen.append(BrightnessClassifier(path))
        return seen[-1]

    assert evaluate.main(["face", "--npz", str(face_npz(tmp_path / "flat.npz")), "--condition", "dim30"],
                         make_face_classifier=make) == 0
    result = last_json(capsys.readouterr().out)
    assert result["condition"] == "dim30" and "detected" not in result and result["n"] == 28
    assert result["accuracy"] < 0.5       # a brightness classifier is lost in a dim room
    proc = run_cli("face", "--npz", npz, "--no-align")
    assert_bad_input(proc, "--no-align", "--roll")


def test_face_shipped_model(tmp_path: Path) -> None:
    if not FACE_MODEL.is_file():
        pytest.skip(f"{FACE_MODEL.name} absent (train it with scripts/train_face.py)")
    proc = run_cli("face", "--npz", face_npz(tmp_path / "faces.npz"))
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc.stdout)
    assert result["n"] == 28 and len(result["sha256"]) == 64
    assert result["model"] == FACE_MODEL.name
    conf = np.array(result["confusion"])
    assert conf.shape == (7, 7) and conf.sum() == 28
    assert 0.0 <= result["accuracy"] <= 1.0 and result["ms_per_item"] > 0
    assert set(result["per_class_recall"]) == set(LABELS)


# ---------------------------------------------------------------------------------- voice tests

def test_voice_metrics_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made: list[ToneClassifier] = []

    def make(path: Path) -> ToneClassifier:
        made.append(ToneClassifier(path))
        return made[0]

    folder = voice_dir(tmp_path / "voice")
    assert evaluate.main(["voice", "--dir", str(folder)], make_voice_classifier=make) == 0
    result = last_json(capsys.readouterr().out)
    assert result["task"] == "voice" and result["n"] == 6 and result["no_speech"] == 1
    # every tone is recognised after resampling; the silent 'sad' clip is predicted neutral
    conf = np.array(result["confusion"])
    assert conf[INDEX["sad"], INDEX["neutral"]] == 1
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert result["per_class_recall"]["sad"] == 0.5 and result["per_class_recall"]["surprise"] is None
    # all clips arrive as 16 kHz mono: 1.2 s -> 19200 samples (silence: 1 s)
    assert sorted(made[0].lengths) == [16000] + [19200] * 5
    assert result["audio_s"] == pytest.approx(7.0, abs=0.01)
    # voice distress with the default weights (fear 1, angry 0.9, sad 0.8): the silent sad clip
    # scores 0 and ties the calm and happy ones; one speaker (the index's actor column)
    assert result["distress_auc"] == pytest.approx(7 / 8)
    assert result["distress_by_speaker"] == {"1": {"neutral": 0.0, "happy": 0.0, "sad": 0.4, "fear": 1.0,
                                                   "angry": 0.9}}


def test_voice_bad_inputs(tmp_path: Path) -> None:
    assert_bad_input(run_cli("voice", "--dir", tmp_path / "nope"), "not found", "make_eval_sets.py")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_bad_input(run_cli("voice", "--dir", empty), "index.csv not found", "file, emotion")
    (empty / "index.csv").write_text("path,label\nclips/a.wav,sad\n")
    assert_bad_input(run_cli("voice", "--dir", empty), "lacks column(s) file, emotion", "has: path, label")
    (empty / "index.csv").write_text("file,emotion\n")
    assert_bad_input(run_cli("voice", "--dir", empty), "no rows")
    folder = voice_dir(tmp_path / "v1", rows=[("clips/sad_8000.wav", "sad"), ("clips/happy_22050.flac", "bored")])
    assert_bad_input(run_cli("voice", "--dir", folder), "line 3", "unknown RAVDESS emotion 'bored'")
    folder = voice_dir(tmp_path / "v2", rows=[("clips/gone.wav", "sad")])
    assert_bad_input(run_cli("voice", "--dir", folder), "line 2", "gone.wav not found")
    folder = voice_dir(tmp_path / "v3")
    assert_bad_input(run_cli("voice", "--dir", folder, "--model", tmp_path / "none.tflite"), "none.tflite not found")


def test_voice_unreadable_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = voice_dir(tmp_path / "v", rows=[("clips/calm_44100.wav", "calm"), ("clips/junk.wav", "sad")])
    (folder / "clips" / "junk.wav").write_bytes(b"RIFF but not really audio")
    assert evaluate.main(["voice", "--dir", str(folder)], make_voice_classifier=ToneClassifier) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.wav cannot be read" in err[0]


def test_voice_shipped_model(tmp_path: Path) -> None:
    if not VOICE_MODEL.is_file():
        pytest.skip(f"{VOICE_MODEL.name} absent (train it with scripts/train_voice.py)")
    proc = run_cli("voice", "--dir", voice_dir(tmp_path / "voice"))
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc.stdout)
    assert result["n"] == 6 and result["no_speech"] >= 1  # the silent clip at least
    assert np.array(result["confusion"]).sum() == 6 and len(result["sha256"]) == 64


# ------------------------------------------------------------------------------ make_eval_sets

def fake_shared_data(root: Path) -> Path:
    """A miniature of ../shared/data with the same file layout and arrays (synthetic values)."""
    (root / "fer2013").mkdir(parents=True)
    votes = np.zeros((6, 10), np.uint8)
    votes[0, 0] = 8  # train row
    votes[1, 1] = 7  # test: happiness -> FER 3
    votes[2, 6] = 5  # test: fear -> FER 2
    votes[3, 9] = 9  # test: not a face -> dropped from the FER+ set
    votes[4, 4] = 6  # test: anger, but pixels not exact -> dropped from the FER+ set
    votes[5, 3] = 6  # test: sadness -> FER 4
    np.savez(root / "fer2013" / "fer2013_trainval.npz",
             images=np.arange(6, dtype=np.uint8)[:, None, None].repeat(48, 1).repeat(48, 2),
             labels=np.array([0, 3, 2, 6, 0, 4], np.int8), usage=np.array([0, 1, 1, 1, 1, 1], np.uint8),
             ferplus_votes=votes, pixels_exact=np.array([1, 1, 1, 1, 0, 1], bool))
    rav = root / "ravdess"
    rav.mkdir(parents=True)
    with open(rav / "index.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "actor", "emotion"])
        for actor in (1, 17, 20):
            (rav / f"Actor_{actor:02d}").mkdir()
            sf.write(rav / f"Actor_{actor:02d}" / "a.wav", tone(300, 0.5, RATE), RATE)
            w.writerow([f"Actor_{actor:02d}/a.wav", actor, "happy"])
    for actor in (18, 19):
        (rav / f"Actor_{actor:02d}").mkdir()
    # vocal bursts: V002 and V006 are validation speakers (CRC-32 % 5 == 0), V000 trains
    for folder, name in (("nonverbal/screaming", "V002_11_2_0_30_0_0_0.flac"),
                         ("nonverbal/laughing", "V006_3_2_0_30_0_0_0.flac"),
                         ("nonverbal/laughing", "V000_3_2_0_30_0_0_0.flac")):
        (root / "vocal_bursts" / folder).mkdir(parents=True, exist_ok=True)
        sf.write(root / "vocal_bursts" / folder / name, tone(500, 0.5, RATE), RATE)
    for folder, name in (("Pain", "V002-19-1.opus"), ("Amusement", "V006-2-1.opus"), ("Anger", "V002-3-1.opus")):
        (root / "vocal_bursts" / "emogator" / folder).mkdir(parents=True, exist_ok=True)
        sf.write(root / "vocal_bursts" / "emogator" / folder / name, tone(400, 0.5, RATE), RATE,
                 format="OGG", subtype="OPUS")
    return root


def test_make_eval_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = fake_shared_data(tmp_path / "data"), tmp_path / "out"
    assert make_eval_sets.main(["--data", str(data), "--out", str(out)]) == 0
    with np.load(out / "fer_publictest_ferplus.npz") as d:
        assert d["images"][:, 0, 0].tolist() == [1, 2, 5]
        assert d["labels"].tolist() == [3, 2, 4]
    with np.load(out / "fer_publictest_original.npz") as d:
        assert d["images"][:, 0, 0].tolist() == [1, 2, 3, 4, 5]
        assert d["labels"].tolist() == [3, 2, 6, 0, 4]
    rav = out / "ravdess_17_20"
    with open(rav / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["actor"] for r in rows] == ["17", "20"]
    assert (rav / "Actor_17").is_symlink() and (rav / rows[0]["file"]).is_file()
    # idempotent, and the result feeds evaluate.py
    assert make_eval_sets.main(["--data", str(data), "--out", str(out)]) == 0
    capsys.readouterr()
    assert evaluate.main(["voice", "--dir", str(rav)], make_voice_classifier=ToneClassifier) == 0
    assert last_json(capsys.readouterr().out)["n"] == 2
    # the same clips in babble: written as WAV, the same length, noisier
    babble = out / "ravdess_17_20_babble"
    with open(babble / "index.csv", newline="") as fh:
        noisy_rows = list(csv.DictReader(fh))
    assert noisy_rows == rows
    for r in rows:
        clean, _ = sf.read(data / "ravdess" / r["file"], dtype="float32")
        noisy, rate = sf.read(babble / r["file"], dtype="float32")
        assert rate == RATE and len(noisy) == len(clean)
        assert 0.01 < float(np.sqrt(np.mean((noisy - clean) ** 2))) < float(np.sqrt(np.mean(clean ** 2)))
    assert evaluate.main(["voice", "--dir", str(babble)], make_voice_classifier=ToneClassifier) == 0
    assert last_json(capsys.readouterr().out)["n"] == 2
    # sound sets: validation speakers only, with their kind and source
    with open(out / "sounds_deeply_speech" / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["kind"], r["source"]) for r in rows) == [
        ("other_vocal", "deeply/laughing"), ("scream", "deeply/screaming"),
        ("speech", "ravdess/happy"), ("speech", "ravdess/happy")]
    assert all((out / "sounds_deeply_speech" / r["file"]).is_file() for r in rows)
    with open(out / "sounds_emogator" / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["kind"], r["source"]) for r in rows) == [("moan", "emogator/Pain"),
                                                              ("other_vocal", "emogator/Amusement")]
    # the same clips as a recording would carry them: Ogg/Opus, half a second of background either side
    with open(out / "sounds_deeply_speech" / "index.csv", newline="") as fh:
        clean = sorted((r["kind"], r["source"]) for r in csv.DictReader(fh))
    with open(out / "sounds_recorded" / "index.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["kind"], r["source"]) for r in rows) == clean
    for r in rows:
        info = sf.info(str(out / "sounds_recorded" / r["file"]))
        assert info.subtype == "OPUS" and info.duration == pytest.approx(0.5 + 1.0, abs=0.02)
        assert r["background"] in ("music", "talk") and 5.0 <= float(r["snr_db"]) <= 15.0
        audio, _ = sf.read(str(out / "sounds_recorded" / r["file"]), dtype="float32")
        assert 10 ** (-21 / 20) < np.abs(audio).max() < 10 ** (-2 / 20)


def test_make_eval_sets_refuses_repo_and_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = fake_shared_data(tmp_path / "data")
    assert make_eval_sets.main(["--data", str(data), "--out", str(ROOT / "edge" / "evalsets")]) == 2
    assert "inside the repository" in capsys.readouterr().err
    assert not (ROOT / "edge" / "evalsets").exists()
    assert make_eval_sets.main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- sounds

def sound_dir(root: Path) -> Path:
    """Clips of every kind in the formats the interface promises: WAV, FLAC, Ogg/Opus, any rate, stereo."""
    (root / "clips").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = [("clips/speech.wav", "speech"), ("clips/scream.flac", "scream"), ("clips/quiet.wav", "background"),
            ("clips/noise_stereo_44k.wav", "background"), ("clips/cry.opus", "cry")]
    sf.write(root / "clips" / "speech.wav", voiced_tone(2.0), RATE)
    sf.write(root / "clips" / "scream.flac", voiced_tone(1.5, f0=600.0), RATE)
    sf.write(root / "clips" / "quiet.wav", np.zeros(RATE, np.float32), RATE)
    sf.write(root / "clips" / "noise_stereo_44k.wav", rng.standard_normal((44100, 2)).astype(np.float32) * 0.05, 44100)
    sf.write(root / "clips" / "cry.opus", voiced_tone(1.0, f0=400.0), RATE, format="OGG", subtype="OPUS")
    with open(root / "index.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "kind"])
        w.writerows(rows)
    return root


def voiced_tone(seconds: float, f0: float = 140.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * np.cumsum(f0 + 20 * np.sin(2 * np.pi * 3 * t)) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    return (x / np.abs(x).max() * 0.5).astype(np.float32)


def test_sounds_through_the_service_stage(tmp_path: Path) -> None:
    proc = run_cli("sounds", "--dir", sound_dir(tmp_path / "s"), "--clips", tmp_path / "clips.csv")
    assert proc.returncode == 0, proc.stderr
    r = last_json(proc.stdout)
    with open(tmp_path / "clips.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["file"] for row in rows][:2] == ["clips/speech.wav", "clips/scream.flac"]
    assert all(0 <= float(row["score"]) <= 1 and row["sounds"] for row in rows)
    assert r["n"] == 5 and set(r["per_kind"]) == {"speech", "scream", "cry", "background"}
    assert {"distress_auc", "distress_recall", "false_alarm_rate", "speech_recall", "ms_per_audio_s"} <= set(r)
    assert 0.0 <= r["distress_auc"] <= 1.0 and 0.0 <= r["false_alarm_rate"] <= 1.0
    quiet = r["per_kind"]["background"]
    assert quiet["n"] == 2 and quiet["flagged"] == 0
    assert r["ms_per_audio_s"] > 0 and [m["name"] for m in r["models"]] == ["sound_events", "voice_emotion"]
    assert all(abs(sum(k["windows"].values()) - 1.0) < 0.01 for k in r["per_kind"].values())


def test_sounds_bad_inputs(tmp_path: Path) -> None:
    assert_bad_input(run_cli("sounds", "--dir", tmp_path / "nope"), "not found", "make_eval_sets.py")
    folder = sound_dir(tmp_path / "s")
    (folder / "index.csv").write_text("file,kind\nclips/speech.wav,shouting\n")
    assert_bad_input(run_cli("sounds", "--dir", folder), "line 2", "'shouting' is not one of", "other_vocal")
    (folder / "index.csv").write_text("file,emotion\nclips/speech.wav,sad\n")
    assert_bad_input(run_cli("sounds", "--dir", folder), "lacks column(s) kind")
    (folder / "index.csv").write_text("file,kind\nclips/gone.wav,cry\n")
    assert_bad_input(run_cli("sounds", "--dir", folder), "gone.wav not found")
    (folder / "clips" / "junk.wav").write_bytes(b"RIFF not audio")
    (folder / "index.csv").write_text("file,kind\nclips/junk.wav,cry\n")
    assert_bad_input(run_cli("sounds", "--dir", folder), "junk.wav cannot be read")
    (folder / "index.csv").write_text("file,kind\nclips/speech.wav,speech\n")
    assert_bad_input(run_cli("sounds", "--dir", folder, "--model", ROOT / "models_tflite" / "voice_emotion_int8.tflite"),
                     "train_sounds.py")
