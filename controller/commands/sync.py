"""`lockgate sync`: one reconcile pass over the watched branch (see lockgate.controller.sync).

Exit 0 when everything on the branch is applied and everything reverted is rolled back; 1 when a
migration failed, was refused, waits on an earlier failure, was held back from a rollback, when
SIGTERM/SIGINT stopped the pass (the next run resumes), or another applier holds the lock; 2 for
bad input or configuration (nothing applied).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from contextlib import AbstractContextManager

from lockgate.controller import config, db, fastpath
from lockgate.controller.commands.common import (
    add_dir,
    add_dsn,
    add_fleet,
    add_repo,
    add_wait,
    engine_errors_exit,
    stop_on,
)
from lockgate.hooks.errors import UsageError


def add_pass_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a reconcile pass (`sync`, and `watch` in a loop)."""
    add_repo(parser)
    add_dir(parser)
    add_dsn(parser)
    add_fleet(parser)
    add_wait(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pass_arguments(parser)
    # A wave Job's pod under `executor: kubernetes` (the coordinator writes these; see fleet/jobs.py).
    parser.add_argument("--wave", help=argparse.SUPPRESS)
    parser.add_argument("--at", help=argparse.SUPPRESS)
    parser.add_argument("--reverse", action="store_true", help=argparse.SUPPRESS)


def settings_of(args: argparse.Namespace, **extra: object) -> config.Settings:
    """Settings with these flags on top (the CLI already warned about secrets among them)."""
    return config.load(repo=args.repo, branch=args.branch, dir=args.dir, dsn=args.dsn,
                       fleet=getattr(args, "fleet", None), **extra)


def show_progress() -> None:
    """Backfill progress and git/Kubernetes notices are INFO log lines on stderr."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def stop_on_signals() -> AbstractContextManager[threading.Event]:
    """SIGTERM (Kubernetes stopping the pod) and SIGINT stop the run after the current batch."""
    return stop_on(signal.SIGTERM, signal.SIGINT)


def run(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    show_progress()
    if args.wave is not None:
        return wave_pod(settings, args)
    # Nothing changed since a pass left all in sync: two cheap questions instead of a fetch.
    dsns = [db.target_dsn(settings)]
    if settings.fleet is not None:
        from lockgate.controller.fleet import config as fleet_config

        dsns = list(fleet_config.dsns(settings).values())
    head = fastpath.unchanged(settings, *dsns)
    if head is not None:
        print(fastpath.said(head))
        return 0
    return reconcile(settings, wait=args.wait)


def wave_pod(settings: config.Settings, args: argparse.Namespace) -> int:
    """One target of a wave Job, picked by the pod's JOB_COMPLETION_INDEX, at the coordinator's head."""
    from lockgate.controller.fleet import config as fleet_config
    from lockgate.controller.fleet import jobs
    from lockgate.controller.source import SourceError

    fleet = fleet_config.of_settings(settings)
    if fleet is None or args.at is None:
        raise UsageError("--wave runs one target of a wave Job: give --fleet and --at too")
    try:
        with stop_on_signals() as stop:
            return jobs.run_index(settings, fleet, args.wave, args.at, reverse=args.reverse,
                                  index=os.environ.get("JOB_COMPLETION_INDEX"), stop=stop)
    except SourceError as exc:
        raise UsageError(str(exc)) from None


def reconcile(settings: config.Settings, *, wait: bool) -> int:
    """The full pass. Its modules are imported here, not at the top: the no-op short cut needs
    none of them, and importing them would cost it more than its git and database round trips."""
    from lockgate.controller import sync
    from lockgate.controller.cache import CacheBusy
    from lockgate.controller.engine import Blocked
    from lockgate.controller.ledger import ApplierBusy
    from lockgate.controller.source import SourceError

    try:
        with stop_on_signals() as stop:
            if settings.fleet is not None:
                from lockgate.controller.fleet import config as fleet_config
                from lockgate.controller.fleet import run as fleet_run

                fleet = fleet_config.of_settings(settings)
                assert fleet is not None
                if fleet.executor == "kubernetes":
                    from lockgate.controller.fleet import jobs

                    result = jobs.run(settings, fleet, stop=stop)
                else:
                    result = fleet_run.run(settings, fleet, wait=wait, stop=stop)
            else:
                result = sync.run(settings, wait=wait, stop=stop)
    except CacheBusy as exc:
        # The other process is doing this pass's work: stepping aside is success.
        print(f"lockgate sync: skipped: {exc}", file=sys.stderr)
        return 0
    except (ApplierBusy, Blocked) as exc:
        return engine_errors_exit(exc)
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    return result.exit_code
