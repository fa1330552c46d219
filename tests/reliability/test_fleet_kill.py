"""A fleet pass SIGKILLed while its targets run resumes with every target migrated exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from tests.clirun import LOCKGATE
from tests.gitrepos import Clone, Origin
from tests.syncsetup import NOTE, V1, V2, events, ledger, merged
from tests.test_fleet import fleet_file, tenants

__all__ = ["tenants"]  # the fixture, used by name


def applied_anywhere(dsns: dict[str, str]) -> bool:
    """A migration is applied on some target: the pass is under way, the kill lands mid-fleet."""
    for dsn in dsns.values():
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                if "applied" in {row[0] for row in ledger(conn).values()}:
                    return True
            except psycopg.errors.UndefinedTable:
                continue
    return False


def test_a_sigkilled_fleet_pass_resumes_with_every_target_exactly_once(
    origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path
) -> None:
    merged(dev, "note", V2, "add_note", NOTE)
    path = fleet_file(tmp_path, tenants, {"parallel": 2})
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")} | {
        "LOCKGATE_REPO": origin.url, "LOCKGATE_CACHE_DIR": str(tmp_path / "cache"), "LOCKGATE_FLEET": str(path),
    }
    command = [str(LOCKGATE), "sync", "--wait"]
    killed = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not applied_anywhere(tenants) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the pass ended before the kill"

    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    for name, dsn in tenants.items():
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert {v: row[0] for v, row in ledger(conn).items()} == {V1: "applied", V2: "applied"}, name
            for version in (V1, V2):
                assert events(conn, version).count("applied") == 1, (name, events(conn, version))
