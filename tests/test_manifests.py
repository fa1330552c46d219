"""The kustomize base and the example and fleet overlays render, pass the Kubernetes schemas, and
keep the promises DESIGN.md §4 makes: least-privilege RBAC matching what lockgate calls (kube.py's
permissions), locked-down pods (the fleet's wave Jobs' too), secrets only from Secrets, and a
Dockerfile whose user the pods run as.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lockgate.controller.fleet import config as fleet_config
from lockgate.controller.fleet import jobspec
from lockgate.controller.kube import API_PERMISSIONS, EVENT_PERMISSIONS

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
DOCKERFILE = ROOT / "Dockerfile"
TREES = ["base", "overlays/example", "overlays/fleet"]
OVERLAYS = ["overlays/example", "overlays/fleet"]
# The oldest minor release still widely run, and the newest the installed schemas know.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]
SECRET_NAME = re.compile(r"DSN|TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL", re.IGNORECASE)

Doc = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not on PATH: the manifest tests need it (kubectl kustomize); install kubectl")
    return found


def render(tree: str) -> list[Doc]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(MANIFESTS / tree)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize manifests/{tree} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=TREES)
def tree(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered(tree: str) -> list[Doc]:
    return render(tree)


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> list[Doc]:
    return render(request.param)


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def settings_config(docs: list[Doc]) -> Doc:
    """The ConfigMap of LOCKGATE_* settings (a fleet install has another, holding the fleet file)."""
    [config] = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "lockgate-config"]
    return config


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for doc in of_kind(docs, "CronJob"):
        yield f"CronJob/{doc['metadata']['name']}", doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for doc in of_kind(docs, "Job"):
        yield f"Job/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def containers(docs: list[Doc]) -> Iterator[tuple[str, Doc, Doc]]:
    for where, spec in pod_specs(docs):
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{where}/{container['name']}", spec, container


def dockerfile_user() -> int:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users, "the Dockerfile sets no USER"
    return int(users[-1].split(":")[0])


def test_renders_and_passes_the_strict_schemas(rendered: list[Doc]) -> None:
    kinds = {doc["kind"] for doc in rendered}
    assert {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob", "Job"} <= kinds
    for version in KUBERNETES_VERSIONS:
        for doc in rendered:
            kubernetes_validate.validate(doc, version, strict=True)


def test_every_container_is_locked_down(rendered: list[Doc]) -> None:
    found = list(containers(rendered))
    assert len(found) >= 2
    for where, spec, container in found:
        assert_locked_down(where, spec, container)


def assert_locked_down(where: str, spec: Doc, container: Doc) -> None:
    pod, own = spec.get("securityContext", {}), container.get("securityContext", {})
    effective = {**pod, **own}
    assert effective.get("runAsNonRoot") is True, where
    assert isinstance(effective.get("runAsUser"), int) and effective["runAsUser"] > 0, where
    assert effective["runAsUser"] == dockerfile_user(), f"{where} runs as a user the image lacks"
    assert own.get("readOnlyRootFilesystem") is True, where
    assert own.get("allowPrivilegeEscalation") is False, where
    assert own.get("capabilities", {}).get("drop") == ["ALL"], where
    assert not own.get("capabilities", {}).get("add"), where
    assert effective.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    assert {"requests", "limits"} <= set(container.get("resources", {})), where
    assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, where


def test_writable_paths_are_scratch_volumes(rendered: list[Doc]) -> None:
    config = settings_config(rendered)
    for where, spec, container in containers(rendered):
        assert_scratch(where, spec, container, config)


def assert_scratch(where: str, spec: Doc, container: Doc, config: Doc) -> None:
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    scratch = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
    assert "/tmp" in scratch, f"{where}: /tmp (HOME in the image) is not writable"
    assert config["data"]["LOCKGATE_CACHE_DIR"] in scratch, f"{where}: the git cache is not writable"


def test_cronjob_never_overlaps_and_is_bounded(rendered: list[Doc]) -> None:
    [cronjob] = of_kind(rendered, "CronJob")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0
    assert job["activeDeadlineSeconds"] > 0


def test_manual_job_runs_what_the_cronjob_runs(rendered: list[Doc]) -> None:
    [cronjob] = of_kind(rendered, "CronJob")
    [job] = of_kind(rendered, "Job")
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    assert job["spec"]["template"] == template
    assert job["spec"]["activeDeadlineSeconds"] > 0
    for _, _, container in containers(rendered):
        assert container["args"] == ["sync"]


def test_role_grants_exactly_what_lockgate_calls(tree: str, rendered: list[Doc]) -> None:
    assert not of_kind(rendered, "ClusterRole") and not of_kind(rendered, "ClusterRoleBinding")
    [role] = of_kind(rendered, "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # Events everywhere; creating Jobs (pods of any image, as this account) only where a fleet's
    # executor: kubernetes needs it.
    assert granted == set(API_PERMISSIONS if tree == "overlays/fleet" else EVENT_PERMISSIONS)
    assert not any("resourceNames" in rule or "nonResourceURLs" in rule for rule in role["rules"])

    [binding] = of_kind(rendered, "RoleBinding")
    [account] = of_kind(rendered, "ServiceAccount")
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["roleRef"] == role_ref
    [subject] = binding["subjects"]
    assert (subject["kind"], subject["name"]) == ("ServiceAccount", account["metadata"]["name"])
    assert subject.get("namespace") == account["metadata"].get("namespace")
    for where, spec in pod_specs(rendered):
        assert spec["serviceAccountName"] == account["metadata"]["name"], where


def test_secrets_come_only_from_secrets(rendered: list[Doc]) -> None:
    config = settings_config(rendered)
    assert not [key for key in config["data"] if SECRET_NAME.search(key) and key != "GIT_SSH_COMMAND"]
    fleet = "LOCKGATE_FLEET" in config["data"]
    for where, _, container in containers(rendered):
        env = {e["name"]: e for e in container.get("env", [])}
        if fleet:  # the fleet names the targets, and excludes LOCKGATE_DSN
            assert "LOCKGATE_DSN" not in env, where
        else:
            assert env["LOCKGATE_DSN"]["valueFrom"]["secretKeyRef"]["key"] == "dsn", where
        assert "secretKeyRef" in env["LOCKGATE_GIT_TOKEN"]["valueFrom"], where
        for name, entry in env.items():
            if SECRET_NAME.search(name):
                assert "value" not in entry and "secretKeyRef" in entry.get("valueFrom", {}), f"{where}: {name}"
        sources = [s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]]
        assert sources == [config["metadata"]["name"], *(["lockgate-fleet-env"] if fleet else [])], where


def test_pod_identity_comes_from_the_downward_api(rendered: list[Doc]) -> None:
    for where, _, container in containers(rendered):
        fields = {
            e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
            for e in container["env"]
            if "fieldRef" in e.get("valueFrom", {})
        }
        assert fields["POD_NAME"] == "metadata.name", where
        assert fields["POD_NAMESPACE"] == "metadata.namespace", where


def test_overlay_sets_namespace_image_schedule_and_repository(overlay: list[Doc]) -> None:
    base = render("base")
    [namespace] = of_kind(overlay, "Namespace")
    name = namespace["metadata"]["name"]
    for doc in overlay:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == name, f"{doc['kind']}/{doc['metadata']['name']}"
    for where, _, container in containers(overlay):
        image, _, tag = container["image"].rpartition(":")
        assert "/" in image and tag and tag != "latest", where
    [base_cronjob], [cronjob] = of_kind(base, "CronJob"), of_kind(overlay, "CronJob")
    assert cronjob["spec"]["schedule"] != base_cronjob["spec"]["schedule"]
    config = settings_config(overlay)
    assert config["data"]["LOCKGATE_REPO"]
    assert config["data"]["LOCKGATE_BRANCH"] == "main"


def test_overlay_secrets_are_placeholders_that_every_required_reference_finds(overlay: list[Doc]) -> None:
    secrets = {doc["metadata"]["name"]: doc for doc in of_kind(overlay, "Secret")}
    for secret in secrets.values():
        for key, value in secret["data"].items():
            assert "REPLACE_ME" in base64.b64decode(value).decode(), f"{secret['metadata']['name']}/{key}"
    for where, _, container in containers(overlay):
        for entry in container["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                assert ref["key"] in secrets[ref["name"]]["data"], f"{where}: {entry['name']}"
        for source in container["envFrom"]:
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, where


def test_dockerfile_runs_lockgate_as_a_numeric_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(stages) >= 2 and all(s.startswith("python:3.11-slim") for s in stages)
    assert dockerfile_user() > 0
    assert re.search(r"^ENTRYPOINT \[\"lockgate\"\]", text, re.MULTILINE)
    assert re.search(r"apt-get install[^\n]*\bgit\b", text)


def test_fleet_overlay_runs_its_fleet_file_with_wave_jobs_as_locked_down_as_the_cronjob() -> None:
    docs = render("overlays/fleet")
    config = settings_config(docs)
    fleet_file = PurePosixPath(config["data"]["LOCKGATE_FLEET"])
    [holder] = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] != "lockgate-config"]
    fleet = fleet_config.parse(holder["data"][fleet_file.name], Path(fleet_file))
    assert fleet.executor == "kubernetes" and fleet.kubernetes is not None
    settings = fleet.kubernetes
    assert settings.fleet_config_map == holder["metadata"]["name"]
    [(_, spec, coordinator)] = [found for found in containers(docs) if found[0].startswith("CronJob/")]
    assert settings.image == coordinator["image"], "the wave pods run another lockgate than the coordinator"
    assert settings.service_account == spec["serviceAccountName"]
    [mount] = [m for m in coordinator["volumeMounts"] if m["mountPath"] == str(fleet_file.parent)]
    assert {"name": mount["name"], "configMap": {"name": holder["metadata"]["name"]}} in spec["volumes"]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Secret", n) for n in settings.env_from_secrets} <= names
    assert {("ConfigMap", n) for n in settings.env_from_config_maps} <= names

    # Each wave's Job, as the coordinator would create it at some head, in the overlay's namespace.
    namespace = config["metadata"]["namespace"]
    for wave in fleet.waves:
        name = jobspec.job_name(wave, "0" * 40, reverse=False, generation=0)
        args = jobspec.worker_args(fleet_file, wave, "0" * 40, reverse=False)
        job = jobspec.manifest(name, wave, settings, args, fleet_file)
        job["metadata"]["namespace"] = namespace
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(job, version, strict=True)
        pod = job["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert_locked_down(f"Job/{name}", pod, container)
        assert_scratch(f"Job/{name}", pod, container, config)
        assert {"name": "fleet", "configMap": {"name": holder["metadata"]["name"]}} in pod["volumes"]
