"""Which locks a statement takes, and whether it rewrites or scans a table.

Pure knowledge from PostgreSQL's docs, measured on real servers 10–18 (tests/test_lock_claims.py
re-checks every claim against the test server): the lint rules quote it in their messages and
`lockgate plan` prints it per statement. When a statement's effect depends on something the
statement does not say (the column's old type, the session TimeZone), the claim assumes the
worse case and its note says what would make it cheaper.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from lockgate.hooks.records import Record
from lockgate.hooks.rules.context import name_key, relation_key
from lockgate.hooks.sqlmodel import Node, Statement, alter_table_cmds, def_options, qualified_names, walk_nodes

ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
_BUILDS_INDEX = "builds an index (reads the whole table) while holding the lock"
# Weakest first; the position is the lock level PostgreSQL numbers from 1 (LOCK TABLE's `mode`).
MODES = (ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE,
         EXCLUSIVE, ACCESS_EXCLUSIVE)
# Relation name used when a statement locks every table of a kind (VACUUM, bare CLUSTER).
ALL_TABLES = "*"


class LockClaim(Record):
    """What a statement does to one relation: the strictest lock, a rewrite, a full scan."""

    __slots__ = ("mode", "note", "relation", "rewrite", "scan")

    def __init__(self, relation: str, mode: str, rewrite: bool = False, scan: bool = False, note: str = "") -> None:
        self.relation = relation
        self.mode = mode
        self.rewrite = rewrite
        self.scan = scan
        self.note = note


def strength(mode: str) -> int:
    return MODES.index(mode)


def blocks_reads(mode: str) -> bool:
    return mode == ACCESS_EXCLUSIVE


def blocks_writes(mode: str) -> bool:
    return strength(mode) >= strength(SHARE)


def what_it_blocks(mode: str) -> str:
    if blocks_reads(mode):
        return "blocks reads and writes"
    if blocks_writes(mode):
        return "blocks writes"
    return "blocks other DDL and VACUUM" if mode == SHARE_UPDATE_EXCLUSIVE else "blocks DDL"


# ---------------------------------------------------------------------------------------------
# Column types: which ALTER COLUMN TYPE changes skip the rewrite (postgres-locks.md §3).


class SqlType(Record):
    """A column type as the parser spells it: `varchar` with typmods (20,), `numeric` (10, 2)."""

    __slots__ = ("array", "mods", "name")

    def __init__(self, name: str, mods: tuple[int, ...] = (), array: bool = False) -> None:
        self.name = name
        self.mods = mods
        self.array = array

    @classmethod
    def of(cls, type_name: Node) -> SqlType:
        names = qualified_names(type_name.get("names", []))
        mods = tuple(
            m["A_Const"].get("ival", {}).get("ival", 0) for m in type_name.get("typmods", []) if "A_Const" in m
        )
        return cls(names[-1] if names else "", mods, bool(type_name.get("arrayBounds")))

    def __str__(self) -> str:
        mods = f"({','.join(map(str, self.mods))})" if self.mods else ""
        return f"{_SPELLING.get(self.name, self.name)}{mods}{'[]' if self.array else ''}"


# How users write the types the parser renames.
_SPELLING = {"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real", "float8": "double precision",
             "bpchar": "char", "bool": "boolean"}


class Rewrite(Enum):
    NO = "no"
    YES = "yes"
    UNLESS_COERCIBLE = "unless the old type is binary-coercible"
    UNLESS_UTC = "unless the session TimeZone is UTC"


_STRINGS = {"varchar", "text"}
_PRECISION = {"timestamp", "timestamptz", "time", "timetz", "interval"}
# (old, new) pairs that are binary-coercible, given no length limit is tightened.
_COERCIBLE = {("cidr", "inet"), ("xml", "text"), ("int4", "oid"), ("oid", "int4"), ("text", "varchar"),
              ("varchar", "text")}
# Targets some other type reaches without a rewrite, so an unknown old type may be fine.
_WIDENING_TARGETS = _STRINGS | _PRECISION | {"numeric", "varbit", "inet"}
_BUILTIN = _WIDENING_TARGETS | {
    "int2", "int4", "int8", "float4", "float8", "bool", "bpchar", "json", "jsonb", "bytea", "uuid", "date",
    "cidr", "xml", "oid", "bit", "money", "tsvector", "point",
}


_ALL_FIELDS = 32767  # interval's typmod for "every field", as the parser writes `interval(p)`


def _time_mods(t: SqlType) -> tuple[int, int]:
    """(interval fields, fractional precision) of a time type; no typmod is all fields, precision 6."""
    if t.name == "interval":
        fields = t.mods[0] if t.mods else _ALL_FIELDS
        return fields, t.mods[1] if len(t.mods) > 1 else 6
    return _ALL_FIELDS, t.mods[0] if t.mods else 6


def _widens(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """No length or precision limit is tightened: () is unlimited."""
    if not new:
        return True
    return bool(old) and all(n >= o for o, n in zip(old, new, strict=False))


def type_change(old: SqlType | None, new: SqlType, pg_version: int) -> Rewrite:
    """Does changing a column from `old` (None: not known) to `new` rewrite the table?"""
    if old is None:
        return Rewrite.UNLESS_COERCIBLE if new.name in _WIDENING_TARGETS or new.name not in _BUILTIN else Rewrite.YES
    if old.array != new.array:
        return Rewrite.YES
    if old.name == new.name:
        if old.name == "numeric":
            same_scale = (old.mods[1:] or (0,)) == (new.mods[1:] or (0,))
            return Rewrite.NO if not new.mods or (old.mods and same_scale and new.mods[0] >= old.mods[0]) \
                else Rewrite.YES
        if old.name in _PRECISION:
            (old_fields, old_precision), (new_fields, new_precision) = _time_mods(old), _time_mods(new)
            fields_kept = new_fields in (old_fields, _ALL_FIELDS)
            return Rewrite.NO if fields_kept and new_precision >= old_precision else Rewrite.YES
        # char(n) pads to its length, so changing n rewrites; varchar and varbit only check it.
        widened = _widens(old.mods, new.mods) and old.name != "bpchar"
        return Rewrite.NO if old.mods == new.mods or widened else Rewrite.YES
    if (old.name, new.name) in _COERCIBLE:
        return Rewrite.NO if not new.mods or _widens(old.mods, new.mods) else Rewrite.YES
    if {old.name, new.name} == {"timestamp", "timestamptz"}:
        return Rewrite.UNLESS_UTC if pg_version >= 12 and _widens(old.mods, new.mods) else Rewrite.YES
    return Rewrite.YES


def _using_is_plain(cmd: Node) -> bool:
    """`USING col` or `USING col::type` changes no contents; any other expression does."""
    using = cmd.get("def", {}).get("ColumnDef", {}).get("raw_default")
    if using is None:
        return True
    if "TypeCast" in using:
        using = using["TypeCast"].get("arg", {})
    fields = using.get("ColumnRef", {}).get("fields", [])
    return qualified_names(fields)[-1:] == [cmd.get("name")]


def column_type_change(cmd: Node, old: SqlType | None, pg_version: int) -> Rewrite:
    """The verdict for one `ALTER COLUMN … TYPE` subcommand."""
    column = cmd.get("def", {}).get("ColumnDef", {})
    if not _using_is_plain(cmd):
        return Rewrite.YES
    return type_change(old, SqlType.of(column.get("typeName", {})), pg_version)


# ---------------------------------------------------------------------------------------------
# Added columns: which defaults and column kinds rewrite the table.

# Built-in functions that are not volatile, so a default calling them is evaluated once (PG11+).
_STABLE_FUNCTIONS = {
    "now", "transaction_timestamp", "statement_timestamp", "current_date", "current_timestamp", "localtimestamp",
    "current_setting", "lower", "upper", "trim", "btrim", "replace", "substring", "left", "right", "format",
    "concat", "length", "md5", "encode", "decode", "abs", "round", "floor", "ceil", "coalesce", "nullif",
    "greatest", "least", "make_interval", "make_date", "make_timestamp", "make_timestamptz", "to_timestamp",
    "to_date", "to_char", "date_trunc", "date_part", "timezone", "age", "to_json", "to_jsonb", "json_build_object",
    "jsonb_build_object", "json_build_array", "jsonb_build_array", "array_fill",
}
_SERIAL = {"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"}


def volatile_calls(expr: Node) -> list[str]:
    """Functions in `expr` that are volatile or not known to be stable (user functions)."""
    names = (qualified_names(call.get("funcname", []))[-1] for call in walk_nodes(expr, "FuncCall"))
    return [name for name in names if name not in _STABLE_FUNCTIONS]


def column_default(column: Node) -> Node | None:
    """The DEFAULT expression of a column definition; None when absent or NULL."""
    for item in column.get("constraints", []):
        constraint = item.get("Constraint", {})
        if constraint.get("contype") == "CONSTR_DEFAULT":
            expr: Node = constraint.get("raw_expr", {})
            return None if expr.get("A_Const", {}).get("isnull") else expr
    return None


def column_constraints(column: Node, contype: str) -> list[Node]:
    """The column definition's inline constraints of one kind (CONSTR_CHECK, CONSTR_FOREIGN, …)."""
    return [c["Constraint"] for c in column.get("constraints", []) if c.get("Constraint", {}).get("contype") == contype]


def generated_rewrite(column: Node) -> str:
    """Why a serial, identity or stored generated column added to a table rewrites it, or ""."""
    type_key = name_key(column.get("typeName", {}).get("names", []))
    if type_key in _SERIAL:
        return f"{type_key} adds a nextval() default, which is volatile"
    if column_constraints(column, "CONSTR_IDENTITY"):
        return "an identity column fills every row from its sequence"
    if any(c.get("generated_kind") == "s" for c in column_constraints(column, "CONSTR_GENERATED")):
        return "a stored generated column is computed for every row"
    return ""


def default_rewrite(column: Node, pg_version: int) -> str:
    """Why the DEFAULT of a column added to a table rewrites it, or ""."""
    default = column_default(column)
    if default is None:
        return ""
    calls = volatile_calls(default)
    if calls:
        return f"DEFAULT {calls[0]}() is volatile (or not known to be stable), so every row gets its own value"
    if pg_version < 11:
        return f"on PostgreSQL {pg_version} any non-null DEFAULT is written into every row (PG11+ stores it once)"
    return ""


def not_null_without_long_lock(column: str, pg_version: int) -> str:
    """How to make an existing, filled column NOT NULL without a scan under ACCESS EXCLUSIVE.

    Proven per major by tests/test_lock_claims.py: PG18's NOT NULL … NOT VALID takes ACCESS
    EXCLUSIVE without a scan and VALIDATE scans under SHARE UPDATE EXCLUSIVE; before 18 only a
    CHECK can be added NOT VALID, and from 12 a valid one spares SET NOT NULL its scan.
    """
    if pg_version >= 18:
        return f"ADD CONSTRAINT … NOT NULL {column} NOT VALID, then VALIDATE CONSTRAINT in a later migration"
    if pg_version >= 12:
        return (f"add CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then "
                "SET NOT NULL (no scan) and drop the CHECK")
    return f"SET NOT NULL (PostgreSQL {pg_version} scans under {ACCESS_EXCLUSIVE} even with a valid CHECK)"


# ---------------------------------------------------------------------------------------------
# ALTER TABLE subcommands.

_SUE_SUBCOMMANDS = {"AT_SetStatistics", "AT_SetOptions", "AT_ResetOptions", "AT_ClusterOn", "AT_DropCluster",
                    "AT_ValidateConstraint", "AT_DetachPartitionFinalize"}
_SRE_SUBCOMMANDS = {
    "AT_EnableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_EnableTrigAll", "AT_EnableTrigUser",
    "AT_DisableTrig", "AT_DisableTrigAll", "AT_DisableTrigUser",
}
REWRITING_SUBCOMMANDS = {
    "AT_SetLogged": "SET LOGGED rewrites the table and its indexes",
    "AT_SetUnLogged": "SET UNLOGGED rewrites the table and its indexes",
    "AT_SetTableSpace": "SET TABLESPACE copies the table's data files (indexes stay where they are)",
    "AT_SetAccessMethod": "SET ACCESS METHOD rewrites the table when the access method changes",
    "AT_SetExpression": "SET EXPRESSION recomputes the generated column for every row",
}
# Storage parameters SHARE UPDATE EXCLUSIVE suffices for (docs, ALTER TABLE … SET).
_SUE_RELOPTIONS = {"fillfactor", "parallel_workers", "vacuum_index_cleanup", "vacuum_truncate", "toast_tuple_target",
                   "user_catalog_table", "log_autovacuum_min_duration"}


class _Claims:
    """Claims per relation, merged so the strictest mode wins."""

    def __init__(self) -> None:
        self.by_relation: dict[str, LockClaim] = {}

    def add(self, relation: str, mode: str, *, rewrite: bool = False, scan: bool = False, note: str = "") -> None:
        old = self.by_relation.get(relation)
        if old is None:
            self.by_relation[relation] = LockClaim(relation, mode, rewrite, scan, note)
            return
        notes = [n for n in (old.note, note) if n]
        self.by_relation[relation] = LockClaim(
            relation,
            max(old.mode, mode, key=strength),
            old.rewrite or rewrite,
            old.scan or scan,
            "; ".join(dict.fromkeys(notes)),
        )

    def result(self) -> list[LockClaim]:
        return list(self.by_relation.values())


def _reloptions_mode(cmd: Node) -> str:
    items = cmd.get("def", {}).get("List", {}).get("items", [])
    names = [(i["DefElem"].get("defnamespace"), i["DefElem"].get("defname", "")) for i in items if "DefElem" in i]
    ok = all(ns == "toast" or name in _SUE_RELOPTIONS or name.startswith("autovacuum_") for ns, name in names)
    return SHARE_UPDATE_EXCLUSIVE if ok else ACCESS_EXCLUSIVE


def _add_constraint(out: _Claims, table: str, constraint: Node, pg_version: int) -> None:
    contype = constraint.get("contype")
    validated = not constraint.get("skip_validation")
    if contype == "CONSTR_FOREIGN":
        parent = relation_key(constraint.get("pktable", {}))
        note = "" if validated else "NOT VALID: existing rows are not checked"
        out.add(table, SHARE_ROW_EXCLUSIVE, scan=validated, note=note)
        out.add(parent, SHARE_ROW_EXCLUSIVE, scan=validated, note=f"referenced by a foreign key of {table}")
    elif contype in ("CONSTR_CHECK", "CONSTR_NOTNULL"):
        # PG18's CHECK … NOT ENFORCED is never checked, so the parser marks it not validated too.
        enforced = contype == "CONSTR_NOTNULL" or constraint.get("is_enforced", False)
        skipped = "NOT VALID: no scan" if enforced else "NOT ENFORCED: never checked"
        out.add(table, ACCESS_EXCLUSIVE, scan=validated, note="" if validated else skipped)
    elif contype in ("CONSTR_UNIQUE", "CONSTR_PRIMARY") and constraint.get("indexname"):
        index = relation_key({"schemaname": None, "relname": constraint["indexname"]})
        out.add(table, ACCESS_EXCLUSIVE, note="a primary key over nullable columns also scans for NULLs"
                if contype == "CONSTR_PRIMARY" else "")
        out.add(index, SHARE_UPDATE_EXCLUSIVE if pg_version >= 12 else ACCESS_EXCLUSIVE)
    elif contype in ("CONSTR_UNIQUE", "CONSTR_PRIMARY", "CONSTR_EXCLUSION"):
        out.add(table, ACCESS_EXCLUSIVE, scan=True, note=_BUILDS_INDEX)
    else:
        out.add(table, ACCESS_EXCLUSIVE)


def _add_column(out: _Claims, table: str, column: Node, pg_version: int) -> None:
    why = generated_rewrite(column) or default_rewrite(column, pg_version)
    checks = bool(column_constraints(column, "CONSTR_CHECK"))
    type_names = qualified_names(column.get("typeName", {}).get("names", []))
    # A user type may be a domain with a CHECK, which rewrites; the statement cannot tell.
    maybe = "" if why or type_names[:1] == ["pg_catalog"] or set(type_names) & _BUILTIN else \
        f"rewrites if {'.'.join(type_names)} is a domain with a CHECK"
    out.add(table, ACCESS_EXCLUSIVE, rewrite=bool(why), scan=checks and not why, note=why or maybe)
    for kind in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
        if column_constraints(column, kind):
            out.add(table, ACCESS_EXCLUSIVE, scan=True, note=_BUILDS_INDEX)
    for fk in column_constraints(column, "CONSTR_FOREIGN"):
        checked = column_default(column) is not None
        out.add(relation_key(fk.get("pktable", {})), SHARE_ROW_EXCLUSIVE, scan=checked,
                note=f"referenced by the new column {table}.{column.get('colname')}")


def _partition(out: _Claims, table: str, subtype: str, cmd: Node, pg_version: int) -> None:
    partition_cmd = cmd.get("def", {}).get("PartitionCmd", {})
    partition = relation_key(partition_cmd.get("name", {}))
    if subtype == "AT_AttachPartition":
        out.add(table, SHARE_UPDATE_EXCLUSIVE if pg_version >= 12 else ACCESS_EXCLUSIVE)
        out.add(partition, ACCESS_EXCLUSIVE, scan=True,
                note="scanned to check the bound unless a valid CHECK constraint implies it")
    elif partition_cmd.get("concurrent"):
        out.add(table, SHARE_UPDATE_EXCLUSIVE, note="runs in two transactions; cannot run in a transaction block")
        out.add(partition, SHARE_UPDATE_EXCLUSIVE, note="the second transaction takes ACCESS EXCLUSIVE on it")
    else:
        out.add(table, ACCESS_EXCLUSIVE)
        out.add(partition, ACCESS_EXCLUSIVE if pg_version >= 14 else SHARE_UPDATE_EXCLUSIVE)


def _alter_table(out: _Claims, node: Node, pg_version: int, column_types: Mapping[tuple[str, str], SqlType]) -> None:
    table = relation_key(node.get("relation", {}))
    for cmd in alter_table_cmds(node):
        subtype = cmd.get("subtype", "")
        definition = cmd.get("def", {})
        if subtype == "AT_AddColumn":
            _add_column(out, table, definition.get("ColumnDef", {}), pg_version)
        elif subtype == "AT_AddConstraint":
            _add_constraint(out, table, definition.get("Constraint", {}), pg_version)
        elif subtype == "AT_AlterColumnType":
            verdict = column_type_change(cmd, column_types.get((table, cmd.get("name", ""))), pg_version)
            note = "" if verdict in (Rewrite.NO, Rewrite.YES) else f"rewrites {verdict.value}"
            out.add(table, ACCESS_EXCLUSIVE, rewrite=verdict is not Rewrite.NO, note=note)
        elif subtype == "AT_SetNotNull":
            out.add(table, ACCESS_EXCLUSIVE, scan=True,
                    note="no scan on PG12+ when a valid CHECK (col IS NOT NULL) exists" if pg_version >= 12 else "")
        elif subtype == "AT_ValidateConstraint":
            out.add(table, SHARE_UPDATE_EXCLUSIVE, scan=True,
                    note="a foreign key also takes ROW SHARE on the referenced table and scans it")
        elif subtype in ("AT_AttachPartition", "AT_DetachPartition"):
            _partition(out, table, subtype, cmd, pg_version)
        elif subtype in REWRITING_SUBCOMMANDS:
            out.add(table, ACCESS_EXCLUSIVE, rewrite=True, note=REWRITING_SUBCOMMANDS[subtype])
        elif subtype in ("AT_SetRelOptions", "AT_ResetRelOptions"):
            out.add(table, _reloptions_mode(cmd))
        elif subtype in _SUE_SUBCOMMANDS:
            out.add(table, SHARE_UPDATE_EXCLUSIVE)
        elif subtype in _SRE_SUBCOMMANDS:
            out.add(table, SHARE_ROW_EXCLUSIVE)
        else:
            out.add(table, ACCESS_EXCLUSIVE)


# ---------------------------------------------------------------------------------------------
# Other statements.


def vacuum_full(node: Node) -> bool:
    """VACUUM FULL or VACUUM (FULL [true])."""
    full = def_options(node, "options").get("full")
    if full is None:
        return False
    arg = full.get("arg", {})
    value = arg.get("String", {}).get("sval", arg.get("Integer", {}).get("ival", "true"))
    return str(value).lower() not in ("false", "off", "0", "no")


def _vacuum(out: _Claims, node: Node) -> None:
    relations = [relation_key(r["VacuumRelation"].get("relation", {})) for r in node.get("rels", [])
                 if "VacuumRelation" in r] or [ALL_TABLES]
    full = node.get("is_vacuumcmd") and vacuum_full(node)
    for relation in relations:
        if full:
            out.add(relation, ACCESS_EXCLUSIVE, rewrite=True, note="VACUUM FULL writes a new copy of the table")
        else:
            out.add(relation, SHARE_UPDATE_EXCLUSIVE)


def _reindex(out: _Claims, node: Node) -> None:
    concurrent = "concurrently" in def_options(node, "params")
    kind = node.get("kind", "")
    target = relation_key(node["relation"]) if "relation" in node else node.get("name") or ALL_TABLES
    index = kind == "REINDEX_OBJECT_INDEX"
    if concurrent:
        out.add(target, SHARE_UPDATE_EXCLUSIVE, scan=True, note="builds new indexes, then swaps them")
    elif index:
        out.add(target, ACCESS_EXCLUSIVE, rewrite=True, note="rebuilt; its table is locked SHARE (blocks writes)")
    elif kind == "REINDEX_OBJECT_TABLE":
        out.add(target, SHARE, scan=True, note="each of its indexes is locked ACCESS EXCLUSIVE while rebuilt")
    else:
        out.add(target, SHARE, scan=True, note="every table in it: SHARE, and ACCESS EXCLUSIVE on each index")


def _drop(out: _Claims, node: Node) -> None:
    kind = node.get("removeType", "")
    names = [item.get("List", {}).get("items", []) for item in node.get("objects", [])]
    if kind == "OBJECT_INDEX":
        mode = SHARE_UPDATE_EXCLUSIVE if node.get("concurrent") else ACCESS_EXCLUSIVE
        for name in names:
            out.add(name_key(name), mode, note=f"its table is locked {mode} too")
    elif kind in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE"):
        for name in names:
            out.add(name_key(name), ACCESS_EXCLUSIVE)
    elif kind in ("OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY"):
        for name in names:
            out.add(name_key(name[:-1]), ACCESS_EXCLUSIVE)


def _rename(out: _Claims, node: Node, pg_version: int) -> None:
    relation = node.get("relation")
    if relation is None:
        return
    if node.get("renameType") == "OBJECT_INDEX":
        out.add(relation_key(relation), SHARE_UPDATE_EXCLUSIVE if pg_version >= 12 else ACCESS_EXCLUSIVE)
    else:
        out.add(relation_key(relation), ACCESS_EXCLUSIVE)


def _create_index(out: _Claims, node: Node) -> None:
    relation = node.get("relation", {})
    if node.get("concurrent"):
        out.add(relation_key(relation), SHARE_UPDATE_EXCLUSIVE, scan=True,
                note="builds the index in two scans; cannot run in a transaction block")
    elif not relation.get("inh"):
        out.add(relation_key(relation), SHARE, note="ON ONLY a partitioned table: an invalid index, nothing built")
    else:
        out.add(relation_key(relation), SHARE, scan=True, note=_BUILDS_INDEX)


def _create_table(out: _Claims, node: Node) -> None:
    table = relation_key(node.get("relation", {}))
    out.add(table, ACCESS_EXCLUSIVE, note="a new table: nobody else can see it yet")
    for fk in walk_nodes(node.get("tableElts", []), "Constraint"):
        if fk.get("contype") == "CONSTR_FOREIGN":
            out.add(relation_key(fk.get("pktable", {})), SHARE_ROW_EXCLUSIVE, note=f"referenced by {table}")


def claims(stmt: Statement, pg_version: int, *,
           column_types: Mapping[tuple[str, str], SqlType] | None = None) -> list[LockClaim]:
    """The relation locks `stmt` takes on PostgreSQL `pg_version`, strictest per relation.

    `column_types` maps (table, column) to the column's current type when the caller knows it
    (the linter for columns added earlier in the migration, `plan` from the catalog); without
    it an ALTER COLUMN TYPE is assumed to rewrite unless its note says otherwise.
    """
    out = _Claims()
    node, kind = stmt.node, stmt.kind
    if kind == "AlterTableStmt":
        _alter_table(out, node, pg_version, column_types or {})
    elif kind == "IndexStmt":
        _create_index(out, node)
    elif kind == "DropStmt":
        _drop(out, node)
    elif kind == "ReindexStmt":
        _reindex(out, node)
    elif kind == "VacuumStmt":
        _vacuum(out, node)
    elif kind == "ClusterStmt":
        relation = relation_key(node["relation"]) if "relation" in node else ALL_TABLES
        out.add(relation, ACCESS_EXCLUSIVE, rewrite=True, note="CLUSTER writes a new copy of the table in index order")
    elif kind == "TruncateStmt":
        for rv in node.get("relations", []):
            out.add(relation_key(rv.get("RangeVar", {})), ACCESS_EXCLUSIVE, rewrite=True, note="all rows are gone")
    elif kind == "LockStmt":
        mode = MODES[node.get("mode", 8) - 1]
        for rv in node.get("relations", []):
            out.add(relation_key(rv.get("RangeVar", {})), mode)
    elif kind == "CreateTrigStmt":
        out.add(relation_key(node.get("relation", {})), SHARE_ROW_EXCLUSIVE)
    elif kind == "RenameStmt":
        _rename(out, node, pg_version)
    elif kind in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
        out.add(relation_key(node.get("relation", {})), ROW_EXCLUSIVE)
    elif kind == "SelectStmt" and node.get("lockingClause"):
        for rv in node.get("fromClause", []):
            if "RangeVar" in rv:
                out.add(relation_key(rv["RangeVar"]), ROW_SHARE)
    elif kind == "RefreshMatViewStmt":
        relation = relation_key(node.get("relation", {}))
        if node.get("concurrent"):
            out.add(relation, EXCLUSIVE, scan=True, note="reads go on; recomputes the query and applies the difference")
        else:
            out.add(relation, ACCESS_EXCLUSIVE, rewrite=True)
    elif kind == "CreateStmt":
        _create_table(out, node)
    elif kind == "CreateStatsStmt":
        for rv in node.get("relations", []):
            if "RangeVar" in rv:
                out.add(relation_key(rv["RangeVar"]), SHARE_UPDATE_EXCLUSIVE)
    elif kind == "CommentStmt" and node.get("objtype") == "OBJECT_TABLE":
        out.add(name_key(node.get("object", {}).get("List", {}).get("items", [])), SHARE_UPDATE_EXCLUSIVE)
    return out.result()


def claim_on(stmt: Statement, relation: str, pg_version: int, **kwargs: Any) -> LockClaim | None:
    """The claim on one relation, if `stmt` locks it."""
    return next((c for c in claims(stmt, pg_version, **kwargs) if c.relation == relation), None)
