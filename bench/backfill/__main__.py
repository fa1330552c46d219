"""Benchmark: the customer-tier backfill run as one UPDATE, as the seed's PL/pgSQL loop, and by lockgate.

    .venv/bin/python -m bench.backfill --customers 1000000

Starts a throwaway PostgreSQL with production durability (fsync, synchronous_commit and
full_page_writes on), loads customers and orders once into a template database, then runs
every variant on a fresh copy of it while a writer thread does single-row INSERTs and
UPDATEs on customers and times each. Every variant's result is checked against the tier
rule of the migration's validation file. Results, plots and a markdown table go to
bench/backfill/results/<customers>/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import psycopg
from psycopg import sql

from bench.backfill import report, variants, workload
from lockgate.controller.config import load as load_settings
from lockgate.controller.pgserver import PostgresServer, create_database, drop_database, with_dbname

log = logging.getLogger("bench.backfill")

SERVER_SETTINGS = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "2GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}
TEMPLATE = "bench_template"
REFERENCE = "plain UPDATE (migration's statement)"


def _migration_directive() -> str:
    """The options of the tier migration's own `-- lockgate:batch` line."""
    line = next(t for t in workload.TIER.read_text().splitlines() if t.startswith("-- lockgate:batch"))
    return line.removeprefix("-- lockgate:batch").strip()


def machine(conn: psycopg.Connection) -> dict[str, str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    row = conn.execute("SHOW server_version").fetchone()
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "memory_gb": f"{mem_kb / 2**20:.0f}",
            "postgres": row[0] if row else "?", "python": platform.python_version()}


def copy_template(admin: str, dbname: str) -> str:
    """A copy of the loaded template; FILE_COPY copies the files instead of writing them all to WAL."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY = FILE_COPY").format(
            sql.Identifier(dbname), sql.Identifier(TEMPLATE)))
    return with_dbname(admin, dbname)


def measure(
    admin: str, name: str, variant: variants.Variant, customers: int, *, rate: float, timed: bool
) -> Run:
    dbname = "bench_" + "".join(c if c.isalnum() else "_" for c in name.lower())[:40]
    dsn = copy_template(admin, dbname)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            workload.before_backfill(conn)
            conn.execute("CHECKPOINT")
        log.info("%s: running", name)
        with workload.Writer(dsn, customers, rate_per_s=rate) as writer:
            time.sleep(1.0)  # the writer is warm before the backfill starts
            started = time.monotonic()
            trace = variant(dsn)
            seconds = time.monotonic() - started
        # Every operation that began while the backfill ran, also one that a lock held to its end.
        samples = [replace(s, finished=s.finished - started) for s in writer.samples
                   if started <= s.finished - s.service_s <= started + seconds]
        with psycopg.connect(dsn, autocommit=True) as conn:
            nulls = conn.execute("SELECT count(*) FROM customers WHERE tier IS NULL").fetchone()
            wrong = conn.execute(workload.MISMATCHES).fetchone()
    finally:
        drop_database(admin, dbname)
    p50, p99, worst = report.latency_ms([s.service_s for s in samples])
    _, p99_due, _ = report.latency_ms([s.scheduled_s for s in samples])
    outcome = report.Outcome(
        name=name, rows=customers, seconds=seconds, batches=len(trace.batches), writer_ops=len(samples),
        writer_p50_ms=p50, writer_p99_ms=p99, writer_max_ms=worst, writer_p99_from_due_ms=p99_due,
        writer_over_50ms=sum(s.service_s > 0.05 for s in samples),
        nulls_left=int(nulls[0]) if nulls else -1, mismatches=int(wrong[0]) if wrong else -1, timed=timed,
    )
    log.info("%s: %.1fs, %s rows/s, writer p99 %.1f ms, NULL %d, wrong %d", name, seconds,
             f"{outcome.rows_per_s:,.0f}", p99, outcome.nulls_left, outcome.mismatches)
    return outcome, trace, samples


Run = tuple[report.Outcome, variants.Trace, list[workload.Sample]]


def median_run(runs: list[Run]) -> Run:
    """The run of median time, carrying every run's time."""
    ordered = sorted(runs, key=lambda r: r[0].seconds)
    outcome, trace, samples = ordered[(len(ordered) - 1) // 2]
    return replace(outcome, runs_s=[r[0].seconds for r in ordered]), trace, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--writer-rate", type=float, default=200.0,
                        help="writer operations per second (0: no writer, throughput alone)")
    parser.add_argument("--skip-seed-loop", action="store_true", help="skip the seed's loop (quadratic)")
    parser.add_argument("--skip-plain-join", action="store_true", help="skip the seed's join as one UPDATE")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="another server setting, e.g. autovacuum=off (repeatable)")
    parser.add_argument("--also-directive", action="append", default=[], metavar="OPTIONS",
                        help="also run lockgate with these batch options instead of the migration's,"
                             " e.g. 'size=10000 key=id target=100ms workers=2' (repeatable)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every timed variant this many times, interleaved; report the median run")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)

    out = args.out / str(args.customers)
    out.mkdir(parents=True, exist_ok=True)
    directive = _migration_directive()
    plan: list[tuple[str, variants.Variant, bool]] = [(REFERENCE, variants.plain_migration_update(), True)]
    if not args.skip_plain_join:
        plan.append(("plain UPDATE … FROM (seed's join, fixed)", variants.plain_join_update(), True))
    if not args.skip_seed_loop:
        plan += [
            ("seed PL/pgSQL loop as written", variants.seed_loop_original(), False),
            ("seed PL/pgSQL loop, fixed", variants.seed_loop_fixed(), True),
        ]
    plan.append((f"lockgate, the migration's directive ({directive})", variants.lockgate_batched(load_settings()),
                 True))
    plan += [(f"lockgate, directive {d}", variants.lockgate_batched(load_settings(), d), True)
             for d in args.also_directive]

    load_before = os.getloadavg()[1]
    server_settings = {**SERVER_SETTINGS, **dict(item.split("=", 1) for item in args.set)}
    with PostgresServer(settings=server_settings) as server:
        admin = server.dsn()
        template = create_database(admin, TEMPLATE)
        started = time.monotonic()
        with psycopg.connect(template, autocommit=True) as conn:
            orders = workload.load(conn, args.customers)
            host = machine(conn)
        log.info("loaded %s customers, %s orders in %.0fs", f"{args.customers:,}", f"{orders:,}",
                 time.monotonic() - started)
        idle, _, _ = measure(admin, "writer alone (no backfill)", _idle, args.customers,
                                        rate=args.writer_rate, timed=False)
        runs: dict[str, list[Run]] = {name: [] for name, _, _ in plan}
        for round_ in range(args.repeat):
            for name, variant, timed in plan:
                if timed or round_ == 0:
                    runs[name].append(measure(admin, name, variant, args.customers, rate=args.writer_rate,
                                              timed=timed))
    outcomes, traces, writers = [], {}, {}
    for name, done in runs.items():
        outcome, trace, samples = median_run(done)
        outcomes.append(outcome)
        traces[name] = trace
        writers[name] = samples

    load_after = os.getloadavg()[1]
    figures = report.plots(out, args.customers, traces, writers)
    table = report.markdown(outcomes, REFERENCE, args.writer_rate)
    command = "python -m bench.backfill " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = (
        f"`{command}` — {args.customers:,} customers, {orders:,} orders; writer {args.writer_rate:g} ops/s;"
        f" writer alone: p50 {idle.writer_p50_ms:.1f} ms, p99 {idle.writer_p99_ms:.1f} ms,"
        f" max {idle.writer_max_ms:.0f} ms.\n"
        f"Machine: {host['nproc']} CPUs ({host['cpu']}), {host['memory_gb']} GB RAM, PostgreSQL {host['postgres']};"
        f" 5-min load average {load_before:.1f} before, {load_after:.1f} after (the benchmark's own load included).\n\n"
        + table
    )
    (out / "summary.md").write_text(summary)
    (out / "results.json").write_text(json.dumps({
        "customers": args.customers, "orders": orders, "writer_rate": args.writer_rate, "machine": host,
        "server_settings": server_settings,
        "load_average_5min": [load_before, load_after], "writer_alone": report.as_json(idle),
        "variants": [report.as_json(o) for o in outcomes],
        "traces": {name: t.batches for name, t in traces.items()},
    }, indent=1))
    print(summary)
    print("figures:", *figures)
    return 0


def _idle(dsn: str) -> variants.Trace:
    time.sleep(5.0)
    return variants.Trace()


if __name__ == "__main__":
    sys.exit(main())
