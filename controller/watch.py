"""`sync` in a loop: one pass every `settings.watch_interval` seconds until told to stop.

SIGTERM (what Kubernetes sends a pod it stops) or SIGINT sets the stop event: a running batched
backfill finishes its current batch and records its checkpoint, the pass ends without starting
another migration, and the loop returns, so the next run resumes where this one stopped.

A pass that fails for a reason that may pass (git or the database unreachable, another applier
busy, bad files at the head that a later commit fixes) is logged in one line and the loop goes
on; the very first pass failing on configuration ends the loop, so a misconfigured controller
fails where its operator looks.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from lockgate.controller import db, fastpath, kube, redact, sync
from lockgate.controller.cache import CacheBusy
from lockgate.controller.config import Settings
from lockgate.controller.engine import Blocked
from lockgate.controller.ledger import ApplierBusy
from lockgate.controller.source import SourceError
from lockgate.hooks.errors import InputError, UsageError

log = logging.getLogger(__name__)

# psycopg.OperationalError: the connection dropped mid-pass (a failover, a restart).
_PASSING = (SourceError, CacheBusy, ApplierBusy, Blocked, InputError, UsageError, psycopg.OperationalError)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, InputError):
        return "; ".join(str(p) for p in exc.problems)
    return str(exc)


def run(settings: Settings, stop: threading.Event, *, wait: bool = False, say: sync.Say = print) -> None:
    """Sync until `stop` is set. Raises UsageError when the first pass fails on configuration."""
    first = True
    events = kube.recorder_from_environment(redact=redact.from_settings(settings))
    while not stop.is_set():
        try:
            if (head := fastpath.unchanged(settings, db.target_dsn(settings))) is not None:
                say(fastpath.said(head))
            else:
                sync.run(settings, wait=wait, stop=stop, say=say, events=events)
        except _PASSING as exc:
            if first and isinstance(exc, UsageError):
                raise
            log.warning("sync failed, trying again in %gs: %s", settings.watch_interval, _one_line(exc))
        first = False
        stop.wait(settings.watch_interval)
    say("stopped")
