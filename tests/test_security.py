"""Secrets stay secret, and only approved commits are applied.

The leak test runs the commands a user runs (sync, status, plan, verify-rollback, apply, and two
that fail to connect) with a real password on a real PostgreSQL role, a git token and a forge
token, and captures everything they emit: stdout and stderr at the file-descriptor level, every log
record at DEBUG, the notes on origin, the requests a fake forge and a fake Kubernetes API server
received, the ledger, the cache clone's git config. No secret may appear in any of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import psycopg
import pytest
from kmock import KubernetesEmulator, Server
from kubernetes.client import ApiClient, Configuration
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lockgate.controller import cli, config, kube, sync
from lockgate.controller.gitauth import TOKEN_USER
from lockgate.controller.redact import basic_auth
from tests.clirun import lockgate
from tests.gitrepos import Clone, Origin
from tests.loopbackhttp import serving_posts, serving_repository
from tests.syncsetup import NOTE, V1, V2, V3, columns, merged, notes_seen_from_a_fresh_clone

PASSWORD = "Pw-leak-7f3a9c"
GIT_TOKEN = "gitTok-leak-51d2e8"
FORGE_TOKEN = "ghp_leakForge93b1c"
SECRETS = (PASSWORD, GIT_TOKEN, FORGE_TOKEN, basic_auth(TOKEN_USER, GIT_TOKEN))
EMPTY_GATE = {  # its gate fails on an empty table, so the failure paths run too
    "up": "ALTER TABLE items ADD COLUMN flag boolean;\n",
    "down": "ALTER TABLE items DROP COLUMN flag;\n",
    "validate": "-- Gate: there are items.\nSELECT count(*) > 0 AS has_items FROM items;\n",
}
POD = kube.Pod(namespace="shop", name="lockgate-sync-1")


# -- the places output goes --------------------------------------------------------------------


@dataclass
class Forge:
    """A GitHub API on loopback recording every request; the first answer echoes the token back."""

    url: str = ""
    requests: list[tuple[str, dict[str, str], str]] = field(default_factory=list)


@pytest.fixture
def forge() -> Iterator[Forge]:
    recorded = Forge()

    def answer(path: str, headers: Message, body: bytes) -> tuple[int, bytes]:
        recorded.requests.append((path, dict(headers), body.decode()))
        first = len(recorded.requests) == 1
        payload = json.dumps({"message": f"Bad credentials: {FORGE_TOKEN}"} if first else {}).encode()
        return 401 if first else 201, payload

    with serving_posts(answer) as url:
        recorded.url = url
        yield recorded


@contextmanager
def kube_api() -> Iterator[tuple[KubernetesEmulator, str]]:
    """kmock's fake API server (and its URL) on its own event loop in a thread, so the commands
    can run in the main thread (they install signal handlers) while it answers."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with KubernetesEmulator() as handler, Server(handler) as server:
            box["handler"], box["url"] = handler, str(server.url).rstrip("/")
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["handler"], box["url"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


@pytest.fixture
def app_role(pg_server: Any, db: str) -> Iterator[str]:
    """A login role with a password, the way production connects; dropped with what it owns."""
    name = "lockgate_leak_check"
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(PASSWORD)))
    yield name
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def url_dsn(dsn: str, user: str, password: str, port: str | None = None) -> str:
    parts = conninfo_to_dict(dsn)
    host, port = parts.get("host", "localhost"), port or parts.get("port", 5432)
    return f"postgresql://{user}:{password}@{host}:{port}/{parts['dbname']}"


@contextmanager
def served_over_http(origin: Origin) -> Iterator[tuple[str, list[str | None]]]:
    """Origin over git's dumb HTTP protocol, answering only requests that carry GIT_TOKEN; the
    Authorization headers seen. A post-update hook keeps the served ref list current."""
    hook = origin.path / "hooks" / "post-update"
    hook.write_text("#!/bin/sh\nexec git update-server-info\n")
    hook.chmod(0o755)
    with serving_repository(origin, f"Basic {basic_auth(TOKEN_USER, GIT_TOKEN)}") as served:
        yield served


def every_note(origin: Origin) -> str:
    repo = origin.repo
    listing = repo.git.notes("--ref=lockgate", "list") if repo.git.for_each_ref("refs/notes/lockgate") else ""
    return "\n".join(repo.git.notes("--ref=lockgate", "show", line.split()[1]) for line in listing.splitlines())


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


# -- the leak test -----------------------------------------------------------------------------


def test_no_secret_appears_anywhere_a_command_writes(
    origin: Origin, dev: Clone, app_role: str, db: str, conn: psycopg.Connection, forge: Forge, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    merged(dev, "note", V2, "add_note", NOTE)
    merged(dev, "flag", V3, "add_flag", EMPTY_GATE)
    keyword_dsn = make_conninfo(db, user=app_role, password=PASSWORD)
    with_password = url_dsn(db, app_role, PASSWORD)
    closed = str(aiohttp.test_utils.unused_port())
    for key, value in {
        "LOCKGATE_DSN": keyword_dsn, "LOCKGATE_REPO": origin.url, "LOCKGATE_GIT_TOKEN": GIT_TOKEN,
        "LOCKGATE_CACHE_DIR": str(tmp_path / "cache"), "LOCKGATE_GITHUB_TOKEN": FORGE_TOKEN,
        "LOCKGATE_GITHUB_API_URL": forge.url, "LOCKGATE_GITHUB_REPOSITORY": "acme/shop",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    migrations = str(dev.path / "migrations")
    with served_over_http(origin) as (http_url, authorizations), kube_api() as (events, events_url):
        runs = [
            ["sync"],
            ["status", "--dsn", with_password],
            ["plan", "--dir", migrations, "--dsn", with_password],
            ["verify-rollback", "--dir", migrations, "--dsn", with_password],
            ["apply", "--dir", migrations, "--dsn", with_password],
            ["sync", "--repo", http_url],  # the token in use: the server answers nothing without it
            ["plan", "--dir", migrations, "--dsn", url_dsn(db, app_role, PASSWORD, port=closed)],
            ["sync", "--repo", f"https://{TOKEN_USER}:{GIT_TOKEN}@127.0.0.1:{closed}/acme/shop.git"],
        ]
        monkeypatch.setattr(kube, "recorder_from_environment", lambda redact=None, **_: kube.ClusterEventRecorder(
            ApiClient(Configuration(host=events_url)), POD, redact))
        codes = [cli.main(argv) for argv in runs]
        posted = [json.dumps(request.data) for request in events]

    out, err = capfd.readouterr()
    # The runs did what they should, so the places searched hold their output.
    assert codes == [1, 1, 0, 1, 1, 1, 2, 2], err
    assert authorizations and set(authorizations) == {f"Basic {basic_auth(TOKEN_USER, GIT_TOKEN)}"}
    assert columns(conn, "items") == ["id", "qty", "note"]
    assert f"{V3}_add_flag failed" in every_note(origin)
    assert len(posted) == 3 and len(forge.requests) == 3
    assert err.count("holds a password") == 5 and err.count("holds credentials") == 1
    assert "cannot connect to the database" in err and "git fetch failed" in err
    # Tokens travel only in the headers meant for them.
    for path, headers, body in forge.requests:
        assert headers["Authorization"] == f"Bearer {FORGE_TOKEN}"
        assert not leaks(path + body)
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    ledger = "\n".join(map(str, conn.execute("SELECT m::text FROM lockgate.migrations AS m").fetchall()
                           + conn.execute("SELECT e::text FROM lockgate.events AS e").fetchall()))
    places = {
        "stdout": out, "stderr": err, "logs": logs, "notes": every_note(origin), "events": "\n".join(posted),
        "ledger": ledger, "cache git config": (tmp_path / "cache" / "repo.git" / "config").read_text(),
    }
    assert {name: leaks(text) for name, text in places.items() if leaks(text)} == {}
    assert sum(len(text) for text in places.values()) > 5000  # there was plenty to search


# -- secrets on the command line ---------------------------------------------------------------


@pytest.mark.parametrize(("argv", "names"), [
    (["plan", "--dsn", f"postgresql://app:{PASSWORD}@db.internal/shop"], "LOCKGATE_DSN (or PGPASSWORD)"),
    (["apply", f"--dsn=host=db.internal user=app password={PASSWORD}"], "LOCKGATE_DSN (or PGPASSWORD)"),
    (["status", "--repo", f"https://{GIT_TOKEN}@git.example.com/acme/shop.git"], "LOCKGATE_GIT_TOKEN"),
    (["verify-rollback", "--github-token", FORGE_TOKEN], "LOCKGATE_GITHUB_TOKEN"),
])
def test_a_secret_on_the_command_line_draws_one_warning_naming_the_variable(
    argv: list[str], names: str, tmp_path: Path
) -> None:
    result = lockgate(*argv, cwd=tmp_path)

    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert names in warnings[0] and "from a Secret" in warnings[0]
    assert not leaks(result.stdout + result.stderr)


def test_no_warning_without_a_secret_on_the_command_line() -> None:
    assert cli.secret_warnings(["plan", "--dsn", "host=db user=app dbname=shop", "--dir", "migrations"]) == []
    assert cli.secret_warnings(["sync", "--repo", "ssh://git@example.com/acme/shop.git"]) == []
    assert cli.secret_warnings(["sync", "--repo", "/srv/git/shop.git", "--branch", "main"]) == []


def test_the_readme_configures_secrets_through_the_environment() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    configuration = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for variable in ("LOCKGATE_DSN", "LOCKGATE_GIT_TOKEN"):
        assert variable in configuration
    assert "secretKeyRef" in configuration or "Secret" in configuration


# -- only approved commits -----------------------------------------------------------------------


def test_a_migration_whose_files_do_not_match_lockgate_sum_is_refused(
    origin: Origin, dev: Clone, db: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    dev.add_migration(V2, "add_note", **NOTE)
    # Edited after `lockgate hash`, committed without the hooks: the sum no longer vouches for it.
    tampered = dev.commit_files(
        {f"migrations/{V2}_add_note.up.sql": NOTE["up"] + "ALTER TABLE items ADD COLUMN sneaky text;\n"},
        "tweak after review",
    )
    dev.push()
    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", dsn=db)

    result = sync.run(settings, say=lambda _: None)

    assert result.exit_code == 1
    assert columns(conn, "items") == ["id", "qty"]
    assert conn.execute("SELECT version FROM lockgate.migrations").fetchall() == [(V1,)]
    # The note goes on the commit that broke the sum, where its author looks.
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, tampered)
    assert text.startswith(
        f"lockgate: {V2}_add_note refused: migrations/{V2}_add_note.up.sql:1:1: "
        f"{V2}_add_note.up.sql was edited after `lockgate hash`"
    )
