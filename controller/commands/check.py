from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from lockgate.controller.commands.common import add_dir
from lockgate.hooks.check import check
from lockgate.hooks.errors import UsageError
from lockgate.hooks.report import FORMATS
from lockgate.hooks.settings import configured_branch, lint_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="*", type=Path,
        help="limit pair and coverage findings to these files' migrations (sum and edits: whole set)",
    )
    add_dir(parser)
    parser.add_argument(
        "--base",
        help="revision whose migrations count as applied (default: origin/<branch> if it exists, else <branch>)",
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="text", help="output format")
    parser.add_argument(
        "--if-changed", action="store_true",
        help="do nothing when the staged changes touch nothing under the folder (deletions count); "
        "for pre-commit's always_run hook. With nothing staged at all, check as usual",
    )


def _directory(args: argparse.Namespace) -> Path:
    """--dir, else the one folder the given files are in, else the configured directory."""
    if args.dir is None and args.files:
        folders: set[Path] = {f.parent for f in args.files if f.suffix == ".sql" or f.name == "lockgate.sum"}
        if len(folders) > 1:
            raise UsageError(f"files are in {len(folders)} folders; name the migrations folder with --dir")
        if folders:
            return folders.pop()
    return lint_settings(dir=args.dir).dir


def _untouched(directory: Path) -> bool:
    """Something is staged, and none of it (additions, edits, deletions) is under `directory`."""
    done = subprocess.run(["git", "diff", "--cached", "--name-only", "-z", "--relative"],
                          capture_output=True, text=True, check=False)
    staged = [Path.cwd() / p for p in done.stdout.split("\0") if p]
    if done.returncode != 0 or not staged:
        return False
    folder = directory.resolve()
    return not any(p.resolve().is_relative_to(folder) for p in staged)


def run(args: argparse.Namespace) -> int:
    directory = _directory(args)
    if args.if_changed and _untouched(directory):
        return 0
    result = check(
        directory,
        only=[f for f in args.files if f.suffix == ".sql"],
        base=args.base,
        branch=configured_branch(Path.cwd()),
    )
    for note in result.notes:
        print(f"lockgate check: {note}", file=sys.stderr)
    output = FORMATS[args.format](result.findings)
    if output:
        print(output)
    return 1 if result.failed else 0
