"""collectors.yaml: which fact collectors run, how they connect, when, what they keep and emit.

```yaml
collectors:
  - name: security                 # facts are `security.<fact>` in scorecard checks
    type: report_files             # a registered collector type (entry point group catalog_pipelines.collectors)
    params:                        # handed to the type's factory; `${VAR}` is read from the environment
      root: ../.data/reports
    cadence: "0 * * * *"           # cron (UTC): when the Dagster asset collects
    retention: {max_items: 10, ttl: 30d}
    lookback_days: 30              # window of windowed facts, passed as params.lookback_days (API types; default 30)
    facts:                         # optional: the facts this instance emits (default: all the type declares)
      vulnerabilities_by_severity: {type: object, description: open findings by severity}
```

The file's shape is this pydantic model (line-aware errors through `model.config_files`); that each
fact is declared by its type (same name, same type) is checked by `services.facts`, which can
build the collectors. `${VAR}` placeholders are substituted by `substitute_env` with an environment
mapping the caller passes (only `settings` reads the environment).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FACT_TYPE = Literal["boolean", "number", "string", "list", "object"]
COLLECTOR_NAME = r"^[a-z][a-z0-9_]{0,62}$"
# Five cron fields (minute hour day-of-month month day-of-week), as Dagster's cron schedules take.
_CRON_FIELD = r"(\*|\d+|\d+-\d+|\*/\d+|\d+-\d+/\d+|[A-Za-z]{3})(,(\d+|\d+-\d+|[A-Za-z]{3}))*"
_CRON = re.compile(rf"^\s*{_CRON_FIELD}(\s+{_CRON_FIELD}){{4}}\s*$")
_TTL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|w)\s*$")
_TTL_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FactEntry(_Strict):
    type: FACT_TYPE = Field(description="boolean, number, string, list or object; must equal what the collector type declares")
    description: str = Field("", description="what the fact means (default: the collector type's description)")


class RetentionEntry(_Strict):
    max_items: int | None = Field(None, ge=1, description="keep the N newest observations per entity")
    ttl: str | None = Field(None, description="drop observations older than this ('12h', '30d', '2w'); an expired fact is 'not reported'")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        if value is not None and not _TTL.match(value):
            raise ValueError(f"{value!r} is not a duration like '12h', '30d' or '2w'")
        return value

    def ttl_delta(self) -> timedelta | None:
        if self.ttl is None:
            return None
        m = _TTL.match(self.ttl)
        assert m is not None  # validated
        return timedelta(seconds=float(m.group(1)) * _TTL_UNITS[m.group(2)])

    def describe(self) -> str:
        parts = [f"keep {self.max_items} latest per entity"] if self.max_items else []
        parts += [f"time-to-live {self.ttl}"] if self.ttl else []
        return ", ".join(parts) or "keep everything"


class CollectorEntry(_Strict):
    name: str = Field(pattern=COLLECTOR_NAME, description="instance name; checks reference its facts as `<name>.<fact>`")
    type: str = Field(description="collector type registered in the entry-point group catalog_pipelines.collectors")
    params: dict[str, Any] = Field(default_factory=dict, description="connection settings and type-specific keys; `${VAR}` reads an environment variable")
    cadence: str = Field("0 * * * *", description="cron (UTC) on which the Dagster asset collects")
    retention: RetentionEntry = Field(default_factory=RetentionEntry)
    lookback_days: int | None = Field(None, ge=1, le=3650, description="look-back window of windowed facts (runs, incidents, ... in the last N days); passed to the type as params.lookback_days (collectors default to 30)")
    facts: dict[str, FactEntry] | None = Field(None, description="the facts this instance emits; default: every fact its type declares")
    description: str = ""

    @field_validator("cadence")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not _CRON.match(value):
            raise ValueError(f"{value!r} is not a cron expression of five fields (minute hour day month weekday)")
        return value

    @field_validator("name")
    @classmethod
    def _not_catalog(cls, value: str) -> str:
        if value == "catalog":
            raise ValueError("'catalog' names the catalog's own facts; choose another name")
        return value


# Two years of history plus a month, so a two-year trend always has its first weeks whole.
DEFAULT_EVENT_MAX_AGE_DAYS = 760
EVENT_KIND = Literal["pull_requests", "reviews", "deployments", "incidents", "pipeline_runs"]


class DeliveryEventsEntry(_Strict):
    """The delivery events' retention (docs/facts.md, "Delivery events")."""

    max_age_days: dict[EVENT_KIND, int] = Field(
        default_factory=dict,
        description=f"days of events kept per kind (by the event's day); a kind not listed keeps {DEFAULT_EVENT_MAX_AGE_DAYS}")

    @field_validator("max_age_days")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if v < 1}
        if bad:
            raise ValueError(f"max_age_days must be at least 1: {bad}")
        return value

    def retention(self) -> dict[str, int]:
        """`{kind: max age in days}` for every kind."""
        from catalog_pipelines.model.delivery_events import KINDS as kinds

        return {k: int(self.max_age_days.get(k, DEFAULT_EVENT_MAX_AGE_DAYS)) for k in kinds}


class CollectorsFile(_Strict):
    collectors: list[CollectorEntry] = Field(default_factory=list)
    delivery_events: DeliveryEventsEntry = Field(default_factory=DeliveryEventsEntry)

    @field_validator("collectors")
    @classmethod
    def _unique(cls, value: list[CollectorEntry]) -> list[CollectorEntry]:
        seen: set[str] = set()
        for entry in value:
            if entry.name in seen:
                raise ValueError(f"collector name {entry.name!r} is used twice")
            seen.add(entry.name)
        return value


class MissingVariableError(KeyError):
    def __init__(self, where: str, variable: str):
        self.where, self.variable = where, variable
        super().__init__(f"{where}: environment variable {variable} is not set")

    def __str__(self) -> str:
        return self.args[0]


def substitute_env(value: Any, environ: Any, where: str = "params", *, strict: bool = True) -> Any:
    """`${VAR}` in every string of `value` (nested dicts and lists) replaced by `environ[VAR]`.

    A missing variable raises `MissingVariableError` naming the place; with `strict=False` it stays
    as written (validation builds collectors without their secrets)."""
    if isinstance(value, str):
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in environ:
                return str(environ[name])
            if strict:
                raise MissingVariableError(where, name)
            return m.group(0)

        return _PLACEHOLDER.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, environ, f"{where}.{k}", strict=strict) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ, f"{where}[{i}]", strict=strict) for i, v in enumerate(value)]
    return value
