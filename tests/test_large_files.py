"""A migration of many megabytes (a data load) is parsed in pieces without holding every parse tree,
with the same findings and errors as a whole-file parse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    assert all(type(s) is sqlmodel._Reparsed for s in parsed.statements)  # no tree kept
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


def _load(path: Path, mib: int) -> int:
    """A data load of about `mib` MiB: a CREATE TABLE, then INSERTs of 100 rows each; returns the rows."""
    row = 0
    with path.open("w") as out:
        out.write("CREATE TABLE entries (id bigint PRIMARY KEY, name text NOT NULL, note text);\n")
        while out.tell() < mib << 20:
            values = ",\n  ".join(f"({row + n}, 'entry {row + n}', 'a note for row {row + n}')" for n in range(100))
            out.write(f"INSERT INTO entries (id, name, note) VALUES\n  {values};\n")
            row += 100
    return row


# Peak RSS a command adds to a process that has already imported everything it runs (MiB).
_GROWTH = """
import resource, sys
from lockgate.controller.cli import main
from lockgate.hooks.lint import all_rules
from lockgate.controller import applying, engine  # noqa: F401 - imported before the baseline
all_rules()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = main(sys.argv[1:])
print(code, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
# A large file holds its text and each statement's text, plus one piece's parse trees at a time: about
# 2x the file and 30 MiB. Holding every statement's tree instead takes about 45x the file (390 MiB for 8).
_BOUND_MIB = 96


def _growth(*args: str) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", _GROWTH, *args], capture_output=True, text=True, check=False,
                          timeout=600)
    code, growth = done.stdout.split()[-2:]
    return int(code), int(growth)


def test_linting_an_8_mib_load_holds_no_tree_per_statement(tmp_path: Path) -> None:
    path = tmp_path / "1_load.up.sql"
    _load(path, 8)
    code, growth = _growth("lint", str(path))
    assert code == 0 and growth < _BOUND_MIB


@pytest.mark.slow
def test_applying_an_8_mib_load_holds_no_tree_per_statement(db: str, tmp_path: Path) -> None:
    rows = _load(tmp_path / "1_load.up.sql", 8)
    (tmp_path / "1_load.down.sql").write_text("DROP TABLE entries;\n")
    (tmp_path / "1_load.validate.sql").write_text(f"SELECT count(*) = {rows} AS loaded FROM entries;\n")
    code, growth = _growth("apply", "--dir", str(tmp_path), "--dsn", db)
    assert code == 0 and growth < _BOUND_MIB
