"""Migrations that are valid SQL but misbehave at run time: a down that fails, a gate that never returns."""

from __future__ import annotations

from pathlib import Path

from applyhelp import add, execute, fast_settings, scalar

from lockgate.controller.engine import Engine
from lockgate.hooks import migrationset


def test_a_validation_that_never_returns_is_stopped_by_statement_timeout_and_rolled_back(
    db: str, tmp_path: Path
) -> None:
    add(tmp_path, "1", "slow_gate", up="CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);",
        down="DROP TABLE a;", validate="-- Gate: waits forever.\nSELECT pg_sleep(3600) IS NULL AS done;\n")
    with Engine(fast_settings(statement_timeout=0.5), db) as engine:
        outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
        entry = engine.ledger_entries()["1"]
    assert outcome.status == "failed"
    assert "statement timeout" in outcome.reason
    assert outcome.duration_s < 60
    assert scalar(db, "SELECT to_regclass('a')") is None, "the atomic migration left nothing behind"
    assert entry.status == "failed"


def test_a_down_that_raises_after_committed_steps_marks_the_migration_dirty(db: str, tmp_path: Path) -> None:
    execute(db, "CREATE TABLE a (id int)")
    add(tmp_path, "1", "broken_down",
        up="-- lockgate:no-transaction\nALTER TABLE a ADD COLUMN b int;\n",
        down="ALTER TABLE a DROP COLUMN no_such_column;\n",
        validate="-- Gate: refuse on purpose.\nSELECT false AS refused;\n")
    with Engine(fast_settings(), db) as engine:
        outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
        entry = engine.ledger_entries()["1"]
    assert outcome.status == "dirty"
    assert 'column "no_such_column" of relation "a" does not exist' in outcome.reason
    assert entry.status == "dirty"
    # Nothing is hidden: the half-applied column is still there for the operator to see.
    column_b = "SELECT count(*) FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'b'"
    assert scalar(db, column_b) == 1
