"""How lockgate's git processes authenticate to the watched remote (no gitpython: the no-op fast
path uses it before anything heavy is imported).

Credentials for https remotes live only in the environment of the git processes lockgate runs (a
URL-scoped `http.extraHeader` passed through `GIT_CONFIG_*`); the cache's `.git/config` holds the
URL without them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from lockgate.controller.redact import basic_auth

# A single token works as the password for GitHub, GitLab and Gitea alike; the user name is
# ignored by them, but must not be empty.
TOKEN_USER = "x-access-token"


@dataclass(frozen=True, slots=True)
class Remote:
    url: str  # without credentials; a local path made absolute
    env: dict[str, str]  # for git processes that talk to it
    secrets: tuple[str | None, ...]  # what redaction must hide


def remote(url: str, token: str | None) -> Remote:
    """The remote as git should reach it: credentials from the URL or `token` moved into the environment."""
    clean_url, url_user, url_password = _strip_userinfo(url)
    # `https://user:password@host` keeps its user; `https://token@host` is a bare token.
    user = url_user if url_user and url_password and not token else TOKEN_USER
    token = token or url_password or url_user
    if "://" not in clean_url and ":" not in clean_url.split("/")[0]:
        clean_url = str(Path(clean_url).resolve())  # a local path, relative to where we run
    return Remote(clean_url, credential_env(clean_url, token, user=user),
                  (token, basic_auth(user, token) if token else None))


def _strip_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """(url without credentials, user, password) for http(s) URLs; other URLs pass through."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None, None
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)), parts.username, parts.password


def credential_env(
    url: str, token: str | None, *, user: str = TOKEN_USER, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment for git processes that talk to `url`: never prompt, and send the token.

    The header is scoped to the remote's scheme and host, so a redirect elsewhere never gets it.
    """
    env = {"GIT_TERMINAL_PROMPT": "0"}
    parts = urlsplit(url)
    if token is None or parts.scheme not in ("http", "https"):
        return env
    base = os.environ if base is None else base
    index = int(base.get("GIT_CONFIG_COUNT", "0"))
    env |= {
        "GIT_CONFIG_COUNT": str(index + 1),
        f"GIT_CONFIG_KEY_{index}": f"http.{parts.scheme}://{parts.netloc}/.extraHeader",
        f"GIT_CONFIG_VALUE_{index}": f"Authorization: Basic {basic_auth(user, token)}",
    }
    return env


