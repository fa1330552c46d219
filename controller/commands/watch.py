"""`lockgate watch`: `lockgate sync` every --interval until SIGTERM or SIGINT, then exit 0."""

from __future__ import annotations

import argparse

from lockgate.controller import watch
from lockgate.controller.commands import sync


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sync.add_pass_arguments(parser)
    parser.add_argument(
        "--interval", help="time between passes, e.g. 30s or 5min (LOCKGATE_WATCH_INTERVAL, default: 60s)"
    )


def run(args: argparse.Namespace) -> int:
    settings = sync.settings_of(args, watch_interval=args.interval)
    sync.show_progress()
    with sync.stop_on_signals() as stop:
        watch.run(settings, stop, wait=args.wait)
    return 0
