"""`lockgate lint` as a user runs it: a real process, real files, exit codes and output."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockgate.controller.arguments import build_parser
from lockgate.controller.commands import lint as lint_command
from lockgate.hooks import lint, sqlmodel
from lockgate.hooks.lint import lint_paths
from lockgate.hooks.sqlmodel import parse_sql

LOCKGATE = Path(sys.executable).with_name("lockgate")
SAFE_UP = "CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL);\n"
UNSAFE_UP = "CREATE INDEX orders_at_idx ON orders (created_at);\n"
# The lint path must stay light: a pre-commit run on one file is budgeted at 1.25x the cost of
# importing pglast and parsing the file. dataclasses alone (it imports inspect, ast, dis) is a fifth of that.
HEAVY_MODULES = ("pydantic", "pydantic_settings", "psycopg", "kubernetes", "git", "concurrent.futures",
                 "multiprocessing", "importlib.metadata", "hashlib", "shutil", "dataclasses", "inspect", "argparse")


def run_lint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(LOCKGATE)] if LOCKGATE.exists() else [sys.executable, "-m", "lockgate.controller"]
    return subprocess.run([*command, "lint", *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[tool.lockgate]\ndir = 'migrations'\ntarget_pg_version = 15\n")
    (tmp_path / "migrations").mkdir()
    return tmp_path


def write(project: Path, name: str, content: str | bytes) -> str:
    path = project / "migrations" / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return f"migrations/{name}"


def test_clean_file_exits_0_and_prints_nothing(project: Path) -> None:
    name = write(project, "1_customers.up.sql", SAFE_UP)
    for fmt in ("text", "github"):
        done = run_lint(project, "--format", fmt, name)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert json.loads(run_lint(project, "--format", "json", name).stdout) == []
    sarif = json.loads(run_lint(project, "--format", "sarif", name).stdout)
    assert sarif["runs"][0]["results"] == []


def test_findings_exit_1_in_every_format(project: Path) -> None:
    name = write(project, "1_index.up.sql", UNSAFE_UP)
    text = run_lint(project, name)
    assert text.returncode == 1 and text.stderr == ""
    assert text.stdout.splitlines()[0].startswith(f"{name}:1:1: LG101 ")
    assert text.stdout.splitlines()[-1] == "Found 1 problem in 1 file."
    (record,) = json.loads(run_lint(project, "--format", "json", name).stdout)
    assert (record["path"], record["line"], record["column"], record["rule"]) == (name, 1, 1, "LG101")
    sarif = json.loads(run_lint(project, "--format", "sarif", name).stdout)
    (result,) = sarif["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == name
    github = run_lint(project, "--format", "github", name)
    assert github.returncode == 1
    assert github.stdout.startswith(f"::error file={name},line=1,col=1,title=LG101 require-concurrent-index-creation::")


def test_default_lints_the_configured_directory(project: Path) -> None:
    write(project, "1_customers.up.sql", SAFE_UP)
    write(project, "2_index.up.sql", UNSAFE_UP)
    done = run_lint(project, "--format", "json")
    assert done.returncode == 1
    assert [r["path"] for r in json.loads(done.stdout)] == ["migrations/2_index.up.sql"]


def test_a_directory_argument_lints_the_sql_files_under_it(project: Path) -> None:
    write(project, "1_customers.up.sql", SAFE_UP)
    write(project, "2_index.up.sql", UNSAFE_UP)
    (project / "migrations" / "postgres").mkdir()
    write(project, "postgres/3_index.up.sql", "DROP INDEX orders_at_idx;\n")
    write(project, "README.md", UNSAFE_UP)
    for arg in ("migrations", "migrations/"):
        done = run_lint(project, "--format", "json", "--dir", "nowhere", arg)
        assert done.returncode == 1, done.stderr
        assert [(r["path"], r["rule"]) for r in json.loads(done.stdout)] == [
            ("migrations/2_index.up.sql", "LG101"), ("migrations/postgres/3_index.up.sql", "LG102"),
        ]


def test_unparsable_file_is_one_lg000_finding_with_exit_2(project: Path) -> None:
    write(project, "1_customers.up.sql", SAFE_UP)
    name = write(project, "2_broken.up.sql", "SELECT 1;\nALTER TABLE customers ADD COLUMN;\n")
    done = run_lint(project, "--format", "json")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (record,) = json.loads(done.stdout)
    assert (record["path"], record["line"], record["column"], record["rule"]) == (name, 2, 33, "LG000")
    assert "syntax error" in record["message"]


def test_non_utf8_file_is_one_lg000_finding_with_exit_2(project: Path) -> None:
    name = write(project, "1_latin1.up.sql", b"SELECT 1;\n-- caf\xe9\n")
    done = run_lint(project, name)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stdout.splitlines()[0] == f"{name}:2:7: LG000 not UTF-8 text (byte 0xe9)"


def test_missing_file_is_one_lg000_finding_and_missing_dir_exits_2(project: Path) -> None:
    done = run_lint(project, "migrations/9_gone.up.sql")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stdout.splitlines()[0].startswith("migrations/9_gone.up.sql:1:1: LG000 cannot read the file")
    missing_dir = run_lint(project, "--dir", "nowhere")
    assert (missing_dir.returncode, missing_dir.stdout) == (2, "")
    assert missing_dir.stderr.strip() == "nowhere:1:1: migrations directory not found"


@pytest.mark.parametrize("args", [["--format", "xml"], ["--pg-version", "99"]])
def test_bad_flags_exit_2_without_a_traceback(project: Path, args: list[str]) -> None:
    write(project, "1_customers.up.sql", SAFE_UP)
    done = run_lint(project, *args)
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr and done.stderr.strip()


@pytest.mark.parametrize(("args", "env", "line"), [
    (["--pg-version", "99"], {},
     "lockgate lint: target_pg_version=99: expected a PostgreSQL major version 10-18 (from --pg-version)"),
    ([], {"LOCKGATE_TARGET_PG_VERSION": "9.6"},
     "lockgate lint: target_pg_version='9.6': expected a PostgreSQL major version 10-18 "
     "(from environment variable LOCKGATE_TARGET_PG_VERSION)"),
])
def test_a_bad_setting_names_the_flag_or_the_variable_not_a_file(
    project: Path, args: list[str], env: dict[str, str], line: str
) -> None:
    done = subprocess.run([str(LOCKGATE), "lint", *args], cwd=project, capture_output=True, text=True, check=False,
                          env={**os.environ, **env})
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (2, "", [line])


def test_a_bad_setting_in_pyproject_names_its_line(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.lockgate]\ndir = 'migrations'\ntarget-pg-version = 3\n")
    done = run_lint(project)
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (2, "", [
        f"{project / 'pyproject.toml'}:3:1: target_pg_version=3: expected a PostgreSQL major version 10-18 "
        "([tool.lockgate])",
    ])


@pytest.mark.parametrize("in_a_set", [False, True])
def test_lint_path_imports_nothing_heavy(project: Path, in_a_set: bool) -> None:
    name = write(project, "1_index.up.sql", UNSAFE_UP)
    if in_a_set:  # a second migration in a git checkout: lint asks git which migrations are new
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
        subprocess.run(["git", "add", "-A"], cwd=project, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one"], cwd=project,
                       check=True)
        name = write(project, "2_alter.up.sql", "ALTER TABLE orders ALTER COLUMN total TYPE bigint;\n")
    probe = (
        "import sys\n"
        "from lockgate.controller.cli import main\n"
        f"code = main(['lint', '--format', 'text', {name!r}])\n"
        "sys.stderr.write(' '.join(sorted(sys.modules)) + f' exit={code}')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, check=False)
    loaded = set(done.stderr.split())
    assert "exit=1" in loaded and "lockgate.hooks.lint" in loaded
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(f"{h}.") for h in HEAVY_MODULES))
    assert heavy == []


@pytest.mark.parametrize("argv", [
    [], ["a.sql"], ["a.sql", "migrations/"], ["--dir", "m"], ["--dir=m", "a.sql", "b.sql"], ["a.sql", "--format=json"],
    ["--pg-version", "16", "--format", "sarif", "a.sql"], ["--dir=", "--dir", "x", "--pg-version=12"],
])
def test_plain_lint_arguments_are_what_argparse_reads(argv: list[str]) -> None:
    plain = lint_command.plain_arguments(argv)
    parsed = vars(build_parser(["lint", *argv]).parse_args(["lint", *argv]))
    assert plain is not None
    assert vars(plain) == {k: v for k, v in parsed.items() if k not in ("command", "version", "run")}


@pytest.mark.parametrize(("argv", "says"), [
    (["-h"], "usage: lockgate lint"), (["--pg", "16"], ""), (["--", "a.sql"], ""),
    (["--pg-version", "x.sql"], "invalid int value"), (["--format", "xml"], "invalid choice"),
    (["--dir"], "expected one argument"), (["--dir", "-x"], "expected one argument"),
    (["a.sql", "--dir", "m", "b.sql"], "unrecognized arguments: b.sql"),
])
def test_other_lint_arguments_are_left_to_argparse(argv: list[str], says: str, project: Path) -> None:
    assert lint_command.plain_arguments(argv) is None
    done = run_lint(project, *argv)
    assert "Traceback" not in done.stderr and says in done.stdout + done.stderr


def test_many_files_in_parallel_match_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for n in range(12):
        path = tmp_path / f"{n:03d}_m.up.sql"
        path.write_text(SAFE_UP.replace("customers", f"customers_{n}") + (UNSAFE_UP if n % 3 else "")
                        + ("SELEC;\n" if n == 7 else ""))
        paths.append(path)
    monkeypatch.setattr(lint, "_PARALLEL_FROM", 10**6)
    alone = lint_paths(paths, pg_version=15)
    monkeypatch.setattr(lint, "_PARALLEL_FROM", 2)
    assert lint._workers(len(paths), len(paths)) == min(len(os.sched_getaffinity(0)), len(paths))
    pooled = lint_paths(paths, pg_version=15)
    assert pooled == alone and pooled.bad_input
    assert len([f for f in pooled.findings if f.rule == "LG101"]) == 7


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("broken", ["000", "005", "011"])  # in this process's share, in the first child's, the last
def test_a_share_that_fails_fails_the_lint_and_leaves_no_process_behind(
    broken: str, workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = []
    for n in range(12):
        paths.append(tmp_path / f"{n:03d}_m.up.sql")
        paths[-1].write_text(SAFE_UP)
    real_group, real_fork, children = lint._lint_group, os.fork, []

    def failing(group: tuple[Path, ...], pg_version: int) -> list[lint.Finding]:
        if group[0].name.startswith(broken):
            raise ValueError(f"cannot lint {group[0].name}")
        return real_group(group, pg_version)

    def fork() -> int:
        pid = real_fork()
        children.append(pid)
        return pid

    monkeypatch.setattr(lint, "_lint_group", failing)
    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(lint, "_workers", lambda files, groups: workers)
    with pytest.raises(ValueError, match=f"cannot lint {broken}_m.up.sql"):
        lint_paths(paths, pg_version=15)
    assert len(children) == workers - 1
    for pid in children:  # each one waited for: none left running or unreaped
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_trees_are_the_same_whichever_decoder_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [e.sql for rule in lint.all_rules() for e in (*rule.bad, *rule.good)] + [
        "INSERT INTO t (a, b, c) VALUES ('é ☃ 𝄞 \\ \"', E'\\u00e9\\n', 1e400), (2147483648, -0.0, $$x$$);",
        "DO $$ BEGIN UPDATE t SET a = 'ü' WHERE id < 10; END $$;",
    ]
    trees = [[(s.kind, s.node) for s in parse_sql(Path("1_m.up.sql"), text).walk()] for text in texts]
    monkeypatch.setattr(sqlmodel, "_loads", sqlmodel._loads)  # put back after the test
    sqlmodel.decode_in_bulk()
    assert sqlmodel._loads is not json.loads
    assert [[(s.kind, s.node) for s in parse_sql(Path("1_m.up.sql"), text).walk()] for text in texts] == trees


def test_the_console_script_prints_every_finding_of_many_files_before_it_exits(tmp_path: Path) -> None:
    for n in range(200):  # above the threshold: workers, and orjson
        (tmp_path / f"{n:03d}_m.up.sql").write_text(UNSAFE_UP.replace("orders_at_idx", f"orders_{n}_idx"))
    names = sorted(p.name for p in tmp_path.iterdir())
    for command in ([str(LOCKGATE)], [sys.executable, "-m", "lockgate.controller"]):
        done = subprocess.run([*command, "lint", *names], cwd=tmp_path, capture_output=True, text=True, check=False)
        assert done.returncode == 1 and done.stderr == ""
        *lines, summary = done.stdout.splitlines()
        assert summary == "Found 200 problems in 200 files."
        assert len(lines) == 200 and all(" LG101 " in line for line in lines)
        assert [line.split(":")[0] for line in lines] == names


def test_linting_makes_no_reference_cycles_so_the_collector_can_rest(tmp_path: Path) -> None:
    """lint_paths turns the cyclic collector off while it runs: that is only safe while a linted file
    leaves no cycles behind, which would otherwise pile up until the process ends."""
    sqls = [e.sql for rule in lint.all_rules() for e in (*rule.bad, *rule.good) if e.file == "up"]
    paths = []
    for n, sql in enumerate(sqls):
        paths.append(tmp_path / f"{n:04d}_m.up.sql")
        paths[-1].write_text(sql)
    lint_paths(paths[:3], pg_version=15)  # caches and compiled patterns made once
    gc.collect()
    gc.disable()
    try:
        lint_paths(paths, pg_version=15)
        assert not gc.isenabled()  # left as it was found
        assert len(paths) > 150 and gc.collect() < 50
    finally:
        gc.enable()
    lint_paths(paths[:3], pg_version=15)
    assert gc.isenabled()


def test_workers_get_contiguous_shares_of_about_the_same_size(tmp_path: Path) -> None:
    sizes = [6000, *[100] * 60]  # one large migration, then sixty small ones
    groups = []
    for n, size in enumerate(sizes):
        path = tmp_path / f"{n:03d}_m.up.sql"
        path.write_text("-" * size)
        groups.append((path,))
    shares = lint._split(groups, 2)
    assert [g for share in shares for g in share] == groups  # every file once, in order
    assert [len(share) for share in shares] == [1, 60]  # by count it would have been 31 and 30
    assert [len(share) for share in lint._split(groups[1:], 2)] == [30, 30]
    assert [len(share) for share in lint._split(groups[1:], 3)] == [20, 20, 20]


def test_lint_never_follows_a_symbolic_link_out_of_the_repository(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "secret.sql"
    outside.parent.mkdir()
    outside.write_text("CREATE INDEX i ON t (c);\n")
    repo = tmp_path / "repo"
    (repo / "migrations").mkdir(parents=True)
    (repo / "migrations" / "1_a.up.sql").symlink_to(outside)
    (repo / "migrations" / "2_b.up.sql").write_text("SELECT 1;\n")

    for args in (["lint"], ["lint", "migrations"], ["lint", "migrations/1_a.up.sql"]):
        done = run_lint(repo, *args[1:])
        assert done.returncode == 2, (args, done)
        assert done.stderr == "migrations/1_a.up.sql:1:1: a symbolic link out of the repository; " \
                              "lockgate does not follow it\n", args
        assert done.stdout == ""


def test_a_directory_linked_out_of_the_repository_is_refused_and_links_inside_are_read(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "1_a.up.sql").write_text("CREATE INDEX i ON t (c);\n")
    repo = tmp_path / "repo"
    (repo / "shared").mkdir(parents=True)
    (repo / "shared" / "2_b.up.sql").write_text("CREATE INDEX j ON t (c);\n")
    (repo / "vendored").symlink_to(outside)
    (repo / "local").symlink_to(repo / "shared")
    (repo / "local" / "3_c.up.sql").symlink_to(repo / "shared" / "2_b.up.sql")

    done = run_lint(repo, "vendored/1_a.up.sql", "local/2_b.up.sql")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "vendored/1_a.up.sql:1:1: a symbolic link out of the repository; " \
                          "lockgate does not follow it\n"
    inside = run_lint(repo, "local/2_b.up.sql", "local/3_c.up.sql")
    assert inside.returncode == 1 and inside.stdout.count("LG101") == 2, inside
