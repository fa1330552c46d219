"""Value records for the lint path, written out by hand.

`dataclasses` would cost `lockgate lint` a third of its start: the module imports inspect (and
with it ast, dis, tokenize) and every decorated class has its methods generated with `exec`.
A record here lists its fields in `__slots__`, sets them in its own `__init__`, and takes
equality, hash and repr from them; nothing assigns a field after `__init__`.
"""

from __future__ import annotations

from typing import ClassVar


class Record:
    __slots__: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and isinstance(other, Record) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"
