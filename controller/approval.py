"""Which migrations the controller may apply or roll back: the server-side half of the review.

A migration is approved when it reached the branch through first-parent history, its files at the
head match lockgate.sum, it passes the hooks' checks, and — when signatures are required — every
commit that shaped its files is signed by a key in the allowed-signers file. Anything else is
refused with the reasons, which end up in the commit's note.

A rollback passes at least the same review: the commit that removed the migration reverts the
change that brought it (see `reverts`), it removed exactly the files that were applied, it is
signed when signatures are required, and the down text the ledger will run passes lint as a down.

A verdict is the action a pass takes: `Apply` or `Rollback` when approved, `Refuse` with the reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import git

from lockgate.controller.ledger import LedgerRecord
from lockgate.controller.reverts import revert_of
from lockgate.controller.source import BranchHistory, CommitMigrations, CommitRef, Source
from lockgate.hooks.check import pair_findings
from lockgate.hooks.coverage import check_coverage
from lockgate.hooks.errors import InputError, UsageError
from lockgate.hooks.lint import lint_sql
from lockgate.hooks.migrationset import FILE_NAME, KINDS, Migration, MigrationSet, parse_all
from lockgate.hooks.rules.base import Severity
from lockgate.hooks.schemamodel import SchemaView, SetHistory
from lockgate.hooks.setschema import set_history
from lockgate.hooks.sqlmodel import parse_sql
from lockgate.hooks.sumfile import verify

Checker = Callable[[MigrationSet, Migration], list[str]]
"""The hooks' checks for one migration of a set: the reasons it fails them, empty when it passes."""

SignatureCheck = Callable[[str], str | None]
"""Why the commit with this sha is not signed acceptably, or None when it is."""


@dataclass(frozen=True, slots=True)
class Apply:
    migration: Migration
    commit: CommitRef  # where its outcome is noted


@dataclass(frozen=True, slots=True)
class Rollback:
    version: str
    name: str
    commit: CommitRef  # the commit that removed the migration's files


@dataclass(frozen=True, slots=True)
class Refuse:
    version: str
    name: str
    reasons: tuple[str, ...]
    commit: CommitRef | None = None  # where the refusal is noted (None: the head)


Verdict = Apply | Refuse
RollbackVerdict = Rollback | Refuse


def parse_check(migration_set: MigrationSet, migration: Migration) -> list[str]:
    """The default check: every file of the migration parses (SQL and directives)."""
    try:
        parse_all(MigrationSet(migration_set.directory, [migration]))
    except InputError as exc:
        return [str(p) for p in exc.problems]
    return []


def hook_checks(pg_version: int, pending: Iterable[str] = ()) -> Checker:
    """The pre-commit hooks' checks, run server-side on one migration: it parses, has a down and
    a validate file with SQL in them, the down covers the up, and no lint rule finds an error.

    The rules see the schema the set's earlier migrations made, as the hook does; `pending` are
    the versions not applied yet (the hook's pending part is what the base branch lacks)."""
    waiting = frozenset(pending)
    histories: dict[int, SetHistory] = {}

    def check(migration_set: MigrationSet, migration: Migration) -> list[str]:
        reasons = parse_check(migration_set, migration)
        if reasons:
            return reasons
        history = histories.setdefault(id(migration_set), set_history(migration_set, waiting))
        schema = SchemaView(history, migration.version)
        findings = pair_findings(migration)
        if not findings:
            findings += check_coverage(migration.up.sql, migration.down.sql, schema=schema)
        # A migration without an up is an orphan: there is nothing to lint the others against.
        if "up" in migration.files:
            up_findings, context = lint_sql(migration.up.sql, pg_version=pg_version, schema=schema)
            findings += up_findings
            if "down" in migration.files:
                findings += lint_sql(migration.down.sql, pg_version=pg_version, kind="down", inherited=context,
                                     schema=schema)[0]
            if "validate" in migration.files:
                findings += lint_sql(migration.validate.sql, pg_version=pg_version, kind="validate",
                                     schema=schema)[0]
        return [str(f) for f in findings if f.severity is Severity.ERROR]

    return check


def sum_reasons(migration_set: MigrationSet) -> tuple[list[str], dict[str, list[str]]]:
    """lockgate.sum problems: those of the whole set, and those of single migrations by version."""
    try:
        problems = verify(migration_set)
    except InputError as exc:
        return [str(p) for p in exc.problems], {}
    whole: list[str] = []
    by_version: dict[str, list[str]] = {}
    present = migration_set.by_version()
    for problem in problems:
        m = FILE_NAME.match(problem.path.name)
        text = f"{problem.path}:{problem.line}:1: {problem.message}"
        if m and m["version"] in present:
            by_version.setdefault(m["version"], []).append(text)
        else:
            whole.append(text)
    return whole, by_version


class SshSignatures:
    """`git verify-commit` against an allowed-signers file (`gpg.ssh.allowedSignersFile`)."""

    def __init__(self, repo: git.Repo, allowed_signers: Path) -> None:
        if not allowed_signers.is_file():
            raise UsageError(f"allowed_signers: {allowed_signers} is not a file")
        self.repo = repo
        self.allowed_signers = allowed_signers.resolve()
        self._seen: dict[str, str | None] = {}

    def __call__(self, sha: str) -> str | None:
        if sha not in self._seen:
            self._seen[sha] = self._verify(sha)
        return self._seen[sha]

    def _verify(self, sha: str) -> str | None:
        try:
            self.repo.git.execute([
                "git", "-c", f"gpg.ssh.allowedSignersFile={self.allowed_signers}",
                "verify-commit", "--raw", sha,
            ])
        except git.GitCommandError as exc:
            detail = " ".join(str(exc.stderr).split()).removeprefix("stderr: '").removesuffix("'")
            why = "is not signed" if not detail else "is not signed by an allowed key"
            return f"commit {sha[:12]} {why}" + (f" ({detail[:200]})" if detail else "")
        return None


def signature_check(repo: git.Repo, require_signed: bool, allowed_signers: Path | None) -> SignatureCheck | None:
    """The signature check the settings ask for, or None when signatures are not required."""
    if not require_signed:
        return None
    if allowed_signers is None:
        raise UsageError("require_signed is set but allowed_signers (LOCKGATE_ALLOWED_SIGNERS) is not")
    return SshSignatures(repo, allowed_signers)


def approve(
    history: BranchHistory,
    tree: CommitMigrations,
    *,
    versions: Iterable[str] | None = None,
    checker: Checker = parse_check,
    signatures: SignatureCheck | None = None,
) -> dict[str, Verdict]:
    """A verdict for each migration at `tree` (or only `versions` of it), in version order.

    `tree` must be read at `history.head`; reasons name files as paths in the repository.
    """
    migration_set = tree.migrations
    present = migration_set.by_version()
    wanted = list(present) if versions is None else [v for v in present if v in set(versions)]
    whole, by_version = sum_reasons(migration_set)
    verdicts: dict[str, Verdict] = {}
    for version in wanted:
        migration = present[version]
        commit = history.introduced.get(version)
        reasons = list(whole) + by_version.get(version, [])
        if commit is None:
            reasons.append(f"{migration.id} did not reach {history.head.short} through first-parent history")
        reasons += checker(migration_set, migration)
        if signatures is not None:
            reasons += [r for c in history.commits_for(version) if (r := signatures(c.sha)) is not None]
        if reasons or commit is None:
            verdicts[version] = Refuse(version, migration.name, tuple(tree.relative(r) for r in reasons), commit)
        else:
            verdicts[version] = Apply(migration, commit)
    return verdicts


def _how_to_roll_back(record: LedgerRecord) -> str:
    return (
        f"to roll {record.version}_{record.name} back, revert the change that brought it "
        f"(`git revert {(record.commit_sha or '<commit>')[:12]}`, `-m 1` for a merge) or add a "
        f"`Lockgate-Rollback: {record.version}` trailer to the removing commit; to keep it, restore its files"
    )


def lint_applied_down(record: LedgerRecord, pg_version: int, directory: str) -> list[str]:
    """Error findings of the down text the ledger holds, linted as a down after its up, as it will run."""
    where = f"{directory}/{record.version}_{record.name}"
    try:
        up = parse_sql(Path(f"{where}.up.sql"), record.up_sql)
        down = parse_sql(Path(f"{where}.down.sql"), record.down_sql)
    except InputError as exc:
        return [f"{p} (as applied)" for p in exc.problems]
    context = lint_sql(up, pg_version=pg_version)[1]
    findings = lint_sql(down, pg_version=pg_version, kind="down", inherited=context)[0]
    return [f"{f} (as applied)" for f in findings if f.severity is Severity.ERROR]


def approve_rollback(
    record: LedgerRecord,
    removed_by: CommitRef,
    source: Source,
    history: BranchHistory,
    *,
    pg_version: int,
    signatures: SignatureCheck | None = None,
) -> RollbackVerdict:
    """Whether the applied migration `record`, whose files `removed_by` removed, may be rolled back."""
    version = record.version
    introduced_by = record.commit_sha or _last_added(history, version)
    how = revert_of(
        version, source.change(removed_by.sha), source.change(introduced_by) if introduced_by else None,
    )
    reasons: list[str] = []
    if how is None:
        reasons.append(
            f"{removed_by.short} ({removed_by.summary}) removed applied migration {version}_{record.name} "
            f"but is not a revert of the change that brought it"
            + (f" ({introduced_by[:12]})" if introduced_by else "")
            + "; nothing rolled back"
        )
    else:
        removed = source.checksums_before(removed_by, version)
        applied = {kind: getattr(record, f"{kind}_checksum") for kind in KINDS}
        if removed != applied:
            differ = sorted(k for k in KINDS if removed.get(k) != applied[k])
            reasons.append(
                f"{removed_by.short} removed files of {version}_{record.name} that are not the ones applied "
                f"({', '.join(differ)} differ{'s' if len(differ) == 1 else ''}); nothing rolled back"
            )
    if signatures is not None and (why := signatures(removed_by.sha)) is not None:
        reasons.append(f"{why}; rollbacks need a signed commit as applies do")
    reasons += lint_applied_down(record, pg_version, str(source.migrations_dir))
    if reasons:
        return Refuse(version, record.name, (*reasons, _how_to_roll_back(record)), removed_by)
    return Rollback(version, record.name, removed_by)


def _last_added(history: BranchHistory, version: str) -> str | None:
    """The first-parent commit that last added the version's files, when the ledger does not say."""
    added = [c.commit.sha for c in history.changes if c.version == version and c.kind == "added"]
    return added[-1] if added else None
