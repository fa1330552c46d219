"""What a migration's life across revert, re-land, resolve and back-to-back runs must not lose."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from applyhelp import add, execute, fast_settings, scalar
from clirun import lockgate

from lockgate.controller import config, plan
from lockgate.controller.engine import Engine
from lockgate.hooks import migrationset
from lockgate.hooks.errors import UsageError
from tests.gitrepos import Clone, Origin
from tests.syncsetup import NOTE, V2, columns, ledger, merged, notes_seen_from_a_fresh_clone, run_sync

DOUBLED = {
    "up": "ALTER TABLE items ADD COLUMN doubled int;\n\n"
          "-- lockgate:batch size=7\nUPDATE items SET doubled = qty * 2;\n",
    "down": "ALTER TABLE items DROP COLUMN doubled;\n",
    "validate": "SELECT true AS ok;\n",  # no gate to catch a skipped backfill: the engine must not skip it
}


def test_a_reverted_then_relanded_backfill_touches_every_row_again(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection
) -> None:
    assert run_sync(settings)[0] == 0
    conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 50) g")
    merge = merged(dev, "doubled", V2, "add_doubled", DOUBLED)
    assert run_sync(settings)[0] == 0
    revert = dev.revert(merge)
    dev.push()
    assert run_sync(settings)[0] == 0
    assert columns(conn, "items") == ["id", "qty"]
    dev.revert(revert)  # re-land: revert the revert
    dev.push()

    assert run_sync(settings)[0] == 0

    assert ledger(conn)[V2][0] == "applied"
    assert scalar(settings.dsn.get_secret_value() if settings.dsn else "",
                  "SELECT count(*) FROM items WHERE doubled IS NULL") == 0


def test_resolving_a_dirty_rollback_as_applied_makes_the_next_rollback_run_every_down_step(
    db: str, tmp_path: Path
) -> None:
    execute(db, "CREATE TABLE items (id bigint PRIMARY KEY)")
    version = "20240201000000"
    add(tmp_path, version, "two_columns",
        up="-- lockgate:no-transaction\nALTER TABLE items ADD COLUMN a int;\nALTER TABLE items ADD COLUMN b int;\n",
        down="-- lockgate:no-transaction\nALTER TABLE items DROP COLUMN b;\nALTER TABLE items DROP COLUMN a;\n")
    with Engine(fast_settings(), db) as engine:
        (migration,) = engine.pending(migrationset.load(tmp_path))
        assert engine.apply(migration).status == "applied"
    execute(db, "ALTER TABLE items DROP COLUMN a")  # someone's hand: the down's second step will fail
    with Engine(fast_settings(), db) as engine:
        assert engine.rollback(version).status == "dirty"
    execute(db, "ALTER TABLE items ADD COLUMN a int, ADD COLUMN b int")  # put back as applied
    with Engine(fast_settings(), db) as engine:
        engine.resolve(version, "applied", note="restored a and b by hand")

    with Engine(fast_settings(), db) as engine:
        outcome = engine.rollback(version)

    assert outcome.status == "rolled_back", outcome.reason
    assert scalar(db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 "
                      "AND NOT attisdropped") == 1


def test_the_applier_lock_is_free_the_moment_an_engine_is_done(db: str, conn: psycopg.Connection) -> None:
    held = []
    for _ in range(30):
        with Engine(fast_settings(), db):
            pass
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
        held.append(row[0] if row else 0)
    assert held == [0] * 30  # a run started now would not see "another applier is running"


def test_a_nul_byte_in_an_up_file_is_refused_on_its_commit_with_its_line(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merge = merged(dev, "nul", V2, "add_nul", {**NOTE, "up": "ALTER TABLE items\n  ADD COLUMN note text\0;\n"})

    code, _ = run_sync(settings)

    assert code == 1
    assert V2 not in ledger(conn) and columns(conn, "items") == ["id", "qty"]
    note = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
    assert f"migrations/{V2}_add_nul.up.sql:2:23: a NUL byte" in note


def test_a_malformed_keyword_dsn_is_one_line_and_exit_2(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    done = lockgate("sync", cwd=tmp_path, env={"LOCKGATE_REPO": origin.url, "LOCKGATE_DSN": "host=127.0.0.1 dbname",
                                               "LOCKGATE_CACHE_DIR": str(tmp_path / "cache")})

    assert done.returncode == 2
    assert done.stderr.startswith("lockgate sync: dsn: not a connection string libpq accepts: missing \"=\"")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_tampered_ledger_checksum_is_refused_with_a_reason(
    origin: Origin, dev: Clone, settings: config.Settings, conn: psycopg.Connection, tmp_path: Path
) -> None:
    assert run_sync(settings)[0] == 0
    conn.execute("UPDATE lockgate.migrations SET validate_checksum = repeat('0', 64)")

    code, lines = run_sync(settings)

    assert code == 1
    assert any("the ledger's validate checksum of " in line and "changed outside lockgate" in line for line in lines)


def test_plan_says_what_apply_then_does_after_a_rollback_by_revert(db: str, tmp_path: Path) -> None:
    execute(db, "CREATE TABLE items (id bigint PRIMARY KEY)")
    version = "20240201000000"
    add(tmp_path, version, "add_note", up="ALTER TABLE items ADD COLUMN note text;\n",
        down="ALTER TABLE items DROP COLUMN note;\n")
    migrations = migrationset.load(tmp_path)
    with Engine(fast_settings(), db) as engine:
        assert engine.apply(migrations.migrations[0]).status == "applied"
        assert engine.rollback(version).status == "rolled_back"  # what a revert does
    with psycopg.connect(db, autocommit=True) as conn:
        (planned,) = plan.build(conn, migrations, ledger_schema="lockgate")
    assert planned.state == "rolled back by a revert, back at the head: runs again"

    with Engine(fast_settings(), db) as engine:
        with pytest.raises(UsageError, match="has not failed"):
            engine.apply(migrations.migrations[0], retry=True)
        assert engine.apply(migrations.migrations[0]).status == "applied"  # as the plan said


def test_a_malformed_dsn_never_echoes_the_word_libpq_choked_on(tmp_path: Path) -> None:
    # A password written without its `=`: libpq's message quotes it.
    (tmp_path / "migrations").mkdir()
    done = lockgate("plan", cwd=tmp_path, env={"LOCKGATE_DSN": "host=127.0.0.1 password hunter2"})

    assert done.returncode == 2
    assert done.stderr.startswith("lockgate plan: dsn: not a connection string libpq accepts")
    assert "hunter2" not in done.stderr


def test_an_unexpected_error_is_one_redacted_line_and_its_traceback_only_on_request(db: str, tmp_path: Path) -> None:
    # A ledger table made by hand with other columns: nothing lockgate expects of its own schema.
    execute(db, "CREATE SCHEMA lockgate; CREATE TABLE lockgate.migrations (v text)")
    (tmp_path / "migrations").mkdir()
    env = {"LOCKGATE_DSN": db.replace("dbname=", "password=hunter2 dbname=")}

    plain = lockgate("plan", cwd=tmp_path, env=env)
    debug = lockgate("plan", cwd=tmp_path, env=env | {"LOCKGATE_DEBUG": "1"})

    assert plain.returncode == 1
    assert plain.stderr.startswith("lockgate plan: unexpected error: UndefinedColumn")
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr and "hunter2" not in plain.stderr
    assert "Traceback" in debug.stderr
