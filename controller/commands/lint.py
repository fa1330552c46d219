from __future__ import annotations

import argparse
import os
from pathlib import Path

from lockgate.controller.commands.common import add_dir, add_pg_version
from lockgate.hooks.errors import InputError, Problem
from lockgate.hooks.lint import lint_paths
from lockgate.hooks.report import FORMATS
from lockgate.hooks.settings import lint_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="*", type=Path,
        help="SQL files, or directories whose SQL files (at any depth) are linted (default: the files in --dir)",
    )
    add_dir(parser)
    add_pg_version(parser)
    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    settings = lint_settings(dir=args.dir, pg_version=args.pg_version)
    if not args.files and not settings.dir.is_dir():
        raise InputError.at(settings.dir, 1, 1, "migrations directory not found")
    files = _sql_files(args.files) if args.files else sorted(settings.dir.glob("*.sql"))
    linked = _linked_out(files)
    if linked:
        raise InputError(linked)
    result = lint_paths(files, pg_version=settings.target_pg_version)
    output = FORMATS[args.format](result.findings)
    if output:
        print(output)
    if result.bad_input:
        return 2
    return 1 if result.findings else 0


def _linked_out(files: list[Path]) -> list[Problem]:
    """Files reached through a symbolic link that leads out of the working tree: lint never follows
    those (a committed link could point a hook at any file on the machine)."""
    root = Path.cwd().resolve()
    return [
        Problem(f, 1, 1, "a symbolic link out of the repository; lockgate does not follow it")
        for f in files
        if (target := f.resolve()) != Path(os.path.abspath(f)) and not target.is_relative_to(root)
    ]


def _sql_files(given: list[Path]) -> list[Path]:
    """The .sql files named, and those under each directory named (hidden files and folders skipped)."""
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            files.extend(sorted(
                f for f in path.rglob("*.sql")
                if not any(part.startswith(".") for part in f.relative_to(path).parts) and not f.is_dir()
            ))
        elif path.suffix == ".sql":
            files.append(path)
    return files
