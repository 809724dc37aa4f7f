"""Survey tools' exports as the tools write them: Qualtrics (3-row header; choice-text and numeric
variants), SurveyMonkey (2-row header with sub-answers), Google Forms, Microsoft Forms (.xlsx) and
the generic CSV. The same wave exported by each gives the same trends, header rows are never
responses, and what does not map is reported."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from analytics.org import OrgGraph
from analytics.surveys.config import load_survey, parse_survey
from analytics.surveys.formats import detect
from analytics.surveys.ingest import RespondentDirectory, ingest_wave, validate_export
from analytics.surveys.trends import WaveData, compute_insights
from catalog_pipelines.providers.synthetic import SyntheticOrg
from catalog_pipelines.services.surveys import read_export, read_wave_exports, write_synthetic_exports
from catalog_pipelines.settings import PROJECT_ROOT
from catalog_pipelines.storage.surveys_store import export_files

DATA = Path(__file__).resolve().parents[1] / "data" / "surveys"
TOOLS = DATA / "tools"
WAVE = "pulse-2024-q2"
LAYOUTS = ("generic", "qualtrics", "qualtrics_numeric", "surveymonkey", "google_forms", "microsoft_forms")


@pytest.fixture(scope="module")
def world():
    entities = list(SyntheticOrg(400, seed=3).users_and_groups())
    org = OrgGraph.from_entities(entities)
    survey = load_survey(PROJECT_ROOT / "config" / "surveys" / "rnd-pulse.yaml")
    return entities, org, survey


@pytest.fixture(scope="module")
def ingested(world, tmp_path_factory):
    entities, org, survey = world
    directory = RespondentDirectory(org, entities)
    out = {}
    for layout in LAYOUTS:
        root = tmp_path_factory.mktemp(layout)
        write_synthetic_exports(root, survey, org, seed=7, email_domain="acme.example", waves=[WAVE], layout=layout)
        exports, invited = read_wave_exports(root, WAVE)
        result = ingest_wave(survey, survey.wave(WAVE), exports, directory, b"k", invited)
        out[layout] = (root, exports, result)
    return out


def test_each_tool_layout_is_recognised_from_its_header(ingested):
    expected = {"generic": "generic", "qualtrics": "qualtrics", "qualtrics_numeric": "qualtrics", "surveymonkey": "surveymonkey",
                "google_forms": "google_forms", "microsoft_forms": "microsoft_forms"}
    for layout, (_, exports, _) in ingested.items():
        assert exports[0].layout.name == expected[layout], layout
    assert ingested["qualtrics_numeric"][1][0].layout.choice_numbers
    assert not ingested["qualtrics"][1][0].layout.choice_numbers
    assert export_files(ingested["microsoft_forms"][0], WAVE)[0][0].suffix == ".xlsx"


def test_header_rows_are_never_responses_and_every_answer_maps(ingested):
    sizes = {layout: (result.stats["rows_read"], len(result.responses)) for layout, (_, _, result) in ingested.items()}
    assert len(set(sizes.values())) == 1, sizes
    for layout, (_, exports, result) in ingested.items():
        assert result.errors == [], (layout, [str(e) for e in result.errors[:5]])
    # the first response of a Qualtrics export is spreadsheet row 4, of SurveyMonkey row 3
    assert ingested["qualtrics"][1][0].frame["_row"].iloc[0] == 4
    assert ingested["surveymonkey"][1][0].frame["_row"].iloc[0] == 3


def test_the_same_wave_exported_by_every_tool_gives_identical_trends(world, ingested):
    _, org, survey = world
    insights = {}
    for layout, (_, _, result) in ingested.items():
        insights[layout] = compute_insights(survey, {WAVE: WaveData(result.responses, result.invited)}, org)
    reference = insights["generic"]
    assert (~reference.trends["suppressed"]).sum() > 20  # figures are actually shown, not all hidden
    for layout, found in insights.items():
        pd.testing.assert_frame_equal(found.trends, reference.trends, obj=f"{layout} trends")
        pd.testing.assert_frame_equal(found.choices, reference.choices, obj=f"{layout} choices")
        pd.testing.assert_frame_equal(found.comments, reference.comments, obj=f"{layout} comments")
    # stored responses are identical too (same pseudonyms, answers, consent)
    for layout, (_, _, result) in ingested.items():
        pd.testing.assert_frame_equal(result.responses, ingested["generic"][2].responses, obj=layout)


# --- hand-built exports in the tools' layouts (tests/data/surveys/tools, see SOURCE.md) -------------

SMALL = load_survey(DATA / "small-pulse.yaml")


@pytest.mark.parametrize(
    "file, layout",
    [("qualtrics-choice-text.csv", "qualtrics"), ("qualtrics-numeric.csv", "qualtrics"), ("surveymonkey.csv", "surveymonkey"),
     ("google-forms.csv", "google_forms"), ("microsoft-forms.xlsx", "microsoft_forms")],
)
def test_hand_built_tool_exports_read_as_the_same_three_responses(file, layout):
    export = read_export(TOOLS / file)
    assert export.layout.name == layout
    validated = validate_export(export, SMALL)
    assert validated.rows_read == 3, "header rows counted as responses"
    frame = validated.frame
    assert list(frame["_who"]) == ["a1@example.com", "a2@example.com", "b1@example.com"]
    assert list(frame["q_sat"]) == [5, 4, 2]
    assert list(frame["q_enps"]) == [10, 9, 3]
    assert list(frame["q_blocker"]) == ["CI", "Meetings", pd.NA]
    assert list(frame["q_tools"]) == [0b011, 0b010, 0b100]  # CI;Docs / Docs / Laptops
    assert list(frame["consent"]) == [True, False, True]
    kinds = {e.kind for e in validated.errors}
    assert kinds <= {"unmapped_column"}, [str(e) for e in validated.errors]


def test_columns_no_question_maps_to_are_reported_once_per_file():
    validated = validate_export(read_export(TOOLS / "surveymonkey.csv"), SMALL)
    unmapped = [e for e in validated.errors if e.kind == "unmapped_column"]
    assert len(unmapped) == 1 and "Which office are you in?" in unmapped[0].message
    assert "Respondent ID" not in unmapped[0].message  # the tool's own columns are not questions


def test_questions_map_by_the_tools_ids_when_configured():
    doc = {
        "id": "by-id", "export": {"match": "id", "respondent_column": "RecipientEmail"},
        "dimensions": {"satisfaction": "Satisfaction"},
        "questions": [
            {"id": "q_sat", "type": "likert", "dimension": "satisfaction", "text": "worded differently", "ids": ["QID1"]},
            {"id": "q_enps", "type": "nps", "dimension": "satisfaction", "ids": ["Q2"]},
        ],
        "waves": [{"id": "w1"}],
    }
    survey = parse_survey(doc)
    validated = validate_export(read_export(TOOLS / "qualtrics-choice-text.csv"), survey)
    assert list(validated.frame["q_sat"]) == [5, 4, 2]
    assert list(validated.frame["q_enps"]) == [10, 9, 3]
    # by text only, the QIDs no longer match: the question is reported as missing
    by_text = parse_survey({**doc, "export": {**doc["export"], "match": "text"}})
    errors = validate_export(read_export(TOOLS / "qualtrics-choice-text.csv"), by_text).errors
    assert any(e.kind == "missing_column" and "q_sat" in e.message for e in errors)


def test_a_public_qualtrics_export_is_read_without_its_header_rows():
    """ropensci/qualtRics' sample export (numeric values, German labels; MIT, see SOURCE.md)."""
    export = read_export(TOOLS / "qualtrics-public" / "sample.csv")
    assert export.layout.name == "qualtrics" and export.layout.choice_numbers
    assert len(export.frame) == 1 and export.frame["_row"].tolist() == [4]
    survey = parse_survey({
        "id": "public", "dimensions": {"d": "D"},
        "questions": [{"id": "q1", "type": "single_choice", "dimension": "d", "ids": ["QID1"], "options": ["Click to write Choice 1", "Click to write Choice 2"]},
                      {"id": "q2", "type": "free_text", "dimension": "d", "ids": ["QID2"]}],
        "waves": [{"id": "w"}],
    })
    validated = validate_export(export, survey)
    assert validated.frame["q1"].tolist() == ["Click to write Choice 2"]  # choice number 2
    assert validated.frame["q2"].tolist() == ["Hello World!"]
    unmapped = [e for e in validated.errors if e.kind == "unmapped_column"]
    assert len(unmapped) == 1 and "Q2 - Topics" in unmapped[0].message


def test_validate_names_the_layout_and_counts_responses_not_header_rows(tmp_path, monkeypatch):
    import json
    import shutil

    from click.testing import CliRunner

    from catalog_pipelines.cli.surveys import surveys

    shutil.copy(DATA / "small-pulse.yaml", tmp_path / "small-pulse.yaml")
    monkeypatch.setenv("CATALOG_PIPELINES_SURVEYS", str(tmp_path))
    result = CliRunner().invoke(surveys, ["validate", str(TOOLS / "qualtrics-numeric.csv"), "--json"])
    report = json.loads(result.output)
    assert (report["layout"], report["rows"], report["errors"]) == ("qualtrics (numeric values)", 3, [])
    result = CliRunner().invoke(surveys, ["validate", str(TOOLS / "surveymonkey.csv")])
    assert result.exit_code == 1  # the unmapped office question is reported
    assert "surveymonkey export, 3 responses, 1 problems" in result.output and "Which office are you in?" in result.output
