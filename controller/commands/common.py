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
