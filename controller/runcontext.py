"""One migration's run or rollback as its steps see it: which migration, for which commit, since
when, and with which timeouts (pure). Passed to each step instead of being kept on the engine, so
nothing of one migration can reach the next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from lockgate.controller.config import Settings
from lockgate.controller.outcome import GateResult, Outcome, RunResult
from lockgate.controller.snapshot import Baseline
from lockgate.hooks.directives import Timeout


class Timeouts(NamedTuple):
    """A session's lock_timeout and statement_timeout, in seconds (0: no limit)."""

    lock_s: float
    statement_s: float


def effective_timeouts(settings: Settings, directive: Timeout | None) -> Timeouts:
    """The configured timeouts with a migration's `-- lockgate:timeout` on top."""
    lock, statement = settings.lock_timeout, settings.statement_timeout
    if directive is not None:
        lock = lock if directive.lock_s is None else directive.lock_s
        statement = statement if directive.statement_s is None else directive.statement_s
    return Timeouts(lock, statement)


@dataclass(frozen=True, slots=True)
class RunContext:
    version: str
    name: str
    started: datetime
    commit: str | None = None
    timeout: Timeout | None = None  # the up file's `-- lockgate:timeout`: it governs the down too

    @classmethod
    def begin(cls, version: str, name: str, *, commit: str | None, timeout: Timeout | None) -> RunContext:
        return cls(version, name, datetime.now(UTC), commit, timeout)

    def timeouts(self, settings: Settings) -> Timeouts:
        """What the migration's own SQL runs with."""
        return effective_timeouts(settings, self.timeout)

    def lock_source(self) -> str:
        """Where a lock timeout that ran out was set, when the migration set it."""
        if self.timeout is None or self.timeout.lock_s is None:
            return ""
        return f", set by the up file's -- lockgate:timeout on line {self.timeout.line}"

    def result(
        self, status: Outcome, *, reason: str = "", baseline: Baseline | None = None,
        gates: list[GateResult] | None = None, where: str | None = None, schema_restored: bool | None = None,
        rows_after: dict[str, int] | None = None,
    ) -> RunResult:
        finished = datetime.now(UTC)
        return RunResult(
            version=self.version, name=self.name, status=status, reason=reason,
            started_at=self.started, finished_at=finished, duration_s=(finished - self.started).total_seconds(),
            rows_before=baseline.row_counts if baseline else {}, rows_after=rows_after or {},
            validation=gates or [], schema_restored=schema_restored, where=where,
        )
