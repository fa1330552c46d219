"""Every code lockgate reports, in one registry: LG000 (a file it cannot read), the lint rules,
`lockgate check`'s LG90x and `lockgate verify-rollback`'s LG95x.

docs/rules.md and the SARIF report are rendered from it, so a code cannot exist without its
page. A lint rule's lock line comes from hooks/locks.py (the claims the lock tests prove on a
real server) applied to the rule's bad examples, never from prose.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from lockgate.hooks.check import CHECK_CODES, CheckCode
from lockgate.hooks.lint import SYNTAX_RULE, all_rules
from lockgate.hooks.locks import claims, what_it_blocks
from lockgate.hooks.rules.base import Example, Rule, Severity
from lockgate.hooks.settings import DEFAULT_PG_VERSION
from lockgate.hooks.sqlmodel import parse_sql

_SYNTAX_DOC = """A file lockgate cannot read is reported, not skipped.

PostgreSQL's own parser (the one in pglast) rejected the file, a `-- lockgate:` directive is
malformed, or the file is not UTF-8. The finding points at the line and column the parser
names. Nothing in the file is linted until it parses, and `lockgate lint` exits with 2.
"""

UP_FAILED = "LG951"
GATE_FAILED = "LG952"
DOWN_FAILED = "LG953"
SCHEMA_NOT_RESTORED = "LG954"
UP_AGAIN_FAILED = "LG955"
UP_AGAIN_DIFFERS = "LG956"
EARLIER_FAILED = "LG957"

_ROUND_TRIP = ("`lockgate verify-rollback` runs each migration in a scratch database after every migration "
               "before it: up, validate, down, then up again, comparing catalogs. ")
VERIFY_CODES = (
    CheckCode(UP_FAILED, "up-failed", Severity.ERROR, "the up fails in a scratch database",
              _ROUND_TRIP + "The up itself failed; the finding carries the server's error at its statement."),
    CheckCode(GATE_FAILED, "validation-failed", Severity.ERROR, "a gate of the validate file fails after the up",
              _ROUND_TRIP + "A gate of the validate file failed right after the up ran."),
    CheckCode(DOWN_FAILED, "down-failed", Severity.ERROR, "the down fails after the up",
              _ROUND_TRIP + "The down failed when run after its up."),
    CheckCode(SCHEMA_NOT_RESTORED, "schema-not-restored", Severity.ERROR,
              "after the down the catalog differs from the one before the up",
              _ROUND_TRIP + "The down ran but left the catalog different from the one before the up; the "
              "finding names what differs."),
    CheckCode(UP_AGAIN_FAILED, "up-again-failed", Severity.ERROR, "the up fails when run again after the down",
              _ROUND_TRIP + "The up failed the second time, after the down: the down left something behind."),
    CheckCode(UP_AGAIN_DIFFERS, "up-again-differs", Severity.ERROR,
              "the up run again after the down gives another schema",
              _ROUND_TRIP + "The second up left another catalog than the first."),
    CheckCode(EARLIER_FAILED, "earlier-migration-failed", Severity.ERROR,
              "an earlier migration failed, so this one could not be verified",
              _ROUND_TRIP + "A migration before this one failed to apply in the scratch database."),
)

_FILES = ("up", "down", "validate")


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What the docs and the SARIF report say about one code."""

    code: str
    name: str
    severity: Severity
    summary: str
    doc: str  # the docstring, dedented
    file_kinds: tuple[str, ...]
    squawk: tuple[str, ...]
    bad: tuple[Example, ...]
    good: tuple[Example, ...]
    reported_by: str = "lockgate lint"
    locks: tuple[str, ...] = ()  # what the bad examples lock, from hooks/locks.py

    @classmethod
    def of(cls, rule: Rule) -> RuleInfo:
        return cls(
            code=rule.code, name=rule.name, severity=rule.severity, summary=rule.summary,
            doc=inspect.cleandoc(type(rule).__doc__ or ""),
            file_kinds=tuple(k for k in _FILES if k in rule.file_kinds),
            squawk=rule.squawk, bad=rule.bad, good=rule.good, locks=example_locks(rule.bad),
        )

    @classmethod
    def of_code(cls, code: CheckCode, reported_by: str) -> RuleInfo:
        return cls(code=code.code, name=code.name, severity=code.severity, summary=code.summary,
                   doc=code.doc, file_kinds=_FILES, squawk=(), bad=(), good=(), reported_by=reported_by)

    @property
    def lead(self) -> str:
        """The docstring's first paragraph, on one line."""
        return " ".join(self.doc.split("\n\n", 1)[0].split())

    @property
    def anchor(self) -> str:
        return f"{self.code}-{self.name}".lower()


def example_locks(examples: tuple[Example, ...]) -> tuple[str, ...]:
    """`MODE on table (what it blocks)` for each relation the examples' statements lock, strictest first."""
    found: dict[str, str] = {}
    for example in examples:
        sql = parse_sql(Path(f"example.{example.file}.sql"), example.sql)
        for stmt in sql.statements:
            for claim in claims(stmt, example.pg_version or DEFAULT_PG_VERSION):
                extra = ", rewrites it" if claim.rewrite else ", scans it" if claim.scan else ""
                found.setdefault(f"{claim.mode} on {claim.relation}",
                                 f"`{claim.mode}` on {claim.relation} ({what_it_blocks(claim.mode)}{extra})")
    return tuple(found.values())


def syntax_info() -> RuleInfo:
    return RuleInfo(
        code=SYNTAX_RULE[0], name=SYNTAX_RULE[1], severity=Severity.ERROR,
        summary="the file does not parse, a directive is malformed, or it is not UTF-8",
        doc=inspect.cleandoc(_SYNTAX_DOC), file_kinds=_FILES, squawk=(), bad=(), good=(),
        reported_by="lockgate lint, lockgate check",
    )


def rule_infos() -> list[RuleInfo]:
    """Every code lockgate reports, ordered by code."""
    return [
        syntax_info(),
        *(RuleInfo.of(r) for r in all_rules()),
        *(RuleInfo.of_code(c, "lockgate check") for c in CHECK_CODES),
        *(RuleInfo.of_code(c, "lockgate verify-rollback") for c in VERIFY_CODES),
    ]
