"""A fleet pass: the branch read and approved once, then every target reconciled in waves by
parallel workers of this process, then one aggregated note per commit.

Each target keeps its own ledger in its own database (its own applier lock, its own sticky
failures), so a pass stopped anywhere resumes target by target. Rollbacks from a revert fan out
in reverse wave order. Kubernetes Events are per target; notes and forge statuses are per commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import psycopg
from psycopg import sql

from lockgate.controller import db, fastpath, kube, lifecycle, sync
from lockgate.controller.config import Settings
from lockgate.controller.engine import Blocked, Engine
from lockgate.controller.fleet import metrics, refusals, settled
from lockgate.controller.fleet.aggregate import TargetPass, aggregate, ledger_noted, reached
from lockgate.controller.fleet.config import Fleet, Target
from lockgate.controller.fleet.scheduler import Ended, order, run_waves
from lockgate.controller.fleet.scheduler import State as TargetState
from lockgate.controller.ledger import ApplierBusy, Ledger, LedgerEntry
from lockgate.controller.source import CommitRef, held_cache
from lockgate.controller.status import MigrationRecord, StatusNote, summary_line
from lockgate.hooks.errors import UsageError

T = TypeVar("T")
# What a target's pod left for the coordinator: its ledger rows, and its refusals by commit sha.
PodLeft = tuple[dict[str, LedgerEntry], list[tuple[str, MigrationRecord]]]


class Collector:
    """One target's outcomes, kept for the fleet's note; its Events go out as they come."""

    def __init__(self, target: TargetPass, reporter: sync.Reporter) -> None:
        self.target = target
        self.reporter = reporter

    def say(self, text: str) -> None:
        self.reporter.say(f"[{self.target.name}] {text}")

    def outcome(self, commit: CommitRef, record: MigrationRecord) -> None:
        self.target.noted.append((commit, record))
        line = self.reporter.redact(f"{self.target.name}: {summary_line(record)}")
        self.say(summary_line(record))
        reason = kube.Reason.of(record.outcome)
        self.reporter.events.emit(reason=reason, message=line, warning=reason != kube.Reason.APPLIED)

    def refusal(self, commit: CommitRef, record: MigrationRecord) -> None:
        self.outcome(commit, record)

    def notes_of(self, shas: Iterable[str]) -> dict[str, StatusNote]:
        # A fleet's notes are aggregates, rewritten from the targets' ledgers at the end of the pass.
        return {}


def ledger_entries(conn: psycopg.Connection, settings: Settings) -> dict[str, LedgerEntry]:
    """The target's ledger rows by version (none before its first pass)."""
    ledger = Ledger(conn, settings.ledger_schema)
    return ledger.entries() if ledger.exists() else {}


def backfilled(conn: psycopg.Connection, settings: Settings, since: float) -> tuple[int, int]:
    """(batches, rows) the target's backfills ran since the epoch second `since`."""
    if not Ledger(conn, settings.ledger_schema).exists():
        return 0, 0
    row = conn.execute(sql.SQL(
        "SELECT coalesce(sum((detail->>'batches')::bigint), 0), coalesce(sum((detail->>'rows')::bigint), 0) "
        "FROM {} WHERE event = 'batches' AND at >= to_timestamp(%s)"
    ).format(sql.Identifier(settings.ledger_schema, "events")), (since,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _rolls_back(entries: dict[str, LedgerEntry], present: set[str]) -> bool:
    return any(v not in present and lifecycle.rolls_back(e) for v, e in entries.items())


class Pass:
    """One fleet pass over a branch read once: each target's part, whoever runs it (the local
    executor's threads, or one target's pod under the Kubernetes executor), and the ending that
    aggregates the targets into one note per commit."""

    def __init__(self, settings: Settings, fleet: Fleet, reporter: sync.Reporter, branch: sync.Branch) -> None:
        self.settings, self.fleet, self.reporter, self.branch = settings, fleet, reporter, branch
        self.dsns = {t.name: t.resolve_dsn() for t in fleet.targets}
        self.passes = {t.name: TargetPass(t.name) for t in fleet.targets}
        self.present = set(branch.tree.migrations.by_version())
        self.began = time.time()

    def rolls_back(self) -> bool:
        """Whether a revert rolls any target back: then the waves run in reverse."""
        return any(_rolls_back(self.read(name, partial(ledger_entries, settings=self.settings), {}), self.present)
                   for name in self.dsns)

    def read(self, name: str, what: Callable[[psycopg.Connection], T], default: T) -> T:
        """`what` on a connection of its own to target `name`'s database: every read (or the
        fingerprint's write) the pass does on a target outside its reconcile goes through here.
        A database that cannot be reached is the target's error (it fails on its own, and the
        others go on) and `default`."""
        one = self.passes[name]
        try:
            with db.connect(self.dsns[name], application_name="lockgate fleet") as conn:
                return what(conn)
        except UsageError as exc:
            error = self.reporter.redact(str(exc))
            if error != one.error:
                self.reporter.say(f"[{name}] {error}")
            one.error = error
            return default

    def reconcile(self, target: Target, *, wait: bool, stop: threading.Event) -> Ended:
        """Bring one target to the branch's head; how it ended."""
        one = self.passes[target.name]
        one.error = ""  # a read before its turn may have failed: this attempt is the one that counts
        started = time.monotonic()

        def settled(engine: Engine, result: sync.SyncResult) -> None:
            # Read under the target's applier lock: a write after the pass must not pass for its own.
            if result.ok:
                one.in_sync_ledger = fastpath.ledger(engine.ledger.conn, self.settings)

        try:
            result = sync.reconcile(self.branch, self.settings, self.dsns[target.name], Collector(one, self.reporter),
                                    wait=wait, stop=stop, finish=settled)
        except (ApplierBusy, Blocked, UsageError) as exc:
            one.error = self.reporter.redact(str(exc))
            self.reporter.say(f"[{target.name}] {one.error}")
            return "failed"
        finally:
            one.duration_s = time.monotonic() - started
        if result.interrupted:
            return "interrupted"
        return "in_sync" if result.ok else "failed"

    def finish(self, states: dict[str, TargetState], *, from_ledgers: bool = False) -> sync.SyncResult:
        """The note per commit, the no-op fingerprints, the metrics and the closing line.

        `from_ledgers`: the targets ran elsewhere, so what each did is read back from its ledger
        (what it says that the commits' notes do not yet).
        """
        history = self.branch.history
        notes = self.reporter.notes_of(change.commit.sha for change in history.changes) if from_ledgers else {}
        for name, state in states.items():
            one = self.passes[name]
            one.state = state
            if from_ledgers:
                one.error = ""  # an earlier read may have failed: this one says what the target's pod left
                left: PodLeft = ({}, [])
                one.entries, refused = self.read(name, partial(_ledger_and_refusals, settings=self.settings), left)
                if one.error:  # unreachable: it fails on its own, as with the local executor
                    one.state = "not_started" if state == "not_started" else "failed"
                    continue
                one.noted = ledger_noted(name, one.entries, refused, self.present, history, notes)
                one.state = reached(state, one.noted, one.entries)
            elif state != "not_started" and not one.error:
                one.entries = self.read(name, partial(ledger_entries, settings=self.settings), {})
        targets = [self.passes[t.name] for t in self.fleet.targets]
        result = _report(self.reporter, targets, self.present)
        self.reporter.flush()
        for one in targets:
            if not one.error:  # else the pass never had it (unreachable, another applier): nothing to record
                self.read(one.name, partial(self._fingerprint, one, from_ledgers=from_ledgers), None)
        if self.settings.metrics_push_url:
            metrics.push(self.settings.metrics_push_url, [
                metrics.TargetMetrics(t.name, t.state, t.duration_s, *(
                    self.read(t.name, partial(backfilled, settings=self.settings, since=self.began), (0, 0))
                    if t.state != "not_started" and not t.error else (0, 0)))
                for t in targets
            ])
        in_sync = sum(t.state == "in_sync" for t in targets)
        self.reporter.say(f"fleet at {history.head.short}: {in_sync}/{len(targets)} targets in sync")
        return result

    def _fingerprint(self, one: TargetPass, conn: psycopg.Connection, *, from_ledgers: bool) -> None:
        """Set (or clear) the target's no-op fingerprint after the pass."""
        if not Ledger(conn, self.settings.ledger_schema).exists():
            return  # never reached: no ledger, so no fingerprint to set or clear
        head = self.branch.history.head.sha
        if from_ledgers and one.state == "in_sync":
            # As its pod read it under the applier lock: a write since must not pass for the pod's.
            one.in_sync_ledger = settled.read(conn, self.settings.ledger_schema, head)
        seen = self.reporter.seen(head, one.in_sync_ledger is not None)
        fastpath.record(conn, self.settings, seen, one.in_sync_ledger)


def _ledger_and_refusals(conn: psycopg.Connection, settings: Settings) -> PodLeft:
    """What a target's pod left: its ledger rows and the refusals it recorded beside them."""
    return ledger_entries(conn, settings), refusals.read(conn, settings.ledger_schema)


@contextmanager
def opened(
    settings: Settings, fleet: Fleet, *, say: sync.Say, events: kube.EventRecorder | None,
    at: str | None = None, notes: bool = True,
) -> Iterator[Pass]:
    """A pass over the branch's head (or its commit `at`), holding the git cache; `notes`: fetch
    the origin's notes, to aggregate into (one target's pod writes none)."""
    with held_cache(settings):
        source, has_origin = sync.open_source(settings)
        if at is not None and not source.is_ancestor(at):
            raise UsageError(f"--at {at}: not a commit of branch {settings.branch}")
        events = events or kube.recorder_from_environment(redact=source.redact)
        reporter = sync.Reporter(settings, source, say, events, push=has_origin and notes)
        if has_origin and notes:
            reporter.fetch_notes()
        with sync.read_branch(settings, source, at) as branch:
            yield Pass(settings, fleet, reporter, branch)


def run(
    settings: Settings, fleet: Fleet, *, wait: bool = False, stop: threading.Event | None = None,
    say: sync.Say = print, events: kube.EventRecorder | None = None,
) -> sync.SyncResult:
    """One pass over every target by parallel workers of this process; bad input raises as
    `sync.run` does (nothing applied anywhere)."""
    stop = stop or threading.Event()
    with opened(settings, fleet, say=_whole_lines(say), events=events) as fleet_pass:
        waves = order(fleet.waves, reverse=fleet_pass.rolls_back())
        states = run_waves(waves, partial(fleet_pass.reconcile, wait=wait, stop=stop), stop)
        return fleet_pass.finish(states)


def _whole_lines(say: sync.Say) -> sync.Say:
    """`say` for parallel workers: one line at a time (print writes a line's end on its own, so
    two workers' lines would run together)."""
    lock = threading.Lock()

    def said(text: str) -> None:
        with lock:
            say(text)

    return said


def _report(reporter: sync.Reporter, targets: list[TargetPass], present: set[str]) -> sync.SyncResult:
    result = sync.SyncResult()
    for commit, record in aggregate(targets, present):
        result.records.append(record)
        if not reporter.noted_before(commit, record):  # written once: a pass that changes nothing writes nothing
            reporter.note(commit, record)
    for target in targets:
        if target.state == "interrupted":
            result.interrupted = True
        elif target.state != "in_sync":
            result.problems.append(f"{target.name} {target.state.replace('_', ' ')}")
    return result
