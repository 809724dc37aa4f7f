"""Skills exchange: profiles from annotations and CSV, mentor matching, gigs, coverage and
single points of knowledge.

Hand-checked cases use the Backstage example org with tests/data/health/skills.csv and gigs.yaml.
Who owns what there, and so what each team depends on knowing (tags and API types the taxonomy
knows): team-a java, data-engineering (artist-lookup) and rest (three openapi APIs); team-b java,
go, frontend (podcast-api, queue-proxy) and graphql (starwars-graphql); team-c grpc, trpc, rest,
asyncapi (its APIs); team-d nothing.
"""

from __future__ import annotations

import pandas as pd
import pytest
from test_graph import catalog_frames, example_docs

from analytics.org import OrgGraph
from analytics.health.skills import (
    CAPACITY_ANNOTATION,
    GIGS_ANNOTATION,
    LEARNING_ANNOTATION,
    NEEDS_ANNOTATION,
    SKILLS_ANNOTATION,
    SkillProfiles,
    Taxonomy,
    coverage,
    experts,
    group_needs,
    knowledge_risks,
    load_gigs,
    match_gigs,
    match_mentors,
    merge_profiles,
    profiles_from_csv,
    profiles_from_entities,
    profiles_with_teams,
)
from analytics.health.synthetic import annotate_users, synthetic_gigs, synthetic_profiles
from catalog_pipelines.providers.synthetic import SyntheticOrg
from catalog_pipelines.storage.skills_store import read_profiles_csv
from helpers import REPO_ROOT, TEST_DATA

ROOT = REPO_ROOT
HEALTH = TEST_DATA / "health"
U = "user:default/"
G = "group:default/"

# ##### FIXTURES


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.load(ROOT / "config" / "skills" / "skills.yaml")


@pytest.fixture(scope="module")
def org_frames():
    docs = example_docs(broken=False)
    entities, _ = catalog_frames(docs)
    return docs, entities, OrgGraph.from_entities(docs)


@pytest.fixture(scope="module")
def profiles(taxonomy) -> SkillProfiles:
    return profiles_from_csv(read_profiles_csv(HEALTH / "skills.csv"), taxonomy)


def tiny_org(teams: dict[str, list[str]]) -> OrgGraph:
    groups = pd.DataFrame({"group_ref": [G + t for t in teams], "parent_ref": None, "display_name": list(teams)})
    members = pd.DataFrame([(U + u, G + t) for t, us in teams.items() for u in us], columns=["user_ref", "group_ref"])
    return OrgGraph.from_frames(groups, members)


def tiny_profiles(skills: list[tuple], wishes: list[tuple], capacity: dict[str, int] | None = None) -> SkillProfiles:
    s = pd.DataFrame([(U + u, k, lvl, "t") for u, k, lvl in skills], columns=["user_ref", "skill", "level", "source"])
    w = pd.DataFrame([(U + u, k, pd.NA, "t") for u, k in wishes], columns=["user_ref", "skill", "current_level", "source"])
    p = pd.DataFrame([(U + u, c, None) for u, c in (capacity or {}).items()], columns=["user_ref", "mentor_capacity", "gigs_available"])
    return merge_profiles(SkillProfiles(s, w, p))


# ##### PROFILES


def test_taxonomy_folds_aliases_and_reads_level_words(taxonomy):
    assert taxonomy.normalise("K8s") == "kubernetes"
    assert taxonomy.normalise("golang") == "go"
    assert taxonomy.normalise("Underwater Basket Weaving") == "underwater-basket-weaving"
    assert taxonomy.resolve("tier-1") is None
    assert [taxonomy.level(v) for v in ("expert", "3", "beginner", "", 9)] == [4, 3, 1, 2, 4]


def test_user_annotations_become_profiles(taxonomy):
    user = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {
            "name": "jane",
            "annotations": {
                SKILLS_ANNOTATION: "Python:expert, k8s:3, go",
                LEARNING_ANNOTATION: "rust; terraform",
                CAPACITY_ANNOTATION: "3",
                GIGS_ANNOTATION: "unavailable",
            },
        },
        "spec": {"memberOf": []},
    }
    entities, _ = catalog_frames([user])
    got = profiles_from_entities(entities, taxonomy)
    assert sorted(zip(got.skills["skill"], got.skills["level"])) == [("go", 2), ("kubernetes", 3), ("python", 4)]
    assert sorted(got.wishes["skill"]) == ["rust", "terraform"]
    assert got.people.iloc[0].tolist() == [U + "jane", 3, False]


def test_catalog_and_csv_merge_to_the_higher_level_and_both_sources(taxonomy, profiles):
    catalog = tiny_profiles([("amelia.park", "go", 2), ("amelia.park", "rust", 1)], [])
    merged = merge_profiles(catalog, profiles)
    amelia = merged.skills[merged.skills["user_ref"] == U + "amelia.park"].set_index("skill")
    assert amelia.loc["go", "level"] == 4 and amelia.loc["go", "source"] == "csv+t"
    assert amelia.loc["rust", "level"] == 1


def test_a_skills_csv_without_a_skill_column_is_an_error_naming_the_file(taxonomy, tmp_path):
    csv = tmp_path / "profiles.csv"
    csv.write_text("user,level\njane,3\n")
    with pytest.raises(ValueError) as err:
        profiles_from_csv(read_profiles_csv(csv), taxonomy, where=str(csv))
    assert str(err.value) == f"{csv}: skills CSV lacks column(s) ['skill']"


def test_csv_wishes_carry_the_learners_current_level(profiles):
    wishes = profiles.wishes.set_index(["user_ref", "skill"])["current_level"]
    assert wishes[(U + "nigel.manning", "graphql")] == 1
    assert wishes[(U + "janelle.dawe", "go")] == 0


def test_experts_for_a_skill_best_first(taxonomy, profiles, org_frames):
    _, _, org = org_frames
    table = profiles_with_teams(profiles, org, taxonomy)
    go = experts(table, taxonomy.normalise("golang"))
    assert go["user_ref"].tolist() == [U + "amelia.park", U + "calum.leavy"]
    assert go["teams"].tolist() == [G + "team-b", G + "team-c"]
    assert experts(table, "go", team=G + "boxoffice", org=org)["user_ref"].tolist() == [U + "calum.leavy"]


# ##### MENTORSHIPS


def test_mentor_matching_on_the_example_org(profiles, org_frames):
    _, _, org = org_frames
    result = match_mentors(profiles, org, default_capacity=1)
    pairs = dict(zip(zip(result.matches["learner"], result.matches["skill"]), result.matches["mentor"]))
    assert pairs[(U + "nigel.manning", "graphql")] == U + "colette.brock"
    # breanna (team-a) is a cross-team expert; amelia's one slot is needed for Go.
    assert pairs[(U + "sarah.gilroy", "java")] == U + "breanna.davison"
    # amelia is in jonathon's own team, so he gets calum from team-c.
    assert pairs[(U + "jonathon.page", "go")] == U + "calum.leavy"
    go = {pairs[(U + "janelle.dawe", "go")], pairs[(U + "lucy.sheehan", "go")]}
    assert go == {U + "amelia.park", U + "calum.leavy"}
    assert result.matches["cross_team"].all()
    # eva is the only Rust expert but mentors nobody (capacity 0).
    assert result.unmatched.values.tolist() == [[U + "jenny.doe", "rust", "no mentor with this skill"]]
    load = result.load.set_index("mentor")
    assert (load["assigned"] <= load["capacity"]).all()
    assert load.loc[U + "calum.leavy", "assigned"] == 2


def test_mentor_capacity_is_never_exceeded():
    org = tiny_org({"a": ["l1", "l2", "l3"], "b": ["m"]})
    prof = tiny_profiles([("m", "python", 4)], [("l1", "python"), ("l2", "python"), ("l3", "python")], {"m": 2})
    result = match_mentors(prof, org)
    assert len(result.matches) == 2
    assert result.unmatched["reason"].tolist() == ["every mentor for this skill is at capacity"]


def test_cross_team_mentor_preferred_over_a_better_one_in_the_learners_team():
    org = tiny_org({"a": ["learner", "teammate"], "b": ["outsider"]})
    prof = tiny_profiles([("teammate", "go", 4), ("outsider", "go", 3)], [("learner", "go")])
    result = match_mentors(prof, org)
    assert result.matches["mentor"].tolist() == [U + "outsider"]


def test_matching_maximises_pairs_before_preferences():
    """A greedy pass would give l1 the expert and leave l2, who can only learn from the expert
    (l2 is already advanced), without a mentor; the flow serves both."""
    org = tiny_org({"a": ["l1"], "d": ["l2"], "b": ["expert"], "c": ["advanced"]})
    prof = tiny_profiles(
        [("expert", "x", 4), ("advanced", "x", 3), ("l2", "x", 3)],
        [("l1", "x"), ("l2", "x")],
        {"expert": 1, "advanced": 1, "l2": 0},
    )
    pairs = dict(zip(match_mentors(prof, org).matches["learner"], match_mentors(prof, org).matches["mentor"]))
    assert pairs == {U + "l1": U + "advanced", U + "l2": U + "expert"}


def test_a_learner_does_not_get_the_same_mentor_twice():
    org = tiny_org({"a": ["l"], "b": ["m"]})
    prof = tiny_profiles([("m", "x", 4), ("m", "y", 4)], [("l", "x"), ("l", "y")], {"m": 5})
    result = match_mentors(prof, org)
    assert len(result.matches) == 1 and len(result.unmatched) == 1


# ##### GIGS


def test_gigs_are_staffed_by_priority_outside_the_asking_team(taxonomy, profiles, org_frames):
    _, _, org = org_frames
    gigs = match_gigs(load_gigs(HEALTH / "gigs.yaml"), profiles, org, taxonomy)
    by_gig = {g: frame for g, frame in gigs.groupby("gig_id")}
    checkout = by_gig["checkout-java-embed"]  # critical, staffed first
    assert checkout.loc[checkout["assigned"], "user_ref"].tolist() == [U + "breanna.davison"]
    assert checkout["user_ref"].tolist() == [U + "breanna.davison", U + "amelia.park"]
    podcast = by_gig["podcast-graphql-embed"]  # team-b's own people cannot embed in team-b
    assert not podcast["assigned"].any()
    assert podcast["user_ref"].tolist() == [U + "breanna.davison"]  # already on the critical gig
    pairing = by_gig["playback-go-pairing"]  # calum is in team-c, the asking team
    assert pairing.loc[pairing["assigned"], "user_ref"].tolist() == [U + "amelia.park"]
    rust = by_gig["rust-hack"]  # eva knows Rust but opted out of gigs
    assert rust["user_ref"].isna().all() and rust["missing"].tolist() == ["rust"]


# ##### COVERAGE AND SINGLE POINTS OF KNOWLEDGE


def test_single_points_of_knowledge_and_gaps(taxonomy, profiles, org_frames):
    _, entities, org = org_frames
    needs = group_needs(entities, org, taxonomy)
    risks = knowledge_risks(needs, profiles.skills, org)
    got = {
        (g.split("/")[-1], s): (r, None if pd.isna(h) else h)
        for g, s, r, h in risks[["group_ref", "skill", "risk", "holder"]].itertuples(index=False)
    }
    assert got == {
        ("team-a", "data-engineering"): ("gap", None),
        ("team-b", "frontend"): ("gap", None),
        ("team-c", "trpc"): ("gap", None),
        ("team-a", "java"): ("single_point", U + "breanna.davison"),
        ("team-b", "go"): ("single_point", U + "amelia.park"),
        ("team-b", "graphql"): ("single_point", U + "colette.brock"),
        ("team-c", "grpc"): ("single_point", U + "calum.leavy"),
        ("team-c", "rest"): ("single_point", U + "frank.tiernan"),
        ("team-c", "asyncapi"): ("single_point", U + "peadar.macmahon"),
    }
    # team-a's rest is held by breanna and janelle: covered twice, not a risk.
    assert ("team-a", "rest") not in got
    assert set(risks.loc[risks["risk"] == "gap", "severity"]) == {"error"}


def test_a_need_declared_on_the_group_counts_too(taxonomy, profiles):
    docs = example_docs(broken=False)
    for doc in docs:
        if doc["kind"] == "Group" and doc["metadata"]["name"] == "team-d":
            doc["metadata"]["annotations"] = {NEEDS_ANNOTATION: "Kafka, rust"}
    entities, _ = catalog_frames(docs)
    org = OrgGraph.from_entities(docs)
    needs = group_needs(entities, org, taxonomy)
    declared = needs[needs["group_ref"] == G + "team-d"]
    assert declared[["skill", "source"]].values.tolist() == [["kafka", "declared"], ["rust", "declared"]]
    risks = knowledge_risks(needs, profiles.skills, org).set_index(["group_ref", "skill"])
    assert risks.loc[(G + "team-d", "rust"), "holder"] == U + "eva.macdowell"
    assert risks.loc[(G + "team-d", "kafka"), "risk"] == "gap"


def test_coverage_rolls_members_up_the_hierarchy(profiles, org_frames):
    _, _, org = org_frames
    cov = coverage(profiles.skills, org).set_index(["group_ref", "skill"])
    assert cov.loc[(G + "team-b", "java"), ["holders", "advanced", "max_level", "members"]].tolist() == [2, 1, 3, 5]
    # backstage = team-a + team-b: java from breanna (4), amelia (3), colette (2).
    assert cov.loc[(G + "backstage", "java"), ["holders", "advanced", "members"]].tolist() == [3, 2, 10]


# ##### SYNTHETIC ORG


@pytest.fixture(scope="module")
def synthetic():
    entities = list(SyntheticOrg(3000, seed=11).iter_entities())
    return entities, OrgGraph.from_entities(entities)


def test_synthetic_profiles_are_deterministic_and_round_trip_through_annotations(taxonomy, synthetic):
    entities, org = synthetic
    first = synthetic_profiles(org, taxonomy, seed=5)
    again = synthetic_profiles(org, taxonomy, seed=5)
    pd.testing.assert_frame_equal(first.skills, again.skills)
    assert not first.skills.equals(synthetic_profiles(org, taxonomy, seed=6).skills)
    frame, _ = catalog_frames(list(annotate_users(entities, first)))
    back = profiles_from_entities(frame, taxonomy)
    pd.testing.assert_frame_equal(
        back.skills[["user_ref", "skill", "level"]], first.skills[["user_ref", "skill", "level"]]
    )
    assert back.wishes["skill"].tolist() == first.wishes["skill"].tolist()


def test_matching_on_the_synthetic_org_respects_capacity_and_prefers_other_teams(taxonomy, synthetic):
    _, org = synthetic
    prof = synthetic_profiles(org, taxonomy, seed=5)
    # No candidate pruning here, so the optimum is over every eligible mentor.
    result = match_mentors(prof, org, default_capacity=1, candidates_per_wish=10_000)
    assert len(result.matches) > 50
    load = result.load.set_index("mentor")
    assert (load["assigned"] <= load["capacity"]).all()
    levels = prof.skills.set_index(["user_ref", "skill"])["level"]
    assert all(levels[(m, s)] >= 3 for m, s in zip(result.matches["mentor"], result.matches["skill"]))
    assert (result.matches["mentor_level"] > result.matches["learner_level"]).all()
    # A same-team pair only happens when no eligible cross-team mentor had room (otherwise moving
    # the learner to them would be cheaper at the same number of matches): check every one.
    teams = {u: set(t.split(",")) for u, t in zip(result.matches["learner"], result.matches["learner_teams"])}
    for row in result.matches[~result.matches["cross_team"]].itertuples():
        able = prof.skills[(prof.skills["skill"] == row.skill) & (prof.skills["level"] >= 3) & (prof.skills["level"] > row.learner_level)]
        free = [m for m in able["user_ref"] if m in load.index and load.loc[m, "assigned"] < load.loc[m, "capacity"]]
        assert not [m for m in free if m != row.learner and not (set(org.teams_of(m)) & teams[row.learner])]
    assert result.matches["cross_team"].mean() > 0.8


def test_synthetic_gigs_staff_each_person_once(taxonomy, synthetic):
    _, org = synthetic
    prof = synthetic_profiles(org, taxonomy, seed=5)
    gigs = match_gigs(synthetic_gigs(org, taxonomy, count=30), prof, org, taxonomy)
    staffed = gigs[gigs["assigned"]]
    assert staffed["user_ref"].is_unique
    assert len(staffed) > 10


# ##### THE ASSET AND THE `skills` COMMANDS (through the catalog database)


def test_skills_exchange_asset_and_cli(catalog_url, dagster_instance, tmp_path, monkeypatch):
    import json
    import shutil

    import dagster as dg
    from click.testing import CliRunner
    from helpers import seed_catalog

    from catalog_pipelines.assets.catalog_health import skills_exchange
    from catalog_pipelines.cli.catalog_health import skills
    from catalog_pipelines.resources import CatalogDatabase

    folder = tmp_path / "skills"
    folder.mkdir()
    shutil.copy(ROOT / "config" / "skills" / "skills.yaml", folder / "skills.yaml")
    shutil.copy(HEALTH / "skills.csv", folder / "profiles.csv")
    shutil.copy(HEALTH / "gigs.yaml", folder / "gigs.yaml")
    docs = example_docs(broken=False)
    for doc in docs:  # one profile from the catalog itself, merged with the CSV
        if doc["kind"] == "User" and doc["metadata"]["name"] == "tara.macgovern":
            doc["metadata"]["annotations"] = {SKILLS_ANNOTATION: "golang:expert", CAPACITY_ANNOTATION: "1"}
    url = catalog_url
    seed_catalog(url, docs)
    result = dg.materialize(
        [skills_exchange],
        resources={"catalog": CatalogDatabase(url=url)},
        instance=dagster_instance,
        run_config={"ops": {"skills_exchange": {"config": {"config_dir": str(folder)}}}},
    )
    assert result.success
    meta = result.asset_materializations_for_node("skills_exchange")[0].metadata
    assert meta["people_with_skills"].value == 10
    assert meta["knowledge_gaps"].value == 3
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"mentor_capacity_respected": True, "no_knowledge_gaps": False}

    monkeypatch.setenv("CATALOG_DATABASE_URL", url)
    runner = CliRunner()
    go = json.loads(runner.invoke(skills, ["experts", "golang", "--json"]).output)
    assert go["skill"] == "go"
    assert [e["user_ref"] for e in go["experts"]] == [U + "amelia.park", U + "tara.macgovern", U + "calum.leavy"]
    in_boxoffice = json.loads(runner.invoke(skills, ["experts", "go", "--team", "boxoffice", "--json"]).output)
    assert [e["user_ref"] for e in in_boxoffice["experts"]] == [U + "tara.macgovern", U + "calum.leavy"]
    mine = json.loads(runner.invoke(skills, ["matches", "--user", "jonathon.page", "--json"]).output)
    # tara (team-c, expert, capacity 1) now competes with calum; either way not amelia, his teammate.
    assert [m["mentor"] for m in mine["mentorships"]] in ([U + "calum.leavy"], [U + "tara.macgovern"])
    risks = runner.invoke(skills, ["risks", "--team", "team-b"])
    assert risks.exit_code == 0 and "frontend" in risks.output and "team-c" not in risks.output


def test_skills_and_gigs_files_are_parsed_by_their_models_with_file_line_and_did_you_mean(tmp_path):
    from analytics.health.skills import SkillsConfigError

    skills = tmp_path / "skills.yaml"
    skills.write_text("skills:\n  python: {category: LANGUAGES, alias: [py]}\n")
    with pytest.raises(SkillsConfigError) as err:
        Taxonomy.load(skills)
    assert str(err.value) == f"{skills}:2: skills.python.alias: unknown key 'alias' (did you mean 'aliases'?)"
    gigs = tmp_path / "gigs.yaml"
    gigs.write_text("gigs:\n  - {id: a, seats: 0}\n  - {id: b}\n  - {id: b}\n")
    with pytest.raises(SkillsConfigError) as err:
        load_gigs(gigs)
    assert str(err.value) == f"{gigs}:2: gigs[0].seats: Input should be greater than or equal to 1, got 0"
    gigs.write_text("gigs:\n  - {id: a}\n  - {id: b}\n  - {id: b}\n")
    with pytest.raises(SkillsConfigError) as err:
        load_gigs(gigs)
    assert str(err.value) == f"{gigs}:4: gigs[2].id: duplicate gig id 'b' (first at gigs[1])"
