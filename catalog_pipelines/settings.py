"""Every setting the project reads from the environment, in one place (pydantic-settings).

This module is the only one that reads environment variables of the project (a test checks that no
other module reads a `CATALOG_*` variable: tests/services/test_config_schemas.py). Each call of
`Settings.from_env()` reads the environment anew, so tests can monkeypatch variables.

Everything the project writes (the SQLite catalog, DAGSTER_HOME, generated outputs) lives under one
data directory so that a checkout stays clean and one `rm -rf .data` resets a machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"


def _env(name: str, *more: str) -> AliasChoices:
    return AliasChoices(name, *more)


class Settings(BaseSettings):
    """The environment variables of the project; the field's alias is the variable's name."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True, env_ignore_empty=True)

    # -- where data lives
    data_dir: Path = Field(PROJECT_ROOT / ".data", validation_alias=_env("CATALOG_PIPELINES_DATA_DIR"))
    catalog_database_url: str = Field("", validation_alias=_env("CATALOG_DATABASE_URL"))
    # DAGSTER_HOME is Dagster's own variable; the project only supplies a default under data_dir.
    dagster_home: Path | None = Field(None, validation_alias=_env("DAGSTER_HOME"))
    output_dir: Path | None = Field(None, validation_alias=_env("CATALOG_PIPELINES_OUTPUT_DIR"))
    # The pseudonymisation key must come from the environment in production; the fallback keeps the
    # demo and tests deterministic and is documented as unsafe.
    pseudonym_key: bytes = Field(b"insecure-demo-key-change-me", validation_alias=_env("CATALOG_PIPELINES_PSEUDONYM_KEY"))

    # -- configuration files (config/; `catalog-pipelines config validate` checks them all)
    providers_config: Path = Field(CONFIG_DIR / "providers.yaml", validation_alias=_env("CATALOG_PIPELINES_PROVIDERS"))
    collectors_config: Path = Field(CONFIG_DIR / "collectors.yaml", validation_alias=_env("CATALOG_PIPELINES_COLLECTORS"))
    scorecards_config: Path = Field(CONFIG_DIR / "scorecards", validation_alias=_env("CATALOG_PIPELINES_SCORECARDS"))
    surveys_config: Path = Field(CONFIG_DIR / "surveys", validation_alias=_env("CATALOG_PIPELINES_SURVEYS"))
    permissions_config: Path = Field(CONFIG_DIR / "permissions.yaml", validation_alias=_env("CATALOG_PIPELINES_PERMISSIONS"))
    # Folder with skills.yaml (taxonomy), gigs.yaml and profiles.csv.
    skills_config: Path = Field(CONFIG_DIR / "skills", validation_alias=_env("CATALOG_PIPELINES_SKILLS"))
    # Delivery metrics: windows, thresholds, DORA bands, time zone (docs/delivery.md).
    delivery_config: Path = Field(CONFIG_DIR / "delivery.yaml", validation_alias=_env("CATALOG_PIPELINES_DELIVERY"))
    # Channels and routing rules of the notifications (docs/notifications.md).
    notifications_config: Path = Field(CONFIG_DIR / "notifications.yaml", validation_alias=_env("CATALOG_PIPELINES_NOTIFICATIONS"))

    # -- usage analytics
    usage_retention_days: int = Field(90, validation_alias=_env("CATALOG_PIPELINES_USAGE_RETENTION_DAYS"))
    usage_start: str = Field("2025-01-01", validation_alias=_env("CATALOG_PIPELINES_USAGE_START"))

    # -- delivery insights: the first day of the delivery events' daily partitions (two years of
    # history before the project's delivery insights started; a backfill reaches no further)
    delivery_start: str = Field("2024-12-01", validation_alias=_env("CATALOG_PIPELINES_DELIVERY_START"))

    # -- catalog quality thresholds
    quality_owner_min_ratio: float = Field(0.95, validation_alias=_env("CATALOG_QUALITY_OWNER_MIN_RATIO"))
    quality_relation_target_min_ratio: float = Field(0.98, validation_alias=_env("CATALOG_QUALITY_RELATION_TARGET_MIN_RATIO"))

    # -- execution
    executor: str = Field("", validation_alias=_env("CATALOG_PIPELINES_EXECUTOR"))
    celery_broker: str = Field("", validation_alias=_env("CATALOG_PIPELINES_CELERY_BROKER"))
    celery_backend: str = Field("", validation_alias=_env("CATALOG_PIPELINES_CELERY_BACKEND"))

    # -- who is acting (CLI)
    actor: str = Field("", validation_alias=_env("CATALOG_PIPELINES_ACTOR"))
    user: str = Field("", validation_alias=_env("CATALOG_PIPELINES_USER"))

    @model_validator(mode="after")
    def _derived_defaults(self) -> "Settings":
        data_dir = Path(self.data_dir).resolve()
        derived = {
            "data_dir": data_dir,
            "catalog_database_url": self.catalog_database_url or f"sqlite:///{data_dir / 'catalog.db'}",
            "dagster_home": self.dagster_home or data_dir / "dagster_home",
            "output_dir": self.output_dir or data_dir / "outputs",
        }
        for key, value in derived.items():
            object.__setattr__(self, key, value)
        return self

    @property
    def providers_config_is_explicit(self) -> bool:
        """True when CATALOG_PIPELINES_PROVIDERS names the file (then it must exist)."""
        return "providers_config" in self.model_fields_set

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings as the environment says now (read on every call)."""
        return cls()

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.dagster_home, self.output_dir):
            path.mkdir(parents=True, exist_ok=True)


def environ() -> Mapping[str, str]:
    """The process environment, for the few parsers that take an `environ` mapping so that tests can
    pass their own (usage collector security, operator tokens)."""
    return os.environ


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore them: the demo's
    in-process runs point configuration at what the demo serves (`runs.materialize_insights`)."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def env_value(name: str) -> str | None:
    """The variable a configuration names, e.g. a provider's `token_env: BACKSTAGE_TOKEN`."""
    return os.environ.get(name)
