"""Facts: what is known about each entity, per source, time-stamped, with a retention policy.

A fact source is either the catalog itself (ownership, description, docs, ...) or an external
export (CI runs, vulnerabilities, tickets and incidents, coverage, on-call) dropped as JSON, JSON
Lines or CSV files in a directory, one directory per source. Each source turns its records into one
row of facts per entity; rows are stamped with `collected_at` and kept under the source's
retention policy (the N latest per entity, or a time-to-live, as Backstage Tech Insights'
`maxItems` / `timeToLive`). A fact that has expired is gone: checks then report it as missing
("not reported") rather than trusting stale data.

Rules name a fact as `<source>.<fact>` (`ci.default_branch_success_rate`). `catalog.entity` is the
live entity body, for rules that need a field no fact covers (`path: metadata.annotations.x`).

An entity with no records in an export has *unknown* facts, not zero: a service without any
vulnerability rows may simply not be scanned. Exporters therefore list every entity they cover;
an entity that is covered but has nothing to report gets one row with an empty record id (see
`docs/scorecards.md` for the formats).
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


# ---------------------------------------------------------------------------------------------
# export records


def prepare_export_records(records: pd.DataFrame, *, key: str | None = None, time_columns: Iterable[str] = (), where: str = "") -> pd.DataFrame:
    """One source's export records (all its files, in name order) made comparable.

    Entity refs are canonicalised (records naming no entity are dropped), `time_columns` parsed as
    UTC, and when `key` is given a record seen in a later file replaces the earlier one, so an
    export can restate a ticket or a vulnerability when its status changes. Reading the files is
    `catalog_pipelines.storage.fact_exports.read_export_dir`; `where` names them in errors.
    """
    if "entity_ref" not in records.columns:
        raise ValueError(f"{where}: export records must have an 'entity_ref' column")
    # Exports name entities however their tool does; the catalog compares canonical refs.
    records["entity_ref"] = canonical_series(records["entity_ref"], "component")
    records = records[records["entity_ref"].notna()]
    for column in time_columns:
        if column in records.columns:
            records[column] = pd.to_datetime(records[column], utc=True, errors="coerce", format="ISO8601").dt.tz_localize(None)
    if key and key in records.columns:
        with_id = records[records[key].notna() & (records[key].astype(str) != "")]
        markers = records[~records.index.isin(with_id.index)]
        with_id = with_id.drop_duplicates(subset=[key], keep="last")
        records = pd.concat([with_id, markers], ignore_index=True)
    return records.reset_index(drop=True)


def _covered(records: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"entity_ref": pd.unique(records["entity_ref"])})


def _num(records: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(records[column], errors="coerce") if column in records.columns else pd.Series(np.nan, index=records.index)


def _bool(records: pd.DataFrame, column: str) -> pd.Series:
    if column not in records.columns:
        return pd.Series(False, index=records.index)
    values = records[column]
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).astype(bool)
    # JSON gives booleans, CSV gives text: accept both.
    text = values.astype("str").str.strip().str.lower()
    return (values.astype(object).isin([True]) | text.isin(["true", "1", "yes"])).fillna(False).astype(bool)


def _days(later: pd.Timestamp, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.total_seconds() / 86400.0


def summarise_ci(records: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """CI runs → per entity: run count, last default-branch status and duration, success rate.

    Rates and medians cover default-branch runs of the last 30 days; cancelled runs do not count
    towards the success rate (a cancelled run says nothing about the code).
    """
    out = _covered(records)
    if records.empty:
        return out
    now = _naive_utc(as_of)
    runs = records[records["run_id"].notna()].copy() if "run_id" in records.columns else records.iloc[0:0].copy()
    runs["duration_seconds"] = _num(runs, "duration_seconds")
    runs["default_branch"] = _bool(runs, "default_branch")
    recent = runs[(runs["started_at"] <= now) & (runs["started_at"] > now - pd.Timedelta(days=30))]
    main = recent[recent["default_branch"]].sort_values("started_at")
    decided = main[main["status"].isin(["success", "failed"])]
    stats = pd.DataFrame(
        {
            "default_branch_success_rate": (decided["status"] == "success").groupby(decided["entity_ref"]).mean(),
            "median_duration_seconds": main.groupby("entity_ref")["duration_seconds"].median(),
            "runs_30d": recent.groupby("entity_ref").size(),
        }
    )
    last = main.groupby("entity_ref").tail(1).set_index("entity_ref")
    stats["last_status"] = last["status"]
    stats["last_duration_seconds"] = last["duration_seconds"]
    out = out.merge(stats, left_on="entity_ref", right_index=True, how="left")
    # Covered but no run in the window is a known zero, not a missing fact.
    out["runs_30d"] = out["runs_30d"].fillna(0)
    return out


SEVERITIES = ("critical", "high", "medium", "low")


def summarise_vulnerabilities(records: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Vulnerability findings → per entity: open counts by severity and the age of the oldest."""
    out = _covered(records)
    if records.empty:
        return out
    now = _naive_utc(as_of)
    found = records[records["vulnerability_id"].notna()].copy() if "vulnerability_id" in records.columns else records.iloc[0:0].copy()
    resolved = found["resolved_at"] if "resolved_at" in found.columns else pd.Series(pd.NaT, index=found.index)
    open_ = found[(found["opened_at"] <= now) & (resolved.isna() | (resolved > now))].copy()
    open_["severity"] = open_["severity"].astype(str).str.lower()
    open_["age_days"] = _days(now, open_["opened_at"])
    counts = open_.groupby(["entity_ref", "severity"]).size().unstack("severity", fill_value=0).reindex(columns=list(SEVERITIES), fill_value=0)
    counts.columns = [f"open_{s}" for s in SEVERITIES]
    out = out.merge(counts, left_on="entity_ref", right_index=True, how="left")
    for s in SEVERITIES:
        out[f"open_{s}"] = out[f"open_{s}"].fillna(0)
    out["open_total"] = out[[f"open_{s}" for s in SEVERITIES]].sum(axis=1)
    oldest = open_.groupby("entity_ref")["age_days"].max()
    severe = open_[open_["severity"].isin(["critical", "high"])].groupby("entity_ref")["age_days"].max()
    out["oldest_open_days"] = out["entity_ref"].map(oldest).fillna(0.0)
    out["oldest_critical_high_days"] = out["entity_ref"].map(severe).fillna(0.0)
    return out


def summarise_tickets(records: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Tickets and incidents → per entity: open counts, oldest open ticket, incidents in 30 days."""
    out = _covered(records)
    if records.empty:
        return out
    now = _naive_utc(as_of)
    items = records[records["ticket_id"].notna()].copy() if "ticket_id" in records.columns else records.iloc[0:0].copy()
    closed = items["closed_at"] if "closed_at" in items.columns else pd.Series(pd.NaT, index=items.index)
    items["is_open"] = (items["opened_at"] <= now) & (closed.isna() | (closed > now))
    items["type"] = items["type"].astype(str).str.lower()
    open_ = items[items["is_open"]]
    tickets = open_[open_["type"] != "incident"]
    incidents = open_[open_["type"] == "incident"]
    recent_incidents = items[(items["type"] == "incident") & (items["opened_at"] > now - pd.Timedelta(days=30)) & (items["opened_at"] <= now)]
    out["open_tickets"] = out["entity_ref"].map(tickets.groupby("entity_ref").size()).fillna(0)
    out["open_incidents"] = out["entity_ref"].map(incidents.groupby("entity_ref").size()).fillna(0)
    out["oldest_open_ticket_days"] = out["entity_ref"].map(_days(now, tickets["opened_at"]).groupby(tickets["entity_ref"]).max()).fillna(0.0)
    out["incidents_30d"] = out["entity_ref"].map(recent_incidents.groupby("entity_ref").size()).fillna(0)
    return out


def summarise_coverage(records: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Coverage reports → per entity: the latest line and branch coverage (percent) before `as_of`."""
    out = _covered(records)
    if records.empty:
        return out
    now = _naive_utc(as_of)
    rows = records.copy()
    rows["line_coverage"] = _num(rows, "line_coverage")
    rows["branch_coverage"] = _num(rows, "branch_coverage")
    rows = rows[rows["measured_at"] <= now].sort_values("measured_at")
    last = rows.groupby("entity_ref").tail(1).set_index("entity_ref")
    return out.merge(last[["line_coverage", "branch_coverage"]], left_on="entity_ref", right_index=True, how="left")


def summarise_oncall(records: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """On-call schedules → per entity: is there a schedule, how many responders, an escalation policy."""
    out = _covered(records)
    if records.empty:
        return out
    rows = records.sort_values("updated_at") if "updated_at" in records.columns else records
    last = rows.groupby("entity_ref").tail(1).set_index("entity_ref")
    schedule = last["schedule_id"] if "schedule_id" in last.columns else pd.Series(None, index=last.index)
    policy = last["escalation_policy"] if "escalation_policy" in last.columns else pd.Series(None, index=last.index)
    facts = pd.DataFrame(
        {
            "has_oncall": schedule.notna() & (schedule.astype(str).str.strip() != ""),
            "oncall_responders": _num(last, "responders").fillna(0),
            "has_escalation_policy": policy.notna() & (policy.astype(str).str.strip() != ""),
        }
    )
    return out.merge(facts, left_on="entity_ref", right_index=True, how="left")



_SUMMARISERS = {
    "ci": summarise_ci,
    "vulnerabilities": summarise_vulnerabilities,
    "tickets": summarise_tickets,
    "coverage": summarise_coverage,
    "oncall": summarise_oncall,
}

FACT_SOURCES: dict[str, FactSource] = {
    name: replace(spec, summarise=_SUMMARISERS.get(name)) for name, spec in FACT_SOURCE_SPECS.items()
}

# Facts computed on the fly at evaluation time rather than stored.
LIVE_FACTS = {("catalog", "entity")}


def fact_spec(fact: str) -> FactSpec | None:
    source, _, name = fact.partition(".")
    src = FACT_SOURCES.get(source)
    return src.facts.get(name) if src else None


def summarise_export(source: str, records: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """One source's prepared export records summarised to one row of facts per entity."""
    spec = FACT_SOURCES[source]
    if spec.summarise is None:
        raise ValueError(f"fact source {source!r} is not an export source")
    if records.empty:
        return pd.DataFrame(columns=["entity_ref", *spec.facts])
    facts = spec.summarise(records, as_of)
    return facts[["entity_ref", *[c for c in spec.facts if c in facts.columns]]]


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
