"""Access control for the status page and API: the access token, session cookies, CSRF, login
rate limiting, and ``medtrack token``.

- The token is made at first start and kept, mode 0600, in ``<state_dir>/web_token``; it is re-read
  when the file changes, so ``medtrack token --rotate`` takes effect without a restart.
- API clients send ``Authorization: Bearer <token>`` (CSRF-safe: browsers never add it by themselves).
- The page logs in with a form; the session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
  is signed with the token, so rotating the token ends every session.
- Cookie sessions must send ``X-CSRF-Token`` on mutating requests, equal to the readable
  ``medtrack_csrf`` cookie, which is itself bound to the session (double submit, signed).
- Failed logins (form or bearer) are rate-limited per client address and overall.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TOKEN_FILE = "web_token"
SESSION_COOKIE = "medtrack_session"
CSRF_COOKIE = "medtrack_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600


class AuthError(RuntimeError):
    """The token file cannot be made or read; str(err) is one line naming the file and the fix."""


def token_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / TOKEN_FILE


def _write_token(path: Path) -> str:
    token = secrets.token_urlsafe(24)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


def load_or_create_token(path: str | Path, rotate: bool = False) -> str:
    """Read the token at ``path`` (making it, mode 0600, if missing or if ``rotate``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if rotate or not path.exists():
            return _write_token(path)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # never leave it readable by others
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuthError(f"access token {path} cannot be read or created ({exc.strerror}); make "
                        f"{path.parent} writable by the service user, or set [service] state_dir") from None
    if len(token) < 16:
        raise AuthError(f"access token {path} is empty or too short; run `medtrack token --rotate`")
    return token


class RateLimiter:
    """Sliding-window limit on failures: ``per_client`` per address and ``overall`` in ``window_s``."""

    def __init__(self, per_client: int = 5, overall: int = 50, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self.per_client, self.overall, self.window_s, self.clock = per_client, overall, window_s, clock
        self._fails: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, client: str) -> float:
        """0 if this client may try now, else seconds to wait."""
        now = self.clock()
        self._trim(self._all, now)
        q = self._fails.get(client)
        if q is not None:
            self._trim(q, now)
            if not q:
                del self._fails[client]
        waits = [0.0]
        if q and len(q) >= self.per_client:
            waits.append(q[0] + self.window_s - now)
        if len(self._all) >= self.overall:
            waits.append(self._all[0] + self.window_s - now)
        return max(waits)

    def failed(self, client: str) -> None:
        now = self.clock()
        if len(self._fails) > 10_000:  # bound memory under a scan
            self._fails.clear()
        self._fails.setdefault(client, deque()).append(now)
        self._all.append(now)


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: int


class Authenticator:
    """Token checks, signed session cookies and CSRF tokens. ``enabled=False``: everything passes."""

    def __init__(self, token_file: str | Path | None, enabled: bool = True,
                 clock: Callable[[], float] = time.time, limiter: RateLimiter | None = None):
        self.enabled = enabled
        self.token_file = Path(token_file) if token_file else None
        self.clock = clock
        self.limiter = limiter or RateLimiter()
        self._token = ""
        self._mtime: int | None = None
        if enabled:
            if self.token_file is None:
                raise AuthError("web auth is on but no token file was given")
            self._token = load_or_create_token(self.token_file)
            self._mtime = self._stat()

    def _stat(self) -> int | None:
        try:
            return self.token_file.stat().st_mtime_ns if self.token_file else None
        except OSError:
            return None

    @property
    def token(self) -> str:
        """The current token (re-read after `medtrack token --rotate`)."""
        mtime = self._stat()
        if mtime is not None and mtime != self._mtime:
            try:
                self._token = load_or_create_token(self.token_file)  # type: ignore[arg-type]
                self._mtime = mtime
            except AuthError:
                pass  # keep the token we have
        return self._token

    def check_token(self, candidate: str) -> bool:
        token = self.token
        return bool(token) and hmac.compare_digest(candidate.encode(), token.encode())

    def _sign(self, *parts: str) -> str:
        return hmac.new(self.token.encode(), "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> tuple[str, str]:
        """(session cookie value, csrf cookie value) for a successful login."""
        nonce = secrets.token_urlsafe(16)
        expires = str(int(self.clock()) + SESSION_MAX_AGE_S)
        return f"{nonce}.{expires}.{self._sign('session', nonce, expires)}", self.csrf_for(nonce)

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie proves, or None (bad signature, expired, or token rotated)."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        nonce, expires, sig = parts
        if not hmac.compare_digest(sig, self._sign("session", nonce, expires)):
            return None
        if int(expires) < self.clock():
            return None
        return Session(nonce, int(expires))

    def csrf_for(self, nonce: str) -> str:
        return self._sign("csrf", nonce)

    def check_csrf(self, session: Session, header: str | None, cookie: str | None) -> bool:
        expected = self.csrf_for(session.nonce)
        return bool(header) and bool(cookie) and hmac.compare_digest(header or "", expected) \
            and hmac.compare_digest(cookie or "", expected)


def cli_token(args: argparse.Namespace) -> int:
    """`medtrack token [--rotate]`: print the access token (making it if needed)."""
    from edge import config as config_mod

    cfg = config_mod.load(getattr(args, "config", None))
    path = token_path(cfg.service.state_dir)
    try:
        token = load_or_create_token(path, rotate=bool(getattr(args, "rotate", False)))
    except AuthError as exc:
        print(f"medtrack: {exc}", file=sys.stderr)
        return 1
    if not cfg.web.auth:
        print("medtrack: note: web auth is off in the config ([web] auth = false)", file=sys.stderr)
    if getattr(args, "rotate", False):
        print("medtrack: new token; the old one and every open session stop working now", file=sys.stderr)
    print(token)
    return 0
