"""A migration file as PostgreSQL's own parser sees it.

Statements are kept as libpg_query's JSON parse tree (plain dicts): building pglast's Python
node objects costs far more than the parse itself, and the rules only read the tree. Every
statement carries an absolute line and column, also those found inside PL/pgSQL bodies of
DO blocks and functions, and the directives written on the comment lines right above it.

A large file (a data load of tens of megabytes) is parsed a chunk of statements at a time and
keeps no trees: its top-level statements parse their own text again when their tree is read,
the last few kept, so memory grows with the text, not with every tree at once.
"""

from __future__ import annotations

import json
import re
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from pglast import parser

from lockgate.hooks.directives import (
    Batch,
    Directive,
    Ignore,
    NoTransaction,
    Timeout,
    read_header,
    scan_directives,
)
from lockgate.hooks.errors import InputError
from lockgate.hooks.records import Record

Node = dict[str, Any]

# What turns libpg_query's JSON into dicts: json, until a caller about to parse many files asks for
# orjson (`decode_in_bulk`), which decodes in about half the time but whose import (about 7 ms in a
# lint run: it imports dataclasses and inspect) is more than a pre-commit lint of one file spends decoding.
_loads: Callable[[str], Any] = json.loads


def decode_in_bulk() -> None:
    global _loads
    import orjson

    _loads = orjson.loads

# From this size a file is parsed in chunks and its top-level trees are not kept (see the docstring).
LARGE_FILE = 4 << 20
# Chunks end after a `;` at the end of a line, once they are this long.
_CHUNK = 1 << 18
_CHUNK_END = re.compile(r";[ \t]*\r?\n")
# Trees parsed again for a large file's statements, the most recently read last.
_RECENT: OrderedDict[Statement, Node] = OrderedDict()
_RECENT_SIZE = 4

# Statements whose body may be PL/pgSQL.
_BODY_KINDS = frozenset({"DoStmt", "CreateFunctionStmt"})
# PL/pgSQL statements that matter to the rules besides embedded SQL.
_PLPGSQL_KINDS = {
    "PLpgSQL_stmt_commit",
    "PLpgSQL_stmt_rollback",
    "PLpgSQL_stmt_dynexecute",
    "PLpgSQL_stmt_dynfors",
    "PLpgSQL_stmt_call",
}


class Statement:
    """One statement: a top-level one, or one inside a DO block or function body. Equal only to itself."""

    __slots__ = ("column", "directives", "end_line", "kind", "line", "node", "parent", "text")

    def __init__(self, kind: str, node: Node, text: str, line: int, column: int, end_line: int,
                 directives: tuple[Directive, ...] = (), parent: Statement | None = None) -> None:
        self.kind = kind  # parse-tree node name, e.g. "AlterTableStmt" or "PLpgSQL_stmt_commit"
        # The node's fields as libpg_query gives them. A plain attribute: the rules read it some 15
        # times per statement, and a property costs each read a call.
        self.node = node
        self.text = text
        self.line = line
        self.column = column
        self.end_line = end_line
        self.directives = directives
        self.parent = parent  # the DO/CREATE FUNCTION whose body holds this one

    @property
    def batch(self) -> Batch | None:
        if not self.directives:  # most statements: several rules ask, per statement
            return None
        return next((d for d in self.directives if isinstance(d, Batch)), None)

    @property
    def ignored_rules(self) -> frozenset[str]:
        return frozenset(r for d in self.directives if isinstance(d, Ignore) for r in d.rules)


class _Reparsed(Statement):
    """A top-level statement of a large file, which keeps no tree: it is parsed again from the statement's
    text when read, the last few kept (`location`s are then relative to the statement, which nothing reads)."""

    __slots__ = ()

    @property
    def node(self) -> Node:
        node = _RECENT.get(self)
        if node is None:
            (raw,) = _loads(parser.parse_sql_json(self.text))["stmts"]
            node = _remember(self, raw["stmt"][self.kind])
        else:
            _RECENT.move_to_end(self)
        return node

    @node.setter
    def node(self, node: Node) -> None:  # the tree from the file's own parse: kept while among the last few read
        _remember(self, node)


def _remember(stmt: Statement, node: Node) -> Node:
    _RECENT[stmt] = node
    if len(_RECENT) > _RECENT_SIZE:
        _RECENT.popitem(last=False)
    return node


class SqlFile:
    """A parsed SQL file: top-level statements, PL/pgSQL-nested ones, directives, header."""

    __slots__ = ("_called", "_order", "directives", "header", "nested", "path", "statements", "text")

    def __init__(self, path: Path, text: str, statements: list[Statement], nested: list[Statement],
                 directives: dict[int, Directive], header: dict[str, str]) -> None:
        self.path = path
        self.text = text
        self.statements = statements
        self.nested = nested
        self.directives = directives
        self.header = header
        self._order: list[Statement] = []
        self._called: dict[int, bool] = {}  # id() of a CREATE FUNCTION -> called here

    def walk(self) -> Iterator[Statement]:
        """Every statement in source order, nested ones right after their parent."""
        if not self._order:
            children: dict[int, list[Statement]] = {}
            for child in self.nested:
                assert child.parent is not None
                children.setdefault(id(child.parent), []).append(child)
            for stmt in self.statements:
                self._order.append(stmt)
                self._order.extend(children.get(id(stmt), ()))
        return iter(self._order)

    def runs(self, stmt: Statement) -> bool:
        """Whether `stmt` runs when the file runs: top-level statements and DO bodies do; a function's
        body does when another statement of the file calls it (SELECT f(), CALL f(), PERFORM f() in a
        DO block), read from the text, as PL/pgSQL's PERFORM is not parsed further."""
        function = stmt.parent
        if function is None or function.kind == "DoStmt":
            return True
        if function.kind != "CreateFunctionStmt":
            return False
        called = self._called.get(id(function))
        if called is None:
            call = re.compile(rf"(?<![\w$.]){re.escape(function_name(function))}\s*\(", re.IGNORECASE)
            called = self._called[id(function)] = any(
                s is not function and call.search(s.text) for s in self.statements)
        return called

    @property
    def no_transaction(self) -> bool:
        return any(isinstance(d, NoTransaction) for d in self.directives.values())

    @property
    def timeout(self) -> Timeout | None:
        """The file's `-- lockgate:timeout` (at most one: the parser refuses a second)."""
        return next((d for d in self.directives.values() if isinstance(d, Timeout)), None)

    @property
    def ignored_rules(self) -> frozenset[str]:
        return frozenset(
            r for d in self.directives.values() if isinstance(d, Ignore) and d.whole_file for r in d.rules
        )

    @property
    def is_empty(self) -> bool:
        return not self.statements


def function_name(function: Statement) -> str:
    """The unqualified name a CREATE FUNCTION/PROCEDURE defines."""
    names = qualified_names(function.node.get("funcname", []))
    return names[-1] if names else ""


class _Positions:
    """Turns byte or character offsets into 1-based line and column."""

    def __init__(self, text: str, *, compact: bool = False) -> None:
        self.text = text
        # Most migrations are ASCII: then bytes and characters line up, and the text is not held a
        # second time as bytes (a large data load would peak at one more copy of itself).
        self.ascii = text.isascii()
        self.data = b"" if self.ascii else text.encode()
        self.size = len(text) if self.ascii else len(self.data)  # in bytes
        self.char_starts = self._starts(re.finditer("\n", text), compact)
        self.byte_starts = self.char_starts if self.ascii else self._starts(re.finditer(b"\n", self.data), compact)

    @staticmethod
    def _starts(newlines: Iterator[re.Match[bytes]] | Iterator[re.Match[str]], compact: bool) -> Sequence[int]:
        """Where each line starts: a list, or for a large file an array (8 bytes a line, not 36)."""
        if compact:
            starts = array("q", [0])
            starts.extend(m.end() for m in newlines)
            return starts
        return [0] + [m.end() for m in newlines]

    def from_byte(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.byte_starts, offset)
        start = self.byte_starts[line - 1]
        if self.ascii:
            return line, offset - start + 1
        return line, len(self.data[start:offset].decode(errors="replace")) + 1

    def line_from_byte(self, offset: int) -> int:
        return bisect_right(self.byte_starts, offset)

    def text_of_bytes(self, start: int, end: int) -> str:
        return self.text[start:end] if self.ascii else self.data[start:end].decode()

    def from_char(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.char_starts, offset)
        return line, offset - self.char_starts[line - 1] + 1

    def line_text(self, line: int) -> str:
        start = self.char_starts[line - 1]
        end = self.char_starts[line] if line < len(self.char_starts) else len(self.text)
        return self.text[start:end]


class _Lines(Sequence[str]):
    """A large file's lines as `text.split("\\n")` gives them, each cut from the text when read."""

    def __init__(self, pos: _Positions) -> None:
        self.pos = pos

    def __len__(self) -> int:
        return len(self.pos.char_starts)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not 0 <= index < len(self):
            raise IndexError(index)
        line = self.pos.line_text(index + 1)
        return line[:-1] if line.endswith("\n") else line


def _attached(directives: dict[int, Directive], lines: Sequence[str], first_line: int) -> tuple[Directive, ...]:
    """Directives on the run of comment lines directly above `first_line`."""
    if not directives:  # most files: nothing to look for
        return ()
    found: list[Directive] = []
    n = first_line - 1
    while n >= 1 and lines[n - 1].lstrip().startswith("--"):
        directive = directives.get(n)
        file_level = isinstance(directive, NoTransaction | Timeout) or (
            isinstance(directive, Ignore) and directive.whole_file
        )
        if directive is not None and not file_level:
            found.append(directive)
        n -= 1
    found.reverse()
    return tuple(found)


def _plpgsql_body(kind: str, node: Node) -> str | None:
    """The PL/pgSQL source of a DO block or function (`kind` in _BODY_KINDS), or None for other languages."""
    options = node.get("args" if kind == "DoStmt" else "options", [])
    language, body = "plpgsql", None
    for item in options:
        elem = item.get("DefElem", {})
        arg = elem.get("arg", {})
        if elem.get("defname") == "language":
            language = arg.get("String", {}).get("sval", "").lower()
        elif elem.get("defname") == "as":
            if "String" in arg:
                body = arg["String"].get("sval")
            elif "List" in arg:
                items = arg["List"].get("items", [])
                body = items[0].get("String", {}).get("sval") if items else None
    return body if language == "plpgsql" else None


class _Parser:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        large = len(text) >= LARGE_FILE
        self.pos = _Positions(text, compact=large)
        # A large file's lines are cut from its text when read (the positions index them), not kept in a list.
        self.lines: Sequence[str] = _Lines(self.pos) if large else text.split("\n")
        self.directives = scan_directives(text, path)

    def error(self, line: int, column: int, message: str) -> InputError:
        return InputError.at(self.path, line, column, message)

    def parse(self) -> SqlFile:
        statements: list[Statement] = []
        nested: list[Statement] = []
        large = isinstance(self.lines, _Lines)
        for byte_at, raws in self.chunks() if large else [(0, self.parse_tree(0))]:
            for raw in raws:
                stmt, node = self.top_level(raw, byte_at, keep=not large)
                statements.append(stmt)
                if stmt.kind in _BODY_KINDS:
                    nested.extend(self.inside(stmt, node))
        return SqlFile(
            path=self.path,
            text=self.text,
            statements=statements,
            nested=nested,
            directives=self.directives,
            header=read_header(self.lines),
        )

    def parse_tree(self, char_at: int, end: int | None = None) -> list[Node]:
        """The raw statements of the text from `char_at` to `end` (the end of the file when None)."""
        try:
            tree = _loads(parser.parse_sql_json(self.text[char_at:end]))
        except parser.ParseError as exc:
            message, offset = exc.args[0], exc.args[1] if len(exc.args) > 1 else None
            line, column = self.pos.from_char(char_at + offset) if isinstance(offset, int) else (1, 1)
            if self.pos.line_text(line).lstrip().startswith("\\"):
                message = "psql meta-commands are not SQL; lockgate runs plain SQL only"
            raise self.error(line, column, message) from None
        stmts: list[Node] = tree.get("stmts", [])
        return stmts

    def chunks(self) -> Iterator[tuple[int, list[Node]]]:
        """(byte offset, raw statements) of consecutive pieces of a large file.

        A piece ends after a `;` that ends a line, so statements are whole. Such a `;` can also sit inside
        a string, comment or BEGIN ATOMIC body; the piece then does not parse, and the rest of the file is
        parsed in one piece, which also reports a real syntax error exactly as a whole-file parse does.
        """
        char_at = byte_at = 0
        while char_at < len(self.text):
            cut = _CHUNK_END.search(self.text, char_at + _CHUNK)
            end = cut.end() if cut else len(self.text)
            try:
                raws = self.parse_tree(char_at, end)
            except InputError:
                if end == len(self.text):
                    raise
                yield byte_at, self.parse_tree(char_at)
                return
            yield byte_at, raws
            byte_at += len(self.text[char_at:end].encode()) if not self.pos.ascii else end - char_at
            char_at = end

    def top_level(self, raw: Node, byte_at: int, *, keep: bool) -> tuple[Statement, Node]:
        (kind, node), = raw["stmt"].items()
        start = byte_at + raw.get("stmt_location", 0)
        length = raw.get("stmt_len") or self.pos.size - start
        text = self.pos.text_of_bytes(start, start + length).strip()
        line, column = self.pos.from_byte(start)
        end_line = self.pos.line_from_byte(start + length)
        kept = Statement if keep else _Reparsed
        return kept(kind, node, text, line, column, end_line, _attached(self.directives, self.lines, line)), node

    def inside(self, stmt: Statement, node: Node) -> list[Statement]:
        body = _plpgsql_body(stmt.kind, node)
        if body is None:
            return []
        stmt_start = self.pos.char_starts[stmt.line - 1] + stmt.column - 1
        body_at = self.text.find(body, stmt_start)
        body_line = self.pos.from_char(body_at)[0] if body_at >= 0 else stmt.line
        if stmt.kind == "DoStmt":
            tag = "$lockgate$"
            source = f"CREATE FUNCTION lockgate_do() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}"
        else:
            source = stmt.text
        try:
            tree = _loads(parser.parse_plpgsql_json(source))
        except parser.ParseError as exc:
            line, column = self.locate_in_body(exc.args[0], body, body_line, stmt)
            raise self.error(line, column, f"PL/pgSQL: {exc.args[0]}") from None
        found: list[Statement] = []
        statements: list[tuple[str, Node]] = []
        _find(tree, "PLpgSQL_stmt_", statements, prefix=True)
        for kind, node in statements:
            line = body_line + max(node.get("lineno", 1), 1) - 1
            if kind == "PLpgSQL_stmt_execsql":
                query = node.get("sqlstmt", {}).get("PLpgSQL_expr", {}).get("query", "")
                found.extend(self.embedded(query, line, stmt))
            elif kind in _PLPGSQL_KINDS:
                found.append(self.nested_stmt(kind, node, self.pos.line_text(line).strip(), line, stmt))
        return found

    def embedded(self, query: str, line: int, parent: Statement) -> list[Statement]:
        try:
            tree = _loads(parser.parse_sql_json(query))
        except parser.ParseError:
            return []  # PL/pgSQL variables can make embedded SQL unparsable on its own
        return [
            self.nested_stmt(kind, node, query, line, parent)
            for raw in tree.get("stmts", [])
            for kind, node in raw["stmt"].items()
        ]

    def nested_stmt(self, kind: str, node: Node, text: str, line: int, parent: Statement) -> Statement:
        line = min(line, len(self.lines))
        line_text = self.pos.line_text(line)
        probe = text.split()[0] if text.split() else ""
        at = line_text.find(probe) if probe else -1
        column = at + 1 if at >= 0 else len(line_text) - len(line_text.lstrip()) + 1
        return Statement(
            kind=kind,
            node=node,
            text=text,
            line=line,
            column=column,
            end_line=line + text.count("\n"),
            directives=_attached(self.directives, self.lines, line),
            parent=parent,
        )

    def locate_in_body(self, message: str, body: str, body_line: int, stmt: Statement) -> tuple[int, int]:
        near = re.search(r'at or near "([^"]+)"', message)
        # The PL/pgSQL parser gives no position: find the token as a whole word in the body.
        token = re.search(rf"(?<![\w$]){re.escape(near[1])}(?![\w$])", body) if near else None
        if token is None:
            return stmt.line, stmt.column
        line = body_line + body[: token.start()].count("\n")
        line_start = body.rfind("\n", 0, token.start()) + 1
        column = token.start() - line_start + 1
        if line == body_line:  # the body starts mid-line, after its opening quote
            column += self.pos.line_text(line).find(body.split("\n", 1)[0])
        return line, column


def parse_sql(path: Path, text: str) -> SqlFile:
    """Parse one file's text; bad SQL or a bad directive raises InputError at its line."""
    nul = text.find("\0")
    if nul >= 0:
        # PostgreSQL cannot store or run it (and the parser would stop there): bad input, not a crash later.
        line = text.count("\n", 0, nul) + 1
        raise InputError.at(path, line, nul - (text.rfind("\n", 0, nul) + 1) + 1,
                            "a NUL byte (U+0000): PostgreSQL cannot store or run text that holds one")
    return _Parser(path, text).parse()


def walk_nodes(tree: Any, kind: str) -> Iterator[Node]:
    """Every node of `kind` anywhere below `tree`, in the order of the text."""
    found: list[tuple[str, Node]] = []
    if type(tree) is dict or type(tree) is list:
        _find(tree, kind, found)
    return iter([node for _, node in found])


def _find(tree: Node | list[Any], name: str, found: list[tuple[str, Node]], *, prefix: bool = False) -> None:
    """Append (its name, node) for every node below `tree` named `name` (or starting with it), in the
    order of the text.

    A plain recursive function that steps only into dicts and lists (libpg_query's JSON has no other
    containers): a generator per value, scalars included, cost twice as much."""
    if type(tree) is dict:
        for key, value in tree.items():
            if type(value) is dict:
                if key == name or (prefix and key.startswith(name)):
                    found.append((key, value))
                _find(value, name, found, prefix=prefix)
            elif type(value) is list:
                _find(value, name, found, prefix=prefix)
    else:
        for item in tree:
            if type(item) is dict or type(item) is list:
                _find(item, name, found, prefix=prefix)


class Relation(Record):
    __slots__ = ("name", "schema")

    def __init__(self, schema: str | None, name: str) -> None:
        self.schema = schema
        self.name = name

    @classmethod
    def of(cls, range_var: Node) -> Relation:
        return cls(range_var.get("schemaname"), range_var.get("relname", ""))

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def alter_table_cmds(node: Node) -> tuple[Node, ...]:
    """The AlterTableCmd bodies of an ALTER TABLE."""
    return tuple(item["AlterTableCmd"] for item in node.get("cmds", ()) if "AlterTableCmd" in item)


def def_options(node: Node, key: str) -> dict[str, Node]:
    """The `DefElem` options listed under `key` (`WITH (…)`, `(CONCURRENTLY, …)`), by name."""
    return {i["DefElem"].get("defname", ""): i["DefElem"] for i in node.get(key) or [] if "DefElem" in i}


def qualified_names(items: list[Node]) -> list[str]:
    """`[{"String": {"sval": "a"}}, …]` → `["a", …]`."""
    return [i["String"]["sval"] for i in items if "String" in i]


