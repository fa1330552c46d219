"""The schema a migration runs against, as the migrations before it in the set left it.

Each statement is judged better when the linter knows what the set already made: the type a
column had before `ALTER COLUMN … TYPE`, which columns are unique (a `DELETE … WHERE name = 'x'`
on a unique `name` is one row), which tables are new in the pending part of the change (empty,
so indexing them blocks nobody), and the names PostgreSQL gives constraints and indexes the
migrations did not name. The model replays the DDL of the up files (top level and DO bodies)
in version order; what it cannot follow (dynamic SQL, objects made outside the set) it does
not know, and the rules then keep their conservative verdict.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from lockgate.hooks.rules.context import name_key, relation_key
from lockgate.hooks.sqlmodel import Node, SqlFile, Statement, alter_table_cmds, qualified_names, walk_nodes

# PostgreSQL's NAMEDATALEN: identifiers hold at most 63 bytes.
NAMEDATALEN = 64
# What serial types are stored as.
_SERIAL_STORAGE = {"serial": "int4", "serial4": "int4", "bigserial": "int8", "serial8": "int8",
                   "smallserial": "int2", "serial2": "int2"}
# TableLikeClause options (CREATE_TABLE_LIKE_*) that copy what the model knows.
_LIKE_CONSTRAINTS, _LIKE_IDENTITY, _LIKE_INDEXES = 1 << 2, 1 << 5, 1 << 6
# Expressions PostgreSQL names an index column after (FigureColname), other than a function call.
_EXPRESSION_NAMES = {"CoalesceExpr": "coalesce", "CaseExpr": "case", "NullIfExpr": "nullif"}


def _clip(name: str, size: int) -> str:
    """The longest prefix of `name` of at most `size` UTF-8 bytes that does not split a character."""
    return name.encode()[:size].decode(errors="ignore")


def make_object_name(name1: str, name2: str | None, label: str | None) -> str:
    """`name1_name2_label` within 63 bytes, the longer of name1/name2 shortened first (makeObjectName)."""
    overhead = (1 if name2 is not None else 0) + (len(label.encode()) + 1 if label else 0)
    available = NAMEDATALEN - 1 - overhead
    size1, size2 = len(name1.encode()), len(name2.encode()) if name2 is not None else 0
    while size1 + size2 > available:
        if size1 > size2:
            size1 -= 1
        else:
            size2 -= 1
    parts = [_clip(name1, size1)]
    if name2 is not None:
        parts.append(_clip(name2, size2))
    if label:
        parts.append(label)
    return "_".join(parts)


def _in_schema(table: str, name: str) -> str:
    """The key of object `name` in the schema of `table` (a key as relation_key makes it)."""
    schema, dot, _ = table.rpartition(".")
    return f"{schema}.{name}" if dot else name


def _bare(key: str) -> str:
    return key.rpartition(".")[2]


def _expression_name(expr: Node) -> str:
    """The name PostgreSQL gives an index column on an expression: the function's, else `expr`."""
    if "FuncCall" in expr:
        names = qualified_names(expr["FuncCall"].get("funcname", []))
        return names[-1] if names else "expr"
    if "TypeCast" in expr:
        inner = _expression_name(expr["TypeCast"].get("arg", {}))
        if inner != "expr":
            return inner
        names = qualified_names(expr["TypeCast"].get("typeName", {}).get("names", []))
        return names[-1] if names else "expr"
    if "ColumnRef" in expr:
        names = qualified_names(expr["ColumnRef"].get("fields", []))
        return names[-1] if names else "expr"
    if "MinMaxExpr" in expr:
        return "greatest" if expr["MinMaxExpr"].get("op") == "IS_GREATEST" else "least"
    return next((name for kind, name in _EXPRESSION_NAMES.items() if kind in expr), "expr")


def index_column_names(params: list[Node]) -> list[str]:
    """The column names of an index (ChooseIndexColumnNames): repeats get a number appended."""
    result: list[str] = []
    for param in params:
        elem = param.get("IndexElem", {})
        original = elem.get("indexcolname") or elem.get("name") or _expression_name(elem.get("expr", {}))
        current, n = original, 0
        while current in result:
            n += 1
            current = _clip(original, NAMEDATALEN - 1 - len(str(n))) + str(n)
        result.append(current)
    return result


def _column_refs(tree: Node) -> list[str]:
    """Distinct column names referenced in an expression, in order."""
    found: list[str] = []
    for ref in walk_nodes(tree, "ColumnRef"):
        names = qualified_names(ref.get("fields", []))
        if names and names[-1] not in found:
            found.append(names[-1])
    return found


class Table:
    __slots__ = ("columns", "identity", "keys", "partitions")

    def __init__(self) -> None:
        self.columns: dict[str, Node] = {}  # column -> TypeName
        # Unique keys by the name of the constraint or index that makes them: name key -> columns.
        self.keys: dict[str, frozenset[str]] = {}
        # Identity columns: a copy INCLUDING IDENTITY gets a sequence of its own.
        self.identity: set[str] = set()
        # Partitions: an index built on this table is built on each of them too.
        self.partitions: list[str] = []


class _Named:
    """A constraint or index the model knows by name: its table, columns, and whether it is both."""

    __slots__ = ("columns", "constraint", "copy_as", "index", "table")

    def __init__(self, table: str, columns: frozenset[str], constraint: bool, index: bool,
                 copy_as: tuple[str | None, str] = (None, "idx")) -> None:
        self.table = table
        self.columns = columns
        self.constraint = constraint
        self.index = index
        # (name2, label): how PostgreSQL names its copy on another table (LIKE … INCLUDING INDEXES, a
        # partition), whatever this one is called; the label also tells a CHECK from a foreign key.
        self.copy_as = copy_as


class SchemaModel:
    __slots__ = ("by_table", "constraints", "filled", "named", "partition_of", "relations", "tables")

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        # Names in use per schema, as keys: relations (tables, indexes, sequences, views, composite
        # types share one namespace) and constraints, which PostgreSQL checks when it picks a name.
        self.relations: set[str] = set()
        self.constraints: set[str] = set()
        self.named: dict[str, _Named] = {}
        # The keys of `named` per table, so dropping a table or column does not scan every name.
        self.by_table: dict[str, set[str]] = {}
        # Tables a replayed migration put rows into (INSERT, COPY FROM, MERGE): not empty any more.
        self.filled: set[str] = set()
        self.partition_of: dict[str, str] = {}  # partition -> its parent

    # --- what the rules ask ------------------------------------------------------------------

    def column_type(self, table: str, column: str) -> Node | None:
        known = self.tables.get(table)
        return known.columns.get(column) if known else None

    def unique_keys(self, table: str) -> tuple[frozenset[str], ...]:
        known = self.tables.get(table)
        return tuple(known.keys.values()) if known else ()

    def names(self) -> SchemaModel:
        """A copy that knows the names in use (and what they name), for naming more objects."""
        copy = SchemaModel()
        copy.relations = set(self.relations)
        copy.constraints = set(self.constraints)
        copy.named = {k: _Named(v.table, v.columns, v.constraint, v.index, v.copy_as) for k, v in self.named.items()}
        copy.by_table = {table: set(keys) for table, keys in self.by_table.items()}
        return copy

    # --- replay ------------------------------------------------------------------------------

    def replay(self, sql: SqlFile) -> None:
        for stmt in sql.walk():
            if stmt.parent is None or stmt.parent.kind == "DoStmt":
                self.apply(stmt)

    def apply(self, stmt: Statement) -> dict[int, str]:
        """Replay one statement; returns the names PostgreSQL picks for what it leaves unnamed,
        by the id() of the Constraint or IndexStmt node."""
        chosen: dict[int, str] = {}
        handler = getattr(self, f"_on_{stmt.kind}", None)
        if handler is not None:
            handler(stmt.node, chosen)
        return chosen

    def choose(self, table: str, name2: str | None, label: str, *, relation: bool, constraint: bool) -> str:
        """The name PostgreSQL gives an unnamed object of `table` (ChooseRelationName / ChooseConstraintName):
        on a collision it appends 1, 2, … to the label."""
        base, n = _bare(table), 0
        while True:
            name = make_object_name(base, name2, f"{label}{n}" if n else label)
            key = _in_schema(table, name)
            if not ((relation and key in self.relations) or (constraint and key in self.constraints)):
                return name
            n += 1

    def _forget(self, table: str) -> None:
        self.tables.pop(table, None)
        self.relations.discard(table)
        self._detach(table)
        for key in list(self.by_table.get(table, ())):
            self._drop_named(key)

    def _drop_table(self, table: str) -> None:
        """Dropping a partitioned table drops its partitions."""
        for partition in list(self.tables[table].partitions if table in self.tables else ()):
            self._drop_table(partition)
        self._forget(table)

    def _detach(self, table: str) -> None:
        parent = self.tables.get(self.partition_of.pop(table, ""))
        if parent is not None and table in parent.partitions:
            parent.partitions.remove(table)

    def _drop_named(self, key: str) -> None:
        named = self.named.pop(key, None)
        if named is None:
            return
        self.constraints.discard(key)
        self.by_table.get(named.table, set()).discard(key)
        if named.index:
            self.relations.discard(key)
        owner = self.tables.get(named.table)
        if owner is not None:
            owner.keys.pop(key, None)

    def _add_named(self, table: str, name: str, columns: frozenset[str], *, constraint: bool, index: bool,
                   unique: bool, copy_as: tuple[str | None, str]) -> None:
        key = _in_schema(table, name)
        self.named[key] = _Named(table, columns, constraint, index, copy_as)
        self.by_table.setdefault(table, set()).add(key)
        if constraint:
            self.constraints.add(key)
        if index:
            self.relations.add(key)
        owner = self.tables.get(table)
        if unique and owner is not None and columns:
            owner.keys[key] = columns

    def _on_CreateStmt(self, node: Node, chosen: dict[int, str]) -> None:
        table = relation_key(node.get("relation", {}))
        self._forget(table)
        known = Table()
        self.tables[table] = known
        self.relations.add(table)
        self.filled.discard(table)
        # Inherited columns come first; a partition has its parent's columns, CHECKs, foreign keys and indexes.
        parents = [relation_key(r["RangeVar"]) for r in node.get("inhRelations", []) if "RangeVar" in r]
        partition = "partbound" in node
        for parent in parents:
            self._copy_columns(table, parent, identity=False)
            self._copy_constraints(table, parent)
        constraints: list[tuple[Node, str | None]] = []  # (Constraint, the column it is written on)
        likes: list[tuple[str, int]] = []  # (source table, TableLikeClause options)
        for element in node.get("tableElts", []):
            if "ColumnDef" in element:
                column = element["ColumnDef"]
                self._column(table, column)
                constraints += [(c["Constraint"], column.get("colname", "")) for c in column.get("constraints", [])
                                if "Constraint" in c]
            elif "Constraint" in element:
                constraints.append((element["Constraint"], None))
            elif "TableLikeClause" in element:
                like = element["TableLikeClause"]
                likes.append((relation_key(like.get("relation", {})), int(like.get("options", 0))))
                self._copy_columns(table, likes[-1][0], identity=bool(likes[-1][1] & _LIKE_IDENTITY))
        # PostgreSQL names CHECKs with the table, then clones a partition's indexes, then builds the
        # table's own indexes, then adds the FKs, and copies what LIKE includes last.
        order = {"CONSTR_CHECK": 0, "CONSTR_PRIMARY": 2, "CONSTR_UNIQUE": 2, "CONSTR_EXCLUSION": 2,
                 "CONSTR_FOREIGN": 3}
        ranked = sorted(constraints, key=lambda c: order.get(c[0].get("contype", ""), 4))
        for constraint, column in (c for c in ranked if order.get(c[0].get("contype", "")) == 0):
            self._constraint(table, constraint, column, chosen)
        for parent in parents if partition else ():
            if parent in self.tables:
                self.tables[parent].partitions.append(table)
                self.partition_of[table] = parent
            self._copy_indexes(table, parent)
        for constraint, column in (c for c in ranked if order.get(c[0].get("contype", "")) != 0):
            self._constraint(table, constraint, column, chosen)
        for source, options in likes:
            if options & _LIKE_CONSTRAINTS:
                self._copy_constraints(table, source, foreign=False)
            if options & _LIKE_INDEXES:
                self._copy_indexes(table, source)

    def _copy_columns(self, table: str, source: str, *, identity: bool) -> None:
        """The columns of `source` (LIKE, INHERITS, PARTITION OF), when the model knows it."""
        known = self.tables.get(source)
        if known is None:
            return
        self.tables[table].columns.update(known.columns)
        for column in known.identity if identity else ():
            self._sequence(table, column)
            self.tables[table].identity.add(column)

    def _copy_constraints(self, table: str, source: str, *, foreign: bool = True) -> None:
        """CHECKs (and foreign keys, for a child table) are copied under their own names."""
        for key in list(self.by_table.get(source, ())):
            label = self.named[key].copy_as[1]
            if label == "check" or (foreign and label == "fkey"):
                self.constraints.add(_in_schema(table, _bare(key)))

    def _copy_indexes(self, table: str, source: str) -> None:
        """Indexes of `source` rebuilt on `table`, named as PostgreSQL names new ones, in creation order."""
        owner = self.tables.get(source)
        for key, named in [(k, n) for k, n in self.named.items() if n.table == source and n.index]:
            self._add_index(table, None, named.columns, constraint=named.constraint,
                            unique=owner is not None and key in owner.keys, copy_as=named.copy_as)

    def _add_index(self, table: str, given: str | None, columns: frozenset[str], *, constraint: bool,
                   unique: bool, copy_as: tuple[str | None, str]) -> str:
        """An index (or the index of a key) on `table`, then its copy on each partition; returns its name."""
        name = given or self.choose(table, *copy_as, relation=True, constraint=constraint)
        self._add_named(table, name, columns, constraint=constraint, index=True, unique=unique, copy_as=copy_as)
        for partition in list(self.tables[table].partitions if table in self.tables else ()):
            self._add_index(partition, None, columns, constraint=constraint, unique=unique, copy_as=copy_as)
        return name

    def _constraint(self, table: str, constraint: Node, column: str | None, chosen: dict[int, str]) -> None:
        contype = constraint.get("contype", "")
        keys = qualified_names(constraint.get("keys", [])) or ([column] if column else [])
        given = constraint.get("conname")
        if contype == "CONSTR_PRIMARY":
            name = self._add_index(table, given, frozenset(keys), constraint=True, unique=True,
                                   copy_as=(None, "pkey"))
        elif contype == "CONSTR_UNIQUE":
            if constraint.get("indexname"):
                self._attach_index(table, constraint, chosen)
                return
            name = self._add_index(table, given, frozenset(keys), constraint=True, unique=True,
                                   copy_as=("_".join(keys), "key"))
        elif contype == "CONSTR_EXCLUSION":
            columns = index_column_names([e["List"]["items"][0] for e in constraint.get("exclusions", [])
                                          if "List" in e and e["List"].get("items")])
            name = self._add_index(table, given, frozenset(), constraint=True, unique=False,
                                   copy_as=("_".join(columns), "excl"))
        elif contype == "CONSTR_CHECK":
            refs = _column_refs(constraint.get("raw_expr", {}))
            name = given or self.choose(table, refs[0] if len(refs) == 1 else None, "check",
                                        relation=False, constraint=True)
            self._add_named(table, name, frozenset(refs), constraint=True, index=False, unique=False,
                            copy_as=(None, "check"))
        elif contype == "CONSTR_FOREIGN":
            columns = qualified_names(constraint.get("fk_attrs", [])) or ([column] if column else [])
            name = given or self.choose(table, "_".join(columns), "fkey", relation=False, constraint=True)
            self._add_named(table, name, frozenset(columns), constraint=True, index=False, unique=False,
                            copy_as=(None, "fkey"))
        else:
            return
        if not given:
            chosen[id(constraint)] = name

    def _attach_index(self, table: str, constraint: Node, chosen: dict[int, str]) -> None:
        """ADD CONSTRAINT … USING INDEX i: the index becomes the constraint, renamed to it when named."""
        index = _in_schema(table, constraint["indexname"])
        named = self.named.get(index)
        columns = named.columns if named else frozenset()
        unique = index in self.tables.get(table, Table()).keys
        self._drop_named(index)
        name = constraint.get("conname") or constraint["indexname"]
        name2 = named.copy_as[0] if named else None
        copy_as = (None, "pkey") if constraint.get("contype") == "CONSTR_PRIMARY" else (name2, "key")
        self._add_named(table, name, columns, constraint=True, index=True, unique=unique, copy_as=copy_as)

    def _on_AlterTableStmt(self, node: Node, chosen: dict[int, str]) -> None:
        if node.get("objtype", "OBJECT_TABLE") != "OBJECT_TABLE":
            return
        table = relation_key(node.get("relation", {}))
        known = self.tables.get(table)
        for cmd in alter_table_cmds(node):
            subtype = cmd.get("subtype")
            definition = cmd.get("def", {})
            name = cmd.get("name", "")
            if subtype == "AT_DetachPartition":
                self._detach(relation_key(definition.get("PartitionCmd", {}).get("name", {})))
            elif subtype == "AT_AddConstraint":
                self._constraint(table, definition.get("Constraint", {}), None, chosen)
            elif subtype == "AT_DropConstraint":
                self._drop_named(_in_schema(table, name))
            elif known is None:
                continue
            elif subtype == "AT_AddColumn" and "ColumnDef" in definition:
                column = definition["ColumnDef"]
                self._column(table, column)
                for c in column.get("constraints", []):
                    if "Constraint" in c:
                        self._constraint(table, c["Constraint"], column.get("colname", ""), chosen)
            elif subtype == "AT_DropColumn":
                known.columns.pop(name, None)
                for key in [k for k in self.by_table.get(table, ()) if name in self.named[k].columns]:
                    self._drop_named(key)
            elif subtype == "AT_AlterColumnType":
                type_name = definition.get("ColumnDef", {}).get("typeName")
                if type_name is None:
                    known.columns.pop(name, None)
                else:
                    known.columns[name] = type_name
            elif subtype == "AT_AddIdentity":
                self._sequence(table, name)
                known.identity.add(name)
            elif subtype in ("AT_AddInherit", "AT_AttachPartition", "AT_AddOf"):
                # Columns and keys now come from elsewhere too: stop claiming to know them.
                self._forget(table)
                return

    def _column(self, table: str, column: Node) -> None:
        """A column of a new table or ADD COLUMN: its type (a serial is stored as an integer) and its sequence."""
        name = column.get("colname", "")
        type_name = dict(column.get("typeName", {}))
        names = qualified_names(type_name.get("names", []))
        if names and names[-1] in _SERIAL_STORAGE:
            self._sequence(table, name)
            type_name["names"] = [{"String": {"sval": _SERIAL_STORAGE[names[-1]]}}]
        elif any(c.get("Constraint", {}).get("contype") == "CONSTR_IDENTITY" for c in column.get("constraints", [])):
            self._sequence(table, name)
            self.tables[table].identity.add(name)
        self.tables[table].columns[name] = type_name

    def _sequence(self, table: str, column: str) -> None:
        """The sequence behind a serial or identity column takes a name in the relations' namespace."""
        self.relations.add(_in_schema(table, self.choose(table, column, "seq", relation=True, constraint=False)))

    def _on_IndexStmt(self, node: Node, chosen: dict[int, str]) -> None:
        table = relation_key(node.get("relation", {}))
        params = node.get("indexParams", [])
        plain = [p["IndexElem"]["name"] for p in params if p.get("IndexElem", {}).get("name")]
        # A partial or expression index is not a key of the whole table.
        unique = bool(node.get("unique")) and not node.get("whereClause") and len(plain) == len(params)
        given = node.get("idxname")
        name = self._add_index(table, given, frozenset(plain), constraint=False, unique=unique,
                               copy_as=("_".join(index_column_names(params)), "idx"))
        if not given:
            chosen[id(node)] = name

    def _on_DropStmt(self, node: Node, chosen: dict[int, str]) -> None:
        kind = node.get("removeType", "")
        for item in node.get("objects", []):
            names = item.get("List", {}).get("items", []) if "List" in item else [item]
            key = name_key(names)
            if kind in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
                self._drop_table(key)
            elif kind == "OBJECT_INDEX":
                self._drop_named(key)
            elif kind in ("OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE"):
                self.relations.discard(key)

    def _on_RenameStmt(self, node: Node, chosen: dict[int, str]) -> None:
        kind = node.get("renameType", "")
        new = node.get("newname", "")
        if kind in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
            old = relation_key(node.get("relation", {}))
            moved = _in_schema(old, new)
            self.relations.discard(old)
            self.relations.add(moved)
            if old in self.tables:
                self.tables[moved] = self.tables.pop(old)
            self._rename_partition(old, moved)
            for key in self.by_table.pop(old, set()):
                self.named[key].table = moved
                self.by_table.setdefault(moved, set()).add(key)
        elif kind == "OBJECT_COLUMN":
            table = relation_key(node.get("relation", {}))
            old_column = node.get("subname", "")
            known = self.tables.get(table)
            if known is not None and old_column in known.columns:
                known.columns[new] = known.columns.pop(old_column)
            for key in self.by_table.get(table, ()):
                named = self.named[key]
                if old_column in named.columns:
                    named.columns = (named.columns - {old_column}) | {new}
                    if known is not None and key in known.keys:
                        known.keys[key] = named.columns
        elif kind == "OBJECT_TABCONSTRAINT":
            table = relation_key(node.get("relation", {}))
            self._rename_named(_in_schema(table, node.get("subname", "")), _in_schema(table, new))
        elif kind == "OBJECT_INDEX":
            old = relation_key(node.get("relation", {}))
            self._rename_named(old, _in_schema(old, new))
        elif kind in ("OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE"):
            old = relation_key(node.get("relation", {}))
            self.relations.discard(old)
            self.relations.add(_in_schema(old, new))

    def _rename_partition(self, old: str, new: str) -> None:
        parent = self.partition_of.pop(old, None)
        if parent is not None:
            self.partition_of[new] = parent
            siblings = self.tables[parent].partitions if parent in self.tables else []
            siblings[:] = [new if p == old else p for p in siblings]
        for partition in self.tables[new].partitions if new in self.tables else ():
            self.partition_of[partition] = new

    def _rename_named(self, old: str, new: str) -> None:
        """Renaming a constraint renames its index and the other way round."""
        named = self.named.get(old)
        if named is None:
            return
        owner = self.tables.get(named.table)
        unique = owner is not None and old in owner.keys
        self._drop_named(old)
        self._add_named(named.table, _bare(new), named.columns, constraint=named.constraint, index=named.index,
                        unique=unique, copy_as=named.copy_as)

    def _on_AlterObjectSchemaStmt(self, node: Node, chosen: dict[int, str]) -> None:
        if "relation" in node:
            self._forget(relation_key(node["relation"]))

    def _on_InsertStmt(self, node: Node, chosen: dict[int, str]) -> None:
        self.filled.add(relation_key(node.get("relation", {})))

    def _on_MergeStmt(self, node: Node, chosen: dict[int, str]) -> None:
        self.filled.add(relation_key(node.get("relation", {})))

    def _on_CopyStmt(self, node: Node, chosen: dict[int, str]) -> None:
        if node.get("is_from"):
            self.filled.add(relation_key(node.get("relation", {})))

    def _on_CreateTableAsStmt(self, node: Node, chosen: dict[int, str]) -> None:
        into = node.get("into", {})
        into = into.get("IntoClause", into)
        self.relations.add(relation_key(into.get("rel", {})))

    def _on_ViewStmt(self, node: Node, chosen: dict[int, str]) -> None:
        self.relations.add(relation_key(node.get("view", {})))

    def _on_CreateSeqStmt(self, node: Node, chosen: dict[int, str]) -> None:
        self.relations.add(relation_key(node.get("sequence", {})))

    def _on_CompositeTypeStmt(self, node: Node, chosen: dict[int, str]) -> None:
        self.relations.add(relation_key(node.get("typevar", {})))


Load = Callable[[], "SqlFile | None"]


class SetHistory:
    """The up files of a migration set in apply order, replayed into one model as far as asked.

    Nothing is replayed until a rule asks: most migrations never do, and replaying is a tenth of
    their lint. The first question loads and replays the ups before it; from then on, as lint and
    approval walk the set in version order, the model moves forward, fed the ups the linter parsed
    anyway (`seen`). A question about an earlier migration replays from the start.
    """

    def __init__(self, ups: Sequence[tuple[str, Load]], pending: Callable[[], frozenset[str]]) -> None:
        self._ups = list(ups)
        self._numbers = [int(v) for v, _ in self._ups]  # in apply order, for bisect
        self._pending_of = pending
        self._pending: frozenset[str] | None = None
        self._model = SchemaModel()
        self._next = 0
        self._asked = False  # whether a rule has asked for the model yet
        self._pending_tables: dict[str, frozenset[str]] = {}
        self._pending_model = SchemaModel()
        self._pending_next = 0

    def _index(self, version: str) -> int:
        """How many ups come before `version`."""
        return bisect_left(self._numbers, int(version))

    def seen(self, version: str, sql: SqlFile) -> None:
        """The linter parsed the up of `version`: once the model is in use and has reached it, replay
        it now, so walking the rest of the set in order parses no file twice."""
        at = self._index(version)
        if self._asked and at == self._next and at < len(self._numbers) and self._numbers[at] == int(version):
            self._model.replay(sql)
            self._next = at + 1

    @property
    def pending(self) -> frozenset[str]:
        if self._pending is None:
            self._pending = self._pending_of()
        return self._pending

    def _ups_before(self, version: str, start: int = 0,
                    only: frozenset[str] | None = None) -> Iterator[tuple[str, SqlFile]]:
        for v, load in self._ups[start:self._index(version)]:
            sql = load() if only is None or v in only else None
            if sql is not None:
                yield v, sql

    def model_before(self, version: str) -> SchemaModel:
        self._asked = True
        stop = self._index(version)
        if stop < self._next:
            self._model, self._next = SchemaModel(), 0
        for _, sql in self._ups_before(version, self._next):
            self._model.replay(sql)
        self._next = stop
        return self._model

    def pending_tables_before(self, version: str) -> frozenset[str]:
        """Tables created by pending migrations before `version` and not filled by them (empty when
        `version` runs right after): a second model moves forward through the pending ups only."""
        if version not in self._pending_tables:
            stop = self._index(version)
            # The first migration of a set has nothing before it: no need to ask git what is pending.
            if stop and self.pending:
                if stop < self._pending_next:
                    self._pending_model, self._pending_next = SchemaModel(), 0
                for _, sql in self._ups_before(version, self._pending_next, only=self.pending):
                    self._pending_model.replay(sql)
                self._pending_next = stop
            model = self._pending_model
            self._pending_tables[version] = frozenset(t for t in model.tables if t not in model.filled)
        return self._pending_tables[version]


class SchemaView:
    """The schema one migration of a set runs against, built when a rule first asks."""

    __slots__ = ("history", "version")

    def __init__(self, history: SetHistory, version: str) -> None:
        self.history = history
        self.version = version

    def model(self) -> SchemaModel:
        return self.history.model_before(self.version)

    def pending_tables(self) -> frozenset[str]:
        return self.history.pending_tables_before(self.version)

    def seen(self, sql: SqlFile) -> None:
        """The migration's own up, parsed by the linter: the next migration's model needs it."""
        self.history.seen(self.version, sql)


def view_of(files: Sequence[SqlFile], *, pending: bool) -> SchemaView:
    """The view for `sql` after `files` ran, every one of them pending or none: for examples and tests."""
    ups = [(str(n), (lambda f=f: f)) for n, f in enumerate(files)]
    versions = frozenset(v for v, _ in ups) if pending else frozenset()
    return SchemaView(SetHistory(ups, lambda: versions), str(len(files)))
