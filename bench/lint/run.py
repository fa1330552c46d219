"""Benchmark `lockgate lint` against squawk, and lockgate's rule coverage against squawk's.

    .venv/bin/python bench/lint/run.py [--runs N] [--write] [--against REV]

Generates the corpus (1 file; 1,000 files of ~40 lines) in a temporary directory, times both
linters on the same files (interleaved runs, medians), measures rule coverage on squawk's own
test cases, and prints a markdown report; `--write` puts it under `## Lint` in BENCHMARKS.md.
`--against REV` also times lockgate as it was at git revision REV (checked out in a temporary
worktree, run on this environment's packages) beside today's, both as a regular install.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import corpus
import coverage
from pglast import parser

from lockgate.hooks import lint, sqlmodel
from lockgate.hooks.lint import all_rules, lint_sql
from lockgate.hooks.rules.base import Hit, Rule
from lockgate.hooks.rules.context import Context
from lockgate.hooks.rules.squawk_map import NOT_COVERED
from lockgate.hooks.schemamodel import SchemaModel
from lockgate.hooks.settings import DEFAULT_PG_VERSION
from lockgate.hooks.sqlmodel import SqlFile, Statement, parse_sql

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULT_CASES = ROOT.parent / "shared" / "reference" / "squawk-cases.json"
SECTION = "## Lint"
# The console script's own function (`entry`, or `main` in revisions before it), run as `lockgate` is.
_CONSOLE = ("from lockgate.controller import cli; "
            "cli.entry() if hasattr(cli, 'entry') else sys.exit(cli.main())")
# lockgate with its parallel threshold set: never (one process) or always (workers from 1 migration).
_WITH_THRESHOLD = "import sys; from lockgate.hooks import lint; lint._PARALLEL_FROM = {}; " + _CONSOLE
_ONE_PROCESS = _WITH_THRESHOLD.format(10**9)
_ALWAYS_WORKERS = _WITH_THRESHOLD.format(1)
SWEEP = (64, 128, 192, 256, 384)
# What no linter built on pglast can go below: start, import the parser, parse the file once.
_FLOOR = "import sys, pglast.parser as p; p.parse_sql_json(open(sys.argv[1]).read())"
OTHER_SECTION = "## Backfill"


@dataclass(frozen=True, slots=True)
class Timing:
    label: str
    seconds: list[float]  # wall
    cpu: list[float]  # user + system of the process and its children

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.seconds) * 1000

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu) * 1000


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _once(command: list[str], cwd: Path) -> tuple[float, float]:
    # A pip install compiles bytecode, so let the warm-up runs write it as an installed copy has it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start, _children_cpu() - cpu


def time_side_by_side(commands: dict[str, list[str]], cwd: Path, runs: int, warmup: int = 2) -> list[Timing]:
    """Run the commands in turn, `runs` rounds, so background load hits them alike."""
    for command in commands.values():
        for _ in range(warmup):
            _once(command, cwd)
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            samples[label].append(_once(command, cwd))
    return [Timing(label, [w for w, _ in runs_of], [c for _, c in runs_of]) for label, runs_of in samples.items()]


def _installed_view(tmp: Path, source: Path = ROOT) -> Path:
    """lockgate as a regular install lays it out: a plain lockgate/ tree, no editable-install hook."""
    view = tmp / "view" / "lockgate"
    view.mkdir(parents=True)
    (view / "hooks").symlink_to(source / "hooks")
    (view / "controller").symlink_to(source / "controller")
    return view.parent


def _plain_command(view: Path) -> list[str]:
    """`lockgate` from `view`, with site-packages but without the editable install's hook (`python -S`)."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    return [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(view)!r}, {site!r}]; " + _CONSOLE]


def against_report(tmp: Path, rev: str, runs: int) -> list[str]:
    """Today's lockgate beside lockgate at `rev`, one file and 1,000 files, both as a regular install."""
    checkout = tmp / "against"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(checkout), rev], check=True)
    try:
        commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        today, then = _plain_command(_installed_view(tmp / "today")), _plain_command(_installed_view(tmp, checkout))
        one = corpus.write_corpus(tmp / "against-one", 1)
        many = [p.name for p in corpus.write_corpus(tmp / "against-many", 1000)]
        single = time_side_by_side({"today": [*today, "lint", one[0].name], rev: [*then, "lint", one[0].name]},
                                   one[0].parent, runs * 3)
        thousand = time_side_by_side({"today": [*today, "lint", *many], rev: [*then, "lint", *many]},
                                     tmp / "against-many", runs)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=True)
    rows = [f"| {label} | {a.median_ms:.1f} | {b.median_ms:.1f} | {a.median_ms / b.median_ms:.2f}× | "
            f"{a.cpu_ms / b.cpu_ms:.2f}× |" for label, (a, b) in (("one file", single), ("1,000 files", thousand))]
    return [
        f"### Against `{rev}` ({commit})", "",
        f"Command: `.venv/bin/python bench/lint/run.py --runs {runs} --against {rev!r}`; both as a regular install "
        f"(`python -S`), same corpus, interleaved ({runs * 3} runs on one file, {runs} on 1,000); load average "
        f"{os.getloadavg()[0]:.2f} at the end.", "",
        f"| files | today wall median ms | `{rev}` wall median ms | ratio wall | ratio CPU |",
        "| --- | ---: | ---: | ---: | ---: |", *rows, "",
    ]


def machine() -> list[str]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return [
        f"- Machine: {os.cpu_count()} CPUs (nproc), {cpu}, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, pglast {version('pglast')}, lockgate {version('lockgate')}, "
        f"squawk-cli {version('squawk-cli')}, {len(all_rules())} lockgate rules; "
        f"load average at start {os.getloadavg()[0]:.2f}",
    ]


def _table(timings: list[Timing]) -> list[str]:
    return ["| Command | wall median ms | wall min ms | CPU median ms |", "| --- | ---: | ---: | ---: |",
            *(f"| {t.label} | {t.median_ms:.1f} | {t.min_ms:.1f} | {t.cpu_ms:.1f} |" for t in timings)]


def timing_report(tmp: Path, runs: int) -> list[str]:
    header = machine()  # now, for the load average at the start
    one = corpus.write_corpus(tmp / "one", 1)
    many = corpus.write_corpus(tmp / "many", 1000)
    lockgate, squawk = str(BIN / "lockgate"), str(BIN / "squawk")
    file = one[0].name
    single = time_side_by_side({
        "`python -c pass` (interpreter start)": [sys.executable, "-c", "pass"],
        "`python -c 'import pglast.parser'`": [sys.executable, "-c", "import pglast.parser"],
        "floor: interpreter, `import pglast` and one parse of FILE": [sys.executable, "-c", _FLOOR, file],
        "**`lockgate lint FILE`** (editable install, bytecode cached)": [lockgate, "lint", file],
        "`lockgate lint FILE` as a regular install (`python -S`, no .pth hooks)":
            [*_plain_command(_installed_view(tmp)), "lint", file],
        "`squawk FILE`": [squawk, file],
    }, one[0].parent, runs * 3)
    names = [p.name for p in many]
    thousand = time_side_by_side({
        "**`lockgate lint <1,000 files>`**": [lockgate, "lint", *names],
        "`squawk <1,000 files>`": [squawk, *names],
        "`lockgate lint <1,000 files>` kept in one process (no workers; for comparison)":
            [sys.executable, "-c", _ONE_PROCESS, "lint", *names],
    }, many[0].parent, runs)
    lines = sum(p.read_text().count("\n") for p in many)
    ratio = thousand[0].median_ms / thousand[1].median_ms
    sweep = []
    for n in SWEEP:
        one_process, workers = time_side_by_side({
            "one process": [sys.executable, "-c", _ONE_PROCESS, "lint", *names[:n]],
            "workers": [sys.executable, "-c", _ALWAYS_WORKERS, "lint", *names[:n]],
        }, many[0].parent, runs)
        sweep.append(f"| {n} | {one_process.median_ms:.1f} | {workers.median_ms:.1f} |")
    return [
        "### Speed", "",
        f"Command: `.venv/bin/python bench/lint/run.py --runs {runs} --write`. Corpus from `bench/lint/corpus.py` "
        f"(seed {corpus.SEED}): one file, and 1,000 files with {lines:,} lines in all, written to a temporary "
        "directory; both linters get the same file names on the command line. Wall time of the whole process, "
        "commands interleaved round by round, output to /dev/null; CPU is user + system time of the process "
        "and its children (lockgate's workers, squawk's threads). Wall times move with the machine's load (the "
        "load averages are printed); the CPU column moves less.", "",
        *header, "",
        f"One file of {one[0].read_text().count(chr(10))} lines ({runs * 3} runs each); target: lockgate ≤ 1.25× "
        "the floor.", "", *_table(single), "",
        f"Ratio lockgate / floor on one file: **{single[3].median_ms / single[2].median_ms:.2f}×** wall (medians), "
        f"{single[3].cpu_ms / single[2].cpu_ms:.2f}× CPU; target ≤ 1.25×.", "",
        f"1,000 files ({runs} runs each); target: lockgate ≤ 1× squawk (wall).", "", *_table(thousand), "",
        f"Ratio lockgate / squawk on 1,000 files: **{ratio:.2f}×** wall (medians); "
        f"{thousand[0].cpu_ms / thousand[1].cpu_ms:.2f}× CPU.", "",
        f"Where forking workers starts to pay (`_PARALLEL_FROM` in hooks/lint.py, now {lint._PARALLEL_FROM} files): "
        f"wall median ms, {runs} runs each.", "",
        "| files | one process | workers |", "| ---: | ---: | ---: |", *sweep, "",
        f"Load average at end {os.getloadavg()[0]:.2f}.", "",
        "What keeps it there: the lint path imports neither pydantic, psycopg, kubernetes, gitpython, "
        "multiprocessing, importlib.metadata, hashlib, dataclasses (with inspect, ast, dis) nor argparse (with "
        "gettext; the lint command reads a plain command line itself) (tests/test_lint_cli.py asserts it); its "
        "records are slotted classes written out; rules are found by listing the rules directory (no pkgutil); "
        "cyclic GC is off while the command's modules import; statements are dispatched only to rules for their "
        "kind and file kind, and an ALTER TABLE only to the rules that speak of one of its subcommands "
        "(`alter_commands`; tests/test_alter_dispatch.py proves the others had nothing to say); `lockgate lint` "
        "ends its process once the output is flushed, without the interpreter's teardown. Above the threshold "
        "the trees are decoded by orjson, and the migrations are split into one contiguous share per usable "
        "CPU, by bytes of SQL; this process lints the first share while forked children (which inherit the "
        "imported rules, no pool) lint the rest and send their findings back as plain values through a pipe, "
        "once. The set's schema model is replayed only once a rule asks for it. In one process, the rules' "
        "`check` methods take the largest share, then the SQL model and decoding the parse trees; PostgreSQL's "
        "parser itself is a small part (phases below).", "",
        "Where one process spends its CPU on the 1,000 files (in-process, best of 3):", "",
        "| phase | CPU ms |", "| --- | ---: |", *phases(many), "",
    ]


def phases(paths: list[Path]) -> list[str]:
    """CPU per phase of linting `paths` in this process: parser, JSON, SQL model, rules."""
    texts = [(p, p.read_text()) for p in paths]

    def best(work: Callable[[], object]) -> float:
        # The phases keep every file's tree alive at once, which a lint run does not: collection
        # passes over that growing heap would be charged to whichever phase runs, so none run.
        times = []
        gc.disable()
        try:
            for _ in range(3):
                start = time.process_time()
                work()
                times.append(time.process_time() - start)
                gc.collect()
        finally:
            gc.enable()
        return min(times) * 1000

    sqlmodel.decode_in_bulk()  # as `lockgate lint` does for this many files
    c_parse = best(lambda: [parser.parse_sql_json(t) for _, t in texts])
    decode = best(lambda: [sqlmodel._loads(parser.parse_sql_json(t)) for _, t in texts]) - c_parse
    model = best(lambda: [parse_sql(p, t) for p, t in texts]) - c_parse - decode
    parsed = [parse_sql(p, t) for p, t in texts]
    replay = best(lambda: [SchemaModel().replay(sql) for sql in parsed])
    rules = best(lambda: [lint_sql(sql, pg_version=DEFAULT_PG_VERSION) for sql in parsed])
    slowest = ", ".join(f"{code} {ms:.0f} ms" for code, ms in rule_costs(parsed)[:5])
    return [
        f"| PostgreSQL's parser (`pglast.parser.parse_sql_json`, C) | {c_parse:.0f} |",
        f"| decoding the parse trees (orjson) | {decode:.0f} |",
        f"| SQL model (positions, directives, PL/pgSQL bodies and their statements) | {model:.0f} |",
        f"| schema model, when a rule asks for it (each migration replayed into the set's model) | {replay:.0f} |",
        f"| rules and context (`lint_sql`); costliest rules: {slowest} | {rules:.0f} |",
    ]


def rule_costs(parsed: list[SqlFile]) -> list[tuple[str, float]]:
    """CPU ms each rule's `check` takes over the parsed files, costliest first."""
    costs: dict[str, float] = dict.fromkeys((r.code for r in all_rules()), 0.0)

    def timed(rule: Rule) -> Callable[[Statement, Context], list[Hit | str]]:
        check = rule.check

        def run(stmt: Statement, ctx: Context) -> list[Hit | str]:
            start = time.process_time()
            hits = list(check(stmt, ctx))
            costs[rule.code] += time.process_time() - start
            return hits

        return run

    rules = all_rules()
    for rule in rules:
        rule.check = timed(rule)  # type: ignore[method-assign]
    try:
        for sql in parsed:
            lint_sql(sql, pg_version=DEFAULT_PG_VERSION)
    finally:
        for rule in rules:
            del rule.check
    return sorted(((code, ms * 1000) for code, ms in costs.items()), key=lambda c: -c[1])


def coverage_report(cases_path: Path) -> list[str]:
    rules = all_rules()
    cases = coverage.load_cases(cases_path)
    measured = coverage.measure(cases, rules, BIN / "squawk")
    covered = [c for c in measured if c.lockgate_rules]
    missing = [c for c in measured if not c.lockgate_rules]
    flag_agree, flag_total = (sum(x) for x in zip(*(c.count(flag=True) for c in covered), strict=True))
    ok_agree, ok_total = (sum(x) for x in zip(*(c.count(flag=False) for c in covered), strict=True))
    siblings = [v for c in covered for v in c.verdicts if v.sibling]
    out = [
        "### Rule coverage against squawk", "",
        f"squawk's own test inputs ({len(cases)} cases over {len(measured)} rules), read at run time from "
        f"`{cases_path}` (never copied into the project). Each case is linted by lockgate as an up migration "
        "with the case's pg_version (squawk's 19 counts as 18) and run through squawk with every rule switched "
        "on and the case's settings. lockgate runs a file as one transaction unless a statement cannot run in "
        "one, which is what squawk's `assume_in_transaction` models; without it squawk assumes autocommit. A "
        "case counts as flagged by lockgate when a lockgate rule mapped to that squawk rule (the rule's "
        "`squawk` attribute) fires.", "",
        f"- squawk rules with a lockgate equivalent: **{len(covered)} of {len(measured)}**; the other "
        f"{len(missing)} are left out on purpose (table below, from `hooks/rules/squawk_map.py`)",
        f"- squawk's flag cases lockgate also flags: **{flag_agree} of {flag_total}**",
        f"- squawk's ok cases lockgate also passes: **{ok_agree} of {ok_total}** (counting as agreement "
        f"{len(siblings)} cases where one lockgate rule covers several squawk rules and squawk reports the same "
        "statement under a sibling rule)", "",
        "| squawk rule | lockgate | flag cases agreed | ok cases agreed |", "| --- | --- | ---: | ---: |",
    ]
    for c in covered:
        f_agree, f_total = c.count(flag=True)
        o_agree, o_total = c.count(flag=False)
        out.append(f"| {c.squawk_rule} | {', '.join(c.lockgate_rules)} | {f_agree}/{f_total} | {o_agree}/{o_total} |")
    out += ["", "#### Where lockgate and squawk disagree, and why", "",
            "| squawk rule | case | squawk | lockgate | why |", "| --- | --- | --- | --- | --- |"]
    for c in covered:
        for v in c.verdicts:
            if not v.agrees:
                sql = coverage.first_line(v.case.sql).replace("|", "\\|")
                lockgate = f"flag ({', '.join(v.codes)})" if v.lockgate_flags else "ok"
                out.append(f"| {c.squawk_rule} | `{sql}` | {'flag' if v.case.flag else 'ok'} | {lockgate} | "
                           f"{v.reason} |")
    out += ["", "Counted as agreement: squawk's test expects ok for its rule, but squawk (every rule on) reports the "
            "same statement under a sibling rule that the same lockgate rule covers:", "",
            "| squawk rule (ok) | squawk flags it as | lockgate | case |", "| --- | --- | --- | --- |",
            *(f"| {v.case.rule} | {v.sibling} | {', '.join(v.codes)} | `{coverage.first_line(v.case.sql)}` |"
              for v in siblings)]
    out += ["", "#### squawk rules without a lockgate rule", "", "| squawk rule | cases | why |",
            "| --- | ---: | --- |"]
    for c in missing:
        total = sum(1 for case in cases if case.rule == c.squawk_rule)
        why = NOT_COVERED.get(c.squawk_rule, "not covered, no reason recorded")
        out.append(f"| {c.squawk_rule} | {total} | {why} |")
    own = [r for r in rules if not r.squawk]
    out += ["", f"#### lockgate rules squawk has no equivalent for ({len(own)})", "",
            *(f"- {r.code} {r.name}: {r.summary}" for r in own), ""]
    return out


def write_section(path: Path, body: list[str]) -> None:
    """Replace the `## Lint` section of BENCHMARKS.md, leaving every other section as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Benchmarks\n\n{SECTION}\n\n{OTHER_SECTION}\n"
    if SECTION not in text.splitlines():
        text = text.rstrip("\n") + f"\n\n{SECTION}\n"
    lines = text.splitlines()
    start = lines.index(SECTION)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    new = [*lines[: start + 1], "", *body, *lines[end:]]
    path.write_text("\n".join(new).rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command on 1,000 files")
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="squawk-cases.json")
    parser.add_argument("--write", action="store_true", help="update the ## Lint section of BENCHMARKS.md")
    parser.add_argument("--skip-timing", action="store_true", help="coverage only")
    parser.add_argument("--against", metavar="REV", help="only time lockgate at git revision REV beside today's")
    args = parser.parse_args()
    if args.against:
        with tempfile.TemporaryDirectory(prefix="lockgate-bench-") as tmp:
            print("\n".join(against_report(Path(tmp), args.against, args.runs)))
        return 0
    body: list[str] = []
    if not args.skip_timing:
        with tempfile.TemporaryDirectory(prefix="lockgate-bench-") as tmp:
            body += timing_report(Path(tmp), args.runs)
    body += coverage_report(args.cases)
    print("\n".join(body))
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
