"""The delivery metrics' use case end to end: events stored by the events side (storage), read for
the windows, computed against the catalog's teams, published as DELIVERY tables, read back by the
CLI (`catalog-pipelines delivery show`) and by the scorecards' fact loader."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pytest
from click.testing import CliRunner

from analytics.delivery.synthetic import synthetic_delivery_events
from catalog_pipelines.cli.delivery import delivery
from catalog_pipelines.model import delivery_events as ev
from catalog_pipelines.services.delivery import compute_delivery_metrics, delivery_report, read_delivery_tables
from catalog_pipelines.storage import delivery_events as store
from catalog_pipelines.storage.db import ensure_schema
from dashboards.sample import entities_frame_from, example_entities
from tests.storage.test_history import Catalog

END = datetime(2025, 6, 2, tzinfo=UTC)


def _rows(kind: str, frame) -> list[dict]:
    """A frame as the collectors hand rows to storage: an `event_key` from the kind's keys."""
    out = []
    keys = ev.KEYS[kind]
    for rec in frame.astype(object).where(frame.notna(), None).to_dict("records"):
        rec["event_key"] = "#".join(str(rec[k]) for k in keys)
        out.append(rec)
    return out


@pytest.fixture
def stored(catalog_url, monkeypatch):
    monkeypatch.setenv("CATALOG_DATABASE_URL", catalog_url)
    cat = Catalog(catalog_url)
    cat.cycle(example_entities())
    ensure_schema(cat.engine)
    events = synthetic_delivery_events(entities_frame_from(example_entities()), None, days=70, seed=5, end=END, pipeline_runs=False)
    for kind in (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS, ev.INCIDENTS):
        store.write_events(cat.engine, kind, _rows(kind, events[kind]), END)
    return cat.engine, events


def test_metrics_from_stored_events_equal_the_metrics_from_the_frames(stored):
    engine, events = stored
    from_store = compute_delivery_metrics(engine, as_of=date(2025, 6, 1))
    summary = from_store["tables"]["dora_summary"]
    org = summary[summary["scope_type"] == "org"].set_index(summary.loc[summary["scope_type"] == "org", "metric"].astype(str))
    assert org.loc["deployment_frequency", "events"] > 0
    from_frames = compute_delivery_metrics(engine, as_of=date(2025, 6, 1), events=events)["tables"]["dora_summary"]
    a = from_frames[from_frames["scope_type"] == "org"]["value"].to_numpy(float)
    assert np.allclose(a, org["value"].to_numpy(float), equal_nan=True)
    published = read_delivery_tables(engine)
    assert set(published) >= {"dora_summary", "dora_weekly", "pr_flow", "stale_prs", "entity_facts", "source_control", "meta"}
    assert published["meta"]["as_of"].iloc[0] == "2025-06-01"
    teams = set(published["dora_summary"].loc[published["dora_summary"]["scope_type"] == "team", "scope_ref"])
    assert {"group:default/alpha", "group:default/platform", "group:default/acme"} <= teams  # rolled up the hierarchy


def test_delivery_show_prints_a_teams_four_keys_and_stalest_prs(stored):
    engine, events = stored
    compute_delivery_metrics(engine, as_of=date(2025, 6, 1), events=events)
    out = CliRunner().invoke(delivery, ["show", "--team", "alpha"], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert "Delivery of group:default/alpha (team)" in out.output and "deployment_frequency" in out.output
    assert "cycle_time" in out.output
    data = json.loads(CliRunner().invoke(delivery, ["show", "--json"]).output)
    assert data["scope_ref"] == "org" and {k["metric"] for k in data["four_keys"]} == {
        "deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"}
    unknown = CliRunner().invoke(delivery, ["show", "--team", "nobody"])
    assert unknown.exit_code != 0 and "no delivery figures for team" in unknown.output
    with pytest.raises(KeyError):
        delivery_report(engine, "nobody")


def test_scorecards_read_the_delivery_facts(stored):
    engine, events = stored
    compute_delivery_metrics(engine, as_of=date(2025, 6, 1), events=events)
    from catalog_pipelines.services.facts import fact_catalog, load_latest_facts

    facts = load_latest_facts(engine)["delivery"]
    assert "component:default/alpha-api" in set(facts["entity_ref"])
    assert fact_catalog()["delivery.deployment_frequency_per_week"].type == "number"
