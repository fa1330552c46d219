"""The Kubernetes executor's wave Job (pure): its name, its manifest, and what its status says of
each target.

One Indexed Job per wave, one index per target: index i runs the wave's i-th target (in the
order the wave runs, see scheduler.order) in a pod of its own, `lockgate sync --fleet FILE
--wave NAME --at SHA`, pinned to the head the coordinator read; the pod approves that head
itself, with the same checks (lint, signatures). `parallelism` is the wave's `parallel`;
`backoffLimitPerIndex: 0`, since a failed migration waits for a human and a second try would
only repeat it; `maxFailedIndexes` is `max_failures - 1`, because Kubernetes
fails the Job once the failed indexes *exceed* it: so the wave halts after `max_failures` failed
targets, as the local executor does, except that pods still running are stopped (SIGTERM: they
finish their batch and stop resumably) rather than left to finish.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Any

from lockgate.controller.fleet.config import Kubernetes, Wave
from lockgate.controller.fleet.scheduler import State

# Pods of an Indexed Job are named and labelled after the Job with `-<index>` appended: keep the
# name well inside a DNS label's 63 characters.
NAME_LIMIT = 52
# The base CronJob's paths: the image's HOME and the git cache (LOCKGATE_CACHE_DIR).
TMP_DIR = "/tmp"
CACHE_DIR = "/var/cache/lockgate"
SSH_DIR = "/etc/lockgate/ssh"
# Past this the Job ends Failed and its running pods are stopped (SIGTERM: resumably), but the
# wave does not resume on the next run: a coordinator at the same head meets the ended Job of
# the same name and only reads it, until a new head, a human's retry/resolve (see job_name) or
# the Job's deletion after TTL_AFTER_FINISHED_S lets it create another.
ACTIVE_DEADLINE_S = 7200
# A finished Job is kept a day: a coordinator started meanwhile at the same head reads it.
TTL_AFTER_FINISHED_S = 86400
UID = 10001

Doc = dict[str, Any]


def job_name(wave: Wave, head: str, *, reverse: bool, generation: int) -> str:
    """The wave's Job at `head`: the same for every coordinator that would run the same wave.

    `generation` counts the humans' `lockgate retry`/`resolve` on the wave's targets, so a wave
    retried after a failure gets a Job of its own instead of reading the failed one again.
    """
    digest = hashlib.sha256(json.dumps(
        [wave.name, [t.name for t in wave.targets], head, reverse, generation]
    ).encode()).hexdigest()
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", wave.name.lower())).strip("-")[:20].strip("-") or "wave"
    return f"lockgate-{slug}-{head[:12]}-{digest[:8]}"


def worker_args(fleet_file: PurePosixPath, wave: Wave, head: str, *, reverse: bool) -> list[str]:
    """The command line of index i's pod (the index comes from JOB_COMPLETION_INDEX)."""
    return ["sync", "--fleet", str(fleet_file), "--wave", wave.name, "--at", head, *(["--reverse"] if reverse else [])]


def manifest(
    name: str, wave: Wave, settings: Kubernetes, args: list[str], fleet_file: PurePosixPath,
) -> Doc:
    """The Job, in the API's wire format."""
    labels = {"app.kubernetes.io/name": "lockgate", "app.kubernetes.io/component": "fleet-wave"}
    count = len(wave.targets)
    env_from: list[Doc] = [{"configMapRef": {"name": n}} for n in settings.env_from_config_maps]
    env_from += [{"secretRef": {"name": n}} for n in settings.env_from_secrets]
    downward = [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("POD_UID", "metadata.uid")]
    container: Doc = {
        "name": "lockgate",
        "image": settings.image,
        "args": args,
        "envFrom": env_from,
        "env": [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in downward]
        + [{"name": "LOCKGATE_CACHE_DIR", "value": CACHE_DIR}],
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
        },
        "resources": settings.resources.model_dump(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": TMP_DIR},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "fleet", "mountPath": str(fleet_file.parent), "readOnly": True},
            {"name": "git-ssh", "mountPath": SSH_DIR, "readOnly": True},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": count,
            "parallelism": min(wave.parallel, count),
            "backoffLimitPerIndex": 0,
            "maxFailedIndexes": min(wave.max_failures - 1, count),
            # An evicted or preempted pod is not a failed target: its index runs again.
            "podFailurePolicy": {"rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "activeDeadlineSeconds": ACTIVE_DEADLINE_S,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": settings.service_account,
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    # On SIGTERM the current batch finishes and commits before the process exits.
                    "terminationGracePeriodSeconds": 120,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                        {"name": "cache", "emptyDir": {"sizeLimit": "2Gi"}},
                        {"name": "fleet", "configMap": {"name": settings.fleet_config_map}},
                        {"name": "git-ssh", "secret": {
                            "secretName": "lockgate-git-ssh", "optional": True, "defaultMode": 0o440,
                        }},
                    ],
                },
            },
        },
    }


def indexes(text: str | None) -> set[int]:
    """The indexes of a Job status's interval list, e.g. "1,3-5" → {1, 3, 4, 5}."""
    found: set[int] = set()
    for part in (text or "").split(","):
        if part:
            first, _, last = part.partition("-")
            found.update(range(int(first), int(last or first) + 1))
    return found


def finished(conditions: list[tuple[str, str]]) -> bool:
    """Whether the Job ended, from its (type, status) conditions. FailureTarget and
    SuccessCriteriaMet come first, while pods are still stopping: those are waited out."""
    return any(kind in ("Complete", "Failed") and status == "True" for kind, status in conditions)


def wave_states(wave: Wave, completed: str | None, failed: str | None, *, ended: bool) -> dict[str, State]:
    """Each target's state from the Job's completedIndexes and failedIndexes. An index in neither
    never started when the Job ended (it halted), else it is still under way."""
    done, broke = indexes(completed), indexes(failed)
    states: dict[str, State] = {}
    for index, target in enumerate(wave.targets):
        if index in done:
            states[target.name] = "in_sync"
        elif index in broke:
            states[target.name] = "failed"
        else:
            states[target.name] = "not_started" if ended else "interrupted"
    return states
