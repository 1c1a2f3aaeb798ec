"""TOML configuration -> frozen dataclasses. Every key has a Pi-ready default; every error names the
key and what is allowed, in one line.

Each section is a frozen dataclass; a field's ``metadata`` carries its help text and limits
(``min``, ``max``, ``choices``), which drive both validation and ``medtrack config --print-default``.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.labels import LABELS
from edge.models import FACE_DETECTOR_SHORT, FACE_EXPRESSION, SOUND_EVENTS, VOICE_EMOTION

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


class ConfigError(ValueError):
    """A configuration problem; str(err) is a one-line message naming the key and the fix."""


def opt(default: Any, help: str, **limits: Any) -> Any:
    """A config field with help text and limits (min, max, choices)."""
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **limits})
    return field(default=default, metadata={"help": help, **limits})


DEFAULT_MODELS_DIR = "models_tflite"


@dataclass(frozen=True)
class ServiceConfig:
    device_id: str = opt("medtrack-1", "Name of this box (MQTT client id, status page title). Letters, digits, - and _.")
    location: str = opt("", "Free text shown on the status page, e.g. 'Ward 3, bed 12'.")
    state_dir: str = opt("/var/lib/medtrack", "Where the event database and the access token live.")
    models_dir: str = opt(DEFAULT_MODELS_DIR, "Folder of the .tflite models (relative paths: to the installed package's repo root).")
    log_level: str = opt("INFO", "Logging level.", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    inference_threads: int = opt(1, "Threads for each TFLite interpreter.", min=1, max=8)


@dataclass(frozen=True)
class CameraConfig:
    backend: str = opt("picamera2", "Camera backend.", choices=["picamera2", "opencv", "file", "none"])
    device: str = opt("0", "OpenCV: a USB camera index ('0') or a GStreamer pipeline ending in appsink.")
    file: str = opt("", "Video file for backend = 'file'.")
    width: int = opt(640, "Capture width in pixels.", min=160, max=4096)
    height: int = opt(480, "Capture height in pixels.", min=120, max=3072)
    fps: float = opt(15.0, "Capture frame rate.", min=1.0, max=120.0)
    realtime: bool = opt(True, "File backend: play at the file's own fps (false: as fast as possible).")
    loop: bool = opt(True, "File backend: start again at the end.")
    retry_max_s: float = opt(30.0, "Longest wait between reconnection attempts when the camera fails.", min=1.0, max=3600.0)


@dataclass(frozen=True)
class MicrophoneConfig:
    backend: str = opt("pyaudio", "Microphone backend.", choices=["pyaudio", "file", "none"])
    device: str = opt("", "PyAudio input device: index or part of its name ('' = default input).")
    file: str = opt("", "WAV/FLAC file for backend = 'file' (any rate; resampled to 16 kHz).")
    sample_rate: int = opt(16000, "Capture rate; the model runs at 16 kHz.", choices=[16000, 32000, 44100, 48000])
    realtime: bool = opt(True, "File backend: play in real time (false: as fast as possible).")
    loop: bool = opt(True, "File backend: start again at the end.")
    retry_max_s: float = opt(30.0, "Longest wait between reconnection attempts when the mic fails.", min=1.0, max=3600.0)


@dataclass(frozen=True)
class FaceConfig:
    enabled: bool = opt(True, "Analyse faces.")
    model: str = opt(FACE_EXPRESSION.file, "Expression model file (in models_dir unless absolute).")
    detector: str = opt(FACE_DETECTOR_SHORT.file, "BlazeFace detector file (short range: up to ~2 m; full range: the waiting-room model).")
    analysis_fps: float = opt(5.0, "Frames analysed per second (the latest frame wins; older ones are skipped).", min=0.2, max=120.0)
    select: str = opt("largest", "Which face is the patient.", choices=["largest", "central", "all"])
    min_detection_score: float = opt(0.6, "Detector score needed to accept a face.", min=0.05, max=0.99)
    margin: float = opt(0.15, "Crop margin around the detected box, as a fraction of its size.", min=0.0, max=1.0)
    detect_every: int = opt(3, "Run the face detector on one analysed frame in this many and reuse its faces on the frames between while they stay still (any movement detects again; 1 = every frame).", min=1, max=30)


@dataclass(frozen=True)
class VoiceConfig:
    enabled: bool = opt(True, "Analyse speech.")
    model: str = opt(VOICE_EMOTION.file, "Speech-emotion model file (in models_dir unless absolute).")
    vad_aggressiveness: int = opt(2, "webrtcvad aggressiveness (0 lenient .. 3 strict).", min=0, max=3)
    hop_s: float = opt(0.5, "Seconds between voice analyses.", min=0.1, max=10.0)
    min_speech_s: float = opt(0.6, "Speech needed in the buffer before the voice is analysed.", min=0.1, max=10.0)
    sound_model: str = opt(SOUND_EVENTS.file, "Sound-event model (speech, scream, cry, moan, other vocal, background); only what it calls speech reaches the speech-emotion model.")
    speech_threshold: float = opt(0.5, "Probability of speech a sound window needs for its audio to reach the speech-emotion model.", min=0.0, max=1.0)


@dataclass(frozen=True)
class VocalDistressConfig:
    enabled: bool = opt(True, "Raise a distress alarm on sustained or repeated screaming, crying or moaning.")
    flag_threshold: float = opt(0.75, "Vocal-distress score (P(scream)+P(cry)+P(moan), mean of the last two 1 s windows) that counts a half-second as distress sound.", min=0.05, max=1.0)
    window_s: float = opt(30.0, "The distress sound is counted over this many seconds.", min=5.0, max=600.0)
    scream_s: float = opt(1.5, "Seconds of screaming within window_s that raise the alarm.", min=0.5, max=600.0)
    distress_s: float = opt(4.0, "Seconds of screaming, crying or moaning within window_s that raise the alarm.", min=0.5, max=600.0)
    clear_s: float = opt(20.0, "The condition passes after this long without distress sound.", min=1.0, max=3600.0)


@dataclass(frozen=True)
class FusionConfig:
    face_weight: float = opt(0.6, "Weight of the face modality before confidence and freshness.", min=0.0, max=1.0)
    voice_weight: float = opt(0.4, "Weight of the voice modality before confidence and freshness.", min=0.0, max=1.0)
    stale_after_s: float = opt(2.0, "A reading older than this starts to fade out.", min=0.1, max=60.0)
    fade_s: float = opt(3.0, "Seconds over which a stale reading fades to zero weight.", min=0.1, max=60.0)
    smoothing_s: float = opt(2.0, "Time constant of the exponential smoothing of fused probabilities.", min=0.0, max=60.0)
    distress_weights: dict = opt(
        {"fear": 1.0, "sad": 0.8, "angry": 0.9, "disgust": 0.6},
        "Distress score = sum of weight x probability over these labels, capped at 1.",
    )
    face_distress_weights: dict = opt(
        {"disgust": 1.0},
        "The camera's own weights: a label listed here replaces its distress_weights value for the face "
        "(disgust: the face model's disgusted faces score low; see scripts/face_distress_weights.py).",
    )
    voice_distress_weights: dict = opt(
        {}, "The voice's own weights: a label listed here replaces its distress_weights value for speech.",
    )

    def weights_for(self, modality: str) -> dict[str, float]:
        """The distress weights of one modality (``face`` or ``voice``)."""
        own = {"face": self.face_distress_weights, "voice": self.voice_distress_weights}[modality]
        return {**self.distress_weights, **own}


@dataclass(frozen=True)
class AlarmConfig:
    on_threshold: float = opt(0.55, "Distress score that starts the alarm timer.", min=0.0, max=1.0)
    off_threshold: float = opt(0.35, "Distress score below which the condition clears (hysteresis).", min=0.0, max=1.0)
    high_threshold: float = opt(0.85, "Distress score that raises high priority at once.", min=0.0, max=1.0)
    t_on_s: float = opt(6.0, "Seconds the score must stay above on_threshold to raise an alarm.", min=0.0, max=600.0)
    t_off_s: float = opt(10.0, "Seconds below off_threshold before the condition clears.", min=0.0, max=3600.0)
    persist_window_s: float = opt(8.0, "The second rule: seconds over which the mean distress score is taken (0 = off; see README 'How alarms behave').", min=0.0, max=600.0)
    persist_threshold: float = opt(0.6, "Mean distress score over persist_window_s that also raises the alarm: distress that keeps dipping under on_threshold (a sad face). Under about 0.57 it also alarms on a score that only hovers around on_threshold.", min=0.0, max=1.0)
    t_escalate_s: float = opt(120.0, "Unacknowledged medium alarm becomes high after this.", min=1.0, max=3600.0)
    latching: bool = opt(True, "A raised alarm stays until a person acknowledges it.")
    ack_silence_s: float = opt(120.0, "Audio pause after an acknowledge.", min=5.0, max=3600.0)
    long_press_silence_s: float = opt(600.0, "Audio pause after a long press of the button.", min=5.0, max=7200.0)
    min_realarm_interval_s: float = opt(60.0, "Shortest time between two raised distress alarms.", min=0.0, max=3600.0)
    max_alarms_per_hour: int = opt(6, "Cap on raised distress alarms per hour (alarm fatigue).", min=1, max=120)
    no_patient_minutes: float = opt(0.0, "Low-priority alarm when no face is seen this long (0 = off).", min=0.0, max=1440.0)
    temperature_limit_c: float = opt(80.0, "CPU temperature that raises a technical alarm.", min=40.0, max=110.0)
    stall_s: float = opt(10.0, "No new state for this long = pipeline stalled (technical alarm).", min=1.0, max=600.0)
    button_pause_minutes: int = opt(15, "Minutes of paused monitoring after a long press of the button with no alarm sounding (care in progress).", choices=[5, 15, 30])


@dataclass(frozen=True)
class GpioConfig:
    enabled: bool = opt(True, "Drive the buzzer, LED and button.")
    pin_factory: str = opt("auto", "gpiozero pin factory: auto (the board's), or mock (no hardware; logs pin changes), or jetson (Jetson.GPIO adapter).", choices=["auto", "mock", "lgpio", "rpigpio", "native", "jetson"])
    buzzer_pin: int = opt(17, "BCM pin of the active buzzer.", min=0, max=27)
    led_pin: int = opt(27, "BCM pin of the status LED (PWM capable).", min=0, max=27)
    button_pin: int = opt(22, "BCM pin of the acknowledge button (to ground; internal pull-up).", min=0, max=27)
    long_press_s: float = opt(2.0, "Hold the button this long for the longer silence.", min=0.5, max=10.0)


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = opt(True, "Serve the status page and API.")
    host: str = opt("0.0.0.0", "Bind address ('127.0.0.1' = this box only).")
    port: int = opt(8080, "TCP port.", min=1, max=65535)
    auth: bool = opt(True, "Require the access token (turning this off is shown on the page).")
    tls_cert: str = opt("", "PEM certificate for HTTPS ('' = plain HTTP).")
    tls_key: str = opt("", "PEM private key for HTTPS.")


@dataclass(frozen=True)
class StoreConfig:
    retention_days: float = opt(90.0, "Events older than this are pruned.", min=1.0, max=3650.0)
    max_mb: float = opt(200.0, "Database size cap; the oldest events are pruned beyond it.", min=1.0, max=100000.0)


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = opt(False, "Publish to an MQTT broker.")
    host: str = opt("localhost", "Broker host name or address.")
    port: int = opt(1883, "Broker port (8883 for TLS).", min=1, max=65535)
    username: str = opt("", "Broker user name ('' = anonymous).")
    password: str = opt("", "Broker password.")
    tls: bool = opt(False, "Use TLS.")
    ca_file: str = opt("", "CA certificate for TLS ('' = system store).")
    topic_prefix: str = opt("medtrack", "Topics live under <prefix>/<device_id>/.")
    discovery: bool = opt(True, "Announce entities to Home Assistant.")
    discovery_prefix: str = opt("homeassistant", "Home Assistant discovery prefix.")
    client_id: str = opt("", "MQTT client id ('' = [service] device_id); must be unique on the broker.")
    client_cert: str = opt("", "PEM client certificate for mutual TLS ('' = none).")
    client_key: str = opt("", "PEM private key of client_cert.")
    keepalive: int = opt(30, "Seconds between keep-alive pings; the broker sends 'offline' after 1.5x this.", min=5, max=600)
    commands: bool = opt(True, "Accept acknowledge commands on <prefix>/<device_id>/command (restrict writers with broker ACLs).")
    state_interval_s: float = opt(1.0, "Shortest time between two state messages (a label change is sent at once).", min=0.1, max=60.0)
    health_interval_s: float = opt(30.0, "Seconds between health messages.", min=1.0, max=3600.0)
    reconnect_max_s: float = opt(60.0, "Longest wait between reconnection attempts (exponential backoff).", min=1.0, max=3600.0)
    outbox_max_events: int = opt(100000, "Undelivered events kept for the broker; beyond this the oldest are dropped with an error log (they stay in the event store).", min=100, max=10000000)


@dataclass(frozen=True)
class Config:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    microphone: MicrophoneConfig = field(default_factory=MicrophoneConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)
    vocal_distress: VocalDistressConfig = field(default_factory=VocalDistressConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    alarm: AlarmConfig = field(default_factory=AlarmConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    web: WebConfig = field(default_factory=WebConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)

    def model_path(self, name: str) -> Path:
        """Resolve a model file name against [service] models_dir."""
        p = Path(name)
        if p.is_absolute():
            return p
        base = Path(self.service.models_dir)
        if not base.is_absolute():
            base = REPO_ROOT / base
        return base / p

    @property
    def state_path(self) -> Path:
        return Path(self.service.state_dir)


# ----------------------------------------------------------------------------------- validation

def _type_name(tp: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(tp, str(tp))


def _check_value(key: str, value: Any, tp: Any, meta: dict[str, Any]) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: {value!r} is not a finite number; give a number"
                              + (f" from {meta['min']} to {meta['max']}" if "min" in meta and "max" in meta else ""))
    elif tp is str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # e.g. camera device = 0
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
    elif tp is dict and not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table like {{ fear = 1.0 }}, got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {allowed}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{key}: {value!r} is below the minimum {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{key}: {value!r} is above the maximum {meta['max']}")
    return value


def _resolve_type(tp: Any) -> Any:
    if isinstance(tp, str):
        tp = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict}.get(tp, tp)
    origin = typing.get_origin(tp)
    if origin is dict:
        return dict
    if isinstance(tp, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _build_section(name: str, cls: type, raw: Any, errors: list[str] | None = None) -> Any:
    """The section's dataclass; with ``errors``, each bad key is noted there and left at its default."""
    def fail(message: str) -> None:
        if errors is None:
            raise ConfigError(message)
        errors.append(message)

    if not isinstance(raw, dict):
        fail(f"[{name}]: expected a table, got {raw!r}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in fields:
            fail(f"{name}.{key}: unknown key; allowed keys in [{name}]: {', '.join(fields)}")
            continue
        f = fields[key]
        try:
            values[key] = _check_value(f"{name}.{key}", value, _resolve_type(f.type), dict(f.metadata))
        except ConfigError as exc:
            fail(str(exc))
    return cls(**values)


def _cross_problems(cfg: Config) -> Iterator[str]:
    """Every setting that contradicts another (or makes an alarm impossible), one line each."""
    a = cfg.alarm
    if not a.off_threshold < a.on_threshold <= a.high_threshold:
        yield ("alarm: thresholds must satisfy off_threshold < on_threshold <= high_threshold "
                          f"(got {a.off_threshold}, {a.on_threshold}, {a.high_threshold})")
    f = cfg.fusion
    for key in ("distress_weights", "face_distress_weights", "voice_distress_weights"):
        for label, weight in getattr(f, key).items():
            if label not in LABELS:
                yield (f"fusion.{key}.{label}: unknown label; use any of {', '.join(LABELS)}")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
                yield (f"fusion.{key}.{label}: expected a number from 0 to 1, got {weight!r}")
    top = max((w for m in ("face", "voice") for w in f.weights_for(m).values()
               if isinstance(w, int | float) and not isinstance(w, bool)), default=0.0)
    if top < a.on_threshold:   # distress = sum of weight x probability <= the largest weight
        yield (f"fusion.distress_weights: the largest weight ({top:g}) is below alarm.on_threshold "
                          f"({a.on_threshold:g}), so no distress alarm could ever sound; give at least one "
                          "label a weight >= on_threshold, e.g. { fear = 1.0 }")
    if cfg.fusion.face_weight + cfg.fusion.voice_weight <= 0:
        yield ("fusion: face_weight + voice_weight must be above 0")
    v = cfg.vocal_distress
    if v.enabled:
        for key in ("scream_s", "distress_s"):
            if getattr(v, key) > v.window_s:
                yield (f"vocal_distress.{key}: {getattr(v, key):g} s can never add up within "
                                  f"window_s = {v.window_s:g} s; make it at most window_s")
    if bool(cfg.web.tls_cert) != bool(cfg.web.tls_key):
        yield ("web: set both tls_cert and tls_key, or neither")
    if cfg.camera.backend == "file" and not cfg.camera.file:
        yield ("camera.file: required when camera.backend = 'file'; give the path of a video")
    if cfg.microphone.backend == "file" and not cfg.microphone.file:
        yield ("microphone.file: required when microphone.backend = 'file'; give a WAV/FLAC path")


def _cross_checks(cfg: Config) -> None:
    for problem in _cross_problems(cfg):
        raise ConfigError(problem)


def problems(raw: dict[str, Any]) -> list[str]:
    """Every error in a parsed TOML document, one line each ([] = valid); a bad key is judged at
    its default for the cross-checks."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    errors: list[str] = []
    built = {}
    for name, value in raw.items():
        if name not in sections:
            errors.append(f"[{name}]: unknown section; allowed sections: {', '.join(sections)}")
            continue
        built[name] = _build_section(name, sections[name].default_factory, value, errors)  # type: ignore[misc]
    return errors + list(_cross_problems(Config(**built)))


def from_dict(raw: dict[str, Any]) -> Config:
    """Validate a parsed TOML document into a Config."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    built = {}
    for name, value in raw.items():
        if name not in sections:
            raise ConfigError(f"[{name}]: unknown section; allowed sections: {', '.join(sections)}")
        built[name] = _build_section(name, sections[name].default_factory, value)  # type: ignore[misc]
    cfg = Config(**built)
    _cross_checks(cfg)
    return cfg


def load(path: str | Path | None) -> Config:
    """Load and validate a TOML file (None: all defaults)."""
    if path is None:
        return from_dict({})
    return from_dict(read_toml(path))


def check_file(path: str | Path) -> list[str]:
    """Every error in a config file, one line each ([] = valid)."""
    try:
        return problems(read_toml(path))
    except ConfigError as exc:
        return [str(exc)]


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document; ConfigError (one line) when it cannot be read or parsed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found; create it with `medtrack config --print-default > {p}`") from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read ({exc.strerror}); check its permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    return raw


def replace(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy of cfg with some keys of some sections changed (validated like a file)."""
    raw = {name: {**dataclasses.asdict(getattr(cfg, name)), **changes} for name, changes in sections.items()}
    updated = {name: _build_section(name, type(getattr(cfg, name)), value) for name, value in raw.items()}
    new = dataclasses.replace(cfg, **updated)
    _cross_checks(new)
    return new


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def default_toml() -> str:
    """A commented TOML file holding every key at its default."""
    lines = ["# MedTrack Edge configuration. Every key is optional; shown here at its default.", ""]
    for section in dataclasses.fields(Config):
        lines.append(f"[{section.name}]")
        for f in dataclasses.fields(section.default_factory):  # type: ignore[arg-type]
            meta = f.metadata
            extra = []
            if "choices" in meta:
                extra.append("one of " + ", ".join(_toml_value(c) for c in meta["choices"]))
            if "min" in meta or "max" in meta:
                extra.append(f"range {meta.get('min', '')}..{meta.get('max', '')}")
            lines.append(f"# {meta.get('help', '')}" + (f" ({'; '.join(extra)})" if extra else ""))
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"{f.name} = {_toml_value(default)}")
        lines.append("")
    return "\n".join(lines)
