"""Peak memory and time of `lockgate lint` and `lockgate apply` on one large data-load migration.

    .venv/bin/python bench/lint/large.py [--sizes 5 50]

For each size (MiB) writes an up file with `corpus.write_load` (a CREATE TABLE, then INSERTs of
100 rows each) with its down and validate files, lints it, then applies it to a fresh database of
a throwaway PostgreSQL (controller/pgserver.py), each command in its own process. Peak RSS is the
process's maximum resident set size as wait4 reports it (what `/usr/bin/time -v` prints); CPU is
user + system. Prints a markdown table. 5 and 50 MiB take about 3 minutes on an idle 2-CPU machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corpus

from lockgate.controller.pgserver import PostgresServer, create_database

BIN = Path(sys.executable).parent


def measure(command: list[str]) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MiB, exit code) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    assert process.stderr is not None
    problem = process.stderr.read().decode().strip()
    if process.returncode not in (0, 1) or problem:
        sys.exit(f"{' '.join(command[:2])} failed ({process.returncode}): {problem}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[5, 50], help="up file sizes in MiB")
    args = parser.parse_args()
    rows = ["| up file | INSERTs | command | wall s | CPU s | peak RSS MiB |",
            "| ---: | ---: | --- | ---: | ---: | ---: |"]
    print(f"load average at start {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lockgate-large-") as tmp, PostgresServer() as server:
        for n, mib in enumerate(args.sizes):
            directory = Path(tmp) / f"m{n}"
            directory.mkdir()
            up = directory / "1_seed.up.sql"
            inserts = corpus.write_load(up, mib)
            (directory / "1_seed.down.sql").write_text("DROP TABLE entries;\n")
            (directory / "1_seed.validate.sql").write_text("SELECT count(*) > 0 AS loaded FROM entries;\n")
            dsn = create_database(server.dsn(), f"large_{n}")
            size = f"{up.stat().st_size / (1 << 20):.1f} MiB"
            for label, command in (
                ("`lockgate lint`", [str(BIN / "lockgate"), "lint", str(up)]),
                ("`lockgate apply`", [str(BIN / "lockgate"), "apply", "--dir", str(directory), "--dsn", dsn]),
            ):
                wall, cpu, rss, _ = measure(command)
                rows.append(f"| {size} | {inserts:,} | {label} | {wall:.1f} | {cpu:.1f} | {rss:.0f} |")
                print(rows[-1], flush=True)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
