"""The outside probe of issue 15, replayed against a real server on loopback: raw non-UTF-8 and
malformed requests (never a 500, never a traceback), the distributed-guessing lockout, logout, the
Server header, live-stream slots, slow headers and bodies, and 1,100 idle sockets against a server
limited to 1,024 open files. Every loop is bounded; nothing sleeps."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from script_loader import load_script

from edge import alarm_service
from edge import config as config_mod
from edge import store as store_mod
from edge.hub import Hub
from edge.outputs import auth as auth_mod
from edge.outputs import web

REPO = Path(__file__).resolve().parents[1]
fake_state = load_script("bench_web").fake_state


async def until(pred, tries: int = 100_000) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


class Server:
    def __init__(self, port: int, hub: Hub, token: str):
        self.port, self.hub, self.token = port, hub, token
        self.base = f"http://127.0.0.1:{port}"

    async def raw(self, data: bytes, local: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
        """Send raw bytes, read the whole answer (the request asks the server to close)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(local, 0))
        try:
            writer.write(data)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
        finally:
            writer.close()
        return status, headers, body

    async def get(self, path: str, local: str = "127.0.0.1", **kw) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
        conn = aiohttp.TCPConnector(local_addr=(local, 0), force_close=True)
        async with aiohttp.ClientSession(connector=conn) as s, s.get(self.base + path, **kw) as r:
            body = await r.json(content_type=None)
            return r.status, body


@pytest.fixture
async def server(tmp_path: Path, unused_tcp_port: int) -> AsyncIterator[Server]:
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)},
                                "web": {"host": "127.0.0.1", "port": unused_tcp_port}})
    hub = Hub(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(web.serve(hub, stop))
    await until(lambda: "web" in hub.health)
    assert hub.health["web"].status == "ok"
    token = auth_mod.load_or_create_token(auth_mod.token_path(tmp_path))
    try:
        yield Server(unused_tcp_port, hub, token)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def request(method: str, path: str, headers: dict[str, bytes | str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()))
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


FORM = "application/x-www-form-urlencoded"
UNAUTHENTICATED_PROBES: list[tuple[str, bytes]] = [
    ("utf-8 bearer", request("GET", "/api/status", {"Authorization": "Bearer café-token-ééééééééééé".encode()})),
    ("non-utf-8 bearer", request("GET", "/api/status", {"Authorization": b"Bearer \xff\xfe\xfd-token"})),
    ("non-utf-8 scheme", request("GET", "/api/status", {"Authorization": b"\xffearer abc"})),
    ("non-utf-8 cookie", request("GET", "/api/status", {"Cookie": b"medtrack_session=\xff\xfe.1.abc"})),
    ("utf-8 cookie digits", request("GET", "/api/status", {"Cookie": "medtrack_session=a.١٢٣.b".encode()})),
    ("form %ff", request("POST", "/login", {"Content-Type": FORM}, b"token=%ff")),
    ("form raw \\xff", request("POST", "/login", {"Content-Type": FORM}, b"token=\xff")),
    ("form charset", request("POST", "/login", {"Content-Type": FORM + "; charset=klingon"}, b"token=a")),
    ("broken multipart", request("POST", "/login", {"Content-Type": "multipart/form-data; boundary=xyz"},
                                 b"--xyz\r\nbroken")),
    ("multipart no boundary", request("POST", "/login", {"Content-Type": "multipart/form-data"}, b"--x\r\n")),
    ("multipart bad bytes", request("POST", "/login", {"Content-Type": "multipart/form-data; boundary=b"},
                                    b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\xfe\r\n--b--\r\n')),
    ("multipart file", request("POST", "/login", {"Content-Type": "multipart/form-data; boundary=b"},
                               b'--b\r\nContent-Disposition: form-data; name="token"; filename="t"\r\n'
                               b"Content-Type: text/plain\r\n\r\nabc\r\n--b--\r\n")),
    ("json login", request("POST", "/login", {"Content-Type": "application/json"}, b"{}")),
    ("login page query", request("GET", "/login?lang=%ff%0d%0a")),
]
MALFORMED_HTTP: list[tuple[str, bytes]] = [
    ("bad request line", b"GET\xff / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("non-utf-8 path", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("header without colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n"),
    ("negative length", b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
    ("bad chunk", b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("header NUL", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("huge header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n"),
    ("not http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40),
]


def authed_probes(token: str) -> list[tuple[str, bytes]]:
    bearer = {"Authorization": f"Bearer {token}"}
    return [
        ("since past 9999", request("GET", "/api/events?since=" + quote("9999-12-31T23:00:00-05:00", safe=""), bearer)),
        ("since before 0001", request("GET", "/api/events?since=" + quote("0001-01-01T00:10:00+01:00", safe=""), bearer)),
        ("since %ff", request("GET", "/api/events?since=%ff%fe", bearer)),
        ("limit %ff", request("GET", "/api/events?limit=%ff", bearer)),
        ("limit huge", request("GET", "/api/events?limit=" + "9" * 5000, bearer)),
        ("timeline nan", request("GET", "/api/timeline?minutes=nan", bearer)),
        ("static NUL", request("GET", "/static/%00", bearer)),
        ("static %ff", request("GET", "/static/%ff.js", bearer)),
        ("ack non-utf-8 json", request("POST", "/api/acknowledge", {**bearer, "Content-Type": "application/json"},
                                       b'{"by": "\xff"}')),
        ("ack by non-ascii", request("POST", "/api/acknowledge", {**bearer, "Content-Type": "application/json"},
                                     b'{"by": "\\ud800"}')),
    ]


async def test_probe_no_500_no_traceback_and_failures_count(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    statuses = {}
    for name, data in UNAUTHENTICATED_PROBES + MALFORMED_HTTP + authed_probes(server.token):
        local = "127.0.0.1" if name in dict(authed_probes(server.token)) else "127.0.0.3"
        status, headers, body = await server.raw(data, local=local)
        statuses[name] = status
        if name == "login page query":
            assert status == 200
            continue
        assert 400 <= status < 500, (name, status, body[:300])
        assert headers.get("content-type", "").startswith("application/json"), (name, headers)
        doc = json.loads(body)
        assert doc["status"] == status and doc["error"], (name, doc)
        assert headers.get("server") == "medtrack", (name, headers.get("server"))
    status, headers, _ = await server.raw(request("GET", "/?lang=%0d%0aSet-Cookie:x=1"), local="127.0.0.4")
    assert status == 303 and headers["location"] == "/login" and "set-cookie" not in headers
    no_tracebacks(caplog)
    # the unauthenticated failures counted: the probing address now waits for its next wrong guess,
    # but the right token always works (throttle the guesser, never the nurse)
    status, body = await server.get("/api/status", local="127.0.0.3", headers={"Authorization": "Bearer nope"})
    assert status == 429 and body["retry_after_s"] > 0
    status, _ = await server.get("/api/status", local="127.0.0.3",
                                 headers={"Authorization": f"Bearer {server.token}"})
    assert status == 200


async def test_probe_distributed_guessing_never_locks_out_the_right_token(server: Server) -> None:
    headers_bad = {"Authorization": "Bearer " + "x" * 32}
    for i in range(60):   # 60 wrong tokens from 20 addresses: 3 each, under the per-address limit
        status, _ = await server.get("/api/status", local=f"127.0.0.{10 + i % 20}", headers=headers_bad)
        assert status == 401
    good = {"Authorization": f"Bearer {server.token}"}
    assert (await server.get("/api/status", local="127.0.0.2", headers=good))[0] == 200  # the nurse
    assert (await server.get("/api/status", local="127.0.0.10", headers=good))[0] == 200  # 3 failures: not throttled
    conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=conn) as s, \
            s.post(server.base + "/login", data={"token": server.token}, allow_redirects=False) as r:
        assert r.status == 303   # the page's login works too
    for _ in range(5):   # the guesser itself is throttled after 5
        await server.get("/api/status", local="127.0.0.99", headers=headers_bad)
    assert (await server.get("/api/status", local="127.0.0.99", headers=headers_bad))[0] == 429


async def test_probe_logout_ends_the_session_on_the_server(server: Server, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(server.base + "/login", data={"token": server.token}, allow_redirects=False) as r:
            assert r.status == 303
            session, csrf = r.cookies[auth_mod.SESSION_COOKIE].value, r.cookies[auth_mod.CSRF_COOKIE].value
        cookie = {"Cookie": f"{auth_mod.SESSION_COOKIE}={session}; {auth_mod.CSRF_COOKIE}={csrf}"}
        s.cookie_jar.clear()
        async with s.get(server.base + "/api/status", headers=cookie) as r:
            assert r.status == 200
        async with s.post(server.base + "/logout", headers={**cookie, auth_mod.CSRF_HEADER: csrf}) as r:
            assert r.status == 200
        async with s.get(server.base + "/api/status", headers=cookie) as r:
            assert r.status == 401
    # still refused by a restarted service (the revocation is on disk, owner-only)
    restarted = auth_mod.Authenticator(auth_mod.token_path(tmp_path))
    assert restarted.session(session) is None
    assert os.stat(tmp_path / auth_mod.REVOKED_FILE).st_mode & 0o077 == 0
    assert restarted.session(restarted.new_session()[0]) is not None


async def test_probe_live_streams_are_capped_per_client(server: Server) -> None:
    good = {"Authorization": f"Bearer {server.token}"}
    sessions, streams = [], []
    try:
        for local in ["127.0.0.1"] * web.MAX_SSE_PER_CLIENT + ["127.0.0.1", "127.0.0.5"]:
            s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local, 0)))
            sessions.append(s)
            streams.append(await s.get(server.base + "/api/stream", headers=good))
        assert [r.status for r in streams] == [200] * web.MAX_SSE_PER_CLIENT + [429, 200]
    finally:
        for r in streams:
            r.close()
        for s in sessions:
            await s.close()


async def test_probe_slow_headers_and_bodies_time_out(server: Server, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path, unused_tcp_port_factory) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(web.HANDLER_ARGS, "keepalive_timeout", 0.3)
    monkeypatch.setattr(web.base, "BODY_TIMEOUT_S", 0.3)
    port = unused_tcp_port_factory()
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)}, "web": {"host": "127.0.0.1", "port": port}})
    hub = Hub(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(web.serve(hub, stop))
    await until(lambda: "web" in hub.health)
    try:
        for partial in (b"", b"GET /api/status HTTP/1.1\r\nHost: x\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(partial)
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 5) == b""   # closed by the server
            assert time.monotonic() - started < 3
            writer.close()
        slow = Server(port, hub, server.token)
        status, _, body = await slow.raw(request("POST", "/api/acknowledge", {
            "Authorization": f"Bearer {server.token}", "Content-Type": "application/json",
            "Content-Length": "100"})[:-len(b"Content-Length: 0\r\n\r\n")] + b"\r\n{\"lo")
        assert status == 408 and json.loads(body)["status"] == 408
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


def test_guard_closes_the_oldest_idle_connection_at_the_cap() -> None:
    guard = web.ConnectionGuard(limit=3)
    t = [FakeTransport() for _ in range(6)]
    for x in t[:3]:
        guard.opened(x)  # type: ignore[arg-type]
    guard.busy(t[0], 1)  # type: ignore[arg-type]
    guard.opened(t[3])  # type: ignore[arg-type]
    assert [x.aborted for x in t[:4]] == [False, True, False, False]   # the oldest idle, not the busy one
    guard.busy(t[2], 1)  # type: ignore[arg-type]
    guard.busy(t[3], 1)  # type: ignore[arg-type]
    guard.opened(t[4])  # type: ignore[arg-type]
    assert t[4].aborted and guard.refused == 1 and guard.evicted == 1 and len(guard) == 3  # all busy: refused
    guard.busy(t[0], -1)  # type: ignore[arg-type]
    guard.closed(t[2])  # type: ignore[arg-type]
    guard.opened(t[5])  # type: ignore[arg-type]
    assert not t[5].aborted and len(guard) == 3


def test_connection_cap_follows_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _r: (1024, 1024))
    assert web.max_connections() == min(web.MAX_CONNECTIONS, 1024 - web.FD_RESERVE)
    monkeypatch.setattr(resource, "getrlimit", lambda _r: (256, 1024))
    assert web.max_connections() == 256 - web.FD_RESERVE


def test_accept_errors_are_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    loop = asyncio.new_event_loop()
    try:
        quiet = web.QuietAccept(loop, web.LogLimiter(10.0, clock=lambda: now[0]))
        for i in range(10_000):
            now[0] = i * 0.001   # 10,000 refused accepts in 10 s
            quiet(loop, {"message": "socket.accept() out of system resource",
                         "exception": OSError(24, "Too many open files")})
        now[0] = 10.5
        quiet(loop, {"message": "socket.accept() out of system resource", "exception": OSError(24, "x")})
    finally:
        loop.close()
    lines = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(lines) == 2 and not any(r.exc_info for r in lines)
    assert "9999 more" in lines[1].getMessage()


SERVER_SCRIPT = r"""
import asyncio, logging, sys
from edge import config
from edge.hub import Hub
from edge.outputs import web

logging.basicConfig(filename=sys.argv[3], level=logging.DEBUG)

async def main():
    cfg = config.from_dict({"service": {"state_dir": sys.argv[1]},
                            "web": {"host": "127.0.0.1", "port": int(sys.argv[2])}})
    hub = Hub(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(web.serve(hub, stop))
    for _ in range(1_000_000):
        if "web" in hub.health:
            break
        await asyncio.sleep(0)
    print("ready", hub.health["web"].status, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)   # until stdin closes
    stop.set()
    await task

asyncio.run(main())
"""


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


async def test_probe_1100_idle_sockets_at_1024_files_page_still_answers(tmp_path: Path, unused_tcp_port: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if max(soft, hard) < 1400:
        pytest.skip("this test process needs ~1,200 open files")
    if soft < 1400:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log_file = tmp_path / "server.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER_SCRIPT, str(tmp_path), str(unused_tcp_port), str(log_file),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, preexec_fn=_limit_files,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    writers: list[asyncio.StreamWriter] = []
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)  # type: ignore[union-attr]
        assert line.split() == [b"ready", b"ok"], line
        size_before = log_file.stat().st_size
        for i in range(1100):   # half say nothing, half dribble the start of their headers
            _, w = await asyncio.open_connection("127.0.0.1", unused_tcp_port)
            if i % 2:
                w.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")
            writers.append(w)
        token = (tmp_path / auth_mod.TOKEN_FILE).read_text().strip()
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            async with s.get(f"http://127.0.0.1:{unused_tcp_port}/api/status",
                             headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200 and (await r.json())["auth"] is True
            async with s.get(f"http://127.0.0.1:{unused_tcp_port}/") as r:
                assert r.status == 200   # the login page
        assert time.monotonic() - started < 2.0
        grown = log_file.stat().st_size - size_before
        assert grown < 1_000_000, grown
        assert "Traceback" not in log_file.read_text(errors="replace")
    finally:
        for w in writers:
            w.close()
        if proc.returncode is None:
            proc.stdin.close()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def test_probe_restart_with_a_latched_alarm(tmp_path: Path, unused_tcp_port: int) -> None:
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)},
                                "web": {"host": "127.0.0.1", "port": unused_tcp_port},
                                "alarm": {"t_on_s": 2.0, "t_off_s": 2.0}})
    token = auth_mod.load_or_create_token(auth_mod.token_path(tmp_path))
    bearer = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{unused_tcp_port}"
    stores: list[Any] = []

    async def start(clock: Clock) -> tuple[Hub, asyncio.Event, list[asyncio.Task[None]]]:
        hub = Hub(cfg, clock=clock)
        store = store_mod.attach(hub)   # as Service.run does, before the tasks it hands it to
        stores.append(store)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(alarm_service.serve(hub, stop, store=store, clock=clock, thermal_glob=None)),
                 asyncio.create_task(web.serve(hub, stop, store))]
        await until(lambda: "web" in hub.health)
        return hub, stop, tasks

    async def feed(hub: Hub, clock: Clock, distress: float, seconds: float) -> None:
        for _ in range(int(seconds / 0.5)):
            clock.t += 0.5
            hub.states.publish(fake_state("fear" if distress > 0.5 else "neutral", distress))
            for _ in range(5):
                await asyncio.sleep(0)

    async def stop_all(hub: Hub, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        stores.pop().close()

    clock = Clock(100.0)
    hub, stop, tasks = await start(clock)
    await feed(hub, clock, 0.8, 4.0)       # raised
    await feed(hub, clock, 0.1, 4.0)       # the crisis passed: latched, unacknowledged
    async with aiohttp.ClientSession() as s, s.get(base + "/api/status", headers=bearer) as r:
        alarm = (await r.json())["alarm"]
    assert alarm["active"] and alarm["audible"] and alarm["alarms"][0]["present"] is False
    raised_at = alarm["since"]
    await stop_all(hub, stop, tasks)

    clock = Clock(7.0)                     # a new process, a new monotonic clock
    hub, stop, tasks = await start(clock)
    try:
        async with aiohttp.ClientSession(headers=bearer) as s:
            async with s.get(base + "/api/status") as r:
                alarm = (await r.json())["alarm"]
            assert alarm["active"] and alarm["condition"] == "distress" and alarm["audible"]
            assert alarm["since"] == raised_at and alarm["alarms"][0]["present"] is False
            async with s.get(base + "/api/events?limit=3") as r:
                events = (await r.json())["events"]
            assert events[0]["kind"] == "restored" and events[0]["detail"]["reason"] == "service_restarted"
            await feed(hub, clock, 0.1, 10.0)   # calm data does not clear a latched alarm
            assert hub.alarm_snapshot()["active"]
            async with s.post(base + "/api/acknowledge", json={"by": "nurse"}) as r:
                assert r.status == 200
            assert hub.alarm_snapshot()["active"] is False
    finally:
        await stop_all(hub, stop, tasks)
    # a third start finds nothing open
    clock = Clock(3.0)
    hub, stop, tasks = await start(clock)
    try:
        assert hub.alarm_snapshot()["active"] is False
    finally:
        await stop_all(hub, stop, tasks)
