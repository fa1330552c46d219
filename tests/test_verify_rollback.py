"""`lockgate verify-rollback`: up → validate → down → schema equal → up again, in a scratch database."""

from __future__ import annotations

from pathlib import Path

import pytest
from applyhelp import add, scalar

from lockgate.controller.cli import main


def _scratch_databases(admin_dsn: str) -> int:
    return int(scalar(admin_dsn, "SELECT count(*) FROM pg_database WHERE datname LIKE 'lockgate_scratch_%'"))  # type: ignore[arg-type]


def test_the_example_set_round_trips_and_the_scratch_database_is_dropped(
    pg_server: object, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = pg_server.admin_dsn  # type: ignore[attr-defined]
    assert main(["verify-rollback", "--dir", "migrations", "--dsn", admin]) == 0
    assert "4 migration(s) round-tripped cleanly" in capsys.readouterr().out
    assert _scratch_databases(admin) == 0


def test_a_down_that_forgets_something_is_a_finding_at_the_down_file(
    pg_server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(tmp_path, "1", "table", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    add(tmp_path, "2", "columns", up="ALTER TABLE t ADD a int;\nALTER TABLE t ADD b int;",
        down="ALTER TABLE t DROP COLUMN a;")
    code = main(["verify-rollback", "--dir", str(tmp_path), "--dsn", pg_server.admin_dsn])  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"{tmp_path / '2_columns.down.sql'}:1:1: LG954 down does not undo up: ")
    assert "relation public.t › column b: added (was not there before)" in out


def test_a_down_that_fails_points_at_its_statement(
    pg_server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(tmp_path, "1", "table", up="CREATE TABLE t (id int);",
        down="-- Description: wrong table\n\nDROP TABLE t;\nDROP TABLE nope;")
    assert main(["verify-rollback", "--dir", str(tmp_path), "--dsn", pg_server.admin_dsn]) == 1  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / '1_table.down.sql'}:4:1: LG953 down does not undo up: ")
    assert 'table "nope" does not exist' in out


def test_an_up_that_fails_a_gate_is_a_finding_at_the_gate(
    pg_server: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add(tmp_path, "1", "table", up="CREATE TABLE t (id int);", down="DROP TABLE t;",
        validate="-- Gate: has rows.\nSELECT count(*) > 0 AS has_rows FROM t;")
    assert main(["verify-rollback", "--dir", str(tmp_path), "--dsn", pg_server.admin_dsn]) == 1  # type: ignore[attr-defined]
    assert capsys.readouterr().out.startswith(f"{tmp_path / '1_table.validate.sql'}:2:1: LG952 ")


def test_only_the_named_files_are_verified_on_a_throwaway_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCKGATE_DSN", raising=False)
    add(tmp_path, "1", "table", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    add(tmp_path, "2", "bad_down", up="ALTER TABLE t ADD a int;", down="SELECT 1;")
    add(tmp_path, "3", "good", up="ALTER TABLE t ADD b int;", down="ALTER TABLE t DROP COLUMN b;")
    assert main(["verify-rollback", "--dir", str(tmp_path), str(tmp_path / "1_table.up.sql")]) == 0
    assert "1 migration(s) round-tripped cleanly" in capsys.readouterr().out
    assert main(["verify-rollback", "--dir", str(tmp_path), str(tmp_path / "3_good.down.sql"), "README.md"]) == 0
    assert main(["verify-rollback", "--dir", str(tmp_path), str(tmp_path / "2_bad_down.up.sql")]) == 1
