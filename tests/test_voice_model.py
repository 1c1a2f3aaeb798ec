"""Voice front end (VAD gating, log-mel windows), VoiceClassifier and a training smoke test."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

from edge.inference.voice_features import (
    FEATURE_SHAPE,
    HOP_SAMPLES,
    MIN_SPEECH_S,
    SAMPLE_RATE,
    VAD_FRAME_SAMPLES,
    VAD_HANGOVER_FRAMES,
    WINDOW_SAMPLES,
    SpeechGate,
    clip_windows,
    log_fbank,
    speech_mask,
    speech_only,
    speech_windows,
    window_features,
)
from edge.labels import NUM_LABELS

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RAVDESS = DATA / "ravdess"
SHIPPED = ROOT / "models_tflite" / "voice_emotion_int8.tflite"
HAS_TF = importlib.util.find_spec("tensorflow") is not None


def voiced(seconds: float, f0: float = 140.0, level: float = 0.1, seed: int = 0) -> np.ndarray:
    """A buzzy harmonic vowel train with a 4 Hz syllable envelope (speech-like for a VAD)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.002
    return (level * x + noise).astype(np.float32)


def ravdess_clip(name: str = "Actor_17/03-01-05-02-01-01-17.flac") -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(RAVDESS / name, dtype="float32")
    assert sr == SAMPLE_RATE
    return x


# ------------------------------------------------------------------------------------- features

def test_window_features_shape_dtype_and_determinism() -> None:
    x = voiced(WINDOW_SAMPLES / SAMPLE_RATE)
    a, b = window_features(x), window_features(x.copy())
    assert a.shape == FEATURE_SHAPE and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all()


def test_window_features_pads_short_and_cuts_long_input() -> None:
    short = voiced(0.6)
    assert window_features(short).shape == FEATURE_SHAPE
    long = voiced(3.0)
    np.testing.assert_array_equal(window_features(long), window_features(long[:WINDOW_SAMPLES]))
    assert np.isfinite(window_features(np.zeros(100, np.float32))).all()


def test_window_features_remove_recording_gain() -> None:
    # gain-invariant wherever the bands are well above the small power floor (about -70 dBFS)
    x = voiced(WINDOW_SAMPLES / SAMPLE_RATE) + np.random.default_rng(2).standard_normal(WINDOW_SAMPLES).astype(np.float32) * 0.01
    # (the lowest bands, under 200 Hz, sit near the floor after pre-emphasis)
    np.testing.assert_allclose(window_features(x)[:, 4:], window_features(3.0 * x)[:, 4:], atol=0.05)


def test_window_features_accept_int16() -> None:
    x = voiced(1.5)
    pcm = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(window_features(pcm), window_features(x), atol=0.02)


def test_log_fbank_matches_python_speech_features() -> None:
    from python_speech_features import logfbank

    x = voiced(1.0) + np.random.default_rng(1).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.01
    ref = logfbank(x, SAMPLE_RATE, 0.025, 0.01, 40, 512, 60, 7600, 0.97)
    ours = log_fbank(x)
    assert ours.shape == ref.shape
    above_floor = ref[:-1] > np.log(1e-5)         # ours adds a 1e-7 power floor; the last frame is padded
    np.testing.assert_allclose(ours[:-1][above_floor], ref[:-1][above_floor], atol=0.05)


def test_vocal_tract_warp_moves_a_tone_up_the_mel_bands() -> None:
    """``warp`` (training augmentation) stretches the frequency axis: a 1 kHz tone lands in the
    band of ``warp`` kHz; without a warp the features are the service's."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    peak = {w: int(log_fbank(tone, w)[10:-10].mean(axis=0).argmax()) for w in (0.9, 1.0, 1.1)}
    assert peak[0.9] < peak[1.0] < peak[1.1]
    for w in (0.9, 1.1):
        ref = int(log_fbank((0.3 * np.sin(2 * np.pi * 1000.0 * w * t)).astype(np.float32))[10:-10].mean(axis=0).argmax())
        assert abs(peak[w] - ref) <= 1
    np.testing.assert_array_equal(window_features(tone, 1.0), window_features(tone))


def test_features_reject_stereo() -> None:
    with pytest.raises(ValueError, match="mono"):
        window_features(np.zeros((100, 2), np.float32))


# ------------------------------------------------------------------------------------------ VAD

def test_silence_has_no_speech() -> None:
    silence = np.zeros(3 * SAMPLE_RATE, np.float32)
    for aggressiveness in range(4):
        assert not speech_mask(silence, aggressiveness).any()
    assert speech_only(silence).size == 0
    feats, speech_s = clip_windows(silence)
    assert feats.shape == (0, *FEATURE_SHAPE) and speech_s == 0.0


def test_voiced_signal_is_speech_and_silence_around_it_is_gated() -> None:
    x = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), voiced(2.0), np.zeros(SAMPLE_RATE, np.float32)])
    mask = speech_mask(x, aggressiveness=3)
    assert len(mask) == len(x) // VAD_FRAME_SAMPLES
    sec = SAMPLE_RATE // VAD_FRAME_SAMPLES       # frames per second (33)
    assert mask[sec + 5: 3 * sec - 5].all()
    assert not mask[:sec - 5].any() and not mask[3 * sec + 12:].any()   # webrtcvad hangs on ~0.3 s
    gated = speech_only(x, aggressiveness=3)
    assert 1.9 * SAMPLE_RATE <= len(gated) <= 2.4 * SAMPLE_RATE


class ScriptedVad:
    """webrtcvad's interface, answering from a list of decisions."""

    def __init__(self, decisions: list[bool]):
        self.decisions = iter(decisions)

    def is_speech(self, pcm: bytes, rate: int) -> bool:
        assert len(pcm) == 2 * VAD_FRAME_SAMPLES and rate == SAMPLE_RATE
        return next(self.decisions)


def test_streaming_gate_keeps_context_either_side_of_speech() -> None:
    decisions = [False] * 5 + [True] * 2 + [False] * 8 + [True]
    gate = SpeechGate(vad=ScriptedVad(decisions))
    kept: list[int] = []
    for i, speech in enumerate(decisions):
        heard, frames = gate.frame(np.full(VAD_FRAME_SAMPLES, i, np.int16))
        assert heard == speech
        kept += [int(f[0]) for f in frames]
    h = VAD_HANGOVER_FRAMES
    assert kept == [*range(5 - h, 5), 5, 6, *range(7, 7 + h), *range(15 - h, 15), 15]   # before, speech, after
    assert gate.silent_frames == 0
    gate.reset()
    assert gate.silent_frames == 0 and not gate._preroll


def test_streaming_gate_agrees_with_the_clip_mask() -> None:
    x = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), voiced(2.0), np.zeros(SAMPLE_RATE, np.float32)])
    pcm = (x * 32767).astype(np.int16)
    gate = SpeechGate(aggressiveness=3)
    heard = [gate.frame(pcm[i:i + VAD_FRAME_SAMPLES])[0]
             for i in range(0, len(pcm) - VAD_FRAME_SAMPLES + 1, VAD_FRAME_SAMPLES)]
    raw = speech_mask(x, aggressiveness=3, hangover=0)
    assert np.array_equal(np.array(heard), raw)


def test_vad_rejects_bad_aggressiveness() -> None:
    with pytest.raises(ValueError, match="0-3"):
        speech_mask(np.zeros(SAMPLE_RATE, np.float32), aggressiveness=4)


def test_speech_windows_cover_the_speech() -> None:
    assert speech_windows(np.zeros(int(MIN_SPEECH_S * SAMPLE_RATE) - 1, np.float32)) == []
    one = speech_windows(np.ones(SAMPLE_RATE, np.float32))
    assert len(one) == 1 and len(one[0]) == SAMPLE_RATE
    n = WINDOW_SAMPLES + 2 * HOP_SAMPLES + HOP_SAMPLES * 3 // 4     # a tail longer than half a hop
    wins = speech_windows(np.arange(n, dtype=np.float32))
    assert [len(w) for w in wins] == [WINDOW_SAMPLES] * 4
    assert wins[-1][-1] == n - 1 and wins[1][0] == HOP_SAMPLES


@pytest.mark.skipif(not RAVDESS.is_dir(), reason="shared RAVDESS data not present")
def test_real_clip_has_speech_in_the_middle_only() -> None:
    x = ravdess_clip()
    mask = speech_mask(x)
    sec = SAMPLE_RATE // VAD_FRAME_SAMPLES
    assert mask.mean() > 0.25
    assert not mask[: sec // 3].any()          # the recording starts with about 1 s of near-silence
    feats, speech_s = clip_windows(x)
    assert len(feats) >= 1 and 0.8 < speech_s < len(x) / SAMPLE_RATE


# --------------------------------------------------------------------------------- classifier

@pytest.mark.skipif(not SHIPPED.is_file(), reason="models_tflite/voice_emotion_int8.tflite not trained yet")
def test_shipped_classifier() -> None:
    from edge.inference.voice import HOP_S, WINDOW_S, VoiceClassifier

    clf = VoiceClassifier(SHIPPED)
    assert clf.model.inputs[0].dtype == np.int8 and clf.model.outputs[0].dtype == np.int8
    assert (clf.window_s, clf.hop_s) == (WINDOW_S, HOP_S)
    assert SHIPPED.stat().st_size <= 1_000_000

    probs, detail = clf.classify_clip(np.zeros(3 * SAMPLE_RATE, np.float32))
    assert not detail.speech and detail.n_windows == 0 and not probs.any()

    x = voiced(3.0)
    win = x[:WINDOW_SAMPLES]
    p_audio = clf.classify_window(win)
    np.testing.assert_allclose(p_audio, clf.classify_window(window_features(win)))
    assert p_audio.shape == (NUM_LABELS,) and abs(p_audio.sum() - 1) < 0.05

    probs, detail = clf.classify_clip(x)
    assert detail.speech and detail.n_windows >= 2
    np.testing.assert_allclose(probs, detail.window_probs.mean(axis=0), rtol=1e-6)
    strict = VoiceClassifier(SHIPPED, min_speech_s=5.0)
    probs, detail = strict.classify_clip(x)
    assert not detail.speech and detail.speech_s > 2.5 and not probs.any()
    if RAVDESS.is_dir():
        probs, detail = clf.classify_clip(ravdess_clip())
        assert detail.speech and abs(probs.sum() - 1) < 0.05


def test_classifier_rejects_a_model_of_the_wrong_shape(tmp_path: Path) -> None:
    from edge.inference.runtime import ModelError
    from edge.inference.voice import VoiceClassifier

    face = ROOT / "models_tflite" / "face_expression_int8.tflite"
    if face.is_file():
        with pytest.raises(ModelError, match="train_voice"):
            VoiceClassifier(face)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        VoiceClassifier(bad)


# ---------------------------------------------------------------------------------- training

NEEDS_TRAINING = pytest.mark.skipif(not RAVDESS.is_dir() or not HAS_TF, reason="needs shared RAVDESS data and tensorflow")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A one-epoch, one-step training run on a 24-clip slice (shared by the training tests)."""
    out = tmp_path_factory.mktemp("voice")
    assert load_script("train_voice").main(["--data", str(DATA), "--out", str(out), "--limit", "24", "--steps", "1",
                                    "--epochs", "1", "--threads", "1", "--quiet", "--vtlp", "0.1"]) == 0
    return out


@pytest.mark.slow
@NEEDS_TRAINING
def test_training_smoke(tiny_run: Path) -> None:
    out = tiny_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_actors"] and max(metrics["train_actors"]) <= 16
    assert min(metrics["val_actors"]) >= 17
    for kind in ("float", "int8"):
        for split in ("clean", "noisy"):
            assert set(metrics[kind][split]) >= {"accuracy", "per_class_recall", "confusion"}
    assert (out / "checkpoint.keras").is_file()

    from edge.inference.voice import VoiceClassifier

    clf = VoiceClassifier(out / "voice_emotion_int8.tflite")
    probs, detail = clf.classify_clip(ravdess_clip())
    assert detail.speech and probs.shape == (NUM_LABELS,)


@pytest.mark.slow
@NEEDS_TRAINING
def test_ensemble_averages_its_members_in_one_model(tiny_run: Path, tmp_path: Path) -> None:
    from edge.inference.runtime import TFLiteModel
    from edge.inference.voice import VoiceClassifier

    ensemble = load_script("ensemble_voice")
    out = tmp_path / "ensemble"
    common = ["--data", str(DATA), "--limit", "24"]
    assert ensemble.main([str(tiny_run), str(tiny_run), "--out", str(out), *common]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["run"] for m in metrics["members"]] == [str(tiny_run)] * 2
    assert metrics["int8"]["bytes"] <= ensemble.MAX_BYTES
    assert set(metrics["int8"]["clean"]) >= {"accuracy", "confusion"}

    # two copies of one member: the ensemble's probabilities are that member's
    x = window_features(ravdess_clip()[:WINDOW_SAMPLES])[None]
    single = TFLiteModel(tiny_run / "voice_emotion_float.tflite").run(x)[0]
    both = TFLiteModel(out / "voice_emotion_float.tflite").run(x)[0]
    np.testing.assert_allclose(both, single, atol=1e-5)
    probs, detail = VoiceClassifier(out / "voice_emotion_int8.tflite").classify_clip(ravdess_clip())
    assert detail.speech and probs.shape == (NUM_LABELS,)

    # a member whose stored weights are not the model it exported is refused
    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_run, tampered)
    with np.load(tampered / "average.weights.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tampered / "average.weights.npz", **{**arrays, "count": arrays["count"] * 2})
    with pytest.raises(SystemExit, match="differ from its exported model"):
        ensemble.main([str(tampered), "--out", str(tmp_path / "refused"), *common])


def test_ensemble_refuses_a_run_with_other_windows(tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    ensemble = load_script("ensemble_voice")
    (tmp_path / "metrics.json").write_text(json.dumps({"window_s": 1.5, "feature_shape": [149, 40, 1]}))
    with pytest.raises(SystemExit, match="retrain it or leave it out"):
        ensemble.run_metrics(tmp_path)
    with pytest.raises(SystemExit, match="missing"):
        ensemble.run_metrics(tmp_path / "nowhere")


def test_noisy_copy_is_seeded_and_uses_other_speakers() -> None:
    pytest.importorskip("scipy")
    train_voice = load_script("train_voice")
    active_level, noisy_copy = train_voice.active_level, train_voice.noisy_copy

    clips = [voiced(2.0, f0=100 + 30 * i, seed=i) for i in range(4)]
    actors = [17, 18, 19, 20]
    a, b = noisy_copy(clips, actors), noisy_copy(clips, actors)
    for x, y1, y2 in zip(clips, a, b, strict=True):
        np.testing.assert_array_equal(y1, y2)
        noise = y1 - x
        snr = 20 * np.log10(active_level(x) / active_level(noise))
        assert 8.5 < snr < 11.0          # babble at 10 dB plus pink noise at 20 dB


def test_mixup_keeps_each_window_dominant_and_labels_summing_to_one() -> None:
    mixup = load_script("train_voice").mixup
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, *FEATURE_SHAPE)).astype(np.float32)
    y = np.arange(32) % NUM_LABELS
    mx, my = mixup(x, y, 0.2, np.random.default_rng(1))
    assert mx.shape == x.shape and mx.dtype == np.float32
    assert my.shape == (32, NUM_LABELS)
    np.testing.assert_allclose(my.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(my[np.arange(32), y] >= 0.5 - 1e-6)         # the window's own label dominates
    np.testing.assert_array_equal(mixup(x, y, 0.2, np.random.default_rng(1))[0], mx)   # seeded


def test_weight_average_averages_from_start_and_resumes(tmp_path: Path) -> None:
    WeightAverage = load_script("training").WeightAverage
    path = tmp_path / "average.weights.npz"
    avg = WeightAverage(path, start=2)
    weights = [[np.full(3, float(e)), np.full((2, 2), 10.0 * e)] for e in range(6)]
    assert not avg.add(0, weights[0]) and not avg.add(1, weights[1])    # before the start
    assert avg.add(2, weights[2]) and avg.add(3, weights[3])
    resumed = WeightAverage(path, start=2)                             # as after --resume
    assert resumed.count == 2
    assert not resumed.add(3, weights[3])                              # epoch 3 is already in
    assert resumed.add(4, weights[4])
    mean = resumed.weights()
    np.testing.assert_allclose(mean[0], np.full(3, 3.0))
    np.testing.assert_allclose(mean[1], np.full((2, 2), 30.0))
    assert mean[0].dtype == np.float32
    longer = WeightAverage(path, start=4)            # --resume with a longer schedule: a new average
    assert longer.count == 0 and longer.add(4, weights[4]) and longer.count == 1


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="[train] extra not installed")
def test_recompute_batchnorm_measures_the_data_and_restores_momentum() -> None:
    import tensorflow as tf

    recompute_batchnorm = load_script("training").recompute_batchnorm
    inp = tf.keras.Input((3,))
    model = tf.keras.Model(inp, tf.keras.layers.BatchNormalization(momentum=0.99)(inp))
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(1000, 3)) * [1.0, 2.0, 0.5] + [5.0, -1.0, 0.0]).astype(np.float32)
    recompute_batchnorm(tf, model, (data[i:i + 100] for i in range(0, 1000, 100)))
    norm = model.layers[-1]
    np.testing.assert_allclose(norm.moving_mean.numpy(), data.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(norm.moving_variance.numpy(), data.var(axis=0), rtol=0.05)
    assert norm.momentum == 0.99
