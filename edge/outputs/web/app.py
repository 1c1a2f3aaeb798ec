"""The web output's setup: the aiohttp application (routes, middlewares, the hub observers),
TLS, starting the site, and :func:`serve`, the output protocol's entry point."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from edge.config import Config
from edge.host import SystemStats
from edge.metrics import AlarmCounters
from edge.outputs.auth import Authenticator, AuthError, token_path
from edge.outputs.web.api import (
    Recent,
    api_acknowledge,
    api_events,
    api_health,
    api_pause,
    api_resume,
    api_silence,
    api_status,
    api_timeline,
    healthz,
    metrics,
)
from edge.outputs.web.base import (
    AUTH,
    CLOSING,
    CONFIG,
    COUNTERS,
    GUARD,
    HUB,
    MAX_BODY_BYTES,
    RECENT,
    SSE_CLIENTS,
    STORE,
    SYSTEM,
    Handler,
    json_error,
    snapshot,
)
from edge.outputs.web.connections import (
    HANDLER_ARGS,
    ConnectionGuard,
    GuardedSite,
    QuietAccept,
    busy_middleware,
    max_connections,
)
from edge.outputs.web.pages import favicon, index, static_file
from edge.outputs.web.security import auth_middleware, login_get, login_post, logout, security_headers
from edge.outputs.web.sse import stream

if TYPE_CHECKING:
    from edge.hub import Hub
    from edge.store import EventStore

log = logging.getLogger(__name__)

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
            recent.add_state(st, bool(snapshot(hub).get("active")))

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
    app.on_response_prepare.append(security_headers)
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
    """Output protocol: serve the page and API until ``stop``, with the event history of the
    service's ``store`` (without one, the page keeps its own in memory). Any setup problem is one
    clear log line and health "web" down; it never stops the service (the alarm still sounds)."""
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
    quiet = QuietAccept(loop, app[GUARD].logs)  # type: ignore[attr-defined]
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
