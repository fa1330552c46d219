"""The git cache: under the user's cache directory, never the working directory; one process at
a time; a holder killed with SIGKILL (and the lock files its git left) never wedges the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
from clirun import LOCKGATE, lockgate

from lockgate.controller import cache
from tests.gitrepos import Clone, Origin
from tests.syncsetup import NOTE, V1, V2, merged


def _env(origin: Origin, db: str, **extra: str) -> dict[str, str]:
    return {"LOCKGATE_REPO": origin.url, "LOCKGATE_DSN": db, **extra}


def _started(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT version, count(*) FROM lockgate.events WHERE event = 'started' GROUP BY version")
    return {version: count for version, count in rows.fetchall()}


def test_the_cache_lives_under_the_user_cache_directory_not_in_the_checkout(
    origin: Origin, dev: Clone, db: str, tmp_path: Path
) -> None:
    home = tmp_path / "xdg"

    done = lockgate("sync", cwd=dev.path, env=_env(origin, db, XDG_CACHE_HOME=str(home)))

    assert done.returncode == 0, done.stderr
    assert dev.git("status", "--porcelain", "--untracked-files=all") == ""  # nothing for `git add -A` to take
    (kept,) = (home / "lockgate").iterdir()
    assert kept.name == cache.key(origin.url, "main") and kept.name.startswith("origin-")
    assert (kept / "repo.git" / "HEAD").is_file()
    assert cache.directory(origin.url, "main", None, {"XDG_CACHE_HOME": "relative/path", "HOME": "/h"}) == (
        Path("~/.cache").expanduser() / "lockgate" / kept.name)
    assert cache.key(origin.url, "main") != cache.key(origin.url, "release")


def test_three_syncs_on_one_cache_apply_once_without_a_traceback(
    origin: Origin, dev: Clone, db: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    merged(dev, "note", V2, "add_note", NOTE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")} | _env(
        origin, db, LOCKGATE_CACHE_DIR=str(tmp_path / "shared"), LOCKGATE_LOCK_TIMEOUT="1s")
    runs = [subprocess.Popen([str(LOCKGATE), "sync", "--wait"], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]

    assert [code for code, _, _ in results] == [0, 0, 0], results
    assert not any("Traceback" in err for _, _, err in results)
    assert _started(conn) == {V1: 1, V2: 1}


def test_a_holder_killed_with_sigkill_and_its_git_lock_files_do_not_wedge_the_next_sync(
    origin: Origin, dev: Clone, db: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    assert lockgate("sync", cwd=tmp_path, env=_env(origin, db, LOCKGATE_CACHE_DIR=str(shared))).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from lockgate.controller import cache\n"
        f"with cache.hold(Path({str(shared)!r}), wait_s=5):\n"
        "    print('held', flush=True); time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    merged(dev, "note", V2, "add_note", NOTE)  # work to do: the no-op fast path does not apply
    # While it lives, another sync waits for it, then steps aside with one line and exit 0.
    busy = lockgate("sync", cwd=tmp_path, env=_env(origin, db, LOCKGATE_CACHE_DIR=str(shared),
                                                  LOCKGATE_CACHE_WAIT="300ms"))
    assert busy.returncode == 0 and busy.stderr.startswith("lockgate sync: skipped: another lockgate process")
    assert busy.stderr.count("\n") == 1
    # Killed mid-fetch, as a pod is: git's own lock files stay behind.
    (shared / "repo.git" / "config.lock").write_text("")
    (shared / "repo.git" / "refs" / "remotes" / "origin" / "main.lock").write_text("")
    holder.send_signal(signal.SIGKILL)
    holder.wait()

    done = lockgate("sync", cwd=tmp_path, env=_env(origin, db, LOCKGATE_CACHE_DIR=str(shared)))

    assert done.returncode == 0, done.stderr
    assert _started(conn) == {V1: 1, V2: 1}
    assert not (shared / "repo.git" / "config.lock").exists()
