"""Holding batches back: while replicas lag behind, and while a human pressed pause."""

from __future__ import annotations

import logging
import threading

import psycopg

from lockgate.controller.checkpoints import is_paused

log = logging.getLogger(__name__)

POLL_S = 0.5


# One row per walsender that reports a replay position: physical standbys and logical
# subscribers. pg_basebackup and pg_receivewal never replay (replay_lsn NULL) yet PostgreSQL
# shows them a replay_lag that grows for as long as they stay connected: they are not replicas.
_REPLICA_LAG = """
SELECT max(CASE WHEN r.replay_lsn >= flushed THEN 0 ELSE extract(epoch FROM r.replay_lag) END)::float8
FROM pg_stat_replication AS r, pg_current_wal_flush_lsn() AS flushed
WHERE r.replay_lsn IS NOT NULL
"""


def replica_lag(conn: psycopg.Connection) -> float | None:
    """The largest replay lag of the replicas in seconds; None when no replica's lag is known.

    PostgreSQL measures replay_lag only when a standby's reply shows its replay position
    passing WAL it was sent, so the column can be stale; this reading corrects for that:

    - A replica whose replay position has reached the primary's flushed WAL has nothing left to
      replay: lag 0, whatever replay_lag still shows (PostgreSQL keeps the last measurement
      until a later reply clears it, up to a wal_receiver_status_interval, 10s by default).
    - A replica that is behind reads its replay_lag. When its replay is stuck, PostgreSQL makes
      that grow with every reply, counted from when the first WAL it has not replayed was sent.
    - A replica that is behind with no lag measured (just connected, or new WAL after an idle
      spell and its reply not in yet) is unknown, not lagging: it replies within its
      wal_receiver_status_interval, and one set never to reply must not hold a backfill forever.

    Clients that only receive WAL (pg_basebackup, pg_receivewal, Barman) are not replicas.
    Without the pg_read_all_stats role PostgreSQL hides the positions and lags of every
    walsender (NULL): such a server reads as one without replicas. Runs on the primary.
    """
    row = conn.execute(_REPLICA_LAG).fetchone()
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
