"""`executor: kubernetes`: Kubernetes runs the targets, one Indexed Job per wave.

The coordinator (the sync pod) reads the branch once, then for each wave in order creates the
wave's Job (see jobspec.py) and waits on its status. Each index's pod approves that head itself,
with the same checks (lint, signatures), reconciles its one target at it and writes no note; when
the waves are done the coordinator reads each target's ledger back (a target it cannot reach
fails on its own) and writes the one note per commit, as the local executor does.
A wave starts only when every target of the previous one completed. A refusal leaves no ledger
row, so the pod records its refusals beside the ledger (refusals.py) for the coordinator, and
the ledger state it left its target in sync with (settled.py), for the no-op fingerprint.

The Job's name is the same for every coordinator that would run the same wave at the same head,
so coordination is idempotent: a coordinator killed mid-wave, or the next CronJob tick, meets
the Job on create (409), waits for it if it runs and reads it if it ended, and starts no other.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from lockgate.controller import kube, sync
from lockgate.controller.config import Settings
from lockgate.controller.fleet import jobspec, refusals, settled
from lockgate.controller.fleet.config import Fleet
from lockgate.controller.fleet.run import opened
from lockgate.controller.fleet.scheduler import State, order
from lockgate.controller.ledger import Event, Ledger
from lockgate.controller.outcome import Outcome
from lockgate.hooks.errors import UsageError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# How often the coordinator reads a running Job's status.
POLL_S = 5.0
REQUEST_TIMEOUT = 30.0
# The ledger events that mean a human acted on a failure (see jobspec.job_name).
_HUMAN = [Event.RETRY.value, *(e.value for e in Event if e.resolves)]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A wave Job's verdict: its completed and failed index lists, and whether it ended."""

    completed: str | None
    failed: str | None
    ended: bool


class WaveJobs:
    """The wave Jobs of one namespace, through the official client."""

    def __init__(self, api_client: ApiClient, namespace: str, say: sync.Say, poll_s: float = POLL_S) -> None:
        self.api_client, self.namespace, self.say, self.poll_s = api_client, namespace, say, poll_s

    @classmethod
    def in_cluster(cls, say: sync.Say) -> WaveJobs:
        """The Jobs of the namespace this pod runs in, as its service account."""
        try:
            client = kube.in_cluster_client()
        except kube.NotInCluster as exc:
            raise UsageError(f"executor: kubernetes runs in a cluster's pod: {exc}") from None
        namespace_file = kube.SERVICE_ACCOUNT_DIR / "namespace"
        namespace = os.environ.get("POD_NAMESPACE") or namespace_file.read_text().strip()
        return cls(client, namespace, say)

    def run(self, body: jobspec.Doc, stop: threading.Event) -> Verdict:
        """Create the Job (or meet the one of its name) and wait until it ends or `stop` is set."""
        from kubernetes.client import BatchV1Api, V1Job
        from kubernetes.client.exceptions import ApiException

        api = BatchV1Api(self.api_client)
        name = body["metadata"]["name"]
        try:
            api.create_namespaced_job(self.namespace, V1Job.model_validate(body), _request_timeout=REQUEST_TIMEOUT)
            self.say(f"wave Job {name}: created")
        except ApiException as exc:
            if exc.status != 409:
                raise UsageError(f"executor: kubernetes: cannot create Job {name}: HTTP {exc.status} {exc.reason}") \
                    from None
            self.say(f"wave Job {name}: already there, waiting for it")
        while True:
            try:
                status = api.read_namespaced_job(name, self.namespace, _request_timeout=REQUEST_TIMEOUT).status
            except ApiException as exc:
                raise UsageError(f"executor: kubernetes: cannot read Job {name}: HTTP {exc.status} {exc.reason}") \
                    from None
            conditions = [(c.type, c.status) for c in (status.conditions or [])] if status else []
            ended = jobspec.finished(conditions)
            if ended or stop.wait(self.poll_s):
                return Verdict(status.completed_indexes if status else None,
                             status.failed_indexes if status else None, ended)


def human_acts(conn: psycopg.Connection, settings: Settings) -> int:
    """How many times a human retried or resolved a migration on this target (0 without a ledger)."""
    if not Ledger(conn, settings.ledger_schema).exists():
        return 0
    row = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE event = ANY(%s)").format(
        sql.Identifier(settings.ledger_schema, "events")), (_HUMAN,)).fetchone()
    return int(row[0]) if row else 0


def run(
    settings: Settings, fleet: Fleet, *, stop: threading.Event | None = None, say: sync.Say = print,
    events: kube.EventRecorder | None = None, jobs: WaveJobs | None = None,
) -> sync.SyncResult:
    """One pass of the coordinator: a Job per wave, then the notes from the targets' ledgers."""
    assert fleet.kubernetes is not None and settings.fleet is not None
    stop = stop or threading.Event()
    jobs = jobs or WaveJobs.in_cluster(say)
    # The pods mount the fleet file's ConfigMap where this pod reads it (not through its symlinks).
    fleet_file = PurePosixPath(os.path.abspath(settings.fleet))
    with opened(settings, fleet, say=say, events=events) as fleet_pass:
        head = fleet_pass.branch.history.head.sha
        reverse = fleet_pass.rolls_back()
        states: dict[str, State] = {t.name: "not_started" for t in fleet.targets}
        for wave in order(fleet.waves, reverse=reverse):
            if stop.is_set():
                break
            # An unreachable target counts none: its pod fails on its own, and the note names it.
            acts = partial(human_acts, settings=settings)
            generation = sum(fleet_pass.read(t.name, acts, 0) for t in wave.targets)
            name = jobspec.job_name(wave, head, reverse=reverse, generation=generation)
            args = jobspec.worker_args(fleet_file, wave, head, reverse=reverse)
            verdict = jobs.run(jobspec.manifest(name, wave, fleet.kubernetes, args, fleet_file), stop)
            states.update(jobspec.wave_states(wave, verdict.completed, verdict.failed, ended=verdict.ended))
            if any(states[t.name] != "in_sync" for t in wave.targets):
                break
        return fleet_pass.finish(states, from_ledgers=True)


def run_index(
    settings: Settings, fleet: Fleet, wave_name: str, at: str, *, reverse: bool, index: str | None,
    stop: threading.Event, say: sync.Say = print,
) -> int:
    """A wave Job's pod: reconcile the target of JOB_COMPLETION_INDEX `index` at the commit `at`,
    writing no note (the coordinator writes them). Exit 0 when the target is in sync, else 1."""
    (wave,) = order([fleet.wave(wave_name)], reverse=reverse)
    if index is None or not index.isdigit() or int(index) >= len(wave.targets):
        raise UsageError(f"--wave runs one target of a wave Job: JOB_COMPLETION_INDEX {index!r} is not an index "
                         f"of wave {wave.name} ({len(wave.targets)} targets)")
    target = wave.targets[int(index)]
    with opened(settings, fleet, say=say, events=None, at=at, notes=False) as fleet_pass:
        ended = fleet_pass.reconcile(target, wait=False, stop=stop)
        one = fleet_pass.passes[target.name]
        if not one.error:  # else the pass never had the target (unreachable, another applier)
            refused = [(commit, record) for commit, record in one.noted if record.outcome is Outcome.REFUSED]
            refusals.replace(fleet_pass.dsns[target.name], settings.ledger_schema, refused)
            settled.replace(fleet_pass.dsns[target.name], settings.ledger_schema, at, one.in_sync_ledger)
    say(f"[{target.name}] {ended.replace('_', ' ')} at {at[:12]}")
    return 0 if ended == "in_sync" else 1

