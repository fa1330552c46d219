"""One reconcile pass: source → plan → apply / roll back → status.

The pass reads the branch (first-parent history and the migration set at its head), compares it
with the ledger, and acts:

1. Roll back, newest first, every applied migration whose files are gone from the head and whose
   rollback approval passes (the removing commit reverts the change that brought it, removed
   exactly the applied files, is signed when required, and the stored down passes lint), with the
   down text stored in the ledger; the revert commit that removed it gets the note. Any other
   disappearance is refused on its commit and nothing of that commit is rolled back; so is a pass
   that would roll back more than `max_rollbacks`. An applied migration whose commit is no longer
   in the branch's history (a force-push rewrote it) is not rolled back: the pass reports it and
   leaves it for a human.
2. Apply the approved pending migrations in version order, each tied to the commit that brought
   it to the branch. The first failure, refusal or migration waiting on an earlier failure stops
   the applies. A failed migration is sticky: it runs again only when a commit changes its files
   (fix forward) or an operator runs `lockgate retry`.

Every outcome goes to the commit as a git note, to GitHub/GitLab when configured, and to a
Kubernetes Event. That includes outcomes reached outside a pass: when a migration's ledger row
changed after the note on its commit was written (`lockgate retry` applied it, `lockgate resolve`
cleared it), the pass first rewrites that note from the ledger. A pass with nothing to do changes
nothing and writes nothing, so running it again and again is safe; the no-op path costs a few git
calls (the notes of the branch are read in one go) and one ledger query, whatever the number of
migrations.

Bad input is judged per migration where it belongs to one: a migration missing its down or
validate file (committed with `--no-verify`), or whose SQL does not parse or breaks a rule, is
refused on its commit and only it and the migrations after it wait. What cannot be tied to one
migration — a badly named file, a duplicate version, a file that is not UTF-8 — makes the whole
pass bad input (exit 2) with nothing applied, as the set cannot be read reliably.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from lockgate.controller import approval, db, fastpath, forges, kube, lifecycle, redact
from lockgate.controller.approval import Apply, Refuse, Rollback
from lockgate.controller.config import Settings
from lockgate.controller.engine import Engine
from lockgate.controller.ledger import Event, Ledger, LedgerEntry, LedgerRecord
from lockgate.controller.lifecycle import Move, State
from lockgate.controller.outcome import GateResult, Outcome, RunResult
from lockgate.controller.source import (
    REMOTE,
    BranchHistory,
    CommitMigrations,
    CommitRef,
    Source,
    held_cache,
    ref_exists,
)
from lockgate.controller.status import MigrationRecord, Notes, StatusNote, summary_line
from lockgate.hooks.errors import InputError
from lockgate.hooks.immutability import first_difference
from lockgate.hooks.migrationset import KINDS, Migration, MigrationSet
from lockgate.hooks.settings import SUPPORTED_PG_VERSIONS

Say = Callable[[str], None]
# Notes are pushed as outcomes come, but at most this often: adopting lockgate on a repository
# with hundreds of migrations must not cost a push each. The end of the pass pushes the rest.
PUSH_EVERY_S = 5.0
_NEVER = datetime.min.replace(tzinfo=UTC)  # when a record without a finish time finished, for ordering


# -- the plan (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Held:
    """An applied migration gone from the head that the pass will not roll back, and why."""

    version: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rollbacks:
    todo: list[Rollback]
    held: list[Held]
    refused: list[Refuse] = field(default_factory=list)


def rollback_candidates(
    entries: dict[str, LedgerEntry], present: set[str], history: BranchHistory
) -> tuple[list[tuple[LedgerEntry, CommitRef]], list[Held]]:
    """Applied migrations missing from the head, newest first, with the first-parent commit that
    removed them; held apart are those whose history no longer holds the commit they were applied
    from (rewritten by a force-push) or never removed them."""
    on_branch = {change.commit.sha for change in history.changes}
    candidates: list[tuple[LedgerEntry, CommitRef]] = []
    held: list[Held] = []
    gone = [e for e in entries.values() if e.version not in present and lifecycle.rolls_back(e)]
    for entry in sorted(gone, key=lambda e: int(e.version), reverse=True):
        removed_by = history.removed_by.get(entry.version)
        if entry.commit_sha is not None and entry.commit_sha not in on_branch:
            held.append(Held(entry.version, entry.name, (
                f"applied from commit {entry.commit_sha[:12]}, which is no longer in {history.head.short}'s "
                "first-parent history (history rewritten?); not rolled back: restore that history, "
                "or roll the migration back by hand"
            )))
        elif removed_by is None:
            held.append(Held(entry.version, entry.name, (
                "applied but never removed by a commit of the branch's history; not rolled back"
            )))
        else:
            candidates.append((entry, removed_by))
    return candidates, held


def plan_rollbacks(
    entries: dict[str, LedgerEntry],
    present: set[str],
    history: BranchHistory,
    verdicts: dict[str, approval.RollbackVerdict],
    max_rollbacks: int,
) -> Rollbacks:
    """The candidates' rollbacks, newest first, as far as their approval and the ceiling allow.

    `verdicts` covers every candidate. A commit that removed a migration whose rollback is refused
    rolls none of its migrations back (it is one change, judged whole); one older than a removal
    that is refused or held waits, as rollbacks run newest first; a pass that would roll back
    more than `max_rollbacks` migrations rolls back none, as that many at once is more likely an
    accident than an intent.
    """
    candidates, held = rollback_candidates(entries, present, history)
    refused = [v for e, _ in candidates if isinstance(v := verdicts[e.version], Refuse)]
    spoiled = {r.commit.sha for r in refused if r.commit is not None}
    todo: list[Rollback] = []
    for entry, commit in candidates:
        verdict = verdicts[entry.version]
        if isinstance(verdict, Refuse):
            continue
        if commit.sha in spoiled:
            refused.append(Refuse(entry.version, entry.name, (
                f"{commit.short} also removes a migration whose rollback is refused; none of its "
                "migrations is rolled back",
            ), commit))
        else:
            todo.append(verdict)
    # Rollbacks run newest first: an older one under a newer migration that stays applied (its
    # removal refused or held) could drop what that one still uses, as a DROP TABLE takes the
    # newer migration's columns, indexes and data with it. The older ones wait for it.
    staying = [(int(h.version), f"{h.version}_{h.name}") for h in held]
    staying += [(int(r.version), f"{r.version}_{r.name}") for r in refused]
    if staying:
        newest, name = max(staying)
        refused += [Refuse(r.version, r.name, (
            f"waits for the newer {name}, which stays applied as its removal was not rolled back; rollbacks "
            "run newest first: revert that one first, or restore its files",
        ), r.commit) for r in todo if int(r.version) < newest]
        todo = [r for r in todo if int(r.version) > newest]
    if len(todo) > max_rollbacks:
        refused += [Refuse(r.version, r.name, (
            f"this pass would roll back {len(todo)} migrations, more than max_rollbacks ({max_rollbacks}); "
            "nothing rolled back: if all of them should go, raise LOCKGATE_MAX_ROLLBACKS for one run",
        ), r.commit) for r in todo]
        todo = []
    refused.sort(key=lambda r: int(r.version), reverse=True)
    return Rollbacks(todo, held, refused)


@dataclass(frozen=True, slots=True)
class Edited:
    """An applied migration whose files changed since: refused, as applied migrations are immutable."""

    migration: Migration
    commit: CommitRef | None  # the last commit that changed it


@dataclass(frozen=True, slots=True)
class Wait:
    """A migration that failed earlier with the same files: it and everything after it wait."""

    version: str
    name: str
    error: str


def unapplied(entries: dict[str, LedgerEntry], migrations: MigrationSet) -> list[str]:
    """Versions at the head a run would do something with, in version order."""
    return [
        m.version for m in migrations.migrations
        if lifecycle.state_of(entries.get(m.version), m) not in (State.APPLIED, State.EDITED)
    ]


def plan_applies(
    entries: dict[str, LedgerEntry],
    migrations: MigrationSet,
    verdicts: dict[str, approval.Verdict],
    history: BranchHistory,
) -> list[Apply | Refuse | Edited | Wait]:
    """What to do with the head's migrations, in version order, up to the first that stops the rest.

    `verdicts` covers the unapplied versions. An applied migration whose files changed since is
    refused (applied migrations are immutable): the fix is a new migration.
    """
    actions: list[Apply | Refuse | Edited | Wait] = []
    for migration in migrations.migrations:
        entry = entries.get(migration.version)
        move = lifecycle.next_move(lifecycle.state_of(entry, migration))
        if move is Move.SKIP:
            continue
        if move is Move.REFUSE:
            changed_by = history.commits_for(migration.version)
            actions.append(Edited(migration, changed_by[-1] if changed_by else None))
            return actions
        if move is Move.WAIT:
            assert entry is not None
            actions.append(Wait(migration.version, migration.name, entry.error or "failed"))
            return actions
        verdict = verdicts[migration.version]
        # The outcome goes on the last commit that shaped the files, where its author looks: the
        # merge that brought the migration, or a later commit that fixed (or broke) it.
        shaped_by = history.commits_for(migration.version)
        last = shaped_by[-1] if shaped_by else None
        actions.append(dataclasses.replace(verdict, commit=last) if last else verdict)
        if isinstance(verdict, Refuse):
            return actions
    return actions


def edited_after_apply(record: LedgerRecord, migration: Migration) -> list[str]:
    """`path:line:1:` reasons for each file that differs from the text the ledger applied."""
    reasons = []
    directory = next(iter(migration.files.values())).path.parent
    for kind in KINDS:
        applied, file = getattr(record, f"{kind}_sql"), migration.files.get(kind)
        if file is None:
            reasons.append(
                f"{directory / f'{migration.id}.{kind}.sql'}:1:1: removed after {migration.id} was applied; "
                "applied migrations are immutable: restore the file"
            )
        elif applied != file.text:
            line = first_difference(applied.encode(), file.text.encode())
            reasons.append(
                f"{file.path}:{line}:1: {migration.id} was edited after it was applied; "
                "applied migrations are immutable: revert the edit and add a new migration"
            )
        elif getattr(record, f"{kind}_checksum") != file.checksum:
            reasons.append(
                f"{file.path}:1:1: the ledger's {kind} checksum of {migration.id} does not match the text it "
                "applied, which is this file's: the ledger was changed outside lockgate; check it by hand"
            )
    return reasons


# -- notes behind the ledger (pure) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Behind:
    """A note written before its migration's ledger row last changed, outside a pass (`lockgate
    retry`, `lockgate resolve`): the note on `commit` should now say `outcome`."""

    entry: LedgerEntry
    outcome: Outcome
    commit: CommitRef


def ledger_outcome(entry: LedgerEntry, at_head: bool) -> Outcome | None:
    """What a note says of the row: an apply's outcome while the migration is at the head, a
    rollback's once a commit removed it; None while the row is not final."""
    return entry.status.on_commit(applying=at_head)


def outcome_commits(version: str, at_head: bool, history: BranchHistory) -> list[CommitRef]:
    """The commits whose notes hold the migration's outcomes in its current life on the branch, oldest first."""
    if at_head:
        return history.commits_for(version)
    removed_by = history.removed_by.get(version)
    return [removed_by] if removed_by else []


def notes_behind(
    entries: dict[str, LedgerEntry], present: set[str], history: BranchHistory, notes: dict[str, StatusNote]
) -> list[Behind]:
    """The rows whose latest note says another outcome and is older than the row, in version order.

    `notes` maps commit shas to their notes. A note newer than the row stands (a refusal of an
    edit says more than the row it refuses); a row without a note on its commits gets none here,
    as the pass itself writes the outcomes it produces.
    """
    noted: dict[str, list[tuple[str, MigrationRecord]]] = {}
    for sha, note in notes.items():
        for record in note.migrations:
            noted.setdefault(record.version, []).append((sha, record))
    behind: list[Behind] = []
    for entry in sorted(entries.values(), key=lambda e: int(e.version)):
        at_head = entry.version in present
        outcome = ledger_outcome(entry, at_head)
        records = noted.get(entry.version, [])
        # Most rows agree with every note about them: those need no walk of the history.
        if outcome is None or entry.finished_at is None or all(r.outcome == outcome for _, r in records):
            continue
        commits = {c.sha: (order, c) for order, c in enumerate(outcome_commits(entry.version, at_head, history))}
        current = [(commits[sha], r) for sha, r in records if sha in commits]
        if not current:
            continue
        (_, commit), latest = max(current, key=lambda pair: (pair[1].finished_at or _NEVER, pair[0][0]))
        if latest.outcome != outcome and (latest.finished_at or _NEVER) < entry.finished_at:
            behind.append(Behind(entry, outcome, commit))
    return behind


def from_ledger(
    row: LedgerRecord, outcome: Outcome, events: Sequence[tuple[Event, dict[str, Any]]]
) -> MigrationRecord:
    """The note record of a row that changed outside a pass; the reason says who changed it, from the row's events."""
    assert row.finished_at is not None, "only final rows are noted"
    at = f"{row.finished_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    how = changed_by(events)
    if how is None:
        reason = f"{row.status.words} outside `lockgate sync` at {at}"
    elif how[0] == "retry":
        reason = f"{row.status.words} by `lockgate retry` at {at}"
    else:
        note = str(how[1].get("note", ""))
        reason = f"{how[0].replace('_', ' ')} by `lockgate resolve` at {at}" + (f": {note}" if note else "")
    if outcome != "applied" and row.error:
        reason = f"{row.error}; {reason}"
    # A resolve only records a human's verdict: the time since the apply started is no duration.
    ran = how is None or how[0] == "retry"
    return MigrationRecord(
        version=row.version, name=row.name, outcome=outcome, reason=reason,
        started_at=row.started_at, finished_at=row.finished_at,
        duration_s=(row.finished_at - row.started_at).total_seconds() if ran else None,
        rows_before=(row.baseline or {}).get("row_counts", {}),
        validation=judged(row.validation or []),
    )


def changed_by(events: Sequence[tuple[Event, dict[str, Any]]]) -> tuple[Event, dict[str, Any]] | None:
    """The event that began the row's current state when a command did: a resolve, or the retry
    right before the last run started; None when the last run was started otherwise."""
    for at in range(len(events) - 1, -1, -1):
        event = events[at][0]
        if event.resolves:
            return events[at]
        if event is Event.STARTED:
            return events[at - 1] if at and events[at - 1][0] is Event.RETRY else None
    return None


def catch_up_record(ledger: Ledger, behind: Behind) -> MigrationRecord:
    row = ledger.get(behind.entry.version)
    assert row is not None, "a row read this pass is still there: the pass holds the applier lock"
    return from_ledger(row, behind.outcome, ledger.events(row.version))


# -- records -----------------------------------------------------------------------------------


def judged(results: Sequence[GateResult]) -> list[GateResult]:
    """The gates of a validation (a note leaves out the results recorded only for the report)."""
    return [g for g in results if g.passed is not None]


def record_of(result: RunResult, *, applying: bool, where: str | None = None) -> MigrationRecord:
    """The note record of a run that ended (not interrupted): an apply's, or a rollback's."""
    outcome = result.status.on_commit(applying=applying)
    assert outcome is not None, f"a run that ended as {result.status} is noted"
    reason = result.reason if result.status is not Outcome.APPLIED else ""
    if where and outcome is not Outcome.APPLIED:
        reason = f"{reason} [{where}]"
    return MigrationRecord(
        version=result.version, name=result.name, outcome=outcome, reason=reason,
        started_at=result.started_at, finished_at=result.finished_at, duration_s=result.duration_s,
        rows_before=result.rows_before, rows_after=result.rows_after, validation=judged(result.validation),
    )


def refusal(version: str, name: str, reasons: Sequence[str]) -> MigrationRecord:
    return MigrationRecord(
        version=version, name=name, outcome=Outcome.REFUSED, reason="; ".join(reasons), finished_at=datetime.now(UTC),
    )


def already_noted(note: StatusNote | None, record: MigrationRecord) -> bool:
    """The note already says this (same outcome and reason): a refusal is written once, not every pass."""
    return note is not None and any(
        m.version == record.version and m.outcome == record.outcome and m.reason == record.reason
        and [t.outcome for t in m.targets] == [t.outcome for t in record.targets]
        for m in note.migrations
    )


# -- the pass ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SyncResult:
    """What one pass did; `ok` is False when anything failed, was refused, held or waits."""

    records: list[MigrationRecord] = field(default_factory=list)  # outcomes noted on commits
    problems: list[str] = field(default_factory=list)  # what is not as the branch asks, one line each
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and not self.interrupted

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


class Reporter:
    """Where outcomes go: the note on the commit (pushed), forge statuses, a Kubernetes Event, a line."""

    def __init__(
        self, settings: Settings, source: Source, say: Say, events: kube.EventRecorder, *, push: bool
    ) -> None:
        self.notes = Notes(source, settings.notes_ref)
        self.redact = source.redact
        self.forges = forges.from_settings(settings)
        self.events = events
        self._say = say
        self.push = push
        self.unpushed = False
        self.pushed_at = float("-inf")

    def say(self, text: str) -> None:
        self._say(self.redact(text))

    def fetch_notes(self) -> None:
        """Merge origin's notes in; notes an earlier pass could not push are pushed at the end."""
        self.notes.fetch()
        repo = self.notes.source.repo
        if ref_exists(repo, self.notes.ref):
            self.unpushed = not ref_exists(repo, self.notes.remote_ref) or (
                str(repo.git.rev_parse(self.notes.ref)) != str(repo.git.rev_parse(self.notes.remote_ref))
            )

    def notes_head(self) -> str | None:
        """The notes ref's commit (None before the first note): once pushed, the origin's too."""
        repo = self.notes.source.repo
        return str(repo.git.rev_parse(self.notes.ref)) if ref_exists(repo, self.notes.ref) else None

    def seen(self, head: str, in_sync: bool) -> fastpath.Seen | None:
        """What the no-op short cut should match next time, after a flush: None unless all is in sync."""
        return fastpath.Seen(head, self.notes_head()) if in_sync and not self.unpushed else None

    def outcome(self, commit: CommitRef, record: MigrationRecord) -> None:
        self.note(commit, record)
        reason = kube.Reason.of(record.outcome)
        # Anything but an apply deserves an operator's look, an intended rollback included.
        message = self.redact(summary_line(record))
        self.events.emit(reason=reason, message=message, warning=reason != kube.Reason.APPLIED)

    def note(self, commit: CommitRef, record: MigrationRecord) -> None:
        """The outcome on the commit: its note (pushed now and then), forge statuses and a line."""
        self.notes.record(commit.sha, record)
        self.unpushed = True
        self.say(f"{summary_line(record)} (note on {commit.short})")
        if time.monotonic() - self.pushed_at >= PUSH_EVERY_S:
            self.flush()
        if self.forges:
            forges.publish(self.forges, forges.CommitStatus.of(commit.sha, record), self.redact)

    def notes_of(self, shas: Iterable[str]) -> dict[str, StatusNote]:
        return self.notes.read_many(shas)

    def noted_before(self, commit: CommitRef, record: MigrationRecord) -> bool:
        """The note on the commit already says this; then the line says so."""
        record = record.model_copy(update={"reason": self.redact(record.reason)})  # as the note stores it
        if already_noted(self.notes.read(commit.sha), record):
            self.say(f"{summary_line(record)} (noted on {commit.short} before)")
            return True
        return False

    def refusal(self, commit: CommitRef, record: MigrationRecord) -> None:
        """A refusal, written once: the next passes only say it again in one line."""
        if not self.noted_before(commit, record):
            self.outcome(commit, record)

    def flush(self) -> None:
        """Push the notes when there is something to push (a failed push is retried next pass)."""
        if self.push and self.unpushed:
            self.unpushed = not self.notes.push().pushed
            self.pushed_at = time.monotonic()


def open_source(settings: Settings) -> tuple[Source, bool]:
    """The watched repository, fetched; and whether it has an origin to push notes to."""
    source = Source.from_settings(settings, redact.from_settings(settings))
    if settings.repo is not None:
        source.fetch()
    has_origin = any(remote.name == REMOTE for remote in source.repo.remotes)
    return source, has_origin


def run(
    settings: Settings, *, wait: bool = False, stop: threading.Event | None = None, say: Say = print,
    events: kube.EventRecorder | None = None,
) -> SyncResult:
    """One reconcile pass. Raises InputError/UsageError for bad input (nothing applied), SourceError
    when git fails, ApplierBusy when another applier holds the lock.

    `events` defaults to a recorder from the environment; a loop passes one it keeps. The pass
    holds the git cache throughout (CacheBusy when another process keeps it too long).
    """
    with held_cache(settings):
        return _run(settings, wait=wait, stop=stop or threading.Event(), say=say, events=events)


def _run(
    settings: Settings, *, wait: bool, stop: threading.Event, say: Say, events: kube.EventRecorder | None,
) -> SyncResult:
    source, has_origin = open_source(settings)
    events = events or kube.recorder_from_environment(redact=source.redact)
    reporter = Reporter(settings, source, say, events, push=has_origin)
    if has_origin:
        reporter.fetch_notes()
    with read_branch(settings, source) as branch:
        def finish(engine: Engine, result: SyncResult) -> None:
            # On the pass's own connection under the applier lock: the ledger state it records is the pass's.
            reporter.flush()
            fastpath.record(engine.ledger.conn, settings, reporter.seen(branch.history.head.sha, result.ok))

        result = reconcile(branch, settings, db.target_dsn(settings), reporter, wait=wait, stop=stop, finish=finish)
    if not result.records and result.ok:
        count = len(branch.tree.migrations.migrations)
        say(f"in sync: {count} migration{'' if count == 1 else 's'} at {branch.history.head.short}, nothing to do")
    return result


# -- the seam: the branch read and approved once, reconciled with one target at a time ----------


class Approvals:
    """The approval verdicts of one head, each reached once however many targets ask (a fleet's
    targets share the head, so they share its verdicts); safe to ask from several threads."""

    def __init__(
        self, source: Source, history: BranchHistory, tree: CommitMigrations,
        signatures: approval.SignatureCheck | None,
    ) -> None:
        self.source, self.history, self.tree, self.signatures = source, history, tree, signatures
        self._lock = threading.Lock()
        self._applies: dict[tuple[tuple[str, ...], int], dict[str, approval.Verdict]] = {}
        self._rollbacks: dict[tuple[str, str, int], approval.RollbackVerdict] = {}

    def applies(self, versions: list[str], pg_version: int) -> dict[str, approval.Verdict]:
        key = (tuple(versions), pg_version)
        with self._lock:
            if key not in self._applies:
                self._applies[key] = approval.approve(
                    self.history, self.tree, versions=versions,
                    checker=approval.hook_checks(pg_version, pending=versions), signatures=self.signatures,
                ) if versions else {}
            return self._applies[key]

    def rollback(self, record: LedgerRecord, removed_by: CommitRef, pg_version: int) -> approval.RollbackVerdict:
        # The stored down is the target's own: a verdict is shared only by targets that stored the same.
        key = (record.version, record.down_checksum, pg_version)
        with self._lock:
            if key not in self._rollbacks:
                self._rollbacks[key] = approval.approve_rollback(
                    record, removed_by, self.source, self.history, pg_version=pg_version, signatures=self.signatures,
                )
            return self._rollbacks[key]


@dataclass(frozen=True, slots=True)
class Branch:
    """The watched branch as one pass sees it: its history, the migration set at its head, and the
    approvals of that head."""

    source: Source
    history: BranchHistory
    tree: CommitMigrations
    approvals: Approvals


@contextmanager
def read_branch(settings: Settings, source: Source, at: str | None = None) -> Iterator[Branch]:
    """The branch's history and head (or the commit `at` of it), checked out for the pass (bad input
    names its path in the repository)."""
    history = source.history(at)
    signatures = approval.signature_check(source.repo, settings.require_signed, settings.allowed_signers)
    try:
        with source.migrations_at(history.head.sha, require_triples=False) as tree:
            yield Branch(source, history, tree, Approvals(source, history, tree, signatures))
    except InputError as exc:
        raise InputError([source.in_repository(p) for p in exc.problems]) from None


class Outcomes(Protocol):
    """Where one target's outcomes go: a Reporter (one database), or a fleet's collector."""

    def say(self, text: str) -> None: ...

    def outcome(self, commit: CommitRef, record: MigrationRecord) -> None: ...

    def refusal(self, commit: CommitRef, record: MigrationRecord) -> None: ...

    def notes_of(self, shas: Iterable[str]) -> dict[str, StatusNote]: ...


def reconcile(
    branch: Branch, settings: Settings, dsn: str, outcomes: Outcomes, *, wait: bool, stop: threading.Event,
    finish: Callable[[Engine, SyncResult], None] | None = None,
) -> SyncResult:
    """Bring one target database to the branch's head, then `finish` while its engine is open;
    raises what Engine raises."""
    with Engine(settings, dsn, wait=wait, stop=stop) as engine:
        result = _Pass(engine, branch, outcomes, stop).run()
        if finish is not None:
            finish(engine, result)
        return result


class _Pass:
    def __init__(self, engine: Engine, branch: Branch, reporter: Outcomes, stop: threading.Event) -> None:
        self.engine = engine
        self.history = branch.history
        self.tree = branch.tree
        self.approvals = branch.approvals
        self.reporter = reporter
        self.stop = stop
        self.result = SyncResult()

    def problem(self, line: str) -> None:
        self.result.problems.append(line)
        self.reporter.say(line)

    def run(self) -> SyncResult:
        entries = self.engine.ledger_entries()
        present = set(self.tree.migrations.by_version())
        self._catch_up(entries, present)
        dirty = [e for e in entries.values() if lifecycle.state_of(e, None) is State.DIRTY]
        if dirty:
            for entry in dirty:
                self.problem(f"blocked: {lifecycle.dirty_reason(entry)}")
            return self.result
        rollbacks = plan_rollbacks(
            entries, present, self.history, self._approve_rollbacks(entries, present),
            self.engine.settings.max_rollbacks,
        )
        for held in rollbacks.held:
            self.reporter.refusal(self.history.head, refusal(held.version, held.name, [held.reason]))
            self.result.problems.append(f"{held.version}_{held.name} held")
        for refused in rollbacks.refused:
            self._refuse(refused.version, refused.name, list(refused.reasons), refused.commit)
        for rollback in rollbacks.todo:
            if self._stopped() or not self._roll_back(rollback):
                return self.result
        self._apply_all(entries)
        return self.result

    def _approve_rollbacks(
        self, entries: dict[str, LedgerEntry], present: set[str]
    ) -> dict[str, approval.RollbackVerdict]:
        verdicts: dict[str, approval.RollbackVerdict] = {}
        for entry, removed_by in rollback_candidates(entries, present, self.history)[0]:
            record = self.engine.ledger.get(entry.version)
            assert record is not None, "a row read this pass is still there: the pass holds the applier lock"
            verdicts[entry.version] = self.approvals.rollback(record, removed_by, self._lint_version())
        return verdicts

    def _catch_up(self, entries: dict[str, LedgerEntry], present: set[str]) -> None:
        """Rewrite the notes the ledger moved past since they were written, before anything runs."""
        notes = self.reporter.notes_of(change.commit.sha for change in self.history.changes)
        for behind in notes_behind(entries, present, self.history, notes):
            record = catch_up_record(self.engine.ledger, behind)
            self.result.records.append(record)
            self.reporter.outcome(behind.commit, record)

    def _stopped(self) -> bool:
        if self.stop.is_set():
            self.result.interrupted = True
            self.reporter.say("stopped before the next migration; the next run goes on from here")
        return self.stop.is_set()

    def _roll_back(self, rollback: Rollback) -> bool:
        self.reporter.say(f"rolling back {rollback.version}_{rollback.name}: removed by {rollback.commit.short} "
                          f"({rollback.commit.summary})")
        outcome = self.engine.rollback(rollback.version, commit=rollback.commit.sha)
        if outcome.status is Outcome.INTERRUPTED:
            self.result.interrupted = True
            return False
        record = record_of(outcome, applying=False, where=outcome.where)
        self._record(rollback.commit, record)
        return record.outcome is Outcome.ROLLED_BACK

    def _apply_all(self, entries: dict[str, LedgerEntry]) -> None:
        migrations = self.tree.migrations
        todo = unapplied(entries, migrations)
        verdicts = self.approvals.applies(todo, self._lint_version())
        actions = plan_applies(entries, migrations, verdicts, self.history)
        for action in actions:
            if isinstance(action, Wait):
                later = sum(int(v) > int(action.version) for v in todo)
                behind = f"; {later} later migration(s) wait behind it" if later else ""
                self.problem(
                    f"waiting: {action.version}_{action.name} failed earlier ({' '.join(action.error.split())}); "
                    f"it runs again when a commit changes its files, or after `lockgate retry {action.version}`"
                    f"{behind}"
                )
            elif isinstance(action, Refuse):
                self._refuse(action.version, action.name, list(action.reasons), action.commit)
            elif isinstance(action, Edited):
                record = self.engine.ledger.get(action.migration.version)
                assert record is not None, "an edited migration has a ledger row"
                reasons = edited_after_apply(record, action.migration)
                self._refuse(action.migration.version, action.migration.name, reasons, action.commit)
            elif self._stopped() or not self._apply(action):
                return

    def _refuse(self, version: str, name: str, reasons: list[str], commit: CommitRef | None) -> None:
        in_repo = [self.tree.relative(r) for r in reasons]
        self.reporter.refusal(commit or self.history.head, refusal(version, name, in_repo))
        self.result.problems.append(f"{version}_{name} refused")

    def _apply(self, action: Apply) -> bool:
        migration, commit = action.migration, action.commit
        self.reporter.say(f"applying {migration.id} from {commit.short} ({commit.summary})")
        outcome = self.engine.apply(migration, commit=commit.sha)
        if outcome.status is Outcome.INTERRUPTED:
            self.result.interrupted = True
            self.reporter.say(f"{migration.id}: {outcome.reason}")
            return False
        where = self.tree.relative(outcome.where) if outcome.where else None
        record = record_of(outcome, applying=True, where=where)
        self._record(commit, record)
        return record.outcome is Outcome.APPLIED

    def _record(self, commit: CommitRef, record: MigrationRecord) -> None:
        self.result.records.append(record)
        if not record.outcome.good:
            self.result.problems.append(f"{record.id} {record.outcome}")
        self.reporter.outcome(commit, record)

    def _lint_version(self) -> int:
        """The server's own major version when the rules know it, else the configured target."""
        version = self.engine.pg_version
        return version if version in SUPPORTED_PG_VERSIONS else self.engine.settings.target_pg_version

