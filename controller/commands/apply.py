"""`lockgate apply`: apply the pending migrations of a directory to a database, in order.

Exit 0 when everything pending was applied; 1 when a migration failed (or was rolled back,
left dirty or interrupted), when a migration is dirty from before, or when another applier
holds the lock (without --wait); 2 for bad input, found before anything is applied.
"""

from __future__ import annotations

import argparse
import signal

from lockgate.controller import config, db
from lockgate.controller.applying import apply_pending
from lockgate.controller.commands.common import (
    add_dir,
    add_dsn,
    add_format,
    add_wait,
    describe,
    engine_errors_exit,
    stop_on,
)
from lockgate.controller.engine import Blocked, Engine
from lockgate.controller.ledger import ApplierBusy
from lockgate.controller.outcome import RunResult
from lockgate.hooks import migrationset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dir(parser)
    add_dsn(parser)
    add_wait(parser)
    add_format(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load(dir=args.dir, dsn=args.dsn)
    migrations = migrationset.load(settings.dir)
    migrationset.parse_all(migrations)
    outcomes: list[RunResult] = []

    def show(outcome: RunResult) -> None:
        if args.format == "text":
            print(describe(outcome), flush=True)

    try:
        with (
            stop_on(signal.SIGTERM) as stop,
            Engine(settings, db.target_dsn(settings), wait=args.wait, stop=stop) as engine,
        ):
            outcomes = apply_pending(engine, migrations, on_outcome=show)
    except (ApplierBusy, Blocked) as exc:
        return engine_errors_exit(exc)
    if args.format == "json":
        print("[" + ",\n".join(o.model_dump_json() for o in outcomes) + "]")
    elif not outcomes:
        print(f"nothing to apply ({len(migrations.migrations)} migrations already applied)")
    return 0 if all(o.status == "applied" for o in outcomes) else 1
