"""Delivery metrics configuration (config/delivery.yaml): windows, honest-statistics thresholds,
time zone, and the DORA performance bands.

Band thresholds default to the performance levels of DORA's *Accelerate State of DevOps Report
2023* (Google Cloud / DORA), table "Software delivery performance levels":

| level  | deployment frequency            | lead time for changes   | change failure rate | failed deployment recovery time |
| ------ | ------------------------------- | ----------------------- | ------------------- | ------------------------------- |
| elite  | on demand (multiple per day)    | less than one day       | 5%                  | less than one hour              |
| high   | once per day to once per week   | one day to one week     | 10%                 | less than one day               |
| medium | once per week to once per month | one week to one month   | 15%                 | one day to one week             |
| low    | (less often)                    | (longer)                | 64%                 | one month to six months         |

The report describes clusters, whose ranges overlap (its low and medium clusters share a deployment
frequency range); a band needs strict limits, so each level's limit is the report's boundary of the
level above it: elite at least 7 deployments a week (daily or more), high at least one a week,
medium at least one a month (12 / 52 a week); lead time elite < 24 h, high < 168 h, medium < 720 h;
change failure rate elite <= 5%, high <= 10%, medium <= 15%; time to restore elite < 1 h, high
< 24 h, medium < 168 h; anything else is low.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalog_pipelines.model import config_files


class DeliveryConfigError(ValueError):
    """config/delivery.yaml is invalid: one `file:line: path: message` per problem (also in `issues`)."""

    def __init__(self, issues: list[config_files.ConfigIssue]):
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Strict):
    """Limits of the elite, high and medium levels; a value past `medium` is low."""

    elite: float
    high: float
    medium: float


class Bands(_Strict):
    deployment_frequency: Band = Field(Band(elite=7.0, high=1.0, medium=12 / 52),
                                       description="deployments per week per deploying entity, at least")
    lead_time: Band = Field(Band(elite=24.0, high=168.0, medium=720.0), description="hours, less than")
    change_failure_rate: Band = Field(Band(elite=0.05, high=0.10, medium=0.15), description="share of deployments, at most")
    time_to_restore: Band = Field(Band(elite=1.0, high=24.0, medium=168.0), description="hours, less than")


class MinEvents(_Strict):
    """Below these counts a metric is "not enough data" (NaN with a reason), not a number."""

    lead_time: int = Field(5, ge=1, description="linked changes")
    change_failure_rate: int = Field(5, ge=1, description="production deployments")
    time_to_restore: int = Field(3, ge=1, description="resolved incidents")
    pr_flow: int = Field(5, ge=1, description="merged pull requests")


class DeliveryConfig(_Strict):
    """config/delivery.yaml: how the delivery metrics are computed and judged (docs/delivery.md)."""

    timezone: str = Field("UTC", description="IANA time zone in which days and ISO weeks are counted")
    window_days: int = Field(28, ge=7, le=365, description="the rolling window (and the previous one it is compared with)")
    weeks: int = Field(12, ge=2, le=156, description="ISO weeks in the weekly series (sparklines)")
    active_days: int = Field(90, ge=7, description="an entity deploys if it had a production deployment this many days back")
    link_lookback_days: int = Field(120, ge=1, description="events read this far before the windows, so a deployment finds the changes it ships")
    failure_window_hours: float = Field(24.0, gt=0, description="an incident or rollback this soon after a production deployment fails it")
    stale_pr_days: int = Field(14, ge=1, description="an open pull request older than this is stale")
    min_events: MinEvents = MinEvents()
    bands: Bands = Bands()
    min_people: int = Field(5, ge=3, description="no figure about people (reviewers) covers fewer than this many")
    compare_min_entities: int = Field(5, ge=1, description="the org page ranks only teams with at least this many deploying entities")
    stalest_shown: int = Field(5, ge=1, le=50, description="stale pull requests listed per team")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
        return value


class DeliveryFile(DeliveryConfig):
    """The file's schema (the same model; named for `catalog-pipelines config schema`)."""


def parse_config(doc: Any, file: str = "delivery.yaml") -> DeliveryConfig:
    if doc is None:
        return DeliveryConfig()
    model, issues = config_files.validate(DeliveryConfig, doc, file)
    if issues:
        raise DeliveryConfigError(issues)
    assert model is not None
    return model


def load_config(path: str | Path | None) -> DeliveryConfig:
    """config/delivery.yaml, validated; a missing file gives the defaults."""
    import yaml

    if path is None or not Path(path).exists():
        return DeliveryConfig()
    try:
        doc = config_files.load_yaml(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DeliveryConfigError([config_files.yaml_issue(exc, str(path))]) from None
    return parse_config(doc, str(path))
