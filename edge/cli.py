"""The `medtrack` command line: argument parsing and dispatch only; each command lives in its module.

Commands: run, demo, check, test-alarm, token, events export, config --print-default / --check.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edge import __version__
from edge.config import ConfigError


def _config_cmd(args: argparse.Namespace) -> int:
    from edge import config

    if args.print_default:
        print(config.default_toml())
        return 0
    if args.config:   # every error in the file, one line each
        errors = config.check_file(args.config)
        for error in errors:
            print(f"medtrack: config error: {error}", file=sys.stderr)
        if errors:
            return 2
    print(f"{args.config or 'default configuration'}: valid")
    return 0


# command -> (module, function); each function takes the parsed args and returns an exit status.
COMMANDS = {
    "run": ("edge.service", "cli_run"),
    "demo": ("edge.demo", "cli_demo"),
    "check": ("edge.selfcheck", "cli_check"),
    "test-alarm": ("edge.outputs.gpio", "cli_test_alarm"),
    "token": ("edge.outputs.auth", "cli_token"),
    "events": ("edge.store", "cli_events"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medtrack", description="MedTrack Edge distress-alarm box")
    p.add_argument("--version", action="version", version=f"medtrack {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service (the real device, or your own recordings)")
    run.add_argument("--config", help="TOML config file (default: built-in defaults)")
    run.add_argument("--video", help="video file instead of the camera")
    run.add_argument("--audio", help="WAV/FLAC file instead of the microphone")
    run.add_argument("--keep-serving", action="store_true",
                     help="with --video/--audio: keep the status page up after the files end (Ctrl-C to stop)")

    demo = sub.add_parser("demo", help="full pipeline on bundled media; no camera, mic or GPIO needed")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0 = until Ctrl-C)")
    demo.add_argument("--port", type=int, default=8080, help="status page port")
    demo.add_argument("--host", default="127.0.0.1", help="status page bind address")
    demo.add_argument("--state-dir", help="where the demo keeps its events and token "
                      "(default: ~/.local/state/medtrack-demo, kept after the demo)")
    demo.add_argument("--config", help="TOML config overriding the demo defaults")
    demo.add_argument("--once", action="store_true", help="play the 2-minute story once, then stop")
    demo.add_argument("--fast", action="store_true",
                      help="play as fast as the CPU allows, alarm timers on the media's clock (tests)")

    check = sub.add_parser("check", help="self-test: camera, mic, models, GPIO, port, disk, temperature")
    check.add_argument("--config", help="TOML config file")
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    ta = sub.add_parser("test-alarm", help="play the alarm patterns once on the configured pins")
    ta.add_argument("--config", help="TOML config file")
    ta.add_argument("--priority", choices=["high", "medium", "low", "technical", "all"], default="all")

    tok = sub.add_parser("token", help="print the status page / API access token")
    tok.add_argument("--config", help="TOML config file")
    tok.add_argument("--rotate", action="store_true", help="make a new token (the old one stops working)")

    ev = sub.add_parser("events", help="event history")
    ev_sub = ev.add_subparsers(dest="events_command", required=True)
    exp = ev_sub.add_parser("export", help="export events as CSV or JSON")
    exp.add_argument("--config", help="TOML config file")
    exp.add_argument("--since", help="ISO-8601 date/time (UTC), e.g. 2026-11-01 or 2026-11-01T08:00:00Z")
    exp.add_argument("--format", choices=["csv", "json"], default="csv")
    exp.add_argument("--output", "-o", help="file to write (default: stdout)")
    exp.add_argument("--state-dir", help="folder of the event database (default: [service] state_dir; "
                     "the demo's: ~/.local/state/medtrack-demo)")

    cfg = sub.add_parser("config", help="print the default config or check a config file")
    cfg.add_argument("--print-default", action="store_true", help="print a commented default config")
    cfg.add_argument("--config", help="config file to check")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "config":
            return _config_cmd(args)
        module_name, func_name = COMMANDS[args.command]
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"medtrack: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
