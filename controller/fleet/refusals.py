"""A wave pod's refusals, kept beside its target's ledger for the coordinator (`executor: kubernetes`).

A refusal (the lint rules, a signature, an edited migration, a held rollback) leaves no ledger
row, yet the note on the commit should say it. The pod that reached it records it here, and the
coordinator reads it back with the ledger. Each pod's pass replaces its target's refusals, so
what is kept is what the last pass refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from lockgate.controller import db
from lockgate.controller.source import CommitRef
from lockgate.controller.status import MigrationRecord

TABLE = "fleet_refusals"


def _table(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, TABLE)


def replace(dsn: str, schema: str, refused: Sequence[tuple[CommitRef, MigrationRecord]]) -> None:
    """The target's refusals are now `refused` (by commit), in one transaction."""
    with db.connect(dsn, application_name="lockgate fleet") as conn, conn.transaction():
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (sha text NOT NULL, version text NOT NULL, record jsonb NOT NULL, "
            "PRIMARY KEY (sha, version))"
        ).format(_table(schema)))
        conn.execute(sql.SQL("DELETE FROM {}").format(_table(schema)))
        for commit, record in refused:
            conn.execute(sql.SQL("INSERT INTO {} (sha, version, record) VALUES (%s, %s, %s) ON CONFLICT "
                                 "(sha, version) DO UPDATE SET record = EXCLUDED.record").format(_table(schema)),
                         (commit.sha, record.version, record.model_dump_json()))


def read(conn: psycopg.Connection, schema: str) -> list[tuple[str, MigrationRecord]]:
    """(commit sha, record) of each refusal the target's last pod pass recorded; none before any."""
    exists = conn.execute("SELECT to_regclass(%s)", (_table(schema).as_string(conn),)).fetchone()
    if exists is None or exists[0] is None:
        return []
    rows = conn.execute(sql.SQL("SELECT sha, record::text FROM {} ORDER BY version").format(_table(schema)))
    return [(sha, MigrationRecord.model_validate_json(text)) for sha, text in rows]
