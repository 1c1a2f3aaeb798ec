"""MQTT output and outbox against a real broker (Debian mosquitto on a free loopback port).

The broker is started by a fixture (installed with apt-get when missing and possible); the tests
skip when mosquitto is not available. Nothing sleeps to wait: tests wait on message arrival and
asyncio events, with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edge import config as config_mod
from edge.events import AlarmEvent, EmotionState, utc_now_iso
from edge.hub import Hub
from edge.labels import LABELS
from edge.outbox import Outbox, attach
from edge.outputs.mqtt import (
    CommandError,
    Topics,
    _cancel_all,
    discovery_messages,
    handle_command,
    parse_command,
    serve,
    tls_context,
)

aiomqtt = pytest.importorskip("aiomqtt")

REPO = Path(__file__).resolve().parents[1]
DEVICE = "box-1"
BASE = f"medtrack/{DEVICE}"
TIMEOUT = 15.0


# ----------------------------------------------------------------------------------- broker

def _find_mosquitto() -> str | None:
    exe = "/usr/sbin/mosquitto"
    if not os.path.exists(exe) and shutil.which("apt-get") and os.geteuid() == 0:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["apt-get", "install", "-y", "mosquitto"], capture_output=True, timeout=600,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if os.path.exists(exe):
        return exe
    return shutil.which("mosquitto")


@pytest.fixture(scope="session")
def mosquitto_exe() -> str:
    exe = _find_mosquitto()
    if exe is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A mosquitto process on 127.0.0.1:<port>; kill() and start() keep the same port."""

    def __init__(self, exe: str, workdir: Path, extra: str = "", anonymous: bool = True):
        self.exe, self.port = exe, _free_port()
        self.conf = workdir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'true' if anonymous else 'false'}",
                 "persistence false", "log_dest stderr", "log_type error", "log_type warning",
                 "log_type notice", "log_type information"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to user 'mosquitto' and cannot read tmp files
        self.conf.write_text("\n".join(lines) + "\n" + extra)
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.exe, "-c", str(self.conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert self.proc.stderr is not None
        async with asyncio.timeout(TIMEOUT):
            while True:
                line = (await self.proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("mosquitto exited:\n" + "".join(self.log))
                self.log.append(line)
                if " running" in line:
                    break
        self._drain = asyncio.create_task(self._read_rest(self.proc.stderr))

    async def _read_rest(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.log.append(line.decode(errors="replace"))

    async def kill(self) -> None:
        """SIGKILL: no clean shutdown, no will messages, sessions and retained messages gone."""
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._drain:
            await self._drain


@pytest.fixture
async def broker(mosquitto_exe: str, tmp_path: Path) -> AsyncIterator[Broker]:
    b = Broker(mosquitto_exe, tmp_path)
    await b.start()
    yield b
    await b.kill()


# ----------------------------------------------------------------------------------- helpers

class Observer:
    """Test-side subscriber: records every message; wait_until(pred) waits for arrivals."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bool, int]] = []   # topic, payload, retain, qos
        self._changed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def connect(self, port: int, *topics: str, username: str | None = None,
                      password: str | None = None) -> AsyncIterator[Any]:
        client = aiomqtt.Client("127.0.0.1", port, identifier=f"observer-{uuid.uuid4().hex[:8]}",
                                username=username, password=password)
        async with client:
            for topic in topics:
                await client.subscribe(topic, qos=1)
            task = asyncio.create_task(self._collect(client))
            try:
                yield client
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _collect(self, client: Any) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in client.messages:
                self.messages.append((str(m.topic), bytes(m.payload), bool(m.retain), int(m.qos)))
                self._changed.set()

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _, _ in self.messages if t == topic]

    async def wait_until(self, pred: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while not pred():
                self._changed.clear()
                await self._changed.wait()

    async def wait_count(self, topic: str, n: int, timeout: float = TIMEOUT) -> list[bytes]:
        await self.wait_until(lambda: len(self.on(topic)) >= n, timeout)
        return self.on(topic)

    def event_ids(self) -> list[str]:
        return [json.loads(p)["id"] for p in self.on(f"{BASE}/event")]


def make_config(tmp_path: Path, port: int, **mqtt: Any) -> config_mod.Config:
    return config_mod.from_dict({
        "service": {"device_id": DEVICE, "state_dir": str(tmp_path / "state"), "location": "Ward 3"},
        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": port, "state_interval_s": 1.0,
                 "health_interval_s": 60.0, **mqtt},
    })


async def quick_backoff(attempt: int) -> None:
    await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(hub: Hub, backoff: Any = quick_backoff, outbox: Outbox | None = None
                  ) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub, stop, outbox=outbox, backoff=backoff))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(TIMEOUT):
            await task


def alarm(i: int) -> AlarmEvent:
    return AlarmEvent(kind="raised", condition="distress", priority="medium", distress=0.7, detail={"n": i})


def state(label: str, distress: float) -> EmotionState:
    probs = tuple(1.0 if name == label else 0.0 for name in LABELS)
    return EmotionState(t=0.0, time=utc_now_iso(), probs=probs, label=label, confidence=1.0,
                        distress=distress, modalities={}, live=("face",))


def online_count(obs: Observer) -> int:
    return obs.on(f"{BASE}/availability").count(b"online")


# ----------------------------------------------------------------------------------- units

def test_parse_command_accepts_only_strict_acknowledge() -> None:
    assert parse_command(b'{"action": "acknowledge", "by": "nurse-1"}').by == "nurse-1"
    assert parse_command('{"action": "acknowledge", "by": "ns@ward3", "long": true}').long is True
    bad = [b"", b"ack", b"[]", b'{"action": "reboot", "by": "x"}', b'{"action": "acknowledge"}',
           b'{"action": "acknowledge", "by": 5}', b'{"action": "acknowledge", "by": ""}',
           b'{"action": "acknowledge", "by": "x", "long": "yes"}', b'{"action": "acknowledge", "by": "x", "y": 1}',
           b'{"action": "acknowledge", "by": "' + b"a" * 600 + b'"}', b"\xff\xfe", b'{"action": "acknowledge", "by": "a/b"}']
    for payload in bad:
        with pytest.raises(CommandError):
            parse_command(payload)


def test_pause_and_resume_commands() -> None:
    cmd = parse_command(b'{"action": "pause", "minutes": 15, "by": "nurse-1"}')
    assert (cmd.action, cmd.minutes, cmd.by) == ("pause", 15, "nurse-1")
    assert parse_command(b'{"action": "resume", "by": "nurse-1"}').action == "resume"
    for payload in (b'{"action": "pause", "by": "x"}', b'{"action": "pause", "minutes": 10, "by": "x"}',
                    b'{"action": "pause", "minutes": true, "by": "x"}', b'{"action": "resume", "by": "x", "long": true}',
                    b'{"action": "pause", "minutes": 5}'):
        with pytest.raises(CommandError):
            parse_command(payload)
    cfg = config_mod.from_dict({})
    hub = Hub(cfg)
    calls: list[tuple] = []
    hub.set_pause_handlers(lambda m, by: calls.append(("pause", m, by)) or [object()],
                           lambda by: calls.append(("resume", by)) or [], lambda long: [])
    assert handle_command(hub, b'{"action": "pause", "minutes": 5, "by": "desk"}')
    assert handle_command(hub, b'{"action": "resume", "by": "desk"}')
    assert calls == [("pause", 5, "mqtt:desk"), ("resume", "mqtt:desk")]


def test_discovery_configs(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, 1883)
    topics = Topics.from_config(cfg)
    msgs = dict(discovery_messages(cfg, topics))
    assert set(msgs) == {f"homeassistant/{c}/{DEVICE}/{o}/config" for c, o in
                         [("sensor", "label"), ("sensor", "distress"), ("sensor", "sound"),
                          ("binary_sensor", "alarm"), ("button", "acknowledge")]}
    sound = json.loads(msgs[f"homeassistant/sensor/{DEVICE}/sound/config"])
    assert sound["state_topic"] == f"{BASE}/state" and "sounds.now" in sound["value_template"]
    button = json.loads(msgs[f"homeassistant/button/{DEVICE}/acknowledge/config"])
    assert button["command_topic"] == f"{BASE}/command"
    assert parse_command(button["payload_press"]).by == "home-assistant"
    for payload in msgs.values():
        doc = json.loads(payload)
        assert doc["device"]["identifiers"] == [f"medtrack_{DEVICE}"]
        assert doc["availability_topic"] == f"{BASE}/availability"
    with pytest.raises(ValueError, match="service.device_id"):
        Topics.from_config(config_mod.replace(cfg, service={"device_id": "a/+"}))


def test_outbox_order_idempotence_restart_and_cap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox.in_dir(tmp_path, max_events=100)
    events = [alarm(i) for i in range(5)]
    for ev in events:
        box.enqueue(ev)
    box.enqueue(events[0])  # idempotent on the event id
    items = box.peek()
    assert [i.event_id for i in items] == [e.id for e in events]
    box.mark_delivered(items[0].seq)
    box.close()
    box = Outbox.in_dir(tmp_path, max_events=100)  # a restart resumes where it was
    assert [i.event_id for i in box.peek()] == [e.id for e in events[1:]]
    more = [alarm(i) for i in range(100)]
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        for ev in more:
            box.enqueue(ev)
    assert box.pending() == 100 and box.dropped == 4
    assert [i.event_id for i in box.peek(1)] == [more[0].id]
    assert sum("dropped the oldest undelivered event" in r.message for r in caplog.records) == 4
    assert any("80% of the cap" in r.message for r in caplog.records)
    box.close()


# ----------------------------------------------------------------------------------- broker tests

async def test_state_retained_and_throttled(broker: Broker, tmp_path: Path) -> None:
    hub = Hub(make_config(tmp_path, broker.port))
    obs = Observer()
    topic = f"{BASE}/state"
    loop = asyncio.get_running_loop()
    async with obs.connect(broker.port, topic, f"{BASE}/availability"), running(hub):
        await obs.wait_until(lambda: online_count(obs) >= 1)
        hub.states.publish(state("neutral", 0.0))
        await obs.wait_count(topic, 1)
        t1 = loop.time()
        for i in range(1, 10):   # same label within the interval: coalesced, the latest wins
            hub.states.publish(state("neutral", i / 100))
        second = json.loads((await obs.wait_count(topic, 2))[1])
        t2 = loop.time()
        assert second["distress"] == 0.09 and second["label"] == "neutral" and second["device_id"] == DEVICE
        assert t2 - t1 >= 0.9
        hub.states.publish(state("fear", 0.9))   # a label change goes out at once
        third = json.loads((await obs.wait_count(topic, 3))[2])
        assert third["label"] == "fear" and loop.time() - t2 < 0.9
        assert len(obs.on(topic)) == 3
        late = Observer()   # retained: a late subscriber gets the latest state at once
        async with late.connect(broker.port, topic):
            await late.wait_count(topic, 1)
        assert late.messages[0][2] is True and json.loads(late.messages[0][1])["label"] == "fear"


async def test_events_qos1_in_order(broker: Broker, tmp_path: Path) -> None:
    hub = Hub(make_config(tmp_path, broker.port))
    obs = Observer()
    async with obs.connect(broker.port, f"{BASE}/event", f"{BASE}/availability"), running(hub):
        await obs.wait_until(lambda: online_count(obs) >= 1)
        events = [alarm(i) for i in range(30)]
        for ev in events:
            hub.emit_event(ev)
        await obs.wait_count(f"{BASE}/event", 30)
    assert obs.event_ids() == [e.id for e in events]
    got = [m for m in obs.messages if m[0] == f"{BASE}/event"]
    assert all(qos == 1 and not retain for _, _, retain, qos in got)
    doc = json.loads(got[0][1])
    assert doc["kind"] == "raised" and doc["device_id"] == DEVICE and doc["detail"] == {"n": 0}


async def test_broker_killed_and_restarted_nothing_lost(broker: Broker, tmp_path: Path) -> None:
    hub = Hub(make_config(tmp_path, broker.port))
    gate, backing_off = asyncio.Event(), asyncio.Event()
    gate.set()

    async def gated(attempt: int) -> None:
        backing_off.set()
        await gate.wait()

    emitted: list[AlarmEvent] = []
    local = hub.events.subscribe(maxsize=1000, name="test-local")

    def emit(n: int) -> None:
        for _ in range(n):
            ev = alarm(len(emitted))
            emitted.append(ev)
            hub.emit_event(ev)
            assert local.get_nowait() is ev   # the box hears its alarm at once, network or not

    obs = Observer()
    async with running(hub, gated):
        async with obs.connect(broker.port, f"{BASE}/event", f"{BASE}/availability"):
            await obs.wait_until(lambda: online_count(obs) >= 1)
            emit(5)
            await obs.wait_until(lambda: len(set(obs.event_ids())) >= 5)
            gate.clear()
            await broker.kill()
            emit(5)                        # the box may not have noticed yet
        await asyncio.wait_for(backing_off.wait(), TIMEOUT)
        assert hub.health["mqtt"].status == "down"
        emit(5)                            # certainly down now
        await broker.start()
        async with obs.connect(broker.port, f"{BASE}/event"):
            gate.set()
            emit(5)                        # while the backlog drains
            await obs.wait_until(lambda: len(set(obs.event_ids())) >= 20)
            assert hub.health["mqtt"].status == "ok"
    assert list(dict.fromkeys(obs.event_ids())) == [e.id for e in emitted]


async def test_outbox_pending_metric_counts_the_backlog_during_an_outage(broker: Broker, tmp_path: Path) -> None:
    from edge.metrics import render

    port = broker.port
    await broker.kill()
    hub = Hub(make_config(tmp_path, port))
    backing_off = asyncio.Event()

    async def held(attempt: int) -> None:
        backing_off.set()
        await asyncio.Event().wait()

    async with running(hub, held):
        await asyncio.wait_for(backing_off.wait(), TIMEOUT)   # the broker is down
        for i in range(4):
            hub.emit_event(alarm(i))
        assert hub.metrics["mqtt_outbox_pending"] == 4.0
        assert "medtrack_mqtt_outbox_pending 4" in render(hub)
    hub2 = Hub(make_config(tmp_path, port))    # a restart shows the backlog before any connection
    outbox = attach(hub2)
    assert hub2.metrics["mqtt_outbox_pending"] == 4.0
    await broker.start()
    obs = Observer()
    async with obs.connect(port, f"{BASE}/event"), running(hub2, outbox=outbox):
        await obs.wait_count(f"{BASE}/event", 4)
        for _ in range(10_000):   # the last PUBACK is committed just after the observer sees the message
            if hub2.metrics["mqtt_outbox_pending"] == 0.0:
                break
            await asyncio.sleep(0)
        assert hub2.metrics["mqtt_outbox_pending"] == 0.0


async def test_outbox_survives_service_restart(broker: Broker, tmp_path: Path) -> None:
    port = broker.port
    await broker.kill()
    hub1 = Hub(make_config(tmp_path, port))
    backing_off = asyncio.Event()

    async def held(attempt: int) -> None:
        backing_off.set()
        await asyncio.Event().wait()   # never retries on its own; stop ends it

    first = [alarm(i) for i in range(3)]
    async with running(hub1, held):
        await asyncio.wait_for(backing_off.wait(), TIMEOUT)   # serve() has attached the outbox
        for ev in first:
            hub1.emit_event(ev)
    late = alarm(3)
    hub1.emit_event(late)               # the recorder outlives the MQTT output
    del hub1

    await broker.start()
    hub2 = Hub(make_config(tmp_path, port))   # a new service process over the same state dir
    obs = Observer()
    async with obs.connect(port, f"{BASE}/event"), running(hub2):
        await obs.wait_count(f"{BASE}/event", 4)
        after = alarm(4)
        hub2.emit_event(after)
        await obs.wait_count(f"{BASE}/event", 5)
    assert obs.event_ids() == [e.id for e in [*first, late, after]]


def _ack_recorder(hub: Hub) -> tuple[list[tuple[str, bool]], asyncio.Event]:
    calls: list[tuple[str, bool]] = []
    called = asyncio.Event()

    def ack(by: str, long: bool) -> AlarmEvent:
        calls.append((by, long))
        ev = AlarmEvent(kind="acknowledged", condition="distress", priority="medium", by=by)
        hub.emit_event(ev)    # as the alarm service does: an acknowledge is an event like any other
        called.set()
        return ev

    hub.set_ack_handler(ack)
    return calls, called


async def test_commands_malformed_ignored_valid_acknowledges(
        broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge.outputs.mqtt")
    hub = Hub(make_config(tmp_path, broker.port))
    calls, called = _ack_recorder(hub)
    cmd = f"{BASE}/command"
    obs = Observer()
    async with obs.connect(broker.port, f"{BASE}/availability", f"{BASE}/event") as client:
        await client.publish(cmd, '{"action": "acknowledge", "by": "stale"}', qos=1, retain=True)
        async with running(hub):
            await obs.wait_until(lambda: online_count(obs) >= 1)
            await client.publish(cmd, b"", qos=1, retain=True)   # clear the retained one
            bad = [b"not json", b'{"action": "silence_all", "by": "x"}', b'{"action": "acknowledge", "by": 7}',
                   b'{"action": "acknowledge", "by": "x", "admin": true}', b"x" * 2000]
            for payload in bad:
                await client.publish(cmd, payload, qos=1)
            await client.publish(cmd, '{"action": "acknowledge", "by": "nurse-1", "long": true}', qos=1)
            await asyncio.wait_for(called.wait(), TIMEOUT)
            await obs.wait_count(f"{BASE}/event", 1)
    assert calls == [("mqtt:nurse-1", True)]
    ev = json.loads(obs.on(f"{BASE}/event")[0])
    assert ev["kind"] == "acknowledged" and ev["by"] == "mqtt:nurse-1"
    ignored = [r.getMessage() for r in caplog.records if "command ignored" in r.getMessage()]
    assert len(ignored) == 2 + len(bad), ignored   # retained + empty + each malformed one
    assert any("retained commands are refused" in m for m in ignored)
    assert any("'silence_all' not allowed" in m for m in ignored)
    assert any("exceeds" in m for m in ignored)


ACL = """\
# Boxes: the MQTT user name is the box's device_id (%u).
pattern write medtrack/%u/state
pattern write medtrack/%u/event
pattern write medtrack/%u/alarm
pattern write medtrack/%u/health
pattern write medtrack/%u/availability
pattern read medtrack/%u/command
pattern write homeassistant/+/%u/+/config
pattern read homeassistant/status

user nurse-station
topic read medtrack/#
topic write medtrack/+/command

user viewer
topic read medtrack/+/state
topic read medtrack/+/alarm
topic read medtrack/+/availability
"""


async def test_acl_only_nurse_station_may_command(mosquitto_exe: str, tmp_path: Path) -> None:
    pw, acl = tmp_path / "passwd", tmp_path / "acl"
    pw.write_text("")
    for user in (DEVICE, "nurse-station", "viewer"):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, f"{user}-pw"], check=True, capture_output=True)
    acl.write_text(ACL)
    b = Broker(mosquitto_exe, tmp_path, extra=f"password_file {pw}\nacl_file {acl}\nlog_type debug\n", anonymous=False)
    await b.start()
    try:
        hub = Hub(make_config(tmp_path, b.port, username=DEVICE, password=f"{DEVICE}-pw"))
        calls, called = _ack_recorder(hub)
        nurse, viewer = Observer(), Observer()
        async with nurse.connect(b.port, f"{BASE}/availability", f"{BASE}/event",
                                 username="nurse-station", password="nurse-station-pw") as ns, \
                viewer.connect(b.port, username="viewer", password="viewer-pw") as vw, running(hub):
            await nurse.wait_until(lambda: online_count(nurse) >= 1)
            await vw.publish(f"{BASE}/command", '{"action": "acknowledge", "by": "intruder"}', qos=1)
            await vw.publish(f"{BASE}/event", '{"id": "spoofed"}', qos=1)
            await ns.publish(f"{BASE}/command", '{"action": "acknowledge", "by": "nurse-1"}', qos=1)
            await asyncio.wait_for(called.wait(), TIMEOUT)
            await nurse.wait_count(f"{BASE}/event", 1)
        assert calls == [("mqtt:nurse-1", False)]
        assert "spoofed" not in nurse.event_ids()
        denied = [line for line in b.log if "Denied PUBLISH" in line and vw.identifier in line]
        assert len(denied) == 2, "".join(b.log[-30:])   # the broker refused both, as the ACL says
    finally:
        await b.kill()


async def test_home_assistant_discovery_and_resend_on_online(broker: Broker, tmp_path: Path) -> None:
    hub = Hub(make_config(tmp_path, broker.port))
    calls, called = _ack_recorder(hub)
    obs = Observer()
    configs = "homeassistant/+/+/+/config"
    async with obs.connect(broker.port, configs) as client, running(hub):
        await obs.wait_until(lambda: len(obs.messages) >= 5)
        first = {t: json.loads(p) for t, p, _, _ in obs.messages}
        assert first[f"homeassistant/binary_sensor/{DEVICE}/alarm/config"]["state_topic"] == f"{BASE}/alarm"
        assert first[f"homeassistant/sensor/{DEVICE}/distress/config"]["device"]["suggested_area"] == "Ward 3"
        await client.publish("homeassistant/status", "online", qos=1)
        await obs.wait_until(lambda: len(obs.messages) >= 10)
        assert {t for t, *_ in obs.messages[5:]} == set(first)
        button = first[f"homeassistant/button/{DEVICE}/acknowledge/config"]
        await client.publish(button["command_topic"], button["payload_press"], qos=1)   # press it
        await asyncio.wait_for(called.wait(), TIMEOUT)
    assert calls == [("mqtt:home-assistant", False)]


_CHILD = """
import asyncio, json, sys
from edge import config
from edge.hub import Hub
from edge.outputs.mqtt import serve
asyncio.run(serve(Hub(config.from_dict(json.loads(sys.argv[1]))), asyncio.Event()))
"""


async def test_availability_will_offline_when_client_dies(broker: Broker, tmp_path: Path) -> None:
    raw = {"service": {"device_id": DEVICE, "state_dir": str(tmp_path / "child")},
           "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "keepalive": 5}}
    obs = Observer()
    topic = f"{BASE}/availability"
    async with obs.connect(broker.port, topic):
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", _CHILD, json.dumps(raw), cwd=REPO)
        try:
            await obs.wait_until(lambda: online_count(obs) >= 1, timeout=30)
        finally:
            child.kill()   # SIGKILL: no clean disconnect, so the broker sends the will
            await child.wait()
        await obs.wait_until(lambda: obs.on(topic)[-1:] == [b"offline"])
    late = Observer()
    async with late.connect(broker.port, topic):
        await late.wait_count(topic, 1)
    assert late.messages[0][1:3] == (b"offline", True)


async def test_bad_tls_settings(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, 8883, tls=True, ca_file=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(OSError):
        tls_context(cfg.mqtt)
    assert isinstance(tls_context(make_config(tmp_path, 8883, tls=True).mqtt), ssl.SSLContext)
    hub = Hub(cfg)
    stop = asyncio.Event()
    stop.set()                                   # a bad TLS setting is reported, never raised
    await serve(hub, stop)
    assert hub.health["mqtt"].status == "down" and "MQTT not started" in hub.health["mqtt"].detail


async def test_shutdown_cancels_a_task_that_swallowed_its_cancel() -> None:
    # Python 3.11's asyncio.wait_for (aiomqtt's publish) can drop a cancel (CPython gh-86296)
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()            # what a lost cancel looks like: the pump carries on
        await asyncio.Event().wait()

    async def polite() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(polite())]
    await asyncio.sleep(0)             # let both start
    async with asyncio.timeout(TIMEOUT):
        await _cancel_all(tasks)
    assert swallowed.is_set() and all(t.cancelled() for t in tasks)
