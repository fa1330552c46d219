"""Statements that switch off the engine's protection for the rest of the migration's session, or
reach past the database into the server's shell and files."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lockgate.hooks.directives import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from lockgate.hooks.rules.base import Example, Hit, Rule
from lockgate.hooks.rules.context import Context
from lockgate.hooks.sqlmodel import Node, Statement, qualified_names, walk_nodes

_EVERY_FILE = frozenset({"up", "down", "validate"})
_TIMEOUTS = ("lock_timeout", "statement_timeout")
_IDENTITY = {"role": "SET ROLE", "session_authorization": "SET SESSION AUTHORIZATION"}
# A time setting's value: a number of milliseconds, or a number with a unit (PostgreSQL's units).
_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>us|ms|s|min|h|d)?\s*$")
_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, None: 1e-3}


def _seconds(value: Node) -> float | None:
    """A SET value of a time setting in seconds; None when it is not a plain constant."""
    const = value.get("A_Const")
    if const is None:
        return None
    if "ival" in const:
        return float(const["ival"].get("ival", 0)) * 1e-3
    text = const.get("fval", {}).get("fval") or const.get("sval", {}).get("sval")
    m = _DURATION.match(text or "")
    return float(m["n"]) * _UNIT_S[m["unit"]] if m else None


def _limit(ctx: Context, setting: str) -> float:
    """The migration's limit: its `-- lockgate:timeout`, else the engine's default."""
    directive = ctx.sql.timeout if ctx.sql is not None else None
    if setting == "lock_timeout":
        return directive.lock_s if directive and directive.lock_s is not None else DEFAULT_LOCK_TIMEOUT_S
    given = directive.statement_s if directive and directive.statement_s is not None else None
    return DEFAULT_STATEMENT_TIMEOUT_S if given is None else given


def _set_config_calls(node: Node) -> Iterator[tuple[str, Node]]:
    """(setting, value) for each `set_config('setting', value, …)` in a query."""
    for call in walk_nodes(node, "FuncCall"):
        args = call.get("args", [])
        if qualified_names(call.get("funcname", []))[-1:] == ["set_config"] and len(args) >= 2:
            name = args[0].get("A_Const", {}).get("sval", {}).get("sval", "")
            yield name.lower(), args[1]


class TimeoutSwitchedOff(Rule):
    """Setting lock_timeout or statement_timeout to 0, or above the migration's limit, switches off
    the engine's protection for everything after it.

    The engine runs every statement with `lock_timeout` and `statement_timeout` set (the
    configured values, or this migration's `-- lockgate:timeout`). A `SET lock_timeout = 0`
    in the file overrides that: the next statement that needs a lock waits for it forever,
    and every query that arrives after it queues behind it (readers too). `RESET`, `SET … TO
    DEFAULT` and `RESET ALL` go back to the server's default, which is usually no limit at all;
    `set_config('lock_timeout', …)` does the same as SET.

    Safe alternative: give the migration the limits it needs with `-- lockgate:timeout
    lock=5s statement=30m` in its up file; the engine then applies them to every step and
    retries a statement that timed out waiting for its lock. A lower value in the file is fine.
    Without the directive the limit compared with is the engine's default (lock 2s, statement
    5min).
    """

    code = "LG815"
    name = "timeout-switched-off"
    summary = "SET/RESET of lock_timeout or statement_timeout that lifts the engine's limit"
    kinds = frozenset({"VariableSetStmt", "SelectStmt"})
    file_kinds = _EVERY_FILE
    bad = (
        Example("SET lock_timeout = 0;\nALTER TABLE orders ADD COLUMN note text;"),
        Example("SET LOCAL statement_timeout = '2h';"),
        Example("RESET lock_timeout;"),
        Example("SELECT set_config('lock_timeout', '0', true);"),
    )
    good = (
        Example("SET LOCAL lock_timeout = '500ms';\nALTER TABLE orders ADD COLUMN note text;",
                note="a tighter limit only makes the migration safer"),
        Example("-- lockgate:timeout statement=180m\nSET LOCAL statement_timeout = '2h';"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "SelectStmt":
            for name, value in _set_config_calls(node):
                if name in _TIMEOUTS:
                    yield from self._judge(name, _seconds(value), ctx, "set_config")
            return
        kind, name = node.get("kind"), node.get("name", "").lower()
        if kind == "VAR_RESET_ALL":
            yield ("RESET ALL puts lock_timeout and statement_timeout back to the server's defaults, "
                   "usually no limit; set the limits with -- lockgate:timeout instead")
        elif name in _TIMEOUTS and kind in ("VAR_RESET", "VAR_SET_DEFAULT"):
            yield (f"resetting {name} drops the engine's limit for the server's default, usually none; "
                   f"set the limit with -- lockgate:timeout instead")
        elif name in _TIMEOUTS and kind == "VAR_SET_VALUE" and node.get("args"):
            yield from self._judge(name, _seconds(node["args"][0]), ctx, "SET")

    @staticmethod
    def _judge(name: str, value: float | None, ctx: Context, how: str) -> Iterator[str]:
        limit = _limit(ctx, name)
        if value == 0:
            what = "waits for a lock forever, and every query queued behind it waits too" if name == "lock_timeout" \
                else "may run forever"
            yield f"{how} {name} to 0 switches the limit off: the next statement {what}; use -- lockgate:timeout"
        elif value is None:
            yield f"{how} {name} to a value lockgate cannot read; use -- lockgate:timeout to change the limit"
        elif value > limit:
            yield (f"{how} {name} to {value:g}s lifts the migration's limit of {limit:g}s; "
                   f"raise it with -- lockgate:timeout instead")


class SessionIdentityChange(Rule):
    """`SET ROLE` and `SET SESSION AUTHORIZATION` run the rest of the migration as someone else.

    The controller connects as the role the deployment gives it, and reviews assume the
    migration runs with that role's rights. `SET ROLE` (or `SET SESSION AUTHORIZATION`)
    switches to another role for the statements after it: objects get another owner, row
    level security and grants are checked for another role, and a superuser role can do
    anything. `RESET ROLE` switches back from a role set elsewhere, which is just as opaque.

    Safe alternative: grant the controller's role what the migration needs, or change an
    object's owner explicitly with `ALTER … OWNER TO`, reviewed as such.
    """

    code = "LG816"
    name = "session-identity-change"
    summary = "SET ROLE, SET SESSION AUTHORIZATION or RESET ROLE in a migration"
    kinds = frozenset({"VariableSetStmt"})
    file_kinds = _EVERY_FILE
    bad = (
        Example("SET ROLE postgres;\nDELETE FROM audit_log WHERE id = 1;"),
        Example("SET SESSION AUTHORIZATION admin;"),
        Example("RESET ROLE;"),
    )
    good = (Example("ALTER TABLE reports OWNER TO reporting;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        name = node.get("name", "").lower()
        if name not in _IDENTITY:
            return
        if node.get("kind") in ("VAR_RESET", "VAR_SET_DEFAULT"):
            yield (f"RESET {_IDENTITY[name].removeprefix('SET ')} switches identity back from one set elsewhere; "
                   "run the migration as the controller's role")
        else:
            yield (f"{_IDENTITY[name]} runs the rest of the migration as another role; "
                   "grant the controller's role what it needs instead")


class ServerSideCopy(Rule):
    """`COPY … PROGRAM` runs a shell command on the database server; `COPY` to or from a file
    reads or writes the server's file system.

    Both need superuser-like rights (`pg_execute_server_program`, `pg_read_server_files`,
    `pg_write_server_files`), reach outside the database, and cannot be rolled back: a program
    ran, a file was written. What they read differs from one server (or replica promotion) to
    the next, so the migration is not reproducible.

    Safe alternative: load data from the migration's own SQL (INSERT … VALUES) or from a table
    filled beforehand by a reviewed job; `COPY … FROM STDIN` from a client is not reported.
    """

    code = "LG817"
    name = "server-side-copy"
    summary = "COPY … PROGRAM, or COPY to or from a file on the database server"
    kinds = frozenset({"CopyStmt"})
    file_kinds = _EVERY_FILE
    bad = (
        Example("COPY countries FROM PROGRAM 'curl -s https://example.com/countries.csv' WITH (FORMAT csv);"),
        Example("COPY customers TO '/tmp/customers.csv';"),
    )
    good = (Example("INSERT INTO countries (code, name) VALUES ('NL', 'Netherlands');"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        direction = "FROM" if node.get("is_from") else "TO"
        if node.get("is_program"):
            yield f"COPY … {direction} PROGRAM runs a shell command on the database server; load the data in SQL"
        elif node.get("filename"):
            yield (f"COPY … {direction} '{node['filename']}' uses a file on the database server; "
                   "load the data in SQL")
