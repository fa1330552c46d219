"""The `lockgate` command: a thin dispatcher to one module per command.

Only the chosen command's module is imported, so `lockgate lint` never pays for psycopg,
pydantic or the Kubernetes client.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lockgate.hooks.errors import InputError, UsageError

EXIT_OK, EXIT_FINDINGS, EXIT_BAD_INPUT = 0, 1, 2

COMMANDS: dict[str, tuple[str, str]] = {
    "new": ("new", "write the up, down and validate files of a new migration"),
    "lint": ("lint", "flag unsafe SQL in migration files"),
    "check": ("check", "require rollback and validation files, rollback coverage and lockgate.sum"),
    "hash": ("hash", "write migrations/lockgate.sum"),
    "plan": ("plan", "show pending migrations, their steps and locks; changes nothing"),
    "apply": ("apply", "apply pending migrations from a directory to a database"),
    "verify-rollback": ("verify_rollback", "up, validate, down, compare schema, up again in a scratch database"),
    "sync": ("sync", "one reconcile pass: apply what reached the branch, roll back what was reverted"),
    "watch": ("watch", "sync in a loop until SIGTERM"),
    "status": ("status", "show the notes on a commit and the ledger side by side"),
    "retry": ("retry", "run a failed migration again"),
    "resolve": ("resolve", "clear a dirty migration after a human looked"),
    "pause": ("pause", "pause batched backfills between batches"),
    "resume": ("resume", "resume paused batched backfills"),
    "demo": ("demo", "the whole loop on a throwaway Postgres and a throwaway git repo"),
}


def _chosen(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockgate", description="Production-safe PostgreSQL migrations, run the GitOps way."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen(argv)
    for name, (module_name, summary) in COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        if name == chosen:
            module = importlib.import_module(f"lockgate.controller.commands.{module_name}")
            module.add_arguments(command)
            command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"lockgate {version('lockgate')}")
        return EXIT_OK
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.run(args))
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_BAD_INPUT
    except UsageError as exc:
        print(f"lockgate {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
