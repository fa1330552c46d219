"""Static rollback coverage: the down must undo what the up does, and says precisely what it misses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.hooks.coverage import check_coverage
from lockgate.hooks.rules.base import Severity
from lockgate.hooks.sqlmodel import parse_sql

EXAMPLE = Path(__file__).resolve().parents[1] / "migrations"


def misses(up: str, down: str) -> list[str]:
    findings = check_coverage(parse_sql(Path("m.up.sql"), up), parse_sql(Path("m.down.sql"), down))
    assert all((f.path, f.line, f.column) == (Path("m.down.sql"), 1, 1) for f in findings)
    return [f"{f.rule} {f.message}" for f in findings]


@pytest.mark.parametrize("up_path", sorted(EXAMPLE.glob("*.up.sql")), ids=lambda p: p.name)
def test_example_downs_undo_their_ups(up_path: Path) -> None:
    down_path = up_path.with_name(up_path.name.replace(".up.sql", ".down.sql"))
    up = parse_sql(up_path, up_path.read_text())
    down = parse_sql(down_path, down_path.read_text())
    assert check_coverage(up, down) == []


def test_missing_drop_column_names_the_column_and_the_up_line() -> None:
    up = (EXAMPLE / "20240115093000_add_customer_tier.up.sql").read_text()
    down = "ALTER TABLE customers DROP CONSTRAINT customers_tier_check;\n"
    # The default, the CHECK and the backfill all live in the new column: one miss, not four.
    assert misses(up, down) == ["LG903 rollback does not drop column customers.tier added at up.sql:5"]


COVERED = {
    "row changes in a function the up defines but does not call": (
        "CREATE FUNCTION purge() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  DELETE FROM t;\nEND $$;",
        "DROP FUNCTION purge();",
    ),
    "rows a WITH inserts, deleted by the down": (
        "WITH added AS (INSERT INTO plans (name) VALUES ('pro') RETURNING id) SELECT count(*) FROM added;",
        "DELETE FROM plans WHERE name = 'pro';",
    ),
    "an unnamed constraint dropped by its implicit name": (
        "ALTER TABLE t ADD CHECK (a > 0) NOT VALID; ALTER TABLE t ADD FOREIGN KEY (c_id) REFERENCES c NOT VALID;",
        "ALTER TABLE t DROP CONSTRAINT t_c_id_fkey; ALTER TABLE t DROP CONSTRAINT t_a_check;",
    ),
    "an unnamed index dropped by its implicit name": (
        "CREATE INDEX CONCURRENTLY ON t (lower(email)); CREATE UNIQUE INDEX CONCURRENTLY ON t (a, b);",
        "DROP INDEX CONCURRENTLY t_lower_idx; DROP INDEX CONCURRENTLY t_a_b_idx;",
    ),
    "a primary key re-added unnamed takes the <table>_pkey name back": (
        "ALTER TABLE hydra_client DROP CONSTRAINT hydra_client_pkey;\n"
        "ALTER TABLE hydra_client ADD CONSTRAINT hydra_client_pkey PRIMARY KEY (pk);",
        "ALTER TABLE hydra_client DROP CONSTRAINT hydra_client_pkey;\nALTER TABLE hydra_client ADD PRIMARY KEY (id);",
    ),
    "table": ("CREATE TABLE t (id int PRIMARY KEY, a text);", "DROP TABLE t;"),
    "drop table covers its columns, indexes, triggers": (
        "CREATE TABLE t (id int); ALTER TABLE t ADD COLUMN b int; CREATE INDEX t_b ON t (b);"
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();",
        "DROP TABLE IF EXISTS public.t CASCADE;",
    ),
    "drop column covers its index and constraint": (
        "ALTER TABLE t ADD COLUMN b int; CREATE INDEX CONCURRENTLY t_b ON t (b);",
        "ALTER TABLE t DROP COLUMN b;",
    ),
    "index on an existing column": (
        "CREATE INDEX CONCURRENTLY t_a ON t (lower(a));", "DROP INDEX CONCURRENTLY IF EXISTS t_a;",
    ),
    "dropping a column drops constraints on it": (
        "ALTER TABLE t ADD CONSTRAINT t_a_positive CHECK (a > 0) NOT VALID;", "ALTER TABLE t DROP COLUMN a;",
    ),
    "primary key built concurrently, then attached": (
        "CREATE UNIQUE INDEX CONCURRENTLY t_id_idx ON t (id);"
        "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_id_idx;",
        "ALTER TABLE t DROP CONSTRAINT t_pkey;",
    ),
    "existing index attached, then rebuilt by the down": (
        "ALTER TABLE t ADD CONSTRAINT t_email_key UNIQUE USING INDEX t_email_idx;",
        "ALTER TABLE t DROP CONSTRAINT t_email_key; CREATE UNIQUE INDEX CONCURRENTLY t_email_idx ON t (email);",
    ),
    "named constraint": ("ALTER TABLE t ADD CONSTRAINT t_u UNIQUE (a, b);", "ALTER TABLE t DROP CONSTRAINT t_u;"),
    "validate, then back to NOT VALID": (
        "ALTER TABLE t VALIDATE CONSTRAINT k;",
        "ALTER TABLE t DROP CONSTRAINT k; ALTER TABLE t ADD CONSTRAINT k CHECK (a > 0) NOT VALID;",
    ),
    "default": ("ALTER TABLE t ALTER COLUMN a SET DEFAULT 0;", "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;"),
    "not null": ("ALTER TABLE t ALTER COLUMN a SET NOT NULL;", "ALTER TABLE t ALTER COLUMN a DROP NOT NULL;"),
    "column type": ("ALTER TABLE t ALTER COLUMN a TYPE bigint;", "ALTER TABLE t ALTER COLUMN a TYPE int;"),
    "table setting": ("ALTER TABLE t DISABLE TRIGGER ALL;", "ALTER TABLE t ENABLE TRIGGER ALL;"),
    "column rename": ("ALTER TABLE t RENAME COLUMN a TO b;", "ALTER TABLE t RENAME COLUMN b TO a;"),
    "table swap by renames": (
        "CREATE TABLE t_new (id int); ALTER TABLE t RENAME TO t_old; ALTER TABLE t_new RENAME TO t;",
        "ALTER TABLE t RENAME TO t_new; ALTER TABLE t_old RENAME TO t; DROP TABLE t_new;",
    ),
    "created and dropped in the up leaves nothing": (
        "CREATE TABLE scratch (id int); DROP TABLE scratch;", "SELECT 1;",
    ),
    "schema drop covers what is in it": (
        "CREATE SCHEMA audit; CREATE TABLE audit.log (id int); CREATE VIEW audit.v AS SELECT 1;",
        "DROP SCHEMA audit CASCADE;",
    ),
    "enum, enum value by re-creating the type": (
        "ALTER TYPE mood ADD VALUE 'meh';",
        "CREATE TYPE mood_old AS ENUM ('sad', 'happy');"
        "ALTER TABLE p ALTER COLUMN m TYPE mood_old USING m::text::mood_old;"
        "DROP TYPE mood; ALTER TYPE mood_old RENAME TO mood;",
    ),
    "enum value rename": (
        "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';", "ALTER TYPE mood RENAME VALUE 'blue' TO 'sad';",
    ),
    "replaced function restored": (
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2';",
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
    ),
    "procedure, view, materialized view, sequence, domain, extension, policy": (
        "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'; CREATE VIEW v AS SELECT 1;"
        "CREATE MATERIALIZED VIEW mv AS SELECT 1; CREATE SEQUENCE s; CREATE DOMAIN d AS int;"
        "CREATE EXTENSION pg_trgm; CREATE POLICY own ON t USING (true);",
        "DROP POLICY own ON t; DROP EXTENSION pg_trgm; DROP DOMAIN d; DROP SEQUENCE s;"
        "DROP MATERIALIZED VIEW mv; DROP VIEW v; DROP PROCEDURE p();",
    ),
    "sequence options": ("ALTER SEQUENCE s INCREMENT BY 10;", "ALTER SEQUENCE s INCREMENT BY 1;"),
    "dropped index re-created": ("DROP INDEX CONCURRENTLY t_a;", "CREATE INDEX CONCURRENTLY t_a ON t (a);"),
    "dropped table re-created": ("DROP TABLE old;", "CREATE TABLE old (id int);"),
    "backfill undone by a reverse update": ("UPDATE t SET a = upper(a);", "UPDATE t SET a = lower(a);"),
    "statements in DO blocks run": (
        "DO $$ BEGIN CREATE TABLE d (id int); END $$;", "DO $$ BEGIN DROP TABLE d; END $$;",
    ),
    "statements in a function body do not run": (
        "CREATE FUNCTION mk() RETURNS void LANGUAGE plpgsql AS $f$ BEGIN CREATE TABLE later (id int); END $f$;",
        "DROP FUNCTION mk();",
    ),
    "ignored deliberately": (
        "-- lockgate:ignore LG906 -- the column was unused for a year\nALTER TABLE t DROP COLUMN legacy;",
        "SELECT 1;",
    ),
}


@pytest.mark.parametrize(("up", "down"), COVERED.values(), ids=COVERED.keys())
def test_covered(up: str, down: str) -> None:
    assert misses(up, down) == []


MISSED = {
    "table": ("CREATE TABLE t (id int);", "SELECT 1;", "LG903 rollback does not drop table t created at up.sql:1"),
    "qualified table": (
        "CREATE SCHEMA s;\nCREATE TABLE s.t (id int);", "DROP TABLE t;",
        "LG903 rollback does not drop schema s created at up.sql:1",
    ),
    "index": (
        "\n\nCREATE INDEX CONCURRENTLY t_a ON t (a);", "DROP INDEX t_b;",
        "LG903 rollback does not drop index t_a created at up.sql:3",
    ),
    "unnamed index, by the name PostgreSQL gives it": (
        "CREATE INDEX CONCURRENTLY ON t (a);", "SELECT 1;",
        "LG903 rollback does not drop index t_a_idx created at up.sql:1",
    ),
    "unnamed constraint, by the name PostgreSQL gives it": (
        "ALTER TABLE t ADD CHECK (a > 0) NOT VALID;", "SELECT 1;",
        "LG903 rollback does not drop constraint t.t_a_check added at up.sql:1",
    ),
    "constraint on the wrong table": (
        "ALTER TABLE t ADD CONSTRAINT k UNIQUE (a);", "ALTER TABLE u DROP CONSTRAINT k;",
        "LG903 rollback does not drop constraint t.k added at up.sql:1",
    ),
    "default": (
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0;", "SELECT 1;",
        "LG903 rollback does not restore the default of t.a changed at up.sql:1",
    ),
    "not null": (
        "ALTER TABLE t ALTER COLUMN a DROP NOT NULL;", "ALTER TABLE t ALTER COLUMN b SET NOT NULL;",
        "LG903 rollback does not restore the NOT NULL of t.a changed at up.sql:1",
    ),
    "column type": (
        "ALTER TABLE t ALTER COLUMN a TYPE bigint;", "SELECT 1;",
        "LG903 rollback does not restore the type of t.a changed at up.sql:1",
    ),
    "table setting": (
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY;", "SELECT 1;",
        "LG903 rollback does not restore the row level security of t changed at up.sql:1",
    ),
    "index attached to a constraint": (
        "ALTER TABLE t ADD CONSTRAINT t_email_key UNIQUE USING INDEX t_email_idx;",
        "ALTER TABLE t DROP CONSTRAINT t_email_key;",
        "LG903 rollback does not rename index t_email_key back to t_email_idx (renamed at up.sql:1)",
    ),
    "rename": (
        "ALTER TABLE t RENAME COLUMN a TO b;", "ALTER TABLE t RENAME COLUMN b TO c;",
        "LG903 rollback does not rename column t.b back to a (renamed at up.sql:1)",
    ),
    "validated constraint only dropped": (
        "ALTER TABLE t VALIDATE CONSTRAINT k;", "ALTER TABLE t DROP CONSTRAINT k;",
        "LG903 rollback does not return constraint t.k validated at up.sql:1 to NOT VALID "
        "(drop it and add it back NOT VALID)",
    ),
    "replaced function": (
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2';", "SELECT 1;",
        "LG903 rollback does not drop or restore function f replaced at up.sql:1",
    ),
    "trigger": (
        "CREATE TRIGGER tr AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f();", "DROP TRIGGER tr ON u;",
        "LG903 rollback does not drop trigger t.tr created at up.sql:1",
    ),
    "enum value": (
        "ALTER TYPE mood ADD VALUE 'meh';", "SELECT 1;",
        "LG903 rollback does not remove value 'meh' of type mood added at up.sql:1 "
        "(PostgreSQL cannot drop an enum value: re-create the type without it)",
    ),
    "dropped index": (
        "DROP INDEX t_a;", "SELECT 1;", "LG903 rollback does not re-create index t_a dropped at up.sql:1",
    ),
    "dropped table": (
        "DROP TABLE old;", "SELECT 1;",
        "LG906 irreversible: table old dropped at up.sql:1 and its data with it; the down does not re-create it",
    ),
    "dropped column": (
        "ALTER TABLE t DROP COLUMN a;", "SELECT 1;",
        "LG906 irreversible: column t.a dropped at up.sql:1 and its data with it; the down does not re-create it",
    ),
    "update of an existing column": (
        "UPDATE t SET a = upper(a);", "SELECT 1;",
        "LG906 irreversible: UPDATE of t at up.sql:1 is not undone by the down "
        "(drop what it fills or write the reverse change)",
    ),
    "delete": (
        "DELETE FROM t WHERE a IS NULL;", "ALTER TABLE t DROP COLUMN a;",
        "LG906 irreversible: DELETE of t at up.sql:1 is not undone by the down "
        "(drop what it fills or write the reverse change)",
    ),
    "delete inside a WITH": (
        "WITH gone AS (DELETE FROM orders WHERE total = 0 RETURNING 1)\nSELECT count(*) FROM gone;", "SELECT 1;",
        "LG906 irreversible: DELETE of orders at up.sql:1 is not undone by the down "
        "(drop what it fills or write the reverse change)",
    ),
    "update in a function the up calls": (
        "CREATE FUNCTION fix() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  UPDATE t SET a = upper(a);\nEND $$;\n"
        "SELECT fix();", "DROP FUNCTION fix();",
        "LG906 irreversible: UPDATE of t at up.sql:3 is not undone by the down "
        "(drop what it fills or write the reverse change)",
    ),
    "table created by a function the up calls": (
        "CREATE PROCEDURE mk() LANGUAGE plpgsql AS $$\nBEGIN\n  CREATE TABLE made (id int);\nEND $$;\nCALL mk();",
        "DROP PROCEDURE mk();",
        "LG903 rollback does not drop table made created at up.sql:3",
    ),
}


@pytest.mark.parametrize(("up", "down", "message"), MISSED.values(), ids=MISSED.keys())
def test_missed(up: str, down: str, message: str) -> None:
    assert misses(up, down) == [message]


def test_irreversible_is_a_warning_and_a_gap_is_an_error() -> None:
    findings = check_coverage(
        parse_sql(Path("m.up.sql"), "DROP TABLE old; CREATE TABLE t (id int);"),
        parse_sql(Path("m.down.sql"), "SELECT 1;"),
    )
    assert [(f.rule, f.name, f.severity) for f in findings] == [
        ("LG906", "irreversible-change", Severity.WARNING),
        ("LG903", "rollback-coverage", Severity.ERROR),
    ]


def test_ignore_file_in_the_down_accepts_a_gap() -> None:
    down = "-- lockgate:ignore-file rollback-coverage -- the column stays, it is harmless\nSELECT 1;"
    assert misses("ALTER TABLE t ADD COLUMN c int;", down) == []
