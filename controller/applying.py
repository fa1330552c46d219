"""The apply loop of `lockgate apply`: every pending migration, in order, until one does not apply."""

from __future__ import annotations

from collections.abc import Callable

from lockgate.controller.engine import Engine
from lockgate.controller.outcome import RunResult
from lockgate.hooks.migrationset import MigrationSet


def apply_pending(
    engine: Engine, migrations: MigrationSet, *, on_outcome: Callable[[RunResult], None] = lambda _: None
) -> list[RunResult]:
    """Apply the migrations the lifecycle says are not applied yet; stop at the first that is not
    applied (failed, rolled back, dirty, interrupted), as everything after it builds on it.

    Every parse and structure error of the pending files is raised before anything runs; Blocked
    when a migration is dirty. `on_outcome` sees each outcome as it comes.
    """
    todo = engine.pending(migrations)
    engine.check(todo)
    outcomes: list[RunResult] = []
    for migration in todo:
        outcome = engine.apply(migration)
        outcomes.append(outcome)
        on_outcome(outcome)
        if outcome.status != "applied":
            break
    return outcomes
