"""Identifiers from files and settings reach PostgreSQL quoted, never spliced into SQL text.

One test runs the real engine with hostile names everywhere it builds SQL (the ledger schema, a
batched backfill's table, key and column) and checks that nothing was injected; another scans the
controller's source for SQL built with f-strings, `%` or `str.format`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from tests.clirun import lockgate

CONTROLLER = Path(__file__).resolve().parent.parent / "controller"

# Each name ends an identifier, runs a statement and comments out the rest, if spliced raw.
SCHEMA = 'lock"gate; drop table victim; --'
TABLE = "we\"ird'; drop table victim; --"
KEY = 'k"ey) OR true; drop table victim; --'
COLUMN = "v\"al'; drop table victim; --"
ROWS = 10


def quoted(*names: str) -> str:
    """An identifier as a migration author writes it in SQL: double-quoted, quotes doubled."""
    return ".".join('"' + n.replace('"', '""') + '"' for n in names)


def write(directory: Path, version: str, name: str, up: str, down: str, validate: str) -> None:
    for kind, text in (("up", up), ("down", down), ("validate", validate)):
        (directory / f"{version}_{name}.{kind}.sql").write_text(text)


def hostile_migrations(directory: Path) -> None:
    table, key, column = quoted(TABLE), quoted(KEY), quoted(COLUMN)
    write(
        directory, "20240101000000", "create_weird",
        up=f"CREATE TABLE {table} ({key} bigint PRIMARY KEY, {column} int NOT NULL DEFAULT 0);\n"
           f"INSERT INTO {table} ({key}) SELECT g FROM generate_series(1, {ROWS}) AS g;\n",
        down=f"DROP TABLE {table};\n",
        validate=f"SELECT count(*) = {ROWS} AS all_rows FROM {table};\n",
    )
    write(
        directory, "20240102000000", "backfill_weird",
        up=f"-- lockgate:batch size=3\nUPDATE {table} SET {column} = {key} * 2;\n",
        down=f"UPDATE {table} SET {column} = 0;\n",
        validate=f"SELECT bool_and({column} = {key} * 2) AS doubled FROM {table};\n",
    )


def test_hostile_names_are_quoted_by_the_engine_and_inject_nothing(
    db: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    conn.execute("CREATE TABLE victim (id int)")
    directory = tmp_path / "migrations"
    directory.mkdir()
    hostile_migrations(directory)
    env = {"LOCKGATE_DSN": db, "LOCKGATE_LEDGER_SCHEMA": SCHEMA, "LOCKGATE_DIR": str(directory)}

    applied = lockgate("apply", cwd=tmp_path, env=env)
    plan = lockgate("plan", cwd=tmp_path, env=env)

    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert conn.execute("SELECT to_regclass('victim') IS NOT NULL").fetchone() == (True,)
    table = sql.Identifier(TABLE)
    rows = conn.execute(
        sql.SQL("SELECT count(*), bool_and({c} = {k} * 2) FROM {t}").format(
            c=sql.Identifier(COLUMN), k=sql.Identifier(KEY), t=table)
    ).fetchone()
    assert rows == (ROWS, True)
    ledger = conn.execute(
        sql.SQL("SELECT version, status FROM {} ORDER BY version").format(sql.Identifier(SCHEMA, "migrations"))
    ).fetchall()
    assert ledger == [("20240101000000", "applied"), ("20240102000000", "applied")]
    # The batches ran and were checkpointed under the hostile schema, in more than one batch.
    batches = conn.execute(
        sql.SQL("SELECT batches_done FROM {}").format(sql.Identifier(SCHEMA, "batch_checkpoints"))
    ).fetchall()
    assert batches and batches[0][0] > 1
    # Nothing else appeared: the only schemas are the hostile one and the usual ones.
    schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'")}
    assert schemas == {"public", "information_schema", SCHEMA}


# -- static audit ------------------------------------------------------------------------------

# A string that starts like a SQL statement. The controller writes SQL keywords in capitals and
# messages in lower case, so matching capitals keeps "update {name} failed" out of the net.
_SQL_START = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE|GRANT|REVOKE|COMMENT|SET|RESET|SHOW|"
    r"WITH|VACUUM|ANALYZE|REINDEX|CLUSTER|LOCK|COPY|DO|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|DECLARE)\b"
)
# Calls whose first argument is SQL text.
_SQL_SINKS = {"execute", "executemany", "SQL", "Composed"}


def _literal_text(node: ast.expr) -> str | None:
    """The literal text at the start of a string expression, if it is one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return None


def _looks_like_sql(node: ast.expr) -> bool:
    text = _literal_text(node)
    return text is not None and bool(_SQL_START.match(text))


def _int_constants(tree: ast.Module) -> set[str]:
    """Module-level names bound to integer literals (`ROWS = 1000`, `A, B = 1, 2`)."""
    names: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = (
                zip(target.elts, node.value.elts, strict=False)
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                else [(target, node.value)]
            )
            names |= {
                t.id for t, v in pairs
                if isinstance(t, ast.Name) and isinstance(v, ast.Constant) and type(v.value) is int
            }
    return names


def _built_sql(node: ast.expr, int_constants: set[str]) -> str | None:
    """Why `node` is SQL text with values spliced in by Python string formatting, or None.

    An f-string that only fills in the module's own integer constants splices no input."""
    if isinstance(node, ast.JoinedStr) and _looks_like_sql(node) and any(
        isinstance(v, ast.FormattedValue)
        and not (isinstance(v.value, ast.Name) and v.value.id in int_constants)
        for v in node.values
    ):
        return "f-string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _looks_like_sql(node.left):
        return "% formatting"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (
        (_looks_like_sql(node.left) and _literal_text(node.right) is None)
        or (_looks_like_sql(node.right) and _literal_text(node.left) is None)
    ):
        return "string concatenation"
    if (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
        and _looks_like_sql(node.func.value)
    ):
        return "str.format"
    return None


def _sink_argument(node: ast.Call) -> ast.expr | None:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return node.args[0] if name in _SQL_SINKS and node.args else None


def sql_building(source: str, filename: str = "<source>") -> Iterator[str]:
    """`file:line: how` for every SQL string built by Python formatting: passed straight to
    execute()/sql.SQL(), or assigned to a name first (a query kept in a variable or constant)."""
    tree = ast.parse(source, filename)
    int_constants = _int_constants(tree)
    for node in ast.walk(tree):
        candidates: list[ast.expr] = []
        if isinstance(node, ast.Call) and (argument := _sink_argument(node)) is not None:
            candidates.append(argument)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            candidates.append(node.value)
        for candidate in candidates:
            # `.encode()` of built text is still built text.
            if isinstance(candidate, ast.Call) and isinstance(candidate.func, ast.Attribute) \
                    and candidate.func.attr == "encode":
                candidate = candidate.func.value
            if (how := _built_sql(candidate, int_constants)) is not None:
                yield f"{filename}:{candidate.lineno}: SQL built with {how}"


def test_the_audit_flags_sql_built_by_string_formatting() -> None:
    unsafe = '''
cur.execute(f"SELECT * FROM {table}")
conn.execute("DROP TABLE %s" % name)
conn.execute("UPDATE {} SET x = 1".format(name))
conn.execute("DELETE FROM " + name)
conn.execute(f"TRUNCATE {name}".encode())
sql.SQL(f"CREATE INDEX ON {table} (x)")
QUERY = f"ALTER TABLE {name} ADD COLUMN y int"
'''
    safe = '''
ROWS, PAGE = 1000, 50
SEED = f"INSERT INTO t SELECT g FROM generate_series(1, {ROWS}) AS g"
cur.execute("SELECT * FROM t WHERE id = %s", (key,))
conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
conn.execute(sql.SQL(step).format(schema=ident))
conn.execute(stmt.text.encode())
log.info(f"selected {n} rows")
message = f"update {name} failed: {error}"
raise UsageError(f"SET lock_timeout: {value} is not a duration")
QUERY = "SELECT 1 " "FROM t"
'''
    found = list(sql_building(unsafe))
    assert sorted(int(line.split(":")[1]) for line in found) == list(range(2, 9))
    assert list(sql_building(safe)) == []


def test_the_controller_builds_no_sql_by_string_formatting() -> None:
    modules = sorted(CONTROLLER.rglob("*.py"))
    assert len(modules) > 20
    found = [hit for path in modules for hit in sql_building(path.read_text(), str(path.relative_to(CONTROLLER)))]
    assert found == []
