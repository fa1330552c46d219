"""`lockgate apply`, `retry` and `resolve` as a user runs them: output lines and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from applyhelp import CREATE, WAITING_APPLIERS, add, example_copy, execute, only, scalar, seed

from lockgate.controller.cli import main
from lockgate.controller.ledger import lock_key


def _lockgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lockgate.controller", *args], capture_output=True, text=True,
                          check=False, timeout=120)


def test_apply_runs_the_example_set_then_has_nothing_to_do(db: str, tmp_path: Path) -> None:
    directory = example_copy(tmp_path)
    only(directory, CREATE)
    assert _lockgate("apply", "--dir", str(directory), "--dsn", db).returncode == 0
    seed(db)
    first = _lockgate("apply", "--dir", "migrations", "--dsn", db)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["applied", "20240115093000_add_customer_tier"],
        ["applied", "20240115093100_validate_customer_tier_check"],
        ["applied", "20240115093200_index_customers_tier"],
    ]
    assert "3 gates passed; rows customers 3000→3000, orders 6000→6000" in lines[0]
    again = _lockgate("apply", "--dir", "migrations", "--dsn", db)
    assert (again.returncode, again.stdout) == (0, "nothing to apply (4 migrations already applied)\n")


def test_bad_input_anywhere_is_exit_2_before_anything_is_applied(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "fine", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    add(tmp_path, "2", "broken", up="CREATE TABLE u (id int);", down="DROP TABLE u;",
        validate="-- Gate: ok\nSELEC true;")
    result = _lockgate("apply", "--dir", str(tmp_path), "--dsn", db)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{tmp_path / '2_broken.validate.sql'}:2:1: syntax error at or near")
    assert "Traceback" not in result.stderr
    assert scalar(db, "SELECT to_regclass('t')") is None


def test_apply_stops_at_the_first_failure_with_exit_1(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(tmp_path, "1", "fails", up="CREATE TABLE t (id int);\nINSERT INTO t VALUES (1 / 0);", down="DROP TABLE t;")
    add(tmp_path, "2", "after", up="CREATE TABLE u (id int);", down="DROP TABLE u;")
    assert main(["apply", "--dir", str(tmp_path), "--dsn", db, "--format", "json"]) == 1
    (outcome,) = json.loads(capsys.readouterr().out)
    assert (outcome["version"], outcome["status"]) == ("1", "failed")
    assert outcome["where"] == f"{tmp_path / '1_fails.up.sql'}:2:1"
    assert scalar(db, "SELECT to_regclass('u')") is None


def test_a_busy_applier_exits_1_and_wait_waits(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "t", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    key_holder = psycopg.connect(db, autocommit=True)
    key_holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("lockgate"),))
    busy = _lockgate("apply", "--dir", str(tmp_path), "--dsn", db)
    assert busy.returncode == 1
    assert f"another lockgate applier is running on this database (pid {key_holder.info.backend_pid}" in busy.stderr

    waited: list[subprocess.CompletedProcess[str]] = []
    waiter = threading.Thread(target=lambda: waited.append(_lockgate("apply", "--dir", str(tmp_path), "--dsn", db,
                                                                      "--wait")))
    waiter.start()
    while key_holder.execute(WAITING_APPLIERS).fetchone() != (1,):
        key_holder.execute("SELECT pg_sleep(0.02)")
    assert scalar(db, "SELECT to_regclass('t')") is None
    key_holder.close()
    waiter.join()
    assert waited[0].returncode == 0 and waited[0].stdout.startswith("applied     1_t")


def test_retry_and_resolve_from_the_command_line(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    execute(db, "CREATE TABLE t (id int)")
    add(tmp_path, "1", "needs_rows", up="ALTER TABLE t ADD note text;", down="ALTER TABLE t DROP COLUMN note;",
        validate="SELECT count(*) > 0 AS has_rows FROM t;")
    add(tmp_path, "2", "leaves_a_column", up="-- lockgate:no-transaction\nALTER TABLE t ADD extra int;",
        down="SELECT 1;", validate="SELECT false AS never;")
    args = ["--dir", str(tmp_path), "--dsn", db]
    assert main(["apply", *args]) == 1
    assert main(["apply", *args]) == 1
    assert "lockgate retry 1" in capsys.readouterr().out
    execute(db, "INSERT INTO t VALUES (1)")
    assert main(["retry", "1", *args]) == 0
    assert main(["retry", "1", *args]) == 2
    assert main(["apply", *args]) == 1
    assert "dirty       2_leaves_a_column" in capsys.readouterr().out
    assert main(["apply", *args]) == 1
    assert "is dirty" in capsys.readouterr().err
    assert main(["resolve", "2", "--as", "rolled_back", "--note", "dropped extra by hand", "--dsn", db]) == 0
    assert scalar(db, "SELECT status FROM lockgate.migrations WHERE version = '2'") == "rolled_back"
    assert main(["resolve", "2", "--as", "applied", "--dsn", db]) == 2
