"""Portal usage: the event and summary stores, publishing the insight tables, importing and
generating events, and the summary the CLI shows.

Tables (area `usage` in the insight store) are described in `catalog_pipelines/assets/usage.py`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from analytics.usage.insights import UsageConfig
    from analytics.usage.privacy import People
    from catalog_pipelines.storage.usage_store import DailySummaryStore, RawEventStore

from catalog_pipelines.model.insight_tables import USAGE

# What `usage summary` reads.
TABLES = (USAGE.meta, USAGE.daily, USAGE.reach, USAGE.top_daily, USAGE.search_terms_daily, USAGE.templates_daily,
          USAGE.funnels_daily, USAGE.adoption)


class UsageUnavailable(LookupError):
    """No usage insights are stored yet."""


def usage_root() -> Path:
    """`<data_dir>/usage`: `raw/` (events) and `daily/` (summaries)."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().data_dir / "usage"


def raw_store() -> "RawEventStore":
    from catalog_pipelines.storage.usage_store import RawEventStore

    return RawEventStore(usage_root() / "raw")


def summary_store() -> "DailySummaryStore":
    from catalog_pipelines.storage.usage_store import DailySummaryStore

    return DailySummaryStore(usage_root() / "daily")


def retention_days() -> int:
    from catalog_pipelines.settings import Settings

    return Settings.from_env().usage_retention_days


def usage_config() -> "UsageConfig":
    from analytics.usage.insights import UsageConfig

    return UsageConfig(retention_days=retention_days())


def metric_problems(tables: dict[str, "pd.DataFrame"]) -> list[str]:
    """Figures that cannot be right: DAU > WAU, WAU > MAU, a rate or share outside [0, 1]."""
    problems = []
    daily = tables["daily"]
    # hidden counts (fewer than k people) are missing and compare as consistent
    for r in daily[((daily["dau"] > daily["wau"]) | (daily["wau"] > daily["mau"])).fillna(False).astype(bool)].itertuples():
        problems.append(f"{r.day}: DAU {r.dau}, WAU {r.wau}, MAU {r.mau}")
    for column in ("stickiness", "zero_result_rate", "click_through_rate"):
        values = daily[column].dropna()
        problems += [f"{d}: {column} = {v}" for d, v in zip(daily.loc[values.index, "day"], values) if not 0 <= v <= 1]
    for name, column in (("cohorts", "retention"), ("adoption", "share")):
        values = tables[name][column].dropna() if len(tables[name]) else []
        problems += [f"{name}: {column} = {v}" for v in values if not 0 <= v <= 1]
    return problems


def people_violations(tables: dict[str, "pd.DataFrame | None"], k: int | None = None) -> list[str]:
    """Shown people counts below k in usage tables: k is the tables' own `min_people` (else `k`,
    else the configured minimum), never below the floor of 3 the surveys use too. Every door that
    publishes or shows usage figures calls this first."""
    from analytics.usage.privacy import MIN_PEOPLE_FLOOR, people_figure_violations

    meta = tables.get("meta")
    if meta is not None and len(meta):
        if "min_people" not in meta.columns or meta["min_people"].isna().all():
            return ["the usage tables predate the k rule (no min_people): re-materialise usage_insights"]
        k = int(meta["min_people"].iloc[0]) if k is None else k
    k = max(k if k is not None else usage_config().min_team_size, MIN_PEOPLE_FLOOR)
    return people_figure_violations({name: frame for name, frame in tables.items() if frame is not None}, k)


def unsummarised_days(raw: "RawEventStore", summaries: "DailySummaryStore", retention: int, as_of: date) -> list[date]:
    from datetime import timedelta

    first = as_of - timedelta(days=retention - 1)
    summarised = set(summaries.days())
    return [d for d in raw.days() if first <= d <= as_of and d not in summarised and raw.has_events(d)]


def publish_insights(engine: "sa.Engine") -> dict[str, Any] | None:
    """Combine the retained days' summaries with the catalog's teams into the insight tables and
    store them; None when there is no daily summary yet. Returns the tables, rows written, metric
    problems and retained days that are not summarised."""
    from catalog_pipelines.services.usage_pipeline import insights
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.insights import write_frames

    summaries, raw, config = summary_store(), raw_store(), usage_config()
    if not summaries.days():
        return None
    tables = insights(summaries, org=org_graph(engine), key=Settings.from_env().pseudonym_key, config=config)
    leaks = people_violations(tables, config.min_team_size)
    if leaks:
        raise RuntimeError("usage figures about fewer than k people; nothing was published:\n" + "\n".join(leaks[:20]))
    rows = write_frames(engine, {USAGE.get(name): frame for name, frame in tables.items()})
    meta = tables["meta"].iloc[0]
    return {
        "tables": tables,
        "rows": rows,
        "problems": metric_problems(tables),
        "missing": unsummarised_days(raw, summaries, config.retention_days, date.fromisoformat(meta["as_of"])),
    }


def catalog_people(engine: "sa.Engine") -> "People":
    """The catalog's users, so that their names in paths and search terms are pseudonymised too."""
    from analytics.usage.privacy import People
    from catalog_pipelines.storage.catalog import CatalogStore

    return People.from_entities(CatalogStore(engine).iter_entities(kinds=["User"]))


def import_events(engine: "sa.Engine", files: list[Path]) -> dict[str, dict[str, Any]]:
    """Append JSON-lines files of events to the raw store, each line validated on its own."""
    from catalog_pipelines.settings import Settings

    store = raw_store()
    key = Settings.from_env().pseudonym_key
    people = catalog_people(engine)
    return {str(path): store.import_jsonl(path, key, retention_days=retention_days(), people=people).as_dict() for path in files}


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


def _minutes(duration: Any) -> float | None:
    """Backstage's `backstage.io/time-saved` annotation (ISO 8601, e.g. PT2H30M) in minutes."""
    match = _DURATION.match(str(duration or "").strip().upper())
    if not match or not any(match.groups()):
        return None
    d, h, m = (int(x) if x else 0 for x in match.groups())
    return float(d * 1440 + h * 60 + m)


def generate_events(engine: "sa.Engine", *, days: int, events: int, seed: int, jsonl: Path | None = None) -> dict[str, Any] | None:
    """Synthetic portal usage for the catalog's users and teams, into the raw store or as
    Backstage-shaped JSON lines; None when the catalog has no users."""
    import orjson

    from analytics.usage.synthetic import DEFAULT_TEMPLATES, SyntheticUsage
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.frames import entities_frame

    org = org_graph(engine)
    if not org.users:
        return None
    entities = entities_frame(engine, ["Component", "API", "System", "Resource"])
    refs = list(entities["ref"]) if len(entities) else None
    templates_frame = entities_frame(engine, ["Template"])
    templates = []
    for ref, entity in zip(templates_frame.get("ref", []), templates_frame.get("entity", [])):
        annotations = ((entity or {}).get("metadata") or {}).get("annotations") or {}
        templates.append((ref, _minutes(annotations.get("backstage.io/time-saved")) or 60.0))
    start = datetime.now(UTC).date() - timedelta(days=days)
    gen = SyntheticUsage(org, seed=seed, start=start, days=days, events=events, entity_refs=refs, templates=templates or DEFAULT_TEMPLATES)
    written = 0
    if jsonl:
        with jsonl.open("wb") as handle:
            for index in range(days):
                for event in gen.backstage_events(index):
                    handle.write(orjson.dumps(event) + b"\n")
                    written += 1
        target = str(jsonl)
    else:
        store = raw_store()
        key = Settings.from_env().pseudonym_key
        for index in range(days):
            table_ = gen.day_table(index, key=key)
            store.append(table_)
            written += table_.num_rows
        target = str(store.root)
    return {"events": written, "days": days, "from": start.isoformat(), "to": (start + timedelta(days=days - 1)).isoformat(), "users": len(org.users), "written_to": target}


def read_tables(engine: "sa.Engine | None" = None) -> dict[str, Any]:
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.storage.insights import read_frame

    engine = engine or engine_from_env()
    return {table.name: read_frame(engine, table) for table in TABLES}


def summary_report(days: int = 28, top: int = 5, engine: "sa.Engine | None" = None) -> dict[str, Any]:
    """What `usage summary` prints, as data (the JSON output and the tests use this)."""
    from analytics.usage.insights import window_summary

    tables = read_tables(engine)
    meta = tables["meta"]
    if meta is None or meta.empty:
        raise UsageUnavailable("no usage insights yet: materialise `usage_insights` (Dagster UI, or `catalog-pipelines usage refresh`)")
    problems = people_violations(tables)
    if problems:
        raise UsageUnavailable(f"refusing to show usage figures: {problems[0]}; re-materialise `usage_insights` (`catalog-pipelines usage refresh`)")
    covered = int(meta.iloc[0]["days"])
    # A window longer than the data is all the data: say so rather than pretend to more.
    try:
        report = window_summary(tables, days=min(days, covered), top=top)
    except ValueError as exc:  # a window other than the published ones (differencing)
        raise UsageUnavailable(str(exc)) from exc
    report["requested_days"] = days
    return report
