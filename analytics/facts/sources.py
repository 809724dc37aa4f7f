"""The catalog's own facts: what they are, their cadence and retention. No pandas here.

Facts from the organisation's tools come from collectors declared in collectors.yaml
(`catalog_pipelines.collectors`, docs/facts.md); their facts are declared there and join these in
the fact catalog that scorecard validation uses (`services.facts.fact_catalog`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FACT_TYPES = ("boolean", "number", "string", "list", "object")

@dataclass(frozen=True)
class FactSpec:
    type: str
    description: str

    def __post_init__(self) -> None:
        if self.type not in FACT_TYPES:
            raise ValueError(f"fact type {self.type!r} must be one of {FACT_TYPES}")


@dataclass(frozen=True)
class Retention:
    """Keep the `max_items` latest rows per entity, and/or drop rows older than `ttl`."""

    max_items: int | None = None
    ttl: timedelta | None = None

    def describe(self) -> str:
        parts = []
        if self.max_items is not None:
            parts.append(f"keep {self.max_items} latest per entity")
        if self.ttl is not None:
            parts.append(f"time-to-live {self.ttl}")
        return ", ".join(parts) or "keep everything"


@dataclass(frozen=True)
class FactSource:
    name: str
    description: str
    facts: dict[str, FactSpec]
    retention: Retention
    cron: str  # collection cadence; the Dagster asset reads it
    summarise: "Callable[[pd.DataFrame, datetime], pd.DataFrame] | None" = None
    key: str | None = None  # record id column, for de-duplicating across export files
    time_columns: tuple[str, ...] = field(default_factory=tuple)


def _specs(**facts: tuple[str, str]) -> dict[str, FactSpec]:
    return {name: FactSpec(t, d) for name, (t, d) in facts.items()}


FACT_SOURCE_SPECS: dict[str, FactSource] = {
    "catalog": FactSource(
        name="catalog",
        description="Derived from the stored catalog entities (kinds with an owner).",
        facts=_specs(
            has_owner=("boolean", "spec.owner is set"),
            owner_is_group=("boolean", "the owner is a Group ref (not a User)"),
            owner_exists=("boolean", "the owner ref resolves to an entity in the catalog"),
            has_description=("boolean", "metadata.description is not blank"),
            tags=("list", "metadata.tags"),
            tag_count=("number", "number of tags"),
            has_techdocs=("boolean", "a backstage.io/techdocs-ref or techdocs-entity annotation"),
            has_source_location=("boolean", "a source-location annotation or a url: managed-by-location"),
            links_count=("number", "number of metadata.links"),
            has_links=("boolean", "at least one metadata.links entry"),
            lifecycle=("string", "spec.lifecycle"),
            system=("string", "spec.system as written"),
            has_system=("boolean", "spec.system is set"),
            entity=("object", "the live entity body; use `path` to reach any field"),
        ),
        retention=Retention(max_items=5),
        cron="0 * * * *",
    ),
}

# Every fact of the catalog, flat: "catalog.<fact>" -> FactSpec. Collectors' facts join it from
# collectors.yaml (`catalog_pipelines.services.facts.fact_catalog`).
CATALOG_FACTS: dict[str, FactSpec] = {f"catalog.{n}": f for n, f in FACT_SOURCE_SPECS["catalog"].facts.items()}
