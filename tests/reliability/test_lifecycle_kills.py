"""Crash anywhere in a migration's later lives: its re-land after a revert, and the rollback that
follows a `lockgate resolve`. Each ends exactly where the uninterrupted run ends.

- re-land: 4000_revertible applied, rolled back by a revert, then applied again by `lockgate
  apply`, which is killed at every fault point of its up and run again. The backfill must
  touch every row once more (no checkpoint of the first life reused).
- resolve: 4000_revertible applied; its rollback is left dirty by a view on the column its down
  drops; a human removes the view, puts the applied schema back and runs `lockgate resolve
  --as applied`; the next rollback is killed at every fault point of its down and run again.
  Every down step must run (no undo progress of the dirty rollback reused).
- re-land mid-rollback: 4000_revertible applied; its rollback by a revert is killed at every
  fault point of its down; then `lockgate apply` re-lands it. The row is `undoing`, so the run
  finishes the rollback (each row's down update once) and applies the migration again: it must
  end exactly as the uninterrupted re-land.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from lockgate.controller.faultpoints import ENV as KILL_AT

from .conftest import Lab
from .harness import Fingerprint, Tally, apply, fingerprint, killed, lockgate, roll_back
from .scenarios import ITEMS, REVERT_POINTS, revertible_dir

# The up of 4000_revertible: a transaction (its statement, its step), 8 batches, a transaction, one gate.
RELAND_POINTS = ["statement:1", "step:1", *(f"batch:{n}" for n in range(1, 9)), "step:2", "statement:2",
                 "step:3", "gate:1"]
DEFAULT = {"batch:3", "gate:1", "undo:1"}


def _param(point: str) -> object:
    return pytest.param(point, marks=() if point in DEFAULT else (pytest.mark.slow,), id=point)


def _rolled_back(lab: Lab, folder: Path) -> tuple[str, Path]:
    """A database where 4000_revertible was applied and then rolled back by a revert."""
    dsn = lab.clone(lab.scenarios["multistep"])  # only its prepared items table is used
    directory = revertible_dir(folder)
    assert apply(directory, dsn).returncode == 0
    assert roll_back(dsn).stdout == "rolled_back True\n"
    return dsn, directory


_references: dict[str, Fingerprint] = {}


def _reland_reference(lab: Lab) -> Fingerprint:
    if "reland" not in _references:
        folder = lab.folder / "reland-reference"
        folder.mkdir()
        dsn, directory = _rolled_back(lab, folder)
        result = apply(directory, dsn)
        assert result.returncode == 0, result.stdout + result.stderr
        _references["reland"] = fingerprint(dsn, ("items",))
    return _references["reland"]


def _ends_as_the_reland(
    tally: Tally, dsn: str, second: subprocess.CompletedProcess[str], reference: Fingerprint
) -> None:
    """`second` (the run after the kill) ended exactly as the uninterrupted re-land: same items,
    and every row updated up, down (finished where a kill stopped it), up again: each once."""
    differences = fingerprint(dsn, ("items",)).differences(reference)
    with psycopg.connect(dsn, autocommit=True) as conn:
        updates = conn.execute("SELECT n, count(*) FROM update_counts GROUP BY n").fetchall()
    tally.record("kill points", second.returncode == 0 and not differences and updates == [(3, ITEMS)])
    assert second.returncode == 0, second.stdout + second.stderr
    assert not differences, "\n".join(differences)
    assert updates == [(3, ITEMS)]


@pytest.mark.parametrize("point", [_param(p) for p in RELAND_POINTS])
def test_a_reland_killed_anywhere_ends_as_an_uninterrupted_reland(lab: Lab, tally: Tally, point: str) -> None:
    reference = _reland_reference(lab)
    folder = lab.folder / f"reland-{point.replace(':', '-')}"
    folder.mkdir()
    dsn, directory = _rolled_back(lab, folder)
    first = apply(directory, dsn, kill_at=point)
    assert killed(first), f"{KILL_AT}={point} was never reached: {first.stdout}{first.stderr}"

    second = apply(directory, dsn)

    _ends_as_the_reland(tally, dsn, second, reference)


@pytest.mark.parametrize("point", [_param(p) for p in REVERT_POINTS])
def test_a_reland_while_its_rollback_is_cut_short_ends_as_an_uninterrupted_reland(
    lab: Lab, tally: Tally, point: str
) -> None:
    reference = _reland_reference(lab)
    folder = lab.folder / f"reland-mid-rollback-{point.replace(':', '-')}"
    folder.mkdir()
    dsn = lab.clone(lab.scenarios["multistep"])
    directory = revertible_dir(folder)
    assert apply(directory, dsn).returncode == 0
    first = roll_back(dsn, point)
    assert killed(first), first.stdout + first.stderr

    second = apply(directory, dsn)  # the re-land, with the rollback not finished

    _ends_as_the_reland(tally, dsn, second, reference)


def _resolved_after_a_dirty_rollback(lab: Lab, folder: Path) -> str:
    dsn = lab.clone(lab.scenarios["multistep"])
    assert apply(revertible_dir(folder), dsn).returncode == 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE VIEW item_tag_view AS SELECT tag FROM items")  # the down's DROP COLUMN fails
    assert roll_back(dsn).stdout == "dirty None\n"
    with psycopg.connect(dsn, autocommit=True) as conn:  # a human puts the applied schema back
        conn.execute("DROP VIEW item_tag_view")
        conn.execute("CREATE TABLE item_tags (tag text PRIMARY KEY)")
        conn.execute("UPDATE items SET touched = touched + 1")
    resolved = lockgate("resolve", "4000", "--as", "applied", "--dsn", dsn)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    return dsn


@pytest.mark.parametrize("point", [_param(p) for p in REVERT_POINTS])
def test_a_rollback_after_resolve_killed_anywhere_runs_every_down_step(lab: Lab, tally: Tally, point: str) -> None:
    folder = lab.folder / f"resolve-{point.replace(':', '-')}"
    folder.mkdir()
    dsn = _resolved_after_a_dirty_rollback(lab, folder)
    first = roll_back(dsn, point)
    assert killed(first), first.stdout + first.stderr

    second = roll_back(dsn)

    with psycopg.connect(dsn, autocommit=True) as conn:
        ledger = conn.execute("SELECT status, schema_restored, undo_steps_done FROM lockgate.migrations").fetchone()
        touched = conn.execute("SELECT touched, count(*) FROM items GROUP BY touched").fetchall()
        updates = conn.execute("SELECT n, count(*) FROM update_counts GROUP BY n").fetchall()
        leftovers = conn.execute("SELECT to_regclass('item_tags'), (SELECT count(*) FROM pg_attribute WHERE "
                                 "attrelid = 'items'::regclass AND attname = 'tag' AND NOT attisdropped)").fetchone()
    # Every row: up, the dirty rollback's down batch, the human's restore, the new down batch.
    ok = (second.stdout == "rolled_back True\n" and ledger == ("rolled_back", True, None)
          and touched == [(0, ITEMS)] and updates == [(4, ITEMS)] and leftovers == (None, 0))
    tally.record("kill points", ok)
    assert second.stdout == "rolled_back True\n", second.stdout + second.stderr
    assert ledger == ("rolled_back", True, None)
    assert touched == [(0, ITEMS)] and updates == [(4, ITEMS)] and leftovers == (None, 0)
