"""Downs run on production (after a revert or a failed gate) and are linted for what they do there;
validate files are gates and must only read."""

from __future__ import annotations

from pathlib import Path

from lockgate.hooks.lint import lint_paths
from tests.rulecase import VERSION, codes, lint_migration

UP = "ALTER TABLE orders ADD COLUMN note text;\n"


def test_a_down_that_locks_or_rewrites_an_existing_table_is_flagged(tmp_path: Path) -> None:
    down = (
        "ALTER TABLE orders DROP COLUMN note;\n"
        "CREATE INDEX orders_total_idx ON orders (total);\n"
        "ALTER TABLE orders ALTER COLUMN total SET NOT NULL;\n"
        "ALTER TABLE orders ALTER COLUMN total TYPE bigint;\n"
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer_id) REFERENCES customers (id);\n"
        "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
    )

    found = codes(lint_migration(tmp_path, UP, down), kind="down")

    assert found == ["LG101", "LG204", "LG301", "LG201", "LG302"]


def test_a_down_that_only_undoes_its_up_is_clean(tmp_path: Path) -> None:
    up = ("CREATE TABLE coupons (id bigint PRIMARY KEY, code text);\n"
          "CREATE INDEX coupons_code_idx ON coupons (code);\n" + UP)
    down = "ALTER TABLE orders DROP COLUMN note;\nDROP INDEX coupons_code_idx;\nDROP TABLE coupons;\n"

    assert codes(lint_migration(tmp_path, up, down), kind="down") == []


def test_style_rules_do_not_read_downs(tmp_path: Path) -> None:
    # Putting an old column back as it was is the down's job, whatever its type.
    down = "ALTER TABLE orders DROP COLUMN note;\nALTER TABLE orders ADD COLUMN legacy varchar(20);\n"

    assert codes(lint_migration(tmp_path, UP, down), kind="down") == []


def test_a_validate_file_that_writes_is_flagged_and_a_reading_one_is_not(tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / f"{VERSION}.up.sql").write_text(UP)
    writes = directory / f"{VERSION}.validate.sql"
    writes.write_text(
        "SELECT count(*) = 0 AS ok FROM orders WHERE note IS NOT NULL;\n"
        "UPDATE orders SET note = '' WHERE note IS NULL;\n"
        "SELECT setval('orders_id_seq', 1) > 0 AS ok;\n"
    )

    result = lint_paths([directory / f"{VERSION}.up.sql", writes], pg_version=15)

    assert [(f.line, f.rule) for f in result.findings if f.path == writes] == [(2, "LG814"), (3, "LG814")]
