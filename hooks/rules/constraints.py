"""Constraints that scan or build an index while holding a lock on an existing table."""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.hooks.locks import (
    ACCESS_EXCLUSIVE,
    SHARE_ROW_EXCLUSIVE,
    column_constraints,
    column_default,
    not_null_without_long_lock,
    what_it_blocks,
)
from lockgate.hooks.rules._nodes import alter_cmds, existing_table
from lockgate.hooks.rules.base import Example, Hit, Rule
from lockgate.hooks.rules.context import Context, relation_key
from lockgate.hooks.sqlmodel import Node, Statement


def _commands(node: Node) -> Iterator[tuple[str, Node]]:
    """(subtype, command) for each subcommand of an ALTER TABLE."""
    for cmd in alter_cmds(node):
        yield cmd.get("subtype", ""), cmd


class ConstraintMissingNotValid(Rule):
    """A CHECK or FOREIGN KEY added to an existing table scans it while holding a lock.

    `ADD CONSTRAINT … CHECK (…)` takes ACCESS EXCLUSIVE (no reads, no writes) and reads every row
    before it commits. `ADD CONSTRAINT … FOREIGN KEY … REFERENCES parent` takes SHARE ROW
    EXCLUSIVE on both tables (no writes to either) and checks every row against the parent.
    An inline `CHECK` in `ADD COLUMN` scans too, and an inline `REFERENCES` on a column added
    with a DEFAULT checks every row's default against the parent.

    Safe alternative: add the constraint `NOT VALID` (a catalog change; new rows are checked at
    once), then `ALTER TABLE … VALIDATE CONSTRAINT` in a later migration: validation takes only
    SHARE UPDATE EXCLUSIVE (reads and writes go on) and, for a foreign key, ROW SHARE on the
    parent.

        ALTER TABLE orders ADD CONSTRAINT orders_customer_fk
            FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;
        -- next migration:
        ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk;

    Not reported: `ADD COLUMN … REFERENCES parent` without a default. The new column is all
    NULL, so nothing is checked; the SHARE ROW EXCLUSIVE lock on the parent is the same one a
    NOT VALID foreign key takes, held only for the catalog change and bounded by the lock
    timeout lockgate sets (squawk reports it; lockgate does not, on purpose). Constraints on a
    table created earlier in the same migration are fine.
    """

    code = "LG201"
    name = "constraint-missing-not-valid"
    summary = "CHECK or FOREIGN KEY added to an existing table without NOT VALID"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_AddConstraint", "AT_AddColumn"})
    squawk = ("constraint-missing-not-valid", "adding-foreign-key-constraint")
    bad = (
        Example("ALTER TABLE orders ADD CONSTRAINT orders_customer_fk\n"
                "    FOREIGN KEY (customer_id) REFERENCES customers (id);"),
        Example("ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total_cents >= 0);"),
        Example("ALTER TABLE orders ADD COLUMN store_id bigint NOT NULL DEFAULT 1 REFERENCES stores (id);",
                note="every row's default is checked against stores"),
    )
    good = (
        Example("ALTER TABLE orders ADD CONSTRAINT orders_customer_fk\n"
                "    FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;"),
        Example("ALTER TABLE orders ADD COLUMN store_id bigint REFERENCES stores (id);",
                note="the new column is all NULL: nothing to check"),
        Example("CREATE TABLE refunds (id bigint PRIMARY KEY, cents bigint);\n"
                "ALTER TABLE refunds ADD CONSTRAINT refunds_cents_check CHECK (cents > 0);"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table = existing_table(stmt, ctx)
        if table is None:
            return
        for subtype, cmd in _commands(stmt.node):
            if subtype == "AT_AddConstraint":
                yield from self._constraint(table, cmd.get("def", {}).get("Constraint", {}))
            elif subtype == "AT_AddColumn":
                yield from self._column(table, cmd.get("def", {}).get("ColumnDef", {}))

    def _constraint(self, table: str, constraint: Node) -> Iterator[str]:
        if constraint.get("skip_validation"):
            return
        name = constraint.get("conname", "")
        if constraint.get("contype") == "CONSTR_FOREIGN":
            parent = relation_key(constraint.get("pktable", {}))
            yield (
                f"ADD FOREIGN KEY {name} locks {table} and {parent} {SHARE_ROW_EXCLUSIVE} "
                f"({what_it_blocks(SHARE_ROW_EXCLUSIVE)}) while it checks every row; add it NOT VALID "
                "and VALIDATE CONSTRAINT in a later migration"
            )
        elif constraint.get("contype") == "CONSTR_CHECK":
            yield (
                f"ADD CHECK {name} scans {table} under {ACCESS_EXCLUSIVE} ({what_it_blocks(ACCESS_EXCLUSIVE)}); "
                "add it NOT VALID and VALIDATE CONSTRAINT in a later migration"
            )

    def _column(self, table: str, column: Node) -> Iterator[str]:
        name = column.get("colname", "")
        if column_constraints(column, "CONSTR_CHECK"):
            yield (
                f"ADD COLUMN {name} … CHECK scans {table} under {ACCESS_EXCLUSIVE}; add the column, then "
                "ADD CONSTRAINT … CHECK … NOT VALID and VALIDATE CONSTRAINT in a later migration"
            )
        if column_default(column) is not None:
            for fk in column_constraints(column, "CONSTR_FOREIGN"):
                yield (
                    f"ADD COLUMN {name} … DEFAULT … REFERENCES {relation_key(fk.get('pktable', {}))} checks every "
                    f"row's default while {table} is locked; add the column without REFERENCES, then the foreign "
                    "key NOT VALID and VALIDATE CONSTRAINT in a later migration"
                )


class RequireUniqueUsingIndex(Rule):
    """A UNIQUE or PRIMARY KEY constraint added to an existing table builds its index under lock.

    `ADD CONSTRAINT … UNIQUE (col)`, `ADD PRIMARY KEY (col)`, and the inline forms
    `ADD COLUMN … UNIQUE` / `ADD COLUMN id bigserial PRIMARY KEY`, build a unique index while
    holding ACCESS EXCLUSIVE on the table: no reads, no writes, for the whole build.

    Safe alternative: build the index first without blocking, then attach it as the
    constraint, a catalog change:

        -- lockgate:no-transaction
        CREATE UNIQUE INDEX CONCURRENTLY customers_email_key ON customers (email);
        -- next migration:
        ALTER TABLE customers ADD CONSTRAINT customers_email_key UNIQUE USING INDEX customers_email_key;

    A primary key over columns that are not yet NOT NULL still scans for NULLs under the lock;
    make them NOT NULL first (see LG204). Tables created earlier in the same migration are fine.
    """

    code = "LG202"
    name = "require-unique-using-index"
    summary = "UNIQUE or PRIMARY KEY added to an existing table without USING INDEX"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_AddConstraint", "AT_AddColumn"})
    squawk = ("disallowed-unique-constraint", "adding-serial-primary-key-field")
    bad = (
        Example("ALTER TABLE customers ADD CONSTRAINT customers_email_key UNIQUE (email);"),
        Example("ALTER TABLE events ADD COLUMN id bigserial PRIMARY KEY;"),
    )
    good = (
        Example("ALTER TABLE customers ADD CONSTRAINT customers_email_key UNIQUE USING INDEX customers_email_key;"),
        Example("CREATE TABLE coupons (code text NOT NULL);\nALTER TABLE coupons ADD PRIMARY KEY (code);"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table = existing_table(stmt, ctx)
        if table is None:
            return
        for subtype, cmd in _commands(stmt.node):
            if subtype == "AT_AddConstraint":
                constraint = cmd.get("def", {}).get("Constraint", {})
                if not constraint.get("indexname"):
                    yield from self._report(table, constraint.get("contype", ""), "ADD")
            elif subtype == "AT_AddColumn":
                column = cmd.get("def", {}).get("ColumnDef", {})
                for item in column.get("constraints", []):
                    yield from self._report(table, item.get("Constraint", {}).get("contype", ""),
                                            f"ADD COLUMN {column.get('colname', '')} …")

    def _report(self, table: str, contype: str, what: str) -> Iterator[str]:
        kind = {"CONSTR_UNIQUE": "UNIQUE", "CONSTR_PRIMARY": "PRIMARY KEY"}.get(contype)
        if kind is not None:
            yield (
                f"{what} {kind} builds an index under {ACCESS_EXCLUSIVE} on {table} (blocks reads and writes); "
                f"CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … {kind} USING INDEX"
            )


class ValidateInSameTransaction(Rule):
    """VALIDATE CONSTRAINT in the transaction that added the constraint NOT VALID gains nothing.

    Adding a constraint NOT VALID takes ACCESS EXCLUSIVE (CHECK) or SHARE ROW EXCLUSIVE (FOREIGN
    KEY), and that lock is held until the transaction ends. Validating in the same transaction
    therefore scans the whole table while that lock is still held: exactly what NOT VALID was
    meant to avoid.

    Safe alternative: validate in a later migration (or a later transaction). On its own,
    `VALIDATE CONSTRAINT` takes SHARE UPDATE EXCLUSIVE, which blocks neither reads nor writes.
    lockgate runs a migration file as one transaction, so put the VALIDATE in the next migration;
    in a `-- lockgate:no-transaction` file every statement commits alone and the pair is fine.
    """

    code = "LG203"
    name = "validate-in-same-transaction"
    summary = "VALIDATE CONSTRAINT in the transaction that added it NOT VALID"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_AddConstraint", "AT_ValidateConstraint"})
    squawk = ("constraint-missing-not-valid",)
    bad = (Example(
        "ALTER TABLE customers ADD CONSTRAINT customers_tier_check\n"
        "    CHECK (tier IN ('bronze', 'silver', 'gold')) NOT VALID;\n"
        "ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_check;"
    ),)
    good = (
        Example("ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_check;",
                note="the constraint was added NOT VALID by an earlier migration"),
        Example(
            "-- lockgate:no-transaction\n"
            "ALTER TABLE customers ADD CONSTRAINT customers_tier_check\n"
            "    CHECK (tier IN ('bronze', 'silver', 'gold')) NOT VALID;\n"
            "ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_check;",
            note="autocommit: the ADD has committed before the VALIDATE starts",
        ),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        pending = dict(ctx.not_valid_in_tx) if ctx.shares_transaction(stmt) else {}
        table = relation_key(stmt.node.get("relation", {}))
        for subtype, cmd in _commands(stmt.node):
            constraint = cmd.get("def", {}).get("Constraint", {})
            if subtype == "AT_AddConstraint" and constraint.get("skip_validation") and constraint.get("conname"):
                pending[constraint["conname"]] = table
            elif subtype == "AT_ValidateConstraint" and pending.get(cmd.get("name", "")) == table:
                yield (
                    f"VALIDATE CONSTRAINT {cmd['name']} runs in the transaction that added it NOT VALID, so it "
                    f"scans while the ADD's lock ({ACCESS_EXCLUSIVE} for a CHECK, {SHARE_ROW_EXCLUSIVE} for a "
                    "foreign key) is still held; validate it in a later migration"
                )


class SetNotNullScan(Rule):
    """SET NOT NULL on an existing column scans the table under ACCESS EXCLUSIVE.

    `ALTER COLUMN … SET NOT NULL` (and PostgreSQL 18's `ADD CONSTRAINT … NOT NULL col` without
    NOT VALID) reads every row to prove there is no NULL while holding ACCESS EXCLUSIVE: no
    reads, no writes, for a full scan.

    Safe alternative (PostgreSQL 12+), over migrations:

        -- 1: a catalog change
        ALTER TABLE customers ADD CONSTRAINT customers_tier_not_null CHECK (tier IS NOT NULL) NOT VALID;
        -- 2: scans under SHARE UPDATE EXCLUSIVE, blocking nobody
        ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_not_null;
        -- 3 (may be the same migration as 2): no scan, the valid CHECK proves it
        ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;
        ALTER TABLE customers DROP CONSTRAINT customers_tier_not_null;

    On PostgreSQL 18, `ADD CONSTRAINT customers_tier_not_null NOT NULL tier NOT VALID` followed by
    `VALIDATE CONSTRAINT` in a later migration does the same with a real NOT NULL constraint.
    Before PostgreSQL 12, SET NOT NULL scans even when such a CHECK exists: keep the validated
    CHECK instead, or run it in a quiet period.

    lockgate cannot see earlier migrations, so it accepts SET NOT NULL (PG12+) when the same
    migration first validates a constraint on that table: one it knows proves `col IS NOT NULL`,
    or one added by an earlier migration (trusted to be the matching CHECK). A table created in
    the same migration is fine.
    """

    code = "LG204"
    name = "set-not-null-scan"
    summary = "SET NOT NULL on an existing column without a validated CHECK (col IS NOT NULL)"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_AddConstraint", "AT_SetNotNull"})
    squawk = ("adding-not-nullable-field",)
    bad = (
        Example("ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;"),
        Example("ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_not_null;\n"
                "ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;", pg_version=11,
                note="PostgreSQL 11 scans despite the valid CHECK"),
    )
    good = (
        Example("ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_not_null;\n"
                "ALTER TABLE customers ALTER COLUMN tier SET NOT NULL;\n"
                "ALTER TABLE customers DROP CONSTRAINT customers_tier_not_null;"),
        Example("ALTER TABLE customers ADD CONSTRAINT customers_tier_not_null NOT NULL tier NOT VALID;",
                pg_version=18),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table = existing_table(stmt, ctx)
        if table is None:
            return
        for subtype, cmd in _commands(stmt.node):
            constraint = cmd.get("def", {}).get("Constraint", {})
            if subtype == "AT_SetNotNull":
                column = cmd.get("name", "")
            elif (subtype == "AT_AddConstraint" and constraint.get("contype") == "CONSTR_NOTNULL"
                  and not constraint.get("skip_validation")):
                column = next((k["String"]["sval"] for k in constraint.get("keys", []) if "String" in k), "")
            else:
                continue
            if ctx.pg_version >= 12 and self._proven(ctx, table, column):
                continue
            yield self._message(ctx.pg_version, table, column)

    @staticmethod
    def _proven(ctx: Context, table: str, column: str) -> bool:
        """A constraint on `table` validated in this migration proves the column has no NULL."""
        for name, valid_on in ctx.valid_constraints.items():
            if valid_on != table:
                continue
            # Not added here: added by an earlier migration, trusted to be the matching CHECK.
            added = ctx.constraints_added.get(name)
            if added is None or added == (table, column):
                return True
        return False

    @staticmethod
    def _message(pg_version: int, table: str, column: str) -> str:
        scan = f"SET NOT NULL on {table}.{column} scans the table under {ACCESS_EXCLUSIVE} (blocks reads and writes)"
        if pg_version < 12:
            return (f"{scan}; PostgreSQL {pg_version} scans even with a valid CHECK ({column} IS NOT NULL): "
                    "keep a validated CHECK instead, or run it in a quiet period")
        return f"{scan}; {not_null_without_long_lock(column, pg_version)}"


class ExclusionConstraint(Rule):
    """An EXCLUDE constraint added to an existing table builds its index under ACCESS EXCLUSIVE.

    `ADD CONSTRAINT … EXCLUDE USING gist (…)` builds the exclusion index while holding ACCESS
    EXCLUSIVE on the table: no reads, no writes, for the whole build. Unlike UNIQUE, there is no
    `USING INDEX` form, so the index cannot be built concurrently beforehand.

    Safer alternatives: add the constraint when the table is created; or build a new table
    with the constraint and move the data over in batches (`-- lockgate:batch`), then swap the
    names; or accept a maintenance window and say why with
    `-- lockgate:ignore LG205 -- reason`.
    """

    code = "LG205"
    name = "exclusion-constraint"
    summary = "EXCLUDE constraint added to an existing table"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_AddConstraint"})
    bad = (Example("ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap\n"
                   "    EXCLUDE USING gist (room WITH =, during WITH &&);"),)
    good = (Example("CREATE TABLE bookings (room int, during tstzrange);\n"
                    "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap\n"
                    "    EXCLUDE USING gist (room WITH =, during WITH &&);"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        table = existing_table(stmt, ctx)
        if table is None:
            return
        for subtype, cmd in _commands(stmt.node):
            constraint = cmd.get("def", {}).get("Constraint", {})
            if subtype == "AT_AddConstraint" and constraint.get("contype") == "CONSTR_EXCLUSION":
                yield (
                    f"ADD CONSTRAINT {constraint.get('conname', '')} EXCLUDE builds its index under "
                    f"{ACCESS_EXCLUSIVE} on {table} and has no concurrent form; "
                    "add it when creating the table, or copy into a new table in batches"
                )
