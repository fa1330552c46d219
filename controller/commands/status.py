"""`lockgate status [REV]`: the lockgate note on a commit and, with a DSN, the ledger beside it.

REV defaults to the head of the configured branch. With `--repo` the controller's cache clone is
fetched first (branch and notes); without it the repository around the working directory is read
as it is. Exit code 1 when a migration on the commit failed, was refused or is dirty.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lockgate.controller import config, redact
from lockgate.controller.cache import CacheBusy
from lockgate.controller.commands.common import add_dsn, add_format, add_repo
from lockgate.controller.source import CommitRef, Source, SourceError, held_cache
from lockgate.controller.status import Notes, StatusNote
from lockgate.hooks.errors import UsageError

GOOD_OUTCOMES = frozenset({"applied", "rolled_back"})
LEDGER_FIELDS = ("status", "commit_sha", "finished_at", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rev", nargs="?", help="commit, branch or tag (default: the branch head)")
    add_repo(parser)
    add_dsn(parser)
    add_format(parser)


def ledger_rows(settings: config.Settings, versions: list[str]) -> dict[str, dict[str, Any] | None]:
    """The ledger's view of `versions` (None: not in the ledger)."""
    from lockgate.controller import db
    from lockgate.controller.ledger import Ledger

    with db.connect(db.target_dsn(settings)) as conn:
        ledger = Ledger(conn, settings.ledger_schema)
        present = ledger.exists()
        rows: dict[str, dict[str, Any] | None] = {}
        for version in versions:
            entry = ledger.get(version) if present else None
            rows[version] = entry.model_dump(mode="json", include=set(LEDGER_FIELDS)) if entry else None
    return rows


def render_text(commit: CommitRef, note: StatusNote | None, ledger: dict[str, dict[str, Any] | None] | None) -> str:
    lines = [f"commit {commit.sha}", f"    {commit.summary}", ""]
    if note is None:
        lines.append("no lockgate note on this commit")
        return "\n".join(lines)
    table = [["VERSION", "NAME", "OUTCOME", "DURATION", *(["LEDGER", "LEDGER COMMIT"] if ledger is not None else [])]]
    for m in note.migrations:
        row = [m.version, m.name, m.outcome, f"{m.duration_s:.1f}s" if m.duration_s is not None else "-"]
        if ledger is not None:
            entry = ledger.get(m.version)
            row += [entry["status"], (entry["commit_sha"] or "-")[:12]] if entry else ["(not in ledger)", "-"]
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines += [""] + [f"{m.version}: {m.reason}" for m in note.migrations if m.reason]
    return "\n".join(lines).rstrip()


def render_json(commit: CommitRef, note: StatusNote | None, ledger: dict[str, dict[str, Any] | None] | None) -> str:
    return json.dumps({
        "commit": commit.sha,
        "note": note.model_dump(mode="json", by_alias=True) if note else None,
        "ledger": ledger,
    }, indent=2)


def run(args: argparse.Namespace) -> int:
    settings = config.load(repo=args.repo, branch=args.branch, dsn=args.dsn)
    redactor = redact.from_settings(settings)
    try:
        with held_cache(settings):
            source = Source.from_settings(settings, redactor)
            notes = Notes(source, settings.notes_ref)
            if settings.repo is not None:
                try:
                    source.fetch()
                    notes.fetch()
                except SourceError as exc:
                    print(f"lockgate status: showing the cached state: {exc}", file=sys.stderr)
            commit = source.commit(args.rev or source.branch_ref)
            note = notes.read(commit.sha)
    except (SourceError, CacheBusy, ValueError) as exc:
        raise UsageError(str(exc)) from None
    ledger = None
    if settings.dsn is not None and note is not None:
        ledger = ledger_rows(settings, [m.version for m in note.migrations])
    render = render_json if args.format == "json" else render_text
    print(redactor(render(commit, note, ledger)))
    return 0 if note is None or all(m.outcome in GOOD_OUTCOMES for m in note.migrations) else 1
