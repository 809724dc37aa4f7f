"""Survey definitions: the shipped YAML loads, and mistakes are reported with file and entry."""

from __future__ import annotations

import pytest
import yaml

from analytics.surveys.config import SurveyConfigError, load_survey, load_surveys, parse_survey
from catalog_pipelines.settings import PROJECT_ROOT
from helpers import TEST_DATA

SHIPPED = PROJECT_ROOT / "config" / "surveys"
SMALL = TEST_DATA / "surveys" / "small-pulse.yaml"


def minimal(**overrides):
    doc = {
        "id": "s",
        "dimensions": {"flow": "Flow"},
        "questions": [{"id": "q1", "type": "likert", "dimension": "flow"}],
        "waves": [{"id": "w1"}],
    }
    doc.update(overrides)
    return doc


def test_shipped_survey_covers_every_question_type_and_eight_waves():
    (survey,) = load_surveys(SHIPPED)
    assert {q.type for q in survey.questions} == {"likert", "nps", "single_choice", "multi_choice", "free_text"}
    assert len(survey.waves) == 8 and survey.min_group_size == 5
    assert [w.order for w in survey.waves] == list(range(8))


def test_k_below_the_floor_of_three_is_refused():
    with pytest.raises(SurveyConfigError, match=r"x\.yaml:1: anonymity\.min_group_size: 2 is below the floor of 3"):
        parse_survey(minimal(anonymity={"min_group_size": 2}), source="x.yaml")
    assert parse_survey(minimal(anonymity={"min_group_size": 3})).min_group_size == 3
    assert parse_survey(minimal()).min_group_size == 5


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"questions": [{"id": "q1", "type": "likert", "dimension": "nope"}]}, r"questions\[0\]\.dimension: 'nope' is not a declared dimension"),
        ({"questions": [{"id": "q1", "type": "stars", "dimension": "flow"}]}, r"questions\[0\]\.type: 'stars' is not one of"),
        ({"questions": [{"id": "q1", "type": "single_choice", "dimension": "flow", "options": ["only"]}]}, r"questions\[0\]\.options"),
        ({"waves": [{"id": "w1"}, {"id": "w1"}]}, r"waves\[1\]\.id: duplicate wave id 'w1'"),
        ({"waves": [{"id": "bad key/with slash"}]}, r"waves\[0\]\.id"),
        ({"waves": [{"id": "w1", "opens": "2025-02-01", "closes": "2025-01-01"}]}, r"waves\[0\]\.closes: closes before it opens"),
    ],
)
def test_invalid_definitions_name_the_offending_entry(change, where):
    with pytest.raises(SurveyConfigError, match=where):
        parse_survey(minimal(**change), source="x.yaml")


def test_wave_ids_must_be_unique_across_surveys_because_they_are_partition_keys(tmp_path):
    (tmp_path / "a.yaml").write_text(SMALL.read_text())
    other = yaml.safe_load(SMALL.read_text())
    other["id"] = "another"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(SurveyConfigError, match="wave id 's1' is already used by survey 'small-pulse'"):
        load_surveys(tmp_path)


def test_a_survey_file_is_parsed_by_its_model_and_every_problem_names_file_line_and_entry(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("id: s\ndimensions: {a: A}\nquestions:\n  - id: q\n    type: likert\n    dimenson: a\nwaves: [{id: w1}]\n")
    with pytest.raises(SurveyConfigError) as err:
        load_survey(typo)
    assert str(err.value).splitlines() == [
        f"{typo}:4: questions[0].dimension: missing required key 'dimension'",
        f"{typo}:6: questions[0].dimenson: unknown key 'dimenson' (did you mean 'dimension'?)",
    ]
    rules = tmp_path / "rules.yaml"
    rules.write_text("id: s\ndimensions: {a: A}\nquestions:\n  - {id: q, type: likert, dimension: b}\n"
                     "waves:\n  - {id: w1, opens: 2025-02-01}\n  - {id: w2, opens: 2025-01-01}\n")
    with pytest.raises(SurveyConfigError) as err:
        load_survey(rules)
    assert [str(i) for i in err.value.issues] == [
        f"{rules}:4: questions[0].dimension: 'b' is not a declared dimension (a)",
        f"{rules}:7: waves[1].opens: waves must be listed in chronological order",
    ]


def test_a_survey_owner_is_a_group_ref_notified_of_response_rate_collapses():
    assert parse_survey(minimal(owner="dx-team")).owner == "group:default/dx-team"
    assert parse_survey(minimal()).owner is None
    with pytest.raises(SurveyConfigError, match=r"x\.yaml:1: owner: "):
        parse_survey(minimal(owner="group:"), source="x.yaml")
