"""The applier lock of one run: a session-level advisory lock held on a connection of its own.

Only one lockgate applier works on a database at a time. The lock lives as long as its session,
so the session stays open for the whole run; while the run's statements execute, that idle
session also watches for the sessions that block them (`db.watch_blockers`).
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType

import psycopg

from lockgate.controller import db
from lockgate.controller.config import Settings
from lockgate.controller.ledger import acquire_applier_lock, wait_for_dead_runs


class ApplierLock:
    """Entering takes the lock (ApplierBusy when another applier holds it and `wait` is off) and
    waits for the statements a dead run left on the server; leaving frees it at once."""

    def __init__(self, settings: Settings, dsn: str, *, wait: bool, stop: threading.Event) -> None:
        self.settings = settings
        self.dsn = dsn
        self.wait = wait
        self.stop = stop
        self._conn: psycopg.Connection | None = None

    def __enter__(self) -> ApplierLock:
        self._conn = db.connect(self.dsn, application_name="lockgate applier lock")
        try:
            acquire_applier_lock(self._conn, self.settings.ledger_schema, wait=self.wait, stop=self.stop)
            wait_for_dead_runs(self._conn, timeout_s=self.settings.statement_timeout or None, stop=self.stop)
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        if self._conn is None:
            return
        # Unlock first: the server ends a closed session (and frees its locks) only a moment after
        # the client has gone, and a run started right after ours must not find the lock still
        # held. A session the server already dropped has nothing to unlock; its error must not
        # hide the real one.
        with contextlib.suppress(psycopg.Error):
            self._conn.execute("SELECT pg_advisory_unlock_all()")
        self._conn.close()
        self._conn = None

    @property
    def conn(self) -> psycopg.Connection:
        assert self._conn is not None, "use ApplierLock as a context manager"
        return self._conn

    def hold(self) -> None:
        """Fail fast when the lock's session was ended: another applier could start."""
        self.conn.execute("SELECT 1")
