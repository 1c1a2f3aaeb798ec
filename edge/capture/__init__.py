"""Capture: camera and microphone sources that run in threads, fail soft, and retry with backoff.

Each source reports health through a callback ``(name, status, detail)``; a failing source never
stops the other one. Hardware libraries (picamera2, pyaudio) are imported inside their backends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

HealthCallback = Callable[[str, str, str], None]


class CaptureError(RuntimeError):
    """A source cannot deliver (device missing, unplugged, file missing or corrupt); one line."""


class MediaClock:
    """Pipeline time for file sources played as fast as possible.

    The video source drives it (each frame's media time); the audio source follows, never running
    more than ``lead_s`` ahead, so face and voice stay time-aligned. Without a live driver (no video,
    or the video is down) the audio drives it itself.
    """

    def __init__(self, lead_s: float = 0.1):
        self.lead_s = lead_s
        self._t = 0.0
        self._drivers: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self) -> float:
        return self._t

    def drive(self, name: str) -> None:
        with self._cond:
            self._drivers.add(name)

    def release(self, name: str) -> None:
        with self._cond:
            self._drivers.discard(name)
            self._cond.notify_all()

    def advance(self, t: float) -> None:
        with self._cond:
            if t > self._t:
                self._t = t
                self._cond.notify_all()

    def follow(self, name: str, t: float, stop: threading.Event) -> bool:
        """Block until the clock reaches ``t - lead_s`` (or drive it when nobody else does).
        Returns False when ``stop`` was set."""
        with self._cond:
            while not stop.is_set():
                if not (self._drivers - {name}):
                    if t > self._t:
                        self._t = t
                        self._cond.notify_all()
                    return True
                if self._t >= t - self.lead_s:
                    return True
                self._cond.wait(0.1)
        return False


class Backoff:
    """Retry delays: ``first_s``, doubling, capped at ``max_s``; ``reset`` after a good run."""

    def __init__(self, first_s: float, max_s: float):
        self.first_s = first_s
        self.max_s = max_s
        self._next = first_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self.max_s, delay * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first_s
