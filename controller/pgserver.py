"""A throwaway PostgreSQL cluster from the machine's own initdb/pg_ctl.

Used by the test suite and by `lockgate demo`. PostgreSQL refuses to run as root, so when
lockgate runs as root the server runs as the distribution's `postgres` user via runuser.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from lockgate.hooks.errors import UsageError

SERVER_USER = "postgres"


def find_bindir() -> Path:
    """Where initdb and pg_ctl live: pg_config, then /usr/lib/postgresql/*/bin, then PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))[::-1]
    ]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise UsageError(
        "no PostgreSQL server found (initdb/pg_ctl); install it, e.g. apt-get install postgresql"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_major(bindir: Path) -> int:
    """The major version of the server build in `bindir`, from `pg_ctl --version` ("pg_ctl (PostgreSQL) 18.6")."""
    out = subprocess.run([str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1].split(".")[0])


class PostgresServer:
    """initdb + pg_ctl start on 127.0.0.1 and a free port; `stop()` removes everything.

    `bindir` names the server build to run; by default the machine's own (`find_bindir`).
    """

    def __init__(self, *, settings: dict[str, str] | None = None, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="lockgate-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = 0
        self.as_root = os.geteuid() == 0
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "timezone": "UTC",
            **(settings or {}),
        }

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def _checked(self, *args: str) -> None:
        out = self._run(*args)
        if out.returncode != 0:
            log = self.logfile.read_text()[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {out.stderr.strip()}\n{log}")

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, SERVER_USER)
        self._make_datadir()
        for attempt in range(5):
            self.port = free_port()
            try:
                self._pg_ctl_start()
                return self
            except RuntimeError:
                if attempt == 4:
                    raise
        return self

    def _make_datadir(self) -> None:
        self._checked(
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
        )

    def _pg_ctl_start(self) -> None:
        options = " ".join(f"-c {k}={v}" for k, v in {**self.settings, "port": str(self.port)}.items())
        self._checked(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
            "-o", options, "-w", "-t", "60", "start",
        )

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port (for fault tests)."""
        self._checked(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")
        self._pg_ctl_start()

    def stop(self) -> None:
        if self.datadir.exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def with_dbname(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE (optionally from a template); returns its DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(query)
    return with_dbname(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        version = conn.info.server_version
        force = sql.SQL(" WITH (FORCE)") if version >= 130000 else sql.SQL("")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)


@contextmanager
def throwaway_server() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
