"""Random lives of one migration against a real server, checked against a model of its lifecycle.

Hypothesis drives sequences of apply, a failing gate, revert, re-land, retry, a dirty rollback and
its resolve, a SIGKILL mid-backfill and the resume, a SIGKILL mid-rollback (then the rollback
finished, or the migration re-landed first), and after every move checks what a user would:

- plan's word is what apply then does (the lifecycle's move before the run is the run's);
- a backfill re-run after a rollback touches every row (no checkpoint of an earlier life reused);
- a down never skips a step it did not finish (after a rollback every row is back);
- dirty blocks everything until resolved;
- the ledger's state is the model's.

The migration: a column filled by a batched backfill that also counts each row's updates, a gate
an outside switch opens or closes, and a down that undoes the count in batches, then drops the
column. A view on the column makes the down's last step fail (a dirty rollback).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from applyhelp import add, fast_settings
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from lockgate.controller import plan
from lockgate.controller.engine import Blocked, Engine
from lockgate.controller.faultpoints import ENV as KILL_AT
from lockgate.controller.ledger import Ledger
from lockgate.controller.lifecycle import Move, State, next_move, state_of, word
from lockgate.controller.pgserver import create_database, drop_database
from lockgate.hooks import migrationset

ROWS = 60
UP = "ALTER TABLE t ADD COLUMN c int;\n-- lockgate:batch size=10\nUPDATE t SET c = 1, n = n + 1;\n"
DOWN = "-- lockgate:batch size=10\nUPDATE t SET n = n - 1;\nALTER TABLE t DROP COLUMN c;\n"
VALIDATE = ("SELECT count(*) = 0 AS every_row_set FROM t WHERE c IS DISTINCT FROM 1;\n"
            "SELECT ok AS gate_open FROM gate;\n")
_names = itertools.count()


class Life(RuleBasedStateMachine):
    """One database, one migration; `model` is what the lifecycle should say of it."""

    admin_dsn: str
    folder: Path

    def __init__(self) -> None:
        super().__init__()
        self.name = f"lockgate_life_{os.getpid()}_{next(_names)}"
        self.dsn = create_database(self.admin_dsn, self.name)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0)")
            conn.execute("INSERT INTO t (id) SELECT generate_series(1, %s)", (ROWS,))
            conn.execute("CREATE TABLE gate (ok bool NOT NULL); INSERT INTO gate VALUES (true)")
        self.directory = self.folder / self.name
        add(self.directory, "1", "fill", up=UP, down=DOWN, validate=VALIDATE)
        self.present = True  # the migration's files are at the head
        self.model = State.PENDING
        self.view = False  # the down's last step will fail

    def teardown(self) -> None:
        drop_database(self.admin_dsn, self.name)

    # -- helpers ---------------------------------------------------------------------------------

    def sql(self, query: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query.encode())
            return cur.fetchall() if cur.description else []

    def migration(self) -> migrationset.Migration:
        return migrationset.load(self.directory).migrations[0]

    def planned_move(self) -> Move:
        """What `lockgate plan` says, mapped back to the lifecycle's move."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            planned = plan.build(conn, migrationset.load(self.directory), ledger_schema="lockgate")
            entry = Ledger(conn, "lockgate").entries().get("1")
        if not planned:
            return Move.SKIP
        state = state_of(entry, self.migration())
        assert planned[0].state == word(entry, self.migration())
        return next_move(state)

    def runs(self) -> int:
        return len(self.sql("SELECT 1 FROM lockgate.events WHERE event IN ('started', 'resumed')"))

    def after_run(self, gate_open: bool) -> State:
        if gate_open:
            return State.APPLIED
        return State.DIRTY if self.view else State.FAILED

    # -- moves -----------------------------------------------------------------------------------

    @precondition(lambda self: self.present)
    @rule()
    def apply(self) -> None:
        move = self.planned_move()
        before = self.runs() if self.model is not State.PENDING else 0
        gate_open = self.sql("SELECT ok FROM gate") == [(True,)]
        with Engine(fast_settings(), self.dsn) as engine:
            if self.model is State.DIRTY:
                assert move is Move.BLOCK
                with pytest.raises(Blocked):
                    engine.apply(self.migration())
                return
            outcome = engine.apply(self.migration())
        if move is Move.SKIP:
            assert outcome.reason == "already applied"
        elif move is Move.WAIT:
            assert outcome.status == "failed" and outcome.reason.startswith("failed earlier")
        else:
            # A rollback cut short is finished first, then the re-landed migration runs again.
            assert move in (Move.RUN, Move.RESUME, Move.FINISH_ROLLBACK)
            assert self.runs() == before + 1  # it ran, as plan said
            self.model = self.after_run(gate_open)

    @precondition(lambda self: self.model is State.FAILED and self.present)
    @rule()
    def retry(self) -> None:
        gate_open = self.sql("SELECT ok FROM gate") == [(True,)]
        with Engine(fast_settings(), self.dsn) as engine:
            engine.apply(self.migration(), retry=True)
        self.model = self.after_run(gate_open)

    @rule()
    def close_gate(self) -> None:
        self.sql("UPDATE gate SET ok = false")

    @rule()
    def open_gate(self) -> None:
        self.sql("UPDATE gate SET ok = true")

    @precondition(lambda self: self.model is State.APPLIED)
    @rule()
    def revert(self) -> None:
        self.present = False
        with Engine(fast_settings(), self.dsn) as engine:
            outcome = engine.rollback("1")
        self.model = State.DIRTY if self.view else State.ROLLED_BACK
        assert outcome.status == ("dirty" if self.view else "rolled_back"), outcome.reason

    @precondition(lambda self: self.model is State.APPLIED and not self.view)
    @rule()
    def sigkill_mid_rollback(self) -> None:
        """A revert whose rollback dies after the down's second batch: the migration is `undoing`
        until its rollback is finished, or it is re-landed and the run finishes it first."""
        self.present = False
        script = ("import sys\nfrom applyhelp import fast_settings\nfrom lockgate.controller.engine import Engine\n"
                  "with Engine(fast_settings(), sys.argv[1]) as engine:\n    engine.rollback('1')\n")
        env = {k: v for k, v in os.environ.items() if k != KILL_AT} | {KILL_AT: "batch:2"}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
        result = subprocess.run([sys.executable, "-c", script, self.dsn], capture_output=True, text=True, env=env,
                                check=False, timeout=120)
        assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
        self.model = State.UNDOING

    @precondition(lambda self: self.model is State.UNDOING and not self.present)
    @rule()
    def finish_rollback(self) -> None:
        with Engine(fast_settings(), self.dsn) as engine:
            outcome = engine.rollback("1")
        assert outcome.status == "rolled_back", outcome.reason
        self.model = State.ROLLED_BACK

    @precondition(lambda self: not self.present and self.model is not State.DIRTY)
    @rule()
    def reland(self) -> None:
        self.present = True

    @precondition(lambda self: self.model is State.APPLIED and not self.view)
    @rule()
    def block_the_down(self) -> None:
        self.sql("CREATE VIEW v AS SELECT c FROM t")
        self.view = True

    @precondition(lambda self: self.model is State.DIRTY)
    @rule()
    def resolve_as_applied(self) -> None:
        # A human looks: drops the view, puts the applied data back, says so.
        self.sql("DROP VIEW IF EXISTS v")
        self.view = False
        self.sql("UPDATE t SET n = 1, c = 1")
        with Engine(fast_settings(), self.dsn) as engine:
            engine.resolve("1", "applied", note="put back by hand")
        self.model = State.APPLIED

    @precondition(lambda self: self.present and self.model in (State.PENDING, State.ROLLED_BACK))
    @rule()
    def sigkill_mid_backfill(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != KILL_AT} | {KILL_AT: "batch:3"}
        result = subprocess.run(
            [sys.executable, "-m", "lockgate.controller", "apply", "--dir", str(self.directory), "--dsn", self.dsn],
            capture_output=True, text=True, env=env, check=False, timeout=120,
        )
        assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
        self.model = State.RESUMABLE
        assert self.planned_move() is Move.RESUME

    # -- what must always hold ---------------------------------------------------------------------

    @invariant()
    def the_ledger_says_what_the_model_says(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            entry = Ledger(conn, "lockgate").entries().get("1")
        assert state_of(entry, None) is self.model

    @invariant()
    def the_data_matches_the_state(self) -> None:
        column = self.sql("SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c' "
                          "AND NOT attisdropped")
        if self.model is State.APPLIED:
            # Every row touched exactly once by the life that stands (a re-land included).
            assert self.sql("SELECT count(*) FROM t WHERE n = 1 AND c = 1") == [(ROWS,)]
        elif self.model in (State.PENDING, State.ROLLED_BACK, State.FAILED):
            # No down step skipped: every row is back and the column gone.
            assert column == [(0,)] and self.sql("SELECT count(*) FROM t WHERE n = 0") == [(ROWS,)]


@pytest.fixture
def life(pg_server: object, tmp_path: Path) -> type[Life]:
    Life.admin_dsn = pg_server.admin_dsn  # type: ignore[attr-defined]
    Life.folder = tmp_path
    return Life


def test_random_lives_of_a_migration_keep_the_lifecycle_invariants(life: type[Life]) -> None:
    run_state_machine_as_test(life, settings=settings(
        max_examples=8, stateful_step_count=10, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    ))
