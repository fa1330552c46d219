"""`lockgate watch` in a real process, stopped by a real SIGTERM in the middle of a backfill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from lockgate.controller import config, sync
from tests.gitrepos import Origin

V1, V2 = "20240101000000", "20240102000000"
ROWS = 3000

TABLE = {
    "up": "CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0);\n",
    "down": "DROP TABLE big;\n",
    "validate": "SELECT to_regclass('big') IS NOT NULL AS big_exists;\n",
}
# Small batches with a pause between them: the backfill takes seconds, so a SIGTERM lands mid-way.
BACKFILL = {
    "up": "-- lockgate:batch size=100 pause=100ms\nUPDATE big SET v = 1;\n",
    "down": "-- lockgate:batch size=1000\nUPDATE big SET v = 0;\n",
    "validate": "-- Gate: every row was backfilled.\nSELECT count(*) = 0 AS all_done FROM big WHERE v <> 1;\n",
}


def lockgate(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "lockgate"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
    )


def checkpoint(conn: psycopg.Connection) -> tuple[int, bool] | None:
    if conn.execute("SELECT to_regclass('lockgate.batch_checkpoints')").fetchone() == (None,):
        return None
    row = conn.execute(
        "SELECT batches_done, finished FROM lockgate.batch_checkpoints WHERE version = %s", (V2,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_mid_backfill_checkpoints_and_exits_0_then_the_next_run_completes(
    tmp_path: Path, db: str, conn: psycopg.Connection
) -> None:
    origin = Origin.create(tmp_path)
    dev = origin.clone("dev")
    dev.add_migration(V1, "create_big", **TABLE)
    dev.push()
    assert sync.run(config.load(repo=origin.url, cache_dir=tmp_path / "cache", dsn=db), say=lambda _: None).ok
    conn.execute("INSERT INTO big (id) SELECT g FROM generate_series(1, %s) AS g", (ROWS,))
    dev.add_migration(V2, "backfill_v", **BACKFILL)
    dev.push()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")} | {
        "LOCKGATE_REPO": origin.url, "LOCKGATE_DSN": db, "LOCKGATE_CACHE_DIR": str(tmp_path / "cache"),
    }

    watcher = lockgate("watch", "--interval", "1s", env=env, cwd=tmp_path)
    wait_for(lambda: (checkpoint(conn) or (0, False))[0] >= 3)
    watcher.send_signal(signal.SIGTERM)
    out, err = watcher.communicate(timeout=60)

    assert watcher.returncode == 0, err
    batches, finished = checkpoint(conn) or (0, True)
    assert not finished and 3 <= batches < ROWS // 100
    assert conn.execute("SELECT count(*) FROM big WHERE v = 1").fetchone() == (batches * 100,)
    assert conn.execute("SELECT status FROM lockgate.migrations WHERE version = %s", (V2,)).fetchone() == ("applying",)
    assert f"{V2}_backfill_v: stopped at step 1; the next run resumes it" in out
    assert out.rstrip().endswith("stopped")

    again = lockgate("sync", env=env, cwd=tmp_path)
    out, err = again.communicate(timeout=120)

    assert again.returncode == 0, err
    assert f"lockgate: {V2}_backfill_v applied" in out
    assert conn.execute("SELECT count(*) FROM big WHERE v = 1").fetchone() == (ROWS,)
    events = [r[0] for r in conn.execute("SELECT event FROM lockgate.events WHERE version = %s ORDER BY id", (V2,))]
    assert "resumed" in events and events[-1] == "applied"
