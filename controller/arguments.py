"""The `lockgate` command line as argparse reads it: global flags and the chosen command's options."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from lockgate.controller.cli import COMMANDS


def _chosen(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized as shutil would size it but without importing shutil: argparse
    makes one for every add_argument, and shutil brings bz2, lzma and zlib into every `lockgate lint`."""

    def __init__(self, prog: str) -> None:
        columns = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
            except (AttributeError, ValueError, OSError):
                columns = 80
        super().__init__(prog, width=columns - 2)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockgate", description="Production-safe PostgreSQL migrations, run the GitOps way.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen(argv)
    # A known command gets the only subparser: each one costs argparse a round of gettext
    # lookups on disk, which `lockgate lint` in a pre-commit hook would pay fifteen times.
    names = [chosen] if chosen in COMMANDS else list(COMMANDS)
    for name in names:
        module_name, summary = COMMANDS[name]
        command = sub.add_parser(name, help=summary, description=summary, formatter_class=_Formatter)
        if name == chosen:
            module = importlib.import_module(f"lockgate.controller.commands.{module_name}")
            module.add_arguments(command)
            command.set_defaults(run=module.run)
    return parser
