"""The apply engine: baseline → steps (lock-timeout retries) → batches → validate → record.

Or roll back: an atomic migration validates inside its own transaction, so a failed gate is a
plain ROLLBACK; a migration that committed steps (batches, no-transaction statements) runs
its down file and then proves, against the catalog snapshot taken before it started, that
the schema is back exactly. When it is not, the migration is `dirty` and nothing more is
applied until a human runs `lockgate resolve`.

A run that dies (SIGKILL, a lost connection) leaves the ledger saying how far it got: the
next run resumes committed steps, batches from their checkpoint, and a rollback from the
first down step it did not commit. A lost connection is not a failure: nothing is rolled back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import psycopg
from psycopg import errors, sql
from psycopg.pq import TransactionStatus
from pydantic import BaseModel

from lockgate.controller import backfill, db, faultpoints, lifecycle, snapshot, validation
from lockgate.controller.config import Settings
from lockgate.controller.ledger import (
    Event,
    Ledger,
    LedgerEntry,
    LedgerRecord,
    acquire_applier_lock,
    wait_for_dead_runs,
)
from lockgate.controller.lifecycle import Move, State
from lockgate.controller.outcome import GateResult, Outcome
from lockgate.controller.snapshot import Baseline
from lockgate.controller.steps import Step, is_atomic, split
from lockgate.hooks.directives import Timeout
from lockgate.hooks.errors import InputError, Problem, UsageError
from lockgate.hooks.migrationset import KINDS, Migration, MigrationSet
from lockgate.hooks.sqlmodel import SqlFile, Statement, parse_sql

# What re-running a statement that already took effect says: it exists already (relation,
# object, column), or what it drops is gone (object, relation, column).
_TOOK_EFFECT = frozenset({"42P07", "42710", "42701", "42704", "42P01", "42703"})


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


class RunResult(BaseModel):
    """What happened to one migration in one run."""

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


class Blocked(Exception):
    """The ledger forbids going on (a dirty migration, or a ledger row that is not what the
    operation needs); the message says what a human should do."""


class ConnectionLost(Blocked):
    """The database session went away mid-run (a server restart, a terminated backend).

    Nothing is rolled back: the migration stays `applying` with its committed steps and batch
    checkpoints, and the next run resumes it. A Blocked, so every command reports it as one
    line and exits 1.
    """

    def __init__(self, version: str, cause: psycopg.OperationalError) -> None:
        first = (str(cause).strip().splitlines() or ["the connection is closed"])[0]
        super().__init__(
            f"{version}: lost the database connection ({first}); nothing was rolled back: "
            "the migration stays applying and the next run resumes it"
        )


class StepFailed(Exception):
    """A statement of a step failed (after its lock-timeout retries)."""

    def __init__(self, message: str, path: Path, stmt: Statement) -> None:
        super().__init__(message)
        self.stmt = stmt
        self.where = f"{path}:{stmt.line}:{stmt.column}"


class _GatesFailed(Exception):
    def __init__(self, results: list[GateResult]) -> None:
        super().__init__(validation.summary(results))
        self.results = results


class _StatementError(Exception):
    def __init__(self, stmt: Statement, cause: psycopg.Error, blockers: list[str]) -> None:
        super().__init__(str(cause))
        self.stmt = stmt
        self.cause = cause
        self.blockers = blockers


class _Undone(NamedTuple):
    status: Outcome  # rolled_back or dirty
    restored: bool | None
    detail: str
    where: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pending_of(entries: dict[str, LedgerEntry], migrations: MigrationSet) -> list[Migration]:
    """Migrations without an `applied` ledger row, in version order.

    Raises InputError when a file of an applied migration was edited afterwards (its checksum
    no longer matches the ledger): applied migrations are immutable.
    """
    problems: list[Problem] = []
    todo: list[Migration] = []
    for migration in migrations.migrations:
        entry = entries.get(migration.version)
        state = lifecycle.state_of(entry, migration)
        if state is State.APPLIED:
            continue
        if state is not State.EDITED:
            todo.append(migration)
            continue
        assert entry is not None
        problems += _edited(entry, migration)
    if problems:
        raise InputError(problems)
    return todo


def _edited(entry: LedgerEntry, migration: Migration) -> list[Problem]:
    """A problem for each file of an applied migration that differs from what the ledger ran."""
    problems: list[Problem] = []
    for kind in KINDS:
        recorded = getattr(entry, f"{kind}_checksum")
        file = migration.files.get(kind)
        if file is None or recorded != file.checksum:
            path = file.path if file else migration.up.path.with_name(f"{migration.id}.{kind}.sql")
            problems.append(Problem(
                path, 1, 1,
                f"edited after it was applied (ledger checksum {recorded[:12]}…); "
                "applied migrations are immutable: add a new migration instead",
            ))
    return problems


class Engine:
    """Applies and rolls back migrations on one database; one applier at a time.

    A context manager: entering takes the applier lock (a session-level advisory lock held on
    a connection of its own for the whole run) and creates or upgrades the ledger.
    """

    def __init__(
        self, settings: Settings, dsn: str, *, wait: bool = False, stop: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.wait = wait
        self.stop = stop or threading.Event()
        self._lock_conn: psycopg.Connection | None = None
        self._conn: psycopg.Connection | None = None
        # The `-- lockgate:timeout` of the migration being applied or rolled back, if it has one.
        self._override: Timeout | None = None

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> Engine:
        schema = self.settings.ledger_schema
        self._lock_conn = db.connect(self.dsn, application_name="lockgate applier lock")
        try:
            acquire_applier_lock(self._lock_conn, schema, wait=self.wait, stop=self.stop)
            wait_for_dead_runs(self._lock_conn, timeout_s=self.settings.statement_timeout or None, stop=self.stop)
            self._conn = db.connect(self.dsn, application_name="lockgate applier")
            self._set_timeouts(effective_timeouts(self.settings, None))
            self.pg_version = db.server_major(self._conn)
            self.ledger = Ledger(self._conn, schema)
            self.ledger.setup()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._lock_conn is not None:
            # Unlock first: the server ends a closed session (and frees its locks) only a moment
            # after the client has gone, and a run started right after ours must not find the lock
            # still held. A session the server already dropped has nothing to unlock; its error
            # must not hide the real one.
            with contextlib.suppress(psycopg.Error):
                self._lock_conn.execute("SELECT pg_advisory_unlock_all()")
            self._lock_conn.close()

    @property
    def conn(self) -> psycopg.Connection:
        assert self._conn is not None, "use Engine as a context manager"
        return self._conn

    # -- reading the ledger -----------------------------------------------------------------

    def ledger_entries(self) -> dict[str, LedgerEntry]:
        return self.ledger.entries()

    def _refuse_if_dirty(self, entries: dict[str, LedgerEntry] | None = None) -> None:
        """Blocked while a migration is dirty; `entries`: the whole ledger when the caller has it read."""
        known = self.ledger.entries(status=Outcome.DIRTY) if entries is None else entries
        entry = next((e for e in known.values() if lifecycle.state_of(e, None) is State.DIRTY), None)
        if entry is not None:
            raise Blocked(lifecycle.dirty_reason(entry))

    def pending(self, migrations: MigrationSet) -> list[Migration]:
        """Migrations not applied yet, in version order (see `pending_of`); Blocked when one is dirty."""
        entries = self.ledger_entries()
        self._refuse_if_dirty(entries)
        return pending_of(entries, migrations)

    # -- applying ---------------------------------------------------------------------------

    def check(self, migrations: list[Migration]) -> None:
        """Every parse and structure error of these migrations' files, raised together."""
        problems: list[Problem] = []
        for migration in migrations:
            for kind in KINDS:
                try:
                    sql = migration.files[kind].sql
                    if kind != "validate":
                        split(sql, pg_version=self.pg_version)
                except InputError as exc:
                    problems.extend(exc.problems)
        if problems:
            raise InputError(problems)

    def apply(self, migration: Migration, *, commit: str | None = None, retry: bool = False) -> RunResult:
        """Apply one migration (resuming it when a previous run was interrupted).

        A migration that failed before is not re-run with the same files unless `retry`;
        all parse and structure errors of its three files are raised before anything runs.
        ConnectionLost when the database session goes away meanwhile.
        """
        try:
            return self._apply(migration, commit=commit, retry=retry)
        except psycopg.OperationalError as exc:
            if not db.connection_lost(exc):
                raise
            raise self._lost(migration.version, exc) from None
        finally:
            self._end_migration()

    def _end_migration(self) -> None:
        """Nothing one migration set on the applier session reaches the next one.

        A plain `SET` in a migration (search_path, a timeout) outlives its transaction: back
        to the connection's defaults and the configured timeouts, also after a failure.
        """
        self._override = None
        conn = self._conn
        if conn is None or conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            return
        with contextlib.suppress(psycopg.OperationalError):  # a lost session is reported by the caller
            conn.execute("RESET ALL")
            self._set_timeouts(effective_timeouts(self.settings, None))

    def _lost(self, version: str, exc: psycopg.OperationalError) -> ConnectionLost:
        """The ConnectionLost to raise, noted in the ledger when the applier's own session still works."""
        # When the applier's session is gone too, the ledger row `applying` is the record.
        with contextlib.suppress(psycopg.Error):
            self.ledger.event(version, Event.CONNECTION_LOST, {"error": str(exc).strip()[:300]})
        return ConnectionLost(version, exc)

    def _hold_lock(self) -> None:
        """Fail fast when the applier lock's session was ended: another applier could start."""
        assert self._lock_conn is not None
        self._lock_conn.execute("SELECT 1")

    def _apply(self, migration: Migration, *, commit: str | None, retry: bool) -> RunResult:
        self._hold_lock()
        self._refuse_if_dirty()
        started = _now()
        self.check([migration])
        up_steps = split(migration.up.sql, pg_version=self.pg_version)
        self._override = migration.up.sql.timeout
        entry = self.ledger.get(migration.version)
        state = lifecycle.state_of(entry, migration)
        if retry and state is not State.FAILED:
            raise UsageError(f"{migration.version} has not failed ({state}); nothing to retry")
        if retry and entry is not None:
            # Kept so that sync can say on the commit how a failed migration came to be applied.
            self.ledger.event(migration.version, Event.RETRY, {"after": entry.status}, commit)
        move = lifecycle.next_move(state, retry=retry, atomic=is_atomic(up_steps))
        if move is Move.SKIP:
            return self._outcome(migration, Outcome.APPLIED, started, reason="already applied")
        if move is Move.WAIT:
            assert entry is not None
            return self._outcome(
                migration, Outcome.FAILED, started,
                reason=f"failed earlier ({entry.error}); fix it in a new commit or run "
                f"`lockgate retry {migration.version}`",
            )
        if move is Move.REFUSE:
            assert entry is not None
            raise InputError(_edited(entry, migration))
        if move is Move.FINISH_ROLLBACK:
            assert entry is not None
            # A rollback cut short ends first; then the migration goes on as its new state says (a
            # revert's rollback finished under a re-land runs again, from a clean schema).
            undone = self._resume_rollback(migration, entry, started, commit)
            entry = self.ledger.get(migration.version)
            if lifecycle.next_move(lifecycle.state_of(entry, migration)) is not Move.RUN:
                return undone
            move = Move.RUN
        if move is Move.RESUME:
            assert entry is not None
            assert entry.baseline is not None
            if entry.up_checksum != migration.up.checksum:
                raise InputError.at(
                    migration.up.path, 1, 1,
                    "changed while an interrupted run of it was half done; restore the applied text "
                    "or resolve it by hand",
                )
            baseline = Baseline.model_validate(entry.baseline)
            done = entry.steps_done
            self.ledger.event(migration.version, Event.RESUMED, {"steps_done": done}, commit)
        else:
            baseline = snapshot.capture(self.conn, migration.up.sql, ledger_schema=self.settings.ledger_schema)
            done = 0
            self.ledger.begin({
                "version": migration.version, "name": migration.name,
                **{f"{k}_checksum": migration.files[k].checksum for k in KINDS},
                **{f"{k}_sql": migration.files[k].text for k in KINDS},
                "commit_sha": commit, "baseline": baseline.model_dump(mode="json"),
            })
        return self._run_up(migration, up_steps, baseline, done, started, commit)

    def _run_up(
        self, migration: Migration, up_steps: list[Step], baseline: Baseline, done: int,
        started: datetime, commit: str | None,
    ) -> RunResult:
        version = migration.version
        atomic = is_atomic(up_steps)
        gates: list[GateResult] = []

        def validate_and_record() -> None:
            nonlocal gates
            gates = validation.run(self.conn, migration.validate.sql, baseline)
            if validation.failures(gates):
                raise _GatesFailed(gates)
            self.ledger.finish(version, Outcome.APPLIED, validation=gates, commit=commit)

        try:
            for step in up_steps[done:]:
                if self.stop.is_set():
                    return self._interrupted(migration, baseline, started, step)
                self._hold_lock()
                # An atomic migration validates inside its only transaction: a failed gate is a ROLLBACK.
                inside = validate_and_record if atomic else None
                if not self._run_step(version, step, migration.up.path, on_commit=self._mark(version, step, inside)):
                    return self._interrupted(migration, baseline, started, step)
                faultpoints.reached("step")
                done = step.number
            if not atomic or not up_steps:
                self._hold_lock()
                with self._own_timeouts(), self.conn.transaction():
                    validate_and_record()
        except (StepFailed, _GatesFailed) as exc:
            # A statement that failed committed nothing of its own step (a batch may have committed
            # earlier batches): only steps counted before it, or a failed gate, leave work to undo.
            committed = not atomic and (
                done > 0 or not isinstance(exc, StepFailed) or self._step_of(exc.stmt, up_steps) == "batch"
            )
            if isinstance(exc, StepFailed):
                self._drop_own_invalid_index(version, exc.stmt, baseline)
            return self._failed(migration, baseline, started, exc, committed, commit)
        return self._outcome(
            migration, Outcome.APPLIED, started, baseline=baseline, gates=gates,
            rows_after=snapshot.row_counts(self.conn, self._tables(baseline)),
        )

    def _mark(self, version: str, step: Step, before_commit: Callable[[], None] | None) -> Callable[[], None]:
        def mark() -> None:
            self.ledger.step_done(version, step.number)
            if before_commit is not None:
                before_commit()

        return mark

    @staticmethod
    def _step_of(stmt: Statement | None, steps: list[Step]) -> str:
        return next((step.mode for step in steps if any(s is stmt for s in step.statements)), "transaction")

    # -- running steps ----------------------------------------------------------------------

    def _run_step(self, version: str, step: Step, path: Path, *, on_commit: Callable[[], None]) -> bool:
        """Run one step with lock-timeout retries; False when a batch was stopped or paused.

        `on_commit` runs inside the step's transaction (for autocommit and batch steps, right
        after it), so the ledger's step count moves with what was committed.
        """
        if step.mode == "batch":
            try:
                result = backfill.run_batched(
                    self.dsn, settings=self.settings, version=version, step=step.number,
                    statement=step.first, stop=self.stop, before_batch=self._hold_lock,
                )
            except Exception as exc:  # the backfill's contract: any failure raises
                if isinstance(exc.__cause__, psycopg.OperationalError) and db.connection_lost(exc.__cause__):
                    raise exc.__cause__ from None
                message = _message(exc) if isinstance(exc, psycopg.Error) else str(exc)
                raise StepFailed(f"batched {step.first.kind}: {message}", path, step.first) from None
            self.ledger.event(version, Event.BATCHES, {"step": step.number, "rows": result.rows,
                                                   "batches": result.batches, "completed": result.completed})
            if not result.completed:
                return False
            on_commit()
            return True
        with self._own_timeouts():
            self._with_lock_retries(version, path, lambda: self._execute_step(version, step, on_commit))
        return True

    # -- timeouts ---------------------------------------------------------------------------

    def _set_timeouts(self, timeouts: Timeouts) -> None:
        db.set_timeouts(self.conn, lock_timeout_s=timeouts.lock_s, statement_timeout_s=timeouts.statement_s)

    @property
    def _timeouts(self) -> Timeouts:
        """What the current migration's own SQL runs with."""
        return effective_timeouts(self.settings, self._override)

    @contextlib.contextmanager
    def _own_timeouts(self) -> Iterator[None]:
        """The migration's `-- lockgate:timeout` on the applier session while its own SQL runs.

        That SQL is its up steps, its validation gates and its down steps; lockgate's own work
        (baseline counts, catalog snapshots) keeps the configured values, and so does the next
        migration. Entered outside any transaction, so the session-level SET survives the
        step's transaction and the reset is not refused by an aborted one.
        """
        if self._override is None:
            yield
            return
        self._set_timeouts(self._timeouts)
        try:
            yield
        finally:
            if not self.conn.closed:  # a lost session takes its settings with it
                self._set_timeouts(effective_timeouts(self.settings, None))

    def _execute_step(self, version: str, step: Step, on_commit: Callable[[], None]) -> None:
        point = "undo" if step.number < 0 else "statement"
        if not step.bare:
            with self.conn.transaction():
                for stmt in step.statements:
                    self._execute(stmt)
                    faultpoints.reached(point)
                on_commit()
            return
        # Alone: a multi-statement string would be a transaction.
        if self._sent_before(version, step):
            self._rerun(version, step.first)
        else:
            self.ledger.event(version, Event.STEP_STARTED, {"step": step.number})
            self._execute(step.first)
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

    def _rerun(self, version: str, stmt: Statement) -> None:
        """Send a bare statement again that may have taken effect before its step was counted."""
        leftover = self._invalid_index(stmt)
        if leftover is not None:  # a CONCURRENTLY build cut short leaves an invalid index behind
            self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(leftover))
            self.ledger.event(version, Event.DROPPED_INVALID_INDEX,
                              {"index": leftover.as_string(self.conn), "line": stmt.line})
        try:
            self._execute(stmt)
        except _StatementError as exc:
            if exc.cause.sqlstate not in _TOOK_EFFECT:
                raise
            self.ledger.event(version, Event.ALREADY_TOOK_EFFECT, {"line": stmt.line, "error": _message(exc.cause)})

    def _drop_own_invalid_index(self, version: str, stmt: Statement, baseline: Baseline) -> None:
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

    def _execute(self, stmt: Statement) -> None:
        assert self._lock_conn is not None  # idle while the run lasts: it watches for blockers
        every = db.watch_interval(self._timeouts.lock_s)
        with db.watch_blockers(self._lock_conn, self.conn.info.backend_pid, every_s=every) as blockers:
            try:
                self.conn.execute(stmt.text.encode())
            except psycopg.Error as exc:
                raise _StatementError(stmt, exc, list(blockers)) from exc

    def _with_lock_retries(self, version: str, path: Path, attempt: Callable[[], None]) -> None:
        retries = self.settings.lock_retries
        for n in range(retries + 1):
            try:
                attempt()
                return
            except _StatementError as exc:
                if isinstance(exc.cause, psycopg.OperationalError) and db.connection_lost(exc.cause):
                    raise exc.cause from None
                if not isinstance(exc.cause, errors.LockNotAvailable):
                    raise StepFailed(_message(exc.cause), path, exc.stmt) from None
                blockers = "blocked by " + " and ".join(exc.blockers) if exc.blockers else "no blocker seen"
                lock_s = self._timeouts.lock_s
                if n == retries:
                    raise StepFailed(
                        f"lock timeout ({lock_s:g}s{self._lock_source()}) {retries + 1} times; {blockers}",
                        path, exc.stmt,
                    ) from None
                delay = self.settings.retry_backoff * 2**n
                self.ledger.event(version, Event.LOCK_TIMEOUT, {
                    "attempt": n + 1, "retry_in_s": delay, "blockers": blockers, "line": exc.stmt.line,
                    "lock_timeout_s": lock_s,
                })
                if self.stop.wait(delay):
                    raise StepFailed(f"stopped while waiting for a lock; {blockers}", path, exc.stmt) from None

    def _lock_source(self) -> str:
        if self._override is None or self._override.lock_s is None:
            return ""
        return f", set by the up file's -- lockgate:timeout on line {self._override.line}"

    # -- failure and rollback ---------------------------------------------------------------

    def _failed(
        self, migration: Migration, baseline: Baseline, started: datetime, exc: StepFailed | _GatesFailed,
        committed: bool, commit: str | None,
    ) -> RunResult:
        version = migration.version
        if isinstance(exc, StepFailed):
            gates, where = [], exc.where
        else:
            gates = exc.results
            where = f"{migration.validate.path}:{validation.failures(gates)[0].line}:1"
        reason = str(exc)
        if not committed:
            self.ledger.finish(version, Outcome.FAILED, validation=gates, error=reason, commit=commit)
            return self._outcome(
                migration, Outcome.FAILED, started, reason=f"{reason}; rolled back, nothing was committed",
                baseline=baseline, gates=gates, where=where,
                rows_after=snapshot.row_counts(self.conn, self._tables(baseline)),
            )
        self.ledger.undo_started(version, error=reason, validation=gates, commit=commit)
        return self._roll_back(migration, migration.down.sql, baseline, started, reason, gates, where, commit)

    def _resume_rollback(self, migration: Migration, entry: LedgerRecord, started: datetime,
                         commit: str | None) -> RunResult:
        """Go on with the rollback a crashed run began, from the first down step it did not commit."""
        assert entry.baseline is not None and entry.undo_steps_done is not None
        self.ledger.event(migration.version, Event.ROLLBACK_RESUMED, {"undo_steps_done": entry.undo_steps_done}, commit)
        gates = entry.validation or []
        failed = validation.failures(gates)
        where = f"{migration.validate.path}:{failed[0].line}:1" if failed else None
        return self._roll_back(
            migration, parse_sql(migration.down.path, entry.down_sql), Baseline.model_validate(entry.baseline),
            started, entry.error, gates, where, commit, done=entry.undo_steps_done,
        )

    def _roll_back(
        self, migration: Migration, down: SqlFile, baseline: Baseline, started: datetime, failure: str | None,
        gates: list[GateResult], where: str | None, commit: str | None, *, done: int = 0,
    ) -> RunResult:
        """Run the down (after its first `done` steps) and end the rollback; `failure` is what made a
        run roll back (None for a revert's rollback, which ends without an error when it is clean)."""
        version = migration.version
        undone = self._undo(version, down, baseline, done=done)
        detail = f"{failure}; {undone.detail}" if failure else undone.detail
        self.ledger.finish(
            version, undone.status, validation=gates or None, schema_restored=undone.restored,
            error=None if failure is None and undone.status is Outcome.ROLLED_BACK else detail, commit=commit,
        )
        return self._outcome(
            migration, undone.status, started, reason=detail, baseline=baseline,
            gates=gates, where=undone.where or where, schema_restored=undone.restored,
            rows_after=snapshot.row_counts(self.conn, self._tables(baseline)),
        )

    def _undo(self, version: str, down: SqlFile, baseline: Baseline, *, done: int = 0) -> _Undone:
        """Run the down file (after its first `done` steps), then compare the catalog with the baseline."""
        try:
            for step in split(down, pg_version=self.pg_version)[done:]:
                # Down steps count backwards so their batch checkpoints never meet the up's.
                negative = dataclasses.replace(step, number=-step.number)
                mark = self._mark_undone(version, step.number)
                if not self._run_step(version, negative, down.path, on_commit=mark):
                    return _Undone(Outcome.DIRTY, None, "the rollback was stopped before it finished")
        except StepFailed as exc:
            return _Undone(Outcome.DIRTY, None, f"the down file failed: {exc}", exc.where)
        differences = snapshot.diff(
            baseline.catalog, snapshot.catalog(self.conn, ledger_schema=self.settings.ledger_schema)
        )
        if differences:
            return _Undone(Outcome.DIRTY, False, "the down file ran but the schema differs from before: "
                           + "; ".join(differences), f"{down.path}:1:1")
        return _Undone(Outcome.ROLLED_BACK, True, "the down file ran and the schema is back exactly as before")

    def _mark_undone(self, version: str, number: int) -> Callable[[], None]:
        return lambda: self.ledger.undo_step_done(version, number)

    def rollback(self, version: str, *, commit: str | None = None) -> RunResult:
        """Undo an applied migration with the down text stored in the ledger when it was applied.

        A rollback a crashed run began goes on from the first down step it did not commit.
        ConnectionLost when the database session goes away meanwhile.
        """
        try:
            return self._rollback(version, commit=commit)
        except psycopg.OperationalError as exc:
            if not db.connection_lost(exc):
                raise
            raise self._lost(version, exc) from None
        finally:
            self._end_migration()

    def _rollback(self, version: str, *, commit: str | None) -> RunResult:
        self._hold_lock()
        self._refuse_if_dirty()
        started = _now()
        entry = self.ledger.get(version)
        move = lifecycle.rollback_move(lifecycle.state_of(entry, None))
        if entry is None or move is Move.SKIP:
            raise Blocked(f"{version} is not applied ({entry.status if entry else 'not in the ledger'}); "
                          "nothing to roll back")
        if _sha256(entry.down_sql) != entry.down_checksum:
            raise Blocked(f"{version}: the down text in the ledger does not match its checksum; refusing to run it")
        migration = Migration(version, entry.name)
        down = parse_sql(Path(f"{version}_{entry.name}.down.sql"), entry.down_sql)
        # The up file's timeout directive governs its rollback too: read it from the applied text.
        self._override = parse_sql(Path(f"{version}_{entry.name}.up.sql"), entry.up_sql).timeout
        baseline = Baseline.model_validate(entry.baseline)
        rows_before = snapshot.row_counts(self.conn, self._tables(baseline))
        if move is Move.RUN:
            self.ledger.undo_started(version, error=None, validation=None, commit=commit)
            failure = None
        else:
            self.ledger.event(version, Event.ROLLBACK_RESUMED, {"undo_steps_done": entry.undo_steps_done}, commit)
            failure = entry.error  # the failed run's, when its files were removed while it rolled back
        outcome = self._roll_back(migration, down, baseline, started, failure, [], None, commit,
                                  done=entry.undo_steps_done or 0)
        return outcome.model_copy(update={"rows_before": rows_before})

    def resolve(self, version: str, status: Outcome, *, note: str = "") -> None:
        """Clear a dirty migration after a human looked at the database."""
        entry = self.ledger.get(version)
        if entry is None or lifecycle.state_of(entry, None) is not State.DIRTY:
            state = entry.status if entry else "not in the ledger"
            raise UsageError(f"{version} is not dirty ({state}); nothing to resolve")
        self.ledger.set_status(version, status, note=note or "resolved by hand")

    # -- outcomes ---------------------------------------------------------------------------

    def _tables(self, baseline: Baseline) -> dict[str, tuple[str, str]]:
        return snapshot.existing_tables(self.conn, list(baseline.row_counts))

    def _interrupted(self, migration: Migration, baseline: Baseline, started: datetime, step: Step) -> RunResult:
        self.ledger.event(migration.version, Event.INTERRUPTED, {"step": step.number})
        return self._outcome(
            migration, Outcome.INTERRUPTED, started, baseline=baseline,
            reason=f"stopped at step {step.number}; the next run resumes it",
        )

    def _outcome(
        self, migration: Migration, status: Outcome, started: datetime, *, reason: str = "",
        baseline: Baseline | None = None, gates: list[GateResult] | None = None, where: str | None = None,
        schema_restored: bool | None = None, rows_after: dict[str, int] | None = None,
    ) -> RunResult:
        finished = _now()
        return RunResult(
            version=migration.version, name=migration.name, status=status, reason=reason,
            started_at=started, finished_at=finished, duration_s=(finished - started).total_seconds(),
            rows_before=baseline.row_counts if baseline else {}, rows_after=rows_after or {},
            validation=gates or [], schema_restored=schema_restored, where=where,
        )


def _message(exc: psycopg.Error) -> str:
    diag = exc.diag
    text = diag.message_primary or str(exc).strip()
    if diag.sqlstate:
        text = f"{text} (SQLSTATE {diag.sqlstate})"
    return text
