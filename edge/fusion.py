"""Late fusion of the face and voice readings into an ``EmotionState`` (pure; injected clock).

For each modality the latest reading gets a weight::

    weight = base weight ([fusion] face_weight / voice_weight) x reading confidence x freshness

where freshness is 1 while the reading is younger than ``stale_after_s`` and falls linearly to 0
over the next ``fade_s`` seconds (a stale or absent modality fades out; ages are measured from the
capture time of the reading's input, so the modalities are time-aligned). The fused distribution is
the weight-normalised mix of the live modalities, exponentially smoothed with time constant
``smoothing_s``. With no live modality the state is ``unknown`` with zero probabilities and zero
distress, and the smoothing restarts.

Distress score (``[fusion] distress_weights``; default fear 1.0, angry 0.9, sad 0.8, disgust 0.6;
``face_distress_weights`` / ``voice_distress_weights`` replace single labels for one modality)::

    distress of a reading = min(1, sum(weight[modality][label] x probability[label]))
    distress = smoothed, weight-normalised mix of the live readings' distress

With the same weights for both modalities this is the weighted sum over the smoothed fused
probabilities (the score is linear in them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.config import FusionConfig
from edge.events import EmotionState, ModalityReading, utc_now_iso
from edge.labels import INDEX, LABELS, NUM_LABELS

MODALITIES = ("face", "voice")
UNKNOWN = "unknown"


def distress_score(probs: np.ndarray | tuple[float, ...], weights: dict[str, float]) -> float:
    """Sum of weight x probability over the configured labels, capped at 1."""
    p = np.asarray(probs, dtype=np.float64)
    if p.size != NUM_LABELS:
        return 0.0
    return float(min(1.0, sum(w * p[INDEX[label]] for label, w in weights.items())))


def freshness(age_s: float, stale_after_s: float, fade_s: float) -> float:
    """1 up to ``stale_after_s``, then linearly down to 0 over ``fade_s``."""
    if age_s <= stale_after_s:
        return 1.0
    return max(0.0, 1.0 - (age_s - stale_after_s) / fade_s)


class Fusion:
    """Keeps the latest reading per modality and produces smoothed, fused states."""

    def __init__(self, config: FusionConfig, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], str] = utc_now_iso):
        self.cfg = config
        self.clock = clock
        self.wall = wall
        self.base = {"face": config.face_weight, "voice": config.voice_weight}
        self.readings: dict[str, ModalityReading] = {}
        self.presence: dict[str, dict[str, Any]] = {}   # latest observation per modality
        self.sources: dict[str, str] = {}                # capture source status per modality
        self.distress_weights = {m: config.weights_for(m) for m in MODALITIES}
        self._smoothed: np.ndarray | None = None
        self._smoothed_distress = 0.0
        self._last_t: float | None = None

    def observe(self, reading: ModalityReading) -> None:
        """A modality saw something (a face, speech) and classified it."""
        if reading.modality not in self.base:
            raise ValueError(f"unknown modality {reading.modality!r}; expected one of {MODALITIES}")
        self.readings[reading.modality] = reading
        self.presence[reading.modality] = {"present": True, "t": reading.t}

    def observe_absent(self, modality: str, t: float, detail: dict[str, Any] | None = None) -> None:
        """A modality ran but found nothing (no face, no speech); its last reading fades out."""
        self.presence[modality] = {"present": False, "t": t, **(detail or {})}

    def set_source(self, modality: str, status: str) -> None:
        """Record the capture source's health (ok, down, ...); shown in each state."""
        self.sources[modality] = status

    def forget(self, modality: str) -> None:
        """Drop a modality at once (its source is down)."""
        self.readings.pop(modality, None)
        self.presence.pop(modality, None)

    def state(self, now: float | None = None) -> EmotionState:
        now = self.clock() if now is None else now
        weights: dict[str, float] = {}
        detail: dict[str, dict[str, Any]] = {}
        for m in MODALITIES:
            r = self.readings.get(m)
            seen = self.presence.get(m, {})
            d: dict[str, Any] = {"live": False, "weight": 0.0, "present": bool(seen.get("present", False)),
                                 "source": self.sources.get(m, "disabled")}
            if r is not None:
                age = max(0.0, now - r.t)
                w = self.base[m] * r.confidence * freshness(age, self.cfg.stale_after_s, self.cfg.fade_s)
                d.update(
                    live=w > 0, weight=round(w, 4), age_s=round(age, 3),
                    label=LABELS[int(np.argmax(r.probs))], confidence=round(r.confidence, 4),
                    probs={name: round(p, 4) for name, p in zip(LABELS, r.probs, strict=True)},
                    **{k: v for k, v in r.detail.items() if k not in d},
                )
                if w > 0:
                    weights[m] = w
            d.update({k: v for k, v in seen.items() if k not in ("t", "present")})  # e.g. faces: 0 now
            detail[m] = d
        total = sum(weights.values())
        if total <= 0:
            self._smoothed = None
            self._last_t = now
            return EmotionState(t=now, time=self.wall(), probs=(0.0,) * NUM_LABELS, label=UNKNOWN,
                                confidence=0.0, distress=0.0, modalities=detail, live=())
        probs = {m: np.asarray(self.readings[m].probs, dtype=np.float64) for m in weights}
        probs = {m: p / max(p.sum(), 1e-9) for m, p in probs.items()}
        fused = sum(w * probs[m] for m, w in weights.items()) / total
        distress = sum(w * distress_score(probs[m], self.distress_weights[m]) for m, w in weights.items()) / total
        if self._smoothed is None or self.cfg.smoothing_s <= 0 or self._last_t is None:
            smoothed, smoothed_distress = fused, distress
        else:
            dt = max(0.0, now - self._last_t)
            alpha = 1.0 - math.exp(-dt / self.cfg.smoothing_s)
            smoothed = self._smoothed + alpha * (fused - self._smoothed)
            smoothed_distress = self._smoothed_distress + alpha * (distress - self._smoothed_distress)
        self._smoothed, self._smoothed_distress, self._last_t = smoothed, smoothed_distress, now
        top = int(np.argmax(smoothed))
        return EmotionState(
            t=now, time=self.wall(), probs=tuple(float(p) for p in smoothed), label=LABELS[top],
            confidence=float(smoothed[top]),
            distress=round(min(1.0, smoothed_distress), 4),
            modalities=detail, live=tuple(m for m in MODALITIES if m in weights),
        )
