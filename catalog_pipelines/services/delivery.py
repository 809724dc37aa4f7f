"""Delivery insights (issue 22): the events side and the metrics side, Dagster-free.

Events side (this group): the API collectors write delivery events while they collect facts
(`services.facts.collect`: mapping, pseudonymisation, upsert with the cursor, retention); here:
- `collect_delivery_events(engine, names=None)`: run the collectors that collect events;
- `close_day(engine, day)`: one daily partition: what the day holds per kind (events, entities,
  unmapped, rows failing the checks, events per entity), recorded in `delivery_event_days`;
- `read_delivery_events(engine, since_day, until_day, kinds=None)`: the contract frames
  (`model/delivery_events.py`) for a day range, what the metrics compute from;
- `event_day_range(engine)`: the first and last day with events (the demo's backfill range).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from analytics.delivery.config import DeliveryConfig
    import sqlalchemy as sa


# ---------------------------------------------------------------------------------------------
# events side: collect, close a day, read


def event_collectors(config_path: Path | None = None) -> list[str]:
    """The configured collectors whose params ask for delivery events."""
    from catalog_pipelines.services.facts import collectors_file

    return [e.name for e in collectors_file(config_path).collectors if e.params.get("events")]


def collect_delivery_events(engine: "sa.Engine", names: Iterable[str] | None = None, *,
                            config_path: Path | None = None) -> list[dict[str, Any]]:
    """Run the named collectors (default: every one collecting events) from their cursors: their
    facts and events are stored as `services.facts.collect_all` stores them."""
    from catalog_pipelines.services.facts import collect_all

    wanted = list(names) if names is not None else event_collectors(config_path)
    return collect_all(engine, wanted, config_path=config_path) if wanted else []


def close_day(engine: "sa.Engine", day: date, *, now: datetime | None = None) -> dict[str, Any]:
    """Validate and record one day of events: per kind the events, entities, unmapped events (no
    entity: incidents of unknown services), `problems` (times contradicting each other) and the
    events per entity. Re-closing a day (a backfill, late events) replaces its record."""
    from catalog_pipelines.model.delivery_events import KINDS
    from catalog_pipelines.storage.delivery_events import day_summary, record_day

    summaries = [day_summary(engine, kind, day) for kind in KINDS]
    record_day(engine, summaries, now or datetime.now(timezone.utc))
    return {
        "day": day.isoformat(),
        "events": {x["kind"]: x["events"] for x in summaries},
        "entities": {x["kind"]: x["entities"] for x in summaries},
        "unmapped": {x["kind"]: x["unmapped"] for x in summaries},
        "problems": {x["kind"]: x["problems"] for x in summaries},
        "per_entity": {x["kind"]: x["per_entity"] for x in summaries},
    }


def close_days(engine: "sa.Engine", days: Iterable[date]) -> list[dict[str, Any]]:
    """`close_day` for each day (a backfill's partition range)."""
    now = datetime.now(timezone.utc)
    return [close_day(engine, day, now=now) for day in days]


def read_delivery_events(engine: "sa.Engine", since_day: date | None = None, until_day: date | None = None,
                         kinds: Iterable[str] | None = None) -> dict[str, "pd.DataFrame"]:
    """`{kind: frame}` of the stored events whose day lies in `[since_day, until_day]`."""
    from catalog_pipelines.model.delivery_events import KINDS
    from catalog_pipelines.storage.delivery_events import read_events

    return {kind: read_events(engine, kind, since_day, until_day) for kind in (kinds or KINDS)}


def event_day_range(engine: "sa.Engine") -> tuple[date | None, date | None]:
    from catalog_pipelines.storage.delivery_events import day_range

    return day_range(engine)


def closed_event_days(engine: "sa.Engine", since_day: date | None = None, until_day: date | None = None) -> "pd.DataFrame":
    """The record of each closed day and kind (day, kind, events, entities, unmapped, problems, closed_at)."""
    from catalog_pipelines.storage.delivery_events import closed_days

    return closed_days(engine, since_day, until_day)


# ---------------------------------------------------------------------------------------------
# metrics side (analytics/delivery): the four keys, PR flow and review load, published as DELIVERY.*


def delivery_config(path: Path | None = None) -> "DeliveryConfig":
    """config/delivery.yaml (settings.delivery_config), validated; defaults when absent."""
    from analytics.delivery.config import load_config
    from catalog_pipelines.settings import Settings

    return load_config(path if path is not None else Settings.from_env().delivery_config)


def events_needed_since(config: "DeliveryConfig", as_of: date) -> date:
    """The first day of events the metrics of `as_of` need: the longest look-back of any window
    (two rolling windows, the weekly series, the deploying-entity window) plus the link look-back
    (a change deployed in the window may have merged that long before)."""
    from datetime import timedelta

    from analytics.delivery.metrics import facts_span_days

    return as_of - timedelta(days=facts_span_days(config) + config.link_lookback_days)


def delivery_tables(events: dict[str, "pd.DataFrame"], entities: "pd.DataFrame", org: Any, config: "DeliveryConfig",
                    as_of: date, now: datetime | None = None) -> dict[str, "pd.DataFrame"]:
    """The published delivery tables by name from event frames (`analytics.delivery.metrics.compute_tables`)."""
    from analytics.delivery.metrics import compute_tables

    return compute_tables(events, entities, org, config, as_of=as_of, now=now)


def compute_delivery_metrics(engine: "sa.Engine", *, as_of: date | None = None, config: "DeliveryConfig | None" = None,
                             events: dict[str, "pd.DataFrame"] | None = None) -> dict[str, Any]:
    """Read the events the windows need (`read_delivery_events`, or the given `events` frames),
    compute the delivery tables against the catalog's entities and teams, and publish them
    (`DELIVERY.*`, one transaction). Returns the tables, the rows written and the as-of day."""
    from datetime import timedelta

    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.storage.frames import entities_frame
    from catalog_pipelines.storage.insights import write_frames

    config = config or delivery_config()
    if as_of is None:
        last = event_day_range(engine)[1] if events is None else None
        as_of = last or (datetime.now(timezone.utc).date() - timedelta(days=1))
    if events is None:
        events = read_delivery_events(engine, events_needed_since(config, as_of), as_of)
    entities = entities_frame(engine, with_body=False)
    tables = delivery_tables(events, entities, org_graph(engine), config, as_of)
    rows = write_frames(engine, {DELIVERY.get(name): frame for name, frame in tables.items()})
    return {"tables": tables, "rows": rows, "as_of": as_of}


def read_delivery_tables(engine: "sa.Engine") -> dict[str, "pd.DataFrame | None"]:
    """The published delivery tables by name (None for one never written)."""
    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.storage.insights import read_frame

    return {t.name: read_frame(engine, t) for t in DELIVERY.tables()}


def _records(frame: "pd.DataFrame") -> list[dict[str, Any]]:
    import math

    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if (isinstance(v, float) and math.isnan(v)) or v is None or (v != v) else
                        (v.item() if hasattr(v, "item") else v)) for k, v in row.items()})
    return out


def delivery_report(engine: "sa.Engine", team: str | None = None, tables: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """One scope's delivery figures from the published tables (`team`: a group ref or its name;
    None: the organisation): the four keys, PR flow, PR summary, stalest PRs. None when nothing
    has been published; a `KeyError` naming the known teams for an unknown team."""
    tables = tables if tables is not None else read_delivery_tables(engine)
    summary = tables.get("dora_summary")
    if summary is None or not len(summary):
        return None
    if team is None:
        scope_type, scope_ref = "org", "org"
    else:
        teams = summary.loc[summary["scope_type"] == "team", "scope_ref"].astype(str).unique().tolist()
        wanted = [t for t in teams if t == team or t.split("/")[-1] == team.lower()]
        if not wanted:
            raise KeyError(f"no delivery figures for team {team!r}; teams: {', '.join(sorted(teams)[:20])}")
        scope_type, scope_ref = "team", wanted[0]

    def pick(name: str) -> "pd.DataFrame":
        frame = tables.get(name)
        if frame is None:
            return summary.iloc[0:0]
        return frame[(frame["scope_type"].astype(str) == scope_type) & (frame["scope_ref"].astype(str) == scope_ref)]

    keys = pick("dora_summary")
    flow = pick("pr_flow")
    pr_summary = pick("pr_summary")
    stale = pick("stale_prs")
    first = keys.iloc[0]
    return {
        "scope_type": scope_type, "scope_ref": scope_ref,
        "window_start": str(first["window_start"]), "window_end": str(first["window_end"]),
        "four_keys": _records(keys[["metric", "value", "p75", "p90", "unit", "events", "excluded", "reason", "band",
                                    "previous_value", "change", "trend"]].astype({"metric": str, "band": object, "trend": object})),
        "pr_flow": _records(flow[["metric", "unit", "p50", "p75", "p90", "events", "reason"]].astype({"metric": str})) if len(flow) else [],
        "pr_summary": _records(pr_summary.drop(columns=["scope_type", "scope_ref"]))[0] if len(pr_summary) else None,
        "stale_prs": _records(stale.sort_values("rank")[["rank", "entity_ref", "url", "age_days", "draft"]]) if len(stale) else [],
    }
