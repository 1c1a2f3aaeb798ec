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
    ("[fusion]\nface_distress_weights = { panic = 1.0 }\n", "fusion.face_distress_weights.panic: unknown label"),
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


# ------------------------------------------------------------------ probe: non-finite and impossible

def _float_keys() -> list[tuple[str, str]]:
    import dataclasses

    keys = []
    for section in dataclasses.fields(config.Config):
        for f in dataclasses.fields(section.default_factory):  # type: ignore[arg-type]
            if config._resolve_type(f.type) is float:
                keys.append((section.name, f.name))
    return keys


FLOAT_KEYS = _float_keys()


def test_the_fuzz_covers_the_keys_the_probe_named() -> None:
    for key in [("alarm", "t_on_s"), ("alarm", "t_escalate_s"), ("alarm", "stall_s"),
                ("face", "analysis_fps"), ("store", "retention_days")]:
        assert key in FLOAT_KEYS


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
def test_non_finite_numbers_are_refused_for_every_numeric_key(tmp_path: Path, section: str, key: str,
                                                              value: str) -> None:
    path = tmp_path / "medtrack.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    msg = str(err.value)
    assert msg.startswith(f"{section}.{key}: ") and "\n" not in msg


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_cli_config_check_fails_on_non_finite(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[alarm]\nt_on_s = {value}\n")
    assert cli.main(["config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("medtrack: config error: alarm.t_on_s: ")


@pytest.mark.parametrize(("toml", "expected"), [
    ("[fusion]\ndistress_weights = {}\nface_distress_weights = {}\n", "fusion.distress_weights: the largest weight (0)"),
    ("[fusion]\ndistress_weights = { fear = 0.0, sad = 0.0 }\nface_distress_weights = { disgust = 0.0 }\n",
     "fusion.distress_weights: the largest weight (0)"),
    ("[fusion]\ndistress_weights = { fear = 0.5 }\nface_distress_weights = {}\n", "below alarm.on_threshold (0.55)"),
    ("[fusion]\nvoice_distress_weights = { fear = 2 }\n", "fusion.voice_distress_weights.fear: expected a number from 0 to 1"),
    ("[fusion]\ndistress_weights = { fear = nan }\n", "fusion.distress_weights.fear: expected a number from 0 to 1"),
    ("[fusion]\ndistress_weights = { fear = inf }\n", "fusion.distress_weights.fear: expected a number from 0 to 1"),
    ("[vocal_distress]\nwindow_s = 10\nscream_s = 12\n", "vocal_distress.scream_s: 12 s can never add up"),
    ("[vocal_distress]\nwindow_s = 10\ndistress_s = 11\n", "vocal_distress.distress_s: 11 s can never add up"),
])
def test_configs_that_make_an_alarm_impossible_are_refused(tmp_path: Path, toml: str, expected: str) -> None:
    path = tmp_path / "medtrack.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_lower_weights_that_still_reach_the_threshold_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "medtrack.toml"
    path.write_text("[fusion]\ndistress_weights = { fear = 0.6 }\n[vocal_distress]\nenabled = false\nscream_s = 40\n")
    assert config.load(path).fusion.distress_weights == {"fear": 0.6}


@pytest.mark.parametrize("data", [b"[service]\nlocation = 'caf\xe9'\n", b"\xff\xfe[\x00a\x00]\x00", b"\x80"])
def test_non_utf8_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="is not UTF-8 text .*save it as UTF-8"):
        config.load(path)
    assert cli.main(["config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not UTF-8" in err


def test_config_check_reports_every_error_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[alarm]\nt_on_s = -1\nlatching = 3\nbutton_pause_minutes = 10\n"
                    "[camera]\nbackend = 'file'\n[nonsense]\nx = 1\n[web]\ntls_cert = 'a.pem'\n")
    assert cli.main(["config", "--config", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 6 and all(line.startswith("medtrack: config error: ") for line in lines)
    for key in ("alarm.t_on_s", "alarm.latching", "alarm.button_pause_minutes", "[nonsense]",
                "web: set both", "camera.file"):
        assert any(key in line for line in lines), key
    good = tmp_path / "good.toml"
    good.write_text("[alarm]\nt_on_s = 5\n")
    assert cli.main(["config", "--config", str(good)]) == 0
    assert cli.main(["config", "--config", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
