"""The face-expression model: the shipped int8 file through edge's runtime, and a training smoke
test that runs scripts/train_face.py for a few steps so the script never rots."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

from edge.inference.face import FACE_INPUT_SIZE, FaceClassifier, preprocess_face
from edge.inference.runtime import ModelError, TFLiteModel
from edge.labels import INDEX, NUM_LABELS

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SHIPPED = ROOT / "models_tflite" / "face_expression_int8.tflite"


def test_preprocess_gray_and_bgr():
    gray = np.full((120, 100), 255, np.uint8)
    x = preprocess_face(gray)
    assert x.shape == (FACE_INPUT_SIZE, FACE_INPUT_SIZE, 1) and x.dtype == np.float32
    assert x.max() == pytest.approx(1.0)
    bgr = np.zeros((30, 30, 3), np.uint8)
    assert preprocess_face(bgr).max() == 0.0


def test_missing_and_corrupt_model(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        TFLiteModel(tmp_path / "nope.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"this is not a flatbuffer")
    with pytest.raises(ModelError, match="corrupt or not a TFLite model"):
        TFLiteModel(bad)


@pytest.mark.skipif(not SHIPPED.is_file(), reason="models_tflite/face_expression_int8.tflite not built yet")
def test_shipped_model_is_int8_and_small():
    clf = FaceClassifier(SHIPPED)
    spec = clf.model.inputs[0]
    assert spec.dtype == np.int8 and spec.quantized, "the shipped face model must be full-integer int8"
    assert clf.model.outputs[0].dtype == np.int8
    assert SHIPPED.stat().st_size <= 2 * 1024 * 1024
    probs = clf.classify(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    assert probs.shape == (NUM_LABELS,)
    assert probs.sum() == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "fer2013" / "fer2013_trainval.npz").is_file(), reason="../shared/data absent")
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="[train] extra not installed")
def test_train_face_smoke(tmp_path):
    out = tmp_path / "face"
    cmd = [sys.executable, str(ROOT / "scripts" / "train_face.py"), "--data", str(DATA), "--out", str(out),
           "--limit", "256", "--epochs", "1", "--steps", "2", "--batch", "32", "--room", "--quiet"]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=600)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["int8"]["ferplus_publictest"]["n"] > 0
    assert len(metrics["int8"]["ferplus_publictest"]["confusion"]) == NUM_LABELS
    clf = FaceClassifier(out / "face_expression_int8.tflite")
    assert clf.model.inputs[0].dtype == np.int8
    assert clf.classify(np.zeros((48, 48), np.uint8)).shape == (NUM_LABELS,)
    # resume continues from the checkpoint instead of starting over; the weight average starts
    # at half of the longer schedule, so it holds exactly the epoch trained after the resume
    # ... here distilling from the shipped model, whose outputs on the training faces are cached
    subprocess.run(cmd[:-6] + ["--epochs", "2", "--steps", "2", "--batch", "32", "--quiet", "--resume",
                               "--average-from", "0.5", "--teacher", str(SHIPPED), "--distill", "0.5"],
                   check=True, cwd=ROOT, timeout=600)
    teacher = np.load(out / "teacher_probs.npy")
    assert teacher.shape[1] == NUM_LABELS and np.allclose(teacher.sum(1), 1.0, atol=1e-3)
    state = json.loads((out / "train_state.json").read_text())
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert "averaged_epochs" not in state["history"][0] and state["history"][1]["averaged_epochs"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selected"] in ("best", "average")
    assert metrics["teacher"] == SHIPPED.name and metrics["distill"] == 0.5
    assert (metrics["averaged_epochs"] == 1) == (metrics["selected"] == "average")


def test_operating_points_move_decisions_toward_rare_classes():
    operating_points = load_script("face_operating_points").operating_points
    prior = np.array([0.5, 0.3, 0.1, 0.05, 0.03, 0.01, 0.01])
    y = np.array([0, 1, 5, 5])
    # every item leans to neutral, the two disgust items only slightly
    probs = np.full((4, NUM_LABELS), 0.01)
    probs[:, 0] = 0.9
    probs[2:, 5] = 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    rows = operating_points(probs, y, prior, np.array([0.0, 1.0]))
    assert rows[0] == (0.0, 0.25, pytest.approx(1 / 3))          # all read as neutral
    tau, acc, balanced = rows[1]                                # log prior pushes the disgust items over
    assert tau == 1.0 and acc == 0.75 and balanced == pytest.approx(2 / 3)


def test_operating_points_rejects_a_bad_range():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "face_operating_points.py"), str(SHIPPED),
                          "--taus", "0.4:-0.6:0.1"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and "start <= stop" in run.stderr


@pytest.mark.skipif(not (DATA / "fer2013" / "fer2013_trainval.npz").is_file(), reason="../shared/data absent")
@pytest.mark.skipif(not SHIPPED.is_file(), reason="models_tflite/face_expression_int8.tflite not built yet")
def test_operating_points_at_zero_match_the_model_card_metrics():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "face_operating_points.py"), str(SHIPPED),
                          "--data", str(DATA), "--taus", "0:0.1:0.1"], capture_output=True, text=True,
                         cwd=ROOT, timeout=600, check=True)
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    assert [r["tau"] for r in rows] == [0.0, 0.1]
    shipped = json.loads((ROOT / "models_tflite" / "face_expression_metrics.json").read_text())
    report = shipped["int8"]["ferplus_publictest"]
    assert rows[0]["test_accuracy"] == pytest.approx(report["accuracy"], abs=1e-9)
    assert rows[0]["test_balanced"] == pytest.approx(report["balanced_accuracy"], abs=1e-9)


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="[train] extra not installed")
def test_compact_model_sees_a_dim_face_as_the_lit_one():
    """The compact model standardises each face in its graph: a face at 20 % brightness reaches
    the first convolution as the lit face does, its contrast softened a little by the floor that
    keeps a black frame's sensor noise from being blown up."""
    import tensorflow as tf

    train_face = load_script("train_face")
    model = train_face.build_model(tf, 8, "compact")
    standardize = tf.keras.Model(model.input, model.get_layer("standardize").output)
    face = np.random.default_rng(3).random((1, 48, 48, 1)).astype(np.float32)
    lit, dim = standardize(face).numpy(), standardize(face * 0.2).numpy()
    assert abs(float(lit.mean())) < 1e-4 and float(lit.std()) == pytest.approx(1.0, rel=0.05)
    assert np.corrcoef(lit.ravel(), dim.ravel())[0, 1] > 0.999
    assert 0.85 < float(dim.std()) <= 1.0
    black = standardize(np.random.default_rng(4).random((1, 48, 48, 1)).astype(np.float32) * 0.01).numpy()
    assert float(black.std()) < 0.2


@pytest.mark.skipif(not SHIPPED.is_file(), reason="models_tflite/face_expression_int8.tflite not built yet")
def test_face_bench_times_models_side_by_side():
    bench = load_script("bench")
    result = bench.bench_face({"a": SHIPPED, "b": SHIPPED}, rounds=1, faces=3)
    assert result["a"]["ratio_to_a"] == 1.0
    assert result["b"]["ms_per_face"] > 0 and result["b"]["ratio_to_a"] > 0


@pytest.mark.skipif(not (DATA / "fer2013" / "fer2013_trainval.npz").is_file(), reason="../shared/data absent")
def test_face_scenario_bench_fear_alarms_happy_stays_quiet_rolled():
    """Held-out faces rolled 60 degrees, through the real service (detector, alignment, model, alarm)."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_faces.py"), "--seconds", "25",
                           "--rolls", "60", "--only", "fear", "happy"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = {r["stream"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])["streams"]}
    assert rows["fear"]["faces"] == 5 and rows["fear"]["roll"] == 60
    assert rows["fear"]["conditions"] == ["distress"] and rows["fear"]["first_s"] <= 20
    assert rows["happy"]["alarms"] == 0


def test_face_distress_weights_count_faces_over_the_threshold():
    script = load_script("face_distress_weights")
    assert script.parse_candidate("d1=disgust:1.0,sad:0.9") == ("d1", {"disgust": 1.0, "sad": 0.9})
    with pytest.raises(Exception, match="unknown label 'panic'"):
        script.parse_candidate("x=panic:1")
    probs = {"disgust": np.zeros((2, NUM_LABELS)), "neutral": np.zeros((2, NUM_LABELS))}
    probs["disgust"][:, INDEX["disgust"]] = [0.6, 1.0]       # one leaning face, one sure face
    probs["neutral"][:, INDEX["neutral"]] = 1.0
    shared = {"fear": 1.0, "sad": 0.8, "angry": 0.9, "disgust": 0.6}
    assert script.shares_over(probs, shared, 0.55) == {"disgust": 0.5, "neutral": 0.0}
    assert script.shares_over(probs, {**shared, "disgust": 1.0}, 0.55) == {"disgust": 1.0, "neutral": 0.0}


@pytest.mark.skipif(not (DATA / "fer2013" / "fer2013_trainval.npz").is_file(), reason="../shared/data absent")
def test_face_scenario_bench_on_validation_faces_needs_the_data(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_faces.py"), "--faces", "val",
                           "--data", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "--data" in proc.stderr
