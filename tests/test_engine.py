"""The apply engine against a real server: atomicity, lock-timeout retries, rollback, resume."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from applyhelp import CREATE, INDEX, TIER, add, example_copy, execute, fast_settings, only, scalar, seed

from lockgate.controller import checkpoints
from lockgate.controller.engine import Blocked, Engine
from lockgate.controller.steps import is_atomic, split
from lockgate.hooks import migrationset
from lockgate.hooks.errors import InputError, UsageError
from lockgate.hooks.sqlmodel import parse_sql


@pytest.fixture
def db(major_db: str) -> str:
    """Every test of this module runs on each server build: the core of apply, rollback and backfill."""
    return major_db



def _steps(text: str, pg_version: int = 15) -> list[tuple[str, int]]:
    return [(s.mode, len(s.statements)) for s in split(parse_sql(Path("m.up.sql"), text), pg_version=pg_version)]


# -- steps (pure) ---------------------------------------------------------------------------


def test_a_plain_file_is_one_transaction() -> None:
    steps = split(parse_sql(Path("m.up.sql"), "CREATE TABLE a (id int);\nCREATE INDEX ON a (id);"), pg_version=15)
    assert [(s.mode, len(s.statements)) for s in steps] == [("transaction", 2)]
    assert is_atomic(steps)


def test_a_concurrent_index_makes_every_statement_its_own_autocommit_step() -> None:
    assert _steps("CREATE TABLE a (id int);\nCREATE INDEX CONCURRENTLY i ON a (id);") == [
        ("autocommit", 1), ("autocommit", 1),
    ]


def test_no_transaction_directive_runs_statements_one_by_one() -> None:
    assert _steps("-- lockgate:no-transaction\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);") == [
        ("autocommit", 1), ("autocommit", 1),
    ]


def test_a_batch_splits_the_file_into_transaction_batch_transaction() -> None:
    text = (
        "ALTER TABLE t ADD c int;\nALTER TABLE t ADD d int;\n-- lockgate:batch size=10\nUPDATE t SET c = 1;\nSELECT 1;"
    )
    assert _steps(text) == [("transaction", 2), ("batch", 1), ("transaction", 1)]


def test_enum_add_value_needs_autocommit_only_before_pg12() -> None:
    text = "ALTER TYPE mood ADD VALUE 'meh';"
    assert _steps(text, pg_version=11) == [("autocommit", 1)]
    assert _steps(text, pg_version=12) == [("transaction", 1)]


def test_a_do_block_that_commits_runs_outside_a_transaction() -> None:
    assert _steps("DO $$ BEGIN PERFORM 1; COMMIT; END $$;\nSELECT 1;") == [("autocommit", 1), ("autocommit", 1)]


def test_transaction_control_and_misplaced_batch_are_input_errors_at_their_line() -> None:
    with pytest.raises(InputError) as info:
        _steps("BEGIN;\nCREATE TABLE a (id int);\n-- lockgate:batch\nCREATE TABLE b (id int);\nCOMMIT;")
    assert [(p.line, p.message.split(":")[0]) for p in info.value.problems] == [
        (1, "transaction control in a migration"),
        (3, "lockgate"),
        (5, "transaction control in a migration"),
    ]


# -- applying -------------------------------------------------------------------------------


def _apply(dsn: str, directory: Path, **settings: object) -> list[str]:
    with Engine(fast_settings(**settings), dsn) as engine:
        return [engine.apply(m).status for m in engine.pending(migrationset.load(directory))]


def test_the_example_set_applies_and_rolls_back_newest_first(db: str, tmp_path: Path) -> None:
    directory = example_copy(tmp_path)
    only(directory, CREATE)
    assert _apply(db, directory) == ["applied"]
    seed(db)
    directory = example_copy(tmp_path / "all")
    with Engine(fast_settings(), db) as engine:
        outcomes = [engine.apply(m) for m in engine.pending(migrationset.load(directory))]
        assert [o.status for o in outcomes] == ["applied"] * 3
        tier = outcomes[0]
        assert tier.rows_before == tier.rows_after == {"customers": 3000, "orders": 6000}
        assert [g.passed for g in tier.validation] == [True, True, True, None]
        assert scalar(db, "SELECT count(DISTINCT tier) FROM customers") == 3
        assert engine.pending(migrationset.load(directory)) == []
        for version in (INDEX, "20240115093100", TIER):
            back = engine.rollback(version)
            assert (back.status, back.schema_restored) == ("rolled_back", True), back.reason
    assert scalar(db, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'tier'") == 0


def test_an_atomic_migration_is_all_or_nothing(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "three", up=(
        "CREATE TABLE a (id int);\n"
        "INSERT INTO a VALUES (1);\n"
        "ALTER TABLE missing ADD COLUMN x int;\n"
    ), down="DROP TABLE a;")
    with Engine(fast_settings(), db) as engine:
        outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
        entry = engine.ledger_entries()["1"]
    assert outcome.status == "failed"
    assert 'relation "missing" does not exist' in outcome.reason
    assert outcome.where == f"{tmp_path / '1_three.up.sql'}:3:1"
    assert scalar(db, "SELECT to_regclass('a')") is None
    assert (entry.status, entry.steps_done) == ("failed", 0)


def test_a_failed_gate_rolls_an_atomic_migration_back_inside_its_transaction(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "gate", up="CREATE TABLE a (id int);\nINSERT INTO a VALUES (1), (2);",
        down="DROP TABLE a;", validate="-- Gate: exactly three rows.\nSELECT count(*) = 3 AS three FROM a;")
    with Engine(fast_settings(), db) as engine:
        outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
    assert outcome.status == "failed"
    gates = [(g.gate, g.passed, g.detail) for g in outcome.validation]
    assert gates == [("exactly three rows", False, "three = false")]
    assert outcome.where == f"{tmp_path / '1_gate.validate.sql'}:2:1"
    assert scalar(db, "SELECT to_regclass('a')") is None


def test_a_failed_gate_after_committed_steps_runs_the_down_and_proves_the_schema(db: str, tmp_path: Path) -> None:
    directory = example_copy(tmp_path)
    only(directory, CREATE, TIER, INDEX)
    (directory / "20240115093200_index_customers_tier.validate.sql").write_text(
        "-- Gate: refuse on purpose.\nSELECT false AS refused;\n"
    )
    with Engine(fast_settings(), db) as engine:
        outcomes = [engine.apply(m) for m in engine.pending(migrationset.load(directory))]
        entry = engine.ledger_entries()[INDEX]
    index = outcomes[-1]
    assert [o.status for o in outcomes] == ["applied", "applied", "rolled_back"]
    assert index.schema_restored is True
    assert "the schema is back exactly as before" in index.reason
    assert scalar(db, "SELECT to_regclass('customers_tier_idx')") is None
    assert (entry.status, entry.schema_restored) == ("rolled_back", True)


def test_a_down_that_does_not_restore_the_schema_is_dirty_until_resolved(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "table", up="CREATE TABLE a (id int);", down="DROP TABLE a;")
    add(tmp_path, "2", "half_down", up="-- lockgate:no-transaction\nALTER TABLE a ADD b int;\nALTER TABLE a ADD c int;",
        down="ALTER TABLE a DROP COLUMN c;", validate="SELECT false AS never;")
    add(tmp_path, "3", "later", up="CREATE TABLE z (id int);", down="DROP TABLE z;")
    migrations = migrationset.load(tmp_path)
    with Engine(fast_settings(), db) as engine:
        assert engine.apply(migrations.migrations[0]).status == "applied"
        dirty = engine.apply(migrations.migrations[1])
        assert (dirty.status, dirty.schema_restored) == ("dirty", False)
        assert "relation public.a › column b: added (was not there before)" in dirty.reason
        with pytest.raises(Blocked, match="lockgate resolve 2"):
            engine.pending(migrations)
        with pytest.raises(Blocked):
            engine.apply(migrations.migrations[2])
        with pytest.raises(UsageError, match="not dirty"):
            engine.resolve("1", "applied")
        engine.resolve("2", "rolled_back", note="dropped column b by hand")
        assert [m.version for m in engine.pending(migrations)] == ["2", "3"]
        assert engine.ledger.events("2")[-1] == ("resolved as rolled_back", {"note": "dropped column b by hand"})
    assert scalar(db, "SELECT to_regclass('z')") is None


def test_a_failed_migration_waits_for_retry(db: str, tmp_path: Path) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
    add(tmp_path, "1", "needs_rows", up="ALTER TABLE t ADD note text;", down="ALTER TABLE t DROP COLUMN note;",
        validate="SELECT count(*) > 0 AS has_rows FROM t;")
    migration = migrationset.load(tmp_path).migrations[0]
    with Engine(fast_settings(), db) as engine:
        with pytest.raises(UsageError, match="has not failed"):
            engine.apply(migration, retry=True)
        assert engine.apply(migration).status == "failed"
        again = engine.apply(migration)
        assert again.status == "failed" and "lockgate retry 1" in again.reason
        execute(db, "INSERT INTO t VALUES (1)")
        assert engine.apply(migration, retry=True).status == "applied"


def test_an_applied_migration_whose_file_changed_is_refused(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "t", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    _apply(db, tmp_path)
    (tmp_path / "1_t.down.sql").write_text("DROP TABLE IF EXISTS t;")
    with Engine(fast_settings(), db) as engine, pytest.raises(InputError) as info:
        engine.pending(migrationset.load(tmp_path))
    (problem,) = info.value.problems
    assert problem.path.name == "1_t.down.sql" and "edited after it was applied" in problem.message


# -- lock timeouts --------------------------------------------------------------------------


def _hold_lock(db: str) -> psycopg.Connection:
    blocker = psycopg.connect(db, application_name="report-job")
    blocker.execute("SELECT count(*) FROM t")  # ACCESS SHARE, held until the transaction ends
    return blocker


def _wait_for_event(db: str, version: str, event: str) -> None:
    with psycopg.connect(db, autocommit=True) as watcher:
        while not watcher.execute(
            "SELECT EXISTS (SELECT 1 FROM lockgate.events WHERE version = %s AND event = %s)", (version, event)
        ).fetchone()[0]:  # type: ignore[index]
            watcher.execute("SELECT pg_sleep(0.02)")


def test_a_lock_timeout_is_retried_until_the_blocker_lets_go(db: str, tmp_path: Path) -> None:
    execute(db, "CREATE TABLE t (id int)")
    add(tmp_path, "1", "add_column", up="ALTER TABLE t ADD c int;", down="ALTER TABLE t DROP COLUMN c;")
    blocker = _hold_lock(db)

    def release_after_first_timeout() -> None:
        _wait_for_event(db, "1", "lock timeout")
        blocker.rollback()

    releaser = threading.Thread(target=release_after_first_timeout)
    with Engine(fast_settings(lock_retries=50), db) as engine:
        releaser.start()
        outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
        events = [e for e, _ in engine.ledger.events("1")]
    releaser.join()
    blocker.close()
    assert outcome.status == "applied"
    assert "lock timeout" in events


def test_a_lock_that_is_never_released_fails_cleanly_naming_the_blocker(db: str, tmp_path: Path) -> None:
    execute(db, "CREATE TABLE t (id int)")
    add(tmp_path, "1", "add_column", up="ALTER TABLE t ADD c int;", down="ALTER TABLE t DROP COLUMN c;")
    blocker = _hold_lock(db)
    try:
        with Engine(fast_settings(lock_retries=1), db) as engine:
            outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
        blocker_pid = blocker.info.backend_pid
    finally:
        blocker.close()
    assert outcome.status == "failed"
    assert "lock timeout (0.2s) 2 times" in outcome.reason
    assert f"pid {blocker_pid}" in outcome.reason
    assert "application 'report-job'" in outcome.reason and "AccessShareLock on t" in outcome.reason
    assert scalar(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'") == 1


# -- resuming -------------------------------------------------------------------------------


def test_an_interrupted_batched_migration_resumes_without_repeating_committed_steps(db: str, tmp_path: Path) -> None:
    directory = example_copy(tmp_path)
    only(directory, CREATE)
    _apply(db, directory)
    seed(db)
    directory = example_copy(tmp_path / "tier")
    only(directory, CREATE, TIER)
    with psycopg.connect(db, autocommit=True) as conn:
        checkpoints.ensure_tables(conn, "lockgate")
        checkpoints.set_paused(conn, "lockgate", True)
    stop = threading.Event()

    def stop_once_the_first_step_committed() -> None:
        with psycopg.connect(db, autocommit=True) as watcher:
            while watcher.execute("SELECT steps_done FROM lockgate.migrations WHERE version = %s",
                                  (TIER,)).fetchone() != (1,):
                watcher.execute("SELECT pg_sleep(0.02)")
        stop.set()

    stopper = threading.Thread(target=stop_once_the_first_step_committed)
    stopper.start()
    with Engine(fast_settings(), db, stop=stop) as engine:
        (tier,) = engine.pending(migrationset.load(directory))
        first = engine.apply(tier)
    stopper.join()
    assert first.status == "interrupted"
    assert scalar(db, "SELECT status FROM lockgate.migrations WHERE version = '20240115093000'") == "applying"
    with psycopg.connect(db, autocommit=True) as conn:
        checkpoints.set_paused(conn, "lockgate", False)
    with Engine(fast_settings(), db) as engine:
        (tier,) = engine.pending(migrationset.load(directory))
        second = engine.apply(tier)
        events = [e for e, _ in engine.ledger.events(TIER)]
    assert second.status == "applied", second.reason
    assert events.count("started") == 1 and "resumed" in events
    assert second.rows_before == {"customers": 3000, "orders": 6000}
    assert scalar(db, "SELECT count(*) FROM customers WHERE tier IS NULL") == 0


def test_an_atomic_migration_killed_mid_run_is_simply_run_again(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "slow", up="CREATE TABLE a (id int);\nSELECT pg_advisory_xact_lock(4242);", down="DROP TABLE a;")
    gate = psycopg.connect(db, autocommit=True)
    gate.execute("SELECT pg_advisory_lock(4242)")  # the migration's second statement waits for this
    env = {**os.environ, "LOCKGATE_LOCK_TIMEOUT": "60s"}
    applier = subprocess.Popen([sys.executable, "-m", "lockgate.controller", "apply", "--dir", str(tmp_path),
                                "--dsn", db], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    waiting = (
        "SELECT pid FROM pg_stat_activity "
        "WHERE query LIKE 'SELECT pg_advisory_xact_lock(4242)%' AND pid <> pg_backend_pid()"
    )
    while (row := gate.execute(waiting.encode()).fetchone()) is None:
        gate.execute("SELECT pg_sleep(0.02)")
    applier.kill()
    applier.wait()
    gate.execute("SELECT pg_terminate_backend(%s)", (row[0],))  # the server notices the dead client
    gate.execute("SELECT pg_advisory_unlock(4242)")
    gate.close()
    assert scalar(db, "SELECT status FROM lockgate.migrations WHERE version = '1'") == "applying"
    with Engine(fast_settings(), db) as engine:
        (migration,) = engine.pending(migrationset.load(tmp_path))
        assert engine.apply(migration).status == "applied"
        assert [e for e, _ in engine.ledger.events("1")] == ["started", "started", "applied"]
