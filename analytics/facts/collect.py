"""The catalog's own facts (ownership, description, docs, ...), one row per owned entity, stamped
with `collected_at` and kept under a retention policy (the N latest per entity, or a time-to-live,
as Backstage Tech Insights' `maxItems` / `timeToLive`).

Rules name a fact as `<source>.<fact>` (`catalog.has_owner`). `catalog.entity` is the live entity
body, for rules that need a field no fact covers (`path: metadata.annotations.x`). Facts from the
organisation's tools (report files, vendor APIs) are collected by `catalog_pipelines.collectors`
and stored by `catalog_pipelines.storage.facts` (docs/facts.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
import pandas as pd

from analytics.facts.sources import FACT_SOURCE_SPECS, FACT_TYPES, FactSource, FactSpec, Retention  # noqa: F401  (re-exported)
from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref



# Kinds that have an owner in Backstage's model; ownership facts make no sense for users, groups
# and locations (Tech Insights' entityOwnershipFactRetriever covers the same kinds).
OWNED_KINDS = ("component", "api", "resource", "system", "domain", "template")

TECHDOCS_ANNOTATIONS = ("backstage.io/techdocs-ref", "backstage.io/techdocs-entity")
SOURCE_LOCATION_ANNOTATION = "backstage.io/source-location"
MANAGED_BY_LOCATION = "backstage.io/managed-by-location"


# ---------------------------------------------------------------------------------------------
# helpers


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _naive_utc(ts: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def canonical_or_none(value: Any, default_kind: str, namespace: str = "default") -> str | None:
    if not isinstance(value, str | dict) or not value:
        return None
    try:
        return parse_entity_ref(value, default_kind=default_kind, default_namespace=namespace).canonical()
    except EntityRefError:
        return None


def canonical_series(values: pd.Series, default_kind: str, namespaces: pd.Series | None = None) -> pd.Series:
    """Canonical refs for a column of refs as people write them (`team-a`, `group:team-a`, ...).

    Parsed once per distinct (value, namespace) pair: owners repeat a lot.
    """
    if namespaces is None:
        namespaces = pd.Series("default", index=values.index)
    # Already-canonical refs (the common case: exports and the catalog write them so) pass through
    # with one vectorised test; only the rest is parsed.
    text = values.astype("str")
    canonical = (text.str.match(r"^[^:/]+:[^/]+/.+$") & (text == text.str.lower())).fillna(False).to_numpy(dtype=bool)
    if canonical.all():
        return values.astype(object)
    out = values.astype(object).copy()
    rest = ~canonical
    pairs = pd.DataFrame({"v": values[rest].astype(object), "ns": namespaces[rest].fillna("default").astype(object)})
    uniq = pairs.drop_duplicates()
    mapping = {
        (v, ns): canonical_or_none(v, default_kind, ns) for v, ns in zip(uniq["v"], uniq["ns"], strict=True)
    }
    out[rest] = [mapping[(v, ns)] for v, ns in zip(pairs["v"], pairs["ns"], strict=True)]
    return out


def _nonblank(values: Iterable[Any]) -> list[bool]:
    return [isinstance(v, str) and bool(v.strip()) for v in values]


# ---------------------------------------------------------------------------------------------
# catalog facts


def catalog_facts(entities: pd.DataFrame, known_refs: Iterable[str] | None = None) -> pd.DataFrame:
    """One row of catalog facts per owned-kind entity, from the catalog's entities frame.

    `entities` has the resource's columns (ref, kind, namespace, owner, system, lifecycle, entity);
    `known_refs` are the canonical refs of every stored entity, to tell whether an owner resolves
    (default: the refs in `entities`).
    """
    owned = entities[entities["kind"].str.lower().isin(OWNED_KINDS)]
    bodies = owned["entity"].tolist()
    metas = [(b or {}).get("metadata") or {} for b in bodies]
    specs = [(b or {}).get("spec") or {} for b in bodies]
    annotations = [m.get("annotations") or {} for m in metas]
    namespaces = owned["namespace"].fillna("default")
    raw_owner = pd.Series([s.get("owner") for s in specs], index=owned.index, dtype=object)
    owner = canonical_series(raw_owner, "group", namespaces)
    known = set(known_refs) if known_refs is not None else set(entities["ref"])
    tags = [list(m.get("tags") or []) if isinstance(m.get("tags"), list) else [] for m in metas]
    links = [m.get("links") if isinstance(m.get("links"), list) else [] for m in metas]
    system = [s.get("system") if isinstance(s.get("system"), str) and s.get("system") else None for s in specs]
    lifecycle = [s.get("lifecycle") if isinstance(s.get("lifecycle"), str) and s.get("lifecycle") else None for s in specs]
    source_location = [
        bool(a.get(SOURCE_LOCATION_ANNOTATION))
        or (isinstance(a.get(MANAGED_BY_LOCATION), str) and a[MANAGED_BY_LOCATION].startswith("url:"))
        for a in annotations
    ]
    out = pd.DataFrame(
        {
            "entity_ref": owned["ref"].to_numpy(),
            "has_owner": owner.notna().to_numpy(),
            "owner_is_group": owner.str.startswith("group:").fillna(False).astype(bool).to_numpy(),
            "owner_exists": owner.isin(known).to_numpy(),
            "has_description": _nonblank(m.get("description") for m in metas),
            "tags": tags,
            "tag_count": [len(t) for t in tags],
            "has_techdocs": [any(a.get(k) for k in TECHDOCS_ANNOTATIONS) for a in annotations],
            "has_source_location": source_location,
            "links_count": [len(link) for link in links],
            "has_links": [bool(link) for link in links],
            "lifecycle": lifecycle,
            "system": system,
            "has_system": [s is not None for s in system],
        }
    )
    return out


FACT_SOURCES: dict[str, FactSource] = dict(FACT_SOURCE_SPECS)

# Facts computed on the fly at evaluation time rather than stored.
LIVE_FACTS = {("catalog", "entity")}


# ---------------------------------------------------------------------------------------------
# storage encoding and retention


def encode_for_storage(facts: pd.DataFrame, source: str, collected_at: datetime) -> pd.DataFrame:
    """Stamp a facts frame and JSON-encode list/object facts so it fits a SQL table."""
    spec = FACT_SOURCES[source]
    out = facts.copy()
    out.insert(1, "collected_at", _naive_utc(collected_at))
    for name, fs in spec.facts.items():
        if name in out.columns and fs.type in ("list", "object"):
            out[name] = [orjson.dumps(v).decode() if v is not None and not (isinstance(v, float) and np.isnan(v)) else None for v in out[name]]
    return out


def decode_from_storage(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    spec = FACT_SOURCES[source]
    out = frame.copy()
    for name, fs in spec.facts.items():
        if name in out.columns and fs.type in ("list", "object"):
            out[name] = [orjson.loads(v) if isinstance(v, str) else None for v in out[name]]
        elif name in out.columns and fs.type == "boolean":
            out[name] = out[name].astype("boolean")
    if "collected_at" in out.columns:
        out["collected_at"] = pd.to_datetime(out["collected_at"])
    return out


def apply_retention(history: pd.DataFrame, retention: Retention, now: datetime) -> pd.DataFrame:
    """The rows to keep: within the time-to-live and among the `max_items` latest per entity."""
    if history.empty:
        return history
    kept = history
    if retention.ttl is not None:
        cutoff = _naive_utc(now) - pd.Timedelta(retention.ttl)
        kept = kept[pd.to_datetime(kept["collected_at"]) >= cutoff]
    if retention.max_items is not None:
        kept = kept.sort_values(["entity_ref", "collected_at"], kind="stable")
        rank = kept.groupby("entity_ref").cumcount(ascending=False)
        kept = kept[rank < retention.max_items]
    return kept.sort_values(["collected_at", "entity_ref"], kind="stable").reset_index(drop=True)


def latest_facts(history: pd.DataFrame) -> pd.DataFrame:
    """The newest row per entity."""
    if history.empty:
        return history
    return history.sort_values("collected_at", kind="stable").groupby("entity_ref").tail(1).reset_index(drop=True)
