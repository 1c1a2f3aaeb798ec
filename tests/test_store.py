"""Event store: durability order, migrations, timeline, retention, export, corrupt/unwritable files."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from script_loader import load_script

from edge import config as config_mod
from edge import store as store_mod
from edge.events import AlarmEvent
from edge.hub import Hub
from edge.store import MIGRATIONS, EventStore, StoreError, parse_since

bench_web = load_script("bench_web")
fake_state = bench_web.fake_state


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def ev(kind: str = "raised", time: str = "2026-11-01T08:00:00.000Z", **kw) -> AlarmEvent:
    return AlarmEvent(kind=kind, condition=kw.pop("condition", "distress"), priority=kw.pop("priority", "high"),
                      time=time, **kw)


def test_schema_wal_and_version(tmp_path: Path) -> None:
    s = EventStore(tmp_path / "events.db")
    assert s.schema_version == len(MIGRATIONS)
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    for suffix in ("", "-wal", "-shm"):  # patient data: owner only
        assert (tmp_path / f"events.db{suffix}").stat().st_mode & 0o077 == 0
    s.close()
    # reopening does not re-run migrations
    assert EventStore(tmp_path / "events.db").schema_version == len(MIGRATIONS)


def test_appending_a_migration_upgrades_existing_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    EventStore(tmp_path / "events.db").close()
    extra = "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL);"
    monkeypatch.setattr(store_mod, "MIGRATIONS", [*MIGRATIONS, extra])
    s = EventStore(tmp_path / "events.db")
    assert s.schema_version == len(MIGRATIONS) + 1
    s._conn.execute("INSERT INTO outbox (event_id) VALUES ('x')")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    EventStore(tmp_path / "events.db").close()
    with sqlite3.connect(tmp_path / "events.db") as c:
        c.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="upgrade medtrack"):
        EventStore(tmp_path / "events.db")


def test_record_commits_before_announce(tmp_path: Path) -> None:
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)}})
    hub = Hub(cfg)
    store = store_mod.attach(hub)
    assert store is not None and hub.health["store"].status == "ok"
    sub = hub.events.subscribe()
    seen_in_db: list[int] = []

    other = sqlite3.connect(tmp_path / "events.db")  # an independent reader sees only committed rows
    orig_put = sub._put

    def put(item: AlarmEvent) -> None:
        seen_in_db.append(other.execute("SELECT COUNT(*) FROM events WHERE id = ?", (item.id,)).fetchone()[0])
        orig_put(item)

    sub._put = put  # type: ignore[method-assign]
    hub.emit_event(ev())
    assert seen_in_db == [1]
    assert hub.health["store"].status == "ok"


def test_query_since_limit_and_order(tmp_path: Path) -> None:
    s = EventStore(tmp_path / "e.db")
    for i in range(5):
        s.record(ev(time=f"2026-11-0{i + 1}T08:00:00.000Z", detail={"i": i}))
    s.record(ev())  # duplicate ids are ignored, distinct event objects are not
    got = s.query_events(limit=3)
    assert [e["detail"].get("i") for e in got] == [4, 3, 2]
    got = s.query_events(since="2026-11-03", limit=50)
    assert [e["detail"].get("i") for e in got] == [4, 3, 2]
    assert s.query_events(since="2026-11-04T09:00:00+01:00")[-1]["detail"] == {"i": 3}
    with pytest.raises(ValueError, match="ISO-8601"):
        s.query_events(since="yesterday")


def test_parse_since() -> None:
    assert parse_since("2026-11-01") == "2026-11-01T00:00:00.000Z"
    assert parse_since("2026-11-01T08:00:00Z") == "2026-11-01T08:00:00.000Z"
    assert parse_since(None) is None


def test_timeline_sampling_flush_and_window(tmp_path: Path) -> None:
    clock = Clock()
    s = EventStore(tmp_path / "e.db", wall_clock=clock)
    for _ in range(50):  # 10 Hz for 5 s -> 1 row per second
        clock.t += 0.1
        s.add_state(fake_state("fear", 0.6), alarm_active=False)
    assert len(s.timeline(60)) == 5
    assert s.add_state(fake_state("fear", 0.9), alarm_active=True)  # alarm change is always kept
    assert s.flush_states() == 6
    rows = s.timeline(60)
    assert len(rows) == 6 and rows[-1][1:] == ["fear", 0.9, 1]
    clock.t += 3600
    assert s.timeline(1800) == []


def test_retention_by_age_and_size(tmp_path: Path) -> None:
    clock = Clock()
    s = EventStore(tmp_path / "e.db", retention_days=30, max_mb=1, wall_clock=clock)
    old = store_mod._iso(clock.t - 40 * 86400)
    new = store_mod._iso(clock.t - 1 * 86400)
    s.record(ev(time=old))
    s.record(ev(time=new))
    removed = s.prune()
    assert removed["events"] == 1 and s.count_events() == 1
    # size cap: fill with timeline rows and big events, prune keeps it under 1 MB
    for i in range(30_000):
        s._pending.append((clock.t - i, "neutral", 0.1, 0))
    s.flush_states()
    for _ in range(150):
        s.record(ev(time=new, detail={"pad": "x" * 4000}))
    assert s.size_bytes() > 1024 * 1024
    s.prune()
    assert s.size_bytes() <= 1024 * 1024
    assert s.count_events() > 0  # the timeline went first


def test_export_csv_and_json(tmp_path: Path) -> None:
    s = EventStore(tmp_path / "e.db")
    s.record(ev(time="2026-11-01T08:00:00.000Z", by="web:ana", detail={"a": 1}))
    s.record(ev(kind="cleared", time="2026-11-02T08:00:00.000Z"))
    out = io.StringIO()
    assert s.export("2026-11-02", "csv", out) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["kind"] == "cleared" and rows[0]["by"] == ""
    out = io.StringIO()
    assert s.export(None, "json", out) == 2
    data = json.loads(out.getvalue())
    assert [d["kind"] for d in data] == ["raised", "cleared"] and data[0]["detail"] == {"a": 1}
    out = io.StringIO()
    s.export("2030-01-01", "json", out)
    assert json.loads(out.getvalue()) == []


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[service]\nstate_dir = "{tmp_path}"\n')
    args = argparse.Namespace(config=str(cfg_file), since="2026-01-01", format="json", output=None)
    assert store_mod.cli_events(args) == 1  # no database yet
    assert "no event database" in capsys.readouterr().err
    s = EventStore(tmp_path / "events.db")
    s.record(ev())
    assert store_mod.cli_events(args) == 0
    assert json.loads(capsys.readouterr().out)[0]["kind"] == "raised"
    out_file = tmp_path / "x.csv"
    args = argparse.Namespace(config=str(cfg_file), since=None, format="csv", output=str(out_file))
    assert store_mod.cli_events(args) == 0
    assert out_file.read_text().startswith("id,time,kind")
    args.since = "not a date"
    assert store_mod.cli_events(args) == 2
    assert "ISO-8601" in capsys.readouterr().err


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as err:
        EventStore(path)
    msg = str(err.value)
    assert str(path) in msg and "corrupt" in msg and "mv " in msg and "\n" not in msg


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the state directory should be
    with pytest.raises(StoreError, match="cannot be opened for writing.*writable"):
        EventStore(blocker / "events.db")


def test_service_runs_without_store_and_alarm_still_announced(tmp_path: Path) -> None:
    (tmp_path / "events.db").write_bytes(b"garbage" * 500)
    hub = Hub(config_mod.from_dict({"service": {"state_dir": str(tmp_path)}}))
    assert store_mod.attach(hub) is None
    assert hub.health["store"].status == "down" and "corrupt" in hub.health["store"].detail
    sub = hub.events.subscribe()
    hub.emit_event(ev())
    assert sub.get_nowait().kind == "raised"


def test_recorder_failure_is_reported_and_event_still_announced(tmp_path: Path) -> None:
    hub = Hub(config_mod.from_dict({"service": {"state_dir": str(tmp_path)}}))
    store = store_mod.attach(hub)
    assert store is not None
    store._conn.close()  # the disk went away
    sub = hub.events.subscribe()
    hub.emit_event(ev())
    assert sub.get_nowait().kind == "raised"
    assert hub.health["store"].status == "down"


async def test_serve_records_timeline_and_stops(tmp_path: Path) -> None:
    hub = Hub(config_mod.from_dict({"service": {"state_dir": str(tmp_path)}}))
    stop = asyncio.Event()
    store = store_mod.attach(hub)
    assert store is not None
    task = asyncio.create_task(store_mod.serve(hub, stop, store=store))
    while hub.states.subscribers == 0:
        await asyncio.sleep(0)
    hub.states.publish(fake_state("sad", 0.5))
    while not store._pending:
        await asyncio.sleep(0)
    stop.set()
    await task
    rows = EventStore(tmp_path / "events.db").timeline(600)
    assert [r[1] for r in rows] == ["sad"]


def test_readonly_open_requires_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with pytest.raises(StoreError, match="cannot be read"):
        EventStore(path, readonly=True)
    EventStore(path).record(ev())
    assert EventStore(path, readonly=True).count_events() == 1


@pytest.mark.parametrize("since", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"])
def test_since_out_of_range_after_the_offset_is_a_value_error(tmp_path: Path, since: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="out of range once converted to UTC"):
        parse_since(since)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(f'[service]\nstate_dir = "{tmp_path}"\n')
    EventStore(tmp_path / "events.db").record(ev())
    capsys.readouterr()
    args = argparse.Namespace(config=str(cfg_file), since=since, format="csv", output=None)
    assert store_mod.cli_events(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of range" in err


def test_open_alarms_replays_each_condition_to_its_last_state(tmp_path: Path) -> None:
    s = EventStore(tmp_path / "events.db")
    t = "2026-11-01T08:00:{:02d}.000Z".format
    s.record(ev("raised", t(0), priority="medium"))
    s.record(ev("cleared", t(1), priority="medium"))             # a closed one
    s.record(ev("raised", t(2), priority="medium", id="r2"))
    s.record(ev("escalated", t(3), priority="high"))
    s.record(ev("acknowledged", t(4), priority="high", by="web:ann", detail={"silence_s": 120.0}))
    s.record(ev("technical", t(5), condition="camera_lost", priority="low"))
    s.record(ev("technical", t(6), condition="mic_lost", priority="low"))
    s.record(ev("technical_cleared", t(7), condition="mic_lost", priority="low"))
    s.record(ev("suppressed", t(8), condition="distress", priority="medium"))
    opened = {a["condition"]: a for a in s.open_alarms()}
    assert set(opened) == {"distress", "camera_lost"}
    d = opened["distress"]
    assert (d["priority"], d["since"], d["raised_id"], d["acknowledged"], d["acknowledged_by"]) == \
        ("high", t(2), "r2", True, "web:ann")
    assert d["silenced_until"] == "2026-11-01T08:02:04.000Z"
    s.record(ev("resounded", t(9), priority="high"))
    assert s.open_alarms()[0]["acknowledged"] is False and s.open_alarms()[0]["silenced_until"] is None
    s.record(ev("restored", t(10), priority="high", detail={"acknowledged": True,
                                                             "silenced_until": "2026-11-01T08:01:00.000Z"}))
    d = next(a for a in s.open_alarms() if a["condition"] == "distress")
    assert d["restored"] == 1 and d["acknowledged"] and d["silenced_until"] == "2026-11-01T08:01:00.000Z"
    s.record(ev("cleared", t(11), priority="high"))
    assert [a["condition"] for a in s.open_alarms()] == ["camera_lost"]
