"""Service: camera dying mid-run is reported and recovered, outputs are isolated, the minimal status
endpoint, SIGTERM shutdown within 2 s, one-line errors for bad media."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pipeline_media import FixedClassifier, empty_frame, write_video

from edge import cli, config, service
from edge.capture import CaptureError
from edge.hub import Hub
from edge.service import Service
from edge.stages import FaceStage

WAIT = 10.0


class OneFace:
    def detect(self, frame: np.ndarray) -> list[Any]:
        from edge.inference.detector import Detection

        return [Detection(100, 100, 120, 120, 0.9, ())]


def face_stage() -> FaceStage:
    return FaceStage(OneFace(), FixedClassifier("happy"))


class DyingCamera:
    """A live camera that delivers frames, 'is unplugged' after 5 frames, and comes back."""

    live = True
    fps = 15.0
    opens = 0
    came_back = threading.Event()
    came_back_at = 0.0

    def __init__(self) -> None:
        self.n = 0

    def open(self) -> None:
        DyingCamera.opens += 1
        if DyingCamera.opens == 2:
            raise CaptureError("camera '0' could not be opened")  # still unplugged at the first retry
        if DyingCamera.opens == 3:
            DyingCamera.came_back_at = time.monotonic()
            DyingCamera.came_back.set()

    def read(self) -> np.ndarray:
        self.n += 1
        if DyingCamera.opens == 1 and self.n > 5:
            raise CaptureError("camera '0' returned no frame (unplugged?)")
        return np.zeros((120, 160, 3), np.uint8)

    def close(self) -> None:
        pass


def base_config(tmp_path: Path, **sections: dict[str, Any]) -> config.Config:
    raw: dict[str, dict[str, Any]] = {"service": {"state_dir": str(tmp_path)},
                                      "camera": {"backend": "opencv"}, "microphone": {"backend": "none"},
                                      "voice": {"enabled": False}}
    raw.update(sections)
    return config.from_dict(raw)


async def test_camera_dies_mid_run_is_reported_and_recovered(tmp_path: Path) -> None:
    DyingCamera.opens = 0
    DyingCamera.came_back.clear()
    svc = Service(base_config(tmp_path), tasks=[], face_stage=face_stage(), retry_first_s=0.0,
                  make_reader=lambda cfg, pace_fps=None: DyingCamera)
    seen: list[tuple[str, str]] = []
    original = svc.hub.set_health

    def record(name: str, status: str, detail: str = "") -> None:
        seen.append((name, status))
        original(name, status, detail)

    svc.hub.set_health = record  # type: ignore[method-assign]
    sub = svc.hub.states.subscribe(maxsize=10_000)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    assert await asyncio.to_thread(DyingCamera.came_back.wait, WAIT)
    while True:   # the first state after recovery that sees the face again
        state = await asyncio.wait_for(sub.get(), WAIT)
        if state.t > DyingCamera.came_back_at and state.modalities["face"]["source"] == "ok" and "face" in state.live:
            break
    stop.set()
    await task
    camera = [s for n, s in seen if n == "camera"]
    assert camera[:4] == ["ok", "down", "down", "ok"]
    assert svc.hub.health["camera"].restarts == 1
    assert ("pipeline", "down") in seen        # reported: no modality while the camera was gone
    assert svc.hub.health["pipeline"].status == "degraded"   # face only (voice disabled)
    assert state.modalities["face"]["source"] == "ok" and state.modalities["voice"]["source"] == "disabled"


async def test_failing_output_does_not_stop_the_pipeline(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", empty_frame(), frames=5)
    calls = []

    async def broken(hub: Hub, stop: asyncio.Event) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    cfg = base_config(tmp_path, camera={"backend": "file", "file": str(video), "realtime": False, "loop": False},
                      mqtt={"enabled": True}, face={"analysis_fps": 120.0})
    svc = Service(cfg, tasks=["mqtt"], serves={"mqtt": broken}, face_stage=face_stage(), stop_when_sources_end=True)
    await asyncio.wait_for(svc.run(), WAIT)
    assert calls and svc.hub.health["mqtt"].status == "down" and "boom" in svc.hub.health["mqtt"].detail
    assert svc.pipeline is not None and svc.pipeline.frames_analysed == 5


async def test_file_sources_leave_state_health_and_metrics_on_the_hub(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", empty_frame(), frames=3)
    cfg = base_config(tmp_path, camera={"backend": "file", "file": str(video), "realtime": False, "loop": False},
                      face={"analysis_fps": 120.0})
    svc = Service(cfg, tasks=[], face_stage=face_stage(), stop_when_sources_end=True)
    await asyncio.wait_for(svc.run(), WAIT)
    state = svc.hub.latest_state.to_dict()
    assert state["label"] == "happy" and state["live"] == ["face"]
    assert set(state["probs"]) >= {"neutral", "happy", "fear"}
    assert svc.hub.health["camera"].status == "disabled"      # played once, ended
    assert svc.hub.health["voice"].status == "disabled"
    assert svc.hub.metrics["frames_analysed"] == 3


async def test_sigterm_stops_within_two_seconds(tmp_path: Path) -> None:
    released = asyncio.Event()

    async def gpio_like(hub: Hub, stop: asyncio.Event) -> None:
        try:
            await stop.wait()
        finally:
            released.set()    # buzzer off

    async def stubborn(hub: Hub, stop: asyncio.Event) -> None:
        await asyncio.Event().wait()      # ignores stop: must be cancelled

    video = write_video(tmp_path / "v.avi", empty_frame(), frames=15)
    cfg = base_config(tmp_path, camera={"backend": "file", "file": str(video), "realtime": True, "loop": True})
    svc = Service(cfg, tasks=["gpio", "web"], serves={"gpio": gpio_like, "web": stubborn}, face_stage=face_stage())
    sub = svc.hub.states.subscribe()
    task = asyncio.create_task(svc.run(install_signals=True))
    await asyncio.wait_for(sub.get(), WAIT)
    t0 = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 3.0) == 0
    assert time.monotonic() - t0 < 2.0 and released.is_set()


def test_cli_run_bad_media_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--video", str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("medtrack: video file") and "not found" in err and "\n" not in err
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 64)
    assert cli.main(["run", "--audio", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot be decoded" in err and "\n" not in err


def test_demo_without_media_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from edge import demo

    monkeypatch.setattr(demo, "DEMO_MEDIA", tmp_path / "nothing")
    assert cli.main(["demo", "--duration", "1", "--state-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert "demo media missing" in err and "\n" not in err


def test_apply_media_args_plays_recordings_once() -> None:
    cfg = service.apply_media_args(config.load(None), "v.mp4", None)
    assert (cfg.camera.backend, cfg.camera.file, cfg.camera.loop, cfg.camera.realtime) == ("file", "v.mp4", False, True)
    assert cfg.microphone.backend == "none"


def test_demo_runs_and_prints_the_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge import demo

    try:
        demo.find_demo_media()
    except demo.DemoError:
        pytest.skip("demo media not generated")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli.main(["demo", "--duration", "1.5", "--port", str(port), "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"http://127.0.0.1:{port}/" in out and ("token" in out or "no login" in out)


async def test_damaged_video_is_a_camera_lost_alarm_and_the_service_runs_on(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", empty_frame(), frames=40)
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    cfg = base_config(tmp_path, camera={"backend": "file", "file": str(video), "realtime": False, "loop": False})
    svc = Service(cfg, tasks=["alarm"], face_stage=face_stage(), retry_first_s=0.01)
    events = svc.hub.events.subscribe(maxsize=1000)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        while True:
            event = await asyncio.wait_for(events.get(), WAIT)
            if event.kind == "technical" and event.condition == "camera_lost":
                break
        # the alarm says why; the live health may already read "ok" again (the file is retried)
        assert "stopped decoding" in event.detail["message"]
        assert not task.done()   # only the face side is down
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


def test_cli_run_with_one_bad_recording_plays_the_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    video = write_video(tmp_path / "v.avi", empty_frame(), frames=5)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 64)
    ran: list[config.Config] = []

    class FakeService:
        def __init__(self, cfg: config.Config, **_kw: Any) -> None:
            ran.append(cfg)

        async def run(self, install_signals: bool = False) -> int:
            return 0

    monkeypatch.setattr(service, "Service", FakeService)
    monkeypatch.setattr("edge.logsetup.setup", lambda level: None)
    assert cli.main(["run", "--video", str(video), "--audio", str(bad)]) == 0
    assert ran[0].camera.backend == "file" and ran[0].microphone.backend == "none"
    err = capsys.readouterr().err.strip()
    assert "cannot be decoded" in err and "the voice side is left out" in err and "\n" not in err
    cfg_file = tmp_path / "c.toml"   # a service config: the bad side stays down and is retried
    cfg_file.write_text(f'[service]\nstate_dir = "{tmp_path}"\n[camera]\nbackend = "file"\nfile = "{tmp_path / "no.mp4"}"\n'
                        '[microphone]\nbackend = "none"\n')
    assert cli.main(["run", "--config", str(cfg_file)]) == 0
    assert ran[1].camera.backend == "file"
    assert "stays down (technical alarm) and is retried" in capsys.readouterr().err


def test_cli_run_recordings_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline_media import face_frame, voiced, write_wav

    video = write_video(tmp_path / "v.avi", face_frame(), frames=15, fps=15.0)
    audio = write_wav(tmp_path / "a.wav", voiced(1.0))
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n[web]\nenabled = false\n'
                        '[gpio]\npin_factory = "mock"\n')
    assert cli.main(["run", "--config", str(cfg_file), "--video", str(video), "--audio", str(audio)]) == 0
    out = capsys.readouterr().out
    assert "--keep-serving" in out and "Alarms raised: 0" in out
    assert f"medtrack events export --state-dir {tmp_path / 'state'}" in out


async def test_keep_serving_stays_up_after_the_media_end(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    video = write_video(tmp_path / "v.avi", empty_frame(), frames=10, fps=15.0)
    cfg = base_config(tmp_path, camera={"backend": "file", "file": str(video), "realtime": False, "loop": False})
    svc = Service(cfg, tasks=["alarm"], keep_serving=True, face_stage=face_stage())
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    while svc.pipeline is None or not svc.pipeline.sources_ended.is_set():
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    assert not task.done() and not stop.is_set()
    assert "stay up" in caplog.text
    stop.set()
    await asyncio.wait_for(task, WAIT)


def test_camera_switched_off_is_named_in_the_pipeline_mode(tmp_path: Path) -> None:
    svc = Service(base_config(tmp_path, camera={"backend": "none"}), tasks=[], face_stage=face_stage())
    svc.build()
    detail = svc.hub.health["pipeline"].detail
    assert "camera disabled" in detail and "face ok" not in detail


def test_cli_run_recordings_fall_back_to_a_user_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline_media import face_frame

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    video = write_video(tmp_path / "v.avi", face_frame(), frames=10, fps=15.0)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[service]\nstate_dir = "{blocked / "state"}"\n[web]\nenabled = false\n'
                        '[gpio]\npin_factory = "mock"\n')
    assert cli.main(["run", "--config", str(cfg_file), "--video", str(video)]) == 0
    captured = capsys.readouterr()
    mine = tmp_path / "xdg" / "medtrack"
    assert f"events and token go to {mine}" in captured.err
    assert f"--state-dir {mine}" in captured.out and (mine / "events.db").exists()


def test_cli_run_recordings_with_no_usable_stage_stops_and_says_why(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from pipeline_media import face_frame

    video = write_video(tmp_path / "v.avi", face_frame(), frames=10, fps=15.0)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n[web]\nenabled = false\n'
                        '[gpio]\npin_factory = "mock"\n[face]\nmodel = "no_such_face_model.tflite"\n')
    assert cli.main(["run", "--config", str(cfg_file), "--video", str(video)]) == 2
    assert "no media can be analysed" in caplog.text and "no_such_face_model.tflite" in caplog.text


def test_enabled_is_checked_by_the_service(tmp_path: Path) -> None:
    async def never(hub: Hub, stop: asyncio.Event) -> None:
        raise AssertionError("a disabled task must not start")

    cfg = base_config(tmp_path, camera={"backend": "none"}, gpio={"enabled": False}, web={"enabled": False})
    svc = Service(cfg, tasks=["gpio", "web", "mqtt"], serves={"gpio": never}, face_stage=face_stage())
    svc._open_owned()
    assert svc.outbox is None                      # [mqtt] is off by default: no outbox either
    for name in ("gpio", "web", "mqtt"):
        assert svc._resolve(name) is None
        assert (svc.hub.health[name].status, svc.hub.health[name].detail) == ("disabled", f"[{name}] enabled = false")


def test_the_service_hands_what_it_owns_to_its_tasks(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, camera={"backend": "none"}, mqtt={"enabled": True})
    svc = Service(cfg, face_stage=face_stage())
    svc._open_owned()
    assert svc.store is not None and svc.outbox is not None and svc.readiness is not None
    try:
        bound = {name: getattr(svc._resolve(name), "keywords", None) for name in service.TASKS}
        assert bound == {"store": {"store": svc.store}, "alarm": {"store": svc.store}, "gpio": {},
                         "web": {"store": svc.store}, "mqtt": {"outbox": svc.outbox},
                         "watchdog": {"readiness": svc.readiness}}
        assert svc.hub.health["store"].status == "ok"
    finally:
        svc.store.close()
        svc.outbox.close()
