"""`lockgate new`: three files that lint clean, that check refuses until the author writes the
down, and whose template SQL really runs (pre-check, validation gate) on PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from clirun import lockgate

WIDGETS_UP = "\nCREATE TABLE widgets (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, label text NOT NULL);\n"
WIDGETS_DOWN = "\nDROP TABLE widgets;\n"


@pytest.fixture
def created(tmp_path: Path) -> dict[str, Path]:
    done = lockgate("new", "Add widgets", "--dir", "migrations", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    paths = [tmp_path / line for line in done.stdout.splitlines()]
    kinds = {}
    for path in paths:
        m = re.fullmatch(r"(\d{14})_add_widgets\.(up|down|validate)\.sql", path.name)
        assert m and path.parent == tmp_path / "migrations", path
        kinds[m[2]] = path
    assert sorted(kinds) == ["down", "up", "validate"]
    return kinds


def test_the_fresh_files_lint_clean_and_check_asks_for_the_down(tmp_path: Path, created: dict[str, Path]) -> None:
    assert lockgate("lint", cwd=tmp_path).returncode == 0
    assert lockgate("hash", cwd=tmp_path).returncode == 0
    done = lockgate("check", cwd=tmp_path)
    assert done.returncode == 1
    down = created["down"].relative_to(tmp_path)
    assert done.stdout.splitlines()[0] == (
        f"{down}:1:1: LG901 {down.name} has no SQL statement: write SQL to undo the up"
    )


def test_once_the_author_writes_up_and_down_lint_and_check_pass(tmp_path: Path, created: dict[str, Path]) -> None:
    with created["up"].open("a") as up:
        up.write(WIDGETS_UP)
    with created["down"].open("a") as down:
        down.write("\nSELECT 1;\n")  # a down that runs but undoes nothing
    assert lockgate("hash", cwd=tmp_path).returncode == 0
    refused = lockgate("check", cwd=tmp_path)
    assert refused.returncode == 1
    assert "LG903 rollback does not drop table widgets created at up.sql:" in refused.stdout
    created["down"].write_text(created["down"].read_text().replace("\nSELECT 1;\n", WIDGETS_DOWN))
    assert lockgate("hash", cwd=tmp_path).returncode == 0
    for command in ("lint", "check"):
        done = lockgate(command, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (0, ""), f"{command}: {done.stdout}{done.stderr}"


def test_the_template_sql_runs_and_its_gate_judges_row_counts(
    created: dict[str, Path], conn: psycopg.Connection
) -> None:
    with created["up"].open("a") as up:
        up.write(WIDGETS_UP)
    created["down"].write_text(created["down"].read_text() + WIDGETS_DOWN)
    # What the engine provides to validation: the row counts captured before the up.
    conn.execute("CREATE TEMP TABLE migration_baseline (table_name text, row_count bigint, captured_at timestamptz)")
    conn.execute(created["up"].read_text())  # the template's pre-check DO block included
    conn.execute("INSERT INTO migration_baseline VALUES ('widgets', 0, now())")

    def gate() -> object:
        cursor = conn.execute(created["validate"].read_text())
        row = cursor.fetchone()
        assert row is not None
        return row[0]

    assert gate() is True
    conn.execute("INSERT INTO widgets (label) VALUES ('stray')")
    assert gate() is False
    conn.execute(created["down"].read_text())
    assert conn.execute("SELECT to_regclass('widgets')").fetchone() == (None,)
