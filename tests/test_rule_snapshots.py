"""Every bad example's findings, message text included, against a committed snapshot.

A change to any rule's wording, position or verdict shows up as a diff of
tests/snapshots/bad_examples.txt; after checking it, write the new snapshot with
`LOCKGATE_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_rule_snapshots.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lockgate.hooks.examples import lint_example
from lockgate.hooks.lint import all_rules

SNAPSHOT = Path(__file__).parent / "snapshots" / "bad_examples.txt"


def render() -> str:
    lines: list[str] = []
    for rule in all_rules():
        for n, example in enumerate(rule.bad):
            lines.append(f"== {rule.code} bad {n}")
            lines += [str(f) for f in lint_example(example)]
    return "\n".join(lines) + "\n"


def test_bad_examples_match_the_snapshot() -> None:
    text = render()
    if os.environ.get("LOCKGATE_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
    assert SNAPSHOT.read_text(encoding="utf-8") == text, (
        "a bad example's findings changed: check the diff, then LOCKGATE_UPDATE_SNAPSHOTS=1 to record it"
    )
