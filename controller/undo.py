"""Undoing a migration: its down file from the first step not committed yet, then the proof.

The proof compares the catalog with the snapshot taken before the migration began: the rollback
is `rolled_back` only when the schema is back exactly; a down that failed, was stopped, or left
the schema different makes the migration `dirty`, and nothing more runs until a human resolves
it. Each committed down step is counted in the ledger with its step, so a rollback cut short
goes on where it stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import psycopg

from lockgate.controller import snapshot
from lockgate.controller.config import Settings
from lockgate.controller.ledger import Ledger
from lockgate.controller.outcome import GateResult, Outcome, RunResult
from lockgate.controller.runcontext import RunContext
from lockgate.controller.snapshot import Baseline
from lockgate.controller.stepper import StepFailed, StepRunner
from lockgate.controller.steps import split
from lockgate.hooks.sqlmodel import SqlFile


class Undone(NamedTuple):
    status: Outcome  # rolled_back or dirty
    restored: bool | None
    detail: str
    where: str | None = None


class Undoer:
    def __init__(
        self, settings: Settings, conn: psycopg.Connection, ledger: Ledger, steps: StepRunner, pg_version: int
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.ledger = ledger
        self.steps = steps
        self.pg_version = pg_version

    def roll_back(
        self, ctx: RunContext, down: SqlFile, baseline: Baseline, failure: str | None, gates: list[GateResult],
        where: str | None, *, done: int = 0,
    ) -> RunResult:
        """Run the down (after its first `done` steps) and end the rollback; `failure` is what made a
        run roll back (None for a revert's rollback, which ends without an error when it is clean)."""
        undone = self._undo(ctx, down, baseline, done=done)
        detail = f"{failure}; {undone.detail}" if failure else undone.detail
        self.ledger.finish(
            ctx.version, undone.status, validation=gates or None, schema_restored=undone.restored,
            error=None if failure is None and undone.status is Outcome.ROLLED_BACK else detail, commit=ctx.commit,
        )
        return ctx.result(
            undone.status, reason=detail, baseline=baseline, gates=gates, where=undone.where or where,
            schema_restored=undone.restored, rows_after=snapshot.rows_of(self.conn, baseline),
        )

    def _undo(self, ctx: RunContext, down: SqlFile, baseline: Baseline, *, done: int) -> Undone:
        """Run the down file (after its first `done` steps), then compare the catalog with the baseline."""
        try:
            for step in split(down, pg_version=self.pg_version)[done:]:
                # Down steps count backwards so their batch checkpoints never meet the up's.
                negative = dataclasses.replace(step, number=-step.number)
                if not self.steps.run(ctx, negative, down.path, on_commit=self._mark(ctx.version, step.number)):
                    return Undone(Outcome.DIRTY, None, "the rollback was stopped before it finished")
        except StepFailed as exc:
            return Undone(Outcome.DIRTY, None, f"the down file failed: {exc}", exc.where)
        differences = snapshot.diff(
            baseline.catalog, snapshot.catalog(self.conn, ledger_schema=self.settings.ledger_schema)
        )
        if differences:
            return Undone(Outcome.DIRTY, False, "the down file ran but the schema differs from before: "
                          + "; ".join(differences), f"{down.path}:1:1")
        return Undone(Outcome.ROLLED_BACK, True, "the down file ran and the schema is back exactly as before")

    def _mark(self, version: str, number: int) -> Callable[[], None]:
        return lambda: self.ledger.undo_step_done(version, number)
