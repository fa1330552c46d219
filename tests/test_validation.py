"""Validation gates on a real server: the seed's own queries, judging, and changing nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
from applyhelp import CREATE, EXAMPLE, TIER, example_copy, fast_settings, only, seed

from lockgate.controller import validation
from lockgate.controller.engine import Engine
from lockgate.controller.snapshot import Baseline
from lockgate.hooks import migrationset
from lockgate.hooks.sqlmodel import parse_sql


def _baseline(**counts: int) -> Baseline:
    return Baseline(captured_at=datetime.now(UTC), row_counts=counts, catalog={})


def _run(conn: psycopg.Connection, text: str, baseline: Baseline | None = None) -> list[validation.GateResult]:
    return validation.run(conn, parse_sql(Path("m.validate.sql"), text), baseline or _baseline())


def test_the_seed_validation_file_works_unchanged_against_migration_baseline(db: str, tmp_path: Path) -> None:
    directory = example_copy(tmp_path)
    only(directory, CREATE)
    with Engine(fast_settings(), db) as engine:
        engine.apply(migrationset.load(directory).migrations[0])
    seed(db)
    directory = example_copy(tmp_path / "tier")
    only(directory, CREATE, TIER)
    with Engine(fast_settings(), db) as engine:
        (tier,) = engine.pending(migrationset.load(directory))
        assert engine.apply(tier).status == "applied"
    validate = (EXAMPLE / "20240115093000_add_customer_tier.validate.sql").read_text()
    with psycopg.connect(db, autocommit=True) as conn:
        results = _run(conn, validate, _baseline(customers=3000))
        assert [(r.gate, r.passed) for r in results] == [
            ("the backfill reached every row", True),
            ("the row count is what it was before the migration", True),
            ("tiers agree with order totals (raises on the first mismatch)", True),
            ("Distribution, recorded in the report (not a gate)", None),
        ]
        assert results[3].detail == "tier, customers: bronze, 428; gold, 2143; silver, 429"
        lost = _run(conn, validate, _baseline(customers=3001))
        assert [r.passed for r in lost][:2] == [True, False]
        conn.execute("UPDATE customers SET tier = 'gold' WHERE id = 7")
        wrong = _run(conn, validate, _baseline(customers=3000))
        assert (wrong[2].passed, wrong[2].detail) == (False, "1 customers have a tier that does not match their orders")


def test_gates_are_judged_by_raise_and_by_a_boolean_first_column(conn: psycopg.Connection) -> None:
    results = _run(conn, """
-- Gate: yes.
SELECT true AS yes, 'ignored';
-- Gate: no.
SELECT false AS no;
SELECT NULL::boolean AS unknown;
SELECT true AS nothing WHERE false;
SELECT 42 AS answer;
DO $$ BEGIN RAISE EXCEPTION 'custom failure %', 7; END $$;
SELECT 1 / 0;
SELECT true AS still_judged_after_an_error;
""")
    assert [(r.gate, r.line, r.passed, r.detail) for r in results] == [
        ("yes", 3, True, "yes = true"),
        ("no", 5, False, "no = false"),
        ("SELECT NULL::boolean AS unknown", 6, False, "unknown = NULL"),
        ("SELECT true AS nothing WHERE false", 7, False, "nothing: no rows"),
        ("SELECT 42 AS answer", 8, None, "answer: 42"),
        ("DO $$ BEGIN RAISE EXCEPTION 'custom failure %', 7; END $$", 9, False, "custom failure 7"),
        ("SELECT 1 / 0", 10, False, "division by zero"),
        ("SELECT true AS still_judged_after_an_error", 11, True, "still_judged_after_an_error = true"),
    ]
    assert "gate 'no' (line 5) failed: no = false" in validation.summary(results)


def test_validation_changes_nothing(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE t (id int)")
    conn.execute("INSERT INTO t VALUES (1), (2)")
    results = _run(conn, "DELETE FROM t;\nSELECT count(*) = 0 AS emptied FROM t;\nCREATE TABLE u (id int);")
    assert [r.passed for r in results] == [True, True, True]
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert conn.execute("SELECT to_regclass('u'), to_regclass('pg_temp.migration_baseline')").fetchone() == (None, None)
