"""Options shared by several commands (each with its LOCKGATE_* environment twin), and how they stop and fail."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="migrations directory (LOCKGATE_DIR, default: migrations)")


def add_pg_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-version", type=int, help="target PostgreSQL major version (LOCKGATE_TARGET_PG_VERSION)"
    )


def add_dsn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", help="database to migrate (LOCKGATE_DSN; libpq's PG* variables also work)"
    )


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")) -> None:
    parser.add_argument("--format", choices=choices, default="text", help="output format")


def add_repo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help="git URL or path to watch (LOCKGATE_REPO; default: the repository here)")
    parser.add_argument("--branch", help="branch whose first-parent history counts (LOCKGATE_BRANCH, default: main)")


def add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="wait for another running applier instead of exiting with 1"
    )


@contextmanager
def stop_on(*signums: signal.Signals) -> Iterator[threading.Event]:
    """An event these signals set instead of killing the process: the current batch (checkpointed)
    or statement finishes and the run stops cleanly."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signums}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def engine_errors_exit(exc: Exception) -> int:
    print(f"lockgate: {exc}", file=sys.stderr)
    return 1
