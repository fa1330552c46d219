"""Malformed input: every case is one clear line per problem and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate.hooks.errors import InputError
from lockgate.hooks.lint import lint_paths
from lockgate.hooks.migrationset import load
from lockgate.hooks.sqlmodel import parse_sql

OK_DOWN = "SELECT 1;\n"


def lockgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockgate.controller", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


# name -> (file name, file bytes, text the one-line error must contain, line:col it must name)
CORPUS: dict[str, tuple[str, bytes, str, str]] = {
    "syntax error": (
        "1_a.up.sql",
        b"SELECT 1;\nALTER TABEL t ADD COLUMN a int;\n",
        'syntax error at or near "TABEL"',
        ":2:7:",
    ),
    "empty statement soup": ("1_a.up.sql", b";;;\n;", "", ""),
    "binary file": ("1_a.up.sql", b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8", ":1:1:"),
    "latin-1 text": ("1_a.up.sql", b"SELECT 1;\n-- caf\xe9\n", "not UTF-8 text (byte 0xe9)", ":2:7:"),
    "unterminated dollar quote": (
        "1_a.up.sql",
        b"DO $$\nBEGIN\n  PERFORM 1;\n",
        "unterminated dollar-quoted string",
        ":1:4:",
    ),
    "nested dollar quotes": (
        "1_a.up.sql",
        b"DO $outer$\nBEGIN\n  EXECUTE $inner$SELECT 1$inner$;\n  SELEC 2;\nEND $outer$;\n",
        'PL/pgSQL: syntax error at or near "SELEC"',
        ":4:3:",
    ),
    "psql meta-command": ("1_a.up.sql", b"\\set ON_ERROR_STOP on\nSELECT 1;\n", "psql meta-commands", ":1:1:"),
    "unknown directive": (
        "1_a.up.sql",
        b"-- lockgate:batched size=10\nUPDATE t SET a = 1;\n",
        "unknown directive lockgate:batched",
        ":1:1:",
    ),
    "malformed batch": (
        "1_a.up.sql",
        b"SELECT 1;\n-- lockgate:batch size=-5\nUPDATE t SET a = 1;\n",
        "batch size='-5'",
        ":2:1:",
    ),
    "batch without workers": (
        "1_a.up.sql",
        b"-- lockgate:batch workers=0\nUPDATE t SET a = 1;\n",
        "batch workers='0' must be a positive integer",
        ":1:1:",
    ),
    "batch with too many workers": (
        "1_a.up.sql",
        b"SELECT 1;\n\n-- lockgate:batch size=100 workers=17\nUPDATE t SET a = 1;\n",
        "batch workers=17 is more than 16",
        ":3:1:",
    ),
    "batch bad duration": (
        "1_a.up.sql",
        b"-- lockgate:batch pause=soon\nUPDATE t SET a = 1;\n",
        "pause='soon'",
        ":1:1:",
    ),
    "ignore without reason": ("1_a.up.sql", b"-- lockgate:ignore LG101\nSELECT 1;\n", "needs a reason", ":1:1:"),
    "timeout bad duration": ("1_a.up.sql", b"SELECT 1;\n-- lockgate:timeout lock=5\n", "lock='5'", ":2:1:"),
    "timeout in a down file": (
        "1_a.down.sql",
        b"-- lockgate:timeout statement=1m\nSELECT 1;\n",
        "lockgate:timeout belongs in the up file",
        ":1:1:",
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_lint_reports_bad_input_as_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    name, data, expected, location = CORPUS[case]
    (tmp_path / name).write_bytes(data)
    result = lockgate("lint", name, cwd=tmp_path)
    assert "Traceback" not in result.stderr + result.stdout
    if not expected:  # not bad input: nothing to report
        assert result.returncode == 0, result.stdout + result.stderr
        return
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(name)]
    assert len(lines) == 1, result.stdout
    assert expected in lines[0] and location in lines[0]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"1_a.up.sql": "SELECT 1;", "1_a.down.sql": OK_DOWN}, "1_a has no validate file"),
        ({"20240101_x.up.sql": "SELECT 1;", "20240101_y.up.sql": "SELECT 1;"}, "duplicate version 20240101"),
        ({"add_tier.up.sql": "SELECT 1;"}, "bad migration file name"),
        ({"1_add tier.up.sql": "SELECT 1;"}, "bad migration file name"),
        ({"1_a.up.sql": "SELECT 1;", "01_b.up.sql": "SELECT 1;"}, "is the same number as"),
    ],
)
def test_structural_problems_are_one_line_each_and_exit_2(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for name, text in files.items():
        (migrations / name).write_text(text)
    result = lockgate("hash", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert all(line.startswith(str(migrations)) or line.startswith("migrations") for line in result.stderr.splitlines())
    assert not (migrations / "lockgate.sum").exists(), "nothing is written for bad input"


def test_a_bad_setting_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.lockgate]\ntarget_pg_version = "nine"\n')
    (tmp_path / "1_a.up.sql").write_text("SELECT 1;\n")
    result = lockgate("lint", "1_a.up.sql", cwd=tmp_path)
    assert result.returncode == 2
    assert "target_pg_version" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


SQL_WORDS = st.sampled_from(
    [
        "SELECT",
        "UPDATE",
        "t",
        "SET",
        "a",
        "=",
        "1",
        ";",
        "\n",
        "DO",
        "$$",
        "BEGIN",
        "END",
        "COMMIT",
        "(",
        ")",
        "ALTER",
        "TABLE",
        "ADD",
        "COLUMN",
        "int",
        "'x'",
        "--",
        "-- lockgate:batch size=10",
        "-- lockgate:ignore LG101",
        "-- lockgate:no-transaction",
        "-- lockgate:timeout lock=1s",
        "CREATE",
        "INDEX",
        "ON",
        "DELETE",
        "FROM",
        "WHERE",
        "$x$",
        "/*",
        "*/",
        "é",
        "\\",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(SQL_WORDS, max_size=40))
def test_parser_and_linter_never_crash_on_sql_like_input(tmp_path: Path, words: list[str]) -> None:
    text = " ".join(words)
    path = tmp_path / "1_fuzz.up.sql"
    try:
        parse_sql(path, text)
    except InputError as exc:
        assert exc.problems and all(p.line >= 1 and p.column >= 1 for p in exc.problems)
        assert all("\n" not in str(p) for p in exc.problems)
    path.write_text(text)
    result = lint_paths([path], pg_version=15)
    assert all(f.line >= 1 and f.column >= 1 and "\n" not in f.message for f in result.findings)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_findings_or_clean(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "1_fuzz.up.sql"
    path.write_bytes(data)
    result = lint_paths([path], pg_version=15)
    assert all(f.line >= 1 and "\n" not in f.message for f in result.findings)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(alphabet="0123456789_abcXYZ.-", min_size=1, max_size=30), max_size=6, unique=True))
def test_migration_set_loader_only_raises_input_errors(tmp_path: Path, names: list[str]) -> None:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name in names:
        if name not in (".", ".."):
            (folder / f"{name}.sql").write_text("SELECT 1;")
    try:
        load(folder)
    except InputError as exc:
        assert exc.problems


def test_huge_file_is_linted_without_trouble(tmp_path: Path) -> None:
    path = tmp_path / "1_big.up.sql"
    path.write_text("CREATE TABLE big (id bigint PRIMARY KEY);\n" + "INSERT INTO big VALUES (1);\n" * 50_000)
    result = lint_paths([path], pg_version=15)
    assert not result.bad_input
