"""Who may do what: token and session auth (``/login``, ``/logout``), CSRF and same-origin checks
on changes, and the security headers of every answer (CSP, no framing, no caching)."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from edge.outputs.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, SESSION_MAX_AGE_S
from edge.outputs.web import base
from edge.outputs.web.base import AUTH, SERVER_NAME, SESSION, WHO, Handler, json_error
from edge.outputs.web.pages import LANGS, PUBLIC_STATIC, login_page, pick_language, strings

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; media-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


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


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
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


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


async def login_get(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTH]
    if not auth.enabled or auth.session(request.cookies.get(SESSION_COOKIE)):
        raise web.HTTPSeeOther("/")
    return login_page(request)


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
        async with asyncio.timeout(base.BODY_TIMEOUT_S):
            form = await request.post()
    except web.HTTPException:
        auth.limiter.failed(client)
        raise
    except TimeoutError:
        auth.limiter.failed(client)
        raise web.HTTPRequestTimeout(reason=f"login form not received within {base.BODY_TIMEOUT_S:.0f} s") from None
    except Exception:  # noqa: BLE001 - any malformed form (bad bytes, broken multipart) is the client's
        auth.limiter.failed(client)
        return json_error(400, "login form could not be read; send token=<the access token> as UTF-8")
    token = form.get("token")
    if not isinstance(token, str) or not auth.check_token(token.strip()):
        wait = auth.limiter.retry_after(client)   # a valid token always logs in; wrong ones wait
        if wait > 0:
            if _wants_html(request):
                resp = login_page(request, 429, text["login_rate"].replace("{s}", str(max(1, int(wait + 0.999)))))
                resp.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return resp
            return _too_many(wait)
        auth.limiter.failed(client)
        if _wants_html(request):
            return login_page(request, 401, text["login_bad"])
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
