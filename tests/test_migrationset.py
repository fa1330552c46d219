"""The migration set as lockgate reads it: bad input is one line per problem and exit 2, and
lockgate.sum notices every edited, added, removed or re-ordered file."""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import lockgate

from lockgate.hooks import migrationset, sumfile
from lockgate.hooks.errors import InputError

UP, DOWN, VALIDATE = "CREATE TABLE t (id int);\n", "DROP TABLE t;\n", "SELECT true;\n"
GRAMMAR = "<digits>_<title>.(up|down|validate).sql, the title without path separators or whitespace"


def write_set(root: Path, files: dict[str, str | bytes]) -> Path:
    migrations = root / "migrations"
    migrations.mkdir(exist_ok=True)
    for name, content in files.items():
        path = migrations / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return migrations


def triple(version: str, name: str, up: str = UP) -> dict[str, str | bytes]:
    stem = f"{version}_{name}"
    return {f"{stem}.up.sql": up, f"{stem}.down.sql": DOWN, f"{stem}.validate.sql": VALIDATE}


# name -> (files, the one stderr line lockgate must print)
BAD_INPUT: dict[str, tuple[dict[str, str | bytes], str]] = {
    "bad name": (
        {**triple("1", "a"), "add_tier.up.sql": UP},
        "migrations/add_tier.up.sql:1:1: bad migration file name: expected "
        f"{GRAMMAR}",
    ),
    "duplicate version": (
        {**triple("20240101", "a"), "20240101_b.up.sql": UP},
        "migrations/20240101_b.up.sql:1:1: duplicate version 20240101: also used by 20240101_a",
    ),
    "same number twice": (
        {**triple("1", "a"), **triple("01", "b")},
        "migrations/1_a.down.sql:1:1: version 1 is the same number as 01",
    ),
    "not UTF-8": (
        {**triple("1", "a"), "1_a.down.sql": b"DROP TABLE t;\n-- caf\xe9\n"},
        "migrations/1_a.down.sql:2:7: not UTF-8 text (byte 0xe9)",
    ),
    "syntax error": (
        {**triple("1", "a", up="CREATE TABLE t (id int);\nALTER TABEL t ADD COLUMN a int;\n")},
        'migrations/1_a.up.sql:2:7: syntax error at or near "TABEL"',
    ),
}


@pytest.mark.parametrize("command", ["check", "hash"])
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str, command: str) -> None:
    files, line = BAD_INPUT[case]
    migrations = write_set(tmp_path, files)
    done = lockgate(command, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (2, "", [line])
    assert not (migrations / "lockgate.sum").exists()


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    write_set(tmp_path, {**triple("1", "a"), "notes.sql": "SELECT 1;", "2_B C.up.sql": UP, "3_c.up.sql": b"\xff"})
    done = lockgate("check", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"migrations/2_B C.up.sql:1:1: bad migration file name: expected {GRAMMAR}",
        "migrations/3_c.up.sql:1:1: not UTF-8 text (byte 0xff)",
        f"migrations/notes.sql:1:1: bad migration file name: expected {GRAMMAR}",
    ]


def test_hash_refuses_an_incomplete_migration_which_check_reports_as_a_finding(tmp_path: Path) -> None:
    write_set(tmp_path, {"1_a.up.sql": UP, "1_a.validate.sql": VALIDATE})
    hashed = lockgate("hash", cwd=tmp_path)
    assert (hashed.returncode, hashed.stderr.splitlines()) == (
        2, ["migrations/1_a.up.sql:1:1: 1_a has no down file (1_a.down.sql)"],
    )
    checked = lockgate("check", cwd=tmp_path)
    assert checked.returncode == 1
    assert "migrations/1_a.up.sql:1:1: LG901 1_a has no down file: write 1_a.down.sql to undo the up" in checked.stdout


# --- lockgate.sum ---------------------------------------------------------------------------


def summed(tmp_path: Path, *versions: str) -> Path:
    files: dict[str, str | bytes] = {}
    for version in versions:
        files.update(triple(version, f"m{version}"))
    migrations = write_set(tmp_path, files)
    sumfile.write(migrationset.load(migrations))
    return migrations


def problems(migrations: Path) -> list[tuple[str, int, str]]:
    loaded = migrationset.load(migrations, require_triples=False)
    return [(p.path.name, p.line, p.message) for p in sumfile.verify(loaded)]


def test_an_untouched_set_matches(tmp_path: Path) -> None:
    assert problems(summed(tmp_path, "1", "2")) == []


def test_an_edited_file(tmp_path: Path) -> None:
    migrations = summed(tmp_path, "1", "2")
    (migrations / "1_m1.down.sql").write_text("DROP TABLE IF EXISTS t;\n")
    assert problems(migrations) == [("1_m1.down.sql", 1, "1_m1.down.sql was edited after `lockgate hash`")]


def test_an_added_file_before_summed_ones_and_at_the_end(tmp_path: Path) -> None:
    migrations = summed(tmp_path, "10", "20")
    write_set(tmp_path, {**triple("9", "early"), **triple("30", "late")})
    assert problems(migrations) == [
        ("9_early.up.sql", 1, "9_early.up.sql was added before already-summed 10_m10.up.sql"),
        ("9_early.down.sql", 1, "9_early.down.sql was added before already-summed 10_m10.up.sql"),
        ("9_early.validate.sql", 1, "9_early.validate.sql was added before already-summed 10_m10.up.sql"),
        ("30_late.up.sql", 1, "30_late.up.sql was added"),
        ("30_late.down.sql", 1, "30_late.down.sql was added"),
        ("30_late.validate.sql", 1, "30_late.validate.sql was added"),
    ]


def test_a_removed_file_names_its_sum_line(tmp_path: Path) -> None:
    migrations = summed(tmp_path, "1", "2")
    (migrations / "2_m2.validate.sql").unlink()
    assert problems(migrations) == [("lockgate.sum", 7, "2_m2.validate.sql was removed")]


def test_reordered_lines(tmp_path: Path) -> None:
    """A merge that interleaves two branches' lines in the wrong order, with a total made to match."""
    migrations = summed(tmp_path, "1", "2")
    rows = sumfile.read(migrations / "lockgate.sum")
    (migrations / "lockgate.sum").write_text(sumfile.render(rows[3:] + rows[:3]))
    assert problems(migrations) == [("lockgate.sum", 2, "migrations were reordered")]


def test_each_line_chains_the_ones_before(tmp_path: Path) -> None:
    migrations = summed(tmp_path, "1", "2")
    before = sumfile.compute(migrationset.load(migrations))
    (migrations / "1_m1.up.sql").write_text("CREATE TABLE t (id bigint);\n")
    after = sumfile.compute(migrationset.load(migrations))
    assert [a == b for a, b in zip(before, after, strict=True)] == [False] * 6


def test_a_hand_edited_sum_is_bad_input(tmp_path: Path) -> None:
    migrations = summed(tmp_path, "1")
    path = migrations / "lockgate.sum"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *lines[2:], lines[1]]) + "\n")
    with pytest.raises(InputError, match="edited by hand"):
        sumfile.verify(migrationset.load(migrations))
    done = lockgate("check", cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()) == (
        2, ["migrations/lockgate.sum:1:1: lockgate.sum was edited by hand (its total does not match its lines)"],
    )


def test_golang_migrate_titles_with_dots_capitals_and_dashes_are_migrations(tmp_path: Path) -> None:
    write_set(tmp_path, {**triple("0002", "1.7.0_schema"), **triple("0003", "Add-Tier"), **triple("4", "x.postgres")})
    hashed = lockgate("hash", cwd=tmp_path)
    assert (hashed.returncode, hashed.stderr) == (0, "")
    loaded = migrationset.load(tmp_path / "migrations")
    assert [m.id for m in loaded.migrations] == ["0002_1.7.0_schema", "0003_Add-Tier", "4_x.postgres"]
    assert lockgate("check", cwd=tmp_path).returncode == 0
