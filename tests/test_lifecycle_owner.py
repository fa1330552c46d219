"""Only the lifecycle decides whether a migration runs, resumes, waits or is skipped.

Every other controller module asks `lockgate.controller.lifecycle`; none reads a ledger row's
status or run state (`undo_steps_done`) to decide for itself. This scans their source for such a
decision, so a new one cannot creep back in beside the lifecycle.
"""

from __future__ import annotations

import re
from pathlib import Path

CONTROLLER = Path(__file__).resolve().parent.parent / "controller"
# Where the states are defined (lifecycle) and stored (ledger).
OWNERS = {"lifecycle.py", "ledger.py"}
# A ledger row's status compared with a value, or its rollback progress tested: a decision.
DECIDES = re.compile(
    r"\b(?:entry|row|record|e)\.status\s*(?:==|!=|\bis\b|\bin\b|\bnot in\b)"
    r"|\bundo_steps_done\s+is\b"
)


def _decisions() -> list[str]:
    found = []
    for path in sorted(CONTROLLER.rglob("*.py")):
        if path.name in OWNERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0].strip()
            if code.startswith("assert "):  # states an expectation, decides nothing
                continue
            if DECIDES.search(code):
                found.append(f"{path.relative_to(CONTROLLER.parent)}:{number}: {code}")
    return found


def test_no_module_but_the_lifecycle_decides_run_or_skip() -> None:
    assert _decisions() == []


def test_the_scan_finds_a_decision_made_outside_the_lifecycle() -> None:
    assert DECIDES.search('if entry is not None and entry.status == "applied":')
    assert DECIDES.search("if entry.undo_steps_done is None:")
    assert DECIDES.search("if entry.status is Outcome.APPLIED:")
    assert not DECIDES.search('if outcome.status == "interrupted":')  # what a run did, not what to do
