"""What every part of the web output shares: the application and request keys, the limits on
requests, the JSON error shape, the request body read, and the hub's state and alarm as served."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from edge.config import Config
from edge.events import EmotionState
from edge.host import SystemStats
from edge.metrics import AlarmCounters
from edge.outputs.auth import Authenticator, Session

if TYPE_CHECKING:
    from edge.hub import Hub
    from edge.store import EventStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 10.0         # request headers must arrive within this (also the keep-alive idle)
BODY_TIMEOUT_S = 10.0           # a request body must arrive within this
SERVER_NAME = "medtrack"        # the Server header: no software version

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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "status": status, **extra}, status=status)


def hub_of(request: web.Request) -> Hub:
    return request.app[HUB]  # type: ignore[return-value]


def store_of(request: web.Request) -> EventStore | None:
    return request.app[STORE]  # type: ignore[return-value]


async def read_body(request: web.Request) -> bytes:
    """The request body within BODY_TIMEOUT_S (408 for a client that sends it too slowly)."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await request.read()  # raises 413 beyond client_max_size
    except TimeoutError:
        raise web.HTTPRequestTimeout(reason=f"request body not received within {BODY_TIMEOUT_S:.0f} s") from None


def snapshot(hub: Hub) -> dict[str, Any]:
    try:
        snap = hub.alarm_snapshot()
    except Exception:  # noqa: BLE001 - a broken snapshot must not break the page
        log.exception("web: alarm snapshot failed")
        return {"active": False, "error": "alarm state unavailable"}
    return snap if isinstance(snap, dict) else {"active": False}


_state_cache: list[Any] = [None, None]  # [state object, its to_dict()]: one serialisation per state


def state_dict(state: EmotionState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    if _state_cache[0] is not state:
        _state_cache[:] = [state, state.to_dict()]
    return _state_cache[1]  # type: ignore[no-any-return]


def state_payload(hub: Hub) -> dict[str, Any]:
    state = hub.latest_state
    return {
        "state": state_dict(state),
        "age_s": round(hub.clock() - state.t, 2) if state else None,
        "alarm": snapshot(hub),
    }
