"""Access control for the status page and API: the access token, session cookies, CSRF, login
rate limiting, and ``medtrack token``.

- The token is made at first start and kept, mode 0600, in ``<state_dir>/web_token``; it is re-read
  when the file changes, so ``medtrack token --rotate`` takes effect without a restart.
- API clients send ``Authorization: Bearer <token>`` (CSRF-safe: browsers never add it by themselves).
- The page logs in with a form; the session cookie (HttpOnly, SameSite=Strict, Secure under TLS)
  is signed with the token, so rotating the token ends every session.
- Cookie sessions must send ``X-CSRF-Token`` on mutating requests, equal to the readable
  ``medtrack_csrf`` cookie, which is itself bound to the session (double submit, signed).
- Logging out revokes the session on the server (``<state_dir>/web_revoked``, kept until the
  session would have expired, so a copied cookie stays dead across a restart).
- Failed logins (form or bearer, malformed ones included) are rate-limited per client address (an
  IPv6 client by its /64). Only the guesser waits: a wave of failures from many addresses is logged
  but never locks out a client that has not failed itself.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TOKEN_FILE = "web_token"
REVOKED_FILE = "web_revoked"
MAX_REVOKED = 10_000
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


def client_key(address: str | None) -> str:
    """The rate-limit key of a peer address: the address itself, an IPv6 one by its /64 (one host
    usually owns a whole /64)."""
    if not address:
        return "?"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class RateLimiter:
    """Sliding window of failures per client: a client with ``per_client`` failures in ``window_s``
    waits. More than ``overall`` failures in the window from everyone together (a distributed guess)
    is logged as a warning once per window; it never makes a client that has not failed wait."""

    def __init__(self, per_client: int = 5, overall: int = 50, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, max_clients: int = 10_000):
        self.per_client, self.overall, self.window_s, self.clock = per_client, overall, window_s, clock
        self.max_clients = max_clients
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()
        self._warned_at = float("-inf")
        self._throttle_logged_at = float("-inf")

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, client: str) -> float:
        """0 if this client may try now, else seconds to wait."""
        now = self.clock()
        key = client_key(client)
        q = self._fails.get(key)
        if q is None:
            return 0.0
        self._trim(q, now)
        if not q:
            del self._fails[key]
            return 0.0
        return max(0.0, q[0] + self.window_s - now) if len(q) >= self.per_client else 0.0

    def failed(self, client: str) -> None:
        now = self.clock()
        key = client_key(client)
        q = self._fails.pop(key, None) or deque(maxlen=self.per_client)
        q.append(now)
        self._fails[key] = q   # most recently failed last
        while len(self._fails) > self.max_clients:   # bound memory: forget the longest-quiet client
            self._fails.popitem(last=False)
        if len(q) == self.per_client and now - self._throttle_logged_at >= 10.0:
            self._throttle_logged_at = now   # one line per 10 s at most, whatever the scan
            log.warning("web: %s is throttled after %d failed logins within %.0f s", key, self.per_client,
                        self.window_s)
        self._trim(self._all, now)
        self._all.append(now)
        if len(self._all) > self.overall and now - self._warned_at >= self.window_s:
            self._warned_at = now
            log.warning("web: %d failed logins from %d addresses in the last %.0f s: someone may be "
                        "guessing the access token (each address is throttled after %d)", len(self._all),
                        len(self._fails), self.window_s, self.per_client)

    def overall_failures(self) -> int:
        self._trim(self._all, self.clock())
        return len(self._all)


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
        self._revoked: dict[str, int] = {}   # session nonce -> its expiry (epoch s)
        if enabled:
            if self.token_file is None:
                raise AuthError("web auth is on but no token file was given")
            self._token = load_or_create_token(self.token_file)
            self._mtime = self._stat()
            self._revoked = self._load_revoked()

    @property
    def revoked_file(self) -> Path | None:
        return self.token_file.with_name(REVOKED_FILE) if self.token_file else None

    def _load_revoked(self) -> dict[str, int]:
        path = self.revoked_file
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path and path.exists() else {}
        except (OSError, ValueError) as exc:
            log.warning("web: revoked sessions file %s unreadable (%s); ignoring it", path, exc)
            return {}
        now = self.clock()
        if not isinstance(data, dict):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int) and v >= now}

    def _save_revoked(self) -> None:
        path = self.revoked_file
        if path is None:
            return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._revoked, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:  # still revoked in memory until the next restart
            log.error("web: cannot save revoked sessions to %s (%s); make it writable", path, exc.strerror)
            with contextlib.suppress(OSError):
                tmp.unlink()

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
        """True for the current token; False for anything else, undecodable bytes included."""
        token = self.token
        if not token or not isinstance(candidate, str) or not candidate.isascii():
            return False
        return hmac.compare_digest(candidate.encode(), token.encode())

    def _sign(self, *parts: str) -> str:
        return hmac.new(self.token.encode(), "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> tuple[str, str]:
        """(session cookie value, csrf cookie value) for a successful login."""
        nonce = secrets.token_urlsafe(16)
        expires = str(int(self.clock()) + SESSION_MAX_AGE_S)
        return f"{nonce}.{expires}.{self._sign('session', nonce, expires)}", self.csrf_for(nonce)

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie proves, or None (bad signature, expired, or token rotated)."""
        if not cookie or len(cookie) > 512 or not cookie.isascii():
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
            return None
        nonce, expires, sig = parts
        if not hmac.compare_digest(sig, self._sign("session", nonce, expires)):
            return None
        if int(expires) < self.clock() or nonce in self._revoked:
            return None
        return Session(nonce, int(expires))

    def revoke(self, session: Session) -> None:
        """End a session on the server (logout): its cookie is refused from now on, also after a
        restart, until it would have expired anyway."""
        now = self.clock()
        self._revoked = {n: e for n, e in self._revoked.items() if e >= now}
        self._revoked[session.nonce] = session.expires
        while len(self._revoked) > MAX_REVOKED:   # bound the file: drop what expires first
            del self._revoked[min(self._revoked, key=self._revoked.__getitem__)]
        self._save_revoked()

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
