"""Each fleet target's state per migration, read from the target's own ledger (`lockgate status --fleet`).

The state is the lifecycle's, of the target's ledger row and the migration's files at the commit
shown. A target whose ledger cannot be read (its database unreachable, its `dsn_env` unset) is
one entry saying why, and the others are still read: a status is most wanted when something is down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg

from lockgate.controller import db, lifecycle
from lockgate.controller.config import Settings
from lockgate.controller.fleet.config import Target
from lockgate.controller.ledger import Ledger
from lockgate.controller.redact import Redactor
from lockgate.hooks.errors import UsageError
from lockgate.hooks.migrationset import Migration

# Ledgers read at once: a fleet of a hundred answers in the time of a dozen round trips.
READERS = 8


@dataclass(frozen=True, slots=True)
class TargetStates:
    name: str
    states: dict[str, lifecycle.State] = field(default_factory=dict)  # version → state
    error: str = ""  # why its ledger could not be read

    def described(self, version: str) -> str:
        """The state of `version` in a plan's words."""
        return lifecycle.describe(self.states[version], version)


def read(
    settings: Settings, targets: Sequence[Target], migrations: Mapping[str, Migration | None],
) -> list[TargetStates]:
    """Every target's state of each of `migrations` (version → files at the commit, None when gone), in fleet order."""
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="fleet-status") as pool:
        return list(pool.map(lambda target: _read(settings, target, migrations), targets))


def _read(settings: Settings, target: Target, migrations: Mapping[str, Migration | None]) -> TargetStates:
    try:
        with db.connect(target.resolve_dsn(), application_name="lockgate status") as conn:
            entries = Ledger(conn, settings.ledger_schema).entries()
    except UsageError as exc:  # the connection refused, with credentials scrubbed
        return TargetStates(target.name, error=str(exc))
    except psycopg.Error as exc:  # reached, but the ledger cannot be read (permissions, a dropped schema)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        return TargetStates(target.name, error=f"cannot read the ledger: {Redactor()(first)}")
    return TargetStates(target.name, {v: lifecycle.state_of(entries.get(v), m) for v, m in migrations.items()})
