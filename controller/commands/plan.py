"""`lockgate plan`: pending migrations, their steps, locks and estimated rows; changes nothing."""

from __future__ import annotations

import argparse

from lockgate.controller import config, db, plan
from lockgate.controller.commands.common import add_dir, add_dsn, add_format
from lockgate.hooks import migrationset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dir(parser)
    add_dsn(parser)
    add_format(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load(dir=args.dir, dsn=args.dsn)
    migrations = migrationset.load(settings.dir)
    migrationset.parse_all(migrations)
    with db.connect(db.target_dsn(settings), application_name="lockgate plan") as conn:
        planned = plan.build(conn, migrations, ledger_schema=settings.ledger_schema, settings=settings)
    print(plan.render_json(planned) if args.format == "json" else plan.render_text(planned))
    return 0
