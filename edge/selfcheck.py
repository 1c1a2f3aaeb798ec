"""`medtrack check`: the installer's self-test on the box.

Checks config, state dir, disk, temperature, web port, GPIO pins, models (load + timed runs), camera
(frames + fps) and microphone (~1 s, RMS/peak dBFS meter). Each check imports its hardware piece
lazily and turns any failure into a one-line reason; nothing here raises. Exit status 0 when no
check failed (warnings allowed), 1 otherwise; ``--json`` prints the same report as JSON.
Stop the service first (``sudo systemctl stop medtrack``): it holds the camera, pins and port.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import math
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.config import Config, ConfigError, load
from edge.host import THERMAL_DIR, THROTTLED_FILE, disk_usage, read_throttled, thermal_glob, thermal_zones
from edge.models import ModelSpec, box_models

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
DISK_WARN_BYTES = 1 << 30
DISK_FAIL_BYTES = 100 << 20
QUIET_DBFS = -60.0


@dataclass
class CheckResult:
    name: str
    status: str                       # ok | warn | fail | skip
    summary: str                      # one readable line: what was seen, or what is wrong and the fix
    details: dict[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class CheckFailed(Exception):
    """Raised inside a check: the message is the readable reason."""


class _Timeout(Exception):
    pass


def _with_timeout(fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run a possibly-blocking hardware call in a daemon thread (a hung camera cannot hang the check)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True, name="selfcheck")
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise _Timeout(f"no answer within {timeout_s:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure = not available
        raise CheckFailed(f"{what} not available: cannot import {module} ({exc})") from exc


# ------------------------------------------------------------------------------------ basic checks

def check_config(cfg: Config) -> CheckResult:
    problems: list[str] = []
    warnings: list[str] = []
    if cfg.gpio.enabled:
        pins = {"buzzer_pin": cfg.gpio.buzzer_pin, "led_pin": cfg.gpio.led_pin, "button_pin": cfg.gpio.button_pin}
        if len(set(pins.values())) != len(pins):
            problems.append("gpio: buzzer_pin, led_pin and button_pin must be different pins "
                            f"(got {', '.join(f'{k}={v}' for k, v in pins.items())})")
    files = [("camera.file", cfg.camera.file if cfg.camera.backend == "file" else ""),
             ("microphone.file", cfg.microphone.file if cfg.microphone.backend == "file" else ""),
             ("web.tls_cert", cfg.web.tls_cert), ("web.tls_key", cfg.web.tls_key)]
    for key, value in files:
        if value and not Path(value).is_file():
            problems.append(f"{key}: {value} does not exist; fix the path")
    models_dir = cfg.model_path("x").parent
    if (cfg.face.enabled or cfg.voice.enabled) and not models_dir.is_dir():
        problems.append(f"service.models_dir: {models_dir} does not exist; reinstall (deploy/install.sh) "
                        "or point models_dir at the models folder")
    if cfg.web.enabled and not cfg.web.auth:
        warnings.append("web.auth = false: the status page and API are open to the whole LAN")
    if not cfg.face.enabled and not cfg.voice.enabled:
        warnings.append("face and voice are both disabled: no distress alarm can ever be raised")
    if cfg.camera.backend == "none" and cfg.face.enabled:
        warnings.append("camera.backend = 'none' with face enabled: set face.enabled = false")
    if cfg.microphone.backend == "none" and cfg.voice.enabled:
        warnings.append("microphone.backend = 'none' with voice enabled: set voice.enabled = false")
    if problems:
        return CheckResult("config", FAIL, "; ".join(problems), {"warnings": warnings})
    if warnings:
        return CheckResult("config", WARN, "valid, but " + "; ".join(warnings))
    return CheckResult("config", OK, f"valid (camera {cfg.camera.backend}, mic {cfg.microphone.backend}, "
                                     f"gpio {'on' if cfg.gpio.enabled else 'off'})")


def check_state_dir(cfg: Config) -> CheckResult:
    d = cfg.state_path
    if not d.is_dir():
        return CheckResult("state_dir", FAIL, f"{d} does not exist; create it with deploy/install.sh "
                                              f"(or: sudo install -d -o medtrack -g medtrack {d})")
    try:
        with tempfile.NamedTemporaryFile(dir=d, prefix=".selfcheck-") as fh:
            fh.write(b"ok")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return CheckResult("state_dir", FAIL, f"{d} is not writable by user {_user()} ({exc.strerror}); "
                                              "run the check as the service user: sudo -u medtrack medtrack check")
    return CheckResult("state_dir", OK, f"{d} writable by {_user()}")


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def check_disk(cfg: Config) -> CheckResult:
    where, usage = disk_usage(cfg.state_path)
    free_gb = usage.free / 1e9
    details = {"path": str(where), "free_bytes": usage.free, "total_bytes": usage.total}
    text = f"{free_gb:.1f} GB free of {usage.total / 1e9:.1f} GB at {where}"
    if usage.free < DISK_FAIL_BYTES:
        return CheckResult("disk", FAIL, text + "; free space or the event store will stop recording", details)
    if usage.free < DISK_WARN_BYTES:
        return CheckResult("disk", WARN, text + " (below 1 GB); free some space", details)
    return CheckResult("disk", OK, text, details)


def check_temperature(cfg: Config, thermal_dir: Path = THERMAL_DIR,
                      throttled_file: Path = THROTTLED_FILE) -> CheckResult:
    zones = thermal_zones(thermal_glob(thermal_dir))
    throttled = read_throttled(throttled_file)
    details: dict[str, Any] = {"zones": zones, "limit_c": cfg.alarm.temperature_limit_c}
    if throttled is not None:
        details["throttled"] = hex(throttled)
    if not zones:
        return CheckResult("temperature", SKIP, f"no thermal sensor under {thermal_dir}", details)
    hottest, temp = max(zones.items(), key=lambda kv: kv[1])
    limit = cfg.alarm.temperature_limit_c
    text = f"{temp:.1f} °C ({hottest.split(':', 1)[1]}; alarm at {limit:.0f} °C)"
    if temp >= limit:
        return CheckResult("temperature", FAIL, text + "; add a heatsink/fan or improve airflow", details)
    notes = []
    if throttled:
        if throttled & 0x1:
            notes.append("under-voltage now: use the official power supply")
        elif throttled & 0x10000:
            notes.append("under-voltage has occurred since boot: check the power supply")
        if throttled & 0x6:
            notes.append("CPU is throttled/capped now")
    if temp >= limit - 10:
        notes.append("close to the alarm limit")
    if notes:
        return CheckResult("temperature", WARN, text + "; " + "; ".join(notes), details)
    return CheckResult("temperature", OK, text, details)


def check_port(cfg: Config) -> CheckResult:
    if not cfg.web.enabled:
        return CheckResult("web_port", SKIP, "web disabled")
    host, port = cfg.web.host, cfg.web.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            s.bind((host, port))
    except PermissionError:
        return CheckResult("web_port", FAIL, f"port {port} needs privileges; use a port >= 1024 (the service "
                                             "runs as user medtrack)")
    except OSError as exc:
        return CheckResult("web_port", FAIL, f"cannot bind {host}:{port} ({exc.strerror}); stop whatever holds "
                                             "it (medtrack.service? `sudo systemctl stop medtrack`) or change "
                                             "[web] port")
    return CheckResult("web_port", OK, f"{host}:{port} is free")


# ------------------------------------------------------------------------------------ GPIO

def check_gpio(cfg: Config, factory: Any = None) -> CheckResult:
    """Claim the pins through the service's own setup (:mod:`edge.outputs.gpio`), then let go."""
    g = cfg.gpio
    if not g.enabled:
        return CheckResult("gpio", SKIP, "gpio disabled (alarms only on the status page / MQTT)")
    from edge.outputs import gpio

    mock = False
    if factory is None:
        try:
            factory, mock = gpio.make_pin_factory(g.pin_factory)
        except Exception as exc:  # noqa: BLE001 - library-specific errors
            return CheckResult("gpio", FAIL, f"pin factory {g.pin_factory!r} unavailable ({exc}); on a Pi install "
                                             "python3-lgpio, off a Pi set [gpio] pin_factory = 'mock'")
        if mock and g.pin_factory == "auto":
            return CheckResult("gpio", FAIL, "pin_factory = 'auto' found no GPIO hardware: the service would use "
                                             "mock pins and nothing would sound; on a Pi install python3-lgpio, "
                                             "on a Jetson set pin_factory = 'jetson' (docs/DEVICE.md), else set "
                                             "[gpio] enabled = false", {"pin_factory": g.pin_factory})
    details: dict[str, Any] = {"pin_factory": g.pin_factory, "mock": mock}
    try:
        buzzer, led, button = gpio.build_devices(g, factory)
    except Exception as exc:  # noqa: BLE001 - GpioError, or a board library's own ('GPIO busy' ...)
        cause = getattr(exc, "cause", None) or exc
        hint = ("another process holds it (medtrack.service? `sudo systemctl stop medtrack`)"
                if "busy" in str(cause).lower() or "in use" in str(cause).lower()
                else "check [gpio] pin_factory and that the user is in group gpio")
        what = (f"{exc.device} pin BCM {exc.pin}" if isinstance(exc, gpio.GpioError) and exc.device else
                f"pins BCM {g.buzzer_pin}/{g.led_pin}/{g.button_pin}")
        return CheckResult("gpio", FAIL, f"{what} cannot be claimed ({type(cause).__name__}: {cause}); {hint}",
                           details)
    try:
        details["led_pwm"] = led.pwm
        details["factory_class"] = type(buzzer.device.pin_factory).__name__
        pressed = bool(button.is_pressed)
        details["button_pressed"] = pressed
    finally:
        for dev in (button, led.device, buzzer.device):
            with contextlib.suppress(Exception):
                dev.close()
    text = (f"buzzer BCM {g.buzzer_pin}, LED BCM {g.led_pin}, button BCM {g.button_pin} claimed "
            f"({details['factory_class']})")
    if mock:
        return CheckResult("gpio", WARN, text + "; mock pins: nothing will sound (pin_factory = 'mock')", details)
    if pressed:
        return CheckResult("gpio", WARN, text + "; the button reads pressed: release it, or check the "
                                                "wiring (pin shorted to ground?)", details)
    return CheckResult("gpio", OK, text, details)


# ------------------------------------------------------------------------------------ models

def _timed_runs(run: Callable[[], Any], runs: int) -> dict[str, float]:
    t0 = time.perf_counter()
    run()  # first run: allocation and caches
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"first_ms": round(first, 2), "median_ms": round(statistics.median(times), 2),
            "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 2)}


def _model_specs(cfg: Config) -> Iterator[tuple[ModelSpec, Callable[[Any], Any]]]:
    """Each model the box runs with ``cfg`` (``edge.models``) and one timed run of it."""
    frame = np.zeros((cfg.camera.height, cfg.camera.width, 3), np.uint8)
    detector, face, sound, voice = box_models(cfg)
    yield detector, lambda m: m.detect(frame)
    yield face, lambda m: m.classify(np.zeros(face.input_shape[1:3], np.uint8))
    yield sound, lambda m: m.model.run(np.zeros(sound.input_shape, np.float32))
    yield voice, lambda m: m.classify_window(np.zeros(int(m.window_s * m.sample_rate), np.float32))


def check_models(cfg: Config, runs: int = 10) -> list[CheckResult]:
    results = []
    for spec, run in _model_specs(cfg):
        name = spec.check_name
        check = f"model:{name}"
        if not spec.enabled(cfg):
            results.append(CheckResult(check, SKIP, "disabled in config"))
            continue
        path = spec.path(cfg)
        try:
            cls = getattr(_import(spec.module, name), spec.class_name)
            if not path.is_file():
                fix = ("run python scripts/fetch_face_detector.py (deploy/install.sh does this)"
                       if spec.role == "face_detector" else "reinstall the models (deploy/install.sh) or fix "
                       f"[{spec.section}] {spec.field} / [service] models_dir")
                raise CheckFailed(f"{path} not found; {fix}")
            t0 = time.perf_counter()
            model = cls(path, **spec.kwargs(cfg))
            load_ms = (time.perf_counter() - t0) * 1000
            timing = _timed_runs(lambda m=model, r=run: r(m), runs)
        except Exception as exc:  # noqa: BLE001 - ModelError, runtime errors, shape errors
            results.append(CheckResult(check, FAIL, str(exc)))
            continue
        inner = getattr(model, "model", None)
        details = {"file": str(path), "load_ms": round(load_ms, 1), **timing,
                   "backend": getattr(inner, "backend", ""), "input": list(getattr(inner, "input_shape", ()))}
        results.append(CheckResult(check, OK, f"{path.name}: load {load_ms:.0f} ms, run median "
                                              f"{timing['median_ms']:.1f} ms / p90 {timing['p90_ms']:.1f} ms "
                                              f"({details['backend']})", details))
    return results


# ------------------------------------------------------------------------------------ camera

def _frames_edge_capture(cfg: Config, n: int) -> tuple[list[np.ndarray], dict[str, Any]]:
    """N frames from the configured backend through edge.capture.camera (the service's own readers)."""
    from edge.capture import CaptureError
    from edge.capture import camera as mod

    factory = mod.make_reader(cfg.camera)
    reader = factory()
    try:
        try:
            reader.open()
        except CaptureError as exc:
            raise CheckFailed(str(exc)) from exc
        frames = []
        for _ in range(n):
            try:
                img = reader.read()
            except CaptureError as exc:
                if not frames:
                    raise CheckFailed(str(exc)) from exc
                break
            if img is None:
                break
            frames.append(img)
        source = cfg.camera.file if cfg.camera.backend == "file" else cfg.camera.device
        return frames, {"source": f"{cfg.camera.backend} {source}".strip() if cfg.camera.backend != "picamera2"
                        else "picamera2", "nominal_fps": float(getattr(reader, "fps", 0.0))}
    finally:
        reader.close()


def check_camera(cfg: Config, frames: int = 20, timeout_s: float = 15.0) -> CheckResult:
    c = cfg.camera
    if c.backend == "none":
        return CheckResult("camera", SKIP, "camera.backend = 'none'")

    def grab() -> tuple[list[np.ndarray], dict[str, Any], float]:
        t0 = time.perf_counter()
        got = _frames_edge_capture(cfg, frames)
        return got[0], got[1], time.perf_counter() - t0

    try:
        got, details, elapsed = _with_timeout(grab, timeout_s)
    except _Timeout as exc:
        return CheckResult("camera", FAIL, f"{c.backend} camera: {exc}; the camera is hung or busy "
                                           "(another process using it? `sudo systemctl stop medtrack`)")
    except CheckFailed as exc:
        return CheckResult("camera", FAIL, str(exc))
    except Exception as exc:  # noqa: BLE001 - library-specific errors
        return CheckResult("camera", FAIL, f"{c.backend} camera failed: {type(exc).__name__}: {exc}")
    if not got:
        return CheckResult("camera", FAIL, f"{details.get('source', c.backend)} opened but delivered no frame; "
                                           "check the cable / file", details)
    fps = len(got) / elapsed if elapsed > 0 else 0.0
    last = got[-1]
    level = float(np.mean(last))
    details.update({"frames": len(got), "fps": round(fps, 1), "shape": list(last.shape),
                    "mean_level": round(level, 1)})
    text = f"{len(got)} frames {last.shape[1]}x{last.shape[0]} at {fps:.1f} fps ({details.get('source', c.backend)})"
    notes = []
    if len(got) < frames:
        notes.append(f"only {len(got)} of {frames} frames")
    if c.backend != "file" and fps < 0.5 * c.fps:
        notes.append(f"below half of camera.fps = {c.fps:g} (too little light, or USB bandwidth?)")
    if level < 8:
        notes.append("image almost black: lens covered or room too dark?")
    if notes:
        return CheckResult("camera", WARN, text + "; " + "; ".join(notes), details)
    return CheckResult("camera", OK, text, details)


# ------------------------------------------------------------------------------------ microphone

def level_meter(audio: np.ndarray) -> dict[str, Any]:
    """RMS and peak in dBFS of float audio in [-1, 1], and a 30-character bar (-60..0 dBFS)."""
    x = np.asarray(audio, np.float64).ravel()
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    rms_db = 20 * math.log10(rms) if rms > 0 else -120.0
    peak_db = 20 * math.log10(peak) if peak > 0 else -120.0
    filled = int(round(30 * min(1.0, max(0.0, (rms_db + 60) / 60))))
    return {"rms_dbfs": round(rms_db, 1), "peak_dbfs": round(peak_db, 1),
            "meter": "[" + "#" * filled + "." * (30 - filled) + "]"}


def _audio_edge_capture(cfg: Config, seconds: float, timeout_s: float) -> tuple[np.ndarray, int, dict[str, Any]]:
    """~seconds of 16 kHz audio from the configured backend through edge.capture.microphone."""
    from edge.capture import CaptureError
    from edge.capture import microphone as mod

    m = cfg.microphone
    is_file = m.backend == "file"
    section = dataclasses.replace(m, realtime=False, loop=True) if is_file else m
    backend = mod.make_backend(section, time.monotonic)()
    rate = int(mod.SAMPLE_RATE)
    need = int(seconds * rate)
    ring = mod.AudioRing(seconds=max(2.0, 2 * seconds), lossless=is_file)
    stop = threading.Event()
    errors: list[BaseException] = []
    info: list[str] = []

    def runner() -> None:
        try:
            backend.run(ring, stop, info.append)
        except BaseException as exc:  # noqa: BLE001 - handed to the check
            errors.append(exc)
        finally:
            ring.close()

    try:
        backend.open()
    except CaptureError as exc:
        raise CheckFailed(str(exc)) from exc
    thread = threading.Thread(target=runner, daemon=True, name="selfcheck-mic")
    chunks: list[np.ndarray] = []
    got = 0
    try:
        thread.start()
        deadline = time.monotonic() + timeout_s
        while got < need and time.monotonic() < deadline:
            part = ring.read(timeout=0.2)
            if part is None:
                if not thread.is_alive():
                    break
                continue
            chunks.append(part[0])
            got += len(part[0])
    finally:
        stop.set()
        ring.close()
        thread.join(2.0)
        backend.close()
    if errors and not got:
        raise CheckFailed(str(errors[0]))
    audio = np.concatenate(chunks)[:need].astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
    source = f"file {m.file}" if is_file else f"pyaudio {m.device or 'default input'}"
    return audio, rate, {"source": source, "info": info[0] if info else ""}


def check_microphone(cfg: Config, seconds: float = 1.0, timeout_s: float = 10.0) -> CheckResult:
    m = cfg.microphone
    if m.backend == "none":
        return CheckResult("microphone", SKIP, "microphone.backend = 'none'")

    def grab() -> tuple[np.ndarray, int, dict[str, Any]]:
        return _audio_edge_capture(cfg, seconds, timeout_s - 1)

    try:
        audio, rate, details = _with_timeout(grab, timeout_s)
    except _Timeout as exc:
        return CheckResult("microphone", FAIL, f"{m.backend} microphone: {exc}; the device is hung or busy")
    except CheckFailed as exc:
        return CheckResult("microphone", FAIL, str(exc))
    except Exception as exc:  # noqa: BLE001 - PortAudio errors
        return CheckResult("microphone", FAIL, f"{m.backend} microphone failed: {type(exc).__name__}: {exc}")
    if audio.size == 0:
        return CheckResult("microphone", FAIL, f"{details['source']} delivered no audio within "
                                               f"{timeout_s:.0f} s (unplugged? muted?)", details)
    level = level_meter(audio)
    details.update({"seconds": round(audio.size / rate, 2), "sample_rate": rate, **level})
    text = (f"{details['seconds']:.1f} s at {rate} Hz, RMS {level['rms_dbfs']:.1f} dBFS "
            f"{level['meter']} peak {level['peak_dbfs']:.1f} dBFS ({details['source']})")
    if level["peak_dbfs"] <= -119:
        return CheckResult("microphone", WARN, text + "; digital silence: is the mic muted (alsamixer)?", details)
    if level["rms_dbfs"] < QUIET_DBFS:
        return CheckResult("microphone", WARN, text + "; very quiet: speak near the mic, raise the gain "
                                                      "(alsamixer)", details)
    if level["peak_dbfs"] >= -0.1:
        return CheckResult("microphone", WARN, text + "; clipping: lower the gain (alsamixer)", details)
    return CheckResult("microphone", OK, text, details)

# ------------------------------------------------------------------------------------ runner

def _timed(name: str, fn: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - a check's bug must not hide the other checks
        out = CheckResult(name, FAIL, f"check crashed: {type(exc).__name__}: {exc}")
    results = out if isinstance(out, list) else [out]
    ms = (time.perf_counter() - t0) * 1000
    for r in results:
        r.duration_ms = round(ms / len(results), 1)
    return results


def run_checks(config: Config, *, thermal_dir: Path = THERMAL_DIR, throttled_file: Path = THROTTLED_FILE,
               gpio_factory: Any = None, frames: int = 20, audio_s: float = 1.0,
               model_runs: int = 10) -> list[CheckResult]:
    """Run every check against a validated config; never raises."""
    checks: list[tuple[str, Callable[[], CheckResult | list[CheckResult]]]] = [
        ("config", lambda: check_config(config)),
        ("state_dir", lambda: check_state_dir(config)),
        ("disk", lambda: check_disk(config)),
        ("temperature", lambda: check_temperature(config, thermal_dir, throttled_file)),
        ("web_port", lambda: check_port(config)),
        ("gpio", lambda: check_gpio(config, gpio_factory)),
        ("models", lambda: check_models(config, model_runs)),
        ("camera", lambda: check_camera(config, frames)),
        ("microphone", lambda: check_microphone(config, audio_s)),
    ]
    results: list[CheckResult] = []
    for name, fn in checks:
        results.extend(_timed(name, fn))
    return results


def exit_status(results: list[CheckResult]) -> int:
    return 1 if any(r.status == FAIL for r in results) else 0


def format_table(results: list[CheckResult], header: str = "") -> str:
    width = max([len(r.name) for r in results] + [5])
    lines = [header] if header else []
    for r in results:
        lines.append(f"  {r.status.upper():<4}  {r.name:<{width}}  {r.summary}")
    failed = sum(r.status == FAIL for r in results)
    warned = sum(r.status == WARN for r in results)
    lines.append("")
    lines.append(f"{'FAILED' if failed else 'PASSED'}: {failed} failed, {warned} warnings, "
                 f"{sum(r.status == OK for r in results)} ok, {sum(r.status == SKIP for r in results)} skipped")
    return "\n".join(lines)


def cli_check(args: argparse.Namespace) -> int:
    """`medtrack check [--config PATH] [--json]`."""
    config_path = getattr(args, "config", None)
    try:
        cfg = load(config_path)
    except ConfigError as exc:
        results = [CheckResult("config", FAIL, str(exc))]
    else:
        results = run_checks(cfg)
    if getattr(args, "json", False):
        print(json.dumps({"ok": exit_status(results) == 0, "version": __version__, "config": config_path,
                          "checks": [r.to_dict() for r in results]}, indent=2, default=str))
    else:
        header = f"medtrack {__version__} self-check ({config_path or 'default configuration'})"
        print(format_table(results, header))
    return exit_status(results)
