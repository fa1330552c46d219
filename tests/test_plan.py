"""`lockgate plan` on the worked example: steps, locks, estimated rows, batches; nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from applyhelp import CREATE, add, example_copy, fast_settings, only, scalar, seed

from lockgate.controller import plan
from lockgate.controller.cli import main
from lockgate.controller.db import connect
from lockgate.controller.engine import Engine
from lockgate.hooks import migrationset


def test_plan_changes_nothing_not_even_the_ledger(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--dir", "migrations", "--dsn", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith("20240101000000_create_customers_and_orders [pending] — Customers and their orders "
                          "(one transaction, all or nothing)")
    assert "    line 18: UPDATE customers\n      ROW EXCLUSIVE on customers (blocks DDL)" in out
    assert scalar(db, "SELECT to_regnamespace('lockgate')") is None
    assert scalar(db, "SELECT to_regclass('customers')") is None


def test_plan_json_shows_modes_locks_estimated_rows_and_batches(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = example_copy(tmp_path)
    only(directory, CREATE)
    with Engine(fast_settings(), db) as engine:
        engine.apply(migrationset.load(directory).migrations[0])
    seed(db)
    assert main(["plan", "--dir", "migrations", "--dsn", db, "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert [m["version"] for m in planned] == ["20240115093000", "20240115093100", "20240115093200"]
    tier, check, index = planned
    assert (tier["atomic"], [s["mode"] for s in tier["steps"]]) == (False, ["transaction", "batch"])
    update = tier["steps"][1]["statements"][0]
    assert (update["kind"], update["batches"]) == ("UpdateStmt", 1)
    assert [(lock["relation"], lock["mode"], lock["estimated_rows"]) for lock in update["locks"]] == [
        ("customers", "ROW EXCLUSIVE", 3000)
    ]
    (validate,) = check["steps"][0]["statements"][0]["locks"]
    assert (validate["mode"], validate["scan"], validate["rewrite"]) == ("SHARE UPDATE EXCLUSIVE", True, False)
    assert [s["mode"] for s in index["steps"]] == ["autocommit"]


def test_plan_judges_a_type_change_with_the_column_type_from_the_catalog(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "widen", up="ALTER TABLE t ALTER COLUMN name TYPE varchar(50);",
        down="ALTER TABLE t ALTER COLUMN name TYPE varchar(20);")
    add(tmp_path, "2", "shrink", up="ALTER TABLE t ALTER COLUMN name TYPE varchar(10);",
        down="ALTER TABLE t ALTER COLUMN name TYPE varchar(20);")
    with connect(db) as conn:
        conn.execute("CREATE TABLE t (name varchar(20))")
        widen, shrink = plan.build(conn, migrationset.load(tmp_path), ledger_schema="lockgate")
    assert widen.steps[0].statements[0].locks[0].rewrite is False
    assert shrink.steps[0].statements[0].locks[0].rewrite is True
    assert "rewrites" in plan.render_text([shrink])


def test_plan_says_how_many_batches_run_at_once(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "backfill", up="-- lockgate:batch size=100 workers=3\nUPDATE t SET n = 1;",
        down="UPDATE t SET n = NULL;")
    with connect(db) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, n int)")
        conn.execute("INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
        conn.execute("ANALYZE t")
        (planned,) = plan.build(conn, migrationset.load(tmp_path), ledger_schema="lockgate")
    update = planned.steps[0].statements[0]
    assert (update.batches, update.workers) == (10, 3)
    assert "line 2: UPDATE t SET n = 1 — about 10 batch(es), 3 at a time" in plan.render_text([planned])
