"""The ledger state a wave pod left its target in sync with, kept beside the ledger for the
coordinator (`executor: kubernetes`).

The no-op short cut's fingerprint must hold the ledger's state as read under the applier lock by
the pass that left the target in sync (see fastpath.record), never a later write. Under the
Kubernetes executor that pass is the pod's, while the fingerprint is the coordinator's to record
once the notes are pushed, after the pod ended: the pod keeps its state here, so an operator's
command in between makes the next pass look instead of passing for the pod's work.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from lockgate.controller import db

TABLE = "fleet_settled"


def _table(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, TABLE)


def replace(dsn: str, schema: str, head: str, ledger: str | None) -> None:
    """The pod's pass at `head` left its target in sync with the ledger state `ledger` (None: it did not)."""
    with db.connect(dsn, application_name="lockgate fleet") as conn, conn.transaction():
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (head text PRIMARY KEY, ledger text NOT NULL)")
                     .format(_table(schema)))
        conn.execute(sql.SQL("DELETE FROM {}").format(_table(schema)))
        if ledger is not None:
            conn.execute(sql.SQL("INSERT INTO {} (head, ledger) VALUES (%s, %s)").format(_table(schema)),
                         (head, ledger))


def read(conn: psycopg.Connection, schema: str, head: str) -> str | None:
    """The ledger state the target's last pod pass at `head` left it in sync with; None if none did."""
    exists = conn.execute("SELECT to_regclass(%s)", (_table(schema).as_string(conn),)).fetchone()
    if exists is None or exists[0] is None:
        return None
    row = conn.execute(sql.SQL("SELECT ledger FROM {} WHERE head = %s").format(_table(schema)), (head,)).fetchone()
    return str(row[0]) if row else None
