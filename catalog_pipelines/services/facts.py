"""Facts: collect a source's facts, store them (history with retention + latest), read the latest."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

from catalog_pipelines.model.insight_tables import FACTS


def fact_exports_dir() -> Path:
    """The drop directory for fact exports: `CATALOG_PIPELINES_FACT_EXPORTS`, else `<data>/fact_exports`."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().fact_exports_dir


def store_facts(engine: "sa.Engine", source: str, facts: "pd.DataFrame", collected_at: datetime) -> dict[str, Any]:
    """Append one collection to the source's history, apply retention, refresh the latest table."""
    import pandas as pd

    from analytics.facts.collect import FACT_SOURCES, apply_retention, encode_for_storage, latest_facts
    from catalog_pipelines.storage.insights import read_frame, write_frames

    spec = FACT_SOURCES[source]
    new = encode_for_storage(facts, source, collected_at)
    history = read_frame(engine, FACTS.history(source))
    combined = new if history is None or history.empty else pd.concat([history, new], ignore_index=True)
    kept = apply_retention(combined, spec.retention, collected_at)
    write_frames(engine, {FACTS.history(source): kept, FACTS.latest(source): latest_facts(kept)})
    return {"entities": len(facts), "history_rows": len(kept), "pruned_rows": len(combined) - len(kept), "retention": spec.retention.describe()}


def load_latest_facts(engine: "sa.Engine") -> dict[str, "pd.DataFrame"]:
    """The newest facts per entity of every source that has been collected, decoded."""
    from analytics.facts.collect import FACT_SOURCES, decode_from_storage
    from catalog_pipelines.storage.insights import read_frame

    out = {}
    for source in FACT_SOURCES:
        frame = read_frame(engine, FACTS.latest(source))
        if frame is not None:
            out[source] = decode_from_storage(frame, source)
    return out


def collect_catalog_facts(engine: "sa.Engine") -> dict[str, Any]:
    """Catalog facts per owned entity from the stored catalog, stored; figures for the caller."""
    from analytics.facts.collect import catalog_facts as compute, utc_now
    from catalog_pipelines.storage.frames import entities_frame

    entities = entities_frame(engine)
    facts = compute(entities, known_refs=entities["ref"])
    stored = store_facts(engine, "catalog", facts, utc_now())
    shares = {c: round(float(facts[c].mean()), 4) for c in ("has_owner", "owner_is_group", "has_description", "has_techdocs") if len(facts)}
    return {"stored": stored, "rows": len(facts), "shares": shares}


def summarise_export_dir(source: str, directory: Path | str, as_of: datetime) -> tuple["pd.DataFrame", list[str]]:
    """Read one source's export directory (storage) and summarise it to one row of facts per
    entity (analytics); returns the facts and the files read."""
    from analytics.facts.collect import FACT_SOURCES, prepare_export_records, summarise_export
    from catalog_pipelines.storage.fact_exports import read_export_dir

    spec = FACT_SOURCES[source]
    if spec.summarise is None:
        raise ValueError(f"fact source {source!r} is not an export source")
    raw, files = read_export_dir(directory)
    records = prepare_export_records(raw, key=spec.key, time_columns=spec.time_columns, where=str(directory)) if files else raw
    return summarise_export(source, records, as_of), files


def collect_export_facts(engine: "sa.Engine", source: str) -> dict[str, Any]:
    """Read `<fact exports>/<source>/`, summarise per entity and store; figures for the caller."""
    from analytics.facts.collect import utc_now

    now = utc_now()
    directory = fact_exports_dir() / source
    facts, files = summarise_export_dir(source, directory, now)
    stored = store_facts(engine, source, facts, now)
    return {"stored": stored, "rows": len(facts), "directory": directory, "files": files}


def write_synthetic_exports(engine: "sa.Engine", *, seed: int, as_of: date | None, backfill_days: int) -> dict[str, Any]:
    """Demo only: write realistic exports for the catalog's components to the drop directories."""
    from analytics.facts.synthetic import DEFAULT_FORMATS, synthetic_exports, today_utc
    from catalog_pipelines.storage.fact_exports import write_exports
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.storage.frames import entities_frame

    as_of = as_of or today_utc()
    directory = fact_exports_dir()
    days = backfill_days if not any((directory / "ci").glob("*")) else 1
    exports = synthetic_exports(entities_frame(engine), org_graph(engine), as_of=as_of, seed=seed, days=days)
    written = write_exports(exports, directory, formats=DEFAULT_FORMATS)
    rows = {source: int(sum(len(f) for f in by_day.values())) for source, by_day in exports.items()}
    return {"as_of": as_of, "days": days, "files": len(written), "rows": rows, "directory": directory}
