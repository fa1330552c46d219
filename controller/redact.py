"""Scrub secrets from any text before it reaches a log, a git note, a commit status or an error.

Two nets: patterns that catch credentials by their shape (a DSN's `password=…`, the userinfo of a
URL, an `Authorization:` header), and the literal values lockgate was configured with (tokens,
the DSN password), which catches them wherever a library happened to echo them.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockgate.controller.config import Settings

MASK = "***"
# Shorter literals would mask ordinary words; the shape patterns still catch short passwords.
_MIN_SECRET = 4

_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s/@:]*)(?::(?P<password>[^\s/@]*))?@"
)
_TOKEN_IN_USERNAME_SCHEMES = ("http://", "https://")
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|sslpassword|token|access_token|private_token|api_key)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\"]+)",
    re.IGNORECASE,
)
_HEADER = re.compile(
    r"(?P<key>\b(?:authorization:\s*(?:basic|bearer|token)|private-token:|job-token:)\s*)(?P<value>\S+)",
    re.IGNORECASE,
)


def _userinfo(m: re.Match[str]) -> str:
    scheme, user = m["scheme"], m["user"]
    if m["password"] is not None:
        return f"{scheme}{user}:{MASK}@"
    # `https://<token>@host` puts the token in the user part; `ssh://git@host` is just a name.
    if scheme.lower() in _TOKEN_IN_USERNAME_SCHEMES and user:
        return f"{scheme}{MASK}@"
    return m[0]


class Redactor:
    """Callable that masks known secrets and credential-shaped text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        literals = {s for s in secrets if s and len(s) >= _MIN_SECRET}
        # Longest first, so a secret that contains another is masked whole.
        self._literals = sorted(literals, key=len, reverse=True)

    def with_secrets(self, *secrets: str | None) -> Redactor:
        return Redactor([*self._literals, *secrets])

    def __call__(self, text: str) -> str:
        for secret in self._literals:
            text = text.replace(secret, MASK)
        text = _URL_USERINFO.sub(_userinfo, text)
        text = _KEY_VALUE.sub(lambda m: m["key"] + MASK, text)
        return _HEADER.sub(lambda m: m["key"] + MASK, text)


def basic_auth(user: str, password: str) -> str:
    """The `Authorization: Basic` credential, which must be masked as carefully as the token."""
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _dsn_password(dsn: str) -> str | None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        value = conninfo_to_dict(dsn).get("password")
    except Exception:  # an unparsable DSN is reported elsewhere; the patterns still apply
        return None
    return str(value) if value is not None else None


def from_settings(settings: Settings) -> Redactor:
    """A redactor that knows every secret in the settings and the libpq environment."""
    secrets = [
        s.get_secret_value() if s is not None else None
        for s in (settings.github_token, settings.gitlab_token, settings.git_token)
    ]
    if settings.dsn is not None:
        secrets.append(_dsn_password(settings.dsn.get_secret_value()))
    secrets.append(os.environ.get("PGPASSWORD"))
    return Redactor(secrets)
