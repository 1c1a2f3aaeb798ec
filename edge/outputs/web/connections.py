"""Against slow, idle and malformed clients: a connection must send its request headers within
``HEADER_TIMEOUT_S`` and a body within ``BODY_TIMEOUT_S``; open connections are capped below the
open-file limit, and at the cap the oldest connection with no request in progress is closed to make
room (:class:`ConnectionGuard`), so idle sockets cannot take the page down. Malformed HTTP is
answered with JSON; errors about refused connections or malformed requests are one log line, at
most one per ``LOG_EVERY_S`` (:class:`LogLimiter`)."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler

from edge.outputs.web.base import GUARD, HEADER_TIMEOUT_S, SERVER_NAME, Handler, json_error

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 512           # open connections, further capped by the open-file limit
FD_RESERVE = 128                # files kept free for the store, models, capture and logs
LOG_EVERY_S = 10.0              # at most one line per kind of connection-level error this often


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


class QuietAccept:
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
