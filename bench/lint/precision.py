"""lockgate lint and squawk over real public migration sets: crashes, per-rule counts, a judged sample.

    .venv/bin/python bench/lint/realcorpus.py --mirror /work/.mirror --out /tmp/lockgate-corpus
    .venv/bin/python bench/lint/precision.py --corpus /tmp/lockgate-corpus [--show] [--write]

The corpus path may also come from `LOCKGATE_CORPUS`. Each project's folder is linted by one
`lockgate lint --format json DIR` process and one `squawk --reporter json` process over the same files
(PostgreSQL 15; squawk with `--assume-in-transaction`, as lockgate runs a file as one transaction).
A crash is a lockgate exit code other than 0/1/2 or a traceback on stderr.

The sample: 30 findings drawn with `random.Random(SEED)` from all findings but LG000 (a file PostgreSQL's
parser refuses), ordered by project, file and line. Each was judged by reading the statement and the
migrations before it in its set (what the table is, whether it is new or empty there, what the down undoes),
against the rule's claim; the verdicts live in `judged.json` beside this file, keyed by
`project/file:line:rule`. `--show` prints the sample with each statement for judging; `--write` puts the
report under `## Lint precision on real migration sets` in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from lockgate.hooks.lint import all_rules

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JUDGED = Path(__file__).with_name("judged.json")
SEED = 20261206
SAMPLE = 30
PG_VERSION = "15"
SECTION = "## Lint precision on real migration sets"
NEXT_SECTION = re.compile(r"^## ", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Found:
    project: str
    path: str  # relative to the project's folder
    line: int
    rule: str
    message: str

    @property
    def key(self) -> str:
        return f"{self.project}/{self.path}:{self.line}:{self.rule}"


@dataclass(slots=True)
class ProjectRun:
    name: str
    files: int
    lockgate: list[Found]
    squawk: Counter[str]
    crashed: str | None


def _sql_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.sql"))


def run_project(folder: Path) -> ProjectRun:
    files = _sql_files(folder)
    done = subprocess.run([str(BIN / "lockgate"), "lint", "--format", "json", "--pg-version", PG_VERSION, "."],
                          cwd=folder, capture_output=True, text=True, check=False)
    crashed = None
    if done.returncode not in (0, 1, 2) or "Traceback" in done.stderr:
        crashed = f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    records = json.loads(done.stdout or "[]") if crashed is None else []
    found = [Found(folder.name, r["path"], r["line"], r["rule"], r["message"]) for r in records]
    squawked = subprocess.run(
        [str(BIN / "squawk"), "--reporter", "json", "--pg-version", PG_VERSION, "--assume-in-transaction", *files],
        cwd=folder, capture_output=True, text=True, check=False,
    )
    squawk = Counter(v["rule_name"] for v in json.loads(squawked.stdout or "[]"))
    return ProjectRun(folder.name, len(files), found, squawk, crashed)


def sample(runs: list[ProjectRun]) -> list[Found]:
    pool = sorted((f for r in runs for f in r.lockgate if f.rule != "LG000"),
                  key=lambda f: (f.project, f.path, f.line, f.rule))
    drawn = random.Random(SEED).sample(pool, min(SAMPLE, len(pool)))
    return sorted(drawn, key=lambda f: (f.project, f.path, f.line, f.rule))


def statement_at(corpus: Path, found: Found) -> str:
    lines = (corpus / found.project / found.path).read_text().splitlines()
    start = found.line - 1
    end = start
    while end < len(lines) and ";" not in lines[end] and end - start < 12:
        end += 1
    return "\n".join(lines[start:end + 1])


def _cell(text: str, limit: int = 110) -> str:
    one = " ".join(text.split()).replace("|", "\\|")
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() or "an unknown commit"


def report(corpus: Path, runs: list[ProjectRun], judged: dict[str, dict[str, str]]) -> str:
    manifest = json.loads((corpus / "manifest.json").read_text())
    rules = {r.code: r for r in all_rules()}
    out = [SECTION, "", "Commands: `.venv/bin/python bench/lint/realcorpus.py --mirror /work/.mirror --out "
           "/tmp/lockgate-corpus` (what it takes from each project and how it renames is in its docstring), then "
           "`.venv/bin/python bench/lint/precision.py --corpus /tmp/lockgate-corpus --write`. PostgreSQL 15 for both "
           "linters; squawk with `--assume-in-transaction`. lockgate at "
           f"{_head()}, squawk-cli 2.70.0.", ""]
    out += ["| project | commit | files | lockgate findings | squawk findings | lockgate crashes |",
            "| --- | --- | ---: | ---: | ---: | --- |"]
    for run in runs:
        entry = manifest.get(run.name.replace("+", "/"), {})
        out.append(f"| {run.name.replace('+', '/')} | {str(entry.get('commit', '?'))[:12]} | {run.files:,} | "
                   f"{len(run.lockgate):,} | {sum(run.squawk.values()):,} | {run.crashed or 'none'} |")
    total_files = sum(r.files for r in runs)
    crashes = sum(1 for r in runs if r.crashed)
    out += ["", f"{total_files:,} files; lockgate crashed on {crashes} of {len(runs)} projects.", ""]
    ours = Counter(f.rule for r in runs for f in r.lockgate)
    theirs: Counter[str] = Counter()
    for r in runs:
        theirs.update(r.squawk)
    out += ["Per rule. squawk's count beside a lockgate rule is the sum over the squawk rules it covers "
            "(`squawk` attribute); squawk rules without a lockgate equivalent are listed after.", "",
            "| lockgate rule | findings | squawk rules covered | their findings |", "| --- | ---: | --- | ---: |"]
    covered: set[str] = set()
    for code in sorted(set(ours) | {c for c, r in rules.items() if any(theirs[s] for s in r.squawk)}):
        squawk_rules = rules[code].squawk if code in rules else ()
        covered.update(squawk_rules)
        name = f"{code} {rules[code].name}" if code in rules else code
        out.append(f"| {name} | {ours[code]:,} | {', '.join(squawk_rules) or '—'} | "
                   f"{sum(theirs[s] for s in squawk_rules):,} |")
    rest = sorted(s for s in theirs if s not in covered)
    if rest:
        out += ["", "| squawk rule without a lockgate equivalent | findings |", "| --- | ---: |"]
        out += [f"| {s} | {theirs[s]:,} |" for s in rest]
    drawn = sample(runs)
    verdicts = Counter(judged.get(f.key, {}).get("verdict", "unjudged") for f in drawn)
    out += ["", f"Judged sample: {len(drawn)} findings drawn at random (seed {SEED}) from the "
            f"{sum(ours.values()) - ours['LG000']:,} findings other than LG000: **{verdicts['true']} true, "
            f"{verdicts['debatable']} debatable, {verdicts['false']} false**"
            + (f", {verdicts['unjudged']} not judged" if verdicts["unjudged"] else "") + " (target: at most 1 false).",
            "", "How each was judged: the statement read with the migrations before it in its set (is the table new "
            "or empty there, is the key unique, what the down undoes), against what the rule's message claims. "
            "*true*: the claim holds and acting on it makes the migration safer; *debatable*: the claim holds but "
            "the risk depends on data size or intent the set does not show; *false*: the claim does not hold.", "",
            "| # | finding | verdict | why |", "| ---: | --- | --- | --- |"]
    for n, f in enumerate(drawn, start=1):
        j = judged.get(f.key, {})
        out.append(f"| {n} | `{f.project.replace('+', '/')}/{f.path}:{f.line}` {f.rule}: {_cell(f.message)} | "
                   f"{j.get('verdict', 'unjudged')} | {_cell(j.get('why', ''), 220)} |")
    return "\n".join(out) + "\n"


def write(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text()
    if SECTION in current:
        start = current.index(SECTION)
        following = NEXT_SECTION.search(current, start + len(SECTION))
        end = following.start() if following else len(current)
        current = current[:start] + text + "\n" + current[end:]
    else:
        anchor = current.index("## Backfill")
        current = current[:anchor] + text + "\n" + current[anchor:]
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=os.environ.get("LOCKGATE_CORPUS"),
                        help="folder written by realcorpus.py (or LOCKGATE_CORPUS)")
    parser.add_argument("--show", action="store_true", help="print the sample with its statements, for judging")
    parser.add_argument("--write", action="store_true", help="write the report into BENCHMARKS.md")
    args = parser.parse_args()
    if args.corpus is None:
        parser.error("give --corpus or LOCKGATE_CORPUS")
    runs = [run_project(folder) for folder in sorted(p for p in args.corpus.iterdir() if p.is_dir())]
    judged = json.loads(JUDGED.read_text()) if JUDGED.exists() else {}
    if args.show:
        for n, f in enumerate(sample(runs), start=1):
            print(f"--- {n} {f.key}\n{f.message}\n{statement_at(args.corpus, f)}\n")
    text = report(args.corpus, runs, judged)
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
