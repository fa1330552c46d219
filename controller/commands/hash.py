from __future__ import annotations

import argparse

from lockgate.controller.commands.common import add_dir
from lockgate.hooks import migrationset, sumfile
from lockgate.hooks.settings import lint_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dir(parser)


def run(args: argparse.Namespace) -> int:
    settings = lint_settings(dir=args.dir)
    migrations = migrationset.load(settings.dir)
    migrationset.parse_all(migrations)
    path = sumfile.write(migrations)
    print(f"wrote {path} ({len(migrations.files())} files)")
    return 0
