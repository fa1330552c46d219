"""The migration sets the crash tests kill `lockgate apply` in, and how often each passes a fault point.

- `example`: the worked example in migrations/ (customers and orders already there, seeded),
  its tier backfill in batches of 250 so it takes 12 batches; then the atomic VALIDATE and
  the CONCURRENTLY index.
- `multistep`: a no-transaction file (a column, a non-idempotent UPDATE, a CONCURRENTLY
  index) and a transaction → batch → transaction migration.
- `rollback`: committed steps (a column, a batched UPDATE, a table) whose gate fails, so the
  down runs — itself a transaction, a batched UPDATE and a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from applyhelp import CREATE, add, example_copy, fast_settings, only, seed

from lockgate.controller.engine import Engine
from lockgate.hooks import migrationset

from .harness import count_updates


@dataclass(frozen=True)
class Scenario:
    name: str
    tables: tuple[str, ...]  # whose data and per-row update counts are compared
    write: Callable[[Path], Path]  # writes the migrations directory under the given folder
    prepare: Callable[[str], None]  # readies the template database
    points: dict[str, int]  # fault point -> passes in one uninterrupted run
    exit_code: int  # of an uninterrupted `lockgate apply`
    # point -> a query that must answer true right after the kill (what a crash left behind)
    after_kill: dict[str, str] = field(default_factory=dict)

    def kill_points(self) -> list[str]:
        return [f"{point}:{n}" for point, count in self.points.items() for n in range(1, count + 1)]


def _example_dir(folder: Path) -> Path:
    directory = example_copy(folder)
    up = next(directory.glob("*_add_customer_tier.up.sql"))
    text = up.read_text()
    directive = "size=10000 key=id target=250ms"
    assert directive in text, "the example's batch directive changed: update this scenario"
    up.write_text(text.replace(directive, "size=250 key=id workers=2"))
    return directory


def slow_backfill(directory: Path, pause: str = "80ms") -> None:
    """Pause between the tier backfill's batches, so the backfill lasts about a second."""
    up = next(directory.glob("*_add_customer_tier.up.sql"))
    up.write_text(up.read_text().replace("size=250 key=id", f"size=250 key=id pause={pause}"))


def _prepare_example(dsn: str, folder: Path) -> None:
    directory = example_copy(folder)
    only(directory, CREATE)
    with Engine(fast_settings(), dsn) as engine:
        (create,) = engine.pending(migrationset.load(directory))
        assert engine.apply(create).status == "applied"
    seed(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        count_updates(conn, "customers")


ITEMS = 2000


def _prepare_items(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, n bigint NOT NULL, touched int NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO items (id, n) SELECT g, g * 7 FROM generate_series(1, %s) AS g", (ITEMS,))
        conn.execute("ANALYZE items")
        count_updates(conn, "items")


def _multistep_dir(folder: Path) -> Path:
    directory = folder / "migrations"
    add(directory, "1000", "no_transaction",
        up="-- lockgate:no-transaction\n"
           "ALTER TABLE items ADD COLUMN flag int;\n"
           "UPDATE items SET touched = touched + 1 WHERE id <= 500;\n"
           "CREATE INDEX CONCURRENTLY items_flag_idx ON items (flag);\n",
        down="-- lockgate:no-transaction\n"
             "DROP INDEX CONCURRENTLY items_flag_idx;\nALTER TABLE items DROP COLUMN flag;\n",
        validate="-- Gate: the index is valid.\n"
                 "SELECT indisvalid AS flag_index_valid FROM pg_index WHERE indexrelid = 'items_flag_idx'::regclass;\n")
    add(directory, "2000", "multi_step",
        up="ALTER TABLE items ADD COLUMN doubled bigint;\n"
           "-- lockgate:batch size=200\n"
           "UPDATE items SET doubled = n * 2, touched = touched + 1;\n"
           "CREATE INDEX items_doubled_idx ON items (doubled);\n",
        down="DROP INDEX items_doubled_idx;\nALTER TABLE items DROP COLUMN doubled;\n",
        validate="-- Gate: every row doubled.\n"
                 "SELECT count(*) = 0 AS all_doubled FROM items WHERE doubled IS DISTINCT FROM n * 2;\n")
    return directory


def _tagging_dir(folder: Path, version: str, name: str, validate: str) -> Path:
    """One migration tagging every item in a batched UPDATE between two transactional steps, whose
    down undoes it the same way; `validate` decides whether its gate passes."""
    directory = folder / "migrations"
    add(directory, version, name,
        up="ALTER TABLE items ADD COLUMN tag text;\n"
           "-- lockgate:batch size=250\n"
           "UPDATE items SET tag = 'x', touched = touched + 1;\n"
           "CREATE TABLE item_tags (tag text PRIMARY KEY);\n",
        down="DROP TABLE item_tags;\n"
             "-- lockgate:batch size=250\n"
             "UPDATE items SET touched = touched - 1;\n"
             "ALTER TABLE items DROP COLUMN tag;\n",
        validate=validate)
    return directory


def _rollback_dir(folder: Path) -> Path:
    return _tagging_dir(folder, "3000", "gate_fails",
                        "-- Gate: never passes.\nSELECT count(*) = 0 AS no_items FROM items;\n")


_NO_TIER = "SELECT NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'tier')"
_NOT_VALIDATED = "SELECT NOT convalidated FROM pg_constraint WHERE conname = 'customers_tier_check'"
_CHECKPOINT_MATCHES_DATA = (
    "SELECT (SELECT count(*) FROM customers WHERE tier IS NOT NULL) = "
    "(SELECT sum(rows_done) FROM lockgate.batch_checkpoints WHERE version = '20240115093000')"
)


def scenarios(template_folder: Callable[[str], Path]) -> dict[str, Scenario]:
    return {
        "example": Scenario(
            "example", ("customers",), _example_dir,
            lambda dsn: _prepare_example(dsn, template_folder("example")),
            {"statement": 5, "step": 4, "batch": 12, "gate": 6}, 0,
            after_kill={
                "statement:1": _NO_TIER, "statement:3": _NO_TIER, "statement:4": _NOT_VALIDATED,
                "gate:5": _NOT_VALIDATED, **{f"batch:{n}": _CHECKPOINT_MATCHES_DATA for n in range(1, 13)},
            },
        ),
        "multistep": Scenario(
            "multistep", ("items",), _multistep_dir, _prepare_items,
            {"statement": 5, "step": 6, "batch": 10, "gate": 2}, 0,
        ),
        "rollback": Scenario(
            "rollback", ("items",), _rollback_dir, _prepare_items,
            {"statement": 2, "step": 3, "batch": 16, "gate": 1, "undo": 2}, 1,
        ),
    }


def revertible_dir(folder: Path) -> Path:
    """One migration whose down has committed steps: a transaction, a batched UPDATE, a transaction."""
    return _tagging_dir(folder, "4000", "revertible",
                        "-- Gate: every item tagged.\nSELECT count(*) = 0 AS tagged FROM items WHERE tag IS NULL;\n")


# Kill points of rolling 4000_revertible back: after its first down statement (inside the
# down's first transaction), after each of the down's 8 batches, after its last statement.
REVERT_POINTS = ["undo:1", *(f"batch:{n}" for n in range(1, 9)), "undo:2"]
