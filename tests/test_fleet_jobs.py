"""`executor: kubernetes`: the coordinator's wave Jobs through the official client against kmock's
fake API server, with the test playing Kubernetes' Job controller: it runs each index's pod
command (`lockgate sync --fleet … --wave … --at …`) as a real process against real databases of
one throwaway server, then sets the Job's status in kmock.

The client is synchronous and the fake server runs on the test's event loop, so the coordinator
runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kmock import KubernetesEmulator
from kubernetes.client import ApiClient, Configuration
from psycopg import conninfo

from lockgate.controller import config, fastpath
from lockgate.controller.fleet import config as fleet_config
from lockgate.controller.fleet import jobs, jobspec
from lockgate.controller.kube import API_PERMISSIONS, ClusterEventRecorder, Pod, Reason
from lockgate.controller.status import parse
from tests.clirun import LOCKGATE, lockgate
from tests.conftest import Server
from tests.gitrepos import Clone, Origin
from tests.syncsetup import (
    NOTE,
    V1,
    V2,
    V3,
    V4,
    columns,
    events,
    ledger,
    merged,
    notes_seen_from_a_fresh_clone,
    positive_qty,
)
from tests.test_fleet import NAMES, fleet_file, on, tenants
from tests.test_kube_events import permissions_used

__all__ = ["tenants"]  # the fixture, used by name

NAMESPACE = "shop"
IMAGE = "registry.example.com/platform/lockgate:0.1.0"
JOBS = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def kubernetes_fleet(tmp_path: Path, tenants: dict[str, str], rest: dict[str, int]) -> Path:
    """test_fleet's canary-then-rest fleet, run by the Kubernetes executor."""
    path = fleet_file(tmp_path, tenants, rest)
    waves = yaml.safe_load(path.read_text())
    kubernetes = {"image": IMAGE, "env_from_secrets": ["lockgate-fleet-env"]}
    path.write_text(yaml.safe_dump({"executor": "kubernetes", "kubernetes": kubernetes, **waves}, sort_keys=False))
    return path


def interval_list(indexes: Iterable[int]) -> str:
    """A Job status's index list as Kubernetes writes it: "0,2-4"."""
    runs: list[list[int]] = []
    for index in sorted(indexes):
        if runs and runs[-1][1] == index - 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


class JobController:
    """Kubernetes' Job controller, as far as the wave Jobs need it: each Job's indexes run in
    order, one pod process each, until more indexes failed than maxFailedIndexes allows; then the
    Job's status (completed and failed indexes, the ending condition) is set in kmock."""

    def __init__(self, kmock: KubernetesEmulator, origin: Origin, tmp_path: Path) -> None:
        self.kmock, self.origin, self.tmp_path = kmock, origin, tmp_path
        self.paused = False  # while set, no pod starts (a busy cluster, a pending image pull)
        self.pods: list[tuple[str, int, int]] = []  # (Job, index, exit code) of every pod run
        self.output: list[str] = []
        self._seen: set[str] = set()

    def jobs(self) -> dict[str, Any]:
        return {key[2]: obj for key, obj in self.kmock.objects.items() if key[0].plural == "jobs"}

    async def step(self) -> None:
        for name, job in self.jobs().items():
            if name not in self._seen and not self.paused:
                self._seen.add(name)
                await self._run(name, job)

    async def _run(self, name: str, job: Any) -> None:
        spec = job["spec"]
        args = spec["template"]["spec"]["containers"][0]["args"]
        completed, failed = [], []
        for index in range(spec["completions"]):
            if len(failed) > spec["maxFailedIndexes"]:
                break
            code = await self._pod(name, index, args)
            (completed if code == 0 else failed).append(index)
        ending = "Failed" if failed else "Complete"
        job.patch({"status": {
            "completedIndexes": interval_list(completed), "failedIndexes": interval_list(failed),
            "succeeded": len(completed), "failed": len(failed),
            "conditions": [{"type": ending, "status": "True"}],
        }})

    async def _pod(self, job: str, index: int, args: list[str]) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKGATE_")} | {
            "JOB_COMPLETION_INDEX": str(index), "LOCKGATE_REPO": self.origin.url,
            "LOCKGATE_CACHE_DIR": str(self.tmp_path / "pods" / f"{job}-{index}"),
        }
        process = await asyncio.create_subprocess_exec(
            str(LOCKGATE), *args, env=env, cwd=self.tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        self.output.append(out.decode())
        assert process.returncode is not None
        self.pods.append((job, index, process.returncode))
        return process.returncode

    async def coordinate(self, path: Path, stop: threading.Event | None = None) -> tuple[int, list[str]]:
        """One coordinator pass (`lockgate sync --fleet` in the sync pod) while this controller plays."""
        settings = config.load(repo=self.origin.url, cache_dir=self.tmp_path / "cache", fleet=path)
        lines: list[str] = []
        with ApiClient(Configuration(host=str(self.kmock.url).rstrip("/"))) as client:
            waves = jobs.WaveJobs(client, NAMESPACE, lines.append, poll_s=0.02)
            task = asyncio.ensure_future(asyncio.to_thread(
                jobs.run, settings, fleet_config.load(path), say=lines.append, jobs=waves, stop=stop))
            while not task.done():
                await self.step()
                await asyncio.sleep(0.02)
            return (await task).exit_code, lines


@pytest.fixture
def controller(kmock: KubernetesEmulator, origin: Origin, tmp_path: Path) -> JobController:
    return JobController(kmock, origin, tmp_path)


def created(kmock: KubernetesEmulator) -> list[dict[str, Any]]:
    """The Jobs the coordinator posted, in order (a refused duplicate included)."""
    return [request.data for request in kmock[f"post {JOBS}"]]


@pytest.mark.asyncio
async def test_a_merge_reaches_every_target_through_one_indexed_job_per_wave(
    kmock: KubernetesEmulator, controller: JobController, origin: Origin, dev: Clone, tenants: dict[str, str],
    tmp_path: Path,
) -> None:
    path = kubernetes_fleet(tmp_path, tenants, {"parallel": 3, "max_failures": 2})
    assert (await controller.coordinate(path))[0] == 0
    merge = merged(dev, "note", V2, "add_note", NOTE)
    posted_before = len(created(kmock))

    code, lines = await controller.coordinate(path)

    assert code == 0, lines + controller.output
    canary, rest = created(kmock)[posted_before:]
    for job, wave, targets, parallel, max_failed in ((canary, "canary", 1, 1, 0), (rest, "rest", 3, 3, 1)):
        spec, pod = job["spec"], job["spec"]["template"]["spec"]
        assert spec["completionMode"] == "Indexed"
        assert (spec["completions"], spec["parallelism"]) == (targets, parallel)
        assert spec["backoffLimitPerIndex"] == 0
        assert spec["maxFailedIndexes"] == max_failed  # halts once max_failures targets failed
        assert pod["restartPolicy"] == "Never"
        assert pod["serviceAccountName"] == "lockgate"
        [container] = pod["containers"]
        assert container["image"] == IMAGE
        assert container["args"] == ["sync", "--fleet", str(path), "--wave", wave, "--at", merge]
        assert {"secretRef": {"name": "lockgate-fleet-env"}} in container["envFrom"]
        assert {"configMapRef": {"name": "lockgate-config"}} in container["envFrom"]
        fleet_mount = next(m for m in container["volumeMounts"] if m["name"] == "fleet")
        assert fleet_mount["mountPath"] == str(path.parent)
        name = job["metadata"]["name"]
        assert len(name) <= jobspec.NAME_LIMIT and DNS_LABEL.match(name) and merge[:12] in name and wave in name
        for version in ("1.30", kubernetes_validate.latest_version()):
            kubernetes_validate.validate({**job, "metadata": {**job["metadata"], "namespace": NAMESPACE}},
                                         version, strict=True)
    # Each target ran once, in its own pod, the canary's first.
    ran = [(job, index) for job, index, code in controller.pods if job in (canary["metadata"]["name"],
                                                                         rest["metadata"]["name"])]
    assert ran == [(canary["metadata"]["name"], 0)] + [(rest["metadata"]["name"], i) for i in range(3)]
    for name, dsn in tenants.items():
        with on(dsn) as conn:
            assert columns(conn, "items") == ["id", "qty", "note"], name
            assert ledger(conn)[V2] == ("applied", merge, None)
    # The pods wrote no note; the coordinator wrote one, for the whole fleet.
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, merge)
    assert text.startswith(f"lockgate: {V2}_add_note applied on 4/4 targets\n"), text
    (record,) = parse(text).migrations
    assert [(t.name, t.outcome) for t in record.targets] == [(n, "applied") for n in NAMES]

    # The next tick at the same head meets both Jobs, finished: it reads them, starts no pod,
    # and writes nothing.
    notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")
    pods_before = len(controller.pods)
    code, lines = await controller.coordinate(path)
    assert code == 0, lines
    assert [job["metadata"]["name"] for job in created(kmock)[-2:]] == [canary["metadata"]["name"],
                                                                       rest["metadata"]["name"]]
    assert len(controller.pods) == pods_before
    assert sum("already there" in line for line in lines) == 2
    assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before

    # Everything the coordinator called, with an Event besides, is what the Role grants: no more.
    with ApiClient(Configuration(host=str(kmock.url).rstrip("/"))) as client:
        await asyncio.to_thread(ClusterEventRecorder(client, Pod(NAMESPACE, "lockgate-sync-1")).emit,
                                reason=Reason.APPLIED, message="m", warning=False)
    assert permissions_used(kmock) == set(API_PERMISSIONS)


@pytest.mark.asyncio
async def test_a_failed_index_halts_the_fleet_and_the_note_names_the_target(
    kmock: KubernetesEmulator, controller: JobController, origin: Origin, dev: Clone, tenants: dict[str, str],
    tmp_path: Path,
) -> None:
    path = kubernetes_fleet(tmp_path, tenants, {"parallel": 1, "max_failures": 1})
    assert (await controller.coordinate(path))[0] == 0
    with on(tenants["tenant-2"]) as conn:
        conn.execute("INSERT INTO items VALUES (1, 0)")  # breaks qty > 0 on this target only
    merge = merged(dev, "qty", V3, "positive_qty", positive_qty())

    code, lines = await controller.coordinate(path)

    assert code == 1, lines
    rest = created(kmock)[-1]["metadata"]["name"]
    assert [(index, exit_code) for job, index, exit_code in controller.pods if job == rest] == [(0, 0), (1, 1)]
    with on(tenants["tenant-2"]) as conn:
        assert ledger(conn)[V3][0] == "failed"
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'items_qty_check'").fetchone() == (0,)
    with on(tenants["tenant-3"]) as conn:
        assert V3 not in ledger(conn)  # halted: its index never ran
    summary = notes_seen_from_a_fresh_clone(origin, tmp_path, merge).splitlines()[0]
    assert summary.startswith(f"lockgate: {V3}_positive_qty applied on 2/4 targets: failed on tenant-2 ("), summary
    assert "qty_ok" in summary and summary.endswith("not started: tenant-3")
    assert lines[-1].endswith(": 2/4 targets in sync")

    # Fixed and retried on its target, the wave gets a Job of its own (the failed one stays as it
    # ended), and the fleet goes on; the canary's finished Job is read, not run again.
    with on(tenants["tenant-2"]) as conn:
        conn.execute("DELETE FROM items WHERE qty = 0")
    migrations = str(dev.path / "migrations")
    retried = lockgate("retry", V3, "--fleet", str(path), "--target", "tenant-2", "--dir", migrations, cwd=tmp_path)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    pods_before = len(controller.pods)
    code, lines = await controller.coordinate(path)
    assert code == 0, lines + controller.output
    again = created(kmock)[-1]["metadata"]["name"]
    assert again != rest
    assert [(job, index) for job, index, _ in controller.pods[pods_before:]] == [(again, i) for i in range(3)]
    for dsn in tenants.values():
        with on(dsn) as conn:
            assert ledger(conn)[V3][0] == "applied"
    assert notes_seen_from_a_fresh_clone(origin, tmp_path, merge).startswith(
        f"lockgate: {V3}_positive_qty applied on 4/4 targets\n")


@pytest.mark.asyncio
async def test_an_unreachable_target_fails_on_its_own_and_the_others_go_on(
    kmock: KubernetesEmulator, controller: JobController, origin: Origin, dev: Clone, tenants: dict[str, str],
    tmp_path: Path, pg_server: Server,
) -> None:
    path = kubernetes_fleet(tmp_path, tenants, {"parallel": 3})
    fleet = yaml.safe_load(path.read_text())
    gone = conninfo.make_conninfo(pg_server.admin_dsn, dbname=f"lockgate_fleet_{os.getpid()}_gone")
    fleet["waves"][1]["targets"].append({"name": "tenant-gone", "dsn": gone})
    path.write_text(yaml.safe_dump(fleet, sort_keys=False))
    merge = merged(dev, "note", V2, "add_note", NOTE)

    code, lines = await controller.coordinate(path)

    assert code == 1, lines + controller.output  # as the local executor: a failed target, not bad input
    assert not any("Traceback" in text for text in lines + controller.output), lines + controller.output
    rest = created(kmock)[-1]["metadata"]["name"]
    assert [(index, exit_code) for job, index, exit_code in controller.pods if job == rest] == [
        (0, 0), (1, 0), (2, 0), (3, 1)]
    for dsn in tenants.values():
        with on(dsn) as conn:
            assert ledger(conn)[V2] == ("applied", merge, None)
    summary = notes_seen_from_a_fresh_clone(origin, tmp_path, merge).splitlines()[0]
    assert summary.startswith(
        f"lockgate: {V2}_add_note applied on 4/5 targets: failed on tenant-gone (cannot connect to the database: "
    ), summary
    assert summary.endswith(")"), summary  # the reason is one line
    assert lines[-1].endswith(": 4/5 targets in sync"), lines


@pytest.mark.asyncio
async def test_a_restarted_coordinator_waits_for_the_running_job_instead_of_starting_another(
    kmock: KubernetesEmulator, controller: JobController, origin: Origin, dev: Clone, tenants: dict[str, str],
    tmp_path: Path,
) -> None:
    path = kubernetes_fleet(tmp_path, tenants, {"parallel": 2, "max_failures": 1})
    merge = merged(dev, "note", V2, "add_note", NOTE)
    # The canary's pod has not started when the coordinator stops (SIGTERM: the CronJob's deadline).
    stop = threading.Event()
    controller.paused = True

    async def stop_once_created() -> None:
        while not controller.jobs():
            await asyncio.sleep(0.02)
        stop.set()

    stopper = asyncio.ensure_future(stop_once_created())
    code, lines = await controller.coordinate(path, stop=stop)
    await stopper
    assert code == 1, lines
    [canary] = controller.jobs()
    assert not controller.pods
    assert V1 not in ledger_or_empty(tenants["tenant-0"])

    # The next coordinator meets the canary's Job, waits for it, and goes on; the Job controller
    # then runs the pod it had not started.
    controller.paused = False
    code, lines = await controller.coordinate(path)

    assert code == 0, lines + controller.output
    assert f"wave Job {canary}: already there, waiting for it" in lines
    names = [job["metadata"]["name"] for job in created(kmock)]
    assert names.count(canary) == 2 and len(set(names)) == 2  # the second create met the first Job
    assert len(controller.jobs()) == 2
    assert sorted((job, index) for job, index, _ in controller.pods) == sorted(
        [(canary, 0)] + [(names[-1], i) for i in range(3)])
    for dsn in tenants.values():
        with on(dsn) as conn:
            assert ledger(conn)[V2] == ("applied", merge, None)
            assert events(conn, V2).count("applied") == 1
    assert notes_seen_from_a_fresh_clone(origin, tmp_path, merge).startswith(
        f"lockgate: {V2}_add_note applied on 4/4 targets\n")


def ledger_or_empty(dsn: str) -> dict[str, Any]:
    with on(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('lockgate.migrations') IS NOT NULL").fetchone()
        return ledger(conn) if exists and exists[0] else {}


def test_a_wave_pod_without_its_index_is_one_line_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("executor: kubernetes\nkubernetes: {image: x}\n"
                    "waves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'dbname=x'}\n")
    done = lockgate("sync", "--repo", str(tmp_path), "--fleet", str(path), "--wave", "a", "--at", "0" * 40,
                    cwd=tmp_path, env={"JOB_COMPLETION_INDEX": "1"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lockgate sync: --wave runs one target of a wave Job: JOB_COMPLETION_INDEX '1' is not an index of wave a "
        "(1 targets)"]


def test_the_coordinator_outside_a_cluster_is_one_line_with_exit_2(tmp_path: Path, origin: Origin) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("executor: kubernetes\nkubernetes: {image: x}\n"
                    "waves:\n  - name: a\n    targets:\n      - {name: t0, dsn: 'dbname=x'}\n")
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    done = lockgate("sync", "--repo", origin.url, "--fleet", str(path), cwd=tmp_path,
                    env={**env, "LOCKGATE_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "lockgate sync: executor: kubernetes runs in a cluster's pod: not running in a Kubernetes cluster"]


@pytest.mark.asyncio
async def test_a_revert_rolls_every_target_back_last_wave_first(
    kmock: KubernetesEmulator, controller: JobController, origin: Origin, dev: Clone, tenants: dict[str, str],
    tmp_path: Path,
) -> None:
    path = kubernetes_fleet(tmp_path, tenants, {"parallel": 1})
    merge = merged(dev, "note", V2, "add_note", NOTE)
    assert (await controller.coordinate(path))[0] == 0
    revert = dev.revert(merge)
    dev.push()
    pods_before = len(controller.pods)

    code, lines = await controller.coordinate(path)

    assert code == 0, lines + controller.output
    rest, canary = created(kmock)[-2:]
    assert rest["spec"]["template"]["spec"]["containers"][0]["args"][-3:] == ["--at", revert, "--reverse"]
    assert canary["spec"]["template"]["spec"]["containers"][0]["args"][3:5] == ["--wave", "canary"]
    # Last wave first, its last target first: index 0 of the reversed wave is tenant-3.
    rolled = [line.split("]")[0] for line in controller.output[pods_before:] for line in line.splitlines()
              if "rolled back" in line and line.startswith("[")]
    assert rolled == ["[tenant-3", "[tenant-2", "[tenant-1", "[tenant-0"], controller.output[pods_before:]
    for dsn in tenants.values():
        with on(dsn) as conn:
            assert columns(conn, "items") == ["id", "qty"]
            assert ledger(conn)[V2][0] == "rolled_back"
    assert notes_seen_from_a_fresh_clone(origin, tmp_path, revert).startswith(
        f"lockgate: {V2}_add_note rolled back on 4/4 targets\n")


@pytest.mark.asyncio
async def test_a_refusal_in_a_wave_pod_is_on_the_note_and_halts_the_fleet(
    kmock: KubernetesEmulator, controller: JobController, origin: Origin, dev: Clone, tenants: dict[str, str],
    tmp_path: Path,
) -> None:
    path = kubernetes_fleet(tmp_path, tenants, {"parallel": 3})
    assert (await controller.coordinate(path))[0] == 0
    # Committed without the hooks (`git commit --no-verify`): the lint rules refuse it in the pod.
    unsafe = dev.add_migration(V2, "index_qty", up="CREATE INDEX items_qty_idx ON items (qty);\n",
                               down="DROP INDEX items_qty_idx;\n", validate="SELECT true AS ok;\n")
    dev.push()

    code, lines = await controller.coordinate(path)

    assert code == 1, lines
    canary = created(kmock)[-1]
    assert canary["spec"]["template"]["spec"]["containers"][0]["args"][3:5] == ["--wave", "canary"]
    assert controller.pods[-1] == (canary["metadata"]["name"], 0, 1)
    text = notes_seen_from_a_fresh_clone(origin, tmp_path, unsafe)
    assert text.startswith(f"lockgate: {V2}_index_qty refused: migrations/{V2}_index_qty.up.sql:1:1: LG101 "), text
    (record,) = parse(text).migrations
    assert {t.name: t.outcome for t in record.targets} == {
        "tenant-0": "refused", "tenant-1": "not_started", "tenant-2": "not_started", "tenant-3": "not_started",
    }
    for dsn in tenants.values():
        assert V2 not in ledger_or_empty(dsn)

    # The next tick reads the failed Job and writes nothing new.
    notes_before = origin.repo.git.rev_parse("refs/notes/lockgate")
    assert (await controller.coordinate(path))[0] == 1
    assert origin.repo.git.rev_parse("refs/notes/lockgate") == notes_before


@pytest.mark.asyncio
async def test_a_target_written_to_after_its_pod_ended_is_not_recorded_in_sync(
    kmock: KubernetesEmulator, origin: Origin, dev: Clone, tenants: dict[str, str], tmp_path: Path
) -> None:
    path = kubernetes_fleet(tmp_path, tenants, {"parallel": 3})
    hotfix = origin.clone("hotfix")  # an operator's hand-applied migration, never on the branch
    hotfix.add_migration(V4, "hand_fix", up="CREATE TABLE hand_fix (id int);\n", down="DROP TABLE hand_fix;\n",
                         validate="-- Gate: it exists.\nSELECT to_regclass('hand_fix') IS NOT NULL AS there;\n")

    class OperatorMeanwhile(JobController):
        async def _pod(self, job: str, index: int, args: list[str]) -> int:
            code = await super()._pod(job, index, args)
            if "-rest-" in job and index == 2:  # every pod has ended; the coordinator has not read them back
                done = await asyncio.to_thread(lockgate, "apply", "--dsn", tenants["tenant-0"], "--dir",
                                               str(hotfix.path / "migrations"), cwd=tmp_path)
                assert done.returncode == 0, done.stdout + done.stderr
            return code

    controller = OperatorMeanwhile(kmock, origin, tmp_path)
    merged(dev, "note", V2, "add_note", NOTE)

    code, lines = await controller.coordinate(path)

    assert code == 0, lines + controller.output
    with on(tenants["tenant-0"]) as conn:
        assert ledger(conn)[V4][0] == "applied"
    # The canary's ledger moved after its pod: the next pass must look at it; the others are in sync.
    settings = config.load(repo=origin.url, cache_dir=tmp_path / "cache", fleet=path)
    assert {name: fastpath.unchanged(settings, dsn) is not None for name, dsn in tenants.items()} == {
        "tenant-0": False, "tenant-1": True, "tenant-2": True, "tenant-3": True}
