"""Statements that write a new copy of an existing table while holding ACCESS EXCLUSIVE."""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.hooks.locks import (
    ACCESS_EXCLUSIVE,
    REWRITING_SUBCOMMANDS,
    Rewrite,
    SqlType,
    column_type_change,
    default_rewrite,
    generated_rewrite,
    vacuum_full,
)
from lockgate.hooks.rules._nodes import ADDS_COLUMNS, alter_cmds, existing_table
from lockgate.hooks.rules.base import Example, Hit, Rule
from lockgate.hooks.rules.context import Context, name_key, relation_key
from lockgate.hooks.sqlmodel import Node, Statement

_UTC = {"utc", "etc/utc", "zulu", "etc/zulu", "gmt", "etc/gmt"}


def _added_columns(stmt: Statement, ctx: Context) -> Iterator[tuple[str, Node]]:
    """(table, column definition) for each ADD COLUMN on a table that existed before the migration."""
    table = existing_table(stmt, ctx)
    if table is None:
        return
    for cmd in alter_cmds(stmt.node):
        if cmd.get("subtype") == "AT_AddColumn":
            yield table, cmd.get("def", {}).get("ColumnDef", {})


def _session_is_utc(ctx: Context) -> bool:
    """Whether this file set TimeZone to UTC before the current statement."""
    utc = False
    for stmt in ctx.previous:
        if stmt.kind == "VariableSetStmt" and stmt.node.get("name", "").lower() in ("timezone", "time zone"):
            values = [a.get("A_Const", {}).get("sval", {}).get("sval", "") for a in stmt.node.get("args", [])]
            utc = bool(values) and values[0].lower() in _UTC
    return utc


class ColumnTypeRewrite(Rule):
    """Changing a column's type rewrites the table unless the old type is binary-coercible.

    `ALTER COLUMN … TYPE` holds ACCESS EXCLUSIVE (no reads, no writes) and, unless PostgreSQL can
    reuse the stored bytes, writes a new copy of the table and rebuilds all its indexes.

    No rewrite (binary-coercible): `varchar(n)` → `varchar(m ≥ n)`, `varchar` or `text`;
    `text` ↔ `varchar`; `numeric(p,s)` → `numeric(p' ≥ p, s)` or `numeric`; `timestamp(p)` /
    `timestamptz(p)` / `time(p)` / `interval(p)` to a larger or no precision; `varbit(n)` →
    `varbit(m ≥ n)`; `cidr` → `inet`; `xml` → `text`. `timestamp` ↔ `timestamptz` skips the rewrite
    only on PostgreSQL 12+ and only when the session TimeZone is UTC (write
    `SET LOCAL TimeZone = 'UTC';` before it). Everything else rewrites: `int` → `bigint`,
    `varchar(20)` → `varchar(10)`, `text` → `varchar(n)`, `char(n)` changes, a numeric scale
    change, `json` → `jsonb`, any `USING` expression that changes the contents.

    lockgate knows the old type from the migration set: the columns earlier migrations created
    or changed, and those added earlier in the same migration. For a column made outside the
    set a change to a type some other type widens into (varchar, text, numeric, the time
    types, …) is reported as "rewrites unless" — if it is such a widening, say so with
    `-- lockgate:ignore LG301 -- widening varchar(100) to varchar(200)`.

    Safe alternative for a real change: add a new column of the new type, keep it filled (a
    trigger, or the application), backfill it in batches (`-- lockgate:batch`), then switch
    readers over and drop the old column in later migrations.
    """

    code = "LG301"
    name = "column-type-rewrite"
    summary = "ALTER COLUMN TYPE that rewrites the table"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_AlterColumnType"})
    squawk = ("changing-column-type",)
    bad = (
        Example("ALTER TABLE orders ALTER COLUMN id TYPE bigint;"),
        Example("ALTER TABLE orders ALTER COLUMN created_at TYPE timestamptz;", pg_version=11),
        Example("ALTER TABLE sessions ALTER COLUMN ip TYPE varchar(10);",
                before=("CREATE TABLE sessions (id bigint PRIMARY KEY, ip varchar(15));",),
                note="an earlier migration made it varchar(15): shortening it checks and rewrites every row"),
    )
    good = (
        Example("ALTER TABLE customers ADD COLUMN nickname varchar(20);\n"
                "ALTER TABLE customers ALTER COLUMN nickname TYPE varchar(40);"),
        Example("SET LOCAL TimeZone = 'UTC';\nALTER TABLE orders ALTER COLUMN created_at TYPE timestamptz;",
                note="PG12+ with TimeZone UTC: binary-coercible"),
        Example("ALTER TABLE sessions ALTER COLUMN ip TYPE text;",
                before=("CREATE TABLE sessions (id bigint PRIMARY KEY, ip varchar(15));",),
                note="an earlier migration made it varchar(15): varchar to text keeps the bytes"),
        Example("ALTER TABLE sessions ALTER COLUMN token TYPE varchar(64);",
                before=("CREATE TABLE sessions (id bigint PRIMARY KEY, token varchar(16));",),
                note="a longer limit is only checked, never rewritten"),
        Example("ALTER TABLE prices ALTER COLUMN amount TYPE numeric(12,2);",
                before=("CREATE TABLE prices (id bigint PRIMARY KEY, amount numeric(10,2));",),
                note="more precision, same scale"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table = existing_table(stmt, ctx)
        if table is None:
            return
        for cmd in alter_cmds(stmt.node):
            if cmd.get("subtype") != "AT_AlterColumnType":
                continue
            column = cmd.get("name", "")
            known = ctx.column_type(table, column)
            old = SqlType.of(known) if known is not None else None
            verdict = column_type_change(cmd, old, ctx.pg_version)
            if verdict is not Rewrite.YES and self._utc_timestamp_change(cmd, ctx):
                continue
            if verdict is not Rewrite.NO:
                yield self._message(table, column, cmd, old, verdict)

    @staticmethod
    def _utc_timestamp_change(cmd: Node, ctx: Context) -> bool:
        """timestamp <-> timestamptz on PG12+ after SET TimeZone = 'UTC': binary-coercible."""
        new = SqlType.of(cmd.get("def", {}).get("ColumnDef", {}).get("typeName", {}))
        return new.name in ("timestamp", "timestamptz") and ctx.pg_version >= 12 and _session_is_utc(ctx)

    @staticmethod
    def _message(table: str, column: str, cmd: Node, old: SqlType | None, verdict: Rewrite) -> str:
        new = SqlType.of(cmd.get("def", {}).get("ColumnDef", {}).get("typeName", {}))
        change = f"ALTER COLUMN {column} TYPE {new}" + (f" (from {old})" if old else "")
        rewrite = f"{change} rewrites {table} and its indexes under {ACCESS_EXCLUSIVE} (blocks reads and writes)"
        if verdict is Rewrite.UNLESS_UTC:
            return f"{rewrite} unless the session TimeZone is UTC: SET LOCAL TimeZone = 'UTC' before it"
        if verdict is Rewrite.UNLESS_COERCIBLE:
            return (f"{rewrite} unless the old type is binary-coercible to {new} (a widening); if it is, "
                    "-- lockgate:ignore LG301 -- and say from which type")
        return f"{rewrite}; add a new column, backfill it in batches and switch over in later migrations"


class VolatileDefault(Rule):
    """A column added with a volatile DEFAULT rewrites the table under ACCESS EXCLUSIVE.

    Since PostgreSQL 11, `ADD COLUMN … DEFAULT <constant or stable expression>` (`0`, `'x'`,
    `now()`, `'{}'::jsonb`) stores the value once in the catalog: no rewrite. A volatile default
    (`clock_timestamp()`, `random()`, `gen_random_uuid()`, `uuid_generate_v4()`, `nextval()`,
    or a function lockgate does not know to be stable) must be computed per row, so the table
    is rewritten while ACCESS EXCLUSIVE blocks reads and writes. Before PostgreSQL 11 every
    non-null default rewrites.

    Safe alternative: add the column without a default (or with a constant one), set the
    volatile default afterwards (it applies to new rows only), and backfill existing rows in
    batches:

        ALTER TABLE events ADD COLUMN public_id uuid;
        ALTER TABLE events ALTER COLUMN public_id SET DEFAULT gen_random_uuid();
        -- lockgate:batch size=10000
        UPDATE events SET public_id = gen_random_uuid() WHERE public_id IS NULL;
    """

    code = "LG302"
    name = "volatile-default"
    summary = "ADD COLUMN with a volatile DEFAULT (any DEFAULT before PG11)"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = ADDS_COLUMNS
    squawk = ("adding-field-with-default",)
    bad = (
        Example("ALTER TABLE events ADD COLUMN public_id uuid DEFAULT gen_random_uuid();"),
        Example("ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'bronze';", pg_version=10),
    )
    good = (
        Example("ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'bronze';"),
        Example("ALTER TABLE events ADD COLUMN seen_at timestamptz DEFAULT now();"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for table, column in _added_columns(stmt, ctx):
            why = default_rewrite(column, ctx.pg_version)
            if why:
                yield (
                    f"ADD COLUMN {column.get('colname', '')} rewrites {table} under {ACCESS_EXCLUSIVE}: {why}; "
                    "add it without the default, SET DEFAULT after, backfill in batches"
                )


class GeneratedColumnRewrite(Rule):
    """A serial, identity or stored generated column added to a table rewrites it.

    `ADD COLUMN id bigserial` (a `nextval()` default), `ADD COLUMN id bigint GENERATED … AS
    IDENTITY` and `ADD COLUMN total numeric GENERATED ALWAYS AS (…) STORED` fill a value into
    every existing row, so the table and its indexes are rewritten under ACCESS EXCLUSIVE
    (no reads, no writes). PostgreSQL 18's virtual generated columns (the default kind there)
    are computed on read and do not rewrite.

    Safe alternatives:
    - identity/serial: add a plain `bigint` column, backfill it in batches from a sequence,
      make it NOT NULL the safe way (LG204), then `ALTER COLUMN id ADD GENERATED BY DEFAULT AS
      IDENTITY` (a catalog change on a NOT NULL column; restart the sequence past the maximum);
    - stored generated: on PostgreSQL 18 use a virtual column; before, add a plain column kept
      up to date by a trigger and backfill it in batches.
    """

    code = "LG303"
    name = "generated-column-rewrite"
    summary = "ADD COLUMN serial / identity / stored generated on an existing table"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = ADDS_COLUMNS
    squawk = ("adding-serial-primary-key-field", "adding-field-with-default", "ban-alter-generated-expression")
    bad = (
        Example("ALTER TABLE events ADD COLUMN seq bigserial;"),
        Example("ALTER TABLE orders ADD COLUMN total_eur numeric GENERATED ALWAYS AS (total_cents / 100.0) STORED;"),
    )
    good = (
        Example("ALTER TABLE orders ADD COLUMN total_eur numeric GENERATED ALWAYS AS (total_cents / 100.0) VIRTUAL;",
                pg_version=18),
        Example("CREATE TABLE events (at timestamptz);\nALTER TABLE events ADD COLUMN seq bigserial;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for table, column in _added_columns(stmt, ctx):
            why = generated_rewrite(column)
            if why:
                yield (
                    f"ADD COLUMN {column.get('colname', '')} rewrites {table} and its indexes under "
                    f"{ACCESS_EXCLUSIVE}: {why}; add a plain column and backfill it in batches"
                )


class ConstrainedDomainColumn(Rule):
    """A column of a domain type with a CHECK, added to a table, rewrites it.

    Adding a column whose type is a domain with a CHECK constraint writes every row (and checks
    the constraint for it) under ACCESS EXCLUSIVE, even without a default: reads and writes wait
    for the whole rewrite.

    lockgate knows which domains have a CHECK when they are created (or given one) earlier in
    the same migration; a domain from an earlier migration is not known and not reported.

    Safe alternative: add the column with the domain's base type and put the domain's condition
    in a table `CHECK … NOT VALID`, validated in a later migration. Changing the column's type to
    the constrained domain later would rewrite the table too.
    """

    code = "LG304"
    name = "constrained-domain-column"
    summary = "ADD COLUMN of a domain type with a CHECK"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = ADDS_COLUMNS
    bad = (Example("CREATE DOMAIN tier AS text CHECK (VALUE IN ('bronze', 'silver', 'gold'));\n"
                   "ALTER TABLE customers ADD COLUMN tier tier;"),)
    good = (Example("CREATE DOMAIN tier AS text;\nALTER TABLE customers ADD COLUMN tier tier;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for table, column in _added_columns(stmt, ctx):
            domain = name_key(column.get("typeName", {}).get("names", []))
            if domain in ctx.constrained_domains:
                yield (
                    f"ADD COLUMN {column.get('colname', '')} of domain {domain} (which has a CHECK) rewrites {table} "
                    f"under {ACCESS_EXCLUSIVE}; add it with the base type and a CHECK … NOT VALID instead"
                )


class RewritingAlterTable(Rule):
    """ALTER TABLE forms that write a new copy of the table under ACCESS EXCLUSIVE.

    `SET LOGGED`, `SET UNLOGGED`, `SET ACCESS METHOD` (PG15+) and `ALTER COLUMN … SET
    EXPRESSION` (PG17+) rewrite the table and its indexes; `SET TABLESPACE` copies its data files.
    All hold ACCESS EXCLUSIVE for the whole copy: no reads, no writes.

    Safe alternatives: there is no online form. Build a new table the way you want it, copy
    the rows in batches while a trigger keeps it current, then swap the names in a short
    transaction; or run it in a maintenance window and say so with
    `-- lockgate:ignore LG305 -- reason`. For a generated column, add a new generated column (on
    PostgreSQL 18, a virtual one) instead of changing the expression. A table created earlier in
    the same migration is fine.
    """

    code = "LG305"
    name = "rewriting-alter-table"
    summary = "SET LOGGED/UNLOGGED, SET TABLESPACE, SET ACCESS METHOD, SET EXPRESSION"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset(REWRITING_SUBCOMMANDS)
    squawk = ("ban-alter-generated-expression",)
    bad = (
        Example("ALTER TABLE events SET LOGGED;"),
        Example("ALTER TABLE orders ALTER COLUMN total_eur SET EXPRESSION AS (total_cents / 100.0);", pg_version=17),
    )
    good = (Example("CREATE UNLOGGED TABLE staging (id bigint);\nALTER TABLE staging SET LOGGED;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table = existing_table(stmt, ctx)
        if table is None:
            return
        for cmd in alter_cmds(stmt.node):
            why = REWRITING_SUBCOMMANDS.get(cmd.get("subtype", ""))
            if why:
                yield f"ALTER TABLE {table}: {why}, under {ACCESS_EXCLUSIVE} (blocks reads and writes); no online form"


class VacuumFullOrCluster(Rule):
    """VACUUM FULL and CLUSTER write a new copy of the table under ACCESS EXCLUSIVE.

    Both hold ACCESS EXCLUSIVE for the whole copy (and index rebuild): no reads, no writes. A
    bare `CLUSTER` does it to every table clustered before. In a migration this is rarely what
    was meant: plain `VACUUM` (SHARE UPDATE EXCLUSIVE, blocks nobody) reclaims space for reuse.

    Safe alternative: on PostgreSQL 19+, `REPACK (CONCURRENTLY) tbl [USING INDEX idx]` takes the
    strong lock only for the final swap. Before that, the pg_repack or pg_squeeze extensions do
    the same from outside a migration. A table created earlier in the same migration is fine.
    """

    code = "LG306"
    name = "vacuum-full-or-cluster"
    summary = "VACUUM FULL or CLUSTER"
    kinds = frozenset({"VacuumStmt", "ClusterStmt"})
    squawk = ("prefer-repack",)
    bad = (Example("-- lockgate:no-transaction\nVACUUM FULL orders;"), Example("CLUSTER orders USING orders_pkey;"))
    good = (Example("-- lockgate:no-transaction\nVACUUM (ANALYZE) orders;"),
            Example("-- lockgate:no-transaction\nVACUUM (FULL false) orders;"))

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "VacuumStmt":
            if not node.get("is_vacuumcmd") or not vacuum_full(node):
                return
            relations = [r["VacuumRelation"].get("relation", {}) for r in node.get("rels", []) if "VacuumRelation" in r]
            what = "VACUUM FULL"
        else:
            relations = [node["relation"]] if "relation" in node else []
            what = "CLUSTER"
        if relations and all(ctx.is_new(r) for r in relations):
            return
        tables = ", ".join(relation_key(r) for r in relations) or "every clustered table"
        instead = "REPACK (CONCURRENTLY)" if ctx.pg_version >= 19 else "pg_repack or pg_squeeze outside the migration"
        yield f"{what} rewrites {tables} under {ACCESS_EXCLUSIVE} (blocks reads and writes); use {instead}"
