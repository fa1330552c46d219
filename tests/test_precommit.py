"""The pre-commit integration for real: `pre-commit install` in a git repository, then `git commit`
refuses unsafe, unpaired and un-undone migrations and accepts a safe one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git
import pytest
from clirun import lockgate
from pre_commit.clientlib import load_config, load_manifest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VALIDATE = "SELECT true AS ok;\n"
ADD_NICKNAME = "ALTER TABLE customers ADD COLUMN nickname text;\n"


@pytest.mark.parametrize(
    ("command", "path"),
    [("validate-manifest", ".pre-commit-hooks.yaml"), ("validate-config", ".pre-commit-config.yaml")],
)
def test_the_manifest_and_the_config_are_valid(command: str, path: str) -> None:
    done = subprocess.run([BIN / "pre-commit", command, path], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_this_repo_runs_the_hooks_it_publishes() -> None:
    """The local config mirrors the manifest, so what the repo tests is what users get."""
    published = {h["id"]: h for h in load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))}
    (local,) = load_config(str(ROOT / ".pre-commit-config.yaml"))["repos"]
    assert local["repo"] == "local"
    assert sorted(published) == sorted(h["id"] for h in local["hooks"]) == [
        "lockgate-check", "lockgate-lint", "lockgate-verify-rollback",
    ]
    for hook in local["hooks"]:
        mirrored = ("entry", "files", "pass_filenames", "stages", "always_run")
        assert {k: hook[k] for k in mirrored} == {k: published[hook["id"]][k] for k in mirrored}
    assert published["lockgate-lint"]["pass_filenames"] is True
    assert published["lockgate-check"]["pass_filenames"] is False
    assert published["lockgate-check"]["always_run"] is True  # deletions reach it
    assert published["lockgate-verify-rollback"]["stages"] == ["manual"]


@dataclass
class Repo:
    path: Path
    env: dict[str, str]

    def write(self, files: dict[str, str], *, rehash: bool = True) -> None:
        """Write migration files and, as an author does, refresh lockgate.sum with `lockgate hash`."""
        for name, text in files.items():
            (self.path / "migrations" / name).write_text(text)
        if rehash:
            done = lockgate("hash", cwd=self.path)
            assert done.returncode == 0, done.stderr

    def commit(self, message: str) -> subprocess.CompletedProcess[str]:
        """`git add -A && git commit`; the hooks' report (stderr) is in stdout, as a terminal shows it."""
        subprocess.run(["git", "add", "-A"], cwd=self.path, env=self.env, check=True)
        return subprocess.run(
            ["git", "commit", "-m", message], cwd=self.path, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
        )

    def reset(self, rev: str = "HEAD") -> None:
        """Throw away uncommitted work (and commits after `rev`)."""
        subprocess.run(["git", "reset", "--quiet", "--hard", rev], cwd=self.path, env=self.env, check=True)
        subprocess.run(["git", "clean", "-fdq"], cwd=self.path, env=self.env, check=True)

    def subjects(self) -> list[str]:
        return git.Repo(self.path).git.log("--format=%s").splitlines()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A repository with this project's own .pre-commit-config.yaml and the worked example, hooks installed."""
    tmp_path = tmp_path_factory.mktemp("precommit")
    path = tmp_path / "service"
    git.Repo.init(path, initial_branch="main")
    with git.Repo(path).config_writer() as config:
        config.set_value("user", "name", "Lockgate Test")
        config.set_value("user", "email", "test@lockgate.invalid")
        config.set_value("commit", "gpgsign", "false")
    shutil.copy(ROOT / ".pre-commit-config.yaml", path)
    shutil.copytree(ROOT / "migrations", path / "migrations")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKGATE_", "GIT_", "PRE_COMMIT"))}
    # `language: system` hooks find the venv's `lockgate` on PATH; pre-commit keeps its cache in the test.
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))
    installed = subprocess.run([BIN / "pre-commit", "install"], cwd=path, env=env, capture_output=True, text=True,
                               check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    service = Repo(path, env)
    first = service.commit("the worked example")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "lockgate lint" in first.stdout and "lockgate check" in first.stdout and "Failed" not in first.stdout
    return service


@pytest.fixture
def repo(service: Repo) -> Iterator[Repo]:
    """The shared repository, back at its first commit after each test."""
    root = git.Repo(service.path).git.rev_list("--max-parents=0", "HEAD")
    yield service
    service.reset(root)


def test_an_unsafe_migration_is_refused(repo: Repo) -> None:
    repo.write({
        "20240201000000_index_orders_created_at.up.sql": "CREATE INDEX orders_created_at_idx ON orders (created_at);\n",
        "20240201000000_index_orders_created_at.down.sql": "DROP INDEX orders_created_at_idx;\n",
        "20240201000000_index_orders_created_at.validate.sql": VALIDATE,
    })
    done = repo.commit("index orders")
    assert done.returncode != 0
    assert (
        "migrations/20240201000000_index_orders_created_at.up.sql:1:1: LG101 CREATE INDEX takes a SHARE lock on "
        "orders and blocks writes"
    ) in done.stdout
    assert "verify-rollback" not in done.stdout, "the round trip is opt-in (manual stage)"
    assert repo.subjects() == ["the worked example"]


def test_an_unpaired_migration_is_refused(repo: Repo) -> None:
    repo.write({"20240201000000_add_nickname.up.sql": ADD_NICKNAME}, rehash=False)  # hash refuses half a pair
    done = repo.commit("nickname")
    assert done.returncode != 0
    assert (
        "migrations/20240201000000_add_nickname.up.sql:1:1: LG901 20240201000000_add_nickname has no down file"
    ) in done.stdout
    assert "LG902 20240201000000_add_nickname has no validate file" in done.stdout
    assert repo.subjects() == ["the worked example"]


def test_a_down_that_does_not_undo_the_up_is_refused(repo: Repo) -> None:
    repo.write({
        "20240201000000_add_nickname.up.sql": ADD_NICKNAME,
        "20240201000000_add_nickname.down.sql": "SELECT 1;\n",
        "20240201000000_add_nickname.validate.sql": VALIDATE,
    })
    done = repo.commit("nickname")
    assert done.returncode != 0
    assert (
        "migrations/20240201000000_add_nickname.down.sql:1:1: LG903 rollback does not drop column "
        "customers.nickname added at up.sql:1"
    ) in done.stdout
    assert repo.subjects() == ["the worked example"]


def test_editing_a_committed_migration_is_refused(repo: Repo) -> None:
    up = repo.path / "migrations" / "20240101000000_create_customers_and_orders.up.sql"
    repo.write({up.name: up.read_text().replace("email      text NOT NULL", "email      citext NOT NULL")})
    done = repo.commit("case-insensitive email")
    assert done.returncode != 0
    assert "LG905 20240101000000_create_customers_and_orders.up.sql is already on main and was edited" in done.stdout


def test_a_safe_migration_is_committed(repo: Repo) -> None:
    repo.write({
        "20240201000000_add_nickname.up.sql": ADD_NICKNAME,
        "20240201000000_add_nickname.down.sql": "ALTER TABLE customers DROP COLUMN nickname;\n",
        "20240201000000_add_nickname.validate.sql": VALIDATE,
    })
    done = repo.commit("nickname")
    assert done.returncode == 0, done.stdout + done.stderr
    assert repo.subjects() == ["nickname", "the worked example"]
    committed = git.Repo(repo.path).git.ls_tree("--name-only", "HEAD", "migrations/").splitlines()
    assert "migrations/20240201000000_add_nickname.down.sql" in committed
    repo.reset()  # nothing was left uncommitted: the commit took every file
    assert (repo.path / "migrations" / "20240201000000_add_nickname.up.sql").exists()


def test_a_commit_that_only_deletes_a_validate_file_is_refused(repo: Repo) -> None:
    validate = "20240101000000_create_customers_and_orders.validate.sql"
    (repo.path / "migrations" / validate).unlink()
    done = repo.commit("drop a gate")
    assert done.returncode != 0
    assert "lockgate check" in done.stdout and "Failed" in done.stdout
    assert "LG902 20240101000000_create_customers_and_orders has no validate file" in done.stdout
    assert repo.subjects() == ["the worked example"]


def test_a_commit_outside_the_migrations_folder_skips_the_check_quickly(repo: Repo) -> None:
    (repo.path / "README").write_text("docs only\n")
    done = repo.commit("docs")
    assert done.returncode == 0, done.stdout
    assert repo.subjects() == ["docs", "the worked example"]
    # `--if-changed` with nothing staged at all (as `pre-commit run --all-files` sees it) checks the set.
    (repo.path / "migrations" / "20240101000000_create_customers_and_orders.validate.sql").unlink()
    assert lockgate("check", "--if-changed", cwd=repo.path).returncode == 1
