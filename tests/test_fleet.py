"""`lockgate sync --fleet`: one migration set rolled out to many databases of one throwaway
server in waves, with one aggregated note per commit."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import conninfo

from lockgate.controller import config, fastpath
from lockgate.controller.fleet import config as fleet_config
from lockgate.controller.fleet import run as fleet_run
from lockgate.controller.pgserver import create_database, drop_database
from lockgate.controller.status import parse
from lockgate.hooks.errors import UsageError
from tests.clirun import lockgate
from tests.conftest import Server
from tests.gitrepos import Clone, Origin
from tests.loopbackhttp import serving_posts
from tests.syncsetup import NOTE, V2, V3, V4, columns, ledger, merged, notes_seen_from_a_fresh_clone, positive_qty

NAMES = ["tenant-0", "tenant-1", "tenant-2", "tenant-3"]


@pytest.fixture
def tenants(pg_server: Server, pg_template: str) -> Iterator[dict[str, str]]:
    """Four databases of their own on the one server, by target name."""
    dbs = {name: f"lockgate_fleet_{os.getpid()}_{name.replace('-', '_')}" for name in NAMES}
    dsns = {name: create_database(pg_server.admin_dsn, db, template=pg_template) for name, db in dbs.items()}
    yield dsns
    for db in dbs.values():
        drop_database(pg_server.admin_dsn, db)


def fleet_file(tmp_path: Path, tenants: dict[str, str], rest: dict[str, int]) -> Path:
    """A canary wave of tenant-0, then the others in one wave with `rest` (parallel, max_failures)."""
    first, *others = tenants
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({"waves": [
        {"name": "canary", "targets": [{"name": first, "dsn": tenants[first]}]},
        {"name": "rest", **rest, "targets": [{"name": n, "dsn": tenants[n]} for n in others]},
    ]}))
    return path


def sync_fleet(origin: Origin, tmp_path: Path, path: Path, **extra: str) -> tuple[int, list[str]]:
    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", fleet=path, **extra)
    lines: list[str] = []
    result = fleet_run.run(settings, fleet_config.load(path), say=lines.append)
    return result.exit_code, lines


def on(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


def test_a_merge_reaches_every_target_canary_first_then_a_parallel_wave(
    origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path
) -> None:
    path = fleet_file(tmp_path, tenants, {"parallel": 3})
    assert sync_fleet(origin, tmp_path, path)[0] == 0
    merge = merged(dev, "note", V2, "add_note", NOTE)
    pushed: list[tuple[str, str]] = []

    def pushgateway(url: str, headers: Message, body: bytes) -> tuple[int, bytes]:
        pushed.append((url, body.decode()))
        return 200, b""

    with serving_posts(pushgateway) as gateway:
        code, lines = sync_fleet(origin, tmp_path, path, metrics_push_url=gateway)

    assert code == 0, lines
    # One push of the pass's per-target metrics, as a Pushgateway job.
    ((url, body),) = pushed
    assert url == "/metrics/job/lockgate_fleet"
    for name in NAMES:
        assert f'lockgate_fleet_target_in_sync{{state="in_sync",target="{name}"}} 1.0' in body
        assert f'lockgate_fleet_target_batches{{target="{name}"}} 0.0' in body
        assert f'lockgate_fleet_target_duration_seconds{{target="{name}"}} ' in body
    for name, dsn in tenants.items():
        with on(dsn) as conn:
            assert columns(conn, "items") == ["id", "qty", "note"], name
            assert ledger(conn)[V2] == ("applied", merge, None)
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
    assert text.startswith(f"lockgate: {V2}_add_note applied on 4/4 targets\n"), text
    (record,) = parse(text).migrations
    assert record.outcome == "applied"
    assert [(t.name, t.outcome) for t in record.targets] == [(n, "applied") for n in NAMES]
    # The canary ran alone, before the wave.
    applied = [line for line in lines if "applied" in line and line.startswith("[")]
    assert applied[0].startswith("[tenant-0]")
    # A second pass finds every target in sync and writes nothing.
    notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")
    assert sync_fleet(origin, tmp_path, path)[0] == 0
    assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before


def test_a_gate_failing_on_one_target_rolls_it_back_and_halts_the_fleet(
    origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path
) -> None:
    path = fleet_file(tmp_path, tenants, {"parallel": 1, "max_failures": 1})
    assert sync_fleet(origin, tmp_path, path)[0] == 0
    with on(tenants["tenant-2"]) as conn:
        conn.execute("INSERT INTO items VALUES (1, 0)")  # breaks qty > 0 on this target only
    merge = merged(dev, "qty", V3, "positive_qty", positive_qty())

    code, lines = sync_fleet(origin, tmp_path, path)

    assert code == 1, lines
    with on(tenants["tenant-2"]) as conn:
        assert ledger(conn)[V3][0] == "failed"
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'items_qty_check'").fetchone() == (0,)
    with on(tenants["tenant-3"]) as conn:
        assert V3 not in ledger(conn)  # halted: never started
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
    summary = text.splitlines()[0]
    assert summary.startswith(f"lockgate: {V3}_positive_qty applied on 2/4 targets: failed on tenant-2 ("), summary
    assert "qty_ok" in summary and summary.endswith("not started: tenant-3")
    (record,) = parse(text).migrations
    assert record.outcome == "failed"
    assert {t.name: t.outcome for t in record.targets} == {
        "tenant-0": "applied", "tenant-1": "applied", "tenant-2": "failed", "tenant-3": "not_started",
    }
    # The plan shows each target's state: the halted one still has the migration pending.
    migrations = str(dev.path / "migrations")
    shown = lockgate("plan", "--fleet", str(path), "--dir", migrations, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    halted = shown.stdout.split("== tenant-3", 1)[1]
    assert f"{V3}_positive_qty" in halted
    # So does the status: each target's ledger state beside the note's word for it.
    status = lockgate("status", "--repo", origin.url, "--fleet", str(path), cwd=tmp_path,
                      env={"LOCKGATE_CACHE_DIR": str(tmp_path / "status-cache")})
    assert status.returncode == 1, status.stderr  # the note says failed
    assert target_rows(status.stdout) == [
        ["TARGET", "VERSION", "NOTE", "LEDGER"],
        ["tenant-0", V3, "applied", "applied"],
        ["tenant-1", V3, "applied", "applied"],
        ["tenant-2", V3, "failed", f"failed before: runs again only with changed files or `lockgate retry {V3}`"],
        ["tenant-3", V3, "not started", "pending"],
    ]

    # The failure is sticky on its target: fixed there and retried, the next pass goes on.
    with on(tenants["tenant-2"]) as conn:
        conn.execute("DELETE FROM items WHERE qty = 0")
    assert lockgate("retry", V3, "--fleet", str(path), "--dir", migrations, cwd=tmp_path).returncode == 2
    retried = lockgate("retry", V3, "--fleet", str(path), "--target", "tenant-2", "--dir", migrations, cwd=tmp_path)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert sync_fleet(origin, tmp_path, path)[0] == 0
    with on(tenants["tenant-3"]) as conn:
        assert ledger(conn)[V3][0] == "applied"
    assert notes_seen_from_a_fresh_clone(origin, tmp_path, merge).startswith(
        f"lockgate: {V3}_positive_qty applied on 4/4 targets\n")


def test_a_revert_rolls_every_target_back(origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path) -> None:
    path = fleet_file(tmp_path, tenants, {"parallel": 2})
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert sync_fleet(origin, tmp_path, path)[0] == 0
    revert = dev.revert(merge)
    dev.push()

    code, lines = sync_fleet(origin, tmp_path, path)

    assert code == 0, lines
    for dsn in tenants.values():
        with on(dsn) as conn:
            assert columns(conn, "items") == ["id", "qty"]
            assert ledger(conn)[V2][0] == "rolled_back"
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, revert)
    assert text.startswith(f"lockgate: {V2}_add_note rolled back on 4/4 targets\n"), text
    # In reverse wave order: the canary last.
    rolled = [line.split("]")[0] for line in lines if "rolled back" in line and line.startswith("[")]
    assert rolled[-1] == "[tenant-0"


def target_rows(status_out: str) -> list[list[str]]:
    """The per-target table of `lockgate status --fleet`, cells split where two spaces part them."""
    lines = ("TARGET " + status_out.split("\nTARGET ", 1)[1]).splitlines()
    return [re.split(r"\s{2,}", line) for line in lines if "  " in line and ": unreachable: " not in line]


def test_status_names_an_unreachable_target_on_its_own_line(
    origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path, pg_server: Server
) -> None:
    path = fleet_file(tmp_path, tenants, {"parallel": 2})
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert sync_fleet(origin, tmp_path, path)[0] == 0
    fleet = yaml.safe_load(path.read_text())
    gone = conninfo.make_conninfo(pg_server.admin_dsn, dbname=f"lockgate_fleet_{os.getpid()}_gone")
    fleet["waves"][1]["targets"] += [{"name": "tenant-gone", "dsn": gone}, {"name": "tenant-env", "dsn_env": "NO_DSN"}]
    path.write_text(yaml.safe_dump(fleet))
    env = {"LOCKGATE_CACHE_DIR": str(tmp_path / "status-cache")}

    shown = lockgate("status", "--repo", origin.url, "--fleet", str(path), merge, cwd=tmp_path, env=env)

    assert shown.returncode == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert target_rows(shown.stdout) == [["TARGET", "VERSION", "NOTE", "LEDGER"]] + [
        [name, V2, "applied", "applied"] for name in NAMES]
    last = shown.stdout.splitlines()[-2:]
    assert last[0].startswith("tenant-gone: unreachable: cannot connect to the database: ") and "gone" in last[0]
    assert last[1] == "tenant-env: unreachable: fleet target tenant-env: dsn_env NO_DSN is not set"
    as_json = json.loads(lockgate("status", "--repo", origin.url, "--fleet", str(path), "--format", "json", merge,
                                  cwd=tmp_path, env=env).stdout)
    assert [(t["name"], t["error"] is None) for t in as_json["targets"]] == [
        *((name, True) for name in NAMES), ("tenant-gone", False), ("tenant-env", False)]
    assert as_json["targets"][0]["migrations"] == {V2: {"note": "applied", "state": "applied", "detail": "applied"}}


def test_an_unreachable_target_fails_on_its_own_and_the_others_go_on(
    origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path, pg_server: Server
) -> None:
    path = fleet_file(tmp_path, tenants, {"parallel": 3})
    fleet = yaml.safe_load(path.read_text())
    gone = conninfo.make_conninfo(pg_server.admin_dsn, dbname=f"lockgate_fleet_{os.getpid()}_gone")
    fleet["waves"][1]["targets"].append({"name": "tenant-gone", "dsn": gone})
    path.write_text(yaml.safe_dump(fleet))
    merge = merged(dev, "note", V2, "add_note", NOTE)
    pushed: list[str] = []

    def pushgateway(url: str, headers: Message, body: bytes) -> tuple[int, bytes]:
        pushed.append(body.decode())
        return 200, b""

    with serving_posts(pushgateway) as gateway:
        code, lines = sync_fleet(origin, tmp_path, path, metrics_push_url=gateway)

    assert code == 1, lines
    for dsn in tenants.values():
        with on(dsn) as conn:
            assert ledger(conn)[V2][0] == "applied"
    summary = notes_seen_from_a_fresh_clone(origin, tmp_path, merge).splitlines()[0]
    assert summary.startswith(
        f"lockgate: {V2}_add_note applied on 4/5 targets: failed on tenant-gone (cannot connect to the database: "
    ), summary
    (body,) = pushed
    assert 'lockgate_fleet_target_in_sync{state="failed",target="tenant-gone"} 0.0' in body


def test_a_target_written_to_during_the_pass_is_not_recorded_as_in_sync(
    origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path
) -> None:
    path = fleet_file(tmp_path, tenants, {"parallel": 1})
    merged(dev, "note", V2, "add_note", NOTE)
    hotfix = origin.clone("hotfix")  # an operator's hand-applied migration, never on the branch
    hotfix.add_migration(V4, "hand_fix", up="CREATE TABLE hand_fix (id int);\n", down="DROP TABLE hand_fix;\n",
                         validate="-- Gate: it exists.\nSELECT to_regclass('hand_fix') IS NOT NULL AS there;\n")
    applied_by_hand: list[int] = []

    def say(line: str) -> None:
        # The canary is done and the pass is on the next wave: the canary's ledger moves under it.
        if line.startswith("[tenant-1] applying") and not applied_by_hand:
            done = lockgate("apply", "--dsn", tenants["tenant-0"], "--dir", str(hotfix.path / "migrations"),
                            cwd=tmp_path)
            applied_by_hand.append(done.returncode)

    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", fleet=path)
    assert fleet_run.run(settings, fleet_config.load(path), say=say).exit_code == 0
    assert applied_by_hand == [0]
    with on(tenants["tenant-0"]) as conn:
        assert ledger(conn)[V4][0] == "applied"

    # The next pass must look: the canary holds a migration the branch never had.
    again = lockgate("sync", "--repo", origin.url, "--fleet", str(path), cwd=tmp_path,
                     env={"LOCKGATE_CACHE_DIR": str(tmp_path / "cache")})
    assert "nothing changed" not in again.stdout, again.stdout
    assert again.returncode == 1
    assert f"{V4}_hand_fix" in again.stdout and "never removed by a commit" in again.stdout


def test_only_targets_a_pass_left_in_sync_get_the_short_cut(
    origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path
) -> None:
    path = fleet_file(tmp_path, tenants, {"parallel": 1, "max_failures": 1})
    assert sync_fleet(origin, tmp_path, path)[0] == 0
    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", fleet=path)
    assert all(fastpath.unchanged(settings, dsn) for dsn in tenants.values())
    with on(tenants["tenant-2"]) as conn:
        conn.execute("INSERT INTO items VALUES (1, 0)")
    merged(dev, "qty", V3, "positive_qty", positive_qty())

    assert sync_fleet(origin, tmp_path, path)[0] == 1

    # tenant-2 failed, tenant-3 was not started: neither may skip the next pass, whatever they held before.
    assert {name: fastpath.unchanged(settings, dsn) is not None for name, dsn in tenants.items()} == {
        "tenant-0": True, "tenant-1": True, "tenant-2": False, "tenant-3": False}


@pytest.mark.parametrize(("text", "expected"), [
    ("waves:\n  - name: a\n    targets:\n      - {name: t0}\n",
     "fleet.yaml:4: waves.0.targets.0: give exactly one of dsn and dsn_env"),
    ("waves:\n  - name: a\n    parallel: 0\n    targets:\n      - {name: t0, dsn: 'dbname=x'}\n",
     "fleet.yaml:3: waves.0.parallel: Input should be greater than or equal to 1"),
    ("waves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'postgresql://app:secret@db/x'}\n",
     "fleet.yaml:4: waves.0.targets.0.dsn: holds a password; passwords never go in the fleet file"),
    ("waves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'dbname=x', colour: red}\n",
     "fleet.yaml:4: waves.0.targets.0.colour: Extra inputs are not permitted"),
    ("executor: kubernetes\nwaves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'dbname=x'}\n",
     "fleet.yaml:1: kubernetes: executor: kubernetes needs this block (at least its image)"),
    ("executor: kubernetes\nkubernetes:\n  image: x\n  resources: {limits: {cpu: lots, memory: 1Gi}}\n"
     "waves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'dbname=x'}\n",
     "fleet.yaml:4: kubernetes.resources.limits.cpu: String should match pattern"),
    ("executor: cluster\nwaves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'dbname=x'}\n",
     "fleet.yaml:1: executor: Input should be 'local' or 'kubernetes'"),
    ("kubernetes: {image: x}\nwaves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'dbname=x'}\n",
     "fleet.yaml:1: kubernetes: only for executor: kubernetes"),
])
def test_a_bad_fleet_file_is_one_line_naming_the_key_with_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        fleet_config.load(path)
    assert str(caught.value).startswith(f"{path.parent}/{expected}"), caught.value
    assert "secret" not in str(caught.value)
    done = lockgate("sync", "--repo", str(tmp_path), "--fleet", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"lockgate sync: {caught.value}"]


def test_the_cli_refuses_a_bad_fleet_and_fleet_with_dsn_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("waves: []\n")
    done = lockgate("sync", "--repo", str(tmp_path), "--fleet", str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"lockgate sync: {path}:1: waves: List should have at least 1 item after validation, not 0"]
    done = lockgate("sync", "--repo", str(tmp_path), "--dsn", "dbname=x", cwd=tmp_path,
                    env={"LOCKGATE_FLEET": str(path)})
    assert done.returncode == 2
    assert "excludes --dsn" in done.stderr
