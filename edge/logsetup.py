"""Logging setup: journald-friendly under systemd, timestamped on a terminal.

Under systemd ($JOURNAL_STREAM or $INVOCATION_ID set) each line is ``<P>LEVEL name: message`` on
stdout with no timestamp (journald adds its own) and the sd-daemon(3) priority prefix ``<P>``, so
``journalctl -p warning`` works. Elsewhere: ``2025-01-01 12:00:00,000 LEVEL name: message`` on stderr.

Under systemd, faulthandler is enabled too: when the watchdog fires (SIGABRT), every thread's stack
goes to the journal, which shows where the pipeline hung. Call ``setup(config.service.log_level)``
once at the start of ``medtrack run``.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

# syslog priorities (sd-daemon(3)): 2 crit, 3 err, 4 warning, 6 info, 7 debug
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

_HANDLER_NAME = "medtrack"


def under_systemd(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def syslog_priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class JournalFormatter(logging.Formatter):
    """``<P>LEVEL name: message``; continuation lines (tracebacks) keep the same priority."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def setup(level: str | int = "INFO", env: Mapping[str, str] | None = None,
          stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger (idempotent: replaces the handler it installed before)."""
    journal = under_systemd(env)
    handler = logging.StreamHandler(stream or (sys.stdout if journal else sys.stderr))
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JournalFormatter() if journal
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if journal and not faulthandler.is_enabled():
        faulthandler.enable()  # a watchdog SIGABRT dumps every thread's stack into the journal
    for noisy in ("PIL", "picamera2"):  # picamera2 logs every configuration at INFO
        if logging.getLogger(noisy).level == logging.NOTSET:
            logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
    return handler
