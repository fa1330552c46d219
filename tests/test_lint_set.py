"""`lockgate lint` over a migration set in a real git clone: the rules know what the set made.

Earlier migrations tell the linter column types and unique keys; what the base branch does
not have yet is the pending part of the change, whose new tables are empty when the next
migration of the change runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitrepos import MIGRATIONS, Clone, Origin

LOCKGATE = Path(sys.executable).with_name("lockgate")


# The rules the set's schema informs; the style rules' findings on these files are beside the point.
INFORMED = ("LG101", "LG301", "LG401")


def lint(cwd: Path, *args: str) -> list[str]:
    """`lockgate lint` as a process; the findings of the INFORMED rules as `file: CODE` lines."""
    done = subprocess.run([str(LOCKGATE), "lint", "--format", "text", *args], cwd=cwd, capture_output=True,
                          text=True, check=False)
    assert done.returncode in (0, 1), done.stderr
    return [f"{line.split(':')[0].rpartition('/')[2]}: {line.split(': ')[1].split()[0]}"
            for line in done.stdout.splitlines() if any(f": {code} " in line for code in INFORMED)]


@pytest.fixture
def dev(tmp_path: Path) -> Clone:
    clone = Origin.create(tmp_path).clone("dev")
    clone.add_migration(
        "20240101000000", "create_events",
        up="CREATE TABLE events (id bigint PRIMARY KEY, kind varchar(16), at timestamptz);\n"
           "CREATE TABLE credential_types (id bigint PRIMARY KEY, name varchar(32) NOT NULL UNIQUE);\n",
        down="DROP TABLE credential_types;\nDROP TABLE events;\n",
    )
    clone.git("push", "--quiet", "origin", "main")
    clone.branch("feature")
    return clone


def test_index_on_a_table_new_in_the_change_passes_and_on_a_base_table_does_not(dev: Clone) -> None:
    dev.add_migration("20240102000000", "create_audit",
                      up="CREATE TABLE audit (id bigint PRIMARY KEY, at timestamptz);\n", down="DROP TABLE audit;\n")
    dev.add_migration("20240102000001", "index_them",
                      up="CREATE INDEX audit_at_idx ON audit (at);\nCREATE INDEX events_at_idx ON events (at);\n",
                      down="DROP INDEX events_at_idx;\nDROP INDEX audit_at_idx;\n")
    found = lint(dev.path)
    assert found == ["20240102000001_index_them.up.sql: LG101"]
    # Once the change is on the base branch, the table is no longer new: both indexes block writes.
    dev.git("push", "--quiet", "origin", "feature:main")
    dev.git("fetch", "--quiet", "origin")
    assert lint(dev.path) == ["20240102000001_index_them.up.sql: LG101"] * 2


def test_earlier_migrations_give_types_and_unique_keys(dev: Clone) -> None:
    dev.add_migration("20240102000000", "widen",
                      up="ALTER TABLE events ALTER COLUMN kind TYPE text;\n"
                         "DELETE FROM credential_types WHERE name = 'totp';\n",
                      down="ALTER TABLE events ALTER COLUMN kind TYPE varchar(16);\n")
    dev.add_migration("20240102000001", "narrow",
                      up="ALTER TABLE events ALTER COLUMN at TYPE timestamp;\n"
                         "DELETE FROM events WHERE kind = 'x';\n",
                      down="SELECT 1;\n")
    found = lint(dev.path, "migrations/20240102000000_widen.up.sql", "migrations/20240102000001_narrow.up.sql")
    assert found == ["20240102000001_narrow.up.sql: LG301", "20240102000001_narrow.up.sql: LG401"]
    # Linted on its own, outside a set, the same statements are judged conservatively.
    alone = dev.path / "alone.sql"
    alone.write_text((dev.path / "migrations/20240102000000_widen.up.sql").read_text())
    assert lint(dev.path, "alone.sql") == ["alone.sql: LG301", "alone.sql: LG401"]


def test_copies_and_partitions_take_their_types_and_keys_from_the_set(dev: Clone) -> None:
    dev.add_migration(
        "20240102000000", "copies",
        up="CREATE TABLE events_archive (LIKE events INCLUDING ALL);\n"
           "CREATE TABLE logins (id bigint, kind varchar(16), at timestamptz, PRIMARY KEY (id, kind))"
           " PARTITION BY LIST (kind);\n"
           "CREATE TABLE logins_web PARTITION OF logins FOR VALUES IN ('web');\n",
        down="DROP TABLE logins;\nDROP TABLE events_archive;\n")
    # On the base branch: the tables are no longer new (and empty) in this change.
    dev.git("push", "--quiet", "origin", "feature:main")
    dev.git("fetch", "--quiet", "origin")
    dev.add_migration(
        "20240102000001", "use_them",
        up="ALTER TABLE events_archive ALTER COLUMN kind TYPE text;\n"
           "DELETE FROM events_archive WHERE id = 7;\n"
           "DELETE FROM logins_web WHERE id = 7 AND kind = 'web';\n"
           "DELETE FROM logins_web WHERE at < now();\n",
        down="SELECT 1;\n")
    # The copy knows `kind` was varchar(16) (to text: no rewrite) and that `id` is its key; the
    # partition knows its parent's key; only the range delete changes an unbounded set of rows.
    assert lint(dev.path, "migrations/20240102000001_use_them.up.sql") == ["20240102000001_use_them.up.sql: LG401"]


def test_the_base_is_origin_s_branch_else_the_local_one_else_there_is_none(
    dev: Clone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lockgate.hooks.setschema import _base_versions

    dev.add_migration("20240102000000", "create_audit", up="CREATE TABLE audit (id bigint PRIMARY KEY);\n")
    directory = dev.path / MIGRATIONS
    monkeypatch.chdir(dev.path)
    assert _base_versions(directory) == {"20240101000000"}  # origin/main: the feature's commit is not there
    dev.git("branch", "--quiet", "-D", "main")
    dev.git("branch", "--quiet", "main", "HEAD")  # a local main that has the feature's migration
    dev.git("update-ref", "-d", "refs/remotes/origin/main")
    assert _base_versions(directory) == {"20240101000000", "20240102000000"}
    dev.git("branch", "--quiet", "-m", "main", "elsewhere")
    assert _base_versions(directory) is None  # no base to compare with: nothing counts as pending
    (tmp_path / "loose").mkdir()
    assert _base_versions(tmp_path / "loose") is None  # not a git checkout at all
