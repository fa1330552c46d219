"""How a migration file is run: its statements grouped into steps, each with a transaction mode.

A file runs as one transaction when it can (all or nothing). A statement that cannot run in
a transaction block, or `-- lockgate:no-transaction`, makes the file run statement by
statement, each committed on its own: sent alone when it cannot run in a transaction block
(a multi-statement string would be an implicit transaction), else in a transaction of its own
with the ledger's step count, so a crash never leaves it done but uncounted. A
`-- lockgate:batch` statement splits the file around itself: it is
run in key ranges by the backfill, and the statements before and after it form transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lockgate.hooks.errors import InputError, Problem
from lockgate.hooks.sqlmodel import SqlFile, Statement
from lockgate.hooks.txmode import cannot_run_in_transaction

Mode = Literal["transaction", "autocommit", "batch"]

_BATCHABLE = ("UpdateStmt", "DeleteStmt")
_TRANSACTION_CONTROL = "TransactionStmt"
# PL/pgSQL COMMIT/ROLLBACK only work when the DO block is not inside a transaction block.
_COMMITS_ITSELF = ("PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback")


@dataclass(frozen=True, slots=True)
class Step:
    number: int  # 1-based position in the file's steps; the ledger counts completed ones
    mode: Mode
    statements: tuple[Statement, ...]
    # An autocommit statement that cannot run in a transaction block: it commits on its own,
    # so a crash between it and the ledger's count leaves the count behind. Every other
    # autocommit statement runs in a transaction of its own with its count.
    bare: bool = False

    @property
    def first(self) -> Statement:
        return self.statements[0]


def _commits_itself(stmt: Statement, sql: SqlFile) -> bool:
    return any(n.parent is stmt and n.kind in _COMMITS_ITSELF for n in sql.nested)


def _check(sql: SqlFile) -> None:
    """Structure errors, all reported before anything runs."""
    problems: list[Problem] = []
    for stmt in sql.statements:
        if stmt.kind == _TRANSACTION_CONTROL:
            problems.append(Problem(
                sql.path, stmt.line, stmt.column,
                "transaction control in a migration: lockgate runs the transaction itself "
                "(use -- lockgate:no-transaction to run statements one by one)",
            ))
        batch = stmt.batch
        if batch is not None and stmt.kind not in _BATCHABLE:
            problems.append(Problem(
                sql.path, batch.line, 1, "lockgate:batch must be right before an UPDATE or DELETE",
            ))
    if problems:
        raise InputError(problems)


def split(sql: SqlFile, *, pg_version: int) -> list[Step]:
    """The steps of one file, in order; an empty file has none."""
    _check(sql)
    one_by_one = sql.no_transaction or any(
        cannot_run_in_transaction(s, pg_version) or _commits_itself(s, sql) for s in sql.statements
    )
    steps: list[Step] = []
    group: list[Statement] = []

    def add(mode: Mode, statements: list[Statement], *, bare: bool = False) -> None:
        steps.append(Step(len(steps) + 1, mode, tuple(statements), bare))

    for stmt in sql.statements:
        if stmt.batch is not None:
            if group:
                add("transaction", group)
                group = []
            add("batch", [stmt])
        elif one_by_one:
            add("autocommit", [stmt], bare=cannot_run_in_transaction(stmt, pg_version) or _commits_itself(stmt, sql))
        else:
            group.append(stmt)
    if group:
        add("transaction", group)
    return steps


def is_atomic(steps: list[Step]) -> bool:
    """True when nothing is committed before the last step's COMMIT: validation can run inside."""
    return len(steps) <= 1 and all(s.mode == "transaction" for s in steps)
