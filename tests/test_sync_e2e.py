"""`lockgate sync` end to end: a real bare origin, real clones, merges, reverts and pushes, and a
real PostgreSQL database. What the tests look at is what a user would: the database, the ledger,
the notes in a fresh clone of origin, and the exit code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import git
import psycopg
import pytest
from kmock import KubernetesEmulator

from lockgate.controller import config, sync
from lockgate.hooks.errors import InputError
from tests.gitrepos import Clone, Origin, ssh_key
from tests.loopbackhttp import serving_posts
from tests.syncsetup import (
    ITEMS,
    NOTE,
    V1,
    V2,
    V3,
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


def test_a_merge_is_applied_and_the_note_reaches_a_fresh_clone(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    first = dev.head
    merge = merged(dev, "note", V2, "add_note", NOTE)

    code, lines = run_sync(settings)

    assert code == 0, lines
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert ledger(conn) == {V1: ("applied", first, None), V2: ("applied", merge, None)}
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
    assert text.startswith(f"lockgate: {V2}_add_note applied in ")
    assert "(validation 1/1 passed)" in text
    assert note_outcomes(origin, tmp_path, first) == {V1: "applied"}


def test_a_second_sync_changes_nothing(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    merged(dev, "note", V2, "add_note", NOTE)
    assert run_sync(settings)[0] == 0
    before = conn.execute("SELECT * FROM lockgate.migrations ORDER BY version").fetchall()
    events_before = conn.execute("SELECT count(*) FROM lockgate.events").fetchone()
    notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")

    code, lines = run_sync(settings)

    assert code == 0
    assert lines == [f"in sync: 2 migrations at {origin.head()[:12]}, nothing to do"]
    assert conn.execute("SELECT * FROM lockgate.migrations ORDER BY version").fetchall() == before
    assert conn.execute("SELECT count(*) FROM lockgate.events").fetchone() == events_before
    assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before


def test_a_revert_rolls_back_and_the_revert_commit_gets_the_note(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert run_sync(settings)[0] == 0
    revert = dev.revert(merge)
    dev.push()

    code, lines = run_sync(settings)

    assert code == 0, lines
    assert columns(conn, "items") == ["id", "qty"]
    assert ledger(conn)[V2] == ("rolled_back", merge, None)
    assert note_outcomes(origin, tmp_path, revert) == {V2: "rolled_back"}
    assert note_outcomes(origin, tmp_path, merge) == {V2: "applied"}
    assert run_sync(settings) == (0, [f"in sync: 1 migration at {revert[:12]}, nothing to do"])


def test_reverting_a_migration_that_never_applied_changes_nothing(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    assert run_sync(settings)[0] == 0
    conn.execute("INSERT INTO items VALUES (1, 0)")
    merge = merged(dev, "qty", V2, "positive_qty", positive_qty())
    assert run_sync(settings)[0] == 1
    dev.revert(merge)
    dev.push()

    code, _ = run_sync(settings)

    assert code == 0
    assert ledger(conn)[V2][0] == "failed"
    assert events(conn, V2) == ["started", "failed"]


def test_a_failed_validation_changes_nothing_and_is_not_rerun_until_fixed_forward(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    assert run_sync(settings)[0] == 0
    conn.execute("INSERT INTO items VALUES (1, 5), (2, 0)")
    merge = merged(dev, "qty", V2, "positive_qty", positive_qty())
    later = merged(dev, "note", V3, "add_note", NOTE)

    code, _ = run_sync(settings)

    assert code == 1
    assert conn.execute("SELECT conname FROM pg_constraint WHERE conname = 'items_qty_check'").fetchall() == []
    assert columns(conn, "items") == ["id", "qty"]
    assert ledger(conn)[V2][0] == "failed" and V3 not in ledger(conn)
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
    assert text.startswith(f"lockgate: {V2}_positive_qty failed after ")
    assert "rolled back, nothing was committed" in text
    assert note_outcomes(origin, tmp_path, later) == {}

    code, lines = run_sync(settings)

    assert code == 1
    assert [line.split(" (")[0] for line in lines] == [f"waiting: {V2}_positive_qty failed earlier"]
    assert lines[0].endswith("; 1 later migration(s) wait behind it")
    assert events(conn, V2) == ["started", "failed"]  # not run again

    fix = dev.add_migration(V2, "positive_qty", **positive_qty(">="), message="fix: zero is a valid qty")
    dev.push()

    code, lines = run_sync(settings)

    assert code == 0, lines
    assert ledger(conn)[V2] == ("applied", fix, None)
    assert ledger(conn)[V3][0] == "applied"
    assert note_outcomes(origin, tmp_path, fix) == {V2: "applied"}
    assert note_outcomes(origin, tmp_path, merge) == {V2: "failed"}


def revert_with_a_new_sum(dev: Clone, merge: str) -> str:
    """Revert an older merge: lockgate.sum conflicts (each line chains the ones before it), so the
    developer rewrites it with `lockgate hash` and commits the revert with the message git prepared."""
    with contextlib.suppress(git.GitCommandError):
        dev.git("revert", "--no-commit", "-m", "1", merge)
    revert = dev.commit_files(
        {"migrations/lockgate.sum": dev.sum_text()}, f"Revert {merge[:12]}\n\nThis reverts commit {merge}.",
    )
    dev.push()
    return revert


def test_a_failed_migration_does_not_hold_back_the_rollback_of_another(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert run_sync(settings)[0] == 0
    conn.execute("INSERT INTO items VALUES (1, 0)")
    merged(dev, "qty", V3, "positive_qty", positive_qty())
    assert run_sync(settings)[0] == 1
    revert = revert_with_a_new_sum(dev, merge)

    code, lines = run_sync(settings)

    assert code == 1  # the failed migration still waits
    assert lines[-1].startswith(f"waiting: {V3}_positive_qty failed earlier")
    assert columns(conn, "items") == ["id", "qty"]
    assert ledger(conn)[V2][0] == "rolled_back"
    assert note_outcomes(origin, tmp_path, revert) == {V2: "rolled_back"}


def test_retry_runs_a_failed_migration_again_after_the_data_is_fixed(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, db: str
) -> None:
    assert run_sync(settings)[0] == 0
    conn.execute("INSERT INTO items VALUES (1, 5), (2, 0)")
    merged(dev, "qty", V2, "positive_qty", positive_qty())
    merged(dev, "note", V3, "add_note", NOTE)
    assert run_sync(settings)[0] == 1
    conn.execute("UPDATE items SET qty = 1 WHERE qty = 0")

    retry = subprocess.run(
        [str(Path(sys.executable).parent / "lockgate"), "retry", V2, "--dir", str(dev.path / "migrations")],
        capture_output=True, text=True, env=os.environ | {"LOCKGATE_DSN": db},
    )
    assert retry.returncode == 0, retry.stderr
    code, lines = run_sync(settings)

    assert code == 0, lines
    assert ledger(conn)[V2][0] == "applied" and ledger(conn)[V3][0] == "applied"
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'items_qty_check'").fetchone() == (1,)


def test_a_migration_that_breaks_the_lint_rules_is_refused_with_the_reasons(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    # items is applied first: indexing a table created earlier in the same pending change is fine.
    assert run_sync(settings)[0] == 0
    # The test helper commits without hooks, as `git commit --no-verify` does.
    unsafe = dev.add_migration(V2, "index_qty", up="CREATE INDEX items_qty_idx ON items (qty);\n",
                               down="DROP INDEX items_qty_idx;\n", validate="SELECT true AS ok;\n")
    dev.push()

    code, _ = run_sync(settings)

    assert code == 1
    assert ledger(conn)[V1][0] == "applied" and V2 not in ledger(conn)
    assert conn.execute("SELECT to_regclass('items_qty_idx')").fetchone() == (None,)
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, unsafe)
    assert text.startswith(f"lockgate: {V2}_index_qty refused: migrations/{V2}_index_qty.up.sql:1:1: LG101 ")
    notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")

    code, lines = run_sync(settings)

    assert code == 1
    assert lines[0].endswith(f"(noted on {unsafe[:12]} before)")
    assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before


def test_an_unsigned_commit_is_refused_when_signatures_are_required(
    origin: Origin, tmp_path: Path, db: str, conn: psycopg.Connection
) -> None:
    key, allowed_line = ssh_key(tmp_path, "trusted")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_line)
    dev = origin.clone("dev")
    dev.sign_with(key)
    signed = dev.add_migration(V1, "create_items", **ITEMS)
    dev.stop_signing()
    unsigned = dev.add_migration(V2, "add_note", **NOTE)
    dev.push()
    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", dsn=db,
                           require_signed=True, allowed_signers=allowed)

    code, _ = run_sync(settings)

    assert code == 1
    assert ledger(conn) == {V1: ("applied", signed, None)}
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, unsigned)
    assert text.startswith(f"lockgate: {V2}_add_note refused: commit {unsigned[:12]} is not signed")


def test_a_force_push_that_drops_an_applied_migration_is_reported_not_rolled_back(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    before = dev.head
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert run_sync(settings)[0] == 0
    dev.reset_hard(before)
    dev.commit_files({"README": "rewritten history\n"}, "unrelated work")
    dev.push(force=True)

    code, lines = run_sync(settings)

    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert ledger(conn)[V2] == ("applied", merge, None)
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, dev.head)
    assert text.startswith(f"lockgate: {V2}_add_note refused: applied from commit {merge[:12]}, which is no longer")
    assert "not rolled back" in lines[0]


def test_a_misnamed_file_on_the_branch_is_bad_input_named_by_its_path_in_the_repository(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    dev.commit_files({"migrations/20240102000000_add note.up.sql": "SELECT 1;\n"}, "a misnamed file")
    dev.push()

    with pytest.raises(InputError) as raised:
        run_sync(settings)

    assert [str(p) for p in raised.value.problems] == [
        "migrations/20240102000000_add note.up.sql:1:1: bad migration file name: "
        "expected <digits>_<title>.(up|down|validate).sql, the title without path separators or whitespace"
    ]
    assert conn.execute("SELECT to_regclass('lockgate.migrations')").fetchone() == (None,)


@pytest.mark.asyncio
async def test_each_outcome_is_a_kubernetes_event_about_the_pod(
    kmock: KubernetesEmulator, origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    with pod_events(kmock) as recorder:
        await asyncio.to_thread(sync.run, settings, say=lambda _: None, events=recorder)
        merge = merged(dev, "note", V2, "add_note", NOTE)
        await asyncio.to_thread(sync.run, settings, say=lambda _: None, events=recorder)
        dev.revert(merge)
        dev.push()
        conn.execute("INSERT INTO items VALUES (1, 0)")
        merged(dev, "qty", V3, "positive_qty", positive_qty())
        await asyncio.to_thread(sync.run, settings, say=lambda _: None, events=recorder)

    sent = [(p.data["reason"], p.data["type"], p.data["message"].split(" ")[1])
            for p in kmock["post /api/v1/namespaces/shop/events"]]
    assert sent == [
        ("MigrationApplied", "Normal", f"{V1}_create_items"),
        ("MigrationApplied", "Normal", f"{V2}_add_note"),
        ("MigrationRolledBack", "Warning", f"{V2}_add_note"),
        ("MigrationFailed", "Warning", f"{V3}_positive_qty"),
    ]


@pytest.fixture
def github() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A loopback HTTP server standing in for the GitHub API: its URL and the (path, body) it received."""
    received: list[tuple[str, dict[str, Any]]] = []

    def answer(path: str, headers: Message, body: bytes) -> tuple[int, bytes]:
        received.append((path, json.loads(body)))
        return 201, b""

    with serving_posts(answer) as url:
        yield url, received


def test_outcomes_become_commit_statuses_when_a_token_is_set(
    origin: Origin, dev: Clone, db: str, tmp_path: Path, github: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, received = github
    settings = config.load(
        repo=origin.url, cache_dir=tmp_path / "cache", dsn=db, github_token="ghp_demo_token_0123",
        github_repository="shop/app", github_api_url=url,
    )

    assert run_sync(settings)[0] == 0

    [(path, body)] = received
    assert path == f"/repos/shop/app/statuses/{dev.head}"
    assert body["state"] == "success" and body["context"] == f"lockgate/{V1}"
    assert body["description"].startswith(f"{V1}_create_items applied in ")


def test_the_command_warns_about_a_dsn_on_the_command_line_and_exits_2_on_bad_settings(
    origin: Origin, dev: Clone, db: str, tmp_path: Path
) -> None:
    lockgate = str(Path(sys.executable).parent / "lockgate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    env["LOCKGATE_CACHE_DIR"] = str(tmp_path / "cache")

    secret = "hunter2-not-for-logs"  # the test server trusts local connections; libpq sends it anyway
    ok = subprocess.run([lockgate, "sync", "--repo", origin.url, "--dsn", f"{db} password={secret}"],
                        capture_output=True, text=True, env=env, cwd=tmp_path)
    bad = subprocess.run([lockgate, "sync", "--repo", origin.url], capture_output=True, text=True,
                         env=env | {"LOCKGATE_DSN": db, "LOCKGATE_REQUIRE_SIGNED": "true"}, cwd=tmp_path)

    assert ok.returncode == 0, ok.stderr
    warnings = [line for line in ok.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "set LOCKGATE_DSN (or PGPASSWORD) from a Secret" in warnings[0]
    assert f"{V1}_create_items applied" in ok.stdout
    assert secret not in ok.stdout + ok.stderr + notes_seen_from_a_fresh_clone(origin, tmp_path, dev.head)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "lockgate sync: require_signed is set but allowed_signers (LOCKGATE_ALLOWED_SIGNERS) is not"
    )
