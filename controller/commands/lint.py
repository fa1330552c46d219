from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from lockgate.controller.commands.common import add_dir, add_pg_version
from lockgate.hooks.errors import InputError, Problem
from lockgate.hooks.lint import lint_paths
from lockgate.hooks.report import FORMATS
from lockgate.hooks.settings import lint_settings

if TYPE_CHECKING:
    import argparse

# The options `plain_arguments` reads, each with a value: flag -> attribute.
_VALUED = {"--dir": "dir", "--pg-version": "pg_version", "--format": "format"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="*", type=Path,
        help="SQL files, or directories whose SQL files (at any depth) are linted (default: the files in --dir)",
    )
    add_dir(parser)
    add_pg_version(parser)
    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format")


def plain_arguments(argv: Sequence[str]) -> SimpleNamespace | None:
    """The arguments as `add_arguments` makes argparse read them, when every one is plain: names of files
    and directories in one run, and `--dir`, `--pg-version`, `--format` with a valid value (`--flag value`
    or `--flag=value`). None for anything else (help, a bad value, an abbreviation, `--`): argparse reads
    it then, with its messages. A pre-commit `lockgate lint` so never imports argparse."""
    files: list[Path] = []
    values: dict[str, str | int | None] = {"dir": None, "pg_version": None, "format": "text"}
    items = iter(argv)
    options_after_files = False
    for item in items:
        if not item.startswith("-"):
            if options_after_files:  # argparse takes one run of positionals only
                return None
            files.append(Path(item))
            continue
        options_after_files = bool(files)
        flag, eq, given = item.partition("=")
        value = given if eq else next(items, None)
        if flag not in _VALUED or value is None or (not eq and value.startswith("-")):
            return None
        if flag == "--format" and value not in FORMATS:
            return None
        if flag == "--pg-version":
            try:
                values["pg_version"] = int(value)
            except ValueError:
                return None
        else:
            values[_VALUED[flag]] = value
    return SimpleNamespace(files=files, **values)


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
    # Each directory is resolved once and each file only checked for being a link: resolving every
    # file's whole path would be a twentieth of a 1,000-file lint.
    directories: dict[str, tuple[str, str]] = {}  # as given -> (absolute, resolved)
    problems = []
    for f in files:
        given, name = os.path.split(f)
        if given not in directories:
            directories[given] = (os.path.abspath(given or "."), os.path.realpath(given or "."))
        absolute, resolved = directories[given]
        target = os.path.realpath(f) if os.path.islink(f) else os.path.join(resolved, name)
        if target != os.path.join(absolute, name) and not Path(target).is_relative_to(root):
            problems.append(Problem(f, 1, 1, "a symbolic link out of the repository; lockgate does not follow it"))
    return problems


def _sql_files(given: list[Path]) -> list[Path]:
    """The .sql files named, and those under each directory named (hidden files and folders skipped)."""
    files: list[Path] = []
    for path in given:
        if os.path.isdir(path):
            files.extend(sorted(
                f for f in path.rglob("*.sql")
                if not any(part.startswith(".") for part in f.relative_to(path).parts) and not f.is_dir()
            ))
        elif path.suffix == ".sql":
            files.append(path)
    return files
