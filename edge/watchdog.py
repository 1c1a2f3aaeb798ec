"""systemd readiness and a watchdog that pings only while the pipeline really produces states.

Wiring (edge.service):

    from edge import watchdog
    readiness = watchdog.Readiness(hub.clock)                       # the service owns it
    tasks.append(asyncio.create_task(watchdog.serve(hub, stop, readiness=readiness)))
    ...  # load models, start camera + microphone sources
    readiness.mark()                                                # sends READY=1 (once)

``serve`` pings WATCHDOG=1 every WatchdogSec/2 (from $WATCHDOG_USEC) while, on ``hub.clock``, a
new state reached ``hub.states`` within ``[alarm] stall_s`` (counted from ``Readiness.mark`` until
the first state). Before that it pings unconditionally: ``TimeoutStartSec=`` bounds startup.
When states stop, pings stop and systemd kills and restarts the service after WatchdogSec
(worst case: stall_s + WatchdogSec). The pipeline must therefore publish states at a steady rate
even with nobody in view (a stale/neutral state is fine), or an empty room looks like a stall.
Outside systemd (no $NOTIFY_SOCKET) everything here is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from edge import sdnotify
from edge.hub import Hub

log = logging.getLogger(__name__)

STATUS_EVERY_S = 60.0

class Readiness:
    """READY=1, sent once: the service marks it when capture and models are up, and the watchdog
    counts its stall window from then (on ``clock``)."""

    def __init__(self, clock: Callable[[], float], notifier: Callable[[str], bool] | None = None):
        self.clock = clock
        self.send = notifier or sdnotify.notify
        self.at: float | None = None

    @property
    def ready(self) -> bool:
        return self.at is not None

    def mark(self, status: str | None = None) -> bool:
        """Send READY=1 (only the first time) and start the stall window. Returns True when
        READY=1 was sent now."""
        if self.at is not None:
            return False
        self.at = self.clock()
        return self.send("READY=1\nSTATUS=" + (status or "running: waiting for the first state"))


class PipelineWatchdog:
    """Decides, on each ``tick``, whether the pipeline is alive, and pings systemd if it is."""

    def __init__(self, hub: Hub, readiness: Readiness, stall_s: float | None = None,
                 clock: Callable[[], float] | None = None, notifier: Callable[[str], bool] | None = None):
        self.hub = hub
        self.readiness = readiness
        self.stall_s = hub.config.alarm.stall_s if stall_s is None else stall_s
        self.clock = clock or hub.clock
        self.send = notifier or sdnotify.notify
        self.states_seen = 0
        self.last_state_at: float | None = None
        self.stalled = False
        self._sub = hub.states.subscribe(maxsize=1, name="watchdog")
        self._dropped = 0
        self._status = ""
        self._status_at = float("-inf")

    def close(self) -> None:
        self._sub.close()

    def _drain(self) -> int:
        n = 0
        while self._sub.pending():
            self._sub.get_nowait()
            n += 1
        n += self._sub.dropped - self._dropped
        self._dropped = self._sub.dropped
        return n

    def _set_status(self, text: str, now: float, force: bool = False) -> None:
        """STATUS= on every stalled/running change, else at most every STATUS_EVERY_S."""
        if text != self._status and (force or now - self._status_at >= STATUS_EVERY_S):
            self._status, self._status_at = text, now
            self.send("STATUS=" + text)

    def tick(self) -> bool:
        """Take note of new states; send WATCHDOG=1 if alive. Returns True when a ping was sent."""
        now = self.clock()
        new = self._drain()
        if new:
            self.states_seen += new
            self.last_state_at = now
        ready_at = self.readiness.at
        if ready_at is None:
            return self.send("WATCHDOG=1")  # starting up: TimeoutStartSec= guards a hung start
        last = ready_at if self.last_state_at is None else max(ready_at, self.last_state_at)
        age = now - last
        if age > self.stall_s:
            was_stalled = self.stalled
            if not self.stalled:
                log.error("pipeline stalled: no new state for %.1f s (limit %.1f s); "
                          "withholding the watchdog ping so systemd restarts the service", age, self.stall_s)
                self.stalled = True
            self._set_status(f"stalled: no new state for {age:.0f} s", now, force=not was_stalled)
            return False
        recovered = self.stalled
        if recovered:
            log.warning("pipeline producing states again")
            self.stalled = False
        if self.states_seen:
            self._set_status(f"running: {self.states_seen} states", now, force=recovered or not self._status)
        return self.send("WATCHDOG=1")


async def serve(hub: Hub, stop: asyncio.Event, *, readiness: Readiness | None = None,
                period_s: float | None = None, notifier: Callable[[str], bool] | None = None) -> None:
    """Task entry point: ping the systemd watchdog while states flow; STOPPING=1 when ``stop`` is set.

    ``readiness`` is the one the service marks (None: never marked, pings unconditionally).
    ``period_s`` defaults to half of $WATCHDOG_USEC; without a watchdog (or outside systemd) it only
    waits for ``stop``.
    """
    send = notifier or sdnotify.notify
    readiness = readiness or Readiness(hub.clock, send)
    interval = sdnotify.watchdog_interval()
    if period_s is None and interval is not None:
        period_s = interval / 2
    if period_s is None or (notifier is None and not sdnotify.enabled()):
        await stop.wait()
        if readiness.ready:
            send("STOPPING=1")
        return
    wd = PipelineWatchdog(hub, readiness, notifier=send)
    try:
        while not stop.is_set():
            wd.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period_s)
    finally:
        wd.close()
        send("STOPPING=1")
