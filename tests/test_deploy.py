"""Deployment: the systemd unit verifies, install.sh's dry run changes nothing, shellcheck, example
config, and journald-friendly logging."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge import logsetup
from edge.config import Config, load

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "medtrack.service"
INSTALL = DEPLOY / "install.sh"
SYSTEM_PATHS = ["/opt/medtrack", "/etc/medtrack", "/var/lib/medtrack", "/etc/systemd/system/medtrack.service",
                "/usr/local/bin/medtrack"]


def unit_directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


# ------------------------------------------------------------------------------------ unit

def test_unit_directives() -> None:
    d = unit_directives()
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert d["Restart"] == ["on-failure"] and d["WatchdogSec"] == ["30s"]
    assert d["ExecStart"] == ["/opt/medtrack/venv/bin/medtrack run --config /etc/medtrack/config.toml"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"]
    assert d["ReadWritePaths"] == [Config().service.state_dir]
    assert d["SupplementaryGroups"] == ["video audio gpio"]
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-video4linux", "char-alsa", "char-gpiochip"} <= allowed
    assert d["DevicePolicy"] == ["closed"]
    # the web server's connection cap plus its reserve fits in the open-file limit
    from edge.outputs import web

    assert int(d["LimitNOFILE"][0]) >= web.MAX_CONNECTIONS + web.FD_RESERVE + 1024
    # stall detection (edge.watchdog) must fit inside the watchdog: stall_s < WatchdogSec
    assert Config().alarm.stall_s < float(d["WatchdogSec"][0].rstrip("s"))


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (apt-get install -y systemd)")
    stub = tmp_path / "medtrack"  # verify insists that ExecStart= exists and is executable
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "medtrack.service"
    unit.write_text(UNIT.read_text().replace("/opt/medtrack/venv/bin/medtrack", str(stub)))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "Failed to" in proc.stderr and "medtrack.service" not in proc.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert "medtrack.service" not in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------ install.sh

def snapshot() -> dict[str, tuple[bool, float]]:
    state = {p: (os.path.lexists(p), os.lstat(p).st_mtime if os.path.lexists(p) else 0.0) for p in SYSTEM_PATHS}
    user = subprocess.run(["getent", "passwd", "medtrack"], capture_output=True, text=True)
    state["user"] = (user.returncode == 0, 0.0)
    return state


def dry_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), "--dry-run", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_install_dry_run_prints_every_action_and_changes_nothing() -> None:
    before = snapshot()
    proc = dry_run()
    assert proc.returncode == 0, proc.stderr
    assert snapshot() == before
    out = proc.stdout
    assert "DRY RUN" in out
    for expected in ("+ apt-get update", "apt-get install -y --no-install-recommends",
                     "libportaudio2", "portaudio19-dev",
                     "+ python3 -m venv --system-site-packages /opt/medtrack/venv",
                     "/opt/medtrack/venv/bin/pip install", "scripts/fetch_face_detector.py --out /opt/medtrack/models",
                     "+ usermod -a -G video\\,audio\\,gpio medtrack",
                     "+ install -d -m 0750 -o medtrack -g medtrack /var/lib/medtrack",
                     "deploy/medtrack.service /etc/systemd/system/medtrack.service",
                     "medtrack check --config /etc/medtrack/config.toml"):
        assert expected in out, expected
    if not os.path.exists("/etc/medtrack/config.toml"):
        assert "deploy/config.example.toml /etc/medtrack/config.toml" in out
    assert re.search(r"^\+ (useradd --system .* medtrack)$", out, re.M) or "user medtrack exists" in out


@pytest.mark.parametrize(("board", "expected"), [("pi", "python3-picamera2"), ("jetson", "Jetson.GPIO")])
def test_install_dry_run_per_board(board: str, expected: str) -> None:
    proc = dry_run("--board", board)
    assert proc.returncode == 0, proc.stderr
    assert f"board: {board}" in proc.stdout and expected in proc.stdout


def test_upgrade_keeps_config_and_uninstall_keeps_state_unless_purged(tmp_path: Path) -> None:
    env = {"DESTDIR": str(tmp_path)}
    for d in ("opt/medtrack/venv/bin", "etc/medtrack", "var/lib/medtrack"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc/medtrack/config.toml").write_text("# local edits\n")
    (tmp_path / "opt/medtrack/venv/bin/python").write_text("")
    (tmp_path / "opt/medtrack/venv/bin/python").chmod(0o755)

    upgrade = dry_run("--no-apt", env=env)
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"{tmp_path}/etc/medtrack/config.toml exists: kept" in upgrade.stdout
    assert f"config.example.toml {tmp_path}/etc/medtrack/config.toml" not in upgrade.stdout
    assert "python3 -m venv" not in upgrade.stdout and "apt-get" not in upgrade.stdout

    keep = dry_run("--uninstall", env=env)
    assert keep.returncode == 0, keep.stderr
    assert f"+ rm -rf -- {tmp_path}/opt/medtrack" in keep.stdout
    assert not [line for line in keep.stdout.splitlines() if line.startswith("+") and "var/lib/medtrack" in line]
    assert "Kept" in keep.stdout and "etc/medtrack" not in "".join(
        line for line in keep.stdout.splitlines() if line.startswith("+"))

    purge = dry_run("--uninstall", "--purge", env=env)
    assert f"+ rm -rf -- {tmp_path}/var/lib/medtrack" in purge.stdout
    assert f"+ rm -rf -- {tmp_path}/etc/medtrack" in purge.stdout
    assert (tmp_path / "etc/medtrack/config.toml").read_text() == "# local edits\n"  # dry run


def test_install_rejects_unknown_options() -> None:
    proc = subprocess.run(["bash", str(INSTALL), "--frobnicate"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr
    proc = subprocess.run(["bash", str(INSTALL), "--purge", "--dry-run"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2


def test_install_script_is_shellcheck_clean() -> None:
    sc = shutil.which("shellcheck")
    if sc is None:
        pytest.skip("shellcheck not installed (apt-get install -y shellcheck)")
    proc = subprocess.run([sc, "--shell=bash", str(INSTALL)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


# ------------------------------------------------------------------------------------ config

def test_example_config_is_current_and_valid() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_config_example", DEPLOY / "gen_config_example.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (DEPLOY / "config.example.toml").read_text() == gen.render(), "run python deploy/gen_config_example.py"
    cfg = load(DEPLOY / "config.example.toml")
    assert cfg.service.models_dir == "/opt/medtrack/models"
    assert cfg.service.state_dir == unit_directives()["ReadWritePaths"][0]
    assert cfg.gpio.pin_factory == "auto" and cfg.camera.backend == "picamera2"


# ------------------------------------------------------------------------------------ logging

def _log_through(env: dict[str, str], level: str = "DEBUG") -> str:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        logsetup.setup(level, env=env, stream=stream)
        logsetup.setup(level, env=env, stream=stream)  # idempotent: one handler
        assert sum(h.get_name() == "medtrack" for h in root.handlers) == 1
        log = logging.getLogger("edge.test")
        log.info("camera ok")
        log.warning("mic quiet")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("stage failed")
        log.debug("detail")
    finally:
        for h in list(root.handlers):
            if h.get_name() == "medtrack":
                root.removeHandler(h)
        root.setLevel(saved[0])
    return stream.getvalue()


def test_journald_format_has_priorities_and_no_timestamps() -> None:
    out = _log_through({"JOURNAL_STREAM": "8:1234"}).splitlines()
    assert out[0] == "<6>INFO edge.test: camera ok"
    assert out[1] == "<4>WARNING edge.test: mic quiet"
    assert out[2] == "<3>ERROR edge.test: stage failed"
    assert all(line.startswith("<3>") for line in out[3:-1]) and "ValueError: boom" in out[-2]
    assert out[-1] == "<7>DEBUG edge.test: detail"
    assert not any(re.search(r"\d{4}-\d\d-\d\d", line) for line in out)
    assert logsetup.under_systemd({"INVOCATION_ID": "abc"}) and not logsetup.under_systemd({})


def test_terminal_format_has_timestamps_and_honours_level() -> None:
    out = _log_through({}, level="INFO").splitlines()
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO edge.test: camera ok$", out[0])
    assert not any("detail" in line for line in out)
