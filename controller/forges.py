"""Commit statuses on GitHub and GitLab, so a pull request shows what the controller did.

Statuses are a courtesy next to the git notes: a failed request is logged as one redacted line and
never raised into a sync. Plain `urllib`, as each call is one small JSON POST.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from lockgate.controller.outcome import Outcome
from lockgate.controller.redact import Redactor
from lockgate.controller.status import SUMMARY_PREFIX, MigrationRecord, summary_line
from lockgate.hooks.version import lockgate_version

if TYPE_CHECKING:
    from lockgate.controller.config import Settings

log = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 140  # GitHub rejects longer descriptions
TIMEOUT = 10.0
CONTEXT = "lockgate"

State = Literal["pending", "running", "success", "failure", "error", "canceled"]

STATE_OF_OUTCOME: dict[Outcome, State] = {
    Outcome.APPLIED: "success",
    Outcome.ROLLED_BACK: "success",
    Outcome.FAILED: "failure",
    Outcome.REFUSED: "failure",
    Outcome.DIRTY: "error",
    # Not ended yet (a fleet target not reached or interrupted): the status waits for the next pass.
    Outcome.APPLYING: "pending",
    Outcome.UNDOING: "pending",
    Outcome.INTERRUPTED: "pending",
    Outcome.NOT_STARTED: "pending",
}
_GITHUB_STATE: dict[State, str] = {
    "pending": "pending", "running": "pending", "success": "success",
    "failure": "failure", "error": "error", "canceled": "error",
}
_GITLAB_STATE: dict[State, str] = {
    "pending": "pending", "running": "running", "success": "success",
    "failure": "failed", "error": "failed", "canceled": "canceled",
}


@dataclass(frozen=True, slots=True)
class CommitStatus:
    sha: str
    state: State
    description: str
    context: str = CONTEXT
    target_url: str | None = None

    @classmethod
    def of(cls, sha: str, record: MigrationRecord, target_url: str | None = None) -> CommitStatus:
        """The status for one migration's outcome, under context `lockgate/<version>`."""
        return cls(
            sha, STATE_OF_OUTCOME[record.outcome],
            summary_line(record).removeprefix(SUMMARY_PREFIX),
            f"{CONTEXT}/{record.version}", target_url,
        )

    @property
    def short_description(self) -> str:
        text = " ".join(self.description.split())
        return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


class Forge(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def token(self) -> str: ...

    def request(self, status: CommitStatus) -> Request: ...


def _user_agent() -> str:
    return f"lockgate/{lockgate_version()}"


@dataclass(frozen=True, slots=True)
class GitHub:
    api_url: str
    repository: str  # owner/name
    token: str
    name: str = "GitHub"

    def request(self, status: CommitStatus) -> Request:
        body: dict[str, Any] = {
            "state": _GITHUB_STATE[status.state],
            "context": status.context,
            "description": status.short_description,
        }
        if status.target_url:
            body["target_url"] = status.target_url
        return Request(
            f"{self.api_url.rstrip('/')}/repos/{self.repository}/statuses/{status.sha}",
            {
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            body,
        )


@dataclass(frozen=True, slots=True)
class GitLab:
    api_url: str
    project: str  # numeric id or namespace/path
    token: str
    name: str = "GitLab"

    def request(self, status: CommitStatus) -> Request:
        body: dict[str, Any] = {
            "state": _GITLAB_STATE[status.state],
            "name": status.context,
            "description": status.short_description,
        }
        if status.target_url:
            body["target_url"] = status.target_url
        project = quote(self.project, safe="")
        return Request(
            f"{self.api_url.rstrip('/')}/projects/{project}/statuses/{status.sha}",
            {"PRIVATE-TOKEN": self.token},
            body,
        )


def repository_path(url: str | None) -> str | None:
    """`owner/name` from a clone URL (https or scp-like ssh), for when none is configured."""
    if not url:
        return None
    path = urlsplit(url).path if "://" in url else url.partition(":")[2]
    path = path.strip("/").removesuffix(".git")
    return path if "/" in path else None


def from_settings(settings: Settings) -> list[Forge]:
    """The forges a token is configured for."""
    forges: list[Forge] = []
    github_repo = settings.github_repository or repository_path(settings.repo)
    if settings.github_token is not None and github_repo:
        forges.append(GitHub(settings.github_api_url, github_repo, settings.github_token.get_secret_value()))
    gitlab_project = settings.gitlab_project or repository_path(settings.repo)
    if settings.gitlab_token is not None and gitlab_project:
        forges.append(GitLab(settings.gitlab_api_url, gitlab_project, settings.gitlab_token.get_secret_value()))
    return forges


def post(forge: Forge, status: CommitStatus, redact: Redactor) -> bool:
    """POST the status; True on success, a logged line (token masked) otherwise."""
    request = forge.request(status)
    data = json.dumps(request.body).encode()
    headers = request.headers | {"Content-Type": "application/json", "User-Agent": _user_agent()}
    http = urllib.request.Request(request.url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=TIMEOUT) as response:
            response.read()
        return True
    except urllib.error.HTTPError as exc:
        detail = f"HTTP {exc.code} {exc.reason}: {exc.read(300).decode(errors='replace')}"
    except (urllib.error.URLError, OSError) as exc:
        detail = str(getattr(exc, "reason", exc))
    message = f"{forge.name} status {status.context} on {status.sha[:12]} not posted: {detail}"
    log.warning("%s", redact.with_secrets(forge.token)(" ".join(message.split())))
    return False


def publish(forges: list[Forge], status: CommitStatus, redact: Redactor) -> bool:
    """Post to every forge; True when all of them took it."""
    return all([post(forge, status, redact) for forge in forges])
