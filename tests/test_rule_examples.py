"""Every rule's documented examples are its tests: bad ones are flagged, good ones are not."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from lockgate.hooks.examples import lint_example
from lockgate.hooks.lint import all_rules
from lockgate.hooks.rules.base import Example, Finding, Rule, Severity
from lockgate.hooks.sqlmodel import parse_sql

RULES = all_rules()
BAD = [pytest.param(r, e, id=f"{r.code}-bad{i}") for r in RULES for i, e in enumerate(r.bad)]
GOOD = [pytest.param(r, e, id=f"{r.code}-good{i}") for r in RULES for i, e in enumerate(r.good)]
BY_RULE = [pytest.param(r, id=r.code) for r in RULES]


def of_rule(findings: list[Finding], rule: Rule) -> list[Finding]:
    return [f for f in findings if f.rule == rule.code]


@pytest.mark.parametrize(("rule", "example"), BAD)
def test_bad_example_is_flagged(rule: Rule, example: Example) -> None:
    findings = of_rule(lint_example(example), rule)
    assert findings, f"{rule.code} does not flag its bad example:\n{example.sql}"
    for finding in findings:
        assert finding.name == rule.name and finding.severity == rule.severity
        assert finding.message.strip() and "\n" not in finding.message and "\r" not in finding.message


@pytest.mark.parametrize(("rule", "example"), GOOD)
def test_good_example_is_not_flagged(rule: Rule, example: Example) -> None:
    assert of_rule(lint_example(example), rule) == [], f"{rule.code} flags its good example:\n{example.sql}"


@pytest.mark.parametrize("rule", BY_RULE)
def test_rule_is_documented(rule: Rule) -> None:
    assert re.fullmatch(r"LG[1-8]\d\d", rule.code)
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", rule.name)
    assert rule.summary.strip() and "\n" not in rule.summary
    assert (type(rule).__doc__ or "").strip(), f"{rule.code} has no docstring"
    assert rule.bad and rule.good, f"{rule.code} needs at least one bad and one good example"
    assert isinstance(rule.severity, Severity)
    assert rule.kinds, f"{rule.code} looks at no statement kind"
    for example in (*rule.bad, *rule.good):
        assert example.pg_version is None or 10 <= example.pg_version <= 18


def test_codes_and_names_are_unique() -> None:
    for attribute in ("code", "name"):
        counts = Counter(getattr(r, attribute) for r in RULES)
        assert [k for k, n in counts.items() if n > 1] == [], f"duplicate rule {attribute}s"


def _with_directive_before(example: Example, directive: str, lines: set[int]) -> str:
    """The example with `directive` on its own line right above each of `lines`."""
    out: list[str] = []
    for n, line in enumerate(example.sql.split("\n"), start=1):
        if n in lines:
            out.append(directive)
        out.append(line)
    return "\n".join(out)


def _rules_and_messages(findings: list[Finding]) -> Counter[tuple[str, str]]:
    return Counter((f.rule, f.message) for f in findings)


@pytest.mark.parametrize(("rule", "example"), BAD)
def test_ignore_silences_that_rule_on_the_next_statement_only(rule: Rule, example: Example) -> None:
    """An ignore above one statement removes some of that rule's findings and changes nothing else;
    ignoring each statement in turn accounts for every finding of the rule exactly once."""
    before = _rules_and_messages(lint_example(example))
    directive = f"-- lockgate:ignore {rule.code} -- tested on purpose"
    silenced: Counter[tuple[str, str]] = Counter()
    for start in sorted({s.line for s in parse_sql(Path("example.up.sql"), example.sql).statements}):
        after = _rules_and_messages(lint_example(example, _with_directive_before(example, directive, {start})))
        assert after <= before, f"ignoring {rule.code} above line {start} added findings"
        removed = before - after
        assert all(code == rule.code for code, _ in removed), f"ignoring {rule.code} silenced {removed}"
        silenced += removed
    assert silenced == _rules_and_messages(of_rule(lint_example(example), rule))


@pytest.mark.parametrize(("rule", "example"), BAD)
def test_ignore_by_name_before_every_statement_silences_only_that_rule(rule: Rule, example: Example) -> None:
    before = lint_example(example)
    starts = {s.line for s in parse_sql(Path("example.up.sql"), example.sql).statements}
    directive = f"-- lockgate:ignore {rule.name} -- tested on purpose"
    after = lint_example(example, _with_directive_before(example, directive, starts))
    assert _rules_and_messages(after) == _rules_and_messages([f for f in before if f.rule != rule.code])


@pytest.mark.parametrize(("rule", "example"), BAD)
def test_ignore_file_silences_that_rule_everywhere(rule: Rule, example: Example) -> None:
    before = lint_example(example)
    after = lint_example(example, f"-- lockgate:ignore-file {rule.code} -- tested on purpose\n\n{example.sql}")
    assert of_rule(after, rule) == []
    assert _rules_and_messages(after) == _rules_and_messages([f for f in before if f.rule != rule.code])
