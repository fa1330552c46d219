"""The replica-lag throttle against a real primary and a real streaming standby.

The standby is held back with recovery_min_apply_delay: it receives WAL at once but replays a
commit only that long after it was committed, which is replay lag the primary measures.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lockgate.controller.backfill import BatchDone, ensure_tables, run_batched
from lockgate.controller.config import load
from lockgate.controller.pgserver import SERVER_USER, PostgresServer, create_database, drop_database
from lockgate.controller.throttle import hold_reason, replica_lag
from lockgate.hooks.sqlmodel import parse_sql
from tests.standby import Standby, streaming_pair

SCHEMA = "lockgate"
MAX_LAG_S = 1.0
DELAY = "3s"
_counter = itertools.count()

# What PostgreSQL itself reports for one walsender: caught up?, replay_lag in seconds.
RAW = """
SELECT replay_lsn >= pg_current_wal_flush_lsn(), extract(epoch FROM replay_lag)::float8
FROM pg_stat_replication WHERE application_name = %s
"""


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PostgresServer, Standby]]:
    with streaming_pair() as servers:
        yield servers


@pytest.fixture
def standby(pair: tuple[PostgresServer, Standby]) -> Iterator[Standby]:
    """The standby, applying without delay and caught up again after the test."""
    standby = pair[1]
    yield standby
    standby.set_apply_delay(None)
    standby.wait_caught_up()


@pytest.fixture
def db(pair: tuple[PostgresServer, Standby]) -> Iterator[str]:
    """A database of this test's own on the primary, with the ledger tables and a table to write to."""
    primary = pair[0]
    name = f"lag_test_{next(_counter)}"
    dsn = create_database(primary.dsn(), name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_tables(conn, SCHEMA)
        conn.execute("CREATE TABLE wal (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
    yield dsn
    drop_database(primary.dsn(), name)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection


def write_wal(conn: psycopg.Connection) -> None:
    """One small committed transaction: WAL the standby must replay."""
    conn.execute("INSERT INTO wal DEFAULT VALUES")


def raw(conn: psycopg.Connection, standby: Standby) -> tuple[bool, float | None]:
    row = conn.execute(RAW, (standby.name,)).fetchone()
    assert row is not None, "the standby is not connected"
    return row[0], row[1]


def hold(conn: psycopg.Connection) -> str | None:
    return hold_reason(conn, schema=SCHEMA, max_lag_s=MAX_LAG_S)


def until_held(conn: psycopg.Connection, *, keep_writing: bool, timeout_s: float = 15.0) -> str:
    """Poll until the throttle names the replica lag; with keep_writing, commit on every poll."""
    deadline = time.monotonic() + timeout_s
    while True:
        if keep_writing:
            write_wal(conn)
        reason = hold(conn)
        if reason is not None:
            return reason
        assert time.monotonic() < deadline, "the standby's lag never showed"
        time.sleep(0.1)


def test_a_standby_replaying_late_holds_the_batches(conn: psycopg.Connection, standby: Standby) -> None:
    assert hold(conn) is None
    standby.set_apply_delay(DELAY)
    reason = until_held(conn, keep_writing=True)
    assert reason.startswith("replica replay lag ")
    assert reason.endswith("s exceeds max_replica_lag 1s")
    lag = replica_lag(conn)
    assert lag is not None and MAX_LAG_S < lag < 30


def test_a_caught_up_standby_has_no_lag_whatever_replay_lag_still_shows(
    conn: psycopg.Connection, standby: Standby
) -> None:
    standby.set_apply_delay(DELAY)
    write_wal(conn)
    until_held(conn, keep_writing=False)  # the one commit waits on the standby for over 1s
    standby.set_apply_delay(None)
    stale_seen = False
    deadline = time.monotonic() + 15
    while True:
        caught_up, shown = raw(conn, standby)
        reason = hold(conn)
        if caught_up:
            assert reason is None and replica_lag(conn) == 0.0
            # PostgreSQL still shows the lag it measured while the standby caught up (until its
            # next reply): the old reading, max(replay_lag), would have kept holding on that.
            stale_seen = stale_seen or (shown is not None and shown > MAX_LAG_S)
            if shown is None:
                break
        assert time.monotonic() < deadline, f"not caught up with replay_lag cleared: {caught_up}, {shown}"
        time.sleep(0.05)
    assert stale_seen


def test_a_backfill_waits_for_a_lagging_standby_then_completes(
    db: str, conn: psycopg.Connection, standby: Standby, caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, touched int NOT NULL DEFAULT 0)")
    conn.execute("INSERT INTO items (id) SELECT g FROM generate_series(1, 3000) g")
    standby.wait_caught_up()
    standby.set_apply_delay(DELAY)
    until_held(conn, keep_writing=True)

    released_at: list[float] = []

    def release() -> None:
        released_at.append(time.monotonic())
        standby.set_apply_delay(None)

    batches: list[BatchDone] = []
    text = "-- lockgate:batch size=1000\nUPDATE items SET touched = touched + 1;\n"
    stmt = parse_sql(Path("t.up.sql"), text).statements[0]
    caplog.set_level(logging.INFO, logger="lockgate.controller.throttle")
    timer = threading.Timer(2.0, release)
    timer.start()
    try:
        result = run_batched(
            db, settings=load(max_replica_lag=MAX_LAG_S), version="20240101000000", step=1,
            statement=stmt, on_batch=batches.append,
        )
    finally:
        timer.cancel()
        timer.join()
    assert result.completed and result.rows == 3000 and result.batches == 3
    assert dict(conn.execute("SELECT touched, count(*) FROM items GROUP BY touched").fetchall()) == {1: 3000}
    # No batch ran before the standby was let go, and the wait was logged with its reason.
    assert released_at and batches and batches[0].finished_at > released_at[0]
    messages = [r.getMessage() for r in caplog.records if r.name == "lockgate.controller.throttle"]
    waits = [m for m in messages if ": waiting: replica replay lag " in m]
    assert waits and waits[0].startswith("batched UPDATE items (line 2): waiting: replica replay lag ")
    assert "exceeds max_replica_lag 1s" in waits[0]
    assert "batched UPDATE items (line 2): going on" in messages


def test_wal_receivers_that_never_replay_are_not_replicas(
    pair: tuple[PostgresServer, Standby], conn: psycopg.Connection, standby: Standby
) -> None:
    """pg_receivewal (and Barman, pg_basebackup) report no replay position, yet PostgreSQL shows
    them a replay_lag that grows as long as they stay connected."""
    primary = pair[0]
    target = Path(tempfile.mkdtemp(prefix="lockgate-receivewal-"))
    cmd = [
        str(primary.bindir / "pg_receivewal"), "-D", str(target), "-s", "1", "--no-loop",
        "-d", f"host=127.0.0.1 port={primary.port} user=postgres application_name=archiver",
    ]
    if primary.as_root:
        shutil.chown(target, SERVER_USER)
        cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
    receiver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        shown: float | None = None
        deadline = time.monotonic() + 15
        while shown is None or shown <= MAX_LAG_S:
            assert receiver.poll() is None, "pg_receivewal ended"
            assert time.monotonic() < deadline, f"pg_receivewal's replay_lag never grew: {shown}"
            row = conn.execute(
                "SELECT replay_lsn, extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication"
                " WHERE application_name = 'archiver'"
            ).fetchone()
            if row is None:
                write_wal(conn)  # not connected yet; once it is, it needs WAL sent after it joined
            else:
                assert row[0] is None
                shown = row[1]
            time.sleep(0.1)
        standby.wait_caught_up()
        assert hold(conn) is None
        lag = replica_lag(conn)
        assert lag is not None and lag < MAX_LAG_S  # the standby's, not the archiver's
    finally:
        receiver.terminate()
        receiver.wait(10)
        shutil.rmtree(target, ignore_errors=True)


def test_without_pg_read_all_stats_a_lagging_standby_is_not_seen(
    db: str, conn: psycopg.Connection, standby: Standby
) -> None:
    role = f"lag_watcher_{os.getpid()}"
    conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        standby.set_apply_delay(DELAY)
        until_held(conn, keep_writing=True)
        with psycopg.connect(db, user=role, autocommit=True) as watcher:
            hidden = watcher.execute("SELECT replay_lsn, replay_lag FROM pg_stat_replication").fetchall()
            assert hidden == [(None, None)]
            assert replica_lag(watcher) is None
            conn.execute(f"GRANT pg_read_all_stats TO {role}")
            write_wal(conn)
            lag = replica_lag(watcher)
            assert lag is not None and lag > MAX_LAG_S
    finally:
        conn.execute(f"DROP ROLE {role}")
