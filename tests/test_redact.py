"""Secrets are masked wherever they appear in text lockgate writes out."""

from __future__ import annotations

import pytest

from lockgate.controller import config
from lockgate.controller.redact import Redactor, basic_auth, from_settings


@pytest.mark.parametrize(("text", "expected"), [
    ("host=db user=app password=hunter22 dbname=shop", "host=db user=app password=*** dbname=shop"),
    ("host=db password='two words' port=5432", "host=db password=*** port=5432"),
    ("postgres://app:hunter22@db:5432/shop", "postgres://app:***@db:5432/shop"),
    ("postgresql://app@db/shop", "postgresql://app@db/shop"),
    ("fetch https://ghp_abc123@github.com/acme/shop.git", "fetch https://***@github.com/acme/shop.git"),
    ("https://oauth2:glpat-x1@gitlab.com/g/p.git", "https://oauth2:***@gitlab.com/g/p.git"),
    ("ssh://git@github.com/acme/shop.git", "ssh://git@github.com/acme/shop.git"),
    ("Authorization: Bearer ghp_abc123", "Authorization: Bearer ***"),
    ("authorization: basic eC1hY2Nlc3M=", "authorization: basic ***"),
    ("PRIVATE-TOKEN: glpat-x1", "PRIVATE-TOKEN: ***"),
    ("GET /api?access_token=abc123&page=2", "GET /api?access_token=***&page=2"),
    ("nothing secret here", "nothing secret here"),
])
def test_credential_shapes_are_masked(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_configured_secrets_are_masked_anywhere() -> None:
    redact = Redactor(["s3cret-token", None, "", "abc"])
    assert redact("echoed s3cret-token twice: s3cret-token.") == "echoed *** twice: ***."
    # Too short to mask as a literal without mangling ordinary words.
    assert redact("abc") == "abc"
    assert redact.with_secrets("another-one")("another-one s3cret-token") == "*** ***"


def test_settings_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-the-env")
    settings = config.load(
        dsn="host=db user=app password=dsn-pass-1 dbname=x", github_token="ghp_tok1",
        gitlab_token="glpat-tok2", git_token="git-tok3",
    )
    redact = from_settings(settings)
    text = "dsn-pass-1 ghp_tok1 glpat-tok2 git-tok3 from-the-env " + basic_auth("u", "v")
    assert redact(text) == "*** *** *** *** *** " + basic_auth("u", "v")
    assert redact("could not connect: invalid DSN") == "could not connect: invalid DSN"
