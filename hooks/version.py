"""The running lockgate's version, looked up once: a search of sys.path's package metadata, which a
fleet pass would otherwise repeat for every target and every note."""

from __future__ import annotations

from functools import cache


@cache
def lockgate_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # only when asked: `lockgate lint` never is

    try:
        return version("lockgate")
    except PackageNotFoundError:
        return "0+unknown"
