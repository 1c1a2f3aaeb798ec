"""Minimal sd_notify(3): datagrams to $NOTIFY_SOCKET (path or abstract '@name'); no-ops when unset.

No dependency on libsystemd or python-systemd; every function returns True when a datagram was sent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(env: Mapping[str, str]) -> str | bytes | None:
    addr = env.get("NOTIFY_SOCKET", "")
    if not addr:
        return None
    if addr.startswith("@"):
        return b"\0" + addr[1:].encode()  # Linux abstract namespace
    if addr.startswith("/"):
        return addr
    log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract '@' socket; ignoring it", addr)
    return None


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when a notification socket is configured (we run under systemd with Type=notify)."""
    return _address(os.environ if env is None else env) is not None


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one sd_notify message (e.g. "READY=1\\nSTATUS=up"); False when unset or on error."""
    addr = _address(os.environ if env is None else env)
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify(%r) failed: %s", message.split("\n", 1)[0], exc)
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """READY=1: startup finished (systemd starts the watchdog clock and ends `start`)."""
    return notify("READY=1" + (f"\nSTATUS={status_text}" if status_text else ""))


def watchdog() -> bool:
    """WATCHDOG=1: keep-alive; missing it for WatchdogSec= gets the service killed and restarted."""
    return notify("WATCHDOG=1")


def stopping(status_text: str | None = None) -> bool:
    """STOPPING=1: graceful shutdown has begun."""
    return notify("STOPPING=1" + (f"\nSTATUS={status_text}" if status_text else ""))


def status(text: str) -> bool:
    """STATUS=<text>: one line shown by `systemctl status`."""
    return notify("STATUS=" + text.replace("\n", " "))


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """WatchdogSec= in seconds from $WATCHDOG_USEC, or None when no watchdog is requested for us.

    Honours $WATCHDOG_PID as sd_watchdog_enabled(3) does: ignore the variable when it names another process.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None
