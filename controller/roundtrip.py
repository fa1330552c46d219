"""The round trip `lockgate verify-rollback` proves, in a scratch database: for each chosen migration,
after applying every migration before it, up → validate → down → the catalog equals the one before
up → up again → the catalog equals the one after the first up.

Each failure is a finding `path:line:col: LG95x message`; the run stops at the first one, since the
migrations after it build on it.
"""

from __future__ import annotations

from pathlib import Path

from lockgate.controller import snapshot
from lockgate.controller.config import Settings
from lockgate.controller.engine import Engine
from lockgate.controller.outcome import RunResult
from lockgate.controller.scratch import scratch_database
from lockgate.hooks.codes import (
    DOWN_FAILED,
    EARLIER_FAILED,
    GATE_FAILED,
    SCHEMA_NOT_RESTORED,
    UP_AGAIN_DIFFERS,
    UP_AGAIN_FAILED,
    UP_FAILED,
)
from lockgate.hooks.errors import Problem
from lockgate.hooks.migrationset import Migration


def _at(where: str | None, fallback: Path) -> tuple[Path, int, int]:
    """`path:line:col` from an outcome, read with the real file path when it is only a name."""
    if where is None:
        return fallback, 1, 1
    path, line, column = where.rsplit(":", 2)
    return (fallback if Path(path).name == fallback.name else Path(path)), int(line), int(column)


def _finding(code: str, outcome: RunResult, fallback: Path, message: str) -> Problem:
    path, line, column = _at(outcome.where, fallback)
    return Problem(path, line, column, f"{code} {message}: {outcome.reason}")


def _round_trip(engine: Engine, migration: Migration, schema: str) -> Problem | None:
    up = engine.apply(migration)
    if up.status != "applied":
        failed_gate = any(g.passed is False for g in up.validation)
        if failed_gate:
            return _finding(GATE_FAILED, up, migration.validate.path, "validation failed after up")
        return _finding(UP_FAILED, up, migration.up.path, "up failed")
    after_up = snapshot.catalog(engine.conn, ledger_schema=schema)
    # The rollback itself compares the catalog with the snapshot taken right before up.
    down = engine.rollback(migration.version)
    if down.status != "rolled_back":
        code = SCHEMA_NOT_RESTORED if down.schema_restored is False else DOWN_FAILED
        return _finding(code, down, migration.down.path, "down does not undo up")
    again = engine.apply(migration)
    if again.status != "applied":
        return _finding(UP_AGAIN_FAILED, again, migration.up.path, "up fails after down")
    differs = snapshot.diff(after_up, snapshot.catalog(engine.conn, ledger_schema=schema))
    if differs:
        return Problem(migration.up.path, 1, 1, f"{UP_AGAIN_DIFFERS} up after down gives another schema: "
                       + "; ".join(differs))
    return None


def verify(settings: Settings, migrations: list[Migration], chosen: set[str], server_dsn: str | None) -> list[Problem]:
    """Round-trip the chosen migrations in a scratch database; the findings, at most one."""
    last = max((i for i, m in enumerate(migrations) if m.version in chosen), default=-1)
    with scratch_database(server_dsn) as dsn, Engine(settings, dsn) as engine:
        engine.check(migrations[: last + 1])
        for migration in migrations[: last + 1]:
            if migration.version in chosen:
                finding = _round_trip(engine, migration, settings.ledger_schema)
                if finding is not None:
                    return [finding]
                continue
            outcome = engine.apply(migration)
            if outcome.status != "applied":
                return [_finding(EARLIER_FAILED, outcome, migration.up.path, "an earlier migration failed")]
    return []
