"""Survey exports: malformed files get precise errors, valid rows land, identities never do."""

from __future__ import annotations

import pytest
import yaml

from analytics.org import OrgGraph
from analytics.surveys.trends import load_survey
from analytics.surveys.ingest import RespondentDirectory, ingest_wave, primary_teams, validate_export
from catalog_pipelines.services.surveys import read_export, read_wave
from catalog_pipelines.storage.surveys_store import write_wave
from helpers import TEST_DATA

DATA = TEST_DATA / "surveys"
BAD = DATA / "malformed"
KEY = b"test-key"


@pytest.fixture(scope="module")
def survey():
    return load_survey(DATA / "small-pulse.yaml")


@pytest.fixture(scope="module")
def entities():
    return list(yaml.safe_load_all((DATA / "org.yaml").read_text()))


@pytest.fixture(scope="module")
def directory(entities):
    return RespondentDirectory(OrgGraph.from_entities(entities), entities)


def ingest(survey, directory, *files, invited=None, key=KEY, wave="s1"):
    exports = [read_export(BAD / f if isinstance(f, str) else f) for f in files]
    return ingest_wave(survey, survey.wave(wave), exports, directory, key, read_export(invited) if invited else None)


def errors_by(result, kind):
    return [e for e in result.errors if e.kind == kind]


def test_a_file_without_respondent_column_is_rejected_whole_with_one_clear_error(survey):
    result = validate_export(read_export(BAD / "no_respondent_column.csv"), survey)
    assert len(result.frame) == 0
    assert len(result.errors) == 1
    message = str(result.errors[0])
    assert message.startswith("no_respondent_column.csv, column 'email': no respondent column")
    assert "the file was not loaded" in message


def test_an_unreadable_export_is_one_error_naming_the_file_and_the_other_files_land(survey, directory, tmp_path):
    broken, not_a_list = tmp_path / "broken.json", tmp_path / "object.json"
    broken.write_text('[{"email": "a1@example.com",')
    not_a_list.write_text('{"total": 3}')
    result = ingest(survey, directory, broken, not_a_list, DATA / "exports" / "s1" / "responses.csv")
    unreadable = errors_by(result, "unreadable_file")
    assert [(e.file, e.row, e.column) for e in unreadable] == [("broken.json", None, None), ("object.json", None, None)]
    assert str(unreadable[1]) == "object.json: cannot read the export: expected a list of responses or an object with a 'responses' list"
    assert result.stats["files"] == 3 and len(result.responses) > 0


def test_a_missing_question_column_is_reported_once_and_the_rows_still_land(survey, directory):
    result = ingest(survey, directory, "missing_question_column.csv")
    missing = errors_by(result, "missing_column")
    assert [(e.file, e.row, e.column) for e in missing] == [("missing_question_column.csv", None, "q_enps")]
    assert len(result.responses) == 2
    assert result.responses["q_enps"].isna().all()
    assert sorted(result.responses["q_sat"].tolist()) == [4, 5]


def test_out_of_range_and_unreadable_answers_name_file_row_and_column(survey, directory):
    result = ingest(survey, directory, "out_of_range.csv")
    found = {(e.row, e.column, e.kind) for e in result.errors}
    assert found == {
        (3, "q_sat", "out_of_range"),  # 7 on a 1-5 scale
        (4, "q_enps", "out_of_range"),  # 11 on 0-10
        (4, "q_flow1", "invalid_value"),  # "three"
        (4, "q_blocker", "invalid_value"),  # "Lunch" is not an option
        (4, "q_tools", "invalid_value"),  # "Pizza" is not an option (CI is kept)
        (5, "free_text_consent", "invalid_value"),  # "maybe"
        (5, "q_enps", "out_of_range"),  # -1
        (5, "q_flow1", "out_of_range"),  # 2.5 is not a whole number
    }
    assert str(next(e for e in result.errors if e.row == 3)) == "out_of_range.csv, row 3, column 'q_sat': '7' is outside 1..5"
    # Every row lands; only the bad answers are dropped.
    assert len(result.responses) == 4
    by_enps = result.responses.sort_values("q_enps", na_position="last")
    assert result.responses["q_sat"].isna().sum() == 1  # a2's 7
    assert 4 in set(result.responses["q_sat"].dropna())  # a4's "Agree" is the Likert label for 4
    assert set(result.responses["q_tools"].dropna()) == {1, 2}  # CI = bit 0, Docs = bit 1
    assert by_enps["q_enps"].dropna().tolist() == [9, 10]


def test_duplicates_keep_the_latest_submission_and_bad_rows_are_dropped_with_reasons(survey, directory):
    result = ingest(survey, directory, "duplicates.csv")
    kinds = {(e.row, e.kind) for e in result.errors}
    assert kinds == {
        (2, "duplicate_respondent"),  # a1's first try; row 3 ("A1@Example.com ") is later
        (5, "unknown_respondent"),
        (6, "missing_respondent"),
        (7, "empty_response"),
    }
    duplicate = errors_by(result, "duplicate_respondent")[0]
    assert "kept the later one: duplicates.csv row 3" in duplicate.message
    assert len(result.responses) == 2  # a1 (second answer) and a2
    assert sorted(result.responses["q_sat"].tolist()) == [4, 5]
    # Errors never repeat an identifier.
    assert not any("@" in str(e) for e in result.errors)


def test_json_exports_with_nested_answers_are_read_like_csv(survey, directory):
    result = ingest(survey, directory, "export.json")
    assert {(e.row, e.column, e.kind) for e in result.errors} == {(2, "q_enps", "out_of_range"), (3, None, "invalid_value")}
    assert len(result.responses) == 2  # "a1" by user name, "user:default/a2" by ref
    row = result.responses.set_index("q_sat").loc[5]
    assert row["q_tools"] == 0b011 and row["q_comments"] == "Nice"


def test_identifiers_are_pseudonymised_and_unconsented_text_is_never_stored(tmp_path, survey, directory):
    result = ingest(survey, directory, DATA / "exports" / "s1" / "responses.csv")
    write_wave(tmp_path, "s1", result.responses, result.invited, result.stats)
    raw = (tmp_path / "responses" / "s1.parquet").read_bytes()
    for secret in (b"@example.com", b"user:default/a", b"this must never be stored"):
        assert secret not in raw
    stored = read_wave(tmp_path, "s1")
    assert stored.responses["respondent"].str.startswith("p_").all()
    assert stored.responses["respondent"].is_unique
    assert stored.invited.set_index("team_ref")["invited"].to_dict() == {"group:default/alpha": 6, "group:default/beta": 6}
    # Same person, same token across waves; another key gives other tokens.
    again = ingest(survey, directory, DATA / "exports" / "s2" / "responses.csv", wave="s2")
    assert set(again.responses["respondent"]) == set(result.responses["respondent"])
    other = ingest(survey, directory, DATA / "exports" / "s1" / "responses.csv", key=b"another-key")
    assert not set(other.responses["respondent"]) & set(result.responses["respondent"])


def test_an_invitation_list_records_the_team_at_the_time_and_limits_who_counts(tmp_path, survey, directory):
    invited = tmp_path / "invited.csv"
    invited.write_text(
        "email,group\n"
        + "".join(f"a{i}@example.com,alpha\n" for i in range(1, 6))
        + "b1@example.com,group:default/alpha\n"  # moved to alpha for this wave
        + "b2@example.com,no-such-team\n"
    )
    result = ingest(survey, directory, DATA / "exports" / "s1" / "responses.csv", invited=invited)
    assert [(e.row, e.kind) for e in result.errors if e.file == "invited.csv"] == [(8, "invalid_value")]
    assert result.stats["invited"] == 7
    teams = result.invited.set_index("team_ref")["invited"].to_dict()
    assert teams == {"group:default/alpha": 6, "group:default/beta": 1}  # b2 falls back to the catalog
    assert len(errors_by(result, "not_invited")) == 4  # b3..b6
    assert (result.responses["team_ref"] == "group:default/alpha").sum() == 6


def test_a_person_in_several_groups_counts_in_their_team():
    entities = [
        {"kind": "Group", "metadata": {"name": "org"}, "spec": {"type": "organization"}},
        {"kind": "Group", "metadata": {"name": "web"}, "spec": {"type": "team", "parent": "org"}},
        {"kind": "Group", "metadata": {"name": "guild"}, "spec": {"type": "guild"}},
        {"kind": "User", "metadata": {"name": "u"}, "spec": {"memberOf": ["guild", "web", "org"]}},
    ]
    assert primary_teams(OrgGraph.from_entities(entities)) == {"user:default/u": "group:default/web"}
