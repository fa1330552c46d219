"""One `lockgate sync` pass in this process, timed phase by phase (or profiled); prints JSON.

    python bench/sync/phases.py            # phases: {"imports_s": …, "phases": {…}, "git": {…}, …}
    python bench/sync/phases.py --profile FILE

Run by bench/sync/__main__.py as a script, with the environment the CronJob gives `lockgate sync`.
It imports the command's modules (timed), wraps the functions a pass goes through with timers
and counts every git process GitPython starts, then runs `lockgate.controller.cli.main(["sync"])`.
The timers nest (the notes fetch is inside the pass, the git calls inside everything): each phase is
the wall time spent inside that function, not an exclusive share. With `--profile`, nothing is
wrapped: the command's modules are imported first, then the pass runs under cProfile and the
stats go to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

STARTED = time.perf_counter()

# (module, attribute path, label), in the order a pass reaches them.
PHASES: list[tuple[str, str, str]] = [
    ("lockgate.controller.config", "load", "settings (pydantic-settings: flags, LOCKGATE_*, pyproject)"),
    ("lockgate.controller.sync", "open_source", "open the cache clone and fetch the branch"),
    ("lockgate.controller.source", "Source.fetch", "  of which git fetch of the branch"),
    ("lockgate.controller.sync", "Reporter.fetch_notes", "fetch origin's notes and merge them"),
    ("lockgate.controller.source", "Source.history", "first-parent history of migrations/"),
    ("lockgate.controller.source", "Source._log", "  of which git log --first-parent --name-status"),
    ("lockgate.controller.source", "parse_log", "  of which parsing its output"),
    ("lockgate.controller.source", "Source._saved_history", "  of which reading the cached history.json"),
    ("lockgate.controller.source", "Source._save_history", "  of which writing history.json"),
    ("lockgate.controller.source", "Source._blobs", "read the head's migration files from git (ls-tree, cat-file)"),
    ("lockgate.controller.source", "from_files", "load the migration set from those files"),
    ("lockgate.controller.engine", "Engine.__enter__", "database: connect twice, applier lock, ledger setup"),
    ("lockgate.controller.engine", "Engine.ledger_entries", "ledger read (every row, light columns)"),
    ("lockgate.controller.sync", "_Pass._catch_up", "notes of the history read and compared with the ledger"),
    ("lockgate.controller.status", "Notes.read_many", "  of which reading and parsing the notes"),
    ("lockgate.controller.sync", "plan_rollbacks", "plan rollbacks"),
    ("lockgate.controller.sync", "_Pass._apply_all", "plan applies (approval only for unapplied migrations)"),
    ("lockgate.controller.sync", "Reporter.flush", "push notes (only when there is something to push)"),
    ("lockgate.controller.engine", "Engine.__exit__", "close the database connections"),
]


def _wrap(fn: Callable[..., Any], label: str, spent: dict[str, float], calls: dict[str, int]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start
            calls[label] += 1

    return timed


def phases() -> dict[str, Any]:
    import importlib

    before = time.perf_counter()
    import git  # the command imports it anyway; timed with the rest

    from lockgate.controller import cli
    from lockgate.controller.commands import sync as _command  # noqa: F401

    imports_s = time.perf_counter() - before
    spent: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for module_name, path, label in PHASES:
        owner: Any = importlib.import_module(module_name)
        *outer, attr = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        setattr(owner, attr, _wrap(getattr(owner, attr), label, spent, calls))

    git_s: dict[str, float] = defaultdict(float)
    git_n: dict[str, int] = defaultdict(int)
    execute = git.cmd.Git.execute

    def counted(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        name = command[1] if isinstance(command, list | tuple) and len(command) > 1 else str(command)
        start = time.perf_counter()
        try:
            return execute(self, command, *args, **kwargs)
        finally:
            git_s[name] += time.perf_counter() - start
            git_n[name] += 1

    git.cmd.Git.execute = counted  # type: ignore[method-assign]
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cli.main(["sync"])
    pass_s = time.perf_counter() - start
    return {
        "exit_code": code,
        "output": out.getvalue(),
        "before_imports_s": before - STARTED,
        "imports_s": imports_s,
        "pass_s": pass_s,
        "in_process_s": time.perf_counter() - STARTED,
        "phases": {label: {"s": spent[label], "calls": calls[label]} for _, _, label in PHASES},
        "git": {name: {"s": git_s[name], "calls": git_n[name]} for name in sorted(git_s, key=lambda n: -git_s[n])},
    }


def profile(path: str) -> dict[str, Any]:
    import cProfile

    from lockgate.controller import cli
    from lockgate.controller.commands import sync as _command  # noqa: F401

    profiler = cProfile.Profile()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        profiler.enable()
        code = cli.main(["sync"])
        profiler.disable()
    profiler.dump_stats(path)
    return {"exit_code": code, "output": out.getvalue()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", metavar="FILE")
    args = parser.parse_args()
    result = profile(args.profile) if args.profile else phases()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
