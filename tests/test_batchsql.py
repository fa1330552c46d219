"""The batch SQL: the range predicate goes into the statement's own parse tree."""

from __future__ import annotations

import psycopg
import pytest

from lockgate.controller.batchsql import BatchQueries, NotBatchable, batch_queries, target_of


def test_statement_without_where_gets_the_range_as_its_where() -> None:
    q = batch_queries("UPDATE items SET touched = touched + 1", "id")
    assert q.batch.from_start == "UPDATE items SET touched = touched + 1 WHERE items.id <= $1"
    assert q.batch.after == "UPDATE items SET touched = touched + 1 WHERE items.id > $1 AND items.id <= $2"


def test_existing_where_is_kept_and_anded_with_its_precedence() -> None:
    q = batch_queries("UPDATE items SET touched = 1 WHERE grp = 1 OR grp = 2", "id")
    assert q.batch.after == (
        "UPDATE items SET touched = 1 WHERE (grp = 1 OR grp = 2) AND items.id > $1 AND items.id <= $2"
    )


def test_update_from_qualifies_the_key_with_the_target_alias() -> None:
    q = batch_queries(
        "UPDATE public.items AS i SET label = g.name FROM groups AS g WHERE g.id = i.grp", "id"
    )
    assert q.batch.after.endswith("WHERE g.id = i.grp AND i.id > $1 AND i.id <= $2")
    assert q.target.qualifier == ("i",)


def test_delete_using_without_alias_qualifies_with_the_schema_and_table() -> None:
    q = batch_queries('DELETE FROM app."Items" USING groups WHERE groups.id = "Items".grp', "id")
    assert q.batch.from_start == (
        'DELETE FROM app."Items" USING groups WHERE groups.id = "Items".grp AND app."Items".id <= $1'
    )


def test_with_query_stays_and_the_outer_statement_is_bounded() -> None:
    q = batch_queries(
        "WITH big AS (SELECT id FROM groups WHERE size > 10) "
        "UPDATE items SET label = 'big' FROM big WHERE big.id = items.grp",
        "id",
    )
    assert q.batch.after == (
        "WITH big AS (SELECT id FROM groups WHERE size > 10) UPDATE items SET label = 'big' FROM big"
        " WHERE big.id = items.grp AND items.id > $1 AND items.id <= $2"
    )


def test_upper_bound_is_keyset_pagination_over_the_key() -> None:
    q = batch_queries("UPDATE app.items AS i SET touched = 1", "Key Col")
    assert q.next_upper.after == (
        'SELECT CAST("Key Col" AS text) AS batch_value FROM app.items WHERE "Key Col" > $1 AND "Key Col" <= $2'
        ' ORDER BY "Key Col" LIMIT 1 OFFSET $3'
    )
    assert q.next_upper.bind(None, "99", 9) == (q.next_upper.from_start, ("99", 9))
    assert q.last_key == (
        'SELECT CAST("Key Col" AS text) AS batch_value FROM app.items ORDER BY "Key Col" DESC LIMIT 1'
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("SELECT * FROM items", "only UPDATE or DELETE"),
        ("INSERT INTO items (id) VALUES (1)", "only UPDATE or DELETE"),
        ("UPDATE items SET touched = 1 RETURNING id", "RETURNING"),
        ("DELETE FROM items WHERE id IN (SELECT id FROM items WHERE grp = 1 LIMIT 10)", "LIMIT"),
        ("UPDATE items SET touched = 1 WHERE id IN (SELECT id FROM items OFFSET 5)", "LIMIT/OFFSET"),
        ("WITH gone AS (DELETE FROM groups RETURNING id) UPDATE items SET grp = 0", "data-modifying WITH"),
        ("UPDATE items SET touched = 1 WHERE CURRENT OF c", "CURRENT OF"),
        ("UPDATE items SET touched = 1; UPDATE items SET touched = 2", "one statement"),
    ],
)
def test_refuses_what_batches_would_change(text: str, why: str) -> None:
    with pytest.raises(NotBatchable, match=why):
        target_of(text)


# -- on the real server: batches add up to the unbatched statement ---------------------------

SETUP = """
CREATE TABLE groups (id int PRIMARY KEY, size int NOT NULL, name text NOT NULL);
INSERT INTO groups SELECT g, g * 3, 'group ' || g FROM generate_series(0, 9) g;
CREATE TABLE items (id bigint PRIMARY KEY, grp int NOT NULL, touched int NOT NULL DEFAULT 0, label text);
INSERT INTO items (id, grp) SELECT g * 3, g % 10 FROM generate_series(1, 2000) g;
"""

FORMS = [
    "UPDATE items SET touched = touched + 1",
    "UPDATE items SET touched = touched + 1, label = 'odd' WHERE grp % 2 = 1 OR id < 30",
    "UPDATE items AS i SET label = g.name, touched = i.touched + 1 FROM groups AS g WHERE g.id = i.grp",
    "WITH big AS (SELECT id FROM groups WHERE size > 10) "
    "UPDATE items SET label = 'big' FROM big WHERE big.id = items.grp",
    "DELETE FROM items WHERE grp IN (1, 2)",
    "DELETE FROM items AS i USING groups AS g WHERE g.id = i.grp AND g.size < 12",
]


def _snapshot(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT id, grp, touched, label FROM items ORDER BY id").fetchall()


def _run_in_batches(conn: psycopg.Connection, q: BatchQueries, size: int) -> int:
    raw = psycopg.RawCursor(conn)
    row = raw.execute(q.last_key).fetchone()
    assert row is not None
    end, lower, batches = row[0], None, 0
    while lower != end:
        found = raw.execute(*q.next_upper.bind(lower, end, size - 1)).fetchone()
        upper = found[0] if found else end
        raw.execute(*q.batch.bind(lower, upper))
        lower, batches = upper, batches + 1
    return batches


@pytest.mark.parametrize("text", FORMS)
def test_batches_on_the_server_equal_the_unbatched_statement(conn: psycopg.Connection, text: str) -> None:
    conn.execute(SETUP)
    before = _snapshot(conn)
    with conn.transaction(force_rollback=True):
        conn.execute(text)
        expected = _snapshot(conn)
    batches = _run_in_batches(conn, batch_queries(text, "id"), size=150)
    assert batches == 14  # 2000 keys in batches of 150
    assert expected != before  # the statement does change something
    assert _snapshot(conn) == expected
