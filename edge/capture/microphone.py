"""Microphone sources: PyAudio (device by name or index, 16 kHz mono, callback mode) and WAV/FLAC
files (paced in real time or as fast as possible; loop or play once), into an ``AudioRing``.

A ``MicrophoneSource`` thread runs the backend, reports health and retries with backoff; the voice
stage reads new audio from the ring. Live audio never blocks: when the reader falls behind, the
oldest audio is overwritten and counted.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.audio_format import SAMPLE_RATE
from edge.capture import Backoff, CaptureError, HealthCallback, MediaClock

log = logging.getLogger(__name__)


def to_int16_16k(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mono float [-1, 1] or int16 audio at ``rate`` -> int16 at 16 kHz."""
    x = np.asarray(audio)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, int(rate) // g)
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


class AudioRing:
    """The latest ``seconds`` of 16 kHz int16 audio and the capture time of its newest sample.

    One writer, one reader. The writer never blocks unless ``lossless`` (files played as fast as
    possible), where it waits for room so that every sample is analysed.
    """

    def __init__(self, seconds: float = 4.0, lossless: bool = False, sample_rate: int = SAMPLE_RATE):
        self.sample_rate = sample_rate
        self.capacity = int(seconds * sample_rate)
        self.lossless = lossless
        self.overrun_samples = 0
        self._buf = np.zeros(self.capacity, dtype=np.int16)
        self._written = 0           # samples written since creation
        self._read = 0              # reader cursor (absolute sample count)
        self._t_end = 0.0           # capture time of sample number _written - 1
        self._closed = False
        self._cond = threading.Condition()

    def write(self, samples: np.ndarray, t_end: float, stop: threading.Event | None = None) -> None:
        samples = np.asarray(samples, dtype=np.int16)
        n = len(samples)
        if n == 0:
            return
        if n > self.capacity:
            samples, n = samples[-self.capacity:], self.capacity
        with self._cond:
            if self.lossless:
                while (self._written + n - self._read > self.capacity and not self._closed
                       and not (stop and stop.is_set())):
                    self._cond.wait(0.1)
            start = self._written % self.capacity
            first = min(n, self.capacity - start)
            self._buf[start:start + first] = samples[:first]
            if first < n:
                self._buf[:n - first] = samples[first:]
            self._written += n
            self._t_end = t_end
            behind = self._written - self._read - self.capacity
            if behind > 0:
                self.overrun_samples += behind
                self._read += behind
            self._cond.notify_all()

    def read(self, timeout: float | None = None) -> tuple[np.ndarray, float] | None:
        """All audio not read yet and the capture time of its last sample; None on timeout."""
        with self._cond:
            if self._written == self._read and not self._closed:
                self._cond.wait_for(lambda: self._written > self._read or self._closed, timeout)
            n = self._written - self._read
            if n <= 0:
                return None
            start = self._read % self.capacity
            first = min(n, self.capacity - start)
            out = self._buf[start:start + first].copy()
            if first < n:
                out = np.concatenate([out, self._buf[:n - first]])
            self._read = self._written
            self._cond.notify_all()
            return out, self._t_end

    def empty(self) -> bool:
        return self._written == self._read

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class AudioBackend(Protocol):
    """One microphone backend. ``run`` delivers audio until ``stop`` (returns False) or the end of a
    play-once file (returns True); raises CaptureError on failure."""

    name: str

    def open(self) -> None: ...
    def run(self, ring: AudioRing, stop: threading.Event, on_first: Callable[[str], None]) -> bool: ...
    def close(self) -> None: ...


class PyAudioBackend:
    """A live microphone through PyAudio in callback mode (16 kHz mono int16)."""

    name = "pyaudio"

    def __init__(self, device: str = "", sample_rate: int = SAMPLE_RATE, chunk_s: float = 0.03,
                 clock: Callable[[], float] = time.monotonic, silence_timeout_s: float = 2.0):
        self.device = device
        self.rate = sample_rate
        self.chunk = max(1, int(sample_rate * chunk_s))
        self.clock = clock
        self.silence_timeout_s = silence_timeout_s
        self.poll_s = 0.25
        self._pa = None
        self._stream = None
        self._last = 0.0
        self._ring: AudioRing | None = None
        self.overflows = 0

    def _find_device(self, pa) -> int | None:  # noqa: ANN001 - pyaudio.PyAudio
        dev = self.device.strip()
        if not dev:
            return None
        if re.fullmatch(r"\d+", dev):
            return int(dev)
        names = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if int(info.get("maxInputChannels", 0)) > 0:
                names.append(str(info.get("name", "")))
                if dev.lower() in str(info.get("name", "")).lower():
                    return i
        raise CaptureError(f"no input device matching {dev!r}; available inputs: "
                           f"{', '.join(names) or 'none'} (set microphone.device)")

    def open(self) -> None:
        try:
            import pyaudio
        except ImportError:
            raise CaptureError("PyAudio is not installed; run `pip install 'medtrack-edge[pi]'` "
                               "(needs portaudio19-dev) or set microphone.backend = 'file' or 'none'") from None
        self._pa = pa = pyaudio.PyAudio()
        try:
            index = self._find_device(pa)
            self._stream = pa.open(format=pyaudio.paInt16, channels=1, rate=self.rate, input=True,
                                   input_device_index=index, frames_per_buffer=self.chunk,
                                   stream_callback=self._callback, start=False)
        except CaptureError:
            raise
        except Exception as exc:  # noqa: BLE001 - PortAudio raises OSError/ValueError
            raise CaptureError(f"microphone could not be opened ({exc}); check microphone.device "
                               "and that it is plugged in") from exc
        self._paContinue = pyaudio.paContinue

    def _callback(self, in_data, frame_count, time_info, status):  # noqa: ANN001, ANN202
        self._last = time.monotonic()
        if status:
            self.overflows += 1
        if self._ring is not None and in_data:
            samples = np.frombuffer(in_data, dtype="<i2")
            if self.rate != SAMPLE_RATE:
                samples = to_int16_16k(samples, self.rate)
            self._ring.write(samples, self.clock())
        return None, self._paContinue

    def run(self, ring: AudioRing, stop: threading.Event, on_first: Callable[[str], None]) -> bool:
        assert self._stream is not None
        self._ring = ring
        self._last = time.monotonic()
        self._stream.start_stream()
        reported = False
        while not stop.wait(self.poll_s):
            silent = time.monotonic() - self._last
            active = self._stream.is_active()
            if not active or silent > self.silence_timeout_s:
                raise CaptureError(f"microphone stopped delivering audio for {silent:.1f} s (unplugged?)")
            if not reported and silent < self.silence_timeout_s:
                reported = True
                on_first(f"{self.rate} Hz mono")
        return False

    def close(self) -> None:
        self._ring = None
        stream, self._stream = self._stream, None
        if stream is not None:
            for method in ("stop_stream", "close"):
                with contextlib.suppress(Exception):  # best effort on a vanished device
                    getattr(stream, method)()
        pa, self._pa = self._pa, None
        if pa is not None:
            with contextlib.suppress(Exception):  # best effort on a vanished device
                pa.terminate()


class AudioFileBackend:
    """A WAV/FLAC file (any rate; mixed to mono and resampled to 16 kHz), paced in real time or as
    fast as possible (following the video's media clock)."""

    name = "file"

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = True,
                 clock: Callable[[], float] = time.monotonic, chunk_s: float = 0.1):
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self.clock = clock
        self.chunk = int(SAMPLE_RATE * chunk_s)
        self.audio: np.ndarray | None = None

    def open(self) -> None:
        import soundfile

        if not self.path.is_file():
            raise CaptureError(f"audio file {self.path} not found; check microphone.file / --audio")
        try:
            data, rate = soundfile.read(str(self.path), dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 - libsndfile errors
            raise CaptureError(f"audio file {self.path} cannot be decoded ({str(exc).splitlines()[0]}); "
                               "use a WAV or FLAC file") from exc
        if len(data) == 0:
            raise CaptureError(f"audio file {self.path} holds no audio")
        self.audio = to_int16_16k(data.mean(axis=1), rate)

    def run(self, ring: AudioRing, stop: threading.Event, on_first: Callable[[str], None]) -> bool:
        assert self.audio is not None
        media = self.clock if isinstance(self.clock, MediaClock) else None
        t0 = self.clock()
        pos = 0          # samples delivered since open
        n = len(self.audio)
        on_first(f"{self.path.name}, {n / SAMPLE_RATE:.1f} s")
        while not stop.is_set():
            i = pos % n
            if pos and i == 0 and not self.loop:
                return True
            chunk = self.audio[i:min(n, i + self.chunk)]
            t_end = t0 + (pos + len(chunk)) / SAMPLE_RATE
            if media is not None:
                if not media.follow("microphone", t_end, stop):
                    return False
            elif self.realtime:
                wait = t_end - self.clock()
                if wait > 0 and stop.wait(wait):
                    return False
                t_end = self.clock()
            else:
                t_end = self.clock()
            ring.write(chunk, t_end, stop)
            pos += len(chunk)
        return False

    def close(self) -> None:
        self.audio = None


def make_backend(cfg, clock: Callable[[], float]) -> Callable[[], AudioBackend] | None:  # noqa: ANN001
    """A factory of fresh backends for a [microphone] config section; None for backend = 'none'."""
    if cfg.backend == "pyaudio":
        return lambda: PyAudioBackend(cfg.device, cfg.sample_rate, clock=clock)
    if cfg.backend == "file":
        return lambda: AudioFileBackend(cfg.file, realtime=cfg.realtime, loop=cfg.loop, clock=clock)
    return None


class MicrophoneSource:
    """Runs a backend in a thread into ``ring``; reports health; retries with backoff."""

    def __init__(self, backend_factory: Callable[[], AudioBackend], ring: AudioRing,
                 on_health: HealthCallback, *, retry_first_s: float = 0.5, retry_max_s: float = 30.0,
                 name: str = "microphone"):
        self.factory = backend_factory
        self.ring = ring
        self.on_health = on_health
        self.name = name
        self.backoff = Backoff(retry_first_s, retry_max_s)
        self.failures = 0
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self.ring.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _ok(self, detail: str) -> None:
        self.backoff.reset()
        self.on_health(self.name, "ok", detail)

    def _run(self) -> None:
        while not self._stop.is_set():
            backend = self.factory()
            delay = 0.0
            ended = False
            try:
                backend.open()
                ended = backend.run(self.ring, self._stop, self._ok)
            except CaptureError as exc:
                self.failures += 1
                delay = self.backoff.next()
                self.on_health(self.name, "down", f"{exc}; retrying in {delay:.1f} s")
            except Exception as exc:  # noqa: BLE001 - a backend bug must not kill the thread
                self.failures += 1
                delay = self.backoff.next()
                log.exception("%s: unexpected error", self.name)
                self.on_health(self.name, "down", f"unexpected error {exc!r}; retrying in {delay:.1f} s")
            finally:
                clock = getattr(backend, "clock", None)
                if isinstance(clock, MediaClock):
                    clock.release(self.name)
                backend.close()
            if ended:
                self.ended.set()
                self.on_health(self.name, "disabled", "end of audio file")
                return
            self._stop.wait(delay)
