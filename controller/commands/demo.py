"""`lockgate demo`: the whole loop on a throwaway PostgreSQL and a throwaway git repository."""

from __future__ import annotations

import argparse

from lockgate.controller import demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep", action="store_true", help="keep the repositories and the database running afterwards, to look at"
    )


def run(args: argparse.Namespace) -> int:
    return demo.run(keep=args.keep)
