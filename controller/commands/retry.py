"""`lockgate retry VERSION`: run a failed migration again, from the files in --dir."""

from __future__ import annotations

import argparse
import signal

from lockgate.controller import config
from lockgate.controller.commands.common import (
    add_dir,
    add_dsn,
    add_fleet,
    add_wait,
    describe,
    engine_errors_exit,
    stop_on,
)
from lockgate.controller.engine import Blocked, Engine
from lockgate.controller.fleet import config as fleet_config
from lockgate.controller.ledger import ApplierBusy
from lockgate.hooks import migrationset
from lockgate.hooks.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("migration_version", metavar="VERSION", help="the failed migration's version")
    add_dir(parser)
    add_dsn(parser)
    add_fleet(parser, target=True)
    add_wait(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load(dir=args.dir, dsn=args.dsn, fleet=args.fleet)
    if settings.fleet is not None and args.target is None:
        raise UsageError("retry in a fleet clears one target's failure: name it with --target NAME")
    # A fleet's sticky failures are per target: one target's is cleared, the others stay.
    (dsn,) = fleet_config.dsns(settings, args.target).values()
    migrations = migrationset.load(settings.dir)
    migration = migrations.by_version().get(args.migration_version)
    if migration is None:
        raise UsageError(f"no migration {args.migration_version} in {settings.dir}")
    try:
        with (
            stop_on(signal.SIGTERM) as stop,
            Engine(settings, dsn, wait=args.wait, stop=stop) as engine,
        ):
            outcome = engine.apply(migration, retry=True)
    except (ApplierBusy, Blocked) as exc:
        return engine_errors_exit(exc)
    print(describe(outcome))
    return 0 if outcome.status == "applied" else 1
