"""The SQL of one batch: the author's UPDATE/DELETE with a key range added to its WHERE clause.

Pure: text in, text out, no database. The range predicate is added to the statement's parse
tree (pglast) and the tree is printed back, so `UPDATE … FROM`, `DELETE … USING`, `WITH` and
statements without a WHERE clause all get the same treatment. Every query made here takes
its values as `$n` parameters (run them with psycopg's RawCursor) and reads keys back as
text, so integer, uuid, text and timestamp keys all travel the same way: the server infers
the key's type for a parameter compared with the key column.

Each query comes in two forms (see `Ranged`): from the start of the table, before any batch
is done, and after the last key done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pglast import ast, enums, parser, visitors
from pglast.stream import RawStream


class NotBatchable(ValueError):
    """The statement cannot run in key ranges; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class Target:
    """The table an UPDATE or DELETE writes to, as the statement names it."""

    verb: str  # "UPDATE" or "DELETE"
    schema: str | None
    table: str
    alias: str | None

    @property
    def qualifier(self) -> tuple[str, ...]:
        """How the statement refers to the target: its alias, else its (qualified) name."""
        if self.alias:
            return (self.alias,)
        return (self.schema, self.table) if self.schema else (self.table,)

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table


@dataclass(frozen=True, slots=True)
class Ranged:
    """One query in two forms; `after` takes the last key done as its first parameter."""

    from_start: str
    after: str

    def bind(self, lower: str | None, *params: object) -> tuple[str, tuple[object, ...]]:
        if lower is None:
            return self.from_start, params
        return self.after, (lower, *params)


@dataclass(frozen=True, slots=True)
class BatchQueries:
    """Everything the runner sends for one batched statement (parameters after the lower key)."""

    target: Target
    key: str
    batch: Ranged  # the statement limited to (lower, $upper]
    next_upper: Ranged  # ($end, $offset) -> key::text `offset` keys on: the upper bound of a batch
    count_keys: Ranged  # count(*) of keys in (lower, $end]
    last_key: str  # the largest key as text: where the run ends


class _Refusals(visitors.Visitor):
    """Collects what makes a statement unsafe to split into batches."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def visit_SelectStmt(self, ancestors: Any, node: ast.SelectStmt) -> None:
        if node.limitCount is not None or node.limitOffset is not None:
            self.reasons.append("LIMIT/OFFSET picks different rows in every batch")

    def visit_CurrentOfExpr(self, ancestors: Any, node: ast.CurrentOfExpr) -> None:
        self.reasons.append("WHERE CURRENT OF names one row, there is nothing to batch")

    def visit_CommonTableExpr(self, ancestors: Any, node: ast.CommonTableExpr) -> None:
        if not isinstance(node.ctequery, ast.SelectStmt):
            self.reasons.append("a data-modifying WITH query would run again in every batch")


def _parse_writer(text: str) -> ast.UpdateStmt | ast.DeleteStmt:
    """The one UPDATE or DELETE in `text`."""
    try:
        raws = parser.parse_sql(text)
    except parser.ParseError as exc:
        raise NotBatchable(f"cannot parse the statement: {exc.args[0]}") from None
    if len(raws) != 1:
        raise NotBatchable(f"expected one statement, found {len(raws)}")
    stmt = raws[0].stmt
    if not isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt) or stmt.relation is None:
        raise NotBatchable(f"only UPDATE or DELETE can be batched, not {type(stmt).__name__}")
    return stmt


def target_of(text: str) -> Target:
    """The written table of a batchable statement; raises NotBatchable for anything else."""
    stmt = _parse_writer(text)
    verb = "UPDATE" if isinstance(stmt, ast.UpdateStmt) else "DELETE"
    if stmt.returningClause is not None:
        raise NotBatchable("RETURNING would hand back one batch at a time; remove it")
    refusals = _Refusals()
    refusals(stmt)
    if refusals.reasons:
        raise NotBatchable(refusals.reasons[0])
    relation = stmt.relation
    assert relation is not None and relation.relname is not None
    alias = relation.alias.aliasname if relation.alias is not None else None
    return Target(verb=verb, schema=relation.schemaname, table=relation.relname, alias=alias)


def _column(*names: str) -> ast.ColumnRef:
    return ast.ColumnRef(fields=tuple(ast.String(sval=n) for n in names))


def _compare(op: str, left: ast.Node, right: ast.Node) -> ast.A_Expr:
    return ast.A_Expr(kind=enums.A_Expr_Kind.AEXPR_OP, name=(ast.String(sval=op),), lexpr=left, rexpr=right)


def _all(*conditions: ast.Node | None) -> ast.Node | None:
    present: tuple[ast.Node, ...] = ()
    for c in conditions:
        if isinstance(c, ast.BoolExpr) and c.boolop == enums.BoolExprType.AND_EXPR and c.args:
            present += tuple(c.args)
        elif c is not None:
            present += (c,)
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return ast.BoolExpr(boolop=enums.BoolExprType.AND_EXPR, args=present)


def _range(key: ast.ColumnRef, has_lower: bool, first_param: int) -> ast.Node | None:
    """`key > $1 AND key <= $2` (or only the upper half from the start of the table)."""
    param = first_param
    lower = None
    if has_lower:
        lower = _compare(">", key, ast.ParamRef(number=param))
        param += 1
    return _all(lower, _compare("<=", key, ast.ParamRef(number=param)))


def _as_text(node: ast.Node) -> ast.TypeCast:
    return ast.TypeCast(arg=node, typeName=ast.TypeName(names=(ast.String(sval="text"),)))


def _deparse(node: ast.Node) -> str:
    return str(RawStream()(node))


def _bounded_statement(text: str, target: Target, key: str, has_lower: bool) -> str:
    stmt = _parse_writer(text)
    stmt.whereClause = _all(stmt.whereClause, _range(_column(*target.qualifier, key), has_lower, 1))
    return _deparse(stmt)


def _relation(target: Target) -> ast.RangeVar:
    return ast.RangeVar(schemaname=target.schema, relname=target.table, inh=True, relpersistence="p")


def _by(column: ast.ColumnRef, direction: enums.SortByDir) -> ast.SortBy:
    return ast.SortBy(node=column, sortby_dir=direction, sortby_nulls=enums.SortByNulls.SORTBY_NULLS_DEFAULT)


def _over_table(target: Target, key: str, has_lower: bool, value: ast.Node, page: bool) -> str:
    """`SELECT value FROM target WHERE key in (lower, $end]`, as one page of one row if `page`."""
    column = _column(key)
    stmt = ast.SelectStmt(
        # Named, so that ORDER BY below sorts by the key and not by this (text) output column.
        targetList=(ast.ResTarget(name="batch_value", val=value),),
        fromClause=(_relation(target),),
        whereClause=_range(column, has_lower, 1),
        limitOption=enums.LimitOption.LIMIT_OPTION_DEFAULT,
        op=enums.SetOperation.SETOP_NONE,
    )
    if page:
        stmt.sortClause = (_by(column, enums.SortByDir.SORTBY_DEFAULT),)
        stmt.limitCount = ast.A_Const(val=ast.Integer(ival=1))
        stmt.limitOffset = ast.ParamRef(number=3 if has_lower else 2)
        stmt.limitOption = enums.LimitOption.LIMIT_OPTION_COUNT
    return _deparse(stmt)


def _both(build: Callable[[bool], str]) -> Ranged:
    return Ranged(from_start=build(False), after=build(True))


def batch_queries(text: str, key: str) -> BatchQueries:
    """The queries that run `text` in ranges of `key`; raises NotBatchable like `target_of`."""
    target = target_of(text)
    column = _column(key)
    count = ast.FuncCall(funcname=(ast.String(sval="count"),), agg_star=True)
    # Not max(key): there is no max() for uuid, while every orderable type sorts.
    last_key = ast.SelectStmt(
        targetList=(ast.ResTarget(name="batch_value", val=_as_text(column)),),
        fromClause=(_relation(target),),
        sortClause=(_by(column, enums.SortByDir.SORTBY_DESC),),
        limitCount=ast.A_Const(val=ast.Integer(ival=1)),
        limitOption=enums.LimitOption.LIMIT_OPTION_COUNT,
        op=enums.SetOperation.SETOP_NONE,
    )
    return BatchQueries(
        target=target,
        key=key,
        batch=_both(lambda lower: _bounded_statement(text, target, key, lower)),
        # Keyset pagination: an index scan from the lower key that reads `offset` entries, so
        # every batch costs the same however far into the table it is.
        next_upper=_both(lambda lower: _over_table(target, key, lower, _as_text(column), page=True)),
        count_keys=_both(lambda lower: _over_table(target, key, lower, count, page=False)),
        last_key=_deparse(last_key),
    )
