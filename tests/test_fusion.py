"""Fusion: confidence/freshness weighting, fading, smoothing, distress score (injected clock)."""

from __future__ import annotations

import math

import pytest

from edge.config import FusionConfig
from edge.events import ModalityReading
from edge.fusion import Fusion, distress_score, freshness
from edge.labels import INDEX, LABELS


def onehot(label: str, p: float = 0.9) -> tuple[float, ...]:
    rest = (1.0 - p) / (len(LABELS) - 1)
    return tuple(p if name == label else rest for name in LABELS)


def reading(modality: str, t: float, label: str, p: float = 0.9, conf: float | None = None) -> ModalityReading:
    probs = onehot(label, p)
    return ModalityReading(modality, t, probs, max(probs) if conf is None else conf)


def cfg(**kw: object) -> FusionConfig:
    base = dict(face_weight=0.6, voice_weight=0.4, stale_after_s=2.0, fade_s=3.0, smoothing_s=0.0)
    base.update(kw)
    return FusionConfig(**base)  # type: ignore[arg-type]


def test_no_modality_is_unknown() -> None:
    f = Fusion(cfg(), clock=lambda: 0.0, wall=lambda: "T")
    s = f.state()
    assert s.label == "unknown" and s.live == () and s.distress == 0.0 and sum(s.probs) == 0.0
    assert s.modalities["face"]["live"] is False and s.modalities["voice"]["live"] is False
    assert s.to_dict()["time"] == "T"


def test_single_modality_passes_through() -> None:
    f = Fusion(cfg())
    f.observe(reading("face", 10.0, "happy"))
    s = f.state(10.5)
    assert s.label == "happy" and s.live == ("face",)
    assert s.confidence == pytest.approx(0.9)
    assert s.modalities["face"]["age_s"] == pytest.approx(0.5)
    assert s.modalities["voice"]["live"] is False


def test_weighting_by_base_weight_and_confidence() -> None:
    f = Fusion(cfg())
    f.observe(reading("face", 0.0, "happy", p=0.9))
    f.observe(reading("voice", 0.0, "sad", p=0.9))
    assert f.state(0.0).label == "happy"               # 0.6 x 0.9 beats 0.4 x 0.9
    f.observe(reading("face", 0.0, "happy", p=0.9, conf=0.2))
    s = f.state(0.0)
    assert s.label == "sad" and set(s.live) == {"face", "voice"}
    w_face, w_voice = s.modalities["face"]["weight"], s.modalities["voice"]["weight"]
    assert w_face == pytest.approx(0.6 * 0.2) and w_voice == pytest.approx(0.4 * 0.9)


def test_stale_modality_fades_out() -> None:
    f = Fusion(cfg())
    f.observe(reading("face", 0.0, "happy"))
    f.observe(reading("voice", 4.0, "sad"))
    s = f.state(4.0)   # face is 4 s old: 2 s past stale, fade 3 s -> freshness 1/3
    assert s.modalities["face"]["weight"] == pytest.approx(0.6 * 0.9 / 3, abs=1e-3)
    assert s.label == "sad"
    s = f.state(5.5)   # face 5.5 s old: faded out entirely
    assert s.live == ("voice",) and s.modalities["face"]["live"] is False
    assert f.state(20.0).label == "unknown"


def test_freshness_curve() -> None:
    assert freshness(0.0, 2.0, 3.0) == 1.0
    assert freshness(2.0, 2.0, 3.0) == 1.0
    assert freshness(3.5, 2.0, 3.0) == pytest.approx(0.5)
    assert freshness(9.0, 2.0, 3.0) == 0.0


def test_absent_observation_and_forget() -> None:
    f = Fusion(cfg())
    f.observe(reading("face", 0.0, "happy"))
    f.observe_absent("face", 0.5, {"faces": 0})
    s = f.state(0.5)
    assert s.modalities["face"]["present"] is False and s.live == ("face",)  # still fading
    assert s.modalities["face"]["faces"] == 0
    f.forget("face")
    assert f.state(0.6).live == ()


def test_smoothing_time_constant() -> None:
    f = Fusion(cfg(smoothing_s=2.0))
    f.observe(reading("face", 0.0, "neutral", p=1.0))
    assert f.state(0.0).probs[INDEX["neutral"]] == pytest.approx(1.0)
    f.observe(reading("face", 2.0, "fear", p=1.0))
    s = f.state(2.0)   # one time constant: 1 - 1/e of the way
    assert s.probs[INDEX["fear"]] == pytest.approx(1 - math.exp(-1), abs=1e-6)
    assert s.label == "fear" and s.probs[INDEX["neutral"]] == pytest.approx(math.exp(-1), abs=1e-6)
    assert sum(s.probs) == pytest.approx(1.0)


def test_distress_score_default_and_configured() -> None:
    weights = FusionConfig().distress_weights
    assert distress_score(onehot("fear", 1.0), weights) == pytest.approx(1.0)
    assert distress_score(onehot("happy", 1.0), weights) == 0.0
    assert distress_score(onehot("sad", 1.0), {"sad": 0.5}) == pytest.approx(0.5)
    assert distress_score((0.5,) * 7, {"fear": 1.0, "sad": 1.0, "angry": 1.0}) == 1.0   # capped
    f = Fusion(cfg(distress_weights={"angry": 1.0}))
    f.observe(reading("voice", 0.0, "angry", p=0.8))
    assert f.state(0.0).distress == pytest.approx(0.8)


def test_each_modality_scores_distress_with_its_own_weights() -> None:
    weights = {"fear": 1.0, "sad": 0.8, "angry": 0.9, "disgust": 0.6}
    f = Fusion(cfg(distress_weights=weights, face_distress_weights={"disgust": 1.0}))
    assert f.distress_weights["voice"] == weights and f.distress_weights["face"]["disgust"] == 1.0
    face_score = distress_score(onehot("disgust", 0.8), {**weights, "disgust": 1.0})
    voice_score = distress_score(onehot("disgust", 0.8), weights)
    assert face_score - voice_score == pytest.approx(0.4 * 0.8)
    f.observe(reading("face", 0.0, "disgust", p=0.8))
    assert f.state(0.0).distress == pytest.approx(face_score, abs=1e-4)   # the face's disgust counts in full
    f.forget("face")
    f.observe(reading("voice", 0.0, "disgust", p=0.8))
    assert f.state(0.0).distress == pytest.approx(voice_score, abs=1e-4)  # the voice's at the shared 0.6
    f.observe(reading("face", 0.0, "disgust", p=0.8, conf=1.0))          # both: the weight-normalised mix
    w_face, w_voice = 0.6 * 1.0, 0.4 * 0.8
    assert f.state(0.0).distress == pytest.approx((w_face * face_score + w_voice * voice_score) / (w_face + w_voice),
                                                  abs=1e-4)


def test_with_shared_weights_distress_is_the_score_of_the_smoothed_mix() -> None:
    weights = {"fear": 1.0, "sad": 0.8, "angry": 0.9, "disgust": 0.6}
    f = Fusion(cfg(smoothing_s=2.0, distress_weights=weights, face_distress_weights={}))
    for t, (m, label) in enumerate([("face", "sad"), ("voice", "fear"), ("face", "happy"), ("voice", "angry"),
                                    ("face", "disgust"), ("voice", "neutral")]):
        f.observe(reading(m, float(t), label, p=0.7))
        s = f.state(float(t) + 0.5)
        assert s.distress == pytest.approx(distress_score(s.probs, weights), abs=1e-4)


def test_unknown_modality_rejected() -> None:
    with pytest.raises(ValueError, match="unknown modality"):
        Fusion(cfg()).observe(reading("smell", 0.0, "happy"))
