"""Alarm output: runs the pure :class:`~edge.alarm.AlarmMachine` inside the service.

Feeds it every fused state, ticks it on a timer, turns source health (camera, microphone, models,
store), CPU temperature and pipeline stalls into technical alarms, serves acknowledgements and the
status snapshot, hands every event to ``hub.emit_event`` (recorded, then announced) and publishes
the machine's :class:`~edge.alarm.Signal` on ``hub.signals`` whenever it changes (what the buzzer
and LED follow).

At start, alarms the event store still holds open are taken back (:meth:`AlarmService.restore`):
distress-type ones sound again, latched; technical and no-patient ones are closed in the log
(``reason: service_restarted``), since the live checks raise them again if they still hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge.alarm import TECHNICAL_CONDITIONS, AlarmMachine
from edge.events import AlarmEvent, EmotionState, utc_iso
from edge.host import THERMAL_GLOB, read_cpu_temperature
from edge.hub import Hub

if TYPE_CHECKING:
    from edge.store import EventStore

log = logging.getLogger(__name__)

OVERHEAT_HYSTERESIS_C = 5.0
# technical condition -> hub.health sources whose "down" status raises it
HEALTH_CONDITIONS: dict[str, tuple[str, ...]] = {
    "camera_lost": ("camera",),
    "mic_lost": ("microphone",),
    "model_failure": ("face", "voice"),
    "store_failure": ("store",),
}


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None


class AlarmService:
    """Glue between the hub and the machine; every method is synchronous and loop-thread only."""

    def __init__(self, hub: Hub, clock: Callable[[], float] | None = None,
                 thermal_glob: str | None = THERMAL_GLOB, temp_every_s: float = 5.0,
                 wall_clock: Callable[[], float] = time.time):
        self.hub = hub
        self.clock = clock or hub.clock
        self.wall_clock = wall_clock
        self.config = hub.config.alarm
        self.machine = AlarmMachine(self.config, self.clock, wall_clock)
        self.thermal_glob = thermal_glob
        self.temp_every_s = temp_every_s
        self._next_temp = self.clock()

    def install(self) -> None:
        """Register the acknowledge handler and the snapshot on the hub; publish the signal."""
        self.hub.set_ack_handler(self.acknowledge)
        self.hub.set_pause_handlers(self.pause, self.resume, self.press)
        self.hub.alarm_snapshot = self.snapshot
        self.publish_signal()

    def restore(self, store: EventStore) -> int:
        """Take back the alarms the store holds open (see the module docstring); returns how many
        sound again. A store that cannot be read is logged; the service starts anyway."""
        try:
            open_alarms = store.open_alarms()
        except Exception as exc:  # noqa: BLE001 - a broken store must not stop alarm supervision
            log.error("alarm: cannot read open alarms from the event store (%s); none restored", exc)
            return 0
        now, wall = self.clock(), self.wall_clock()
        restored = 0
        for alarm in open_alarms:
            condition, priority = alarm["condition"], alarm["priority"]
            raised = _epoch(alarm["since"])
            until = _epoch(alarm["silenced_until"]) if alarm["acknowledged"] else None
            try:
                events = self.machine.restore(
                    condition, priority, since_time=alarm["since"],
                    age_s=wall - raised if raised is not None else 0.0,
                    acknowledged_by=alarm["acknowledged_by"],
                    silenced_for_s=max(0.0, until - wall) if until is not None else 0.0,
                    detail={"raised_id": alarm["raised_id"]}, now=now)
            except ValueError:   # technical, no_patient: the live checks decide again
                kind = "technical_cleared" if condition in TECHNICAL_CONDITIONS else "cleared"
                events = [AlarmEvent(kind=kind, condition=condition, priority=priority, time=utc_iso(wall),
                                     detail={"reason": "service_restarted", "raised_id": alarm["raised_id"]})]
            else:
                restored += bool(events)
            self.emit(events)
        return restored

    def emit(self, events: Iterable[AlarmEvent]) -> None:
        for event in events:
            level = logging.WARNING if event.kind in ("raised", "escalated", "technical", "suppressed", "restored",
                                                      "paused") else logging.INFO
            log.log(level, "alarm %s: %s (%s)%s", event.kind, event.condition, event.priority,
                    f" by {event.by}" if event.by else "")
            self.hub.emit_event(event)
        self.publish_signal()

    def publish_signal(self) -> None:
        """Publish the machine's signal on ``hub.signals`` when it differs from the last one."""
        sig = self.machine.signal(self.clock())
        if sig != self.hub.signals.latest:
            self.hub.signals.publish(sig)

    def on_state(self, state: EmotionState) -> None:
        self.emit(self.machine.update(state, self.clock()))

    def acknowledge(self, by: str, long: bool = False) -> AlarmEvent | None:
        events = self.machine.acknowledge(by, long, self.clock())
        self.emit(events)
        return events[0] if events else None

    def pause(self, minutes: int, by: str) -> list[AlarmEvent]:
        events = self.machine.pause(minutes, by, self.clock())
        self.emit(events)
        return events

    def resume(self, by: str) -> list[AlarmEvent]:
        events = self.machine.resume(by, self.clock())
        self.emit(events)
        return events

    def press(self, long: bool) -> list[AlarmEvent]:
        events = self.machine.press(long, "button", self.clock())
        self.emit(events)
        return events

    def snapshot(self) -> dict[str, Any]:
        return self.machine.snapshot(self.clock())

    def check_health(self) -> None:
        now = self.clock()
        for condition, sources in HEALTH_CONDITIONS.items():
            down = {s: h.detail for s in sources if (h := self.hub.health.get(s)) is not None and h.status == "down"}
            detail = "; ".join(f"{s}: {d}" if d else s for s, d in down.items())
            self.emit(self.machine.set_technical(condition, bool(down), detail, now))

    def check_temperature(self) -> None:
        now = self.clock()
        if self.thermal_glob is None or now < self._next_temp:
            return
        self._next_temp = now + self.temp_every_s
        temp = read_cpu_temperature(self.thermal_glob)
        if temp is None:
            return
        self.hub.metrics["cpu_temp_c"] = temp
        limit = self.config.temperature_limit_c
        hot = "overheat" in {a.condition for a in self.machine.active}
        active = temp >= limit or (hot and temp > limit - OVERHEAT_HYSTERESIS_C)
        self.emit(self.machine.set_technical("overheat", active, f"CPU {temp:.1f} C (limit {limit:.0f} C)", now))

    def tick(self) -> None:
        self.check_health()
        self.check_temperature()
        sources = [self.hub.health.get(s) for s in ("camera", "microphone")]
        expect = not all(h is not None and h.status == "disabled" for h in sources)
        self.emit(self.machine.tick(self.clock(), expect_states=expect))


async def serve(hub: Hub, stop: asyncio.Event, *, store: EventStore | None = None,
                clock: Callable[[], float] | None = None, tick_s: float = 0.25,
                thermal_glob: str | None = THERMAL_GLOB) -> None:
    """Task entry point: run the alarm logic until ``stop`` is set, first taking back the alarms
    ``store`` (the service's event store, if any) still holds open."""
    service = AlarmService(hub, clock=clock, thermal_glob=thermal_glob)
    service.install()
    if store is not None:
        service.restore(store)
    sub = hub.states.subscribe(maxsize=256, name="alarm")

    async def consume() -> None:
        async for state in sub:
            try:
                service.on_state(state)
            except Exception:   # noqa: BLE001 - a bad state must not end alarm supervision
                log.exception("alarm: could not process a state")

    consumer = asyncio.create_task(consume(), name="alarm-states")
    try:
        while not stop.is_set():
            try:
                service.tick()
            except Exception:   # noqa: BLE001
                log.exception("alarm: tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_s)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        sub.close()
