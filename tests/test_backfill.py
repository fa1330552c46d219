"""Batched, resumable backfills against a real PostgreSQL."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lockgate.controller import progress
from lockgate.controller.backfill import BackfillError, BatchDone, BatchResult, next_size, run_batched
from lockgate.controller.cli import main
from lockgate.controller.config import Settings, load
from lockgate.hooks.sqlmodel import Statement, parse_sql

ROWS = 20_000
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


@pytest.fixture
def db(major_db: str) -> str:
    """Every test of this module runs on each server build: the core of apply, rollback and backfill."""
    return major_db



def statement(text: str, directive: str = "size=1000") -> Statement:
    return parse_sql(Path("t.up.sql"), f"-- lockgate:batch {directive}\n{text};\n").statements[0]


def settings(**overrides: object) -> Settings:
    return load(**overrides)


def make_items(conn: psycopg.Connection, rows: int = ROWS, key: str = "bigint", key_expr: str = "g") -> None:
    conn.execute(
        f"CREATE TABLE items (id {key} PRIMARY KEY, n bigint NOT NULL, grp int NOT NULL,"
        " touched int NOT NULL DEFAULT 0, label text)"
    )
    conn.execute(
        f"INSERT INTO items (id, n, grp) SELECT {key_expr}, g, g %% 10 FROM generate_series(1, %s) g", (rows,)
    )


def touched(conn: psycopg.Connection) -> dict[int, int]:
    """How many rows were touched how many times."""
    return dict(conn.execute("SELECT touched, count(*) FROM items GROUP BY touched").fetchall())


NO_CHECKPOINT = (None, None, 0, None, None)


def checkpoint(conn: psycopg.Connection) -> tuple[Any, ...]:
    """(last_key, rows_done, batches_done, batch_size, finished), NO_CHECKPOINT before the first run."""
    if conn.execute("SELECT to_regclass('lockgate.batch_checkpoints')").fetchone() == (None,):
        return NO_CHECKPOINT
    row = conn.execute(
        "SELECT last_key, rows_done, batches_done, batch_size, finished FROM lockgate.batch_checkpoints"
    ).fetchone()
    return NO_CHECKPOINT if row is None else row


def run(db: str, stmt: Statement, **kwargs: object) -> BatchResult:
    s = kwargs.pop("settings", None) or settings()
    return run_batched(db, settings=s, version="20240101000000", step=1, statement=stmt, **kwargs)  # type: ignore[arg-type]


def test_every_row_is_updated_exactly_once(db: str, conn: psycopg.Connection) -> None:
    make_items(conn)
    result = run(db, statement("UPDATE items SET touched = touched + 1"))
    assert touched(conn) == {1: ROWS}
    assert (result.rows, result.batches, result.completed, result.resumed) == (ROWS, 20, True, False)
    assert checkpoint(conn) == (str(ROWS), ROWS, 20, 1000, True)


def test_a_finished_backfill_runs_no_batch_again(db: str, conn: psycopg.Connection) -> None:
    make_items(conn, 3000)
    stmt = statement("UPDATE items SET touched = touched + 1")
    run(db, stmt)
    again = run(db, stmt)
    assert touched(conn) == {1: 3000}
    assert (again.rows, again.batches, again.completed, again.resumed) == (3000, 3, True, True)


def test_only_rows_matching_where_are_counted(db: str, conn: psycopg.Connection) -> None:
    make_items(conn)
    result = run(db, statement("DELETE FROM items WHERE grp IN (1, 2)"))
    assert result.rows == ROWS // 5
    assert conn.execute("SELECT count(*) FROM items WHERE grp IN (1, 2)").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (ROWS - ROWS // 5,)


@pytest.mark.parametrize(
    ("key", "key_expr"),
    [
        ("text", "lpad(g::text, 6, '0') || 'k'"),
        ("uuid", "md5(g::text)::uuid"),
        ("timestamptz", "timestamptz '2024-01-01 00:00:00.123456+00' + g * interval '1 minute 1.5 second'"),
        ("int", "g * 7 - 50000"),
    ],
)
def test_keys_of_every_orderable_type(db: str, conn: psycopg.Connection, key: str, key_expr: str) -> None:
    make_items(conn, 5000, key=key, key_expr=key_expr)
    result = run(db, statement("UPDATE items SET touched = touched + 1", "size=300"))
    assert touched(conn) == {1: 5000}
    assert result.batches == 17
    largest = conn.execute("SELECT i.id::text FROM items AS i ORDER BY i.id DESC LIMIT 1").fetchone()
    assert (checkpoint(conn)[0],) == largest


def test_update_from_and_with_forms(db: str, conn: psycopg.Connection) -> None:
    make_items(conn, 5000)
    conn.execute("CREATE TABLE groups (id int PRIMARY KEY, name text NOT NULL)")
    conn.execute("INSERT INTO groups SELECT g, 'group ' || g FROM generate_series(0, 9) g")
    run(db, statement(
        "UPDATE items AS i SET label = g.name, touched = i.touched + 1 FROM groups AS g WHERE g.id = i.grp"
    ))
    assert conn.execute("SELECT count(*) FROM items WHERE label = 'group ' || grp").fetchone() == (5000,)
    with psycopg.connect(db, autocommit=True) as other:
        other.execute("UPDATE items SET touched = 0")
    cte = (
        "WITH odd AS (SELECT id FROM groups WHERE id % 2 = 1) "
        "UPDATE items SET touched = touched + 1 FROM odd WHERE odd.id = items.grp"
    )
    result = run_batched(db, settings=settings(), version="20240101000000", step=2, statement=statement(cte))
    assert result.rows == 2500
    assert touched(conn) == {0: 2500, 1: 2500}


def test_the_example_migrations_backfill_matches_its_validation(db: str, conn: psycopg.Connection) -> None:
    up = MIGRATIONS / "20240101000000_create_customers_and_orders.up.sql"
    conn.execute(up.read_text())
    conn.execute("INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, 3000) g")
    conn.execute(
        "INSERT INTO orders (customer_id, total_cents) SELECT 1 + (g * 7919) % 2500, (g * 104729) % 40000"
        " FROM generate_series(1, 9000) g"
    )
    tier = MIGRATIONS / "20240115093000_add_customer_tier.up.sql"
    statements = parse_sql(tier, tier.read_text()).statements
    for stmt in statements[:-1]:
        conn.execute(stmt.text)
    result = run(db, statements[-1])
    assert result.completed and result.rows == 3000
    tiers: dict[str | None, int] = dict(conn.execute("SELECT tier, count(*) FROM customers GROUP BY tier").fetchall())
    assert None not in tiers and set(tiers) == {"bronze", "silver", "gold"}
    validate = MIGRATIONS / "20240115093000_add_customer_tier.validate.sql"
    conn.execute(parse_sql(validate, validate.read_text()).statements[2].text)  # raises on a wrong tier


def test_rows_inserted_after_the_start_are_left_to_the_default(db: str, conn: psycopg.Connection) -> None:
    make_items(conn, 3000)

    def insert_late(done: BatchDone) -> None:
        if done.number == 1:
            with psycopg.connect(db, autocommit=True) as other:
                other.execute("INSERT INTO items (id, n, grp) VALUES (999999, 0, 0)")

    run(db, statement("UPDATE items SET touched = touched + 1"), on_batch=insert_late)
    assert conn.execute("SELECT touched FROM items WHERE id = 999999").fetchone() == (0,)
    assert touched(conn) == {1: 3000, 0: 1}


def test_stop_finishes_the_current_batch_and_a_later_run_resumes(db: str, conn: psycopg.Connection) -> None:
    make_items(conn)
    stop = threading.Event()

    def stop_after_three(done: BatchDone) -> None:
        if done.number == 3:
            stop.set()

    stmt = statement("UPDATE items SET touched = touched + 1")
    first = run(db, stmt, stop=stop, on_batch=stop_after_three)
    assert (first.completed, first.batches, first.rows) == (False, 3, 3000)
    assert touched(conn) == {1: 3000, 0: ROWS - 3000}
    assert conn.execute("SELECT max(id) FROM items WHERE touched = 1").fetchone() == (3000,)
    second = run(db, stmt)
    assert (second.completed, second.resumed, second.rows, second.batches) == (True, True, ROWS, 20)
    assert touched(conn) == {1: ROWS}


CHILD = """
import sys
from pathlib import Path
from typing import Any
from lockgate.controller import progress
from lockgate.controller.backfill import run_batched
from lockgate.controller.config import Settings, load
from lockgate.hooks.sqlmodel import parse_sql

stmt = parse_sql(Path("t.up.sql"), sys.argv[2]).statements[0]
run_batched(sys.argv[1], settings=Settings(), version="20240101000000", step=1, statement=stmt)
"""


def test_resumes_after_sigkill_without_losing_or_repeating_a_batch(db: str, conn: psycopg.Connection) -> None:
    make_items(conn)
    text = "-- lockgate:batch size=500 pause=20ms\nUPDATE items SET touched = touched + 1;\n"
    child = subprocess.Popen([sys.executable, "-c", CHILD, db, text], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while checkpoint(conn)[2] < 3:
            assert child.poll() is None and time.monotonic() < deadline, "the child ended before 3 batches"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    # Wait until the server has rolled back the killed client's open transaction, if any.
    gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'lockgate backfill'"
    while conn.execute(gone).fetchone() != (True,):
        time.sleep(0.02)
    last_key, rows_done, batches, _, finished = checkpoint(conn)
    assert not finished and 3 <= batches < 40
    # The data and the checkpoint agree: every batch recorded is applied, no other one is.
    assert touched(conn) == {1: rows_done, 0: ROWS - rows_done}
    assert conn.execute("SELECT max(id)::text FROM items WHERE touched = 1").fetchone() == (last_key,)
    result = run(db, statement("UPDATE items SET touched = touched + 1", "size=500"))
    assert (result.completed, result.resumed, result.rows) == (True, True, ROWS)
    assert touched(conn) == {1: ROWS}


def test_pause_switch_holds_batches_until_resume(
    db: str, conn: psycopg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    make_items(conn, 3000)
    assert main(["pause", "--dsn", db]) == 0
    assert "paused" in capsys.readouterr().out
    results: list[BatchResult] = []
    worker = threading.Thread(
        target=lambda: results.append(run(db, statement("UPDATE items SET touched = touched + 1")))
    )
    worker.start()
    # The runner is waiting: its checkpoint exists but not one batch ran.
    deadline = time.monotonic() + 30
    while checkpoint(conn) == NO_CHECKPOINT:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.0)
    assert worker.is_alive()
    assert checkpoint(conn)[2] == 0
    assert touched(conn) == {0: 3000}
    assert main(["resume", "--dsn", db]) == 0
    worker.join(30)
    assert not worker.is_alive() and results[0].completed
    assert touched(conn) == {1: 3000}


def test_stop_while_paused_returns_without_a_batch(db: str, conn: psycopg.Connection) -> None:
    make_items(conn, 3000)
    assert main(["pause", "--dsn", db]) == 0
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    result = run(db, statement("UPDATE items SET touched = touched + 1"), stop=stop)
    assert (result.completed, result.batches) == (False, 0)


def test_a_held_row_lock_is_retried_then_split_then_fails_naming_the_range(
    db: str, conn: psycopg.Connection
) -> None:
    make_items(conn, 1000)
    fast = settings(batch_lock_timeout="50ms", lock_retries=1, retry_backoff=0.01)
    with psycopg.connect(db) as locker:
        locker.execute("SELECT 1 FROM items WHERE id = 250 FOR UPDATE")
        with pytest.raises(BackfillError) as failure:
            run(db, statement("UPDATE items SET touched = touched + 1", "size=100"), settings=fast)
        locker.rollback()
    message = str(failure.value)
    assert "batched UPDATE items (line 2)" in message
    assert "keys (249, 250]" in message and "lock timeout" in message
    # Splitting got the batches right up to the locked row.
    assert touched(conn) == {1: 249, 0: 751}
    assert checkpoint(conn)[:2] == ("249", 249)


def test_a_lock_released_during_retries_lets_the_batch_through(db: str, conn: psycopg.Connection) -> None:
    make_items(conn, 1000)
    patient = settings(batch_lock_timeout="50ms", lock_retries=5, retry_backoff=0.2)
    locker = psycopg.connect(db)
    locker.execute("SELECT 1 FROM items WHERE id = 250 FOR UPDATE")

    def release_when_blocked(done: BatchDone) -> None:
        if done.number == 2:  # the next batch, (200, 300], needs the locked row
            threading.Timer(0.1, locker.rollback).start()

    try:
        result = run(db, statement("UPDATE items SET touched = touched + 1", "size=100"),
                     settings=patient, on_batch=release_when_blocked)
    finally:
        locker.close()
    assert result.completed and result.batches == 10  # no split was needed
    assert touched(conn) == {1: 1000}


@pytest.mark.parametrize(
    ("ddl", "text", "why"),
    [
        ("CREATE TABLE t (a int, b int, PRIMARY KEY (a, b))", "UPDATE t SET b = b", "composite primary key"),
        ("CREATE TABLE t (a int)", "UPDATE t SET a = 1", "has no primary key"),
        ("CREATE TABLE t (a int PRIMARY KEY, j json)", "UPDATE t SET a = 1", "no column 'nope'"),
        ("CREATE TABLE t (a int PRIMARY KEY, j json)", "UPDATE t SET a = 1", "json has no ordering"),
        ("CREATE TABLE t (a int PRIMARY KEY, k int); INSERT INTO t VALUES (1, NULL)", "UPDATE t SET a = 1",
         "NULL in some rows"),
        ("CREATE TABLE t (a int PRIMARY KEY)", "UPDATE t SET a = 1 RETURNING a", "RETURNING"),
        ("", "UPDATE missing SET a = 1", "does not exist"),
    ],
)
def test_refuses_statements_it_cannot_batch(db: str, conn: psycopg.Connection, ddl: str, text: str, why: str) -> None:
    if ddl:
        conn.execute(ddl)
    key = {"no column 'nope'": " key=nope", "json has no ordering": " key=j", "NULL in some rows": " key=k"}
    with pytest.raises(BackfillError, match=why) as failure:
        run(db, statement(text, "size=10" + key.get(why, "")))
    assert "(line 2)" in str(failure.value)


def test_adaptive_size_moves_toward_the_target_within_bounds() -> None:
    assert next_size(1000, 0.5, start=1000, target_s=0.25) == 500
    assert next_size(1000, 2.0, start=1000, target_s=0.25) == 500  # at most halved per step
    assert next_size(1000, 0.01, start=1000, target_s=0.25) == 2000  # at most doubled per step
    assert next_size(100, 1.0, start=1000, target_s=0.25) == 100  # not below 100
    assert next_size(90_000, 0.01, start=1000, target_s=0.25) == 100_000  # not above 100× start
    assert next_size(250, 0.01, start=1000, target_s=None) == 500  # after a split, back toward start
    assert next_size(1000, 9.0, start=1000, target_s=None) == 1000


def test_progress_is_logged_as_plain_lines_off_a_terminal(
    db: str, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    make_items(conn, 3000)
    caplog.set_level(logging.INFO, logger="lockgate.controller.progress")
    run(db, statement("UPDATE items SET touched = touched + 1"))
    lines = [r.getMessage() for r in caplog.records if r.name == "lockgate.controller.progress"]
    assert lines and lines[-1].startswith("batched UPDATE items (line 2): finished, 3,000 rows in 3 batches")
    assert "rows/s" in lines[-1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal() -> None:
    screen = _Terminal()
    shown = progress.start("backfill", 10_000, stream=screen)
    shown.batch_done(rows=4000, keys=5000, batch_size=5000)
    shown.close(completed=True)
    out = screen.getvalue()
    assert "backfill" in out and "4,000 rows" in out and "rows/s" in out


def segments(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """(segment, start_key, last_key, end_key, rows_done, finished) of every segment, in key order."""
    return conn.execute(
        "SELECT segment, start_key, last_key, end_key, rows_done, finished FROM lockgate.batch_checkpoints"
        " ORDER BY segment"
    ).fetchall()


def test_workers_split_the_keys_into_contiguous_segments_run_at_once(db: str, conn: psycopg.Connection) -> None:
    make_items(conn)
    conn.execute("ALTER TABLE items ADD COLUMN done_by int")
    stmt = statement("UPDATE items SET touched = touched + 1, done_by = pg_backend_pid()", "size=500 workers=3")
    seen: list[BatchDone] = []
    result = run(db, stmt, on_batch=seen.append)
    assert touched(conn) == {1: ROWS}
    assert (result.rows, result.completed, result.resumed) == (ROWS, True, False)
    # Three sessions did the work, each on its own third of the keys.
    assert conn.execute("SELECT count(DISTINCT done_by) FROM items").fetchone() == (3,)
    assert segments(conn) == [
        (0, None, "6666", "6666", 6666, True),
        (1, "6666", "13333", "13333", 6667, True),
        (2, "13333", str(ROWS), str(ROWS), 6667, True),
    ]
    # on_batch saw every batch once, numbered in the order they finished.
    assert [d.number for d in seen] == list(range(1, result.batches + 1))
    assert sum(d.rows for d in seen) == ROWS


def test_a_table_with_fewer_keys_than_workers_gets_one_segment_a_key(db: str, conn: psycopg.Connection) -> None:
    make_items(conn, 2)
    result = run(db, statement("UPDATE items SET touched = touched + 1", "workers=4"))
    assert touched(conn) == {1: 2} and result.completed
    assert [(s[1], s[3]) for s in segments(conn)] == [(None, "1"), ("1", "2")]


def test_workers_stop_together_and_a_later_run_resumes_every_segment(db: str, conn: psycopg.Connection) -> None:
    make_items(conn)
    stop = threading.Event()

    def stop_after_four(done: BatchDone) -> None:
        if done.number == 4:
            stop.set()

    stmt = statement("UPDATE items SET touched = touched + 1", "size=500 workers=2")
    first = run(db, stmt, stop=stop, on_batch=stop_after_four)
    assert not first.completed and 4 <= first.batches <= 6  # each worker finishes the batch it is in
    assert touched(conn) == {1: first.rows, 0: ROWS - first.rows}
    # What each segment's checkpoint says is done is exactly what is done.
    for _, start, last, _, rows_done, _ in segments(conn):
        lower = int(start or 0)
        done = conn.execute("SELECT count(*) FROM items WHERE touched = 1 AND id > %s AND id <= %s",
                            (lower, int(last or lower))).fetchone()
        assert done == (rows_done,)
    # The directive changed since: the stored segments are finished as they were cut.
    second = run(db, statement("UPDATE items SET touched = touched + 1", "size=500 workers=5"))
    assert (second.completed, second.resumed, second.rows) == (True, True, ROWS)
    assert touched(conn) == {1: ROWS}
    assert len(segments(conn)) == 2


def test_a_failing_worker_stops_the_others_and_names_its_range(db: str, conn: psycopg.Connection) -> None:
    make_items(conn)
    # The second half's second batch has a row the statement cannot update: 1/(n - 10700) divides by zero.
    stmt = statement("UPDATE items SET touched = touched + 1, n = n + 1 / (n - 10700)",
                     "size=500 workers=2 pause=50ms")
    with pytest.raises(BackfillError) as failure:
        run(db, stmt)
    assert "keys (10500, 11000]" in str(failure.value) and "division by zero" in str(failure.value)
    first_half, second_half = segments(conn)
    assert second_half[2:6] == ("10500", "20000", 500, False)
    # The first worker stopped after the batch it was in, far from the end of its 20 batches.
    assert not first_half[5] and first_half[4] <= 2000
    assert touched(conn) == {1: first_half[4] + 500, 0: ROWS - first_half[4] - 500}


def test_a_checkpoint_table_from_before_segments_is_upgraded_and_resumed(
    db: str, conn: psycopg.Connection
) -> None:
    make_items(conn, 3000)
    conn.execute("CREATE SCHEMA lockgate")
    conn.execute(
        "CREATE TABLE lockgate.batch_checkpoints (version text NOT NULL, step int NOT NULL,"
        " key_column text NOT NULL, key_type text NOT NULL, last_key text, end_key text,"
        " rows_done bigint NOT NULL DEFAULT 0, batches_done bigint NOT NULL DEFAULT 0, batch_size int NOT NULL,"
        " started_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),"
        " finished boolean NOT NULL DEFAULT false, PRIMARY KEY (version, step))"
    )
    # A run of the earlier release stopped after the first 1,000 keys.
    conn.execute("UPDATE items SET touched = 1 WHERE id <= 1000")
    conn.execute(
        "INSERT INTO lockgate.batch_checkpoints (version, step, key_column, key_type, last_key, end_key,"
        " rows_done, batches_done, batch_size) VALUES ('20240101000000', 1, 'id', 'bigint', '1000', '3000',"
        " 1000, 1, 1000)"
    )
    result = run(db, statement("UPDATE items SET touched = touched + 1", "workers=2"))
    assert (result.completed, result.resumed, result.rows, result.batches) == (True, True, 3000, 3)
    assert touched(conn) == {1: 3000}
    assert segments(conn) == [(0, None, "3000", "3000", 3000, True)]


def test_batches_run_without_jit_compilation(db: str, conn: psycopg.Connection) -> None:
    # Compiling a batch's plan would cost more than a short batch saves from it.
    make_items(conn, 2000)
    conn.execute(sql.SQL("ALTER DATABASE {} SET jit = on").format(sql.Identifier(conn.info.dbname)))
    run(db, statement("UPDATE items SET label = current_setting('jit')", "size=500 workers=2"))
    assert conn.execute("SELECT label, count(*) FROM items GROUP BY label").fetchall() == [("off", 2000)]


def test_a_stop_while_a_batch_waits_for_locked_rows_is_an_interruption_not_a_failure(
    db: str, conn: psycopg.Connection
) -> None:
    make_items(conn, 1000)
    patient = settings(batch_lock_timeout="50ms", lock_retries=20, retry_backoff=0.05)
    stop = threading.Event()
    with psycopg.connect(db) as locker:
        locker.execute("SELECT 1 FROM items WHERE id = 250 FOR UPDATE")

        def stop_when_blocked(done: BatchDone) -> None:
            if done.number == 2:  # the next batch, (200, 300], waits on the locked row
                threading.Timer(0.3, stop.set).start()

        result = run(db, statement("UPDATE items SET touched = touched + 1", "size=100"),
                     settings=patient, stop=stop, on_batch=stop_when_blocked)
        locker.rollback()
    assert not result.completed  # interrupted: no BackfillError, so no rollback follows
    assert touched(conn) == {1: 200, 0: 800}
    assert checkpoint(conn)[:2] == ("200", 200)  # the next run resumes after the last committed batch
