"""Event store: alarm events and a compact state timeline in SQLite (WAL) in the state directory.

Durability: the connection runs with ``synchronous=FULL`` and every alarm event is committed by
:meth:`EventStore.record` (registered with ``hub.add_recorder``) *before* the hub announces it, so
an event that anyone has seen survives a power cut. Timeline rows (one per ~1 s: time, label,
distress, alarm active) are buffered and committed in batches; at most one batch is lost.

Schema migrations: ``MIGRATIONS`` is an append-only list of SQL scripts; entry ``i`` brings the
database to version ``i + 1``, recorded in the ``schema_version`` table. To change the schema
(e.g. the MQTT ``outbox`` table), append a new script to the list; never edit or reorder one that
has shipped. Each pending migration runs in its own transaction at start.

A corrupt or unwritable database raises :class:`StoreError` with a one-line message naming the
file and the fix; the service then runs without the store (the alarm still sounds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edge.events import AlarmEvent, EmotionState, utc_iso
from edge.timeline import Row, TimelineSampler

if TYPE_CHECKING:
    from edge.hub import Hub

log = logging.getLogger(__name__)

DB_NAME = "events.db"
TIMELINE_FLUSH_S = 10.0        # timeline rows are committed in batches this often
TIMELINE_KEEP_HOURS = 48.0     # the timeline is only for recent charts; events keep retention_days
PRUNE_EVERY_S = 600.0
EVENT_COLUMNS = ("id", "time", "kind", "condition", "priority", "by", "distress", "detail")

# Append-only: MIGRATIONS[i] upgrades the schema from version i to i + 1.
MIGRATIONS: list[str] = [
    # 1: alarm events and the state timeline.
    """
    CREATE TABLE events (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        id        TEXT NOT NULL UNIQUE,
        time      TEXT NOT NULL,            -- UTC ISO-8601 with milliseconds, 'Z'
        kind      TEXT NOT NULL,
        condition TEXT NOT NULL,
        priority  TEXT NOT NULL,
        by        TEXT,
        distress  REAL,
        detail    TEXT NOT NULL DEFAULT '{}'  -- JSON object
    );
    CREATE INDEX events_time ON events(time);
    CREATE TABLE states (
        ts       REAL NOT NULL,             -- UTC epoch seconds
        label    TEXT NOT NULL,
        distress REAL NOT NULL,
        alarm    INTEGER NOT NULL           -- 1 while an alarm is active
    );
    CREATE INDEX states_ts ON states(ts);
    """,
]


class StoreError(RuntimeError):
    """The event database cannot be used; str(err) is one line naming the file and the fix."""


def parse_since(text: str | None) -> str | None:
    """An ISO-8601 date or date-time (naive = UTC) -> the stored time format; ValueError if bad."""
    if text is None or text == "":
        return None
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"since: {text!r} is not an ISO-8601 date/time, e.g. 2026-11-01 or "
                         "2026-11-01T08:00:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:   # e.g. 9999-12-31T23:00-05:00 is past the year 9999 in UTC
        raise ValueError(f"since: {text!r} is out of range once converted to UTC; give a date "
                         "between 0001-01-02 and 9999-12-30") from None
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _row_to_event(row: sqlite3.Row) -> dict[str, Any]:
    d = {k: row[k] for k in EVENT_COLUMNS}
    try:
        d["detail"] = json.loads(d["detail"] or "{}")
    except ValueError:
        d["detail"] = {}
    return d


class EventStore:
    """SQLite event log. Use from the event-loop thread only (all calls are short)."""

    def __init__(self, path: str | Path, retention_days: float = 90.0, max_mb: float = 200.0,
                 wall_clock: Callable[[], float] = time.time, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.retention_days = retention_days
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.wall_clock = wall_clock
        self._pending: list[Row] = []
        self._sampler = TimelineSampler()
        self._conn = self._open()

    # ------------------------------------------------------------------ opening and migrations

    def _fail(self, exc: BaseException) -> StoreError:
        msg = str(exc)
        corrupt = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
        if corrupt or "malformed" in msg or "not a database" in msg:
            return StoreError(f"event database {self.path} is corrupt ({msg}); move it aside "
                              f"(mv {self.path} {self.path}.bad) and restart: a new one is created")
        return StoreError(f"event database {self.path} cannot be opened for writing ({msg}); make "
                          f"{self.path.parent} writable by the service user, or set [service] state_dir")

    def _open(self) -> sqlite3.Connection:
        if self.readonly:
            return self._open_readonly()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            if not self.path.exists():  # owner-only: the -wal and -shm files inherit this mode
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise self._fail(exc) from None
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            conn.row_factory = sqlite3.Row
            fresh = conn.execute("PRAGMA page_count").fetchone()[0] == 0
            if fresh:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # must precede the first table
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL journal (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            self._migrate(conn)
            # Prove we can write (a read-only file opens fine but fails at the first alarm).
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE schema_version SET opened = ?", (_iso(self.wall_clock()),))
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise self._fail(exc) from None
        return conn

    def _open_readonly(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            conn.row_factory = sqlite3.Row
            version = conn.execute("SELECT version FROM schema_version").fetchone()[0]
        except (sqlite3.Error, OSError, TypeError) as exc:
            raise StoreError(f"event database {self.path} cannot be read ({exc}); check the path "
                             "([service] state_dir) and that you may read it (sudo?)") from None
        if version != len(MIGRATIONS):
            conn.close()
            raise StoreError(f"event database {self.path} has schema version {version}, this software "
                             f"{len(MIGRATIONS)}; start the service once to migrate it")
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, opened TEXT)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0
        else:
            version = int(row[0])
        if version > len(MIGRATIONS):
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this software knows ({len(MIGRATIONS)}); "
                "upgrade medtrack")
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (target,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("event store: schema migrated to version %d", target)

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("SELECT version FROM schema_version").fetchone()[0])

    def close(self) -> None:
        if not self.readonly:
            with contextlib.suppress(Exception):
                self.flush_states()
        self._conn.close()

    # ------------------------------------------------------------------ writing

    def record(self, event: AlarmEvent) -> None:
        """Commit one alarm event durably (hub recorder: runs before the event is announced)."""
        try:
            self._conn.execute(
                "INSERT OR IGNORE INTO events (id, time, kind, condition, priority, by, distress, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (event.id, event.time, event.kind, event.condition, event.priority, event.by,
                 event.distress, json.dumps(event.detail, default=str, separators=(",", ":"))),
            )
        except sqlite3.Error as exc:
            raise StoreError(f"event database {self.path}: could not record event ({exc})") from None

    def add_state(self, state: EmotionState, alarm_active: bool, ts: float | None = None) -> bool:
        """Buffer a timeline row when :class:`edge.timeline.TimelineSampler` keeps the state.
        Returns True when a row was buffered."""
        row = self._sampler.row(state, alarm_active, self.wall_clock() if ts is None else ts)
        if row is not None:
            self._pending.append(row)
        return row is not None

    def flush_states(self) -> int:
        """Commit buffered timeline rows in one transaction; returns how many."""
        rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO states (ts, label, distress, alarm) VALUES (?, ?, ?, ?)", rows)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise StoreError(f"event database {self.path}: could not write the timeline ({exc})") from None
        return len(rows)

    # ------------------------------------------------------------------ reading

    def query_events(self, since: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Events at or after ``since`` (ISO-8601, see parse_since), newest first, at most ``limit``."""
        since_iso = parse_since(since)
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
        params: list[Any] = []
        if since_iso:
            sql += " WHERE time >= ?"
            params.append(since_iso)
        sql += " ORDER BY time DESC, seq DESC LIMIT ?"
        params.append(int(limit))
        return [_row_to_event(r) for r in self._conn.execute(sql, params)]

    def iter_events(self, since: str | None = None) -> Iterable[dict[str, Any]]:
        """All events at or after ``since``, oldest first."""
        since_iso = parse_since(since) or ""
        cur = self._conn.execute(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE time >= ? ORDER BY time, seq", (since_iso,))
        for row in cur:
            yield _row_to_event(row)

    def timeline(self, seconds: float, now: float | None = None) -> list[list[Any]]:
        """Timeline rows of the last ``seconds``: [epoch_ms, label, distress, alarm], oldest first."""
        now = self.wall_clock() if now is None else now
        start = now - seconds
        rows = [[int(r[0] * 1000), r[1], r[2], r[3]] for r in self._conn.execute(
            "SELECT ts, label, distress, alarm FROM states WHERE ts >= ? ORDER BY ts", (start,))]
        rows.extend([int(ts * 1000), label, distress, alarm]
                    for ts, label, distress, alarm in self._pending if ts >= start)
        return rows

    def export(self, since: str | None, fmt: str, out: TextIO) -> int:
        """Write events at or after ``since`` as ``csv`` or ``json`` (an array); returns the count."""
        if fmt not in ("csv", "json"):
            raise ValueError(f"format: {fmt!r} is not supported; use csv or json")
        n = 0
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(EVENT_COLUMNS)
            for ev in self.iter_events(since):
                ev["detail"] = json.dumps(ev["detail"], separators=(",", ":"))
                writer.writerow(["" if ev[k] is None else ev[k] for k in EVENT_COLUMNS])
                n += 1
        else:
            out.write("[")
            for ev in self.iter_events(since):
                out.write(("\n" if n == 0 else ",\n") + json.dumps(ev, ensure_ascii=False))
                n += 1
            out.write("\n]\n" if n else "]\n")
        return n

    # ------------------------------------------------------------------ retention

    def size_bytes(self) -> int:
        """Bytes in use by the database (free pages excluded)."""
        c = self._conn
        pages = c.execute("PRAGMA page_count").fetchone()[0] - c.execute("PRAGMA freelist_count").fetchone()[0]
        return int(pages * c.execute("PRAGMA page_size").fetchone()[0])

    def prune(self, now: float | None = None) -> dict[str, int]:
        """Drop events older than retention_days and timeline rows older than TIMELINE_KEEP_HOURS,
        then the oldest rows (timeline first) while the database is over max_mb."""
        now = self.wall_clock() if now is None else now
        c = self._conn
        removed = {"events": 0, "states": 0}
        try:
            self.flush_states()
            cutoff = _iso(now - self.retention_days * 86400)
            removed["events"] += c.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount
            removed["states"] += c.execute("DELETE FROM states WHERE ts < ?",
                                           (now - TIMELINE_KEEP_HOURS * 3600,)).rowcount
            while self.size_bytes() > self.max_bytes:
                n = c.execute("DELETE FROM states WHERE rowid IN "
                              "(SELECT rowid FROM states ORDER BY ts LIMIT 2000)").rowcount
                removed["states"] += n
                if n == 0:
                    n = c.execute("DELETE FROM events WHERE seq IN "
                                  "(SELECT seq FROM events ORDER BY time, seq LIMIT 100)").rowcount
                    removed["events"] += n
                    if n == 0:
                        break
            c.execute("PRAGMA incremental_vacuum")
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StoreError(f"event database {self.path}: pruning failed ({exc})") from None
        if removed["events"] or removed["states"]:
            log.info("event store: pruned %d events, %d timeline rows", removed["events"], removed["states"])
        return removed

    def open_alarms(self) -> list[dict[str, Any]]:
        """Alarms still open at the end of the log, one per condition whose last ``raised`` or
        ``technical`` event has no ``cleared`` / ``technical_cleared`` after it, replayed to their
        last known state: ``condition``, ``priority`` (after escalations), ``since`` and
        ``raised_id`` (the raise), ``acknowledged``, ``acknowledged_by``, ``silenced_until`` (UTC
        ISO of the end of the last acknowledge's pause, or None) and ``restored`` (how many
        restarts it has already survived)."""
        rows = self._conn.execute(
            "SELECT condition, MAX(CASE WHEN kind IN ('raised', 'technical') THEN seq END) AS opened, "
            "MAX(CASE WHEN kind IN ('cleared', 'technical_cleared') THEN seq END) AS closed "
            "FROM events GROUP BY condition").fetchall()
        out = []
        for row in rows:
            if row["opened"] is None or (row["closed"] is not None and row["closed"] > row["opened"]):
                continue
            events = [_row_to_event(r) for r in self._conn.execute(
                f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE condition = ? AND seq >= ? ORDER BY seq",
                (row["condition"], row["opened"]))]
            first = events[0]
            alarm: dict[str, Any] = {"condition": first["condition"], "priority": first["priority"],
                                     "since": first["time"], "raised_id": first["id"], "acknowledged": False,
                                     "acknowledged_by": None, "silenced_until": None, "restored": 0}
            for ev in events[1:]:
                kind, detail = ev["kind"], ev["detail"]
                if kind in ("escalated", "restored") and ev["priority"] in ("low", "medium", "high"):
                    alarm["priority"] = ev["priority"]
                if kind in ("acknowledged", "silenced"):
                    alarm["acknowledged"], alarm["acknowledged_by"] = True, ev["by"]
                    with contextlib.suppress(TypeError, ValueError, OverflowError):
                        alarm["silenced_until"] = _iso(_epoch(ev["time"]) + float(detail.get("silence_s", 0)))
                elif kind == "resounded":
                    alarm["acknowledged"], alarm["silenced_until"] = False, None
                elif kind == "restored":
                    alarm["restored"] += 1
                    alarm["acknowledged"] = bool(detail.get("acknowledged"))
                    alarm["silenced_until"] = detail.get("silenced_until") if alarm["acknowledged"] else None
            out.append(alarm)
        return out

    def count_events(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


_iso = utc_iso


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (no ';' inside literals in our migrations)."""
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# ---------------------------------------------------------------------- service wiring

def store_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / DB_NAME


def attach(hub: Hub) -> EventStore | None:
    """Open the event store in [service] state_dir and register it as the hub's durable recorder.
    On StoreError: log the one-line error, mark health "store" down and return None; the service
    goes on without the store. The caller owns the store: the service opens it once, before the
    pipeline starts, and hands it to the tasks that use it (``serve`` here, the alarm, the web)."""
    cfg = hub.config
    try:
        store = EventStore(store_path(cfg.service.state_dir), cfg.store.retention_days, cfg.store.max_mb)
    except StoreError as exc:
        log.error("%s", exc)
        hub.set_health("store", "down", str(exc))
        return None
    hub.add_recorder(store.record)
    hub.set_health("store", "ok", str(store.path))
    return store


async def serve(hub: Hub, stop: asyncio.Event, *, store: EventStore | None) -> None:
    """Task entry point: record the state timeline in ``store`` (from :func:`attach`), flush it in
    batches, prune in the background; without a store it only waits for ``stop``."""
    if store is None:
        await stop.wait()
        return
    sub = hub.states.subscribe(maxsize=16, name="store")
    loop = asyncio.get_running_loop()
    next_flush = loop.time() + TIMELINE_FLUSH_S
    next_prune = loop.time() + 5.0
    stop_task = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            get_task = asyncio.ensure_future(sub.get())
            timeout = max(0.0, min(next_flush, next_prune) - loop.time())
            done, _ = await asyncio.wait({get_task, stop_task}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if get_task in done:
                try:
                    active = bool(hub.alarm_snapshot().get("active"))
                except Exception:  # noqa: BLE001 - a broken snapshot must not stop the timeline
                    active = False
                store.add_state(get_task.result(), active)
            else:
                get_task.cancel()
            try:
                if loop.time() >= next_flush:
                    next_flush = loop.time() + TIMELINE_FLUSH_S
                    store.flush_states()
                if loop.time() >= next_prune:
                    next_prune = loop.time() + PRUNE_EVERY_S
                    store.prune()
                if hub.health.get("store") and hub.health["store"].status != "ok":
                    hub.set_health("store", "ok", str(store.path))
            except StoreError as exc:
                log.error("%s", exc)
                hub.set_health("store", "degraded", str(exc))
    finally:
        stop_task.cancel()
        sub.close()
        with contextlib.suppress(StoreError):
            store.flush_states()


# ---------------------------------------------------------------------- CLI

def session_summary(state_dir: str | Path, since: str) -> str:
    """What happened since ``since`` (UTC ISO), for the end of `medtrack demo` and `medtrack run`:
    alarms raised, escalated, acknowledged and by whom, pauses, and where the events are."""
    path = store_path(state_dir)
    export = f"medtrack events export --state-dir {shlex.quote(str(state_dir))}"
    try:
        store = EventStore(path, readonly=True)
    except StoreError as exc:
        return f"No event history: {exc}"
    try:
        events = list(store.iter_events(since))
    finally:
        store.close()
    def count(kind: str) -> int:
        return sum(1 for e in events if e["kind"] == kind)
    raised = [e for e in events if e["kind"] == "raised"]
    acks = [e for e in events if e["kind"] in ("acknowledged", "silenced")]
    who = sorted({e["by"] for e in acks if e["by"]})
    lines = [f"Alarms raised: {len(raised)}"
             + (f" ({', '.join(sorted({e['condition'] for e in raised}))})" if raised else "")
             + f"; escalated: {count('escalated')}; acknowledged: {len(acks)}"
             + (f" by {', '.join(who)}" if who else "")
             + (f"; pauses: {count('paused')}" if count("paused") else "") + ".",
             f"Events: {len(events)} in {path}",
             f"Export them: {export} --format csv"]
    return "\n".join(lines)


def cli_events(args: argparse.Namespace) -> int:
    """`medtrack events export --since ... --format csv|json [--output FILE] [--state-dir DIR]`."""
    from edge import config as config_mod

    cfg = config_mod.load(getattr(args, "config", None))
    state_dir = getattr(args, "state_dir", None) or cfg.service.state_dir
    path = store_path(state_dir)
    if not path.exists():
        from edge.demo import demo_state_dir
        from edge.service import user_state_dir

        hint = ""
        for whose, other in (("the demo's", demo_state_dir()), ("your recordings'", user_state_dir())):
            if store_path(other).exists() and Path(state_dir) != other:
                hint += (f"; {whose} events are in {other}: "
                         f"medtrack events export --state-dir {shlex.quote(str(other))}")
        print(f"medtrack: no event database at {path}; is [service] state_dir right (or --state-dir)?{hint}",
              file=sys.stderr)
        return 1
    try:
        since = parse_since(getattr(args, "since", None))
        store = EventStore(path, readonly=True)
    except (ValueError, StoreError) as exc:
        print(f"medtrack: {exc}", file=sys.stderr)
        return 2
    try:
        output = getattr(args, "output", None)
        if output:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                n = store.export(since, args.format, fh)
            print(f"{n} events written to {output}", file=sys.stderr)
        else:
            buf = io.StringIO()
            store.export(since, args.format, buf)
            sys.stdout.write(buf.getvalue())
    except OSError as exc:
        print(f"medtrack: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
