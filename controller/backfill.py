"""Running one `-- lockgate:batch` UPDATE/DELETE in key ranges, resumably.

Each batch is one short transaction on the runner's own connection: it runs the statement
limited to (last key done, upper] and advances the checkpoint in the same transaction, so a
crash can neither lose nor repeat a batch. The next run starts after the last key done.

Where the run ends: at the largest key when the run first began (kept in the checkpoint, so
a resumed run ends at the same place). Rows inserted later with larger keys are not touched:
they get their value from the column's default or from the application, which must write the
new value by the time the backfill starts (the customer-tier migration sets the default
before its backfill for exactly that reason). This keeps every run finite under a steady
stream of inserts.

Batch bounds come from keyset pagination over the key's index (`key > lower ORDER BY key
OFFSET size-1 LIMIT 1`), so every batch costs the same however far along the run is.

With `workers=N` the keys up to that end are cut, when the step first starts, into N
segments of about as many keys each; each segment has its own checkpoint and its own
connection and thread, so N batches run at once on disjoint key ranges. The cut is stored,
so a resumed run finishes the same segments whatever the directive says by then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import psycopg
from psycopg import errors, sql

from lockgate.controller import batchsql, faultpoints, progress
from lockgate.controller.checkpoints import Checkpoint, CheckpointMoved, CheckpointStore, ensure_tables
from lockgate.controller.config import Settings
from lockgate.controller.redact import Redactor
from lockgate.controller.throttle import wait_until_clear
from lockgate.hooks.directives import Batch
from lockgate.hooks.sqlmodel import Statement

__all__ = ["BackfillError", "BatchDone", "BatchResult", "ensure_tables", "next_size", "run_batched"]

log = logging.getLogger(__name__)

MIN_ADAPTIVE_SIZE = 100
MAX_GROWTH = 100  # with target=, a batch may grow to 100× the size the directive starts with
# Errors that mean "this batch took too long or waited too long for a lock": retried, then split.
_TIMEOUTS = (errors.QueryCanceled, errors.LockNotAvailable)


class BackfillError(RuntimeError):
    """A batched statement could not run; the message names the statement and the key range."""


class _Halted(Exception):
    """Stopped while a batch waited for its rows' locks: the segment ends where its checkpoint is."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    rows: int  # rows written by every run of this step so far
    batches: int
    completed: bool  # False: stopped before the end; the next run resumes
    elapsed_s: float  # this run
    resumed: bool  # an earlier run had started this step


@dataclass(frozen=True, slots=True)
class BatchDone:
    """One committed batch, for observers (progress, benchmarks)."""

    number: int
    rows: int
    keys: int
    batch_size: int
    seconds: float
    finished_at: float  # time.monotonic()


@dataclass(frozen=True, slots=True)
class KeyColumn:
    name: str
    type_name: str


def next_size(size: int, seconds: float, *, start: int, target_s: float | None) -> int:
    """The next batch's size: toward `target_s` per batch when set (×0.5…×2 per step), else
    back toward the directive's size after a split."""
    if target_s is None:
        return min(size * 2, start)
    factor = min(max(target_s / max(seconds, 1e-3), 0.5), 2.0)
    return int(min(max(size * factor, min(MIN_ADAPTIVE_SIZE, start)), start * MAX_GROWTH))


def _label(statement: Statement, target: batchsql.Target | None = None) -> str:
    where = f"{target.verb} {target}" if target else statement.kind
    return f"batched {where} (line {statement.line})"


_ORDERABLE = """
SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull, EXISTS (
    SELECT FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
    WHERE am.amname = 'btree' AND oc.opcdefault AND (
        oc.opcintype = b.oid
        OR (b.typtype = 'e' AND oc.opcintype = 'anyenum'::regtype)
        OR (b.typcategory = 'A' AND oc.opcintype = 'anyarray'::regtype)
        OR EXISTS (SELECT FROM pg_cast WHERE castsource = b.oid AND casttarget = oc.opcintype
                   AND castmethod = 'b')))
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
"""

_PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = %s AND i.indisprimary
"""


def _table(target: batchsql.Target) -> sql.Identifier:
    return sql.Identifier(*([target.schema] if target.schema else []), target.table)


def resolve_key(conn: psycopg.Connection, target: batchsql.Target, requested: str | None) -> KeyColumn:
    """The batch key: `key=` when given, else the table's single-column primary key."""
    table = _table(target)
    row = conn.execute("SELECT to_regclass(%s)::oid", (table.as_string(conn),)).fetchone()
    if row is None or row[0] is None:
        raise batchsql.NotBatchable(f"table {target} does not exist")
    oid = row[0]
    name = requested
    if name is None:
        pk = [r[0] for r in conn.execute(_PRIMARY_KEY, (oid,))]
        if len(pk) != 1:
            shape = "no primary key" if not pk else f"a composite primary key ({', '.join(pk)})"
            raise batchsql.NotBatchable(f"{target} has {shape}: name the key with -- lockgate:batch key=COLUMN")
        name = pk[0]
    info = conn.execute(_ORDERABLE, (oid, name)).fetchone()
    if info is None:
        raise batchsql.NotBatchable(f"{target} has no column {name!r} to batch by")
    type_name, not_null, orderable = info
    if not orderable:
        raise batchsql.NotBatchable(f"key {name} of type {type_name} has no ordering to batch by")
    if not not_null:
        has_null = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE {} IS NULL)").format(table, sql.Identifier(name))
        if conn.execute(has_null).fetchone() == (True,):
            raise batchsql.NotBatchable(f"key {name} is NULL in some rows of {target}; batches would skip them")
    return KeyColumn(name, type_name)


class _Observers:
    """What every worker of one run reports to, one at a time: `before_batch`, progress and `on_batch`."""

    def __init__(
        self, shown: progress.Progress, on_batch: Callable[[BatchDone], None] | None,
        before_batch: Callable[[], None] | None,
    ) -> None:
        self.shown = shown
        self.on_batch = on_batch
        self.before = before_batch
        self.batches = 0
        self.lock = threading.Lock()

    def before_batch(self) -> None:
        if self.before:
            with self.lock:
                self.before()

    def batch_done(self, rows: int, size: int, seconds: float) -> None:
        with self.lock:
            self.batches += 1
            self.shown.batch_done(rows, size, size)
            if self.on_batch:
                self.on_batch(BatchDone(self.batches, rows, size, size, seconds, time.monotonic()))


@dataclass
class _Run:
    """The batch loop over one segment, on its own connection."""

    step: _Step
    conn: psycopg.Connection
    store: CheckpointStore  # on `conn`: a checkpoint advances in its batch's transaction
    queries: batchsql.BatchQueries
    observers: _Observers
    # The step's stop, or with several workers one also set when a sibling failed: waits end on it.
    halt: threading.Event
    raw: psycopg.RawCursor[tuple[object, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self.raw = psycopg.RawCursor(self.conn)

    def stopping(self) -> bool:
        return self.step.stop.is_set() or self.halt.is_set()

    def _one(self, query: str, params: tuple[object, ...]) -> object:
        row = self.raw.execute(query, params).fetchone()
        return None if row is None else row[0]

    def upper(self, cp: Checkpoint, size: int) -> str:
        found = self._one(*self.queries.next_upper.bind(cp.lower, cp.end_key, size - 1))
        return str(found) if found is not None else str(cp.end_key)

    def apply(self, cp: Checkpoint, upper: str, size: int) -> tuple[Checkpoint, int, float]:
        """One transaction: the bounded statement and the checkpoint after it."""
        started = time.monotonic()
        with self.conn.transaction():
            self.conn.execute(
                "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
                (f"{self.step.settings.batch_lock_timeout * 1000:.0f}ms",
                 f"{self.step.settings.batch_statement_timeout * 1000:.0f}ms"),
            )
            rows = self.raw.execute(*self.queries.batch.bind(cp.lower, upper)).rowcount
            done = self.store.advance(cp, upper, rows, size)
        return done, rows, time.monotonic() - started

    def one_batch(self, cp: Checkpoint, size: int) -> tuple[Checkpoint, int, int, float]:
        """Run the next batch, retrying a timed-out one and then halving it; (checkpoint, rows, size, s)."""
        while True:
            upper = self.upper(cp, size)
            for attempt in range(self.step.settings.lock_retries + 1):
                try:
                    done, rows, seconds = self.apply(cp, upper, size)
                    return done, rows, size, seconds
                except _TIMEOUTS as exc:
                    failure: psycopg.Error = exc
                    log.warning(
                        "%s: keys (%s, %s] try %d: %s", self.step.label, cp.lower, upper, attempt + 1,
                        str(exc).strip(),
                    )
                    # Stopping while the rows are locked is an interruption, never a failure:
                    # retrying on and splitting down to a failed batch would make it a rollback.
                    if self.stopping() or (attempt < self.step.settings.lock_retries
                                           and self.halt.wait(self.step.settings.retry_backoff * 2**attempt)):
                        raise _Halted from None
                except psycopg.Error as exc:
                    raise BackfillError(
                        f"{self.step.label} failed on keys ({cp.lower}, {upper}]: {str(exc).strip()}"
                    ) from exc
            if size <= 1:
                raise BackfillError(
                    f"{self.step.label} failed on keys ({cp.lower}, {upper}] after"
                    f" {self.step.settings.lock_retries + 1} tries, down to 1 row a batch: {str(failure).strip()}"
                ) from failure
            size = max(size // 2, 1)
            log.warning("%s: splitting: batch size now %d", self.step.label, size)

    def run(self, cp: Checkpoint) -> None:
        """Batches until the segment's end, or until `stop`."""
        size = cp.batch_size
        while not cp.at_end and not self.stopping():
            if not wait_until_clear(
                self.conn, schema=self.store.schema, max_lag_s=self.step.settings.max_replica_lag,
                stop=self.halt, label=self.step.label,
            ):
                return
            self.observers.before_batch()
            try:
                cp, rows, used, seconds = self.one_batch(cp, size)
            except _Halted:
                return
            faultpoints.reached("batch")
            self.observers.batch_done(rows, used, seconds)
            size = next_size(used, seconds, start=self.step.batch.size, target_s=self.step.batch.target_s)
            if not cp.at_end and self.step.batch.pause_s:
                self.halt.wait(self.step.batch.pause_s)


def run_batched(
    dsn: str,
    *,
    settings: Settings,
    version: str,
    step: int,
    statement: Statement,
    stop: threading.Event | None = None,
    on_batch: Callable[[BatchDone], None] | None = None,
    before_batch: Callable[[], None] | None = None,
) -> BatchResult:
    """Run `statement` (carrying a batch directive) in key ranges; see the module docstring.

    With `stop` set, the current batches finish and are checkpointed, and the result says
    completed=False. `on_batch` sees every committed batch, one call at a time. `before_batch`
    runs before every batch, one call at a time: raising there ends the run like a failed batch
    (the engine checks that it still holds the applier lock).
    """
    started = time.monotonic()
    batch = statement.batch
    label = _label(statement)
    if batch is None:
        raise BackfillError(f"{label} has no -- lockgate:batch directive")
    try:
        return _Step(dsn, settings=settings, version=version, step=step, statement=statement, batch=batch,
                     stop=stop or threading.Event(), on_batch=on_batch, before_batch=before_batch).run(started)
    except psycopg.Error as exc:
        # Connection trouble, or a bound or throttle query failing: no batch is half done.
        first_line = (str(exc).strip().splitlines() or ["database error"])[0]
        raise BackfillError(f"{label}: {Redactor()(first_line)}") from exc


def _connect(dsn: str) -> psycopg.Connection:
    # prepare_threshold=None: every bounded statement is planned with its real bounds.
    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None, application_name="lockgate backfill")
    try:
        conn.execute("SET DateStyle = 'ISO, YMD'")
        # A batch is short by design (target=); JIT compiling its plan costs 50–100 ms a batch
        # whenever the planner's estimate crosses jit_above_cost, which bigger batches do.
        conn.execute("SET jit = off")
    except BaseException:
        conn.close()
        raise
    return conn


@dataclass
class _Step:
    """One batched step: its segments, created on the first run, each run by a worker."""

    dsn: str
    settings: Settings
    version: str
    step: int
    statement: Statement
    batch: Batch
    stop: threading.Event
    on_batch: Callable[[BatchDone], None] | None
    before_batch: Callable[[], None] | None
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = _label(self.statement)

    def run(self, started: float) -> BatchResult:
        with _connect(self.dsn) as conn:
            ensure_tables(conn, self.settings.ledger_schema)
            try:
                target = batchsql.target_of(self.statement.text)
                self.label = _label(self.statement, target)
                key = resolve_key(conn, target, self.batch.key)
                queries = batchsql.batch_queries(self.statement.text, key.name)
            except batchsql.NotBatchable as exc:
                raise BackfillError(f"{self.label} cannot be batched: {exc}") from None
            store = CheckpointStore(conn, self.settings.ledger_schema, self.version, self.step)
            segments = store.load()
            resumed = bool(segments)
            if not segments:
                bounds = _segment_bounds(psycopg.RawCursor(conn), queries, self.batch.workers)
                segments = store.create(key.name, key.type_name, bounds, self.batch.size)
            elif (segments[0].key_column, segments[0].key_type) != (key.name, key.type_name):
                raise BackfillError(
                    f"{self.label}: the checkpoint was made with key {segments[0].key_column}"
                    f" {segments[0].key_type}, the statement now batches by {key.name} {key.type_name}"
                )
            shown = progress.start(self.label, _keys_left(conn, queries, segments))
            observers = _Observers(shown, self.on_batch, self.before_batch)
            completed = False
            try:
                self._work(conn, store, queries, observers, [cp for cp in segments if not cp.at_end])
                segments = store.load()
                completed = all(cp.at_end for cp in segments)
            finally:
                observers.shown.close(completed)
        return BatchResult(
            sum(cp.rows_done for cp in segments), sum(cp.batches_done for cp in segments), completed,
            time.monotonic() - started, resumed,
        )

    def _runner(self, conn: psycopg.Connection, store: CheckpointStore, queries: batchsql.BatchQueries,
                observers: _Observers, halt: threading.Event | None = None) -> _Run:
        return _Run(self, conn, replace(store, conn=conn), queries, observers, halt or self.stop)

    def _work(self, conn: psycopg.Connection, store: CheckpointStore, queries: batchsql.BatchQueries,
              observers: _Observers, pending: list[Checkpoint]) -> None:
        """Run the pending segments: on this connection when there is one, else a worker thread each."""
        try:
            if len(pending) <= 1:
                for cp in pending:
                    self._runner(conn, store, queries, observers).run(cp)
                return
            self._in_parallel(store, queries, observers, pending)
        except CheckpointMoved as exc:
            raise BackfillError(f"{self.label}: {exc}") from None

    def _in_parallel(self, store: CheckpointStore, queries: batchsql.BatchQueries, observers: _Observers,
                     pending: list[Checkpoint]) -> None:
        # Workers stop on the caller's stop, and on the first failure of any of them.
        halt = threading.Event()
        failures: list[BaseException] = []

        def work(cp: Checkpoint) -> None:
            try:
                with _connect(self.dsn) as own:
                    self._runner(own, store, queries, observers, halt).run(cp)
            except BaseException as exc:  # handed to the caller's thread below
                failures.append(exc)
                halt.set()

        workers = [threading.Thread(target=work, args=(cp,), name=f"lockgate-batch-{cp.segment}", daemon=True)
                   for cp in pending]
        for worker in workers:
            worker.start()
        while workers:
            if self.stop.is_set():
                halt.set()
            workers[0].join(0.05)
            workers = [w for w in workers if w.is_alive()]
        if failures:
            raise failures[0]


def _segment_bounds(
    raw: psycopg.RawCursor[tuple[object, ...]], queries: batchsql.BatchQueries, workers: int
) -> list[tuple[str | None, str | None]]:
    """`workers` key ranges (start, end] of about as many keys each, the last ending at today's largest key."""
    row = raw.execute(queries.last_key).fetchone()
    end = None if row is None or row[0] is None else str(row[0])
    cuts: list[str] = []
    if end is not None and workers > 1:
        count_row = raw.execute(*queries.count_keys.bind(None, end)).fetchone()
        count = int(str(count_row[0])) if count_row else 0
        for n in range(1, workers):
            offset = count * n // workers - 1
            if offset < 0:
                continue
            found = raw.execute(*queries.next_upper.bind(None, end, offset)).fetchone()
            cut = None if found is None else str(found[0])
            if cut is not None and cut != end and cut not in cuts:
                cuts.append(cut)
    starts: list[str | None] = [None, *cuts]
    ends: list[str | None] = [*cuts, end]
    return list(zip(starts, ends, strict=True))


def _keys_left(conn: psycopg.Connection, queries: batchsql.BatchQueries, segments: list[Checkpoint]) -> int | None:
    """Keys still to do, for progress: the planner's estimate (free) on a fresh run, else counted."""
    if all(cp.last_key is None for cp in segments):
        row = conn.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            (_table(queries.target).as_string(conn),),
        ).fetchone()
        if row and row[0] is not None and row[0] > 0:  # -1: never analyzed
            return int(row[0])
    raw = psycopg.RawCursor(conn)
    left = 0
    for cp in segments:
        if not cp.at_end:
            found = raw.execute(*queries.count_keys.bind(cp.lower, cp.end_key)).fetchone()
            left += int(str(found[0])) if found else 0
    return left
