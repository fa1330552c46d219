"""Rollback only by revert: every way applied migrations can disappear from the branch, through
real git and a real PostgreSQL. Only a revert of the change that brought a migration (in git's,
GitHub's or GitLab's words, or with a `Lockgate-Rollback:` trailer), removing exactly the files
that were applied, signed when signatures are required, rolls it back; nothing else drops a thing."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import git
import psycopg
import pytest

from lockgate.controller import config
from lockgate.controller.reverts import Change, CommitText, revert_of, rollback_trailer_versions
from lockgate.hooks.errors import InputError
from tests.gitrepos import Clone, Origin, ssh_key
from tests.syncsetup import (
    ITEMS,
    NOTE,
    V1,
    V2,
    V3,
    columns,
    ledger,
    merged,
    notes_seen_from_a_fresh_clone,
    run_sync,
)

TAG = {
    "up": "ALTER TABLE items ADD COLUMN tag text;\n",
    "down": "ALTER TABLE items DROP COLUMN tag;\n",
    "validate": "SELECT true AS ok;\n",
}
FILES = [f"migrations/{V2}_add_note.{kind}.sql" for kind in ("up", "down", "validate")]


def _delete_note(dev: Clone, message: str) -> str:
    """Delete V2's files (and rewrite lockgate.sum) in one commit on main, pushed."""
    dev.git("rm", "--quiet", "--", *FILES)
    sha = dev.commit_files({"migrations/lockgate.sum": dev.sum_text()}, message)
    dev.push()
    return sha


def _applied_note(dev: Clone, settings: config.Settings) -> str:
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert run_sync(settings)[0] == 0
    return merge


# -- what counts as a revert (pure) ----------------------------------------------------------------


def test_git_github_gitlab_and_trailer_forms_are_reverts_and_others_are_not() -> None:
    merge = CommitText("a" * 40, "Merge pull request #12 from acme/note\n\nAdd note")
    branch = CommitText("b" * 40, "add migration note")
    introduction = Change(merge, (branch,))

    def removal(message: str, merged: str | None = None) -> Change:
        return Change(CommitText("c" * 40, message), (CommitText("d" * 40, merged),) if merged else ())

    assert revert_of(V2, removal(f"Revert \"Merge pull request #12\"\n\nThis reverts commit {'a' * 40}, "
                                 f"reversing\nchanges made to {'e' * 40}."), introduction)
    assert revert_of(V2, removal(f"Revert one commit\n\nThis reverts commit {'b' * 12}."), introduction)
    # GitHub's revert pull request, merged: the revert is on the branch the merge brings in.
    assert revert_of(V2, removal("Merge pull request #13 from acme/revert-12-note",
                                 f"Revert \"Merge\"\n\nThis reverts commit {'a' * 40}."), introduction)
    # ... and squashed, keeping only the pull request reference.
    assert revert_of(V2, removal("Revert \"Add note (#12)\" (#13)\n\nReverts acme/shop#12"), introduction)
    squashed = Change(CommitText("f" * 40, "Add note (#12)\n"))
    assert revert_of(V2, removal("Revert (#13)\n\nReverts acme/shop#12"), squashed)
    gitlab = Change(CommitText("1" * 40, "Merge branch 'note' into 'main'\n\nSee merge request shop/db!7"))
    assert revert_of(V2, removal("Revert \"Note\"\n\nThis reverts merge request !7"), gitlab)
    assert revert_of(V2, removal(f"Retire the note column\n\nLockgate-Rollback: {V2}_add_note, {V3}"), None)

    assert revert_of(V2, removal("Remove old migrations"), introduction) is None
    assert revert_of(V2, removal(f"Revert\n\nThis reverts commit {'9' * 40}."), introduction) is None
    assert revert_of(V2, removal("Revert\n\nReverts acme/shop#21"), introduction) is None
    assert revert_of(V2, removal("Revert\n\nThis reverts merge request !8"), gitlab) is None
    assert revert_of(V2, removal(f"x\n\nLockgate-Rollback: {V3}"), introduction) is None
    assert revert_of(V2, removal("short sha\n\nThis reverts commit aaaaaa."), introduction) is None
    assert rollback_trailer_versions("a\n\nlockgate-rollback: 1_a 2\n") == {"1", "2"}


# -- findings 1 and 2: a deletion or a folder move is no rollback ---------------------------------


def test_a_plain_deletion_of_applied_files_is_refused_and_the_rest_still_applies(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    _applied_note(dev, settings)
    cleanup = _delete_note(dev, "Clean up old migrations")
    merged(dev, "tag", V3, "add_tag", TAG)

    code, lines = run_sync(settings)

    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note", "tag"]  # nothing dropped, the next one applied
    assert {v: row[0] for v, row in ledger(conn).items()} == {V1: "applied", V2: "applied", V3: "applied"}
    note = notes_seen_from_a_fresh_clone(origin, tmp_path, cleanup)
    assert note.startswith(f"lockgate: {V2}_add_note refused: {cleanup[:12]} (Clean up old migrations) removed "
                           f"applied migration {V2}_add_note but is not a revert")
    assert "git revert" in note and f"Lockgate-Rollback: {V2}" in note
    # The refusal is noted once; the next pass still says it and changes nothing.
    code, lines = run_sync(settings)
    assert code == 1 and any("noted on" in line and "before" in line for line in lines)
    assert columns(conn, "items") == ["id", "qty", "note", "tag"]


def test_a_symlinked_migrations_folder_is_bad_input_and_drops_nothing(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    _applied_note(dev, settings)
    dev.git("mv", "migrations", "db")
    os.symlink("db", dev.path / "migrations")
    dev.git("add", "migrations")
    dev.git("commit", "--quiet", "-m", "Move migrations under db/")
    dev.push()

    proc = subprocess.run(
        [str(Path(os.sys.executable).parent / "lockgate"), "sync"], capture_output=True, text=True,
        env=os.environ | {"LOCKGATE_REPO": origin.url, "LOCKGATE_CACHE_DIR": str(tmp_path / "cache"),
                          "LOCKGATE_DSN": settings.dsn.get_secret_value() if settings.dsn else ""},
    )

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "migrations:1:1:" in proc.stderr and "symbolic link" in proc.stderr
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert {v: row[0] for v, row in ledger(conn).items()} == {V1: "applied", V2: "applied"}
    # The same tree checked locally is bad input too, and lint does not follow the link.
    check = subprocess.run([str(Path(os.sys.executable).parent / "lockgate"), "check"],
                           cwd=dev.path, capture_output=True, text=True)
    assert check.returncode == 2 and "symbolic link" in check.stderr, check


def test_a_symlinked_migration_file_is_bad_input(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.sql"
    outside.write_text("DROP TABLE items;\n")
    up = dev.path / "migrations" / f"{V2}_add_note.up.sql"
    dev.add_migration(V2, "add_note", **NOTE)
    up.unlink()
    os.symlink(outside, up)
    dev.git("add", str(up))
    dev.git("commit", "--quiet", "-m", "link the up file")
    dev.push()

    with pytest.raises(Exception, match="symbolic link") as raised:
        run_sync(settings)

    assert type(raised.value).__name__ == "InputError"
    assert columns(conn, "items") == []  # not even V1 ran: the set cannot be read reliably


# -- a revert still rolls back; its files must be the applied ones ----------------------------------


def test_git_revert_of_the_merge_rolls_back_and_notes_the_revert_commit(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge = _applied_note(dev, settings)
    revert = dev.revert(merge)
    dev.push()

    code, _ = run_sync(settings)

    assert code == 0
    assert columns(conn, "items") == ["id", "qty"]
    assert ledger(conn)[V2][0] == "rolled_back"
    assert notes_seen_from_a_fresh_clone(origin, tmp_path, revert).startswith(f"lockgate: {V2}_add_note rolled back")


def test_a_trailer_rolls_back_what_a_revert_cannot_express(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    _applied_note(dev, settings)
    _delete_note(dev, f"Retire the note column\n\nLockgate-Rollback: {V2}")

    assert run_sync(settings)[0] == 0
    assert columns(conn, "items") == ["id", "qty"]


def test_a_revert_whose_files_differ_from_the_applied_ones_is_refused(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge = _applied_note(dev, settings)
    # Someone edits the applied down on main (a --no-verify commit), then the merge is reverted.
    dev.commit_files({FILES[1]: "ALTER TABLE items DROP COLUMN qty;\n"}, "tweak the down")
    dev.push()
    revert = _delete_note(dev, f"Revert note\n\nThis reverts commit {merge}.")

    code, _ = run_sync(settings)

    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note"]
    note = notes_seen_from_a_fresh_clone(origin, tmp_path, revert)
    assert "that are not the ones applied (down differs)" in note


# -- finding 3: rollbacks need signatures as applies do -----------------------------------------------


def test_an_unsigned_revert_is_refused_and_a_signed_one_rolls_back(
    origin: Origin, tmp_path: Path, db: str, conn: psycopg.Connection
) -> None:
    key, allowed_line = ssh_key(tmp_path, "trusted")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_line)
    dev = origin.clone("dev")
    dev.sign_with(key)
    dev.add_migration(V1, "create_items", **ITEMS)
    merge = merged(dev, "note", V2, "add_note", NOTE)
    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", dsn=db,
                           require_signed=True, allowed_signers=allowed)
    assert run_sync(settings)[0] == 0
    dev.stop_signing()
    unsigned = dev.revert(merge)
    dev.push()

    code, _ = run_sync(settings)

    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert f"commit {unsigned[:12]} is not signed" in notes_seen_from_a_fresh_clone(origin, tmp_path, unsigned)

    dev.reset_hard(merge)
    dev.sign_with(key)
    signed = dev.revert(merge)
    dev.push(force=True)
    assert run_sync(settings)[0] == 0
    assert columns(conn, "items") == ["id", "qty"]
    assert notes_seen_from_a_fresh_clone(origin, tmp_path, signed).startswith(f"lockgate: {V2}_add_note rolled back")


# -- the ceiling, and a down that would lock production ------------------------------------------------


def test_a_pass_over_the_rollback_ceiling_rolls_back_nothing(
    origin: Origin, dev: Clone, db: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    dev.branch("two")
    dev.add_migration(V2, "add_note", **NOTE)
    dev.add_migration(V3, "add_tag", **TAG)
    dev.switch("main")
    merge = dev.merge_branch("two")
    dev.push()
    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", dsn=db, max_rollbacks=1)
    assert run_sync(settings)[0] == 0
    revert = dev.revert(merge)
    dev.push()

    code, _ = run_sync(settings)

    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note", "tag"]
    assert "more than max_rollbacks (1)" in notes_seen_from_a_fresh_clone(origin, tmp_path, revert)
    raised = config.load(repo=origin.url, cache_dir=tmp_path / "cache", dsn=db, max_rollbacks=2)
    assert run_sync(raised)[0] == 0
    assert columns(conn, "items") == ["id", "qty"]


def test_the_down_the_ledger_will_run_is_linted_at_rollback_time(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge = _applied_note(dev, settings)
    # What runs is the down text the ledger holds (here as an older lockgate, without the down
    # rules, let it through): that text is what the rollback's approval lints.
    blocking = "CREATE INDEX items_qty_idx ON items (qty);\nALTER TABLE items DROP COLUMN note;\n"
    conn.execute("UPDATE lockgate.migrations SET down_sql = %s, "
                 "down_checksum = encode(sha256(convert_to(%s, 'UTF8')), 'hex') WHERE version = %s",
                 (blocking, blocking, V2))
    revert = dev.revert(merge)
    dev.push()

    code, _ = run_sync(settings)

    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note"]
    note = notes_seen_from_a_fresh_clone(origin, tmp_path, revert)
    assert f"migrations/{V2}_add_note.down.sql:1:1: LG101" in note and "(as applied)" in note


# -- rollbacks run newest first: an older one waits behind a newer removal that was refused --------

TAGS = {
    "up": "CREATE TABLE tags (id bigint PRIMARY KEY);\n",
    "down": "DROP TABLE tags;\n",
    "validate": "SELECT to_regclass('tags') IS NOT NULL AS tags_exist;\n",
}
LABEL = {
    "up": "ALTER TABLE tags ADD COLUMN label text;\n",
    "down": "ALTER TABLE tags DROP COLUMN label;\n",
    "validate": "SELECT true AS ok;\n",
}


def test_a_revert_under_a_refused_newer_removal_waits_and_drops_nothing(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    tags = merged(dev, "tags", V2, "create_tags", TAGS)
    merged(dev, "label", V3, "add_label", LABEL)
    assert run_sync(settings)[0] == 0
    conn.execute("INSERT INTO tags VALUES (1, 'keep me')")
    dev.git("rm", "--quiet", "--", *(f"migrations/{V3}_add_label.{k}.sql" for k in ("up", "down", "validate")))
    dev.commit_files({"migrations/lockgate.sum": dev.sum_text()}, "Clean up the label migration")
    # Then the older change is reverted for real: its down drops the table, label and data with it.
    with contextlib.suppress(git.GitCommandError):
        dev.git("revert", "--no-commit", "-m", "1", tags)
    revert = dev.commit_files(
        {"migrations/lockgate.sum": dev.sum_text()}, f'Revert "tags"\n\nThis reverts commit {tags}.',
    )
    dev.push()

    code, _ = run_sync(settings)

    assert code == 1
    assert conn.execute("SELECT label FROM tags").fetchall() == [("keep me",)]
    assert {v: row[0] for v, row in ledger(conn).items()} == {V1: "applied", V2: "applied", V3: "applied"}
    note = notes_seen_from_a_fresh_clone(origin, tmp_path, revert)
    assert note.startswith(f"lockgate: {V2}_create_tags refused: waits for the newer {V3}_add_label")


# -- more ways to make migrations disappear ------------------------------------------------------------


def test_a_folder_move_is_refused_and_drops_nothing(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    _applied_note(dev, settings)
    dev.git("mv", "migrations", "db")
    move = dev.commit_files({}, "Move migrations under db/")
    dev.push()

    code, _ = run_sync(settings)

    assert code == 1
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert {v: row[0] for v, row in ledger(conn).items()} == {V1: "applied", V2: "applied"}
    note = notes_seen_from_a_fresh_clone(origin, tmp_path, move)
    assert f"lockgate: {V2}_add_note refused: {move[:12]} (Move migrations under db/) removed" in note


@pytest.mark.parametrize(("how", "what"), [("submodule", "git submodule"), ("file", "is a file")])
def test_a_migrations_folder_that_is_a_submodule_or_a_file_is_bad_input(
    how: str, what: str, origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    _applied_note(dev, settings)
    dev.git("rm", "-r", "--quiet", "migrations")
    if how == "submodule":
        dev.git("update-index", "--add", "--cacheinfo", f"160000,{dev.head},migrations")
    else:
        (dev.path / "migrations").write_text("see db/\n")
        dev.git("add", "migrations")
    dev.commit_files({}, f"migrations as a {how}")
    dev.push()

    with pytest.raises(InputError) as raised:
        run_sync(settings)

    (problem,) = raised.value.problems
    assert str(problem).startswith("migrations:1:1: at ") and what in str(problem)
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert {v: row[0] for v, row in ledger(conn).items()} == {V1: "applied", V2: "applied"}


def test_a_merged_github_revert_pull_request_rolls_back_and_its_merge_gets_the_note(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    dev.branch("add-note")
    dev.add_migration(V2, "add_note", **NOTE)
    dev.switch("main")
    dev.merge_branch("add-note", "Merge pull request #7 from acme/add-note\n\nAdd a note column")
    dev.push()
    assert run_sync(settings)[0] == 0
    dev.branch("revert-7-add-note")
    dev.git("rm", "--quiet", "--", *FILES)
    dev.commit_files({"migrations/lockgate.sum": dev.sum_text()}, 'Revert "Add a note column"')
    dev.switch("main")
    merge = dev.merge_branch(
        "revert-7-add-note", 'Merge pull request #8 from acme/revert-7-add-note\n\nReverts acme/shop#7',
    )
    dev.push()

    code, lines = run_sync(settings)

    assert code == 0, lines
    assert columns(conn, "items") == ["id", "qty"]
    assert notes_seen_from_a_fresh_clone(origin, tmp_path, merge).startswith(f"lockgate: {V2}_add_note rolled back")
