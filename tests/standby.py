"""A real streaming standby of a throwaway primary, for the replica-lag throttle tests.

`streaming_pair()` starts a primary `PostgresServer`, clones it with `pg_basebackup -R` into a
standby of its own (own port, own socket directory, own temp root), starts the standby and
waits until the primary's pg_stat_replication shows it streaming. Both are stopped and their
directories removed afterwards.

The standby reports its positions every second (wal_receiver_status_interval=1s instead of
10s): the primary measures replay lag only when a standby reply arrives, so this keeps the
tests short without changing what is measured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from lockgate.controller.pgserver import PostgresServer

STANDBY_NAME = "lockgate_standby"  # its cluster_name: the application_name it streams under


class Standby(PostgresServer):
    """A hot standby of `primary`: a base backup instead of initdb; `stop()` removes it all."""

    def __init__(self, primary: PostgresServer, *, name: str = STANDBY_NAME) -> None:
        super().__init__(settings={
            "hot_standby": "on",
            "cluster_name": name,
            "wal_receiver_status_interval": "1s",
        })
        self.primary = primary
        self.name = name

    def _make_datadir(self) -> None:
        # -R writes standby.signal and primary_conninfo; -c fast: no wait for a spread checkpoint.
        self._checked(
            str(self.bindir / "pg_basebackup"), "-D", str(self.datadir),
            "-d", f"host=127.0.0.1 port={self.primary.port} user=postgres",
            "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )

    def start(self) -> Standby:
        super().start()
        self.wait_streaming()
        return self

    def wait_streaming(self, timeout_s: float = 30.0) -> None:
        """Until the primary shows this standby streaming and caught up."""
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT state FROM pg_stat_replication WHERE application_name = %s", (self.name,)
                ).fetchone()
                if row == ("streaming",):
                    break
                if time.monotonic() > deadline:
                    log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
                    raise RuntimeError(f"standby {self.name} not streaming after {timeout_s:g}s: {row}\n{log}")
                time.sleep(0.05)
        self.wait_caught_up(timeout_s)

    def caught_up(self, conn: psycopg.Connection) -> bool:
        """Whether this standby has replayed all WAL the primary (`conn`) has flushed."""
        row = conn.execute(
            "SELECT replay_lsn >= pg_current_wal_flush_lsn() FROM pg_stat_replication WHERE application_name = %s",
            (self.name,),
        ).fetchone()
        return row == (True,)

    def wait_caught_up(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
            while not self.caught_up(conn):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"standby {self.name} not caught up after {timeout_s:g}s")
                time.sleep(0.05)

    def set_apply_delay(self, delay: str | None) -> None:
        """recovery_min_apply_delay on the running standby ('3s'), or back to none (None)."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if delay is None:
                conn.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
            else:
                conn.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'")
            conn.execute("SELECT pg_reload_conf()")
            # The reload is asynchronous: wait until this backend sees the new value.
            want = "0" if delay is None else delay
            deadline = time.monotonic() + 10
            while conn.execute("SHOW recovery_min_apply_delay").fetchone() not in {(want,), (want + "ms",)}:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"recovery_min_apply_delay did not become {want}")
                time.sleep(0.02)


@contextmanager
def streaming_pair() -> Iterator[tuple[PostgresServer, Standby]]:
    """A primary and one streaming hot standby; both gone afterwards."""
    primary = PostgresServer().start()
    try:
        standby = Standby(primary)
        try:
            yield primary, standby.start()
        finally:
            standby.stop()
    finally:
        primary.stop()
