"""Durable store-and-forward queue of alarm events for the MQTT output.

An event is committed to ``<state_dir>/outbox.sqlite`` (WAL, synchronous=FULL) when it is emitted,
before any subscriber hears of it, and stays there until the broker has acknowledged it (PUBACK).
The publisher reads events in emission order and marks each one delivered after its
acknowledgement, so a broker outage or a restart of the service delays events but never loses or
reorders them; an event may be sent twice (crash between PUBACK and commit), so consumers dedupe
by event id.

Size policy: undelivered events are never dropped below ``max_events``. At the cap the oldest
undelivered event is evicted with an ERROR log naming it (the box's own event store still has it),
and the eviction is counted in ``dropped``. A warning is logged when the queue passes 80% of the cap.

The hub's ``mqtt_outbox_pending`` metric follows every enqueue and delivery, so it shows the
backlog during a broker outage too, not only while a session runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.events import AlarmEvent, utc_now_iso
from edge.hub import Hub

log = logging.getLogger(__name__)

FILENAME = "outbox.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    enqueued TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxItem:
    """One undelivered event: its position in the queue and its JSON-ready payload."""

    seq: int
    event_id: str
    payload: dict[str, Any]


class Outbox:
    """SQLite-backed FIFO of undelivered alarm events; loop-thread only."""

    def __init__(self, path: str | Path, max_events: int = 100_000):
        self.path = Path(path)
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._new = asyncio.Event()
        self._warned = False
        self.on_change: Callable[[int], None] | None = None   # called with pending() after each change
        if self.pending() > 0:
            self._new.set()

    @classmethod
    def in_dir(cls, state_dir: str | Path, max_events: int = 100_000) -> Outbox:
        return cls(Path(state_dir) / FILENAME, max_events)

    # ------------------------------------------------------------------ producer side (sync)

    def enqueue(self, event: AlarmEvent) -> None:
        """Commit an event durably (idempotent on its id). Called by the hub before announcing."""
        payload = json.dumps(event.to_dict(), separators=(",", ":"), default=str)
        with self._db:  # one transaction: insert + cap enforcement
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO outbox (event_id, payload, enqueued) VALUES (?, ?, ?)",
                (event.id, payload, utc_now_iso()),
            )
            self._enforce_cap()
        self._new.set()
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.pending())

    def _enforce_cap(self) -> None:
        n = self.pending()
        if n > self.max_events:
            excess = n - self.max_events
            rows = self._db.execute("SELECT seq, event_id FROM outbox ORDER BY seq LIMIT ?", (excess,)).fetchall()
            for seq, event_id in rows:
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                log.error("MQTT outbox full (%d undelivered events, cap mqtt.outbox_max_events = %d): "
                          "dropped the oldest undelivered event %s; it remains in the event store",
                          n, self.max_events, event_id)
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value", (len(rows),))
        elif n >= 0.8 * self.max_events and not self._warned:
            self._warned = True
            log.warning("MQTT outbox holds %d undelivered events (80%% of the cap %d): is the broker reachable?",
                        n, self.max_events)
        elif n < 0.5 * self.max_events:
            self._warned = False

    # ------------------------------------------------------------------ consumer side

    def peek(self, limit: int = 100) -> list[OutboxItem]:
        """The oldest undelivered events, in emission order."""
        rows = self._db.execute("SELECT seq, event_id, payload FROM outbox ORDER BY seq LIMIT ?", (limit,))
        return [OutboxItem(seq, eid, json.loads(p)) for seq, eid, p in rows]

    def mark_delivered(self, seq: int) -> None:
        """The broker acknowledged this event: forget it."""
        with self._db:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        self._changed()

    async def wait(self) -> None:
        """Wait until there may be something to deliver."""
        if self.pending() > 0:
            return
        self._new.clear()
        await self._new.wait()

    def pending(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @property
    def dropped(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._db.close()


def attach(hub: Hub) -> Outbox:
    """Open the outbox in [service] state_dir and register it as a recorder of the hub's events.

    The service does this once, before the pipeline starts, and hands the outbox to
    ``edge.outputs.mqtt.serve``: the recorder stays registered for the hub's lifetime, so events
    emitted while the MQTT output restarts are still queued. The hub's ``mqtt_outbox_pending``
    metric follows it from here on.
    """
    outbox = Outbox.in_dir(hub.config.service.state_dir, hub.config.mqtt.outbox_max_events)

    def publish_pending(n: int) -> None:
        hub.metrics["mqtt_outbox_pending"] = float(n)

    outbox.on_change = publish_pending
    publish_pending(outbox.pending())   # a backlog left by the last run shows at once
    hub.add_recorder(outbox.enqueue)
    return outbox
