"""`lockgate sync` follow-ups, end to end with a real bare origin, real clones and a real PostgreSQL:
an outcome reached outside a pass (`lockgate retry`) still lands on the commit, and one migration
missing a file is refused on its own while the rest of the pass goes on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from kmock import KubernetesEmulator

from lockgate.controller import config, sync
from lockgate.controller.ledger import Event, LedgerEntry
from lockgate.controller.outcome import Outcome
from lockgate.controller.source import BranchHistory, CommitRef, MigrationChange
from lockgate.controller.status import MigrationRecord, StatusNote, parse
from lockgate.hooks import migrationset, sumfile
from tests.gitrepos import MIGRATIONS, Clone, Origin
from tests.syncsetup import (
    NOTE,
    V1,
    V2,
    V3,
    V4,
    columns,
    events,
    ledger,
    merged,
    note_outcomes,
    notes_seen_from_a_fresh_clone,
    pod_events,
    positive_qty,
    run_sync,
)

V5 = "20240105000000"


def lockgate(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    """The `lockgate` command an operator runs, against the test database."""
    return subprocess.run([str(Path(sys.executable).parent / "lockgate"), *args],
                          capture_output=True, text=True, env=os.environ | {"LOCKGATE_DSN": db})


# -- an operator's retry lands on the commit ---------------------------------------------------


@pytest.mark.asyncio
async def test_a_retry_by_an_operator_is_noted_on_the_commit_of_the_failed_migration(
    kmock: KubernetesEmulator, origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection,
    db: str, tmp_path: Path,
) -> None:
    with pod_events(kmock) as recorder:

        def sync_pass() -> tuple[int, list[str]]:
            return run_sync(settings, events=recorder)

        assert (await asyncio.to_thread(sync_pass))[0] == 0
        conn.execute("INSERT INTO items VALUES (1, 5), (2, 0)")
        merge = merged(dev, "qty", V2, "positive_qty", positive_qty())
        assert (await asyncio.to_thread(sync_pass))[0] == 1
        assert note_outcomes(origin, tmp_path, merge) == {V2: "failed"}

        conn.execute("UPDATE items SET qty = 1 WHERE qty = 0")
        retry = lockgate("retry", V2, "--dir", str(dev.path / MIGRATIONS), db=db)
        assert retry.returncode == 0, retry.stderr
        code, lines = await asyncio.to_thread(sync_pass)

        assert code == 0, lines
        text = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
        assert text.startswith(f"lockgate: {V2}_positive_qty applied in ")
        assert "(validation 1/1 passed): applied by `lockgate retry` at " in text.splitlines()[0]
        [record] = parse(text).migrations
        row = conn.execute("SELECT finished_at FROM lockgate.migrations WHERE version = %s", (V2,)).fetchone()
        assert row is not None and record.finished_at == row[0]
        assert lines[0].endswith(f"(note on {merge[:12]})")

        notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")
        events_before = conn.execute("SELECT count(*) FROM lockgate.events").fetchone()
        code, lines = await asyncio.to_thread(sync_pass)

        assert (code, lines) == (0, [f"in sync: 2 migrations at {merge[:12]}, nothing to do"])
        assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before
        assert conn.execute("SELECT count(*) FROM lockgate.events").fetchone() == events_before

    sent = [(p.data["reason"], p.data["message"].split(" ")[1:3])
            for p in kmock["post /api/v1/namespaces/shop/events"]]
    assert sent == [
        ("MigrationApplied", [f"{V1}_create_items", "applied"]),
        ("MigrationFailed", [f"{V2}_positive_qty", "failed"]),
        ("MigrationApplied", [f"{V2}_positive_qty", "applied"]),
    ]


def test_a_note_newer_than_the_ledger_row_stands_and_an_older_one_is_caught_up() -> None:
    def commit(sha: str) -> CommitRef:
        return CommitRef(sha * 40, (), "dev", datetime(2024, 1, 1, tzinfo=UTC), sha)

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    merge, edit, revert = commit("a"), commit("b"), commit("c")
    history = BranchHistory(head=revert)
    history.add(MigrationChange(merge, V2, "two", "added", ("x",)))
    history.add(MigrationChange(edit, V2, "two", "changed", ("x",)))
    history.add(MigrationChange(merge, V3, "three", "added", ("y",)))
    history.add(MigrationChange(revert, V3, "three", "removed", ()))

    def entry(version: str, status: str, minutes: int, error: str | None = None) -> LedgerEntry:
        return LedgerEntry.model_validate({
            "version": version, "name": "n", "status": status, "up_checksum": "", "down_checksum": "",
            "validate_checksum": "", "commit_sha": None, "started_at": t0,
            "finished_at": t0 + timedelta(minutes=minutes), "steps_done": 0, "schema_restored": None, "error": error,
        })

    def note(*records: tuple[str, Outcome, int]) -> StatusNote:
        return StatusNote(migrations=[
            MigrationRecord(version=v, name="n", outcome=o, finished_at=t0 + timedelta(minutes=m))
            for v, o, m in records
        ])

    notes = {
        merge.sha: note((V2, "applied", 1)), edit.sha: note((V2, "refused", 5)), revert.sha: note((V3, "dirty", 2)),
    }
    # V2 was edited after it was applied: the refusal is newer than the row and stands.
    # V3's rollback went dirty and a human resolved it afterwards: its revert's note is behind.
    entries = {V2: entry(V2, "applied", 1), V3: entry(V3, "rolled_back", 9)}

    behind = sync.notes_behind(entries, {V2}, history, notes)

    assert [(b.entry.version, b.outcome, b.commit.sha) for b in behind] == [(V3, "rolled_back", revert.sha)]
    # A failed apply resolved as rolled back is a failure on the commit that brought it.
    assert sync.ledger_outcome(entry(V2, "rolled_back", 9, error="boom"), at_head=True) == "failed"


# -- a broken migration refuses only itself ----------------------------------------------------


def sum_text(dev: Clone) -> str:
    """lockgate.sum for the work tree as it is, a migration missing a file included."""
    return sumfile.render(sumfile.compute(migrationset.load(dev.path / MIGRATIONS, require_triples=False)))


def commit_partial(dev: Clone, version: str, name: str, files: dict[str, str], message: str) -> str:
    """Commit some files of a migration and the matching sum, as `git commit --no-verify` lets one."""
    paths: dict[str, str | None] = {f"{MIGRATIONS}/{version}_{name}.{kind}.sql": text for kind, text in files.items()}
    for path, text in paths.items():
        (dev.path / path).write_text(text or "")
    return dev.commit_files(paths | {f"{MIGRATIONS}/{migrationset.SUM_FILE}": sum_text(dev)}, message)


def test_a_migration_missing_its_down_file_is_refused_and_the_rest_of_the_pass_goes_on(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert run_sync(settings)[0] == 0
    revert = dev.revert(merge)
    dev.add_migration(V3, "create_tags", up="CREATE TABLE tags (id bigint PRIMARY KEY);\n",
                      down="DROP TABLE tags;\n", validate="SELECT to_regclass('tags') IS NOT NULL AS ok;\n")
    broken = commit_partial(dev, V4, "create_labels", {
        "up": "CREATE TABLE labels (id bigint PRIMARY KEY);\n",
        "validate": "SELECT to_regclass('labels') IS NOT NULL AS ok;\n",
    }, "labels, committed with --no-verify")
    commit_partial(dev, V5, "create_colors", {
        "up": "CREATE TABLE colors (id bigint PRIMARY KEY);\n", "down": "DROP TABLE colors;\n",
        "validate": "SELECT to_regclass('colors') IS NOT NULL AS ok;\n",
    }, "colors")
    dev.push()

    code, lines = run_sync(settings)

    assert code == 1, lines
    assert columns(conn, "items") == ["id", "qty"]  # the revert rolled V2 back
    assert note_outcomes(origin, tmp_path, revert) == {V2: "rolled_back"}
    assert ledger(conn)[V3][0] == "applied"  # the earlier pending migration went ahead
    assert V4 not in ledger(conn) and V5 not in ledger(conn)  # the broken one and those after it wait
    assert conn.execute("SELECT to_regclass('labels'), to_regclass('colors')").fetchone() == (None, None)
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, broken)
    assert text.startswith(
        f"lockgate: {V4}_create_labels refused: migrations/{V4}_create_labels.up.sql:1:1: LG901 "
        f"{V4}_create_labels has no down file"
    )
    notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")

    code, lines = run_sync(settings)

    assert code == 1
    assert lines == [f"{lines[0].split(' (noted')[0]} (noted on {broken[:12]} before)"]
    assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before

    fix = commit_partial(dev, V4, "create_labels", {"down": "DROP TABLE labels;\n"}, "labels: add the down")
    dev.push()

    code, lines = run_sync(settings)

    assert code == 0, lines
    assert ledger(conn)[V4][0] == "applied" and ledger(conn)[V5][0] == "applied"
    assert note_outcomes(origin, tmp_path, fix) == {V4: "applied"}
    assert events(conn, V4) == ["started", "applied"]


def test_an_applied_migration_whose_validate_file_is_deleted_is_refused_not_rolled_back(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    assert run_sync(settings)[0] == 0
    dev.git("rm", "--quiet", f"{MIGRATIONS}/{V1}_create_items.validate.sql")
    gone = dev.commit_files({f"{MIGRATIONS}/{migrationset.SUM_FILE}": sum_text(dev)}, "drop a validate file")
    dev.push()

    code, lines = run_sync(settings)

    assert code == 1, lines
    assert ledger(conn)[V1][0] == "applied" and columns(conn, "items") == ["id", "qty"]
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, gone)
    assert text.startswith(
        f"lockgate: {V1}_create_items refused: migrations/{V1}_create_items.validate.sql:1:1: "
        f"removed after {V1}_create_items was applied"
    )


def test_a_dirty_migration_resolved_by_hand_is_noted_as_the_failure_it_was(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, db: str, tmp_path: Path
) -> None:
    assert run_sync(settings)[0] == 0
    # Committed steps, a gate that fails, and a down that adds a column: the rollback is dirty.
    merge = merged(dev, "cols", V2, "add_cols", {
        "up": "-- lockgate:no-transaction\nALTER TABLE items ADD COLUMN b int;\nALTER TABLE items ADD COLUMN c int;\n",
        "down": "ALTER TABLE items DROP COLUMN c;\nALTER TABLE items DROP COLUMN b;\n"
                "ALTER TABLE items ADD COLUMN leftover int;\n",
        "validate": "-- Gate: never.\nSELECT false AS never;\n",
    })
    code, lines = run_sync(settings)
    assert code == 1, lines
    assert note_outcomes(origin, tmp_path, merge) == {V2: "dirty"}, lines
    conn.execute("ALTER TABLE items DROP COLUMN leftover")
    resolve = lockgate("resolve", V2, "--as", "rolled_back", "--note", "dropped column leftover by hand", db=db)
    assert resolve.returncode == 0, resolve.stderr

    code, lines = run_sync(settings)

    assert code == 1  # the failed migration waits for a fix, as any failure does
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
    first = text.splitlines()[0]
    assert first.startswith(f"lockgate: {V2}_add_cols failed")
    assert "resolved as rolled back by `lockgate resolve` at " in first
    assert first.endswith(": dropped column leftover by hand")
    assert lines[-1].startswith(f"waiting: {V2}_add_cols failed earlier")
    notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")

    assert run_sync(settings)[0] == 1
    assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before


def test_the_reason_names_the_command_that_changed_the_row() -> None:
    started, failed, applied, retry = Event.STARTED, Event.FAILED, Event.APPLIED, Event.RETRY
    retried = [(started, {}), (failed, {"error": "gate"}), (retry, {"after": "failed"}), (started, {}), (applied, {})]
    resolved = [(started, {}), (Event.DIRTY, {}), (Event.RESOLVED_AS_ROLLED_BACK, {"note": "by hand"})]
    applied_again = [*retried, (started, {}), (applied, {})]

    assert sync.changed_by(retried) == ("retry", {"after": "failed"})
    assert sync.changed_by(resolved) == ("resolved as rolled_back", {"note": "by hand"})
    assert sync.changed_by(applied_again) is None
