from __future__ import annotations

import argparse

from lockgate.controller.commands.common import add_dir
from lockgate.hooks.newmigration import create
from lockgate.hooks.settings import lint_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="what the migration does, e.g. add_customer_tier")
    add_dir(parser)


def run(args: argparse.Namespace) -> int:
    settings = lint_settings(dir=args.dir)
    for path in create(settings.dir, args.name):
        print(path)
    return 0
