"""Synthetic surveys: deterministic, shaped like real exports, and with effects the trends show."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.org import OrgGraph
from analytics.pseudonymise import pseudonymise_series
from analytics.surveys.trends import WaveData, compute_insights, load_surveys
from analytics.surveys.ingest import RespondentDirectory, ingest_wave
from catalog_pipelines.services.surveys import read_wave_exports, write_synthetic_exports
from catalog_pipelines.storage.surveys_store import export_files
from analytics.surveys.synthetic import generate_waves, stored_frame
from catalog_pipelines.providers.synthetic import SyntheticOrg
from catalog_pipelines.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def world():
    entities = list(SyntheticOrg(2000, seed=3).users_and_groups())
    org = OrgGraph.from_entities(entities)
    (survey,) = load_surveys(PROJECT_ROOT / "config" / "surveys")
    generated, scenario = generate_waves(survey, org, seed=7)
    waves = {}
    for wave_id, wave in generated.items():
        tokens = pseudonymise_series("surveys|" + wave.answers["user_ref"].astype(str), b"k")
        counts = wave.invited["team_ref"].value_counts()
        waves[wave_id] = WaveData(stored_frame(survey, wave, tokens), pd.DataFrame({"team_ref": counts.index, "invited": counts.to_numpy()}))
    return entities, org, survey, generated, scenario, compute_insights(survey, waves, org)


def series(insights, group, dimension, metric="mean"):
    t = insights.trends
    rows = t[(t.group_ref == group) & (t.dimension == dimension) & (t.metric == metric)].sort_values("wave_order")
    return rows["value"].to_numpy(dtype=float), rows["suppressed"].to_numpy(dtype=bool)


def test_same_seed_same_answers_other_seed_other_answers(world):
    _, org, survey, generated, scenario, _ = world
    again, scenario2 = generate_waves(survey, org, seed=7, waves=["pulse-2024-q1"])
    pd.testing.assert_frame_equal(again["pulse-2024-q1"].answers, generated["pulse-2024-q1"].answers)
    assert scenario2 == scenario
    other, _ = generate_waves(survey, org, seed=8, waves=["pulse-2024-q1"])
    assert not other["pulse-2024-q1"].answers.equals(generated["pulse-2024-q1"].answers)


def test_the_team_whose_ci_got_faster_gets_happier_wave_after_wave(world):
    *_, scenario, insights = world
    values, hidden = series(insights, scenario.improving_team, "feedback_loops")
    assert not hidden.any()
    slope = np.polyfit(np.arange(len(values)), values, 1)[0]
    assert slope > 0.15 and values[-1] - values[0] > 0.8
    # The organisation as a whole moves much less.
    root = insights.trends[insights.trends.depth == 0]["group_ref"].iloc[0]
    org_values, _ = series(insights, root, "feedback_loops")
    assert np.polyfit(np.arange(len(org_values)), org_values, 1)[0] < slope / 3
    # ...and fewer of its people name CI as what slows them down.
    c = insights.choices
    ci = c[(c.group_ref == scenario.improving_team) & (c.question == "prod_blocker") & (c.option == "Waiting for CI")].sort_values("wave_order")
    assert ci["share_pct"].iloc[:2].mean() > ci["share_pct"].iloc[-2:].mean() + 15


def test_the_reorg_changes_team_sizes_from_its_wave_on(world):
    *_, generated, scenario, _ = world
    sizes = pd.DataFrame(
        {wave: w.invited["team_ref"].value_counts() for wave, w in generated.items()}
    ).fillna(0).T
    waves = list(generated)
    at = waves.index(scenario.reorg_wave)
    moved = len(scenario.moved_users)
    assert moved >= 5
    assert (sizes[scenario.reorg_to].iloc[at:] - sizes[scenario.reorg_to].iloc[at - 1] == moved).all()
    assert (sizes[scenario.reorg_from].iloc[at - 1] - sizes[scenario.reorg_from].iloc[at:] == moved).all()


def test_the_low_turnout_team_is_suppressed(world):
    *_, scenario, insights = world
    t = insights.trends[insights.trends.group_ref == scenario.low_turnout_team]
    # Every wave: hidden, or nobody answered (a zero hides nothing); never a figure about 1-4 people.
    assert (t["suppressed"] | (t["respondents"] == 0)).all()
    assert t["suppressed"].any()
    assert t.loc[t["respondents"].fillna(1) > 0, "value"].isna().all()


def test_written_exports_ingest_without_errors(tmp_path, world):
    entities, org, survey, generated, *_ = world
    write_synthetic_exports(tmp_path, survey, org, seed=7, email_domain="acme.example", waves=["pulse-2024-q2"])
    files, invited = export_files(tmp_path, "pulse-2024-q2")
    assert [f.name for f in files] == ["responses.csv"] and invited.name == "invited.csv"
    exports, invited_list = read_wave_exports(tmp_path, "pulse-2024-q2")
    result = ingest_wave(survey, survey.wave("pulse-2024-q2"), exports, RespondentDirectory(org, entities), b"k", invited_list)
    assert result.errors == []
    assert len(result.responses) == len(generated["pulse-2024-q2"].answers)
    # Free text was written by people who did not consent too; none of it was kept.
    answers = generated["pulse-2024-q2"].answers
    assert (answers["comments"].notna() & ~answers["consent"]).any()
    assert result.responses.loc[~result.responses["consent"], "comments"].isna().all()
