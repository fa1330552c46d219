"""Where the controller keeps its clone of the watched repository, and who may use it at a time.

The cache lives under the user's cache directory (`$XDG_CACHE_HOME/lockgate/<repository key>`,
`~/.cache` when unset) or in `cache_dir` when set, never in the working directory: run inside a
checkout, a cache there would be committed by the next `git add -A`. Kubernetes points
`cache_dir` at an emptyDir.

One process uses a cache at a time, under an exclusive `flock` on a file in it. The kernel drops
that lock when its holder dies, SIGKILL included, so a killed pod never leaves it held; what a
killed git process can leave is its own `*.lock` files in the clone, and the next holder removes
those, as nobody else can be using the clone while it holds the cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

CACHE_REPO = "repo.git"
LOCK_FILE = "cache.lock"
_POLL_S = 0.1


class CacheBusy(Exception):
    """Another lockgate process kept the cache for longer than this one would wait."""


def key(repo: str, branch: str) -> str:
    """A readable, collision-free folder name for a repository URL or path and branch."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", repo.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")).strip("-.")
    digest = hashlib.sha256(f"{repo}\n{branch}".encode()).hexdigest()[:12]
    return f"{stem or 'repo'}-{digest}"


def directory(repo: str, branch: str, configured: Path | None, environ: dict[str, str] | None = None) -> Path:
    """`configured` when set, else `$XDG_CACHE_HOME/lockgate/<key>` (`~/.cache` when unset or relative)."""
    if configured is not None:
        return configured
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    if not base.is_absolute():  # the XDG spec: a relative path is invalid and is ignored
        base = Path("~/.cache").expanduser()
    return base / "lockgate" / key(repo, branch)


@contextlib.contextmanager
def hold(path: Path, *, wait_s: float) -> Iterator[None]:
    """The cache at `path` for this process alone, waiting up to `wait_s` for another holder (CacheBusy)."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise CacheBusy(
                        f"another lockgate process has used the cache {path} for over {wait_s:g}s"
                    ) from None
                time.sleep(_POLL_S)
        _remove_stale_git_locks(path / CACHE_REPO)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_stale_git_locks(repo: Path) -> None:
    """Lock files a killed git process left in the clone: nobody else can hold them now."""
    if not repo.is_dir():
        return
    for candidate in (repo / "config.lock", repo / "index.lock", repo / "shallow.lock", repo / "packed-refs.lock"):
        candidate.unlink(missing_ok=True)
    for folder in (repo / "refs", repo / "logs"):
        for stale in folder.rglob("*.lock") if folder.is_dir() else ():
            stale.unlink(missing_ok=True)
