"""Camera sources: picamera2 (Pi camera), OpenCV VideoCapture (USB index or GStreamer pipeline) and
video files (paced at their own fps or as fast as possible; loop or play once).

A ``CameraSource`` thread reads frames into a ``LatestSlot``: the consumer always gets the newest
frame and older ones are dropped, never queued. Failures are reported through the health callback
and retried with exponential backoff until ``stop`` is set. A video file that stops decoding before
the frame count its container announces is damaged, not ended: a failure like an unplugged camera.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.capture import Backoff, CaptureError, HealthCallback, MediaClock

log = logging.getLogger(__name__)

BACKOFF_RESET_AFTER_S = 10.0   # a source that ran this long before failing retries from the first delay


@dataclass(frozen=True)
class Frame:
    image: np.ndarray   # BGR uint8 [H, W, 3]
    t: float            # pipeline clock when captured (media time for files played as fast as possible)
    index: int          # frames delivered by this source since it started


class FrameReader(Protocol):
    """One camera backend. ``read`` returns None at the end of a file; raises CaptureError on failure."""

    live: bool                      # a real device (timestamps from the clock, no pacing)
    fps: float                      # nominal frames per second

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


class LatestSlot:
    """Holds only the newest frame. ``lossless`` (file sources played as fast as possible) makes
    ``put`` wait until the previous frame was taken, so every frame is analysed."""

    def __init__(self, lossless: bool = False):
        self.lossless = lossless
        self.dropped = 0
        self._frame: Frame | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, frame: Frame, stop: threading.Event | None = None) -> None:
        with self._cond:
            if self.lossless:
                while self._frame is not None and not self._closed and not (stop and stop.is_set()):
                    self._cond.wait(0.1)
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """Take the newest frame (waiting up to ``timeout``); None when there was none."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            if self.lossless:   # only a lossless producer waits for the slot to empty
                self._cond.notify_all()
            return frame

    def empty(self) -> bool:
        return self._frame is None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# -------------------------------------------------------------------------------------- backends

class Picamera2Reader:
    """The Pi camera through picamera2 (a low-resolution RGB888 video stream at a set fps)."""

    live = True

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0):
        self.width, self.height, self.fps = width, height, fps
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CaptureError("picamera2 is not installed; on Raspberry Pi OS run "
                               "`sudo apt install python3-picamera2` (venv with --system-site-packages), "
                               "or set camera.backend = 'opencv'") from None
        try:
            cam = Picamera2()
            cfg = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},  # BGR byte order: OpenCV's
                controls={"FrameRate": self.fps}, buffer_count=2)
            cam.configure(cfg)
            cam.start()
        except Exception as exc:  # noqa: BLE001 - libcamera raises many types
            raise CaptureError(f"Pi camera could not be started ({exc}); check the ribbon cable and "
                               "that no other program uses the camera") from exc
        self._cam = cam

    def read(self) -> np.ndarray:
        if self._cam is None:
            raise CaptureError("Pi camera is not open")
        try:
            img = self._cam.capture_array("main")
        except Exception as exc:  # noqa: BLE001
            raise CaptureError(f"Pi camera stopped delivering frames ({exc})") from exc
        if img is None:
            raise CaptureError("Pi camera returned no frame")
        return img[:, :, :3] if img.ndim == 3 and img.shape[2] == 4 else img

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            for method in ("stop", "close"):
                with contextlib.suppress(Exception):  # best effort on a vanished device
                    getattr(cam, method)()


class OpenCVReader:
    """OpenCV VideoCapture: a USB camera index ('0'), a device path, or a GStreamer pipeline
    (contains '!', e.g. nvarguscamerasrc ... ! appsink for Jetson CSI cameras)."""

    live = True

    def __init__(self, device: str = "0", width: int = 640, height: int = 480, fps: float = 15.0):
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self._cap = None

    def open(self) -> None:
        import cv2

        dev = self.device.strip()
        if "!" in dev:
            cap = cv2.VideoCapture(dev, cv2.CAP_GSTREAMER)
            what = "GStreamer pipeline"
        else:
            cap = cv2.VideoCapture(int(dev) if re.fullmatch(r"\d+", dev) else dev)
            what = f"camera {dev!r}"
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                cap.set(cv2.CAP_PROP_FPS, self.fps)
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"{what} could not be opened; check that it is plugged in and set "
                               "camera.device (a USB index like '0', or a pipeline ending in appsink)")
        self._cap = cap

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise CaptureError("camera is not open")
        ok, img = self._cap.read()
        if not ok or img is None:
            raise CaptureError(f"camera {self.device!r} returned no frame (unplugged?)")
        return img

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class VideoFileReader:
    """A video file, played at its own fps (the source paces it) or as fast as possible."""

    live = False

    def __init__(self, path: str | Path, loop: bool = True, fps: float | None = None):
        self.path = Path(path)
        self.loop = loop
        self.fps = fps or 15.0
        self._fps_override = fps
        self._cap = None
        self._frames = 0
        self._pass_frames = 0   # frames decoded since the start of the file (this loop)

    def open(self) -> None:
        import cv2

        if not self.path.is_file():
            raise CaptureError(f"video file {self.path} not found; check camera.file / --video")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"video file {self.path} cannot be decoded; use an MP4/AVI/MKV that "
                               "ffmpeg can read")
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        if not self._fps_override:
            self.fps = file_fps if file_fps and math.isfinite(file_fps) and 1 <= file_fps <= 240 else 15.0
        self._cap = cap
        self._frames = self._pass_frames = 0

    def read(self) -> np.ndarray | None:
        import cv2

        if self._cap is None:
            raise CaptureError(f"video file {self.path} is not open")
        ok, img = self._cap.read()
        if not ok:
            if self._frames == 0:
                raise CaptureError(f"video file {self.path} has no decodable frames; it is corrupt "
                                   "or not a video")
            total = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
            if total and math.isfinite(total) and self._pass_frames < total - max(2.0, 0.02 * total):
                raise CaptureError(f"video file {self.path} stopped decoding at frame {self._pass_frames} "
                                   f"of {int(total)}; it is damaged (re-encode it, e.g. with ffmpeg)")
            if not self.loop:
                return None
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self._cap.read()
            if not ok:  # some containers cannot seek: reopen
                self._cap.release()
                self._cap = cv2.VideoCapture(str(self.path))
                ok, img = self._cap.read()
                if not ok:
                    raise CaptureError(f"video file {self.path} cannot be read again from the start")
            self._pass_frames = 0
        self._frames += 1
        self._pass_frames += 1
        return img

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


def make_reader(cfg, pace_fps: float | None = None) -> Callable[[], FrameReader] | None:  # noqa: ANN001
    """A factory of fresh readers for a [camera] config section; None for backend = 'none'."""
    if cfg.backend == "picamera2":
        return lambda: Picamera2Reader(cfg.width, cfg.height, cfg.fps)
    if cfg.backend == "opencv":
        return lambda: OpenCVReader(cfg.device, cfg.width, cfg.height, cfg.fps)
    if cfg.backend == "file":
        return lambda: VideoFileReader(cfg.file, loop=cfg.loop, fps=pace_fps)
    return None


# ---------------------------------------------------------------------------------------- source

class CameraSource:
    """Reads frames in a thread into ``slot``; reports health; retries with backoff."""

    def __init__(self, reader_factory: Callable[[], FrameReader], slot: LatestSlot,
                 on_health: HealthCallback, *, clock: Callable[[], float] = time.monotonic,
                 realtime: bool = True, retry_first_s: float = 0.5, retry_max_s: float = 30.0,
                 name: str = "camera"):
        self.factory = reader_factory
        self.slot = slot
        self.on_health = on_health
        self.clock = clock
        self.realtime = realtime
        self.name = name
        self.backoff = Backoff(retry_first_s, retry_max_s)
        self.frames = 0
        self.failures = 0
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if isinstance(clock, MediaClock):
            clock.drive(name)   # the audio waits for the video to start

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self.slot.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            reader = self.factory()
            delay = 0.0
            opened_at = time.monotonic()
            try:
                reader.open()
                ended = self._stream(reader)
            except CaptureError as exc:
                ended = False
                self.failures += 1
                if time.monotonic() - opened_at >= BACKOFF_RESET_AFTER_S:
                    self.backoff.reset()   # it worked for a while: a fresh failure, retry soon
                delay = self.backoff.next()
                self.on_health(self.name, "down", f"{exc}; retrying in {delay:.1f} s")
            except Exception as exc:  # noqa: BLE001 - a backend bug must not kill the thread
                ended = False
                self.failures += 1
                delay = self.backoff.next()
                log.exception("%s: unexpected error", self.name)
                self.on_health(self.name, "down", f"unexpected error {exc!r}; retrying in {delay:.1f} s")
            finally:
                if isinstance(self.clock, MediaClock):
                    self.clock.release(self.name)
                reader.close()
            if ended:
                self.ended.set()
                self.on_health(self.name, "disabled", "end of video file")
                return
            self._stop.wait(delay)

    def _stream(self, reader: FrameReader) -> bool:
        """Deliver frames until stop (False) or the end of a play-once file (True)."""
        media = isinstance(self.clock, MediaClock)
        if media:
            self.clock.drive(self.name)  # type: ignore[union-attr]
        t0 = self.clock()
        k = 0
        reported = False
        while not self._stop.is_set():
            img = reader.read()
            if img is None:
                return True
            if not reader.live and not media:
                if self.realtime:
                    wait = t0 + k / reader.fps - self.clock()
                    if wait > 0 and self._stop.wait(wait):
                        return False
                t = self.clock()
            elif media:
                t = t0 + k / reader.fps
                self.clock.advance(t)  # type: ignore[union-attr]
            else:
                t = self.clock()
            if not reported:   # before the frame goes out, so no result precedes the "ok"
                reported = True
                self.on_health(self.name, "ok", f"{img.shape[1]}x{img.shape[0]} at {reader.fps:g} fps")
            self.slot.put(Frame(img, t, self.frames), self._stop)
            self.frames += 1
            k += 1
        return False
