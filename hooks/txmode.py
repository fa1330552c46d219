"""Which statements cannot run inside a transaction block, and so how a file is run.

Facts from PostgreSQL (measured on 10–18): these fail with "cannot run inside a transaction
block". The engine runs a file containing one statement by statement in autocommit; the
linter uses the same answer to know whether the file's statements share a transaction.
"""

from __future__ import annotations

from lockgate.hooks.sqlmodel import SqlFile, Statement, alter_table_cmds, def_options

_ALWAYS = {"CreatedbStmt", "DropdbStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterSystemStmt"}


def cannot_run_in_transaction(stmt: Statement, pg_version: int) -> bool:
    kind, node = stmt.kind, stmt.node
    if kind in _ALWAYS:
        return True
    if kind in ("IndexStmt", "DropStmt"):
        return bool(node.get("concurrent"))
    if kind == "ReindexStmt":
        return "concurrently" in def_options(node, "params") or node.get("kind") in (
            "REINDEX_OBJECT_SCHEMA", "REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE",
        )
    if kind == "VacuumStmt":
        return bool(node.get("is_vacuumcmd"))
    if kind == "ClusterStmt":
        return "relation" not in node
    if kind == "AlterEnumStmt":
        return pg_version < 12 and "newVal" in node and not node.get("oldVal")
    if kind == "AlterTableStmt":
        return any(
            cmd.get("subtype") == "AT_DetachPartition" and cmd.get("def", {}).get("PartitionCmd", {}).get("concurrent")
            for cmd in alter_table_cmds(node)
        )
    if kind == "CreateSubscriptionStmt":
        return "create_slot=false" not in stmt.text.replace(" ", "").lower()
    return False


def runs_in_transaction(sql: SqlFile, pg_version: int) -> bool:
    """True when the engine runs the whole file as one transaction."""
    if sql.no_transaction:
        return False
    return not any(cannot_run_in_transaction(s, pg_version) for s in sql.statements)
