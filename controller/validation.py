"""Validation gates: run a .validate.sql and judge it, changing nothing.

The file runs statement by statement inside a transaction (or a savepoint, when the
migration's own transaction is still open) that is always rolled back. A statement is a
gate when it can fail: it raises (the `DO $$ … RAISE EXCEPTION … $$` style), or it is a
query whose first column is boolean, where false fails the gate. A boolean query that
answers NULL or no row at all fails too: the gate asked a yes/no question and got no yes.
Other query results (distribution checks) are recorded for the report, not judged.
"""

from __future__ import annotations

import re

import psycopg

from lockgate.controller import faultpoints
from lockgate.controller.db import connection_lost
from lockgate.controller.outcome import GateResult
from lockgate.controller.snapshot import Baseline, load_temp_table
from lockgate.hooks.directives import PREFIX
from lockgate.hooks.sqlmodel import SqlFile, Statement

_GATE_COMMENT = re.compile(r"^--\s*(?:Gate|Check)\s*:\s*(?P<label>.+?)\.?\s*$", re.IGNORECASE)
_BOOL_OID = 16
_RECORDED_ROWS = 20


def _label(sql: SqlFile, stmt: Statement) -> str:
    """The `-- Gate: …` comment above the statement, else the comment line right above it,
    else the statement's first line."""
    lines = sql.text.split("\n")
    above: list[str] = []
    n = stmt.line - 1
    while n >= 1 and lines[n - 1].lstrip().startswith("--") and not lines[n - 1].lstrip().startswith(PREFIX):
        above.append(lines[n - 1].strip())
        n -= 1
    for comment in above:
        m = _GATE_COMMENT.match(comment)
        if m:
            return m["label"]
    if above:
        return above[0].lstrip("-").strip().rstrip(".")
    return stmt.text.split("\n", 1)[0][:80]


def _judge(cur: psycopg.Cursor[tuple[object, ...]]) -> tuple[bool | None, str]:
    if cur.description is None:
        return True, "ran without error"
    first = cur.description[0]
    rows = cur.fetchmany(_RECORDED_ROWS)
    if first.type_code != _BOOL_OID:
        shown = "; ".join(", ".join(str(v) for v in row) for row in rows)
        names = ", ".join(c.name for c in cur.description)
        return None, f"{names}: {shown}" if rows else f"{names}: no rows"
    if not rows:
        return False, f"{first.name}: no rows"
    value = rows[0][0]
    if value is True:
        return True, f"{first.name} = true"
    return False, f"{first.name} = {'false' if value is False else 'NULL'}"


def run(conn: psycopg.Connection, sql: SqlFile, baseline: Baseline) -> list[GateResult]:
    """Every statement of the validation file, judged; the database is left as it was."""
    results: list[GateResult] = []
    with conn.transaction(force_rollback=True):
        load_temp_table(conn, baseline)
        for stmt in sql.statements:
            label = _label(sql, stmt)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(stmt.text.encode())
                    passed, detail = _judge(cur)
            except psycopg.Error as exc:
                if connection_lost(exc):
                    raise  # the session is gone: that is no verdict on the gate
                message = exc.diag.message_primary or str(exc).strip()
                passed, detail = False, message
            results.append(GateResult(gate=label, line=stmt.line, passed=passed, detail=detail))
            faultpoints.reached("gate")
    return results


def failures(results: list[GateResult]) -> list[GateResult]:
    return [r for r in results if r.passed is False]


def summary(results: list[GateResult]) -> str:
    return "; ".join(f"gate '{r.gate}' (line {r.line}) failed: {r.detail}" for r in failures(results))
