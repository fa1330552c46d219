"""Breaking and destructive changes: data loss, and changes that break the running app's code.

A migration ships before (or with) the code that uses it, and the old version of the app keeps
running until every instance has been replaced. Dropping or renaming what that version reads
breaks it; dropping data cannot be rolled back by any down file. Objects the same migration
created are new to everyone, so dropping them (in the up, or in its down) is always fine.
"""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.hooks.locks import not_null_without_long_lock
from lockgate.hooks.rules._nodes import (
    ADDS_COLUMNS,
    SERIAL_TYPES,
    alter_cmds,
    base_type,
    column_defs,
    constraint_types,
    created_here,
    drop_targets,
    is_new_column,
    named_object,
    object_word,
    replaced_later,
    table_name,
)
from lockgate.hooks.rules.base import Example, Hit, Rule, Severity
from lockgate.hooks.rules.context import Context, name_key
from lockgate.hooks.sqlmodel import Node, Statement


def _existing_drops(node: Node, ctx: Context, object_types: frozenset[str]) -> list[str]:
    """Names (as written) of the existing objects of `object_types` a DROP statement drops."""
    object_type = node.get("removeType", "")
    if object_type not in object_types:
        return []
    return [written for key, written in drop_targets(node) if not created_here(ctx, object_type, key)]


class BanDropTable(Rule):
    """`DROP TABLE` deletes the table's data, and breaks every query of the running app on it.

    It takes ACCESS EXCLUSIVE on the table (and on tables whose foreign keys point at it). No down
    file brings the rows back: the rollback can re-create the table, empty.

    Safe alternative (expand/contract): first ship the app version that no longer uses the
    table; keep the data for a while (rename it to `…_deprecated` in a later migration, or take a
    dump); drop it in a migration of its own once nothing reads it, with
    `-- lockgate:ignore ban-drop-table -- <why it is safe now>` above the statement.

    Dropping a table the same migration created (typically in its down file) is not flagged.
    """

    code = "LG501"
    name = "ban-drop-table"
    summary = "DROP TABLE of an existing table: data loss, breaks running code"
    kinds = frozenset({"DropStmt"})
    squawk = ("ban-drop-table",)
    bad = (Example("DROP TABLE orders;"), Example("DROP TABLE IF EXISTS legacy_sessions;"))
    good = (Example("CREATE TABLE scratch (id bigint PRIMARY KEY);\nDROP TABLE scratch;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for table in _existing_drops(stmt.node, ctx, frozenset({"OBJECT_TABLE"})):
            yield (
                f"DROP TABLE {table} deletes its rows for good and breaks code still using it; "
                f"stop using it in a release first, then drop it in a migration of its own"
            )


class BanDropColumn(Rule):
    """`DROP COLUMN` deletes the column's data and breaks the running app's queries that name it.

    It takes ACCESS EXCLUSIVE on the table (briefly: the column is only marked dropped, no
    rewrite). Running code that selects, inserts or updates the column fails at once; ORMs that
    list every column on INSERT fail even if the code never reads it. A down file can add the
    column back, but not its values.

    Safe alternative (expand/contract): release the app version that no longer reads or writes
    the column (for ORMs, mark it ignored); then drop it in a later migration with
    `-- lockgate:ignore ban-drop-column -- <why it is safe now>`.

    Dropping a column the same migration added, or one of a table it created, is not flagged.
    """

    code = "LG502"
    name = "ban-drop-column"
    summary = "DROP COLUMN of an existing column: data loss, breaks running code"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_DropColumn"})
    squawk = ("ban-drop-column",)
    bad = (Example("ALTER TABLE customers DROP COLUMN email;"),)
    good = (Example("ALTER TABLE customers ADD COLUMN nickname text;\nALTER TABLE customers DROP COLUMN nickname;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        relation = stmt.node.get("relation", {})
        if stmt.node.get("objtype") == "OBJECT_TYPE":
            return  # ALTER TYPE … DROP ATTRIBUTE: a type, not a table's column
        for cmd in alter_cmds(stmt.node):
            column = cmd.get("name", "")
            if cmd.get("subtype") == "AT_DropColumn" and not is_new_column(ctx, relation, column):
                yield (
                    f"DROP COLUMN {table_name(relation)}.{column} deletes its data and breaks code that still "
                    f"reads or writes it; stop using it in a release first, then drop it"
                )


class BanDropSchema(Rule):
    """`DROP SCHEMA` removes a namespace; with CASCADE, every table, view and function in it.

    Without CASCADE it fails unless the schema is already empty; with CASCADE it is a `DROP
    TABLE` of every table in the schema at once, and nothing lists what went.

    Safe alternative: drop the schema's objects one by one in earlier migrations (each is then
    checked by the rules for that object), and drop the empty schema without CASCADE.
    A schema the same migration created is not flagged.
    """

    code = "LG503"
    name = "ban-drop-schema"
    summary = "DROP SCHEMA of an existing schema"
    kinds = frozenset({"DropStmt"})
    squawk = ("ban-drop-schema",)
    bad = (Example("DROP SCHEMA reporting CASCADE;"),)
    good = (Example("CREATE SCHEMA staging;\nDROP SCHEMA staging;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for schema in _existing_drops(stmt.node, ctx, frozenset({"OBJECT_SCHEMA"})):
            yield (
                f"DROP SCHEMA {schema} removes every object in it, with their data; drop its objects in "
                f"earlier migrations, then the empty schema"
            )


class BanDropDatabase(Rule):
    """`DROP DATABASE` has no place in a migration.

    A migration changes the database it runs in; dropping a database deletes all of its data,
    cannot run inside a transaction block, and cannot be undone by a down file. It is an
    operator's decision, made outside the migration set.
    """

    code = "LG504"
    name = "ban-drop-database"
    summary = "DROP DATABASE in a migration"
    kinds = frozenset({"DropdbStmt"})
    squawk = ("ban-drop-database",)
    bad = (Example("DROP DATABASE analytics;"),)
    good = (Example("CREATE SCHEMA analytics;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        yield f"DROP DATABASE {stmt.node.get('dbname', '')} deletes a whole database; that is no migration's job"


class BanTruncate(Rule):
    """`TRUNCATE` deletes every row at once, under ACCESS EXCLUSIVE, and no down file brings them back.

    It swaps in a new, empty file for the table and its indexes: instant, but it blocks every
    read and write of the table until the migration commits, and the rows are gone. With
    `CASCADE` it also empties every table whose foreign keys reference it, and their
    referencing tables in turn, without naming them.

    Safe alternative: if the rows really must go, delete them in key ranges with a batched
    `DELETE` (`-- lockgate:batch`), naming each table; never use CASCADE. Truncating a table the
    same migration created is not flagged. (squawk flags only the CASCADE form; a plain TRUNCATE
    of an existing table loses its rows just the same.)
    """

    code = "LG505"
    name = "ban-truncate"
    summary = "TRUNCATE of an existing table (CASCADE: and of every referencing table)"
    kinds = frozenset({"TruncateStmt"})
    squawk = ("ban-truncate-cascade",)
    bad = (Example("TRUNCATE sessions;"), Example("TRUNCATE customers CASCADE;"))
    good = (
        Example("CREATE TABLE import_buffer (line text);\nTRUNCATE import_buffer;"),
        Example("-- lockgate:batch size=5000 key=id\nDELETE FROM sessions;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        existing = [table_name(item.get("RangeVar", {})) for item in stmt.node.get("relations", [])
                    if not ctx.is_new(item.get("RangeVar", {}))]
        if not existing:
            return
        cascade = stmt.node.get("behavior") == "DROP_CASCADE"
        also = " and, by CASCADE, of every table referencing it" if cascade else ""
        yield (
            f"TRUNCATE deletes every row of {', '.join(existing)}{also} under ACCESS EXCLUSIVE; "
            f"delete in key ranges with -- lockgate:batch, naming each table"
        )


class BanDropCascade(Rule):
    """`DROP … CASCADE` also drops every object that depends on the target, without naming them.

    Views over a table, foreign keys pointing at it, columns of a dropped type, functions of a
    dropped extension: CASCADE removes them all, and the migration's text (and its review)
    shows none of them. A down file cannot re-create what it does not know was dropped.

    Safe alternative: drop the dependants explicitly first, each in its own statement, and drop
    the object without CASCADE: PostgreSQL then refuses if anything was missed. An object the
    same migration created has no dependants from before, so it is not flagged.
    """

    code = "LG506"
    name = "ban-drop-cascade"
    summary = "DROP … CASCADE of an existing object"
    kinds = frozenset({"DropStmt", "AlterTableStmt"})
    alter_commands = frozenset({"AT_DropColumn", "AT_DropConstraint"})
    bad = (Example("DROP VIEW customer_totals CASCADE;"), Example("ALTER TABLE orders DROP COLUMN note CASCADE;"))
    good = (Example("DROP VIEW customer_totals;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "DropStmt":
            if node.get("behavior") == "DROP_CASCADE":
                word = object_word(node.get("removeType", ""))
                for name in _existing_drops(node, ctx, frozenset({node.get("removeType", "")})):
                    yield (f"DROP {word.upper()} {name} CASCADE also drops everything depending on it, unnamed; "
                           f"drop the dependants explicitly and drop it without CASCADE")
            return
        relation = node.get("relation", {})
        for cmd in alter_cmds(node):
            if cmd.get("behavior") != "DROP_CASCADE" or ctx.is_new(relation):
                continue
            name, subtype = cmd.get("name", ""), cmd.get("subtype")
            dropped_old_column = subtype == "AT_DropColumn" and not is_new_column(ctx, relation, name)
            if dropped_old_column or subtype == "AT_DropConstraint":
                yield (f"CASCADE also drops the views and constraints depending on {name}, unnamed; "
                       f"drop them explicitly and drop it without CASCADE")


_RENAMED_OBJECTS = frozenset({
    "OBJECT_TABLE", "OBJECT_COLUMN", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE", "OBJECT_SEQUENCE",
    "OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE", "OBJECT_TYPE", "OBJECT_DOMAIN", "OBJECT_SCHEMA",
    "OBJECT_ATTRIBUTE", "OBJECT_DATABASE",
})


class BanRename(Rule):
    """Renaming a table, column, view, function, type or schema breaks the running app's queries.

    `RENAME` (and `SET SCHEMA`, which changes the qualified name) is catalog-only and quick
    (ACCESS EXCLUSIVE, briefly), but the app version still running addresses the object by its
    old name and fails from the moment the migration commits until every instance runs the new
    code. Renaming an enum value breaks code that writes the old value the same way.

    Safe alternative (expand/contract): add the new object beside the old one and keep both in
    step (for a table, a view with the old name over the renamed table; for a column, a new
    column filled by a batched UPDATE and kept in sync by the app or a trigger), switch the app
    over, then drop the old one in a later migration.

    Renaming what the same migration created is not flagged; nor are index and constraint
    renames, which no query names.
    """

    code = "LG507"
    name = "ban-rename"
    summary = "RENAME / SET SCHEMA of an existing table, column or other object code refers to"
    kinds = frozenset({"RenameStmt", "AlterObjectSchemaStmt", "AlterEnumStmt"})
    squawk = ("renaming-table", "renaming-column", "renaming-object", "ban-set-schema")
    bad = (
        Example("ALTER TABLE customers RENAME COLUMN email TO email_address;"),
        Example("ALTER TABLE orders RENAME TO purchases;"),
        Example("ALTER FUNCTION order_total(bigint) SET SCHEMA billing;"),
        Example("ALTER TYPE order_status RENAME VALUE 'shipped' TO 'sent';"),
    )
    good = (
        Example("CREATE TABLE tiers (id bigint PRIMARY KEY, label text);\n"
                "ALTER TABLE tiers RENAME COLUMN label TO name;"),
        Example("ALTER INDEX orders_customer_id_idx RENAME TO orders_by_customer_idx;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "AlterEnumStmt":
            if node.get("oldVal") and name_key(node.get("typeName", [])) not in ctx.new_types:
                yield (f"renaming enum value '{node['oldVal']}' breaks code still writing it; add the new value, "
                       f"move rows with a batched UPDATE, then stop using the old one")
            return
        object_type = node.get("renameType") or node.get("objectType", "")
        if object_type not in _RENAMED_OBJECTS:
            return
        key, written = named_object(node)
        if object_type in ("OBJECT_COLUMN", "OBJECT_ATTRIBUTE"):
            new = is_new_column(ctx, node.get("relation", {}), node.get("subname", "")) or key in ctx.new_types
            key, written = f"{key}.{node.get('subname', '')}", f"{written}.{node.get('subname', '')}"
        else:
            new = created_here(ctx, object_type, key)
        # Renaming back what this migration renamed (a down file restoring names) breaks nothing.
        if new or ("renamed", f"{object_type}:{key}") in ctx.new_objects:
            return
        action = f"SET SCHEMA {node['newschema']}" if "newschema" in node else f"RENAME TO {node.get('newname', '')}"
        yield (
            f"{action} of {object_word(object_type)} {written} breaks the running app's queries using the old "
            f"name; add the new name beside the old one, switch the app, then drop the old one"
        )


def _requires_value(column: Node) -> bool:
    """NOT NULL (or PRIMARY KEY) with nothing to fill existing rows: no default, identity or expression."""
    contypes = constraint_types(column)
    if not contypes & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"}:
        return False
    if contypes & {"CONSTR_IDENTITY", "CONSTR_GENERATED"} or base_type(column.get("typeName", {})) in SERIAL_TYPES:
        return False
    defaults = [c["Constraint"] for c in column.get("constraints", [])
                if c.get("Constraint", {}).get("contype") == "CONSTR_DEFAULT"]
    return not any(not d.get("raw_expr", {}).get("A_Const", {}).get("isnull") for d in defaults)


class AddingRequiredField(Rule):
    """`ADD COLUMN … NOT NULL` without a default fails on any table that has rows.

    PostgreSQL would have to put NULL in the new column of every existing row, which the NOT
    NULL forbids, so the statement fails with `column "…" contains null values` after taking
    ACCESS EXCLUSIVE; the migration works on an empty development database and fails in
    production. (`PRIMARY KEY` implies NOT NULL the same way.)

    Safe alternative: give the column a default. From PostgreSQL 11 a non-volatile default is
    stored in the catalog and fills existing rows without a rewrite:

        ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'bronze';

    For values computed per row: add the column nullable, backfill it with a batched UPDATE,
    add `CHECK (tier IS NOT NULL) NOT VALID`, `VALIDATE` it, then `SET NOT NULL` (PG12+ skips the
    scan thanks to the valid CHECK). On PostgreSQL 18, add `CONSTRAINT … NOT NULL tier NOT VALID`
    instead (no scan; new rows are checked at once) and `VALIDATE CONSTRAINT` it in a later
    migration (a scan under SHARE UPDATE EXCLUSIVE). A table the same migration created is empty
    and not flagged.
    """

    code = "LG508"
    name = "adding-required-field"
    summary = "ADD COLUMN … NOT NULL without a default on an existing table"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = ADDS_COLUMNS
    squawk = ("adding-required-field",)
    bad = (Example("ALTER TABLE customers ADD COLUMN tier text NOT NULL;"),)
    good = (
        Example("ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT 'bronze';"),
        Example("ALTER TABLE customers ADD COLUMN tier text;"),
        Example("ALTER TABLE customers ADD CONSTRAINT customers_tier_not_null NOT NULL tier NOT VALID;",
                pg_version=18, note="after the backfill: no scan, new rows are checked; VALIDATE CONSTRAINT "
                "in a later migration (before 18: a CHECK NOT VALID, VALIDATE, then SET NOT NULL)"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for column, relation in column_defs(stmt):
            if _requires_value(column) and not ctx.is_new(relation):
                name = column.get("colname", "")
                yield (
                    f"ADD COLUMN {name} NOT NULL without a default fails on a table with rows; add a DEFAULT "
                    f"(PG11+: no rewrite), or add it nullable, backfill, then "
                    f"{not_null_without_long_lock(name, ctx.pg_version)}"
                )


_DROPPABLE_OBJECTS = frozenset({
    "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_TYPE", "OBJECT_DOMAIN",
    "OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE", "OBJECT_EXTENSION", "OBJECT_FOREIGN_TABLE",
})


class BanDropObject(Rule):
    """Dropping a view, function, type, sequence, domain or extension breaks code that still uses it.

    The running app (or other database code: views, defaults, triggers) calls functions,
    selects from views, casts to types and calls `nextval` on sequences by name. A dropped
    sequence also loses its position, and a dropped extension takes its functions and types
    with it. (Without CASCADE PostgreSQL refuses the drop while other database objects
    depend on it; the app's own SQL it cannot see.)

    Safe alternative (expand/contract): release the app version that no longer uses the object,
    then drop it in a migration of its own with
    `-- lockgate:ignore ban-drop-object -- <why it is safe now>`. Objects the same migration
    created are not flagged, so a down file may drop what its up created.
    """

    code = "LG509"
    name = "ban-drop-object"
    summary = "DROP VIEW/FUNCTION/TYPE/SEQUENCE/DOMAIN/EXTENSION of an existing object"
    kinds = frozenset({"DropStmt"})
    squawk = (
        "ban-drop-view", "ban-drop-function", "ban-drop-type", "ban-drop-sequence", "ban-drop-domain",
        "ban-drop-extension",
    )
    bad = (Example("DROP VIEW customer_totals;"), Example("DROP FUNCTION order_total(bigint);"))
    good = (
        Example("CREATE TYPE mood AS ENUM ('ok', 'sad');\nDROP TYPE mood;"),
        Example("CREATE FUNCTION one() RETURNS int LANGUAGE sql AS 'SELECT 1';\nDROP FUNCTION one();"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        word = object_word(stmt.node.get("removeType", ""))
        for name in _existing_drops(stmt.node, ctx, _DROPPABLE_OBJECTS):
            if replaced_later(ctx, stmt, name):
                continue
            yield (
                f"DROP {word.upper()} {name} breaks code that still uses it; stop using it in a release first, "
                f"then drop it in a migration of its own"
            )


# The ALTER COLUMN commands `_fill_change` reads.
_FILL_COMMANDS = frozenset({"AT_ColumnDefault", "AT_DropExpression", "AT_DropIdentity", "AT_AddIdentity",
                            "AT_SetIdentity"})


class BreakingDefaultChange(Rule):
    """Changing how a column fills itself breaks INSERTs of the running app.

    These are catalog-only (ACCESS EXCLUSIVE, briefly), but they change which INSERTs succeed:

    - `DROP DEFAULT`, `DROP EXPRESSION`, `DROP IDENTITY`: inserts that leave the column out now
      get NULL, and fail if it is NOT NULL; a generated column stops following its expression.
    - `SET GENERATED ALWAYS`, `ADD GENERATED ALWAYS AS IDENTITY`: inserts that supply the value
      fail (`cannot insert a non-DEFAULT value`).
    - `ADD GENERATED … AS IDENTITY` on a column with rows: the new sequence starts at 1 and hands
      out ids that already exist.

    Safe alternative: change the app first so that it supplies (or stops supplying) the value,
    then change the column; for a new identity, `RESTART WITH` past the largest existing value
    in the same statement. Columns the same migration added are not flagged (the classic "add
    with a default to fill existing rows, then drop the default" stays clean).
    """

    code = "LG510"
    name = "breaking-default-change"
    severity = Severity.WARNING
    summary = "DROP DEFAULT / DROP EXPRESSION / identity change on an existing column"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = _FILL_COMMANDS
    squawk = ("ban-drop-default", "ban-drop-generated-expression", "ban-alter-identity")
    bad = (
        Example("ALTER TABLE orders ALTER COLUMN created_at DROP DEFAULT;"),
        Example("ALTER TABLE orders ALTER COLUMN id SET GENERATED ALWAYS;"),
    )
    good = (
        Example("ALTER TABLE orders ADD COLUMN source text NOT NULL DEFAULT 'web';\n"
                "ALTER TABLE orders ALTER COLUMN source DROP DEFAULT;"),
        Example("ALTER TABLE orders ALTER COLUMN id SET GENERATED BY DEFAULT;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        relation = stmt.node.get("relation", {})
        for cmd in alter_cmds(stmt.node):
            column = cmd.get("name", "")
            change = _fill_change(cmd)
            if change and not is_new_column(ctx, relation, column):
                yield (f"{change} on {table_name(relation)}.{column} changes which INSERTs of the running app "
                       f"succeed; change the app first")


def _fill_change(cmd: Node) -> str | None:
    """The breaking change an ALTER COLUMN command makes to how the column fills itself, if any."""
    subtype = cmd.get("subtype")
    if subtype == "AT_ColumnDefault" and "def" not in cmd:
        return "DROP DEFAULT"
    if subtype == "AT_DropExpression":
        return "DROP EXPRESSION"
    if subtype == "AT_DropIdentity":
        return "DROP IDENTITY"
    if subtype == "AT_AddIdentity":
        return "ADD GENERATED AS IDENTITY (its sequence starts at 1)"
    if subtype == "AT_SetIdentity":
        for item in cmd.get("def", {}).get("List", {}).get("items", []):
            option = item.get("DefElem", {})
            always = option.get("arg", {}).get("Integer", {}).get("ival") == ord("a")
            if option.get("defname") == "generated" and always:
                return "SET GENERATED ALWAYS"
    return None
