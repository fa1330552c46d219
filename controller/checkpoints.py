"""Where batched backfills keep their place, and the manual pause switch.

Both live in the ledger schema. A batched step's keys are split into one or more segments
(one per worker, fixed when the step first starts), each with its own checkpoint row. A row
is advanced in the same transaction as the batch it records, so after a crash the database
holds either both or neither. Keys are kept as text next to the key column's type name:
integer, uuid, text and timestamp keys all round-trip through their text form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import psycopg
from psycopg import sql
from psycopg.rows import class_row

CHECKPOINTS = "batch_checkpoints"
CONTROL = "batch_control"


# A checkpoint table from before segments held one row per step: segment 0, from the start.
_ADD_SEGMENTS = (
    "ALTER TABLE {checkpoints} ADD COLUMN segment int NOT NULL DEFAULT 0, ADD COLUMN start_key text,"
    " DROP CONSTRAINT {old_pkey}, ADD CONSTRAINT {segment_pkey} PRIMARY KEY (version, step, segment)"
)


def ensure_tables(conn: psycopg.Connection, schema: str) -> None:
    """Create the ledger schema, the checkpoint table and the pause switch if missing."""
    names = {
        "schema": sql.Identifier(schema),
        "checkpoints": sql.Identifier(schema, CHECKPOINTS),
        "control": sql.Identifier(schema, CONTROL),
        "segment_pkey": sql.Identifier(f"{CHECKPOINTS}_segment_pkey"),
        "old_pkey": sql.Identifier(f"{CHECKPOINTS}_pkey"),
    }
    statements = [
        "CREATE SCHEMA IF NOT EXISTS {schema}",
        """CREATE TABLE IF NOT EXISTS {checkpoints} (
            version      text        NOT NULL,
            step         int         NOT NULL,
            segment      int         NOT NULL DEFAULT 0,
            key_column   text        NOT NULL,
            key_type     text        NOT NULL,
            start_key    text,
            last_key     text,
            end_key      text,
            rows_done    bigint      NOT NULL DEFAULT 0,
            batches_done bigint      NOT NULL DEFAULT 0,
            batch_size   int         NOT NULL,
            started_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            finished     boolean     NOT NULL DEFAULT false,
            CONSTRAINT {segment_pkey} PRIMARY KEY (version, step, segment)
        )""",
        """CREATE TABLE IF NOT EXISTS {control} (
            singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
            paused     boolean     NOT NULL DEFAULT false,
            changed_at timestamptz NOT NULL DEFAULT now()
        )""",
    ]
    # Concurrent first runs may race on CREATE … IF NOT EXISTS; serialize them.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('lockgate.batch_tables'))")
        for statement in statements:
            conn.execute(sql.SQL(statement).format(**names))
        segmented = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s)",
            (names["checkpoints"].as_string(conn), f"{CHECKPOINTS}_segment_pkey"),
        ).fetchone()
        if segmented != (True,):
            conn.execute(sql.SQL(_ADD_SEGMENTS).format(**names))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The place of one segment: keys (start_key, end_key], done up to last_key."""

    segment: int
    key_column: str
    key_type: str
    start_key: str | None  # exclusive; None: from the table's first key
    last_key: str | None  # None: no batch of this segment done yet
    end_key: str | None  # inclusive; the last segment ends at the largest key when the step began
    rows_done: int
    batches_done: int
    batch_size: int
    finished: bool

    @property
    def at_end(self) -> bool:
        return self.end_key is None or self.last_key == self.end_key

    @property
    def lower(self) -> str | None:
        """The exclusive lower bound of the next batch; None: from the table's first key."""
        return self.last_key if self.last_key is not None else self.start_key


class CheckpointMoved(RuntimeError):
    """Another run advanced this checkpoint: two appliers are running the same backfill."""


@dataclass(frozen=True, slots=True)
class CheckpointStore:
    """The checkpoint rows of one batched step of one migration."""

    conn: psycopg.Connection
    schema: str
    version: str
    step: int

    @property
    def _table(self) -> sql.Identifier:
        return sql.Identifier(self.schema, CHECKPOINTS)

    def load(self) -> list[Checkpoint]:
        """Every segment in key order; empty before the step first started."""
        query = sql.SQL(
            "SELECT segment, key_column, key_type, start_key, last_key, end_key, rows_done, batches_done,"
            " batch_size, finished FROM {} WHERE version = %s AND step = %s ORDER BY segment"
        ).format(self._table)
        with self.conn.cursor(row_factory=class_row(Checkpoint)) as cur:
            return cur.execute(query, (self.version, self.step)).fetchall()

    def create(
        self, key_column: str, key_type: str, bounds: list[tuple[str | None, str | None]], batch_size: int
    ) -> list[Checkpoint]:
        """The segments (start, end] in key order, all or none; a run that raced us keeps its own."""
        query = sql.SQL(
            "INSERT INTO {} (version, step, segment, key_column, key_type, start_key, end_key, batch_size,"
            " finished) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        ).format(self._table)
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"lockgate.batch {self.version}",))
            if not self.load():
                for segment, (start, end) in enumerate(bounds):
                    values = (self.version, self.step, segment, key_column, key_type, start, end, batch_size,
                              end is None)
                    self.conn.execute(query, values)
        return self.load()

    def advance(self, before: Checkpoint, upper: str, rows: int, batch_size: int) -> Checkpoint:
        """Record one batch; call inside the batch's transaction."""
        query = sql.SQL(
            "UPDATE {} SET last_key = %s, rows_done = rows_done + %s, batches_done = batches_done + 1,"
            " batch_size = %s, updated_at = now(), finished = %s"
            " WHERE version = %s AND step = %s AND segment = %s AND last_key IS NOT DISTINCT FROM %s"
        ).format(self._table)
        finished = upper == before.end_key
        cur = self.conn.execute(
            query, (upper, rows, batch_size, finished, self.version, self.step, before.segment, before.last_key)
        )
        if cur.rowcount != 1:
            raise CheckpointMoved(
                f"checkpoint of {self.version} step {self.step} moved under this run:"
                " another applier is running the same backfill"
            )
        return replace(
            before, last_key=upper, rows_done=before.rows_done + rows, batches_done=before.batches_done + 1,
            batch_size=batch_size, finished=finished,
        )


def set_paused(conn: psycopg.Connection, schema: str, paused: bool) -> None:
    """Flip the manual switch that holds every batched backfill between batches."""
    query = sql.SQL(
        "INSERT INTO {} (singleton, paused) VALUES (true, %s)"
        " ON CONFLICT (singleton) DO UPDATE SET paused = excluded.paused, changed_at = now()"
    ).format(sql.Identifier(schema, CONTROL))
    conn.execute(query, (paused,))


def is_paused(conn: psycopg.Connection, schema: str) -> bool:
    query = sql.SQL("SELECT paused FROM {}").format(sql.Identifier(schema, CONTROL))
    row = conn.execute(query).fetchone()
    return bool(row and row[0])
