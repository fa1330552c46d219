"""What the linter knows at a statement: the target version and what this migration did so far.

Rules ask the context instead of guessing: a table created earlier in the same migration is
new (indexing or filling it blocks nobody), a constraint added NOT VALID earlier in the same
transaction cannot be validated cheaply yet, and so on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lockgate.hooks.sqlmodel import Node, SqlFile, Statement, alter_table_cmds, qualified_names

if TYPE_CHECKING:
    from lockgate.hooks.schemamodel import SchemaView


def relation_key(range_var: Node) -> str:
    """A table's name as the linter tracks it: `public.x` and `x` are the same table."""
    schema = range_var.get("schemaname")
    name = range_var.get("relname", "")
    return name if schema in (None, "public") else f"{schema}.{name}"


def name_key(names: list[Node]) -> str:
    """Same as relation_key for a qualified name list (`DROP INDEX s.i`, type names)."""
    parts = qualified_names(names)
    if len(parts) >= 2 and parts[-2] == "public":
        parts = parts[-1:]
    return ".".join(parts[-2:])


def renamed_key(node: Node, new: str, *, new_schema: bool = False) -> str:
    """`OBJECT_COLUMN:t.b` for the object a RENAME / SET SCHEMA `node` leaves behind under the name `new`.

    A down file that renames it back is restoring, not breaking running code.
    """
    object_type = node.get("renameType") or node.get("objectType", "")
    if object_type in ("OBJECT_COLUMN", "OBJECT_ATTRIBUTE"):
        return f"{object_type}:{relation_key(node.get('relation', {}))}.{new}"
    if "relation" in node:
        relation = node["relation"]
        schema, name = (new, relation.get("relname")) if new_schema else (relation.get("schemaname"), new)
        return f"{object_type}:{relation_key({'schemaname': schema, 'relname': name})}"
    item: Node = node.get("object", {})
    if "ObjectWithArgs" in item:
        names = qualified_names(item["ObjectWithArgs"].get("objname", []))
    else:
        names = qualified_names(item.get("List", {}).get("items", []))
    name = names[-1] if names else str(node.get("subname", ""))
    schema = new if new_schema else (names[-2] if len(names) > 1 else None)
    return f"{object_type}:{relation_key({'schemaname': schema, 'relname': name if new_schema else new})}"


class Context:
    __slots__ = (
        "_autocommit_owner",
        "_pending_tables",
        "column_types",
        "constrained_domains",
        "constraints_added",
        "enum_values_in_tx",
        "explicit_tx",
        "file_kind",
        "new_columns",
        "new_indexes",
        "new_objects",
        "new_relations",
        "new_types",
        "not_valid_in_tx",
        "path",
        "pg_version",
        "previous",
        "schema",
        "sql",
        "transactional",
        "valid_constraints",
    )

    def __init__(self, path: Path, pg_version: int, file_kind: str = "up", transactional: bool = True,
                 sql: SqlFile | None = None, schema: SchemaView | None = None) -> None:
        self.path = path
        self.pg_version = pg_version
        self.file_kind = file_kind  # up, down or validate
        # The engine runs the whole file as one transaction (no non-transactional statement, no directive).
        self.transactional = transactional
        # Depth of BEGIN … COMMIT written in the file itself.
        self.explicit_tx = 0
        self.new_relations: set[str] = set()
        self.new_indexes: set[str] = set()
        self.new_types: set[str] = set()
        self.new_columns: set[tuple[str, str]] = set()
        # Constraints added NOT VALID in the current transaction: name -> table.
        self.not_valid_in_tx: dict[str, str] = {}
        # Enum values added in the current transaction: (type, value).
        self.enum_values_in_tx: set[tuple[str, str]] = set()
        self.previous: list[Statement] = []
        # Other objects created earlier in this migration, as (kind, name): ("function", "f"),
        # ("schema", "s"), ("extension", "e"), ("trigger"/"policy"/"rule", "table.name").
        self.new_objects: set[tuple[str, str]] = set()
        # The file being linted, for rules about the file as a whole (directives attached to nothing).
        self.sql = sql
        # Types of columns added in this migration, (table, column) -> TypeName node.
        self.column_types: dict[tuple[str, str], Node] = {}
        # Domains created here with a CHECK (a column of one is written row by row).
        self.constrained_domains: set[str] = set()
        # Constraints added in this migration: name -> (table, the column a CHECK (col IS NOT NULL) proves).
        self.constraints_added: dict[str, tuple[str, str | None]] = {}
        # Constraints made valid in this migration (validated, or added without NOT VALID): name -> table.
        self.valid_constraints: dict[str, str] = {}
        # What the migrations before this one in the set left (None: a file linted on its own).
        self.schema = schema
        # Outside a transaction block each top-level statement (with the statements of its DO body)
        # commits alone; this is the one whose transaction the per-transaction state belongs to.
        self._autocommit_owner: Statement | None = None
        self._pending_tables: frozenset[str] | None = None

    @property
    def in_transaction(self) -> bool:
        return self.transactional or self.explicit_tx > 0

    def is_new(self, range_var: Node) -> bool:
        """Created by this migration, or (for an up) by an earlier migration of the pending change:
        either way empty and unused by running code when this statement runs."""
        key = relation_key(range_var)
        if key in self.new_relations:
            return True
        if self.file_kind != "up" or self.schema is None:
            return False
        if self._pending_tables is None:  # asked for nearly every statement: once per file
            self._pending_tables = self.schema.pending_tables()
        return key in self._pending_tables

    def column_type(self, table: str, column: str) -> Node | None:
        """The column's type before the current statement, when this migration or the set says."""
        known = self.column_types.get((table, column))
        if known is None and self.schema is not None and (table, column) not in self.new_columns:
            known = self.schema.model().column_type(table, column)
        return known

    def unique_keys(self, range_var: Node) -> tuple[frozenset[str], ...]:
        """Column sets that are unique in the table, as far as the migration set says."""
        return self.schema.model().unique_keys(relation_key(range_var)) if self.schema is not None else ()

    def shares_transaction(self, stmt: Statement) -> bool:
        """Whether the per-transaction state (not_valid_in_tx, …) is from `stmt`'s transaction."""
        return self.in_transaction or (stmt.parent or stmt) is self._autocommit_owner

    def observe(self, stmt: Statement) -> None:
        """Record what `stmt` created or changed, after the rules have looked at it."""
        self.previous.append(stmt)
        top = stmt.parent or stmt
        if not self.in_transaction and top is not self._autocommit_owner:
            self._end_transaction()  # the previous statement committed on its own
            self._autocommit_owner = top
        handler = getattr(self, f"_after_{stmt.kind}", None)
        if handler is not None:
            handler(stmt.node)

    def _end_transaction(self) -> None:
        self.not_valid_in_tx.clear()
        self.enum_values_in_tx.clear()

    def _after_TransactionStmt(self, node: Node) -> None:
        kind = node.get("kind", "")
        if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            self.explicit_tx += 1
        elif kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_COMMIT_PREPARED"):
            self.explicit_tx = max(0, self.explicit_tx - 1)
            self._end_transaction()

    def _after_CreateStmt(self, node: Node) -> None:
        self.new_relations.add(relation_key(node.get("relation", {})))

    def _after_CreateTableAsStmt(self, node: Node) -> None:
        into = node.get("into", {})
        into = into.get("IntoClause", into)  # libpg_query inlines the IntoClause here
        self.new_relations.add(relation_key(into.get("rel", {})))

    def _after_ViewStmt(self, node: Node) -> None:
        self.new_relations.add(relation_key(node.get("view", {})))

    def _after_IndexStmt(self, node: Node) -> None:
        if node.get("idxname"):
            schema = node.get("relation", {}).get("schemaname")
            self.new_indexes.add(relation_key({"schemaname": schema, "relname": node["idxname"]}))

    def _after_CreateEnumStmt(self, node: Node) -> None:
        self.new_types.add(name_key(node.get("typeName", [])))

    def _after_CompositeTypeStmt(self, node: Node) -> None:
        self.new_types.add(relation_key(node.get("typevar", {})))

    def _after_CreateDomainStmt(self, node: Node) -> None:
        self.new_types.add(name_key(node.get("domainname", [])))
        if any(c.get("Constraint", {}).get("contype") == "CONSTR_CHECK" for c in node.get("constraints", [])):
            self.constrained_domains.add(name_key(node.get("domainname", [])))

    def _after_AlterDomainStmt(self, node: Node) -> None:
        if node.get("subtype") == "C" and node.get("def", {}).get("Constraint", {}).get("contype") == "CONSTR_CHECK":
            self.constrained_domains.add(name_key(node.get("typeName", [])))

    def _after_PLpgSQL_stmt_commit(self, node: Node) -> None:
        self._end_transaction()

    def _after_PLpgSQL_stmt_rollback(self, node: Node) -> None:
        self._end_transaction()

    def _after_AlterEnumStmt(self, node: Node) -> None:
        if "newVal" in node and not node.get("oldVal"):
            self.enum_values_in_tx.add((name_key(node.get("typeName", [])), node["newVal"]))

    def _after_AlterTableStmt(self, node: Node) -> None:
        table = relation_key(node.get("relation", {}))
        for cmd in alter_table_cmds(node):
            subtype = cmd.get("subtype")
            definition = cmd.get("def", {})
            if subtype == "AT_AddColumn":
                column = definition.get("ColumnDef", {})
                self.new_columns.add((table, column.get("colname", "")))
                self.column_types[(table, column.get("colname", ""))] = column.get("typeName", {})
            elif subtype == "AT_AlterColumnType" and "typeName" in definition.get("ColumnDef", {}):
                self.column_types[(table, cmd.get("name", ""))] = definition["ColumnDef"]["typeName"]
            elif subtype == "AT_AddConstraint":
                self._added_constraint(table, definition.get("Constraint", {}))
            elif subtype == "AT_ValidateConstraint":
                self.valid_constraints[cmd.get("name", "")] = table

    def _added_constraint(self, table: str, constraint: Node) -> None:
        name = constraint.get("conname")
        if not name:
            return
        if constraint.get("skip_validation"):
            self.not_valid_in_tx[name] = table
        else:
            self.valid_constraints[name] = table
        test = constraint.get("raw_expr", {}).get("NullTest", {})
        column = qualified_names(test.get("arg", {}).get("ColumnRef", {}).get("fields", []))
        proves = constraint.get("contype") == "CONSTR_CHECK" and test.get("nulltesttype") == "IS_NOT_NULL"
        self.constraints_added[name] = (table, column[0] if proves and len(column) == 1 else None)

    def _after_RenameStmt(self, node: Node) -> None:
        if node.get("renameType") == "OBJECT_TABLE" and relation_key(node.get("relation", {})) in self.new_relations:
            renamed = {"schemaname": node["relation"].get("schemaname"), "relname": node.get("newname", "")}
            self.new_relations.add(relation_key(renamed))
        self.new_objects.add(("renamed", renamed_key(node, node.get("newname", ""))))

    def _after_AlterObjectSchemaStmt(self, node: Node) -> None:
        self.new_objects.add(("renamed", renamed_key(node, node.get("newschema", ""), new_schema=True)))

    def _after_CreateSeqStmt(self, node: Node) -> None:
        self.new_relations.add(relation_key(node.get("sequence", {})))

    def _after_CreateSchemaStmt(self, node: Node) -> None:
        self.new_objects.add(("schema", node.get("schemaname", "")))

    def _after_CreateExtensionStmt(self, node: Node) -> None:
        self.new_objects.add(("extension", node.get("extname", "")))

    def _after_CreateFunctionStmt(self, node: Node) -> None:
        self.new_objects.add(("function", name_key(node.get("funcname", []))))

    def _after_CreateTrigStmt(self, node: Node) -> None:
        self.new_objects.add(("trigger", f"{relation_key(node.get('relation', {}))}.{node.get('trigname', '')}"))

    def _after_CreatePolicyStmt(self, node: Node) -> None:
        self.new_objects.add(("policy", f"{relation_key(node.get('table', {}))}.{node.get('policy_name', '')}"))

    def _after_RuleStmt(self, node: Node) -> None:
        self.new_objects.add(("rule", f"{relation_key(node.get('relation', {}))}.{node.get('rulename', '')}"))
