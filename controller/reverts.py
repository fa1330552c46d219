"""Which removals of applied migrations are reverts of the change that brought them (pure).

Rolling back is the most destructive thing lockgate does, so deleting files is never enough: the
first-parent commit that removes an applied migration must be, or must merge, a revert of the
commit that introduced it, or of a commit on the branch that commit merged. What counts as a
revert is what git and the forges write:

- `git revert`: "This reverts commit <sha>." (for a merge also ", reversing changes made to …");
- GitHub's revert button: a branch whose commit says the above, merged as a pull request or
  squashed (the squash keeps the line, or says "Reverts <owner>/<repo>#<number>");
- GitLab's revert button: "This reverts merge request !<number>" (or the commit form);
- a trailer for what a revert cannot express: `Lockgate-Rollback: <version>[, <version> …]`.

A pull or merge request number only matches the change whose merge or squash commit names that
same number, so a revert of request #12 never rolls back what request #21 brought.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REVERTS_COMMIT = re.compile(r"\bThis reverts commit ([0-9a-f]{7,40})\b", re.IGNORECASE)
_GITHUB_REVERTS = re.compile(r"^\s*Reverts [\w.-]+/[\w.-]+#(\d+)\s*$", re.MULTILINE)
_GITLAB_REVERTS = re.compile(r"\bThis reverts merge request [\w./-]*!(\d+)\b")
_TRAILER = re.compile(r"^Lockgate-Rollback:[ \t]*(.+)$", re.MULTILINE | re.IGNORECASE)
_VERSION = re.compile(r"^(\d+)(?:_\S*)?$")
# How a change names its pull or merge request: GitHub's merge and squash subjects, GitLab's merge body.
_GITHUB_MERGE = re.compile(r"^Merge pull request #(\d+) ")
_GITHUB_SQUASH = re.compile(r"\(#(\d+)\)\s*$")
_GITLAB_MERGE = re.compile(r"\bSee merge request [\w./-]*!(\d+)\b")
_MIN_SHA = 7


@dataclass(frozen=True, slots=True)
class CommitText:
    sha: str
    message: str  # the whole message: subject, body and trailers


@dataclass(frozen=True, slots=True)
class Change:
    """A first-parent commit and, when it is a merge, the commits it brought in."""

    commit: CommitText
    merged: tuple[CommitText, ...] = ()

    def texts(self) -> tuple[CommitText, ...]:
        return (self.commit, *self.merged)


def rollback_trailer_versions(message: str) -> set[str]:
    """The versions a `Lockgate-Rollback:` trailer names (`20240115093000` or `20240115093000_name`)."""
    versions: set[str] = set()
    for value in _TRAILER.findall(message):
        for token in re.split(r"[,\s]+", value.strip()):
            if m := _VERSION.match(token):
                versions.add(m[1])
    return versions


def _requests(change: Change) -> tuple[set[str], set[str]]:
    """(GitHub pull request numbers, GitLab merge request numbers) the change was merged as."""
    subject = change.commit.message.partition("\n")[0]
    github = {m[1] for m in (_GITHUB_MERGE.match(subject), _GITHUB_SQUASH.search(subject)) if m}
    gitlab = set(_GITLAB_MERGE.findall(change.commit.message))
    return github, gitlab


def revert_of(version: str, removal: Change, introduction: Change | None) -> str | None:
    """How `removal` reverts the change that introduced `version` (a phrase for the note), or None.

    `introduction` is None when the commit that brought the migration is unknown (history
    rewritten, or applied outside a sync): then only the explicit trailer can sanction it.
    """
    for text in removal.texts():
        if version in rollback_trailer_versions(text.message):
            return f"Lockgate-Rollback trailer in {text.sha[:12]}"
    if introduction is None:
        return None
    introduced = {text.sha for text in introduction.texts()}
    github, gitlab = _requests(introduction)
    for text in removal.texts():
        for ref in _REVERTS_COMMIT.findall(text.message):
            ref = ref.lower()
            if len(ref) >= _MIN_SHA and any(sha.startswith(ref) for sha in introduced):
                return f"{text.sha[:12]} reverts {ref[:12]}"
        if numbers := github & set(_GITHUB_REVERTS.findall(text.message)):
            return f"{text.sha[:12]} reverts pull request #{min(numbers)}"
        if numbers := gitlab & set(_GITLAB_REVERTS.findall(text.message)):
            return f"{text.sha[:12]} reverts merge request !{min(numbers)}"
    return None
