"""Crash anywhere: SIGKILL `lockgate apply` at a fault point, run it again, end where an uninterrupted run ends.

Every kill point of every scenario runs with --run-slow; a representative subset by default.
"""

from __future__ import annotations

import random
import signal
import time

import psycopg
import pytest

from lockgate.controller.faultpoints import ENV as KILL_AT
from lockgate.controller.ledger import Ledger

from .conftest import Lab
from .harness import Tally, apply, fingerprint, killed, roll_back, spawn_apply
from .scenarios import ITEMS, REVERT_POINTS, revertible_dir, slow_backfill

# One or two kill points of each kind and scenario: inside a transaction step, between a
# committed statement and its ledger mark, mid-backfill, mid-validation, mid-rollback.
DEFAULT = {
    ("example", "statement:1"), ("example", "statement:4"), ("example", "statement:5"), ("example", "step:1"),
    ("example", "batch:1"), ("example", "batch:7"), ("example", "gate:2"), ("example", "gate:5"),
    ("multistep", "statement:2"), ("multistep", "statement:3"), ("multistep", "step:4"), ("multistep", "batch:5"),
    ("rollback", "step:3"), ("rollback", "batch:4"), ("rollback", "gate:1"), ("rollback", "undo:1"),
    ("rollback", "batch:12"), ("rollback", "undo:2"),
}
ALL = [
    ("example", f"{p}:{n}") for p, n in (("statement", 5), ("step", 4), ("batch", 12), ("gate", 6))
    for n in range(1, n + 1)
] + [
    ("multistep", f"{p}:{n}") for p, n in (("statement", 5), ("step", 6), ("batch", 10), ("gate", 2))
    for n in range(1, n + 1)
] + [
    ("rollback", f"{p}:{n}") for p, n in (("statement", 2), ("step", 3), ("batch", 16), ("gate", 1), ("undo", 2))
    for n in range(1, n + 1)
]


def _param(scenario: str, point: str) -> object:
    marks = () if (scenario, point) in DEFAULT else (pytest.mark.slow,)
    return pytest.param(scenario, point, marks=marks, id=f"{scenario}-{point}")


def test_the_parameter_list_covers_every_kill_point_of_every_scenario(lab: Lab) -> None:
    assert sorted(ALL) == sorted((s.name, p) for s in lab.scenarios.values() for p in s.kill_points())
    assert set(ALL) >= DEFAULT and len(ALL) >= 50


@pytest.mark.parametrize(("scenario", "point"), [_param(s, p) for s, p in ALL])
def test_killed_at_a_fault_point_a_rerun_ends_as_an_uninterrupted_run(
    lab: Lab, tally: Tally, scenario: str, point: str
) -> None:
    sc = lab.scenarios[scenario]
    reference = lab.reference(sc)
    dsn, directory = lab.clone(sc), lab.directory(sc)
    first = apply(directory, dsn, kill_at=point)
    assert killed(first), f"{KILL_AT}={point} was never reached: {first.stdout}{first.stderr}"
    if point in sc.after_kill:
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute(sc.after_kill[point].encode()).fetchone() == (True,), sc.after_kill[point]
    second = apply(directory, dsn)
    differences = fingerprint(dsn, sc.tables).differences(reference)
    tally.record("kill points", second.returncode == sc.exit_code and not differences)
    assert second.returncode == sc.exit_code, second.stdout + second.stderr
    assert not differences, f"{second.stdout}{second.stderr}\n" + "\n".join(differences)


@pytest.mark.parametrize("seed", [pytest.param(n, marks=() if n < 2 else (pytest.mark.slow,)) for n in range(12)])
def test_killed_at_a_random_instant_of_the_backfill_a_rerun_ends_as_an_uninterrupted_run(
    lab: Lab, tally: Tally, seed: int
) -> None:
    sc = lab.scenarios["example"]
    reference = lab.reference(sc)
    dsn, directory = lab.clone(sc), lab.directory(sc)
    # A pause between batches stretches the backfill over about a second; the kill lands
    # anywhere in it (or before or after, which must be just as harmless).
    slow_backfill(directory)
    applier = spawn_apply(directory, dsn, "--wait")
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'lockgate backfill'"
        while not conn.execute(started).fetchone()[0] and applier.poll() is None:  # type: ignore[index]
            time.sleep(0.01)
    time.sleep(random.Random(seed).uniform(0.0, 1.0))
    applier.send_signal(signal.SIGKILL)
    applier.communicate()
    second = apply(directory, dsn)
    differences = fingerprint(dsn, sc.tables).differences(reference)
    tally.record("random kills", second.returncode == 0 and not differences)
    assert second.returncode == 0, second.stdout + second.stderr
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("point", [pytest.param(p, marks=() if p in ("batch:3", "undo:2") else (pytest.mark.slow,))
                                   for p in REVERT_POINTS])
def test_a_rollback_by_revert_killed_anywhere_goes_on_where_it_stopped(
    lab: Lab, tally: Tally, point: str
) -> None:
    sc = lab.scenarios["multistep"]  # only its prepared items table is used
    dsn = lab.clone(sc)
    folder = lab.folder / f"revert-{point.replace(':', '-')}"
    folder.mkdir()
    assert apply(revertible_dir(folder), dsn).returncode == 0
    first = roll_back(dsn, point)
    assert killed(first), first.stdout + first.stderr
    second = roll_back(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ledger = conn.execute("SELECT status, schema_restored, undo_steps_done FROM lockgate.migrations").fetchone()
        touched = conn.execute("SELECT touched, count(*) FROM items GROUP BY touched").fetchall()
        updates = conn.execute("SELECT n, count(*) FROM update_counts GROUP BY n").fetchall()
        columns = conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass "
                               "AND attname = 'tag' AND NOT attisdropped").fetchone()
    ok = second.stdout == "rolled_back True\n" and ledger == ("rolled_back", True, None) and touched == [(0, ITEMS)]
    tally.record("kill points", ok and updates == [(2, ITEMS)] and columns == (0,))
    assert second.stdout == "rolled_back True\n", second.stdout + second.stderr
    assert ledger == ("rolled_back", True, None)  # a finished rollback leaves no undo progress behind
    # Every row: one update up, one down, none repeated.
    assert touched == [(0, ITEMS)] and updates == [(2, ITEMS)] and columns == (0,)


def test_a_ledger_made_before_resumable_rollbacks_is_upgraded(conn: psycopg.Connection) -> None:
    ledger = Ledger(conn, "lockgate")
    ledger.setup()
    conn.execute("ALTER TABLE lockgate.migrations DROP COLUMN undo_steps_done")
    conn.execute("UPDATE lockgate.schema_version SET version = 1")
    ledger.setup()
    assert conn.execute("SELECT version FROM lockgate.schema_version").fetchall() == [(4,)]
    assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'lockgate.migrations'::regclass "
                        "AND attname = 'undo_steps_done'").fetchone() == (1,)
    assert ledger.entries() == {}
