"""Provider configuration: which sources to ingest and the cycle options of each.

Options use Backstage's names in snake case (`burst_length`, `rest_length`, …). Durations accept
seconds or strings like "90s", "5m", "3h", "1d".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from catalog_pipelines.providers.base import EntityProvider
from catalog_pipelines.providers.registry import PROVIDERS, RegistryError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}
PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ConfigError(ValueError):
    """The provider configuration is invalid; the message names the provider and field."""


def parse_duration(value: Any, field_name: str = "duration") -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ConfigError(f"{field_name}: {value!r} is not a duration (seconds, or like '5m', '3h', '1d')")


@dataclass(frozen=True)
class IngestionOptions:
    chunk_size: int = 1000
    # Chunks one Dagster run may write, one after another, each in its own transaction with its own
    # mark and its own partition materialisation (`ingestion/chunk_runs.run_chunks`). A run costs ~0.3 s
    # in-process and ~5 s through the daemon (sensor tick, queue, a process that imports the code
    # location), so larger runs make the orchestration cheap; 1 is a run per chunk.
    chunks_per_run: int = 1
    burst_length: dt.timedelta = dt.timedelta(minutes=10)
    burst_interval: dt.timedelta = dt.timedelta(seconds=30)
    rest_length: dt.timedelta = dt.timedelta(hours=1)
    backoff: tuple[dt.timedelta, ...] = (
        dt.timedelta(minutes=1),
        dt.timedelta(minutes=5),
        dt.timedelta(minutes=30),
        dt.timedelta(hours=3),
    )
    # Safe by default (Backstage has no default): a sweep removing more than 10% of what the
    # provider owns is refused, and so is one after a walk that found nothing. `null` / false in the
    # configuration switch a guard off explicitly.
    reject_removals_above_percentage: float | None = 10.0
    reject_empty_source_collections: bool = True
    sensor_interval_seconds: int = 30
    cron_schedule: str | None = None
    # In-run retries of a failing chunk (Dagster RetryPolicy, exponential with jitter) before the
    # run fails and the ledger's `backoff` schedule takes over.
    retry_max: int = 3
    retry_delay_seconds: float = 2.0
    # A started run of this provider that has logged nothing for this long is dead (its worker was
    # killed): the sensor fails it and resumes the cycle (sensors/ingestion.py: recover_dead_runs).
    run_stale_after: dt.timedelta = dt.timedelta(hours=1)
    # Catalog history retention (storage/history.py: prune, after each sweep): keep the versions of
    # this many latest cycles (plus, per entity, the version that describes it before them); None
    # keeps everything.
    history_keep_cycles: int | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "IngestionOptions":
        """The options of one provider, already checked against `IngestionOptionsModel` (types,
        ranges, unknown keys: `parse_providers`): durations become timedeltas, numbers floats."""
        values: dict[str, Any] = dict(raw)
        for key in ("burst_length", "burst_interval", "rest_length", "run_stale_after"):
            if key in values:
                values[key] = parse_duration(values[key], f"{where}.{key}")
        if "backoff" in values:
            values["backoff"] = tuple(parse_duration(v, f"{where}.backoff") for v in values["backoff"])
        for key in ("reject_removals_above_percentage", "retry_delay_seconds"):
            if values.get(key) is not None:
                values[key] = float(values[key])
        return cls(**values)


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    options: IngestionOptions = IngestionOptions()
    base_dir: Path = Path(".")

    def build(self, **overrides: Any) -> EntityProvider:
        """Instantiate the provider through the provider registry (`providers/registry.py`); only
        the one provider module it needs is imported."""
        try:
            factory = PROVIDERS.load(self.type)
        except RegistryError as exc:
            raise ConfigError(f"provider {self.name!r}: {exc}") from None
        return factory(self.name, {**self.params, **overrides}, self.options, self.base_dir)


def parse_providers(raw: Any, base_dir: Path, where: str = "providers") -> list[ProviderConfig]:
    """Check `raw` against `ProvidersFile` (every problem as `file:line: path: message`), then build."""
    from catalog_pipelines.model.config_files import validate

    _, issues = validate(ProvidersFile, raw, where)
    if issues:
        raise ConfigError("\n".join(str(issue) for issue in issues))
    out: list[ProviderConfig] = []
    for index, item in enumerate(raw["providers"]):
        # The shape (mapping, name pattern, known type, option types) was checked by the model.
        here = f"{where}: providers[{index}]"
        item = dict(item)
        name, ptype = item.pop("name"), item.pop("type")
        options = IngestionOptions.from_dict(item.pop("options", {}) or {}, f"{here} ({name}).options")
        if any(p.name == name for p in out):
            raise ConfigError(f"{here}: duplicate provider name {name!r}")
        if ptype == "files" and not item.get("roots"):
            raise ConfigError(f"{here} ({name}): a files provider needs 'roots'")
        out.append(ProviderConfig(name=name, type=ptype, params=item, options=options, base_dir=base_dir))
    return out


def load_providers(path: Path, *, required: bool = False) -> list[ProviderConfig]:
    """Read the providers file; a missing file means no configured providers, unless `required`
    (a file someone named, say in CATALOG_PIPELINES_PROVIDERS): then it is a ConfigError."""
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: no such providers file (CATALOG_PIPELINES_PROVIDERS names it); "
                              "point the variable at your providers.yaml, or unset it to use config/providers.yaml")
        return []
    from catalog_pipelines.model.config_files import load_yaml, yaml_error_line

    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))  # keeps lines for the error messages
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}:{yaml_error_line(exc)}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    return parse_providers(raw, path.parent, str(path))


def configured_providers() -> list[ProviderConfig]:
    """The providers the settings name (CATALOG_PIPELINES_PROVIDERS, else config/providers.yaml): a
    file named in the environment must exist."""
    from catalog_pipelines.settings import Settings

    settings = Settings.from_env()
    return load_providers(settings.providers_config, required=settings.providers_config_is_explicit)


def missing_roots(path: Path) -> list[str]:
    """One line `file:line: providers[i].roots[j]: ...` per root of a `files` provider that does not
    exist. Not an error of the file's shape (a mounted source may be briefly away, and the sweep's
    empty-source guard protects the catalog then), but `config validate` and `ingest` refuse it
    rather than walk nothing."""
    from catalog_pipelines.model.config_files import line_of, load_yaml

    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []  # reported by load_providers
    problems = []
    for i, item in enumerate((raw or {}).get("providers") or [] if isinstance(raw, dict) else []):
        if not isinstance(item, dict) or item.get("type") != "files":
            continue
        for j, root in enumerate(item.get("roots") or []):
            resolved = Path(root) if Path(str(root)).is_absolute() else (path.parent / str(root)).resolve()
            if not resolved.exists():
                problems.append(f"{path}:{line_of(raw, ('providers', i, 'roots', j))}: providers[{i}].roots[{j}]: "
                                f"{root} does not exist ({resolved}); fix the path (relative to {path.parent}) or create it")
    return problems


# ---------------------------------------------------------------------------------------------
# schema (pydantic) of the providers file, for `catalog-pipelines config schema/validate`.
# `parse_providers` checks the same options with its own messages and builds the dataclasses above.

from typing import Annotated  # noqa: E402

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema  # noqa: E402

_DURATION_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": _DURATION.pattern.replace("(?:", "(")}], "description": "seconds, or like '90s', '5m', '3h', '1d'"}


def _duration(value: Any) -> Any:
    if value is not None:
        try:
            parse_duration(value, "duration")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("duration: ")) from None
    return value


Duration = Annotated[Any, AfterValidator(_duration), WithJsonSchema(_DURATION_SCHEMA)]


def _known_provider_type(value: str) -> str:
    import difflib

    known = PROVIDERS.names()
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{value!r} is not one of {', '.join(known)}{hint}")
    return value


class IngestionOptionsModel(BaseModel):
    """Backstage's incremental-provider options in snake case (docs/architecture.md)."""

    model_config = ConfigDict(extra="forbid")

    chunk_size: int | None = Field(None, ge=1, strict=True)
    chunks_per_run: int | None = Field(None, ge=1, strict=True, description="chunks one Dagster run writes (each its own transaction and partition materialisation)")
    burst_length: Duration = None
    burst_interval: Duration = None
    rest_length: Duration = None
    backoff: list[Duration] | None = Field(None, min_length=1)
    reject_removals_above_percentage: float | None = Field(10.0, ge=0, le=100, description="null switches the guard off; 0 rejects any removal")
    reject_empty_source_collections: bool | None = Field(None, strict=True)
    sensor_interval_seconds: int | None = Field(None, ge=1, strict=True)
    cron_schedule: str | None = None
    retry_max: int | None = Field(None, ge=0, strict=True)
    retry_delay_seconds: float | None = Field(None, ge=0)
    run_stale_after: Duration = None
    history_keep_cycles: int | None = Field(None, ge=1, strict=True, description="catalog history: keep the versions of this many latest cycles; null keeps all")


class ProviderModel(BaseModel):
    """One entity provider; keys besides name/type/options are the provider's own parameters."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, StringConstraints(pattern=PROVIDER_NAME.pattern)]
    # Any registered type (providers/registry.py): the built-ins, or one another package declares in
    # the `catalog_pipelines.providers` entry-point group; `parse_providers` checks it is known.
    type: Annotated[str, AfterValidator(_known_provider_type)] = Field(
        description="a provider type: files, backstage_api, synthetic, or one an installed package registers",
        json_schema_extra={"examples": ["files", "backstage_api", "synthetic"]})
    options: IngestionOptionsModel | None = None
    # files
    roots: list[str] | None = Field(None, description="files: descriptor files or folders, relative to this file")
    limits: dict[str, int] | None = Field(None, description="files: size limits, e.g. {max_document_bytes: 2097152}")
    # backstage_api
    base_url: str | None = Field(None, description="backstage_api: the Backstage backend URL")
    token_env: str | None = Field(None, description="backstage_api: the environment variable holding the token (default BACKSTAGE_TOKEN)")
    filter: str | list[str] | None = Field(None, description="backstage_api: catalog filter(s)")
    # synthetic
    size: int | None = Field(None, description="synthetic: number of entities")
    seed: int | None = Field(None, description="synthetic: random seed")
    page_size: int | None = Field(None, ge=1)


class ProvidersFile(BaseModel):
    """The providers file (config/providers.yaml): which sources to ingest and their cycle options."""

    model_config = ConfigDict(extra="forbid")

    providers: list[ProviderModel]
