"""Assemble the real-world corpus for bench/lint/precision.py from git snapshots of public projects.

    .venv/bin/python bench/lint/realcorpus.py --mirror /work/.mirror --out /tmp/lockgate-corpus

`--mirror` holds one bare git repository per project at `<owner>+<name>/repo` (any clone works:
`git clone --bare https://github.com/<owner>/<name> <mirror>/<owner>+<name>/repo`). Nothing of these
projects is kept in this repository: the corpus is written under `--out`, one folder per project, with
`manifest.json` naming the commit each was read from. The PostgreSQL migrations of each project are
taken as they are, with only these changes, so that lockgate and squawk read plain SQL in golang-migrate
names:

- ory (kratos, hydra, keto): files for other dialects (`.mysql.`, `.sqlite3.`, `.cockroach.`) are left
  out and the `.postgres` tag is dropped from names, so a `x.postgres.up.sql` pairs with its `x.down.sql`
  (a PostgreSQL-specific file wins over a dialect-free one of the same name);
- supabase/auth: the template placeholder `{{ index .Options "Namespace" }}` becomes `auth`;
- frain-dev/convoy (sql-migrate): each file's `-- +migrate Up` and `-- +migrate Down` sections become an
  up and a down file;
- temporalio/temporal: the files of each `versioned/vX.Y` folder become up files numbered in version order
  (in the order of the folder's manifest.json), for the `temporal` and `visibility` schemas each.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_OTHER_DIALECT = re.compile(r"\.(mysql|sqlite3?|cockroach)\.(up|down)\.sql$")
_TEMPLATE = re.compile(r"\{\{\s*index \.Options \"Namespace\"\s*\}\}")
_MIGRATE_MARK = re.compile(r"^-- \+migrate (Up|Down)\b.*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Project:
    repo: str  # owner/name
    folder: str  # where its PostgreSQL migrations are, in the repository
    style: str  # how its files become golang-migrate files: ory, plain, template, sql-migrate, versioned


PROJECTS = (
    Project("ory/kratos", "persistence/sql/migrations/sql", "ory"),
    Project("ory/hydra", "persistence/sql/migrations", "ory"),
    Project("ory/keto", "internal/persistence/sql/migrations/sql", "ory"),
    Project("goharbor/harbor", "make/migrations/postgresql", "plain"),
    Project("supabase/auth", "migrations", "template"),
    Project("ente-io/ente", "server/migrations", "plain"),
    Project("frain-dev/convoy", "sql", "sql-migrate"),
    Project("temporalio/temporal", "schema/postgresql/v12", "versioned"),
)


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.commit = self.git("rev-parse", "HEAD").strip()

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=True,
                              check=True).stdout

    def files(self, folder: str) -> list[str]:
        return [p for p in self.git("ls-tree", "-r", "--name-only", self.commit, "--", folder).splitlines()]

    def read(self, path: str) -> str:
        return self.git("show", f"{self.commit}:{path}")


def _ory(repo: Repo, folder: str) -> Iterator[tuple[str, str]]:
    chosen: dict[str, str] = {}
    for path in repo.files(folder):
        name = path.rsplit("/", 1)[1]
        if path.endswith(".sql") and not _OTHER_DIALECT.search(name) and "/" not in path[len(folder) + 1:]:
            plain = name.replace(".postgres.", ".")
            if plain not in chosen or ".postgres." in name:
                chosen[plain] = path
    for plain, path in sorted(chosen.items()):
        yield plain, repo.read(path)


def _plain(repo: Repo, folder: str) -> Iterator[tuple[str, str]]:
    for path in repo.files(folder):
        if path.endswith(".sql") and "/" not in path[len(folder) + 1:]:
            yield path.rsplit("/", 1)[1], repo.read(path)


def _template(repo: Repo, folder: str) -> Iterator[tuple[str, str]]:
    for name, text in _plain(repo, folder):
        yield name, _TEMPLATE.sub("auth", text)


def _sql_migrate(repo: Repo, folder: str) -> Iterator[tuple[str, str]]:
    for name, text in _plain(repo, folder):
        stem = name.removesuffix(".sql")
        sections: dict[str, list[str]] = {}
        marks = list(_MIGRATE_MARK.finditer(text))
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            end = following.start() if following else len(text)
            sections.setdefault(mark[1].lower(), []).append(text[mark.end():end])
        for kind, parts in sections.items():
            yield f"{stem}_convoy.{kind}.sql", "".join(parts).lstrip("\n")


def _semver(folder: str) -> tuple[int, ...]:
    return tuple(int(p) for p in folder.removeprefix("v").split("."))


def _versioned(repo: Repo, folder: str) -> Iterator[tuple[str, str]]:
    for schema in ("temporal", "visibility"):
        root = f"{folder}/{schema}/versioned"
        by_version: dict[str, list[str]] = {}
        for path in repo.files(root):
            version, _, name = path[len(root) + 1:].partition("/")
            by_version.setdefault(version, []).append(name)
        number = 0
        for version in sorted(by_version, key=_semver):
            manifest = json.loads(repo.read(f"{root}/{version}/manifest.json"))
            for name in manifest.get("SchemaUpdateCqlFiles", []):
                number += 1
                title = f"{schema}_{version}_{name.removesuffix('.sql')}"
                yield f"{schema}/{number:04d}_{title}.up.sql", repo.read(f"{root}/{version}/{name}")


_STYLES = {"ory": _ory, "plain": _plain, "template": _template, "sql-migrate": _sql_migrate,
           "versioned": _versioned}


def assemble(mirror: Path, out: Path) -> dict[str, dict[str, object]]:
    if out.exists():
        shutil.rmtree(out)
    manifest: dict[str, dict[str, object]] = {}
    for project in PROJECTS:
        repo = Repo(mirror / project.repo.replace("/", "+") / "repo")
        folder = out / project.repo.replace("/", "+")
        count = 0
        for name, text in _STYLES[project.style](repo, project.folder):
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            count += 1
        manifest[project.repo] = {"commit": repo.commit, "folder": project.folder, "style": project.style,
                                  "files": count}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True, help="folder of <owner>+<name>/repo git snapshots")
    parser.add_argument("--out", type=Path, required=True, help="where to write the corpus (replaced)")
    args = parser.parse_args()
    for repo, entry in assemble(args.mirror, args.out).items():
        print(f"{repo}: {entry['files']} files at {str(entry['commit'])[:12]}")


if __name__ == "__main__":
    main()
