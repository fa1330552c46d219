"""Index work that blocks writes or reads on an existing table."""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.hooks.locks import ACCESS_EXCLUSIVE, SHARE
from lockgate.hooks.rules._nodes import alter_cmds, existing_table
from lockgate.hooks.rules.base import Example, Hit, Rule
from lockgate.hooks.rules.context import Context, name_key, relation_key
from lockgate.hooks.sqlmodel import Statement


class RequireConcurrentIndexCreation(Rule):
    """Building an index without CONCURRENTLY blocks every write to the table.

    `CREATE INDEX` takes a SHARE lock on the table for the whole build: reads go on, but every
    INSERT, UPDATE and DELETE waits until the index is built, which on a large table is minutes.

    Safe alternative: `CREATE INDEX CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE, which blocks no
    reads or writes. It cannot run inside a transaction block, so put it in a migration of its
    own marked `-- lockgate:no-transaction` (lockgate detects it and runs the file in
    autocommit anyway). A failed concurrent build leaves an INVALID index: check `indisvalid`
    in the validation file.

    Indexing a table created earlier in the same migration is fine: nobody else can see it. So
    is indexing one an earlier migration of the pending change created and did not fill (one
    not yet on the base branch; for the controller, not yet applied): it runs right after, on
    an empty table.
    `CREATE INDEX … ON ONLY parent` is not reported either: on a partitioned table it builds
    nothing (it makes an invalid index on the parent alone), and it is the first step of
    indexing a partitioned table without blocking writes: then `CREATE INDEX CONCURRENTLY` on
    each partition and `ALTER INDEX parent_idx ATTACH PARTITION partition_idx`.
    """

    code = "LG101"
    name = "require-concurrent-index-creation"
    summary = "CREATE INDEX without CONCURRENTLY on an existing table"
    kinds = frozenset({"IndexStmt"})
    squawk = ("require-concurrent-index-creation",)
    bad = (
        Example("CREATE INDEX orders_created_at_idx ON orders (created_at);"),
        Example("CREATE INDEX events_at_idx ON events (at);",
                before=("CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz);",),
                note="the table came with a migration already on the base branch: it may be large"),
        Example("CREATE INDEX events_at_idx ON events (at);",
                before=("CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz);\n"
                        "INSERT INTO events (id, at) SELECT id, at FROM old_events;",), pending=True,
                note="new in the change, but the earlier migration filled it"),
    )
    good = (
        Example("-- lockgate:no-transaction\nCREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);"),
        Example("CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz);\n"
                "CREATE INDEX events_at_idx ON events (at);"),
        Example("CREATE INDEX measurements_at_idx ON ONLY measurements (at);",
                note="a partitioned table: an invalid index on the parent, nothing is built"),
        Example("CREATE INDEX events_at_idx ON events (at);",
                before=("CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz);",), pending=True,
                note="the table is new in the same change: an earlier migration of it creates it"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        relation = node.get("relation", {})
        if node.get("concurrent") or ctx.is_new(relation) or not relation.get("inh"):
            return
        unique = "UNIQUE " if node.get("unique") else ""
        yield (
            f"CREATE {unique}INDEX takes a SHARE lock on {node['relation'].get('relname')} and blocks writes "
            f"for the whole build; use CREATE {unique}INDEX CONCURRENTLY in a -- lockgate:no-transaction migration"
        )


class RequireConcurrentIndexDeletion(Rule):
    """Dropping an index without CONCURRENTLY blocks reads and writes of its table.

    `DROP INDEX` takes ACCESS EXCLUSIVE on the index's table. The drop itself is quick, but the
    lock request queues behind every running query on the table, and every query after it queues
    behind the request: a long report running on the table stops all traffic to it.

    Safe alternative: `DROP INDEX CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE and waits for
    running transactions instead of blocking new ones. It drops one index per statement, takes no
    CASCADE and cannot run inside a transaction block (lockgate runs such a file in autocommit;
    mark it `-- lockgate:no-transaction` to say so). Those two mistakes fail at run time, so they
    are reported too.

    Dropping an index created earlier in the same migration is fine: nobody uses it yet.
    """

    code = "LG102"
    name = "require-concurrent-index-deletion"
    summary = "DROP INDEX without CONCURRENTLY on an existing index"
    kinds = frozenset({"DropStmt"})
    squawk = ("require-concurrent-index-deletion",)
    bad = (
        Example("DROP INDEX orders_created_at_idx;"),
        Example("-- lockgate:no-transaction\nDROP INDEX CONCURRENTLY orders_a_idx, orders_b_idx;",
                note="CONCURRENTLY drops one index per statement"),
    )
    good = (
        Example("-- lockgate:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;"),
        Example("CREATE INDEX orders_tmp_idx ON orders (created_at);\nDROP INDEX orders_tmp_idx;",
                note="the index was created by this migration (LG101 still reports the CREATE)"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if node.get("removeType") != "OBJECT_INDEX":
            return
        names = [name_key(o.get("List", {}).get("items", [])) for o in node.get("objects", [])]
        if node.get("concurrent"):
            if len(names) > 1:
                yield "DROP INDEX CONCURRENTLY fails with more than one index: write one statement per index"
            if node.get("behavior") == "DROP_CASCADE":
                yield "DROP INDEX CONCURRENTLY does not support CASCADE: drop the dependent objects first"
            return
        existing = [n for n in names if n not in ctx.new_indexes]
        if existing:
            yield (
                f"DROP INDEX {', '.join(existing)} takes {ACCESS_EXCLUSIVE} on its table and blocks reads and writes; "
                "use DROP INDEX CONCURRENTLY (one index per statement) in a -- lockgate:no-transaction migration"
            )


class RequireConcurrentReindex(Rule):
    """REINDEX without CONCURRENTLY blocks writes to the table, and reads that use the index.

    `REINDEX INDEX` / `REINDEX TABLE` take SHARE on the table (no INSERT, UPDATE or DELETE) and
    ACCESS EXCLUSIVE on each index while it is rebuilt (no query can use it). `REINDEX SCHEMA`
    and `REINDEX DATABASE` do that to every table in turn.

    Safe alternative (PostgreSQL 12+): `REINDEX … CONCURRENTLY` builds a new index next to the
    old one under SHARE UPDATE EXCLUSIVE and swaps them. It cannot run inside a transaction
    block; lockgate runs such a file in autocommit. Before PostgreSQL 12 there is no concurrent
    form: build a replacement with `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY` the old
    one and rename the new one, each in its own no-transaction migration.

    `REINDEX SYSTEM` has no concurrent form and is not reported. An index or table created
    earlier in the same migration is fine.
    """

    code = "LG103"
    name = "require-concurrent-reindex"
    summary = "REINDEX without CONCURRENTLY"
    kinds = frozenset({"ReindexStmt"})
    squawk = ("require-concurrent-reindex",)
    bad = (
        Example("REINDEX INDEX orders_created_at_idx;"),
        Example("REINDEX TABLE orders;", pg_version=11, note="no concurrent form before PostgreSQL 12"),
    )
    good = (Example("-- lockgate:no-transaction\nREINDEX INDEX CONCURRENTLY orders_created_at_idx;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        kind = node.get("kind", "").removeprefix("REINDEX_OBJECT_")
        concurrent = any(p.get("DefElem", {}).get("defname") == "concurrently" for p in node.get("params") or [])
        if concurrent or kind == "SYSTEM":
            return
        relation = node.get("relation")
        if relation is not None and (
            ctx.is_new(relation) or relation_key(relation) in ctx.new_indexes
        ):
            return
        target = f"REINDEX {kind} {relation_key(relation) if relation else node.get('name', '')}".rstrip()
        blocks = f"{target} locks the table {SHARE} (blocks writes) and each index {ACCESS_EXCLUSIVE} while rebuilt"
        if ctx.pg_version >= 12:
            yield f"{blocks}; use REINDEX {kind} CONCURRENTLY in a -- lockgate:no-transaction migration"
        else:
            yield (
                f"{blocks}; PostgreSQL {ctx.pg_version} has no REINDEX CONCURRENTLY (PG12+): CREATE INDEX "
                "CONCURRENTLY a replacement, DROP INDEX CONCURRENTLY the old one, then rename"
            )


class RequireConcurrentRefresh(Rule):
    """Refreshing a materialized view without CONCURRENTLY blocks every read of it.

    `REFRESH MATERIALIZED VIEW` takes ACCESS EXCLUSIVE on the view and writes a new copy of it:
    every query that reads the view waits until the whole query behind it has run again.

    Safe alternative: `REFRESH MATERIALIZED VIEW CONCURRENTLY` takes EXCLUSIVE, which still lets
    readers see the old contents, and applies the difference. It needs a unique index on the
    view (create it first, concurrently) and a view that has been populated once. It may run
    inside a transaction block.

    A view created earlier in the same migration is fine.
    """

    code = "LG104"
    name = "require-concurrent-refresh"
    summary = "REFRESH MATERIALIZED VIEW without CONCURRENTLY"
    kinds = frozenset({"RefreshMatViewStmt"})
    bad = (Example("REFRESH MATERIALIZED VIEW customer_totals;"),)
    good = (
        Example("REFRESH MATERIALIZED VIEW CONCURRENTLY customer_totals;"),
        Example("CREATE MATERIALIZED VIEW customer_totals AS SELECT 1 AS n WITH NO DATA;\n"
                "REFRESH MATERIALIZED VIEW customer_totals;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        view = existing_table(stmt, ctx)
        if stmt.node.get("concurrent") or view is None:
            return
        yield (
            f"REFRESH MATERIALIZED VIEW {view} takes {ACCESS_EXCLUSIVE} and blocks reads while it rewrites the view; "
            "use REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)"
        )


class RequireConcurrentPartitionDetach(Rule):
    """Detaching a partition without CONCURRENTLY blocks reads and writes of the whole table.

    `ALTER TABLE parent DETACH PARTITION part` takes ACCESS EXCLUSIVE on the partitioned table
    (and, from PostgreSQL 14, on the partition): every query on any partition waits.

    Safe alternative (PostgreSQL 14+): `DETACH PARTITION … CONCURRENTLY` takes SHARE UPDATE
    EXCLUSIVE on the parent and works in two transactions, so it cannot run inside a transaction
    block (lockgate runs such a file in autocommit) and is not allowed while the table has a
    DEFAULT partition. If it is interrupted, `DETACH PARTITION … FINALIZE` completes it. Before
    PostgreSQL 14 there is no concurrent form; detach in a quiet period, with the lock timeout
    lockgate sets.

    A partitioned table created earlier in the same migration is fine.
    """

    code = "LG105"
    name = "require-concurrent-partition-detach"
    summary = "DETACH PARTITION without CONCURRENTLY"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_DetachPartition"})
    squawk = ("require-concurrent-partition-detach",)
    bad = (Example("ALTER TABLE measurements DETACH PARTITION measurements_2023;"),)
    good = (
        Example("-- lockgate:no-transaction\n"
                "ALTER TABLE measurements DETACH PARTITION measurements_2023 CONCURRENTLY;"),
        Example("ALTER TABLE measurements DETACH PARTITION measurements_2023 FINALIZE;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table = existing_table(stmt, ctx)
        if table is None:
            return
        for cmd in alter_cmds(stmt.node):
            partition = cmd.get("def", {}).get("PartitionCmd", {})
            if cmd.get("subtype") != "AT_DetachPartition" or partition.get("concurrent"):
                continue
            blocks = (
                f"DETACH PARTITION {relation_key(partition.get('name', {}))} takes {ACCESS_EXCLUSIVE} on "
                f"{table} and blocks reads and writes of every partition"
            )
            if ctx.pg_version >= 14:
                yield f"{blocks}; use DETACH PARTITION … CONCURRENTLY in a -- lockgate:no-transaction migration"
            else:
                yield f"{blocks}; PostgreSQL {ctx.pg_version} has no concurrent form (PG14+): detach in a quiet period"
