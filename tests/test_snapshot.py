"""Baseline: the tables a migration touches, exact row counts, catalog snapshots and their diff."""

from __future__ import annotations

from pathlib import Path

import psycopg

from lockgate.controller import snapshot
from lockgate.hooks.sqlmodel import parse_sql

UP = """
ALTER TABLE customers ADD COLUMN tier text;
UPDATE sales.orders SET total = 0 FROM customers AS c WHERE c.id = orders.customer_id;
CREATE INDEX CONCURRENTLY i ON "Mixed Case" (id);
CREATE TABLE brand_new (id int);
DROP TABLE old_stuff;
DO $$ BEGIN DELETE FROM audit_log; END $$;
"""


def test_touched_relations_come_from_the_parse_tree_including_plpgsql() -> None:
    relations = snapshot.touched_relations(parse_sql(Path("m.up.sql"), UP))
    assert [str(r) for r in relations] == [
        "customers", "sales.orders", "Mixed Case", "brand_new", "old_stuff", "audit_log",
    ]


def test_baseline_counts_exactly_the_existing_touched_tables(conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA sales")
    conn.execute("CREATE TABLE customers (id int)")
    conn.execute("CREATE TABLE sales.orders (customer_id int, total int)")
    conn.execute('CREATE TABLE "Mixed Case" (id int)')
    conn.execute("INSERT INTO customers SELECT generate_series(1, 1234)")
    conn.execute("INSERT INTO sales.orders SELECT g, g FROM generate_series(1, 10) AS g")
    baseline = snapshot.capture(conn, parse_sql(Path("m.up.sql"), UP), ledger_schema="lockgate")
    assert baseline.row_counts == {"customers": 1234, "sales.orders": 10, '"Mixed Case"': 0}
    with conn.transaction():
        snapshot.load_temp_table(conn, baseline)
        rows = conn.execute(
            "SELECT table_name, row_count, captured_at = %s FROM migration_baseline ORDER BY 1",
            (baseline.captured_at,),
        ).fetchall()
    assert rows == [('"Mixed Case"', 0, True), ("customers", 1234, True), ("sales.orders", 10, True)]


def test_the_catalog_diff_names_each_difference_and_is_empty_when_restored(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, email text)")
    conn.execute("CREATE TYPE mood AS ENUM ('ok')")
    conn.execute("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    before = snapshot.catalog(conn, ledger_schema="lockgate")
    conn.execute("ALTER TABLE t ADD COLUMN tier text DEFAULT 'bronze'")
    conn.execute("ALTER TABLE t ALTER COLUMN email SET NOT NULL")
    conn.execute("ALTER TABLE t ADD CONSTRAINT tier_ok CHECK (tier <> '') NOT VALID")
    conn.execute("CREATE INDEX t_tier ON t (tier)")
    conn.execute("ALTER TYPE mood ADD VALUE 'great'")
    conn.execute("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2'")
    after = snapshot.catalog(conn, ledger_schema="lockgate")
    lines = snapshot.diff(before, after)
    assert "relation public.t › column tier: added (was not there before)" in lines
    assert "relation public.t › column email › not null: no → now yes" in lines
    assert "relation public.t › constraint tier_ok: added (was not there before)" in lines
    assert "relation public.t › index t_tier: added (was not there before)" in lines
    assert "type public.mood › definition: ok → now ok, great" in lines
    assert any(line.startswith("function public.f() › body md5:") for line in lines)
    conn.execute("ALTER TABLE t VALIDATE CONSTRAINT tier_ok")
    assert "relation public.t › constraint tier_ok › validated: no → now yes" in snapshot.diff(
        after, snapshot.catalog(conn, ledger_schema="lockgate")
    )
    for undo in ("DROP INDEX t_tier", "ALTER TABLE t DROP COLUMN tier",
                 "ALTER TABLE t ALTER COLUMN email DROP NOT NULL", "DROP TYPE mood", "CREATE TYPE mood AS ENUM ('ok')",
                 "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'"):
        conn.execute(undo)
    assert snapshot.diff(before, snapshot.catalog(conn, ledger_schema="lockgate")) == []


def test_the_ledger_schema_is_left_out_of_the_snapshot(conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA lockgate")
    conn.execute("CREATE TABLE lockgate.migrations (version text)")
    assert snapshot.catalog(conn, ledger_schema="lockgate") == {}
