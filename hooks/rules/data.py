"""Data changes (DML) that hold row locks on many rows for one long transaction."""

from __future__ import annotations

from collections.abc import Iterator

from pglast.enums.nodes import NodeTag

from lockgate.hooks.directives import Batch
from lockgate.hooks.rules._nodes import has_limit, is_key_name, table_name
from lockgate.hooks.rules.base import Example, Hit, Rule, Severity
from lockgate.hooks.rules.context import Context
from lockgate.hooks.sqlmodel import Node, Statement, function_name, qualified_names, walk_nodes

_DML = frozenset({"UpdateStmt", "DeleteStmt"})
_MEMBERSHIPS = "CREATE TABLE memberships (team bigint, member bigint, role text, PRIMARY KEY (team, member));"
_LOWER = frozenset({">", ">="})
_UPPER = frozenset({"<", "<="})


def _column(expr: Node) -> str | None:
    fields = qualified_names(expr.get("ColumnRef", {}).get("fields", []))
    return fields[-1] if fields else None


def _key_column(expr: Node) -> str | None:
    """The column name when `expr` is a reference to a key-named column."""
    column = _column(expr)
    return column if column and is_key_name(column) else None


def _is_value(expr: Node, in_plpgsql: bool) -> bool:
    """A constant, a parameter, or, in a PL/pgSQL body, a variable (it parses as a column)."""
    if "TypeCast" in expr:
        return _is_value(expr["TypeCast"].get("arg", {}), in_plpgsql)
    if "A_Const" in expr:
        return not expr["A_Const"].get("isnull")
    return "ParamRef" in expr or (in_plpgsql and "ColumnRef" in expr)


def _operator(expr: Node) -> str:
    names = qualified_names(expr.get("name", []))
    return names[-1] if names else ""


def _pins_key(expr: Node, in_plpgsql: bool) -> bool:
    """`id = 1`, `id IN (1, 2)`, `order_id = ANY($1)`, `id BETWEEN 1 AND 1000`."""
    if "CurrentOfExpr" in expr:
        return True
    a_expr = expr.get("A_Expr")
    if a_expr is None:
        return False
    kind, left, right = a_expr.get("kind"), a_expr.get("lexpr", {}), a_expr.get("rexpr", {})
    if kind == "AEXPR_OP" and _operator(a_expr) == "=":
        return bool(
            (_key_column(left) and _is_value(right, in_plpgsql))
            or (_key_column(right) and _is_value(left, in_plpgsql))
        )
    if kind in ("AEXPR_IN", "AEXPR_BETWEEN") and _key_column(left) and _operator(a_expr) != "<>":
        items = right.get("List", {}).get("items", [])
        return bool(items) and all(_is_value(i, in_plpgsql) for i in items)
    if kind == "AEXPR_OP_ANY" and _operator(a_expr) == "=":
        return bool(_key_column(left) and _is_value(right, in_plpgsql))
    return False


def _range_bound(expr: Node, in_plpgsql: bool) -> tuple[str, str] | None:
    """("lower"|"upper", column) for `id >= 1000` / `id < 2000` (either side)."""
    a_expr = expr.get("A_Expr", {})
    if a_expr.get("kind") != "AEXPR_OP":
        return None
    op, left, right = _operator(a_expr), a_expr.get("lexpr", {}), a_expr.get("rexpr", {})
    column = _key_column(left)
    if column and _is_value(right, in_plpgsql):
        side = "lower" if op in _LOWER else "upper" if op in _UPPER else None
    else:
        column = _key_column(right)
        if not (column and _is_value(left, in_plpgsql)):
            return None
        side = "upper" if op in _LOWER else "lower" if op in _UPPER else None
    return (side, column) if side else None


def _pinned(expr: Node, in_plpgsql: bool) -> tuple[set[str], set[str]]:
    """(columns set equal to a value, columns matched against a list of values) by the top-level conjuncts."""
    bool_expr = expr.get("BoolExpr")
    if bool_expr is not None:
        equal: set[str] = set()
        listed: set[str] = set()
        if bool_expr.get("boolop") == "AND_EXPR":
            for arg in bool_expr.get("args", []):
                more_equal, more_listed = _pinned(arg, in_plpgsql)
                equal |= more_equal
                listed |= more_listed
        return equal, listed
    a_expr = expr.get("A_Expr", {})
    kind, left, right = a_expr.get("kind"), a_expr.get("lexpr", {}), a_expr.get("rexpr", {})
    if kind == "AEXPR_OP" and _operator(a_expr) == "=":
        for column, value in ((left, right), (right, left)):
            if (name := _column(column)) and _is_value(value, in_plpgsql):
                return {name}, set()
    if kind == "AEXPR_IN" and _operator(a_expr) == "=" and (name := _column(left)):
        items = right.get("List", {}).get("items", [])
        if items and all(_is_value(i, in_plpgsql) for i in items):
            return set(), {name}
    return set(), set()


def _unique_lookup(where: Node, in_plpgsql: bool, keys: tuple[frozenset[str], ...]) -> bool:
    """Whether the WHERE clause pins every column of a unique key (an IN list counts for a one-column key)."""
    equal, listed = _pinned(where, in_plpgsql)
    return any(key and (key <= equal or (len(key) == 1 and key <= listed)) for key in keys)


def bounded(where: Node | None, in_plpgsql: bool = False, keys: tuple[frozenset[str], ...] = (),
            text: str | None = None) -> bool:
    """Whether a WHERE clause limits the change to a few rows the author chose.

    It does when a conjunct pins a key-named column (`id`, `*_id`, `uuid`, `*_uuid`) to values,
    bounds one from both sides with values, or selects the rows with a LIMIT sub-select; an
    OR is bounded when every branch is. Equality on other columns (`status = 'trial'`) is not:
    without the catalog the linter cannot know it is selective. `text`, the statement's, lets
    the LIMIT check skip the tree walk.
    """
    if not where:
        return False
    return has_limit(where, text) or _bounded(where, in_plpgsql, keys)


def _bounded(where: Node | None, in_plpgsql: bool, keys: tuple[frozenset[str], ...]) -> bool:
    """`bounded` where no LIMIT sub-select is below (none can be in a part when the whole has none)."""
    if not where:
        return False
    if keys and _unique_lookup(where, in_plpgsql, keys):
        return True
    bool_expr = where.get("BoolExpr")
    if bool_expr is None:
        return _pins_key(where, in_plpgsql)
    args = bool_expr.get("args", [])
    if bool_expr.get("boolop") == "OR_EXPR":
        return bool(args) and all(_bounded(a, in_plpgsql, keys) for a in args)
    if bool_expr.get("boolop") != "AND_EXPR":
        return False
    if any(_bounded(a, in_plpgsql, keys) for a in args):
        return True
    bounds = {b for b in (_range_bound(a, in_plpgsql) for a in args) if b}
    return any(("upper", column) in bounds for side, column in bounds if side == "lower")


def _changes(stmt: Statement) -> Iterator[tuple[str, Node, bool]]:
    """(verb, UPDATE/DELETE node, whether it sits in a WITH) for each row change the statement makes."""
    if stmt.kind in _DML:
        yield ("UPDATE" if stmt.kind == "UpdateStmt" else "DELETE"), stmt.node, False
    with_clause = stmt.node.get("withClause", {})
    for kind, verb in (("UpdateStmt", "UPDATE"), ("DeleteStmt", "DELETE")):
        for node in walk_nodes(with_clause, kind):
            yield verb, node, True


class RequireBatchedUpdate(Rule):
    """A full-table UPDATE or DELETE holds row locks on every row it touches until it commits.

    An `UPDATE` or `DELETE` takes ROW EXCLUSIVE on the table (no reader or writer is blocked by
    that) but it locks every row it changes until the transaction ends. On a large table that
    is minutes during which every other writer of those rows waits, the table and its indexes
    bloat with dead tuples no vacuum can reclaim, replicas fall behind, and a failure rolls the
    whole lot back.

    Safe alternative: write the plain statement and put `-- lockgate:batch` on the line right
    above it. The engine runs it in key ranges, one short transaction per batch, with a
    checkpoint after each so it resumes after a crash:

        -- lockgate:batch size=10000 key=id target=250ms
        UPDATE customers SET tier = 'bronze' WHERE tier IS NULL;

    Not flagged: a point change (a conjunct pins a key-named column, `id` or `*_id`/`*_uuid`,
    to constants or parameters, or bounds it from both sides; or it pins every column of a
    primary key, unique constraint or unique index the migration set declares), a slice picked
    with a LIMIT sub-select, a table created earlier in the same migration or in the pending
    part of the change, and DML inside a function body the migration does not call (a function
    runs when it is called, not when the migration defines it). Equality on other columns is
    flagged: `WHERE status = 'trial'` may well be most of the table.

    Also flagged: an UPDATE or DELETE inside a `WITH` (it changes rows like any other), and
    one in the body of a function or procedure the same file calls (`SELECT f()`, `CALL p()`,
    `PERFORM f()`): it runs during the migration.
    """

    code = "LG401"
    name = "require-batched-update"
    summary = "UPDATE/DELETE of many rows of an existing table in one transaction"
    kinds = _DML | {"SelectStmt", "InsertStmt"}
    bad = (
        Example("UPDATE customers SET tier = 'bronze' WHERE tier IS NULL;"),
        Example("DELETE FROM events WHERE created_at < now() - interval '90 days';"),
        Example("DO $$\nBEGIN\n    UPDATE orders SET total_cents = 0 WHERE total_cents IS NULL;\nEND $$;",
                note="DO blocks run during the migration too"),
        Example("DELETE FROM memberships WHERE team = 7;",
                before=(_MEMBERSHIPS,),
                note="only part of the primary key: a whole team's rows"),
        Example("WITH gone AS (DELETE FROM orders RETURNING 1)\nSELECT count(*) FROM gone;",
                note="a data-modifying WITH changes rows like the statement it is"),
        Example("CREATE FUNCTION purge() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n"
                "    DELETE FROM events;\nEND $$;\nSELECT purge();",
                note="the migration calls the function, so its body runs now"),
    )
    good = (
        Example("-- lockgate:batch size=10000 key=id\nUPDATE customers SET tier = 'bronze' WHERE tier IS NULL;"),
        Example("UPDATE customers SET email = 'ops@example.com' WHERE id = 42;"),
        Example("DELETE FROM orders WHERE id >= 1000 AND id < 2000;"),
        Example("CREATE TABLE tiers (id bigint PRIMARY KEY, name text);\nUPDATE tiers SET name = lower(name);"),
        Example("DELETE FROM credential_types WHERE name = 'totp';",
                before=("CREATE TABLE credential_types (id uuid PRIMARY KEY, name varchar(32) NOT NULL UNIQUE);",),
                note="an earlier migration made name unique: one row"),
        Example("UPDATE memberships SET role = 'owner' WHERE team = 7 AND member = 9;",
                before=(_MEMBERSHIPS,),
                note="every column of the primary key is pinned"),
        Example("CREATE FUNCTION purge() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n"
                "    DELETE FROM events;\nEND $$;",
                note="defined, not called: it runs when the application calls it"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if ctx.sql is None or not ctx.sql.runs(stmt):
            return
        in_plpgsql = stmt.parent is not None
        for verb, node, in_with in _changes(stmt):
            relation = node.get("relation", {})
            if (stmt.batch is not None and not in_with) or ctx.is_new(relation):
                continue
            where = node.get("whereClause")
            if bounded(where, in_plpgsql, text=stmt.text):
                continue
            # The set's unique keys are read only when the key names alone do not settle it and
            # some column is pinned to a value: the model costs a replay of the earlier migrations.
            if where and any(_pinned(where, in_plpgsql)) and _bounded(where, in_plpgsql, ctx.unique_keys(relation)):
                continue
            change = f"{verb} of {table_name(relation)}" + (" in a WITH" if in_with else "")
            in_function = stmt.parent is not None and stmt.parent.kind == "CreateFunctionStmt"
            if in_function:
                assert stmt.parent is not None
                change += f" in {function_name(stmt.parent)}(), which this migration calls,"
            fix = ("write it as a statement of its own with -- lockgate:batch on the line above it"
                   if in_with or in_function else "put -- lockgate:batch on the line above it")
            yield (f"{change} without a key predicate locks every row it changes until commit; "
                   f"{fix} to run it in key ranges, one transaction each")


class HandWrittenBatchLoop(Rule):
    """A PL/pgSQL loop that updates a LIMIT-ed slice per pass is a batch job lockgate already runs.

    The usual pre-lockgate backfill is a `DO` block (or procedure) that loops over
    `UPDATE … WHERE id IN (SELECT id … WHERE <not done> LIMIT n)` and `COMMIT`s per pass.
    Each pass re-scans the table to find the rows not done yet, so the job gets slower as it
    goes; nothing records where it stopped, so a crash starts over; without the `COMMIT` the
    whole loop is one transaction holding every row lock; and no pause lets replicas catch up.

    Safe alternative: write the plain statement at the top level of the file and let the
    engine batch it by key range with checkpoints, adaptive size and pauses:

        -- lockgate:batch size=10000 key=id target=250ms pause=50ms
        UPDATE customers SET tier = 'bronze' WHERE tier IS NULL;
    """

    code = "LG402"
    name = "hand-written-batch-loop"
    summary = "PL/pgSQL loop updating LIMIT-ed slices; use -- lockgate:batch"
    kinds = _DML
    bad = (
        Example(
            "DO $$\nBEGIN\n    LOOP\n"
            "        UPDATE customers SET tier = 'bronze'\n"
            "        WHERE id IN (SELECT id FROM customers WHERE tier IS NULL LIMIT 5000);\n"
            "        EXIT WHEN NOT FOUND;\n        COMMIT;\n    END LOOP;\nEND $$;"
        ),
    )
    good = (
        Example("-- lockgate:batch size=5000 key=id\nUPDATE customers SET tier = 'bronze' WHERE tier IS NULL;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if stmt.parent is None or not has_limit(stmt.node, stmt.text):
            return
        yield (
            f"hand-written batching loop over {table_name(stmt.node.get('relation', {}))}: it rescans for "
            f"unfinished rows each pass and cannot resume; write the plain statement at top level under "
            f"-- lockgate:batch"
        )


class UnboundedInsertSelect(Rule):
    """`INSERT … SELECT` copying a whole existing table runs as one long statement and transaction.

    The copy reads the source under ACCESS SHARE, so nobody is blocked, but one statement that
    copies millions of rows runs for minutes: it holds back vacuum on every table while it
    runs, writes the WAL in one burst that replicas must replay, and meets the engine's
    `statement_timeout` on a large table, which rolls the whole copy back.

    Safe alternative: copy in key ranges, one bounded statement each
    (`INSERT INTO orders_archive SELECT * FROM orders WHERE id >= 1 AND id < 100001;`), or keep
    the data where it is and backfill a new column with a batched UPDATE (`-- lockgate:batch`).
    A copy from a table created earlier in the same migration, or one whose SELECT pins a key or
    has a LIMIT, is not flagged.
    """

    code = "LG403"
    name = "unbounded-insert-select"
    severity = Severity.WARNING
    summary = "INSERT … SELECT copying every row of an existing table at once"
    kinds = frozenset({"InsertStmt"})
    bad = (Example("INSERT INTO orders_archive (id, total_cents) SELECT id, total_cents FROM orders;"),)
    good = (
        Example("INSERT INTO orders_archive (id, total_cents)\n"
                "SELECT id, total_cents FROM orders WHERE id >= 1 AND id < 100001;"),
        Example("INSERT INTO tiers (name) VALUES ('bronze'), ('silver'), ('gold');"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if ctx.sql is None or not ctx.sql.runs(stmt):
            return
        select = stmt.node.get("selectStmt", {}).get("SelectStmt")
        if not select or "limitCount" in select:
            return
        if bounded(select.get("whereClause"), stmt.parent is not None, text=stmt.text):
            return
        ctes = {c.get("CommonTableExpr", {}).get("ctename") for c in stmt.node.get("withClause", {}).get("ctes", [])}
        sources = [
            rv for item in select.get("fromClause", []) for rv in _range_vars(item)
            if rv.get("relname") not in ctes and not ctx.is_new(rv)
        ]
        if sources:
            yield (
                f"INSERT … SELECT copies every row of {table_name(sources[0])} in one statement and transaction; "
                f"copy in key ranges (WHERE id >= … AND id < …), one bounded statement each"
            )


def _range_vars(from_item: Node) -> Iterator[Node]:
    """Tables read by one FROM item, through joins (not sub-selects)."""
    if "RangeVar" in from_item:
        yield from_item["RangeVar"]
    elif "JoinExpr" in from_item:
        join = from_item["JoinExpr"]
        yield from _range_vars(join.get("larg", {}))
        yield from _range_vars(join.get("rarg", {}))


# Every statement node name, so the directive check sees whatever statement a directive precedes.
_EVERY_KIND = frozenset(n.removeprefix("T_") for n in NodeTag.__members__ if n.endswith("Stmt")) | frozenset({
    "PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback", "PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors",
    "PLpgSQL_stmt_call",
})


def _cannot_batch(stmt: Statement, ctx: Context) -> str | None:
    """Why the engine cannot run `stmt` in key ranges, or None when it can."""
    node = stmt.node
    if stmt.parent is not None:
        return "is inside a PL/pgSQL body; the engine batches top-level statements only"
    if stmt.kind not in _DML:
        words = " ".join(stmt.text.split()[:2]).upper()
        return f"is on {words}, not an UPDATE or DELETE; it batches a single-table UPDATE or DELETE only"
    if node.get("returningClause") or node.get("returningList"):
        return "is on a statement with RETURNING; the rows of each batch would go nowhere"
    if has_limit(node, stmt.text):
        return "is on a statement that already picks its rows with a LIMIT; drop the LIMIT, the engine picks ranges"
    if next(walk_nodes(node.get("whereClause", {}), "CurrentOfExpr"), None) is not None:
        return "is on WHERE CURRENT OF, a single cursor row"
    if ctx.explicit_tx > 0:
        return "is inside BEGIN … COMMIT written in the file; each batch needs its own transaction"
    return None


class MisplacedBatchDirective(Rule):
    """A `-- lockgate:batch` directive the engine cannot honour does nothing, silently.

    The directive applies to the statement on the line right below it (other comment lines may
    sit between them, a blank line may not). The engine batches one kind of statement: a
    top-level `UPDATE` or `DELETE` of one table, which it runs in key ranges by adding a range
    predicate, one transaction per batch. Anywhere else the author believes the change is
    batched while it runs as one long transaction, or not at all:

    - on another kind of statement (`INSERT`, `ALTER TABLE`, a `DO` block …);
    - inside a PL/pgSQL body (a `DO` block or function);
    - with `RETURNING` (the rows of each batch go nowhere) or a LIMIT-ed sub-select (the
      statement already picks its own slice, so keyset ranges would skip rows);
    - inside `BEGIN … COMMIT` written in the file (batches cannot commit on their own);
    - attached to no statement at all: followed by a blank line, or at the end of the file.

    Safe alternative: put the directive directly above the plain, top-level statement:

        -- lockgate:batch size=10000 key=id
        UPDATE customers SET tier = 'bronze' WHERE tier IS NULL;
    """

    code = "LG404"
    name = "misplaced-batch-directive"
    summary = "-- lockgate:batch where the engine cannot batch (or attached to nothing)"
    kinds = _EVERY_KIND
    bad = (
        Example("-- lockgate:batch size=1000\nINSERT INTO tiers (name) VALUES ('gold');"),
        Example("-- lockgate:batch size=1000\n\nUPDATE customers SET tier = 'bronze' WHERE id = 1;",
                note="a blank line detaches the directive"),
        Example("-- lockgate:batch key=id\nDELETE FROM sessions WHERE id = 7 RETURNING id;"),
    )
    good = (Example("-- lockgate:batch size=1000 key=id\nDELETE FROM sessions WHERE expires_at < now();"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if stmt.batch is not None:
            reason = _cannot_batch(stmt, ctx)
            if reason:
                yield Hit(f"-- lockgate:batch {reason}", line=stmt.batch.line, column=1)
        if not ctx.previous and ctx.sql is not None:
            yield from self._unattached(ctx)

    @staticmethod
    def _unattached(ctx: Context) -> Iterator[Hit]:
        """Batch directives no statement of the file carries, checked once per file."""
        assert ctx.sql is not None
        attached = {d.line for s in ctx.sql.walk() for d in s.directives}
        for line, directive in sorted(ctx.sql.directives.items()):
            if isinstance(directive, Batch) and line not in attached:
                yield Hit(
                    "-- lockgate:batch is attached to no statement; put it on the line right above the UPDATE "
                    "or DELETE, with no blank line between",
                    line=line, column=1,
                )
