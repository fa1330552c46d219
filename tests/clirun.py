"""Run the installed `lockgate` console script as a user does: a real process in a directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The console script next to the interpreter running the tests (the project's venv).
LOCKGATE = Path(sys.executable).with_name("lockgate")


def lockgate(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`lockgate ARGS` in `cwd`; LOCKGATE_* variables of the calling shell do not leak in."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")}
    return subprocess.run(
        [str(LOCKGATE), *args], cwd=cwd, env={**clean, **(env or {})},
        capture_output=True, text=True, timeout=60, check=False,
    )
