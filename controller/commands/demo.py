"""`lockgate demo`: the whole loop on a throwaway PostgreSQL and a throwaway git repository;
`lockgate demo --fleet`: the same for a fleet of four tenant databases in two waves."""

from __future__ import annotations

import argparse

from lockgate.controller import demo, fleetdemo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep", action="store_true", help="keep the repositories and the database running afterwards, to look at"
    )
    parser.add_argument("--fleet", action="store_true", help="the fleet's loop: four tenant databases in two waves")


def run(args: argparse.Namespace) -> int:
    if args.fleet:
        return demo.run(keep=args.keep, script=fleetdemo.FleetDemo.script, title=fleetdemo.TITLE)
    return demo.run(keep=args.keep)
