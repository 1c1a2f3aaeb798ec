"""``GET /api/stream``: server-sent events (live states at most 4 per second, alarm events), with
limits per client address and on the whole."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from edge.outputs.auth import client_key
from edge.outputs.web.base import CLOSING, SSE_CLIENTS, hub_of, json_error, snapshot, state_payload

MAX_SSE_CLIENTS = 20
MAX_SSE_PER_CLIENT = 4          # live-update streams one client address may hold
SSE_WRITE_TIMEOUT_S = 10.0      # a live client that stops reading is dropped
SSE_MIN_INTERVAL_S = 0.25       # live states at most 4 per second per client
SSE_HEARTBEAT_S = 15.0


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
    hub = hub_of(request)
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
        await write(b"retry: 3000\n\n" + _sse("state", state_payload(hub)))
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
                out += _sse("alarm", {"event": get_event.result().to_dict(), "alarm": snapshot(hub)})
                get_event = asyncio.ensure_future(events.get())
                pending_state = True
            if get_state in done:
                get_state.result()
                get_state = asyncio.ensure_future(states.get())
                pending_state = True
            if pending_state and loop.time() - last_sent >= SSE_MIN_INTERVAL_S:
                out += _sse("state", state_payload(hub))
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
