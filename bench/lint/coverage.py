"""lockgate's rules next to squawk's, measured on squawk's own test inputs.

The cases file (squawk 2.70's rule tests: rule, sql, expect flag/ok, settings) is read at run
time from the shared reference directory; nothing of it is copied into the project. Each case
is linted by lockgate as an up file the way the engine would run it, with the case's target
version, and by squawk itself (every rule switched on, the case's settings), so a statement
squawk reports under a sibling rule that the same lockgate rule covers is recognised.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from disagreements import REASONS

from lockgate.hooks.lint import lint_sql
from lockgate.hooks.rules.base import Rule
from lockgate.hooks.rules.squawk_map import SQUAWK_RULES
from lockgate.hooks.settings import DEFAULT_PG_VERSION, SUPPORTED_PG_VERSIONS
from lockgate.hooks.sqlmodel import parse_sql


@dataclass(frozen=True, slots=True)
class Case:
    rule: str
    sql: str
    flag: bool  # squawk's test expects it flagged
    fixture: str  # squawk's test name, e.g. "adding_field_with_default::docs_example_ok"
    pg_version: str | None
    in_transaction: bool


@dataclass(slots=True)
class Verdict:
    case: Case
    lockgate_flags: bool  # a lockgate rule mapped to the case's squawk rule fired
    codes: tuple[str, ...]  # every lockgate rule that fired
    squawk_rules: frozenset[str]  # every squawk rule that fired, all rules on
    sibling: str = ""  # squawk flags the same statement under another rule the lockgate rule covers

    @property
    def agrees(self) -> bool:
        return self.lockgate_flags == self.case.flag or bool(self.sibling)

    @property
    def reason(self) -> str:
        return REASONS.get(self.case.fixture, "unexplained: a gap or a false positive to look at")


@dataclass(slots=True)
class RuleCoverage:
    squawk_rule: str
    lockgate_rules: tuple[str, ...]
    verdicts: list[Verdict] = field(default_factory=list)

    def count(self, *, flag: bool) -> tuple[int, int]:
        """(agreeing, total) over squawk's flag cases or its ok cases."""
        cases = [v for v in self.verdicts if v.case.flag == flag]
        return sum(v.agrees for v in cases), len(cases)


def load_cases(path: Path) -> list[Case]:
    cases = []
    for raw in json.loads(path.read_text(encoding="utf-8")):
        settings = raw.get("settings", {})
        version = settings.get("pg_version")
        note = raw.get("note", "")
        cases.append(Case(
            rule=raw["rule"], sql=raw["sql"], flag=raw["expect"] == "flag",
            fixture=note.removeprefix("squawk fixture ").split(";")[0],
            pg_version=str(version) if version is not None else None,
            in_transaction=bool(settings.get("assume_in_transaction")),
        ))
    return cases


def lockgate_version_for(case: Case) -> int:
    """squawk's setting, clamped to the versions lockgate knows (its tests use a future 19)."""
    if case.pg_version is None:
        return DEFAULT_PG_VERSION
    major = int(case.pg_version.split(".")[0])
    return min(max(major, SUPPORTED_PG_VERSIONS.start), SUPPORTED_PG_VERSIONS.stop - 1)


def covering_rules(rules: Iterable[Rule]) -> dict[str, tuple[str, ...]]:
    """squawk rule name -> the lockgate rule codes that claim it (each rule's `squawk`)."""
    table: dict[str, list[str]] = defaultdict(list)
    for rule in rules:
        for name in rule.squawk:
            table[name].append(rule.code)
    return {k: tuple(v) for k, v in table.items()}


def run_squawk(squawk: Path, cases: list[Case]) -> list[frozenset[str]]:
    """The squawk rules that fire on each case, every rule included, one squawk run per setting."""
    fired: list[set[str]] = [set() for _ in cases]
    groups: dict[tuple[str | None, bool], list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        groups[(case.pg_version, case.in_transaction)].append(i)
    with tempfile.TemporaryDirectory(prefix="lockgate-squawk-cases-") as tmp:
        for (pg_version, in_transaction), indexes in groups.items():
            names = {f"case_{i:04d}.sql": i for i in indexes}
            for name, i in names.items():
                (Path(tmp) / name).write_text(cases[i].sql, encoding="utf-8")
            command = [str(squawk), "--reporter", "json", f"--include={','.join(SQUAWK_RULES)}", *names]
            if pg_version is not None:
                command.append(f"--pg-version={pg_version}")
            if in_transaction:
                command.append("--assume-in-transaction")
            done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
            for violation in json.loads(done.stdout or "[]"):
                fired[names[Path(violation["file"]).name]].add(violation["rule_name"])
    return [frozenset(f) for f in fired]


def judge(case: Case, rules_by_code: dict[str, Rule], squawk_fired: frozenset[str]) -> Verdict:
    """Lint one case as an up migration and compare with squawk on the case's rule."""
    findings, _ = lint_sql(parse_sql(Path(f"{case.rule}.up.sql"), case.sql), pg_version=lockgate_version_for(case))
    codes = tuple(sorted({f.rule for f in findings}))
    fired_for = [rules_by_code[c] for c in codes if c in rules_by_code]
    flags = any(case.rule in r.squawk for r in fired_for)
    sibling = ""
    if flags and not case.flag:
        # One lockgate rule often covers several squawk rules (LG804: every policy change).
        related = {s for r in fired_for if case.rule in r.squawk for s in r.squawk} - {case.rule}
        others = sorted(related & squawk_fired)
        sibling = ", ".join(others)
    return Verdict(case, flags, codes, squawk_fired, sibling)


def measure(cases: list[Case], rules: tuple[Rule, ...], squawk: Path) -> list[RuleCoverage]:
    covering = covering_rules(rules)
    by_code = {r.code: r for r in rules}
    squawk_fired = run_squawk(squawk, cases)
    by_rule: dict[str, RuleCoverage] = {}
    for case, fired in zip(cases, squawk_fired, strict=True):
        coverage = by_rule.setdefault(case.rule, RuleCoverage(case.rule, covering.get(case.rule, ())))
        if coverage.lockgate_rules:
            coverage.verdicts.append(judge(case, by_code, fired))
    return sorted(by_rule.values(), key=lambda c: c.squawk_rule)


def first_line(sql: str, width: int = 70) -> str:
    lines = [ln.strip() for ln in sql.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    text = " ".join(lines)
    return text if len(text) <= width else text[: width - 1] + "…"
