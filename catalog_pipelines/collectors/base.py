"""The collector contract: what every fact collector (report files, vendor APIs) produces.

A collector reads one source and yields `Batch`es. A batch holds:
- `observations`: facts about one *target* each. A target says how the record names its entity,
  the way Backstage plugins do: an annotation and its value (`github.com/project-slug` =
  `acme/petstore`), or, as a fallback only, an explicit entity ref (`ENTITY_REF`). The collector
  never resolves targets; `services.facts` maps them to entities through the catalog's
  annotations, and counts what maps to no entity or to several (never dropped, never guessed).
- `events`: delivery events (pull requests, reviews, deployments, incidents, pipeline runs; the
  kinds and columns of `catalog_pipelines.model.delivery_events`), each about one target like an
  observation and mapped to its entity the same way; stored as time series, not as latest facts.
- `rejections`: input it could not read (one line each: where, and why); the rest lands.
- `cursor`: the state to resume from after this batch (e.g. a since-timestamp per endpoint), or
  None when unchanged. The caller persists it only once the batch is stored, so a source that
  fails mid-run resumes from the last stored batch.

Collectors import `catalog_pipelines.model` at most (layering: sources never write).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

FACT_TYPES = ("boolean", "number", "string", "list", "object")

# A target that names the entity directly: the fallback when a source knows no annotation value.
ENTITY_REF = "entity_ref"


@dataclass(frozen=True)
class FactDecl:
    """One fact a collector emits: its name (unqualified; checks say `<collector>.<name>`), type
    and what it means."""

    name: str
    type: str
    description: str

    def __post_init__(self) -> None:
        if self.type not in FACT_TYPES:
            raise ValueError(f"fact {self.name!r}: type {self.type!r} must be one of {FACT_TYPES}")


@dataclass(frozen=True)
class Target:
    """How a record names its entity: `annotation` is a Backstage annotation key (or `ENTITY_REF`),
    `value` what the entity's annotation must equal (compared as documented per annotation in
    `services.facts`: slugs case-insensitively, source locations by normalised URL)."""

    annotation: str
    value: str


@dataclass(frozen=True)
class Observation:
    """Facts about one target, observed at one time. `targets` are alternatives, tried in order
    (e.g. a PagerDuty service: its service id, then its integration key); the first that maps to
    exactly one entity wins. `facts` keys are declared `FactDecl` names. `origin` says where the
    record came from (a file path, an API URL) for error lists and `facts show`."""

    targets: tuple[Target, ...]
    facts: Mapping[str, Any]
    observed_at: datetime
    origin: str = ""


@dataclass(frozen=True)
class Rejection:
    """Input that could not be read: `where` (file and place, or URL), `reason` (one line)."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


# Event attributes that name a person: pseudonymised (keyed HMAC) by `services.facts` before
# anything is stored; a collector hands the vendor's login as read.
PERSON_ATTRIBUTES = ("author", "reviewer")


@dataclass(frozen=True)
class Event:
    """One delivery event (`kind` one of `model.delivery_events.KINDS`) about one target.

    `key` is stable and unique within the collector for the kind (`acme/api#12`, a deployment or
    run id): stored events are keyed by (collector, key), so reading the same event again updates it
    (a pull request merged since). `attributes` are the kind's frame columns except `entity_ref`
    and `source` (times as aware datetimes or None; people as the vendor's login, pseudonymised
    before storage). `keep_unmapped`: store it with no entity when its targets map to none (an
    incident whose service no entity declares stays visible); otherwise it is counted unmapped
    and dropped, as an observation is."""

    kind: str
    targets: tuple[Target, ...]
    key: str
    attributes: Mapping[str, Any]
    origin: str = ""
    keep_unmapped: bool = False


@dataclass
class Batch:
    observations: list[Observation] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    cursor: dict[str, Any] | None = None


class Collector(Protocol):
    """A configured collector instance (built by its registry factory from collectors.yaml)."""

    name: str

    def facts(self) -> Mapping[str, FactDecl]:
        """Every fact this instance can emit (after any `facts:` selection in its config)."""
        ...

    def collect(self, cursor: Mapping[str, Any] | None, now: datetime) -> Iterator[Batch]:
        """Read the source from `cursor` (None: from the start / the configured look-back)."""
        ...


class CollectorFactory(Protocol):
    """Builds a collector from its collectors.yaml entry: `name`, its `params` (connection settings
    with `${ENV}` secrets already substituted, and collector-specific keys), and the directory of
    the config file (relative paths are relative to it)."""

    def __call__(self, name: str, params: dict[str, Any], base_dir: Any) -> Collector: ...
