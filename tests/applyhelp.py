"""Migration directories and data for the apply-engine tests.

    d = example_copy(tmp_path)                       # the worked example in migrations/, editable
    add(d, "20250101000000", "add_x", up="…", down="…", validate="…")
    seed(db)                                          # customers and orders, a few thousand rows
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from lockgate.controller.config import Settings
from lockgate.controller.ledger import WAITING

EXAMPLE = Path(__file__).resolve().parent.parent / "migrations"
CREATE = "20240101000000"
TIER = "20240115093000"
VALIDATE_CHECK = "20240115093100"
INDEX = "20240115093200"
CUSTOMERS = 3000


def fast_settings(**overrides: object) -> Settings:
    """Short lock timeouts and backoffs so retries happen within a test's time."""
    values: dict[str, object] = {"lock_timeout": 0.2, "retry_backoff": 0.05, "lock_retries": 2, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


def example_copy(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(EXAMPLE, target)
    (target / "lockgate.sum").unlink()
    return target


def add(directory: Path, version: str, name: str, *, up: str, down: str, validate: str = "SELECT true AS ok;") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for kind, text in (("up", up), ("down", down), ("validate", validate)):
        (directory / f"{version}_{name}.{kind}.sql").write_text(text)


def only(directory: Path, *versions: str) -> None:
    """Keep only these migrations' files in `directory`."""
    for path in directory.glob("*.sql"):
        if path.name.split("_", 1)[0] not in versions:
            path.unlink()


def seed(dsn: str, customers: int = CUSTOMERS) -> None:
    """Customers with orders whose totals put them in every tier (the tables must exist)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO customers (email) SELECT 'c' || g || '@example.com' FROM generate_series(1, %s) AS g",
            (customers,),
        )
        conn.execute(
            "INSERT INTO orders (customer_id, total_cents) "
            "SELECT c.id, (c.id % 7) * 30000 FROM customers AS c, generate_series(1, 2)"
        )
        conn.execute("ANALYZE customers")
        conn.execute("ANALYZE orders")


def scalar(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
    return None if row is None else row[0]


def execute(dsn: str, query: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query.encode())


# Appliers started with --wait that wait for the applier lock on this database.
WAITING_APPLIERS = (
    f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{WAITING}' AND datname = current_database()"
)
