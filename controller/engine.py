"""The apply engine: baseline → steps (lock-timeout retries) → batches → validate → record.

Or roll back: an atomic migration validates inside its own transaction, so a failed gate is a
plain ROLLBACK; a migration that committed steps (batches, no-transaction statements) runs
its down file and then proves, against the catalog snapshot taken before it started, that
the schema is back exactly. When it is not, the migration is `dirty` and nothing more is
applied until a human runs `lockgate resolve`.

A run that dies (SIGKILL, a lost connection) leaves the ledger saying how far it got: the
next run resumes committed steps, batches from their checkpoint, and a rollback from the
first down step it did not commit. A lost connection is not a failure: nothing is rolled back.

The engine decides nothing itself: the lifecycle says what to do with a migration. Its parts
are the applier lock (`applier`), running a step (`stepper`), undoing with its catalog proof
(`undo`), and a run context per migration (`runcontext`).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg.pq import TransactionStatus

from lockgate.controller import db, faultpoints, lifecycle, snapshot, validation
from lockgate.controller.applier import ApplierLock
from lockgate.controller.config import Settings
from lockgate.controller.ledger import Event, Ledger, LedgerEntry, LedgerRecord
from lockgate.controller.lifecycle import Move, State
from lockgate.controller.outcome import GateResult, Outcome, RunResult
from lockgate.controller.runcontext import RunContext
from lockgate.controller.snapshot import Baseline
from lockgate.controller.stepper import StepFailed, StepRunner
from lockgate.controller.steps import Step, is_atomic, split
from lockgate.controller.undo import Undoer
from lockgate.hooks.errors import InputError, Problem, UsageError
from lockgate.hooks.migrationset import KINDS, Migration, MigrationSet
from lockgate.hooks.sqlmodel import SqlFile, Statement, parse_sql


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


class _GatesFailed(Exception):
    def __init__(self, results: list[GateResult]) -> None:
        super().__init__(validation.summary(results))
        self.results = results


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

    A context manager: entering takes the applier lock and creates or upgrades the ledger.
    """

    def __init__(
        self, settings: Settings, dsn: str, *, wait: bool = False, stop: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.stop = stop or threading.Event()
        self._lock = ApplierLock(settings, dsn, wait=wait, stop=self.stop)
        self._conn: psycopg.Connection | None = None

    def __enter__(self) -> Engine:
        self._lock.__enter__()
        try:
            self._conn = db.connect(self.dsn, application_name="lockgate applier")
            self.ledger = Ledger(self._conn, self.settings.ledger_schema)
            self.steps = StepRunner(self.settings, self.dsn, self._conn, self.ledger, self._lock, self.stop)
            self.steps.reset_timeouts()
            self.pg_version = db.server_major(self._conn)
            self.ledger.setup()
            self.undo = Undoer(self.settings, self._conn, self.ledger, self.steps, self.pg_version)
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
        self._lock.release()

    @property
    def conn(self) -> psycopg.Connection:
        assert self._conn is not None, "use Engine as a context manager"
        return self._conn

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
        """Apply one migration as the lifecycle says: run, resume, finish a rollback a crashed run
        began (then run again when that leaves it to run), wait, or skip.

        A migration that failed before is not re-run with the same files unless `retry`;
        all parse and structure errors of its three files are raised before anything runs.
        ConnectionLost when the database session goes away meanwhile.
        """
        with self._one_migration(migration.version):
            return self._apply(migration, commit=commit, retry=retry)

    def rollback(self, version: str, *, commit: str | None = None) -> RunResult:
        """Undo an applied migration with the down text stored in the ledger when it was applied.

        A rollback a crashed run began goes on from the first down step it did not commit.
        ConnectionLost when the database session goes away meanwhile.
        """
        with self._one_migration(version):
            return self._rollback(version, commit=commit)

    def resolve(self, version: str, status: Outcome, *, note: str = "") -> None:
        """Clear a dirty migration after a human looked at the database."""
        entry = self.ledger.get(version)
        if entry is None or lifecycle.state_of(entry, None) is not State.DIRTY:
            state = entry.status if entry else "not in the ledger"
            raise UsageError(f"{version} is not dirty ({state}); nothing to resolve")
        self.ledger.set_status(version, status, note=note or "resolved by hand")

    @contextlib.contextmanager
    def _one_migration(self, version: str) -> Iterator[None]:
        """A lost session is ConnectionLost (noted in the ledger when the applier's own session still
        works); and nothing one migration set on the applier session reaches the next one: a plain
        `SET` in a migration (search_path, a timeout) outlives its transaction."""
        try:
            yield
        except psycopg.OperationalError as exc:
            if not db.connection_lost(exc):
                raise
            # When the applier's session is gone too, the ledger row is the record.
            with contextlib.suppress(psycopg.Error):
                self.ledger.event(version, Event.CONNECTION_LOST, {"error": str(exc).strip()[:300]})
            raise ConnectionLost(version, exc) from None
        finally:
            conn = self._conn
            if conn is not None and not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.OperationalError):  # a lost session is reported above
                    conn.execute("RESET ALL")
                    self.steps.reset_timeouts()

    def _apply(self, migration: Migration, *, commit: str | None, retry: bool) -> RunResult:
        self._lock.hold()
        self._refuse_if_dirty()
        ctx = RunContext.begin(migration.version, migration.name, commit=commit, timeout=migration.up.sql.timeout)
        self.check([migration])
        up_steps = split(migration.up.sql, pg_version=self.pg_version)
        entry = self.ledger.get(migration.version)
        state = lifecycle.state_of(entry, migration)
        if retry and state is not State.FAILED:
            raise UsageError(f"{migration.version} has not failed ({state}); nothing to retry")
        if retry and entry is not None:
            # Kept so that sync can say on the commit how a failed migration came to be applied.
            self.ledger.event(migration.version, Event.RETRY, {"after": entry.status}, commit)
        move = lifecycle.next_move(state, retry=retry, atomic=is_atomic(up_steps))
        if move is Move.SKIP:
            return ctx.result(Outcome.APPLIED, reason="already applied")
        if move is Move.WAIT:
            assert entry is not None
            return ctx.result(Outcome.FAILED, reason=f"failed earlier ({entry.error}); fix it in a new commit or "
                              f"run `lockgate retry {migration.version}`")
        if move is Move.REFUSE:
            assert entry is not None
            raise InputError(_edited(entry, migration))
        if move is Move.FINISH_ROLLBACK:
            assert entry is not None
            # What approved this run linted the branch's down: only when that is the down the rollback
            # runs (the ledger's) does it pass the guards of a rollback.
            if entry.down_checksum != migration.down.checksum:
                raise Blocked(
                    f"{migration.version}: a rollback of it was cut short, and {migration.down.path} is not the "
                    "down that rollback runs (the one applied); restore that file, or remove the migration "
                    "again so its rollback finishes as a revert's"
                )
            # A rollback cut short ends first; then the migration goes on as its new state says (a
            # revert's rollback finished under a re-land runs again, from a clean schema).
            undone = self._finish_rollback(entry, commit, migration.validate.path)
            entry = self.ledger.get(migration.version)
            if lifecycle.next_move(lifecycle.state_of(entry, migration)) is not Move.RUN:
                return undone
            move = Move.RUN
        if move is Move.RESUME:
            assert entry is not None and entry.baseline is not None
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
        return self._run_up(ctx, migration, up_steps, baseline, done)

    def _run_up(
        self, ctx: RunContext, migration: Migration, up_steps: list[Step], baseline: Baseline, done: int
    ) -> RunResult:
        atomic = is_atomic(up_steps)
        gates: list[GateResult] = []

        def validate_and_record() -> None:
            nonlocal gates
            gates = validation.run(self.conn, migration.validate.sql, baseline)
            if validation.failures(gates):
                raise _GatesFailed(gates)
            self.ledger.finish(ctx.version, Outcome.APPLIED, validation=gates, commit=ctx.commit)

        try:
            for step in up_steps[done:]:
                if self.stop.is_set():
                    return self._interrupted(ctx, baseline, step)
                self._lock.hold()
                # An atomic migration validates inside its only transaction: a failed gate is a ROLLBACK.
                inside = validate_and_record if atomic else None
                if not self.steps.run(ctx, step, migration.up.path, on_commit=self._mark(ctx, step, inside)):
                    return self._interrupted(ctx, baseline, step)
                faultpoints.reached("step")
                done = step.number
            if not atomic or not up_steps:
                self._lock.hold()
                with self.steps.own_timeouts(ctx), self.conn.transaction():
                    validate_and_record()
        except (StepFailed, _GatesFailed) as exc:
            # A statement that failed committed nothing of its own step (a batch may have committed
            # earlier batches): only steps counted before it, or a failed gate, leave work to undo.
            committed = not atomic and (
                done > 0 or not isinstance(exc, StepFailed) or _step_of(exc.stmt, up_steps) == "batch"
            )
            if isinstance(exc, StepFailed):
                self.steps.drop_own_invalid_index(ctx.version, exc.stmt, baseline)
            return self._failed(ctx, migration, baseline, exc, committed)
        return ctx.result(Outcome.APPLIED, baseline=baseline, gates=gates,
                          rows_after=snapshot.rows_of(self.conn, baseline))

    def _mark(self, ctx: RunContext, step: Step, before_commit: Callable[[], None] | None) -> Callable[[], None]:
        def mark() -> None:
            self.ledger.step_done(ctx.version, step.number)
            if before_commit is not None:
                before_commit()

        return mark

    def _failed(
        self, ctx: RunContext, migration: Migration, baseline: Baseline, exc: StepFailed | _GatesFailed,
        committed: bool,
    ) -> RunResult:
        if isinstance(exc, StepFailed):
            gates, where = [], exc.where
        else:
            gates = exc.results
            where = f"{migration.validate.path}:{validation.failures(gates)[0].line}:1"
        reason = str(exc)
        if not committed:
            self.ledger.finish(ctx.version, Outcome.FAILED, validation=gates, error=reason, commit=ctx.commit)
            return ctx.result(
                Outcome.FAILED, reason=f"{reason}; rolled back, nothing was committed", baseline=baseline,
                gates=gates, where=where, rows_after=snapshot.rows_of(self.conn, baseline),
            )
        self.ledger.undo_started(ctx.version, error=reason, validation=gates, commit=ctx.commit)
        return self.undo.roll_back(ctx, migration.down.sql, baseline, reason, gates, where)

    def _interrupted(self, ctx: RunContext, baseline: Baseline, step: Step) -> RunResult:
        self.ledger.event(ctx.version, Event.INTERRUPTED, {"step": step.number})
        return ctx.result(Outcome.INTERRUPTED, baseline=baseline,
                          reason=f"stopped at step {step.number}; the next run resumes it")

    def _rollback(self, version: str, *, commit: str | None) -> RunResult:
        self._lock.hold()
        self._refuse_if_dirty()
        entry = self.ledger.get(version)
        move = lifecycle.rollback_move(lifecycle.state_of(entry, None))
        if entry is None or move is Move.SKIP:
            raise Blocked(f"{version} is not applied ({entry.status if entry else 'not in the ledger'}); "
                          "nothing to roll back")
        baseline = Baseline.model_validate(entry.baseline)
        rows_before = snapshot.rows_of(self.conn, baseline)
        if move is Move.RUN:
            ctx, down = self._stored_rollback(entry, commit)
            self.ledger.undo_started(version, error=None, validation=None, commit=commit)
            result = self.undo.roll_back(ctx, down, baseline, None, [], None)
        else:
            result = self._finish_rollback(entry, commit, None)
        return result.model_copy(update={"rows_before": rows_before})

    def _finish_rollback(self, entry: LedgerRecord, commit: str | None, validate: Path | None) -> RunResult:
        """Go on with a rollback a run began and did not end (`undoing`: a failed run's, or a revert's),
        from the first down step it did not commit. `validate`, the migration's validate file when the
        branch still has it, is where a failed gate that made the run roll back is reported."""
        ctx, down = self._stored_rollback(entry, commit)
        self.ledger.event(entry.version, Event.ROLLBACK_RESUMED, {"undo_steps_done": entry.undo_steps_done}, commit)
        gates = entry.validation or []
        failed = validation.failures(gates)
        where = f"{validate}:{failed[0].line}:1" if failed and validate is not None else None
        return self.undo.roll_back(ctx, down, Baseline.model_validate(entry.baseline), entry.error, gates, where,
                                   done=entry.undo_steps_done or 0)

    def _stored_rollback(self, entry: LedgerRecord, commit: str | None) -> tuple[RunContext, SqlFile]:
        """The rollback of `entry` as the ledger keeps it, whichever path starts or finishes it: its down,
        refused when the text no longer matches its checksum, and a run context with the timeout directive
        of the applied up, which governs its rollback too."""
        if hashlib.sha256(entry.down_sql.encode()).hexdigest() != entry.down_checksum:
            raise Blocked(f"{entry.version}: the down text in the ledger does not match its checksum; "
                          "refusing to run it")
        up = parse_sql(Path(f"{entry.version}_{entry.name}.up.sql"), entry.up_sql)
        ctx = RunContext.begin(entry.version, entry.name, commit=commit, timeout=up.timeout)
        return ctx, parse_sql(Path(f"{entry.version}_{entry.name}.down.sql"), entry.down_sql)


def _step_of(stmt: Statement | None, steps: list[Step]) -> str:
    return next((step.mode for step in steps if any(s is stmt for s in step.statements)), "transaction")
