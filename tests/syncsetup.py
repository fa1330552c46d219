"""What the end-to-end sync tests share: the migrations they merge, a pass of `lockgate sync`, and
the ways they look at its outcome (the database, the ledger, the notes a fresh clone of origin
shows). The `origin`, `dev` and `settings` fixtures that go with them are in tests/conftest.py."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from kmock import KubernetesEmulator
from kubernetes.client import ApiClient, Configuration

from lockgate.controller import config, sync
from lockgate.controller.kube import ClusterEventRecorder, EventRecorder, Pod
from lockgate.controller.status import parse
from tests.gitrepos import Clone, Origin

V1, V2, V3, V4 = "20240101000000", "20240102000000", "20240103000000", "20240104000000"

ITEMS = {
    "up": "CREATE TABLE items (id bigint PRIMARY KEY, qty int NOT NULL);\n",
    "down": "DROP TABLE items;\n",
    "validate": "-- Gate: the table exists.\nSELECT to_regclass('items') IS NOT NULL AS items_exist;\n",
}
NOTE = {
    "up": "ALTER TABLE items ADD COLUMN note text;\n",
    "down": "ALTER TABLE items DROP COLUMN note;\n",
    "validate": "-- Gate: no notes yet.\nSELECT count(*) = 0 AS no_notes FROM items WHERE note IS NOT NULL;\n",
}


def positive_qty(op: str = ">") -> dict[str, str]:
    """A CHECK added NOT VALID whose gate fails while rows break it (qty 0 breaks `> 0`)."""
    bad = {">": "<=", ">=": "<"}[op]
    return {
        "up": f"ALTER TABLE items ADD CONSTRAINT items_qty_check CHECK (qty {op} 0) NOT VALID;\n",
        "down": "ALTER TABLE items DROP CONSTRAINT items_qty_check;\n",
        "validate": f"-- Gate: every row passes.\nSELECT count(*) = 0 AS qty_ok FROM items WHERE qty {bad} 0;\n",
    }


def run_sync(settings: config.Settings, events: EventRecorder | None = None) -> tuple[int, list[str]]:
    """One pass of `lockgate sync`: its exit code and the lines it said."""
    lines: list[str] = []
    result = sync.run(settings, say=lines.append, events=events)
    return result.exit_code, lines


@contextmanager
def pod_events(kmock: KubernetesEmulator) -> Iterator[ClusterEventRecorder]:
    """Kubernetes Events about the sync's pod, posted to kmock's fake API server."""
    with ApiClient(Configuration(host=str(kmock.url).rstrip("/"))) as client:
        yield ClusterEventRecorder(client, Pod(namespace="shop", name="lockgate-sync-1"))


def merged(dev: Clone, branch: str, version: str, name: str, files: dict[str, str]) -> str:
    """A feature branch with one migration, merged into main with --no-ff and pushed: the merge sha."""
    dev.branch(branch)
    dev.add_migration(version, name, **files)
    dev.switch("main")
    merge = dev.merge_branch(branch)
    dev.push()
    return merge


def notes_seen_from_a_fresh_clone(origin: Origin, tmp_path: Path, sha: str) -> str:
    """What `git log --notes=lockgate` shows for `sha` in a new clone of origin."""
    path = tmp_path / f"observer-{len(list(tmp_path.glob('observer-*')))}"
    subprocess.run(["git", "clone", "--quiet", origin.url, str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*"], check=True)
    out = subprocess.run(
        ["git", "-C", str(path), "log", "--notes=lockgate", "-1", "--format=%N", sha],
        check=True, capture_output=True, text=True,
    )
    return out.stdout


def note_outcomes(origin: Origin, tmp_path: Path, sha: str) -> dict[str, str]:
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, sha)
    return {m.version: m.outcome for m in parse(text).migrations} if text.strip() else {}


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum", (table,),
    ).fetchall()
    return [r[0] for r in rows]


def ledger(conn: psycopg.Connection) -> dict[str, tuple[Any, ...]]:
    rows = conn.execute("SELECT version, status, commit_sha, error FROM lockgate.migrations").fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def events(conn: psycopg.Connection, version: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT event FROM lockgate.events WHERE version = %s ORDER BY id", (version,))]
