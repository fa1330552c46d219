"""`lockgate pause`: hold every batched backfill of the database between batches."""

from __future__ import annotations

import argparse

from lockgate.controller.commands import switch
from lockgate.controller.commands.common import add_dsn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)


def run(args: argparse.Namespace) -> int:
    return switch.flip(args, paused=True)
