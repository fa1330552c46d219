"""One vocabulary for what became of a migration, and one gate result (pure).

The ledger's status column, the engine's run results, the commit notes (and so `lockgate status`),
the forge statuses and the Kubernetes Events all say it with these words; each of the last two maps
it to its own terms in one table. The words are the strings the ledger and the notes have always
stored, so rows and notes written before read back unchanged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Outcome(StrEnum):
    APPLYING = "applying"  # in the ledger: a run began and has not ended (it resumes)
    UNDOING = "undoing"  # in the ledger: a rollback began and has not ended (it is finished first)
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    DIRTY = "dirty"  # a rollback that did not bring the schema back: a human decides
    REFUSED = "refused"  # never run: the review or the ledger refused it
    INTERRUPTED = "interrupted"  # a run stopped or paused; the next run resumes it
    NOT_STARTED = "not_started"  # a fleet target the pass did not reach

    @property
    def good(self) -> bool:
        """It ended as meant: applied, or rolled back."""
        return self in (Outcome.APPLIED, Outcome.ROLLED_BACK)

    @property
    def words(self) -> str:
        return self.value.replace("_", " ")

    def on_commit(self, *, applying: bool) -> Outcome | None:
        """What a commit's note says of a run (or a ledger row) that ended so: an apply that did not
        stick failed, whatever undid it; a rollback is noted on the commit that removed the migration.
        None while it has not ended, and for an ending that is not the commit's (a rollback's
        `failed`, an apply's own `applied` seen from a removing commit)."""
        if applying:
            return {Outcome.ROLLED_BACK: Outcome.FAILED}.get(self, self) if self in _ENDS_OF_APPLY else None
        return self if self in (Outcome.ROLLED_BACK, Outcome.DIRTY) else None


_ENDS_OF_APPLY = frozenset({Outcome.APPLIED, Outcome.FAILED, Outcome.ROLLED_BACK, Outcome.DIRTY})


class GateResult(BaseModel):
    """One statement of a validation file, judged: stored in the ledger, shown in notes and plans."""

    model_config = ConfigDict(frozen=True)

    gate: str
    line: int | None = None  # None in notes written before it was recorded
    passed: bool | None  # None: a result recorded for the report, not a gate
    detail: str = ""


class RunResult(BaseModel):
    """What happened to one migration in one run of the engine."""

    version: str
    name: str
    status: Outcome  # applied, failed, rolled_back, dirty, or interrupted (the next run resumes it)
    reason: str = ""
    started_at: datetime
    finished_at: datetime
    duration_s: float
    rows_before: dict[str, int] = {}
    rows_after: dict[str, int] = {}
    validation: list[GateResult] = []
    schema_restored: bool | None = None
    where: str | None = None  # `path:line:col` of the statement that failed
