"""A fleet pass: the branch read and approved once, then every target reconciled in waves by
parallel workers of this process, then one aggregated note per commit.

Each target keeps its own ledger in its own database (its own applier lock, its own sticky
failures), so a pass stopped anywhere resumes target by target. Rollbacks from a revert fan out
in reverse wave order. Kubernetes Events are per target; notes and forge statuses are per commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from psycopg import sql

from lockgate.controller import db, fastpath, kube, lifecycle, sync
from lockgate.controller.config import Settings
from lockgate.controller.engine import Blocked, Engine
from lockgate.controller.fleet import metrics
from lockgate.controller.fleet.aggregate import TargetPass, aggregate
from lockgate.controller.fleet.config import Fleet, Target
from lockgate.controller.fleet.scheduler import Ended, order, run_waves
from lockgate.controller.ledger import ApplierBusy, Ledger, LedgerEntry
from lockgate.controller.lifecycle import State
from lockgate.controller.source import CommitRef, held_cache
from lockgate.controller.status import MigrationRecord, StatusNote, summary_line
from lockgate.hooks.errors import UsageError


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
        reason = sync.EVENT_REASON[record.outcome]
        self.reporter.events.emit(reason=reason, message=line, warning=reason != kube.Reason.APPLIED)

    def refusal(self, commit: CommitRef, record: MigrationRecord) -> None:
        self.outcome(commit, record)

    def notes_of(self, shas: Iterable[str]) -> dict[str, StatusNote]:
        # A fleet's notes are aggregates, rewritten from the targets' ledgers at the end of the pass.
        return {}


def ledger_entries(settings: Settings, dsn: str) -> dict[str, LedgerEntry]:
    with db.connect(dsn, application_name="lockgate fleet") as conn:
        ledger = Ledger(conn, settings.ledger_schema)
        return ledger.entries() if ledger.exists() else {}


def backfilled(settings: Settings, dsn: str, since: float) -> tuple[int, int]:
    """(batches, rows) the target's backfills ran since the epoch second `since`."""
    with db.connect(dsn, application_name="lockgate fleet") as conn:
        if not Ledger(conn, settings.ledger_schema).exists():
            return 0, 0
        row = conn.execute(sql.SQL(
            "SELECT coalesce(sum((detail->>'batches')::bigint), 0), coalesce(sum((detail->>'rows')::bigint), 0) "
            "FROM {} WHERE event = 'batches' AND at >= to_timestamp(%s)"
        ).format(sql.Identifier(settings.ledger_schema, "events")), (since,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _rolls_back(entries: dict[str, LedgerEntry], present: set[str]) -> bool:
    return any(v not in present and lifecycle.state_of(e, None) is State.APPLIED for v, e in entries.items())


def run(
    settings: Settings, fleet: Fleet, *, wait: bool = False, stop: threading.Event | None = None,
    say: sync.Say = print, events: kube.EventRecorder | None = None,
) -> sync.SyncResult:
    """One pass over every target; bad input raises as `sync.run` does (nothing applied anywhere)."""
    stop = stop or threading.Event()
    dsns = {t.name: t.resolve_dsn() for t in fleet.targets}
    with held_cache(settings):
        source, has_origin = sync.open_source(settings)
        events = events or kube.recorder_from_environment(redact=source.redact)
        reporter = sync.Reporter(settings, source, say, events, push=has_origin)
        if has_origin:
            reporter.fetch_notes()
        passes = {t.name: TargetPass(t.name) for t in fleet.targets}
        with sync.read_branch(settings, source) as branch:
            present = set(branch.tree.migrations.by_version())
            before = {name: ledger_entries(settings, dsn) for name, dsn in dsns.items()}
            reverse = any(_rolls_back(entries, present) for entries in before.values())

            def work(target: Target) -> Ended:
                one = passes[target.name]
                started = time.monotonic()

                def settled(engine: Engine, result: sync.SyncResult) -> None:
                    # Read under the target's applier lock: a write after the pass must not pass for its own.
                    if result.ok:
                        one.in_sync_ledger = fastpath.ledger(engine.ledger.conn, settings)

                try:
                    result = sync.reconcile(branch, settings, dsns[target.name], Collector(one, reporter),
                                            wait=wait, stop=stop, finish=settled)
                except (ApplierBusy, Blocked, UsageError) as exc:
                    one.error = source.redact(str(exc))
                    reporter.say(f"[{target.name}] {one.error}")
                    return "failed"
                finally:
                    one.duration_s = time.monotonic() - started
                if result.interrupted:
                    return "interrupted"
                return "in_sync" if result.ok else "failed"

            began = time.time()
            states = run_waves(order(fleet.waves, reverse=reverse), work, stop)
        for name, state in states.items():
            passes[name].state = state
            if state != "not_started" and not passes[name].error:
                passes[name].entries = ledger_entries(settings, dsns[name])
        targets = [passes[t.name] for t in fleet.targets]
        result = _report(reporter, targets, present)
        reporter.flush()
        for target in targets:
            if not target.error:  # else the pass never had it (unreachable, another applier): nothing to record
                with db.connect(dsns[target.name], application_name="lockgate sync") as conn:
                    seen = reporter.seen(branch.history.head.sha, target.in_sync_ledger is not None)
                    fastpath.record(conn, settings, seen, target.in_sync_ledger)
    if settings.metrics_push_url:
        metrics.push(settings.metrics_push_url, [
            metrics.TargetMetrics(t.name, t.state, t.duration_s, *(
                backfilled(settings, dsns[t.name], began) if t.state != "not_started" else (0, 0)))
            for t in targets
        ])
    in_sync = sum(s == "in_sync" for s in states.values())
    say(f"fleet at {branch.history.head.short}: {in_sync}/{len(states)} targets in sync")
    return result


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
