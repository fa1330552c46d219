"""Transaction control that fails, or defeats the engine's own transaction handling."""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.hooks.locks import MODES, SHARE, blocks_writes, what_it_blocks
from lockgate.hooks.rules.base import Example, Hit, Rule, Severity
from lockgate.hooks.rules.context import Context, name_key, relation_key
from lockgate.hooks.sqlmodel import Statement, walk_nodes
from lockgate.hooks.txmode import cannot_run_in_transaction

_TERMINATORS = frozenset({"PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback"})


def _where(ctx: Context) -> str:
    """Why the statement runs inside a transaction block."""
    return "inside the file's BEGIN" if ctx.explicit_tx else "in the one transaction lockgate runs this file in"


class CommitInTransactionBlock(Rule):
    """COMMIT or ROLLBACK inside a DO block fails when the block runs in a transaction block.

    PL/pgSQL may end transactions only when the DO block (or the CALL of a procedure) is
    executed on its own, outside any transaction block. lockgate runs a migration file as one
    transaction, so a DO block with `COMMIT` in it fails with `invalid transaction termination`
    (SQLSTATE 2D000) — as it does inside a `BEGIN … COMMIT` written in the file. A function
    (as opposed to a procedure) can never COMMIT, and before PostgreSQL 11 PL/pgSQL has no
    COMMIT or ROLLBACK at all.

    The usual reason for it is a batched backfill loop. Write the plain statement instead and
    let lockgate batch it, with a checkpoint after each batch:

        -- lockgate:batch size=10000 key=id
        UPDATE customers SET tier = 'bronze' WHERE tier IS NULL;

    If the loop must stay, mark the file `-- lockgate:no-transaction` so each statement runs on
    its own in autocommit.
    """

    code = "LG601"
    name = "commit-in-transaction-block"
    summary = "COMMIT/ROLLBACK in a DO block or CALLed procedure that runs in a transaction block"
    kinds = frozenset(_TERMINATORS | {"CallStmt"})
    bad = (Example(
        "DO $$\nBEGIN\n    LOOP\n        UPDATE customers SET tier = 'bronze'\n"
        "        WHERE id IN (SELECT id FROM customers WHERE tier IS NULL LIMIT 1000);\n"
        "        EXIT WHEN NOT FOUND;\n        COMMIT;\n    END LOOP;\nEND $$;"
    ),)
    good = (
        Example("-- lockgate:batch size=1000 key=id\nUPDATE customers SET tier = 'bronze' WHERE tier IS NULL;"),
        Example(
            "-- lockgate:no-transaction\nDO $$\nBEGIN\n    LOOP\n        UPDATE customers SET tier = 'bronze'\n"
            "        WHERE id IN (SELECT id FROM customers WHERE tier IS NULL LIMIT 1000);\n"
            "        EXIT WHEN NOT FOUND;\n        COMMIT;\n    END LOOP;\nEND $$;"
        ),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if stmt.kind == "CallStmt":
            yield from self._call(stmt, ctx)
            return
        parent = stmt.parent
        word = "COMMIT" if stmt.kind == "PLpgSQL_stmt_commit" else "ROLLBACK"
        if parent is None:
            return
        if ctx.pg_version < 11:
            yield f"PL/pgSQL has no {word} before PostgreSQL 11: the body fails to compile; remove it"
        elif parent.kind == "DoStmt" and ctx.in_transaction:
            yield (
                f"{word} in a DO block fails with 'invalid transaction termination' {_where(ctx)}; "
                "use -- lockgate:batch on a plain UPDATE, or -- lockgate:no-transaction"
            )
        elif parent.kind == "CreateFunctionStmt" and not parent.node.get("is_procedure"):
            yield f"a function cannot {word}: calling it fails with 'invalid transaction termination'; use a procedure"

    def _call(self, stmt: Statement, ctx: Context) -> Iterator[str]:
        if not ctx.in_transaction:
            return
        called = name_key(stmt.node.get("funccall", {}).get("funcname", []))
        for earlier in ctx.previous:
            parent = earlier.parent
            if (earlier.kind in _TERMINATORS and parent is not None and parent.node.get("is_procedure")
                    and name_key(parent.node.get("funcname", [])) == called):
                yield (
                    f"procedure {called} ends transactions, so CALL fails with 'invalid transaction termination' "
                    f"{_where(ctx)}; CALL it from a -- lockgate:no-transaction migration"
                )
                return


class NonTransactionalInTransaction(Rule):
    """A statement that cannot run in a transaction block, put inside one.

    `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `REINDEX … CONCURRENTLY`, `VACUUM`,
    `DETACH PARTITION … CONCURRENTLY`, `ALTER TYPE … ADD VALUE` before PostgreSQL 12, and a few
    others fail with `… cannot run inside a transaction block` when written between `BEGIN` and
    `COMMIT`, and with `… cannot be executed from a function` inside a DO block or function.

    lockgate sees these statements and runs such a file statement by statement in autocommit
    (say so with `-- lockgate:no-transaction`); do not wrap them in BEGIN … COMMIT or DO.

    Mixing one of them with other statements in the same file is allowed: each statement then
    commits on its own, and if a later one fails lockgate rolls back with the down file, which
    must therefore cope with a partly applied up (`DROP INDEX CONCURRENTLY IF EXISTS …`). The
    squawk pattern `CREATE UNIQUE INDEX CONCURRENTLY …; ALTER TABLE … ADD CONSTRAINT … USING
    INDEX …;` works this way. Keeping such a statement in a migration of its own is still the
    clearest.
    """

    code = "LG602"
    name = "non-transactional-in-transaction"
    summary = "CONCURRENTLY / VACUUM / … inside BEGIN … COMMIT or a DO block"
    kinds = frozenset({
        "IndexStmt", "DropStmt", "ReindexStmt", "VacuumStmt", "ClusterStmt", "AlterEnumStmt", "AlterTableStmt",
        "CreateSubscriptionStmt", "CreatedbStmt", "DropdbStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt",
        "AlterSystemStmt",
    })
    alter_commands = frozenset({"AT_DetachPartition"})
    squawk = ("ban-concurrent-index-creation-in-transaction",)
    bad = (Example("BEGIN;\nCREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);\nCOMMIT;"),)
    good = (Example("-- lockgate:no-transaction\n"
                    "CREATE INDEX CONCURRENTLY orders_created_at_idx ON orders (created_at);"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if not cannot_run_in_transaction(stmt, ctx.pg_version):
            return
        what = " ".join(stmt.text.split()[:3]).rstrip(";")
        if stmt.parent is not None:
            yield f"{what} … cannot be executed from a DO block or function; write it as a top-level statement"
        elif ctx.explicit_tx:
            yield f"{what} … cannot run inside a transaction block; remove BEGIN/COMMIT (lockgate uses autocommit)"


class ExplicitTransactionControl(Rule):
    """BEGIN, COMMIT or ROLLBACK written in a migration fight the engine's transaction.

    lockgate runs a migration file as one transaction (or, for a file with statements that
    cannot run in one, statement by statement in autocommit) and decides between ROLLBACK and
    the down file from that. A `BEGIN` in the file only warns (a transaction is already in
    progress), and the `COMMIT` that follows ends lockgate's transaction early: a failure after
    it can no longer be rolled back, and the ledger would not match the database. A `BEGIN`
    never committed leaves the work hanging; a bare `COMMIT`/`ROLLBACK` ends lockgate's
    transaction outright.

    Safe alternative: remove the transaction control. To commit in steps, split the work into
    migrations, use `-- lockgate:batch` for large UPDATE/DELETE, or `-- lockgate:no-transaction`.
    Savepoints are fine.
    """

    code = "LG603"
    name = "explicit-transaction-control"
    summary = "BEGIN/COMMIT/ROLLBACK written in a migration"
    kinds = frozenset({"TransactionStmt"})
    squawk = ("transaction-nesting", "ban-uncommitted-transaction")
    bad = (
        Example("BEGIN;\nALTER TABLE customers ADD COLUMN tier text;\nCOMMIT;"),
        Example("ALTER TABLE customers ADD COLUMN tier text;\nCOMMIT;"),
    )
    good = (Example("ALTER TABLE customers ADD COLUMN tier text;\nSAVEPOINT before_backfill;\n"
                    "RELEASE SAVEPOINT before_backfill;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        kind = stmt.node.get("kind", "")
        if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            yield (
                "BEGIN in a migration: lockgate already runs the file in a transaction and its COMMIT would end "
                "lockgate's transaction early; remove BEGIN/COMMIT"
                if ctx.transactional else
                "BEGIN in a file lockgate runs statement by statement in autocommit defeats its per-statement "
                "retries; split the migration instead"
            )
        elif kind in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK") and not ctx.explicit_tx:
            word = "COMMIT" if kind == "TRANS_STMT_COMMIT" else "ROLLBACK"
            yield f"{word} without BEGIN ends lockgate's own transaction; remove it"
        elif kind == "TRANS_STMT_PREPARE":
            yield "PREPARE TRANSACTION hands lockgate's transaction to a two-phase commit; remove it"


class EnumValueUsedInTransaction(Rule):
    """A value added to an enum cannot be used in the transaction that added it.

    Since PostgreSQL 12 `ALTER TYPE … ADD VALUE` may run in a transaction block, but the new
    value is unusable until that transaction commits: any statement that turns the label into
    the enum (an INSERT, UPDATE, comparison, DEFAULT or CHECK) fails with `unsafe use of new
    value` (SQLSTATE 55P04). lockgate runs a migration file as one transaction, so the use must
    go to a later migration. Before PostgreSQL 12 ADD VALUE cannot run in a transaction block at
    all (see LG602), so lockgate runs such a file in autocommit and the use is fine.

    An enum created earlier in the same migration is exempt: values of an enum type created in
    the same transaction are safe.
    """

    code = "LG604"
    name = "enum-value-used-in-transaction"
    summary = "new enum value used in the transaction that added it"
    kinds = frozenset({
        "InsertStmt", "UpdateStmt", "DeleteStmt", "SelectStmt", "MergeStmt", "AlterTableStmt", "IndexStmt",
        "CreateStmt", "ViewStmt", "CreateTableAsStmt",
    })
    bad = (Example("ALTER TYPE order_status ADD VALUE 'refunded';\n"
                   "UPDATE orders SET status = 'refunded' WHERE refunded_at IS NOT NULL;"),)
    good = (
        Example("ALTER TYPE order_status ADD VALUE 'refunded' AFTER 'paid';",
                note="use it in the next migration"),
        Example("CREATE TYPE mood AS ENUM ('sad');\nALTER TYPE mood ADD VALUE 'happy';\n"
                "CREATE TABLE people (name text, mood mood DEFAULT 'happy');"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if not ctx.enum_values_in_tx or not ctx.shares_transaction(stmt):
            return
        added = {value: enum for enum, value in ctx.enum_values_in_tx if enum not in ctx.new_types}
        for const in walk_nodes(stmt.node, "A_Const"):
            label = const.get("sval", {}).get("sval")
            if label in added:
                yield (
                    f"'{label}' was added to enum {added[label]} in this transaction; using it before COMMIT fails "
                    "with 55P04 'unsafe use of new value': use it in a later migration"
                )
                return


class LockTable(Rule):
    """LOCK TABLE holds a strong lock until the migration commits.

    `LOCK TABLE t` without a mode takes ACCESS EXCLUSIVE: every read and write of `t` waits
    until the migration's transaction ends, and while the request waits behind a long query it
    blocks everything queued after it. SHARE and stronger modes block writes.

    lockgate's engine already takes each statement's own lock with a lock timeout and retries,
    so an explicit lock rarely helps. If it is needed (to fix a lock order across tables), use
    the weakest mode that works and keep the migration short. Weaker modes than SHARE, and
    tables created earlier in the same migration, are not reported.
    """

    code = "LG605"
    name = "lock-table"
    severity = Severity.WARNING
    summary = "LOCK TABLE in SHARE mode or stronger"
    kinds = frozenset({"LockStmt"})
    bad = (Example("LOCK TABLE customers;"),)
    good = (Example("LOCK TABLE customers IN ROW EXCLUSIVE MODE;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        mode = MODES[stmt.node.get("mode", len(MODES)) - 1]
        if not blocks_writes(mode):
            return
        tables = [rv.get("RangeVar", {}) for rv in stmt.node.get("relations", [])]
        existing = [relation_key(t) for t in tables if not ctx.is_new(t)]
        if existing:
            weaker = "" if mode == SHARE else "; if you need it, prefer the weakest mode that works"
            yield (
                f"LOCK TABLE {', '.join(existing)} takes {mode} ({what_it_blocks(mode)}) until the migration "
                f"commits; lockgate already locks each statement with a timeout{weaker}"
            )


class DynamicSql(Rule):
    """EXECUTE of dynamic SQL in a DO block cannot be checked.

    lockgate reads the SQL inside DO blocks, but a string built and run with `EXECUTE` (or
    `FOR … IN EXECUTE`) is only known when it runs: none of the lock, rewrite or transaction
    rules can see it.

    Write the statement as plain SQL where you can (a fixed string gains nothing from EXECUTE).
    When it really must be dynamic, review it by hand and acknowledge with
    `-- lockgate:ignore LG606 -- reason`. Functions created by the migration are not reported:
    their bodies run later, not as part of the migration.
    """

    code = "LG606"
    name = "dynamic-sql"
    severity = Severity.WARNING
    summary = "EXECUTE of dynamic SQL in a DO block"
    kinds = frozenset({"PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors"})
    bad = (Example("DO $$\nBEGIN\n    EXECUTE format('ALTER TABLE %I ADD COLUMN note text', 'orders');\nEND $$;"),)
    good = (Example("ALTER TABLE orders ADD COLUMN note text;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if stmt.parent is not None and stmt.parent.kind == "DoStmt":
            yield "EXECUTE runs SQL lockgate cannot check (locks, rewrites, transactions); write it as plain SQL"
