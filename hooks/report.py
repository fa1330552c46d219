"""Findings as text (ruff-like), JSON, SARIF 2.1.0 (GitHub code scanning) or GitHub annotations.

Each reporter turns the sorted findings into one string; the CLI prints it. Imports that only
one format needs (rule metadata, the installed version) are made inside that format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lockgate.hooks.rules.base import Finding, Severity
from lockgate.hooks.version import lockgate_version

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"


def as_text(findings: Sequence[Finding]) -> str:
    lines = [str(f) for f in findings]
    if findings:
        files = len({f.path for f in findings})
        lines.append(f"Found {len(findings)} problem{'s' * (len(findings) != 1)} in {files} file{'s' * (files != 1)}.")
    return "\n".join(lines)


def as_json(findings: Sequence[Finding]) -> str:
    return json.dumps(
        [
            {
                "path": str(f.path), "line": f.line, "column": f.column, "rule": f.rule,
                "name": f.name, "severity": str(f.severity), "message": f.message,
            }
            for f in findings
        ],
        indent=2,
    )


def artifact_uri(path: Path, root: Path | None = None) -> str:
    """A path as SARIF wants it: relative to the checkout, forward slashes; else a file URI."""
    root = (root or Path.cwd()).resolve()
    absolute = path if path.is_absolute() else root / path
    try:
        return absolute.resolve().relative_to(root).as_posix()
    except ValueError:
        return absolute.resolve().as_uri()


def _sarif_level(severity: Severity) -> str:
    return "error" if severity is Severity.ERROR else "warning"


def _sarif_rules() -> list[dict[str, Any]]:
    from lockgate.hooks.codes import RuleInfo, rule_infos
    from lockgate.hooks.docs import help_markdown

    def descriptor(info: RuleInfo) -> dict[str, Any]:
        return {
            "id": info.code,
            "name": info.name,
            "shortDescription": {"text": info.summary},
            "fullDescription": {"text": info.lead},
            "help": {"text": info.doc, "markdown": help_markdown(info)},
            "defaultConfiguration": {"level": _sarif_level(info.severity)},
            "properties": {"tags": ["postgresql", "migrations"]},
        }

    return [descriptor(info) for info in rule_infos()]




def sarif_log(findings: Sequence[Finding], root: Path | None = None) -> dict[str, Any]:
    """The SARIF 2.1.0 log of one lint run: every rule in the driver, one result per finding."""
    rules = _sarif_rules()
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": _sarif_level(f.severity),
            "message": {"text": f.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": artifact_uri(f.path, root)},
                    "region": {"startLine": f.line, "startColumn": f.column},
                },
            }],
        }
        for f in findings
    ]
    driver = {
        "name": "lockgate",
        "version": lockgate_version(),
        "rules": rules,
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{"tool": {"driver": driver}, "results": results}],
    }


def as_sarif(findings: Sequence[Finding]) -> str:
    return json.dumps(sarif_log(findings), indent=2)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def as_github(findings: Sequence[Finding]) -> str:
    """GitHub Actions workflow commands: each finding annotates its line in the PR diff."""
    return "\n".join(
        f"::{f.severity} file={_escape_property(Path(f.path).as_posix())},line={f.line},col={f.column},"
        f"title={_escape_property(f'{f.rule} {f.name}')}::{_escape_data(f.message)}"
        for f in findings
    )


FORMATS: dict[str, Callable[[Sequence[Finding]], str]] = {
    "text": as_text,
    "json": as_json,
    "sarif": as_sarif,
    "github": as_github,
}
