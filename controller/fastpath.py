"""The no-op sync's short cut: skip the fetch when nothing changed since a pass left all in sync.

A pass that ends with everything in sync records, in the ledger, a fingerprint of what it saw:
the branch head and the notes ref on the origin, the settings that decide what a pass does, the
lockgate version, and the ledger's last event. The next pass asks the origin for the two refs
(`git ls-remote`) and the ledger for its fingerprint and last event (one query); when all match,
the pass has nothing to do and ends there, without a fetch, a history walk or the applier lock.

Anything that could change the outcome changes the fingerprint, so it takes the full path: a new
commit, a new note (a refusal, a push from elsewhere), `lockgate retry`/`resolve` and every other
ledger write (each writes an event), a changed setting or allowed-signers file, a new lockgate
version. A pass that does not end in sync removes the fingerprint. Any error on the short cut
(an origin that does not answer, no ledger yet) also just takes the full path, which reports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import psycopg
from psycopg import sql

from lockgate.controller import gitauth
from lockgate.controller.config import Settings
from lockgate.hooks.version import lockgate_version

CHECKERS = 8  # a fleet's ledgers asked at once by the no-op check

# What a pass does does not depend on these: where it caches, how long it waits, how it is told.
_NOT_DECISIVE = {
    "dsn", "metrics_push_url", "cache_dir", "cache_wait", "watch_interval", "git_token", "github_token", "gitlab_token",
}


@dataclass(frozen=True, slots=True)
class Seen:
    """The origin's branch head and notes ref (None when absent), as `git ls-remote` tells."""

    head: str | None
    notes: str | None


def settings_key(settings: Settings) -> str:
    """The settings a pass's decisions depend on, as text (secrets and paths to caches left out)."""
    decisive = settings.model_dump(mode="json", exclude=_NOT_DECISIVE)
    if settings.allowed_signers is not None and settings.allowed_signers.is_file():
        decisive["allowed_signers_sha256"] = hashlib.sha256(settings.allowed_signers.read_bytes()).hexdigest()
    return json.dumps(decisive, sort_keys=True)


def fingerprint(seen: Seen, settings: Settings, ledger: str | None, lockgate: str | None = None) -> str:
    """What a pass saw, as one hash; `lockgate` is the running version unless given."""
    parts = [seen.head, seen.notes, settings_key(settings), lockgate or lockgate_version(), ledger]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def look(settings: Settings) -> Seen | None:
    """The origin's head and notes ref, or None when it cannot tell (the full path will say why)."""
    assert settings.repo is not None
    token = settings.git_token.get_secret_value() if settings.git_token else None
    remote = gitauth.remote(settings.repo, token)
    branch = f"refs/heads/{settings.branch}"
    try:
        done = subprocess.run(
            ["git", "ls-remote", "--", remote.url, branch, settings.notes_ref],
            env={**os.environ, **remote.env}, capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    refs = {ref: sha for sha, _, ref in (line.partition("\t") for line in done.stdout.splitlines())}
    return Seen(refs.get(branch), refs.get(settings.notes_ref))


def _names(settings: Settings) -> dict[str, sql.Composable]:
    return {name: sql.Identifier(settings.ledger_schema, name) for name in ("sync_state", "events", "migrations")}


# The ledger's state in one value. Every command writes an event; the rows' digest also catches a
# row changed by hand, and the server version a major upgrade (the rules lint for the server's).
_LEDGER = sql.SQL(
    "(SELECT coalesce(max(id), 0) FROM {events})::text || ':' || "
    "(SELECT coalesce(md5(string_agg(ROW({columns})::text, ';' ORDER BY m.version)), '') "
    "FROM {migrations} AS m) || ':' || "
    "current_setting('server_version_num')"
)
# Every column of a ledger row but `baseline`: each row's baseline is a snapshot of the whole schema,
# so digesting them costs O(migrations²) (1.8 s at 1,000 migrations against 7 ms without); a pass
# reads a baseline only to prove a rollback, which a new head, a retry or a resolve starts.
DIGESTED = ("version", "name", "status", "up_checksum", "down_checksum", "validate_checksum", "up_sql",
            "down_sql", "validate_sql", "commit_sha", "started_at", "finished_at", "steps_done", "validation",
            "schema_restored", "error", "undo_steps_done")


def _ledger_state(settings: Settings) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier("m", c) for c in DIGESTED)
    return _LEDGER.format(columns=columns, **_names(settings))


def ledger(conn: psycopg.Connection, settings: Settings) -> str | None:
    """The ledger's state now, as the fingerprint holds it."""
    row = conn.execute(sql.SQL("SELECT {}").format(_ledger_state(settings))).fetchone()
    return row[0] if row else None


def matches(settings: Settings, conn: psycopg.Connection, seen: Seen) -> bool:
    """Whether the ledger on `conn` (autocommit) holds the fingerprint of a pass that saw `seen` and
    left everything in sync, with nothing written since: one query. A fleet asks it per target."""
    try:
        row = conn.execute(sql.SQL("SELECT s.fingerprint, {} FROM {} AS s").format(
            _ledger_state(settings), _names(settings)["sync_state"],
        )).fetchone()
    except psycopg.Error:
        return False  # no ledger yet, or one older than the short cut: the full pass sets it up
    return row is not None and row[0] == fingerprint(seen, settings, row[1])


def said(head: str) -> str:
    """The line a pass that took the short cut prints."""
    return f"in sync at {head[:12]}: nothing changed since the last pass"


def _matches_at(settings: Settings, seen: Seen, dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, autocommit=True, application_name="lockgate sync (no-op check)") as conn:
            return matches(settings, conn, seen)
    except psycopg.Error:
        return False


def unchanged(settings: Settings, *dsns: str) -> str | None:
    """The head the last in-sync pass saw on every target (a fleet's, or the one database) when
    nothing changed since, else None (take the full path). The origin is asked once; a fleet's
    targets `CHECKERS` at a time, as a connection's cost is mostly waiting for the server."""
    if settings.repo is None:
        return None
    seen = look(settings)
    if seen is None or seen.head is None:
        return None
    with ThreadPoolExecutor(max_workers=CHECKERS, thread_name_prefix="no-op-check") as pool:
        if not all(pool.map(partial(_matches_at, settings, seen), dsns)):
            return None
    return seen.head


def record(conn: psycopg.Connection, settings: Settings, seen: Seen | None, state: str | None = None) -> None:
    """After a full pass: the fingerprint of what it saw (the head it applied, the notes ref it
    pushed) when it left everything in sync, else (`seen` None) none.

    The ledger state recorded must be the pass's, never a `retry` that came after it: call it on
    the pass's own connection, holding the applier lock, after its last ledger write; or give the
    `state` (`ledger`) read there, when the notes are pushed after the lock is let go (a fleet).
    A ledger written since then no longer matches, so the next pass takes the full path.
    """
    names = _names(settings)
    if seen is None or settings.repo is None:
        conn.execute(sql.SQL("DELETE FROM {sync_state}").format(**names))
        return
    conn.execute(
        sql.SQL(
            "INSERT INTO {sync_state} (fingerprint, head) VALUES (%s, %s) ON CONFLICT (singleton) "
            "DO UPDATE SET fingerprint = EXCLUDED.fingerprint, head = EXCLUDED.head, recorded_at = now()"
        ).format(**names),
        (fingerprint(seen, settings, state if state is not None else ledger(conn, settings)), seen.head),
    )
