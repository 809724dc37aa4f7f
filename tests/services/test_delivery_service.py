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


# ---------------------------------------------------------------------------------------------
# a new day, incrementally: the same tables as from scratch


def _key_columns(frame):
    return [c for c in frame.columns if (frame[c].dtype.kind not in "fc" or c in ("number", "rank")) and c not in ("reason", "trend", "band", "url", "draft",
                                                                                        "computed_at", "source")]


def _normalised(frame):
    import pandas as pd

    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype) or out[c].dtype == object:
            out[c] = out[c].astype(object).where(out[c].notna(), None).map(lambda v: None if v is None else str(v))
        elif str(out[c].dtype).startswith("datetime64"):
            out[c] = pd.to_datetime(out[c], utc=True)
        elif out[c].dtype.kind in "iub":
            out[c] = out[c].astype(float)
    keys = _key_columns(out)
    return out.sort_values(keys, kind="stable").reset_index(drop=True) if keys else out


def _assert_same_tables(a, b):
    import pandas as pd

    assert set(a) == set(b)
    for name in a:
        x, y = _normalised(a[name]), _normalised(b[name])
        if len(x) != len(y):
            keys = _key_columns(x)
            both = x.merge(y, on=keys, how="outer", indicator=True)
            print(both[both["_merge"] != "both"].to_string())
        assert len(x) == len(y), (name, len(x), len(y))
        pd.testing.assert_frame_equal(x, y[x.columns], check_dtype=False, rtol=1e-9, obj=name)


def _changed_rows(kind, before, after):
    """The rows of `after` that are new or differ from `before` (what a collector re-reads)."""
    old = {r["event_key"]: r for r in _rows(kind, before)}
    return [r for r in _rows(kind, after) if old.get(r["event_key"]) != r]


def test_a_new_day_computed_incrementally_equals_the_tables_computed_from_scratch(catalog_url, monkeypatch):
    from datetime import timedelta

    import pandas as pd
    import sqlalchemy as sa

    from analytics.delivery.synthetic import known_at
    from catalog_pipelines.services.delivery import _read_facts

    monkeypatch.setenv("CATALOG_DATABASE_URL", catalog_url)
    cat = Catalog(catalog_url)
    cat.cycle(example_entities())
    ensure_schema(cat.engine)
    engine = cat.engine
    events = synthetic_delivery_events(entities_frame_from(example_entities()), None, days=150, seed=11, end=END, pipeline_runs=False)
    day1, day2 = date(2025, 5, 29), date(2025, 6, 1)
    # an incident of April resolved only on May 31: read again, its row and its week change
    incidents = events[ev.INCIDENTS]
    old = incidents.index[incidents["started_at"].dt.date == date(2025, 4, 22)][:1]
    assert len(old)
    incidents.loc[old, "resolved_at"] = pd.Timestamp("2025-05-31 12:00", tz="UTC")
    first = known_at(events, datetime(2025, 5, 30, tzinfo=UTC))
    # a production deployment ten days back arrives late (a collector's outage): its day changes too
    deployments = first[ev.DEPLOYMENTS]
    late = deployments.index[(deployments["is_production"]) & (deployments["created_at"].dt.date == day1 - timedelta(days=10))][:1]
    assert len(late)
    first[ev.DEPLOYMENTS] = deployments.drop(late)
    # and an incident resolved on April 14 whose resolution the collector read only now (an outage):
    # rebuilt by id although neither its start nor its resolution is in the recomputed days
    unresolved = first[ev.INCIDENTS].index[first[ev.INCIDENTS]["started_at"].dt.date == date(2025, 4, 12)][:1]
    assert len(unresolved)
    first[ev.INCIDENTS] = first[ev.INCIDENTS].copy()
    first[ev.INCIDENTS].loc[unresolved, "resolved_at"] = pd.NaT
    for kind in (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS, ev.INCIDENTS):
        store.write_events(engine, kind, _rows(kind, first[kind]), datetime(2025, 5, 30, tzinfo=UTC))
    one = compute_delivery_metrics(engine, as_of=day1)
    assert one["mode"] == "full"

    second = known_at(events, datetime(2025, 6, 2, tzinfo=UTC))
    changed = {kind: _changed_rows(kind, first[kind], second[kind]) for kind in first}
    assert changed[ev.PULL_REQUESTS] and changed[ev.INCIDENTS]  # merges, closes, resolutions since
    for kind, rows in changed.items():
        store.write_events(engine, kind, rows, datetime.now(UTC))
    open_reads = []  # (whether each event read was the whole set of open pull requests)
    real_read = store.read_events
    monkeypatch.setattr(store, "read_events", lambda *a, **k: (open_reads.append(k.get("open_only", False)), real_read(*a, **k))[1])
    two = compute_delivery_metrics(engine, as_of=day2)
    # the open pull requests: the last run's set updated by the ones collected since, not read whole
    assert open_reads and not any(open_reads)
    # from the late deployment's day less the failure window and a day of slack; incidents resolved
    # since (one started weeks before) are rebuilt by id without moving the first day back
    assert two["mode"] == "incremental" and two["since"] == day1 - timedelta(days=12)
    assert one["catalog"] == "read" and two["catalog"] == "kept"  # the catalog did not change: its scopes were kept
    assert (changed_incidents := [r for r in changed[ev.INCIDENTS] if r["started_at"] < datetime(2025, 5, 17, tzinfo=UTC)])
    kept = _read_facts(engine, date(2025, 1, 1), day2 + timedelta(days=1))
    published = read_delivery_tables(engine)  # what the incremental run left in the database

    scratch = compute_delivery_metrics(engine, as_of=day2, full=True)
    assert scratch["mode"] == "full"
    _assert_same_tables(two["tables"], scratch["tables"])
    _assert_same_tables(published, read_delivery_tables(engine))
    _assert_same_tables({k: v for k, v in kept.items()},
                        {k: v for k, v in _read_facts(engine, date(2025, 1, 1), day2 + timedelta(days=1)).items()})
    # and once more, nothing new: the same figures again, incrementally, and no entity's rows
    # rewritten; the open pull requests are the kept set (updated by what was collected since), not read
    three = compute_delivery_metrics(engine, as_of=day2)
    assert three["mode"] == "incremental"
    _assert_same_tables(three["tables"], scratch["tables"])
    assert three["rows"]["dora_entities"] == three["rows"]["entity_facts"] == three["rows"]["reviewer_load"] == 0
    _assert_same_tables(published, read_delivery_tables(engine))
    # a retention run deletes an old open pull request: the kept open set no longer counts as the
    # store does, so the next run reads the open pull requests whole, and is right again
    t = store.table(ev.PULL_REQUESTS)
    with engine.begin() as conn:
        gone = conn.execute(sa.select(t.c.event_key).where(t.c.merged_at.is_(None), t.c.closed_at.is_(None), t.c.day < day1)
                            .order_by(t.c.day).limit(1)).scalar()
        assert gone is not None
        conn.execute(sa.delete(t).where(t.c.event_key == gone))
    open_reads.clear()
    four = compute_delivery_metrics(engine, as_of=day2)
    assert four["mode"] == "incremental" and any(open_reads)
    _assert_same_tables(four["tables"], compute_delivery_metrics(engine, as_of=day2, full=True)["tables"])


def test_the_kept_facts_are_a_document_per_week_and_a_new_day_rewrites_only_its_weeks(catalog_url):
    """`_fact_documents` / `_read_kept`: the day-grain facts kept a document per ISO week; the next
    day writes the weeks from its first changed day's on and the oldest week still read (its days
    before the span dropped), deletes the older weeks, keeps the others as they are; what is read
    back is exactly the facts of the span. A part with no rows at all is still kept (empty)."""
    import pandas as pd

    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.services.delivery import _fact_documents, _kept_frame, _read_kept
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.insights import FramesWriter, write_frames

    engine = get_engine(catalog_url)

    def facts_until(first: date, last: date) -> dict:
        days = pd.date_range(first, last, freq="D")
        frame = pd.DataFrame({"entity_ref": pd.Categorical(["component:default/a", "component:default/b"] * len(days)),
                              "day": days.repeat(2),  # (a day's rows the same whichever run built them)
                              "n": ((days - pd.Timestamp("2025-01-01")).days.to_numpy().repeat(2) * 2 + np.tile([0, 1], len(days))).astype(np.int64)})
        return {"deploy_days": frame, "changes": frame.copy(), "incidents": frame.iloc[:3].assign(incident_id=["i1", "i2", "i3"]),
                "prs": frame.copy(), "reviews": frame.iloc[0:0]}

    def read_back() -> dict:
        kept = _read_kept(engine)
        out = {}
        for name, frame in kept.items():
            frame = frame.copy()
            frame["entity_ref"] = frame["entity_ref"].astype(str)
            out[name] = frame.sort_values(["day", "entity_ref"]).reset_index(drop=True)
        return out

    def expected(facts: dict, window_start: date) -> dict:
        out = {}
        for name, frame in facts.items():
            if name in ("prs", "reviews"):
                frame = frame[frame["day"] >= pd.Timestamp(window_start)]
            frame = frame.assign(entity_ref=frame["entity_ref"].astype(str))
            out[f"facts_{name}"] = frame.sort_values(["day", "entity_ref"]).reset_index(drop=True)
        return out

    one = facts_until(date(2025, 4, 1), date(2025, 6, 1))
    documents, _ = _fact_documents(one, {}, first_day=date(2025, 4, 1), window_start=date(2025, 5, 5), since=None)
    write_frames(engine, {DELIVERY.facts_kept: _kept_frame(documents)})
    kept = read_back()
    for name, frame in expected(one, date(2025, 5, 5)).items():
        pd.testing.assert_frame_equal(kept[name][frame.columns], frame, check_dtype=False, check_categorical=False, obj=name)
    assert len(kept["facts_reviews"]) == 0 and "n" in kept["facts_reviews"].columns  # (no rows: still kept)
    assert len([n for n in documents if n.startswith("facts_deploy_days@")]) == 9  # the ISO weeks of 2025-03-31 to 2025-05-26

    # the next day: its facts from 2025-04-02 (the span moved a day), recomputed from Saturday 2025-05-31
    two = facts_until(date(2025, 4, 2), date(2025, 6, 2))
    documents, replaced = _fact_documents(two, _read_kept(engine), first_day=date(2025, 4, 2), window_start=date(2025, 5, 6),
                                          since=date(2025, 5, 31))
    assert sorted(n for n in documents if n.startswith("facts_deploy_days@")) == [
        "facts_deploy_days@2025-03-31", "facts_deploy_days@2025-05-26", "facts_deploy_days@2025-06-02"]
    with FramesWriter(engine) as writer:
        writer.put(DELIVERY.facts_kept, _kept_frame(documents), delete=replaced)
    kept = read_back()
    for name, frame in expected(two, date(2025, 5, 6)).items():
        pd.testing.assert_frame_equal(kept[name][frame.columns], frame, check_dtype=False, check_categorical=False, obj=name)


def test_a_table_published_by_changed_keys_equals_the_new_frame_with_only_those_keys_rewritten(catalog_url):
    """`_by_changed_keys`: of a recomputed table, the keys whose rows changed (one entity's value,
    a composite key's row), a new key and a vanished one are rewritten; the stored table then
    equals the new frame; a second pass with nothing changed writes nothing."""
    import pandas as pd

    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.services.delivery import _by_changed_keys
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.insights import read_frame, write_frames

    engine = get_engine(catalog_url)
    old = pd.DataFrame({"scope_ref": [f"team-{i % 50}" for i in range(200)], "reviewer": [f"p_{i}" for i in range(200)],
                        "reviews": range(200)})

    kept = {}

    def publish(frame, incremental):
        rows, condition, kept["digests"] = _by_changed_keys(engine, DELIVERY.reviewer_load, frame, ("scope_ref", "reviewer"),
                                                            kept.get("digests"), incremental=incremental)
        return write_frames(engine, {DELIVERY.reviewer_load: rows},
                            delete={DELIVERY.reviewer_load: condition} if condition is not None else None)

    publish(old, False)
    new = old.copy()
    new.loc[7, "reviews"] = 1000  # one row changes
    new = pd.concat([new.drop(index=[9]), pd.DataFrame({"scope_ref": ["team-new"], "reviewer": ["p_x"], "reviews": [1]})])
    rows = publish(new, True)
    assert rows["reviewer_load"] == 2  # team-7/p_7 and team-new/p_x; team-9/p_9 only deleted
    stored = read_frame(engine, DELIVERY.reviewer_load).sort_values(["scope_ref", "reviewer"]).reset_index(drop=True)
    expected = new.sort_values(["scope_ref", "reviewer"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, expected, check_dtype=False)
    assert publish(new, True)["reviewer_load"] == 0
    assert len(kept["digests"]) == len(new)


def _production_deployment(entity: str, repository: str, at: str, key: str) -> dict:
    import pandas as pd

    moment = pd.Timestamp(at, tz="UTC")
    return {"entity_ref": entity, "source": "github", "repository": repository, "deployment_id": key, "environment": "production",
            "is_production": True, "status": "success", "commit_sha": f"sha-{key}", "created_at": moment,
            "finished_at": moment + pd.Timedelta(minutes=5), "is_rollback": False}


def test_a_new_day_rewrites_the_weekly_series_as_from_scratch_when_teams_start_or_stop_deploying_and_the_catalog_moves(
        catalog_url, monkeypatch):
    """The weekly series keeps its older weeks on a new day, yet equals the from-scratch tables
    when (a) a week leaves the series (the new day is a Monday) and with it the only deployment of
    a team and of its parent (their zero rows in the kept weeks go), (b) a new team deploys for
    the first time (it gets zero rows in every kept week), (c) the catalog moves an entity to
    another team (the older weeks of both teams change: both series rewritten whole)."""
    import pandas as pd

    from analytics.delivery.synthetic import known_at

    monkeypatch.setenv("CATALOG_DATABASE_URL", catalog_url)
    cat = Catalog(catalog_url)
    bodies = [({**b, "spec": {**b["spec"], "children": [*b["spec"]["children"], "delta"]}} if b["metadata"]["name"] == "acme" else b)
              for b in example_entities()]
    bodies += [{"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "delta"},
                "spec": {"type": "team", "parent": "acme", "children": []}},
               {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "delta-api"},
                "spec": {"type": "service", "lifecycle": "production", "owner": "delta"}}]
    cat.cycle(bodies)
    ensure_schema(cat.engine)
    engine = cat.engine
    events = synthetic_delivery_events(entities_frame_from(example_entities()), None, days=150, seed=11, end=END, pipeline_runs=False)
    day1, day2 = date(2025, 5, 25), date(2025, 5, 26)  # a Sunday, then a Monday: the week of March 3 leaves the series
    d = events[ev.DEPLOYMENTS]
    d = d[(d["entity_ref"].astype(str) != "component:default/bravo-shop").to_numpy()]
    extra = pd.DataFrame([_production_deployment("component:default/bravo-shop", "acme/bravo-shop", "2025-03-04 10:00", "gone-1"),
                          _production_deployment("component:default/delta-api", "acme/delta-api", "2025-05-26 10:00", "first-1")])
    events[ev.DEPLOYMENTS] = pd.concat([d.astype(object), extra.astype(object)], ignore_index=True).infer_objects()
    for column in ("created_at", "finished_at"):
        events[ev.DEPLOYMENTS][column] = pd.to_datetime(events[ev.DEPLOYMENTS][column], utc=True)
    first = known_at(events, datetime(2025, 5, 26, tzinfo=UTC))
    for kind in (ev.PULL_REQUESTS, ev.REVIEWS, ev.DEPLOYMENTS, ev.INCIDENTS):
        store.write_events(engine, kind, _rows(kind, first[kind]), datetime(2025, 5, 26, tzinfo=UTC))
    assert compute_delivery_metrics(engine, as_of=day1)["mode"] == "full"

    def deploying(weekly, team):
        rows = weekly[(weekly["scope_ref"].astype(str) == f"group:default/{team}") & (weekly["metric"].astype(str) == "deployments")]
        return len(rows), rows["value"].sum()

    before = read_delivery_tables(engine)["dora_weekly"]
    assert deploying(before, "bravo") == deploying(before, "product") == (12, 1) and deploying(before, "delta") == (0, 0)

    second = known_at(events, datetime(2025, 5, 27, tzinfo=UTC))
    for kind in first:
        store.write_events(engine, kind, _changed_rows(kind, first[kind], second[kind]), datetime.now(UTC))
    two = compute_delivery_metrics(engine, as_of=day2)
    assert two["mode"] == "incremental"
    assert 0 < two["rows"]["dora_weekly"] < len(two["tables"]["dora_weekly"])  # the older weeks were kept
    published = read_delivery_tables(engine)
    weekly = published["dora_weekly"]
    assert deploying(weekly, "bravo") == deploying(weekly, "product") == (0, 0)  # their only deployment left the series
    assert deploying(weekly, "delta") == (12, 1)  # zeros in the eleven kept weeks
    compute_delivery_metrics(engine, as_of=day2, full=True)
    _assert_same_tables(published, read_delivery_tables(engine))

    # the catalog moves zulu-vault to alpha: the next run's weekly series are rewritten whole
    cat.cycle([({**b, "spec": {**b["spec"], "owner": "alpha"}} if b["metadata"]["name"] == "zulu-vault" else b) for b in bodies])
    three = compute_delivery_metrics(engine, as_of=day2)
    assert three["mode"] == "incremental" and three["catalog"] == "read"  # the catalog changed: read again
    assert three["rows"]["dora_weekly"] == len(three["tables"]["dora_weekly"])
    published = read_delivery_tables(engine)
    compute_delivery_metrics(engine, as_of=day2, full=True)
    _assert_same_tables(published, read_delivery_tables(engine))


def test_delivery_compute_says_whether_it_ran_from_scratch_or_incrementally(stored):
    first = CliRunner().invoke(delivery, ["compute"])
    assert first.exit_code == 0, first.output
    assert "from scratch" in first.output
    again = json.loads(CliRunner().invoke(delivery, ["compute", "--json"]).output)
    assert again["mode"] == "incremental" and again["since"] is not None and again["rows"]["dora_summary"] > 0
    full = json.loads(CliRunner().invoke(delivery, ["compute", "--full", "--json"]).output)
    assert full["mode"] == "full" and full["since"] is None
