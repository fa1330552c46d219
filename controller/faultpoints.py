"""Test-only fault points: crash the process at an exact place, to prove it resumes correctly.

`LOCKGATE_FAULT_KILL_AT=batch:3` makes the process SIGKILL itself the 3rd time it passes the
point named `batch` (several `name:n` may be given, separated by commas; the first reached
wins). The points, in the order a run passes them:

    statement  after a statement of a step ran, before its step is committed and counted
    step       after a step was committed and counted in the ledger
    batch      after a batch of a batched step was committed with its checkpoint
    gate       after a validation statement ran
    undo       after a statement of a down file ran (inside a rollback)

Nothing in production sets the variable; unset, `reached` costs one comparison.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "LOCKGATE_FAULT_KILL_AT"


def _parse(value: str | None) -> dict[str, int] | None:
    if not value:
        return None
    targets: dict[str, int] = {}
    for item in value.split(","):
        name, _, count = item.strip().partition(":")
        targets[name] = int(count or "1")
    return targets


_TARGETS = _parse(os.environ.get(ENV))
_passed: Counter[str] = Counter()


def reached(point: str) -> None:
    """Count one pass of `point`; SIGKILL this process when it is the configured one."""
    if _TARGETS is None:
        return
    _passed[point] += 1
    if _TARGETS.get(point) == _passed[point]:
        os.kill(os.getpid(), signal.SIGKILL)
