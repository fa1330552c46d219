"""A rollback cut short is a state of its own (`undoing`) until it ends, whatever comes next.

A revert's rollback killed halfway leaves part of the down done. If the migration is re-landed
before a pass finishes that rollback, the pass must not take the half-undone schema for applied:
it finishes the rollback, then runs the migration again from a clean schema.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from clirun import lockgate

from lockgate.controller import config, plan
from lockgate.controller.engine import Blocked
from lockgate.controller.faultpoints import ENV as KILL_AT
from lockgate.hooks import migrationset
from tests.gitrepos import Clone, Origin
from tests.syncsetup import V2, columns, events, ledger, merged, note_outcomes, run_sync

# Two down steps, each committed on its own: a kill after the first leaves the schema half undone.
TWO_COLUMNS = {
    "up": "-- lockgate:no-transaction\nALTER TABLE items ADD COLUMN a int;\nALTER TABLE items ADD COLUMN b int;\n",
    "down": "-- lockgate:no-transaction\nALTER TABLE items DROP COLUMN b;\nALTER TABLE items DROP COLUMN a;\n",
    "validate": "-- Gate: both columns.\nSELECT count(*) = 2 AS both FROM pg_attribute "
                "WHERE attrelid = 'items'::regclass AND attname IN ('a', 'b') AND NOT attisdropped;\n",
}


def _sync_killed_in_its_rollback(origin: Origin, settings: config.Settings, tmp_path: Path) -> None:
    """`lockgate sync` as a process, SIGKILLed inside the down's second step, its first one committed."""
    env = {"LOCKGATE_REPO": origin.url, "LOCKGATE_DSN": settings.dsn.get_secret_value() if settings.dsn else "",
           "LOCKGATE_CACHE_DIR": str(tmp_path / "cache"), KILL_AT: "undo:2"}
    done = lockgate("sync", cwd=tmp_path, env=env)
    assert done.returncode == -9, done.stdout + done.stderr


def _revert_cut_short(origin: Origin, dev: Clone, settings: config.Settings, tmp_path: Path) -> tuple[str, str]:
    """Merge V2, apply it, revert the merge and kill the pass in the rollback; (merge, revert) shas."""
    assert run_sync(settings)[0] == 0
    merge = merged(dev, "two", V2, "two_columns", TWO_COLUMNS)
    assert run_sync(settings)[0] == 0
    revert = dev.revert(merge)
    dev.push()
    _sync_killed_in_its_rollback(origin, settings, tmp_path)
    return merge, revert


def test_a_reland_during_an_interrupted_revert_rollback_finishes_it_then_applies_again(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    _, revert = _revert_cut_short(origin, dev, settings, tmp_path)
    assert columns(conn, "items") == ["id", "qty", "a"]  # half undone
    assert ledger(conn)[V2][0] == "undoing"
    reland = dev.revert(revert)
    dev.push()
    (planned,) = plan.build(conn, migrationset.load(dev.path / "migrations"), ledger_schema="lockgate")
    assert planned.state == "finishes the rollback an interrupted run began, then runs again"

    code, lines = run_sync(settings)

    assert code == 0, lines
    assert columns(conn, "items") == ["id", "qty", "a", "b"]
    assert ledger(conn)[V2][:2] == ("applied", reland) and ledger(conn)[V2][2] is None
    # The rollback ends where it stopped (its second step), then a fresh run starts.
    assert events(conn, V2)[2:] == ["rollback started", "rollback resumed", "rolled_back", "started", "applied"]
    assert note_outcomes(origin, tmp_path, reland) == {V2: "applied"}


def test_an_interrupted_revert_rollback_is_finished_by_the_next_pass(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge, revert = _revert_cut_short(origin, dev, settings, tmp_path)

    code, lines = run_sync(settings)

    assert code == 0, lines
    assert columns(conn, "items") == ["id", "qty"]
    assert ledger(conn)[V2] == ("rolled_back", merge, None)
    assert note_outcomes(origin, tmp_path, revert) == {V2: "rolled_back"}


def test_a_reland_refuses_to_finish_a_rollback_whose_down_is_not_the_one_approved(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    """Finishing a rollback from the apply side passes a rollback's guards: the down it runs (the
    ledger's) must still match its checksum and be the one the run's approval linted."""
    _, revert = _revert_cut_short(origin, dev, settings, tmp_path)
    dev.revert(revert)
    # The re-land brings a different down than the one the cut-short rollback was running.
    new_down = TWO_COLUMNS["down"] + "-- the down as the re-land has it\n"
    dev.add_migration(V2, "two_columns", **{**TWO_COLUMNS, "down": new_down}, message="new down")
    dev.push()

    with pytest.raises(Blocked, match="is not the down that rollback runs"):
        run_sync(settings)
    assert columns(conn, "items") == ["id", "qty", "a"]  # nothing more ran
    assert ledger(conn)[V2][0] == "undoing"
    # A down text in the ledger that no longer matches its checksum is refused the same way as on a revert.
    dev.git("revert", "--no-edit", "HEAD")
    dev.push()
    conn.execute("UPDATE lockgate.migrations SET down_sql = 'DROP TABLE items;' WHERE version = %s", (V2,))

    with pytest.raises(Blocked, match="does not match its checksum"):
        run_sync(settings)
    assert columns(conn, "items") == ["id", "qty", "a"]
    assert ledger(conn)[V2][0] == "undoing"
