"""Survey definitions: the shipped YAML loads, and mistakes are reported with file and entry."""

from __future__ import annotations

import pytest
import yaml

from analytics.surveys.config import SurveyConfigError, load_surveys, parse_survey
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
    with pytest.raises(SurveyConfigError, match=r"x\.yaml: anonymity\.min_group_size: 2 is below the floor of 3"):
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
