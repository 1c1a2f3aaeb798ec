"""Status server through aiohttp's test client: every endpoint, auth and its failures, rate limiting,
CSRF, malformed requests (always 4xx JSON), SSE, metrics format, language choice."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from script_loader import load_script

from edge import config as config_mod
from edge import store as store_mod
from edge.config import Config
from edge.hub import Hub
from edge.outputs import auth as auth_mod
from edge.outputs import web
from edge.outputs.auth import Authenticator, RateLimiter

bench_web = load_script("bench_web")
fake_state, FakeAlarm = bench_web.fake_state, bench_web.FakeAlarm


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Env:
    client: TestClient
    hub: Hub
    alarm: FakeAlarm
    auth: Authenticator
    clock: Clock
    config: Config

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth.token}"}


async def _env(tmp_path: Path, auth_on: bool = True, with_store: bool = True) -> AsyncIterator[Env]:
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path), "device_id": "bed-12"},
                                "web": {"auth": auth_on}})
    hub = Hub(cfg)
    alarm = FakeAlarm(hub)
    store = store_mod.attach(hub) if with_store else None
    clock = Clock()
    auth = Authenticator(auth_mod.token_path(tmp_path) if auth_on else None, enabled=auth_on, clock=clock,
                         limiter=RateLimiter(per_client=3, overall=100, window_s=60, clock=clock))
    app = web.make_app(hub, store, cfg, auth=auth)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Env(client, hub, alarm, auth, clock, cfg)
    finally:
        await client.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path):
        yield e


@pytest.fixture
async def env_noauth(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path, auth_on=False, with_store=False):
        yield e


async def login(env: Env) -> str:
    """Log in through the form; returns the CSRF token the page would send."""
    r = await env.client.post("/login", data={"token": env.auth.token}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"
    cookies = {c.key: c for c in r.cookies.values()}
    session = cookies[auth_mod.SESSION_COOKIE]
    assert session["httponly"] and session["samesite"] == "Strict" and not session["secure"]
    assert not cookies[auth_mod.CSRF_COOKIE]["httponly"]
    return cookies[auth_mod.CSRF_COOKIE].value


async def until(pred, tries: int = 10_000) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop until pred() holds (no sleeping; bounded)."""
    for _ in range(tries):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def assert_json_error(resp, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["status"] == status and isinstance(body["error"], str) and body["error"]
    return body


# ------------------------------------------------------------------------------ token file

def test_token_file_mode_rotate_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = auth_mod.token_path(tmp_path / "state")
    token = auth_mod.load_or_create_token(path)
    assert len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth_mod.load_or_create_token(path) == token
    os.chmod(path, 0o644)
    auth_mod.load_or_create_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[service]\nstate_dir = "{tmp_path / "state"}"\n')
    ns = type("A", (), {"config": str(cfg), "rotate": False})()
    assert auth_mod.cli_token(ns) == 0
    assert capsys.readouterr().out.strip() == token
    ns.rotate = True
    assert auth_mod.cli_token(ns) == 0
    new = capsys.readouterr().out.strip()
    assert new != token and path.read_text().strip() == new


def test_token_unusable_location_is_clear(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(auth_mod.AuthError, match="cannot be read or created"):
        auth_mod.load_or_create_token(tmp_path / "f" / "web_token")


def test_rate_limiter_window(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(0.0)
    rl = RateLimiter(per_client=2, overall=3, window_s=10, clock=clock)
    assert rl.retry_after("a") == 0
    rl.failed("a")
    rl.failed("a")
    assert rl.retry_after("a") == pytest.approx(10)
    assert rl.retry_after("b") == 0
    rl.failed("b")
    rl.failed("b")
    assert rl.retry_after("c") == 0  # many failures overall never lock out an address that did not fail
    assert rl.overall_failures() == 4
    assert sum("guessing the access token" in r.message for r in caplog.records) == 1
    assert any("a is throttled after 2 failed logins" in r.message for r in caplog.records)
    clock.t = 10.5
    assert rl.retry_after("a") == 0 and rl.retry_after("c") == 0


def test_rate_limiter_keys_ipv6_by_64_and_bounds_memory() -> None:
    rl = RateLimiter(per_client=2, overall=10**6, window_s=10, clock=Clock(0.0), max_clients=100)
    rl.failed("2001:db8::1")
    rl.failed("2001:db8::2")   # same /64: the same guesser
    assert rl.retry_after("2001:db8::ffff") > 0 and rl.retry_after("2001:db8:0:1::1") == 0
    assert rl.retry_after("::ffff:10.0.0.1") == 0
    rl.failed("::ffff:10.0.0.1")
    rl.failed("10.0.0.1")      # an IPv4-mapped address is the IPv4 client
    assert rl.retry_after("10.0.0.1") > 0
    for i in range(1000):
        rl.failed(f"10.1.{i // 250}.{i % 250}")
    assert len(rl._fails) <= 100
    assert rl.retry_after("10.1.3.249") == 0 and len(rl._fails[auth_mod.client_key("10.1.3.249")]) == 1


# ------------------------------------------------------------------------------ auth

async def test_healthz_needs_no_auth_and_says_nothing_else(env: Env) -> None:
    r = await env.client.get("/healthz")
    assert r.status == 200 and await r.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/api/status", "/api/events", "/api/health", "/api/timeline",
                                  "/api/stream", "/metrics", "/static/app.js", "/nope"])
async def test_everything_else_needs_auth(env: Env, path: str) -> None:
    r = await env.client.get(path)
    await assert_json_error(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_page_redirects_to_login_and_login_page_is_served(env: Env) -> None:
    r = await env.client.get("/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    r = await env.client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    text = await r.text()
    assert r.status == 200 and '<html lang="fr">' in text and "Jeton d&#x27;accès" in text
    assert "<script>" not in text and "http://" not in text and "https://" not in text  # no inline JS, no CDN
    for name in ("app.css", "common.js", "login.js", "i18n.json", "favicon.svg"):
        assert (await env.client.get(f"/static/{name}")).status == 200


@pytest.mark.parametrize("header", ["Bearer wrong-token-xxxxxxxxxxxxxxxx", "Basic abc", "Bearer ", "Token"])
async def test_bad_authorization_headers(env: Env, header: str) -> None:
    await assert_json_error(await env.client.get("/api/status", headers={"Authorization": header}), 401)


async def test_bearer_token_works(env: Env) -> None:
    r = await env.client.get("/api/status", headers=env.bearer)
    assert r.status == 200
    body = await r.json()
    assert body["device_id"] == "bed-12" and body["auth"] is True and body["state"] is None
    assert body["alarm"] == {"active": False, "priority": "none", "condition": None}


async def test_form_login_sets_session_and_page_loads(env: Env) -> None:
    await login(env)
    r = await env.client.get("/")
    text = await r.text()
    assert r.status == 200 and 'src="/static/app.js"' in text
    assert (await env.client.get("/api/status")).status == 200


async def test_wrong_login_and_rate_limit(env: Env) -> None:
    for _ in range(3):
        r = await env.client.post("/login", data={"token": "nope"}, headers={"Accept": "text/html"})
        assert r.status == 401 and "Wrong token." in await r.text()
    r = await env.client.post("/login", data={"token": "nope"})      # the next wrong guess waits
    body = await assert_json_error(r, 429)
    assert int(r.headers["Retry-After"]) == 60 and body["retry_after_s"] == 60
    r = await env.client.get("/api/status", headers={"Authorization": "Bearer nope"})  # bearer shares the limit
    await assert_json_error(r, 429)
    # the right token is never throttled: a nurse who mistyped still gets in at once
    assert (await env.client.get("/api/status", headers=env.bearer)).status == 200
    r = await env.client.post("/login", data={"token": env.auth.token}, allow_redirects=False)
    assert r.status == 303


async def test_bearer_failures_are_rate_limited(env: Env) -> None:
    bad = {"Authorization": "Bearer " + "x" * 32}
    for _ in range(3):
        await assert_json_error(await env.client.get("/api/status", headers=bad), 401)
    await assert_json_error(await env.client.get("/api/status", headers=bad), 429)


async def test_rate_limited_login_page_in_french(env: Env) -> None:
    for _ in range(3):
        await env.client.post("/login", data={"token": "nope"})
    r = await env.client.post("/login", data={"token": "nope"},
                              headers={"Accept": "text/html", "Accept-Language": "fr"})
    assert r.status == 429 and "Trop de tentatives" in await r.text()


async def test_login_malformed(env: Env) -> None:
    await assert_json_error(await env.client.post("/login", data=b"{}", headers={"Content-Type": "application/json"}), 415)
    await assert_json_error(await env.client.post("/login", data={"other": "x"}), 401)
    r = await env.client.post("/login", data={"token": env.auth.token}, headers={"Origin": "http://evil.example"})
    await assert_json_error(r, 403)


async def test_expired_session_and_rotated_token(env: Env) -> None:
    await login(env)
    env.clock.t += auth_mod.SESSION_MAX_AGE_S + 1
    await assert_json_error(await env.client.get("/api/status"), 401)
    env.clock.t -= auth_mod.SESSION_MAX_AGE_S + 1
    assert (await env.client.get("/api/status")).status == 200
    old = env.auth.token
    path = auth_mod.token_path(env.config.service.state_dir)
    auth_mod.load_or_create_token(path, rotate=True)
    os.utime(path, ns=(1, 1))  # make sure the mtime differs even on coarse clocks
    assert env.auth.token != old
    await assert_json_error(await env.client.get("/api/status"), 401)  # sessions end with the token
    await assert_json_error(await env.client.get("/api/status", headers={"Authorization": f"Bearer {old}"}), 401)


async def test_tampered_session_cookie(env: Env) -> None:
    await login(env)
    cookie = next(c for c in env.client.session.cookie_jar if c.key == auth_mod.SESSION_COOKIE)
    nonce, expires, sig = cookie.value.split(".")
    env.client.session.cookie_jar.clear()
    for forged in (f"{nonce}.{int(expires) + 999}.{sig}", "a.b.c", "", "x" * 5000):
        r = await env.client.get("/api/status", headers={"Cookie": f"{auth_mod.SESSION_COOKIE}={forged}"})
        await assert_json_error(r, 401)
    r = await env.client.get("/api/status", headers={"Cookie": f"{auth_mod.SESSION_COOKIE}={cookie.value}"})
    assert r.status == 200


async def test_auth_off_is_explicit_on_page_and_api(env_noauth: Env) -> None:
    r = await env_noauth.client.get("/api/status")
    assert r.status == 200 and (await r.json())["auth"] is False
    r = await env_noauth.client.get("/")
    assert r.status == 200 and "Authentication is OFF" in await r.text()
    r = await env_noauth.client.get("/login", allow_redirects=False)
    assert r.status == 303


# ------------------------------------------------------------------------------ acknowledge / CSRF

async def test_acknowledge_with_bearer(env: Env) -> None:
    sub = env.hub.events.subscribe()
    r = await env.client.post("/api/acknowledge", headers=env.bearer)
    await assert_json_error(r, 409)  # nothing to acknowledge
    env.alarm.raise_alarm()
    r = await env.client.post("/api/acknowledge", json={"by": "Ana"}, headers=env.bearer)
    body = await r.json()
    assert r.status == 200 and body["event"]["kind"] == "acknowledged" and body["event"]["by"] == "web:Ana"
    assert body["alarm"]["acknowledged"] is True
    assert [sub.get_nowait().kind for _ in range(2)] == ["raised", "acknowledged"]
    r = await env.client.post("/api/silence", headers=env.bearer)
    assert (await r.json())["event"]["kind"] == "silenced"
    r = await env.client.get("/api/events?limit=2", headers=env.bearer)
    assert [e["kind"] for e in (await r.json())["events"]] == ["silenced", "acknowledged"]


async def test_cookie_session_needs_csrf_header(env: Env) -> None:
    csrf = await login(env)
    env.alarm.raise_alarm()
    await assert_json_error(await env.client.post("/api/acknowledge"), 403)
    await assert_json_error(await env.client.post("/api/acknowledge", headers={"X-CSRF-Token": "forged"}), 403)
    r = await env.client.post("/api/acknowledge", headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"})
    await assert_json_error(r, 403)
    assert env.alarm.active is not None and env.alarm.active["acknowledged"] is False
    r = await env.client.post("/api/acknowledge", headers={"X-CSRF-Token": csrf})
    assert r.status == 200 and (await r.json())["event"]["by"] == "web"


async def test_auth_off_still_csrf_safe(env_noauth: Env) -> None:
    env_noauth.alarm.raise_alarm()
    await assert_json_error(await env_noauth.client.post("/api/acknowledge"), 403)
    await env_noauth.client.get("/")  # sets the csrf cookie
    csrf = next(c.value for c in env_noauth.client.session.cookie_jar if c.key == auth_mod.CSRF_COOKIE)
    r = await env_noauth.client.post("/api/acknowledge", headers={"X-CSRF-Token": csrf})
    assert r.status == 200


@pytest.mark.parametrize(("body", "ctype", "status"), [
    (b"{not json", "application/json", 400),
    (b"[1, 2]", "application/json", 400),
    (b'{"long": "yes"}', "application/json", 400),
    (b'{"by": "<script>alert(1)</script>"}', "application/json", 400),
    (b'{"by": 5}', "application/json", 400),
    (b"long=true", "application/x-www-form-urlencoded", 415),
    (b"\xff\xfe\x00", "application/json", 400),
    (b'{"x": "' + b"a" * (web.MAX_BODY_BYTES + 10) + b'"}', "application/json", 413),
])
async def test_malformed_acknowledge(env: Env, body: bytes, ctype: str, status: int) -> None:
    env.alarm.raise_alarm()
    r = await env.client.post("/api/acknowledge", data=body, headers={**env.bearer, "Content-Type": ctype})
    await assert_json_error(r, status)
    assert env.alarm.active["acknowledged"] is False  # type: ignore[index]


async def test_wrong_methods_and_unknown_paths(env: Env) -> None:
    r = await env.client.get("/api/acknowledge", headers=env.bearer)
    await assert_json_error(r, 405)
    await assert_json_error(await env.client.delete("/api/status", headers=env.bearer), 405)
    await assert_json_error(await env.client.get("/api/nothing", headers=env.bearer), 404)
    await assert_json_error(await env.client.get("/static/../store.py", headers=env.bearer), 404)
    await assert_json_error(await env.client.get("/static/index.html", headers=env.bearer), 404)


async def test_ack_handler_crash_is_500_json_not_a_crash(env: Env) -> None:
    def boom(by: str, long: bool) -> None:
        raise RuntimeError("bug")

    env.hub.set_ack_handler(boom)  # type: ignore[arg-type]
    await assert_json_error(await env.client.post("/api/acknowledge", headers=env.bearer), 500)
    assert (await env.client.get("/healthz")).status == 200


# ------------------------------------------------------------------------------ read endpoints

async def test_status_with_state(env: Env) -> None:
    env.hub.states.publish(fake_state("fear", 0.72, t=env.hub.clock()))
    body = await (await env.client.get("/api/status", headers=env.bearer)).json()
    assert body["state"]["label"] == "fear" and body["state"]["distress"] == 0.72
    assert set(body["state"]["probs"]) == set(body["labels"])
    assert body["thresholds"]["on"] == env.config.alarm.on_threshold and body["age_s"] >= 0


@pytest.mark.parametrize(("query", "status"), [
    ("limit=0", 400), ("limit=1001", 400), ("limit=abc", 400), ("since=yesterday", 400),
    ("since=" + "9" * 100, 400), ("limit=5&since=2026-01-01", 200), ("since=2026-01-01T00:00:00%2B01:00", 200),
    ("unknown=1", 200),
])
async def test_events_query_params(env: Env, query: str, status: int) -> None:
    r = await env.client.get(f"/api/events?{query}", headers=env.bearer)
    if status != 200:
        await assert_json_error(r, status)
    else:
        assert r.status == 200 and (await r.json())["source"] == "store"


async def test_events_since_filters(env: Env) -> None:
    env.alarm.raise_alarm()
    r = await env.client.get("/api/events?since=2000-01-01", headers=env.bearer)
    assert len((await r.json())["events"]) == 1
    r = await env.client.get("/api/events?since=2999-01-01", headers=env.bearer)
    assert (await r.json())["events"] == []


async def test_events_and_timeline_from_memory_without_store(env_noauth: Env) -> None:
    await until(lambda: env_noauth.hub.events.subscribers >= 1)
    env_noauth.alarm.raise_alarm()
    env_noauth.hub.states.publish(fake_state("sad", 0.4))
    await until(lambda: web.RECENT in env_noauth.client.app and env_noauth.client.app[web.RECENT].timeline)  # type: ignore[union-attr]
    body = await (await env_noauth.client.get("/api/events")).json()
    assert body["source"] == "memory" and body["events"][0]["kind"] == "raised"
    body = await (await env_noauth.client.get("/api/timeline?minutes=5")).json()
    assert body["points"][0][1:] == ["sad", 0.4, 1]


async def test_timeline(env: Env) -> None:
    store = env.client.app[web.STORE]  # type: ignore[union-attr]
    assert store is not None
    store.add_state(fake_state("angry", 0.8), alarm_active=True)
    body = await (await env.client.get("/api/timeline", headers=env.bearer)).json()
    assert body["columns"] == ["t_ms", "label", "distress", "alarm"] and body["points"][0][1] == "angry"
    for q in ("minutes=0", "minutes=99999", "minutes=x"):
        await assert_json_error(await env.client.get(f"/api/timeline?{q}", headers=env.bearer), 400)


async def test_health(env: Env) -> None:
    env.hub.set_health("camera", "ok", "picamera2")
    env.hub.set_health("microphone", "down", "unplugged")
    env.hub.metrics.update({"fps": 4.8, "face_ms_p50": 31.5})
    env.hub.models = [{"name": "face", "file": "f.tflite", "sha256": "ab" * 32, "bytes": 10, "backend": "litert",
                       "input": {"shape": [1, 48, 48, 1]}}]
    body = await (await env.client.get("/api/health", headers=env.bearer)).json()
    assert body["sources"]["microphone"]["status"] == "down" and body["metrics"]["fps"] == 4.8
    assert body["models"][0] == {"name": "face", "file": "f.tflite", "sha256": "ab" * 32, "bytes": 10,
                                 "backend": "litert"}
    assert {"cpu_percent", "temperature_c", "memory_used_percent", "disk_used_percent"} <= set(body["system"])
    assert body["store"]["available"] is True and body["version"]


def _parse_prometheus(text: str) -> dict[str, float]:
    """A strict-enough parser of the text format: every sample is `name{labels} value`."""
    import re

    samples = {}
    types: dict[str, str] = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types and kind in ("gauge", "counter")
            types[name] = kind
            continue
        if line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"bad sample line: {line!r}"
        name = m.group(1)
        assert name in types, f"{name} has no TYPE"
        samples[name + (m.group(2) or "")] = float(m.group(4))
    return samples


async def test_metrics(env: Env) -> None:
    env.hub.states.publish(fake_state("fear", 0.7, t=env.hub.clock()))
    env.hub.set_health("camera", "ok")
    env.hub.set_health("microphone", "down", 'bad "quote"\nnewline')
    env.hub.metrics.update({"fps": 5.0, "face_ms_p50": 30.0, "voice_window_ms_p50": 12.0, "cpu_temp_c": 51.0})
    await until(lambda: env.hub.events.subscribers >= 1)  # the observer counts events
    env.alarm.raise_alarm(priority="medium")
    await asyncio.sleep(0)
    r = await env.client.get("/metrics", headers=env.bearer)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = _parse_prometheus(await r.text())
    assert s['medtrack_state{label="fear"}'] == 1 and s['medtrack_state{label="happy"}'] == 0
    assert s["medtrack_distress_score"] == 0.7 and s["medtrack_alarm_active"] == 1
    assert s['medtrack_alarm_events_total{kind="raised",priority="medium"}'] == 1
    assert s["medtrack_analysed_fps"] == 5.0
    assert s['medtrack_stage_latency_ms{stage="face",stat="p50"}'] == 30.0
    assert s['medtrack_stage_latency_ms{stage="voice_window",stat="p50"}'] == 12.0
    assert s['medtrack_source_up{source="camera"}'] == 1 and s['medtrack_source_up{source="microphone"}'] == 0
    assert s["medtrack_cpu_temp_c"] == 51.0   # the one temperature series
    assert "medtrack_system_temperature_c" not in s


async def test_sse_delivers_state_and_alarm(env: Env) -> None:
    await login(env)
    resp = await env.client.get("/api/stream")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")

    async def next_event() -> tuple[str, dict]:
        name, data = "", ""
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and name:
                return name, json.loads(data)

    name, first = await asyncio.wait_for(next_event(), 5)
    assert name == "state" and first["state"] is None
    env.hub.states.publish(fake_state("sad", 0.5))
    name, got = await asyncio.wait_for(next_event(), 5)
    assert name == "state" and got["state"]["label"] == "sad"
    env.alarm.raise_alarm()
    name, got = await asyncio.wait_for(next_event(), 5)
    assert name == "alarm" and got["event"]["kind"] == "raised" and got["alarm"]["active"] is True
    resp.close()


async def test_security_headers(env: Env) -> None:
    r = await env.client.get("/login")
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
    r = await env.client.get("/api/status", headers=env.bearer)
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("header", "lang"), [
    ("fr-CA,fr;q=0.9", "fr"), ("en-GB,en;q=0.9,fr;q=0.8", "en"), ("de-DE,fr;q=0.5,en;q=0.4", "fr"),
    ("de", "en"), ("", "en"), ("fr;q=0.2,en;q=0.9", "en"), ("fr;q=abc,en", "en"),
])
async def test_language_from_accept_language(env: Env, header: str, lang: str) -> None:
    text = await (await env.client.get("/login", headers={"Accept-Language": header})).text()
    assert f'<html lang="{lang}">' in text


async def test_i18n_complete_and_static_has_no_external_urls() -> None:
    strings = web.strings()
    assert set(strings) == {"en", "fr"} and set(strings["en"]) == set(strings["fr"])
    assert all(v.strip() for lang in strings.values() for v in lang.values())
    for f in web.STATIC_DIR.iterdir():
        text = f.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, f.name
        assert "<script>" not in text and " on" + "click=" not in text, f.name  # no inline script
    import re

    keys = set()
    for f in web.STATIC_DIR.glob("*.html"):
        keys |= set(re.findall(r"\{\{(\w+)\}\}", f.read_text()))
        keys |= set(re.findall(r'data-i18n="(\w+)"', f.read_text()))
    assert keys <= set(strings["en"]), keys - set(strings["en"])


async def test_serve_binds_and_stops(tmp_path: Path, unused_tcp_port: int) -> None:
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)},
                                "web": {"host": "127.0.0.1", "port": unused_tcp_port}})
    hub = Hub(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(web.serve(hub, stop))
    await until(lambda: "web" in hub.health)
    assert hub.health["web"].status == "ok"
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{unused_tcp_port}/healthz") as r:
        assert r.status == 200
    # a second server on the same port reports a clear error instead of crashing
    hub2 = Hub(cfg)
    stop2 = asyncio.Event()
    task2 = asyncio.create_task(web.serve(hub2, stop2))
    await until(lambda: "web" in hub2.health)
    assert hub2.health["web"].status == "down" and "set [web] port" in hub2.health["web"].detail
    stop.set()
    stop2.set()
    await asyncio.wait_for(asyncio.gather(task, task2), 5)


async def test_serve_bad_tls_is_clear(tmp_path: Path) -> None:
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)},
                                "web": {"tls_cert": str(tmp_path / "no.pem"), "tls_key": str(tmp_path / "no.key")}})
    hub = Hub(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(web.serve(hub, stop))
    await until(lambda: "web" in hub.health)
    assert hub.health["web"].status == "down" and "tls_cert" in hub.health["web"].detail
    stop.set()
    await task


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_tls_serves_https_with_secure_cookie(tmp_path: Path, unused_tcp_port: int) -> None:
    import ssl

    import aiohttp

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)},
                                "web": {"host": "127.0.0.1", "port": unused_tcp_port,
                                        "tls_cert": str(cert), "tls_key": str(key)}})
    hub = Hub(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(web.serve(hub, stop))
    await until(lambda: "web" in hub.health)
    assert hub.health["web"].detail.startswith("https://")
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    token = auth_mod.load_or_create_token(auth_mod.token_path(tmp_path))
    base = f"https://127.0.0.1:{unused_tcp_port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s, \
            s.post(base + "/login", data={"token": token}, allow_redirects=False) as r:
        assert r.status == 303
        assert r.cookies[auth_mod.SESSION_COOKIE]["secure"]
        assert "max-age" in r.headers["Strict-Transport-Security"]
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_pause_from_the_api_silences_shows_and_ends_by_itself(tmp_path: Path) -> None:
    """The real alarm logic on an injected clock behind the API: a pause acknowledges a sounding
    distress alarm, /api/status shows it with its end time, and it ends by itself."""
    from edge.alarm_service import AlarmService
    from edge.events import EmotionState

    cfg = config_mod.from_dict({"service": {"state_dir": str(tmp_path)}})
    clock = Clock()
    hub = Hub(cfg, clock=clock)
    service = AlarmService(hub, clock=clock, thermal_glob=None)
    service.install()
    store = store_mod.attach(hub)
    auth = Authenticator(auth_mod.token_path(tmp_path), clock=clock)
    client = TestClient(TestServer(web.make_app(hub, store, cfg, auth=auth)))
    await client.start_server()
    bearer = {"Authorization": f"Bearer {auth.token}"}

    def feed(distress: float, seconds: float) -> None:
        for _ in range(int(seconds * 2)):
            clock.t += 0.5
            service.on_state(EmotionState(t=clock.t, time="2026-01-01T00:00:00.000Z",
                                          probs=(1 - distress, 0, 0, 0, distress, 0, 0), label="fear",
                                          confidence=0.9, distress=distress, modalities={}, live=("face",)))
    try:
        feed(0.7, 7)
        status = await (await client.get("/api/status", headers=bearer)).json()
        assert status["alarm"]["active"] and status["alarm"]["audible"] and status["pause_minutes"] == [5, 15, 30]
        await assert_json_error(await client.post("/api/pause", json={"minutes": 10}, headers=bearer), 400)
        await assert_json_error(await client.post("/api/pause", json={"minutes": 15}), 401)
        r = await client.post("/api/pause", json={"minutes": 15, "by": "Ana"}, headers=bearer)
        body = await r.json()
        assert r.status == 200
        assert [(e["kind"], e["by"]) for e in body["events"]] == [("paused", "web:Ana"), ("acknowledged", "web:Ana")]
        status = await (await client.get("/api/status", headers=bearer)).json()
        pause = status["alarm"]["pause"]
        assert not status["alarm"]["audible"] and status["alarm"]["signal"]["visual"] == "paused"
        assert pause["by"] == "web:Ana" and pause["remaining_s"] == 900.0 and pause["until"].endswith("Z")
        feed(0.7, 900)                                   # distress goes on during the care: held, then
        status = await (await client.get("/api/status", headers=bearer)).json()
        assert status["alarm"]["pause"] is None and status["alarm"]["audible"]   # over: it sounds again
        events = (await (await client.get("/api/events?limit=10", headers=bearer)).json())["events"]
        assert [e["kind"] for e in events][:3] == ["resounded", "resumed", "acknowledged"]
        assert events[1]["detail"]["reason"] == "pause_ended"
        await assert_json_error(await client.post("/api/resume", headers=bearer), 409)
        r = await client.post("/api/pause", json={"minutes": 5}, headers=bearer)
        assert r.status == 200
        r = await client.post("/api/resume", json={"by": "Ana"}, headers=bearer)
        assert r.status == 200 and (await r.json())["events"][0]["kind"] == "resumed"
    finally:
        await client.close()


async def test_pause_needs_csrf_from_a_browser_session(env: Env) -> None:
    await login(env)
    await assert_json_error(await env.client.post("/api/pause", json={"minutes": 5}), 403)
    await assert_json_error(await env.client.post("/api/resume"), 403)
