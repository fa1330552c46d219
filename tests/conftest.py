"""Real PostgreSQL for every test that needs one, and the git repositories of the sync tests.

A throwaway cluster is started once per test session (or LOCKGATE_TEST_DSN names an existing
server), a template database is made once, and each test gets its own clone of it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lockgate.controller import config
from lockgate.controller.pgserver import PostgresServer, create_database, drop_database
from tests.gitrepos import Clone, Origin
from tests.syncsetup import ITEMS, V1

TEMPLATE = "lockgate_test_template"
_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the long fault-injection tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long run: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class Server:
    """The server under test: its admin DSN and, when we started it, the process handle."""

    def __init__(self, admin_dsn: str, process: PostgresServer | None) -> None:
        self.admin_dsn = admin_dsn
        self.process = process


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    external = os.environ.get("LOCKGATE_TEST_DSN")
    if external:
        yield Server(external, None)
        return
    server = PostgresServer().start()
    try:
        yield Server(server.dsn(), server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server: Server) -> str:
    drop_database(pg_server.admin_dsn, TEMPLATE)
    create_database(pg_server.admin_dsn, TEMPLATE)
    return TEMPLATE


@pytest.fixture
def db(pg_server: Server, pg_template: str) -> Iterator[str]:
    """DSN of a fresh database of this test's own, cloned from the template."""
    name = f"lockgate_test_{os.getpid()}_{next(_counter)}"
    dsn = create_database(pg_server.admin_dsn, name, template=pg_template)
    yield dsn
    drop_database(pg_server.admin_dsn, name)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db, autocommit=True) as connection:
        yield connection


# -- a bare origin, the developer's clone and sync settings, for the end-to-end sync tests ----------


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin.create(tmp_path)


@pytest.fixture
def dev(origin: Origin) -> Clone:
    """The developer's clone, having pushed V1 (the `items` table) to origin."""
    clone = origin.clone("dev")
    clone.add_migration(V1, "create_items", **ITEMS)
    clone.push()
    return clone


@pytest.fixture
def settings(origin: Origin, db: str, tmp_path: Path) -> config.Settings:
    return config.load(repo=origin.url, cache_dir=tmp_path / "cache", dsn=db)
