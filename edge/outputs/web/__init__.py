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

The package, one job a module: :mod:`.app` (the application, TLS, :func:`serve`), :mod:`.security`
(auth, login, CSRF, headers), :mod:`.pages` (HTML pages, strings, static files), :mod:`.api` (the
JSON API, /metrics, the in-memory fallback), :mod:`.sse` (the live stream), :mod:`.connections`
(slow, idle and malformed clients) and :mod:`.base` (what they share).
"""

from edge.outputs.web.api import Recent
from edge.outputs.web.app import make_app, serve, start_site, tls_context
from edge.outputs.web.base import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, MAX_BODY_BYTES, RECENT, STORE
from edge.outputs.web.connections import (
    FD_RESERVE,
    HANDLER_ARGS,
    MAX_CONNECTIONS,
    ConnectionGuard,
    LogLimiter,
    QuietAccept,
    max_connections,
)
from edge.outputs.web.pages import STATIC_DIR, strings
from edge.outputs.web.sse import MAX_SSE_CLIENTS, MAX_SSE_PER_CLIENT

__all__ = [
    "BODY_TIMEOUT_S", "FD_RESERVE", "HANDLER_ARGS", "HEADER_TIMEOUT_S", "MAX_BODY_BYTES", "MAX_CONNECTIONS",
    "MAX_SSE_CLIENTS", "MAX_SSE_PER_CLIENT", "RECENT", "STATIC_DIR", "STORE", "ConnectionGuard", "LogLimiter", "QuietAccept",
    "Recent", "make_app", "max_connections", "serve", "start_site", "strings", "tls_context",
]
