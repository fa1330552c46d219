"""Benchmark: one migration rolled out to N databases, a fleet pass against a shell loop.

    .venv/bin/python -m bench.fleet --targets 100 --parallel 8

On one throwaway PostgreSQL (lockgate.controller.pgserver, with production durability) a
template database holds `accounts` with 10,000 rows; N databases are cloned from it. A bare
origin holds one migration: a DDL change (`ADD COLUMN plan text`) and a batched backfill of the
10,000 rows (`lockgate:batch size=1000`, ten batches), with its down and a validate gate. Then,
side by side, timed as whole processes:

- loop: a shell loop running one-database `lockgate sync --dsn` per database, one after the
  other (the way tools with one target per run are driven);
- no-op loop: the same shell loop twice more over the now in-sync databases: the first finds
  the notes ref moved under all but the last database's fingerprint (each run of the loop
  rewrote the commit's note) and takes the full path, the second takes each database's short cut;
- fleet: one `lockgate sync --fleet` over N fresh databases, a canary wave of one, then a wave
  of the others with `parallel: P`;
- no-op fleet: `lockgate sync --fleet` again over the N targets, now all in sync.

Both ways share the git cache directory (a warm cache after the first run, as on one machine).
Each way gets freshly cloned databases; every database must end with the migration applied and
10,000 planned rows, and both no-op runs must take the short cut. Results (with the load
average before and after) go to bench/fleet/results/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

from lockgate.controller.pgserver import PostgresServer, create_database, drop_database

BIN = Path(sys.executable).parent
LOCKGATE = BIN / "lockgate"
RESULTS = Path(__file__).resolve().parent / "results"
SERVER_SETTINGS = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "max_connections": "200"}
TEMPLATE = "bench_fleet_template"
ROWS = 10_000
VERSION = "20240301000000"
MIGRATION = {
    "up": (
        "-- Description: accounts get a plan, backfilled in batches\n\n"
        "ALTER TABLE accounts ADD COLUMN plan text;\n\n"
        "-- lockgate:batch size=1000 key=id\n"
        "UPDATE accounts SET plan = CASE WHEN id % 10 = 0 THEN 'pro' ELSE 'free' END;\n"
    ),
    "down": "-- Description: remove the plan\n\nALTER TABLE accounts DROP COLUMN plan;\n",
    "validate": (
        "-- Description: every account has a plan\n\n"
        "-- Gate: the backfill reached every row.\n"
        "SELECT count(*) = 0 AS every_account_has_a_plan FROM accounts WHERE plan IS NULL;\n"
    ),
}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def origin_with_migration(root: Path) -> Path:
    origin, work = root / "origin.git", root / "work"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(origin), cwd=root)
    git("clone", "--quiet", str(origin), str(work), cwd=root)
    folder = work / "migrations"
    folder.mkdir()
    for kind, text in MIGRATION.items():
        (folder / f"{VERSION}_add_account_plan.{kind}.sql").write_text(text)
    subprocess.run([str(LOCKGATE), "hash"], cwd=work, check=True, capture_output=True)
    git("add", "-A", cwd=work)
    git("-c", "user.name=bench", "-c", "user.email=bench@lockgate.invalid", "commit", "--quiet", "-m",
        "Add account plans", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    return origin


def fresh_databases(admin: str, names: list[str]) -> dict[str, str]:
    dsns = {}
    for name in names:
        drop_database(admin, name)
        dsns[name] = create_database(admin, name, template=TEMPLATE)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return dsns


def check_applied(dsns: dict[str, str]) -> None:
    for name, dsn in dsns.items():
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(plan) FROM accounts").fetchone()
            status = conn.execute("SELECT status FROM lockgate.migrations WHERE version = %s", (VERSION,)).fetchone()
        assert row == (ROWS,) and status == ("applied",), f"{name}: {row} {status}"


def timed(command: list[str], env: dict[str, str], cwd: Path, expect: str = "", times: int = 1) -> float:
    """Wall seconds of the command, which must exit 0 and say `expect` (`times` times)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or done.stdout.count(expect) < times:
        raise SystemExit(f"{shlex.join(command[:4])}… exited {done.returncode}:\n{done.stdout[-2000:]}"
                         f"\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    if args.targets < 2:
        parser.error("--targets: at least 2 (a canary and a wave)")
    began, load_start = time.perf_counter(), os.getloadavg()
    names = [f"tenant_{i:03d}" for i in range(args.targets)]
    with tempfile.TemporaryDirectory(prefix="lockgate-bench-fleet-") as tmp, \
            PostgresServer(settings=SERVER_SETTINGS) as server:
        root = Path(tmp)
        admin = server.dsn()
        template = create_database(admin, TEMPLATE)
        with psycopg.connect(template, autocommit=True) as conn:
            conn.execute("CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)")
            conn.execute("INSERT INTO accounts SELECT i, 'user' || i || '@example.com' FROM generate_series(1, %s) i",
                         (ROWS,))
            conn.execute("VACUUM ANALYZE accounts")
        origin = origin_with_migration(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")} | {
            "LOCKGATE_REPO": str(origin), "LOCKGATE_CACHE_DIR": str(root / "cache"), "PYTHONUNBUFFERED": "1",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        dsns = fresh_databases(admin, names)
        loop = " ".join(f"{shlex.quote(str(LOCKGATE))} sync --dsn {shlex.quote(d)} || exit 1;" for d in dsns.values())
        loop_s = timed(["bash", "-c", f"set -e; {loop}"], env, root)
        check_applied(dsns)
        # Each run rewrote the commit's note, so the notes ref moved under the earlier databases'
        # fingerprints: the first no-op loop takes the full path on all but the last database.
        noop_loop_first_s = timed(["bash", "-c", f"set -e; {loop}"], env, root)
        noop_loop_s = timed(["bash", "-c", f"set -e; {loop}"], env, root, expect="nothing changed", times=len(dsns))

        dsns = fresh_databases(admin, names)
        fleet = root / "fleet.yaml"
        first, *rest = names
        fleet.write_text(yaml.safe_dump({"waves": [
            {"name": "canary", "targets": [{"name": first.replace("_", "-"), "dsn": dsns[first]}]},
            {"name": "rest", "parallel": args.parallel, "targets": [
                {"name": n.replace("_", "-"), "dsn": dsns[n]} for n in rest]},
        ]}))
        fleet_s = timed([str(LOCKGATE), "sync", "--fleet", str(fleet)], env, root,
                        expect=f"{args.targets}/{args.targets} targets in sync")
        check_applied(dsns)
        # The no-op pass must take the fast path: one ls-remote, one query per target.
        noop_s = timed([str(LOCKGATE), "sync", "--fleet", str(fleet)], env, root, expect="nothing changed")

    result = {
        "targets": args.targets, "parallel": args.parallel, "rows_per_target": ROWS,
        "loop_s": round(loop_s, 2), "fleet_s": round(fleet_s, 2),
        "ratio_loop_over_fleet": round(loop_s / fleet_s, 2),
        "noop_loop_first_s": round(noop_loop_first_s, 2), "noop_loop_s": round(noop_loop_s, 2),
        "noop_fleet_s": round(noop_s, 2),
        "ratio_noop_loop_over_noop_fleet": round(noop_loop_s / noop_s, 2),
        # What each further target adds to a no-op fleet pass, over one no-op one-database run.
        "noop_fleet_ms_per_extra_target": round((noop_s - noop_loop_s / args.targets) / (args.targets - 1) * 1000, 1),
        "wall_s": round(time.perf_counter() - began, 1),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                    "kernel": f"{platform.system()} {platform.release()}",
                    "load_avg_start": load_start, "load_avg_end": os.getloadavg()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
