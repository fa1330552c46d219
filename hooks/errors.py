"""Bad input, reported as one line that names the file and the line."""

from __future__ import annotations

from pathlib import Path

from lockgate.hooks.records import Record


class Problem(Record):
    """One thing wrong with the input, located in a file."""

    __slots__ = ("column", "line", "message", "path")

    def __init__(self, path: Path, line: int, column: int, message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        # One problem, one line: parser messages can quote a token that spans lines.
        self.message = message.replace("\r", "\\r").replace("\n", "\\n")

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class InputError(Exception):
    """Input lockgate refuses to work on; every problem is one printable line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems

    @classmethod
    def at(cls, path: Path, line: int, column: int, message: str) -> InputError:
        return cls([Problem(path, line, column, message)])


class UsageError(Exception):
    """A bad flag, setting or environment: one line, exit code 2."""
