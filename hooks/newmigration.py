"""`lockgate new`: the three files of a migration, from templates that follow the safe patterns."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from lockgate.hooks.errors import UsageError
from lockgate.hooks.migrationset import KINDS, NAME


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def create(directory: Path, name: str, *, now: datetime | None = None) -> list[Path]:
    """Write `<UTC timestamp>_<name>.{up,down,validate}.sql`; refuses to overwrite."""
    name = slug(name)
    if not NAME.match(name):
        raise UsageError(f"migration name {name!r} must contain letters or digits")
    version = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    clash = sorted(directory.glob(f"{version}_*.sql"))
    if clash:
        raise UsageError(f"version {version} is already used by {clash[0].name}")
    written = []
    templates = files("lockgate.hooks") / "templates"
    for kind in KINDS:
        text = (templates / f"{kind}.sql").read_text()
        path = directory / f"{version}_{name}.{kind}.sql"
        path.write_text(text.format(name=f"{version}_{name}", description=name.replace("_", " ")))
        written.append(path)
    return written
