"""Config errors are one line naming the key and the fix; the printed default round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import cli, config
from edge.config import ConfigError


@pytest.mark.parametrize(("toml", "expected"), [
    ("[camera]\nbackend = 'webcam'\n", "camera.backend: 'webcam' is not allowed; choose one of"),
    ("[camera]\nfps = 'fast'\n", "camera.fps: expected a number"),
    ("[face]\nanalysis_fps = 500\n", "face.analysis_fps: 500.0 is above the maximum 120.0"),
    ("[face]\nmargin = -1\n", "face.margin: -1.0 is below the minimum"),
    ("[face]\nenabled = 1\n", "face.enabled: expected true or false"),
    ("[voice]\nwindow = 3\n", "voice.window: unknown key; allowed keys in [voice]:"),
    ("[cameras]\nfps = 3\n", "[cameras]: unknown section"),
    ("[fusion]\ndistress_weights = { panic = 1.0 }\n", "fusion.distress_weights.panic: unknown label"),
    ("[camera]\nbackend = 'file'\n", "camera.file: required when camera.backend = 'file'"),
    ("[camera\n", "is not valid TOML"),
])
def test_bad_config_is_one_line(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "medtrack.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    msg = str(err.value)
    assert expected in msg and "\n" not in msg


def test_cli_reports_config_error_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[microphone]\nsample_rate = 22050\n")
    assert cli.main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medtrack: config error: microphone.sample_rate")
    assert cli.main(["run", "--config", str(tmp_path / "none.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_print_default_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "--print-default"]) == 0
    path = tmp_path / "default.toml"
    path.write_text(capsys.readouterr().out)
    assert config.load(path) == config.load(None)
    assert cli.main(["config", "--config", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_replace_validates() -> None:
    cfg = config.replace(config.load(None), face={"select": "all"})
    assert cfg.face.select == "all"
    with pytest.raises(ConfigError, match="face.select"):
        config.replace(cfg, face={"select": "loudest"})
