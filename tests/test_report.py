"""The four report formats, from real lint findings (plus odd paths for the escaping rules)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lockgate.hooks.check import CHECK_CODES
from lockgate.hooks.codes import VERIFY_CODES
from lockgate.hooks.lint import all_rules, lint_paths
from lockgate.hooks.report import FORMATS, artifact_uri, as_github, as_json, as_text, sarif_log
from lockgate.hooks.rules.base import Finding, Severity

UNSAFE_UP = "CREATE TABLE t (id bigint);\n\nCREATE INDEX orders_at_idx ON orders (created_at);\n"
BROKEN_UP = "ALTER TABLE orders ADD COLUMN note text;\nSELEC 1;\n"
GITHUB_LINE = re.compile(r"^::(?P<level>error|warning|notice) (?P<props>[^:]*)::(?P<message>.*)$")


@pytest.fixture
def findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Finding]:
    monkeypatch.chdir(tmp_path)
    folder = Path("migrations")
    folder.mkdir()
    (folder / "1_unsafe.up.sql").write_text(UNSAFE_UP)
    (folder / "2_broken.up.sql").write_text(BROKEN_UP)
    result = lint_paths(sorted(folder.glob("*.sql")), pg_version=15)
    assert result.bad_input
    return result.findings


def test_text_is_ruff_like_with_a_summary(findings: list[Finding]) -> None:
    lines = as_text(findings).splitlines()
    assert lines[0].startswith("migrations/1_unsafe.up.sql:3:1: LG101 CREATE INDEX takes a SHARE lock on orders")
    assert lines[1].startswith("migrations/2_broken.up.sql:2:1: LG000 syntax error at or near")
    assert lines[-1] == "Found 2 problems in 2 files."
    assert as_text([]) == ""


def test_json_has_one_object_per_finding(findings: list[Finding]) -> None:
    data = json.loads(as_json(findings))
    assert [(d["path"], d["line"], d["column"], d["rule"]) for d in data] == [
        ("migrations/1_unsafe.up.sql", 3, 1, "LG101"), ("migrations/2_broken.up.sql", 2, 1, "LG000"),
    ]
    assert data[0]["name"] == "require-concurrent-index-creation"
    assert data[1]["name"] == "syntax-error"
    assert {d["severity"] for d in data} == {"error"}
    assert all(d["message"] for d in data)
    assert json.loads(as_json([])) == []


def assert_valid_sarif(log: dict[str, Any]) -> None:
    """The parts of SARIF 2.1.0 that GitHub code scanning requires and reads."""
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "lockgate" and re.match(r"\d+\.\d+", driver["version"])
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        assert re.fullmatch(r"LG\d{3}", rule["id"]) and rule["name"]
        for key in ("shortDescription", "fullDescription"):
            assert rule[key]["text"].strip() and "\n" not in rule[key]["text"]
        assert rule["help"]["text"].strip() and rule["help"]["markdown"].strip()
        assert rule["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("none", "note", "warning", "error")
        assert result["message"]["text"].strip()
        (location,) = result["locations"]
        uri = location["physicalLocation"]["artifactLocation"]["uri"]
        assert "\\" not in uri and not uri.startswith("/") and ":" not in uri, uri
        region = location["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1


def test_sarif_names_every_rule_and_locates_every_result(findings: list[Finding]) -> None:
    log = json.loads(FORMATS["sarif"](findings))
    assert_valid_sarif(log)
    driver = log["runs"][0]["tool"]["driver"]
    codes = ["LG000", *(r.code for r in all_rules()), *(c.code for c in CHECK_CODES), *(c.code for c in VERIFY_CODES)]
    assert [r["id"] for r in driver["rules"]] == codes
    lg101 = next(r for r in driver["rules"] if r["id"] == "LG101")
    assert lg101["shortDescription"]["text"] == "CREATE INDEX without CONCURRENTLY on an existing table"
    assert "SHARE lock" in lg101["help"]["text"] and "```sql" in lg101["help"]["markdown"]
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in results] == [
        ("LG101", "migrations/1_unsafe.up.sql"), ("LG000", "migrations/2_broken.up.sql"),
    ]
    assert results[0]["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 1}
    assert_valid_sarif(sarif_log([]))


def test_sarif_uri_is_relative_with_forward_slashes(tmp_path: Path) -> None:
    assert artifact_uri(tmp_path / "db" / "migrations" / "1_a.up.sql", tmp_path) == "db/migrations/1_a.up.sql"
    assert artifact_uri(Path("db/1_a.up.sql"), tmp_path) == "db/1_a.up.sql"
    outside = artifact_uri(Path("/elsewhere/1_a.up.sql"), tmp_path)
    assert outside == "file:///elsewhere/1_a.up.sql"


def _unescape(text: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def parse_github(output: str) -> list[dict[str, str]]:
    """Workflow commands back into fields, the way the Actions runner reads them."""
    parsed = []
    for line in output.splitlines():
        m = GITHUB_LINE.match(line)
        assert m, line
        props = dict(p.split("=", 1) for p in m["props"].split(","))
        parsed.append({"level": m["level"], **{k: _unescape(v) for k, v in props.items()},
                       "message": _unescape(m["message"])})
    return parsed


def test_github_annotations_parse_back(findings: list[Finding]) -> None:
    parsed = parse_github(as_github(findings))
    assert parsed[0] == {
        "level": "error", "file": "migrations/1_unsafe.up.sql", "line": "3", "col": "1",
        "title": "LG101 require-concurrent-index-creation", "message": findings[0].message,
    }
    assert parsed[1]["title"] == "LG000 syntax-error" and parsed[1]["line"] == "2"
    assert as_github([]) == ""


def test_github_escapes_data_and_properties() -> None:
    odd = Finding(Path("a,b:c%d/1_x.up.sql"), 7, 3, "LG999", "made-up", Severity.WARNING, "100% sure\r\nnext, line: x")
    (line,) = as_github([odd]).splitlines()
    assert line == (
        "::warning file=a%2Cb%3Ac%25d/1_x.up.sql,line=7,col=3,title=LG999 made-up"
        "::100%25 sure%0D%0Anext, line: x"
    )
    (parsed,) = parse_github(line)
    assert parsed["file"] == "a,b:c%d/1_x.up.sql" and parsed["message"] == odd.message
