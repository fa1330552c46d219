"""Lint a rule's documented example the way `lockgate lint` lints a migration of a set.

The examples are the rules' tests and the docs' snapshots, so they go through `lint_sql` with
the same schema model and file kind a real migration gets.
"""

from __future__ import annotations

from pathlib import Path

from lockgate.hooks.lint import lint_sql
from lockgate.hooks.rules.base import Example, Finding
from lockgate.hooks.schemamodel import view_of
from lockgate.hooks.settings import DEFAULT_PG_VERSION
from lockgate.hooks.sqlmodel import parse_sql


def lint_example(example: Example, text: str | None = None) -> list[Finding]:
    """Findings for the example's SQL (or `text` in its place), as file `example.<file>.sql`."""
    pg_version = example.pg_version or DEFAULT_PG_VERSION
    earlier = [parse_sql(Path(f"{n}_earlier.up.sql"), sql) for n, sql in enumerate(example.before)]
    schema = view_of(earlier, pending=example.pending) if earlier else None
    inherited = None
    if example.file == "down":
        inherited = lint_sql(parse_sql(Path("example.up.sql"), example.up), pg_version=pg_version, schema=schema)[1]
    sql = parse_sql(Path(f"example.{example.file}.sql"), example.sql if text is None else text)
    return lint_sql(sql, pg_version=pg_version, kind=example.file, inherited=inherited, schema=schema)[0]
