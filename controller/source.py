"""The git side of a sync: a cache clone of the watched repository, the branch's first-parent
history of migration files, and the migration set at any commit, read without a checkout.

First-parent history is what "reached the branch" means: a migration merged through a pull request
is tied to the merge commit, and a revert is tied to the revert commit, whatever the feature
branch's own commits look like. The whole walk is one `git log` call, so a repository with
thousands of migrations is read in a fraction of a second.

Credentials for https remotes live only in the environment of the git processes lockgate runs
(see `gitauth`); the cache's `.git/config` holds the URL without them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import git

from lockgate.controller import cache, gitauth
from lockgate.controller.cache import CACHE_REPO
from lockgate.controller.redact import Redactor
from lockgate.controller.reverts import Change, CommitText
from lockgate.hooks.errors import InputError, Problem
from lockgate.hooks.migrationset import FILE_NAME, LINKED_FILE, NOT_A_FOLDER, SUM_FILE, MigrationSet, from_files

if TYPE_CHECKING:
    from lockgate.controller.config import Settings

REMOTE = "origin"
HISTORY_FILE = "history.json"
HISTORY_FORMAT = 1
DEFAULT_DIR = PurePosixPath("migrations")

_RECORD, _FIELD = "\x1e", "\x1f"
_FOLDER, _SYMLINK, _SUBMODULE = "040000", "120000", "160000"  # git tree entry modes
_LOG_FORMAT = _FIELD.join(["%H", "%P", "%an <%ae>", "%cI", "%s"])

ChangeKind = Literal["added", "changed", "removed"]


class SourceError(Exception):
    """A git operation on the watched repository failed; the message is one redacted line."""


@dataclass(frozen=True, slots=True)
class CommitRef:
    sha: str
    parents: tuple[str, ...]
    author: str
    committed_at: datetime
    summary: str

    @property
    def short(self) -> str:
        return self.sha[:12]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


@dataclass(frozen=True, slots=True)
class MigrationChange:
    """What one first-parent commit did to one migration, compared with its first parent."""

    commit: CommitRef
    version: str
    name: str
    kind: ChangeKind
    files: tuple[str, ...]


@dataclass(slots=True)
class BranchHistory:
    """The branch's migration history, oldest first.

    `introduced` holds the versions present at the head, each with the commit that (last) added
    it; `removed_by` holds the versions once on the branch and gone at the head, each with the
    commit that removed it (typically a revert).
    """

    head: CommitRef
    changes: list[MigrationChange] = field(default_factory=list)
    introduced: dict[str, CommitRef] = field(default_factory=dict)
    removed_by: dict[str, CommitRef] = field(default_factory=dict)

    def add(self, change: MigrationChange) -> None:
        self.changes.append(change)
        if change.kind == "added":
            self.introduced[change.version] = change.commit
            self.removed_by.pop(change.version, None)
        elif change.kind == "removed":
            self.removed_by[change.version] = change.commit
            self.introduced.pop(change.version, None)

    def commits_for(self, version: str) -> list[CommitRef]:
        """The commits that shaped the version's files at the head: its addition and later edits."""
        commits: list[CommitRef] = []
        for change in self.changes:
            if change.version != version:
                continue
            if change.kind == "added":
                commits = [change.commit]
            elif change.kind == "changed":
                commits.append(change.commit)
            else:
                commits = []
        return commits


@dataclass(frozen=True, slots=True)
class CommitMigrations:
    """The migration set of one commit, materialised under `root` for as long as it is open."""

    commit: str
    root: Path
    migrations: MigrationSet

    def relative(self, text: str) -> str:
        """Text with the temporary root removed from paths, so they read as paths in the repo."""
        return text.replace(f"{self.root}{os.sep}", "")


def _parse_commit(header: str) -> CommitRef:
    sha, parents, author, committed, summary = header.split(_FIELD, 4)
    return CommitRef(sha, tuple(parents.split()), author, datetime.fromisoformat(committed), summary)


def parse_log(
    output: str, migrations_dir: PurePosixPath, head: CommitRef, base: BranchHistory | None = None
) -> BranchHistory:
    """The history from `git log --reverse --first-parent --name-status` output, continuing `base`
    (the history up to the first parent of the output's oldest commit) when given."""
    history = BranchHistory(head=head)
    present: dict[str, set[str]] = {}
    for change in base.changes if base else []:
        history.add(change)
        present[change.version] = set(change.files)
    for chunk in output.split(_RECORD):
        if not chunk.strip():
            continue
        header, _, body = chunk.partition("\n")
        commit = _parse_commit(header)
        touched: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        for line in body.splitlines():
            status, _, path = line.partition("\t")
            file = PurePosixPath(path)
            m = FILE_NAME.match(file.name)
            if status and file.parent == migrations_dir and m:
                touched.setdefault(m["version"], (m["name"], []))[1].append((status[0], file.name))
        for version, (name, file_changes) in touched.items():
            files = present.setdefault(version, set())
            before = bool(files)
            for status, file_name in file_changes:
                if status == "D":
                    files.discard(file_name)
                else:
                    files.add(file_name)
            kind: ChangeKind = (
                "added" if not before and files else "removed" if before and not files else "changed"
            )
            history.add(MigrationChange(commit, version, name, kind, tuple(sorted(files))))
    return history


def _commit_json(commit: CommitRef) -> dict[str, Any]:
    # Field by field: dataclasses.asdict deep-copies every value, a fifth of a cold sync at 1,000 commits.
    return {"sha": commit.sha, "parents": list(commit.parents), "author": commit.author,
            "committed_at": commit.committed_at.isoformat(), "summary": commit.summary}


def _commit_from_json(data: dict[str, Any]) -> CommitRef:
    return CommitRef(
        data["sha"], tuple(data["parents"]), data["author"],
        datetime.fromisoformat(data["committed_at"]), data["summary"],
    )


def history_to_json(history: BranchHistory, migrations_dir: PurePosixPath) -> str:
    return json.dumps({
        "format": HISTORY_FORMAT,
        "dir": str(migrations_dir),
        "head": _commit_json(history.head),
        "changes": [
            {"commit": _commit_json(c.commit), "version": c.version, "name": c.name, "kind": c.kind,
             "files": list(c.files)}
            for c in history.changes
        ],
    })


def history_from_json(text: str, migrations_dir: PurePosixPath) -> BranchHistory | None:
    """The saved history, or None when it is unreadable or was made for another directory."""
    try:
        data = json.loads(text)
        if data.get("format") != HISTORY_FORMAT or data.get("dir") != str(migrations_dir):
            return None
        history = BranchHistory(head=_commit_from_json(data["head"]))
        for c in data["changes"]:
            history.add(MigrationChange(
                _commit_from_json(c["commit"]), c["version"], c["name"], c["kind"], tuple(c["files"]),
            ))
    except (ValueError, KeyError, TypeError):
        return None
    return history


def cache_directory(settings: Settings) -> Path:
    """Where the clone of `settings.repo` is kept (see `cache.directory`)."""
    assert settings.repo is not None, "only a remote repository has a cache"
    return cache.directory(settings.repo, settings.branch, settings.cache_dir)


@contextmanager
def held_cache(settings: Settings) -> Iterator[None]:
    """This process alone on the cache of `settings.repo` (nothing to hold for a local repository)."""
    if settings.repo is None:
        yield
        return
    with cache.hold(cache_directory(settings), wait_s=settings.cache_wait):
        yield


def ref_exists(repo: git.Repo, ref: str) -> bool:
    try:
        repo.git.rev_parse("--verify", "--quiet", ref)
    except git.GitCommandError:
        return False
    return True


class Source:
    """A git repository lockgate reads migrations from and writes notes to.

    `Source.cache(...)` keeps a bare clone of a remote under a cache directory and fetches the
    branch into `refs/remotes/origin/<branch>`; `Source.local(...)` reads a repository in place.
    """

    def __init__(
        self,
        repo: git.Repo,
        branch_ref: str,
        migrations_dir: PurePosixPath,
        *,
        env: Mapping[str, str] | None = None,
        redact: Redactor | None = None,
        branch: str = "main",
        history_file: Path | None = None,
    ) -> None:
        self.repo = repo
        self.history_file = history_file
        self.branch = branch
        self.branch_ref = branch_ref
        self.migrations_dir = migrations_dir
        self.env = dict(env or {})
        self.redact = redact or Redactor()

    @classmethod
    def cache(
        cls,
        url: str,
        cache_dir: Path,
        *,
        branch: str = "main",
        migrations_dir: PurePosixPath = DEFAULT_DIR,
        token: str | None = None,
        redact: Redactor | None = None,
    ) -> Source:
        remote = gitauth.remote(url, token)
        redact = (redact or Redactor()).with_secrets(*remote.secrets)
        path = cache_dir / CACHE_REPO
        repo = git.Repo(path) if (path / "HEAD").exists() else git.Repo.init(path, bare=True, mkdir=True)
        with repo.config_writer() as config:
            config.set_value(f'remote "{REMOTE}"', "url", remote.url)
        return cls(
            repo,
            f"refs/remotes/{REMOTE}/{branch}",
            migrations_dir,
            env=remote.env,
            redact=redact,
            branch=branch,
            history_file=cache_dir / HISTORY_FILE,
        )

    @classmethod
    def local(
        cls,
        path: Path,
        *,
        branch: str = "main",
        migrations_dir: PurePosixPath = DEFAULT_DIR,
        redact: Redactor | None = None,
    ) -> Source:
        try:
            repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise SourceError(f"{path}: not a git repository") from None
        # A CI checkout may have only the remote-tracking branch.
        candidates = (f"refs/heads/{branch}", f"refs/remotes/{REMOTE}/{branch}")
        branch_ref = next((r for r in candidates if ref_exists(repo, r)), candidates[0])
        return cls(repo, branch_ref, migrations_dir, redact=redact, branch=branch)

    @classmethod
    def from_settings(cls, settings: Settings, redact: Redactor | None = None) -> Source:
        """The cache clone of `settings.repo`, or the repository around the working directory.

        The caller holds the cache (`cache.hold`) while it uses a cache clone.
        """
        migrations_dir = PurePosixPath(settings.dir.as_posix())
        if settings.repo is None:
            return cls.local(Path.cwd(), branch=settings.branch, migrations_dir=migrations_dir, redact=redact)
        token = settings.git_token.get_secret_value() if settings.git_token else None
        return cls.cache(
            settings.repo, cache_directory(settings), branch=settings.branch,
            migrations_dir=migrations_dir, token=token, redact=redact,
        )

    def git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        """Run git in the repository with the credential environment; errors become SourceError."""
        try:
            return str(self.repo.git.execute(["git", *args], env=self.env | dict(env or {}), stdout_as_string=True))
        except git.GitCommandError as exc:
            stderr = str(exc.stderr).strip().removeprefix("stderr: '").removesuffix("'")
            detail = " ".join(stderr.split()) or f"exit code {exc.status}"
            raise SourceError(self.redact(f"git {args[0]} failed: {detail}")) from None

    def fetch(self) -> str:
        """Fetch the branch (history rewrites included) and return its head sha."""
        self.git(
            "fetch", "--quiet", "--no-tags", REMOTE,
            f"+refs/heads/{self.branch}:refs/remotes/{REMOTE}/{self.branch}",
        )
        return self.head()

    def head(self) -> str:
        """The branch head's sha."""
        try:
            return str(self.repo.git.rev_parse("--verify", "--quiet", f"{self.branch_ref}^{{commit}}"))
        except git.GitCommandError:
            raise SourceError(f"branch {self.branch!r} not found ({self.branch_ref})") from None

    def resolve(self, rev: str) -> str:
        """The commit sha of `rev`; a branch name also resolves to origin's branch of that name."""
        for candidate in (rev, f"{REMOTE}/{rev}"):
            try:
                return str(
                    self.repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}")
                )
            except git.GitCommandError:
                continue
        raise SourceError(f"unknown revision {rev!r}")

    def is_ancestor(self, ancestor: str, descendant: str | None = None) -> bool:
        """Whether `ancestor` is in the history of `descendant` (default: the branch head).

        False for a commit the repository no longer has: a force-push rewrote it away.
        """
        descendant = descendant or self.head()
        try:
            self.repo.git.merge_base("--is-ancestor", ancestor, descendant)
        except git.GitCommandError:
            return False
        return True

    def history(self, rev: str | None = None) -> BranchHistory:
        """The first-parent migration history up to `rev` (default: the branch head).

        A cache clone keeps the last history it computed; when the branch only moved forward,
        just the new commits are read, so a no-op sync costs no walk at all.
        """
        sha = self.resolve(rev) if rev else self.head()
        saved = self._saved_history()
        if saved is not None and saved.head.sha == sha:
            return saved
        history = self._extend(saved, sha) if saved is not None else None
        if history is None:
            output = self._log(sha, "--", str(self.migrations_dir))
            history = parse_log(output, self.migrations_dir, self.commit(sha))
        self._save_history(history)
        return history

    def _log(self, *revs: str) -> str:
        return self.git(
            "log", "--reverse", "--first-parent", "--diff-merges=first-parent",
            "--no-renames", "--name-status", f"--format={_RECORD}{_LOG_FORMAT}", *revs,
        )

    def _extend(self, saved: BranchHistory, sha: str) -> BranchHistory | None:
        """`saved` carried forward to `sha`, or None when `sha` does not continue its first-parent line."""
        output = self._log(f"^{saved.head.sha}", sha)
        first = output.split(_RECORD, 2)[1:2]
        if not first or _parse_commit(first[0].partition("\n")[0]).parents[:1] != (saved.head.sha,):
            return None  # history was rewritten, or the branch moved back: walk it all again
        return parse_log(output, self.migrations_dir, self.commit(sha), saved)

    def _saved_history(self) -> BranchHistory | None:
        if self.history_file is None or not self.history_file.is_file():
            return None
        return history_from_json(self.history_file.read_text(), self.migrations_dir)

    def _save_history(self, history: BranchHistory) -> None:
        if self.history_file is None:
            return
        partial = self.history_file.with_suffix(".partial")
        partial.write_text(history_to_json(history, self.migrations_dir))
        partial.replace(self.history_file)

    def commit(self, rev: str) -> CommitRef:
        output = self.git("log", "-1", f"--format={_LOG_FORMAT}", self.resolve(rev))
        return _parse_commit(output.strip("\n"))

    def in_repository(self, problem: Problem) -> Problem:
        """The problem with its path as a path in the repository, not in a temporary checkout."""
        parts = problem.path.parts[-(len(self.migrations_dir.parts) + 1):]
        if PurePosixPath(*parts[:-1]) != self.migrations_dir:
            return problem
        return Problem(Path(*parts), problem.line, problem.column, problem.message)

    @contextmanager
    def migrations_at(self, rev: str | None = None, *, require_triples: bool = True) -> Iterator[CommitMigrations]:
        """The migration set at `rev` (default: the branch head), read from git objects only.

        Files are read in two git calls whatever their number. Their paths point into a temporary
        directory holding only lockgate.sum (verified against the texts), removed when the block
        ends; the loaded texts stay usable after it. Without `require_triples`, a migration
        missing a file is loaded with the files it has.
        """
        sha = self.resolve(rev) if rev else self.head()
        blobs = self._blobs(sha)
        with tempfile.TemporaryDirectory(prefix=f"lockgate-{sha[:12]}-") as tmp:
            root = Path(tmp)
            target = root / self.migrations_dir
            target.mkdir(parents=True)
            if SUM_FILE in blobs:
                (target / SUM_FILE).write_bytes(blobs.pop(SUM_FILE))
            files = ((target / name, data) for name, data in sorted(blobs.items()))
            yield CommitMigrations(sha, root, from_files(target, files, require_triples=require_triples))

    def _blobs(self, sha: str) -> dict[str, bytes]:
        """File name → content of the .sql files and lockgate.sum directly in the migrations dir.

        Raises InputError when the folder is not a plain folder or a migration file is a link: git
        stores a symlink as one blob, so either would otherwise read as "every migration deleted".
        """
        self._require_plain_folder(sha)
        names: dict[str, list[str]] = {}  # identical files share one blob
        linked: list[Problem] = []
        for mode, kind, object_sha, path in self._entries(sha, f"{self.migrations_dir}/"):
            name = PurePosixPath(path).name
            if kind != "blob" or not (name.endswith(".sql") or name == SUM_FILE):
                continue
            if mode == _SYMLINK:
                linked.append(Problem(Path(path), 1, 1, LINKED_FILE))
            names.setdefault(object_sha, []).append(name)
        if linked:
            raise InputError(linked)
        contents = self.read_blobs(names)
        return {name: data for object_sha, data in contents.items() for name in names[object_sha]}

    def _entries(self, sha: str, path: str) -> Iterator[tuple[str, str, str, str]]:
        """(mode, type, object sha, path) of each `git ls-tree` entry for `path` at `sha`."""
        listing = str(self.repo.git.ls_tree("-z", sha, "--", path))
        for entry in filter(None, listing.split("\0")):
            meta, _, entry_path = entry.partition("\t")
            mode, kind, object_sha = meta.split()
            yield mode, kind, object_sha, entry_path

    def _require_plain_folder(self, sha: str) -> None:
        """InputError when the migrations folder, or a folder above it, is a link, a submodule or a file.

        A folder that is absent is plain: its migrations were deleted, which sync judges itself.
        """
        prefix = PurePosixPath()
        for part in self.migrations_dir.parts:
            prefix /= part
            mode = next((m for m, _, _, p in self._entries(sha, str(prefix)) if p == str(prefix)), None)
            if mode is None:
                return
            if mode != _FOLDER:
                why = {_SYMLINK: "symlink", _SUBMODULE: "submodule"}.get(mode, "file")
                raise InputError.at(Path(prefix), 1, 1, f"at {sha[:12]}: {NOT_A_FOLDER[why]}")

    def change(self, sha: str) -> Change:
        """The commit's whole message and, for a merge, those of the commits it brought in."""
        commit = self.commit(sha)
        output = self.git("log", "-z", f"--format=%H{_FIELD}%B", *(
            [f"{commit.parents[0]}..{sha}"] if commit.is_merge else ["-1", sha]
        ))
        texts = [CommitText(*chunk.split(_FIELD, 1)) for chunk in filter(None, output.split("\0"))]
        own = next(t for t in texts if t.sha == sha)
        return Change(own, tuple(t for t in texts if t.sha != sha))

    def checksums_before(self, commit: CommitRef, version: str) -> dict[str, str]:
        """File kind → SHA-256 of the version's files in the commit's first parent: what it removed."""
        if not commit.parents:
            return {}
        found: dict[str, str] = {}
        for mode, kind, object_sha, path in self._entries(commit.parents[0], f"{self.migrations_dir}/"):
            m = FILE_NAME.match(PurePosixPath(path).name)
            if kind == "blob" and mode != _SYMLINK and m and m["version"] == version:
                found[m["kind"]] = object_sha
        blobs = self.read_blobs(found.values())
        return {k: hashlib.sha256(blobs[object_sha]).hexdigest() for k, object_sha in found.items()}

    def read_blobs(self, object_shas: Iterable[str]) -> dict[str, bytes]:
        """Object sha → content, in one `git cat-file --batch` call whatever their number."""
        wanted = list(dict.fromkeys(object_shas))
        if not wanted:
            return {}
        with tempfile.TemporaryFile() as stdin:
            stdin.write("".join(f"{object_sha}\n" for object_sha in wanted).encode())
            stdin.seek(0)
            output = self.repo.git.execute(
                ["git", "cat-file", "--batch"], istream=stdin, stdout_as_string=False, strip_newline_in_stdout=False
            )
        return dict(_parse_batch(bytes(output)))


def _parse_batch(output: bytes) -> Iterator[tuple[str, bytes]]:
    """(object sha, content) from `git cat-file --batch` output: `<sha> <type> <size>\\n<content>\\n` each."""
    at = 0
    while at < len(output):
        header_end = output.index(b"\n", at)
        object_sha, _kind, size = output[at:header_end].decode().split()
        start = header_end + 1
        yield object_sha, output[start:start + int(size)]
        at = start + int(size) + 1
