"""Sound-event stage: features, the shipped classifier, the vocal-distress tracker and what reaches the
speech-emotion model."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_media import REPO, SR, FixedClassifier, voiced

from edge.config import VocalDistressConfig
from edge.inference.runtime import ModelError
from edge.inference.sound_events import (
    NUM_SOUNDS,
    SOUND_CLASSES,
    SOUND_FEATURE_SHAPE,
    SoundClassifier,
    clip_sound_events,
    peak_dbfs,
    sound_features,
    sound_windows,
)
from edge.stages import VoiceStage
from edge.vocal_distress import SoundMonitor, VocalDistressTracker, clip_distress_score, smoothed_distress

SOUND_MODEL = REPO / "models_tflite" / "sound_events_int8.tflite"
VOICE_MODEL = REPO / "models_tflite" / "voice_emotion_int8.tflite"


def probs(kind: str, p: float = 0.9) -> np.ndarray:
    out = np.full(NUM_SOUNDS, (1 - p) / (NUM_SOUNDS - 1))
    out[SOUND_CLASSES.index(kind)] = p
    return out


# --------------------------------------------------------------------------------- features

def test_features_shape_and_gain_invariance() -> None:
    # gain-invariant wherever the bands are well above the small power floor (about -70 dBFS)
    x = voiced(1.0) + np.random.default_rng(2).standard_normal(SR).astype(np.float32) * 0.01
    f = sound_features(x)
    assert f.shape == SOUND_FEATURE_SHAPE and f.dtype == np.float32
    np.testing.assert_allclose(sound_features(3.0 * x)[:, 4:], f[:, 4:], atol=0.06)


def test_features_pad_short_and_keep_the_latest_second() -> None:
    assert sound_features(np.zeros(4000, np.float32)).shape == SOUND_FEATURE_SHAPE
    long = np.concatenate([np.zeros(SR, np.float32), voiced(1.0)])
    np.testing.assert_allclose(sound_features(long), sound_features(voiced(1.0)), atol=1e-5)


def test_windows_follow_the_live_hops() -> None:
    wins = sound_windows(np.zeros(int(2.2 * SR), np.float32))
    assert [len(w) for w in wins] == [SR // 2, SR, SR, SR]      # ends at 0.5, 1.0, 1.5, 2.0 s
    assert len(sound_windows(np.zeros(100, np.float32))) == 1


def test_peak_level() -> None:
    assert peak_dbfs(np.zeros(SR, np.float32)) == pytest.approx(-120.0)
    tone = (0.5 * np.sin(np.arange(SR) / 5)).astype(np.float32)
    assert peak_dbfs(tone) == pytest.approx(-9.0, abs=0.2)


# ---------------------------------------------------------------------------- the classifier

def test_shipped_model_loads_and_quiet_windows_skip_it() -> None:
    clf = SoundClassifier(SOUND_MODEL)
    assert clf.model.input_shape[1:] == SOUND_FEATURE_SHAPE
    quiet = clf.classify_window(np.full(SR, 1e-4, np.float32))
    assert SOUND_CLASSES[int(np.argmax(quiet))] == "background" and quiet.max() == 1.0
    p = clf.classify_window(voiced(1.0))
    assert p.shape == (NUM_SOUNDS,) and p.sum() == pytest.approx(1.0, abs=1e-3)
    assert clip_sound_events(clf, voiced(2.0)).shape == (4, NUM_SOUNDS)


def test_wrong_model_names_the_training_script(tmp_path) -> None:
    with pytest.raises(ModelError, match="train_sounds"):
        SoundClassifier(VOICE_MODEL)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        SoundClassifier(bad)


# --------------------------------------------------------------------------- vocal distress

def test_clip_score_is_the_highest_two_window_mean() -> None:
    p = np.stack([probs("speech"), probs("scream"), probs("scream"), probs("speech")])
    s = smoothed_distress(p)
    assert s == pytest.approx([0.06, 0.5, 0.94, 0.5])      # scream 0.9 + cry 0.02 + moan 0.02
    assert clip_distress_score(p) == pytest.approx(0.94)
    assert clip_distress_score(np.zeros((0, NUM_SOUNDS))) == 0.0


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def feed(tracker: VocalDistressTracker, clock: Clock, kind: str, seconds: float) -> list[float]:
    """One window every 0.5 s; returns the times at which the condition was present."""
    present = []
    for _ in range(int(seconds / 0.5)):
        clock.t += 0.5
        if kind == "quiet":
            tracker.observe_quiet()
        else:
            tracker.observe(probs(kind))
        if tracker.present:
            present.append(clock.t)
    return present


def test_a_single_short_cry_does_not_raise_a_minute_of_crying_does() -> None:
    cfg = VocalDistressConfig()
    clock = Clock()
    tracker = VocalDistressTracker(cfg, clock)
    feed(tracker, clock, "quiet", 5)
    assert feed(tracker, clock, "cry", 2.5) == [] and feed(tracker, clock, "speech", 60) == []
    started = clock.t
    present = feed(tracker, clock, "cry", 60)
    assert present and present[0] - started <= cfg.distress_s + 1.0
    assert tracker.detail()["heard"] == "cry"


def test_screaming_raises_sooner_than_moaning() -> None:
    cfg = VocalDistressConfig()
    times = {}
    for kind in ("scream", "moan"):
        clock = Clock()
        tracker = VocalDistressTracker(cfg, clock)
        times[kind] = feed(tracker, clock, kind, 30)[0]
    assert times["scream"] < times["moan"]


def test_condition_passes_after_clear_s_of_other_sound() -> None:
    cfg = VocalDistressConfig()
    clock = Clock()
    tracker = VocalDistressTracker(cfg, clock)
    feed(tracker, clock, "scream", 10)
    assert tracker.present
    still = feed(tracker, clock, "speech", cfg.clear_s - 1)
    assert tracker.present and len(still) == int((cfg.clear_s - 1) / 0.5)
    feed(tracker, clock, "speech", 2)
    assert not tracker.present


def test_disabled_never_present() -> None:
    clock = Clock()
    tracker = VocalDistressTracker(VocalDistressConfig(enabled=False), clock)
    assert feed(tracker, clock, "scream", 30) == []


def test_monitor_shares_of_the_last_minute() -> None:
    clock = Clock()
    mon = SoundMonitor(VocalDistressConfig(), clock)
    for kind in ["speech"] * 60 + ["cry"] * 30 + [None] * 30:
        clock.t += 0.5
        mon.observe(None if kind is None else probs(kind))
    s = mon.summary()
    assert s["now"] == "quiet"
    assert s["shares"]["speech"] == pytest.approx(0.5, abs=0.01) and s["shares"]["cry"] == pytest.approx(0.25, abs=0.01)
    # the crying (30.5-45 s) is inside the 30 s window; its first half-second only half counts
    assert s["vocal_distress"]["present"] and s["vocal_distress"]["distress_sound_s"] == 14.5
    clock.t += 61
    assert mon.summary()["shares"]["cry"] == 0.0


# ------------------------------------------------------------------- the gate in front of speech

class EnergyVad:
    def is_speech(self, frame: bytes, rate: int) -> bool:
        return np.abs(np.frombuffer(frame, np.int16)).mean() > 1000


class FixedSound:
    def __init__(self, kind: str):
        self.kind, self.calls = kind, 0

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert 0 < len(audio) <= SR        # the last second of raw audio (less at the start)
        return probs(self.kind)


@pytest.mark.parametrize(("kind", "reaches"), [("speech", True), ("scream", False), ("other_vocal", False)])
def test_only_what_the_sound_model_calls_speech_reaches_the_emotion_model(kind: str, reaches: bool) -> None:
    emotion, sound = FixedClassifier("angry"), FixedSound(kind)
    stage = VoiceStage(emotion, vad=EnergyVad(), hop_s=0.48, min_speech_s=0.6, classify_sound=sound)
    loud = np.full(int(SR * 2.88), 5000, np.int16)
    results = stage.feed(loud, t_end=2.88)
    assert (emotion.calls > 0) is reaches and sound.calls == len(results) == 6    # every hop is labelled
    assert all(d["sound"] is not None for _, _, d in results)
    assert all((r is not None) is reaches for r, _, _ in results[1:])      # 0.6 s of speech needed first


def test_silence_skips_the_sound_model() -> None:
    sound = FixedSound("speech")
    stage = VoiceStage(FixedClassifier("sad"), vad=EnergyVad(), hop_s=0.5, classify_sound=sound)
    results = stage.feed(np.zeros(SR * 3, np.int16), t_end=3.0)
    assert sound.calls == 0 and all(d["sound"] is None for _, _, d in results)


def test_reset_forgets_the_stream_but_keeps_counters() -> None:
    stage = VoiceStage(FixedClassifier("sad"), vad=EnergyVad(), hop_s=0.5, classify_sound=FixedSound("speech"))
    stage.feed(np.full(SR * 2, 5000, np.int16), t_end=2.0)
    stage.reset()
    assert stage.audio_s == 2.0 and not stage._speech and not stage._recent


# ------------------------------------------------------------------------- through the service

def test_service_hears_screaming_and_raises_vocal_distress(tmp_path) -> None:
    """File microphone -> VoiceStage (a sound model that hears screaming) -> state.sounds -> alarm
    -> event store: the wiring, on the media clock."""
    import asyncio

    from pipeline_media import write_wav

    from edge import config
    from edge.service import Service
    from edge.store import EventStore, store_path

    cfg = config.from_dict({
        "service": {"state_dir": str(tmp_path / "state")},
        "camera": {"backend": "none"}, "face": {"enabled": False},
        "microphone": {"backend": "file", "file": str(write_wav(tmp_path / "a.wav", voiced(12.0))),
                       "realtime": False, "loop": False},
    })
    emotion, sound = FixedClassifier("neutral"), FixedSound("scream")
    stage = VoiceStage(emotion, aggressiveness=2, classify_sound=sound)
    svc = Service(cfg, tasks=["store", "alarm"], stop_when_sources_end=True, voice_stage=stage)
    states = svc.hub.states.subscribe(maxsize=100_000)
    asyncio.run(asyncio.wait_for(svc.run(), timeout=60))
    seen = []
    while states.pending():
        seen.append(states.get_nowait())
    heard = [s.sounds for s in seen if s.sounds.get("now")]
    assert heard and heard[-1]["now"] == "scream" and heard[-1]["shares"]["scream"] > 0.8
    assert emotion.calls == 0                          # screaming never reaches the speech-emotion model
    store = EventStore(store_path(cfg.service.state_dir))
    raised = [e for e in store.query_events() if e["kind"] == "raised"]
    store.close()
    assert [e["condition"] for e in raised] == ["vocal_distress"]
    assert raised[0]["detail"]["scream_s"] >= cfg.vocal_distress.scream_s
