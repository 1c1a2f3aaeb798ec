"""Status page, JSON API, live stream (SSE) and Prometheus metrics for admins on the ward LAN.

Runs in the service's event loop (aiohttp). Routes:

- ``GET /healthz`` (no auth, no data), ``GET /login`` + ``POST /login`` (form), ``POST /logout``
- ``GET /`` the page; ``GET /static/<file>`` its files (no data: the login page needs them)
- ``GET /api/status``, ``GET /api/events?since=&limit=``, ``GET /api/timeline?minutes=``,
  ``GET /api/health``, ``GET /api/stream`` (SSE), ``GET /metrics``
- ``POST /api/acknowledge`` ``{"long": false, "by": "name"}``, ``POST /api/silence`` (long silence)
- ``POST /api/pause`` ``{"minutes": 15, "by": "name"}`` (care in progress), ``POST /api/resume``

Every 4xx/5xx answer is JSON ``{"error": "...", "status": N}``, malformed HTTP included; bodies are
capped at ``MAX_BODY_BYTES``. No image or audio is ever served: only labels, scores and events.

Against slow and idle clients (:class:`ConnectionGuard`): a connection must send its request
headers within ``HEADER_TIMEOUT_S`` and a body within ``BODY_TIMEOUT_S``; open connections are
capped below the open-file limit, and at the cap the oldest connection with no request in
progress is closed to make room, so idle sockets cannot take the page down. Errors about
refused connections or malformed requests are one log line, at most one per ``LOG_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import re
import resource
import secrets
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler

from edge import __version__
from edge import store as store_mod
from edge.alarm import PAUSE_MINUTES
from edge.config import Config
from edge.events import AlarmEvent, EmotionState, utc_now_iso
from edge.labels import LABELS
from edge.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edge.metrics import AlarmCounters, SystemStats, render
from edge.outputs.auth import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    Authenticator,
    AuthError,
    Session,
    client_key,
    token_path,
)

if TYPE_CHECKING:
    from edge.hub import Hub
    from edge.store import EventStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json",
                ".svg": "image/svg+xml", ".html": "text/html"}
PUBLIC_STATIC = {"app.css", "login.js", "i18n.json", "favicon.svg", "common.js"}
MAX_BODY_BYTES = 16 * 1024
MAX_SSE_CLIENTS = 20
MAX_SSE_PER_CLIENT = 4          # live-update streams one client address may hold
SSE_WRITE_TIMEOUT_S = 10.0      # a live client that stops reading is dropped
HEADER_TIMEOUT_S = 10.0         # request headers must arrive within this (also the keep-alive idle)
BODY_TIMEOUT_S = 10.0           # a request body must arrive within this
MAX_CONNECTIONS = 512           # open connections, further capped by the open-file limit
FD_RESERVE = 128                # files kept free for the store, models, capture and logs
LOG_EVERY_S = 10.0              # at most one line per kind of connection-level error this often
SERVER_NAME = "medtrack"        # the Server header: no software version
SSE_MIN_INTERVAL_S = 0.25       # live states at most 4 per second per client
SSE_HEARTBEAT_S = 15.0
TIMELINE_MEMORY_S = 1800.0
LANGS = ("en", "fr")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; media-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
_BY_RE = re.compile(r"^[\w .'@-]{1,40}$")

HUB = web.AppKey("hub", object)
STORE = web.AppKey("store", object)
CONFIG = web.AppKey("config", Config)
AUTH = web.AppKey("auth", Authenticator)
RECENT = web.AppKey("recent", object)
COUNTERS = web.AppKey("counters", AlarmCounters)
SYSTEM = web.AppKey("system", SystemStats)
CLOSING = web.AppKey("closing", asyncio.Event)
SSE_CLIENTS = web.AppKey("sse_clients", dict)   # live stream -> its client key
GUARD = web.AppKey("guard", object)
WHO = web.RequestKey("who", str)
SESSION = web.RequestKey("session", Session)


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "status": status, **extra}, status=status)


# ---------------------------------------------------------------------------- i18n and pages

@lru_cache(maxsize=1)
def strings() -> dict[str, dict[str, str]]:
    """The page strings, {lang: {key: text}} (static/i18n.json, also served to the page)."""
    return json.loads((STATIC_DIR / "i18n.json").read_text(encoding="utf-8"))


def pick_language(request: web.Request) -> str:
    """?lang= first, then Accept-Language (by q-value), else English."""
    forced = request.query.get("lang", "")
    if forced in LANGS:
        return forced
    best, best_q = "en", -1.0
    for i, part in enumerate(request.headers.get("Accept-Language", "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if lang in LANGS and q - i * 1e-3 > best_q:
            best, best_q = lang, q - i * 1e-3
    return best


@lru_cache(maxsize=8)
def _template(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def render_page(name: str, lang: str, extra: dict[str, str] | None = None) -> str:
    """Fill {{key}} from the language's strings (HTML-escaped) and {{=name}} from ``extra``."""
    table = strings()[lang]
    values = extra or {}

    def sub(m: re.Match[str]) -> str:
        key = m[1]
        if key.startswith("="):
            return html.escape(values.get(key[1:], ""))
        return html.escape(table.get(key, strings()["en"].get(key, key)))

    return re.sub(r"\{\{(=?\w+)\}\}", sub, _template(name))


# ---------------------------------------------------------------------------- recent memory

class Recent:
    """In-memory last events and 30-min timeline: the fallback when the store is unavailable."""

    def __init__(self, wall_clock: Callable[[], float] = time.time):
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        self.timeline: deque[list[Any]] = deque(maxlen=int(TIMELINE_MEMORY_S) + 60)
        self.wall_clock = wall_clock
        self._last_ts = float("-inf")

    def add_event(self, event: AlarmEvent) -> None:
        self.events.appendleft(event.to_dict())

    def add_state(self, state: EmotionState, alarm: bool) -> None:
        now = self.wall_clock()
        alarm_i = 1 if alarm else 0
        if now - self._last_ts < 1.0 and self.timeline and self.timeline[-1][3] == alarm_i:
            return
        self._last_ts = now
        self.timeline.append([int(now * 1000), state.label, round(float(state.distress), 4), alarm_i])

    def query_events(self, since: str | None, limit: int) -> list[dict[str, Any]]:
        return [e for e in self.events if not since or e["time"] >= since][:limit]

    def query_timeline(self, seconds: float) -> list[list[Any]]:
        start_ms = (self.wall_clock() - seconds) * 1000
        return [row for row in self.timeline if row[0] >= start_ms]


# ---------------------------------------------------------------------------- middlewares

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON; no exception escapes as a bare 500 page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.content_type == "application/json":
            raise
        message = exc.reason
        if exc.status == 413:
            message = f"request body too large (limit {MAX_BODY_BYTES} bytes)"
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after", "www-authenticate")}
        resp = json_error(exc.status, message)
        resp.headers.update(headers)
        return resp
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("web: unexpected error on %s %s", request.method, request.path)
        return json_error(500, "internal error; see the service log")


def _is_public(path: str) -> bool:
    if path in ("/healthz", "/login", "/favicon.ico"):
        return True
    return path.startswith("/static/") and path[len("/static/"):] in PUBLIC_STATIC


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc.lower() == request.host.lower()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    auth = request.app[AUTH]
    mutating = request.method not in ("GET", "HEAD", "OPTIONS")
    if _is_public(request.path):
        return await handler(request)
    if not auth.enabled:
        request[WHO] = "web"
        if mutating and not _csrf_ok_without_session(request):
            return json_error(403, f"missing or wrong {CSRF_HEADER} header (reload the page)")
        return await handler(request)
    client = request.remote or "?"
    header = request.headers.get("Authorization", "")
    if header:
        # a valid token always works; only wrong ones are throttled, per address (the guesser waits)
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip() and auth.check_token(token.strip()):
            request[WHO] = "web:api"
            return await handler(request)
        wait = auth.limiter.retry_after(client)
        if wait > 0:
            return _too_many(wait)
        auth.limiter.failed(client)
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("Authorization must be 'Bearer <token>'")
        return _unauthorized("wrong token; see `medtrack token` on the box")
    cookie = request.cookies.get(SESSION_COOKIE)
    session = auth.session(cookie)
    if session is None:
        if cookie and not cookie.isascii():   # no browser of ours holds such a cookie: a probe
            auth.limiter.failed(client)
        if request.method == "GET" and request.path == "/":
            lang = request.query.get("lang")
            raise web.HTTPSeeOther("/login" + (f"?lang={lang}" if lang in LANGS else ""))
        return _unauthorized("log in first, or send 'Authorization: Bearer <token>'")
    if mutating:
        if not _same_origin(request):
            return json_error(403, "cross-origin request refused")
        if not auth.check_csrf(session, request.headers.get(CSRF_HEADER), request.cookies.get(CSRF_COOKIE)):
            return json_error(403, f"missing or wrong {CSRF_HEADER} header (reload the page)")
    request[WHO] = "web"
    request[SESSION] = session
    return await handler(request)


def _unauthorized(message: str) -> web.Response:
    resp = json_error(401, message)
    resp.headers["WWW-Authenticate"] = 'Bearer realm="medtrack"'
    return resp


def _too_many(wait: float) -> web.Response:
    secs = max(1, int(wait + 0.999))
    resp = json_error(429, f"too many failed logins; try again in {secs} s", retry_after_s=secs)
    resp.headers["Retry-After"] = str(secs)
    return resp


def _csrf_ok_without_session(request: web.Request) -> bool:
    header = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(header) and secrets.compare_digest(header, cookie) and _same_origin(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h[hdrs.SERVER] = SERVER_NAME
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")  # no-referrer would make Origin "null"
    h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")
    if request.secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")


# ---------------------------------------------------------------------------- helpers

def _hub(request: web.Request) -> Hub:
    return request.app[HUB]  # type: ignore[return-value]


def _store(request: web.Request) -> EventStore | None:
    return request.app[STORE]  # type: ignore[return-value]


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name}: expected an integer from {lo} to {hi}, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(reason=f"{name}: must be from {lo} to {hi}, got {value}")
    return value


async def _read_body(request: web.Request) -> bytes:
    """The request body within BODY_TIMEOUT_S (408 for a client that sends it too slowly)."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await request.read()  # raises 413 beyond client_max_size
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason=f"request body not received within {BODY_TIMEOUT_S:.0f} s") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); 4xx for anything else."""
    body = await _read_body(request)
    if not body.strip():
        return {}
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(reason="send JSON with Content-Type: application/json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(reason="body is not valid JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(reason="body must be a JSON object")
    return data


def _snapshot(hub: Hub) -> dict[str, Any]:
    try:
        snap = hub.alarm_snapshot()
    except Exception:  # noqa: BLE001 - a broken snapshot must not break the page
        log.exception("web: alarm snapshot failed")
        return {"active": False, "error": "alarm state unavailable"}
    return snap if isinstance(snap, dict) else {"active": False}


_state_cache: list[Any] = [None, None]  # [state object, its to_dict()]: one serialisation per state


def _state_dict(state: EmotionState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    if _state_cache[0] is not state:
        _state_cache[:] = [state, state.to_dict()]
    return _state_cache[1]  # type: ignore[no-any-return]


def _state_payload(hub: Hub) -> dict[str, Any]:
    state = hub.latest_state
    return {
        "state": _state_dict(state),
        "age_s": round(hub.clock() - state.t, 2) if state else None,
        "alarm": _snapshot(hub),
    }


# ---------------------------------------------------------------------------- handlers

async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def index(request: web.Request) -> web.Response:
    lang = pick_language(request)
    resp = web.Response(text=render_page("index.html", lang, {"lang": lang}), content_type="text/html")
    if not request.app[AUTH].enabled and not request.cookies.get(CSRF_COOKIE):
        resp.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(16), samesite="Strict", path="/",
                        secure=request.secure, httponly=False)
    return resp


def _login_page(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    lang = pick_language(request)
    page = render_page("login.html", lang, {"lang": lang, "error": error})
    return web.Response(text=page, status=status, content_type="text/html")


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


async def login_get(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    if not auth.enabled or auth.session(request.cookies.get(SESSION_COOKIE)):
        raise web.HTTPSeeOther("/")
    return _login_page(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    if not auth.enabled:
        raise web.HTTPSeeOther("/")
    lang = pick_language(request)
    text = strings()[lang]
    if not _same_origin(request):
        return json_error(403, "cross-origin login refused")
    client = request.remote or "?"
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        auth.limiter.failed(client)
        raise web.HTTPUnsupportedMediaType(reason="log in with a form: token=<the access token>")
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            form = await request.post()
    except web.HTTPException:
        auth.limiter.failed(client)
        raise
    except TimeoutError:
        auth.limiter.failed(client)
        raise web.HTTPRequestTimeout(reason=f"login form not received within {BODY_TIMEOUT_S:.0f} s") from None
    except Exception:  # noqa: BLE001 - any malformed form (bad bytes, broken multipart) is the client's
        auth.limiter.failed(client)
        return json_error(400, "login form could not be read; send token=<the access token> as UTF-8")
    token = form.get("token")
    if not isinstance(token, str) or not auth.check_token(token.strip()):
        wait = auth.limiter.retry_after(client)   # a valid token always logs in; wrong ones wait
        if wait > 0:
            if _wants_html(request):
                resp = _login_page(request, 429, text["login_rate"].replace("{s}", str(max(1, int(wait + 0.999)))))
                resp.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return resp
            return _too_many(wait)
        auth.limiter.failed(client)
        if _wants_html(request):
            return _login_page(request, 401, text["login_bad"])
        return json_error(401, "wrong token; see `medtrack token` on the box")
    session, csrf = auth.new_session()
    resp = web.HTTPSeeOther("/" + (f"?lang={request.query['lang']}" if request.query.get("lang") in LANGS else ""))
    resp.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", secure=request.secure,
                    path="/", max_age=SESSION_MAX_AGE_S)
    resp.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="Strict", secure=request.secure,
                    path="/", max_age=SESSION_MAX_AGE_S)
    raise resp


async def logout(request: web.Request) -> web.Response:
    session = request.get(SESSION)
    if session is not None:   # ended on the server: the old cookie is refused from now on
        request.app[AUTH].revoke(session)
    resp = web.json_response({"ok": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    resp.del_cookie(CSRF_COOKIE, path="/")
    return resp


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or name.endswith(".html") or not path.is_file():
        raise web.HTTPNotFound(reason=f"no such file: {name[:60]}")
    ctype = STATIC_TYPES.get(path.suffix)
    if ctype is None:
        raise web.HTTPNotFound(reason=f"no such file: {name[:60]}")
    return web.FileResponse(path, headers={"Content-Type": f"{ctype}; charset=utf-8" if ctype != "image/svg+xml"
                                           else ctype, "Cache-Control": "no-cache"})


async def favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/static/favicon.svg")


async def api_status(request: web.Request) -> web.Response:
    hub, cfg = _hub(request), request.app[CONFIG]
    body = {
        "device_id": cfg.service.device_id,
        "location": cfg.service.location,
        "version": __version__,
        "time": utc_now_iso(),
        "auth": request.app[AUTH].enabled,
        **_state_payload(hub),
        "thresholds": {"on": cfg.alarm.on_threshold, "off": cfg.alarm.off_threshold,
                       "high": cfg.alarm.high_threshold},
        "silence_s": {"ack": cfg.alarm.ack_silence_s, "long": cfg.alarm.long_press_silence_s},
        "pause_minutes": list(PAUSE_MINUTES),
        "labels": list(LABELS),
        "store": _store(request) is not None,
        "uptime_s": round(hub.uptime_s(), 1),
        "health": {name: h.status for name, h in sorted(hub.health.items())},
    }
    return web.json_response(body)


async def api_events(request: web.Request) -> web.Response:
    limit = _int_param(request, "limit", 50, 1, 1000)
    since_raw = request.query.get("since")
    if since_raw is not None and len(since_raw) > 64:
        raise web.HTTPBadRequest(reason="since: too long")
    try:
        since = store_mod.parse_since(since_raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    store = _store(request)
    if store is not None:
        try:
            events = store.query_events(since, limit)
            return web.json_response({"events": events, "source": "store"})
        except Exception as exc:  # noqa: BLE001 - fall back to memory rather than fail the page
            log.error("web: event query failed: %s", exc)
    events = request.app[RECENT].query_events(since, limit)  # type: ignore[attr-defined]
    return web.json_response({"events": events, "source": "memory"})


async def api_timeline(request: web.Request) -> web.Response:
    minutes = _int_param(request, "minutes", 30, 1, 24 * 60)
    store = _store(request)
    rows: list[list[Any]] | None = None
    if store is not None:
        try:
            rows = store.timeline(minutes * 60.0)
        except Exception as exc:  # noqa: BLE001
            log.error("web: timeline query failed: %s", exc)
    if rows is None:
        rows = request.app[RECENT].query_timeline(minutes * 60.0)  # type: ignore[attr-defined]
    return web.json_response({"columns": ["t_ms", "label", "distress", "alarm"], "points": rows,
                              "now_ms": int(time.time() * 1000)})


def _who(request: web.Request, data: dict[str, Any]) -> str:
    who = request.get(WHO, "web")
    if "by" in data:
        by = data["by"]
        if not isinstance(by, str) or not _BY_RE.match(by.strip()):
            raise web.HTTPBadRequest(reason="by: 1-40 letters, digits, spaces or . ' @ -")
        who = f"web:{by.strip()}"
    return who


async def _ack(request: web.Request, long: bool) -> web.Response:
    data = await _json_body(request)
    if "long" in data:
        if not isinstance(data["long"], bool):
            raise web.HTTPBadRequest(reason="long: expected true or false")
        long = long or data["long"]
    who = _who(request, data)
    event = _hub(request).acknowledge(who, long)
    if event is None:
        return json_error(409, "no active alarm to acknowledge", alarm=_snapshot(_hub(request)))
    return web.json_response({"event": event.to_dict(), "alarm": _snapshot(_hub(request))})


async def api_acknowledge(request: web.Request) -> web.Response:
    return await _ack(request, long=False)


async def api_silence(request: web.Request) -> web.Response:
    return await _ack(request, long=True)


async def api_pause(request: web.Request) -> web.Response:
    data = await _json_body(request)
    minutes = data.get("minutes", 15)
    if isinstance(minutes, bool) or minutes not in PAUSE_MINUTES:
        raise web.HTTPBadRequest(reason=f"minutes: one of {', '.join(map(str, PAUSE_MINUTES))}")
    events = _hub(request).pause(int(minutes), _who(request, data))
    if not events:
        return json_error(503, "alarm logic not running; try again shortly")
    return web.json_response({"events": [e.to_dict() for e in events], "alarm": _snapshot(_hub(request))})


async def api_resume(request: web.Request) -> web.Response:
    data = await _json_body(request)
    events = _hub(request).resume(_who(request, data))
    if not events:
        return json_error(409, "monitoring is not paused", alarm=_snapshot(_hub(request)))
    return web.json_response({"events": [e.to_dict() for e in events], "alarm": _snapshot(_hub(request))})


def _model_info(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "file", "version", "sha256", "bytes", "backend")
    return {k: info[k] for k in keys if k in info}


async def api_health(request: web.Request) -> web.Response:
    hub = _hub(request)
    store = _store(request)
    store_info: dict[str, Any] = {"available": store is not None}
    if store is not None:
        with contextlib.suppress(Exception):
            store_info["size_mb"] = round(store.size_bytes() / 2**20, 2)
    body = {
        "time": utc_now_iso(),
        "version": __version__,
        "uptime_s": round(hub.uptime_s(), 1),
        "sources": {name: h.to_dict() for name, h in sorted(hub.health.items())},
        "metrics": {k: v for k, v in hub.metrics.items() if isinstance(v, int | float | str | bool)},
        "system": request.app[SYSTEM].read(),
        "models": [_model_info(m) for m in hub.models if isinstance(m, dict)],
        "store": store_info,
        "live_clients": len(request.app[SSE_CLIENTS]),
    }
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    text = render(_hub(request), request.app[COUNTERS], request.app[SYSTEM].read())
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``state`` (state + alarm snapshot, at most 4/s), ``alarm`` (an event)."""
    app = request.app
    if len(app[SSE_CLIENTS]) >= MAX_SSE_CLIENTS:
        return json_error(503, f"too many live clients (limit {MAX_SSE_CLIENTS})")
    peer = client_key(request.remote)
    if sum(1 for p in app[SSE_CLIENTS].values() if p == peer) >= MAX_SSE_PER_CLIENT:
        return json_error(429, f"too many live streams from your address (limit {MAX_SSE_PER_CLIENT}); "
                          "close a tab")
    hub = _hub(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    states = hub.states.subscribe(maxsize=4, name="sse")
    events = hub.events.subscribe(maxsize=64, name="sse")
    app[SSE_CLIENTS][resp] = peer
    loop = asyncio.get_running_loop()
    closing = asyncio.ensure_future(app[CLOSING].wait())
    get_state = asyncio.ensure_future(states.get())
    get_event = asyncio.ensure_future(events.get())
    pending_state = False
    last_sent = float("-inf")
    async def write(data: bytes) -> None:
        async with asyncio.timeout(SSE_WRITE_TIMEOUT_S):   # a client that stops reading is dropped
            await resp.write(data)

    try:
        await write(b"retry: 3000\n\n" + _sse("state", _state_payload(hub)))
        last_sent = loop.time()
        while True:
            timeout = SSE_HEARTBEAT_S
            if pending_state:
                timeout = max(0.0, last_sent + SSE_MIN_INTERVAL_S - loop.time())
            done, _ = await asyncio.wait({closing, get_state, get_event}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if closing in done:
                break
            out = b""
            if get_event in done:
                out += _sse("alarm", {"event": get_event.result().to_dict(), "alarm": _snapshot(hub)})
                get_event = asyncio.ensure_future(events.get())
                pending_state = True
            if get_state in done:
                get_state.result()
                get_state = asyncio.ensure_future(states.get())
                pending_state = True
            if pending_state and loop.time() - last_sent >= SSE_MIN_INTERVAL_S:
                out += _sse("state", _state_payload(hub))
                pending_state = False
                last_sent = loop.time()
            if not out and not done:
                out = b": ping\n\n"
            if out:
                await write(out)
    except (ConnectionResetError, asyncio.CancelledError, RuntimeError, TimeoutError):
        pass
    finally:
        for task in (closing, get_state, get_event):
            task.cancel()
        states.close()
        events.close()
        app[SSE_CLIENTS].pop(resp, None)
    return resp


# ---------------------------------------------------------------------------- connections

class LogLimiter:
    """One log line per ``every_s`` for a kind of repeated problem; the lines in between are
    counted and reported with the next one."""

    def __init__(self, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def log(self, logger: logging.Logger, level: int, kind: str, message: str) -> bool:
        now = self.clock()
        if now - self._last.get(kind, float("-inf")) < self.every_s:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return False
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        logger.log(level, "%s%s", message, f" (and {skipped} more like it since the last report)" if skipped else "")
        return True


def max_connections(limit: int = MAX_CONNECTIONS) -> int:
    """The connection cap: ``limit``, or fewer when the open-file limit leaves less room."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(16, min(limit, soft - FD_RESERVE))


class ConnectionGuard:
    """Open connections of the server, oldest first, and which of them are handling a request.

    At the cap, a new connection makes the oldest idle one (no request in progress: an idle
    keep-alive, or a client still dribbling its headers) close; when every connection is busy the
    new one is closed instead."""

    def __init__(self, limit: int = MAX_CONNECTIONS, log_limiter: LogLimiter | None = None):
        self.limit = limit
        self.logs = log_limiter or LogLimiter()
        self.evicted = 0
        self.refused = 0
        self._conns: dict[asyncio.BaseTransport, int] = {}   # insertion order = age; value: requests in progress

    def __len__(self) -> int:
        return len(self._conns)

    def opened(self, transport: asyncio.BaseTransport) -> None:
        self._conns[transport] = 0
        if len(self._conns) <= self.limit:
            return
        victim = next((t for t, busy in self._conns.items() if not busy and t is not transport), transport)
        if victim is transport:
            self.refused += 1
        else:
            self.evicted += 1
        self._conns.pop(victim, None)
        victim.abort()
        self.logs.log(log, logging.WARNING, "cap",
                      f"web: {self.limit} connections open (the cap); closing the oldest idle one "
                      f"({self.evicted} closed, {self.refused} refused so far)")

    def closed(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is not None:
            self._conns.pop(transport, None)

    def busy(self, transport: asyncio.BaseTransport | None, delta: int) -> None:
        if transport is not None and transport in self._conns:
            self._conns[transport] = max(0, self._conns[transport] + delta)


@web.middleware
async def busy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Mark the connection busy while its request is handled (busy connections are never evicted)."""
    guard: ConnectionGuard = request.app[GUARD]  # type: ignore[assignment]
    transport = request.transport
    guard.busy(transport, 1)
    try:
        return await handler(request)
    finally:
        guard.busy(transport, -1)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler, reporting to a :class:`ConnectionGuard`, answering malformed
    HTTP with JSON and logging it as one rate-limited line instead of a traceback."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self.guard = guard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.guard.opened(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.guard.closed(self.transport)
        super().connection_lost(exc)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}" \
            if isinstance(exc, BaseException) else "error"
        self.guard.logs.log(log, logging.INFO, "http", f"web: request failed ({what})")

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:   # a bug, not the client: keep its traceback (rate-limited)
            if self.guard.logs.log(log, logging.ERROR, "http500", "web: internal error answering a request"):
                log.debug("web: the internal error", exc_info=exc)
        else:
            self.log_exception("error", exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send an error")
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error"
        detail = (message or "").splitlines()[0][:200] if message else ""
        resp = json_error(status, f"{reason}: {detail}" if detail and status < 500 else reason)
        resp.headers[hdrs.SERVER] = SERVER_NAME
        resp.force_close()
        return resp


class _QuietAccept:
    """Event-loop exception handler: ``accept()`` failures (out of file descriptors) as one line
    per LOG_EVERY_S, everything else to the previous handler."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limiter: LogLimiter):
        self.loop, self.limiter = loop, limiter
        self.previous = loop.get_exception_handler()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept()"):
            exc = context.get("exception")
            self.limiter.log(log, logging.ERROR, "accept", f"web: cannot accept connections ({exc}); "
                             "raise LimitNOFILE in the service unit")
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


# ---------------------------------------------------------------------------- app

async def _observer(app: web.Application) -> AsyncIterator[None]:
    """Feed the alarm counters and the in-memory fallback from the hub's streams."""
    hub: Hub = app[HUB]  # type: ignore[assignment]
    recent: Recent = app[RECENT]  # type: ignore[assignment]
    counters = app[COUNTERS]
    states = hub.states.subscribe(maxsize=8, name="web-observer")
    events = hub.events.subscribe(maxsize=256, name="web-observer")

    async def watch_events() -> None:
        async for ev in events:
            counters.observe(ev)
            recent.add_event(ev)

    async def watch_states() -> None:
        async for st in states:
            recent.add_state(st, bool(_snapshot(hub).get("active")))

    tasks = [asyncio.create_task(watch_events()), asyncio.create_task(watch_states())]
    yield
    for t in tasks:
        t.cancel()
    states.close()
    events.close()


async def _on_shutdown(app: web.Application) -> None:
    app[CLOSING].set()


def make_app(hub: Hub, store: EventStore | None, config: Config, *, auth: Authenticator | None = None,
             system: SystemStats | None = None) -> web.Application:
    """The aiohttp application. ``auth`` defaults to the token in [service] state_dir (made if
    missing) when [web] auth is on."""
    if auth is None:
        auth = Authenticator(token_path(config.service.state_dir) if config.web.auth else None,
                             enabled=config.web.auth)
    app = web.Application(client_max_size=MAX_BODY_BYTES,
                          middlewares=[busy_middleware, error_middleware, auth_middleware])
    app[HUB] = hub
    app[STORE] = store
    app[CONFIG] = config
    app[AUTH] = auth
    app[RECENT] = Recent()
    app[COUNTERS] = AlarmCounters()
    app[SYSTEM] = system or SystemStats(config.service.state_dir)
    app[CLOSING] = asyncio.Event()
    app[SSE_CLIENTS] = {}
    app[GUARD] = ConnectionGuard()
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(_observer)
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/", index)
    r.add_get("/login", login_get)
    r.add_post("/login", login_post)
    r.add_post("/logout", logout)
    r.add_get("/favicon.ico", favicon)
    r.add_get("/static/{name}", static_file)
    r.add_get("/api/status", api_status)
    r.add_get("/api/events", api_events)
    r.add_get("/api/timeline", api_timeline)
    r.add_get("/api/health", api_health)
    r.add_get("/api/stream", stream)
    r.add_post("/api/acknowledge", api_acknowledge)
    r.add_post("/api/silence", api_silence)
    r.add_post("/api/pause", api_pause)
    r.add_post("/api/resume", api_resume)
    r.add_get("/metrics", metrics)
    return app


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server TLS context; ValueError with a one-line message when the files are unusable."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"web: cannot use tls_cert {cert} / tls_key {key} ({exc}); check both "
                         "paths, that they are PEM, and that the key matches the certificate") from None
    return ctx


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through a :class:`GuardedRequestHandler`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(runner, host, port, **kwargs)
        self.guard = guard

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def factory() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, loop=loop, guard=self.guard, **HANDLER_ARGS)

        self._server = await loop.create_server(
            factory, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=HEADER_TIMEOUT_S if self._ssl_context else None)


HANDLER_ARGS: dict[str, Any] = {"access_log": None, "keepalive_timeout": HEADER_TIMEOUT_S,
                                "lingering_time": 2.0, "max_headers": 64}


async def start_site(app: web.Application, host: str, port: int,
                     ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Start serving ``app``; returns the runner (``await runner.cleanup()`` to stop) and the bound
    port (useful with port 0)."""
    guard: ConnectionGuard = app[GUARD]  # type: ignore[assignment]
    guard.limit = min(guard.limit, max_connections())
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0, **HANDLER_ARGS)
    await runner.setup()
    site = GuardedSite(runner, host, port, guard, ssl_context=ssl_context, backlog=256)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = port
    for sock in (site._server.sockets if site._server else []):  # type: ignore[union-attr]
        bound = sock.getsockname()[1]
        break
    return runner, bound


async def serve(hub: Hub, stop: asyncio.Event, store: EventStore | None = None) -> None:
    """Output protocol: serve the page and API until ``stop``. Any setup problem is one clear log
    line and health "web" down; it never stops the service (the alarm still sounds)."""
    cfg = hub.config
    try:
        auth = Authenticator(token_path(cfg.service.state_dir) if cfg.web.auth else None, enabled=cfg.web.auth)
        ssl_ctx = tls_context(cfg.web.tls_cert, cfg.web.tls_key) if cfg.web.tls_cert else None
    except (AuthError, ValueError) as exc:
        log.error("%s", exc)
        hub.set_health("web", "down", str(exc))
        await stop.wait()
        return
    if not cfg.web.auth:
        log.warning("web: authentication is OFF ([web] auth = false): anyone on the network can "
                    "see the page and acknowledge alarms")
    app = make_app(hub, store, cfg, auth=auth)
    loop = asyncio.get_running_loop()
    quiet = _QuietAccept(loop, app[GUARD].logs)  # type: ignore[attr-defined]
    loop.set_exception_handler(quiet)
    try:
        try:
            runner, port = await start_site(app, cfg.web.host, cfg.web.port, ssl_ctx)
        except OSError as exc:
            msg = (f"web: cannot listen on {cfg.web.host}:{cfg.web.port} ({exc.strerror or exc}); "
                   "is another program using the port? set [web] port or host")
            log.error("%s", msg)
            hub.set_health("web", "down", msg)
            await stop.wait()
            return
        url = f"{'https' if ssl_ctx else 'http'}://{cfg.web.host}:{port}/"
        log.info("web: status page on %s (at most %d connections)", url, app[GUARD].limit)  # type: ignore[attr-defined]
        hub.set_health("web", "ok", url)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        if loop.get_exception_handler() is quiet:
            loop.set_exception_handler(quiet.previous)
