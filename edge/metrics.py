"""Prometheus text exposition (format 0.0.4, written by hand: no dependency) of the hub's state,
alarms, sources and metrics, and of the box's system readings (:class:`edge.host.SystemStats`).

Series: ``medtrack_state{label}`` (1 for the current label), ``medtrack_emotion_probability{label}``,
``medtrack_distress_score``, ``medtrack_sound_share{sound}``, ``medtrack_vocal_distress_score``,
``medtrack_vocal_distress_present``, ``medtrack_alarm_active``, ``medtrack_alarm_events_total{kind,priority}``,
``medtrack_analysed_fps``, ``medtrack_stage_latency_ms{stage,stat}`` (from hub.metrics keys like
``face_ms`` / ``face_ms_p50``), ``medtrack_source_up{source}``, ``medtrack_source_status{source,status}``,
every other numeric hub metric as ``medtrack_<key>``, uptime, build info and system gauges.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from edge import __version__
from edge.events import AlarmEvent
from edge.labels import LABELS

if TYPE_CHECKING:
    from edge.hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STAGE_RE = re.compile(r"^(?P<stage>[a-z0-9_]+?)_ms(?:_(?P<stat>p\d+|mean|max|min|avg))?$")
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")
FPS_KEYS = ("fps", "analysed_fps", "analyzed_fps")
UP_STATUSES = ("ok", "degraded")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def sample(self, name: str, mtype: str, help_text: str, value: float,
               labels: dict[str, str] | None = None) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self.lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
            self.lines.append(f"# TYPE {name} {mtype}")
        lab = ""
        if labels:
            lab = "{" + ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items()) + "}"
        self.lines.append(f"{name}{lab} {_fmt(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class AlarmCounters:
    """Counts alarm events by kind and priority since start (feed it every hub event)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def observe(self, event: AlarmEvent) -> None:
        self.counts[(event.kind, event.priority)] += 1


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def render(hub: Hub, counters: AlarmCounters | None = None, system: dict[str, Any] | None = None) -> str:
    """The Prometheus text exposition of the hub's state, alarms, sources and metrics."""
    w = _Writer()
    state = hub.latest_state
    current = state.label if state else ""
    for label in LABELS:
        w.sample("medtrack_state", "gauge", "1 for the current fused emotion label, else 0.",
                 1.0 if label == current else 0.0, {"label": label})
    if state is not None:
        for label, p in zip(LABELS, state.probs, strict=False):
            w.sample("medtrack_emotion_probability", "gauge", "Fused probability of each label.",
                     float(p), {"label": label})
        w.sample("medtrack_distress_score", "gauge", "Fused distress score (0..1).", float(state.distress))
        w.sample("medtrack_state_confidence", "gauge", "Confidence of the fused label.", float(state.confidence))
        sounds = state.sounds or {}
        for name, share in sorted((sounds.get("shares") or {}).items()):
            w.sample("medtrack_sound_share", "gauge", "Share of the last minute the microphone heard each sound.",
                     float(share), {"sound": name})
        vocal = sounds.get("vocal_distress")
        if vocal:
            w.sample("medtrack_vocal_distress_score", "gauge",
                     "Vocal-distress score: P(scream)+P(cry)+P(moan) over the last two sound windows.",
                     float(vocal.get("score", 0.0)))
            w.sample("medtrack_vocal_distress_present", "gauge",
                     "1 while sustained or repeated screaming, crying or moaning is heard.",
                     1.0 if vocal.get("present") else 0.0)
    snap = hub.alarm_snapshot() or {}
    w.sample("medtrack_alarm_active", "gauge", "1 while an alarm is active.", 1.0 if snap.get("active") else 0.0)
    priority = snap.get("priority") if snap.get("active") else None
    for prio in ("high", "medium", "low"):
        w.sample("medtrack_alarm_priority", "gauge", "1 for the priority of the active alarm.",
                 1.0 if prio == priority else 0.0, {"priority": prio})
    counts = counters.counts if counters else Counter()
    if not counts:
        w.sample("medtrack_alarm_events_total", "counter", "Alarm events since start, by kind and priority.",
                 0, {"kind": "raised", "priority": "high"})
    for (kind, prio), n in sorted(counts.items()):
        w.sample("medtrack_alarm_events_total", "counter", "Alarm events since start, by kind and priority.",
                 n, {"kind": kind, "priority": prio})

    metrics = dict(hub.metrics)
    fps_key = next((k for k in FPS_KEYS if k in metrics), None)
    if fps_key is not None:
        value = _number(metrics.pop(fps_key))
        if value is not None:
            w.sample("medtrack_analysed_fps", "gauge", "Frames analysed per second by the pipeline.", value)
    for key in sorted(metrics):
        value = _number(metrics[key])
        if value is None:
            continue
        m = _STAGE_RE.match(key)
        if m:
            w.sample("medtrack_stage_latency_ms", "gauge", "Pipeline stage latency in milliseconds.", value,
                     {"stage": m["stage"], "stat": m["stat"] or "last"})
    for key in sorted(metrics):
        value = _number(metrics[key])
        if value is None or _STAGE_RE.match(key):
            continue
        name = "medtrack_" + _NAME_BAD.sub("_", key)
        w.sample(name, "gauge", f"Service metric {key}.", value)

    for source, health in sorted(hub.health.items()):
        w.sample("medtrack_source_up", "gauge", "1 when the source or stage is ok or degraded, 0 when not.",
                 1.0 if health.status in UP_STATUSES else 0.0, {"source": source})
    for source, health in sorted(hub.health.items()):
        w.sample("medtrack_source_status", "gauge", "1 for the current status of each source.", 1.0,
                 {"source": source, "status": health.status})

    if system:
        for key, help_text in (("cpu_percent", "CPU use of the box in percent."),
                               ("temperature_c", "CPU temperature in degrees Celsius."),
                               ("memory_used_percent", "Memory in use in percent."),
                               ("disk_used_percent", "State directory disk use in percent.")):
            value = _number(system.get(key))
            if value is not None and f"medtrack_{key}" not in w._declared:
                w.sample(f"medtrack_system_{key}", "gauge", help_text, value)
    w.sample("medtrack_uptime_seconds", "gauge", "Seconds since the service started.", hub.uptime_s())
    w.sample("medtrack_build_info", "gauge", "Software version.", 1.0, {"version": __version__})
    return w.text()

