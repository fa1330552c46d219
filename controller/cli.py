"""The `lockgate` command: a thin dispatcher to one module per command.

Only the chosen command's module is imported, so `lockgate lint` never pays for psycopg,
pydantic or the Kubernetes client.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, NoReturn

from lockgate.hooks.errors import InputError, UsageError

if TYPE_CHECKING:
    import argparse

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


# Commands that hold nothing an exit handler must release (no connection, thread or temporary file):
# the console script ends their process once the output is flushed. The interpreter's own teardown
# frees every object and module one by one: 20 ms of a pre-commit `lockgate lint`, 60 ms at 1,000 files.
_QUICK_EXIT = frozenset({"lint", "check"})

# Flags whose value is a secret by name alone; each has a LOCKGATE_* twin (e.g. --git-token).
_SECRET_FLAG = re.compile(r"--[a-z0-9-]*(?:token|password|secret)[a-z0-9-]*")
_DSN_PASSWORD = re.compile(r"\bpassword\s*=", re.IGNORECASE)


def _flag_values(argv: Sequence[str]) -> list[tuple[str, str]]:
    """(flag, value) of every `--flag value` and `--flag=value` in argv."""
    pairs = []
    for i, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        flag, eq, value = arg.partition("=")
        if eq:
            pairs.append((flag, value))
        elif i + 1 < len(argv):
            pairs.append((flag, argv[i + 1]))
    return pairs


def _url_credentials(value: str) -> tuple[bool, bool]:
    """(has a password, has an http(s) user part, where a token usually sits) of a URL."""
    if "://" not in value:
        return False, False
    from urllib.parse import urlsplit  # only for a URL given on the command line: `lockgate lint` never needs it

    try:
        parts = urlsplit(value)
        password = parts.password is not None
    except ValueError:  # an unparsable URL is reported by the command; "@" is hint enough
        return "@" in value, False
    return password, parts.scheme in ("http", "https") and bool(parts.username)


def secret_warnings(argv: Sequence[str]) -> list[str]:
    """One warning per secret given on the command line, where process listings show it.

    Each names the environment variable (filled from a Kubernetes Secret) to use instead and
    never repeats the secret itself.
    """
    warnings = []
    for flag, value in _flag_values(argv):
        if flag == "--dsn" and (_DSN_PASSWORD.search(value) or _url_credentials(value)[0]):
            warnings.append("--dsn holds a password; set LOCKGATE_DSN (or PGPASSWORD) from a Secret instead")
        elif flag == "--repo" and any(_url_credentials(value)):
            warnings.append("--repo holds credentials; set LOCKGATE_GIT_TOKEN from a Secret instead")
        elif _SECRET_FLAG.fullmatch(flag):
            env = "LOCKGATE_" + flag.removeprefix("--").replace("-", "_").upper()
            warnings.append(f"{flag} is a secret; set {env} from a Secret instead")
    return [f"lockgate: warning: {w} (process listings show every argument)" for w in warnings]


def _plain(argv: Sequence[str]) -> SimpleNamespace | None:
    """The arguments of a command that reads a plain command line itself (`plain_arguments`), without
    argparse: its import and gettext lookups on disk are a tenth of a pre-commit `lockgate lint`.
    None when the command has no such reader or the line is not plain (help, errors: argparse's)."""
    name = argv[0] if argv else None
    if name not in COMMANDS:
        return None
    module = importlib.import_module(f"lockgate.controller.commands.{COMMANDS[name][0]}")
    reader = getattr(module, "plain_arguments", None)
    args: SimpleNamespace | None = reader(argv[1:]) if reader is not None else None
    if args is not None:
        args.command, args.version, args.run = name, False, module.run
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    for warning in secret_warnings(argv):
        print(warning, file=sys.stderr)
    # Importing a command's modules (pglast's node classes and enums, the rules) makes many
    # long-lived objects and no garbage: cyclic collection during it is pure cost, about 5 ms
    # of the 100 ms a pre-commit `lockgate lint` may take.
    gc.disable()
    try:
        plain = _plain(argv)
        parser: argparse.ArgumentParser | None = None
        if plain is None:
            from lockgate.controller.arguments import build_parser

            parser = build_parser(argv)
    finally:
        gc.enable()
    args: argparse.Namespace | SimpleNamespace
    if parser is None:
        assert plain is not None
        args = plain
    else:
        args = parser.parse_args(argv)
        if args.version:
            from lockgate.hooks.version import lockgate_version

            print(f"lockgate {lockgate_version()}")
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
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if os.environ.get("LOCKGATE_DEBUG"):
            raise
        from lockgate.controller.redact import Redactor

        first = (str(exc).strip().splitlines() or [""])[0]
        detail = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        print(f"lockgate {args.command}: unexpected error: {Redactor()(detail)} "
              "(LOCKGATE_DEBUG=1 shows where)", file=sys.stderr)
        return EXIT_FINDINGS


def entry() -> NoReturn:
    """The `lockgate` console script."""
    code = main()
    if sys.argv[1:2] and sys.argv[1] in _QUICK_EXIT:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:  # a reader such as `head` stopped early: nothing more to say
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
