"""The schema model names unnamed constraints and indexes exactly as PostgreSQL does."""

from __future__ import annotations

from pathlib import Path

import psycopg

from lockgate.hooks.schemamodel import SchemaModel
from lockgate.hooks.sqlmodel import parse_sql

LONG = "a_table_name_that_is_long_enough_to_be_truncated_by_postgresql_x"
SETUP = f"""
CREATE TABLE t (id int PRIMARY KEY, email text UNIQUE, a int, b int, UNIQUE (a, b), CHECK (a > 0), CHECK (a > b),
                n serial);
CREATE INDEX ON t (lower(email));
CREATE INDEX ON t (a, (a + b));
CREATE UNIQUE INDEX ON t (b);
CREATE TABLE t2 (id int REFERENCES t, x int CHECK (x > 0), y bigserial);
ALTER TABLE t ADD UNIQUE (email);
ALTER TABLE t ADD UNIQUE (email);
CREATE TABLE {LONG} (id int PRIMARY KEY, {LONG} int UNIQUE CHECK ({LONG} > 0));
CREATE INDEX ON {LONG} ({LONG}, id);
ALTER TABLE t2 DROP CONSTRAINT t2_x_check;
ALTER TABLE t2 ADD CHECK (x > 1);
CREATE TABLE s (a int, b int, CHECK (a > 0) NOT VALID);
ALTER TABLE s RENAME COLUMN a TO c;
ALTER TABLE s ADD PRIMARY KEY (c, b);
"""


def test_implicit_names_match_postgresql(conn: psycopg.Connection) -> None:
    conn.execute(SETUP)
    constraints = {r[0] for r in conn.execute(
        "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype <> 'n'")}
    relations = {r[0] for r in conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace")}
    model = SchemaModel()
    model.replay(parse_sql(Path("1_setup.up.sql"), SETUP))
    assert model.constraints == constraints
    assert model.relations == relations
    assert {"t_email_key1", "t_email_key2", "t2_x_check"} <= constraints  # numbered past a taken name
    assert any(len(name.encode()) == 63 for name in relations)  # truncated to NAMEDATALEN - 1


def test_unique_keys_and_types_follow_the_set() -> None:
    model = SchemaModel()
    model.replay(parse_sql(Path("1.up.sql"), SETUP))
    assert set(model.unique_keys("t")) == {frozenset({"id"}), frozenset({"email"}), frozenset({"a", "b"}),
                                           frozenset({"b"})}
    assert set(model.unique_keys("s")) == {frozenset({"c", "b"})}
    model.replay(parse_sql(Path("2.up.sql"), "ALTER TABLE t DROP CONSTRAINT t_email_key, DROP COLUMN b;"
                                              "ALTER TABLE t ALTER COLUMN a TYPE bigint;"))
    assert set(model.unique_keys("t")) == {frozenset({"id"}), frozenset({"email"})}
    type_name = model.column_type("t", "a")
    assert type_name is not None and type_name["names"][-1]["String"]["sval"] == "int8"
    n = model.column_type("t", "n")
    assert n is not None and n["names"][-1]["String"]["sval"] == "int4"  # serial is stored as integer
