"""Prometheus exposition of the hub's state, alarms, sources and metrics and of the box's system
readings (:class:`edge.host.SystemStats`), through prometheus_client: :class:`HubCollector` reads
them at every scrape and :func:`render` writes the text format (0.0.4).

Series: ``medtrack_state{label}`` (1 for the current label), ``medtrack_emotion_probability{label}``,
``medtrack_distress_score``, ``medtrack_state_confidence``, ``medtrack_sound_share{sound}``,
``medtrack_vocal_distress_score``, ``medtrack_vocal_distress_present``, ``medtrack_alarm_active``,
``medtrack_alarm_priority{priority}``, ``medtrack_alarm_events_total{kind,priority}``,
``medtrack_analysed_fps``, ``medtrack_stage_latency_ms{stage,stat}`` (from hub.metrics keys like
``face_ms`` / ``face_ms_p50``), ``medtrack_source_up{source}``, ``medtrack_source_status{source,status}``,
every other numeric hub metric as ``medtrack_<key>``, ``medtrack_cpu_temp_c`` (the one temperature:
the hottest thermal zone, as the overheat alarm reads it), ``medtrack_system_cpu_percent``,
``medtrack_system_memory_used_percent``, ``medtrack_system_disk_used_percent``, uptime and build info.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

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
TEMPERATURE = "cpu_temp_c"      # the hub metric (and the series) of the CPU temperature
TEMPERATURE_HELP = "CPU temperature in degrees Celsius (the hottest thermal zone, as the overheat alarm reads it)."
SYSTEM_GAUGES = (("cpu_percent", "CPU use of the box in percent."),
                 ("memory_used_percent", "Memory in use in percent."),
                 ("disk_used_percent", "State directory disk use in percent."))


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


class _Families:
    """The scrape's metric families by name, in the order first used; one family a name."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def gauge(self, name: str, help_text: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._add(GaugeMetricFamily, name, help_text, value, labels)

    def counter(self, name: str, help_text: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._add(CounterMetricFamily, name, help_text, value, labels)

    def _add(self, kind: type[Metric], name: str, help_text: str, value: float,
             labels: dict[str, str] | None) -> None:
        labels = labels or {}
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = kind(name, help_text, labels=list(labels))  # type: ignore[call-arg]
        family.add_metric([str(v) for v in labels.values()], value)  # type: ignore[attr-defined]


class HubCollector:
    """A prometheus_client collector over the hub: every scrape reads the latest state, the alarm
    snapshot, the alarm counters, source health and hub metrics; ``system`` is the host readings."""

    def __init__(self, hub: Hub, counters: AlarmCounters | None = None,
                 system: dict[str, Any] | None = None):
        self.hub, self.counters, self.system = hub, counters, system

    def collect(self) -> Iterator[Metric]:
        f = _Families()
        self._state(f)
        self._alarm(f)
        self._hub_metrics(f)
        self._sources(f)
        self._system(f)
        f.gauge("medtrack_uptime_seconds", "Seconds since the service started.", self.hub.uptime_s())
        f.gauge("medtrack_build_info", "Software version.", 1.0, {"version": __version__})
        yield from f.by_name.values()

    def _state(self, f: _Families) -> None:
        state = self.hub.latest_state
        current = state.label if state else ""
        for label in LABELS:
            f.gauge("medtrack_state", "1 for the current fused emotion label, else 0.",
                    1.0 if label == current else 0.0, {"label": label})
        if state is None:
            return
        for label, p in zip(LABELS, state.probs, strict=False):
            f.gauge("medtrack_emotion_probability", "Fused probability of each label.", float(p), {"label": label})
        f.gauge("medtrack_distress_score", "Fused distress score (0..1).", float(state.distress))
        f.gauge("medtrack_state_confidence", "Confidence of the fused label.", float(state.confidence))
        sounds = state.sounds or {}
        for name, share in sorted((sounds.get("shares") or {}).items()):
            f.gauge("medtrack_sound_share", "Share of the last minute the microphone heard each sound.",
                    float(share), {"sound": name})
        vocal = sounds.get("vocal_distress")
        if vocal:
            f.gauge("medtrack_vocal_distress_score",
                    "Vocal-distress score: P(scream)+P(cry)+P(moan) over the last two sound windows.",
                    float(vocal.get("score", 0.0)))
            f.gauge("medtrack_vocal_distress_present",
                    "1 while sustained or repeated screaming, crying or moaning is heard.",
                    1.0 if vocal.get("present") else 0.0)

    def _alarm(self, f: _Families) -> None:
        snap = self.hub.alarm_snapshot() or {}
        f.gauge("medtrack_alarm_active", "1 while an alarm is active.", 1.0 if snap.get("active") else 0.0)
        priority = snap.get("priority") if snap.get("active") else None
        for prio in ("high", "medium", "low"):
            f.gauge("medtrack_alarm_priority", "1 for the priority of the active alarm.",
                    1.0 if prio == priority else 0.0, {"priority": prio})
        help_text = "Alarm events since start, by kind and priority."
        counts = self.counters.counts if self.counters else Counter()
        if not counts:
            f.counter("medtrack_alarm_events_total", help_text, 0, {"kind": "raised", "priority": "high"})
        for (kind, prio), n in sorted(counts.items()):
            f.counter("medtrack_alarm_events_total", help_text, n, {"kind": kind, "priority": prio})

    def _hub_metrics(self, f: _Families) -> None:
        metrics = dict(self.hub.metrics)
        fps_key = next((k for k in FPS_KEYS if k in metrics), None)
        if fps_key is not None:
            value = _number(metrics.pop(fps_key))
            if value is not None:
                f.gauge("medtrack_analysed_fps", "Frames analysed per second by the pipeline.", value)
        numbers = {k: v for k in sorted(metrics) if (v := _number(metrics[k])) is not None}
        for key, value in numbers.items():
            if m := _STAGE_RE.match(key):
                f.gauge("medtrack_stage_latency_ms", "Pipeline stage latency in milliseconds.", value,
                        {"stage": m["stage"], "stat": m["stat"] or "last"})
        for key, value in numbers.items():
            name = "medtrack_" + _NAME_BAD.sub("_", key)
            if _STAGE_RE.match(key) or name in f.by_name:
                continue
            help_text = TEMPERATURE_HELP if key == TEMPERATURE else f"Service metric {key}."
            f.gauge(name, help_text, value)

    def _sources(self, f: _Families) -> None:
        health = sorted(self.hub.health.items())
        for source, h in health:
            f.gauge("medtrack_source_up", "1 when the source or stage is ok or degraded, 0 when not.",
                    1.0 if h.status in UP_STATUSES else 0.0, {"source": source})
        for source, h in health:
            f.gauge("medtrack_source_status", "1 for the current status of each source.", 1.0,
                    {"source": source, "status": h.status})

    def _system(self, f: _Families) -> None:
        system = self.system or {}
        temp = _number(system.get("temperature_c"))
        if temp is not None and f"medtrack_{TEMPERATURE}" not in f.by_name:   # the alarm has not read it yet
            f.gauge(f"medtrack_{TEMPERATURE}", TEMPERATURE_HELP, temp)
        for key, help_text in SYSTEM_GAUGES:
            value = _number(system.get(key))
            if value is not None:
                f.gauge(f"medtrack_system_{key}", help_text, value)


def render(hub: Hub, counters: AlarmCounters | None = None, system: dict[str, Any] | None = None) -> str:
    """The Prometheus text exposition of the hub's state, alarms, sources and metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub, counters, system))   # type: ignore[arg-type]
    return generate_latest(registry).decode()
