"""Connections to the target database and the session settings lockgate relies on."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from lockgate.controller.config import Settings
from lockgate.controller.redact import Redactor
from lockgate.hooks.errors import UsageError


def target_dsn(settings: Settings) -> str:
    """The configured DSN; empty means libpq's PG* variables decide."""
    return settings.dsn.get_secret_value() if settings.dsn is not None else ""


def connect(dsn: str, *, application_name: str = "lockgate") -> psycopg.Connection:
    """An autocommit connection; transactions are always explicit (`conn.transaction()`).

    A connection failure is a UsageError of one line, scrubbed of anything credential-shaped.
    """
    try:
        return psycopg.connect(dsn, autocommit=True, application_name=application_name)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed"
        raise UsageError(f"cannot connect to the database: {Redactor()(first_line)}") from None
    except psycopg.ProgrammingError as exc:  # libpq could not read the DSN itself
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        # libpq quotes the word it choked on, which may be a password written without its `=`.
        first_line = re.sub(r'after "[^"]*"', "after a word", first_line)
        raise UsageError(f"dsn: not a connection string libpq accepts: {Redactor()(first_line)}") from None


# SQLSTATEs of a session the server ended: terminated by an administrator, crash or
# shutdown of the server, or not accepting connections yet (class 08: connection exceptions).
_SESSION_ENDED = ("57P01", "57P02", "57P03")


def connection_lost(exc: BaseException | None) -> bool:
    """Whether `exc` means the session is gone (as opposed to an error of the SQL it ran)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate or ""
    return not state or state.startswith("08") or state in _SESSION_ENDED


def set_timeouts(conn: psycopg.Connection, *, lock_timeout_s: float, statement_timeout_s: float) -> None:
    """Session-wide lock_timeout and statement_timeout, in whole milliseconds (0 = none)."""
    for name, seconds in (("lock_timeout", lock_timeout_s), ("statement_timeout", statement_timeout_s)):
        conn.execute(
            sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(f"{round(seconds * 1000)}ms"))
        )


def server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


# Who blocks backend %(me)s, with the locks they hold on the relations it waits for.
_BLOCKERS = """
    SELECT a.pid, a.usename, a.application_name, a.state,
           round(extract(epoch FROM clock_timestamp() - a.xact_start)::numeric, 1),
           left(a.query, 120),
           (SELECT string_agg(l.mode || ' on ' || l.relation::regclass::text, ', ' ORDER BY l.relation)
            FROM pg_locks AS l
            WHERE l.pid = a.pid AND l.granted AND l.relation IN (
                SELECT w.relation FROM pg_locks AS w WHERE w.pid = %(me)s AND NOT w.granted))
    FROM pg_stat_activity AS a
    WHERE a.pid = ANY (pg_blocking_pids(%(me)s))
    ORDER BY a.xact_start NULLS LAST
"""


def _describe(row: tuple[object, ...]) -> str:
    pid, user, app, state, age, query, holds = row
    holding = f"holding {holds}" if holds else "ahead in the lock queue"
    return (
        f"pid {pid} ({user}, application '{app or '-'}', {state}, transaction open {age}s) {holding}; "
        f"last query: {str(query).strip()}"
    )


# The blocker watcher samples a third of the lock timeout apart, but never more often than this:
# `-- lockgate:timeout lock=5ms` must not turn it into a query every 2 ms on production.
MIN_WATCH_S = 0.05


def watch_interval(lock_timeout_s: float) -> float:
    """How far apart the blocker watcher samples while a statement may wait `lock_timeout_s` (0: never)."""
    return max(lock_timeout_s / 3, MIN_WATCH_S) if lock_timeout_s > 0 else 0.0


@contextmanager
def watch_blockers(watcher: psycopg.Connection, pid: int, *, every_s: float) -> Iterator[list[str]]:
    """While the block runs, sample which sessions block backend `pid` (pg_blocking_pids).

    The yielded list holds the last non-empty sample, so after a lock timeout it names who
    held the lock while the statement waited. `watcher` must be an idle connection that
    nothing else uses meanwhile.
    """
    seen: list[str] = []
    if every_s <= 0:
        yield seen
        return
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every_s):
            try:
                rows = watcher.execute(_BLOCKERS, {"me": pid}).fetchall()
            except psycopg.Error:
                return  # the statement's own error is what gets reported
            if rows:
                seen[:] = [_describe(row) for row in rows]

    thread = threading.Thread(target=sample, name="lockgate-blocker-watch", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
