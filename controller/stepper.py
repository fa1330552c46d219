"""Running one step of a migration's up or down on the applier session.

A transactional step runs in its transaction with its ledger count; a statement that cannot run
in one (`Step.bare`) is announced in the ledger first, so a rerun knows it may have taken effect;
a batched step goes to the backfill. Each statement runs with the migration's timeouts, is
retried on a lock timeout with backoff, and is watched for the sessions that block it, so a
failure names them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from psycopg import errors, sql

from lockgate.controller import backfill, db, faultpoints
from lockgate.controller.applier import ApplierLock
from lockgate.controller.config import Settings
from lockgate.controller.ledger import Event, Ledger
from lockgate.controller.runcontext import RunContext, Timeouts, effective_timeouts
from lockgate.controller.snapshot import Baseline
from lockgate.controller.steps import Step
from lockgate.hooks.sqlmodel import Statement

# What re-running a statement that already took effect says: it exists already (relation,
# object, column), or what it drops is gone (object, relation, column).
_TOOK_EFFECT = frozenset({"42P07", "42710", "42701", "42704", "42P01", "42703"})


class StepFailed(Exception):
    """A statement of a step failed (after its lock-timeout retries)."""

    def __init__(self, message: str, path: Path, stmt: Statement) -> None:
        super().__init__(message)
        self.stmt = stmt
        self.where = f"{path}:{stmt.line}:{stmt.column}"


class _StatementError(Exception):
    def __init__(self, stmt: Statement, cause: psycopg.Error, blockers: list[str]) -> None:
        super().__init__(str(cause))
        self.stmt = stmt
        self.cause = cause
        self.blockers = blockers


def message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip()
    if diag.sqlstate:
        text = f"{text} (SQLSTATE {diag.sqlstate})"
    return text


class StepRunner:
    def __init__(
        self, settings: Settings, dsn: str, conn: psycopg.Connection, ledger: Ledger, lock: ApplierLock,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.conn = conn
        self.ledger = ledger
        self.lock = lock
        self.stop = stop

    def run(self, ctx: RunContext, step: Step, path: Path, *, on_commit: Callable[[], None]) -> bool:
        """Run one step with lock-timeout retries; False when a batch was stopped or paused.

        `on_commit` runs inside the step's transaction (for autocommit and batch steps, right
        after it), so the ledger's step count moves with what was committed.
        """
        if step.mode == "batch":
            try:
                result = backfill.run_batched(
                    self.dsn, settings=self.settings, version=ctx.version, step=step.number,
                    statement=step.first, stop=self.stop, before_batch=self.lock.hold,
                )
            except Exception as exc:  # the backfill's contract: any failure raises
                if isinstance(exc.__cause__, psycopg.OperationalError) and db.connection_lost(exc.__cause__):
                    raise exc.__cause__ from None
                text = message(exc) if isinstance(exc, psycopg.Error) else str(exc)
                raise StepFailed(f"batched {step.first.kind}: {text}", path, step.first) from None
            self.ledger.event(ctx.version, Event.BATCHES, {"step": step.number, "rows": result.rows,
                                                       "batches": result.batches, "completed": result.completed})
            if not result.completed:
                return False
            on_commit()
            return True
        with self.own_timeouts(ctx):
            self._with_lock_retries(ctx, path, lambda: self._execute_step(ctx, step, on_commit))
        return True

    # -- timeouts ---------------------------------------------------------------------------

    def reset_timeouts(self) -> None:
        """The configured timeouts on the applier session, for lockgate's own work."""
        self._set(effective_timeouts(self.settings, None))

    def _set(self, timeouts: Timeouts) -> None:
        db.set_timeouts(self.conn, lock_timeout_s=timeouts.lock_s, statement_timeout_s=timeouts.statement_s)

    @contextlib.contextmanager
    def own_timeouts(self, ctx: RunContext) -> Iterator[None]:
        """The migration's `-- lockgate:timeout` on the applier session while its own SQL runs.

        That SQL is its up steps, its validation gates and its down steps; lockgate's own work
        (baseline counts, catalog snapshots) keeps the configured values, and so does the next
        migration. Entered outside any transaction, so the session-level SET survives the
        step's transaction and the reset is not refused by an aborted one.
        """
        if ctx.timeout is None:
            yield
            return
        self._set(ctx.timeouts(self.settings))
        try:
            yield
        finally:
            if not self.conn.closed:  # a lost session takes its settings with it
                self.reset_timeouts()

    # -- statements -------------------------------------------------------------------------

    def _execute_step(self, ctx: RunContext, step: Step, on_commit: Callable[[], None]) -> None:
        point = "undo" if step.number < 0 else "statement"
        if not step.bare:
            with self.conn.transaction():
                for stmt in step.statements:
                    self._execute(ctx, stmt)
                    faultpoints.reached(point)
                on_commit()
            return
        # Alone: a multi-statement string would be a transaction.
        if self._sent_before(ctx.version, step):
            self._rerun(ctx, step.first)
        else:
            self.ledger.event(ctx.version, Event.STEP_STARTED, {"step": step.number})
            self._execute(ctx, step.first)
        faultpoints.reached(point)
        on_commit()

    def _sent_before(self, version: str, step: Step) -> bool:
        """Whether this run of the migration already sent this bare step (a crashed or timed-out try)."""
        for event, detail in reversed(self.ledger.events(version)):
            if event is Event.STEP_STARTED and detail.get("step") == step.number:
                return True
            if event is Event.STARTED:
                return False
        return False

    def _rerun(self, ctx: RunContext, stmt: Statement) -> None:
        """Send a bare statement again that may have taken effect before its step was counted."""
        leftover = self._invalid_index(stmt)
        if leftover is not None:  # a CONCURRENTLY build cut short leaves an invalid index behind
            self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(leftover))
            self.ledger.event(ctx.version, Event.DROPPED_INVALID_INDEX,
                              {"index": leftover.as_string(self.conn), "line": stmt.line})
        try:
            self._execute(ctx, stmt)
        except _StatementError as exc:
            if exc.cause.sqlstate not in _TOOK_EFFECT:
                raise
            self.ledger.event(ctx.version, Event.ALREADY_TOOK_EFFECT, {"line": stmt.line, "error": message(exc.cause)})

    def drop_own_invalid_index(self, version: str, stmt: Statement, baseline: Baseline) -> None:
        """Drop the INVALID index a failed `CREATE INDEX CONCURRENTLY` of this migration left behind.

        Only one that was not there before the migration began is its own: an index of that name
        that already existed (the build failed because it did) is left as it was.
        """
        leftover = self._invalid_index(stmt)
        if leftover is None:
            return
        name = stmt.node.get("idxname")
        if any(f"index {name}" in objects for objects in baseline.catalog.values() if isinstance(objects, dict)):
            return
        self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(leftover))
        self.ledger.event(version, Event.DROPPED_OWN_INVALID_INDEX,
                          {"index": leftover.as_string(self.conn), "line": stmt.line})

    def _invalid_index(self, stmt: Statement) -> sql.Identifier | None:
        name = stmt.node.get("idxname") if stmt.kind == "IndexStmt" else None
        if not name:
            return None
        schema = stmt.node.get("relation", {}).get("schemaname")
        index = sql.Identifier(*([schema] if schema else []), name)
        row = self.conn.execute(
            "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (index.as_string(self.conn),)
        ).fetchone()
        return index if row is not None and row[0] else None

    def _execute(self, ctx: RunContext, stmt: Statement) -> None:
        # The lock's session is idle while the run lasts: it watches for blockers.
        every = db.watch_interval(ctx.timeouts(self.settings).lock_s)
        with db.watch_blockers(self.lock.conn, self.conn.info.backend_pid, every_s=every) as blockers:
            try:
                self.conn.execute(stmt.text.encode())
            except psycopg.Error as exc:
                raise _StatementError(stmt, exc, list(blockers)) from exc

    def _with_lock_retries(self, ctx: RunContext, path: Path, attempt: Callable[[], None]) -> None:
        retries = self.settings.lock_retries
        for n in range(retries + 1):
            try:
                attempt()
                return
            except _StatementError as exc:
                if isinstance(exc.cause, psycopg.OperationalError) and db.connection_lost(exc.cause):
                    raise exc.cause from None
                if not isinstance(exc.cause, errors.LockNotAvailable):
                    raise StepFailed(message(exc.cause), path, exc.stmt) from None
                blockers = "blocked by " + " and ".join(exc.blockers) if exc.blockers else "no blocker seen"
                lock_s = ctx.timeouts(self.settings).lock_s
                if n == retries:
                    raise StepFailed(
                        f"lock timeout ({lock_s:g}s{ctx.lock_source()}) {retries + 1} times; {blockers}",
                        path, exc.stmt,
                    ) from None
                delay = self.settings.retry_backoff * 2**n
                self.ledger.event(ctx.version, Event.LOCK_TIMEOUT, {
                    "attempt": n + 1, "retry_in_s": delay, "blockers": blockers, "line": exc.stmt.line,
                    "lock_timeout_s": lock_s,
                })
                if self.stop.wait(delay):
                    raise StepFailed(f"stopped while waiting for a lock; {blockers}", path, exc.stmt) from None
