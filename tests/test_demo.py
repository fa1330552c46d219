"""`lockgate demo` for real, in a subprocess: its exit code, the lines it narrates, and that it
leaves nothing behind, even when interrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCKGATE = str(Path(sys.executable).parent / "lockgate")


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A TMPDIR of the demo's own; world-readable, since PostgreSQL runs as `postgres` under root."""
    path = Path(tempfile.mkdtemp(prefix="lockgate-demo-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def demo_env(scratch: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")} | {"TMPDIR": str(scratch)}


def test_the_demo_runs_the_whole_loop_and_cleans_up(scratch: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [LOCKGATE, "demo"], capture_output=True, text=True, env=demo_env(scratch), cwd=tmp_path, timeout=240
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for line in (
        "migrations/20240115093200_index_customers_tier.up.sql:5:1: LG101 CREATE INDEX",
        "lockgate check...........................................................Passed",
        "batched UPDATE customers (line 18): finished, 30,000 rows",
        "lockgate: 20240115093000_add_customer_tier applied in",
        "Notes (lockgate):",
        "lockgate: 20240201000000_add_order_status failed after",
        "sync exited 1",
        "database unchanged: orders has the columns id, customer_id, total_cents, created_at",
        "waiting: 20240201000000_add_order_status failed earlier",
        "lockgate: 20240115093000_add_customer_tier rolled back in",
        "customers has the columns id, email, created_at again",
        "every step behaved as expected",
    ):
        assert line in out
    assert out.index("Revert \"Merge branch 'customer-tier'\"") < out.rindex("Notes (lockgate):")
    assert list(scratch.iterdir()) == []


def test_the_fleet_demo_rolls_out_halts_on_the_canary_retries_and_reverts(scratch: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [LOCKGATE, "demo", "--fleet"], capture_output=True, text=True, env=demo_env(scratch), cwd=tmp_path,
        timeout=240,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for line in (
        "lockgate: 20240301000000_create_accounts applied on 4/4 targets",
        "lockgate: 20240302000000_add_account_plan applied on 0/4 targets: failed on tenant-0 (gate 'the backfill "
        "reached every account' (line 4) failed: every_account_has_a_plan = false;",
        "); not started: tenant-1, tenant-2, tenant-3",
        "no tenant has the plan column: the canary's was rolled back, the others never started",
        "tenant-0  20240302000000  failed       failed before: runs again only with changed files",
        "tenant-3  20240302000000  not started  pending",
        "applied     20240302000000_add_account_plan",
        "lockgate: 20240302000000_add_account_plan applied on 4/4 targets",
        "every account of every tenant has a plan: tenant-0 5,003, tenant-1 5,000, tenant-2 5,000, tenant-3 5,000",
        "lockgate: 20240302000000_add_account_plan rolled back on 4/4 targets",
        "no tenant has the plan column any more",
        "every step behaved as expected",
    ):
        assert line in out
    # Parallel workers' lines stay whole: each starts with its target.
    assert not [line for line in out.splitlines() if line.count("[tenant-") > 1]
    assert list(scratch.iterdir()) == []


def test_an_interrupted_demo_stops_its_server_and_removes_its_files(scratch: Path, tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [LOCKGATE, "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=demo_env(scratch), cwd=tmp_path,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        if line.startswith("2. "):
            break
    demo.send_signal(signal.SIGINT)
    rest = demo.communicate(timeout=60)[0]

    assert demo.returncode == 130, rest
    assert "every step behaved as expected" not in rest
    assert list(scratch.iterdir()) == []
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert str(scratch) not in processes
