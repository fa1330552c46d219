"""Types and names that are cheap to choose right now and expensive to change later.

Changing a column's type later rewrites the table under ACCESS EXCLUSIVE (int→bigint,
char→text, timestamp→timestamptz outside UTC), so these rules look at columns being declared:
CREATE TABLE, ADD COLUMN and ALTER COLUMN … TYPE. They are warnings: a choice, not an outage.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

from pglast import parser

from lockgate.hooks.rules._nodes import (
    ADDS_COLUMNS,
    SERIAL_TYPES,
    TYPES_COLUMNS,
    alter_cmds,
    base_type,
    column_defs,
    constraint_types,
    is_key_name,
    typed_columns,
)
from lockgate.hooks.rules.base import UP_ONLY, Example, Hit, Rule, Severity
from lockgate.hooks.rules.context import Context
from lockgate.hooks.sqlmodel import Node, Statement, qualified_names, walk_nodes

_COLUMN_KINDS = frozenset({"CreateStmt", "CreateForeignTableStmt", "AlterTableStmt"})
_NARROW_INTS = {"int4": "int", "int2": "smallint", "serial": "serial", "serial4": "serial",
                "serial2": "smallserial", "smallserial": "smallserial"}


def _table_key_columns(stmt: Statement) -> set[str]:
    """Columns a table-level PRIMARY KEY / UNIQUE / FOREIGN KEY constraint names."""
    constraints = [e["Constraint"] for e in stmt.node.get("tableElts", []) if "Constraint" in e]
    if stmt.kind == "AlterTableStmt":
        constraints = [c["def"]["Constraint"] for c in alter_cmds(stmt.node) if "Constraint" in c.get("def", {})]
    names: set[str] = set()
    for constraint in constraints:
        for key in ("keys", "fk_attrs"):
            names.update(qualified_names(constraint.get(key, [])))
    return names


def _is_key_column(name: str, type_name: Node, column: Node | None, table_keys: set[str]) -> bool:
    """A column that identifies rows: named like a key (`order_ids` for an array), constrained as
    one, or fed by a sequence."""
    if is_key_name(name) or name in table_keys or ("arrayBounds" in type_name and is_key_name(name[:-1])):
        return True
    if column is None:
        return False
    key_constraints = {"CONSTR_PRIMARY", "CONSTR_FOREIGN", "CONSTR_IDENTITY", "CONSTR_UNIQUE"}
    return bool(constraint_types(column) & key_constraints) or base_type(column.get("typeName", {})) in SERIAL_TYPES


class PreferBigintForKeys(Rule):
    """An `int` or `smallint` key runs out: bigint costs 4 bytes a row and never does.

    A 4-byte `int` (or `serial`) key stops at 2,147,483,647 and a `smallint` at 32,767; inserts
    then fail with `integer out of range` (or `nextval: reached maximum value`). Keys and the
    foreign keys pointing at them grow with the table, and the fix, `ALTER COLUMN … TYPE bigint`,
    rewrites the table and every index on it under ACCESS EXCLUSIVE, on the largest table, at the
    worst moment.

    Safe alternative: declare keys `bigint` from the start:
    `id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY`, `customer_id bigint REFERENCES customers`.

    Only key columns are flagged: named `id`, `*_id`, `uuid`, `*_uuid` (`ids`, `*_ids` for
    arrays); or constrained as PRIMARY KEY, UNIQUE, REFERENCES or identity; or a serial type.
    squawk flags every int column; a count or a score in an `int` is a fine choice, so lockgate
    leaves it alone.
    """

    code = "LG701"
    name = "prefer-bigint-for-keys"
    severity = Severity.WARNING
    summary = "int/smallint/serial key column; use bigint"
    kinds = _COLUMN_KINDS
    alter_commands = TYPES_COLUMNS
    file_kinds = UP_ONLY
    squawk = ("prefer-bigint-over-int", "prefer-bigint-over-smallint")
    bad = (
        Example("CREATE TABLE invoices (id int PRIMARY KEY, amount_cents bigint);"),
        Example("ALTER TABLE orders ADD COLUMN coupon_id integer REFERENCES coupons (id);"),
    )
    good = (
        Example("CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, line_count int);"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table_keys: set[str] | None = None  # read only once a column is a narrow integer: most are not
        for name, type_name, column in typed_columns(stmt):
            narrow = _NARROW_INTS.get(base_type(type_name))
            if not narrow:
                continue
            if table_keys is None:
                table_keys = _table_key_columns(stmt)
            if _is_key_column(name, type_name, column, table_keys):
                bigger = "bigserial" if "serial" in narrow else "bigint"
                yield (f"key column {name} is {narrow} and runs out of values; declare it {bigger} now "
                       f"(changing it later rewrites the table)")


class PreferIdentity(Rule):
    """`serial` columns are a sequence glued on by a default; identity columns are the standard.

    `serial` creates a separately owned sequence and a `nextval()` default: permissions on the
    sequence must be granted apart from the table, `CREATE TABLE … (LIKE …)` copies the default
    pointing at the *old* sequence, and nothing stops inserts from bypassing it (which later
    collide with it). `ADD COLUMN … serial` on an existing table also rewrites it.

    Safe alternative: `id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY` (or `BY DEFAULT` when
    rows are sometimes inserted with explicit ids).
    """

    code = "LG702"
    name = "prefer-identity"
    severity = Severity.WARNING
    summary = "serial/bigserial column; use GENERATED … AS IDENTITY"
    kinds = _COLUMN_KINDS
    alter_commands = ADDS_COLUMNS
    file_kinds = UP_ONLY
    squawk = ("prefer-identity",)
    bad = (Example("CREATE TABLE invoices (id bigserial PRIMARY KEY);"),)
    good = (Example("CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for column, _ in column_defs(stmt):
            type_name = base_type(column.get("typeName", {}))
            if type_name in SERIAL_TYPES:
                yield (f"{column.get('colname', '')} is {type_name}; use bigint GENERATED ALWAYS AS IDENTITY "
                       f"(a sequence owned and permissioned with the table)")


class PreferTimestamptz(Rule):
    """`timestamp` (without time zone) stores wall-clock readings, not instants.

    The same value means different instants on servers, sessions or app instances with different
    `TimeZone` settings; comparisons with `now()` silently shift by the offset; daylight-saving
    changes produce duplicate and missing hours. Converting later (`TYPE timestamptz`) rewrites
    the table unless the session time zone is UTC (PG12+).

    Safe alternative: `timestamptz` (`timestamp with time zone`) stores an instant (UTC inside)
    and converts to the session's time zone only for display.
    """

    code = "LG703"
    name = "prefer-timestamptz"
    severity = Severity.WARNING
    summary = "timestamp without time zone column; use timestamptz"
    kinds = _COLUMN_KINDS
    alter_commands = TYPES_COLUMNS
    file_kinds = UP_ONLY
    squawk = ("prefer-timestamp-tz",)
    bad = (Example("ALTER TABLE orders ADD COLUMN shipped_at timestamp;"),)
    good = (Example("ALTER TABLE orders ADD COLUMN shipped_at timestamptz;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for name, type_name, _ in typed_columns(stmt):
            if base_type(type_name) == "timestamp":
                yield f"{name} is timestamp without time zone; use timestamptz, which stores an instant"


class PreferTextField(Rule):
    """`varchar(n)` puts a business rule in the column type, where changing it is DDL.

    A length limit in the type is enforced no better than a CHECK, but changing it is an
    `ALTER COLUMN … TYPE`: shortening rewrites the table under ACCESS EXCLUSIVE, and even the
    catalog-only lengthening takes ACCESS EXCLUSIVE. `varchar(n)` and `text` are stored the same
    way, so the limit buys no space or speed.

    Safe alternative: `text` plus a CHECK constraint, which can be replaced later with
    `ADD CONSTRAINT … NOT VALID` + `VALIDATE CONSTRAINT` without blocking writes:

        ALTER TABLE customers ADD COLUMN nickname text CHECK (length(nickname) <= 40);
    """

    code = "LG704"
    name = "prefer-text-field"
    severity = Severity.WARNING
    summary = "varchar(n) column; use text with a CHECK on its length"
    kinds = _COLUMN_KINDS
    alter_commands = TYPES_COLUMNS
    file_kinds = UP_ONLY
    squawk = ("prefer-text-field",)
    bad = (Example("CREATE TABLE coupons (id bigint PRIMARY KEY, code varchar(32));"),)
    good = (
        Example("CREATE TABLE coupons (id bigint PRIMARY KEY, code text CHECK (length(code) <= 32));"),
        Example("CREATE TABLE coupons (id bigint PRIMARY KEY, code varchar);"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for name, type_name, _ in typed_columns(stmt):
            if base_type(type_name) == "varchar" and type_name.get("typmods"):
                yield f"{name} is varchar(n); use text with CHECK (length({name}) <= n), changeable without a rewrite"


class BanCharField(Rule):
    """`char(n)` pads every value with spaces to n characters.

    `char(n)` (`character`, `bpchar`) stores `'ab'` as `'ab   '`, ignores trailing spaces in some
    comparisons and not in others (`LIKE`, `length()` on casts), and is no faster than `text` in
    PostgreSQL. Changing it later rewrites the table (`char → text` is not binary-coercible).

    Safe alternative: `text`, with a CHECK if the length matters.
    """

    code = "LG705"
    name = "ban-char-field"
    severity = Severity.WARNING
    summary = "char(n)/character column; use text"
    kinds = _COLUMN_KINDS
    alter_commands = TYPES_COLUMNS
    file_kinds = UP_ONLY
    squawk = ("ban-char-field",)
    bad = (Example("CREATE TABLE countries (code char(2) PRIMARY KEY);"),)
    good = (Example("CREATE TABLE countries (code text PRIMARY KEY CHECK (length(code) = 2));"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for name, type_name, _ in typed_columns(stmt):
            if base_type(type_name) == "bpchar":
                yield f"{name} is char(n), which pads values with spaces; use text (with a CHECK on the length)"


# NAMEDATALEN - 1: the parser truncates longer identifiers to this many bytes.
_MAX_IDENTIFIER = 63
_DECLARING_KINDS = frozenset({
    "CreateStmt", "CreateForeignTableStmt", "CreateTableAsStmt", "ViewStmt", "IndexStmt", "AlterTableStmt",
    "RenameStmt", "CreateSeqStmt", "CreateSchemaStmt", "CreateEnumStmt", "CreateDomainStmt", "CompositeTypeStmt",
    "CreateFunctionStmt", "CreateTrigStmt", "CreatePolicyStmt", "CreateStatsStmt", "DefineStmt", "RuleStmt",
    "AlterEnumStmt", "CreateRangeStmt",
})


# In ASCII text a name over 63 bytes is a run of 64 identifier characters or a quoted name as long:
# a search of the text rules a statement out faster than a walk of its tree.
_LONG_ASCII_NAME = re.compile(r'[\w$]{64,}|"(?:[^"]|""){64,}"', re.ASCII)


def _strings(tree: object) -> Iterator[str]:
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _strings(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _strings(item)
    elif isinstance(tree, str):
        yield tree


def _long_identifiers(text: str) -> Iterator[str]:
    """Identifiers in `text` longer than PostgreSQL keeps, as PostgreSQL reads them."""
    for token in parser.scan(text):
        if token.name != "IDENT":
            continue
        word = text[token.start : token.end + 1]
        name = word[1:-1].replace('""', '"') if word.startswith('"') else word.lower()
        if len(name.encode()) > _MAX_IDENTIFIER:
            yield name


class IdentifierTooLong(Rule):
    """Names longer than 63 bytes are cut to 63 bytes, silently.

    PostgreSQL truncates identifiers to NAMEDATALEN-1 = 63 bytes (a NOTICE at most): the object
    gets a different name than the migration says, two long names with the same first 63 bytes
    collide, and tools comparing the schema with the code see drift. Multi-byte characters count
    by bytes.

    Safe alternative: a name of at most 63 bytes.

    Only statements that give a name are checked (CREATE …, ADD COLUMN/CONSTRAINT, RENAME): a
    later reference to the long name (`DROP TABLE <long name>`) is truncated the same way and
    finds the object, so the finding belongs where the name was given.
    """

    code = "LG706"
    name = "identifier-too-long"
    severity = Severity.WARNING
    summary = "identifier over 63 bytes, silently truncated"
    kinds = _DECLARING_KINDS
    squawk = ("identifier-too-long",)
    bad = (Example("CREATE INDEX orders_by_customer_and_creation_time_for_the_monthly_report_dashboard_idx "
                   "ON orders (customer_id, created_at);"),)
    good = (Example("CREATE INDEX orders_customer_created_idx ON orders (customer_id, created_at);"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if stmt.text.isascii():
            if _LONG_ASCII_NAME.search(stmt.text) is None:
                return
        # The parse tree holds names already truncated, at a character boundary: only one of
        # 60-63 bytes (a character is at most 4) can have been longer.
        elif not any(len(s.encode()) > _MAX_IDENTIFIER - 4 for s in _strings(stmt.node)):
            return
        for name in dict.fromkeys(_long_identifiers(stmt.text)):
            cut = name.encode()[:_MAX_IDENTIFIER].decode(errors="ignore")
            yield f"identifier {name[:20]}… is {len(name.encode())} bytes; PostgreSQL cuts it to {cut!r}"


def _assigned_columns(stmt: Statement) -> Iterator[list[Node]]:
    """Each list of ResTargets whose names must be distinct (SET lists, INSERT column lists)."""
    node = stmt.node
    if stmt.kind == "UpdateStmt":
        yield node.get("targetList", [])
    elif stmt.kind == "InsertStmt":
        yield node.get("cols", [])
        yield node.get("onConflictClause", {}).get("targetList", [])
    elif stmt.kind == "MergeStmt":
        for clause in walk_nodes(node.get("mergeWhenClauses", []), "MergeWhenClause"):
            yield clause.get("targetList", [])


def _output_name(target: Node) -> str | None:
    """The column name a SELECT output gets, as PostgreSQL picks it; None when unsure."""
    if target.get("name"):
        return str(target["name"])
    value = target.get("val", {})
    if "ColumnRef" in value:
        fields = qualified_names(value["ColumnRef"].get("fields", []))
        return fields[-1] if fields else None
    if "FuncCall" in value:
        names = qualified_names(value["FuncCall"].get("funcname", []))
        return names[-1] if names else None
    if "A_Const" in value or "A_Expr" in value:
        return "?column?"
    return None


def _declared_columns(stmt: Statement) -> list[str]:
    """Column names of a table, view or SELECT INTO being created, in order."""
    node = stmt.node
    if stmt.kind in ("CreateStmt", "CreateForeignTableStmt"):
        return [c.get("colname", "") for c, _ in column_defs(stmt)]
    if stmt.kind == "ViewStmt" and node.get("aliases"):
        return qualified_names(node["aliases"])
    if stmt.kind == "CreateTableAsStmt" and node.get("into", {}).get("colNames"):
        return qualified_names(node["into"]["colNames"])
    if stmt.kind == "SelectStmt":
        # Inside PL/pgSQL, INTO names variables, not a new table.
        query = node if "intoClause" in node and stmt.parent is None else None
    else:
        query = node.get("query", {}).get("SelectStmt")
    if not query:
        return []
    names = [_output_name(t.get("ResTarget", {})) for t in query.get("targetList", [])]
    return [n for n in names if n is not None]


def _duplicates(names: list[str]) -> list[str]:
    if len(set(names)) == len(names):  # the usual case, without building a Counter
        return []
    return [name for name, count in Counter(names).items() if count > 1]


class BanDuplicateColumnAssignments(Rule):
    """The same column assigned twice, or declared twice, makes the statement fail.

    `UPDATE t SET a = 1, a = 2` and `INSERT INTO t (a, a)` fail with `multiple assignments to
    same column`; `CREATE TABLE t (a int, a text)` and a view with two outputs of one name fail
    with `column … specified more than once` (`SELECT 1, 2` names both `?column?`). The
    migration fails at apply time for something the linter can see now. Assigning different
    fields or elements of one column (`SET a.x = 1, a.y = 2`, `a[1] = …, a[2] = …`) is fine.

    Safe alternative: assign or declare each column once; give view outputs distinct aliases.
    """

    code = "LG707"
    name = "ban-duplicate-column-assignments"
    summary = "a column assigned or declared twice in one statement"
    kinds = frozenset({
        "UpdateStmt", "InsertStmt", "MergeStmt", "CreateStmt", "CreateForeignTableStmt", "ViewStmt",
        "CreateTableAsStmt", "SelectStmt",
    })
    file_kinds = frozenset({"up", "down", "validate"})
    squawk = ("ban-duplicate-column-assignments",)
    bad = (
        Example("UPDATE customers SET tier = 'gold', email = lower(email), tier = 'silver' WHERE id = 1;"),
        Example("CREATE VIEW order_summary AS SELECT count(*), count(*) FROM orders;"),
    )
    good = (
        Example("UPDATE customers SET tier = 'gold', email = lower(email) WHERE id = 1;"),
        Example("CREATE VIEW order_summary AS SELECT count(*) AS orders, count(DISTINCT customer_id) AS buyers "
                "FROM orders;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        for targets in _assigned_columns(stmt):
            columns = [t.get("ResTarget", {}) for t in targets]
            whole = [str(c.get("name", "")) for c in columns if not c.get("indirection")]
            partial = {str(c.get("name", "")) for c in columns if c.get("indirection")}
            for name in dict.fromkeys(_duplicates(whole) + [n for n in whole if n in partial]):
                yield f"column {name} is assigned more than once; the statement fails: multiple assignments"
        for name in dict.fromkeys(_duplicates(_declared_columns(stmt))):
            yield f"column {name} is declared more than once; the statement fails with 'specified more than once'"
