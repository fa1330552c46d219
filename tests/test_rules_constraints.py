"""Constraint rules (LG2xx): NOT VALID, USING INDEX, VALIDATE timing, SET NOT NULL, EXCLUDE."""

from __future__ import annotations

from pathlib import Path

import pytest
from rulecase import codes, found, lint_migration

from lockgate.hooks.lint import lint_paths
from lockgate.hooks.rules.base import Finding

SEED = Path(__file__).parent / "fixtures" / "seed_original_add_customer_tier.sql"
EXAMPLE = Path(__file__).parent.parent / "migrations"


def lg2(findings: list[Finding]) -> list[str]:
    return [c for c in codes(findings) if c.startswith("LG2")]


@pytest.mark.parametrize(("sql", "code"), [
    ("ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers;", "LG201"),
    ("ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total_cents >= 0) NOT DEFERRABLE;", "LG201"),
    ("ALTER TABLE orders ADD COLUMN discount int CHECK (discount >= 0);", "LG201"),
    ("ALTER TABLE orders ADD COLUMN store_id int DEFAULT 1 REFERENCES stores;", "LG201"),
    ("ALTER TABLE orders ADD PRIMARY KEY (id);", "LG202"),
    ("ALTER TABLE orders ADD COLUMN ref text UNIQUE;", "LG202"),
    ("ALTER TABLE orders ADD COLUMN ref text CONSTRAINT orders_ref_key UNIQUE;", "LG202"),
    ("ALTER TABLE orders ALTER COLUMN total_cents SET NOT NULL;", "LG204"),
    ("ALTER TABLE bookings ADD EXCLUDE USING gist (room WITH =, during WITH &&);", "LG205"),
])
def test_locking_constraints_on_existing_tables_are_flagged(tmp_path: Path, sql: str, code: str) -> None:
    assert lg2(lint_migration(tmp_path, sql)) == [code]


@pytest.mark.parametrize("sql", [
    "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers NOT VALID;",
    "ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total_cents >= 0) NOT VALID;",
    "ALTER TABLE orders ADD COLUMN store_id int REFERENCES stores;",
    "ALTER TABLE orders ADD COLUMN store_id int DEFAULT NULL REFERENCES stores;",
    "ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_id_idx;",
    "ALTER TABLE orders DROP CONSTRAINT orders_total_check, ADD CONSTRAINT orders_ref_key UNIQUE USING INDEX r;",
    "ALTER TABLE orders ALTER COLUMN total_cents DROP NOT NULL;",
    "ALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;",
    "CREATE TABLE refunds (id bigint PRIMARY KEY, order_id bigint REFERENCES orders, CHECK (id > 0));",
])
def test_safe_forms_are_not_flagged(tmp_path: Path, sql: str) -> None:
    assert lg2(lint_migration(tmp_path, sql)) == []


def test_constraints_on_a_table_created_in_the_migration_are_fine(tmp_path: Path) -> None:
    up = """
CREATE TABLE refunds (id bigint, order_id bigint, cents bigint, during tstzrange);
ALTER TABLE refunds ADD PRIMARY KEY (id);
ALTER TABLE refunds ADD FOREIGN KEY (order_id) REFERENCES orders;
ALTER TABLE refunds ADD CONSTRAINT refunds_cents_check CHECK (cents > 0);
ALTER TABLE refunds ALTER COLUMN cents SET NOT NULL;
ALTER TABLE refunds ADD EXCLUDE USING gist (during WITH &&);
"""
    assert lg2(lint_migration(tmp_path, up)) == []


def test_foreign_key_message_names_both_tables_and_the_lock(tmp_path: Path) -> None:
    (finding,) = found(lint_migration(tmp_path, "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES "
                                                "sales.customers;"), "LG201")
    assert "orders and sales.customers SHARE ROW EXCLUSIVE" in finding.message and "NOT VALID" in finding.message


def test_validate_in_the_same_transaction_as_the_not_valid_add(tmp_path: Path) -> None:
    up = ("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers NOT VALID;\n"
          "ALTER TABLE orders VALIDATE CONSTRAINT fk;")
    assert lg2(lint_migration(tmp_path, up)) == ["LG203"]


def test_validate_in_the_same_statement_as_the_add(tmp_path: Path) -> None:
    up = "ALTER TABLE orders ADD CONSTRAINT ck CHECK (total_cents >= 0) NOT VALID, VALIDATE CONSTRAINT ck;"
    assert lg2(lint_migration(tmp_path, up)) == ["LG203"]


@pytest.mark.parametrize("up", [
    # autocommit: each statement commits before the next
    "-- lockgate:no-transaction\nALTER TABLE orders ADD CONSTRAINT ck CHECK (total_cents >= 0) NOT VALID;\n"
    "ALTER TABLE orders VALIDATE CONSTRAINT ck;",
    # an autocommit file because of a CONCURRENTLY statement
    "ALTER TABLE orders ADD CONSTRAINT ck CHECK (total_cents >= 0) NOT VALID;\n"
    "CREATE INDEX CONCURRENTLY orders_ref_idx ON orders (ref);\nALTER TABLE orders VALIDATE CONSTRAINT ck;",
    # another constraint of the same name on another table
    "ALTER TABLE refunds ADD CONSTRAINT ck CHECK (cents > 0) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT ck;",
])
def test_validate_in_a_later_transaction_is_fine(tmp_path: Path, up: str) -> None:
    assert "LG203" not in codes(lint_migration(tmp_path, up))


def test_set_not_null_accepts_the_pg12_pattern_in_one_migration(tmp_path: Path) -> None:
    up = """
ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_not_null;
ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;
ALTER TABLE customers DROP CONSTRAINT customers_tier_not_null;
"""
    assert lg2(lint_migration(tmp_path / "12", up, pg_version=12)) == []
    (finding,) = found(lint_migration(tmp_path / "11", up, pg_version=11), "LG204")
    assert "PostgreSQL 11 scans even with a valid CHECK" in finding.message


def test_set_not_null_wants_the_check_on_that_column(tmp_path: Path) -> None:
    up = """
ALTER TABLE customers ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;
ALTER TABLE customers VALIDATE CONSTRAINT email_nn;
ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;
"""
    (finding,) = found(lint_migration(tmp_path, up), "LG204")
    assert "customers.tier" in finding.message


def test_set_not_null_after_a_check_that_is_only_not_valid(tmp_path: Path) -> None:
    up = ("ALTER TABLE customers ADD CONSTRAINT tier_nn CHECK (tier IS NOT NULL) NOT VALID;\n"
          "ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;")
    assert "LG204" in codes(lint_migration(tmp_path, up))


def test_set_not_null_after_a_validated_check_on_another_table(tmp_path: Path) -> None:
    up = ("ALTER TABLE orders VALIDATE CONSTRAINT tier_nn;\n"
          "ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;")
    assert "LG204" in codes(lint_migration(tmp_path, up))


def test_set_not_null_message_on_pg18_offers_not_null_not_valid(tmp_path: Path) -> None:
    (finding,) = found(lint_migration(tmp_path, "ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;",
                                      pg_version=18), "LG204")
    assert "NOT NULL tier NOT VALID" in finding.message


def test_pg18_not_null_constraint_without_not_valid_scans(tmp_path: Path) -> None:
    up = "ALTER TABLE customers ADD CONSTRAINT tier_nn NOT NULL tier;"
    assert lg2(lint_migration(tmp_path, up, pg_version=18)) == ["LG204"]


def test_seed_script_is_flagged_for_its_validating_check(tmp_path: Path) -> None:
    findings = lint_migration(tmp_path, SEED.read_text())
    (check,) = found(findings, "LG201")
    assert check.line == 29 and "customers_tier_check" in check.message


def test_ignore_file_silences_the_rule_with_a_reason(tmp_path: Path) -> None:
    up = ("-- lockgate:ignore-file LG201 -- orders is empty until launch\n"
          "ALTER TABLE orders ADD CONSTRAINT ck CHECK (total_cents >= 0);\n"
          "ALTER TABLE orders ADD CONSTRAINT uq UNIQUE (ref);")
    assert lg2(lint_migration(tmp_path, up)) == ["LG202"]


@pytest.mark.parametrize("pg_version", [10, 12, 15, 18])
def test_the_worked_example_lints_clean(pg_version: int) -> None:
    """migrations/: the tier CHECK added NOT VALID, validated by the next migration; a CONCURRENTLY index."""
    result = lint_paths(sorted(EXAMPLE.glob("*.sql")), pg_version=pg_version)
    assert [str(f) for f in result.findings] == []
