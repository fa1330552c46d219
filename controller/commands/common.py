"""What several commands share: options (each with its LOCKGATE_* environment twin), the stop
signal, the one-line report of an outcome, and the exit for a run the ledger or lock refused."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `lockgate lint` imports these options and must not pay for psycopg, argparse or threading
    import argparse
    import signal
    import threading

    from lockgate.controller.outcome import RunResult


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


def add_fleet(parser: argparse.ArgumentParser, *, target: bool = False) -> None:
    parser.add_argument("--fleet", type=Path, help="YAML fleet file naming the target databases (LOCKGATE_FLEET)")
    if target:
        parser.add_argument("--target", help="the fleet target to act on, by its name in the fleet file")


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")) -> None:
    parser.add_argument("--format", choices=choices, default="text", help="output format")


def add_repo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help="git URL or path to watch (LOCKGATE_REPO; default: the repository here)")
    parser.add_argument("--branch", help="branch whose first-parent history counts (LOCKGATE_BRANCH, default: main)")


def add_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="wait for another running applier instead of exiting with 1"
    )


def describe(outcome: RunResult) -> str:
    """One line per migration for the terminal."""
    label = f"{outcome.status:<11} {outcome.version}_{outcome.name} ({outcome.duration_s:.2f}s)"
    if outcome.status == "applied":
        gates = [g for g in outcome.validation if g.passed is not None]
        rows = ", ".join(
            f"{t} {outcome.rows_before.get(t, '-')}→{outcome.rows_after.get(t, '-')}"
            for t in sorted(outcome.rows_before.keys() | outcome.rows_after.keys())
        )
        extra = f"{len(gates)} gates passed" + (f"; rows {rows}" if rows else "")
        return f"{label}: {outcome.reason or extra}"
    where = f" [{outcome.where}]" if outcome.where else ""
    return f"{label}: {outcome.reason}{where}"


@contextmanager
def stop_on(*signums: signal.Signals) -> Iterator[threading.Event]:
    """An event these signals set instead of killing the process: the current batch (checkpointed)
    or statement finishes and the run stops cleanly."""
    import signal
    import threading

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


def pause_switch(args: argparse.Namespace, *, paused: bool) -> int:
    """Flip the switch that holds every batched backfill of the database between batches."""
    from lockgate.controller import db
    from lockgate.controller.checkpoints import ensure_tables, set_paused
    from lockgate.controller.config import load

    settings = load(dsn=args.dsn)
    with db.connect(db.target_dsn(settings)) as conn:
        ensure_tables(conn, settings.ledger_schema)
        set_paused(conn, settings.ledger_schema, paused)
    state = "paused: running backfills wait after their current batch" if paused else "resumed"
    print(f"batched backfills {state}")
    return 0
