"""Blocking index work (LG1xx): CREATE/DROP INDEX, REINDEX, REFRESH MATERIALIZED VIEW, DETACH PARTITION."""

from __future__ import annotations

from pathlib import Path

import pytest
from rulecase import codes, found, lint_migration

from lockgate.hooks.rules.base import Finding


def lg1(findings: list[Finding]) -> list[str]:
    return [c for c in codes(findings) if c.startswith("LG1")]


@pytest.mark.parametrize(("sql", "code"), [
    ("CREATE INDEX ON orders (created_at);", "LG101"),
    ("CREATE UNIQUE INDEX orders_ref_key ON orders (ref);", "LG101"),
    ("CREATE INDEX orders_open_idx ON orders (id) WHERE closed_at IS NULL;", "LG101"),
    ("DROP INDEX IF EXISTS orders_created_at_idx;", "LG102"),
    ("DROP INDEX sales.orders_created_at_idx;", "LG102"),
    ("REINDEX TABLE orders;", "LG103"),
    ("REINDEX SCHEMA sales;", "LG103"),
    ("REFRESH MATERIALIZED VIEW sales.daily_totals WITH DATA;", "LG104"),
    ("ALTER TABLE measurements DETACH PARTITION measurements_2023;", "LG105"),
])
def test_blocking_index_work_on_existing_objects_is_flagged(tmp_path: Path, sql: str, code: str) -> None:
    assert lg1(lint_migration(tmp_path, sql)) == [code]


@pytest.mark.parametrize("sql", [
    "-- lockgate:no-transaction\nCREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);",
    "-- lockgate:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;",
    "-- lockgate:no-transaction\nREINDEX (CONCURRENTLY) TABLE orders;",
    "-- lockgate:no-transaction\nREINDEX TABLE CONCURRENTLY orders;",
    "REINDEX SYSTEM shop;",
    "REFRESH MATERIALIZED VIEW CONCURRENTLY daily_totals;",
    "ALTER TABLE measurements DETACH PARTITION measurements_2023 FINALIZE;",
    "ALTER TABLE measurements ATTACH PARTITION measurements_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');",
    "DROP TABLE IF EXISTS old_orders;",
    "DROP TRIGGER IF EXISTS orders_audit ON orders;",
])
def test_concurrent_and_unrelated_forms_are_not_flagged(tmp_path: Path, sql: str) -> None:
    assert lg1(lint_migration(tmp_path, sql)) == []


def test_objects_created_in_the_same_migration_are_new(tmp_path: Path) -> None:
    up = """
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz);
CREATE INDEX events_at_idx ON events (at);
REINDEX TABLE events;
REINDEX INDEX events_at_idx;
DROP INDEX events_at_idx;
CREATE MATERIALIZED VIEW event_days AS SELECT date_trunc('day', at) AS day FROM events;
REFRESH MATERIALIZED VIEW event_days;
CREATE TABLE readings (at date) PARTITION BY RANGE (at);
ALTER TABLE readings DETACH PARTITION readings_2020;
"""
    assert lg1(lint_migration(tmp_path, up)) == []


def test_a_renamed_new_table_stays_new(tmp_path: Path) -> None:
    up = "CREATE TABLE events_new (id bigint);\nALTER TABLE events_new RENAME TO events;\nCREATE INDEX ON events (id);"
    assert codes(lint_migration(tmp_path, up)) == []


def test_dropping_a_mix_of_new_and_existing_indexes_names_only_the_existing(tmp_path: Path) -> None:
    up = "CREATE INDEX tmp_idx ON events_new_tmp (id);\nDROP INDEX tmp_idx, orders_created_at_idx;"
    up = "CREATE TABLE events_new_tmp (id int);\n" + up
    (finding,) = found(lint_migration(tmp_path, up), "LG102")
    assert "orders_created_at_idx" in finding.message and "tmp_idx," not in finding.message


def test_drop_index_concurrently_mistakes_that_fail_at_run_time(tmp_path: Path) -> None:
    up = "-- lockgate:no-transaction\nDROP INDEX CONCURRENTLY a_idx CASCADE;\nDROP INDEX CONCURRENTLY b_idx, c_idx;"
    messages = [f.message for f in found(lint_migration(tmp_path, up), "LG102")]
    assert len(messages) == 2
    assert "CASCADE" in messages[0] and "one statement per index" in messages[1]


def test_reindex_before_pg12_explains_there_is_no_concurrent_form(tmp_path: Path) -> None:
    (old,) = found(lint_migration(tmp_path / "11", "REINDEX INDEX orders_created_at_idx;", pg_version=11), "LG103")
    assert "no REINDEX CONCURRENTLY" in old.message and "CREATE INDEX CONCURRENTLY" in old.message
    (new,) = found(lint_migration(tmp_path / "12", "REINDEX INDEX orders_created_at_idx;", pg_version=12), "LG103")
    assert "REINDEX INDEX CONCURRENTLY" in new.message


def test_detach_before_pg14_explains_there_is_no_concurrent_form(tmp_path: Path) -> None:
    sql = "ALTER TABLE measurements DETACH PARTITION measurements_2023;"
    (old,) = found(lint_migration(tmp_path / "13", sql, pg_version=13), "LG105")
    assert "no concurrent form" in old.message
    (new,) = found(lint_migration(tmp_path / "14", sql, pg_version=14), "LG105")
    assert "CONCURRENTLY" in new.message and "no concurrent form" not in new.message


def test_index_work_inside_a_do_block_is_seen(tmp_path: Path) -> None:
    up = "DO $$\nBEGIN\n    CREATE INDEX orders_ref_idx ON orders (ref);\nEND $$;"
    (finding,) = found(lint_migration(tmp_path, up), "LG101")
    assert finding.line == 3


def test_ignore_directive_with_a_reason_silences_the_next_statement_only(tmp_path: Path) -> None:
    up = ("-- lockgate:ignore LG102 -- the table is empty in every environment\nDROP INDEX a_idx;\n"
          "DROP INDEX b_idx;")
    findings = found(lint_migration(tmp_path, up), "LG102")
    assert [f.line for f in findings] == [3]


def test_down_file_dropping_the_ups_index_is_not_checked_by_default(tmp_path: Path) -> None:
    up = "-- lockgate:no-transaction\nCREATE INDEX CONCURRENTLY orders_ref_idx ON orders (ref);"
    down = "DROP INDEX orders_ref_idx;"
    assert codes(lint_migration(tmp_path, up, down)) == []
