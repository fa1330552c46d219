"""Commit statuses posted to a real HTTP server on loopback that records what it receives."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import pytest

from lockgate.controller import config, forges
from lockgate.controller.forges import CommitStatus, GitHub, GitLab
from lockgate.controller.outcome import GateResult
from lockgate.controller.redact import Redactor
from lockgate.controller.status import MigrationRecord
from tests.loopbackhttp import serving_posts

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_secret_token_value"


@dataclass
class Received:
    method: str
    path: str
    headers: Message  # case-insensitive, as HTTP header names are
    body: Any


@dataclass
class Recorder:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 201


@pytest.fixture
def api() -> Iterator[Recorder]:
    recorder = Recorder("")

    def answer(path: str, headers: Message, body: bytes) -> tuple[int, bytes]:
        recorder.requests.append(Received("POST", path, headers, json.loads(body)))
        return recorder.status, b'{"message": "Bad credentials for ghp_secret_token_value"}'

    with serving_posts(answer) as url:
        recorder.url = url
        yield recorder


def record(outcome: str = "applied", reason: str = "") -> MigrationRecord:
    return MigrationRecord.model_validate({
        "version": "20240115093000", "name": "add_customer_tier", "outcome": outcome, "reason": reason,
        "duration_s": 12.3, "validation": [GateResult(gate="g", passed=True)] * 3,
    })


def test_github_commit_status(api: Recorder) -> None:
    github = GitHub(f"{api.url}/api/v3", "acme/shop", TOKEN)

    assert forges.post(github, CommitStatus.of(SHA, record()), Redactor())

    (request,) = api.requests
    assert request.method == "POST"
    assert request.path == f"/api/v3/repos/acme/shop/statuses/{SHA}"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("lockgate/")
    assert request.body == {
        "state": "success",
        "context": "lockgate/20240115093000",
        "description": "20240115093000_add_customer_tier applied in 12.3s (validation 3/3 passed)",
    }


def test_gitlab_commit_status(api: Recorder) -> None:
    gitlab = GitLab(f"{api.url}/api/v4", "acme/db/shop", "glpat-secret")
    status = CommitStatus.of(SHA, record("failed", "gate 2 failed"), target_url="https://ci.example/job/7")

    assert forges.post(gitlab, status, Redactor())

    (request,) = api.requests
    assert request.path == f"/api/v4/projects/acme%2Fdb%2Fshop/statuses/{SHA}"
    assert request.headers["PRIVATE-TOKEN"] == "glpat-secret"
    assert "Authorization" not in request.headers
    assert request.body == {
        "state": "failed",
        "name": "lockgate/20240115093000",
        "description": "20240115093000_add_customer_tier failed after 12.3s (validation 3/3 passed): gate 2 failed",
        "target_url": "https://ci.example/job/7",
    }


@pytest.mark.parametrize(("state", "github", "gitlab"), [
    ("pending", "pending", "pending"),
    ("running", "pending", "running"),
    ("success", "success", "success"),
    ("failure", "failure", "failed"),
    ("error", "error", "failed"),
    ("canceled", "error", "canceled"),
])
def test_states_map_to_each_forge(api: Recorder, state: forges.State, github: str, gitlab: str) -> None:
    status = CommitStatus(SHA, state, "working")
    forges.publish([GitHub(api.url, "a/b", TOKEN), GitLab(api.url, "7", TOKEN)], status, Redactor())
    assert [r.body["state"] for r in api.requests] == [github, gitlab]
    assert api.requests[1].path == f"/projects/7/statuses/{SHA}"
    assert api.requests[0].body["context"] == "lockgate"


def test_descriptions_are_cut_to_140_characters(api: Recorder) -> None:
    status = CommitStatus.of(SHA, record("refused", "x" * 400))
    forges.post(GitHub(api.url, "a/b", TOKEN), status, Redactor())
    description = api.requests[0].body["description"]
    assert len(description) == 140 and description.endswith("…")


def test_errors_are_logged_once_with_the_token_masked(api: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    api.status = 401
    caplog.set_level(logging.WARNING, logger="lockgate.controller.forges")

    posted = forges.publish([GitHub(api.url, "acme/shop", TOKEN)], CommitStatus(SHA, "success", "ok"), Redactor())

    assert posted is False
    (line,) = caplog.messages
    assert line.startswith("GitHub status lockgate on 0123456789ab not posted: HTTP 401")
    assert "Bad credentials for ***" in line and TOKEN not in line


def test_an_unreachable_forge_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="lockgate.controller.forges")
    gitlab = GitLab("http://127.0.0.1:9/api/v4", "1", "glpat-secret")
    assert not forges.post(gitlab, CommitStatus(SHA, "pending", "queued"), Redactor())
    assert len(caplog.messages) == 1 and "not posted" in caplog.messages[0]


def test_forges_are_configured_by_their_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GITHUB_TOKEN", "GITLAB_TOKEN", "GITHUB_REPOSITORY", "GITLAB_PROJECT", "REPO"):
        monkeypatch.delenv(f"LOCKGATE_{key}", raising=False)
    assert forges.from_settings(config.load()) == []

    settings = config.load(repo="git@github.com:acme/shop.git", github_token=TOKEN)
    assert forges.from_settings(settings) == [GitHub("https://api.github.com", "acme/shop", TOKEN)]

    settings = config.load(repo="https://gitlab.example/grp/sub/shop.git", gitlab_token="glpat-x",
                           gitlab_api_url="https://gitlab.example/api/v4")
    assert forges.from_settings(settings) == [GitLab("https://gitlab.example/api/v4", "grp/sub/shop", "glpat-x")]

    settings = config.load(gitlab_token="glpat-x", gitlab_project="42")
    assert forges.from_settings(settings) == [GitLab("https://gitlab.com/api/v4", "42", "glpat-x")]
