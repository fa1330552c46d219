"""Run `lockgate apply` as a real process, crash it, run it again, and fingerprint the result.

A scenario is a migrations directory plus a prepared database (a template cloned per run):
the fingerprint of a database after an uninterrupted run is the reference every faulted run
must end at: the same ledger statuses, the same catalog, the same data, and every row
updated exactly as many times (an update-counting trigger records each row's updates).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lockgate.controller import snapshot
from lockgate.controller.faultpoints import ENV as KILL_AT

LOCKGATE = [sys.executable, "-m", "lockgate.controller"]
# Short waits so lock-timeout retries happen within a test's time.
FAST_ENV = {"LOCKGATE_LOCK_TIMEOUT": "1s", "LOCKGATE_RETRY_BACKOFF": "0.05", "LOCKGATE_LOCK_RETRIES": "2"}

COUNT_UPDATES = """
CREATE TABLE IF NOT EXISTS update_counts (tbl text, id bigint, n int NOT NULL, PRIMARY KEY (tbl, id));
CREATE OR REPLACE FUNCTION count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO update_counts VALUES (TG_TABLE_NAME, NEW.id, 1)
    ON CONFLICT (tbl, id) DO UPDATE SET n = update_counts.n + 1;
    RETURN NEW;
END $$;
"""


def count_updates(conn: psycopg.Connection, table: str) -> None:
    """Record, per row of `table`, how many times it was updated (rolled-back updates do not count)."""
    conn.execute(COUNT_UPDATES)
    conn.execute(sql.SQL("CREATE TRIGGER count_update AFTER UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION count_update()")
                 .format(sql.Identifier(table)))


def lockgate(*args: str, env: dict[str, str] | None = None, kill_at: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != KILL_AT} | FAST_ENV | (env or {})
    if kill_at:
        environ[KILL_AT] = kill_at
    return subprocess.run([*LOCKGATE, *args], capture_output=True, text=True, env=environ, check=False,
                          timeout=timeout)


def apply(directory: Path, dsn: str, *, kill_at: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`lockgate apply --wait`: a rerun waits for the killed run's lock session to go away."""
    return lockgate("apply", "--dir", str(directory), "--dsn", dsn, "--wait", env=env, kill_at=kill_at)


ROLLBACK = """
import sys
from lockgate.controller.config import Settings
from lockgate.controller.engine import Engine

with Engine(Settings(lock_timeout=1, retry_backoff=0.05), sys.argv[1], wait=True) as engine:
    outcome = engine.rollback(sys.argv[2])
print(outcome.status, outcome.schema_restored)
"""


def roll_back(dsn: str, kill_at: str | None = None, version: str = "4000") -> subprocess.CompletedProcess[str]:
    """`Engine.rollback` of an applied migration in a process of its own: the path `sync` takes on a revert."""
    env = {k: v for k, v in os.environ.items() if k != KILL_AT} | ({KILL_AT: kill_at} if kill_at else {})
    return subprocess.run([sys.executable, "-c", ROLLBACK, dsn, version], capture_output=True, text=True, env=env,
                          check=False, timeout=120)


def spawn_apply(directory: Path, dsn: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if k != KILL_AT} | FAST_ENV | (env or {})
    return subprocess.Popen([*LOCKGATE, "apply", "--dir", str(directory), "--dsn", dsn, *extra], env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(conn: psycopg.Connection, query: str, params: tuple[object, ...] = (), *, timeout: float = 60,
             poll: float = 0.02) -> Any:
    """Poll `query` until its first column is truthy (a table it reads may not exist yet); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            row = conn.execute(query.encode(), params or None).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        if row is not None and row[0]:
            return row[0]
        assert time.monotonic() < deadline, f"timed out waiting for: {query}"
        time.sleep(poll)


def killed(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == -signal.SIGKILL


@dataclass(frozen=True)
class Fingerprint:
    """What a user can observe of a database after lockgate ran."""

    ledger: dict[str, tuple[str, bool, bool | None]]  # version -> (status, has error, schema_restored)
    finishes: dict[str, int]  # version -> ledger events that ended a run as applied/rolled_back/failed
    catalog: dict[str, Any]
    data: dict[str, str]  # table -> md5 of its rows in key order
    updates: dict[tuple[str, int], int]  # (table, times updated) -> rows
    checkpoints_unfinished: int = field(default=0)

    def differences(self, other: Fingerprint) -> list[str]:
        found = [f"{name}: {getattr(self, name)!r} != {getattr(other, name)!r}"
                 for name in ("ledger", "finishes", "data", "updates", "checkpoints_unfinished")
                 if getattr(self, name) != getattr(other, name)]
        catalog: list[str] = snapshot.diff(other.catalog, self.catalog)
        return found + catalog


def fingerprint(dsn: str, tables: tuple[str, ...]) -> Fingerprint:
    with psycopg.connect(dsn, autocommit=True) as conn:
        ledger = {v: (s, e is not None, r) for v, s, e, r in conn.execute(
            "SELECT version, status, error, schema_restored FROM lockgate.migrations ORDER BY version")}
        finishes: dict[str, int] = {v: c for v, c in conn.execute(
            "SELECT version, count(*) FROM lockgate.events "
            "WHERE event IN ('applied', 'rolled_back', 'failed', 'dirty') GROUP BY version")}
        data = {}
        for table in tables:
            query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {} AS t")
            row = conn.execute(query.format(sql.Identifier(table))).fetchone()
            data[table] = row[0] if row else ""
        updates = {(t, n): c for t, n, c in conn.execute(
            "SELECT tbl, n, count(*) FROM update_counts GROUP BY tbl, n")}
        unfinished = conn.execute(
            "SELECT count(*) FROM lockgate.batch_checkpoints WHERE NOT finished").fetchone()
        return Fingerprint(ledger, finishes, snapshot.catalog(conn, ledger_schema="lockgate"), data, updates,
                           unfinished[0] if unfinished else 0)


@dataclass
class Tally:
    """Kill points / faults tried and survived in this session, for RELIABILITY.md."""

    tried: dict[str, int] = field(default_factory=dict)
    survived: dict[str, int] = field(default_factory=dict)

    def record(self, kind: str, ok: bool) -> None:
        self.tried[kind] = self.tried.get(kind, 0) + 1
        self.survived[kind] = self.survived.get(kind, 0) + int(ok)

    def lines(self) -> list[str]:
        return [f"{kind}: {self.survived[kind]}/{self.tried[kind]} survived" for kind in sorted(self.tried)]


Prepare = Callable[[str], None]


def terminate(conn: psycopg.Connection, application_name: str) -> int:
    """pg_terminate_backend every session of this database with that application_name; how many."""
    row = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()",
        (application_name,),
    ).fetchone()
    return int(row[0]) if row else 0


def one_line(text: str) -> str:
    """The single line a failure must be reported as (no traceback, no second line)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


BATCHES_DONE = "SELECT coalesce((SELECT sum(batches_done) FROM lockgate.batch_checkpoints WHERE version = %s), 0) >= %s"
