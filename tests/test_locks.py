"""lockgate.hooks.locks as pure knowledge: version differences, merging, type changes, defaults.

What the test server can show is checked against it in test_lock_claims.py; this file covers
the version-dependent answers (PG10–18) a single server cannot, from postgres-locks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.hooks.locks import (
    ACCESS_EXCLUSIVE,
    ALL_TABLES,
    EXCLUSIVE,
    ROW_SHARE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    LockClaim,
    Rewrite,
    SqlType,
    blocks_reads,
    blocks_writes,
    claim_on,
    claims,
    type_change,
    volatile_calls,
    what_it_blocks,
)
from lockgate.hooks.sqlmodel import Statement, parse_sql


def stmt(sql: str) -> Statement:
    return parse_sql(Path("t.up.sql"), sql).statements[-1]


def one(sql: str, relation: str, pg: int = 15) -> LockClaim:
    claim = claim_on(stmt(sql), relation, pg)
    assert claim is not None, claims(stmt(sql), pg)
    return claim


def sql_type(text: str) -> SqlType:
    target = stmt(f"SELECT NULL::{text}").node["targetList"][0]["ResTarget"]["val"]
    return SqlType.of(target["TypeCast"]["typeName"])


@pytest.mark.parametrize(("sql", "relation", "old_pg", "old_mode", "new_pg", "new_mode"), [
    ("ALTER TABLE m ATTACH PARTITION m1 FOR VALUES IN (1)", "m", 11, ACCESS_EXCLUSIVE, 12, SHARE_UPDATE_EXCLUSIVE),
    ("ALTER TABLE m DETACH PARTITION m1", "m1", 13, SHARE_UPDATE_EXCLUSIVE, 14, ACCESS_EXCLUSIVE),
    ("ALTER INDEX i RENAME TO j", "i", 11, ACCESS_EXCLUSIVE, 12, SHARE_UPDATE_EXCLUSIVE),
    ("ALTER TABLE t ADD CONSTRAINT k UNIQUE USING INDEX i", "i", 11, ACCESS_EXCLUSIVE, 12, SHARE_UPDATE_EXCLUSIVE),
])
def test_lock_modes_that_changed_between_versions(sql: str, relation: str, old_pg: int, old_mode: str,
                                                  new_pg: int, new_mode: str) -> None:
    assert one(sql, relation, old_pg).mode == old_mode
    assert one(sql, relation, new_pg).mode == new_mode


def test_fast_default_from_pg11() -> None:
    sql = "ALTER TABLE t ADD COLUMN n int NOT NULL DEFAULT 0"
    assert one(sql, "t", 10).rewrite
    assert not one(sql, "t", 11).rewrite
    assert one("ALTER TABLE t ADD COLUMN n timestamptz DEFAULT clock_timestamp()", "t", 18).rewrite


def test_strictest_subcommand_wins_and_effects_add_up() -> None:
    claim = one("ALTER TABLE t SET (fillfactor = 70), ALTER COLUMN a SET NOT NULL, ALTER COLUMN b TYPE bigint", "t")
    assert claim.mode == ACCESS_EXCLUSIVE and claim.rewrite and claim.scan
    assert one("ALTER TABLE t SET (fillfactor = 70), ALTER COLUMN a SET STATISTICS 10", "t").mode \
        == SHARE_UPDATE_EXCLUSIVE
    assert one("ALTER TABLE t SET (fillfactor = 70, oids = false)", "t").mode == ACCESS_EXCLUSIVE


def test_foreign_keys_lock_the_parent() -> None:
    found = claims(stmt("ALTER TABLE s.orders ADD FOREIGN KEY (c) REFERENCES public.customers NOT VALID"), 15)
    assert [(c.relation, c.mode, c.scan) for c in found] == [
        ("s.orders", SHARE_ROW_EXCLUSIVE, False), ("customers", SHARE_ROW_EXCLUSIVE, False),
    ]
    created = claims(stmt("CREATE TABLE r (id int, c int REFERENCES customers, d int REFERENCES depots)"), 15)
    assert {(c.relation, c.mode) for c in created} == {
        ("r", ACCESS_EXCLUSIVE), ("customers", SHARE_ROW_EXCLUSIVE), ("depots", SHARE_ROW_EXCLUSIVE),
    }
    column = claims(stmt("ALTER TABLE orders ADD COLUMN d int DEFAULT 1 REFERENCES depots"), 15)
    assert claim_on(stmt("ALTER TABLE orders ADD COLUMN d int REFERENCES depots"), "depots", 15) == LockClaim(
        "depots", SHARE_ROW_EXCLUSIVE, False, False, "referenced by the new column orders.d")
    assert [c.scan for c in column if c.relation == "depots"] == [True]


@pytest.mark.parametrize(("sql", "expected"), [
    ("VACUUM", [(ALL_TABLES, SHARE_UPDATE_EXCLUSIVE, False)]),
    ("VACUUM FULL a, b", [("a", ACCESS_EXCLUSIVE, True), ("b", ACCESS_EXCLUSIVE, True)]),
    ("VACUUM (FULL off) a", [("a", SHARE_UPDATE_EXCLUSIVE, False)]),
    ("CLUSTER", [(ALL_TABLES, ACCESS_EXCLUSIVE, True)]),
    ("TRUNCATE a, s.b", [("a", ACCESS_EXCLUSIVE, True), ("s.b", ACCESS_EXCLUSIVE, True)]),
    ("LOCK TABLE a IN ROW SHARE MODE", [("a", ROW_SHARE, False)]),
    ("LOCK TABLE a IN EXCLUSIVE MODE", [("a", EXCLUSIVE, False)]),
    ("DROP INDEX CONCURRENTLY s.i", [("s.i", SHARE_UPDATE_EXCLUSIVE, False)]),
    ("DROP TRIGGER tr ON s.t", [("s.t", ACCESS_EXCLUSIVE, False)]),
    ("REINDEX TABLE CONCURRENTLY t", [("t", SHARE_UPDATE_EXCLUSIVE, False)]),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv", [("mv", EXCLUSIVE, False)]),
    ("ALTER TYPE mood ADD VALUE 'x'", []),
    ("CREATE EXTENSION IF NOT EXISTS citext", []),
])
def test_other_statements(sql: str, expected: list[tuple[str, str, bool]]) -> None:
    assert [(c.relation, c.mode, c.rewrite) for c in claims(stmt(sql), 15)] == expected


def test_detach_concurrently_says_what_the_second_transaction_does() -> None:
    found = claims(stmt("ALTER TABLE m DETACH PARTITION m1 CONCURRENTLY"), 15)
    assert [(c.relation, c.mode) for c in found] == [("m", SHARE_UPDATE_EXCLUSIVE), ("m1", SHARE_UPDATE_EXCLUSIVE)]
    assert "ACCESS EXCLUSIVE" in found[1].note


def test_not_valid_and_not_enforced_skip_the_scan() -> None:
    assert one("ALTER TABLE t ADD CONSTRAINT k CHECK (a > 0)", "t").scan
    assert not one("ALTER TABLE t ADD CONSTRAINT k CHECK (a > 0) NOT VALID", "t").scan
    assert not one("ALTER TABLE t ADD CONSTRAINT k CHECK (a > 0) NOT ENFORCED", "t", 18).scan
    assert not one("ALTER TABLE t ADD CONSTRAINT k NOT NULL a NOT VALID", "t", 18).scan


def test_set_not_null_note_depends_on_version() -> None:
    assert one("ALTER TABLE t ALTER COLUMN a SET NOT NULL", "t", 11).note == ""
    assert "PG12+" in one("ALTER TABLE t ALTER COLUMN a SET NOT NULL", "t", 12).note


def test_type_change_without_the_old_type_assumes_the_rewrite() -> None:
    claim = one("ALTER TABLE t ALTER COLUMN v TYPE varchar(50)", "t")
    assert claim.rewrite and "unless the old type is binary-coercible" in claim.note
    known = claims(stmt("ALTER TABLE t ALTER COLUMN v TYPE varchar(50)"), 15,
                   column_types={("t", "v"): sql_type("character varying(20)")})
    assert not known[0].rewrite


def test_added_column_of_a_user_type_may_be_a_constrained_domain() -> None:
    assert "domain with a CHECK" in one("ALTER TABLE t ADD COLUMN c cents", "t").note
    assert one("ALTER TABLE t ADD COLUMN c text", "t").note == ""


@pytest.mark.parametrize(("old", "new", "pg", "verdict"), [
    ("character varying(20)", "text", 15, Rewrite.NO),
    ("timestamp without time zone", "timestamp with time zone", 11, Rewrite.YES),
    ("timestamp without time zone", "timestamp with time zone", 12, Rewrite.UNLESS_UTC),
    ("timestamp(3) with time zone", "timestamp(6) without time zone", 18, Rewrite.UNLESS_UTC),
    ("timestamp(6) with time zone", "timestamp(0) without time zone", 18, Rewrite.YES),
    ("xml", "text", 15, Rewrite.NO),
    ("integer", "oid", 15, Rewrite.NO),
    ("interval year to month", "interval", 15, Rewrite.NO),
    ("interval", "interval day", 15, Rewrite.YES),
    ("time(0)", "time(3)", 15, Rewrite.NO),
    ("bit varying(10)", "bit varying(5)", 15, Rewrite.YES),
])
def test_type_change_verdicts(old: str, new: str, pg: int, verdict: Rewrite) -> None:
    assert type_change(sql_type(old), sql_type(new), pg) is verdict


@pytest.mark.parametrize(("new", "verdict"), [
    ("text", Rewrite.UNLESS_COERCIBLE),
    ("numeric(12,2)", Rewrite.UNLESS_COERCIBLE),
    ("my_domain", Rewrite.UNLESS_COERCIBLE),
    ("bigint", Rewrite.YES),
    ("jsonb", Rewrite.YES),
])
def test_type_change_from_an_unknown_type(new: str, verdict: Rewrite) -> None:
    assert type_change(None, sql_type(new), 15) is verdict


def test_sql_type_spelling() -> None:
    assert str(sql_type("bigint[]")) == "bigint[]"
    assert str(sql_type("character varying(20)")) == "varchar(20)"
    assert str(sql_type("numeric(10, 2)")) == "numeric(10,2)"


@pytest.mark.parametrize(("default", "volatile"), [
    ("now()", []),
    ("now() - interval '1 day'", []),
    ("lower('X') || 'y'", []),
    ("clock_timestamp()", ["clock_timestamp"]),
    ("coalesce(random(), 0)", ["random"]),
    ("public.gen_random_uuid()", ["gen_random_uuid"]),
    ("my_schema.next_code()", ["next_code"]),
])
def test_volatile_calls(default: str, volatile: list[str]) -> None:
    expr = stmt(f"SELECT {default}").node["targetList"][0]["ResTarget"]["val"]
    assert volatile_calls(expr) == volatile


def test_what_modes_block() -> None:
    assert blocks_reads(ACCESS_EXCLUSIVE) and not blocks_reads(EXCLUSIVE)
    assert blocks_writes(SHARE) and not blocks_writes(SHARE_UPDATE_EXCLUSIVE)
    assert what_it_blocks(SHARE_ROW_EXCLUSIVE) == "blocks writes"
    assert what_it_blocks(SHARE_UPDATE_EXCLUSIVE) == "blocks other DDL and VACUUM"
    assert what_it_blocks(ROW_SHARE) == "blocks DDL"
