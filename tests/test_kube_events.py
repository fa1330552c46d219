"""Kubernetes Events through the official client against kmock's fake API server on loopback.

The client is synchronous and the fake server runs on the test's event loop, so every client call
goes through a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import kubernetes_validate
import pytest
import pytest_asyncio
from kmock import KubernetesEmulator, Request, Server, action, method
from kubernetes.client import ApiClient, Configuration

from lockgate.controller.kube import (
    EVENT_PERMISSIONS,
    MESSAGE_LIMIT,
    ClusterEventRecorder,
    EventRecorder,
    LogOnlyRecorder,
    Pod,
    Reason,
    event_manifest,
    recorder_from_environment,
)
from lockgate.controller.redact import Redactor

POD = Pod(namespace="shop", name="lockgate-sync-29012345-abcde", uid="5f0c7e9a-0000-4000-8000-000000000001")
EVENTS_PATH = f"/api/v1/namespaces/{POD.namespace}/events"
KUBE_LOGGER = "lockgate.controller.kube"


@pytest.fixture
def api_client(kmock: KubernetesEmulator) -> Iterator[ApiClient]:
    with ApiClient(Configuration(host=str(kmock.url).rstrip("/"))) as client:
        yield client


async def emit(recorder: EventRecorder, reason: str, message: str, *, warning: bool) -> None:
    await asyncio.to_thread(recorder.emit, reason=reason, message=message, warning=warning)


def rbac_verb(request: Request) -> str:
    if request.action == action.UPDATE:
        return "patch" if request.method == method.PATCH else "update"
    verbs = {action.LIST: "list", action.WATCH: "watch", action.FETCH: "get",
             action.CREATE: "create", action.DELETE: "delete"}
    return verbs[request.action] if request.action else str(request.method)


def permissions_used(server: KubernetesEmulator) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every request the server saw, as RBAC would check them."""
    used = set()
    for request in server:
        resource = request.resource
        group, plural = (str(resource.group), str(resource.plural)) if resource else ("?", request.url.path)
        used.add((group, plural, rbac_verb(request)))
    return used


def kube_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == KUBE_LOGGER]


@pytest.mark.asyncio
async def test_events_are_posted_about_the_pod(kmock: KubernetesEmulator, api_client: ApiClient) -> None:
    recorder = ClusterEventRecorder(api_client, POD)
    await emit(recorder, Reason.APPLIED, "20240115093000_add_customer_tier applied in 2.1s", warning=False)
    await emit(recorder, Reason.FAILED, "20240115093000_add_customer_tier: validation gate failed", warning=True)
    await emit(recorder, Reason.ROLLED_BACK, "20240115093000_add_customer_tier rolled back", warning=True)

    posts = list(kmock[f"post {EVENTS_PATH}"])
    assert len(posts) == len(kmock) == 3
    sent = [(p.data["reason"], p.data["type"], p.data["message"]) for p in posts]
    assert sent == [
        ("MigrationApplied", "Normal", "20240115093000_add_customer_tier applied in 2.1s"),
        ("MigrationFailed", "Warning", "20240115093000_add_customer_tier: validation gate failed"),
        ("MigrationRolledBack", "Warning", "20240115093000_add_customer_tier rolled back"),
    ]
    for post in posts:
        assert post.data["involvedObject"] == {
            "apiVersion": "v1", "kind": "Pod", "namespace": POD.namespace, "name": POD.name, "uid": POD.uid,
        }
        assert post.data["metadata"]["namespace"] == POD.namespace
        assert post.data["metadata"]["name"].startswith(f"{POD.name}.")
        assert post.data["source"] == {"component": "lockgate"}
    names = {post.data["metadata"]["name"] for post in posts}
    assert len(names) == 3, "each event needs a name of its own or the API server refuses it"
    assert len(kmock.objects) == 3


@pytest.mark.asyncio
async def test_calls_stay_within_the_role(kmock: KubernetesEmulator, api_client: ApiClient) -> None:
    recorder = ClusterEventRecorder(api_client, POD)
    for reason in Reason:
        await emit(recorder, reason, "m", warning=reason is not Reason.APPLIED)
    assert permissions_used(kmock) == set(EVENT_PERMISSIONS)


@pytest.mark.asyncio
async def test_messages_are_redacted(kmock: KubernetesEmulator, api_client: ApiClient) -> None:
    recorder = ClusterEventRecorder(api_client, POD, Redactor(["tok-5ecret-value"]))
    message = "fetch https://x:tok-5ecret-value@git.example.com failed; dsn postgresql://app:pw9@db/app"
    await emit(recorder, Reason.FAILED, message, warning=True)
    [post] = kmock[f"post {EVENTS_PATH}"]
    sent = post.data["message"]
    assert "tok-5ecret-value" not in sent and "pw9" not in sent
    assert "git.example.com failed" in sent and "postgresql://app:***@db/app" in sent


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [403, 500])
async def test_api_error_is_logged_and_the_sync_goes_on(
    kmock: KubernetesEmulator, api_client: ApiClient, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    kmock[f"post {EVENTS_PATH}"] << status << {"kind": "Status", "code": status, "message": "refused"}
    recorder = ClusterEventRecorder(api_client, POD)
    with caplog.at_level(logging.INFO, logger=KUBE_LOGGER):
        await emit(recorder, Reason.REFUSED, "20240115093000_x: no down file", warning=True)

    assert len(kmock[f"post {EVENTS_PATH}"]) == 1
    [record] = kube_log(caplog)
    assert record.levelno == logging.WARNING
    assert "\n" not in record.getMessage()
    assert f"MigrationRefused not recorded: HTTP {status}" in record.getMessage()


def test_unreachable_api_server_is_logged_and_the_sync_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    closed_port = aiohttp.test_utils.unused_port()
    configuration = Configuration(host=f"http://127.0.0.1:{closed_port}")
    configuration.retries = 0
    with ApiClient(configuration) as client, caplog.at_level(logging.INFO, logger=KUBE_LOGGER):
        ClusterEventRecorder(client, POD).emit(reason=Reason.APPLIED, message="m", warning=False)
    [record] = kube_log(caplog)
    assert "MigrationApplied not recorded" in record.getMessage()


@pytest.fixture
def service_account(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A mounted service account as the kubelet lays it out, and a TLS context for the fake API server."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    key = tmp_path / "apiserver.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(directory / "ca.crt"), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    (directory / "token").write_text("sa-token-for-tests")
    (directory / "namespace").write_text(POD.namespace)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "ca.crt", key)
    return directory, context


@pytest_asyncio.fixture
async def tls_kmock(service_account: tuple[Path, ssl.SSLContext]) -> AsyncIterator[Server]:
    context = service_account[1]

    class TLSServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)

    async with KubernetesEmulator() as handler, Server(handler, server_cls=TLSServer) as server:
        yield server


@pytest.mark.asyncio
async def test_in_cluster_environment_posts_with_the_service_account(
    tls_kmock: Server, service_account: tuple[Path, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    environ = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(tls_kmock.port),
        "POD_NAMESPACE": POD.namespace,
        "POD_NAME": POD.name,
        "POD_UID": POD.uid or "",
    }
    recorder = recorder_from_environment(environ, service_account_dir=service_account[0])
    assert isinstance(recorder, ClusterEventRecorder)
    await emit(recorder, Reason.APPLIED, "20240115093000_add_customer_tier applied", warning=False)

    [post] = tls_kmock.handler[f"post {EVENTS_PATH}"]
    assert post.headers["Authorization"].lower() == "bearer sa-token-for-tests"
    assert post.data["involvedObject"]["name"] == POD.name
    assert post.data["reason"] == "MigrationApplied"
    assert not kube_log(caplog)


@pytest.mark.parametrize(
    ("environ", "token", "why"),
    [
        ({}, True, "not running in a Kubernetes cluster"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, False, "no service account token"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAMESPACE": "shop"}, True, "POD_NAME not set"),
    ],
)
def test_outside_a_cluster_events_are_off_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, environ: dict[str, str], token: bool, why: str
) -> None:
    if token:
        (tmp_path / "token").write_text("t")
    recorder = recorder_from_environment(environ, service_account_dir=tmp_path)
    assert isinstance(recorder, LogOnlyRecorder)
    with caplog.at_level(logging.INFO, logger=KUBE_LOGGER):
        for reason in Reason:
            recorder.emit(reason=reason, message="m", warning=False)
    [record] = kube_log(caplog)
    assert why in record.getMessage()


def test_outside_a_cluster_the_kubernetes_client_is_not_imported() -> None:
    script = (
        "import sys\n"
        "from lockgate.controller.kube import recorder_from_environment\n"
        "recorder_from_environment({}).emit(reason='MigrationApplied', message='m', warning=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_event_is_a_valid_kubernetes_event_within_limits() -> None:
    from datetime import UTC, datetime

    long_pod = Pod(namespace="shop", name="p" * 253)
    manifest = event_manifest(
        long_pod, reason=Reason.FAILED, message="x" * 5000, warning=True,
        now=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), suffix="0123456789abcdef0123",
    )
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    assert len(manifest["message"]) == MESSAGE_LIMIT
    assert len(manifest["metadata"]["name"]) <= 253
    assert manifest["firstTimestamp"] == manifest["lastTimestamp"] == "2026-01-02T03:04:05Z"
    assert "uid" not in manifest["involvedObject"]
