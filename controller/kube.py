"""Kubernetes Events on the Job's pod, so `kubectl describe pod` and `kubectl get events` show what a
sync did to each migration.

In a cluster the recorder posts core/v1 Events through the official client; anywhere else it does
nothing but say so once. Events are a courtesy to the operator: a failed API call is logged and
never stops a migration. The `kubernetes` client is imported only on the in-cluster path, so the lint
path never loads it.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lockgate.controller.outcome import Outcome
from lockgate.controller.redact import Redactor

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

COMPONENT = "lockgate"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# Every (apiGroup, resource, verb) lockgate calls: Events here, and under a fleet's `executor:
# kubernetes` the wave Jobs (controller/fleet/jobs.py creates one and reads it while it runs).
# The Role in manifests/base grants the Events' only; manifests/overlays/fleet adds the Jobs'.
# tests/test_manifests.py holds the Roles and these together.
EVENT_PERMISSIONS: frozenset[tuple[str, str, str]] = frozenset({("", "events", "create")})
JOB_PERMISSIONS: frozenset[tuple[str, str, str]] = frozenset({("batch", "jobs", "create"), ("batch", "jobs", "get")})
API_PERMISSIONS = EVENT_PERMISSIONS | JOB_PERMISSIONS

# An event is not worth holding up a migration: give a slow API server this long, then move on.
REQUEST_TIMEOUT = 5.0
# events.k8s.io caps a note at 1 kB; keep core events within the same bound.
MESSAGE_LIMIT = 1024
# Object names are DNS subdomains of at most 253 characters; the suffix takes 17 of them.
_NAME_LIMIT = 253 - 17


class Reason(StrEnum):
    """The reasons lockgate reports; `kubectl get events --field-selector reason=…` filters on them."""

    APPLIED = "MigrationApplied"
    FAILED = "MigrationFailed"
    ROLLED_BACK = "MigrationRolledBack"
    REFUSED = "MigrationRefused"

    @classmethod
    def of(cls, outcome: Outcome) -> Reason:
        """The reason an outcome on a commit is reported with: anything that did not end as meant
        (dirty, interrupted, not reached) is a failure to look at."""
        return _REASON_OF.get(outcome, cls.FAILED)


_REASON_OF = {
    Outcome.APPLIED: Reason.APPLIED,
    Outcome.ROLLED_BACK: Reason.ROLLED_BACK,
    Outcome.REFUSED: Reason.REFUSED,
}


class EventRecorder(Protocol):
    def emit(self, *, reason: str, message: str, warning: bool) -> None:
        """Record one event; never raises for an API failure."""


@dataclass(frozen=True)
class Pod:
    """The pod the events are about, as the downward API tells it."""

    namespace: str
    name: str
    uid: str | None = None


def event_manifest(
    pod: Pod, *, reason: str, message: str, warning: bool, now: datetime, suffix: str
) -> dict[str, Any]:
    """A core/v1 Event about `pod`, in the API's wire format; `suffix` makes the name unique."""
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    stamp = now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: dict[str, str] = {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace, "name": pod.name}
    if pod.uid:
        involved["uid"] = pod.uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod.name[:_NAME_LIMIT]}.{suffix[:16]}", "namespace": pod.namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": pod.name,
    }


class ClusterEventRecorder:
    """Posts events about `pod` through `api_client` (in-cluster config, or any server in tests).

    Messages pass through `redact` first: anyone who may list events in the namespace reads them.
    """

    def __init__(self, api_client: ApiClient, pod: Pod, redact: Callable[[str], str] | None = None) -> None:
        self.api_client = api_client
        self.pod = pod
        self.redact = redact or Redactor()

    def emit(self, *, reason: str, message: str, warning: bool) -> None:
        from kubernetes.client import CoreV1Api, CoreV1Event
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        body = CoreV1Event.model_validate(
            event_manifest(
                self.pod,
                reason=reason,
                message=self.redact(message),
                warning=warning,
                now=datetime.now(UTC),
                suffix=uuid.uuid4().hex,
            )
        )
        try:
            CoreV1Api(self.api_client).create_namespaced_event(
                self.pod.namespace, body, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            # The exception's text carries headers and the response body; status and reason suffice.
            log.warning("kubernetes event %s not recorded: HTTP %s %s", reason, exc.status, exc.reason)
        except (HTTPError, OSError, ValueError) as exc:
            # ValueError: a response the client could not read back as an Event.
            log.warning("kubernetes event %s not recorded: %s", reason, type(exc).__name__)


class LogOnlyRecorder:
    """Outside a cluster: events go nowhere, and the first one says why in one log line."""

    def __init__(self, why: str) -> None:
        self.why = why
        self._told = False

    def emit(self, *, reason: str, message: str, warning: bool) -> None:
        if not self._told:
            self._told = True
            log.info("kubernetes events are off: %s", self.why)


class NotInCluster(Exception):
    """Why this process cannot reach its cluster's API server as its pod's service account."""


def _outside(environ: Mapping[str, str], service_account_dir: Path) -> str | None:
    if not environ.get("KUBERNETES_SERVICE_HOST"):
        return "not running in a Kubernetes cluster"
    token = service_account_dir / "token"
    return None if token.is_file() else f"no service account token at {token}"


def in_cluster_client(
    environ: Mapping[str, str] = os.environ, service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> ApiClient:
    """A client of the cluster this pod runs in, as its service account; NotInCluster says why not."""
    why = _outside(environ, service_account_dir)
    if why is not None:
        raise NotInCluster(why)

    from kubernetes.client import ApiClient, Configuration
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    configuration = Configuration()
    try:
        # What load_incluster_config() does, with the paths and environment given here; the loader
        # re-reads the token as the kubelet rotates it, so a long backfill keeps a valid one.
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(service_account_dir / "token"), cert_filename=str(service_account_dir / "ca.crt"),
            environ=environ,
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise NotInCluster(f"in-cluster configuration failed: {exc}") from None
    return ApiClient(configuration)


def recorder_from_environment(
    environ: Mapping[str, str] = os.environ,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    redact: Callable[[str], str] | None = None,
) -> EventRecorder:
    """A cluster recorder when this process runs in a pod with a service account, else a log-only one.

    The pod is named by the downward API variables POD_NAMESPACE and POD_NAME (and POD_UID when set).
    Pass `redact.from_settings(settings)` so the configured secrets are masked in messages too.
    """
    why = _outside(environ, service_account_dir)
    if why is not None:
        return LogOnlyRecorder(why)
    missing = [name for name in ("POD_NAMESPACE", "POD_NAME") if not environ.get(name)]
    if missing:
        return LogOnlyRecorder(f"{' and '.join(missing)} not set (give them from the downward API)")
    try:
        client = in_cluster_client(environ, service_account_dir)
    except NotInCluster as exc:
        return LogOnlyRecorder(str(exc))
    pod = Pod(namespace=environ["POD_NAMESPACE"], name=environ["POD_NAME"], uid=environ.get("POD_UID") or None)
    return ClusterEventRecorder(client, pod, redact)
