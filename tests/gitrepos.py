"""Real git repositories for tests: a bare origin, clones with real commits, merges, reverts, pushes.

    origin = Origin.create(tmp_path)
    dev = origin.clone("dev")
    dev.add_migration("20240101000000", "create_t", up="CREATE TABLE t (id int);", down="DROP TABLE t;")
    dev.push()
    dev.branch("feature")
    dev.add_migration("20240102000000", "add_c", up=..., down=...)
    dev.switch("main")
    merge = dev.merge_branch("feature")          # --no-ff: the merge commit brings it to main
    dev.push()
    revert = dev.revert(merge)                   # reverts a merge against its first parent
    dev.push()

Every repository gets its own identity and `commit.gpgsign=false` (unless `sign_with` is used),
so the machine's global git configuration does not leak into tests.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import git

from lockgate.hooks import migrationset, sumfile

BRANCH = "main"
MIGRATIONS = "migrations"

_IDENTITY = {
    "user.name": "Lockgate Test",
    "user.email": "test@lockgate.invalid",
    "commit.gpgsign": "false",
    "protocol.file.allow": "always",
    "advice.detachedHead": "false",
}


def _configure(repo: git.Repo, values: dict[str, str]) -> None:
    with repo.config_writer() as config:
        for key, value in values.items():
            section, _, option = key.rpartition(".")
            config.set_value(section, option, value)


@dataclass
class Origin:
    """A bare repository standing in for GitHub/GitLab; `url` is a plain path git can clone."""

    path: Path

    @classmethod
    def create(cls, directory: Path, name: str = "origin.git") -> Origin:
        path = directory / name
        repo = git.Repo.init(path, bare=True, mkdir=True, initial_branch=BRANCH)
        _configure(repo, _IDENTITY)
        return cls(path)

    @property
    def url(self) -> str:
        return str(self.path)

    @property
    def repo(self) -> git.Repo:
        return git.Repo(self.path)

    def clone(self, name: str = "work") -> Clone:
        """A working clone next to the origin; an empty origin gives a clone on an unborn `main`."""
        path = self.path.parent / name
        repo = git.Repo.clone_from(self.url, path)
        _configure(repo, _IDENTITY)
        if not repo.head.is_valid():
            repo.git.symbolic_ref("HEAD", f"refs/heads/{BRANCH}")
        return Clone(repo)

    def head(self, branch: str = BRANCH) -> str:
        return self.repo.git.rev_parse(f"refs/heads/{branch}")


@dataclass
class Clone:
    repo: git.Repo

    @property
    def path(self) -> Path:
        return Path(self.repo.working_tree_dir or "")

    @property
    def head(self) -> str:
        return self.repo.head.commit.hexsha

    def git(self, *args: str) -> str:
        return str(self.repo.git.execute(["git", *args], stdout_as_string=True))

    def commit_files(self, files: dict[str, str | None], message: str = "change files") -> str:
        """Write (or, for None, delete) files relative to the work tree and commit them all."""
        for name, text in files.items():
            path = self.path / name
            if text is None:
                self.repo.index.remove([name], working_tree=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            self.repo.git.add("--", name)
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.head

    def add_migration(
        self,
        version: str,
        name: str,
        *,
        up: str = "SELECT 1;\n",
        down: str = "SELECT 1;\n",
        validate: str = "SELECT true;\n",
        message: str | None = None,
        rehash: bool = True,
    ) -> str:
        """Commit the three files of a migration and, by default, the refreshed lockgate.sum."""
        base = f"{MIGRATIONS}/{version}_{name}"
        files: dict[str, str | None] = {}
        for kind, text in (("up", up), ("down", down), ("validate", validate)):
            files[f"{base}.{kind}.sql"] = text
            path = self.path / f"{base}.{kind}.sql"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if rehash:
            files[f"{MIGRATIONS}/{migrationset.SUM_FILE}"] = self.sum_text()
        return self.commit_files(files, message or f"add migration {version}_{name}")

    def sum_text(self) -> str:
        """What `lockgate hash` would write for the work tree's migrations now."""
        return sumfile.render(sumfile.compute(migrationset.load(self.path / MIGRATIONS)))

    def branch(self, name: str, start: str = "HEAD") -> None:
        """Create branch `name` at `start` and switch to it."""
        self.git("switch", "--quiet", "-c", name, start)

    def switch(self, name: str) -> None:
        self.git("switch", "--quiet", name)

    def merge_branch(self, name: str, message: str | None = None) -> str:
        """Merge `name` into the current branch with a merge commit, as a pull request merge does."""
        self.git("merge", "--quiet", "--no-ff", "-m", message or f"Merge branch '{name}'", name)
        return self.head

    def revert(self, sha: str) -> str:
        """Revert a commit; a merge is reverted against its first parent, like GitHub's Revert button."""
        mainline = ["-m", "1"] if len(self.repo.commit(sha).parents) > 1 else []
        self.git("revert", "--no-edit", *mainline, sha)
        return self.head

    def push(self, branch: str | None = None, *, force: bool = False) -> None:
        branch = branch or self.repo.active_branch.name
        self.git("push", "--quiet", *(["--force"] if force else []), "origin", f"{branch}:{branch}")

    def pull(self) -> None:
        self.git("pull", "--quiet", "--no-rebase", "origin", self.repo.active_branch.name)

    def reset_hard(self, rev: str) -> None:
        self.git("reset", "--quiet", "--hard", rev)

    def sign_with(self, key: Path) -> None:
        """Sign every following commit with the SSH key at `key` (made by `ssh_key`)."""
        _configure(self.repo, {
            "gpg.format": "ssh",
            "user.signingkey": str(key),
            "commit.gpgsign": "true",
        })

    def stop_signing(self) -> None:
        _configure(self.repo, {"commit.gpgsign": "false"})


def ssh_key(directory: Path, name: str = "signer", email: str = _IDENTITY["user.email"]) -> tuple[Path, str]:
    """A fresh ed25519 key without passphrase: (private key path, its allowed-signers line)."""
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(key)],
        check=True, capture_output=True,
    )
    public = (directory / f"{name}.pub").read_text().split()
    return key, f"{email} {public[0]} {public[1]}\n"
