"""The shipped sound-event model end to end on held-out speakers (the shared data, when present),
the scenario bench, and a training smoke run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from script_loader import load_script

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
NEEDS_DATA = pytest.mark.skipif(not (DATA / "vocal_bursts").is_dir(), reason="needs the shared vocal_bursts data")
HAS_TF = importlib.util.find_spec("tensorflow") is not None


def bench_rows(*args: str) -> list[dict]:
    """The streams of one ``scripts/bench_sounds.py`` run (its last line)."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_sounds.py"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["streams"]


@NEEDS_DATA
def test_scenario_bench_screaming_alarms_laughing_and_room_sound_do_not() -> None:
    rows = bench_rows("--seconds", "40", "--only", "screaming", "laughing", "room sound", "--shuffles", "2")
    assert [(r["stream"], r["shuffle"]) for r in rows] == [(n, k) for n in ("screaming", "laughing", "room sound")
                                                           for k in (1, 2)]
    for r in rows:
        if r["stream"] == "screaming":
            assert r["conditions"] == ["vocal_distress"] and r["first_s"] <= 20
        else:
            assert r["alarms"] == 0


@NEEDS_DATA
def test_scenario_bench_per_speaker_plays_each_voice_alone() -> None:
    rows = bench_rows("--seconds", "30", "--per-speaker", "--only", "calm speech", "screaming")
    # only speech streams, one per validation actor, each built from that actor's clips alone
    assert [(r["stream"], r["speaker"]) for r in rows] == [("calm speech", f"r:{a}") for a in (17, 18, 19, 20)]
    assert all(r["clips"] == 8 and r["alarms"] == 0 for r in rows)


@NEEDS_DATA
def test_scenario_bench_over_a_background() -> None:
    (row,) = bench_rows("--seconds", "20", "--only", "screaming", "--background", "talk", "--snr", "12")
    assert row["stream"] == "screaming" and row["background"] == "talk" and row["snr_db"] == 12.0
    assert row["conditions"] == ["vocal_distress"]      # screams over people talking still alarm


def test_scenario_bench_refuses_zero_shuffles() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_sounds.py"), "--shuffles", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--shuffles must be at least 1" in proc.stderr


@NEEDS_DATA
def test_held_out_speakers_through_the_service_path(tmp_path: Path) -> None:
    make_sets, evaluate = load_script("make_eval_sets"), load_script("evaluate")
    assert make_sets.main(["--data", str(DATA), "--out", str(tmp_path)]) == 0
    result = evaluate.evaluate_sounds(tmp_path / "sounds_deeply_speech", evaluate.DEFAULT_SOUND_MODEL,
                                      evaluate.DEFAULT_VOICE_MODEL)
    assert result["n"] > 300 and result["distress_auc"] >= 0.9
    assert result["false_alarm_rate"] <= 0.1 and result["speech_recall"] >= 0.9


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "vocal_bursts").is_dir() or not HAS_TF, reason="needs shared data and tensorflow")
def test_training_smoke(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert load_script("train_sounds").main(["--data", str(DATA), "--out", str(out), "--limit", "120",
                                             "--epochs", "1", "--steps", "2", "--threads", "1", "--quiet",
                                             "--no-espeak", "--eq", "0.5", "--beds", "0.5", "--songs", "0.5"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classes"] == ["speech", "scream", "cry", "moan", "other_vocal", "background"]
    assert {"auc_deeply_speech", "auc_emogator", "clip_accuracy"} <= set(metrics["int8"])
    from edge.inference.sound_events import SoundClassifier

    SoundClassifier(out / "sound_events_int8.tflite")


def test_random_eq_changes_the_microphone_not_the_level_or_length() -> None:
    pytest.importorskip("scipy")
    import numpy as np

    train = load_script("train_sounds")
    x = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)   # white: flat spectrum

    def tilt(y: np.ndarray) -> float:   # dB of the 2-6 kHz band against 100-500 Hz
        power = np.abs(np.fft.rfft(y)) ** 2
        f = np.fft.rfftfreq(len(y), 1 / 16000)
        return float(10 * np.log10(power[(f > 2000) & (f < 6000)].mean() / power[(f > 100) & (f < 500)].mean()))

    rng = np.random.default_rng(1)
    outs = [train.random_eq(x, rng) for _ in range(20)]
    assert all(y.dtype == np.float32 and len(y) == len(x) for y in outs)
    assert all(abs(np.abs(y).max() - np.abs(x).max()) < 1e-5 for y in outs)   # peak kept: gain is separate
    tilts = [tilt(y) for y in outs]
    assert abs(tilt(x)) < 1.0 and max(tilts) - min(tilts) > 6.0   # responses differ by several dB


def test_room_bed_is_a_steady_background_and_never_silent() -> None:
    """``--beds``: music-like sound, several room sounds at once, or a crowd of four to six voices,
    the same for the same seed; the bed lies under the whole window (no gap a burst could be told by)."""
    import numpy as np

    train = load_script("train_sounds")
    rng0 = np.random.default_rng(5)
    voices = [np.sin(2 * np.pi * f * np.arange(16000) / 16000).astype(np.float32) * 0.1
              for f in rng0.uniform(120, 300, 8)]
    beds = [train.room_bed(16000, np.random.default_rng(k), voices) for k in range(30)]
    np.testing.assert_array_equal(beds[3], train.room_bed(16000, np.random.default_rng(3), voices))
    for bed in beds:
        assert bed.dtype == np.float32 and bed.shape == (16000,) and np.isfinite(bed).all()
        quarters = np.sqrt(np.mean(np.square(bed.reshape(4, -1)), axis=1))
        assert quarters.min() > 0.05 * quarters.max() > 0      # steady under the window, not a burst


def test_training_songs_are_seeded_unit_level_and_sung_most_of_the_time() -> None:
    """``train_sounds.py --songs``: a singer over a band (or the band alone), the same for a seed."""
    pytest.importorskip("scipy")
    import numpy as np

    song = load_script("sound_data").song
    songs = [song(16000, np.random.default_rng(k)) for k in range(20)]
    np.testing.assert_array_equal(songs[4], song(16000, np.random.default_rng(4)))
    assert all(x.dtype == np.float32 and x.shape == (16000,) and abs(np.sqrt(np.mean(x * x)) - 1) < 1e-3
               for x in songs)

    def voiced_share(x: np.ndarray) -> float:     # power in 200-1000 Hz (a singer's F0 and F1 region)
        power = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / 16000)
        return float(power[(f > 200) & (f < 1000)].sum() / power.sum())

    shares = sorted(voiced_share(x) for x in songs)
    assert shares[-1] > 0.3 and shares[-1] - shares[0] > 0.1      # sung and band-only songs differ


def test_band_music_is_seeded_steady_and_never_heard_in_training() -> None:
    """``bench_sounds.py --background band``: another generator than the training backgrounds'
    music, under the whole stream, with a beat; no training script may import it."""
    pytest.importorskip("scipy")
    import numpy as np

    band = load_script("band_music").band
    x = band(4 * 16000, np.random.default_rng(2))
    np.testing.assert_array_equal(x, band(4 * 16000, np.random.default_rng(2)))
    assert x.dtype == np.float32 and np.isfinite(x).all() and abs(np.sqrt(np.mean(x * x)) - 1) < 1e-3
    frames = np.sqrt(np.mean(np.square(x.reshape(-1, 800)), axis=1))        # 50 ms levels
    assert frames.min() > 0.02 * frames.max()                                 # never silent
    assert frames.max() > 3 * np.median(frames)                               # drums: a beat stands out
    for script in ("train_sounds", "train_voice", "sound_data", "training"):
        assert "band_music" not in (REPO / "scripts" / f"{script}.py").read_text()


def test_rule_search_replays_hops_and_tells_backgrounds_apart() -> None:
    """``tune_vocal_distress.py``: a rule is judged by when its tracker would first raise, on the
    half-second sound probabilities of a stream; ``--background`` streams are counted apart."""
    import numpy as np

    from edge.config import VocalDistressConfig

    tune = load_script("tune_vocal_distress")
    scream = np.array([0.1, 0.8, 0.05, 0.05, 0.0, 0.0])     # distress score 0.9
    laugh = np.array([0.0, 0.1, 0.1, 0.0, 0.8, 0.0])
    hops = [(0.5 * (k + 1), laugh if k < 10 else scream) for k in range(20)] + [(10.5, None)]
    # screaming from 5.5 s; the score is the mean of two windows, so flagged from 6.0 s: 1.5 s at 7.0 s
    assert tune.first_raise(hops, VocalDistressConfig(scream_s=1.5)) == 7.0
    assert tune.first_raise(hops[:10], VocalDistressConfig()) is None
    assert tune.first_raise(hops, VocalDistressConfig(flag_threshold=0.95)) is None
    assert [tune.background_of(n) for n in ("laughing", "laughing over band", "pain bursts over talk")] == \
        ["clean", "band", "talk"]


def test_ensemble_refuses_a_model_that_is_not_a_sound_model() -> None:
    pytest.importorskip("ai_edge_litert")
    ensemble = load_script("ensemble_sounds")
    with pytest.raises(SystemExit, match="not a sound-event model made by scripts/train_sounds.py"):
        ensemble.member_weights(REPO / "models_tflite" / "voice_emotion_int8.tflite")
    convs, dense, kind = ensemble.member_weights(REPO / "models_tflite" / "sound_events_int8.tflite")
    assert kind == "int8" and len(convs) == 4 and dense[0].shape[1] == 6
    assert convs[0][0].shape[:3] == (3, 3, 1) and all(c[0].shape[-1] == c[1].shape[0] for c in convs)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "vocal_bursts").is_dir() or not HAS_TF, reason="needs shared data and tensorflow")
def test_ensemble_of_the_shipped_model_with_itself_is_the_shipped_model(tmp_path: Path) -> None:
    import numpy as np

    from edge.inference.runtime import TFLiteModel
    from edge.inference.sound_events import SoundClassifier, sound_features

    shipped = REPO / "models_tflite" / "sound_events_int8.tflite"
    out = tmp_path / "ensemble"
    ensemble = load_script("ensemble_sounds")
    assert ensemble.main([str(shipped), str(shipped), "--data", str(DATA), "--out", str(out), "--limit", "120"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["file"] for m in metrics["members"]] == [str(shipped)] * 2
    assert all(m["matches_its_file_within"] <= 0.06 for m in metrics["members"])
    rng = np.random.default_rng(0)
    x = sound_features((0.1 * rng.standard_normal(16000)).astype(np.float32))[None]
    both = TFLiteModel(out / "sound_events_float.tflite").run(x)[0][0]
    single = SoundClassifier(shipped).model.run(x)[0][0]
    np.testing.assert_allclose(both, single / single.sum(), atol=0.06)
    SoundClassifier(out / "sound_events_int8.tflite")
