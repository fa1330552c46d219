"""Benchmark: a no-op `lockgate sync` on a repository with N applied migrations.

    .venv/bin/python -m bench.sync --migrations 300,1000 --runs 10 --wait-idle 1200

DESIGN.md §6: "A no-op `sync` on a repo with 1,000 applied migrations ≤ 1 s". For each size N, in a
temporary directory: the N migrations of bench/sync/workload.py are written and `lockgate hash`
writes their lockgate.sum; a bare "origin" gets a history of one merged pull request per
`--per-merge` migrations (git fast-import with fixed dates, so the same shas every run, then
repacked as a hosted repository is); a working clone of it must pass `lockgate check`. On a
throwaway PostgreSQL (lockgate.controller.pgserver, with production durability) one
`lockgate sync` applies them all (timed as setup). Then `--runs` no-op passes of `lockgate sync`
run as whole processes with the CronJob's environment
(manifests/base/cronjob.yaml: LOCKGATE_BRANCH, LOCKGATE_DIR, LOCKGATE_CACHE_DIR, LOCKGATE_REPO,
LOCKGATE_DSN, HOME, PYTHONDONTWRITEBYTECODE, cwd without a pyproject.toml), four ways, alternated
round by round:

- floor: what the no-op short cut cannot avoid, `git ls-remote` of the branch and notes ref plus
  a Python process that imports psycopg, connects and runs one query;
- cold: the cache directory is empty, as in every CronJob pod (it is an emptyDir volume); the
  ledger holds the fingerprint the last pass left, so the pass takes the short cut
  (lockgate.controller.fastpath);
- full: the same with the fingerprint deleted first: the pass clones the branch, fetches the
  notes and walks the whole first-parent history;
- warm: the full path again, on the cache the full pass left (a persistent volume, or `lockgate watch`).

The cold pass's ratio to the floor is the figure of merit (target ≤ 2.5).

After the setup the database is vacuumed, analyzed and checkpointed, and with `--wait-idle` the
timed passes wait for an idle machine. Every pass must exit 0, say "in sync: N migrations", and
leave origin's refs and the ledger as they were. Wall time is the subprocess's; CPU is user +
system of it and its children (git, and with a local origin also git's serving side), from
getrusage. Then `--breakdown-runs` passes each way run in-process under timers
(bench/sync/phases.py), one under cProfile and one with `python -X importtime`, for the
breakdown. Results go to bench/sync/results/ (summary.md, results.json); the server and the
temporary directories are removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.sync import workload
from lockgate.controller.pgserver import PostgresServer, create_database, drop_database

log = logging.getLogger("bench.sync")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCKGATE = BIN / "lockgate"
PHASES = Path(__file__).resolve().parent / "phases.py"
# As in bench/backfill: durability as in production (pgserver's defaults switch it off for tests).
SERVER_SETTINGS = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
TARGET_S = 1.0
TARGET_RATIO = 2.5
FLOOR_QUERY = "import os, psycopg; psycopg.connect(os.environ['LOCKGATE_DSN']).execute('SELECT 1').fetchone()"
PROFILE_TOP = 25


# -- the machine -------------------------------------------------------------------------------


def machine(admin_dsn: str) -> dict[str, str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    with psycopg.connect(admin_dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "kernel": f"{platform.system()} {platform.release()}",
            "postgres": row[0] if row else "?", "python": platform.python_version(), "git": git_version}


def others_running() -> list[str]:
    """Other pytest processes (someone's test suite competing for the CPUs)."""
    out = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True, check=False).stdout
    return [line for line in out.splitlines() if line.split(" ", 1)[0] != str(os.getpid())]


def cpu_busy(seconds: float = 5.0) -> float:
    """The share of all CPUs busy over the next `seconds` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total, idle = sample()
    time.sleep(seconds)
    total2, idle2 = sample()
    return 1 - (idle2 - idle) / max(total2 - total, 1)


def wait_for_idle(max_load: float, max_busy: float, timeout_s: float) -> dict[str, Any]:
    """Wait (up to `timeout_s`) until no pytest runs, the 1-minute load average is below `max_load`
    and the CPUs were less than `max_busy` busy over 5 s (the load average lags: right after the
    setup pass it can read low while the server is still writing)."""
    started = time.monotonic()
    while True:
        busy, load, cpu = others_running(), os.getloadavg()[0], cpu_busy()
        idle = not busy and load < max_load and cpu < max_busy
        if idle or time.monotonic() - started >= timeout_s:
            if not idle:
                log.warning("machine not idle after %.0fs: load %.2f, CPU %.0f%% busy, %d pytest process(es)",
                            timeout_s, load, cpu * 100, len(busy))
            return {"waited_s": round(time.monotonic() - started), "idle": idle, "load_1min": load,
                    "cpu_busy": cpu, "pytest_running": len(busy)}
        log.info("waiting for an idle machine: load %.2f, CPU %.0f%% busy, %d pytest process(es)",
                 load, cpu * 100, len(busy))
        time.sleep(10)


# -- running lockgate --------------------------------------------------------------------------


def cronjob_env(repo: Path, cache: Path, home: Path, dsn: str) -> dict[str, str]:
    """What the CronJob's container gets (configmap literals, secrets, the image's ENV), nothing else."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "LOCKGATE_BRANCH": workload.BRANCH,
        "LOCKGATE_DIR": workload.MIGRATIONS,
        "LOCKGATE_CACHE_DIR": str(cache),
        "LOCKGATE_REPO": str(repo),
        "LOCKGATE_DSN": dsn,
        "GIT_SSH_COMMAND": "ssh -i /etc/lockgate/ssh/id_ed25519 -o IdentitiesOnly=yes "
                           "-o UserKnownHostsFile=/etc/lockgate/ssh/known_hosts",
        "POD_NAME": "lockgate-sync-bench",
        "POD_NAMESPACE": "bench",
        "POD_UID": "00000000-0000-0000-0000-000000000000",
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall s, CPU s, the finished process) of one run."""
    cpu, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, _children_cpu() - cpu, done


def require(done: subprocess.CompletedProcess[str], what: str, expect: str | None = None) -> None:
    if done.returncode != 0 or (expect is not None and expect not in done.stdout):
        raise SystemExit(f"{what}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


# -- one size ----------------------------------------------------------------------------------


def build(tmp: Path, count: int, per_merge: int) -> dict[str, Any]:
    """The migrations, `lockgate hash`, the origin and a checked working clone."""
    items = workload.migrations(count)
    authoring = tmp / "authoring"
    workload.write(authoring / workload.MIGRATIONS, items)
    hashed = subprocess.run([str(LOCKGATE), "hash"], cwd=authoring, capture_output=True, text=True, check=False)
    require(hashed, "lockgate hash")
    sum_text = (authoring / workload.MIGRATIONS / "lockgate.sum").read_text()
    origin = tmp / "origin.git"
    started = time.perf_counter()
    head = workload.build_origin(origin, items, sum_text, per_merge)
    built_s = time.perf_counter() - started
    work = tmp / "work"
    git("clone", "--quiet", str(origin), str(work))
    if (work / workload.MIGRATIONS / "lockgate.sum").read_text() != sum_text:
        raise SystemExit("the clone's lockgate.sum is not the one `lockgate hash` wrote")
    checked = subprocess.run([str(LOCKGATE), "check"], cwd=work, capture_output=True, text=True, check=False)
    require(checked, "lockgate check on the working clone")
    first_parent = int(git("rev-list", "--count", "--first-parent", head, cwd=origin))
    commits = int(git("rev-list", "--count", head, cwd=origin))
    files = len(git("ls-tree", "-r", "--name-only", head, cwd=origin).splitlines())
    counts = dict(line.split(": ") for line in git("count-objects", "-v", cwd=origin).splitlines())
    return {"head": head, "first_parent_commits": first_parent, "commits": commits, "files_at_head": files,
            "merges": -(-count // per_merge), "objects": int(counts["in-pack"]), "pack_kib": int(counts["size-pack"]),
            "sum_bytes_at_head": len(sum_text.encode()), "build_s": built_s}


def refs(origin: Path) -> str:
    return git("for-each-ref", "--format=%(refname) %(objectname)", cwd=origin)


def settle(dsn: str) -> None:
    """What a database long past its migrations looks like: checkpointed, vacuumed and analyzed
    (else autovacuum and the checkpointer work through the setup's writes during the timed passes)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def forget(dsn: str) -> None:
    """Delete the fingerprint the last in-sync pass left: the next pass takes the full path."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM lockgate.sync_state")


def floor_commands(env: dict[str, str]) -> list[list[str]]:
    """What the short cut cannot avoid: asking origin for two refs, and one query from Python."""
    return [["git", "ls-remote", env["LOCKGATE_REPO"], f"refs/heads/{workload.BRANCH}", "refs/notes/lockgate"],
            [sys.executable, "-c", FLOOR_QUERY]]


def ledger_state(dsn: str) -> tuple[int, int, str]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'applied'), max(finished_at)::text "
            "FROM lockgate.migrations"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), str(row[2])


def summary_of(walls: list[float], cpus: list[float]) -> dict[str, Any]:
    return {"wall_s": walls, "cpu_s": cpus, "wall_median_s": statistics.median(walls), "wall_min_s": min(walls),
            "wall_max_s": max(walls), "cpu_median_s": statistics.median(cpus), "cpu_min_s": min(cpus),
            "cpu_max_s": max(cpus)}


def breakdown(env: dict[str, str], cwd: Path, cache: Path, repeat: int) -> dict[str, Any]:
    """Median phases of `repeat` in-process passes, cold and warm, and the whole process's wall time."""
    out: dict[str, Any] = {}
    for mode in ("cold", "warm"):
        runs = []
        for _ in range(repeat):
            if mode == "cold":
                shutil.rmtree(cache, ignore_errors=True)
            forget(env["LOCKGATE_DSN"])  # the breakdown is of the full path
            wall, _, done = timed([sys.executable, str(PHASES)], env, cwd)
            require(done, f"phases ({mode})")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result["exit_code"] != 0 or "in sync" not in result["output"]:
                raise SystemExit(f"phases ({mode}): {result}")
            result["process_wall_s"] = wall
            runs.append(result)
        mid = sorted(runs, key=lambda r: r["process_wall_s"])[(len(runs) - 1) // 2]
        out[mode] = {
            "process_wall_s": mid["process_wall_s"],
            "interpreter_start_and_exit_s": mid["process_wall_s"] - mid["in_process_s"],
            "imports_s": mid["imports_s"], "pass_s": mid["pass_s"],
            "phases": {k: {"s": statistics.median(r["phases"][k]["s"] for r in runs), "calls": v["calls"]}
                       for k, v in mid["phases"].items()},
            "git": mid["git"],
        }
    return out


def profile_top(env: dict[str, str], cwd: Path, cache: Path, tmp: Path) -> list[dict[str, Any]]:
    """One cold pass under cProfile (modules imported before): the top entries by cumulative time."""
    shutil.rmtree(cache, ignore_errors=True)
    forget(env["LOCKGATE_DSN"])
    path = tmp / "sync.prof"
    _, _, done = timed([sys.executable, str(PHASES), "--profile", str(path)], env, cwd)
    require(done, "profiled pass")
    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = _short(file)
        rows.append({"function": f"{where}:{line}({name})" if line else name, "calls": calls,
                     "tottime_s": tottime, "cumtime_s": cumtime})
    rows.sort(key=lambda r: -r["cumtime_s"])
    return rows[:PROFILE_TOP]


def _short(file: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def import_times(env: dict[str, str], cwd: Path, cache: Path) -> dict[str, float]:
    """`python -X importtime lockgate sync` (cold): the modules' own import time summed per top-level
    package (self times add up to the whole; importtime's own overhead inflates them a little)."""
    shutil.rmtree(cache, ignore_errors=True)
    forget(env["LOCKGATE_DSN"])
    _, _, done = timed([sys.executable, "-X", "importtime", str(LOCKGATE), "sync"], env, cwd)
    require(done, "importtime pass", "in sync")
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        if not own.strip().isdigit():
            continue  # the header line
        root = name.strip().split(".")[0]
        totals[root] = totals.get(root, 0.0) + int(own) / 1e6
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def run_size(admin: str, count: int, args: argparse.Namespace) -> dict[str, Any]:
    dbname = f"bench_sync_{count}"
    drop_database(admin, dbname)
    dsn = create_database(admin, dbname)
    with tempfile.TemporaryDirectory(prefix=f"lockgate-bench-sync-{count}-") as tmp_name:
        tmp = Path(tmp_name)
        repo = build(tmp, count, args.per_merge)
        log.info("%d migrations: origin with %d commits (%d first-parent), head %s", count, repo["commits"],
                 repo["first_parent_commits"], repo["head"][:12])
        cache, home, cwd = tmp / "cache", tmp / "home", tmp / "cwd"
        home.mkdir()
        cwd.mkdir()
        env = cronjob_env(tmp / "origin.git", cache, home, dsn)
        # The setup pass may write bytecode, as a pip install has it compiled; the image then forbids writing.
        setup_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        setup_wall, setup_cpu, done = timed([str(LOCKGATE), "sync"], setup_env, cwd)
        require(done, "setup sync")
        rows, applied, last = ledger_state(dsn)
        notes = len(git("notes", "--ref=lockgate", "list", cwd=tmp / "origin.git").splitlines())
        if applied != count or rows != count:
            raise SystemExit(f"setup sync applied {applied} of {count}")
        log.info("setup sync: %d applied in %.1fs (CPU %.1fs), %d notes on origin", applied, setup_wall,
                 setup_cpu, notes)
        for _ in range(args.warmup):
            shutil.rmtree(cache, ignore_errors=True)
            require(timed([str(LOCKGATE), "sync"], env, cwd)[2], "warm-up", "in sync")
        settle(dsn)
        idle = wait_for_idle(args.max_load, args.max_busy, args.wait_idle) if args.wait_idle else None
        before_refs, load_before = refs(tmp / "origin.git"), os.getloadavg()
        floor: list[tuple[float, float]] = []
        cold: list[tuple[float, float]] = []
        full: list[tuple[float, float]] = []
        warm: list[tuple[float, float]] = []
        short_output = ""
        for _ in range(args.runs):
            walls_cpus = [timed(command, env, cwd) for command in floor_commands(env)]
            for _, _, done in walls_cpus:
                require(done, "floor")
            floor.append((sum(w for w, _, _ in walls_cpus), sum(c for _, c, _ in walls_cpus)))
            shutil.rmtree(cache, ignore_errors=True)
            wall, cpu, done = timed([str(LOCKGATE), "sync"], env, cwd)
            require(done, "no-op sync (short cut)", "nothing changed since the last pass")
            short_output = done.stdout.strip()
            cold.append((wall, cpu))
            for samples in (full, warm):
                forget(dsn)
                wall, cpu, done = timed([str(LOCKGATE), "sync"], env, cwd)
                require(done, "no-op sync (full path)", f"in sync: {count} migrations")
                samples.append((wall, cpu))
        load_after = os.getloadavg()
        if refs(tmp / "origin.git") != before_refs or ledger_state(dsn) != (rows, applied, last):
            raise SystemExit("a no-op pass changed origin's refs or the ledger")
        result = {
            "migrations": count, "per_merge": args.per_merge, "repo": repo, "notes_on_origin": notes,
            "setup": {"wall_s": setup_wall, "cpu_s": setup_cpu},
            "idle_wait": idle, "load_before": load_before, "load_after": load_after,
            "floor": summary_of([w for w, _ in floor], [c for _, c in floor]),
            "cold": summary_of([w for w, _ in cold], [c for _, c in cold]),
            "full": summary_of([w for w, _ in full], [c for _, c in full]),
            "warm": summary_of([w for w, _ in warm], [c for _, c in warm]),
            "no_op_output": short_output, "full_output": done.stdout.strip(),
        }
        result["ratio_to_floor"] = result["cold"]["wall_median_s"] / result["floor"]["wall_median_s"]
        log.info("%d: floor %.3fs, cold (short cut) %.3fs = %.2fx, full %.3fs, warm %.3fs", count,
                 result["floor"]["wall_median_s"], result["cold"]["wall_median_s"], result["ratio_to_floor"],
                 result["full"]["wall_median_s"], result["warm"]["wall_median_s"])
        result["breakdown"] = breakdown(env, cwd, cache, args.breakdown_runs)
        result["profile_top"] = profile_top(env, cwd, cache, tmp)
        result["import_times_s"] = import_times(env, cwd, cache)
    drop_database(admin, dbname)
    return result


# -- the report --------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def markdown(command: str, host: dict[str, str], results: list[dict[str, Any]], interpreter_s: float) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {host['nproc']} CPUs (nproc), {host['cpu']}, {host['kernel']}; PostgreSQL {host['postgres']}; "
        f"Python {host['python']}; {host['git']}. `python -c pass`: {_ms(interpreter_s)} ms.",
        "",
    ]
    for r in results:
        lb, la = r["load_before"], r["load_after"]
        idle = r["idle_wait"]
        waited = (f"; waited {idle['waited_s']} s for an idle machine (then: load {idle['load_1min']:.2f}, "
                  f"CPUs {idle['cpu_busy']:.0%} busy over 5 s, {idle['pytest_running']} pytest processes)"
                  if idle else "")
        repo = r["repo"]
        lines.append(
            f"- {r['migrations']:,} migrations, {r['per_merge']} per merged pull request: {repo['commits']:,} commits "
            f"({repo['first_parent_commits']:,} first-parent), {repo['files_at_head']:,} files at the head "
            f"(lockgate.sum {repo['sum_bytes_at_head'] / 1024:,.0f} KiB), pack {repo['pack_kib']:,} KiB "
            f"({repo['objects']:,} objects), head `{repo['head'][:12]}`; {r['notes_on_origin']:,} notes on origin "
            "after the setup pass"
        )
        lines.append(
            f"  - load average (1/5/15 min) {lb[0]:.2f}/{lb[1]:.2f}/{lb[2]:.2f} before "
            f"the timed passes, {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f} after{waited}"
        )
    lines += [
        "",
        "| migrations | setup: `lockgate sync` applying all (wall / CPU s) "
        "| floor: `git ls-remote` + one query from Python, wall median [min–max] ms (CPU) "
        "| **no-op, cold cache (short cut)**: wall median [min–max] ms (CPU) | ratio to the floor (target ≤ 2.5) "
        "| full path, cold cache ms (CPU) | full path, warm cache ms (CPU) | target ≤ 1,000 ms (cold) |",
        "|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in results:
        f, c, full, w = r["floor"], r["cold"], r["full"], r["warm"]
        met = "met" if c["wall_median_s"] <= TARGET_S else "**not met**"
        ratio = r["ratio_to_floor"]
        lines.append(
            f"| {r['migrations']:,} | {r['setup']['wall_s']:.1f} / {r['setup']['cpu_s']:.1f} "
            f"| {_ms(f['wall_median_s'])} [{_ms(f['wall_min_s'])}–{_ms(f['wall_max_s'])}] ({_ms(f['cpu_median_s'])}) "
            f"| **{_ms(c['wall_median_s'])}** [{_ms(c['wall_min_s'])}–{_ms(c['wall_max_s'])}] "
            f"({_ms(c['cpu_median_s'])}) "
            f"| **{ratio:.2f}×** {'met' if ratio <= TARGET_RATIO else '**not met**'} "
            f"| {_ms(full['wall_median_s'])} ({_ms(full['cpu_median_s'])}) "
            f"| {_ms(w['wall_median_s'])} ({_ms(w['cpu_median_s'])}) | {met} |"
        )
    for r in results:
        b = r["breakdown"]
        lines += [
            "",
            f"Where a full-path no-op pass spends its time, {r['migrations']:,} migrations (in-process timers, "
            "median of the breakdown runs; phases nest, so they do not add up):",
            "",
            "| phase | cold ms | warm ms |",
            "|---|---:|---:|",
            f"| whole process (wall) | {_ms(b['cold']['process_wall_s'])} | {_ms(b['warm']['process_wall_s'])} |",
            f"| interpreter start and exit | {_ms(b['cold']['interpreter_start_and_exit_s'])} "
            f"| {_ms(b['warm']['interpreter_start_and_exit_s'])} |",
            f"| imports (`lockgate.controller.cli`, the sync command and what it pulls in) "
            f"| {_ms(b['cold']['imports_s'])} | {_ms(b['warm']['imports_s'])} |",
            f"| the pass (`cli.main([\"sync\"])`) | {_ms(b['cold']['pass_s'])} | {_ms(b['warm']['pass_s'])} |",
        ]
        for label, cold_phase in b["cold"]["phases"].items():
            warm_phase = b["warm"]["phases"][label]
            lines.append(f"| {label.replace('  of which', '&nbsp;&nbsp;of which')} | {_ms(cold_phase['s'])} "
                         f"| {_ms(warm_phase['s'])} |")
        lines += ["", "git processes per pass (cold / warm: calls, ms):", ""]
        names = list(dict.fromkeys([*b["cold"]["git"], *b["warm"]["git"]]))
        for name in names:
            cg, wg = b["cold"]["git"].get(name), b["warm"]["git"].get(name)
            lines.append(f"- `git {name}`: {cg['calls'] if cg else 0} / {wg['calls'] if wg else 0} calls, "
                         f"{_ms(cg['s']) if cg else 0} / {_ms(wg['s']) if wg else 0} ms")
        shown = list(r["import_times_s"].items())
        imports = ", ".join(f"{name} {_ms(s)}" for name, s in shown[:10])
        rest = sum(s for _, s in shown[10:])
        lines += ["", f"Import time by top-level package (`-X importtime`, each module's own time summed, ms; "
                      f"{_ms(sum(s for _, s in shown))} in all): {imports}, the other {len(shown) - 10} "
                      f"{_ms(rest)}.", "",
                  "Top of a cold pass under cProfile, modules already imported (cumulative; profiling inflates "
                  "Python-heavy parts):", "",
                  "| function | calls | cumulative ms | own ms |", "|---|---:|---:|---:|"]
        lines += [f"| `{p['function']}` | {p['calls']:,} | {_ms(p['cumtime_s'])} | {_ms(p['tottime_s'])} |"
                  for p in r["profile_top"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.split("\n")[0])
    parser.add_argument("--migrations", default="1000",
                        help="applied migrations in the repository; a comma-separated list runs each size")
    parser.add_argument("--runs", type=int, default=10,
                        help="timed rounds per size, each of the floor and three no-op passes (short cut, full, warm)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed no-op passes first")
    parser.add_argument("--per-merge", type=int, default=1, help="migrations per merged pull request")
    parser.add_argument("--breakdown-runs", type=int, default=3, help="in-process timed passes per way")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before the timed passes, wait up to this long for no pytest and a low load")
    parser.add_argument("--max-load", type=float, default=1.0, help="1-minute load average that counts as idle")
    parser.add_argument("--max-busy", type=float, default=0.1,
                        help="share of the CPUs busy (over 5 s) that counts as idle")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    sizes = [int(s) for s in args.migrations.split(",")]
    command = ".venv/bin/python -m bench.sync " + " ".join(argv if argv is not None else sys.argv[1:])
    print(command, flush=True)

    interpreter = [timed([sys.executable, "-c", "pass"], dict(os.environ), ROOT)[0] for _ in range(10)]
    with PostgresServer(settings=SERVER_SETTINGS) as server:
        admin = server.dsn()
        host = machine(admin)
        print(json.dumps(host), flush=True)
        results = [run_size(admin, n, args) for n in sizes]
    summary = markdown(command.strip(), host, results, statistics.median(interpreter))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(summary)
    (args.out / "results.json").write_text(json.dumps({
        "command": command.strip(), "machine": host, "server_settings": SERVER_SETTINGS,
        "interpreter_start_s": statistics.median(interpreter), "target_s": TARGET_S, "target_ratio": TARGET_RATIO,
        "sizes": results,
    }, indent=1))
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
