"""Options shared by several commands, each with its LOCKGATE_* environment twin."""

from __future__ import annotations

import argparse


def add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="migrations directory (LOCKGATE_DIR, default: migrations)")


def add_pg_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pg-version", type=int, help="target PostgreSQL major version (LOCKGATE_TARGET_PG_VERSION)"
    )


def add_dsn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", help="database to migrate (LOCKGATE_DSN; libpq's PG* variables also work)"
    )


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")) -> None:
    parser.add_argument("--format", choices=choices, default="text", help="output format")


def add_repo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", help="git URL or path to watch (LOCKGATE_REPO; default: the repository here)")
    parser.add_argument("--branch", help="branch whose first-parent history counts (LOCKGATE_BRANCH, default: main)")
