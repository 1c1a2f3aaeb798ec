"""Capture: latest-frame slot, audio ring, file/OpenCV/picamera2/PyAudio backends (fake modules at
the library boundary), failure reporting and retry. No device, no sleeps."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf

from edge.capture import Backoff, CaptureError, MediaClock
from edge.capture.camera import (
    CameraSource,
    Frame,
    LatestSlot,
    OpenCVReader,
    Picamera2Reader,
    VideoFileReader,
)
from edge.capture.microphone import (
    AudioFileBackend,
    AudioRing,
    MicrophoneSource,
    PyAudioBackend,
    to_int16_16k,
)

WAIT = 10.0  # generous upper bound for thread hand-offs (returns as soon as the event fires)


def write_video(path: Path, frames: int = 10, fps: float = 15.0, size: tuple[int, int] = (160, 120)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(frames):
        w.write(np.full((size[1], size[0], 3), i * 20 % 255, np.uint8))
    w.release()
    return path


class Recorder:
    """Health callback that records reports and signals on a wanted status."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str, str]] = []
        self.events: dict[str, threading.Event] = {}

    def event(self, status: str) -> threading.Event:
        return self.events.setdefault(status, threading.Event())

    def __call__(self, name: str, status: str, detail: str) -> None:
        self.reports.append((name, status, detail))
        self.event(status).set()


# ------------------------------------------------------------------------------- slot and ring

def test_latest_slot_keeps_only_newest() -> None:
    slot = LatestSlot()
    img = np.zeros((2, 2, 3), np.uint8)
    for i in range(5):
        slot.put(Frame(img, float(i), i))
    got = slot.get(timeout=0)
    assert got is not None and got.index == 4 and slot.dropped == 4
    assert slot.get(timeout=0) is None


def test_lossless_slot_waits_for_consumer() -> None:
    slot = LatestSlot(lossless=True)
    img = np.zeros((2, 2, 3), np.uint8)
    slot.put(Frame(img, 0.0, 0))
    second_in = threading.Event()

    def producer() -> None:
        slot.put(Frame(img, 1.0, 1))
        second_in.set()

    th = threading.Thread(target=producer)
    th.start()
    assert not second_in.wait(0.05)          # blocked: the first frame was not taken
    assert slot.get(timeout=0).index == 0   # type: ignore[union-attr]
    assert second_in.wait(WAIT)
    assert slot.get(timeout=WAIT).index == 1 and slot.dropped == 0  # type: ignore[union-attr]
    th.join()


def test_audio_ring_wraps_and_counts_overruns() -> None:
    ring = AudioRing(seconds=0.01)               # 160 samples
    ring.write(np.arange(100, dtype=np.int16), t_end=1.0)
    data, t = ring.read(timeout=0)  # type: ignore[misc]
    assert list(data) == list(range(100)) and t == 1.0
    ring.write(np.arange(100, 200, dtype=np.int16), t_end=2.0)
    ring.write(np.arange(200, 300, dtype=np.int16), t_end=3.0)   # 200 unread > 160: 40 lost
    data, t = ring.read(timeout=0)  # type: ignore[misc]
    assert list(data) == list(range(140, 300)) and t == 3.0 and ring.overrun_samples == 40
    assert ring.read(timeout=0) is None


def test_resample_to_16k() -> None:
    x = np.sin(np.linspace(0, 100, 44100)).astype(np.float32)
    y = to_int16_16k(x, 44100)
    assert y.dtype == np.int16 and len(y) == 16000


def test_backoff_doubles_and_resets() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.reset()
    assert b.next() == 0.5


def test_media_clock_follow_waits_for_driver() -> None:
    clock = MediaClock(lead_s=0.1)
    stop = threading.Event()
    assert clock.follow("mic", 5.0, stop) and clock() == 5.0     # nobody drives: the follower does
    clock.drive("camera")
    done = threading.Event()
    th = threading.Thread(target=lambda: (clock.follow("mic", 6.0, stop), done.set()))
    th.start()
    assert not done.wait(0.05)
    clock.advance(5.95)
    assert done.wait(WAIT)
    th.join()
    clock.release("camera")
    assert clock.follow("mic", 9.0, stop) and clock() == 9.0


# ------------------------------------------------------------------------------------ files

def test_video_file_reader_plays_once_and_loops(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", frames=3, fps=10)
    once = VideoFileReader(path, loop=False)
    once.open()
    assert once.fps == pytest.approx(10)
    assert [once.read() is not None for _ in range(4)] == [True, True, True, False]
    once.close()
    looped = VideoFileReader(path, loop=True)
    looped.open()
    assert all(looped.read() is not None for _ in range(7))
    looped.close()


def test_video_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="not found") as err:
        VideoFileReader(tmp_path / "missing.mp4").open()
    assert "\n" not in str(err.value)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    reader = VideoFileReader(bad)
    with pytest.raises(CaptureError, match="bad.mp4") as err:
        reader.open()
        reader.read()
    assert "\n" not in str(err.value)


def damaged_video(path: Path, frames: int = 40) -> Path:
    """An MJPG AVI cut in half: its header announces ``frames``; about a third of them decode."""
    write_video(path, frames=frames)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("loop", [False, True])
def test_a_damaged_video_is_a_decode_error_not_its_end(tmp_path: Path, loop: bool) -> None:
    reader = VideoFileReader(damaged_video(tmp_path / "cut.avi"), loop=loop)
    reader.open()
    got = 0
    with pytest.raises(CaptureError, match=r"cut.avi stopped decoding at frame \d+ of 40; it is damaged") as err:
        for _ in range(100):
            assert reader.read() is not None
            got += 1
    assert 0 < got < 38 and "\n" not in str(err.value)
    reader.close()


def test_camera_source_reports_a_damaged_video_as_down_and_retries_with_backoff(tmp_path: Path) -> None:
    path = damaged_video(tmp_path / "cut.avi")
    health = Recorder()
    src = CameraSource(lambda: VideoFileReader(path, loop=False), LatestSlot(), health, clock=MediaClock(),
                       realtime=False, retry_first_s=0.01, retry_max_s=0.04)
    src.start()
    try:
        for _ in range(3):   # three failures in a row
            assert health.event("down").wait(WAIT)
            health.event("down").clear()
    finally:
        src.stop()
    downs = [d for _, s, d in health.reports if s == "down"]
    assert "stopped decoding" in downs[0]
    assert src.failures >= 3 and src.backoff.next() == 0.04   # it grew: the frames before the damage do not reset it
    assert "disabled" not in [s for _, s, _ in health.reports] and not src.ended.is_set()


def test_audio_file_backend(tmp_path: Path) -> None:
    stereo = np.stack([np.zeros(44100), np.zeros(44100)], axis=1).astype(np.float32)
    sf.write(tmp_path / "a.flac", stereo, 44100)
    b = AudioFileBackend(tmp_path / "a.flac", realtime=False, loop=False)
    b.open()
    assert b.audio is not None and len(b.audio) == 16000
    ring = AudioRing(seconds=2.0)
    assert b.run(ring, threading.Event(), lambda _d: None) is True   # played once to the end
    data, _ = ring.read(timeout=0)  # type: ignore[misc]
    assert len(data) == 16000


def test_audio_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="not found"):
        AudioFileBackend(tmp_path / "none.wav").open()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage" * 10)
    with pytest.raises(CaptureError, match="cannot be decoded") as err:
        AudioFileBackend(bad).open()
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------- sources

def test_camera_source_file_as_fast_as_possible(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", frames=5, fps=10)
    clock = MediaClock()
    slot = LatestSlot(lossless=True)
    health = Recorder()
    src = CameraSource(lambda: VideoFileReader(path, loop=False), slot, health, clock=clock, realtime=False)
    src.start()
    times = []
    while len(times) < 5:
        frame = slot.get(timeout=WAIT)
        assert frame is not None
        times.append(frame.t)
    assert src.ended.wait(WAIT)
    src.stop()
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert [s for _, s, _ in health.reports] == ["ok", "disabled"]


class FlakyReader:
    """Fails to open the first time, delivers 3 frames, then 'is unplugged'; then works."""

    live = True
    fps = 15.0
    opens = 0

    def __init__(self) -> None:
        self.n = 0

    def open(self) -> None:
        FlakyReader.opens += 1
        if FlakyReader.opens == 1:
            raise CaptureError("camera 0 could not be opened")

    def read(self) -> np.ndarray:
        self.n += 1
        if FlakyReader.opens == 2 and self.n > 3:
            raise CaptureError("camera 0 returned no frame (unplugged?)")
        return np.zeros((4, 4, 3), np.uint8)

    def close(self) -> None:
        pass


def test_camera_failure_is_reported_and_retried() -> None:
    FlakyReader.opens = 0
    slot = LatestSlot()
    health = Recorder()
    src = CameraSource(FlakyReader, slot, health, retry_first_s=0.0)
    src.start()
    try:
        assert health.event("down").wait(WAIT)
        while FlakyReader.opens < 3 or health.reports[-1][1] != "ok":
            assert health.event("ok").wait(WAIT)
            health.event("ok").clear()
        statuses = [s for _, s, _ in health.reports]
        assert statuses[:4] == ["down", "ok", "down", "ok"]
        assert "unplugged" in health.reports[2][2] and src.failures == 2
    finally:
        src.stop()


# --------------------------------------------------------------------- library boundaries

class FakePicamera2:
    instances: list[FakePicamera2] = []

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.started = self.closed = False
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main: dict, controls: dict, buffer_count: int) -> dict:
        return {"main": main, "controls": controls}

    def configure(self, cfg: dict) -> None:
        self.config = cfg

    def start(self) -> None:
        self.started = True

    def capture_array(self, stream: str) -> np.ndarray:
        w, h = self.config["main"]["size"]
        return np.zeros((h, w, 4), np.uint8)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def test_picamera2_backend_with_fake_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    reader = Picamera2Reader(320, 240, 10.0)
    reader.open()
    cam = FakePicamera2.instances[-1]
    assert cam.started and cam.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert cam.config["controls"] == {"FrameRate": 10.0}
    assert reader.read().shape == (240, 320, 3)     # XRGB -> 3 channels
    reader.close()
    assert cam.closed


def test_picamera2_missing_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CaptureError, match="python3-picamera2"):
        Picamera2Reader().open()


def test_opencv_backend_index_and_gstreamer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    class FakeCapture:
        def __init__(self, *args: Any) -> None:
            calls.append(args)
            self.opened = args[0] != 7

        def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
            return self.opened

        def set(self, *_a: Any) -> bool:
            return True

        def read(self) -> tuple[bool, np.ndarray | None]:
            return True, np.zeros((2, 2, 3), np.uint8)

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    r = OpenCVReader("0")
    r.open()
    assert calls[-1] == (0,) and r.read().shape == (2, 2, 3)
    pipe = "nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink"
    OpenCVReader(pipe).open()
    assert calls[-1] == (pipe, cv2.CAP_GSTREAMER)
    with pytest.raises(CaptureError, match="could not be opened"):
        OpenCVReader("7").open()


class FakeStream:
    def __init__(self, callback: Any) -> None:
        self.callback = callback
        self.active = True

    def start_stream(self) -> None:
        # deliver one 30 ms chunk, as PortAudio would from its own thread
        self.callback(np.ones(480, "<i2").tobytes(), 480, {}, 0)

    def is_active(self) -> bool:
        return self.active

    def stop_stream(self) -> None:
        self.active = False

    def close(self) -> None:
        pass


class FakePyAudio:
    last: FakePyAudio | None = None
    devices = [{"name": "HDA Intel: ALC", "maxInputChannels": 2}, {"name": "USB PnP Sound Device", "maxInputChannels": 1},
               {"name": "HDMI out", "maxInputChannels": 0}]

    def __init__(self) -> None:
        FakePyAudio.last = self
        self.kwargs: dict[str, Any] = {}
        self.stream: FakeStream | None = None

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, i: int) -> dict:
        return self.devices[i]

    def open(self, **kwargs: Any) -> FakeStream:
        self.kwargs = kwargs
        self.stream = FakeStream(kwargs["stream_callback"])
        return self.stream

    def terminate(self) -> None:
        pass


@pytest.fixture
def fake_pyaudio(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    module = types.SimpleNamespace(PyAudio=FakePyAudio, paInt16=8, paContinue=0)
    monkeypatch.setitem(sys.modules, "pyaudio", module)
    return module


def test_pyaudio_device_by_name_and_callback(fake_pyaudio: types.SimpleNamespace) -> None:
    backend = PyAudioBackend("usb pnp", clock=lambda: 42.0)
    backend.open()
    pa = FakePyAudio.last
    assert pa is not None
    assert pa.kwargs["input_device_index"] == 1 and pa.kwargs["rate"] == 16000 and pa.kwargs["channels"] == 1
    ring = AudioRing()
    stop = threading.Event()
    backend.poll_s = 0.0
    firsts: list[str] = []

    def on_first(detail: str) -> None:
        firsts.append(detail)
        stop.set()

    assert backend.run(ring, stop, on_first) is False
    data, t = ring.read(timeout=0)  # type: ignore[misc]
    assert len(data) == 480 and t == 42.0 and firsts == ["16000 Hz mono"]
    backend.close()


def test_pyaudio_unknown_device_and_dead_stream(fake_pyaudio: types.SimpleNamespace) -> None:
    with pytest.raises(CaptureError, match="USB PnP Sound Device") as err:
        PyAudioBackend("webcam mic").open()
    assert "HDMI" not in str(err.value)   # outputs are not offered as inputs
    backend = PyAudioBackend("2")
    backend.open()
    assert FakePyAudio.last.kwargs["input_device_index"] == 2  # type: ignore[union-attr]
    backend.poll_s = 0.0
    FakePyAudio.last.stream.start_stream = lambda: setattr(FakePyAudio.last.stream, "active", False)  # type: ignore[union-attr]
    with pytest.raises(CaptureError, match="unplugged"):
        backend.run(AudioRing(), threading.Event(), lambda _d: None)


def test_pyaudio_missing_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyaudio", None)
    with pytest.raises(CaptureError, match="PyAudio is not installed"):
        PyAudioBackend().open()


def test_microphone_source_reports_missing_file_and_retries(tmp_path: Path) -> None:
    health = Recorder()
    attempts = []

    def factory() -> AudioFileBackend:
        attempts.append(1)
        if len(attempts) == 2:   # the file appears after the first failure
            sf.write(tmp_path / "late.wav", np.zeros(1600, np.float32), 16000)
        return AudioFileBackend(tmp_path / "late.wav", realtime=False, loop=False)

    src = MicrophoneSource(factory, AudioRing(), health, retry_first_s=0.0)
    src.start()
    assert src.ended.wait(WAIT)
    src.stop()
    assert [s for _, s, _ in health.reports] == ["down", "ok", "disabled"]
    assert "not found" in health.reports[0][2]
