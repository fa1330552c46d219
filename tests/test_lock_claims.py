"""Every lock, rewrite and failure lockgate claims, checked on the real test server.

The probe of postgres-locks.md §1: relation OIDs are captured first; locks are read from
pg_locks inside `BEGIN; <stmt>;`; a rewrite is a changed pg_relation_filenode(); a scan is a
seq_scan increase in pg_stat_xact_user_tables. A statement that cannot run in a transaction
block is started while another session holds SHARE UPDATE EXCLUSIVE, and the lock it queues
for is read from pg_locks (granted = false). Claims for other server versions are skipped
with the reason; LOCKGATE_TEST_DSN may point the suite at any version 10–18.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from lockgate.controller.pgserver import create_database, drop_database
from lockgate.hooks.lint import lint_sql
from lockgate.hooks.lockmatrix import PROBES, SCHEMA, Probe, probe_claims
from lockgate.hooks.locks import (
    ACCESS_EXCLUSIVE,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    LockClaim,
    claims,
    not_null_without_long_lock,
    strength,
)
from lockgate.hooks.sqlmodel import Statement, parse_sql

_RELATIONS = """
SELECT k.oid, k.relname, k.relkind, coalesce(t.relname, '')
FROM pg_class AS k
JOIN pg_namespace AS s ON s.oid = k.relnamespace
LEFT JOIN pg_index AS i ON i.indexrelid = k.oid
LEFT JOIN pg_class AS t ON t.oid = i.indrelid
WHERE s.nspname = 'public'
"""
_HELD = "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted"


def mode_name(pg_mode: str) -> str:
    """`ShareRowExclusiveLock` -> `SHARE ROW EXCLUSIVE`."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", pg_mode.removesuffix("Lock")).upper()


def server_major(conn: psycopg.Connection) -> int:
    row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


@dataclass
class Relations:
    """The database's relations by OID, with their kind and (for indexes) table."""

    by_oid: dict[int, str]
    kind: dict[str, str]
    table_of_index: dict[str, str]

    @classmethod
    def read(cls, conn: psycopg.Connection) -> Relations:
        rows = conn.execute(_RELATIONS).fetchall()
        return cls({r[0]: r[1] for r in rows}, {r[1]: r[2] for r in rows}, {r[1]: r[3] for r in rows if r[3]})

    def filenodes(self, conn: psycopg.Connection) -> dict[str, int | None]:
        rows = conn.execute(
            "SELECT oid, pg_relation_filenode(oid) FROM pg_class WHERE oid = ANY(%s)", [list(self.by_oid)]
        ).fetchall()
        return {self.by_oid[oid]: node for oid, node in rows}


@dataclass
class Observation:
    """What a statement did inside a transaction, by relation name."""

    relations: Relations
    locks: dict[str, set[str]] = field(default_factory=dict)
    rewritten: set[str] = field(default_factory=set)
    scanned: set[str] = field(default_factory=set)

    def strongest(self, relation: str) -> str | None:
        modes = self.locks.get(relation)
        return max(modes, key=strength) if modes else None


def _seq_scans(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT relname, seq_scan FROM pg_stat_xact_user_tables").fetchall())


def observe(conn: psycopg.Connection, sql: str, *, prelude: str = "") -> Observation:
    """Run `sql` inside BEGIN (after `prelude`, whose locks are not counted), look, roll back."""
    conn.execute("BEGIN")
    try:
        if prelude:
            conn.execute(prelude)
        relations = Relations.read(conn)
        seen = Observation(relations)
        nodes_before = relations.filenodes(conn)
        held_before = set(conn.execute(_HELD).fetchall())
        scans_before = _seq_scans(conn)
        conn.execute(sql)
        for oid, mode in conn.execute(_HELD).fetchall():
            if oid in relations.by_oid and (oid, mode) not in held_before:
                seen.locks.setdefault(relations.by_oid[oid], set()).add(mode_name(mode))
        seen.scanned = {name for name, n in _seq_scans(conn).items() if n > scans_before.get(name, 0)}
        seen.rewritten = {n for n, node in relations.filenodes(conn).items() if node != nodes_before.get(n)}
    finally:
        conn.execute("ROLLBACK")
    return seen


@dataclass
class Wait:
    """The lock a non-transactional statement queued for, and what it rewrote once let through."""

    relation: str
    mode: str
    rewritten: set[str]
    relations: Relations


def observe_wait(dsn: str, sql: str, blocked: str) -> Wait:
    """Run `sql` while another session holds SHARE UPDATE EXCLUSIVE on `blocked`."""
    with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn, autocommit=True) as blocker, \
            psycopg.connect(dsn, autocommit=True) as runner:
        relations = Relations.read(admin)
        nodes_before = relations.filenodes(admin)
        runner_pid = runner.info.backend_pid
        blocker.execute("BEGIN")
        blocker.execute(f"LOCK TABLE {blocked} IN SHARE UPDATE EXCLUSIVE MODE")
        failure: list[Exception] = []

        def run() -> None:
            try:
                runner.execute(sql)
            except Exception as exc:  # re-raised in the test's thread below
                failure.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        waiting = None
        try:
            for _ in range(1000):
                waiting = admin.execute(
                    "SELECT relation, mode FROM pg_locks WHERE pid = %s AND NOT granted AND locktype = 'relation'",
                    [runner_pid],
                ).fetchone()
                if waiting is not None or not worker.is_alive():
                    break
                time.sleep(0.01)
        finally:
            blocker.execute("ROLLBACK")
            worker.join(timeout=60)
        if failure:
            raise failure[0]
        assert waiting is not None, f"{sql!r} never queued behind the SHARE UPDATE EXCLUSIVE holder"
        rewritten = {n for n, node in relations.filenodes(admin).items() if node != nodes_before.get(n)}
        return Wait(relations.by_oid.get(waiting[0], str(waiting[0])), mode_name(waiting[1]), rewritten, relations)


def statement(sql: str) -> Statement:
    return parse_sql(Path("probe.up.sql"), sql).statements[-1]


@pytest.fixture(scope="module")
def world(major_server: object, pg_major: int) -> Iterator[str]:
    """A database with SCHEMA on each server build, shared by this module: every probe rolls back or cleans up."""
    admin_dsn = str(getattr(major_server, "admin_dsn"))  # noqa: B009 - the conftest Server, untyped here
    name = f"lockgate_locks_{os.getpid()}_{pg_major}"
    drop_database(admin_dsn, name)
    dsn = create_database(admin_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute(SCHEMA)
    yield dsn
    drop_database(admin_dsn, name)


@pytest.fixture(scope="module")
def wconn(world: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(world, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def pg(wconn: psycopg.Connection) -> int:
    return server_major(wconn)


# ---------------------------------------------------------------------------------------------
# locks.claims, statement by statement.






def _check_claims(case: Probe | Outside, found: list[LockClaim], seen: Observation) -> None:
    checked = 0
    for claim in found:
        if claim.relation not in seen.relations.kind:
            continue  # a relation the statement creates
        assert seen.strongest(claim.relation) == claim.mode, (claim, seen.locks)
        assert (claim.relation in seen.rewritten) == claim.rewrite, (claim, seen.rewritten)
        if claim.scan:
            assert claim.relation in seen.scanned, (claim, seen.scanned)
        elif not claim.rewrite and strength(claim.mode) > strength(ROW_EXCLUSIVE):
            # DDL that claims no scan reads no row (DML scans as its plan says; a rewrite reads all).
            assert claim.relation not in seen.scanned, (claim, seen.scanned)
        checked += 1
    assert checked, f"no claim of {case.sql!r} names a relation it locked: {found} vs {seen.locks}"
    if case.complete:
        claimed = {c.relation for c in found}
        for relation, modes in seen.locks.items():
            strong = max(modes, key=strength)
            if seen.relations.kind[relation] in "rpm" and strength(strong) >= strength(SHARE_UPDATE_EXCLUSIVE):
                assert relation in claimed, f"{case.sql!r} took {strong} on {relation}, not claimed in {found}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.sql[:70]) for c in PROBES])
def test_claims_match_the_server(case: Probe, wconn: psycopg.Connection, pg: int) -> None:
    if pg < case.since:
        pytest.skip(f"needs PostgreSQL {case.since}+, the server is {pg}")
    found = probe_claims(case, pg)
    if case.setup:
        wconn.execute(case.setup)
    try:
        seen = observe(wconn, case.sql)
    finally:
        if case.teardown:
            wconn.execute(case.teardown)
    _check_claims(case, found, seen)


@dataclass(frozen=True)
class Outside:
    """A statement that cannot run in a transaction block, seen waiting behind `blocked`."""

    sql: str
    blocked: str = "c"
    since: int = 10
    prelude: str = ""
    cleanup: str = ""


OUTSIDE_TRANSACTION = [
    Outside("CREATE INDEX CONCURRENTLY c_t_idx ON c (t)", cleanup="DROP INDEX c_t_idx"),
    Outside("DROP INDEX CONCURRENTLY c_tmp_idx", prelude="CREATE INDEX c_tmp_idx ON c (t)"),
    Outside("REINDEX INDEX CONCURRENTLY c_a_idx", since=12),
    Outside("REINDEX TABLE CONCURRENTLY c", since=12),
    Outside("VACUUM c"),
    Outside("VACUUM FULL c"),
    Outside("ALTER TABLE meas DETACH PARTITION meas_2024 CONCURRENTLY", blocked="meas", since=14,
            cleanup="ALTER TABLE meas ATTACH PARTITION meas_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')"),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.sql[:70]) for c in OUTSIDE_TRANSACTION])
def test_claims_of_non_transactional_statements(case: Outside, world: str, wconn: psycopg.Connection,
                                                pg: int) -> None:
    if pg < case.since:
        pytest.skip(f"needs PostgreSQL {case.since}+, the server is {pg}")
    if case.prelude:
        wconn.execute(case.prelude)
    try:
        wait = observe_wait(world, case.sql, case.blocked)
    finally:
        if case.cleanup:
            wconn.execute(case.cleanup)
    (claim,) = [c for c in claims(statement(case.sql), pg) if c.relation in (case.blocked, *wait.relations.kind)][:1]
    # An index's claim stands for its table, which is what the statement queues on first.
    assert wait.relation in (claim.relation, wait.relations.table_of_index.get(claim.relation)), (claim, wait)
    assert wait.mode == claim.mode, (claim, wait)
    assert (claim.relation in wait.rewritten) == claim.rewrite, (claim, wait.rewritten)


def test_alter_enum_add_value_takes_no_table_lock(wconn: psycopg.Connection, pg: int) -> None:
    if pg < 12:
        pytest.skip("ADD VALUE cannot run in a transaction block before PostgreSQL 12")
    sql = "ALTER TYPE mood ADD VALUE 'happy'"
    assert claims(statement(sql), pg) == []
    assert observe(wconn, sql).locks == {}


# ---------------------------------------------------------------------------------------------
# What the rules' messages claim, for a statement each rule flags.


def flagged(sql: str, code: str, pg: int) -> str:
    """The rule's message for `sql` (asserting the rule flags it)."""
    findings, _ = lint_sql(parse_sql(Path("probe.up.sql"), sql), pg_version=pg)
    messages = [f.message for f in findings if f.rule == code]
    assert messages, f"{code} does not flag {sql!r}: {findings}"
    return messages[0]


def not_flagged(sql: str, code: str, pg: int) -> None:
    findings, _ = lint_sql(parse_sql(Path("probe.up.sql"), sql), pg_version=pg)
    assert [f for f in findings if f.rule == code] == []


@dataclass(frozen=True)
class LockFact:
    """A rule flags `sql` saying `mode` on `relation` (and a rewrite or scan); the server agrees."""

    code: str
    sql: str
    relation: str
    mode: str
    rewrite: bool = False
    scan: bool = False
    since: int = 10


LOCK_FACTS = [
    LockFact("LG101", "CREATE INDEX c_t_idx ON c (t)", "c", "SHARE"),
    LockFact("LG102", "DROP INDEX c_a_idx", "c", ACCESS_EXCLUSIVE),
    LockFact("LG103", "REINDEX INDEX c_a_idx", "c", "SHARE"),
    LockFact("LG103", "REINDEX INDEX c_a_idx", "c_a_idx", ACCESS_EXCLUSIVE),
    LockFact("LG104", "REFRESH MATERIALIZED VIEW mv", "mv", ACCESS_EXCLUSIVE, rewrite=True),
    LockFact("LG105", "ALTER TABLE meas DETACH PARTITION meas_2024", "meas", ACCESS_EXCLUSIVE),
    LockFact("LG201", "ALTER TABLE c ADD CONSTRAINT c_pid_fk2 FOREIGN KEY (pid) REFERENCES p", "c",
             "SHARE ROW EXCLUSIVE", scan=True),
    LockFact("LG201", "ALTER TABLE c ADD CONSTRAINT c_pid_fk2 FOREIGN KEY (pid) REFERENCES p", "p",
             "SHARE ROW EXCLUSIVE", scan=True),
    LockFact("LG201", "ALTER TABLE c ADD CONSTRAINT c_a_small CHECK (a < 1000)", "c", ACCESS_EXCLUSIVE, scan=True),
    LockFact("LG201", "ALTER TABLE c ADD COLUMN z int CHECK (z > 0)", "c", ACCESS_EXCLUSIVE, scan=True),
    LockFact("LG202", "ALTER TABLE c ADD CONSTRAINT c_id_key UNIQUE (id)", "c", ACCESS_EXCLUSIVE),
    LockFact("LG202", "ALTER TABLE c ADD COLUMN z int UNIQUE", "c", ACCESS_EXCLUSIVE, scan=True),
    LockFact("LG203", "ALTER TABLE c ADD CONSTRAINT c_a_small CHECK (a < 1000) NOT VALID;\n"
                      "ALTER TABLE c VALIDATE CONSTRAINT c_a_small;", "c", ACCESS_EXCLUSIVE, scan=True),
    LockFact("LG204", "ALTER TABLE c ALTER COLUMN a SET NOT NULL;", "c", ACCESS_EXCLUSIVE, scan=True),
    LockFact("LG205", "ALTER TABLE c ADD CONSTRAINT c_a_excl EXCLUDE USING btree (a WITH =)", "c", ACCESS_EXCLUSIVE),
    LockFact("LG301", "ALTER TABLE c ALTER COLUMN a TYPE bigint", "c", ACCESS_EXCLUSIVE, rewrite=True),
    LockFact("LG301", "ALTER TABLE c ALTER COLUMN t TYPE varchar(100)", "c", ACCESS_EXCLUSIVE, rewrite=True),
    LockFact("LG302", "ALTER TABLE c ADD COLUMN z uuid DEFAULT md5(random()::text)::uuid", "c", ACCESS_EXCLUSIVE,
             rewrite=True),
    LockFact("LG303", "ALTER TABLE c ADD COLUMN z int GENERATED BY DEFAULT AS IDENTITY", "c", ACCESS_EXCLUSIVE,
             rewrite=True),
    LockFact("LG303", "ALTER TABLE c ADD COLUMN z int GENERATED ALWAYS AS (a * 2) STORED", "c", ACCESS_EXCLUSIVE,
             rewrite=True, since=12),
    LockFact("LG304", "CREATE DOMAIN small AS int CHECK (VALUE < 10);\nALTER TABLE c ADD COLUMN z small;", "c",
             ACCESS_EXCLUSIVE, rewrite=True),
    LockFact("LG305", "ALTER TABLE meas_2025 SET UNLOGGED", "meas_2025", ACCESS_EXCLUSIVE, rewrite=True),
    LockFact("LG306", "CLUSTER c USING c_pkey", "c", ACCESS_EXCLUSIVE, rewrite=True),
    LockFact("LG605", "LOCK TABLE c", "c", ACCESS_EXCLUSIVE),
]


@pytest.mark.parametrize("fact", [pytest.param(f, id=f"{f.code}-{f.relation}-{f.sql[:50]}") for f in LOCK_FACTS])
def test_rule_lock_claims_hold(fact: LockFact, wconn: psycopg.Connection, pg: int) -> None:
    if pg < fact.since:
        pytest.skip(f"needs PostgreSQL {fact.since}+, the server is {pg}")
    message = flagged(fact.sql, fact.code, pg)
    seen = observe(wconn, fact.sql)
    assert seen.strongest(fact.relation) == fact.mode, seen.locks
    assert fact.mode in message
    if fact.rewrite:
        assert fact.relation in seen.rewritten and "rewrite" in message
    if fact.scan:
        assert fact.relation in seen.scanned


def test_lg306_vacuum_full_rewrites_under_access_exclusive(world: str, pg: int) -> None:
    message = flagged("VACUUM FULL c", "LG306", pg)
    wait = observe_wait(world, "VACUUM FULL c", "c")
    assert (wait.relation, wait.mode) == ("c", ACCESS_EXCLUSIVE) and "c" in wait.rewritten
    assert ACCESS_EXCLUSIVE in message and "rewrites" in message


def test_lg102_and_lg103_alternatives_take_share_update_exclusive(world: str, wconn: psycopg.Connection,
                                                                   pg: int) -> None:
    wconn.execute("CREATE INDEX c_tmp_idx ON c (t)")
    not_flagged("DROP INDEX CONCURRENTLY c_tmp_idx", "LG102", pg)
    wait = observe_wait(world, "DROP INDEX CONCURRENTLY c_tmp_idx", "c")
    assert (wait.relation, wait.mode) == ("c", SHARE_UPDATE_EXCLUSIVE)
    if pg >= 12:
        not_flagged("REINDEX INDEX CONCURRENTLY c_a_idx", "LG103", pg)
        assert observe_wait(world, "REINDEX INDEX CONCURRENTLY c_a_idx", "c").mode == SHARE_UPDATE_EXCLUSIVE


def test_lg201_add_column_references_checks_nothing(wconn: psycopg.Connection, pg: int) -> None:
    sql = "ALTER TABLE c ADD COLUMN z int REFERENCES p"
    not_flagged(sql, "LG201", pg)
    seen = observe(wconn, sql)
    assert seen.strongest("p") == "SHARE ROW EXCLUSIVE" and "p" not in seen.scanned and "c" not in seen.scanned


def test_lg203_validate_alone_takes_share_update_exclusive(wconn: psycopg.Connection, pg: int) -> None:
    not_flagged("ALTER TABLE c VALIDATE CONSTRAINT c_a_positive", "LG203", pg)
    seen = observe(wconn, "ALTER TABLE c VALIDATE CONSTRAINT c_a_positive")
    assert seen.strongest("c") == SHARE_UPDATE_EXCLUSIVE and "c" in seen.scanned


def test_lg204_valid_not_null_check_skips_the_scan(wconn: psycopg.Connection, pg: int) -> None:
    setup = "ALTER TABLE c ADD CONSTRAINT c_a_nn CHECK (a IS NOT NULL) NOT VALID"
    sql = "ALTER TABLE c VALIDATE CONSTRAINT c_a_nn;\nALTER TABLE c ALTER COLUMN a SET NOT NULL;"
    seen = observe(wconn, "ALTER TABLE c ALTER COLUMN a SET NOT NULL", prelude=f"{setup}; {sql.split(';')[0]}")
    if pg >= 12:
        not_flagged(sql, "LG204", pg)
        assert "c" not in seen.scanned
    else:
        flagged(sql, "LG204", pg)
        assert "c" in seen.scanned


def test_lg204_and_lg508_advice_makes_a_filled_column_not_null_without_a_long_lock(
        wconn: psycopg.Connection, pg: int) -> None:
    # LG508's premise holds on every major: the statement fails on a table with rows.
    assert _raises(wconn, "ALTER TABLE c ADD COLUMN z int NOT NULL").sqlstate == "23502"
    assert not_null_without_long_lock("z", pg) in flagged("ALTER TABLE c ADD COLUMN z int NOT NULL", "LG508", pg)
    if pg >= 12:  # before 12 LG204 has no such route to give (test_lg204_valid_not_null_check_skips_the_scan)
        assert not_null_without_long_lock("a", pg) in flagged("ALTER TABLE c ALTER COLUMN a SET NOT NULL", "LG204", pg)
    add = "ALTER TABLE c ADD CONSTRAINT c_a_nn NOT NULL a NOT VALID"
    if pg < 18:
        # The CHECK route the advice gives here is proven by test_lg204_valid_not_null_check_skips_the_scan.
        assert "NOT NULL a NOT VALID" not in not_null_without_long_lock("a", pg)
        assert _raises(wconn, add).sqlstate == "42601"  # no such syntax before 18
        return
    not_flagged(add, "LG204", pg)
    seen = observe(wconn, add)
    assert seen.strongest("c") == ACCESS_EXCLUSIVE and "c" not in seen.scanned
    wconn.execute(add)  # the first migration
    try:
        with pytest.raises(psycopg.errors.NotNullViolation):
            wconn.execute("INSERT INTO c (id, a) VALUES (1000, NULL)")  # new rows are checked at once
        validate = "ALTER TABLE c VALIDATE CONSTRAINT c_a_nn"  # the later migration
        not_flagged(validate, "LG204", pg)
        seen = observe(wconn, validate)
        assert seen.strongest("c") == SHARE_UPDATE_EXCLUSIVE and "c" in seen.scanned
        wconn.execute(validate)
        row = wconn.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'c'::regclass AND attname = 'a'")
        assert row.fetchone() == (True,)
    finally:
        wconn.execute("ALTER TABLE c DROP CONSTRAINT c_a_nn")


def test_lg301_widening_is_not_a_rewrite(wconn: psycopg.Connection, pg: int) -> None:
    sql = "ALTER TABLE c ADD COLUMN z varchar(20);\nALTER TABLE c ALTER COLUMN z TYPE varchar(40);"
    not_flagged(sql, "LG301", pg)
    seen = observe(wconn, "ALTER TABLE c ALTER COLUMN z TYPE varchar(40)",
                   prelude="ALTER TABLE c ADD COLUMN z varchar(20)")
    assert "c" not in seen.rewritten


def test_lg301_timestamptz_in_utc(wconn: psycopg.Connection, pg: int) -> None:
    sql = "SET LOCAL TimeZone = 'UTC';\nALTER TABLE c ALTER COLUMN ts TYPE timestamptz;"
    seen = observe(wconn, "ALTER TABLE c ALTER COLUMN ts TYPE timestamptz", prelude="SET LOCAL TimeZone = 'UTC'")
    if pg >= 12:
        not_flagged(sql, "LG301", pg)
        assert "c" not in seen.rewritten
    else:
        flagged(sql, "LG301", pg)
        assert "c" in seen.rewritten
    flagged("ALTER TABLE c ALTER COLUMN ts TYPE timestamptz;", "LG301", pg)
    assert "c" in observe(wconn, "ALTER TABLE c ALTER COLUMN ts TYPE timestamptz",
                          prelude="SET LOCAL TimeZone = 'Europe/Paris'").rewritten


def test_lg302_stable_default_is_not_a_rewrite(wconn: psycopg.Connection, pg: int) -> None:
    sql = "ALTER TABLE c ADD COLUMN z text NOT NULL DEFAULT 'bronze'"
    seen = observe(wconn, sql)
    if pg >= 11:
        not_flagged(sql, "LG302", pg)
        assert "c" not in seen.rewritten
    else:
        flagged(sql, "LG302", pg)
        assert "c" in seen.rewritten


# Failures the rules predict, raised by the server.


def _raises(conn: psycopg.Connection, sql: str, *, prelude: str = "") -> psycopg.Error:
    conn.execute("BEGIN")
    try:
        if prelude:
            conn.execute(prelude)
        with pytest.raises(psycopg.Error) as caught:
            for part in sql.split(";\n"):
                conn.execute(part)
        return caught.value
    finally:
        conn.execute("ROLLBACK")


def test_lg601_seed_script_fails_with_invalid_transaction_termination(wconn: psycopg.Connection, pg: int) -> None:
    seed = Path(__file__).parent / "fixtures" / "seed_original_add_customer_tier.sql"
    findings, _ = lint_sql(parse_sql(seed, seed.read_text()), pg_version=pg)
    assert {"LG601", "LG201", "LG603"} <= {f.rule for f in findings}
    if pg < 11:
        pytest.skip("PL/pgSQL has no COMMIT before PostgreSQL 11")
    do_block = "DO $$ BEGIN UPDATE c SET a = a WHERE id = 1; COMMIT; END $$"
    flagged(do_block, "LG601", pg)
    error = _raises(wconn, do_block)
    assert "invalid transaction termination" in str(error) and error.sqlstate == "2D000"
    # The no-transaction form really works on its own.
    not_flagged(f"-- lockgate:no-transaction\n{do_block}", "LG601", pg)
    wconn.execute(do_block)


def test_lg601_procedure_called_in_a_transaction(wconn: psycopg.Connection, pg: int) -> None:
    if pg < 11:
        pytest.skip("procedures need PostgreSQL 11+")
    create = "CREATE PROCEDURE tick() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$"
    flagged(f"{create};\nCALL tick();", "LG601", pg)
    error = _raises(wconn, "CALL tick()", prelude=create)
    assert "invalid transaction termination" in str(error)


def test_lg602_concurrent_index_in_a_transaction_block(wconn: psycopg.Connection, pg: int) -> None:
    sql = "CREATE INDEX CONCURRENTLY c_t_idx ON c (t)"
    flagged(f"BEGIN;\n{sql};\nCOMMIT;", "LG602", pg)
    assert "cannot run inside a transaction block" in str(_raises(wconn, sql))
    do_block = f"DO $$ BEGIN {sql}; END $$"
    flagged(do_block, "LG602", pg)
    with pytest.raises(psycopg.Error, match=r"cannot be executed from a function|inside a transaction block"):
        wconn.execute(do_block)


def test_lg603_commit_ends_the_engines_transaction(wconn: psycopg.Connection, pg: int) -> None:
    body = "CREATE TABLE lg603_probe (id int);\nCOMMIT;"
    flagged(body, "LG603", pg)
    wconn.execute("BEGIN")
    wconn.execute("CREATE TABLE lg603_probe (id int)")
    wconn.execute("COMMIT")  # the migration's own COMMIT
    wconn.execute("ROLLBACK")  # the engine's rollback now has nothing to undo
    try:
        row = wconn.execute("SELECT to_regclass('lg603_probe') IS NOT NULL").fetchone()
        assert row == (True,)
    finally:
        wconn.execute("DROP TABLE lg603_probe")


def test_lg604_new_enum_value_is_unusable_in_its_transaction(wconn: psycopg.Connection, pg: int) -> None:
    if pg < 12:
        pytest.skip("ADD VALUE cannot run in a transaction block before PostgreSQL 12 (LG602 says so)")
    sql = "ALTER TYPE mood ADD VALUE 'happy';\nSELECT 'happy'::mood;"
    flagged(sql, "LG604", pg)
    error = _raises(wconn, sql)
    assert error.sqlstate == "55P04" and "unsafe use of new value" in str(error)


def test_lg602_enum_add_value_in_a_transaction_block_before_pg12(wconn: psycopg.Connection, pg: int) -> None:
    sql = "ALTER TYPE mood ADD VALUE 'happy'"
    if pg >= 12:
        not_flagged(f"BEGIN;\n{sql};\nCOMMIT;", "LG602", pg)
        observe(wconn, sql)  # runs in a transaction block without error
    else:
        flagged(f"BEGIN;\n{sql};\nCOMMIT;", "LG602", pg)
        assert "cannot run inside a transaction block" in str(_raises(wconn, sql))


def test_lg102_drop_index_concurrently_mistakes_fail(wconn: psycopg.Connection, pg: int) -> None:
    for sql, error in (("DROP INDEX CONCURRENTLY c_a_idx, c_pkey", "multiple objects"),
                       ("DROP INDEX CONCURRENTLY c_a_idx CASCADE", "CASCADE")):
        flagged(f"-- lockgate:no-transaction\n{sql}", "LG102", pg)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match=error):
            wconn.execute(sql)
    assert wconn.execute("SELECT to_regclass('c_a_idx') IS NOT NULL").fetchone() == (True,)


def test_lg601_a_function_can_never_commit(wconn: psycopg.Connection, pg: int) -> None:
    if pg < 11:
        pytest.skip("PL/pgSQL has no COMMIT before PostgreSQL 11")
    create = "CREATE FUNCTION tock() RETURNS void LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$"
    flagged(f"-- lockgate:no-transaction\n{create}", "LG601", pg)
    error = _raises(wconn, "SELECT tock()", prelude=create)
    assert "invalid transaction termination" in str(error)


def test_lg603_begin_inside_a_transaction_only_warns(wconn: psycopg.Connection, pg: int) -> None:
    flagged("SELECT 1;\nBEGIN;", "LG603", pg)
    notices: list[str] = []

    def keep(diagnostic: psycopg.errors.Diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    wconn.add_notice_handler(keep)
    try:
        wconn.execute("BEGIN")
        wconn.execute("BEGIN")
        wconn.execute("ROLLBACK")
    finally:
        wconn.remove_notice_handler(keep)
    assert notices == ["there is already a transaction in progress"]
