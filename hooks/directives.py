"""`-- lockgate:` directives and `-- Key: value` header comments.

Directives are whole-line SQL comments, so they survive `psql -f` and any formatter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lockgate.hooks.errors import InputError

PREFIX = "-- lockgate:"
_HEADER = re.compile(r"^--\s*(?P<key>[A-Z][A-Za-z ]{0,40}):\s*(?P<value>.+?)\s*$")
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m)$")
_RULE = re.compile(r"^(?:LG\d{3}|[a-z][a-z0-9-]+)$")


@dataclass(frozen=True, slots=True)
class Batch:
    """`-- lockgate:batch`: run the next UPDATE/DELETE in key ranges."""

    line: int
    size: int = 10_000
    key: str | None = None
    pause_s: float = 0.0
    target_s: float | None = None


@dataclass(frozen=True, slots=True)
class Ignore:
    """`-- lockgate:ignore` (next statement) or `ignore-file` (whole file)."""

    line: int
    rules: tuple[str, ...]
    reason: str
    whole_file: bool


@dataclass(frozen=True, slots=True)
class NoTransaction:
    line: int


Directive = Batch | Ignore | NoTransaction


def seconds(text: str, *, path: Path, line: int, key: str) -> float:
    """`100ms`, `2s`, `1m` as seconds."""
    m = _DURATION.match(text)
    if not m:
        raise InputError.at(path, line, 1, f"{key}={text!r} is not a duration like 100ms, 2s or 1m")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[m["unit"]]
    return float(m["n"]) * scale


def _batch(args: str, path: Path, line: int) -> Batch:
    values: dict[str, str] = {}
    for word in args.split():
        key, eq, value = word.partition("=")
        if not eq or not value:
            raise InputError.at(path, line, 1, f"batch option {word!r} must be key=value")
        if key not in {"size", "key", "pause", "target"}:
            raise InputError.at(
                path, line, 1, f"unknown batch option {key!r} (expected size, key, pause, target)"
            )
        values[key] = value
    size = 10_000
    if "size" in values:
        if not values["size"].isdigit() or int(values["size"]) < 1:
            raise InputError.at(path, line, 1, f"batch size={values['size']!r} must be a positive integer")
        size = int(values["size"])
    column = values.get("key")
    if column is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", column):
        raise InputError.at(path, line, 1, f"batch key={column!r} must be a column name")
    pause = seconds(values["pause"], path=path, line=line, key="pause") if "pause" in values else 0.0
    target = seconds(values["target"], path=path, line=line, key="target") if "target" in values else None
    return Batch(line=line, size=size, key=column, pause_s=pause, target_s=target)


def _ignore(args: str, path: Path, line: int, whole_file: bool) -> Ignore:
    rules_text, sep, reason = args.partition("--")
    reason = reason.strip()
    name = "ignore-file" if whole_file else "ignore"
    if not sep or not reason:
        raise InputError.at(path, line, 1, f"lockgate:{name} needs a reason: -- lockgate:{name} RULE -- why")
    rules = tuple(r.strip() for r in rules_text.replace(",", " ").split() if r.strip())
    if not rules:
        raise InputError.at(path, line, 1, f"lockgate:{name} names no rule")
    for rule in rules:
        if not _RULE.match(rule):
            raise InputError.at(path, line, 1, f"lockgate:{name}: {rule!r} is not a rule code or name")
    return Ignore(line=line, rules=rules, reason=reason, whole_file=whole_file)


def parse_directive(text: str, path: Path, line: int) -> Directive:
    """Parse one comment line that starts with `-- lockgate:`."""
    body = text.strip()[len(PREFIX):].strip()
    word, _, args = body.partition(" ")
    if word == "batch":
        return _batch(args, path, line)
    if word == "no-transaction":
        if args.strip():
            raise InputError.at(path, line, 1, "lockgate:no-transaction takes no arguments")
        return NoTransaction(line=line)
    if word in ("ignore", "ignore-file"):
        return _ignore(args, path, line, whole_file=word == "ignore-file")
    raise InputError.at(
        path, line, 1, f"unknown directive lockgate:{word} (expected batch, no-transaction, ignore, ignore-file)"
    )


def scan_directives(lines: list[str], path: Path) -> dict[int, Directive]:
    """Every directive in the file, by 1-based line number."""
    return {
        n: parse_directive(text, path, n)
        for n, text in enumerate(lines, start=1)
        if text.lstrip().startswith(PREFIX)
    }


def read_header(lines: list[str]) -> dict[str, str]:
    """`-- Description: …` style comments at the top of the file, before any SQL."""
    header: dict[str, str] = {}
    for text in lines:
        stripped = text.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        m = _HEADER.match(stripped)
        if m and not stripped.startswith(PREFIX):
            header[m["key"].strip()] = m["value"]
    return header
