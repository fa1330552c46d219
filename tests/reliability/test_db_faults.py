"""Database faults: a terminated session, a server restart, a lock never released, a statement timeout.

Each run ends in a recorded state with one line saying what happened, and a rerun (or
`lockgate retry`, for a migration that failed) ends where an uninterrupted run ends.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from applyhelp import TIER, add, scalar

from lockgate.controller.ledger import WAITING_FOR_DEAD_RUN

from .conftest import Lab
from .harness import (
    BATCHES_DONE,
    Tally,
    apply,
    count_updates,
    fingerprint,
    lockgate,
    one_line,
    spawn_apply,
    terminate,
    wait_for,
)
from .scenarios import slow_backfill

LOST = "lost the database connection"
RESUMES = "the migration stays applying and the next run resumes it"


def _ends_as_reference(lab: Lab, tally: Tally, kind: str, dsn: str, directory: Path) -> None:
    sc = lab.scenarios["example"]
    rerun = apply(directory, dsn)
    differences = fingerprint(dsn, sc.tables).differences(lab.reference(sc))
    tally.record(kind, rerun.returncode == 0 and not differences)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert not differences, "\n".join(differences)


def _interrupted_backfill(lab: Lab) -> tuple[str, Path, subprocess.Popen[str], psycopg.Connection]:
    """The example set applying, its tier backfill 3 batches in."""
    sc = lab.scenarios["example"]
    lab.reference(sc)
    dsn, directory = lab.clone(sc), lab.directory(sc)
    slow_backfill(directory)
    applier = spawn_apply(directory, dsn)
    conn = psycopg.connect(dsn, autocommit=True)
    wait_for(conn, BATCHES_DONE, (TIER, 3))
    return dsn, directory, applier, conn


def test_the_backfill_session_terminated_mid_batch_stays_applying_and_resumes(lab: Lab, tally: Tally) -> None:
    dsn, directory, applier, conn = _interrupted_backfill(lab)
    with conn:
        # The example backfills with workers=2: the run's own session and one per segment. End
        # one worker's session (the newest): its sibling must stop too, and the run report it.
        ended = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lockgate backfill'"
            " AND datname = current_database() ORDER BY backend_start DESC LIMIT 1"
        ).fetchall()
        assert ended == [(True,)]
        out, err = applier.communicate(timeout=60)
        assert applier.returncode == 1, out + err
        line = one_line(err)
        assert line.startswith(f"lockgate: {TIER}: {LOST} (") and line.endswith(RESUMES)
        assert conn.execute("SELECT status, steps_done FROM lockgate.migrations WHERE version = %s",
                            (TIER,)).fetchone() == ("applying", 1)
        assert conn.execute("SELECT count(*) FROM lockgate.events WHERE version = %s AND event = 'connection lost'",
                            (TIER,)).fetchone() == (1,)
    _ends_as_reference(lab, tally, "terminated backfill session", dsn, directory)


def test_the_applier_lock_session_terminated_stops_before_the_next_batch(lab: Lab, tally: Tally) -> None:
    dsn, directory, applier, conn = _interrupted_backfill(lab)
    with conn:
        assert terminate(conn, "lockgate applier lock") == 1
        out, err = applier.communicate(timeout=60)
        assert applier.returncode == 1, out + err
        assert LOST in one_line(err)
        # Every batch checks the lock first: the backfill stopped part way, not at its end.
        assert conn.execute("SELECT bool_and(finished), sum(batches_done) < 12 FROM lockgate.batch_checkpoints"
                            " WHERE version = %s", (TIER,)).fetchone() == (False, True)
        # Without its lock the applier must not go on: the next migration was not touched.
        assert conn.execute("SELECT count(*) FROM lockgate.migrations WHERE version > %s", (TIER,)).fetchone() == (0,)
    _ends_as_reference(lab, tally, "terminated lock session", dsn, directory)


def test_a_server_restart_during_the_backfill_stays_applying_and_resumes(
    lab: Lab, tally: Tally, pg_server: object
) -> None:
    process = pg_server.process  # type: ignore[attr-defined]
    if process is None:
        pytest.skip("LOCKGATE_TEST_DSN names a server this test cannot restart")
    dsn, directory, applier, conn = _interrupted_backfill(lab)
    conn.close()
    process.restart()
    out, err = applier.communicate(timeout=60)
    assert applier.returncode == 1, out + err
    assert LOST in one_line(err)
    assert scalar(dsn, f"SELECT status FROM lockgate.migrations WHERE version = '{TIER}'") == "applying"
    _ends_as_reference(lab, tally, "server restart", dsn, directory)


GATED = "SELECT (SELECT true FROM pg_advisory_xact_lock(777)) AS gate_ran;\n"


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "after-committed-steps"])
def test_the_applier_session_terminated_mid_validation_resumes(
    lab: Lab, tally: Tally, db: str, tmp_path: Path, atomic: bool
) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, n int)")
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 500) AS g")
    up = "ALTER TABLE items ADD COLUMN m int;\n"
    if not atomic:
        up += "-- lockgate:batch size=100\nUPDATE items SET m = n;\n"
    add(tmp_path, "1", "gated", up=up, down="ALTER TABLE items DROP COLUMN m;\n", validate=GATED)
    with psycopg.connect(db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(777)")  # the gate waits for this
        applier = spawn_apply(tmp_path, db, env={"LOCKGATE_LOCK_TIMEOUT": "60s"})
        wait_for(holder, "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 777 "
                         "AND NOT granted")
        assert terminate(holder, "lockgate applier") == 1
        out, err = applier.communicate(timeout=60)
        assert applier.returncode == 1, out + err
        assert LOST in one_line(err)
        status = holder.execute("SELECT status, steps_done FROM lockgate.migrations").fetchone()
        assert status == ("applying", 0 if atomic else 2)
        holder.execute("SELECT pg_advisory_unlock(777)")
    rerun = apply(tmp_path, db)
    ok = rerun.returncode == 0 and scalar(db, "SELECT count(*) FROM items WHERE m IS DISTINCT FROM n") == (
        500 if atomic else 0)
    tally.record("terminated applier session", ok)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert scalar(db, "SELECT status FROM lockgate.migrations") == "applied"
    assert scalar(db, "SELECT count(*) FROM lockgate.events WHERE event = 'applied'") == 1


def test_a_lock_never_released_fails_naming_the_blocker_and_retry_completes(
    tally: Tally, db: str, tmp_path: Path
) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY)")
    add(tmp_path, "1", "add_column", up="ALTER TABLE items ADD COLUMN m int;\n",
        down="ALTER TABLE items DROP COLUMN m;\n")
    env = {"LOCKGATE_LOCK_TIMEOUT": "0.2s", "LOCKGATE_LOCK_RETRIES": "2"}
    with psycopg.connect(db) as blocker:  # a long transaction that read the table and went idle
        blocker.execute("SELECT count(*) FROM items")
        pid = blocker.info.backend_pid
        first = apply(tmp_path, db, env=env)
        assert first.returncode == 1
        line = one_line(first.stdout)
        assert line.startswith("failed      1_add_column")
        assert "lock timeout (0.2s) 3 times; blocked by " f"pid {pid} (" in line
        assert "holding AccessShareLock on items" in line and "last query: SELECT count(*) FROM items" in line
        assert scalar(db, "SELECT count(*) FROM lockgate.events WHERE event = 'lock timeout'") == 2
        assert scalar(db, "SELECT to_regclass('items') IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute "
                          "WHERE attrelid = 'items'::regclass AND attname = 'm')") is True
    again = apply(tmp_path, db, env=env)
    assert again.returncode == 1 and "lockgate retry 1" in again.stdout
    retried = lockgate("retry", "1", "--dir", str(tmp_path), "--dsn", db, env=env)
    tally.record("lock never released", retried.returncode == 0)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert scalar(db, "SELECT status FROM lockgate.migrations") == "applied"


def test_a_statement_timeout_fails_cleanly_and_retry_with_more_time_completes(
    tally: Tally, db: str, tmp_path: Path
) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY)")
    add(tmp_path, "1", "slow", up="ALTER TABLE items ADD COLUMN m int;\nSELECT pg_sleep(1.5);\n",
        down="ALTER TABLE items DROP COLUMN m;\n")
    first = apply(tmp_path, db, env={"LOCKGATE_STATEMENT_TIMEOUT": "300ms"})
    assert first.returncode == 1
    line = one_line(first.stdout)
    assert "canceling statement due to statement timeout (SQLSTATE 57014)" in line
    assert line.endswith(f"rolled back, nothing was committed [{tmp_path / '1_slow.up.sql'}:2:1]")
    assert scalar(db, "SELECT status FROM lockgate.migrations") == "failed"
    assert scalar(db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'm'") == 0
    retried = lockgate("retry", "1", "--dir", str(tmp_path), "--dsn", db, env={"LOCKGATE_STATEMENT_TIMEOUT": "10s"})
    tally.record("statement timeout", retried.returncode == 0)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert scalar(db, "SELECT status FROM lockgate.migrations") == "applied"


def test_a_batch_over_its_statement_timeout_is_split_and_every_row_updated_once(
    tally: Tally, db: str, tmp_path: Path
) -> None:
    rows = 400
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, touched int NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO items (id) SELECT generate_series(1, %s)", (rows,))
        count_updates(conn, "items")
    # Each row sleeps 1ms: a batch of 200 takes 0.2s, over the 0.1s allowed, so it is halved until it fits.
    add(tmp_path, "1", "slow_rows", up="-- lockgate:batch size=200\n"
        "UPDATE items SET touched = touched + 1 + (SELECT 0 FROM pg_sleep(0.001 + 0 * items.id));\n",
        down="SELECT 1;\n")
    result = apply(tmp_path, db, env={"LOCKGATE_BATCH_STATEMENT_TIMEOUT": "100ms", "LOCKGATE_LOCK_RETRIES": "0"})
    updates = fingerprint(db, ()).updates
    tally.record("batch statement timeout", result.returncode == 0 and updates == {("items", 1): rows})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "splitting: batch size now 100" in result.stderr
    assert updates == {("items", 1): rows}


def test_an_old_snapshot_during_a_concurrent_index_build_is_retried_over_its_invalid_leftover(
    tally: Tally, db: str, tmp_path: Path
) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, n int)")
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 500) AS g")
    add(tmp_path, "1", "index", up="CREATE INDEX CONCURRENTLY items_n_idx ON items (n);\n",
        down="DROP INDEX CONCURRENTLY items_n_idx;\n",
        validate="SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'items_n_idx'::regclass;\n")
    # A report holding a snapshot: the build waits for it, times out and leaves an INVALID index.
    with psycopg.connect(db) as reader:
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM items")
        applier = spawn_apply(tmp_path, db, env={"LOCKGATE_LOCK_TIMEOUT": "0.3s", "LOCKGATE_RETRY_BACKOFF": "0.3",
                                                 "LOCKGATE_LOCK_RETRIES": "3"})
        with psycopg.connect(db, autocommit=True) as watcher:
            wait_for(watcher, "SELECT count(*) > 0 FROM lockgate.events WHERE event = 'lock timeout'")
            assert watcher.execute("SELECT NOT indisvalid FROM pg_index "
                                   "WHERE indexrelid = 'items_n_idx'::regclass").fetchone() == (True,)
        reader.rollback()
    out, err = applier.communicate(timeout=60)
    tally.record("old snapshot during CONCURRENTLY", applier.returncode == 0)
    assert applier.returncode == 0, out + err
    assert scalar(db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_n_idx'::regclass") is True
    assert scalar(db, "SELECT count(*) > 0 FROM lockgate.events "
                      "WHERE event = 'dropped an invalid index left by an earlier try'") is True


def test_a_rerun_waits_for_the_statement_a_killed_run_left_running(tally: Tally, db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "waits", up="CREATE TABLE a (id int);\nSELECT pg_advisory_xact_lock(4242);\n",
        down="DROP TABLE a;\n")
    with psycopg.connect(db, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(4242)")  # the migration's second statement waits for this
        first = spawn_apply(tmp_path, db, env={"LOCKGATE_LOCK_TIMEOUT": "60s"})
        wait_for(gate, "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'lockgate applier' "
                       "AND query LIKE 'SELECT pg_advisory_xact_lock(4242)%'")
        first.kill()
        first.communicate()
        # The killed run's statement still runs on the server, holding table a uncommitted:
        # the rerun waits for it instead of timing out on its locks.
        rerun = spawn_apply(tmp_path, db)
        wait_for(gate, f"SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '{WAITING_FOR_DEAD_RUN}'")
        gate.execute("SELECT pg_advisory_unlock(4242)")
    out, err = rerun.communicate(timeout=60)
    tally.record("statement left running by a killed run", rerun.returncode == 0)
    assert rerun.returncode == 0, out + err
    assert scalar(db, "SELECT status FROM lockgate.migrations") == "applied"
