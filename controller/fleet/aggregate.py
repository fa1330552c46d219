"""One note per commit for the whole fleet: each migration's outcome on every target (pure).

A target's part is what the pass did to it, else what its ledger says, else why it was not
reached (interrupted, not started). The migration's outcome is applied (or rolled back) only when
it is so on every target; the reason names the targets that are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lockgate.controller import lifecycle
from lockgate.controller.fleet.scheduler import State
from lockgate.controller.ledger import LedgerEntry
from lockgate.controller.outcome import Outcome
from lockgate.controller.source import BranchHistory, CommitRef
from lockgate.controller.status import MigrationRecord, StatusNote, TargetRecord
from lockgate.controller.sync import ledger_outcome, outcome_commits


@dataclass(slots=True)
class TargetPass:
    """What one target went through in a fleet pass."""

    name: str
    state: State = "not_started"
    noted: list[tuple[CommitRef, MigrationRecord]] = field(default_factory=list)  # outcomes of this pass
    entries: dict[str, LedgerEntry] = field(default_factory=dict)  # its ledger after the pass
    error: str = ""  # why it could not be reconciled at all
    duration_s: float = 0.0  # wall time the pass spent on it
    in_sync_ledger: str | None = None  # its ledger's state when the pass left it in sync (see fastpath)


def goal(at_head: bool) -> Outcome:
    """What every target should reach: an apply while the migration is at the head, else a rollback."""
    return Outcome.APPLIED if at_head else Outcome.ROLLED_BACK


def _part(target: TargetPass, sha: str, version: str, at_head: bool) -> TargetRecord:
    mine = next((r for c, r in target.noted if c.sha == sha and r.version == version), None)
    if mine is not None:
        return TargetRecord(name=target.name, outcome=mine.outcome, reason=mine.reason, duration_s=mine.duration_s)
    if target.error and target.state != "not_started":  # one its wave never reached is not started, reachable or not
        return TargetRecord(name=target.name, outcome=Outcome.FAILED, reason=target.error)
    entry = target.entries.get(version)
    from_ledger = ledger_outcome(entry, at_head) if entry is not None else None
    if from_ledger is None and not at_head and target.state != "not_started":
        from_ledger = Outcome.ROLLED_BACK  # never applied there, so nothing to roll back
    if from_ledger is not None and target.state != "not_started":
        return TargetRecord(name=target.name, outcome=from_ledger, reason=entry.error or "" if entry else "")
    reached = Outcome.INTERRUPTED if target.state == "interrupted" else Outcome.NOT_STARTED
    return TargetRecord(name=target.name, outcome=reached)


def _outcome(goal: Outcome, parts: Sequence[TargetRecord]) -> Outcome:
    outcomes = {p.outcome for p in parts}
    if outcomes == {goal}:
        return goal
    if Outcome.REFUSED in outcomes:
        return Outcome.REFUSED
    return Outcome.DIRTY if Outcome.DIRTY in outcomes else Outcome.FAILED


def _reason(outcome: Outcome, parts: Sequence[TargetRecord]) -> str:
    if outcome is Outcome.REFUSED:
        return next(p.reason for p in parts if p.outcome is Outcome.REFUSED)
    lines = [f"{p.outcome.words} on {p.name} ({' '.join(p.reason.split())})"
             for p in parts if p.outcome in (Outcome.FAILED, Outcome.DIRTY)]
    for state in (Outcome.INTERRUPTED, Outcome.NOT_STARTED):
        names = [p.name for p in parts if p.outcome is state]
        if names:
            lines.append(f"{state.words}: {', '.join(names)}")
    return "; ".join(lines)


def aggregate(targets: Sequence[TargetPass], present: set[str]) -> list[tuple[CommitRef, MigrationRecord]]:
    """One record per (commit, migration) any target noted this pass, over all targets, in version order."""
    first: dict[tuple[str, str], tuple[CommitRef, MigrationRecord]] = {}
    for target in targets:
        for commit, record in target.noted:
            first.setdefault((commit.sha, record.version), (commit, record))
    records = []
    for (sha, version), (commit, record) in sorted(first.items(), key=lambda kv: int(kv[0][1])):
        at_head = version in present
        parts = [_part(t, sha, version, at_head) for t in targets]
        outcome = _outcome(goal(at_head), parts)
        mine = [r for t in targets for c, r in t.noted if c.sha == sha and r.version == version]
        started = [r.started_at for r in mine if r.started_at]
        finished = [r.finished_at for r in mine if r.finished_at]
        records.append((commit, MigrationRecord(
            version=version, name=record.name, outcome=outcome, reason=_reason(outcome, parts),
            started_at=min(started, default=None), finished_at=max(finished, default=None), targets=parts,
        )))
    return records


# -- targets that ran elsewhere (the Kubernetes executor's pods) ---------------------------------


def _noted(note: StatusNote | None, version: str, name: str, outcome: Outcome) -> bool:
    """The note already says `outcome` of the target, or holds the migration's record from before
    the fleet (it names no targets): that record stands."""
    record = next((m for m in note.migrations if m.version == version), None) if note else None
    if record is None:
        return False
    return not record.targets or any(t.name == name and t.outcome == outcome for t in record.targets)


def ledger_noted(
    name: str, entries: dict[str, LedgerEntry], refused: Sequence[tuple[str, MigrationRecord]],
    present: set[str], history: BranchHistory, notes: dict[str, StatusNote],
) -> list[tuple[CommitRef, MigrationRecord]]:
    """What target `name`'s ledger and `refused` (its refusals, by commit sha) say that the notes on
    the commits (`notes`, by sha) do not say of it yet, as records of the commits: the outcomes a
    pass run elsewhere reached there."""
    by_sha = {change.commit.sha: change.commit for change in history.changes} | {history.head.sha: history.head}
    noted = [(by_sha[sha], record) for sha, record in refused
             if sha in by_sha and not _noted(notes.get(sha), record.version, name, Outcome.REFUSED)]
    for entry in sorted(entries.values(), key=lambda e: int(e.version)):
        at_head = entry.version in present
        outcome = ledger_outcome(entry, at_head)
        commits = outcome_commits(entry.version, at_head, history)
        if outcome is None or not commits:
            continue
        commit = next((c for c in commits if c.sha == entry.commit_sha), commits[-1])
        if _noted(notes.get(commit.sha), entry.version, name, outcome):
            continue
        ran = (entry.finished_at - entry.started_at).total_seconds() if entry.finished_at else None
        noted.append((commit, MigrationRecord(
            version=entry.version, name=entry.name, outcome=outcome,
            reason=entry.error or "" if outcome != goal(at_head) else "",
            started_at=entry.started_at, finished_at=entry.finished_at, duration_s=ran,
        )))
    return noted


def reached(state: State, noted: Sequence[object], entries: dict[str, LedgerEntry]) -> State:
    """A target the Job did not see to its end (its pod terminated when the wave halted, or the
    coordinator stopped waiting) is interrupted when its ledger moved or holds an unfinished row."""
    if state == "not_started" and (noted or any(map(lifecycle.unfinished, entries.values()))):
        return "interrupted"
    return state
