"""A deterministic corpus of migration files for timing linters side by side.

Each file is about 40 lines of the DDL and DML real migrations hold: new tables, columns,
indexes (some concurrent), constraints added NOT VALID and validated, backfills, a DO
block now and then. The same seed always gives the same files.
"""

from __future__ import annotations

import random
from pathlib import Path

SEED = 20240115
LINES_PER_FILE = 40

_TYPES = ("bigint", "integer", "text", "varchar(64)", "timestamptz", "boolean", "numeric(12,2)", "jsonb")
_DEFAULTS = ("0", "'none'", "now()", "false", "'{}'::jsonb")


def _ident(rng: random.Random, prefix: str) -> str:
    return f"{prefix}_{rng.randrange(10_000):04d}"


def _create_table(rng: random.Random, table: str) -> list[str]:
    columns = [f"    {_ident(rng, 'c')} {rng.choice(_TYPES)}" for _ in range(rng.randint(2, 5))]
    return [f"CREATE TABLE {table} (", "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,",
            ",\n".join(columns), ");"]


def _statement(rng: random.Random, tables: list[str]) -> list[str]:
    table = rng.choice(tables)
    column = _ident(rng, "c")
    choice = rng.randrange(12)
    if choice == 0:
        new = _ident(rng, "t")
        tables.append(new)
        return _create_table(rng, new)
    if choice == 1:
        return [f"ALTER TABLE {table} ADD COLUMN {column} {rng.choice(_TYPES)};"]
    if choice == 2:
        return [f"ALTER TABLE {table} ADD COLUMN {column} integer NOT NULL DEFAULT {rng.randint(0, 9)};"]
    if choice == 3:
        concurrently = rng.choice(("", "CONCURRENTLY "))
        return [f"CREATE INDEX {concurrently}{table}_{column}_idx ON {table} ({column});"]
    if choice == 4:
        name = f"{table}_{column}_check"
        return [f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({column} IS NOT NULL) NOT VALID;",
                f"ALTER TABLE {table} VALIDATE CONSTRAINT {name};"]
    if choice == 5:
        return ["-- lockgate:batch size=5000 key=id", f"UPDATE {table}", f"   SET {column} = {rng.choice(_DEFAULTS)}",
                f" WHERE {column} IS NULL;"]
    if choice == 6:
        rows = rng.randint(10, 999)
        return [f"INSERT INTO {table} (id, {column})", f"SELECT g, g % 7 FROM generate_series(1, {rows}) g;"]
    if choice == 7:
        return [f"DELETE FROM {table} WHERE id < {rng.randint(100, 100_000)};"]
    if choice == 8:
        return [f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {rng.choice(_DEFAULTS)};"]
    if choice == 9:
        return ["DO $$", "BEGIN", f"    UPDATE {table} SET {column} = 1 WHERE id = {rng.randint(1, 99)};",
                f"    PERFORM count(*) FROM {table};", "END", "$$;"]
    if choice == 10:
        return [f"-- {table}: keep lookups on {column} fast", f"COMMENT ON COLUMN {table}.{column} IS 'tier';"]
    return [f"ALTER TABLE {table} RENAME COLUMN {column} TO {column}_old;"]


def migration_text(rng: random.Random) -> str:
    tables = [_ident(rng, "t") for _ in range(3)]
    lines = ["-- Description: generated benchmark migration", ""]
    while len(lines) < LINES_PER_FILE:
        lines += [*_statement(rng, tables), ""]
    return "\n".join(lines)


def write_corpus(directory: Path, files: int, seed: int = SEED) -> list[Path]:
    """`files` up migrations in `directory`, named like real ones, in version order."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(files):
        path = directory / f"{20240101000000 + n}_step_{n:04d}.up.sql"
        path.write_text(migration_text(rng))
        paths.append(path)
    return paths


def write_load(path: Path, mib: float, seed: int = SEED) -> int:
    """A data-load up migration of about `mib` MiB: one CREATE TABLE, then INSERTs of 100 rows each.
    Returns how many INSERTs it holds."""
    rng = random.Random(seed)
    size, inserts, row = int(mib * (1 << 20)), 0, 0
    with path.open("w") as out:
        out.write("-- Description: seed the ledger entries\n"
                  "CREATE TABLE entries (id bigint PRIMARY KEY, name text NOT NULL, amount numeric, note text);\n")
        while out.tell() < size:
            values = []
            for _ in range(100):
                row += 1
                amount = f"{rng.randrange(10**6)}.{rng.randrange(100):02d}"
                values.append(f"({row}, 'entry {row} {rng.random():.6f}', {amount}, 'a note for row {row}')")
            out.write("INSERT INTO entries (id, name, amount, note) VALUES\n  " + ",\n  ".join(values) + ";\n")
            inserts += 1
    return inserts
