"""The running service as its outputs see it: state and event streams, source health, metrics,
and the acknowledge entry point. The web server, MQTT, GPIO and store depend on this, not on
the pipeline's internals.

Task protocol: each task module exposes ``async def serve(hub: Hub, stop: asyncio.Event, **needs)``
that runs until ``stop`` is set (web: edge.outputs.web, MQTT: edge.outputs.mqtt, GPIO:
edge.outputs.gpio, alarm logic: edge.alarm_service, event store: edge.store, systemd watchdog:
edge.watchdog); ``needs`` are the objects the service owns and hands on by keyword (the event
store, the MQTT outbox, the readiness; see ``edge.service.TASKS``). Subscribers read
``hub.states`` / ``hub.events`` / ``hub.signals`` (the alarm's :class:`~edge.alarm.Signal`, published
by the alarm service on every change; the latest wins) through their own bounded subscription and
can never block the pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.alarm import Signal
from edge.bus import Broadcast
from edge.config import Config
from edge.events import AlarmEvent, EmotionState, utc_now_iso


@dataclass
class SourceHealth:
    """Health of one source or stage ("camera", "microphone", "face", "voice", "store", "mqtt")."""

    status: str = "starting"      # starting | ok | degraded | down | disabled
    detail: str = ""
    since: str = field(default_factory=utc_now_iso)
    restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "since": self.since, "restarts": self.restarts}


AckHandler = Callable[[str, bool], AlarmEvent | None]
PauseHandler = Callable[[int, str], list[AlarmEvent]]
ResumeHandler = Callable[[str], list[AlarmEvent]]
PressHandler = Callable[[bool], list[AlarmEvent]]
EventRecorder = Callable[[AlarmEvent], None]


class Hub:
    """Shared, loop-thread-only view of the service."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self.started = clock()
        self.states: Broadcast[EmotionState] = Broadcast()
        self.events: Broadcast[AlarmEvent] = Broadcast()
        self.signals: Broadcast[Signal] = Broadcast()   # what should sound and flash; subscribe with maxsize=1
        self.health: dict[str, SourceHealth] = {}
        self.metrics: dict[str, float] = {}   # gauges: fps, face_ms_p50, voice_ms, cpu_percent ...
        self.models: list[dict[str, Any]] = []  # TFLiteModel.info() of the loaded models
        self.alarm_snapshot: Callable[[], dict[str, Any]] = lambda: {"active": False}
        self._ack_handler: AckHandler | None = None
        self._pause_handler: PauseHandler | None = None
        self._resume_handler: ResumeHandler | None = None
        self._press_handler: PressHandler | None = None
        self._recorders: list[EventRecorder] = []

    @property
    def latest_state(self) -> EmotionState | None:
        return self.states.latest

    def set_health(self, name: str, status: str, detail: str = "") -> None:
        """Record a source's status; a change of status resets `since`."""
        cur = self.health.get(name)
        if cur is None or cur.status != status:
            restarts = cur.restarts + (1 if cur and status == "ok" and cur.status == "down" else 0) if cur else 0
            self.health[name] = SourceHealth(status=status, detail=detail, restarts=restarts)
        else:
            cur.detail = detail

    def set_ack_handler(self, handler: AckHandler) -> None:
        self._ack_handler = handler

    def acknowledge(self, by: str, long: bool = False) -> AlarmEvent | None:
        """Acknowledge the active alarm (button, web or MQTT). Returns the event, or None if there
        was nothing to acknowledge."""
        if self._ack_handler is None:
            return None
        return self._ack_handler(by, long)

    def set_pause_handlers(self, pause: PauseHandler, resume: ResumeHandler, press: PressHandler) -> None:
        self._pause_handler, self._resume_handler, self._press_handler = pause, resume, press

    def pause(self, minutes: int, by: str) -> list[AlarmEvent]:
        """Pause monitoring (care in progress); ValueError names the allowed minutes."""
        return self._pause_handler(minutes, by) if self._pause_handler is not None else []

    def resume(self, by: str) -> list[AlarmEvent]:
        """End a pause early; [] when monitoring was not paused."""
        return self._resume_handler(by) if self._resume_handler is not None else []

    def press(self, long: bool) -> list[AlarmEvent]:
        """The bedside button (see AlarmMachine.press); falls back to acknowledge."""
        if self._press_handler is not None:
            return self._press_handler(long)
        event = self.acknowledge("button", long)
        return [event] if event else []

    def add_recorder(self, recorder: EventRecorder) -> None:
        """Register a synchronous, durable recorder (the SQLite store) run before an event is
        announced to subscribers."""
        self._recorders.append(recorder)

    def emit_event(self, event: AlarmEvent) -> None:
        """Record an alarm event durably, then announce it. A recorder that fails is reported in
        health but never stops the announcement: the alarm must still sound."""
        for recorder in self._recorders:
            try:
                recorder(event)
            except Exception as exc:  # noqa: BLE001 - any store failure must not silence the alarm
                self.set_health("store", "down", f"could not record event: {exc}")
        self.events.publish(event)

    def uptime_s(self) -> float:
        return self.clock() - self.started
