"""Fixtures of the reliability tests: scenario databases cloned from templates, and the tally."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockgate.controller.pgserver import create_database, drop_database

from .harness import Fingerprint, Tally, apply, fingerprint
from .scenarios import Scenario, scenarios

TALLY = Tally()
_names = itertools.count()


class Lab:
    """Scenario databases: a template prepared once per session, a clone per run."""

    def __init__(self, admin_dsn: str, folder: Path) -> None:
        self.admin_dsn = admin_dsn
        self.folder = folder
        self.scenarios = scenarios(lambda name: folder / f"template-{name}")
        self.templates: dict[str, str] = {}
        self.references: dict[str, Fingerprint] = {}
        self.created: list[str] = []

    def _database(self, template: str | None = None) -> tuple[str, str]:
        name = f"lockgate_rel_{os.getpid()}_{next(_names)}"
        dsn = create_database(self.admin_dsn, name, template=template)
        self.created.append(name)
        return name, dsn

    def clone(self, scenario: Scenario) -> str:
        if scenario.name not in self.templates:
            name, dsn = self._database()
            scenario.prepare(dsn)
            self.templates[scenario.name] = name
        return self._database(self.templates[scenario.name])[1]

    def directory(self, scenario: Scenario) -> Path:
        folder = self.folder / f"dir-{next(_names)}"
        folder.mkdir()
        return scenario.write(folder)

    def reference(self, scenario: Scenario) -> Fingerprint:
        """The fingerprint of one uninterrupted `lockgate apply`."""
        if scenario.name not in self.references:
            dsn = self.clone(scenario)
            result = apply(self.directory(scenario), dsn)
            assert result.returncode == scenario.exit_code, result.stdout + result.stderr
            self.references[scenario.name] = fingerprint(dsn, scenario.tables)
        return self.references[scenario.name]

    def close(self) -> None:
        for name in self.created:
            drop_database(self.admin_dsn, name)


@pytest.fixture(scope="session")
def lab(pg_server: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    laboratory = Lab(pg_server.admin_dsn, tmp_path_factory.mktemp("reliability"))  # type: ignore[attr-defined]
    try:
        yield laboratory
    finally:
        laboratory.close()


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.tried:
        terminalreporter.write_sep("-", "reliability tally")
        for line in TALLY.lines():
            terminalreporter.write_line(line)
