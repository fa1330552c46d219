"""The baseline taken before a migration: exact row counts and a catalog snapshot.

Row counts cover the tables the up file acts on (read from its parse tree); the catalog
snapshot covers every user schema, so that after a rollback lockgate can prove the schema
is back exactly as it was. Snapshots are plain JSON-able dicts, stored in the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel

from lockgate.hooks.sqlmodel import Node, Relation, SqlFile, Statement, qualified_names, walk_nodes

Catalog = dict[str, Any]


class Baseline(BaseModel):
    captured_at: datetime
    row_counts: dict[str, int]  # oid::regclass::text -> exact count
    catalog: Catalog


def _range_vars(node: Node) -> Iterator[Node]:
    relation = node.get("relation")
    if isinstance(relation, dict) and "relname" in relation:
        yield relation
    yield from walk_nodes(node, "RangeVar")


def statement_relations(stmt: Statement) -> list[Relation]:
    """Every table a statement names: its target, and those it reads or references."""
    found = [Relation.of(rv) for rv in _range_vars(stmt.node)]
    if stmt.kind == "DropStmt" and stmt.node.get("removeType") in ("OBJECT_TABLE", "OBJECT_MATVIEW"):
        for obj in stmt.node.get("objects", []):
            names = qualified_names(obj.get("List", {}).get("items", []))
            found.append(Relation(names[-2] if len(names) > 1 else None, names[-1]))
    return list(dict.fromkeys(found))


def touched_relations(up: SqlFile) -> list[Relation]:
    """Tables named anywhere in the up file, PL/pgSQL bodies included, in first-seen order."""
    return list(dict.fromkeys(r for stmt in up.walk() for r in statement_relations(stmt)))


def sql_name(conn: psycopg.Connection, rel: Relation) -> str:
    parts = (rel.schema, rel.name) if rel.schema else (rel.name,)
    return sql.Identifier(*parts).as_string(conn)


def existing_tables(conn: psycopg.Connection, names: list[str]) -> dict[str, tuple[str, str]]:
    """Those of `names` (SQL-quoted, as to_regclass reads them) that exist now and hold rows,
    as `oid::regclass::text` -> (schema, name)."""
    found: dict[str, tuple[str, str]] = {}
    for name in names:
        row = conn.execute(
            "SELECT c.oid::regclass::text, n.nspname, c.relname "
            "FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'm')",
            (name,),
        ).fetchone()
        if row is not None:
            found[row[0]] = (row[1], row[2])
    return found


def row_counts(conn: psycopg.Connection, tables: dict[str, tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for label, (schema, name) in tables.items():
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()
        counts[label] = int(row[0]) if row else 0
    return counts


def rows_of(conn: psycopg.Connection, baseline: Baseline) -> dict[str, int]:
    """The row counts now of the tables the baseline counted that still exist."""
    return row_counts(conn, existing_tables(conn, list(baseline.row_counts)))


_USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
    AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname <> %(ledger)s
"""

_QUERIES: dict[str, str] = {
    "relations": f"""
        SELECT n.nspname || '.' || c.relname, c.relkind::text,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {_USER_SCHEMAS}
    """,
    "columns": f"""
        SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
               co.collname
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation AS co ON co.oid = a.attcollation AND a.attcollation <> 100
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND {_USER_SCHEMAS}
    """,
    "constraints": f"""
        SELECT n.nspname || '.' || c.relname, k.conname, pg_get_constraintdef(k.oid), k.convalidated
        FROM pg_constraint AS k
        JOIN pg_class AS c ON c.oid = k.conrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS}
    """,
    "indexes": f"""
        SELECT n.nspname || '.' || c.relname, i.relname, pg_get_indexdef(x.indexrelid), x.indisvalid
        FROM pg_index AS x
        JOIN pg_class AS i ON i.oid = x.indexrelid
        JOIN pg_class AS c ON c.oid = x.indrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS}
    """,
    "triggers": f"""
        SELECT n.nspname || '.' || c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
        FROM pg_trigger AS t
        JOIN pg_class AS c ON c.oid = t.tgrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND {_USER_SCHEMAS}
    """,
    "functions": f"""
        SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               pg_get_function_result(p.oid), md5(p.prosrc)
        FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE {_USER_SCHEMAS}
    """,
    "types": f"""
        SELECT n.nspname || '.' || t.typname, t.typtype::text,
               CASE t.typtype
                   WHEN 'e' THEN (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
                                  FROM pg_enum AS e WHERE e.enumtypid = t.oid)
                   WHEN 'd' THEN format_type(t.typbasetype, t.typtypmod) || coalesce(
                       (SELECT ' ' || string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)
                        FROM pg_constraint AS k WHERE k.contypid = t.oid), '')
               END
        FROM pg_type AS t JOIN pg_namespace AS n ON n.oid = t.typnamespace
        WHERE (t.typtype IN ('e', 'd', 'r', 'm')
               OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
              AND {_USER_SCHEMAS}
    """,
}

_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view",
          "f": "foreign table", "S": "sequence"}


def catalog(conn: psycopg.Connection, *, ledger_schema: str) -> Catalog:
    """Every user-visible schema object outside the ledger schema, keyed by readable names."""
    params = {"ledger": ledger_schema}
    rows = {name: conn.execute(query, params).fetchall() for name, query in _QUERIES.items()}
    snap: Catalog = {}

    def relation(name: str) -> dict[str, Any]:
        entry: dict[str, Any] = snap.setdefault(f"relation {name}", {})
        return entry

    for name, kind, definition in rows["relations"]:
        rel = relation(name)
        rel["kind"] = _KINDS[kind]
        if definition is not None:
            rel["definition"] = definition
    for table, col, type_, notnull, default, identity, generated, collation in rows["columns"]:
        relation(table)[f"column {col}"] = {
            "type": type_, "not null": notnull, "default": default,
            "identity": identity or None, "generated": generated or None, "collation": collation,
        }
    for table, con, definition, validated in rows["constraints"]:
        relation(table)[f"constraint {con}"] = {"definition": definition, "validated": validated}
    for table, index, definition, valid in rows["indexes"]:
        relation(table)[f"index {index}"] = {"definition": definition, "valid": valid}
    for table, trigger, definition, enabled in rows["triggers"]:
        relation(table)[f"trigger {trigger}"] = {"definition": definition, "enabled": enabled}
    for signature, result, body in rows["functions"]:
        snap[f"function {signature}"] = {"returns": result, "body md5": body}
    for name, kind, definition in rows["types"]:
        snap[f"type {name}"] = {"kind": kind, "definition": definition}
    return snap


def capture(conn: psycopg.Connection, up: SqlFile, *, ledger_schema: str) -> Baseline:
    """Row counts of the tables `up` touches and the whole catalog, as of now."""
    captured_at = conn.execute("SELECT clock_timestamp()").fetchone()
    assert captured_at is not None
    return Baseline(
        captured_at=captured_at[0],
        row_counts=row_counts(
            conn, existing_tables(conn, [sql_name(conn, r) for r in touched_relations(up)])
        ),
        catalog=catalog(conn, ledger_schema=ledger_schema),
    )


def load_temp_table(conn: psycopg.Connection, baseline: Baseline) -> None:
    """The baseline as TEMP table `migration_baseline` for the validation file to read."""
    conn.execute("DROP TABLE IF EXISTS pg_temp.migration_baseline")
    conn.execute(
        "CREATE TEMP TABLE migration_baseline (table_name text PRIMARY KEY, row_count bigint NOT NULL, "
        "captured_at timestamptz NOT NULL)"
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO pg_temp.migration_baseline VALUES (%s, %s, %s)",
            [(table, count, baseline.captured_at) for table, count in baseline.row_counts.items()],
        )


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def diff(before: Catalog, after: Catalog, _path: str = "") -> list[str]:
    """Human-readable differences between two snapshots; empty when they are equal."""
    lines: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        where = f"{_path} › {key}" if _path else key
        if key not in after:
            lines.append(f"{where}: missing (was there before)")
        elif key not in before:
            lines.append(f"{where}: added (was not there before)")
        elif isinstance(before[key], dict) and isinstance(after[key], dict):
            lines.extend(diff(before[key], after[key], where))
        elif before[key] != after[key]:
            lines.append(f"{where}: {_show(before[key])} → now {_show(after[key])}")
    return lines
