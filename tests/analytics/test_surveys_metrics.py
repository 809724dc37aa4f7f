"""Survey figures against values worked out by hand for a small fixture.

Fixture (tests/data/surveys): Engineering with Team Alpha (6 members, 5 answer) and Team Beta
(6 members, all answer); two waves. Only the t quantiles (t(0.975, 4) = 2.776445,
t(0.975, 10) = 2.228139, from any t table) and the tail area of the Welch test come from outside.
"""

from __future__ import annotations

import math

import pytest
import yaml

from analytics.org import OrgGraph
from analytics.surveys.trends import WaveData, compute_insights, load_survey, response_rate_collapses
from analytics.surveys.config import CollapseThresholds
from analytics.surveys.ingest import RespondentDirectory, ingest_wave
from catalog_pipelines.services.surveys import read_export
from helpers import TEST_DATA

DATA = TEST_DATA / "surveys"
T4 = 2.7764451051977934
T10 = 2.228138851986274
ALPHA, BETA, ENG = "group:default/alpha", "group:default/beta", "group:default/eng"


@pytest.fixture(scope="module")
def insights():
    entities = list(yaml.safe_load_all((DATA / "org.yaml").read_text()))
    org = OrgGraph.from_entities(entities)
    survey = load_survey(DATA / "small-pulse.yaml")
    directory = RespondentDirectory(org, entities)
    waves = {}
    for wave in survey.waves:
        result = ingest_wave(survey, wave, [read_export(DATA / "exports" / wave.id / "responses.csv")], directory, b"test-key")
        assert result.errors == []
        waves[wave.id] = WaveData(result.responses, result.invited)
    return compute_insights(survey, waves, org)


def cell(insights, group, dimension, metric, wave="s1"):
    t = insights.trends
    rows = t[(t.group_ref == group) & (t.dimension == dimension) & (t.metric == metric) & (t.wave == wave)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_likert_mean_and_t_interval_match_hand_computation(insights):
    # Alpha q_sat = 5, 4, 4, 3, 2: mean 3.6, sample variance 5.2 / 4 = 1.3.
    row = cell(insights, ALPHA, "satisfaction", "mean")
    half = T4 * math.sqrt(1.3 / 5)
    assert row.respondents == 5
    assert row.value == pytest.approx(3.6)
    assert row.ci_low == pytest.approx(3.6 - half)  # 2.1843
    assert row.ci_high == pytest.approx(5.0)  # 3.6 + 1.4157 = 5.0157, clipped to the scale


def test_dimension_mean_averages_each_respondents_items_first(insights):
    # Flow = mean of q_flow1, q_flow2 per respondent: 5, 3, 3 (q_flow2 blank), 2, 2 -> mean 3.0;
    # squared deviations 4 + 0 + 0 + 1 + 1 = 6, variance 1.5.
    row = cell(insights, ALPHA, "flow", "mean")
    assert row.value == pytest.approx(3.0)
    assert row.ci_low == pytest.approx(3.0 - T4 * math.sqrt(1.5 / 5))
    assert row.ci_high == pytest.approx(3.0 + T4 * math.sqrt(1.5 / 5))
    # Top-2-box per respondent: 2/2, 1/2, 0/1, 0/2, 0/2 -> (100 + 50) / 5 = 30%.
    assert cell(insights, ALPHA, "flow", "top2_pct").value == pytest.approx(30.0)


def test_top_box_and_enps_match_hand_computation(insights):
    # Alpha q_sat 5, 4, 4, 3, 2: three of five are 4 or 5.
    assert cell(insights, ALPHA, "satisfaction", "top2_pct").value == pytest.approx(60.0)
    # Alpha NPS 10, 9, 9, 7, 3: 3 promoters, 1 passive, 1 detractor -> 60% - 20% = +40.
    # Values +100 x3, 0, -100: deviations 60 x3, -40, -140, variance 32000 / 4 = 8000.
    enps = cell(insights, ALPHA, "satisfaction", "enps")
    assert enps.value == pytest.approx(40.0)
    assert enps.ci_low == pytest.approx(40.0 - T4 * math.sqrt(8000 / 5))  # -71.06
    assert enps.ci_high == pytest.approx(100.0)  # 151.06, clipped
    # Beta NPS 9, 9, 8, 8, 6, 10: 3 promoters, 1 detractor of 6 -> +33.3.
    assert cell(insights, BETA, "satisfaction", "enps").value == pytest.approx(200 / 6)


def test_parent_rolls_up_its_teams(insights):
    # Engineering = Alpha (5) + Beta (6): q_sat sums 18 + 26 = 44 over 11 -> 4.0;
    # squared deviations from 4: 1,0,0,1,4 and 0,0,0,0,1,1 -> 8, variance 0.8.
    row = cell(insights, ENG, "satisfaction", "mean")
    assert row.respondents == 11
    assert row.value == pytest.approx(4.0)
    assert row.ci_low == pytest.approx(4.0 - T10 * math.sqrt(0.8 / 11))
    # Favourable: 3 of Alpha's 5 and all 6 of Beta's -> 9 / 11.
    assert cell(insights, ENG, "satisfaction", "top2_pct").value == pytest.approx(900 / 11)
    # eNPS: promoters minus detractors, Alpha 3 - 1 and Beta 3 - 1 -> 4 of 11 respondents.
    assert cell(insights, ENG, "satisfaction", "enps").value == pytest.approx(400 / 11)


def test_response_rate_is_respondents_over_invited(insights):
    alpha = cell(insights, ALPHA, "participation", "response_rate")
    assert (alpha.respondents, alpha.invited) == (5, 6)
    assert alpha.value == pytest.approx(500 / 6)
    assert cell(insights, ENG, "participation", "response_rate").value == pytest.approx(1100 / 12)
    overall = insights.waves.set_index("wave").loc["s1"]
    assert (overall.invited, overall.respondents) == (12, 11)


def test_wave_over_wave_change_uses_welch_t_test(insights):
    # Alpha q_sat s1 = 5,4,4,3,2 (mean 3.6, var 1.3); s2 = 5,5,4,4,4 (mean 4.4, var 0.3).
    # se = sqrt(1.3/5 + 0.3/5) = 0.5657, t = 1.4142, Welch df = 0.32^2 / (0.26^2/4 + 0.06^2/4) = 5.753,
    # two-sided p = 0.2091 (t distribution tail).
    row = cell(insights, ALPHA, "satisfaction", "mean", wave="s2")
    assert row.previous_wave == "s1"
    assert row.previous_value == pytest.approx(3.6)
    assert row.change == pytest.approx(0.8)
    assert row.p_value == pytest.approx(0.20906761524788625, rel=1e-9)
    assert not row.significant
    # Beta answered identically in both waves: no change, p = 1.
    beta = cell(insights, BETA, "satisfaction", "mean", wave="s2")
    assert beta.change == pytest.approx(0.0)
    assert beta.p_value == pytest.approx(1.0)


def test_choice_shares_and_their_own_threshold(insights):
    c = insights.choices
    blocker = c[(c.group_ref == ALPHA) & (c.question == "q_blocker") & (c.wave == "s1")].set_index("option")
    # CI, CI, Meetings, Reviews, CI.
    assert blocker.loc["CI", "share_pct"] == pytest.approx(60.0)
    assert blocker.loc["Meetings", "share_pct"] == pytest.approx(20.0)
    # Only 3 of Alpha answered q_tools (< k = 5): hidden, and so is Beta, or Engineering minus Beta
    # would give Alpha's answers.
    tools = c[(c.question == "q_tools") & (c.wave == "s1")]
    hidden = tools.groupby("group_ref")["suppressed"].all()
    assert hidden[ALPHA] and hidden[BETA] and not hidden[ENG]
    assert tools[tools.group_ref == ALPHA]["share_pct"].isna().all()
    eng = tools[tools.group_ref == ENG].set_index("option")
    # 9 answered; CI chosen by a1, a4, b3, b5 -> 4/9.
    assert eng.loc["CI", "respondents"] == 9
    assert eng.loc["CI", "share_pct"] == pytest.approx(400 / 9)


def test_only_consented_free_text_is_published(insights):
    texts = set(insights.comments["text"])
    assert {"Great quarter", "ok I guess", "Builds are slow"} <= texts
    assert "this must never be stored" not in texts


def test_collapse_flags_a_halved_response_rate():
    import pandas as pd

    waves = pd.DataFrame(
        {"survey": "s", "wave": ["w1", "w2", "w3", "w4"], "wave_order": [0, 1, 2, 3], "response_rate": [80.0, 70.0, 30.0, 15.0]}
    )
    found = response_rate_collapses(waves, CollapseThresholds(max_relative_drop=0.5, min_rate_pct=20))
    assert list(found["wave"]) == ["w3", "w4"]
    assert found.iloc[0]["previous_rate"] == 70.0
    assert "below 20%" in found.iloc[1]["reason"]
