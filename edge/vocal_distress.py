"""Vocal distress: from per-window sound-event probabilities to a present / absent condition.

Pure logic with an injected clock, no I/O. Each sound window (1 s, every 0.5 s) gives a distress
probability P(scream) + P(cry) + P(moan); the box's vocal-distress score is its mean over the last
two windows (1.5 s of sound), and a hop whose score reaches ``flag_threshold`` is *flagged*, as a
scream when screaming is the likeliest of the three. Over the last ``window_s`` the tracker counts
flagged seconds: the condition is present when screaming adds up to ``scream_s`` or any distress
sound to ``distress_s`` (screaming counts toward both, so it raises sooner), and passes when no hop
has been flagged for ``clear_s``. A single short cry stays under both; a minute of crying does not.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.config import VocalDistressConfig
from edge.inference.sound_events import DISTRESS_IDX, DISTRESS_SOUNDS, SOUND_CLASSES, SOUND_HOP_S

SMOOTH_WINDOWS = 2


def window_distress(probs: np.ndarray) -> np.ndarray:
    """P(scream) + P(cry) + P(moan) per window ([n, classes] -> [n])."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1, len(SOUND_CLASSES))
    return p[:, list(DISTRESS_IDX)].sum(axis=1)


def smoothed_distress(probs: np.ndarray) -> np.ndarray:
    """The box's vocal-distress score after each window: the mean of the last ``SMOOTH_WINDOWS``."""
    d = window_distress(probs)
    if len(d) == 0:
        return d
    c = np.cumsum(np.concatenate([[0.0], d]))
    k = np.minimum(np.arange(1, len(d) + 1), SMOOTH_WINDOWS)
    return (c[1:] - c[np.arange(1, len(d) + 1) - k]) / k


def clip_distress_score(probs: np.ndarray) -> float:
    """A clip's vocal-distress score: the highest score the box reaches while hearing it."""
    s = smoothed_distress(probs)
    return float(s.max()) if len(s) else 0.0


@dataclass(frozen=True)
class SoundHop:
    """One classified sound window as the tracker keeps it."""

    t: float
    label: str                # likeliest class
    score: float              # smoothed vocal-distress score
    flagged: bool
    scream: bool


class VocalDistressTracker:
    """Feeds on sound windows; says whether sustained or repeated distress sounds are present."""

    def __init__(self, config: VocalDistressConfig, clock: Callable[[], float] = time.monotonic,
                 hop_s: float = SOUND_HOP_S):
        self.config = config
        self.clock = clock
        self.hop_s = hop_s
        self._hops: deque[SoundHop] = deque()
        self._recent: deque[float] = deque(maxlen=SMOOTH_WINDOWS)
        self._last_flag: float | None = None
        self.present = False

    def observe(self, probs: Sequence[float] | np.ndarray, t: float | None = None) -> SoundHop:
        """One window's probabilities (``SOUND_CLASSES`` order) at time ``t``."""
        t = self.clock() if t is None else t
        p = np.asarray(probs, dtype=np.float64)
        d = float(window_distress(p)[0])
        self._recent.append(d)
        score = float(np.mean(self._recent))
        flagged = score >= self.config.flag_threshold
        distress_probs = p[list(DISTRESS_IDX)]
        scream = flagged and DISTRESS_SOUNDS[int(np.argmax(distress_probs))] == "scream"
        hop = SoundHop(t, SOUND_CLASSES[int(np.argmax(p))], score, flagged, scream)
        self._hops.append(hop)
        if flagged:
            self._last_flag = t
        self.evaluate(t)
        return hop

    def observe_quiet(self, t: float | None = None) -> None:
        """No sound analysed this hop (silence or no vocal sound): the score decays."""
        t = self.clock() if t is None else t
        self._recent.append(0.0)
        self.evaluate(t)

    def _prune(self, now: float) -> None:
        while self._hops and now - self._hops[0].t > self.config.window_s:
            self._hops.popleft()

    def seconds(self, now: float | None = None) -> tuple[float, float]:
        """(screaming seconds, distress-sound seconds) flagged within the last ``window_s``."""
        now = self.clock() if now is None else now
        self._prune(now)
        scream = sum(self.hop_s for h in self._hops if h.scream)
        distress = sum(self.hop_s for h in self._hops if h.flagged)
        return scream, distress

    def evaluate(self, now: float | None = None) -> bool:
        """Update and return ``present``."""
        c = self.config
        now = self.clock() if now is None else now
        scream_s, distress_s = self.seconds(now)
        if not self.present:
            self.present = c.enabled and (scream_s >= c.scream_s or distress_s >= c.distress_s)
        elif self._last_flag is None or now - self._last_flag >= c.clear_s:
            self.present = False
        return self.present

    def detail(self, now: float | None = None) -> dict[str, Any]:
        """What the event and the status page say about the condition."""
        scream_s, distress_s = self.seconds(now)
        kinds: dict[str, int] = {}
        for h in self._hops:
            if h.flagged:
                kinds[h.label] = kinds.get(h.label, 0) + 1
        return {"scream_s": round(scream_s, 1), "distress_sound_s": round(distress_s, 1),
                "window_s": self.config.window_s, "score": round(float(np.mean(self._recent)), 3) if self._recent else 0.0,
                "heard": max(kinds, key=kinds.__getitem__) if kinds else None}


SOUND_NAMES: dict[str, str] = {"speech": "speech", "scream": "scream", "cry": "cry", "moan": "moan",
                               "other_vocal": "other", "background": "quiet"}
SHARE_WINDOW_S = 60.0
SUMMARY_REUSE_S = 0.5


class SoundMonitor:
    """What the box hears: the current sound, each sound's share of the last minute, and the
    vocal-distress tracker. Fed one sound window per hop on the event loop; read by every state."""

    def __init__(self, config: VocalDistressConfig, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.tracker = VocalDistressTracker(config, clock)
        self._labels: deque[tuple[float, str]] = deque()
        self.current: str | None = None
        self._summary: tuple[float, dict[str, Any]] | None = None   # (when, summary) until the next hop

    def observe(self, probs: Sequence[float] | np.ndarray | None, t: float | None = None) -> None:
        """One hop: the sound window's probabilities, or None when nothing vocal was heard."""
        t = self.clock() if t is None else t
        if probs is None:
            self.tracker.observe_quiet(t)
            name = "quiet"
        else:
            name = SOUND_NAMES[self.tracker.observe(probs, t).label]
        self.current = name
        self._labels.append((t, name))
        self._summary = None

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """JSON-ready: ``now`` (the current sound), ``shares`` over the last minute, ``vocal_distress``."""
        now = self.clock() if now is None else now
        # every published state asks (each face frame too): between hops, reuse it for half a second
        if self._summary is not None and 0.0 <= now - self._summary[0] < SUMMARY_REUSE_S:
            return self._summary[1]
        while self._labels and now - self._labels[0][0] > SHARE_WINDOW_S:
            self._labels.popleft()
        counts = dict.fromkeys(SOUND_NAMES.values(), 0)
        for _, name in self._labels:
            counts[name] += 1
        total = max(1, len(self._labels))
        present = self.tracker.evaluate(now)
        summary = {"now": self.current, "shares": {k: round(v / total, 3) for k, v in counts.items()},
                   "vocal_distress": {"present": present, **self.tracker.detail(now)}}
        self._summary = (now, summary)
        return summary
