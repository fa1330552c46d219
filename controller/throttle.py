"""Holding batches back: while replicas lag behind, and while a human pressed pause."""

from __future__ import annotations

import logging
import threading

import psycopg

from lockgate.controller.checkpoints import is_paused

log = logging.getLogger(__name__)

POLL_S = 0.5


def replica_lag(conn: psycopg.Connection) -> float | None:
    """The largest replay lag of the streaming replicas in seconds; None without replicas.

    Without the pg_read_all_stats role PostgreSQL hides the lag columns (NULL): such a
    server reads as one without replicas.
    """
    row = conn.execute("SELECT extract(epoch FROM max(replay_lag))::float8 FROM pg_stat_replication").fetchone()
    return None if row is None or row[0] is None else float(row[0])


def hold_reason(conn: psycopg.Connection, *, schema: str, max_lag_s: float) -> str | None:
    """Why the next batch must wait, or None when it may run."""
    if is_paused(conn, schema):
        return "paused by `lockgate pause` (run `lockgate resume`)"
    lag = replica_lag(conn)
    if lag is not None and lag > max_lag_s:
        return f"replica replay lag {lag:.1f}s exceeds max_replica_lag {max_lag_s:g}s"
    return None


def wait_until_clear(
    conn: psycopg.Connection, *, schema: str, max_lag_s: float, stop: threading.Event, label: str
) -> bool:
    """Block while the batches must wait; False when `stop` was set meanwhile."""
    reason = hold_reason(conn, schema=schema, max_lag_s=max_lag_s)
    if reason is None:
        return True
    log.info("%s: waiting: %s", label, reason)
    while reason is not None:
        if stop.wait(POLL_S):
            return False
        reason = hold_reason(conn, schema=schema, max_lag_s=max_lag_s)
    log.info("%s: going on", label)
    return True
