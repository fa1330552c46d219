"""Bad input, reported as one line that names the file and the line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the input, located in a file."""

    path: Path
    line: int
    column: int
    message: str

    def __post_init__(self) -> None:
        # One problem, one line: parser messages can quote a token that spans lines.
        one_line = self.message.replace("\r", "\\r").replace("\n", "\\n")
        object.__setattr__(self, "message", one_line)

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
