"""`lockgate verify-rollback`: prove each migration's down undoes its up, in a scratch database.

For each migration chosen (all, or those whose files are named, as pre-commit passes them): the
round trip of `lockgate.controller.roundtrip`. Exit 1 when there are findings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lockgate.controller import config, db
from lockgate.controller.commands.common import add_dir, add_dsn
from lockgate.controller.roundtrip import verify
from lockgate.hooks import migrationset
from lockgate.hooks.migrationset import FILE_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", help="verify only the migrations these files belong to")
    add_dir(parser)
    add_dsn(parser)


def run(args: argparse.Namespace) -> int:
    settings = config.load(dir=args.dir, dsn=args.dsn)
    migrations = migrationset.load(settings.dir)
    migrationset.parse_all(migrations)
    if args.files:
        named = {m["version"] for f in args.files if (m := FILE_NAME.match(Path(f).name))}
        chosen = {m.version for m in migrations.migrations if m.version in named}
    else:
        chosen = {m.version for m in migrations.migrations}
    findings = verify(settings, migrations.migrations, chosen, db.target_dsn(settings) or None)
    for finding in findings:
        print(finding)
    if not findings:
        print(f"verify-rollback: {len(chosen)} migration(s) round-tripped cleanly "
              "(up, validate, down, schema equal, up again)")
    return 1 if findings else 0
