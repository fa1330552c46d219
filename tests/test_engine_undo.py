"""The engine never undoes what it did not do: a failed statement is no committed step, an object
that was there before the migration is not the migration's, and the proof holds the baseline."""

from __future__ import annotations

from pathlib import Path

import psycopg
from applyhelp import add, execute, fast_settings, scalar

from lockgate.controller.engine import Engine
from lockgate.hooks import migrationset

V = "20240201000000"
UP = (
    "-- lockgate:no-transaction\n"
    "CREATE INDEX CONCURRENTLY people_email_idx ON people (email);\n"
    "ALTER TABLE people ADD COLUMN nickname text;\n"
)
DOWN = "ALTER TABLE people DROP COLUMN IF EXISTS nickname;\nDROP INDEX CONCURRENTLY IF EXISTS people_email_idx;\n"


def _people(dsn: str) -> None:
    execute(dsn, "CREATE TABLE people (id bigint PRIMARY KEY, email text)")
    execute(dsn, "INSERT INTO people SELECT g, 'p' || (g % 50) FROM generate_series(1, 200) g")


def _apply(dsn: str, directory: Path) -> tuple[str, str]:
    with Engine(fast_settings(), dsn) as engine:
        (migration,) = engine.pending(migrationset.load(directory))
        outcome = engine.apply(migration)
    return outcome.status, outcome.reason


def _status(dsn: str) -> object:
    return scalar(dsn, f"SELECT status FROM lockgate.migrations WHERE version = '{V}'")


def _indexes(dsn: str) -> list[tuple[str, bool]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT i.relname, x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = 'people'::regclass AND NOT x.indisprimary ORDER BY 1").fetchall()
    return [(name, valid) for name, valid in rows]


def test_a_first_step_that_fails_on_an_object_made_by_hand_leaves_it_and_fails_cleanly(
    db: str, tmp_path: Path
) -> None:
    _people(db)
    execute(db, "CREATE INDEX people_email_idx ON people (email)")  # made by hand, before the migration
    add(tmp_path, V, "index_email", up=UP, down=DOWN)

    status, reason = _apply(db, tmp_path)

    assert status == "failed" and "already exists" in reason
    assert _status(db) == "failed"  # not dirty: nothing after it is blocked
    assert _indexes(db) == [("people_email_idx", True)]


def test_a_failed_concurrent_build_leaves_no_invalid_index_of_its_own(db: str, tmp_path: Path) -> None:
    _people(db)
    up = "-- lockgate:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY people_email_key ON people (email);\n"
    add(tmp_path, V, "unique_email", up=up, down="DROP INDEX CONCURRENTLY IF EXISTS people_email_key;\n")

    status, reason = _apply(db, tmp_path)

    assert status == "failed" and "could not create unique index" in reason
    assert _status(db) == "failed"
    assert _indexes(db) == []  # the INVALID index the build left was the migration's, and is gone


def test_a_migration_whose_ledger_row_was_deleted_does_not_undo_itself(db: str, tmp_path: Path) -> None:
    _people(db)
    add(tmp_path, V, "index_email", up=UP, down=DOWN)
    assert _apply(db, tmp_path)[0] == "applied"
    execute(db, f"DELETE FROM lockgate.migrations WHERE version = '{V}'")

    status, _ = _apply(db, tmp_path)

    assert status == "failed"
    assert _indexes(db) == [("people_email_idx", True)]
    assert scalar(db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'people'::regclass "
                      "AND attname = 'nickname' AND NOT attisdropped") == 1
