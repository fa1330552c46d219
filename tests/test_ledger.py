"""The ledger schema and the one-applier lock, on a real server."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from applyhelp import WAITING_APPLIERS, add, fast_settings, scalar

from lockgate.controller.engine import Engine
from lockgate.controller.ledger import ApplierBusy, Ledger, lock_key
from lockgate.hooks import migrationset


def test_setup_creates_the_ledger_once_and_is_idempotent(conn: psycopg.Connection) -> None:
    ledger = Ledger(conn, "lockgate")
    assert not ledger.exists() and ledger.entries() == {}
    ledger.setup()
    ledger.setup()
    tables = {r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'lockgate'").fetchall()}
    assert {"migrations", "events", "schema_version", "batch_checkpoints", "batch_control", "sync_state"} <= tables
    assert conn.execute("SELECT version FROM lockgate.schema_version").fetchall() == [(4,)]


def test_the_ledger_schema_name_is_quoted_everywhere(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "t", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    with Engine(fast_settings(ledger_schema="Ops Ledger"), db) as engine:
        outcome = engine.apply(migrationset.load(tmp_path).migrations[0])
        entry = engine.ledger.get("1")
        assert set(engine.ledger_entries()) == {"1"}
    assert outcome.status == "applied" and entry is not None
    assert (entry.status, entry.steps_done, entry.up_sql) == ("applied", 1, "CREATE TABLE t (id int);")
    assert entry.baseline is not None and "relation public.t" not in entry.baseline["catalog"]
    assert scalar(db, """SELECT count(*) FROM "Ops Ledger".events WHERE version = '1'""") == 2


def test_lock_keys_differ_per_schema_and_are_stable() -> None:
    assert lock_key("lockgate") == lock_key("lockgate") != lock_key("other")


def test_a_second_applier_is_refused_with_who_holds_the_lock(db: str) -> None:
    with Engine(fast_settings(), db) as first:
        with pytest.raises(ApplierBusy, match="another lockgate applier") as info:
            Engine(fast_settings(), db).__enter__()
        holder = first._lock.conn.info.backend_pid
        assert f"pid {holder}" in str(info.value)
    with Engine(fast_settings(), db):
        pass  # released on exit


def test_a_second_applier_with_wait_runs_once_the_first_is_done(db: str) -> None:
    second_entered = threading.Event()

    def second() -> None:
        with Engine(fast_settings(), db, wait=True):
            second_entered.set()

    with Engine(fast_settings(), db), psycopg.connect(db, autocommit=True) as watcher:
        waiter = threading.Thread(target=second)
        waiter.start()
        while watcher.execute(WAITING_APPLIERS).fetchone() != (1,):
            watcher.execute("SELECT pg_sleep(0.02)")
        assert not second_entered.is_set()
    waiter.join()
    assert second_entered.is_set()
