"""`lockgate check` as a user runs it: pairs, rollback coverage, lockgate.sum, edits of applied migrations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from clirun import lockgate
from gitrepos import Clone, Origin

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "migrations"
TIER = "20240115093000_add_customer_tier"
CREATE = "20240101000000_create_customers_and_orders"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the worked example (with its lockgate.sum), outside any git repository."""
    shutil.copytree(EXAMPLE, tmp_path / "migrations")
    return tmp_path


def rehash(cwd: Path) -> None:
    done = lockgate("hash", cwd=cwd)
    assert done.returncode == 0, done.stderr


def test_the_example_set_passes() -> None:
    done = lockgate("check", cwd=ROOT)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


def test_outside_git_the_edit_check_is_skipped_with_a_note(project: Path) -> None:
    done = lockgate("check", cwd=project)
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr.strip() == (
        "lockgate check: migrations is not in a git repository: applied migrations not checked for edits"
    )


def test_a_down_that_misses_the_new_column_names_it_and_the_up_line(project: Path) -> None:
    down = project / "migrations" / f"{TIER}.down.sql"
    down.write_text("ALTER TABLE customers DROP CONSTRAINT customers_tier_check;\n")
    rehash(project)
    done = lockgate("check", cwd=project)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"migrations/{TIER}.down.sql:1:1: LG903 rollback does not drop column customers.tier added at up.sql:5",
        "Found 1 problem in 1 file.",
    ]


def test_missing_down_and_validate_are_findings_not_bad_input(project: Path) -> None:
    migrations = project / "migrations"
    (migrations / f"{TIER}.down.sql").unlink()
    (migrations / f"{TIER}.validate.sql").unlink()
    done = lockgate("check", cwd=project)
    assert done.returncode == 1
    up = f"migrations/{TIER}.up.sql:1:1:"
    assert f"{up} LG901 {TIER} has no down file: write {TIER}.down.sql to undo the up" in done.stdout
    assert f"{up} LG902 {TIER} has no validate file: write {TIER}.validate.sql to check the up worked" in done.stdout
    # lockgate.sum still lists them.
    assert f"LG904 {TIER}.down.sql was removed; run `lockgate hash` if that was intended" in done.stdout


def test_a_down_of_comments_only_is_empty(project: Path) -> None:
    (project / "migrations" / f"{TIER}.down.sql").write_text("-- Description: undo\n-- TODO\n")
    rehash(project)
    done = lockgate("check", cwd=project)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        f"migrations/{TIER}.down.sql:1:1: LG901 {TIER}.down.sql has no SQL statement: write SQL to undo the up"
    )


def test_a_validate_without_its_up_is_an_orphan(project: Path) -> None:
    (project / "migrations" / "20240201000000_stray.validate.sql").write_text("SELECT true;\n")
    done = lockgate("check", cwd=project)
    assert done.returncode == 1
    assert (
        "migrations/20240201000000_stray.validate.sql:1:1: LG907 20240201000000_stray.validate.sql has no "
        "20240201000000_stray.up.sql: add the up or remove this file"
    ) in done.stdout


def test_an_edit_without_rehash_is_a_sum_mismatch(project: Path) -> None:
    up = project / "migrations" / f"{CREATE}.validate.sql"
    up.write_text(up.read_text() + "\nSELECT true AS still_fine;\n")
    done = lockgate("check", cwd=project)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        f"migrations/{CREATE}.validate.sql:1:1: LG904 {CREATE}.validate.sql was edited after `lockgate hash`; "
        "run `lockgate hash` if that was intended"
    )


def test_a_missing_sum_file_says_what_to_run_once(project: Path) -> None:
    (project / "migrations" / "lockgate.sum").unlink()
    done = lockgate("check", cwd=project)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "migrations/lockgate.sum:1:1: LG904 lockgate.sum is missing: run `lockgate hash`"
    )


def test_irreversible_changes_warn_without_failing_and_can_be_accepted(project: Path) -> None:
    migrations = project / "migrations"
    name = "20240301000000_touch_orders"
    (migrations / f"{name}.up.sql").write_text("UPDATE orders SET created_at = now();\n")
    (migrations / f"{name}.down.sql").write_text("SELECT 1;\n")
    (migrations / f"{name}.validate.sql").write_text("SELECT true;\n")
    rehash(project)
    done = lockgate("check", cwd=project)
    assert done.returncode == 0
    assert f"migrations/{name}.down.sql:1:1: LG906 irreversible: UPDATE of orders at up.sql:1" in done.stdout
    github = lockgate("check", "--format", "github", cwd=project)
    assert github.stdout.startswith(f"::warning file=migrations/{name}.down.sql,line=1,col=1,")
    (migrations / f"{name}.up.sql").write_text(
        "-- lockgate:ignore LG906 -- every order gets a fresh timestamp on purpose\n"
        "UPDATE orders SET created_at = now();\n"
    )
    rehash(project)
    assert lockgate("check", cwd=project).stdout == ""


def test_json_format_and_file_arguments(project: Path) -> None:
    migrations = project / "migrations"
    (migrations / f"{TIER}.down.sql").write_text("SELECT 1;\n")
    (migrations / f"{CREATE}.down.sql").write_text("SELECT 1;\n")
    rehash(project)
    everything = json.loads(lockgate("check", "--format", "json", cwd=project).stdout)
    assert {Path(f["path"]).name for f in everything} == {f"{TIER}.down.sql", f"{CREATE}.down.sql"}
    only = lockgate("check", "--format", "json", f"migrations/{TIER}.up.sql", cwd=project)
    assert only.returncode == 1
    (finding,) = json.loads(only.stdout)
    assert finding == {
        "path": f"migrations/{TIER}.down.sql", "line": 1, "column": 1, "rule": "LG903",
        "name": "rollback-coverage", "severity": "error",
        "message": "rollback does not drop column customers.tier added at up.sql:5",
    }
    sarif = json.loads(lockgate("check", "--format", "sarif", f"migrations/{TIER}.up.sql", cwd=project).stdout)
    (result,) = sarif["runs"][0]["results"]
    rule = sarif["runs"][0]["tool"]["driver"]["rules"][result["ruleIndex"]]
    assert (result["ruleId"], rule["name"], result["level"]) == ("LG903", "rollback-coverage", "error")


# --- immutability: real git, a bare origin and a clone ------------------------------------


@pytest.fixture
def pushed(tmp_path: Path) -> Clone:
    """A clone whose main, with the example migrations, is pushed to origin."""
    clone = Origin.create(tmp_path).clone()
    shutil.copytree(EXAMPLE, clone.path / "migrations")
    clone.git("add", "migrations")
    clone.git("commit", "--quiet", "-m", "example migrations")
    clone.push()
    return clone


def test_editing_an_applied_migration_is_refused_at_the_changed_line(pushed: Clone) -> None:
    up = pushed.path / "migrations" / f"{TIER}.up.sql"
    lines = up.read_text().splitlines(keepends=True)
    lines[4] = "ALTER TABLE customers ADD COLUMN tier varchar(10);\n"
    up.write_text("".join(lines))
    rehash(pushed.path)  # a re-hashed sum does not make the edit acceptable
    done = lockgate("check", cwd=pushed.path)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        f"migrations/{TIER}.up.sql:5:1: LG905 {TIER}.up.sql is already on origin/main and was edited; "
        "write a new migration instead"
    )


def test_deleting_part_of_an_applied_migration_is_refused(pushed: Clone) -> None:
    (pushed.path / "migrations" / f"{TIER}.validate.sql").unlink()
    done = lockgate("check", cwd=pushed.path)
    assert done.returncode == 1
    assert (
        f"migrations/{TIER}.validate.sql:1:1: LG905 {TIER}.validate.sql is already on origin/main and was "
        "deleted; remove the whole migration (a revert) or restore it"
    ) in done.stdout


def test_removing_a_whole_migration_is_a_revert(pushed: Clone) -> None:
    name = "20240115093200_index_customers_tier"
    for kind in ("up", "down", "validate"):
        (pushed.path / "migrations" / f"{name}.{kind}.sql").unlink()
    rehash(pushed.path)
    done = lockgate("check", cwd=pushed.path)
    assert (done.returncode, done.stdout) == (0, "")
    assert f"{name} was removed: lockgate rolls it back when this reaches main" in done.stderr


def test_the_base_is_origin_when_it_exists(pushed: Clone) -> None:
    pushed.add_migration("20240401000000", "add_t", up="CREATE TABLE t (id int);\n", down="DROP TABLE t;\n")
    up = pushed.path / "migrations" / "20240401000000_add_t.up.sql"
    up.write_text("CREATE TABLE t (id bigint);\n")
    rehash(pushed.path)
    # Committed on local main but not pushed: not applied anywhere yet, so it may change.
    assert lockgate("check", cwd=pushed.path).returncode == 0
    against_local = lockgate("check", "--base", "main", cwd=pushed.path)
    assert against_local.returncode == 1
    assert "LG905 20240401000000_add_t.up.sql is already on main and was edited" in against_local.stdout


def test_a_missing_base_is_a_note(pushed: Clone) -> None:
    done = lockgate("check", "--base", "no-such-branch", cwd=pushed.path)
    assert done.returncode == 0
    assert "no-such-branch does not exist: applied migrations not checked for edits" in done.stderr
    configured = lockgate("check", cwd=pushed.path, env={"LOCKGATE_BRANCH": "trunk"})
    assert "origin/trunk or trunk does not exist" in configured.stderr
