"""`-- lockgate:timeout`: one migration's lock_timeout / statement_timeout instead of the configured ones.

The configured values in these tests are long (10 s, 1 min) and the overrides short, so a test
that finishes quickly proves the override is what acted; `SHOW`-style gates and a down file that
checks `current_setting` prove where it applies, and where it does not (the next migration).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from applyhelp import add, execute, fast_settings, scalar

from lockgate.controller import db, plan
from lockgate.controller.cli import main
from lockgate.controller.engine import Engine
from lockgate.hooks import migrationset
from lockgate.hooks.directives import Timeout
from lockgate.hooks.errors import InputError
from lockgate.hooks.sqlmodel import parse_sql

# The session as a gate sees it: recorded in the results, not judged.
SESSION_GATE = (
    "-- Gate: session\n"
    "SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS statement;\n"
)


def _lockgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockgate.controller", *args], cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=60)


# -- the directive (pure) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("-- lockgate:timeout lock=5s statement=30m", Timeout(line=2, lock_s=5.0, statement_s=1800.0)),
        ("-- lockgate:timeout lock=200ms", Timeout(line=2, lock_s=0.2)),
        ("-- lockgate:timeout statement=0s", Timeout(line=2, statement_s=0.0)),
    ],
)
def test_the_directive_gives_the_file_its_timeouts(line: str, expected: Timeout) -> None:
    sql = parse_sql(Path("1_a.up.sql"), f"-- Description: x\n{line}\nALTER TABLE t ADD c int;\n")
    assert sql.timeout == expected
    assert sql.statements[0].directives == ()  # file level: attached to no statement


def test_a_file_without_the_directive_has_no_timeouts() -> None:
    assert parse_sql(Path("1_a.up.sql"), "-- lockgate:no-transaction\nSELECT 1;").timeout is None


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        ("1_a.up.sql", "-- lockgate:timeout", 1, "needs lock=DURATION, statement=DURATION or both"),
        ("1_a.up.sql", "SELECT 1;\n-- lockgate:timeout lock=soon", 2, "lock='soon' is not a duration"),
        ("1_a.up.sql", "-- lockgate:timeout lock=5", 1, "lock='5' is not a duration"),
        ("1_a.up.sql", "-- lockgate:timeout idle=5s", 1, "unknown timeout option 'idle' (expected lock, statement)"),
        ("1_a.up.sql", "-- lockgate:timeout lock", 1, "timeout option 'lock' must be key=value"),
        ("1_a.up.sql", "-- lockgate:timeout lock=1s lock=2s", 1, "timeout option 'lock' given twice"),
        ("1_a.up.sql", "-- lockgate:timeout lock=0s", 1, "lock=0s would wait for a lock forever"),
        ("1_a.up.sql", "-- lockgate:timeout statement=0.5ms", 1, "statement='0.5ms' is less than 1ms"),
        ("1_a.up.sql", "-- lockgate:timeout lock=1s\nSELECT 1;\n-- lockgate:timeout statement=1m", 3,
         "a second lockgate:timeout (the first is on line 1)"),
        ("1_a.down.sql", "SELECT 1;\n-- lockgate:timeout lock=1s", 2, "lockgate:timeout belongs in the up file"),
        ("1_a.validate.sql", "-- lockgate:timeout statement=1m\nSELECT true;", 1,
         "lockgate:timeout belongs in the up file"),
    ],
)
def test_bad_directives_are_input_errors_at_their_line(name: str, text: str, line: int, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_sql(Path(name), text)
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (line, 1)
    assert message in problem.message and "\n" not in problem.message


# -- the CLI: bad input is exit 2, one line naming file and line ------------------------------


@pytest.mark.parametrize(
    ("kind", "text", "location", "message"),
    [
        ("up", "-- lockgate:timeout lock=5s\nSELECT 1;\n-- lockgate:timeout lock=1s\n",
         ":3:1:", "a second lockgate:timeout"),
        ("down", "SELECT 1;\n-- lockgate:timeout statement=1m\n", ":2:1:", "lockgate:timeout belongs in the up file"),
        ("up", "SELECT 1;\n-- lockgate:timeout wait=1s\n", ":2:1:", "unknown timeout option 'wait'"),
    ],
)
def test_lint_and_check_report_a_bad_directive_as_one_line_and_exit_2(
    tmp_path: Path, kind: str, text: str, location: str, message: str
) -> None:
    directory = tmp_path / "migrations"
    add(directory, "1", "a", up="SELECT 1;\n", down="SELECT 1;\n")
    name = f"1_a.{kind}.sql"
    (directory / name).write_text(text)
    lint = _lockgate("lint", f"migrations/{name}", cwd=tmp_path)
    assert lint.returncode == 2, lint.stdout + lint.stderr
    (line,) = [line for line in lint.stdout.splitlines() if name in line]
    assert line.startswith(f"migrations/{name}{location} LG000 {message}")
    check = _lockgate("check", cwd=tmp_path)
    assert check.returncode == 2, check.stdout + check.stderr
    assert "Traceback" not in check.stderr and len(check.stderr.strip().splitlines()) == 1
    assert f"{name}{location} {message}" in check.stderr


def test_apply_refuses_a_bad_directive_before_anything_is_applied(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "fine", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    add(tmp_path, "2", "bad", up="-- lockgate:timeout lock=0ms\nCREATE TABLE u (id int);", down="DROP TABLE u;")
    result = _lockgate("apply", "--dir", str(tmp_path), "--dsn", db, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"{tmp_path / '2_bad.up.sql'}:1:1: lock=0ms would wait for a lock forever, " \
        "and every query queued behind it would wait too\n"
    assert scalar(db, "SELECT to_regclass('t')") is None


# -- the engine against a real server -------------------------------------------------------


def test_a_lock_timeout_override_is_what_times_out_and_what_the_failure_names(db: str, tmp_path: Path) -> None:
    execute(db, "CREATE TABLE t (id int)")
    add(tmp_path, "1", "add_column", up="-- lockgate:timeout lock=200ms\nALTER TABLE t ADD c int;",
        down="ALTER TABLE t DROP COLUMN c;")
    blocker = psycopg.connect(db, application_name="report-job")
    blocker.execute("SELECT count(*) FROM t")  # ACCESS SHARE until the transaction ends
    try:
        with Engine(fast_settings(lock_timeout=10, lock_retries=1), db) as engine:
            started = time.monotonic()
            outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
            elapsed = time.monotonic() - started
            events = engine.ledger.events("1")
            error = engine.ledger_entries()["1"].error
            session = engine.conn.execute("SHOW lock_timeout").fetchone()
    finally:
        blocker.close()
    assert outcome.status == "failed", outcome.reason
    named = "lock timeout (0.2s, set by the up file's -- lockgate:timeout on line 1) 2 times; blocked by pid"
    assert named in outcome.reason
    assert error is not None and "lock timeout (0.2s, set by the up file's -- lockgate:timeout" in error
    assert [d["lock_timeout_s"] for e, d in events if e == "lock timeout"] == [0.2]
    assert elapsed < 5, "two tries of the configured 10 s would take 20 s"
    assert session == ("10s",), "the applier session is back to the configured lock_timeout"
    assert scalar(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'") == 1


def test_a_statement_timeout_override_cancels_a_slow_step_and_the_next_migration_runs_as_configured(
    db: str, tmp_path: Path
) -> None:
    add(tmp_path, "1", "slow", up="-- lockgate:timeout statement=300ms\nCREATE TABLE a (id int);\nSELECT pg_sleep(2);",
        down="DROP TABLE a;")
    add(tmp_path, "2", "plain", up="CREATE TABLE b (id int);", down="DROP TABLE b;", validate=SESSION_GATE)
    slow, plain = migrationset.load(tmp_path).migrations
    with Engine(fast_settings(lock_timeout=10, statement_timeout=60), db) as engine:
        started = time.monotonic()
        first = engine.apply(slow)
        elapsed = time.monotonic() - started
        second = engine.apply(plain)
    assert first.status == "failed"
    assert "canceling statement due to statement timeout (SQLSTATE 57014)" in first.reason
    assert first.where == f"{tmp_path / '1_slow.up.sql'}:3:1"
    assert elapsed < 1.9, "pg_sleep(2) was cancelled"
    assert scalar(db, "SELECT to_regclass('a')") is None
    assert second.status == "applied", second.reason
    assert [g.detail for g in second.validation] == ["lock, statement: 10s, 1min"]


def test_what_a_migration_sets_on_its_session_ends_with_it(db: str, tmp_path: Path) -> None:
    # A plain SET outlives its transaction: without a reset the next migration would run with it.
    add(tmp_path, "1", "sets", up="SET statement_timeout = '1s';\nSET search_path = pg_catalog;\n"
        "CREATE TABLE public.a (id int);", down="DROP TABLE public.a;")
    add(tmp_path, "2", "plain", up="CREATE TABLE b (id int);", down="DROP TABLE b;",
        validate=SESSION_GATE + "SELECT current_setting('search_path') AS path;\n")
    sets, plain = migrationset.load(tmp_path).migrations
    with Engine(fast_settings(lock_timeout=10, statement_timeout=60), db) as engine:
        assert engine.apply(sets).status == "applied"
        second = engine.apply(plain)
    assert second.status == "applied", second.reason
    assert [g.detail for g in second.validation] == ["lock, statement: 10s, 1min", 'path: "$user", public']
    assert scalar(db, "SELECT to_regclass('public.b')") is not None


def test_a_gate_is_cancelled_by_the_statement_timeout_override(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "slow_gate", up="-- lockgate:timeout statement=300ms\nCREATE TABLE a (id int);",
        down="DROP TABLE a;", validate="-- Gate: slow\nSELECT pg_sleep(2) IS NOT NULL AS ok;")
    with Engine(fast_settings(statement_timeout=60), db) as engine:
        outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
    assert outcome.status == "failed"
    (gate,) = outcome.validation
    assert (gate.passed, gate.detail) == (False, "canceling statement due to statement timeout")
    assert scalar(db, "SELECT to_regclass('a')") is None


# A down file that fails unless it runs under lock=1500ms statement=45s.
_DOWN_CHECKS_ITS_TIMEOUTS = (
    "DO $$ BEGIN\n"
    "    IF current_setting('lock_timeout') <> '1500ms' OR current_setting('statement_timeout') <> '45s' THEN\n"
    "        RAISE EXCEPTION 'down ran with lock_timeout % and statement_timeout %',\n"
    "            current_setting('lock_timeout'), current_setting('statement_timeout');\n"
    "    END IF;\n"
    "END $$;\n"
)
_TWO_STEPS = (
    "-- lockgate:no-transaction\n"
    "-- lockgate:timeout lock=1500ms statement=45s\n"
    "CREATE TABLE {0}_a (id int);\n"
    "CREATE TABLE {0}_b (id int);\n"
)


def test_gates_the_automatic_rollback_and_a_revert_run_under_the_override(db: str, tmp_path: Path) -> None:
    down = _DOWN_CHECKS_ITS_TIMEOUTS + "DROP TABLE {0}_b;\nDROP TABLE {0}_a;\n"
    add(tmp_path, "1", "kept", up=_TWO_STEPS.format("kept"), down=down.format("kept"), validate=SESSION_GATE)
    add(tmp_path, "2", "fails", up=_TWO_STEPS.format("fails"), down=down.format("fails"),
        validate=SESSION_GATE + "-- Gate: no\nSELECT false AS ok;\n")
    kept, fails = migrationset.load(tmp_path).migrations
    with Engine(fast_settings(lock_timeout=10, statement_timeout=60), db) as engine:
        applied = engine.apply(kept)
        failed = engine.apply(fails)  # steps committed: the down file runs
        reverted = engine.rollback("1")  # the down text from the ledger, the timeouts from the up text
        session = engine.conn.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
        after = session.fetchone()
    assert applied.status == "applied", applied.reason
    assert [g.detail for g in applied.validation] == ["lock, statement: 1500ms, 45s"]
    assert (failed.status, failed.schema_restored) == ("rolled_back", True), failed.reason
    assert failed.validation[0].detail == "lock, statement: 1500ms, 45s"
    assert (reverted.status, reverted.schema_restored) == ("rolled_back", True), reverted.reason
    assert after == ("10s", "1min")
    assert scalar(db, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'kept%' OR tablename LIKE 'fails%'") == 0


def test_plan_shows_the_effective_timeouts_of_a_migration_that_overrides_them(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    add(tmp_path, "1", "plain", up="CREATE TABLE a (id int);", down="DROP TABLE a;")
    add(tmp_path, "2", "quick_lock", up="-- lockgate:timeout lock=500ms\nCREATE TABLE b (id int);",
        down="DROP TABLE b;")
    add(tmp_path, "3", "no_limit", up="SELECT 1;\n-- lockgate:timeout statement=0s lock=3s\nSELECT 2;",
        down="SELECT 1;")
    monkeypatch.setenv("LOCKGATE_STATEMENT_TIMEOUT", "90s")
    assert main(["plan", "--dir", str(tmp_path), "--dsn", db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "timeouts" in line] == [
        "  timeouts (-- lockgate:timeout, line 1): lock_timeout 0.5s, statement_timeout 90s",
        "  timeouts (-- lockgate:timeout, line 2): lock_timeout 3s, statement_timeout none",
    ]
    assert out[out.index("  timeouts (-- lockgate:timeout, line 1): lock_timeout 0.5s, statement_timeout 90s") - 1] \
        .startswith("2_quick_lock [pending]")
    with psycopg.connect(db, autocommit=True) as conn:
        plain, quick, _ = plan.build(conn, migrationset.load(tmp_path), ledger_schema="lockgate")
    assert plain.timeouts is None
    assert quick.timeouts is not None and (quick.timeouts.lock_timeout_s, quick.timeouts.statement_timeout_s) == (
        0.5, 300.0,  # without settings: the defaults
    )


def test_the_blocker_watcher_samples_a_third_of_the_lock_timeout_apart_but_never_faster_than_its_floor() -> None:
    assert db.watch_interval(3.0) == 1.0
    assert db.watch_interval(0.005) == db.MIN_WATCH_S == 0.05  # `lock=5ms` would otherwise poll every 2 ms
    assert db.watch_interval(0) == 0.0  # no lock timeout: nothing to explain, no watcher
