"""`lockgate plan`: pending migrations, their steps, locks and estimated rows; changes nothing."""

from __future__ import annotations

import argparse
import json

from lockgate.controller import config, db, plan
from lockgate.controller.commands.common import add_dir, add_dsn, add_fleet, add_format
from lockgate.controller.fleet import config as fleet_config
from lockgate.hooks import migrationset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dir(parser)
    add_dsn(parser)
    add_fleet(parser)
    add_format(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load(dir=args.dir, dsn=args.dsn, fleet=getattr(args, "fleet", None))
    migrations = migrationset.load(settings.dir)
    migrationset.parse_all(migrations)
    targets = fleet_config.dsns(settings)
    rendered: dict[str, str] = {}
    for name, dsn in targets.items():
        with db.connect(dsn, application_name="lockgate plan") as conn:
            planned = plan.build(conn, migrations, ledger_schema=settings.ledger_schema, settings=settings)
        rendered[name] = plan.render_json(planned) if args.format == "json" else plan.render_text(planned)
    if settings.fleet is None:
        print(rendered[""])
    elif args.format == "json":  # one document: target name → that target's plan
        print(json.dumps({name: json.loads(text) for name, text in rendered.items()}, indent=2))
    else:
        print("\n".join(f"== {name}\n{text}" for name, text in rendered.items()))
    return 0
