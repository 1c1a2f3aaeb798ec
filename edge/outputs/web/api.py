"""The JSON API: status, events, timeline, health, acknowledge / silence / pause / resume,
``/healthz`` and ``/metrics``; and :class:`Recent`, the events and timeline kept in memory for when
the event store is unavailable."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from edge import __version__
from edge import store as store_mod
from edge.alarm import PAUSE_MINUTES
from edge.events import AlarmEvent, EmotionState, utc_now_iso
from edge.labels import LABELS
from edge.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edge.metrics import render
from edge.outputs.web.base import (
    AUTH,
    CONFIG,
    COUNTERS,
    RECENT,
    SSE_CLIENTS,
    SYSTEM,
    WHO,
    hub_of,
    json_error,
    read_body,
    snapshot,
    state_payload,
    store_of,
)
from edge.timeline import TimelineSampler

log = logging.getLogger(__name__)

TIMELINE_MEMORY_S = 1800.0
_BY_RE = re.compile(r"^[\w .'@-]{1,40}$")


class Recent:
    """In-memory last events and 30-min timeline: the fallback when the store is unavailable."""

    def __init__(self, wall_clock: Callable[[], float] = time.time):
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        self.timeline: deque[list[Any]] = deque(maxlen=int(TIMELINE_MEMORY_S) + 60)
        self.wall_clock = wall_clock
        self._sampler = TimelineSampler()

    def add_event(self, event: AlarmEvent) -> None:
        self.events.appendleft(event.to_dict())

    def add_state(self, state: EmotionState, alarm: bool) -> None:
        row = self._sampler.row(state, alarm, self.wall_clock())
        if row is not None:
            self.timeline.append([int(row[0] * 1000), *row[1:]])

    def query_events(self, since: str | None, limit: int) -> list[dict[str, Any]]:
        return [e for e in self.events if not since or e["time"] >= since][:limit]

    def query_timeline(self, seconds: float) -> list[list[Any]]:
        start_ms = (self.wall_clock() - seconds) * 1000
        return [row for row in self.timeline if row[0] >= start_ms]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


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


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); 4xx for anything else."""
    body = await read_body(request)
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


async def api_status(request: web.Request) -> web.Response:
    hub, cfg = hub_of(request), request.app[CONFIG]
    body = {
        "device_id": cfg.service.device_id,
        "location": cfg.service.location,
        "version": __version__,
        "time": utc_now_iso(),
        "auth": request.app[AUTH].enabled,
        **state_payload(hub),
        "thresholds": {"on": cfg.alarm.on_threshold, "off": cfg.alarm.off_threshold,
                       "high": cfg.alarm.high_threshold},
        "silence_s": {"ack": cfg.alarm.ack_silence_s, "long": cfg.alarm.long_press_silence_s},
        "pause_minutes": list(PAUSE_MINUTES),
        "labels": list(LABELS),
        "store": store_of(request) is not None,
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
    store = store_of(request)
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
    store = store_of(request)
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
    event = hub_of(request).acknowledge(who, long)
    if event is None:
        return json_error(409, "no active alarm to acknowledge", alarm=snapshot(hub_of(request)))
    return web.json_response({"event": event.to_dict(), "alarm": snapshot(hub_of(request))})


async def api_acknowledge(request: web.Request) -> web.Response:
    return await _ack(request, long=False)


async def api_silence(request: web.Request) -> web.Response:
    return await _ack(request, long=True)


async def api_pause(request: web.Request) -> web.Response:
    data = await _json_body(request)
    minutes = data.get("minutes", 15)
    if isinstance(minutes, bool) or minutes not in PAUSE_MINUTES:
        raise web.HTTPBadRequest(reason=f"minutes: one of {', '.join(map(str, PAUSE_MINUTES))}")
    events = hub_of(request).pause(int(minutes), _who(request, data))
    if not events:
        return json_error(503, "alarm logic not running; try again shortly")
    return web.json_response({"events": [e.to_dict() for e in events], "alarm": snapshot(hub_of(request))})


async def api_resume(request: web.Request) -> web.Response:
    data = await _json_body(request)
    events = hub_of(request).resume(_who(request, data))
    if not events:
        return json_error(409, "monitoring is not paused", alarm=snapshot(hub_of(request)))
    return web.json_response({"events": [e.to_dict() for e in events], "alarm": snapshot(hub_of(request))})


def _model_info(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "file", "version", "sha256", "bytes", "backend")
    return {k: info[k] for k in keys if k in info}


async def api_health(request: web.Request) -> web.Response:
    hub = hub_of(request)
    store = store_of(request)
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
    text = render(hub_of(request), request.app[COUNTERS], request.app[SYSTEM].read())
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})
