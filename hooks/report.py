"""Findings as text (`path:line:col: CODE message`, like ruff) or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lockgate.hooks.rules.base import Finding


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


FORMATS = {"text": as_text, "json": as_json}
