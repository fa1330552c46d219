"""`lockgate demo`: the whole loop on a throwaway PostgreSQL and a throwaway git repository.

A developer's clone with lockgate's pre-commit hooks, a bare "origin" standing in for GitHub, and
the controller's `lockgate sync` between origin and the database. Each step runs the real
commands (`git`, `pre-commit` through `git commit`, `lockgate`), shows what they print, and checks
that they did what the step says; the demo exits 0 only when every step behaved as expected.

The example migrations are this package's copy of the repository's `migrations/`
(`lockgate/controller/examples`), so the demo runs from any directory.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol, TextIO

import psycopg

from lockgate.controller import status
from lockgate.controller.pgserver import SERVER_USER, PostgresServer, create_database
from lockgate.hooks.errors import UsageError

EXAMPLES = Path(__file__).parent / "examples"
FIRST = "20240101000000_create_customers_and_orders"
TIER = (
    "20240115093000_add_customer_tier",
    "20240115093100_validate_customer_tier_check",
    "20240115093200_index_customers_tier",
)
UNSAFE_INDEX = TIER[2]
CUSTOMERS, ORDERS = 30_000, 75_000
BRANCH = "main"

# The demo's own migration, written to fail its gate: free orders (total 0) get no status.
ORDER_STATUS = "20240201000000_add_order_status"
ORDER_STATUS_FILES = {
    "up": """\
-- Description: Record whether each order was paid

-- Nullable, no default: a catalog-only change.
ALTER TABLE orders ADD COLUMN status text;

-- lockgate:batch size=20000 key=id
UPDATE orders SET status = 'paid' WHERE total_cents > 0;
""",
    "down": """\
-- Description: Remove the order status

ALTER TABLE orders DROP COLUMN status;
""",
    "validate": """\
-- Description: Every order has a status

-- Gate: the backfill reached every order.
SELECT count(*) = 0 AS every_order_has_a_status FROM orders WHERE status IS NULL;
""",
}

SEED = f"""
INSERT INTO customers (email)
SELECT 'customer' || g || '@example.com' FROM generate_series(1, {CUSTOMERS}) AS g;
INSERT INTO orders (customer_id, total_cents)
SELECT 1 + (g * 7919) % {CUSTOMERS}, CASE WHEN g % 100 = 0 THEN 0 ELSE (g * 104729) % 60000 END
FROM generate_series(1::bigint, {ORDERS}) AS g;
ANALYZE customers;
ANALYZE orders;
"""
ORDERS_FINGERPRINT = "SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM orders AS o"


class Unexpected(Exception):
    """A step did not behave as the demo says it does."""


@dataclass(frozen=True, slots=True)
class Ran:
    code: int
    output: str

    def has(self, text: str) -> bool:
        return text in self.output


def tool(name: str) -> str:
    """The executable next to this Python (the same installation), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise UsageError(f"{name} not found next to {sys.executable} or on PATH")
    return found


class Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.steps = 0

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def step(self, title: str) -> None:
        self.steps += 1
        self.line(f"\n{self.steps}. {title}")

    def say(self, text: str) -> None:
        self.line(f"   {text}")

    def shown(self, display: str, ran: Ran, lines: Sequence[str] | None = None) -> None:
        self.line(f"   $ {display}")
        for text in ran.output.splitlines() if lines is None else lines:
            if text.strip():
                self.line(f"     {text}")


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Unexpected(what)


def note_lines(log_output: str) -> list[str]:
    """`git log --notes` output without the note's JSON record, which is for tools, not readers."""
    lines = log_output.splitlines()
    start = next((i for i, text in enumerate(lines) if text.strip().startswith("{")), len(lines))
    shown = lines[:start]
    if start < len(lines):
        shown.append(f"    … and the JSON record for tools ({len(lines) - start} lines)")
    return shown


class World:
    """The throwaway PostgreSQL, origin, developer clone and controller cache under one directory.

    `dsn` is the database the queries go to unless told; `target` the LOCKGATE_* variables that
    name what the controller migrates (one database, or a fleet file).
    """

    def __init__(self, root: Path, server: PostgresServer, dsn: str, target: Mapping[str, str]) -> None:
        self.root = root
        self.server = server
        self.origin = root / "origin.git"
        self.clone = root / "app"
        self.dsn = dsn
        self.lockgate = tool("lockgate")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LOCKGATE_", "GIT_", "PG"))}
        self.env = inherited | {
            "PATH": f"{Path(self.lockgate).parent}{os.pathsep}{inherited.get('PATH', '')}",
            "LOCKGATE_REPO": str(self.origin),
            "LOCKGATE_BRANCH": BRANCH,
            "LOCKGATE_CACHE_DIR": str(root / "controller-cache"),
            "PRE_COMMIT_HOME": str(root / "pre-commit-cache"),
            "GIT_TERMINAL_PROMPT": "0",
            **target,
        }

    def repositories(self) -> int:
        """The bare origin and the developer's clone with the lockgate settings for this server;
        returns the server's major version."""
        major = self.server_major()
        for argv in (["git", "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(self.origin)],
                     ["git", "clone", "--quiet", str(self.origin), str(self.clone)]):
            ran = self.run(argv, cwd=self.root)
            expect(ran.code == 0, f"{' '.join(argv[:2])} failed: {ran.output.strip()}")
        for key, value in (("user.name", "Dana Developer"), ("user.email", "dana@example.com"),
                           ("commit.gpgsign", "false"), ("init.defaultBranch", BRANCH)):
            self.git("config", key, value)
        self.git("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
        (self.clone / "pyproject.toml").write_text(
            f"[tool.lockgate]\ndir = \"migrations\"\ntarget_pg_version = {major}\n"
        )
        return major

    def run(self, argv: Sequence[str], *, cwd: Path | None = None) -> Ran:
        done = subprocess.run(
            list(argv), cwd=cwd or self.clone, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, check=False,
        )
        return Ran(done.returncode, done.stdout)

    def git(self, *args: str) -> Ran:
        ran = self.run(["git", *args])
        expect(ran.code == 0, f"git {' '.join(args)} failed: {ran.output.strip()}")
        return ran

    def commit(self, message: str) -> Ran:
        """`git commit` with the hooks, as a developer runs it."""
        self.git("add", "--all")
        return self.run(["git", "commit", "--quiet", "-m", message])

    def sync(self) -> Ran:
        """The controller's pass, as the CronJob runs it (settings from the environment)."""
        return self.run([self.lockgate, "sync"], cwd=self.root)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").output.strip()

    def query(self, query: str, params: tuple[object, ...] = (), *, on: str | None = None) -> list[tuple[object, ...]]:
        with psycopg.connect(on or self.dsn, autocommit=True) as conn:
            return conn.execute(query.encode(), params).fetchall()

    def execute(self, script: str, *, on: str | None = None) -> None:
        with psycopg.connect(on or self.dsn, autocommit=True) as conn:
            conn.execute(script.encode())

    def server_major(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.info.server_version // 10000

    def columns(self, table: str, *, on: str | None = None) -> list[str]:
        return [str(r[0]) for r in self.query(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", (table,), on=on,
        )]

    def copy_migration(self, migration: str, *, replace: tuple[str, str] | None = None) -> None:
        for kind in ("up", "down", "validate"):
            text = (EXAMPLES / f"{migration}.{kind}.sql").read_text()
            if replace and kind == "up":
                text = text.replace(*replace)
            self.write_migration(migration, kind, text)

    def write_migration(self, migration: str, kind: str, text: str) -> None:
        path = self.clone / "migrations" / f"{migration}.{kind}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def hash(self) -> None:
        ran = self.run([self.lockgate, "hash"])
        expect(ran.code == 0, f"lockgate hash failed: {ran.output.strip()}")

    def merge(self, branch: str, narrator: Narrator) -> str:
        """`branch` merged into main with --no-ff and pushed: the merge commit."""
        self.git("switch", "--quiet", BRANCH)
        self.git("merge", "--quiet", "--no-ff", "-m", f"Merge branch '{branch}'", branch)
        self.git("push", "--quiet", "origin", BRANCH)
        narrator.say(f"$ git merge --no-ff {branch} && git push   (merge commit {self.head()[:12]})")
        return self.head()

    def revert(self, merge: str, narrator: Narrator) -> None:
        """`git revert -m 1 MERGE`, pushed."""
        self.git("revert", "--no-edit", "-m", "1", merge)
        self.git("push", "--quiet", "origin", BRANCH)
        narrator.say(f"$ git revert -m 1 {merge[:12]} && git push   (revert commit {self.head()[:12]})")

    def notes(self) -> list[str]:
        """`git log --notes=lockgate -1` in the developer's clone, after fetching origin's notes."""
        self.git("fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
        return note_lines(self.git("log", "--notes=lockgate", "-1").output)


def precommit_config(lockgate: str) -> str:
    """The throwaway repository's hooks: this same `lockgate`, as `repo: local` hooks."""
    entry = shlex.quote(lockgate)
    return f"""\
repos:
  - repo: local
    hooks:
      - id: lockgate-lint
        name: lockgate lint
        entry: {entry} lint
        language: system
        files: ^migrations/.*\\.sql$
      - id: lockgate-check
        name: lockgate check
        entry: {entry} check
        language: system
        files: ^migrations/
        pass_filenames: false
"""


class Story(Protocol):
    """A demo's steps over its World."""

    def run(self) -> None: ...

    def kept(self) -> str:
        """What `--keep` leaves to look at, besides the directory."""
        ...


Script = Callable[[Path, PostgresServer, Narrator], Story]


class Demo:
    def __init__(self, world: World, narrator: Narrator) -> None:
        self.w = world
        self.n = narrator

    @classmethod
    def script(cls, root: Path, server: PostgresServer, narrator: Narrator) -> Demo:
        if not (EXAMPLES / f"{FIRST}.up.sql").is_file():
            raise UsageError(f"the example migrations are missing from {EXAMPLES}; reinstall lockgate")
        dsn = create_database(server.dsn(), "shop")
        return cls(World(root, server, dsn, {"LOCKGATE_DSN": dsn}), narrator)

    def kept(self) -> str:
        return f"the database {self.w.dsn}"

    def run(self) -> None:
        self.setup()
        self.first_migration()
        self.unsafe_change_refused()
        tier_merge = self.tier_applied()
        self.failing_migration_rolled_back()
        self.tier_reverted(tier_merge)

    def setup(self) -> None:
        w, n = self.w, self.n
        n.step("A throwaway PostgreSQL, an origin repository and a developer's clone")
        major = w.repositories()
        (w.clone / ".pre-commit-config.yaml").write_text(precommit_config(w.lockgate))
        installed = w.run([tool("pre-commit"), "install"])
        expect(installed.code == 0, f"pre-commit install failed: {installed.output.strip()}")
        n.say(f"PostgreSQL {major} on 127.0.0.1:{w.server.port}, database shop")
        n.say(f"origin {w.origin}, clone {w.clone}")
        n.say("pre-commit hooks installed in the clone: lockgate lint, lockgate check")

    def first_migration(self) -> None:
        w, n = self.w, self.n
        n.step("main gets the first migration; the controller's sync creates the tables")
        w.copy_migration(FIRST)
        w.hash()
        committed = w.commit("Add customers and orders")
        expect(committed.code == 0, f"the first commit was refused: {committed.output.strip()}")
        w.git("push", "--quiet", "origin", BRANCH)
        synced = w.sync()
        n.shown("lockgate sync", synced)
        expect(synced.code == 0 and synced.has(f"{FIRST} applied"), "sync did not apply the first migration")
        w.execute(SEED)
        n.say(f"seeded {CUSTOMERS:,} customers and {ORDERS:,} orders")

    def unsafe_change_refused(self) -> None:
        w, n = self.w, self.n
        n.step("A feature branch: the hooks refuse an index built without CONCURRENTLY")
        w.git("switch", "--quiet", "-c", "customer-tier")
        for migration in TIER:
            w.copy_migration(migration)
        w.copy_migration(UNSAFE_INDEX, replace=("CREATE INDEX CONCURRENTLY", "CREATE INDEX"))
        w.hash()
        refused = w.commit("Add the customer tier")
        n.shown('git commit -m "Add the customer tier"', refused,
                [line for line in refused.output.splitlines() if "LG" in line or "Failed" in line])
        expect(refused.code != 0 and refused.has("LG101"), "the hooks let a blocking CREATE INDEX through")
        n.say(f"git commit exited {refused.code}: nothing was committed")

    def tier_applied(self) -> str:
        w, n = self.w, self.n
        n.step("Fixed, committed, merged to main (--no-ff) and pushed; sync applies it")
        w.copy_migration(UNSAFE_INDEX)
        w.hash()
        committed = w.commit("Add the customer tier")
        n.shown('git commit -m "Add the customer tier"', committed,
                [line for line in committed.output.splitlines() if "Passed" in line])
        expect(committed.code == 0, f"the fixed commit was refused: {committed.output.strip()}")
        merge = w.merge("customer-tier", n)
        synced = w.sync()
        n.shown("lockgate sync", synced)
        expect(synced.code == 0 and all(synced.has(f"{m} applied") for m in TIER),
               "sync did not apply the three tier migrations")
        tiers = w.query("SELECT tier, count(*) FROM customers GROUP BY tier ORDER BY tier")
        n.say("customers by tier: " + ", ".join(f"{tier} {count:,}" for tier, count in tiers))
        n.shown("git log --notes=lockgate -1", Ran(0, ""), w.notes())
        tier = status.parse(w.git("notes", "--ref=lockgate", "show", merge).output).migrations[0]
        n.say("its baseline in the note's record: " + ", ".join(
            f"{table} {tier.rows_before[table]:,} rows before, {tier.rows_after.get(table, 0):,} after"
            for table in sorted(tier.rows_before)
        ))
        return merge

    def failing_migration_rolled_back(self) -> None:
        w, n = self.w, self.n
        n.step("A migration whose validation fails is rolled back automatically")
        w.git("switch", "--quiet", "-c", "order-status")
        for kind, text in ORDER_STATUS_FILES.items():
            w.write_migration(ORDER_STATUS, kind, text)
        w.hash()
        committed = w.commit("Add the order status")
        expect(committed.code == 0, f"the order status commit was refused: {committed.output.strip()}")
        w.merge("order-status", n)
        before = (w.columns("orders"), w.query(ORDERS_FINGERPRINT))
        synced = w.sync()
        n.shown("lockgate sync", synced)
        expect(synced.code == 1 and synced.has(f"{ORDER_STATUS} failed"), "sync did not report the failed gate")
        n.say(f"sync exited {synced.code}")
        after = (w.columns("orders"), w.query(ORDERS_FINGERPRINT))
        expect(after == before, "the failed migration left the orders table changed")
        n.say(f"database unchanged: orders has the columns {', '.join(after[0])} and the same rows "
              f"(md5 {str(after[1][0][0])[:12]}…)")
        again = w.sync()
        n.shown("lockgate sync   # the next pass does not re-run it", again)
        expect(again.code == 1 and again.has("waiting:"), "the failed migration was not sticky")

        n.step("Reverting the failed migration's merge changes nothing in the database")
        w.revert("HEAD", n)
        synced = w.sync()
        n.shown("lockgate sync", synced)
        expect(synced.code == 0 and synced.has("nothing to do"), "sync acted on a migration that never applied")

    def tier_reverted(self, tier_merge: str) -> None:
        w, n = self.w, self.n
        n.step("Reverting the tier merge rolls the three migrations back; the revert commit gets the note")
        w.revert(tier_merge, n)
        synced = w.sync()
        n.shown("lockgate sync", synced)
        expect(synced.code == 0 and all(synced.has(f"{m} rolled back") for m in TIER),
               "sync did not roll back the tier migrations")
        expect("tier" not in w.columns("customers"), "customers still has the tier column")
        n.say(f"customers has the columns {', '.join(w.columns('customers'))} again")
        n.shown("git log --notes=lockgate -1", Ran(0, ""), w.notes())


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C does."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


TITLE = "lockgate demo: migrations through git, from commit to database and back"


def run(*, keep: bool = False, out: TextIO = sys.stdout, script: Script = Demo.script, title: str = TITLE) -> int:
    """Run `script`'s story on a throwaway server and directory, removed afterwards unless `keep`."""
    narrator = Narrator(out)
    narrator.line(title)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="lockgate-demo-"))
    server: PostgresServer | None = None
    story: Story | None = None
    try:
        with _terminate_as_interrupt():
            server = PostgresServer()
            server.start()
            story = script(root, server, narrator)
            story.run()
    except Unexpected as exc:
        narrator.line(f"\ndemo: UNEXPECTED: {exc}")
        return 1
    except KeyboardInterrupt:
        narrator.line("\ndemo interrupted: removing the throwaway database and repositories")
        keep = False
        raise
    finally:
        if keep and server is not None:
            runuser = f"runuser -u {SERVER_USER} -- " if server.as_root else ""
            narrator.line(f"\nkept: {root} and {story.kept() if story is not None else 'the server'}")
            narrator.line(f"stop the server with: {runuser}{server.bindir / 'pg_ctl'} -D {server.datadir} stop")
        else:
            if server is not None:
                server.stop()
            shutil.rmtree(root, ignore_errors=True)
    narrator.line(f"\ndemo finished in {time.monotonic() - started:.0f}s: every step behaved as expected")
    return 0
