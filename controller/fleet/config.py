"""The fleet file: waves of named target databases, read from YAML into pydantic models.

A bad file is one UsageError line naming the file, the line and the key. Passwords never go in
the file: a DSN holding one is refused (libpq's PGPASSFILE/PGPASSWORD, `dsn_env` or a mounted
Secret keep them out of git).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from psycopg import conninfo
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from lockgate.controller import db
from lockgate.controller.config import Settings
from lockgate.hooks.errors import UsageError

# libyaml's loader where PyYAML was built with it: a fleet of hundreds reads ten times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Target names name Kubernetes objects and Events, so they are DNS labels.
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# ConfigMaps, Secrets and service accounts are named by DNS subdomains.
_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# A Kubernetes quantity: "500m", "1", "256Mi", "1.5Gi".
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"
Quantity = Annotated[str, Field(pattern=_QUANTITY)]


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME, max_length=40)
    dsn: str | None = None
    dsn_env: str | None = None

    @field_validator("dsn")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parts = conninfo.conninfo_to_dict(value)
            except Exception:  # psycopg raises ProgrammingError for a DSN libpq cannot read
                raise ValueError("not a DSN libpq can read") from None
            if parts.get("password"):
                raise ValueError("holds a password; passwords never go in the fleet file: use dsn_env, "
                                 "PGPASSFILE or PGPASSWORD")
        return value

    @model_validator(mode="after")
    def _one_dsn(self) -> Target:
        if (self.dsn is None) == (self.dsn_env is None):
            raise ValueError("give exactly one of dsn and dsn_env")
        return self

    def resolve_dsn(self) -> str:
        """The target's DSN; a dsn_env missing from the environment is a UsageError."""
        if self.dsn is not None:
            return self.dsn
        assert self.dsn_env is not None
        value = os.environ.get(self.dsn_env)
        if not value:
            raise UsageError(f"fleet target {self.name}: dsn_env {self.dsn_env} is not set")
        return value


class Wave(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    parallel: int = Field(1, ge=1)
    max_failures: int = Field(1, ge=1)
    targets: list[Target] = Field(min_length=1)


class Compute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: Quantity
    memory: Quantity


class Resources(BaseModel):
    """A wave pod's container resources; the defaults are the base CronJob's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: Compute = Compute(cpu="100m", memory="256Mi")
    limits: Compute = Compute(cpu="1", memory="1Gi")


class Kubernetes(BaseModel):
    """What the wave Jobs' pods need under `executor: kubernetes` (see controller/fleet/jobs.py).

    The pods read their settings as the coordinator does: `env_from` names the ConfigMaps and
    Secrets whose keys become environment variables (LOCKGATE_*, the targets' `dsn_env`,
    PGPASSWORD), and `fleet_config_map` holds the fleet file, mounted where the coordinator reads it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(min_length=1)
    service_account: str = Field("lockgate", pattern=_SUBDOMAIN)
    fleet_config_map: str = Field("lockgate-fleet", pattern=_SUBDOMAIN)
    env_from_config_maps: list[Annotated[str, Field(pattern=_SUBDOMAIN)]] = ["lockgate-config"]
    env_from_secrets: list[Annotated[str, Field(pattern=_SUBDOMAIN)]] = []
    resources: Resources = Resources()


class Fleet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: Literal["local", "kubernetes"] = "local"
    kubernetes: Kubernetes | None = Field(None, validate_default=True)
    waves: list[Wave] = Field(min_length=1)

    @field_validator("kubernetes")
    @classmethod
    def _for_the_executor(cls, value: Kubernetes | None, info: ValidationInfo) -> Kubernetes | None:
        executor = info.data.get("executor")
        if executor == "kubernetes" and value is None:
            raise ValueError("executor: kubernetes needs this block (at least its image)")
        if executor == "local" and value is not None:
            raise ValueError("only for executor: kubernetes")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Fleet:
        waves = [wave.name for wave in self.waves]
        if len(set(waves)) < len(waves):
            raise ValueError(f"wave name {next(w for w in waves if waves.count(w) > 1)} appears twice")
        seen: set[str] = set()
        for wave in self.waves:
            for target in wave.targets:
                if target.name in seen:
                    raise ValueError(f"target name {target.name} appears twice")
                seen.add(target.name)
        return self

    @property
    def targets(self) -> list[Target]:
        return [t for wave in self.waves for t in wave.targets]

    def wave(self, name: str) -> Wave:
        for wave in self.waves:
            if wave.name == name:
                return wave
        raise UsageError(f"no wave named {name} in the fleet")

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        raise UsageError(f"no target named {name} in the fleet")


def _line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the deepest node of `loc` the YAML has (the file's first line if none)."""
    node, line = root, 1
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


def parse(text: str, path: Path) -> Fleet:
    """The fleet in `text` (read from `path`); UsageError `path:line: key: problem` when it is bad."""
    try:
        data: Any = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise UsageError(f"{path}:{line}: not YAML: {getattr(exc, 'problem', None) or exc}") from None
    try:
        return Fleet.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        key = ".".join(str(p) for p in loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        line = _line(yaml.compose(text, Loader=_LOADER), loc)  # the nodes' lines, wanted only now
        raise UsageError(f"{path}:{line}: {key}: {message}") from None


def of_settings(settings: Settings) -> Fleet | None:
    """The fleet of `settings.fleet`, if set; a DSN besides it is a UsageError."""
    if settings.fleet is None:
        return None
    if settings.dsn is not None:
        raise UsageError("--fleet (LOCKGATE_FLEET) excludes --dsn (LOCKGATE_DSN): the fleet file names the targets")
    return load(settings.fleet)


def dsns(settings: Settings, only: str | None = None) -> dict[str, str]:
    """Target name → DSN: the fleet's targets (or just `only`), or the one database as ""."""
    fleet = of_settings(settings)
    if fleet is None:
        if only is not None:
            raise UsageError("--target names a target of a fleet: give --fleet (LOCKGATE_FLEET) too")
        return {"": db.target_dsn(settings)}
    targets = [fleet.target(only)] if only is not None else fleet.targets
    return {t.name: t.resolve_dsn() for t in targets}


def load(path: Path) -> Fleet:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the fleet file: {exc.__class__.__name__}") from None
    return parse(text, path)
