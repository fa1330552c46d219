"""Outcomes as git notes under `refs/notes/lockgate`, on the commit that brought (or reverted) a
migration, pushed to origin so `git log --notes=lockgate` shows them wherever the repo is cloned.

A note is one human summary line per migration, a blank line, then a JSON record (`schema: 1`)
that tools can read. Several migrations brought by one commit share its note: writing one
migration's outcome replaces that entry and keeps the others.

Pushing never loses a status: a rejected push (someone else pushed notes) fetches the remote notes,
merges them entry by entry, and tries again; if every attempt fails the note stays in the local
notes ref and the next sync pushes it.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import git
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lockgate.controller.outcome import GateResult, Outcome
from lockgate.controller.source import REMOTE, Source, SourceError, ref_exists
from lockgate.hooks.version import lockgate_version

log = logging.getLogger(__name__)

SCHEMA: Literal[1] = 1
PUSH_ATTEMPTS = 5
SUMMARY_PREFIX = "lockgate: "
# Notes are written by the controller, whoever configured the repository it runs in.
_NOTES_IDENTITY = {
    "GIT_AUTHOR_NAME": "lockgate",
    "GIT_AUTHOR_EMAIL": "lockgate@localhost",
    "GIT_COMMITTER_NAME": "lockgate",
    "GIT_COMMITTER_EMAIL": "lockgate@localhost",
}

class TargetRecord(BaseModel):
    """One fleet target's part in a migration's outcome."""

    model_config = ConfigDict(frozen=True)

    name: str
    outcome: Outcome
    reason: str = ""
    duration_s: float | None = None


class MigrationRecord(BaseModel):
    """What happened to one migration on this commit (on every target of a fleet when `targets`)."""

    model_config = ConfigDict(frozen=True)

    version: str
    name: str
    outcome: Outcome
    reason: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    rows_before: dict[str, int] = Field(default_factory=dict)
    rows_after: dict[str, int] = Field(default_factory=dict)
    validation: list[GateResult] = Field(default_factory=list)
    controller_version: str = Field(default_factory=lockgate_version)
    targets: list[TargetRecord] = Field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.version}_{self.name}"


class StatusNote(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal[1] = Field(default=SCHEMA, validation_alias="schema", serialization_alias="schema")
    migrations: list[MigrationRecord] = Field(default_factory=list)

    def with_record(self, record: MigrationRecord) -> StatusNote:
        """This note with `record` replacing the entry for its version (others kept, version order)."""
        entries = {m.version: m for m in self.migrations} | {record.version: record}
        return StatusNote(migrations=[entries[v] for v in sorted(entries, key=int)])

    def merged(self, other: StatusNote) -> StatusNote:
        """Both notes' entries; for a version in both, the one that finished last (ours on a tie)."""
        note = other
        for record in self.migrations:
            theirs = next((m for m in other.migrations if m.version == record.version), None)
            if theirs is None or _finished(record) >= _finished(theirs):
                note = note.with_record(record)
        return note


def _finished(record: MigrationRecord) -> float:
    return record.finished_at.timestamp() if record.finished_at else float("-inf")


def summary_line(record: MigrationRecord) -> str:
    """`lockgate: 20240115093000_add_customer_tier applied in 12.3s (validation 3/3 passed)`."""
    text = f"{SUMMARY_PREFIX}{record.id} {record.outcome.words}"
    if record.targets:
        return f"{SUMMARY_PREFIX}{record.id} {fleet_summary(record)}"
    if record.duration_s is not None:
        text += f" in {record.duration_s:.1f}s" if record.outcome != "failed" else f" after {record.duration_s:.1f}s"
    if record.validation:
        passed = sum(g.passed is True for g in record.validation)
        text += f" (validation {passed}/{len(record.validation)} passed)"
    if record.reason:
        text += ": " + " ".join(record.reason.split())
    return text


def fleet_summary(record: MigrationRecord) -> str:
    """`applied on 3/4 targets: failed: tenant-002 (...); not started: tenant-003`."""
    goal = Outcome.ROLLED_BACK if record.outcome == Outcome.ROLLED_BACK or any(
        t.outcome == Outcome.ROLLED_BACK for t in record.targets) else Outcome.APPLIED
    if record.outcome == Outcome.REFUSED:
        text = "refused"
    else:
        done = sum(t.outcome == goal for t in record.targets)
        text = f"{goal.words} on {done}/{len(record.targets)} targets"
    return text + (": " + " ".join(record.reason.split()) if record.reason else "")


def render(note: StatusNote) -> str:
    lines = [summary_line(m) for m in note.migrations]
    body = note.model_dump_json(by_alias=True, indent=2)
    return "\n".join(lines) + "\n\n" + body + "\n"


def parse(text: str) -> StatusNote:
    """The record in a note's text; ValueError when the note is not one lockgate wrote."""
    start = text.find("\n{")
    body = text[start + 1:] if start >= 0 else text
    try:
        return StatusNote.model_validate(json.loads(body))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"not a lockgate status note: {str(exc).splitlines()[0]}") from None


@dataclass(frozen=True, slots=True)
class PushResult:
    pushed: bool
    attempts: int
    error: str = ""


class Notes:
    """The status notes of a Source's repository: read, write locally, and push to origin."""

    def __init__(self, source: Source, ref: str = "refs/notes/lockgate") -> None:
        if not ref.startswith("refs/notes/"):
            raise ValueError(f"notes ref {ref!r} must be under refs/notes/")
        self.source = source
        self.ref = ref
        # Where the remote's notes are fetched to; under refs/notes/ so `git notes merge` takes it.
        self.remote_ref = f"refs/notes/{REMOTE}/{ref.removeprefix('refs/notes/')}"

    def _git(self, *args: str) -> str:
        return self.source.git(*args, env=_NOTES_IDENTITY)

    def _show(self, ref: str, sha: str) -> str | None:
        try:
            return str(self.source.repo.git.notes(f"--ref={ref}", "show", sha))
        except git.GitCommandError:
            return None

    def read(self, rev: str) -> StatusNote | None:
        """The note on `rev`, or None when it has none (or only a note lockgate did not write)."""
        text = self._show(self.ref, self.source.resolve(rev))
        if text is None:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            log.warning("%s: %s", rev, exc)
            return None

    def read_many(self, shas: Iterable[str]) -> dict[str, StatusNote]:
        """The notes lockgate wrote on these commits (full shas), in two git calls whatever their number."""
        if not ref_exists(self.source.repo, self.ref):
            return {}
        noted = self._noted(self.ref)
        blobs = {sha: noted[sha] for sha in shas if sha in noted}
        texts = self.source.read_blobs(blobs.values())
        notes: dict[str, StatusNote] = {}
        for sha, blob in blobs.items():
            try:
                notes[sha] = parse(texts[blob].decode())
            except (ValueError, KeyError) as exc:
                log.warning("%s: %s", sha, exc)
        return notes

    def text(self, rev: str) -> str | None:
        """The note on `rev` as git shows it."""
        return self._show(self.ref, self.source.resolve(rev))

    def record(self, sha: str, record: MigrationRecord) -> StatusNote:
        """Write `record` into the note on `sha` in the local notes ref; secrets are masked."""
        redact = self.source.redact
        record = record.model_copy(update={
            "reason": redact(record.reason),
            "validation": [g.model_copy(update={"detail": redact(g.detail)}) for g in record.validation],
        })
        note = (self.read(sha) or StatusNote()).with_record(record)
        self._write(self.ref, sha, render(note))
        return note

    def _write(self, ref: str, sha: str, text: str) -> None:
        # `-C <blob>` stores the text byte for byte; `-m` would reflow it.
        with tempfile.TemporaryFile() as stdin:
            stdin.write(text.encode())
            stdin.seek(0)
            blob = str(self.source.repo.git.hash_object("-w", "--stdin", istream=stdin)).strip()
        self._git("notes", f"--ref={ref}", "add", "--force", "-C", blob, sha)

    def fetch(self) -> None:
        """Fetch origin's notes and merge them into the local notes ref, entry by entry."""
        # The pattern matches the ref exactly or not at all, so a remote without notes is no error.
        self.source.git("fetch", "--quiet", "--no-tags", REMOTE, f"+{self.ref}*:{self.remote_ref}*")
        if not ref_exists(self.source.repo, self.remote_ref):
            return
        if not ref_exists(self.source.repo, self.ref):
            self.source.git("update-ref", self.ref, self.remote_ref)
            return
        ours = self._noted(self.ref)
        theirs = self._noted(self.remote_ref)
        self._git("notes", f"--ref={self.ref}", "merge", "--quiet", "--strategy=ours", self.remote_ref)
        for sha in ours.keys() & theirs.keys():
            if ours[sha] != theirs[sha]:
                self._merge_entry(sha)

    def _merge_entry(self, sha: str) -> None:
        mine, other = self._show(self.ref, sha), self._show(self.remote_ref, sha)
        try:
            note = parse(mine or "").merged(parse(other or ""))
        except ValueError as exc:
            log.warning("notes on %s not merged, kept ours: %s", sha, exc)
            return
        self._write(self.ref, sha, render(note))

    def _noted(self, ref: str) -> dict[str, str]:
        """Annotated commit → note blob sha."""
        output = str(self.source.repo.git.notes(f"--ref={ref}", "list"))
        return {obj: blob for blob, obj in (line.split() for line in output.splitlines())}

    def push(self, attempts: int = PUSH_ATTEMPTS) -> PushResult:
        """Push the notes ref to origin, merging in what others pushed meanwhile; never raises."""
        if not ref_exists(self.source.repo, self.ref):
            return PushResult(True, 0)
        error = ""
        for attempt in range(1, attempts + 1):
            try:
                self.source.git("push", "--quiet", REMOTE, f"{self.ref}:{self.ref}")
                return PushResult(True, attempt)
            except SourceError as exc:
                error = str(exc)
            if attempt < attempts:
                try:
                    self.fetch()
                except SourceError as exc:
                    log.info("notes not merged before retrying the push: %s", exc)
        log.warning("notes kept locally, the next sync pushes them: %s", error)
        return PushResult(False, attempts, error)
