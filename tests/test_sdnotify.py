"""sd_notify against a real AF_UNIX datagram socket, and the state-driven watchdog (injected clock)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import sdnotify, watchdog
from edge.config import Config
from edge.events import EmotionState
from edge.hub import Hub
from edge.labels import LABELS


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def recv_all(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def state(t: float) -> EmotionState:
    probs = tuple(1.0 if name == "neutral" else 0.0 for name in LABELS)
    return EmotionState(t=t, time="2025-01-01T00:00:00.000Z", probs=probs, label="neutral",
                        confidence=1.0, distress=0.0, modalities={}, live=("face",))


# ------------------------------------------------------------------------------------ sdnotify

def test_messages_reach_a_real_socket(notify_socket: socket.socket) -> None:
    assert sdnotify.enabled()
    assert sdnotify.ready("models loaded")
    assert sdnotify.watchdog()
    assert sdnotify.status("two\nlines")
    assert sdnotify.stopping()
    assert recv_all(notify_socket) == ["READY=1\nSTATUS=models loaded", "WATCHDOG=1",
                                       "STATUS=two lines", "STOPPING=1"]


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"medtrack-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1")
        assert recv_all(sock) == ["READY=1"]


def test_noop_without_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sdnotify.enabled()
    assert sdnotify.ready() is False
    assert sdnotify.watchdog() is False


def test_missing_socket_is_logged_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("WATCHDOG=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    assert sdnotify.notify("WATCHDOG=1") is False


def test_watchdog_interval() -> None:
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None


# ------------------------------------------------------------------------------------ watchdog

def test_watchdog_pings_only_while_states_flow(notify_socket: socket.socket) -> None:
    clock = Clock()
    hub = Hub(Config(), clock=clock)
    ready = watchdog.Readiness(hub.clock)
    wd = watchdog.PipelineWatchdog(hub, ready, stall_s=10.0)

    # Starting up (before Readiness.mark): pings, TimeoutStartSec= bounds the start.
    assert wd.tick()
    assert recv_all(notify_socket) == ["WATCHDOG=1"]

    assert ready.mark("capture and models up")
    assert not ready.mark()  # READY=1 only once
    assert recv_all(notify_socket) == ["READY=1\nSTATUS=capture and models up"]

    # Grace for the first state counts from Readiness.mark.
    clock.t += 9.0
    assert wd.tick()
    clock.t += 2.0
    assert not wd.tick()  # 11 s after ready, no state yet: stalled
    assert recv_all(notify_socket) == ["WATCHDOG=1", "STATUS=stalled: no new state for 11 s"]

    # States flow: pings resume, every tick.
    for _ in range(5):
        hub.states.publish(state(clock.t))
        hub.states.publish(state(clock.t))
        clock.t += 3.0
        assert wd.tick()
    assert wd.states_seen == 10
    msgs = recv_all(notify_socket)
    assert msgs[0] == "STATUS=running: 2 states"
    assert msgs.count("WATCHDOG=1") == 5

    # Pipeline stalls: pings continue only within the stall window, then stop for good.
    sent = []
    for _ in range(8):
        clock.t += 2.0
        sent.append(wd.tick())
    assert sent == [True] * 5 + [False] * 3  # last state seen at a tick; window 10 s = 5 ticks
    msgs = recv_all(notify_socket)
    assert msgs.count("WATCHDOG=1") == 5
    assert msgs[-1].startswith("STATUS=stalled")
    assert wd.stalled

    # A new state clears the stall.
    hub.states.publish(state(clock.t))
    assert wd.tick()
    assert not wd.stalled
    wd.close()
    assert hub.states.subscribers == 0


def test_same_latest_object_republished_still_counts(notify_socket: socket.socket) -> None:
    clock = Clock()
    hub = Hub(Config(), clock=clock)
    ready = watchdog.Readiness(hub.clock)
    wd = watchdog.PipelineWatchdog(hub, ready, stall_s=5.0)
    ready.mark()
    s = state(0.0)
    for _ in range(3):
        clock.t += 4.0
        hub.states.publish(s)
        assert wd.tick()
    wd.close()


async def test_serve_sends_ready_watchdog_and_stopping(notify_socket: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    clock = Clock()
    hub = Hub(Config(), clock=clock)
    stop = asyncio.Event()
    ready = watchdog.Readiness(hub.clock)
    task = asyncio.create_task(watchdog.serve(hub, stop, readiness=ready, period_s=3600.0))
    first = await asyncio.wait_for(loop.sock_recv(notify_socket, 4096), timeout=5)
    assert first == b"WATCHDOG=1"
    ready.mark()
    assert await asyncio.wait_for(loop.sock_recv(notify_socket, 4096), timeout=5) == (
        b"READY=1\nSTATUS=running: waiting for the first state")
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert recv_all(notify_socket) == ["STOPPING=1"]
    assert hub.states.subscribers == 0


async def test_serve_outside_systemd_just_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    hub = Hub(Config())
    stop = asyncio.Event()
    task = asyncio.create_task(watchdog.serve(hub, stop))
    await asyncio.sleep(0)
    assert hub.states.subscribers == 0
    stop.set()
    await asyncio.wait_for(task, timeout=5)


def test_status_updates_are_throttled(notify_socket: socket.socket) -> None:
    clock = Clock()
    hub = Hub(Config(), clock=clock)
    ready = watchdog.Readiness(hub.clock)
    wd = watchdog.PipelineWatchdog(hub, ready, stall_s=10.0)
    ready.mark()
    recv_all(notify_socket)
    statuses = []
    for _ in range(40):  # 80 s of states, a tick every 2 s
        hub.states.publish(state(clock.t))
        clock.t += 2.0
        assert wd.tick()
        statuses += [m for m in recv_all(notify_socket) if m.startswith("STATUS=")]
    assert statuses == ["STATUS=running: 1 states", "STATUS=running: 31 states"]
    wd.close()
