"""A migration of many megabytes (a data load) lints and applies without holding every parse tree:
the same findings and errors as a small file, in memory that grows with the text, not the trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from applyhelp import add, scalar

from lockgate.hooks import sqlmodel
from lockgate.hooks.errors import InputError
from lockgate.hooks.lint import lint_paths

# Every way a `;` at the end of a line can sit inside one statement, a directive, a DO block and
# non-ASCII text (byte and character offsets differ).
TRICKY = """\
-- Description: tricky
INSERT INTO items VALUES (1, 'a;
b', 1);
/* a comment;
*/ INSERT INTO items VALUES (2, $$c;
d$$, 2);
CREATE FUNCTION total() RETURNS numeric LANGUAGE sql
BEGIN ATOMIC
  SELECT sum(price) FROM items;
END;
-- lockgate:ignore LG401 -- a reason
UPDATE items SET name = 'café;' ;
DO $$ BEGIN DELETE FROM items; END $$;
ALTER TABLE items ALTER COLUMN price TYPE bigint;
CREATE INDEX items_name_idx ON items (name);
"""


def _findings(path: Path) -> list[str]:
    return [f"{f.line}:{f.column}: {f.rule} {f.message}" for f in lint_paths([path], pg_version=15).findings]


@pytest.mark.parametrize("chunk", [1, 40, 200])
def test_a_file_parsed_in_pieces_lints_exactly_as_a_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    path = tmp_path / "1_load.up.sql"
    path.write_text(TRICKY)
    whole = _findings(path)
    assert {w.split()[1] for w in whole} >= {"LG301", "LG101"}
    monkeypatch.setattr(sqlmodel, "LARGE_FILE", 0)
    monkeypatch.setattr(sqlmodel, "_CHUNK", chunk)
    assert _findings(path) == whole
    parsed = sqlmodel.parse_sql(path, TRICKY)
    assert all(s.tree is None for s in parsed.statements)
    assert [s.node for s in parsed.statements] == [s.node for s in sqlmodel.parse_sql(path, TRICKY).statements]


@pytest.mark.parametrize("chunk", [1, 40])
def test_a_syntax_error_in_a_file_parsed_in_pieces_is_at_the_same_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    path = tmp_path / "1_load.up.sql"
    text = TRICKY + "INSERT INTO items VALUES (3, 'é', 3);\nALTER TABEL items ADD COLUMN x int;\nSELECT 1;\n"
    with pytest.raises(InputError) as whole:
        sqlmodel.parse_sql(path, text)
    monkeypatch.setattr(sqlmodel, "LARGE_FILE", 0)
    monkeypatch.setattr(sqlmodel, "_CHUNK", chunk)
    with pytest.raises(InputError) as pieces:
        sqlmodel.parse_sql(path, text)
    assert str(pieces.value) == str(whole.value) == f'{path}:17:7: syntax error at or near "TABEL"'


def _data_load(path: Path, megabytes: int) -> int:
    """Write a table and INSERTs of 400 rows each, `megabytes` in all; returns the number of rows."""
    rows = ",\n".join(f"({n}, 'item {n} {n * 7919 % 100003:06d}', {n % 9973}.{n % 97:02d})" for n in range(400))
    statement = f"INSERT INTO items (id, name, price) VALUES\n{rows};\n"
    inserts = megabytes * 2**20 // len(statement)
    with path.open("w") as out:
        out.write("CREATE TABLE items (id bigint, name text, price numeric);\n")
        for _ in range(inserts):
            out.write(statement)
    return inserts * 400


def _peak_rss_mib(command: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    probe = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
             "exit_code = 0\ntry:\n    runpy.run_module('lockgate.controller', run_name='__main__')\n"
             "except SystemExit as exc:\n    exit_code = exc.code\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(exit_code)")
    done = subprocess.run([sys.executable, "-c", probe, "lockgate", *command], cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=600)
    return done, int(done.stderr.splitlines()[-1]) / 1024


def test_a_data_load_of_6_mib_lints_in_a_fraction_of_its_trees_memory(tmp_path: Path) -> None:
    # All of its trees at once take over 400 MiB (the JSON of the trees alone is 5x the text).
    _data_load(tmp_path / "1_load.up.sql", 6)
    done, peak = _peak_rss_mib(["lint", "1_load.up.sql"], tmp_path)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert peak < 160, f"peak RSS {peak:.0f} MiB"


def test_a_data_load_of_6_mib_applies_in_a_fraction_of_its_trees_memory(db: str, tmp_path: Path) -> None:
    add(tmp_path, "1", "load", up="SELECT 1;", down="DROP TABLE items;",
        validate="SELECT count(*) > 0 AS loaded FROM items;")
    rows = _data_load(tmp_path / "1_load.up.sql", 6)
    done, peak = _peak_rss_mib(["apply", "--dir", str(tmp_path), "--dsn", db], tmp_path)
    assert done.returncode == 0, done.stderr
    assert scalar(db, "SELECT count(*) FROM items") == rows
    assert peak < 200, f"peak RSS {peak:.0f} MiB"
