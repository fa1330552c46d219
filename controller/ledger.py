"""The ledger: lockgate's own tables in the target database, and the one-applier lock.

Everything lives in one schema (`settings.ledger_schema`, default `lockgate`). The schema is
created and upgraded by lockgate itself: `schema_version` holds the number of upgrade steps
applied, each step is idempotent DDL, and the steps run in one transaction.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from lockgate.controller import backfill
from lockgate.controller.checkpoints import CHECKPOINTS
from lockgate.controller.outcome import GateResult, Outcome


class Event(StrEnum):
    """The names of the ledger's history events (`events.event`), written and read back by name."""

    STARTED = "started"
    RESUMED = "resumed"
    RETRY = "retry"
    STEP_STARTED = "step started"
    ALREADY_TOOK_EFFECT = "already took effect"
    DROPPED_INVALID_INDEX = "dropped an invalid index left by an earlier try"
    DROPPED_OWN_INVALID_INDEX = "dropped the invalid index its failed build left"
    LOCK_TIMEOUT = "lock timeout"
    BATCHES = "batches"
    INTERRUPTED = "interrupted"
    CONNECTION_LOST = "connection lost"
    ROLLBACK_STARTED = "rollback started"
    ROLLBACK_RESUMED = "rollback resumed"
    # A run's end: the status it left.
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    DIRTY = "dirty"
    # `lockgate resolve`
    RESOLVED_AS_APPLIED = "resolved as applied"
    RESOLVED_AS_ROLLED_BACK = "resolved as rolled_back"

    @classmethod
    def finished_as(cls, status: Outcome) -> Event:
        return cls(str(status))

    @classmethod
    def resolved_as(cls, status: Outcome) -> Event:
        return cls(f"resolved as {status}")

    @property
    def resolves(self) -> bool:
        return self in (Event.RESOLVED_AS_APPLIED, Event.RESOLVED_AS_ROLLED_BACK)

# Upgrade steps, in order; `{schema}` is filled in with psycopg.sql. Never edit a step that
# has shipped: append a new one.
_UPGRADES: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS {schema}.migrations (
        version           text PRIMARY KEY,
        name              text NOT NULL,
        status            text NOT NULL CHECK (status IN ('applying', 'applied', 'failed', 'rolled_back', 'dirty')),
        up_checksum       text NOT NULL,
        down_checksum     text NOT NULL,
        validate_checksum text NOT NULL,
        up_sql            text NOT NULL,
        down_sql          text NOT NULL,
        validate_sql      text NOT NULL,
        commit_sha        text,
        started_at        timestamptz NOT NULL DEFAULT now(),
        finished_at       timestamptz,
        steps_done        integer NOT NULL DEFAULT 0,
        baseline          jsonb,
        validation        jsonb,
        schema_restored   boolean,
        error             text
    );
    CREATE TABLE IF NOT EXISTS {schema}.events (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        version    text NOT NULL,
        at         timestamptz NOT NULL DEFAULT clock_timestamp(),
        event      text NOT NULL,
        detail     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
        commit_sha text
    );
    CREATE INDEX IF NOT EXISTS events_version_idx ON {schema}.events (version, id);
    """,
    # NULL: no rollback under way; n: a rollback started and n steps of the down committed.
    "ALTER TABLE {schema}.migrations ADD COLUMN IF NOT EXISTS undo_steps_done integer;",
    # What the last sync pass that left everything in sync saw (see lockgate.controller.fastpath).
    """
    CREATE TABLE IF NOT EXISTS {schema}.sync_state (
        singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        fingerprint text NOT NULL,
        head        text NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # `undoing`: a rollback began and has not ended (the row was `applied` for a revert's, or
    # `applying` for a failed run's, with undo_steps_done set).
    """
    ALTER TABLE {schema}.migrations DROP CONSTRAINT IF EXISTS migrations_status_check;
    ALTER TABLE {schema}.migrations ADD CONSTRAINT migrations_status_check
        CHECK (status IN ('applying', 'undoing', 'applied', 'failed', 'rolled_back', 'dirty'));
    UPDATE {schema}.migrations SET status = 'undoing'
        WHERE undo_steps_done IS NOT NULL AND status IN ('applying', 'applied');
    """,
)


class LedgerEntry(BaseModel):
    """One migration's row in the ledger, without its texts and JSON (cheap to list)."""

    version: str
    name: str
    status: Outcome  # applying, undoing, applied, failed, rolled_back or dirty
    up_checksum: str
    down_checksum: str
    validate_checksum: str
    commit_sha: str | None
    started_at: datetime
    finished_at: datetime | None
    steps_done: int
    schema_restored: bool | None
    error: str | None
    undo_steps_done: int | None = None  # the down steps committed while `undoing` (see undo_started)


class LedgerRecord(LedgerEntry):
    """The whole row: the files' text as applied, the baseline and the validation results."""

    up_sql: str
    down_sql: str
    validate_sql: str
    baseline: dict[str, Any] | None
    validation: list[GateResult] | None


class ApplierBusy(Exception):
    """Another lockgate applier holds the ledger lock."""


def lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for this ledger schema."""
    digest = hashlib.sha256(f"lockgate applier:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _holder(conn: psycopg.Connection, key: int) -> str:
    """Who holds the applier lock, for the refusal message."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        """
        SELECT a.pid, a.usename, a.application_name, a.client_addr::text, a.backend_start
        FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                  SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1
        """,
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return "another session"
    pid, user, app, addr, since = row
    return (
        f"pid {pid} (user {user}, application {app or '-'}, from {addr or 'local socket'}, "
        f"since {since:%Y-%m-%d %H:%M:%S%z})"
    )


# What a waiting applier's lock session is called in pg_stat_activity while it waits.
WAITING = "lockgate applier (waiting for the lock)"
_WAIT_POLL_S = 0.1


def _try_lock(conn: psycopg.Connection, key: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return row is not None and bool(row[0])


def acquire_applier_lock(
    conn: psycopg.Connection, schema: str, *, wait: bool, stop: threading.Event | None = None
) -> None:
    """Take the session-level applier lock on `conn`, or raise ApplierBusy.

    `conn` must be a connection of its own, kept open for the whole run: the lock lives as
    long as its session. With `wait`, wait until the other applier is done (or `stop` is set).
    """
    key = lock_key(schema)
    if _try_lock(conn, key):
        return
    if not wait:
        raise ApplierBusy(
            f"another lockgate applier is running on this database ({_holder(conn, key)}); "
            "try again later or pass --wait"
        )
    # Poll instead of blocking in pg_advisory_lock(): a session blocked in a query holds a
    # snapshot, and CREATE INDEX CONCURRENTLY in the running applier waits for every older
    # snapshot to end while we wait for that applier's lock — a deadlock PostgreSQL cannot see.
    row = conn.execute("SHOW application_name").fetchone()
    conn.execute("SELECT set_config('application_name', %s, false)", (WAITING,))
    stop = stop or threading.Event()
    while not _try_lock(conn, key):
        if stop.wait(_WAIT_POLL_S):
            raise ApplierBusy("stopped while waiting for another lockgate applier to finish")
    conn.execute("SELECT set_config('application_name', %s, false)", (row[0] if row else "lockgate",))


# The sessions a run works through (besides its lock's), and what the lock session is called
# while a new run waits for those of a dead run to end.
WORKERS = ("lockgate applier", "lockgate backfill")
WAITING_FOR_DEAD_RUN = "lockgate applier (waiting for a dead run to end)"


def wait_for_dead_runs(conn: psycopg.Connection, *, timeout_s: float | None, stop: threading.Event) -> None:
    """Wait until no session of an earlier applier still runs a statement on this database.

    Call it holding the applier lock: any such session then belongs to a run whose process
    died. The server only notices a dead client when the running statement ends (and then
    rolls back the transaction it had open), so resuming at once would queue behind that
    statement's locks or redo what it is still doing. Gives up after `timeout_s`.
    """
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = ANY (%s) AND pid <> pg_backend_pid()"
    )
    if conn.execute(query, (list(WORKERS),)).fetchone() == (0,):
        return
    row = conn.execute("SHOW application_name").fetchone()
    conn.execute("SELECT set_config('application_name', %s, false)", (WAITING_FOR_DEAD_RUN,))
    waited = 0.0
    while conn.execute(query, (list(WORKERS),)).fetchone() != (0,) and (timeout_s is None or waited < timeout_s):
        if stop.wait(_WAIT_POLL_S):
            break
        waited += _WAIT_POLL_S
    conn.execute("SELECT set_config('application_name', %s, false)", (row[0] if row else "lockgate",))


class Ledger:
    """Reads and writes the ledger tables through one connection.

    Writes follow the connection's transaction state, so a write made inside the
    migration's own transaction commits or rolls back with it.
    """

    def __init__(self, conn: psycopg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self._table = sql.Identifier(schema, "migrations")
        self._events = sql.Identifier(schema, "events")

    def exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", (self._name("migrations"),)).fetchone()
        return row is not None and row[0] is not None

    def _name(self, table: str) -> str:
        return sql.Identifier(self.schema, table).as_string(self.conn)

    def setup(self) -> None:
        """Create or upgrade the ledger schema; safe to run any number of times."""
        ident = sql.Identifier(self.schema)
        with self.conn.transaction():
            self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
            self.conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (version integer NOT NULL)").format(
                    sql.Identifier(self.schema, "schema_version")
                )
            )
            row = self.conn.execute(
                sql.SQL("SELECT max(version) FROM {}").format(sql.Identifier(self.schema, "schema_version"))
            ).fetchone()
            current = (row[0] if row else None) or 0
            for step in _UPGRADES[current:]:
                self.conn.execute(sql.SQL(step).format(schema=ident))
            if current < len(_UPGRADES):
                self.conn.execute(
                    sql.SQL("DELETE FROM {}").format(sql.Identifier(self.schema, "schema_version"))
                )
                self.conn.execute(
                    sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier(self.schema, "schema_version")),
                    (len(_UPGRADES),),
                )
            backfill.ensure_tables(self.conn, self.schema)

    def entries(self, *, status: Outcome | None = None) -> dict[str, LedgerEntry]:
        """Every row (or those with `status`) by version, without the heavy columns."""
        if not self.exists():
            return {}
        columns = sql.SQL(", ").join(map(sql.Identifier, LedgerEntry.model_fields))
        query = sql.SQL("SELECT {} FROM {} WHERE %(status)s::text IS NULL OR status = %(status)s ORDER BY version")
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query.format(columns, self._table), {"status": status})
            return {row["version"]: LedgerEntry.model_validate(row) for row in cur.fetchall()}

    def get(self, version: str) -> LedgerRecord | None:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql.SQL("SELECT * FROM {} WHERE version = %s").format(self._table), (version,))
            row = cur.fetchone()
        return LedgerRecord.model_validate(row) if row else None

    def begin(self, record: dict[str, Any]) -> None:
        """Start (or restart) a migration: its row becomes `applying` with steps_done = 0."""
        columns = [
            "version", "name", "up_checksum", "down_checksum", "validate_checksum",
            "up_sql", "down_sql", "validate_sql", "commit_sha", "baseline",
        ]
        values = {**record, "baseline": Jsonb(record["baseline"])}
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {table} ({cols}, status, started_at) VALUES ({vals}, 'applying', now()) "
                "ON CONFLICT (version) DO UPDATE SET {updates}, status = 'applying', started_at = now(), "
                "finished_at = NULL, steps_done = 0, validation = NULL, schema_restored = NULL, error = NULL, "
                "undo_steps_done = NULL"
            ).format(
                table=self._table,
                cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
                vals=sql.SQL(", ").join(sql.Placeholder(c) for c in columns),
                updates=sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[1:]
                ),
            ),
            values,
        )
        self._clear_run_state(record["version"])
        self.event(record["version"], Event.STARTED, {"name": record["name"]}, record.get("commit_sha"))

    def _clear_run_state(self, version: str) -> None:
        """Forget how far an earlier run of the version got: a fresh run (a re-land after a revert,
        a retry) must backfill every row again, not find its last run's finished checkpoints."""
        self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE version = %s").format(sql.Identifier(self.schema, CHECKPOINTS)), (version,)
        )

    def step_done(self, version: str, steps_done: int) -> None:
        self.conn.execute(
            sql.SQL("UPDATE {} SET steps_done = %s WHERE version = %s").format(self._table),
            (steps_done, version),
        )

    def undo_started(
        self, version: str, *, error: str | None, validation: list[GateResult] | None, commit: str | None
    ) -> None:
        """A rollback begins: the row is `undoing` until it ends, so a rerun (or a re-land of the
        migration meanwhile) finishes it instead of taking the schema for applied.

        `error` is the failure that made a run roll back (None for a revert's rollback); `validation`,
        the gates that failed (None keeps the applied run's)."""
        self.conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'undoing', undo_steps_done = 0, error = %s, finished_at = NULL, "
                "schema_restored = NULL, validation = coalesce(%s, validation) WHERE version = %s"
            ).format(self._table),
            (error, _gates(validation), version),
        )
        self.event(version, Event.ROLLBACK_STARTED, {}, commit)

    def undo_step_done(self, version: str, undo_steps_done: int) -> None:
        self.conn.execute(
            sql.SQL("UPDATE {} SET undo_steps_done = %s WHERE version = %s").format(self._table),
            (undo_steps_done, version),
        )

    def finish(
        self,
        version: str,
        status: Outcome,
        *,
        validation: list[GateResult] | None = None,
        schema_restored: bool | None = None,
        error: str | None = None,
        commit: str | None = None,
    ) -> None:
        """A run ends in `status`: every column of that state is written, and the rollback's progress
        is cleared (a final state holds no run state; a later rollback starts from the first down step)."""
        self.conn.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, finished_at = clock_timestamp(), "
                "validation = coalesce(%s, validation), schema_restored = %s, error = %s, undo_steps_done = NULL "
                "WHERE version = %s"
            ).format(self._table),
            (status, _gates(validation), schema_restored, error, version),
        )
        self.event(version, Event.finished_as(status), {"error": error} if error else {}, commit)

    def set_status(self, version: str, status: Outcome, *, note: str, commit: str | None = None) -> None:
        """A status change made by a human (`lockgate resolve`), kept in the history.

        It ends whatever run or rollback was under way: a later rollback starts from the first
        down step, not from where a dirty one stopped.
        """
        self.conn.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, finished_at = clock_timestamp(), undo_steps_done = NULL WHERE version = %s"
            ).format(self._table),
            (status, version),
        )
        self._clear_run_state(version)
        self.event(version, Event.resolved_as(status), {"note": note}, commit)

    def event(self, version: str, event: Event, detail: dict[str, Any], commit: str | None = None) -> None:
        self.conn.execute(
            sql.SQL("INSERT INTO {} (version, event, detail, commit_sha) VALUES (%s, %s, %s, %s)").format(
                self._events
            ),
            (version, str(event), Jsonb(detail), commit),
        )

    def events(self, version: str) -> list[tuple[Event, dict[str, Any]]]:
        rows = self.conn.execute(
            sql.SQL("SELECT event, detail FROM {} WHERE version = %s ORDER BY id").format(self._events),
            (version,),
        ).fetchall()
        return [(Event(event), detail) for event, detail in rows]


def _gates(results: list[GateResult] | None) -> Jsonb | None:
    """Gate results as the ledger stores them (None: keep what the row holds)."""
    return None if results is None else Jsonb([g.model_dump() for g in results])
