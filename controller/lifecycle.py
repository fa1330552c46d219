"""A migration's state, and what a run does with it next, decided here and nowhere else (pure).

The state is derived from the migration's ledger row and its files at the head:

| state       | ledger row                                        | next move                      |
|-------------|---------------------------------------------------|--------------------------------|
| pending     | none                                              | run                            |
| rolled back | `rolled_back` by a revert (no error)              | run (it is back: a re-land)    |
| resumable   | `applying`                                        | resume (steps, batches)        |
| undoing     | `undoing`: a rollback began and has not ended     | finish the rollback, then on   |
| failed      | `failed`, or `rolled_back` after a failure        | wait, until `retry` or new files |
| applied     | `applied`, files as applied                       | nothing                        |
| edited      | `applied`, files changed since                    | refuse: applied is immutable   |
| dirty       | `dirty`                                           | block everything               |

A rollback, of a failed run or by a revert, makes the row `undoing` until it ends: a revert's
rollback cut short stays a rollback to finish, also when the migration is re-landed meanwhile
(it finishes, then runs again from a clean schema). sync, the engine, `plan`, `apply`, `retry` and
`resolve` all ask `state_of`, `next_move` and `rollback_move`.
"""

from __future__ import annotations

from enum import StrEnum

from lockgate.controller.ledger import LedgerEntry
from lockgate.controller.outcome import Outcome
from lockgate.hooks.migrationset import KINDS, Migration


class State(StrEnum):
    PENDING = "pending"
    ROLLED_BACK = "rolled back"
    RESUMABLE = "resumable"
    UNDOING = "undoing"
    FAILED = "failed"
    APPLIED = "applied"
    EDITED = "edited"
    DIRTY = "dirty"


class Move(StrEnum):
    RUN = "run"  # from the first step, with a fresh baseline
    RESUME = "resume"  # from the first step the interrupted run did not commit
    FINISH_ROLLBACK = "finish rollback"  # the down steps the interrupted rollback did not commit
    WAIT = "wait"  # sticky failure: it and everything after it wait
    SKIP = "skip"  # nothing to do
    REFUSE = "refuse"  # applied files were edited: the fix is a new migration
    BLOCK = "block"  # dirty: nothing runs until a human resolves it


def complete(migration: Migration) -> bool:
    """It has all three files (a commit made with `--no-verify` may lack one)."""
    return all(kind in migration.files for kind in KINDS)


def same_files(entry: LedgerEntry, migration: Migration) -> bool:
    """The migration's files are the ones the ledger row ran."""
    return complete(migration) and all(
        getattr(entry, f"{k}_checksum") == migration.files[k].checksum for k in KINDS
    )


def state_of(entry: LedgerEntry | None, migration: Migration | None) -> State:
    """The state of a migration from its ledger row and its files at the head (None when gone)."""
    if entry is None:
        return State.PENDING
    if entry.status is Outcome.DIRTY:
        return State.DIRTY
    if entry.status is Outcome.UNDOING:
        return State.UNDOING
    if entry.status is Outcome.APPLYING:
        return State.RESUMABLE
    if entry.status is Outcome.APPLIED:
        return State.EDITED if migration is not None and not same_files(entry, migration) else State.APPLIED
    if entry.status is Outcome.FAILED or entry.error is not None:
        # A failure is sticky for the files that failed; changed files are a fix to try.
        return State.FAILED if migration is None or same_files(entry, migration) else State.PENDING
    return State.ROLLED_BACK


def next_move(state: State, *, retry: bool = False, atomic: bool = False) -> Move:
    """What a run does with a migration in `state`; `retry` is `lockgate retry` asking for a failed one.

    An interrupted atomic migration committed nothing, so it runs again from the start.
    """
    if state is State.RESUMABLE:
        return Move.RUN if atomic else Move.RESUME
    return {
        State.PENDING: Move.RUN,
        State.ROLLED_BACK: Move.RUN,
        State.UNDOING: Move.FINISH_ROLLBACK,
        State.FAILED: Move.RUN if retry else Move.WAIT,
        State.APPLIED: Move.SKIP,
        State.EDITED: Move.REFUSE,
        State.DIRTY: Move.BLOCK,
    }[state]


def rollback_move(state: State) -> Move:
    """What a pass does with a migration whose files are gone from the head (its state read without
    files): run its down from the first step, finish the rollback a crashed run began, or nothing."""
    return {State.APPLIED: Move.RUN, State.UNDOING: Move.FINISH_ROLLBACK}.get(state, Move.SKIP)


def rolls_back(entry: LedgerEntry) -> bool:
    """Whether a pass rolls the migration back (or finishes its rollback) once its files are gone."""
    return rollback_move(state_of(entry, None)) is not Move.SKIP


def unfinished(entry: LedgerEntry) -> bool:
    """A run or a rollback began on the row and has not ended (a crash, a stop, a lost session)."""
    return state_of(entry, None) in (State.RESUMABLE, State.UNDOING)


def undone(entry: LedgerEntry, migration: Migration | None) -> State:
    """The state an `undoing` row reaches once its rollback ends cleanly: rolled back when a revert
    began it (it runs again if it is back at the head), failed when a failed run did."""
    return state_of(entry.model_copy(update={"status": Outcome.ROLLED_BACK, "undo_steps_done": None}), migration)


def describe(state: State, version: str, *, then: State | None = None) -> str:
    """The state in a plan's words: what `apply`/`sync` will do with it; `then`, for an undoing one,
    is the state its rollback leaves (see `undone`)."""
    if state is State.UNDOING:
        after = {None: "", State.FAILED: ", then waits: it failed"}.get(then, ", then runs again")
        return f"finishes the rollback an interrupted run began{after}"
    return {
        State.PENDING: "pending",
        State.ROLLED_BACK: "rolled back by a revert, back at the head: runs again",
        State.RESUMABLE: "resumes an interrupted run",
        State.FAILED: f"failed before: runs again only with changed files or `lockgate retry {version}`",
        State.APPLIED: "applied",
        State.EDITED: "edited after it was applied: refused",
        State.DIRTY: f"dirty: nothing runs until `lockgate resolve {version} --as applied|rolled_back`",
    }[state]


def word(entry: LedgerEntry | None, migration: Migration) -> str:
    """`describe` of the migration's state, from its ledger row and its files at the head."""
    state = state_of(entry, migration)
    return describe(state, migration.version, then=undone(entry, migration) if entry is not None else None)


def dirty_reason(entry: LedgerEntry) -> str:
    """The one message for a dirty migration, wherever it blocks."""
    return (
        f"{entry.version}_{entry.name} is dirty ({entry.error or 'rollback incomplete'}); nothing is applied or "
        f"rolled back until a human runs `lockgate resolve {entry.version} --as applied|rolled_back`"
    )
