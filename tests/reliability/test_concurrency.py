"""Overlapping appliers (a CronJob whose runs overlap): one applies, the others step aside cleanly.

`lockgate apply` without --wait exits 1 with one "busy" line while another applier holds the
lock (or 0 with "nothing to apply" once it is done); with --wait it waits and then finds
nothing to do. Either way no ledger row, event or row update is ever doubled.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from applyhelp import TIER

from tests.gitrepos import Origin

from .conftest import Lab
from .harness import FAST_ENV, LOCKGATE, Tally, fingerprint, killed, spawn_apply
from .scenarios import slow_backfill

BUSY = "lockgate: another lockgate applier is running on this database (pid "
ROUNDS = [pytest.param(n, marks=() if n < 2 else (pytest.mark.slow,)) for n in range(8)]


def _race(lab: Lab, n: int, *extra: str, env: dict[str, str] | None = None) -> tuple[str, list[tuple[int, str, str]]]:
    """`n` appliers of the example set started at once on one database: (dsn, [(exit, stdout, stderr)])."""
    sc = lab.scenarios["example"]
    dsn, directory = lab.clone(sc), lab.directory(sc)
    slow_backfill(directory, "40ms")
    appliers = [spawn_apply(directory, dsn, *extra, env=env) for _ in range(n)]
    results = []
    for applier in appliers:
        out, err = applier.communicate(timeout=120)
        results.append((applier.returncode, out, err))
    return dsn, results


def _no_duplicates(lab: Lab, dsn: str) -> list[str]:
    """What differs from one uninterrupted run, plus every ledger event that happened twice."""
    sc = lab.scenarios["example"]
    problems = fingerprint(dsn, sc.tables).differences(lab.reference(sc))
    with psycopg.connect(dsn, autocommit=True) as conn:
        doubled = conn.execute(
            "SELECT version, event, count(*) FROM lockgate.events WHERE event IN ('started', 'applied') "
            "GROUP BY version, event HAVING count(*) > 1").fetchall()
        rows = conn.execute("SELECT count(*), count(DISTINCT version) FROM lockgate.migrations").fetchone()
    return problems + [f"{v}: {e} {c} times" for v, e, c in doubled] + (
        [f"ledger rows {rows}"] if rows != (4, 4) else [])


@pytest.mark.parametrize("round_", ROUNDS)
def test_overlapping_appliers_one_applies_the_others_exit_busy(lab: Lab, tally: Tally, round_: int) -> None:
    dsn, results = _race(lab, 5)
    winners = [out for code, out, _ in results if code == 0 and out.startswith("applied")]
    others = [(code, out, err) for code, out, err in results if not (code == 0 and out.startswith("applied"))]
    problems = _no_duplicates(lab, dsn)
    tally.record("concurrent apply runs", len(winners) == 1 and not problems)
    assert len(winners) == 1, results
    for code, out, err in others:
        # Busy while the winner runs; "nothing to apply" when it started after the winner finished.
        assert (code == 1 and err.startswith(BUSY) and len(err.splitlines()) == 1 and out == "") or (
            code == 0 and out.startswith("nothing to apply")), (code, out, err)
    assert not problems, problems


def test_overlapping_appliers_with_wait_apply_once_and_then_find_nothing_to_do(lab: Lab, tally: Tally) -> None:
    dsn, results = _race(lab, 4, "--wait")
    problems = _no_duplicates(lab, dsn)
    outputs = sorted(out.split()[0] for _, out, _ in results)
    tally.record("concurrent apply --wait runs", outputs == ["applied", "nothing", "nothing", "nothing"]
                 and not problems)
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    assert outputs == ["applied", "nothing", "nothing", "nothing"], results
    assert not problems, problems


def test_waiting_appliers_take_over_from_ones_that_crash_mid_backfill(lab: Lab, tally: Tally) -> None:
    # Every applier dies after its 5th batch: the first two to get the lock crash (at batches 5
    # and 10 of 12), the third resumes at batch 11 and finishes, the fourth finds nothing to do.
    dsn, results = _race(lab, 4, "--wait", env={"LOCKGATE_FAULT_KILL_AT": "batch:5"})
    problems = _no_duplicates(lab, dsn)
    crashed = sum(killed(subprocess.CompletedProcess([], code)) for code, _, _ in results)
    finished = sorted(out.split()[0] for code, out, _ in results if code == 0)
    tally.record("concurrent runs with crashes", crashed == 2 and finished == ["applied", "nothing"] and not problems)
    assert crashed == 2 and finished == ["applied", "nothing"], results
    assert not problems, problems
    with psycopg.connect(dsn, autocommit=True) as conn:
        resumed = conn.execute("SELECT count(*) FROM lockgate.events WHERE version = %s AND event = 'resumed'",
                               (TIER,)).fetchone()
    assert resumed == (2,)


ITEMS_UP = (
    "CREATE TABLE items (id bigint PRIMARY KEY, n bigint NOT NULL, touched int NOT NULL DEFAULT 0);\n"
    "INSERT INTO items (id, n) SELECT g, g FROM generate_series(1, 2000) AS g;\n"
)
SYNCED = {  # version -> (name, up, down): a table, a slow backfill, a CONCURRENTLY index
    "20240101000000": ("create_items", ITEMS_UP, "DROP TABLE items;\n"),
    "20240102000000": ("backfill", "-- lockgate:batch size=200 pause=50ms\nUPDATE items SET touched = touched + 1;\n",
                       "SELECT 1;\n"),
    "20240103000000": ("index", "CREATE INDEX CONCURRENTLY items_touched_idx ON items (touched);\n",
                       "DROP INDEX CONCURRENTLY items_touched_idx;\n"),
}


@pytest.mark.parametrize("wait", [False, True], ids=["busy", "wait"])
@pytest.mark.parametrize("round_", [pytest.param(n, marks=() if n == 0 else (pytest.mark.slow,)) for n in range(4)])
def test_overlapping_syncs_apply_each_migration_once(
    db: str, tmp_path: Path, tally: Tally, wait: bool, round_: int
) -> None:
    origin = Origin.create(tmp_path)
    clone = origin.clone("dev")
    for version, (name, up, down) in SYNCED.items():
        clone.add_migration(version, name, up=up, down=down, validate="SELECT true AS ok;\n")
    clone.push()
    # Each sync has a checkout of its own, as each CronJob pod has.
    syncs = [subprocess.Popen(
        [*LOCKGATE, "sync", "--repo", origin.url, *(["--wait"] if wait else [])],
        env={**os.environ, **FAST_ENV, "LOCKGATE_DSN": db, "LOCKGATE_CACHE_DIR": str(tmp_path / f"cache-{n}")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    results = [(s.wait(timeout=120), s.stdout.read() if s.stdout else "", s.stderr.read() if s.stderr else "")
               for s in syncs]
    with psycopg.connect(db, autocommit=True) as conn:
        ledger = conn.execute("SELECT version, status FROM lockgate.migrations ORDER BY version").fetchall()
        doubled = conn.execute("SELECT version, event, count(*) FROM lockgate.events WHERE event IN "
                               "('started', 'applied') GROUP BY version, event HAVING count(*) > 1").fetchall()
        touched = conn.execute("SELECT touched, count(*) FROM items GROUP BY touched").fetchall()
    ok = ledger == [(v, "applied") for v in SYNCED] and not doubled and touched == [(1, 2000)]
    tally.record(f"concurrent sync{' --wait' if wait else ''} runs", ok)
    assert ledger == [(v, "applied") for v in SYNCED], results
    assert not doubled and touched == [(1, 2000)], (doubled, touched)
    for code, _, err in results:
        assert code == 0 or (not wait and code == 1 and err.startswith(BUSY) and len(err.splitlines()) == 1), (
            code, err)
