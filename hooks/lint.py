"""Run the rules over migration files and collect findings.

Up files are linted from an empty context; a down file inherits what its up created, so a
rollback that drops the up's own objects is not called destructive.
"""

from __future__ import annotations

import gc
import importlib
import os
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from functools import cache
from itertools import accumulate, pairwise
from pathlib import Path

from lockgate.hooks import rules as rules_package
from lockgate.hooks.errors import InputError
from lockgate.hooks.migrationset import decode
from lockgate.hooks.records import Record
from lockgate.hooks.rules._nodes import alter_cmds
from lockgate.hooks.rules.base import ANY_STATEMENT, Finding, Hit, Rule, Severity
from lockgate.hooks.rules.context import Context
from lockgate.hooks.schemamodel import SchemaView
from lockgate.hooks.setschema import view_for
from lockgate.hooks.sqlmodel import SqlFile, Statement, decode_in_bulk, parse_sql
from lockgate.hooks.txmode import runs_in_transaction

SYNTAX_RULE = ("LG000", "syntax-error")
_KIND = re.compile(r"\.(up|down|validate)\.sql$")
# Below this many files forking workers costs more than it saves: bench/lint's sweep puts the break-even
# near 128 files on 2 idle CPUs (later, near 250, when another process keeps a CPU busy).
_PARALLEL_FROM = 128


@cache
def all_rules() -> tuple[Rule, ...]:
    """Every rule, from every module of the rules package, ordered by code."""
    # A directory listing instead of pkgutil, whose import alone costs the lint path milliseconds.
    for folder in rules_package.__path__:
        for entry in sorted(os.listdir(folder)):
            module, _, suffix = entry.partition(".")
            if suffix == "py" and not module.startswith("_") and module not in ("base", "context"):
                importlib.import_module(f"{rules_package.__name__}.{module}")
    found: list[type[Rule]] = []
    pending = list(Rule.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "code" in cls.__dict__:
            found.append(cls)
    codes = [c.code for c in found]
    duplicates = {c for c in codes if codes.count(c) > 1}
    assert not duplicates, f"rule codes used twice: {duplicates}"
    return tuple(cls() for cls in sorted(found, key=lambda c: c.code))


@cache
def _dispatch(file: str) -> dict[str, tuple[Rule, ...]]:
    """Statement kind -> the rules that read it in this kind of file."""
    table: dict[str, list[Rule]] = {}
    every = [rule for rule in all_rules() if file in rule.file_kinds and ANY_STATEMENT in rule.kinds]
    for rule in all_rules():
        if file in rule.file_kinds:
            for kind in rule.kinds - {ANY_STATEMENT}:
                table.setdefault(kind, []).append(rule)
    dispatch = {k: tuple(sorted({*v, *every}, key=lambda r: r.code)) for k, v in table.items()}
    dispatch[ANY_STATEMENT] = tuple(every)
    return dispatch


@cache
def _alter_rules(file: str, commands: frozenset[str]) -> tuple[Rule, ...]:
    """The rules that read an ALTER TABLE with these subcommands in this kind of file: most rules
    speak of one or two subcommands, and a migration set repeats a few combinations."""
    dispatch = _dispatch(file)
    return tuple(rule for rule in dispatch.get("AlterTableStmt", dispatch[ANY_STATEMENT])
                 if rule.alter_commands is None or not rule.alter_commands.isdisjoint(commands))


def _rules_for(stmt: Statement, file: str, dispatch: dict[str, tuple[Rule, ...]]) -> tuple[Rule, ...]:
    if stmt.kind == "AlterTableStmt":
        return _alter_rules(file, frozenset(cmd.get("subtype", "") for cmd in alter_cmds(stmt.node)))
    return dispatch.get(stmt.kind) or dispatch[ANY_STATEMENT]


def file_kind(path: Path) -> str:
    m = _KIND.search(path.name)
    return m[1] if m else "up"


def lint_sql(
    sql: SqlFile, *, pg_version: int, kind: str = "up", inherited: Context | None = None,
    schema: SchemaView | None = None,
) -> tuple[list[Finding], Context]:
    """Findings for one parsed file of kind `kind` (up, down or validate), and the context it
    leaves (for its down file). `inherited` is the context its up left; `schema` what the
    migrations before it in the set made."""
    ctx = Context(path=sql.path, pg_version=pg_version, file_kind=kind,
                  transactional=runs_in_transaction(sql, pg_version), sql=sql, schema=schema)
    if inherited is not None:
        ctx.new_relations |= inherited.new_relations
        ctx.new_indexes |= inherited.new_indexes
        ctx.new_types |= inherited.new_types
        ctx.new_columns |= inherited.new_columns
        ctx.new_objects |= inherited.new_objects
    dispatch = _dispatch(kind)
    file_ignored = sql.ignored_rules
    findings: list[Finding] = []
    for stmt in sql.walk():
        rules = _rules_for(stmt, kind, dispatch)
        ignored = file_ignored
        # Most statements carry no directive: skip building ignore sets for them.
        if rules and (stmt.directives or (stmt.parent is not None and stmt.parent.directives)):
            ignored = ignored | stmt.ignored_rules | (stmt.parent.ignored_rules if stmt.parent else frozenset())
        for rule in rules:
            if ignored and (rule.code in ignored or rule.name in ignored):
                continue
            for hit in rule.check(stmt, ctx):
                hit = Hit(hit) if isinstance(hit, str) else hit
                findings.append(Finding(
                    sql.path, hit.line or stmt.line, hit.column or stmt.column,
                    rule.code, rule.name, rule.severity, hit.message,
                ))
        ctx.observe(stmt)
    if schema is not None and kind == "up":
        schema.seen(sql)
    return findings, ctx


def _syntax_finding(exc: InputError) -> list[Finding]:
    return [
        Finding(p.path, p.line, p.column, SYNTAX_RULE[0], SYNTAX_RULE[1], Severity.ERROR, p.message)
        for p in exc.problems
    ]


def _read(path: Path) -> SqlFile:
    try:
        text = decode(path, path.read_bytes())  # the bytes go once decoded: a large file is not held twice
    except OSError as exc:
        raise InputError.at(path, 1, 1, f"cannot read the file: {exc.strerror or exc}") from None
    return parse_sql(path, text)


def _lint_group(group: tuple[Path, ...], pg_version: int) -> list[Finding]:
    """Lint the files of one migration together: the up first, so its down inherits."""
    findings: list[Finding] = []
    ordered = sorted(group, key=lambda p: ("up", "down", "validate").index(file_kind(p)))
    inherited: Context | None = None
    schema = view_for(ordered[0])
    for path in ordered:
        kind = file_kind(path)
        if kind == "down" and inherited is None:
            up = path.with_name(_KIND.sub(".up.sql", path.name))
            if up.exists():
                try:
                    inherited = lint_sql(_read(up), pg_version=pg_version, schema=schema)[1]
                except InputError:
                    inherited = None
        try:
            sql = _read(path)
        except InputError as exc:
            findings.extend(_syntax_finding(exc))
            continue
        found, ctx = lint_sql(sql, pg_version=pg_version, kind=kind, inherited=inherited, schema=schema)
        findings.extend(found)
        if kind == "up":
            inherited = ctx
    return findings


def _groups(paths: Iterable[Path]) -> list[tuple[Path, ...]]:
    """The files of each migration together, migrations in order of directory and name. Keyed by
    strings: building and comparing a Path per file is a fiftieth of a 1,000-file lint."""
    by_migration: dict[tuple[str, str], list[Path]] = {}
    for path in paths:
        directory, name = os.path.split(path)
        by_migration.setdefault((directory, _KIND.sub("", name)), []).append(path)
    return [tuple(v) for _, v in sorted(by_migration.items())]


class LintResult(Record):
    __slots__ = ("bad_input", "findings")

    def __init__(self, findings: list[Finding], bad_input: bool) -> None:
        self.findings = findings
        self.bad_input = bad_input  # a file did not parse or decode


def _lint_groups(groups: Sequence[tuple[Path, ...]], pg_version: int) -> list[Finding]:
    return [f for group in groups for f in _lint_group(group, pg_version)]


def _split(groups: Sequence[tuple[Path, ...]], parts: int) -> list[Sequence[tuple[Path, ...]]]:
    """`parts` contiguous shares of about the same number of bytes of SQL: lint time follows it, and
    the slowest share decides the wall time."""
    sizes = list(accumulate(sum(_size(p) for p in group) for group in groups))
    total = sizes[-1] if sizes else 0
    cuts = [min(bisect_left(sizes, total * i / parts) + 1, len(groups)) for i in range(1, parts)]
    return [groups[a:b] for a, b in pairwise([0, *cuts, len(groups)])]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # reported when the file is read
        return 0


def _lint_in_parallel(groups: Sequence[tuple[Path, ...]], pg_version: int, workers: int) -> list[Finding]:
    """One contiguous share per CPU; this process lints the first share while forked children lint the rest.

    A forked child inherits the imported rules, so a worker costs a fork, not an interpreter start, and
    sends its findings back pickled, once. multiprocessing's pool would add its import, a process and
    three threads: 30 ms, a thirtieth of a 1,000-file run.
    """
    import pickle

    first, *rest = _split(groups, workers)
    children: list[tuple[int, int]] = []
    try:
        for share in rest:
            children.append(_fork(share, pg_version, [pipe for _, pipe in children]))
        findings = _lint_groups(first, pg_version)
        for (_, pipe), share in zip(children, rest, strict=True):
            with os.fdopen(pipe, "rb", closefd=False) as reader:
                try:
                    outcome = pickle.load(reader)
                except EOFError:
                    outcome = RuntimeError("a lint worker died before sending its findings")
            if isinstance(outcome, BaseException):
                raise outcome
            findings.extend(_from_wire(outcome, share))
    finally:
        for pid, pipe in children:
            os.close(pipe)  # a child still writing gets a broken pipe and exits
            os.waitpid(pid, 0)
    return findings


def _fork(share: Sequence[tuple[Path, ...]], pg_version: int, siblings: list[int]) -> tuple[int, int]:
    """(pid, read end of its pipe) of a child that lints `share` and writes the pickled findings, or the
    exception it met, to the pipe. `siblings` are the read ends of the children before it, which it closes:
    an older child must see a broken pipe once the parent closes its end."""
    import pickle

    read, write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write)
        return pid, read
    for fd in (read, *siblings):
        os.close(fd)
    try:
        outcome: object = _to_wire(_lint_groups(share, pg_version))
    except BaseException as exc:  # handed to the parent, which raises it
        outcome = exc
    try:
        try:
            data = pickle.dumps(outcome)
        except Exception:  # an exception that does not pickle: its words still reach the parent
            data = pickle.dumps(RuntimeError(f"lint worker: {outcome!r}"))
        with os.fdopen(write, "wb") as writer:
            writer.write(data)
    finally:
        os._exit(0)  # never the parent's exit handlers, nor a second flush of its buffered output


# A finding as a child sends it: plain values pickle in a fifth of the time of Finding, Path and Severity objects.
_Wire = tuple[str, int, int, str, str, str, str]


def _to_wire(findings: list[Finding]) -> list[_Wire]:
    return [(str(f.path), f.line, f.column, f.rule, f.name, f.severity.value, f.message) for f in findings]


def _from_wire(wire: list[_Wire], share: Sequence[tuple[Path, ...]]) -> list[Finding]:
    paths = {str(path): path for group in share for path in group}
    return [Finding(paths.get(path) or Path(path), line, column, rule, name, Severity(severity), message)
            for path, line, column, rule, name, severity, message in wire]


def _workers(files: int, groups: int) -> int:
    """How many processes to lint `files` in `groups` with: one per usable CPU, when forking is safe and pays."""
    if files < _PARALLEL_FROM or groups < 2 or not hasattr(os, "fork"):
        return 1
    import threading

    # fork copies only the calling thread: with others running, a child could wait forever on a
    # lock one of them held (a caller such as the controller may have threads).
    if threading.active_count() > 1:
        return 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(usable, groups)


def lint_paths(paths: Sequence[Path], *, pg_version: int) -> LintResult:
    groups = _groups(paths)
    workers = _workers(len(paths), len(groups))
    if len(paths) >= _PARALLEL_FROM:
        decode_in_bulk()
    # Linting makes millions of dicts and next to no reference cycles (a file's trees go, by reference
    # counting, once it is linted), so the cyclic collector, woken every 700 allocations, only walks them:
    # 2 % of a 1,000-file lint. It is back on when linting ends.
    collecting = gc.isenabled()
    gc.disable()
    try:
        found = _lint_in_parallel(groups, pg_version, workers) if workers > 1 else _lint_groups(groups, pg_version)
    finally:
        if collecting:
            gc.enable()
    findings = sorted(found, key=lambda f: (str(f.path), f.line, f.column, f.rule))
    return LintResult(findings, bad_input=any(f.rule == SYNTAX_RULE[0] for f in findings))
