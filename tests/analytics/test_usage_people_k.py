"""People data: no usage figure about fewer than k people reaches any door.

The published tables hide every people count below k (zero included) and the figures that would
give a hidden one back by difference; the doors (`usage summary` / `summary_report`, the site's
usage page, the Dagster run metadata, `publish_insights`) re-verify and refuse or leave out what
fails. The fixture org is small (7 people), so most of its daily figures are below k."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from analytics.usage.privacy import people_figure_violations, protect_people_figures, shown_count
from catalog_pipelines.services.usage_pipeline import insights
from tests.analytics.test_usage_metrics import CONFIG, KEY, build_stores, fixture_org

K = 3
K_CONFIG = dataclasses.replace(CONFIG, min_team_size=K)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    _, summaries = build_stores(tmp_path_factory.mktemp("usage-k"))
    raw = insights(summaries, org=fixture_org(), key=KEY, config=K_CONFIG, protect=False)
    shown = insights(summaries, org=fixture_org(), key=KEY, config=K_CONFIG)
    return raw, shown


def test_the_published_tables_hold_no_people_count_below_k(both):
    raw, shown = both
    assert people_figure_violations(raw, K), "the fixture has small counts to hide"
    assert people_figure_violations(shown, K) == []
    assert int(shown["meta"].iloc[0]["min_people"]) == K


def test_a_day_two_people_were_active_shows_no_dau_and_no_split(both):
    raw, shown = both
    r, s = raw["daily"].set_index("day"), shown["daily"].set_index("day")
    assert r.loc["2025-03-06", "dau"] == 2
    assert s.loc["2025-03-06", ["dau", "new_users", "returning_users", "stickiness"]].isna().all()
    # the day's events are not about people: still shown
    assert s.loc["2025-03-06", "events"] == r.loc["2025-03-06", "events"]
    # a day 3 people were active is shown as 3
    assert r.loc["2025-03-04", "dau"] == 3 and s.loc["2025-03-04", "dau"] == 3


def test_new_and_returning_users_hide_together_so_dau_gives_neither_back(both):
    _, shown = both
    daily = shown["daily"]
    assert (daily["new_users"].isna() == daily["returning_users"].isna()).all()


def test_weekly_new_users_are_hidden_when_the_hidden_days_of_the_week_count_fewer_than_k():
    days = ["2025-03-03", "2025-03-04", "2025-03-05", "2025-03-10", "2025-03-11", "2025-03-12", "2025-03-13"]
    new = [6, 2, 7, 6, 2, 3, 7]  # week 1 hides one day of 2; week 2 hides 2 + 3 = 5 people
    daily = pd.DataFrame({"day": days, "dau": [20] * 7, "wau": [30] * 7, "mau": [40] * 7, "new_users": new,
                          "returning_users": [20 - n for n in new], "stickiness": 0.5})
    weekly = pd.DataFrame({"week": ["2025-03-03", "2025-03-10"], "active_users": [25, 25], "new_users": [15, 18]})
    out = protect_people_figures({"daily": daily, "weekly": weekly}, 5)
    assert out["daily"]["new_users"].isna().tolist() == [False, True, False, False, True, True, False]
    # week 1: 15 - 6 - 7 = 2 would be the hidden day: hidden; week 2: the hidden days hold 5 >= k
    assert out["weekly"]["new_users"].isna().tolist() == [True, False]
    assert people_figure_violations(out, 5) == []


def test_a_plugins_cumulative_users_do_not_give_back_a_hidden_week():
    plugins = pd.DataFrame({"plugin": "catalog", "week": ["2025-03-03", "2025-03-10", "2025-03-17", "2025-03-24", "2025-03-31"],
                            "active_users": [6, 7, 6, 9, 8], "new_users": [6, 2, 0, 6, 4], "cumulative_users": [6, 8, 8, 14, 18]})
    out = protect_people_figures({"plugin_adoption": plugins}, 5)["plugin_adoption"]
    # 14 - 6 - 6 = 2 (weeks 2 and 3) stays hidden until the hidden weeks hold k people: 2 + 0 + 4 >= 5? no,
    # week 5's 4 is hidden too (4 < 5), and 2 + 0 + 4 = 6 >= 5 lets week 5 show
    assert out["new_users"].isna().tolist() == [False, True, True, False, True]
    assert out["cumulative_users"].tolist()[:4] == [6, pd.NA, pd.NA, pd.NA]
    assert out["cumulative_users"].iloc[4] == 18


def test_small_cohorts_show_neither_size_nor_retention():
    cohorts = pd.DataFrame({"cohort_week": ["2025-03-03"] * 2 + ["2025-03-10"], "weeks_since": [0, 1, 0],
                            "active_users": [8, 2, 3], "cohort_users": [8, 8, 3], "retention": [1.0, 0.25, 1.0]})
    out = protect_people_figures({"cohorts": cohorts}, 5)["cohorts"]
    assert out["retention"].isna().tolist() == [False, True, True]
    assert out["cohort_users"].isna().tolist() == [False, False, True]


def test_shown_count_hides_zero_and_missing_like_any_count_below_k():
    assert [shown_count(v, 5) for v in (0, 4, 5, None, float("nan"), pd.NA)] == [None, None, 5, None, None, None]


def test_team_adoption_hides_a_team_whose_active_or_inactive_members_are_fewer_than_k():
    from analytics.usage.privacy import adoption_hidden

    members = pd.Series([12, 12, 12, 12, 4, 10])
    active = pd.Series([1, 11, 6, 12, 4, 5])
    # 1 of 12 active names one person; 11 of 12 names the one who is not; 12 of 12 says 0 inactive
    assert adoption_hidden(members, active, 5).tolist() == [True, True, False, True, True, False]


def test_two_windows_never_differ_by_fewer_than_k_people():
    from analytics.usage.privacy import difference_safe

    seven = pd.Series({"catalog": 10, "techdocs": 6, "search": 4})
    twenty_eight = pd.Series({"catalog": 11, "techdocs": 20, "search": 5, "scaffolder": 9})
    out = difference_safe({7: seven, 28: twenty_eight}, 5)
    assert out[7].isna().tolist() == [False, False, True]
    # catalog: 11 - 10 = 1 person last active 8..28 days ago: the 28-day figure is hidden;
    # search: the 7-day figure is hidden, so 5 cannot be subtracted from anything shown
    assert out[28].to_dict() == {"catalog": pytest.approx(float("nan"), nan_ok=True), "techdocs": 20.0,
                                 "search": 5.0, "scaffolder": 9.0}
    # the 28-day figures are the same whichever window is asked for first
    assert difference_safe({28: twenty_eight, 7: seven}, 5)[28].equals(out[28])


def test_usage_summary_offers_only_the_published_windows(data_env, both):
    from catalog_pipelines.cli.usage import usage
    from catalog_pipelines.settings import Settings

    _, shown = both
    _store(Settings.from_env().catalog_database_url, shown)
    result = CliRunner().invoke(usage, ["summary", "--days", "8", "--json"])
    assert result.exit_code != 0
    assert "published for windows of 7, 9 days only, not 8" in result.output
    seven = json.loads(CliRunner().invoke(usage, ["summary", "--days", "7", "--json"]).output)
    whole = json.loads(CliRunner().invoke(usage, ["summary", "--days", "28", "--json"]).output)
    for a, b in ((seven["active_users"], whole["active_users"]),):
        assert a is None or b is None or b - a == 0 or b - a >= K
    for key in ("top_plugins", "top_pages", "top_entities"):
        before = {row["key"]: row["users"] for row in seven[key]}
        for row in whole[key]:
            if row["key"] in before:
                assert row["users"] - before[row["key"]] >= K or row["users"] == before[row["key"]] is None


# --- doors ----------------------------------------------------------------------------------------


def _store(url, tables):
    from catalog_pipelines.model.insight_tables import USAGE
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.insights import write_frame

    for name, frame in tables.items():
        write_frame(get_engine(url), USAGE.get(name), frame)


def test_the_cli_shows_no_count_below_k_and_refuses_tables_that_break_it(data_env, both):
    from catalog_pipelines.cli.usage import usage
    from catalog_pipelines.settings import Settings

    raw, shown = both
    url = Settings.from_env().catalog_database_url
    _store(url, shown)
    report = json.loads(CliRunner().invoke(usage, ["summary", "--days", "28", "--json"]).output)
    people = [report[k] for k in ("active_users", "new_users", "dau", "wau", "mau")]
    people += [row["users"] for key in ("top_plugins", "top_pages", "top_entities") for row in report[key]]
    assert all(v is None or v >= K for v in people), people
    assert report["dau"] is None and report["mau"] == 6
    # tables written without the rule (or by an older version): refused, nothing printed
    _store(url, raw)
    result = CliRunner().invoke(usage, ["summary", "--json"])
    assert result.exit_code != 0 and "refusing to show usage figures" in result.output


def test_publishing_refuses_tables_that_break_k(catalog_url, both, monkeypatch):
    import catalog_pipelines.services.usage as service
    import catalog_pipelines.services.usage_pipeline as pipeline

    raw, _ = both
    monkeypatch.setattr(service, "summary_store", lambda: type("S", (), {"days": lambda self: ["2025-03-11"]})())
    monkeypatch.setattr(pipeline, "insights", lambda *a, **k: raw)
    from catalog_pipelines.storage.db import get_engine

    with pytest.raises(RuntimeError, match="fewer than k people; nothing was published"):
        service.publish_insights(get_engine(catalog_url))


def test_the_site_draws_no_count_below_k_and_leaves_out_tables_that_break_it(tmp_path):
    from analytics.org import OrgGraph
    from catalog_pipelines.model.insight_tables import USAGE
    from dashboards import build_site
    from dashboards.sample import entities_frame_from, example_entities, sample_inputs

    entities = example_entities()
    inputs = sample_inputs(OrgGraph.from_entities(entities), entities_frame_from(entities), seed=3)
    daily = inputs.tables[USAGE.daily]
    assert daily["new_users"].isna().any(), "the sample has days with fewer than k new users"
    build_site(inputs, tmp_path / "ok")
    page = (tmp_path / "ok" / "usage.html").read_text()
    assert "Active users per day" in page and "left out" not in page
    # a DAU of 2 planted in the stored tables: the organisation's figures are left out, not drawn
    daily.loc[daily.index[-1], "dau"] = 2
    build_site(inputs, tmp_path / "leak")
    page = (tmp_path / "leak" / "usage.html").read_text()
    assert "Organisation-wide usage is left out" in page and "Active users per day" not in page
