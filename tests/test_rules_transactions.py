"""Transaction rules (LG6xx): COMMIT in DO, non-transactional statements, BEGIN/COMMIT, enums, LOCK, EXECUTE."""

from __future__ import annotations

from pathlib import Path

import pytest
from rulecase import codes, found, lint_migration

from lockgate.hooks.rules.base import Finding

SEED = Path(__file__).parent / "fixtures" / "seed_original_add_customer_tier.sql"
COMMIT_LOOP = "DO $$\nBEGIN\n    UPDATE orders SET n = 0 WHERE id < 10;\n    COMMIT;\nEND $$;"


def lg6(findings: list[Finding]) -> list[str]:
    return [c for c in codes(findings) if c.startswith("LG6")]


def test_seed_script_commit_in_do_is_flagged_at_the_commit(tmp_path: Path) -> None:
    findings = lint_migration(tmp_path, SEED.read_text())
    (commit,) = found(findings, "LG601")
    assert commit.line == 24 and "invalid transaction termination" in commit.message
    (begin,) = found(findings, "LG603")
    assert begin.line == 3


def test_commit_in_do_depends_on_how_the_file_runs(tmp_path: Path) -> None:
    assert lg6(lint_migration(tmp_path / "tx", COMMIT_LOOP)) == ["LG601"]
    assert lg6(lint_migration(tmp_path / "auto", f"-- lockgate:no-transaction\n{COMMIT_LOOP}")) == []
    # A CONCURRENTLY statement makes the engine run the file in autocommit as well.
    mixed = f"CREATE INDEX CONCURRENTLY orders_n_idx ON orders (n);\n{COMMIT_LOOP}"
    assert lg6(lint_migration(tmp_path / "mixed", mixed)) == []


def test_rollback_in_do_and_commit_in_a_function(tmp_path: Path) -> None:
    rollback = "DO $$\nBEGIN\n    ROLLBACK;\nEND $$;"
    assert lg6(lint_migration(tmp_path / "r", rollback)) == ["LG601"]
    function = ("-- lockgate:no-transaction\nCREATE FUNCTION tick() RETURNS void LANGUAGE plpgsql AS $$\n"
                "BEGIN\n    COMMIT;\nEND $$;")
    (finding,) = found(lint_migration(tmp_path / "f", function), "LG601")
    assert "a function cannot COMMIT" in finding.message


def test_commit_in_plpgsql_before_pg11_is_flagged_even_in_autocommit(tmp_path: Path) -> None:
    (finding,) = found(lint_migration(tmp_path, f"-- lockgate:no-transaction\n{COMMIT_LOOP}", pg_version=10), "LG601")
    assert "before PostgreSQL 11" in finding.message


def test_procedure_that_commits_is_flagged_where_it_is_called(tmp_path: Path) -> None:
    procedure = "CREATE PROCEDURE tick() LANGUAGE plpgsql AS $$\nBEGIN\n    COMMIT;\nEND $$;\n"
    assert lg6(lint_migration(tmp_path / "defined", procedure)) == []
    called = lint_migration(tmp_path / "called", f"{procedure}CALL tick();")
    (finding,) = found(called, "LG601")
    assert finding.line == 5 and "procedure tick" in finding.message
    assert lg6(lint_migration(tmp_path / "other", f"{procedure}CALL tock();")) == []


def test_non_transactional_statements_in_begin_or_do(tmp_path: Path) -> None:
    begin = "BEGIN;\nDROP INDEX CONCURRENTLY orders_n_idx;\nCOMMIT;"
    assert "LG602" in codes(lint_migration(tmp_path / "b", begin))
    do_block = "DO $$\nBEGIN\n    VACUUM orders;\nEND $$;"
    (finding,) = found(lint_migration(tmp_path / "d", do_block), "LG602")
    assert "cannot be executed from a DO block" in finding.message and finding.line == 3
    after_commit = "BEGIN;\nSELECT 1;\nCOMMIT;\nCREATE INDEX CONCURRENTLY orders_n_idx ON orders (n);"
    assert "LG602" not in codes(lint_migration(tmp_path / "a", after_commit))


def test_enum_add_value_in_a_transaction_block_depends_on_version(tmp_path: Path) -> None:
    sql = "BEGIN;\nALTER TYPE order_status ADD VALUE 'refunded';\nCOMMIT;"
    assert "LG602" in codes(lint_migration(tmp_path / "11", sql, pg_version=11))
    assert "LG602" not in codes(lint_migration(tmp_path / "12", sql, pg_version=12))


@pytest.mark.parametrize(("sql", "flagged"), [
    ("BEGIN;\nSELECT 1;\nCOMMIT;", ["LG603"]),
    ("START TRANSACTION;\nCREATE TABLE t (id int);", ["LG603"]),
    ("BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;", ["LG603", "LG603"]),
    ("SELECT 1;\nROLLBACK;", ["LG603"]),
    ("SELECT 1;\nEND;", ["LG603"]),
    ("SELECT 1;\nPREPARE TRANSACTION 'x';", ["LG603"]),
    ("SAVEPOINT a;\nSELECT 1;\nROLLBACK TO SAVEPOINT a;\nRELEASE SAVEPOINT a;", []),
])
def test_explicit_transaction_control(tmp_path: Path, sql: str, flagged: list[str]) -> None:
    assert lg6(lint_migration(tmp_path, sql)) == flagged


def test_begin_in_an_autocommit_file_says_split(tmp_path: Path) -> None:
    sql = "-- lockgate:no-transaction\nBEGIN;\nSELECT 1;\nCOMMIT;"
    (finding,) = found(lint_migration(tmp_path, sql), "LG603")
    assert "statement by statement" in finding.message


@pytest.mark.parametrize("use", [
    "INSERT INTO orders (status) VALUES ('refunded');",
    "UPDATE orders SET status = 'refunded' WHERE id = 1;",
    "SELECT count(*) FROM orders WHERE status = 'refunded';",
    "ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'refunded';",
    "CREATE INDEX CONCURRENTLY orders_refunded_idx ON orders (id) WHERE status = 'refunded';",
    "DO $$\nBEGIN\n    UPDATE orders SET status = 'refunded' WHERE id = 1;\nEND $$;",
])
def test_new_enum_value_used_in_the_same_transaction(tmp_path: Path, use: str) -> None:
    up = f"ALTER TYPE order_status ADD VALUE 'refunded';\n{use}"
    expected = [] if "CONCURRENTLY" in use else ["LG604"]  # the CONCURRENTLY file runs in autocommit
    assert [c for c in lg6(lint_migration(tmp_path, up)) if c == "LG604"] == expected


def test_new_enum_value_after_commit_or_in_a_new_type_is_fine(tmp_path: Path) -> None:
    autocommit = "-- lockgate:no-transaction\nALTER TYPE s ADD VALUE 'x';\nUPDATE orders SET status = 'x' WHERE id = 1;"
    assert "LG604" not in codes(lint_migration(tmp_path / "a", autocommit))
    new_type = "CREATE TYPE s AS ENUM ('a');\nALTER TYPE s ADD VALUE 'x';\nSELECT 'x'::s;"
    assert "LG604" not in codes(lint_migration(tmp_path / "n", new_type))
    other_label = "ALTER TYPE s ADD VALUE 'x';\nUPDATE orders SET status = 'y' WHERE id = 1;"
    assert "LG604" not in codes(lint_migration(tmp_path / "o", other_label))


def test_lock_table_modes(tmp_path: Path) -> None:
    (strong,) = found(lint_migration(tmp_path / "ae", "LOCK TABLE orders, customers;"), "LG605")
    assert "orders, customers" in strong.message and "ACCESS EXCLUSIVE" in strong.message
    (share,) = found(lint_migration(tmp_path / "s", "LOCK TABLE orders IN SHARE MODE;"), "LG605")
    assert "blocks writes" in share.message
    assert lg6(lint_migration(tmp_path / "w", "LOCK TABLE orders IN ROW SHARE MODE;")) == []
    assert lg6(lint_migration(tmp_path / "n", "CREATE TABLE t (id int);\nLOCK TABLE t;")) == []


def test_dynamic_sql_only_in_do_blocks(tmp_path: Path) -> None:
    do_block = "DO $$\nDECLARE r record;\nBEGIN\n    FOR r IN EXECUTE 'SELECT 1 AS n' LOOP\n    END LOOP;\nEND $$;"
    (finding,) = found(lint_migration(tmp_path / "d", do_block), "LG606")
    assert finding.line == 4
    function = ("CREATE FUNCTION f(t text) RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n"
                "    EXECUTE format('TRUNCATE %I', t);\nEND $$;")
    assert "LG606" not in codes(lint_migration(tmp_path / "f", function))


def test_ignore_on_a_do_block_covers_its_body(tmp_path: Path) -> None:
    up = f"-- lockgate:ignore LG601 -- run by hand with psql in autocommit\n{COMMIT_LOOP}"
    assert "LG601" not in codes(lint_migration(tmp_path, up))


def test_down_files_are_checked_for_transaction_control(tmp_path: Path) -> None:
    findings = lint_migration(tmp_path, "ALTER TABLE orders ADD COLUMN n int;",
                              "BEGIN;\nALTER TABLE orders DROP COLUMN n;\nCOMMIT;")
    assert codes(findings, kind="down") == ["LG603"]
