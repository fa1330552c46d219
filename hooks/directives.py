"""`-- lockgate:` directives and `-- Key: value` header comments.

Directives are whole-line SQL comments, so they survive `psql -f` and any formatter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from lockgate.hooks.errors import InputError
from lockgate.hooks.records import Record

PREFIX = "-- lockgate:"
# A line whose first characters other than blanks are PREFIX: one search of the text finds them all.
_DIRECTIVE_LINE = re.compile(rf"^[^\S\n]*{re.escape(PREFIX)}[^\n]*", re.MULTILINE)
_HEADER = re.compile(r"^--\s*(?P<key>[A-Z][A-Za-z ]{0,40}):\s*(?P<value>.+?)\s*$")
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m)$")
# Each worker is one more connection and one more busy backend on the production server.
MAX_WORKERS = 16
_RULE = re.compile(r"^(?:LG\d{3}|[a-z][a-z0-9-]+)$")


class Batch(Record):
    """`-- lockgate:batch`: run the next UPDATE/DELETE in key ranges."""

    __slots__ = ("key", "line", "pause_s", "size", "target_s", "workers")

    def __init__(self, line: int, size: int = 10_000, key: str | None = None, pause_s: float = 0.0,
                 target_s: float | None = None, workers: int = 1) -> None:
        self.line = line
        self.size = size
        self.key = key
        self.pause_s = pause_s
        self.target_s = target_s
        self.workers = workers


class Ignore(Record):
    """`-- lockgate:ignore` (next statement) or `ignore-file` (whole file)."""

    __slots__ = ("line", "reason", "rules", "whole_file")

    def __init__(self, line: int, rules: tuple[str, ...], reason: str, whole_file: bool) -> None:
        self.line = line
        self.rules = rules
        self.reason = reason
        self.whole_file = whole_file


class NoTransaction(Record):
    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        self.line = line


# The engine's lock_timeout and statement_timeout in seconds when nothing is configured.
DEFAULT_LOCK_TIMEOUT_S = 2.0
DEFAULT_STATEMENT_TIMEOUT_S = 300.0


class Timeout(Record):
    """`-- lockgate:timeout lock=5s statement=30m` (file level, up file only): this migration's
    lock_timeout and statement_timeout instead of the configured ones; None keeps the configured
    value, a statement of 0 means no limit."""

    __slots__ = ("line", "lock_s", "statement_s")

    def __init__(self, line: int, lock_s: float | None = None, statement_s: float | None = None) -> None:
        self.line = line
        self.lock_s = lock_s
        self.statement_s = statement_s


Directive = Batch | Ignore | NoTransaction | Timeout


def seconds(text: str, *, path: Path, line: int, key: str) -> float:
    """`100ms`, `2s`, `1m` as seconds."""
    m = _DURATION.match(text)
    if not m:
        raise InputError.at(path, line, 1, f"{key}={text!r} is not a duration like 100ms, 2s or 1m")
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0}[m["unit"]]
    return float(m["n"]) * scale


def _count(values: dict[str, str], key: str, default: int, path: Path, line: int) -> int:
    if key not in values:
        return default
    if not values[key].isdigit() or int(values[key]) < 1:
        raise InputError.at(path, line, 1, f"batch {key}={values[key]!r} must be a positive integer")
    return int(values[key])


def _options(args: str, path: Path, line: int, directive: str, known: tuple[str, ...]) -> dict[str, str]:
    """`key=value` words, each key known and given once."""
    values: dict[str, str] = {}
    for word in args.split():
        key, eq, value = word.partition("=")
        if not eq or not value:
            raise InputError.at(path, line, 1, f"{directive} option {word!r} must be key=value")
        if key not in known:
            raise InputError.at(
                path, line, 1, f"unknown {directive} option {key!r} (expected {', '.join(known)})"
            )
        if key in values:
            raise InputError.at(path, line, 1, f"{directive} option {key!r} given twice")
        values[key] = value
    return values


def _batch(args: str, path: Path, line: int) -> Batch:
    values = _options(args, path, line, "batch", ("size", "key", "pause", "target", "workers"))
    size = _count(values, "size", 10_000, path, line)
    workers = _count(values, "workers", 1, path, line)
    if workers > MAX_WORKERS:
        raise InputError.at(path, line, 1, f"batch workers={workers} is more than {MAX_WORKERS}")
    column = values.get("key")
    if column is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", column):
        raise InputError.at(path, line, 1, f"batch key={column!r} must be a column name")
    pause = seconds(values["pause"], path=path, line=line, key="pause") if "pause" in values else 0.0
    target = seconds(values["target"], path=path, line=line, key="target") if "target" in values else None
    return Batch(line=line, size=size, key=column, pause_s=pause, target_s=target, workers=workers)


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


def _timeout(args: str, path: Path, line: int) -> Timeout:
    values: dict[str, float] = {}
    for key, value in _options(args, path, line, "timeout", ("lock", "statement")).items():
        values[key] = seconds(value, path=path, line=line, key=key)
        # The server takes whole milliseconds; 0 switches the limit off.
        if 0 < values[key] < 0.001:
            raise InputError.at(path, line, 1, f"{key}={value!r} is less than 1ms")
        if key == "lock" and values[key] == 0:
            raise InputError.at(
                path, line, 1,
                f"lock={value} would wait for a lock forever, and every query queued behind it would wait too",
            )
    if not values:
        raise InputError.at(path, line, 1, "lockgate:timeout needs lock=DURATION, statement=DURATION or both")
    return Timeout(line=line, lock_s=values.get("lock"), statement_s=values.get("statement"))


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
    if word == "timeout":
        return _timeout(args, path, line)
    raise InputError.at(
        path, line, 1,
        f"unknown directive lockgate:{word} (expected batch, no-transaction, timeout, ignore, ignore-file)",
    )


def scan_directives(text: str, path: Path) -> dict[int, Directive]:
    """Every directive in the file, by 1-based line number."""
    found: dict[int, Directive] = {}
    line, at = 1, 0
    for m in _DIRECTIVE_LINE.finditer(text):
        line += text.count("\n", at, m.start())
        at = m.start()
        found[line] = parse_directive(m[0], path, line)
    timeouts = [n for n, d in found.items() if isinstance(d, Timeout)]
    if timeouts:
        _check_timeouts(timeouts, path)
    return found


def _check_timeouts(lines: list[int], path: Path) -> None:
    """One timeout directive per migration, in its up file: it governs the whole migration
    (the up's steps, its validation gates and its rollback), so a down or validate file
    holding one would be a second, contradicting source."""
    if path.name.endswith((".down.sql", ".validate.sql")):
        raise InputError.at(
            path, lines[0], 1,
            "lockgate:timeout belongs in the up file; its timeouts cover the whole migration, "
            "validation and rollback included",
        )
    if len(lines) > 1:
        raise InputError.at(
            path, lines[1], 1, f"a second lockgate:timeout (the first is on line {lines[0]}); give both on one line"
        )


def read_header(lines: Sequence[str]) -> dict[str, str]:
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
