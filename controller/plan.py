"""`lockgate plan`: what `apply` would do, step by step, without changing anything.

For each pending migration: its steps and their transaction mode, and for each statement
the lock it takes on which table (from `lockgate.hooks.locks`), whether that rewrites or
scans the table, the table's estimated rows (`pg_class.reltuples`) and, for a batched
statement, how many batches that makes.
"""

from __future__ import annotations

import json
import math

import psycopg
from pglast import parser
from psycopg import sql
from pydantic import BaseModel

from lockgate.controller import db, lifecycle
from lockgate.controller.config import Settings
from lockgate.controller.engine import pending_of
from lockgate.controller.ledger import Ledger
from lockgate.controller.runcontext import effective_timeouts
from lockgate.controller.steps import Mode, is_atomic, split
from lockgate.hooks import locks
from lockgate.hooks.migrationset import Migration, MigrationSet
from lockgate.hooks.rules.context import relation_key
from lockgate.hooks.sqlmodel import Statement, alter_table_cmds


class PlannedLock(BaseModel):
    relation: str
    mode: str
    blocks: str
    rewrite: bool
    scan: bool
    note: str
    estimated_rows: int | None  # None: the table does not exist yet or was never analyzed


class PlannedStatement(BaseModel):
    line: int
    kind: str
    text: str
    locks: list[PlannedLock]
    batches: int | None = None  # expected batches of a `-- lockgate:batch` statement
    workers: int | None = None  # how many of them run at once


class PlannedStep(BaseModel):
    number: int
    mode: Mode
    statements: list[PlannedStatement]


class PlannedTimeouts(BaseModel):
    """The timeouts a migration's `-- lockgate:timeout` (on `line` of its up file) gives it, merged
    with the configured ones; in seconds, 0 meaning no limit."""

    line: int
    lock_timeout_s: float
    statement_timeout_s: float


class PlannedMigration(BaseModel):
    version: str
    name: str
    description: str
    state: str  # "pending", "resumes an interrupted run", "failed before: needs `lockgate retry`"
    atomic: bool
    steps: list[PlannedStep]
    timeouts: PlannedTimeouts | None = None  # only when the migration overrides the configured ones


class _Catalog:
    """Estimated rows and column types, read from the target's catalog."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _regclass(self, relation: str) -> str:
        return sql.Identifier(*relation.split(".")).as_string(self.conn)

    def estimated_rows(self, relation: str) -> int | None:
        if relation == locks.ALL_TABLES:
            return None
        row = self.conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (self._regclass(relation),)
        ).fetchone()
        return None if row is None or row[0] < 0 else int(row[0])

    def column_types(self, stmt: Statement) -> dict[tuple[str, str], locks.SqlType]:
        """Current types of the columns an ALTER COLUMN TYPE changes, so rewrites are judged exactly."""
        if stmt.kind != "AlterTableStmt":
            return {}
        table = relation_key(stmt.node.get("relation", {}))
        found: dict[tuple[str, str], locks.SqlType] = {}
        for cmd in alter_table_cmds(stmt.node):
            if cmd.get("subtype") != "AT_AlterColumnType":
                continue
            row = self.conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
                (self._regclass(table), cmd.get("name", "")),
            ).fetchone()
            if row is not None:
                found[(table, cmd["name"])] = _sql_type(row[0])
        return found


def _sql_type(formatted: str) -> locks.SqlType:
    """A catalog type name (`character varying(20)`) as the parser spells it (`varchar`, (20,))."""
    tree = json.loads(parser.parse_sql_json(f"SELECT NULL::{formatted}"))
    target = tree["stmts"][0]["stmt"]["SelectStmt"]["targetList"][0]["ResTarget"]["val"]
    return locks.SqlType.of(target["TypeCast"]["typeName"])


def _statement(stmt: Statement, catalog: _Catalog, pg_version: int) -> PlannedStatement:
    planned_locks = [
        PlannedLock(
            relation=claim.relation, mode=claim.mode, blocks=locks.what_it_blocks(claim.mode),
            rewrite=claim.rewrite, scan=claim.scan, note=claim.note,
            estimated_rows=catalog.estimated_rows(claim.relation),
        )
        for claim in locks.claims(stmt, pg_version, column_types=catalog.column_types(stmt))
    ]
    batches = None
    if stmt.batch is not None and planned_locks and planned_locks[0].estimated_rows is not None:
        batches = max(1, math.ceil(planned_locks[0].estimated_rows / stmt.batch.size))
    first_line = stmt.text.split("\n", 1)[0]
    return PlannedStatement(line=stmt.line, kind=stmt.kind, text=first_line, locks=planned_locks, batches=batches,
                            workers=stmt.batch.workers if stmt.batch is not None else None)


def _timeouts(migration: Migration, settings: Settings) -> PlannedTimeouts | None:
    directive = migration.up.sql.timeout
    if directive is None:
        return None
    lock, statement = effective_timeouts(settings, directive)
    return PlannedTimeouts(line=directive.line, lock_timeout_s=lock, statement_timeout_s=statement)


def build(
    conn: psycopg.Connection, migrations: MigrationSet, *, ledger_schema: str, settings: Settings | None = None,
) -> list[PlannedMigration]:
    """The plan for every pending migration; reads the ledger and catalog, writes nothing.

    `settings` gives the configured timeouts a `-- lockgate:timeout` is merged with (the
    defaults when not given).
    """
    settings = settings or Settings.model_construct()
    conn.execute("SET default_transaction_read_only = on")
    entries = Ledger(conn, ledger_schema).entries()
    pg_version = db.server_major(conn)
    catalog = _Catalog(conn)
    planned: list[PlannedMigration] = []
    for migration in pending_of(entries, migrations):
        steps = split(migration.up.sql, pg_version=pg_version)
        planned.append(PlannedMigration(
            version=migration.version, name=migration.name, description=migration.description,
            state=lifecycle.word(entries.get(migration.version), migration),
            atomic=is_atomic(steps),
            steps=[
                PlannedStep(number=step.number, mode=step.mode,
                            statements=[_statement(s, catalog, pg_version) for s in step.statements])
                for step in steps
            ],
            timeouts=_timeouts(migration, settings),
        ))
    return planned


def _lock_line(lock: PlannedLock) -> str:
    rows = "" if lock.estimated_rows is None else f", ~{lock.estimated_rows} rows"
    effects = ", ".join(e for e, on in (("rewrites", lock.rewrite), ("scans", lock.scan)) if on)
    extra = "; ".join(x for x in (effects, lock.note) if x)
    return f"{lock.mode} on {lock.relation} ({lock.blocks}{rows})" + (f": {extra}" if extra else "")


def _seconds(value: float) -> str:
    return "none" if value == 0 else f"{value:g}s"


def render_text(plan: list[PlannedMigration]) -> str:
    if not plan:
        return "nothing to apply"
    out: list[str] = []
    for m in plan:
        count = f"{len(m.steps)} step{'s' if len(m.steps) != 1 else ''}"
        shape = "one transaction, all or nothing" if m.atomic else f"{count}, each committed on its own"
        out.append(f"{m.version}_{m.name} [{m.state}] — {m.description or 'no description'} ({shape})")
        if m.timeouts is not None:
            out.append(
                f"  timeouts (-- lockgate:timeout, line {m.timeouts.line}): "
                f"lock_timeout {_seconds(m.timeouts.lock_timeout_s)}, "
                f"statement_timeout {_seconds(m.timeouts.statement_timeout_s)}"
            )
        for step in m.steps:
            out.append(f"  step {step.number}: {step.mode}")
            for s in step.statements:
                batches = ""
                if s.batches is not None:
                    at_once = f", {s.workers} at a time" if s.workers and s.workers > 1 else ""
                    batches = f" — about {s.batches} batch(es){at_once}"
                out.append(f"    line {s.line}: {s.text}{batches}")
                out.extend(f"      {_lock_line(lock)}" for lock in s.locks)
    return "\n".join(out)


def render_json(plan: list[PlannedMigration]) -> str:
    return json.dumps([m.model_dump() for m in plan], indent=2)
