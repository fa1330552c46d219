"""The benchmark's data and its concurrent writer.

Customers and orders come from the example migration set; the order distribution is
deterministic (setseed): a fifth of the customers have no order, the rest one to six orders
whose totals spread the customers over the three tiers.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from lockgate.hooks.sqlmodel import parse_sql

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "migrations"
CREATE = MIGRATIONS / "20240101000000_create_customers_and_orders.up.sql"
TIER = MIGRATIONS / "20240115093000_add_customer_tier.up.sql"
SEED = ROOT / "tests" / "fixtures" / "seed_original_add_customer_tier.sql"

# The correct tier of every customer, the same rule as the migration's validation file.
MISMATCHES = """
SELECT count(*) FROM customers AS c
LEFT JOIN (SELECT customer_id, sum(total_cents) AS total FROM orders GROUP BY customer_id) AS t
       ON t.customer_id = c.id
WHERE c.tier IS DISTINCT FROM CASE
          WHEN coalesce(t.total, 0) >= 100000 THEN 'gold'
          WHEN coalesce(t.total, 0) >= 20000 THEN 'silver'
          ELSE 'bronze'
      END
"""


def statements(path: Path) -> list[str]:
    return [s.text for s in parse_sql(path, path.read_text()).statements]


def load(conn: psycopg.Connection, customers: int) -> int:
    """Create the tables from the first migration and fill them; returns the number of orders."""
    for text in statements(CREATE):
        conn.execute(text)
    conn.execute("SELECT setseed(0.42)")
    conn.execute(
        "INSERT INTO customers (email, created_at)"
        " SELECT 'customer' || g || '@example.com', timestamptz '2020-01-01' + g * interval '1 minute'"
        " FROM generate_series(1, %s) AS g",
        (customers,),
    )
    # The orders' foreign key is checked row by row by a trigger; the data is right by
    # construction, so loading skips the triggers as pg_restore does.
    conn.execute("SET session_replication_role = replica")
    conn.execute(
        "INSERT INTO orders (customer_id, total_cents, created_at)"
        " SELECT c, (random() * random() * 80000)::bigint, timestamptz '2023-01-01' + c * interval '1 second'"
        " FROM generate_series(1, %s) AS c"
        " CROSS JOIN LATERAL generate_series(1, CASE WHEN random() < 0.2 THEN 0"
        "                                            ELSE 1 + (random() * 5)::int + c * 0 END)",
        (customers,),
    )
    conn.execute("RESET session_replication_role")
    conn.execute("VACUUM ANALYZE customers")
    conn.execute("VACUUM ANALYZE orders")
    conn.execute("CHECKPOINT")
    row = conn.execute("SELECT count(*) FROM orders").fetchone()
    return int(row[0]) if row else 0


def before_backfill(conn: psycopg.Connection) -> None:
    """The tier migration's statements before its backfill: column, default, NOT VALID check."""
    for text in statements(TIER)[:-1]:
        conn.execute(text)


def backfill_statement() -> str:
    return statements(TIER)[-1]


@dataclass(frozen=True, slots=True)
class Sample:
    finished: float  # time.monotonic()
    service_s: float  # from sending the statement to its result
    scheduled_s: float  # from when it was due: includes waiting behind a blocked one
    kind: str


@dataclass
class Writer:
    """Single-row inserts and updates on customers at a steady total rate, each timed.

    `threads` connections share the rate, as an application's pool would: an UPDATE blocked
    on a row lock stalls its own connection only. A rate of 0 runs no writer.
    """

    dsn: str
    customers: int
    rate_per_s: float = 200.0
    threads: int = 4
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    workers: list[threading.Thread] = field(default_factory=list)

    def _loop(self, number: int) -> None:
        rng = random.Random(number)
        interval = self.threads / self.rate_per_s
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            due = time.monotonic() + interval * number / self.threads
            n = 0
            while not self.stop.wait(max(due - time.monotonic(), 0)):
                n += 1
                started = time.monotonic()
                if n % 2:
                    conn.execute("INSERT INTO customers (email) VALUES (%s)", (f"new{number}.{n}@example.com",))
                    kind = "insert"
                else:
                    conn.execute("UPDATE customers SET email = %s WHERE id = %s",
                                 (f"changed{number}.{n}@example.com", rng.randint(1, self.customers)))
                    kind = "update"
                finished = time.monotonic()
                self.samples.append(Sample(finished, finished - started, finished - due, kind))
                due += interval

    def __enter__(self) -> Writer:
        for number in range(self.threads if self.rate_per_s > 0 else 0):
            worker = threading.Thread(target=self._loop, args=(number,), name=f"writer-{number}", daemon=True)
            worker.start()
            self.workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join()
