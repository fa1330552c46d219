"""The no-op sync's short cut: taken only when nothing changed since a pass left all in sync, and
never when anything that could change the outcome did."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from clirun import lockgate

from lockgate.controller import config, fastpath
from tests.gitrepos import MIGRATIONS, Clone, Origin
from tests.syncsetup import NOTE, V2, merged, positive_qty

SHORT = "nothing changed since the last pass"


@pytest.fixture
def env(origin: Origin, db: str, tmp_path: Path) -> dict[str, str]:
    return {"LOCKGATE_REPO": origin.url, "LOCKGATE_DSN": db, "LOCKGATE_CACHE_DIR": str(tmp_path / "cache")}


def _sync(tmp_path: Path, env: dict[str, str], **extra: str) -> tuple[int, str]:
    done = lockgate("sync", cwd=tmp_path, env={**env, **extra})
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout


def test_a_second_pass_with_nothing_new_skips_the_fetch(
    origin: Origin, dev: Clone, env: dict[str, str], tmp_path: Path
) -> None:
    assert _sync(tmp_path, env)[0] == 0
    shutil.rmtree(tmp_path / "cache")  # a new pod: an empty emptyDir

    code, out = _sync(tmp_path, env)

    assert code == 0 and out.startswith(f"in sync at {dev.head[:12]}: {SHORT}")
    assert not (tmp_path / "cache").exists()  # nothing was fetched


def test_a_new_commit_takes_the_full_path(origin: Origin, dev: Clone, env: dict[str, str], tmp_path: Path,
                                          conn: psycopg.Connection) -> None:
    assert _sync(tmp_path, env)[0] == 0
    merged(dev, "note", V2, "add_note", NOTE)

    code, out = _sync(tmp_path, env)

    assert code == 0 and SHORT not in out and f"{V2}_add_note applied" in out
    assert _sync(tmp_path, env)[1].startswith(f"in sync at {dev.head[:12]}: {SHORT}")


def _recorded_as_if_in_sync(origin: Origin, db: str, conn: psycopg.Connection) -> None:
    """A pass that fails records nothing; record this state as if one had, to show that the
    operator's command that follows undoes the short cut all by itself."""
    settings = config.load(repo=origin.url, dsn=db)
    seen = fastpath.look(settings)
    assert seen is not None
    fastpath.record(conn, settings, seen)


def test_a_retry_takes_the_full_path(
    origin: Origin, dev: Clone, env: dict[str, str], tmp_path: Path, conn: psycopg.Connection, db: str
) -> None:
    assert _sync(tmp_path, env)[0] == 0
    conn.execute("INSERT INTO items VALUES (1, 5), (2, 0)")
    merge = merged(dev, "qty", V2, "positive_qty", positive_qty())
    assert _sync(tmp_path, env)[0] == 1
    _recorded_as_if_in_sync(origin, db, conn)
    assert SHORT in _sync(tmp_path, env)[1]
    conn.execute("UPDATE items SET qty = 1 WHERE qty = 0")
    retry = lockgate("retry", V2, "--dir", str(dev.path / MIGRATIONS), cwd=tmp_path, env={"LOCKGATE_DSN": db})
    assert retry.returncode == 0, retry.stderr

    code, out = _sync(tmp_path, env)

    assert code == 0 and f"{V2}_positive_qty applied" in out and f"(note on {merge[:12]})" in out  # caught up
    assert SHORT in _sync(tmp_path, env)[1]


def test_a_resolve_takes_the_full_path(
    origin: Origin, dev: Clone, env: dict[str, str], tmp_path: Path, conn: psycopg.Connection, db: str
) -> None:
    assert _sync(tmp_path, env)[0] == 0
    # Committed steps, a gate that fails, and a down that adds a column: the rollback is dirty.
    merge = merged(dev, "cols", V2, "add_cols", {
        "up": "-- lockgate:no-transaction\nALTER TABLE items ADD COLUMN b int;\n",
        "down": "ALTER TABLE items DROP COLUMN b;\nALTER TABLE items ADD COLUMN leftover int;\n",
        "validate": "-- Gate: never.\nSELECT false AS never;\n",
    })
    assert _sync(tmp_path, env)[0] == 1
    _recorded_as_if_in_sync(origin, db, conn)
    assert SHORT in _sync(tmp_path, env)[1]
    conn.execute("ALTER TABLE items DROP COLUMN leftover")
    resolved = lockgate("resolve", V2, "--as", "rolled_back", cwd=tmp_path, env={"LOCKGATE_DSN": db})
    assert resolved.returncode == 0, resolved.stderr

    code, out = _sync(tmp_path, env)

    assert code == 1 and f"{V2}_add_cols failed" in out and f"(note on {merge[:12]})" in out  # caught up


def test_a_ledger_row_changed_by_hand_takes_the_full_path(
    origin: Origin, dev: Clone, env: dict[str, str], tmp_path: Path, conn: psycopg.Connection
) -> None:
    assert _sync(tmp_path, env)[0] == 0
    assert SHORT in _sync(tmp_path, env)[1]
    conn.execute("UPDATE lockgate.migrations SET up_checksum = 'edited'")  # no event: not through lockgate

    code, out = _sync(tmp_path, env)

    assert code == 1 and SHORT not in out and "the ledger was changed outside lockgate" in out


# A change to each column type of the ledger's rows, for the digest test below.
_CHANGE = {"text": "coalesce({c}, '') || 'x'", "integer": "coalesce({c}, 0) + 1", "boolean": "NOT coalesce({c}, false)",
           "timestamp with time zone": "coalesce({c}, now()) + interval '1 second'",
           "jsonb": "coalesce({c}, '{{}}') || '{{\"x\": 1}}'"}


def test_a_hand_change_to_any_ledger_column_changes_its_state(
    origin: Origin, dev: Clone, env: dict[str, str], tmp_path: Path, conn: psycopg.Connection, db: str
) -> None:
    """Every column a pass's decisions read is in the digest, the ones added later too; only each
    row's baseline (a whole-schema snapshot, costly to digest) is not."""
    assert _sync(tmp_path, env)[0] == 0
    settings = config.load(repo=origin.url, dsn=db)
    columns = conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                           "WHERE table_schema = 'lockgate' AND table_name = 'migrations'").fetchall()
    assert {c for c, _ in columns} == {*fastpath.DIGESTED, "baseline"}
    before = fastpath.ledger(conn, settings)
    for column, data_type in columns:
        change = "CASE WHEN status = 'failed' THEN 'applied' ELSE 'failed' END" if column == "status" else (
            _CHANGE[data_type].format(c=column))
        with conn.transaction(force_rollback=True):
            conn.execute(f"UPDATE lockgate.migrations SET {column} = {change}")
            assert (fastpath.ledger(conn, settings) == before) == (column == "baseline"), column


def test_a_changed_setting_takes_the_full_path(origin: Origin, dev: Clone, env: dict[str, str],
                                               tmp_path: Path) -> None:
    assert _sync(tmp_path, env)[0] == 0

    assert SHORT not in _sync(tmp_path, env, LOCKGATE_MAX_ROLLBACKS="7")[1]
    assert SHORT in _sync(tmp_path, env, LOCKGATE_MAX_ROLLBACKS="7")[1]
    # Where the cache lives or how long to wait for it decides nothing.
    assert SHORT in _sync(tmp_path, env, LOCKGATE_MAX_ROLLBACKS="7", LOCKGATE_CACHE_WAIT="5s")[1]


def test_a_new_note_on_the_origin_takes_the_full_path(origin: Origin, dev: Clone, env: dict[str, str],
                                                      tmp_path: Path) -> None:
    assert _sync(tmp_path, env)[0] == 0
    dev.git("fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
    dev.git("notes", "--ref=lockgate", "append", "-m", "a reviewer's remark", "HEAD")
    dev.git("push", "--quiet", "origin", "refs/notes/lockgate")

    assert SHORT not in _sync(tmp_path, env)[1]


def test_a_new_lockgate_version_or_any_part_changes_the_fingerprint(db: str, tmp_path: Path) -> None:
    settings = config.load(repo=str(tmp_path), dsn=db)
    seen = fastpath.Seen(head="a" * 40, notes="b" * 40)
    base = fastpath.fingerprint(seen, settings, "7", "0.1.0")
    assert base == fastpath.fingerprint(seen, settings, "7", "0.1.0")
    assert base != fastpath.fingerprint(seen, settings, "7", "0.2.0")
    assert base != fastpath.fingerprint(seen, settings, "8", "0.1.0")
    assert base != fastpath.fingerprint(fastpath.Seen("c" * 40, "b" * 40), settings, "7", "0.1.0")
    assert base != fastpath.fingerprint(fastpath.Seen("a" * 40, None), settings, "7", "0.1.0")
    assert base != fastpath.fingerprint(seen, config.load(repo=str(tmp_path), dsn=db, require_signed=False,
                                                          branch="release"), "7", "0.1.0")


def test_a_pass_that_does_not_end_in_sync_leaves_no_short_cut(
    origin: Origin, dev: Clone, env: dict[str, str], tmp_path: Path, conn: psycopg.Connection
) -> None:
    assert _sync(tmp_path, env)[0] == 0
    merged(dev, "bad", V2, "bad_gate", {**NOTE, "validate": "SELECT false AS never;\n"})
    assert _sync(tmp_path, env)[0] == 1

    code, out = _sync(tmp_path, env)

    assert code == 1 and SHORT not in out
    assert conn.execute("SELECT count(*) FROM lockgate.sync_state").fetchone() == (0,)
