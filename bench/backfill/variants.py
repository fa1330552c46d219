"""The ways the customer-tier backfill is run, each returning its per-batch trace."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.backfill.workload import SEED, TIER, backfill_statement
from lockgate.controller.backfill import BatchDone, run_batched
from lockgate.controller.config import Settings
from lockgate.hooks.directives import PREFIX, parse_directive
from lockgate.hooks.sqlmodel import Statement, parse_sql

HERE = Path(__file__).resolve().parent


@dataclass
class Trace:
    """When each batch ended (seconds from the start) and how many rows it wrote."""

    batches: list[tuple[float, int, float]] = field(default_factory=list)  # (ended_at, rows, seconds)


Variant = Callable[[str], Trace]


def _one_statement(text: str) -> Variant:
    def run(dsn: str) -> Trace:
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            rows = conn.execute(text).rowcount
            seconds = time.monotonic() - started
        return Trace([(seconds, rows, seconds)])

    return run


def _do_block(text: str) -> Variant:
    """A DO block that COMMITs per batch (so outside a transaction block); its NOTICEs time the batches."""

    def run(dsn: str) -> Trace:
        trace = Trace()
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = last = time.monotonic()

            def on_notice(diag: psycopg.errors.Diagnostic) -> None:
                nonlocal last
                m = re.fullmatch(r"batch (\d+)", diag.message_primary or "")
                if m:
                    now = time.monotonic()
                    trace.batches.append((now - started, int(m[1]), now - last))
                    last = now

            conn.add_notice_handler(on_notice)
            conn.execute(text)
        return trace

    return run


def plain_migration_update() -> Variant:
    """The migration's own UPDATE, unbatched: one statement over the whole table."""
    return _one_statement(backfill_statement())


def plain_join_update() -> Variant:
    return _one_statement((HERE / "plain_join_fixed.sql").read_text())


def seed_loop_original() -> Variant:
    do = next(s for s in parse_sql(SEED, SEED.read_text()).statements if s.kind == "DoStmt")
    return _do_block(do.text)


def seed_loop_fixed() -> Variant:
    return _do_block((HERE / "seed_loop_fixed.sql").read_text())


def lockgate_batched(settings: Settings, directive: str | None = None) -> Variant:
    """lockgate's run_batched on the migration's `-- lockgate:batch` statement, as the engine runs it;
    `directive` (the options after `-- lockgate:batch`) replaces the migration's to show the trade-offs."""
    statement = parse_sql(TIER, TIER.read_text()).statements[-1]
    assert statement.batch is not None
    if directive is not None:
        batch = parse_directive(f"{PREFIX}batch {directive}", TIER, statement.batch.line)
        statement = Statement(statement.kind, statement.node, statement.text, statement.line, statement.column,
                              statement.end_line, (batch,), statement.parent)

    def run(dsn: str) -> Trace:
        trace = Trace()
        started = time.monotonic()

        def on_batch(done: BatchDone) -> None:
            trace.batches.append((done.finished_at - started, done.rows, done.seconds))

        result = run_batched(dsn, settings=settings, version="20240115093000", step=4, statement=statement,
                             on_batch=on_batch)
        assert result.completed
        return trace

    return run
