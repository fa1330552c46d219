"""Small readers of libpg_query parse-tree shapes shared by the rule families.

Kept apart from the rules so each rule module reads as rules; the leading underscore keeps
the linter's rule discovery from importing it as a family of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from lockgate.hooks.rules.context import Context, name_key, relation_key
from lockgate.hooks.sqlmodel import Node, Statement, alter_table_cmds, qualified_names, walk_nodes

# Columns whose names say they hold a key: `id`, `customer_id`, `uuid`, `order_uuid`.
_KEY_NAME = re.compile(r"^(?:.+_)?(?:id|uuid)$")
_P = ParamSpec("_P")
_R = TypeVar("_R")
# LIMIT (or FETCH FIRST) somewhere in a statement's text.
_LIMIT = re.compile(r"limit|fetch", re.IGNORECASE)
# Types that are an integer plus a sequence-fed default.
SERIAL_TYPES = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"})
# The ALTER TABLE subcommands `column_defs` and `typed_columns` read, for the `alter_commands` of their rules.
ADDS_COLUMNS = frozenset({"AT_AddColumn"})
TYPES_COLUMNS = frozenset({"AT_AddColumn", "AT_AlterColumnType"})


def per_statement(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Keep the answer of `fn` (of one or two arguments) for the objects it was last called with: the
    rules ask the same question of each statement in turn, and the context changes only between
    statements. Answers must be immutable."""
    last: list[Any] = [(None,), None]  # [arguments, answer]

    @wraps(fn)
    def remembered(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        before = last[0]
        if args[0] is not before[0] or args[-1] is not before[-1] or len(args) != len(before) or kwargs:
            last[0], last[1] = args, fn(*args, **kwargs)
        return cast(_R, last[1])

    return remembered


def is_key_name(column: str) -> bool:
    return bool(_KEY_NAME.match(column))


def table_name(range_var: Node) -> str:
    """The table as written (schema-qualified when it was), for messages."""
    schema = range_var.get("schemaname")
    name = str(range_var.get("relname", ""))
    return f"{schema}.{name}" if schema else name


@per_statement
def existing_table(stmt: Statement, ctx: Context) -> str | None:
    """The key of the table `stmt` (ALTER TABLE, REFRESH …) acts on, or None when this migration
    created it: a new table holds no rows and nobody else uses it yet, so locking it blocks nobody."""
    relation = stmt.node.get("relation", {})
    return None if ctx.is_new(relation) else relation_key(relation)


# The AlterTableCmd bodies of an ALTER TABLE, kept for the statement the rules ask of in turn.
alter_cmds = per_statement(alter_table_cmds)


def base_type(type_name: Node) -> str:
    """The type's own name without schema: "int4", "serial", "varchar" (for `pg_catalog.varchar`)."""
    names = qualified_names(type_name.get("names", []))
    return names[-1] if names else ""


def column_defs(stmt: Statement) -> Iterator[tuple[Node, Node]]:
    """(ColumnDef, table RangeVar) for every column a CREATE TABLE or ALTER TABLE ADD COLUMN declares."""
    node = stmt.node
    if stmt.kind in ("CreateStmt", "CreateForeignTableStmt"):
        base = node.get("base", {}) if stmt.kind == "CreateForeignTableStmt" else node
        relation = base.get("relation", {})
        for element in base.get("tableElts", []):
            if "ColumnDef" in element:
                yield element["ColumnDef"], relation
    elif stmt.kind == "AlterTableStmt":
        relation = node.get("relation", {})
        for cmd in alter_cmds(node):
            if cmd.get("subtype") == "AT_AddColumn" and "ColumnDef" in cmd.get("def", {}):
                yield cmd["def"]["ColumnDef"], relation


TypedColumn = tuple[str, Node, "Node | None"]


@per_statement
def typed_columns(stmt: Statement) -> tuple[TypedColumn, ...]:
    """(column, TypeName, ColumnDef or None) for declared columns and ALTER COLUMN … TYPE.

    Several rules ask for each statement in turn, so the last statement's answer is kept."""
    found: list[TypedColumn] = [(column.get("colname", ""), column["typeName"], column)
                                for column, _ in column_defs(stmt) if "typeName" in column]
    if stmt.kind == "AlterTableStmt":
        for cmd in alter_cmds(stmt.node):
            if cmd.get("subtype") == "AT_AlterColumnType":
                definition = cmd.get("def", {}).get("ColumnDef", {})
                if "typeName" in definition:
                    found.append((cmd.get("name", ""), definition["typeName"], None))
    return tuple(found)


def constraint_types(column: Node) -> set[str]:
    """The contype of every constraint written on a column: {"CONSTR_NOTNULL", …}."""
    return {c.get("Constraint", {}).get("contype", "") for c in column.get("constraints", [])}


def has_limit(tree: Node, text: str | None = None) -> bool:
    """Whether a sub-select anywhere in `tree` has a LIMIT (a hand-picked slice of rows). `text`, the
    statement's text when the caller has it, rules most statements out without walking the tree."""
    if text is not None and _LIMIT.search(text) is None:
        return False
    return any("limitCount" in select for select in walk_nodes(tree, "SelectStmt"))


def is_new_column(ctx: Context, range_var: Node, column: str) -> bool:
    return ctx.is_new(range_var) or (relation_key(range_var), column) in ctx.new_columns


def drop_targets(node: Node) -> Iterator[tuple[str, str]]:
    """(key the context tracks, name as written) for each object of a DROP statement."""
    kind = node.get("removeType", "")
    for item in node.get("objects", []):
        names = _names_of(item)
        if not names:
            continue
        written = ".".join(qualified_names(names))
        if kind in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE"):
            yield f"{name_key(names[:-1])}.{qualified_names(names[-1:])[0]}", written
        else:
            yield name_key(names), written


_OBJECT_KIND = {
    "OBJECT_FUNCTION": "function", "OBJECT_PROCEDURE": "function", "OBJECT_ROUTINE": "function",
    "OBJECT_SCHEMA": "schema", "OBJECT_EXTENSION": "extension",
    "OBJECT_TRIGGER": "trigger", "OBJECT_POLICY": "policy", "OBJECT_RULE": "rule",
}
_RELATION_KINDS = {
    "OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE", "OBJECT_INDEX",
}


def created_here(ctx: Context, object_type: str, key: str) -> bool:
    """Whether this migration created the object (so dropping or changing it breaks nothing)."""
    if object_type in _RELATION_KINDS:
        return key in ctx.new_relations or key in ctx.new_indexes
    if object_type in ("OBJECT_TYPE", "OBJECT_DOMAIN"):
        return key in ctx.new_types
    kind = _OBJECT_KIND.get(object_type)
    if kind is None:
        return False
    if kind in ("trigger", "policy", "rule") and key.rpartition(".")[0] in ctx.new_relations:
        return True
    return (kind, key) in ctx.new_objects


def object_word(object_type: str) -> str:
    """"OBJECT_MATVIEW" → "materialized view", for messages."""
    return {"OBJECT_MATVIEW": "materialized view", "OBJECT_FOREIGN_TABLE": "foreign table"}.get(
        object_type, object_type.removeprefix("OBJECT_").lower().replace("_", " ")
    )


def _names_of(item: Node) -> list[Node]:
    if "List" in item:
        return list(item["List"].get("items", []))
    if "TypeName" in item:
        return list(item["TypeName"].get("names", []))
    if "ObjectWithArgs" in item:
        return list(item["ObjectWithArgs"].get("objname", []))
    return [item] if "String" in item else []


def named_object(node: Node) -> tuple[str, str]:
    """(context key, name as written) of the object a RENAME / SET SCHEMA / ALTER … names."""
    if "relation" in node:
        return relation_key(node["relation"]), table_name(node["relation"])
    names = _names_of(node.get("object", {}))
    if names:
        return name_key(names), ".".join(qualified_names(names))
    subname = str(node.get("subname", ""))
    return subname, subname


def _declared_name(stmt: Statement) -> str | None:
    """The bare name a CREATE (or RENAME … TO) statement gives an object."""
    node = stmt.node
    if stmt.kind == "RenameStmt":
        return str(node.get("newname", ""))
    for key in ("funcname", "typeName", "domainname"):
        if stmt.kind != "AlterEnumStmt" and isinstance(node.get(key), list):
            names = qualified_names(node[key])
            return names[-1] if names else None
    for key in ("view", "sequence", "typevar"):
        if key in node:
            return str(node[key].get("relname", ""))
    if stmt.kind == "CreateTableAsStmt":
        return str(node.get("into", {}).get("rel", {}).get("relname", ""))
    if stmt.kind == "CreateExtensionStmt":
        return str(node.get("extname", ""))
    return None


def replaced_later(ctx: Context, stmt: Statement, written: str) -> bool:
    """Whether a later statement of the file re-creates the object `stmt` drops (DROP then CREATE
    of a view or function is how its definition changes incompatibly)."""
    if ctx.sql is None:
        return False
    name = written.rpartition(".")[2]
    return any(s.line > stmt.line and _declared_name(s) == name for s in ctx.sql.statements)


def table_dropped_later(ctx: Context, stmt: Statement, table: str) -> bool:
    """Whether a later top-level statement of the file drops the table `table` (by its key)."""
    if ctx.sql is None:
        return False
    return any(
        s.line > stmt.line and s.kind == "DropStmt" and s.node.get("removeType") == "OBJECT_TABLE"
        and any(key == table for key, _ in drop_targets(s.node))
        for s in ctx.sql.statements
    )
