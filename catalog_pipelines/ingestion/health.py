"""Provider health as one record: what the asset check, `admin status` and the dashboards show."""

from __future__ import annotations

import datetime as dt
from typing import Any

from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.ingestion.cycle import snapshot
from catalog_pipelines.ingestion.engine import health
from catalog_pipelines.storage.catalog import CatalogStore, utcnow
from catalog_pipelines.storage.ledger import Ledger


def provider_health_report(ledger: Ledger, store: CatalogStore, config: ProviderConfig,
                           now: dt.datetime | None = None, run_in_progress: bool = False) -> dict[str, Any]:
    now = now or utcnow()
    snap = snapshot(ledger, config.name, run_in_progress=run_in_progress)
    h = health(snap, config.options, now)
    last_done = next((i for i in ledger.history(config.name, limit=5) if i.ingestion_completed_at), None)
    duration = throughput = None
    if last_done is not None:
        duration = (last_done.ingestion_completed_at - last_done.created_at).total_seconds()
        throughput = round(last_done.entities_seen / duration, 1) if duration > 0 else None
    c = snap.cycle
    return {
        "provider": config.name,
        "healthy": h.healthy,
        "state": h.state,
        "reason": h.reason,
        "cycle": c.cycle if c else None,
        "attempts": c.attempts if c else 0,
        "last_error": c.last_error if c else None,
        "next_action": c.next_action if c else None,
        "next_action_at": h.next_action_at.isoformat() if h.next_action_at else None,
        "entities_owned": store.count(config.name),
        "last_cycle": last_done.cycle if last_done else None,
        "last_cycle_seconds": round(duration, 1) if duration is not None else None,
        "last_cycle_entities_per_second": throughput,
        "last_sweep": last_done.sweep_outcome if last_done else None,
    }
