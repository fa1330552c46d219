"""Git going wrong under a sync: an unreachable origin, history rewritten by a force-push, an applied
migration edited afterwards, note pushes rejected once or for good.

Everything is real: a bare origin with server-side hooks, clones that commit and push, the
controller's cache clone, a PostgreSQL database. What is checked is what an operator would see: the
exit code and its one line, the database, the ledger, and the notes a fresh clone of origin shows.
"""

from __future__ import annotations

import logging
import shutil
import stat
from pathlib import Path
from typing import Any

import psycopg
import pytest

from lockgate.controller import config, status
from lockgate.controller.source import Source
from lockgate.controller.status import MigrationRecord, Notes
from tests.clirun import lockgate
from tests.gitrepos import Clone, Origin
from tests.syncsetup import (
    ITEMS,
    NOTE,
    V1,
    V2,
    V3,
    columns,
    merged,
    note_outcomes,
    notes_seen_from_a_fresh_clone,
    run_sync,
)

QTY_INDEX = {
    "up": "CREATE INDEX CONCURRENTLY items_qty_idx ON items (qty);\n",
    "down": "DROP INDEX CONCURRENTLY items_qty_idx;\n",
    "validate": "SELECT to_regclass('items_qty_idx') IS NOT NULL AS indexed;\n",
}
ATTEMPTS_FILE = "notes-push-attempts"


def ledger_rows(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """Every ledger row and event, to compare before and after a pass that must change nothing."""
    if conn.execute("SELECT to_regclass('lockgate.migrations')").fetchone() == (None,):
        return []
    return [
        *conn.execute("SELECT * FROM lockgate.migrations ORDER BY version").fetchall(),
        *conn.execute("SELECT id, version, event FROM lockgate.events ORDER BY id").fetchall(),
    ]


def origin_notes(origin: Origin) -> str | None:
    refs = origin.repo.git.for_each_ref("--format=%(objectname)", "refs/notes/lockgate")
    return refs or None


def pre_receive(origin: Origin, body: str) -> None:
    """Install a pre-receive hook in the bare origin; it counts the pushes that touch notes."""
    hook = origin.path / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        "notes=no\n"
        "while read old new ref; do case \"$ref\" in refs/notes/*) notes=yes;; esac; done\n"
        "[ \"$notes\" = yes ] || exit 0\n"
        f"n=$(( $(cat {ATTEMPTS_FILE} 2>/dev/null || echo 0) + 1 )); echo $n > {ATTEMPTS_FILE}\n"
        f"{body}\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def reject_notes(origin: Origin, first: int | None = None) -> None:
    """Reject pushes of notes: the first `first` of them, or all of them when None."""
    condition = "true" if first is None else f"[ $n -le {first} ]"
    pre_receive(origin, f"if {condition}; then echo 'notes are frozen by policy' >&2; exit 1; fi")


def notes_push_attempts(origin: Origin) -> int:
    path = origin.path / ATTEMPTS_FILE
    return int(path.read_text()) if path.exists() else 0


# -- origin unreachable ------------------------------------------------------------------------


def sync_cli(settings: config.Settings, repo: str) -> Any:
    env = {
        "LOCKGATE_REPO": repo,
        "LOCKGATE_DSN": settings.dsn.get_secret_value() if settings.dsn else "",
        "LOCKGATE_CACHE_DIR": str(settings.cache_dir),
    }
    return lockgate("sync", cwd=settings.cache_dir.parent, env=env)


def test_an_origin_gone_since_the_last_fetch_stops_the_pass_before_anything_is_applied(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    assert run_sync(settings)[0] == 0
    merged(dev, "note", V2, "add_note", NOTE)
    # The cache already holds the new migration (an earlier pass fetched it, then died).
    Source.cache(origin.url, settings.cache_dir).fetch()
    before = ledger_rows(conn)
    shutil.rmtree(origin.path)

    result = sync_cli(settings, origin.url)

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("lockgate sync: git fetch failed: ")
    assert str(origin.path) in line
    assert result.stdout == ""
    assert ledger_rows(conn) == before
    assert columns(conn, "items") == ["id", "qty"]


@pytest.mark.parametrize("kind", ["missing path", "closed port", "not a repository"])
def test_a_bad_origin_url_is_one_line_exit_2_and_the_database_is_untouched(
    kind: str, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    import aiohttp.test_utils

    token = "ghp_faultInjectedToken0123"
    not_a_repo = tmp_path / "plain-dir"
    not_a_repo.mkdir()
    url = {
        "missing path": str(tmp_path / "no-such-origin.git"),
        "closed port": f"https://x-access-token:{token}@127.0.0.1:{aiohttp.test_utils.unused_port()}/shop.git",
        "not a repository": str(not_a_repo),
    }[kind]

    result = sync_cli(settings, url)

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if "warning" not in line] == [lines[-1]]
    assert lines[-1].startswith("lockgate sync: git fetch failed: ")
    assert token not in result.stderr + result.stdout
    assert ledger_rows(conn) == []


# -- history rewritten -------------------------------------------------------------------------


def test_a_force_push_dropping_two_applied_migrations_rolls_back_neither_and_says_so_once(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    before = dev.head
    merged(dev, "note", V2, "add_note", NOTE)
    merged(dev, "index", V3, "index_qty", QTY_INDEX)
    assert run_sync(settings)[0] == 0
    applied = ledger_rows(conn)
    dev.reset_hard(before)
    dev.commit_files({"README": "history rewritten\n"}, "rewrite")
    dev.push(force=True)

    code, lines = run_sync(settings)

    assert code == 1
    assert ledger_rows(conn) == applied
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert conn.execute("SELECT to_regclass('items_qty_idx') IS NOT NULL").fetchone() == (True,)
    assert note_outcomes(origin, tmp_path, dev.head) == {V2: "refused", V3: "refused"}
    assert sum("not rolled back" in line for line in lines) == 2
    notes_before = origin_notes(origin)

    code, lines = run_sync(settings)

    assert code == 1
    assert ledger_rows(conn) == applied
    assert origin_notes(origin) == notes_before  # said once, not on every pass
    assert all("noted on" in line for line in lines)


def note_applied_then_rewound(
    dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> tuple[str, list[tuple[Any, ...]]]:
    """V2 merged and applied, then dev's main reset to the commit before it (not pushed yet): that
    commit and the ledger as the sync left it."""
    first = dev.head
    merged(dev, "note", V2, "add_note", NOTE)
    assert run_sync(settings)[0] == 0
    applied = ledger_rows(conn)
    dev.reset_hard(first)
    return first, applied


def test_a_force_push_back_to_an_older_head_holds_the_migration_it_dropped(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    first, applied = note_applied_then_rewound(dev, settings, conn)
    dev.push(force=True)  # the branch moved back: no new commit at all

    code, _ = run_sync(settings)

    assert code == 1
    assert ledger_rows(conn) == applied
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert note_outcomes(origin, tmp_path, first) == {V1: "applied", V2: "refused"}


def test_a_rewrite_that_keeps_the_files_changes_nothing_and_a_later_revert_is_held(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    _, applied = note_applied_then_rewound(dev, settings, conn)
    rebased = dev.add_migration(V2, "add_note", **NOTE, message="the same migration, rebased")
    dev.push(force=True)

    assert run_sync(settings)[0] == 0  # the files match the ledger: nothing to do
    assert ledger_rows(conn) == applied

    dev.revert(rebased)
    dev.push()
    code, lines = run_sync(settings)

    # The ledger names the commit the history lost, so the rollback waits for a human.
    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert any("not rolled back" in line for line in lines)


# -- an applied migration edited ---------------------------------------------------------------


def test_an_applied_migration_edited_afterwards_is_refused_with_its_version(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    assert run_sync(settings)[0] == 0
    applied = ledger_rows(conn)
    edit = dev.add_migration(
        V1, "create_items", up=ITEMS["up"].replace("qty int", "qty bigint"), down=ITEMS["down"],
        validate=ITEMS["validate"], message="tweak an applied migration",
    )
    dev.push()

    code, _ = run_sync(settings)

    assert code == 1
    assert ledger_rows(conn) == applied
    assert conn.execute("SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = 'items'::regclass "
                        "AND attname = 'qty'").fetchone() == ("integer",)
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, edit)
    assert text.startswith(f"lockgate: {V1}_create_items refused: ")
    assert text.splitlines()[0] == (
        f"lockgate: {V1}_create_items refused: migrations/{V1}_create_items.up.sql:1:1: "
        f"{V1}_create_items was edited after it was applied; applied migrations are immutable: "
        "revert the edit and add a new migration"
    )


# -- note pushes rejected ----------------------------------------------------------------------


def test_a_note_push_rejected_for_good_keeps_the_note_and_the_next_sync_pushes_it(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reject_notes(origin)
    merge = merged(dev, "note", V2, "add_note", NOTE)

    with caplog.at_level(logging.WARNING):
        code, _ = run_sync(settings)

    assert code == 0  # the migration applied; its status waits in the cache
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert notes_push_attempts(origin) >= status.PUSH_ATTEMPTS
    assert origin_notes(origin) is None
    assert any("notes kept locally" in r.getMessage() and "notes are frozen" in r.getMessage()
               for r in caplog.records)

    (origin.path / "hooks" / "pre-receive").unlink()
    code, lines = run_sync(settings)

    assert code == 0
    assert lines == [f"in sync: 2 migrations at {merge[:12]}, nothing to do"]
    assert note_outcomes(origin, tmp_path, merge) == {V2: "applied"}
    assert note_outcomes(origin, tmp_path, origin.repo.commit(merge).parents[0].hexsha) == {V1: "applied"}


def test_a_note_push_that_loses_a_race_merges_the_other_writer_and_retries(
    origin: Origin, dev: Clone, settings: config.Settings, tmp_path: Path
) -> None:
    # Another writer's note, staged on origin under a side ref; the hook makes it win the race.
    other = Notes(Source.cache(origin.url, tmp_path / "other-cache"))
    other.source.fetch()
    first = dev.head
    other.record(first, MigrationRecord(version="20231231000000", name="by_hand", outcome="applied"))
    other.source.git("push", "--quiet", "origin", "refs/notes/lockgate:refs/notes/staged")
    # Git forbids ref updates from a quarantined hook; the staged objects are outside quarantine.
    pre_receive(origin, "if [ $n -eq 1 ]; then env -u GIT_QUARANTINE_PATH git update-ref refs/notes/lockgate "
                        "refs/notes/staged || exit 3; echo 'stale info' >&2; exit 1; fi")

    code, _ = run_sync(settings)

    assert code == 0
    assert notes_push_attempts(origin) == 2
    assert note_outcomes(origin, tmp_path, first) == {"20231231000000": "applied", V1: "applied"}


def test_notes_push_retries_until_the_origin_takes_it(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    reject_notes(origin, first=2)
    notes = Notes(Source.cache(origin.url, tmp_path / "cache"))
    notes.source.fetch()
    notes.record(dev.head, MigrationRecord(version=V1, name="create_items", outcome="applied"))

    result = notes.push()

    assert result.pushed and result.attempts == 3
    assert notes_push_attempts(origin) == 3
    assert note_outcomes(origin, tmp_path, dev.head) == {V1: "applied"}
