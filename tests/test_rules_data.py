"""Data-change rules (LG4xx): unbatched DML, hand-written batch loops, bulk copies, batch directives."""

from __future__ import annotations

from pathlib import Path

import pytest
from rulecase import codes, found, lint_migration

SEED = Path(__file__).parent / "fixtures" / "seed_original_add_customer_tier.sql"


@pytest.mark.parametrize("sql", [
    "UPDATE customers SET tier = 'bronze';",
    "UPDATE customers SET tier = 'bronze' WHERE tier IS NULL;",
    "UPDATE customers SET tier = 'gold' WHERE status = 'active';",  # equality on a non-key column
    "UPDATE customers SET tier = 'gold' WHERE id > 1000;",  # one-sided range
    "UPDATE customers SET tier = 'gold' WHERE id = 1 OR tier IS NULL;",  # one OR branch is unbounded
    "UPDATE customers c SET tier = t.tier FROM tiers t WHERE t.customer_id = c.id;",  # a join is not a pin
    "DELETE FROM sessions WHERE expires_at < now();",
    "WITH stale AS (SELECT id FROM sessions) DELETE FROM sessions s USING stale WHERE s.id = stale.id;",
])
def test_unbounded_dml_on_an_existing_table_is_flagged(tmp_path: Path, sql: str) -> None:
    findings = lint_migration(tmp_path, sql)
    assert codes(findings) == ["LG401"]
    assert "-- lockgate:batch" in findings[0].message


@pytest.mark.parametrize("sql", [
    "UPDATE customers SET tier = 'gold' WHERE id = 42;",
    "UPDATE customers SET tier = 'gold' WHERE 42 = id;",
    "UPDATE customers SET tier = 'gold' WHERE id IN (1, 2, 3);",
    "UPDATE orders SET total_cents = 0 WHERE customer_id = $1 AND total_cents < 0;",
    "UPDATE orders SET total_cents = 0 WHERE order_uuid = '5a0c…'::uuid;",
    "UPDATE customers SET tier = 'gold' WHERE id = ANY('{1,2}');",
    "UPDATE customers SET tier = 'gold' WHERE id BETWEEN 1 AND 1000;",
    "UPDATE customers SET tier = 'gold' WHERE id >= 1 AND id < 1000 AND tier IS NULL;",
    "UPDATE customers SET tier = 'gold' WHERE id = 1 OR id = 2;",
    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions ORDER BY id LIMIT 100);",
])
def test_point_and_bounded_changes_are_not_flagged(tmp_path: Path, sql: str) -> None:
    assert codes(lint_migration(tmp_path, sql)) == []


def test_batch_directive_makes_a_full_table_update_fine(tmp_path: Path) -> None:
    sql = ("-- backfill\n-- lockgate:batch size=500 key=id pause=10ms\n-- (resumable)\n"
           "UPDATE customers SET tier = 'x';\n")
    assert codes(lint_migration(tmp_path, sql)) == []


def test_table_created_in_the_same_migration_is_fine(tmp_path: Path) -> None:
    sql = "CREATE TABLE tiers (id bigint PRIMARY KEY, name text);\nUPDATE tiers SET name = upper(name);\n" \
          "DELETE FROM tiers;\n"
    assert codes(lint_migration(tmp_path, sql)) == []


def test_down_file_dml_is_checked_and_knows_the_up_tables(tmp_path: Path) -> None:
    up = "CREATE TABLE tiers (id bigint PRIMARY KEY, name text);\nALTER TABLE customers ADD COLUMN tier text;\n"
    down = "DELETE FROM tiers;\nUPDATE customers SET email = lower(email);\nALTER TABLE customers DROP COLUMN tier;\n"
    findings = lint_migration(tmp_path, up, down)
    assert [(f.rule, f.line) for f in findings] == [("LG401", 2)]
    assert findings[0].path.name.endswith(".down.sql")


def test_dml_in_a_do_block_is_flagged_at_its_own_line(tmp_path: Path) -> None:
    sql = "DO $$\nBEGIN\n    RAISE NOTICE 'go';\n    DELETE FROM sessions;\nEND $$;\n"
    assert [(f.rule, f.line) for f in lint_migration(tmp_path, sql)] == [("LG401", 4)]


def test_plpgsql_variables_count_as_values_in_do_blocks(tmp_path: Path) -> None:
    sql = ("DO $$\nDECLARE\n    target bigint := 7;\nBEGIN\n"
           "    UPDATE customers SET tier = 'gold' WHERE id = target;\nEND $$;\n")
    assert codes(lint_migration(tmp_path, sql)) == []


def test_function_bodies_run_later_and_are_not_flagged(tmp_path: Path) -> None:
    sql = ("CREATE FUNCTION purge_sessions() RETURNS void LANGUAGE plpgsql AS $$\n"
           "BEGIN\n    DELETE FROM sessions WHERE expires_at < now();\nEND $$;\n")
    assert codes(lint_migration(tmp_path, sql)) == []


def test_ignore_directive_silences_the_finding(tmp_path: Path) -> None:
    sql = "-- lockgate:ignore require-batched-update -- table has 12 rows\nUPDATE flags SET enabled = true;\n"
    assert codes(lint_migration(tmp_path, sql)) == []


def test_seed_style_loop_gets_the_batch_directive_message(tmp_path: Path) -> None:
    findings = lint_migration(tmp_path, SEED.read_text())
    loop = found(findings, "LG402")
    assert [(f.line, f.column) for f in loop] == [(13, 9)]  # the UPDATE inside the LOOP
    assert "-- lockgate:batch" in loop[0].message
    # The LIMIT-ed slice is bounded, so it is not also reported as an unbatched update.
    assert found(findings, "LG401") == []


def test_batch_loop_in_a_procedure_is_flagged_too(tmp_path: Path) -> None:
    sql = ("CREATE PROCEDURE backfill() LANGUAGE plpgsql AS $$\nBEGIN\n    LOOP\n"
           "        DELETE FROM sessions WHERE ctid = ANY(ARRAY(SELECT ctid FROM sessions LIMIT 1000));\n"
           "        EXIT WHEN NOT FOUND;\n        COMMIT;\n    END LOOP;\nEND $$;\n")
    assert [(f.rule, f.line) for f in lint_migration(tmp_path, sql)] == [("LG402", 4)]


def test_top_level_limit_slice_is_not_a_loop(tmp_path: Path) -> None:
    sql = "UPDATE customers SET tier = 'x' WHERE id IN (SELECT id FROM customers WHERE tier IS NULL LIMIT 10);\n"
    assert codes(lint_migration(tmp_path, sql)) == []


@pytest.mark.parametrize(("sql", "flagged"), [
    ("INSERT INTO orders_archive SELECT * FROM orders;", True),
    ("INSERT INTO orders_archive SELECT o.* FROM orders o JOIN customers c ON c.id = o.customer_id;", True),
    ("INSERT INTO orders_archive SELECT * FROM orders WHERE id BETWEEN 1 AND 1000;", False),
    ("INSERT INTO orders_archive SELECT * FROM orders ORDER BY id LIMIT 1000;", False),
    ("INSERT INTO tiers (name) VALUES ('gold');", False),
    ("INSERT INTO tiers (name) SELECT 'gold';", False),
    ("WITH moved AS (DELETE FROM orders WHERE id = 5 RETURNING *) INSERT INTO orders_archive SELECT * FROM moved;",
     False),
    ("CREATE TABLE staging (id bigint);\nINSERT INTO orders_archive SELECT id FROM staging;", False),
])
def test_insert_select_copies(tmp_path: Path, sql: str, flagged: bool) -> None:
    findings = found(lint_migration(tmp_path, sql), "LG403")
    assert bool(findings) is flagged
    assert all(f.severity == "warning" for f in findings)


@pytest.mark.parametrize(("sql", "line", "words"), [
    ("-- lockgate:batch\nINSERT INTO tiers SELECT * FROM old_tiers WHERE id = 1;", 1, "not an UPDATE or DELETE"),
    ("-- lockgate:batch\nALTER TABLE t ADD COLUMN c text;", 1, "ALTER TABLE"),
    ("-- lockgate:batch key=id\nDELETE FROM sessions RETURNING id;", 1, "RETURNING"),
    ("-- lockgate:batch\nUPDATE t SET a = 1 WHERE id IN (SELECT id FROM t LIMIT 10);", 1, "LIMIT"),
    ("BEGIN;\n-- lockgate:batch\nUPDATE t SET a = 1;\nCOMMIT;", 2, "BEGIN … COMMIT"),
    ("DO $$\nBEGIN\n    -- lockgate:batch\n    UPDATE t SET a = 1;\nEND $$;", 3, "PL/pgSQL body"),
    ("-- lockgate:batch size=10\n\nUPDATE t SET a = 1 WHERE id = 3;", 1, "attached to no statement"),
    ("UPDATE t SET a = 1 WHERE id = 3;\n-- lockgate:batch size=10\n", 2, "attached to no statement"),
])
def test_batch_directive_that_cannot_batch_is_flagged_at_its_line(
    tmp_path: Path, sql: str, line: int, words: str
) -> None:
    misplaced = found(lint_migration(tmp_path, sql), "LG404")
    assert [(f.line, f.column) for f in misplaced] == [(line, 1)]
    assert words in misplaced[0].message


def test_well_placed_batch_directive_is_not_flagged(tmp_path: Path) -> None:
    sql = ("-- lockgate:batch size=1000 key=id\n"
           "WITH t AS (SELECT customer_id, sum(total_cents) s FROM orders GROUP BY 1)\n"
           "UPDATE customers c SET tier = 'gold' FROM t WHERE t.customer_id = c.id AND t.s > 100;\n")
    assert codes(lint_migration(tmp_path, sql)) == []


def test_example_migration_set_is_clean() -> None:
    from lockgate.hooks.lint import lint_paths

    example = Path(__file__).resolve().parents[1] / "migrations"
    result = lint_paths(sorted(example.glob("*.sql")), pg_version=15)
    assert [str(f) for f in result.findings] == []
