"""A scratch database for trying migrations: on the target's server, or a throwaway server.

Created and dropped by lockgate; its name is random so parallel runs never meet.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from lockgate.controller import pgserver


@contextmanager
def scratch_database(server_dsn: str | None) -> Iterator[str]:
    """Yield the DSN of an empty database, dropped afterwards.

    With `server_dsn`, the database is made on that server (the role needs CREATEDB);
    without, on a throwaway server started from the machine's own PostgreSQL binaries.
    """
    if server_dsn is None:
        with pgserver.throwaway_server() as server, scratch_database(server.dsn()) as dsn:
            yield dsn
        return
    name = f"lockgate_scratch_{secrets.token_hex(6)}"
    dsn = pgserver.create_database(server_dsn, name)
    try:
        yield dsn
    finally:
        pgserver.drop_database(server_dsn, name)
