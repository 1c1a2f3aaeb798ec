"""`medtrack check` against file sources, gpiozero MockFactory pins and a fake /sys/class/thermal."""

from __future__ import annotations

import argparse
import json
import socket
import sys
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf
from gpiozero import LED
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edge import selfcheck
from edge.config import Config, from_dict
from edge.selfcheck import FAIL, OK, SKIP, WARN, CheckResult, cli_check, run_checks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (160, 120))
    assert writer.isOpened()
    for i in range(30):
        writer.write(np.full((120, 160, 3), 80 + 3 * i, np.uint8))
    writer.release()
    t = np.arange(int(1.5 * 16000)) / 16000
    wav = tmp_path / "voice.wav"
    sf.write(str(wav), (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(16000, np.float32), 16000)
    thermal = tmp_path / "thermal"
    (thermal / "thermal_zone0").mkdir(parents=True)
    (thermal / "thermal_zone0" / "temp").write_text("52345\n")
    (thermal / "thermal_zone0" / "type").write_text("cpu-thermal\n")
    state = tmp_path / "state"
    state.mkdir()
    return {"video": video, "wav": wav, "silent": silent, "thermal": thermal, "state": state}


def raw_config(media: dict[str, Path], **sections: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "service": {"state_dir": str(media["state"])},
        "camera": {"backend": "file", "file": str(media["video"]), "width": 160, "height": 120},
        "microphone": {"backend": "file", "file": str(media["wav"])},
        "face": {"enabled": False},
        "voice": {"enabled": False},
        "gpio": {"pin_factory": "mock"},
        "web": {"host": "127.0.0.1", "port": free_port()},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def write_toml(path: Path, raw: dict[str, Any]) -> Path:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def run(media: dict[str, Path], cfg: Config, **kw: Any) -> dict[str, CheckResult]:
    return by_name(run_checks(cfg, thermal_dir=media["thermal"], throttled_file=media["thermal"] / "none",
                              model_runs=2, **kw))


def test_all_checks_pass_with_file_sources_and_mock_pins(media: dict[str, Path]) -> None:
    results = run(media, from_dict(raw_config(media)), gpio_factory=MockFactory(pin_class=MockPWMPin))
    assert [r.status for r in results.values() if r.status == FAIL] == [], results
    assert results["config"].status == WARN and "no distress alarm" in results["config"].summary
    assert results["state_dir"].status == OK
    assert results["web_port"].status == OK
    assert results["temperature"].status == OK
    assert results["temperature"].details["zones"] == {"thermal_zone0:cpu-thermal": 52.345}
    assert "52.3 °C" in results["temperature"].summary
    gpio = results["gpio"]
    assert gpio.status == OK and gpio.details["factory_class"] == "MockFactory"
    assert "BCM 17" in gpio.summary and gpio.details["led_pwm"] is True
    cam = results["camera"]
    assert cam.status == OK
    assert cam.details["frames"] == 20 and cam.details["shape"] == [120, 160, 3] and cam.details["fps"] > 0
    mic = results["microphone"]
    assert mic.status == OK
    assert mic.details["seconds"] == pytest.approx(1.0, abs=0.05)
    assert mic.details["rms_dbfs"] == pytest.approx(-23.0, abs=0.3)
    assert results["model:face_expression"].status == SKIP and results["model:voice"].status == SKIP
    assert selfcheck.exit_status(list(results.values())) == 0


def test_cli_json_report(media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_toml(tmp_path / "config.toml", raw_config(media))
    status = cli_check(argparse.Namespace(config=str(path), json=True))
    report = json.loads(capsys.readouterr().out)
    failed = [c for c in report["checks"] if c["status"] == FAIL]
    assert status == 0 and report["ok"] is True, failed
    names = [c["name"] for c in report["checks"]]
    assert names[:6] == ["config", "state_dir", "disk", "temperature", "web_port", "gpio"]
    assert {"camera", "microphone", "model:face_detector"} <= set(names)
    assert all({"name", "status", "summary", "details", "duration_ms"} <= set(c) for c in report["checks"])
    gpio = next(c for c in report["checks"] if c["name"] == "gpio")
    assert gpio["status"] == WARN and "nothing will sound" in gpio["summary"]  # pin_factory = 'mock'


def test_auto_pins_without_hardware_fail(media: dict[str, Path]) -> None:
    if Path("/dev/gpiochip0").exists():
        pytest.skip("this machine has GPIO hardware")
    result = selfcheck.check_gpio(from_dict(raw_config(media, gpio={"pin_factory": "auto"})))
    assert result.status == FAIL and "found no GPIO hardware" in result.summary


def test_failing_camera_exits_1_with_a_readable_reason(media: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"this is not a video")
    path = write_toml(tmp_path / "config.toml", raw_config(media, camera={"file": str(broken)}))
    status = cli_check(argparse.Namespace(config=str(path), json=False))
    out = capsys.readouterr().out
    assert status == 1
    camera_line = next(line for line in out.splitlines() if " camera " in line)
    assert camera_line.split()[0] == "FAIL"
    assert str(broken) in camera_line and "decode" in camera_line
    assert "FAILED: 1 failed" in out


def test_missing_camera_file_fails_config_and_camera(media: dict[str, Path], tmp_path: Path) -> None:
    results = run(media, from_dict(raw_config(media, camera={"file": str(tmp_path / "nope.mp4")})))
    assert results["config"].status == FAIL and "camera.file" in results["config"].summary
    assert results["camera"].status == FAIL and "not found" in results["camera"].summary


def test_invalid_config_is_a_failed_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[gpio]\nbuzzer_pin = 99\n")
    assert cli_check(argparse.Namespace(config=str(path), json=True)) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["checks"] == [{"name": "config", "status": FAIL, "details": {}, "duration_ms": 0.0,
                                 "summary": "gpio.buzzer_pin: 99 is above the maximum 27"}]


def test_duplicate_pins_fail_config(media: dict[str, Path]) -> None:
    result = selfcheck.check_config(from_dict(raw_config(media, gpio={"led_pin": 17})))
    assert result.status == FAIL and "must be different pins" in result.summary


def test_pin_already_claimed_fails_gpio(media: dict[str, Path]) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    holder = LED(17, pin_factory=factory)
    try:
        result = selfcheck.check_gpio(from_dict(raw_config(media)), factory)
    finally:
        holder.close()
    assert result.status == FAIL
    assert result.summary.startswith("buzzer pin BCM 17 cannot be claimed") and "stop medtrack" in result.summary
    # everything the check claimed was released again
    assert selfcheck.check_gpio(from_dict(raw_config(media)), factory).status == OK


def test_gpio_disabled_is_skipped(media: dict[str, Path]) -> None:
    assert selfcheck.check_gpio(from_dict(raw_config(media, gpio={"enabled": False}))).status == SKIP


def test_busy_port_fails(media: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = selfcheck.check_port(from_dict(raw_config(media, web={"port": port})))
    assert result.status == FAIL and f"127.0.0.1:{port}" in result.summary


def test_state_dir_missing_fails(media: dict[str, Path], tmp_path: Path) -> None:
    result = selfcheck.check_state_dir(from_dict(raw_config(media, service={"state_dir": str(tmp_path / "x")})))
    assert result.status == FAIL and "install.sh" in result.summary


def test_temperature_levels(media: dict[str, Path], tmp_path: Path) -> None:
    cfg = from_dict(raw_config(media))
    zone = media["thermal"] / "thermal_zone0" / "temp"
    throttled = tmp_path / "get_throttled"
    zone.write_text("85000\n")
    assert selfcheck.check_temperature(cfg, media["thermal"], throttled).status == FAIL
    zone.write_text("72000\n")
    assert selfcheck.check_temperature(cfg, media["thermal"], throttled).status == WARN
    zone.write_text("50000\n")
    throttled.write_text("0x50005\n")
    result = selfcheck.check_temperature(cfg, media["thermal"], throttled)
    assert result.status == WARN and "under-voltage now" in result.summary
    assert selfcheck.check_temperature(cfg, tmp_path / "none").status == SKIP


def test_silent_microphone_warns(media: dict[str, Path]) -> None:
    result = selfcheck.check_microphone(from_dict(raw_config(media, microphone={"file": str(media["silent"])})))
    assert result.status == WARN and "silence" in result.summary


def test_level_meter() -> None:
    t = np.arange(16000) / 16000
    level = selfcheck.level_meter(np.sin(2 * np.pi * 100 * t))
    assert level["rms_dbfs"] == pytest.approx(-3.0, abs=0.05) and level["peak_dbfs"] == pytest.approx(0.0, abs=0.01)
    assert level["meter"] == "[" + "#" * 28 + ".." + "]"  # -3 dBFS on a -60..0 scale
    assert selfcheck.level_meter(np.zeros(10))["rms_dbfs"] == -120.0


class FakeModel:
    backend = "fake"
    input_shape = (1, 48, 48, 1)


class FakeClassifier:
    def __init__(self, path: Path, num_threads: int = 1, **kw: Any):
        if path.read_bytes() == b"corrupt":
            raise RuntimeError(f"model file {path} could not be loaded; restore it")
        self.model = FakeModel()
        self.window_s, self.sample_rate = 1.5, 16000
        self.calls = 0

    def classify(self, crop: np.ndarray) -> np.ndarray:
        assert crop.shape == (48, 48)
        return np.full(7, 1 / 7)

    def classify_window(self, x: np.ndarray) -> np.ndarray:
        assert x.shape == (24000,)
        return np.full(7, 1 / 7)

    def detect(self, frame: np.ndarray) -> list[Any]:
        assert frame.shape == (120, 160, 3)
        return []


def test_models_load_and_run_with_timings(media: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for module, cls in (("edge.inference.face", "FaceClassifier"), ("edge.inference.voice", "VoiceClassifier"),
                        ("edge.inference.detector", "FaceDetector")):
        fake = types.ModuleType(module)
        setattr(fake, cls, FakeClassifier)
        monkeypatch.setitem(sys.modules, module, fake)
    models = tmp_path / "models"
    models.mkdir()
    (models / "face.tflite").write_bytes(b"ok")
    (models / "voice.tflite").write_bytes(b"corrupt")
    cfg = from_dict(raw_config(media, service={"models_dir": str(models)},
                               face={"enabled": True, "model": "face.tflite"},
                               voice={"enabled": True, "model": "voice.tflite"}))
    results = by_name(selfcheck.check_models(cfg, runs=3))
    face = results["model:face_expression"]
    assert face.status == OK and {"load_ms", "first_ms", "median_ms", "p90_ms"} <= set(face.details)
    assert face.details["input"] == [1, 48, 48, 1] and "run median" in face.summary
    assert results["model:voice"].status == FAIL and "could not be loaded" in results["model:voice"].summary
    det = results["model:face_detector"]
    assert det.status == FAIL and "fetch_face_detector.py" in det.summary


def test_missing_inference_module_reports_not_available(media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "edge.inference.voice", None)  # import raises ImportError
    cfg = from_dict(raw_config(media, voice={"enabled": True}))
    result = by_name(selfcheck.check_models(cfg))["model:voice"]
    assert result.status == FAIL and result.summary.startswith("voice not available")


def test_real_models_when_present() -> None:
    cfg = Config()
    needed = [cfg.model_path(cfg.face.detector), cfg.model_path(cfg.face.model)]
    if not all(p.is_file() for p in needed):
        pytest.skip("models_tflite/ lacks the face models (fetch/train them first)")
    results = by_name(selfcheck.check_models(Config(), runs=2))
    assert results["model:face_detector"].status == OK
    assert results["model:face_expression"].status == OK
    assert results["model:sound_events"].status == OK and results["model:sound_events"].details["input"] == [1, 99, 40, 1]
    assert results["model:voice"].status == OK


def test_a_crashing_check_does_not_hide_the_others(media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(cfg: Config) -> CheckResult:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(selfcheck, "check_disk", boom)
    results = run(media, from_dict(raw_config(media)))
    assert results["disk"].status == FAIL and "check crashed: ZeroDivisionError" in results["disk"].summary
    assert results["camera"].status == OK
