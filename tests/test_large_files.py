"""A migration of many megabytes (a data load) is parsed in pieces without holding every parse tree,
with the same findings and errors as a whole-file parse."""

from __future__ import annotations

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
