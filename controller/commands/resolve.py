"""`lockgate resolve VERSION --as applied|rolled_back`: clear a dirty migration by hand."""

from __future__ import annotations

import argparse

from lockgate.controller import config, db
from lockgate.controller.commands.common import add_dsn, add_wait, engine_errors_exit
from lockgate.controller.engine import Blocked, Engine
from lockgate.controller.ledger import ApplierBusy
from lockgate.controller.outcome import Outcome


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("migration_version", metavar="VERSION", help="the dirty migration's version")
    parser.add_argument(
        "--as", dest="status", required=True, type=Outcome, choices=(Outcome.APPLIED, Outcome.ROLLED_BACK),
        help="what the database now holds, after a human looked",
    )
    parser.add_argument("--note", default="", help="why, kept in the ledger's history")
    add_dsn(parser)
    add_wait(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load(dsn=args.dsn)
    try:
        with Engine(settings, db.target_dsn(settings), wait=args.wait) as engine:
            engine.resolve(args.migration_version, args.status, note=args.note)
    except (ApplierBusy, Blocked) as exc:
        return engine_errors_exit(exc)
    print(f"{args.migration_version} resolved as {args.status}")
    return 0
