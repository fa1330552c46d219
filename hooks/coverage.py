"""Static rollback coverage: does the down undo everything its up does?

Both files are read into the same vocabulary of effects (create, replace, alter, validate,
drop, rename, data) on named objects. The up's effects are netted first: something the up
creates and later drops, renames or alters is one net change, and everything inside an object
the up created (a default on a new column, a backfill of it, an index on a new table) goes away
with that object. Then every net change must be undone by the down:

- created objects must be dropped, directly or with something that contains them (a column
  with its table, a constraint or index with any of its columns, anything with its schema);
- replaced functions, views and triggers must be dropped or replaced again;
- altered defaults, NOT NULL, column types, sequence and table options must be altered again;
- renames must be renamed back; validated constraints dropped and re-added NOT VALID;
- dropped objects must be re-created; dropping a table, column, sequence or schema and
  changing rows lose data, so those are warnings (irreversible) rather than errors.

Statements inside DO blocks count (they run), and so do those in a function body the file calls;
other function bodies do not (they run when called). Row changes inside a `WITH` count.
Dynamic SQL (`EXECUTE format(...)`) cannot be read statically; `lockgate verify-rollback`
proves the round trip on a real database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from lockgate.hooks.rules.base import Finding, Severity
from lockgate.hooks.rules.context import name_key, relation_key
from lockgate.hooks.schemamodel import SchemaModel, SchemaView
from lockgate.hooks.sqlmodel import Node, SqlFile, Statement, alter_table_cmds, qualified_names, walk_nodes

COVERAGE = ("LG903", "rollback-coverage")
# id() of a Constraint or IndexStmt node -> the name PostgreSQL gives it (SchemaModel.apply).
Implicit = Mapping[int, str]
IRREVERSIBLE = ("LG906", "irreversible-change")


class Action(StrEnum):
    CREATE = "create"
    REPLACE = "replace"  # CREATE OR REPLACE: the object may have existed before
    ALTER = "alter"
    VALIDATE = "validate"
    DROP = "drop"
    RENAME = "rename"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class Obj:
    """A database object as migrations name it; `table` is set for objects that live on one."""

    kind: str  # "table", "column", "index", "constraint", "default", "not null", …
    name: str
    table: str = ""

    def __str__(self) -> str:
        if self.kind in _ASPECT_KINDS:
            return f"{self.kind} of {self.table}.{self.name}"
        if self.kind == "enum value":
            return f"value '{self.name}' of type {self.table}"
        if self.table:
            return f"{self.kind} {self.table}.{self.name}" if self.name else f"{self.kind} of {self.table}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class Effect:
    action: Action
    obj: Obj
    # Objects whose removal removes this one too (its table, its columns, its schema).
    within: tuple[Obj, ...] = ()
    # RENAME: the object under its name before the statement.
    old: Obj | None = None
    # DATA: the columns an UPDATE writes; empty when whole rows change.
    columns: tuple[str, ...] = ()
    verb: str = ""  # how the statement is named in messages, e.g. "UPDATE"

    @property
    def written(self) -> tuple[Obj, ...]:
        """DATA: the columns it fills, as objects."""
        return tuple(Obj("column", c, self.obj.name) for c in self.columns)


@dataclass(frozen=True, slots=True)
class Change:
    """A net change of the up, with the statement that made it."""

    effect: Effect
    stmt: Statement


# Column properties an ALTER TABLE … ALTER COLUMN changes; dropping the column drops them.
_COLUMN_ASPECTS = {
    "AT_ColumnDefault": "default",
    "AT_CookedColumnDefault": "default",
    "AT_SetNotNull": "NOT NULL",
    "AT_DropNotNull": "NOT NULL",
    "AT_AlterColumnType": "type",
    "AT_SetStatistics": "statistics target",
    "AT_SetStorage": "storage",
    "AT_SetCompression": "compression",
    "AT_SetOptions": "attribute options",
    "AT_ResetOptions": "attribute options",
    "AT_AddIdentity": "identity",
    "AT_SetIdentity": "identity",
    "AT_DropIdentity": "identity",
    "AT_SetExpression": "generation expression",
    "AT_DropExpression": "generation expression",
}
_ASPECT_KINDS = frozenset(_COLUMN_ASPECTS.values())

# Table-level settings; each pair of opposites shares one name so either undoes the other.
_TABLE_SETTINGS = {
    **dict.fromkeys(
        ("AT_EnableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_DisableTrig",
         "AT_EnableTrigAll", "AT_DisableTrigAll", "AT_EnableTrigUser", "AT_DisableTrigUser"),
        "trigger enablement",
    ),
    **dict.fromkeys(
        ("AT_EnableRowSecurity", "AT_DisableRowSecurity", "AT_ForceRowSecurity", "AT_NoForceRowSecurity"),
        "row level security",
    ),
    **dict.fromkeys(("AT_EnableRule", "AT_EnableAlwaysRule", "AT_EnableReplicaRule", "AT_DisableRule"),
                    "rule enablement"),
    **dict.fromkeys(("AT_SetLogged", "AT_SetUnLogged"), "persistence"),
    **dict.fromkeys(("AT_SetRelOptions", "AT_ResetRelOptions", "AT_ReplaceRelOptions"), "storage parameters"),
    **dict.fromkeys(("AT_ClusterOn", "AT_DropCluster"), "cluster index"),
    **dict.fromkeys(("AT_AddInherit", "AT_DropInherit"), "inheritance"),
    **dict.fromkeys(("AT_AttachPartition", "AT_DetachPartition"), "partitions"),
    **dict.fromkeys(("AT_AddOf", "AT_DropOf"), "type binding"),
    "AT_ReplicaIdentity": "replica identity",
    "AT_ChangeOwner": "owner",
    "AT_SetTableSpace": "tablespace",
    "AT_SetAccessMethod": "access method",
}

# Dropping these loses rows (or a sequence's position); re-creating them in the down brings
# back the shape, not the data.
_HOLDS_DATA = frozenset({"table", "column", "sequence", "schema", "materialized view"})

_DROP_KINDS = {
    "OBJECT_TABLE": "table",
    "OBJECT_FOREIGN_TABLE": "table",
    "OBJECT_VIEW": "view",
    "OBJECT_MATVIEW": "materialized view",
    "OBJECT_INDEX": "index",
    "OBJECT_SEQUENCE": "sequence",
    "OBJECT_TYPE": "type",
    "OBJECT_DOMAIN": "type",
    "OBJECT_SCHEMA": "schema",
    "OBJECT_EXTENSION": "extension",
    "OBJECT_FUNCTION": "function",
    "OBJECT_PROCEDURE": "function",
    "OBJECT_ROUTINE": "function",
    "OBJECT_AGGREGATE": "function",
    "OBJECT_TRIGGER": "trigger",
    "OBJECT_POLICY": "policy",
    "OBJECT_RULE": "rule",
}

_RENAME_KINDS = {**_DROP_KINDS, "OBJECT_COLUMN": "column", "OBJECT_TABCONSTRAINT": "constraint"}

# Objects named within their table (`DROP TRIGGER tr ON t`, `ALTER TABLE t RENAME COLUMN a TO b`).
_ON_TABLE = frozenset({"column", "constraint", "trigger", "policy", "rule"})

_ADDED = frozenset({"column", "constraint", "enum value"})


def _schema_of(name: str) -> tuple[Obj, ...]:
    schema, dot, _ = name.rpartition(".")
    return (Obj("schema", schema),) if dot else ()


def _on_table(table: str) -> tuple[Obj, ...]:
    return (Obj("table", table), *_schema_of(table))


def _index_on(table: str, name: str) -> Obj:
    """The index named `name` in `table`'s schema (indexes live beside their table)."""
    schema, dot, _ = table.rpartition(".")
    return Obj("index", f"{schema}.{name}" if dot else name)


def _column_refs(tree: Any) -> set[str]:
    return {qualified_names(ref.get("fields", []))[-1] for ref in walk_nodes(tree, "ColumnRef")
            if qualified_names(ref.get("fields", []))}


def _columns(table: str, names: set[str]) -> tuple[Obj, ...]:
    return tuple(Obj("column", c, table) for c in sorted(names))


# --- what one statement does -------------------------------------------------------------


def _relation(kind: str, range_var: Node, action: Action = Action.CREATE) -> list[Effect]:
    name = relation_key(range_var)
    return [Effect(action, Obj(kind, name), _schema_of(name))]


def _create_table(node: Node) -> list[Effect]:
    return _relation("table", node.get("relation", {}))


def _create_table_as(node: Node) -> list[Effect]:
    kind = "materialized view" if node.get("objtype") == "OBJECT_MATVIEW" else "table"
    return _relation(kind, node.get("into", {}).get("rel", {}))


def _create_view(node: Node) -> list[Effect]:
    return _relation("view", node.get("view", {}), Action.REPLACE if node.get("replace") else Action.CREATE)


def _create_sequence(node: Node) -> list[Effect]:
    return _relation("sequence", node.get("sequence", {}))


def _alter_sequence(node: Node) -> list[Effect]:
    name = relation_key(node.get("sequence", {}))
    return [Effect(Action.ALTER, Obj("sequence", name), _schema_of(name))]


def _create_index(node: Node, implicit: Implicit) -> list[Effect]:
    relation = node.get("relation", {})
    table = relation_key(relation)
    names = {p["IndexElem"]["name"] for p in node.get("indexParams", []) if p.get("IndexElem", {}).get("name")}
    names |= _column_refs(node.get("indexParams", []))
    index = relation_key({"schemaname": relation.get("schemaname"), "relname": node.get("idxname", "")})
    if not node.get("idxname") and id(node) in implicit:
        index = relation_key({"schemaname": relation.get("schemaname"), "relname": implicit[id(node)]})
    return [Effect(Action.CREATE, Obj("index", index),
                   (*_on_table(table), *_columns(table, names)))]


def _named_type(kind: str, names: list[Node]) -> list[Effect]:
    name = name_key(names)
    return [Effect(Action.CREATE, Obj(kind, name), _schema_of(name))]


def _create_enum(node: Node) -> list[Effect]:
    return _named_type("type", node.get("typeName", []))


def _create_domain(node: Node) -> list[Effect]:
    return _named_type("type", node.get("domainname", []))


def _create_range(node: Node) -> list[Effect]:
    return _named_type("type", node.get("typeName", []))


def _create_composite(node: Node) -> list[Effect]:
    return _relation("type", node.get("typevar", {}))


def _alter_enum(node: Node) -> list[Effect]:
    type_name = name_key(node.get("typeName", []))
    value = Obj("enum value", node.get("newVal", ""), type_name)
    within = (Obj("type", type_name), *_schema_of(type_name))
    if node.get("oldVal"):
        return [Effect(Action.RENAME, value, within, old=replace(value, name=node["oldVal"]))]
    return [Effect(Action.CREATE, value, within)]


def _create_function(node: Node) -> list[Effect]:
    name = name_key(node.get("funcname", []))
    return [Effect(Action.REPLACE if node.get("replace") else Action.CREATE, Obj("function", name), _schema_of(name))]


def _create_trigger(node: Node) -> list[Effect]:
    table = relation_key(node.get("relation", {}))
    action = Action.REPLACE if node.get("replace") else Action.CREATE
    return [Effect(action, Obj("trigger", node.get("trigname", ""), table), _on_table(table))]


def _create_policy(node: Node) -> list[Effect]:
    table = relation_key(node.get("table", {}))
    return [Effect(Action.CREATE, Obj("policy", node.get("policy_name", ""), table), _on_table(table))]


def _create_schema(node: Node) -> list[Effect]:
    return [Effect(Action.CREATE, Obj("schema", node.get("schemaname", "")))]


def _create_extension(node: Node) -> list[Effect]:
    return [Effect(Action.CREATE, Obj("extension", node.get("extname", "")))]


def _dropped(kind: str, item: Node) -> Obj:
    if "ObjectWithArgs" in item:
        return Obj(kind, name_key(item["ObjectWithArgs"].get("objname", [])))
    if "TypeName" in item:
        return Obj(kind, name_key(item["TypeName"].get("names", [])))
    if "String" in item:
        return Obj(kind, item["String"]["sval"])
    items = item.get("List", {}).get("items", [])
    if kind in _ON_TABLE:
        return Obj(kind, qualified_names(items)[-1], name_key(items[:-1]))
    return Obj(kind, name_key(items))


def _drop(node: Node) -> list[Effect]:
    kind = _DROP_KINDS.get(node.get("removeType", ""))
    if kind is None:
        return []
    effects = []
    for item in node.get("objects", []):
        obj = _dropped(kind, item)
        within = _on_table(obj.table) if obj.table else _schema_of(obj.name)
        effects.append(Effect(Action.DROP, obj, within))
    return effects


def _constraint(table: str, constraint: Node, implicit: Implicit) -> Effect:
    columns = {s["String"]["sval"] for key in ("keys", "fk_attrs", "including") for s in constraint.get(key, [])
               if "String" in s}
    columns |= _column_refs(constraint.get("raw_expr", {}))
    columns |= _column_refs(constraint.get("exclusions", []))
    name = constraint.get("conname") or implicit.get(id(constraint), "")
    return Effect(Action.CREATE, Obj("constraint", name, table),
                  (*_on_table(table), *_columns(table, columns)))


def _alter_table_cmd(table: str, cmd: Node, implicit: Implicit) -> list[Effect]:
    subtype = cmd.get("subtype", "")
    name = cmd.get("name", "")
    column = (Obj("column", name, table), *_on_table(table))
    if subtype == "AT_AddColumn":
        added = cmd.get("def", {}).get("ColumnDef", {}).get("colname", "")
        return [Effect(Action.CREATE, Obj("column", added, table), _on_table(table))]
    if subtype == "AT_DropColumn":
        return [Effect(Action.DROP, column[0], column[1:])]
    if subtype == "AT_AddConstraint":
        constraint = cmd.get("def", {}).get("Constraint", {})
        if constraint.get("indexname") and constraint.get("conname"):
            # ADD CONSTRAINT k … USING INDEX i renames the index i to k.
            renamed = Effect(Action.RENAME, _index_on(table, constraint["conname"]), _on_table(table),
                             old=_index_on(table, constraint["indexname"]))
            return [renamed, _constraint(table, constraint, implicit)]
        return [_constraint(table, constraint, implicit)]
    if subtype == "AT_DropConstraint":
        return [Effect(Action.DROP, Obj("constraint", name, table), _on_table(table))]
    if subtype == "AT_ValidateConstraint":
        return [Effect(Action.VALIDATE, Obj("constraint", name, table), _on_table(table))]
    if subtype == "AT_AlterConstraint":
        constraint = cmd.get("def", {}).get("ATAlterConstraint", cmd.get("def", {}).get("Constraint", {}))
        return [Effect(Action.ALTER, Obj("constraint", constraint.get("conname", name), table), _on_table(table))]
    if subtype in _COLUMN_ASPECTS:
        return [Effect(Action.ALTER, Obj(_COLUMN_ASPECTS[subtype], name, table), column)]
    setting = _TABLE_SETTINGS.get(subtype, subtype.removeprefix("AT_"))
    return [Effect(Action.ALTER, Obj(setting, name, table), _on_table(table))]


def _alter_table(node: Node, implicit: Implicit) -> list[Effect]:
    table = relation_key(node.get("relation", {}))
    return [e for cmd in alter_table_cmds(node) for e in _alter_table_cmd(table, cmd, implicit)]


def _rename(node: Node) -> list[Effect]:
    kind = _RENAME_KINDS.get(node.get("renameType", ""))
    if kind is None:
        return []
    new = node.get("newname", "")
    if kind in _ON_TABLE:
        table = relation_key(node.get("relation", {}))
        old_obj, new_obj = Obj(kind, node.get("subname", ""), table), Obj(kind, new, table)
        return [Effect(Action.RENAME, new_obj, _on_table(table), old=old_obj)]
    if "relation" in node:
        old = relation_key(node["relation"])
        schema = node["relation"].get("schemaname")
    else:
        old = _dropped(kind, node.get("object", {})).name
        schema = old.rpartition(".")[0] or None
    new_name = relation_key({"schemaname": schema, "relname": new})
    return [Effect(Action.RENAME, Obj(kind, new_name), _schema_of(new_name), old=Obj(kind, old))]


def _data(verb: str, table: str, columns: tuple[str, ...] = ()) -> Effect:
    return Effect(Action.DATA, Obj("table", table), _schema_of(table), columns=columns, verb=verb)


def _update(node: Node) -> list[Effect]:
    columns = tuple(t["ResTarget"]["name"] for t in node.get("targetList", []) if t.get("ResTarget", {}).get("name"))
    return [_data("UPDATE", relation_key(node.get("relation", {})), columns)]


def _insert(node: Node) -> list[Effect]:
    return [_data("INSERT", relation_key(node.get("relation", {})))]


def _delete(node: Node) -> list[Effect]:
    return [_data("DELETE", relation_key(node.get("relation", {})))]


def _merge(node: Node) -> list[Effect]:
    return [_data("MERGE", relation_key(node.get("relation", {})))]


def _truncate(node: Node) -> list[Effect]:
    return [_data("TRUNCATE", relation_key(r.get("RangeVar", {}))) for r in node.get("relations", [])]


_EFFECTS: dict[str, Callable[[Node], list[Effect]]] = {
    "CreateStmt": _create_table,
    "CreateForeignTableStmt": _create_table,
    "CreateTableAsStmt": _create_table_as,
    "ViewStmt": _create_view,
    "CreateSeqStmt": _create_sequence,
    "AlterSeqStmt": _alter_sequence,
    "CreateEnumStmt": _create_enum,
    "CreateDomainStmt": _create_domain,
    "CreateRangeStmt": _create_range,
    "CompositeTypeStmt": _create_composite,
    "AlterEnumStmt": _alter_enum,
    "CreateFunctionStmt": _create_function,
    "CreateTrigStmt": _create_trigger,
    "CreatePolicyStmt": _create_policy,
    "CreateSchemaStmt": _create_schema,
    "CreateExtensionStmt": _create_extension,
    "DropStmt": _drop,
    "RenameStmt": _rename,
    "UpdateStmt": _update,
    "InsertStmt": _insert,
    "DeleteStmt": _delete,
    "MergeStmt": _merge,
    "TruncateStmt": _truncate,
}


def _executed(sql: SqlFile) -> Iterator[Statement]:
    """Statements that run when the file runs: top-level ones, those inside DO blocks and those in
    the body of a function the file calls."""
    return (s for s in sql.walk() if sql.runs(s))


# Statements that may leave a constraint or index unnamed: PostgreSQL names it (see schemamodel).
_NAMING: dict[str, Callable[[Node, Implicit], list[Effect]]] = {
    "IndexStmt": _create_index,
    "AlterTableStmt": _alter_table,
}


def effects(stmt: Statement, implicit: Implicit | None = None) -> list[Effect]:
    """What `stmt` does; `implicit` holds the names PostgreSQL gives what it leaves unnamed."""
    naming = _NAMING.get(stmt.kind)
    if naming is not None:
        return naming(stmt.node, implicit or {})
    extract = _EFFECTS.get(stmt.kind)
    return (extract(stmt.node) if extract else []) + _in_with(stmt.node)


def _in_with(node: Node) -> list[Effect]:
    """Rows changed by the data-modifying statements of a `WITH`, which run like any other."""
    with_clause = node.get("withClause")
    if not with_clause:
        return []
    return [e for kind in _WITH_DML for n in walk_nodes(with_clause, kind) for e in _EFFECTS[kind](n)]


_WITH_DML = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


# --- the up's net changes ----------------------------------------------------------------


def net_changes(up: SqlFile, names: SchemaModel) -> list[Change]:
    """What the up leaves changed, with whatever lies inside its new objects folded away."""
    changes: list[Change | None] = []
    created: dict[Obj, int] = {}  # object created by the up -> its index in `changes`
    for stmt in _executed(up):
        for effect in effects(stmt, names.apply(stmt)):
            inside_new = any(o in created for o in effect.within) or (
                bool(effect.written) and all(o in created for o in effect.written)
            )
            if effect.action is Action.RENAME and effect.old in created:
                at = created.pop(effect.old)
                old_change = changes[at]
                assert old_change is not None
                changes[at] = replace(old_change, effect=replace(old_change.effect, obj=effect.obj))
                created[effect.obj] = at
            elif effect.action is Action.DROP and effect.obj in created:
                changes[created.pop(effect.obj)] = None
            elif inside_new or (effect.obj in created and effect.action is not Action.CREATE):
                continue
            else:
                if effect.action in (Action.CREATE, Action.REPLACE) and effect.obj.name:
                    created[effect.obj] = len(changes)
                changes.append(Change(effect, stmt))
    return [c for c in changes if c is not None]


# --- what the down undoes ----------------------------------------------------------------


@dataclass(slots=True)
class Undo:
    """Everything the down does, by the names objects had before the down ran."""

    removed: set[Obj] = field(default_factory=set)
    created: set[Obj] = field(default_factory=set)
    altered: set[Obj] = field(default_factory=set)
    renamed: set[tuple[Obj, Obj]] = field(default_factory=set)  # (name before the down, name after)
    data: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, down: SqlFile, names: SchemaModel) -> Undo:
        undo = cls()
        # Name now -> name before the down, so `RENAME t TO t_old; DROP TABLE t_old` drops t.
        origin: dict[Obj, Obj] = {}
        for stmt in _executed(down):
            for effect in effects(stmt, names.apply(stmt)):
                obj = origin.get(effect.obj, effect.obj)
                if effect.action is Action.RENAME and effect.old is not None:
                    start = origin.pop(effect.old, effect.old)
                    undo.renamed.add((start, effect.obj))
                    origin[effect.obj] = start
                elif effect.action in (Action.CREATE, Action.REPLACE):
                    undo.created.add(obj)
                elif effect.action is Action.DROP:
                    undo.removed.add(obj)
                    if obj.kind == "constraint":  # a PRIMARY KEY/UNIQUE/EXCLUDE takes its index with it
                        undo.removed.add(_index_on(obj.table, obj.name))
                elif effect.action in (Action.ALTER, Action.VALIDATE):
                    undo.altered.add(obj)
                elif effect.action is Action.DATA:
                    undo.data.add(obj.name)
        return undo

    def removes(self, effect: Effect) -> bool:
        return effect.obj in self.removed or any(o in self.removed for o in effect.within)


# --- verdicts ----------------------------------------------------------------------------


def _verdict(effect: Effect, undo: Undo, at: str) -> tuple[tuple[str, str], str] | None:
    """(rule, message) when the down does not undo `effect`; None when it does."""
    obj = effect.obj
    if effect.action is Action.CREATE:
        if undo.removes(effect):
            return None
        verb = "added" if obj.kind in _ADDED else "created"
        if obj.kind == "enum value":
            return COVERAGE, (f"rollback does not remove {obj} added at {at} (PostgreSQL cannot drop an enum "
                              f"value: re-create the type without it)")
        return COVERAGE, f"rollback does not drop {obj} {verb} at {at}"
    if effect.action is Action.REPLACE:
        if undo.removes(effect) or obj in undo.created:
            return None
        return COVERAGE, f"rollback does not drop or restore {obj} replaced at {at}"
    if effect.action is Action.ALTER:
        if undo.removes(effect) or obj in undo.altered:
            return None
        return COVERAGE, f"rollback does not restore the {obj} changed at {at}"
    if effect.action is Action.VALIDATE:
        if any(o in undo.removed for o in effect.within) or {obj} <= undo.removed & undo.created:
            return None
        return COVERAGE, (f"rollback does not return {obj} validated at {at} to NOT VALID "
                          f"(drop it and add it back NOT VALID)")
    if effect.action is Action.DROP:
        if obj in undo.created:
            return None
        if obj.kind in _HOLDS_DATA:
            return IRREVERSIBLE, (f"irreversible: {obj} dropped at {at} and its data with it; "
                                  f"the down does not re-create it")
        return COVERAGE, f"rollback does not re-create {obj} dropped at {at}"
    if effect.action is Action.RENAME:
        assert effect.old is not None
        if (obj, effect.old) in undo.renamed or (obj in undo.removed and effect.old in undo.created):
            return None
        return COVERAGE, f"rollback does not rename {obj} back to {effect.old.name} (renamed at {at})"
    # Action.DATA: undone by dropping what holds the rows or the columns written, or by writing rows back.
    written_away = bool(effect.written) and all(o in undo.removed for o in effect.written)
    if undo.removes(effect) or written_away or obj.name in undo.data:
        return None
    return IRREVERSIBLE, (f"irreversible: {effect.verb} of {obj.name} at {at} is not undone by the down "
                          f"(drop what it fills or write the reverse change)")


def _unnamed(sql: SqlFile) -> bool:
    """Whether the file adds a constraint or builds an index without naming it."""
    for stmt in _executed(sql):
        if stmt.kind == "IndexStmt" and not stmt.node.get("idxname"):
            return True
        if stmt.kind in _NAMING and any(not c.get("conname") for c in walk_nodes(stmt.node, "Constraint")):
            return True
    return False


def check_coverage(up: SqlFile, down: SqlFile, *, schema: SchemaView | None = None) -> list[Finding]:
    """LG903/LG906 findings, placed at the top of the down; the up's line is in the message.

    `-- lockgate:ignore LG906 -- reason` above an up statement, or `ignore-file` in either file,
    accepts that statement's change as it is.
    """
    # Unnamed constraints and indexes get PostgreSQL's names; numbering them past a name already
    # taken needs the names the set's earlier migrations used, read only when something is unnamed.
    names = schema.model().names() if schema is not None and (_unnamed(up) or _unnamed(down)) else SchemaModel()
    changes = net_changes(up, names)
    undo = Undo.of(down, names)
    file_ignored = up.ignored_rules | down.ignored_rules
    findings: list[Finding] = []
    for change in changes:
        stmt = change.stmt
        verdict = _verdict(change.effect, undo, f"up.sql:{stmt.line}")
        if verdict is None:
            continue
        (code, name), message = verdict
        ignored = file_ignored | stmt.ignored_rules | (stmt.parent.ignored_rules if stmt.parent else frozenset())
        if code in ignored or name in ignored:
            continue
        severity = Severity.WARNING if code == IRREVERSIBLE[0] else Severity.ERROR
        findings.append(Finding(down.path, 1, 1, code, name, severity, message))
    return findings
