"""Validation files are read-only: a gate looks, it never changes what it judges."""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.hooks.rules.base import ANY_STATEMENT, VALIDATE_ONLY, Example, Hit, Rule
from lockgate.hooks.rules.context import Context
from lockgate.hooks.sqlmodel import Node, Statement, qualified_names, walk_nodes

# What a gate may run: queries, the DO blocks that RAISE when a check fails, and what those
# blocks are made of (assignments, IFs, RAISE, loops over queries).
_READS = frozenset({
    "SelectStmt", "DoStmt", "ExplainStmt", "VariableShowStmt", "VariableSetStmt",
    "PLpgSQL_stmt_block", "PLpgSQL_stmt_assign", "PLpgSQL_stmt_if", "PLpgSQL_stmt_raise", "PLpgSQL_stmt_assert",
    "PLpgSQL_stmt_execsql", "PLpgSQL_stmt_fors", "PLpgSQL_stmt_loop", "PLpgSQL_stmt_while", "PLpgSQL_stmt_fori",
    "PLpgSQL_stmt_foreach_a", "PLpgSQL_stmt_exit", "PLpgSQL_stmt_return", "PLpgSQL_stmt_case",
    "PLpgSQL_stmt_perform", "PLpgSQL_stmt_getdiag",
})
# Functions that change something however they are called: sequences, other sessions, settings,
# server files, large objects, advisory locks that outlive the gate.
_WRITING_FUNCTIONS = frozenset({
    "nextval", "setval", "pg_terminate_backend", "pg_cancel_backend", "set_config", "pg_reload_conf",
    "pg_rotate_logfile", "pg_switch_wal", "pg_create_restore_point", "pg_advisory_lock", "pg_advisory_xact_lock",
    "pg_file_write", "pg_file_unlink", "pg_file_rename", "lo_import", "lo_export", "lo_unlink", "lo_create",
    "dblink_exec", "pg_stat_reset", "pg_stat_reset_shared", "pg_replication_origin_create",
    "pg_drop_replication_slot", "pg_create_physical_replication_slot", "pg_create_logical_replication_slot",
    "txid_current", "pg_current_xact_id", "pg_notify",
})
_DATA_MODIFYING = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


class ValidateWrites(Rule):
    """A validation gate that writes changes what it is meant to judge, on production.

    The engine runs the validate file right after the up, with the migration's own baseline, and
    rolls back when a gate fails. A gate that updates rows, changes the schema, advances a
    sequence or terminates sessions does so on production every time it runs, and a passing gate
    proves nothing about a database it changed itself.

    Safe alternative: only read. Check with `SELECT … AS ok` (a first column that is `false`
    fails the gate) or a `DO` block that `RAISE`s; count with `migration_baseline`. Put any data
    change in the up file, where it is linted, batched and rolled back like the rest.
    """

    code = "LG814"
    name = "validate-writes"
    summary = "a validation file that writes: DML, DDL, or a function that changes state"
    kinds = frozenset({ANY_STATEMENT})
    file_kinds = VALIDATE_ONLY
    bad = (
        Example("UPDATE customers SET tier = 'bronze' WHERE tier IS NULL;", file="validate"),
        Example("SELECT nextval('orders_id_seq') > 0 AS ok;", file="validate"),
        Example("WITH gone AS (DELETE FROM orders WHERE total < 0 RETURNING 1) SELECT count(*) = 0 FROM gone;",
                file="validate"),
        Example("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle';", file="validate"),
    )
    good = (
        Example("SELECT count(*) = 0 AS no_null_tiers FROM customers WHERE tier IS NULL;", file="validate"),
        Example("DO $$\nBEGIN\n  IF EXISTS (SELECT 1 FROM orders WHERE total < 0) THEN\n"
                "    RAISE EXCEPTION 'negative totals';\n  END IF;\nEND $$;", file="validate"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if stmt.kind not in _READS:
            word = stmt.text.split(maxsplit=1)[0].upper() if stmt.text.strip() else stmt.kind
            yield f"{word} in a validation file; gates must only read: move the change to the up file"
            return
        if stmt.kind != "SelectStmt":
            return
        node = stmt.node
        if node.get("intoClause"):
            yield "SELECT … INTO creates a table; gates must only read"
        if node.get("lockingClause"):
            yield "SELECT … FOR UPDATE/SHARE locks rows of production tables; gates must only read"
        for kind in _DATA_MODIFYING:
            if any(True for _ in walk_nodes(node, kind)):
                verb = kind.removesuffix("Stmt").upper()
                yield f"a data-modifying WITH ({verb}) in a validation file; gates must only read"
        for name in sorted(_called(node) & _WRITING_FUNCTIONS):
            yield f"{name}() changes state each time the gate runs; gates must only read"


def _called(node: Node) -> set[str]:
    return {qualified_names(call.get("funcname", []))[-1] for call in walk_nodes(node, "FuncCall")
            if call.get("funcname")}

