"""`lockgate resume`: let paused batched backfills go on."""

from __future__ import annotations

import argparse

from lockgate.controller.commands.common import add_dsn, pause_switch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dsn(parser)


def run(args: argparse.Namespace) -> int:
    return pause_switch(args, paused=False)
