"""The two HTML pages (status, login) in the browser's language, their strings (static/i18n.json)
and their static files; ``GET /``, ``GET /static/<file>``, ``GET /favicon.ico``."""

from __future__ import annotations

import html
import json
import re
import secrets
from functools import lru_cache
from pathlib import Path

from aiohttp import web

from edge.outputs.auth import CSRF_COOKIE
from edge.outputs.web.base import AUTH

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json",
                ".svg": "image/svg+xml", ".html": "text/html"}
PUBLIC_STATIC = {"app.css", "login.js", "i18n.json", "favicon.svg", "common.js"}
LANGS = ("en", "fr")


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


async def index(request: web.Request) -> web.Response:
    lang = pick_language(request)
    resp = web.Response(text=render_page("index.html", lang, {"lang": lang}), content_type="text/html")
    if not request.app[AUTH].enabled and not request.cookies.get(CSRF_COOKIE):
        resp.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(16), samesite="Strict", path="/",
                        secure=request.secure, httponly=False)
    return resp


def login_page(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    lang = pick_language(request)
    page = render_page("login.html", lang, {"lang": lang, "error": error})
    return web.Response(text=page, status=status, content_type="text/html")


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
