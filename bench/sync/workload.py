"""The benchmark's repository: N small, real migrations and a merge-per-pull-request history.

The migrations cycle through five shapes a real schema's history is made of, one table per
cycle (the table `bench_<k>` of cycle k):

    0  CREATE TABLE bench_k (id bigint identity primary key, created_at timestamptz)
    1  ALTER TABLE bench_k ADD COLUMN note text
    2  CREATE INDEX CONCURRENTLY bench_k_created_at_idx (a no-transaction file of its own)
    3  ALTER TABLE bench_k ADD CONSTRAINT bench_k_note_length CHECK (…) NOT VALID
    4  ALTER TABLE bench_k VALIDATE CONSTRAINT bench_k_note_length

each with a down that undoes it and a validate file with one gate, all passing `lockgate lint`
and `lockgate check`. Versions are timestamps one hour apart from 2024-01-01.

The history is what a team merging pull requests makes: an initial commit on `main`, then for
every `per_merge` migrations a commit on a feature branch (the migrations' files and the
refreshed lockgate.sum) merged into `main` with a merge commit (`--no-ff`, as GitHub's merge
button does), so `main`'s first-parent history holds one merge per pull request. It is written
with `git fast-import` with fixed identities and dates, so every run makes the same commits
(the same shas) in seconds instead of minutes of `git commit`/`git merge` calls, then repacked
with `git repack -a -d -f`, as a hosted repository's maintenance leaves it.

The last commit's lockgate.sum is the file `lockgate hash` wrote for all N migrations; an
earlier commit's is that file's first lines with the total recomputed by `sumfile.render`
(what `lockgate hash` writes with): each line's hash covers only the files before it, so the
first k migrations' sum is exactly the prefix. `lockgate check` on a clone of the result
confirms the final tree.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lockgate.hooks import sumfile
from lockgate.hooks.migrationset import KINDS, SUM_FILE

MIGRATIONS = "migrations"
BRANCH = "main"
START = datetime(2024, 1, 1, tzinfo=UTC)
IDENTITY = "Lockgate Bench <bench@lockgate.invalid>"
README = "# service\n\nIts schema changes live in migrations/ and reach production through lockgate.\n"
FEATURE = "refs/heads/feature"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    up: str
    down: str
    validate: str

    @property
    def id(self) -> str:
        return f"{self.version}_{self.name}"

    def files(self) -> dict[str, str]:
        """File name → text."""
        return {f"{self.id}.{kind}.sql": getattr(self, kind) for kind in KINDS}


def migration(i: int) -> Migration:
    """The i-th migration (0-based); deterministic."""
    version = (START + timedelta(hours=i)).strftime("%Y%m%d%H%M%S")
    k, shape = divmod(i, 5)
    t = f"bench_{k}"
    if shape == 0:
        return Migration(
            version, f"create_{t}",
            f"-- Description: Create {t}\n\n"
            f"CREATE TABLE {t} (\n"
            "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            "    created_at timestamptz NOT NULL DEFAULT now()\n"
            ");\n",
            f"-- Description: Drop {t}\n\nDROP TABLE {t};\n",
            f"-- Description: {t} exists\n\n-- Gate: the table is there.\n"
            f"SELECT to_regclass('{t}') IS NOT NULL AS table_exists;\n",
        )
    if shape == 1:
        return Migration(
            version, f"add_{t}_note",
            f"-- Description: A free-text note on {t}\n\n"
            "-- Nullable, no default: a catalog-only change.\n"
            f"ALTER TABLE {t} ADD COLUMN note text;\n",
            f"-- Description: Remove the note from {t}\n\nALTER TABLE {t} DROP COLUMN note;\n",
            f"-- Description: The note column exists\n\n-- Gate: the column is there.\n"
            "SELECT count(*) = 1 AS note_exists FROM pg_attribute\n"
            f"WHERE attrelid = '{t}'::regclass AND attname = 'note' AND NOT attisdropped;\n",
        )
    if shape == 2:
        return Migration(
            version, f"index_{t}_created_at",
            f"-- Description: Index {t} by creation time\n-- lockgate:no-transaction\n\n"
            f"CREATE INDEX CONCURRENTLY {t}_created_at_idx ON {t} (created_at);\n",
            f"-- Description: Drop the creation-time index of {t}\n-- lockgate:no-transaction\n\n"
            f"DROP INDEX CONCURRENTLY {t}_created_at_idx;\n",
            "-- Description: The index was built completely\n\n-- Gate: no INVALID index left behind.\n"
            f"SELECT indisvalid AS index_valid FROM pg_index WHERE indexrelid = '{t}_created_at_idx'::regclass;\n",
        )
    if shape == 3:
        return Migration(
            version, f"check_{t}_note_length",
            f"-- Description: Notes on {t} stay short\n\n"
            f"ALTER TABLE {t}\n"
            f"    ADD CONSTRAINT {t}_note_length CHECK (char_length(note) <= 500) NOT VALID;\n",
            f"-- Description: Remove the note length check\n\nALTER TABLE {t} DROP CONSTRAINT {t}_note_length;\n",
            "-- Description: The check is there\n\n-- Gate: the constraint exists.\n"
            "SELECT count(*) = 1 AS check_exists FROM pg_constraint\n"
            f"WHERE conrelid = '{t}'::regclass AND conname = '{t}_note_length';\n",
        )
    return Migration(
        version, f"validate_{t}_note_length",
        f"-- Description: Validate the note length check of {t}\n\n"
        f"ALTER TABLE {t} VALIDATE CONSTRAINT {t}_note_length;\n",
        "-- Description: Return the check to NOT VALID\n\n"
        f"ALTER TABLE {t} DROP CONSTRAINT {t}_note_length;\n"
        f"ALTER TABLE {t}\n"
        f"    ADD CONSTRAINT {t}_note_length CHECK (char_length(note) <= 500) NOT VALID;\n",
        "-- Description: The check is validated\n\n-- Gate: PostgreSQL trusts it for every row.\n"
        "SELECT convalidated AS check_validated FROM pg_constraint\n"
        f"WHERE conrelid = '{t}'::regclass AND conname = '{t}_note_length';\n",
    )


def migrations(count: int) -> list[Migration]:
    return [migration(i) for i in range(count)]


def write(directory: Path, items: list[Migration]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for m in items:
        for name, text in m.files().items():
            (directory / name).write_text(text)


def sum_prefixes(sum_text: str, items: list[Migration], per_merge: int) -> list[str]:
    """lockgate.sum after each merge: the full file's first lines, re-totalled."""
    rows = _rows(sum_text)
    if sumfile.render(rows) != sum_text or len(rows) != 3 * len(items):
        raise ValueError(f"lockgate.sum: {len(rows)} lines for {3 * len(items)} files, or not as lockgate hash writes")
    out = []
    for end in range(per_merge, len(items) + per_merge, per_merge):
        out.append(sumfile.render(rows[:3 * min(end, len(items))]))
    if out[-1] != sum_text:
        raise ValueError("the last merge's lockgate.sum differs from the one `lockgate hash` wrote")
    return out


def _rows(sum_text: str) -> list[tuple[str, str]]:
    rows = []
    for line in sum_text.splitlines()[1:]:
        name, _, digest = line.partition(" ")
        rows.append((name, digest))
    return rows


def _data(text: str) -> str:
    raw = text.encode()
    return f"data {len(raw)}\n{text}\n"


def _when(hours: float) -> str:
    return f"{int((START + timedelta(hours=hours)).timestamp())} +0000"


def fast_import_stream(items: list[Migration], sums: list[str], per_merge: int) -> str:
    """A `git fast-import` stream of the whole history (see the module docstring)."""
    parts: list[str] = []
    mark = 0

    def next_mark() -> int:
        nonlocal mark
        mark += 1
        return mark

    readme = next_mark()
    parts.append(f"blob\nmark :{readme}\n{_data(README)}")
    initial = next_mark()
    parts.append(
        f"commit refs/heads/{BRANCH}\nmark :{initial}\n"
        f"author {IDENTITY} {_when(-1)}\ncommitter {IDENTITY} {_when(-1)}\n"
        f"{_data('Initial commit')}"
        f"M 100644 :{readme} README.md\n\n"
    )
    main = initial
    for pr, start in enumerate(range(0, len(items), per_merge), start=1):
        batch = items[start:start + per_merge]
        changes: list[str] = []
        for m in batch:
            for name, text in m.files().items():
                blob = next_mark()
                parts.append(f"blob\nmark :{blob}\n{_data(text)}")
                changes.append(f"M 100644 :{blob} {MIGRATIONS}/{name}\n")
        blob = next_mark()
        parts.append(f"blob\nmark :{blob}\n{_data(sums[pr - 1])}")
        changes.append(f"M 100644 :{blob} {MIGRATIONS}/{SUM_FILE}\n")
        hours = start  # the first migration's version hour
        title = batch[0].id if len(batch) == 1 else f"{batch[0].id} … {batch[-1].id}"
        feature = next_mark()
        parts.append(
            f"commit {FEATURE}\nmark :{feature}\n"
            f"author {IDENTITY} {_when(hours + 0.25)}\ncommitter {IDENTITY} {_when(hours + 0.25)}\n"
            f"{_data(f'Add migration {title}')}"
            f"from :{main}\n{''.join(changes)}\n"
        )
        merge = next_mark()
        parts.append(
            f"commit refs/heads/{BRANCH}\nmark :{merge}\n"
            f"author {IDENTITY} {_when(hours + 0.5)}\ncommitter {IDENTITY} {_when(hours + 0.5)}\n"
            f"{_data(f'Merge pull request #{pr} from dev/pr-{pr}')}"
            f"from :{main}\nmerge :{feature}\n{''.join(changes)}\n"
        )
        main = merge
    return "".join(parts)


def build_origin(origin: Path, items: list[Migration], sum_text: str, per_merge: int) -> str:
    """A bare repository at `origin` holding the history; returns main's head sha."""
    subprocess.run(["git", "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(origin)], check=True)
    stream = fast_import_stream(items, sum_prefixes(sum_text, items, per_merge), per_merge)
    subprocess.run(["git", "-C", str(origin), "fast-import", "--quiet"], input=stream.encode(), check=True)
    # The feature branch is deleted after its merge, as GitHub offers.
    subprocess.run(["git", "-C", str(origin), "update-ref", "-d", FEATURE], check=True)
    # fast-import deltifies poorly (its pack of 1,000 migrations is ~59 MB, mostly the growing
    # lockgate.sum stored whole each time); a hosted repository is repacked (~1.2 MB here).
    subprocess.run(["git", "-C", str(origin), "repack", "-a", "-d", "-f", "--quiet"], check=True)
    out = subprocess.run(["git", "-C", str(origin), "rev-parse", f"refs/heads/{BRANCH}"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()
