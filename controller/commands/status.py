"""`lockgate status [REV]`: the lockgate note on a commit and, with a DSN, the ledger beside it;
with a fleet, each target's state of the note's migrations beside the note's word for it.

REV defaults to the head of the configured branch. With `--repo` the controller's cache clone is
fetched first (branch and notes); without it the repository around the working directory is read
as it is. Exit code 1 when a migration on the commit failed, was refused or is dirty, or when a
fleet target's ledger could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from lockgate.controller import config, redact
from lockgate.controller.cache import CacheBusy
from lockgate.controller.commands.common import add_dsn, add_fleet, add_format, add_repo
from lockgate.controller.source import CommitRef, Source, SourceError, held_cache
from lockgate.controller.status import Notes, StatusNote
from lockgate.hooks.errors import UsageError

if TYPE_CHECKING:  # a status without a database or fleet pays for neither psycopg nor YAML
    from lockgate.controller.fleet.config import Fleet
    from lockgate.controller.fleet.states import TargetStates
    from lockgate.hooks.migrationset import Migration

LEDGER_FIELDS = ("status", "commit_sha", "finished_at", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rev", nargs="?", help="commit, branch or tag (default: the branch head)")
    add_repo(parser)
    add_dsn(parser)
    add_fleet(parser)
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


def _noted(note: StatusNote, name: str) -> dict[str, str]:
    """Version → the note's word for the target (`-` where its record does not list it)."""
    return {m.version: next((t.outcome for t in m.targets if t.name == name), "-") for m in note.migrations}


def render_targets_text(note: StatusNote, targets: list[TargetStates]) -> str:
    """One line per target and migration: the note's word and the state its ledger holds now."""
    table = [["TARGET", "VERSION", "NOTE", "LEDGER"]]
    unread: list[str] = []
    for target in targets:
        if target.error:
            unread.append(f"{target.name}: unreachable: {target.error}")
            continue
        noted = _noted(note, target.name)
        table += [[target.name, m.version, noted[m.version].replace("_", " "), target.described(m.version)]
                  for m in note.migrations]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join(lines + unread)


def targets_json(note: StatusNote, targets: list[TargetStates]) -> list[dict[str, Any]]:
    shown = []
    for target in targets:
        noted = _noted(note, target.name)
        shown.append({"name": target.name, "error": target.error or None, "migrations": {
            version: {"note": noted[version], "state": str(state), "detail": target.described(version)}
            for version, state in target.states.items()
        }})
    return shown


def render_json(
    commit: CommitRef, note: StatusNote | None, ledger: dict[str, dict[str, Any] | None] | None,
    targets: list[TargetStates] | None,
) -> str:
    shown: dict[str, Any] = {
        "commit": commit.sha,
        "note": note.model_dump(mode="json", by_alias=True) if note else None,
        "ledger": ledger,
    }
    if note is not None and targets is not None:
        shown["targets"] = targets_json(note, targets)
    return json.dumps(shown, indent=2)


def fleet_files(
    fleet: Fleet | None, source: Source, commit: CommitRef, note: StatusNote | None,
) -> dict[str, Migration | None] | None:
    """With a fleet, the files of the note's migrations as at `commit`, to read each target's state of them."""
    if fleet is None or note is None:
        return None
    with source.migrations_at(commit.sha, require_triples=False) as tree:
        files = tree.migrations.by_version()
    return {m.version: files.get(m.version) for m in note.migrations}


def run(args: argparse.Namespace) -> int:
    settings = config.load(repo=args.repo, branch=args.branch, dsn=args.dsn, fleet=args.fleet)
    fleet = None
    if settings.fleet is not None:  # a bad fleet file is bad input before anything is fetched
        from lockgate.controller.fleet import config as fleet_config

        fleet = fleet_config.of_settings(settings)
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
            files = fleet_files(fleet, source, commit, note)
    except (SourceError, CacheBusy, ValueError) as exc:
        raise UsageError(str(exc)) from None
    targets = None
    if fleet is not None and files is not None:
        from lockgate.controller.fleet import states

        # Read once the repository cache is let go: slow or unreachable databases must not keep a sync waiting.
        targets = states.read(settings, fleet.targets, files)
    ledger = None
    if settings.dsn is not None and note is not None:
        ledger = ledger_rows(settings, [m.version for m in note.migrations])
    if args.format == "json":
        shown = render_json(commit, note, ledger, targets)
    else:
        shown = render_text(commit, note, ledger)
        if note is not None and targets is not None:
            shown += "\n\n" + render_targets_text(note, targets)
    print(redactor(shown))
    unread = targets is not None and any(t.error for t in targets)
    return 0 if not unread and (note is None or all(m.outcome.good for m in note.migrations)) else 1
