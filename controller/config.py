"""The controller's settings: flags > LOCKGATE_* environment > [tool.lockgate] > defaults.

A wrong value is a one-line UsageError naming the key and where it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lockgate.hooks.directives import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from lockgate.hooks.errors import UsageError
from lockgate.hooks.settings import ENV_PREFIX, SUPPORTED_PG_VERSIONS, pyproject_table

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """`500ms`, `2s`, `5min`, `1h` or a number of seconds, as seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration like 500ms, 2s or 5min")
    return float(m[1]) * _SCALE[m[2]]


class _PyprojectSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], cwd: Path) -> None:
        super().__init__(settings_cls)
        self.table = pyproject_table(cwd)[1]

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.table.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.table.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    dsn: SecretStr | None = Field(None, description="target database; libpq's PG* variables also work")
    fleet: Path | None = Field(None, description="fleet file: sync each of its targets, in waves (excludes dsn)")
    dir: Path = Path("migrations")
    repo: str | None = Field(None, description="git URL or path the controller watches")
    branch: str = "main"
    target_pg_version: int = 15
    ledger_schema: str = "lockgate"
    lock_timeout: float = Field(DEFAULT_LOCK_TIMEOUT_S, description="seconds a statement may wait for a lock")
    statement_timeout: float = Field(DEFAULT_STATEMENT_TIMEOUT_S, description="seconds a statement may run")
    lock_retries: int = Field(5, ge=0)
    retry_backoff: float = Field(1.0, description="first wait after a lock timeout, doubled each retry")
    batch_lock_timeout: float = 1.0
    batch_statement_timeout: float = 30.0
    max_replica_lag: float = Field(10.0, description="pause batches while replay lag exceeds this")
    notes_ref: str = "refs/notes/lockgate"
    require_signed: bool = False
    max_rollbacks: int = Field(
        3, ge=1, description="most migrations one pass may roll back; a pass that would roll back more rolls back none",
    )
    allowed_signers: Path | None = None
    cache_dir: Path | None = Field(
        None, description="the git cache; default $XDG_CACHE_HOME/lockgate/<repository key> (~/.cache when unset)",
    )
    metrics_push_url: str | None = Field(
        None, description="Prometheus Pushgateway a fleet pass pushes its per-target metrics to",
    )
    cache_wait: float = Field(60.0, description="seconds to wait for another lockgate process to leave the cache")
    watch_interval: float = 60.0
    github_token: SecretStr | None = None
    github_repository: str | None = Field(None, description="owner/name for commit statuses")
    github_api_url: str = "https://api.github.com"
    gitlab_token: SecretStr | None = None
    gitlab_project: str | None = Field(None, description="project id or path for commit statuses")
    gitlab_api_url: str = "https://gitlab.com/api/v4"
    git_token: SecretStr | None = Field(None, description="token for https git remotes")

    @field_validator(
        "lock_timeout", "statement_timeout", "retry_backoff", "batch_lock_timeout",
        "batch_statement_timeout", "max_replica_lag", "watch_interval", "cache_wait", mode="before",
    )
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("target_pg_version")
    @classmethod
    def _pg_version(cls, value: int) -> int:
        if value not in SUPPORTED_PG_VERSIONS:
            raise ValueError("expected a PostgreSQL major version 10-18")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _PyprojectSource(settings_cls, Path.cwd())


def load(**flags: Any) -> Settings:
    """Settings with command-line flags on top; flags that are None are not given."""
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        source = "flag" if key in given else f"{ENV_PREFIX}{key.upper()} or [tool.lockgate] {key}"
        raise UsageError(f"setting {key} ({source}): {error['msg']}") from None
