"""docs/rules.md is generated from the rules and must be regenerated when a rule changes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from lockgate.hooks import lockmatrix
from lockgate.hooks.docs import main, render, rule_infos
from lockgate.hooks.lint import all_rules
from lockgate.hooks.rules.squawk_map import NOT_COVERED

ROOT = Path(__file__).resolve().parents[1]
RULES_MD = ROOT / "docs" / "rules.md"


def test_committed_rules_md_is_up_to_date() -> None:
    assert RULES_MD.read_text(encoding="utf-8") == render(rule_infos()), (
        "docs/rules.md is stale: run `python -m lockgate.hooks.docs` and commit the result"
    )


def test_every_code_lockgate_reports_has_a_section() -> None:
    text = render(rule_infos())
    sources = [*ROOT.joinpath("hooks").rglob("*.py"), *ROOT.joinpath("controller").rglob("*.py")]
    used = {code for path in sources for code in re.findall(r"\"(LG\d{3})\"", path.read_text(encoding="utf-8"))}
    assert used and all(f"\n## {code} " in text for code in used), sorted(c for c in used if f"## {c} " not in text)


def test_lock_lines_come_from_the_lock_claims() -> None:
    lg101 = next(i for i in rule_infos() if i.code == "LG101")
    assert lg101.locks == ("`SHARE` on orders (blocks writes, scans it)", "`SHARE` on events (blocks writes, scans it)")


def test_every_rule_has_an_index_row_and_a_section_with_its_examples() -> None:
    text = render(rule_infos())
    for rule in all_rules():
        assert f"| [{rule.code}](#{rule.code.lower()}-{rule.name}) | {rule.name} |" in text
        assert f"\n## {rule.code} {rule.name}\n" in text
        for example in (*rule.bad, *rule.good):
            assert f"```sql\n{example.sql.strip()}\n```" in text
        for squawk_name in rule.squawk:
            assert f"`{squawk_name}`" in text
    for squawk_name in NOT_COVERED:
        assert f"| `{squawk_name}` |" in text


def test_check_flags_a_stale_file_and_writing_fixes_it(tmp_path: Path) -> None:
    output = tmp_path / "rules.md"
    assert main(["--check", "--output", str(output)]) == 1  # missing
    output.write_text(render(rule_infos()).replace("## LG000", "## LG000 (edited by hand)"), encoding="utf-8")
    assert main(["--check", "--output", str(output)]) == 1
    assert main(["--output", str(output)]) == 0
    assert main(["--check", "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == render(rule_infos())


def test_module_runs_as_a_script(tmp_path: Path) -> None:
    output = tmp_path / "docs" / "rules.md"
    done = subprocess.run(
        [sys.executable, "-m", "lockgate.hooks.docs", "--output", str(output)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    stale = subprocess.run(
        [sys.executable, "-m", "lockgate.hooks.docs", "--check", "--output", str(output)],
        capture_output=True, text=True, check=False,
    )
    assert stale.returncode == 0 and output.read_text(encoding="utf-8").startswith("# Lint rules and finding codes\n")


def test_committed_lock_matrix_is_up_to_date_and_shows_where_majors_differ() -> None:
    text = (ROOT / "docs" / "locks.md").read_text(encoding="utf-8")
    assert text == lockmatrix.render(), (
        "docs/locks.md is stale: run `python -m lockgate.hooks.lockmatrix` and commit the result"
    )
    # A volatile-free DEFAULT stopped rewriting the table in 11; SET EXPRESSION arrived in 17.
    assert "| `ALTER TABLE c ADD COLUMN z int DEFAULT 5` | 10 | ACCESS EXCLUSIVE on c, rewrite |\n" in text
    assert "|  | 11–18 | ACCESS EXCLUSIVE on c |\n" in text
    assert "|  | 17–18 | ACCESS EXCLUSIVE on c, rewrite |\n" in text
