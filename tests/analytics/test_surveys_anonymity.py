"""Anonymity: nothing published lets anyone compute a small group's figures or one person's answer.

The attacks are linear algebra over everything published. Every published figure is a sum over a
known set of respondents (value x respondents): the attacker knows the org chart, so knows which
people each shown cell covers. A hidden quantity (a group's total, one person's answer) can be
computed exactly iff its indicator vector lies in the row space of the shown cells' indicator
vectors. The tests first confirm that the published sums really are sums over the sets assumed,
so the model of the attacker matches the output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.org import OrgGraph
from analytics.surveys.trends import WaveData, compute_insights, parse_survey
from analytics.surveys.anonymity import Hierarchy, find_disclosures, suppress

K = 5


def derivable(rows: list[np.ndarray], target: np.ndarray) -> bool:
    if not rows:
        return False
    a = np.vstack(rows)
    return np.linalg.matrix_rank(np.vstack([a, target])) == np.linalg.matrix_rank(a)


def org_from(parents: dict[str, str | None], members: dict[str, list[str]]) -> OrgGraph:
    groups = pd.DataFrame(
        {"group_ref": list(parents), "parent_ref": [p for p in parents.values()], "display_name": list(parents), "type": "team"}
    )
    rows = [(u, g) for g, users in members.items() for u in users]
    return OrgGraph.from_frames(groups, pd.DataFrame(rows, columns=["user_ref", "group_ref"]))


# --- the issue's scenario --------------------------------------------------------------------------

G = "group:default/"
PARENTS = {
    G + "eng": None,
    G + "platform": G + "eng",
    G + "product": G + "eng",
    G + "team-a": G + "platform",
    G + "team-b": G + "platform",
    G + "team-c": G + "platform",
    G + "team-d": G + "product",
    G + "team-e": G + "product",
}
# Respondents per team and wave: team-a has 4 in every wave, its siblings more. In w2 the platform
# lead (a direct member of platform) answers too, another group of one to protect.
SIZES = {
    "w1": {"team-a": 4, "team-b": 6, "team-c": 7, "team-d": 8, "team-e": 5},
    "w2": {"team-a": 4, "team-b": 5, "team-c": 9, "team-d": 6, "team-e": 7, "platform": 1},
}
SURVEY = parse_survey(
    {
        "id": "reid",
        "anonymity": {"min_group_size": K},
        "dimensions": {"satisfaction": "Satisfaction", "flow": "Flow"},
        "questions": [
            {"id": "sat", "type": "likert", "dimension": "satisfaction"},
            {"id": "rec", "type": "nps", "dimension": "satisfaction"},
            {"id": "focus", "type": "likert", "dimension": "flow"},
            {"id": "pick", "type": "single_choice", "dimension": "flow", "options": ["x", "y"]},
            {"id": "tools", "type": "multi_choice", "dimension": "flow", "options": ["x", "y", "z"]},
            {"id": "note", "type": "free_text", "dimension": "satisfaction"},
        ],
        "waves": [{"id": "w1"}, {"id": "w2"}],
    }
)


@pytest.fixture(scope="module")
def scenario():
    rng = np.random.default_rng(11)
    members = {G + t: [f"user:default/{t}-{i}" for i in range(12)] for t in ["team-a", "team-b", "team-c", "team-d", "team-e"]}
    members[G + "platform"] = ["user:default/platform-lead"]
    org = org_from(PARENTS, members)
    waves, truth = {}, {}
    for wave, sizes in SIZES.items():
        rows = []
        for team, n in sizes.items():
            for i in range(n):
                rows.append(
                    {
                        "respondent": f"p_{wave}_{team}_{i}",
                        "team_ref": G + team,
                        "consent": True,
                        "sat": int(rng.integers(1, 6)),
                        "rec": int(rng.integers(0, 11)),
                        "focus": int(rng.integers(1, 6)),
                        "pick": ["x", "y"][int(rng.integers(0, 2))],
                        "tools": int(rng.integers(1, 8)),
                        "note": f"note from {team} #{i} in {wave}",
                    }
                )
        frame = pd.DataFrame(rows).astype({"sat": "Int8", "rec": "Int8", "focus": "Int8", "tools": "Int32", "pick": "string", "note": "string"})
        invited = pd.DataFrame({"team_ref": [G + t for t in sizes], "invited": [12 if t != "platform" else 1 for t in sizes]})
        waves[wave] = WaveData(frame, invited)
        truth[wave] = frame
    return org, waves, truth, compute_insights(SURVEY, waves, org)


def subtree(group: str) -> set[str]:
    out = {group}
    for child, parent in PARENTS.items():
        if parent == group:
            out |= subtree(child)
    return out


def per_respondent_values(frame: pd.DataFrame, dimension: str, metric: str) -> np.ndarray:
    if metric == "response_rate":
        return np.ones(len(frame))
    if dimension == "satisfaction" and metric == "enps":
        rec = frame["rec"].to_numpy(dtype=float)
        return 100.0 * np.where(rec >= 9, 1, np.where(rec <= 6, -1, 0))
    col = frame["sat" if dimension == "satisfaction" else "focus"].to_numpy(dtype=float)
    return col if metric == "mean" else 100.0 * (col >= 4)


def published_layers(insights, truth):
    """(layer name, wave frame, [(group, value x n)] for every shown cell) for every table layer."""
    t = insights.trends
    for (wave, dim, metric), part in t.groupby(["wave", "dimension", "metric"]):
        shown = part[~part["suppressed"] & (part["respondents"] > 0)]
        # A response rate publishes the count itself; every other figure is a mean over respondents.
        sums = [(r.group_ref, r.respondents if metric == "response_rate" else r.value * r.respondents) for r in shown.itertuples()]
        yield f"{wave}/{dim}/{metric}", wave, per_respondent_values(truth[wave], dim, metric), sums
    c = insights.choices
    for (wave, question, option), part in c.groupby(["wave", "question", "option"]):
        shown = part[~part["suppressed"]]
        frame = truth[wave]
        chosen = (frame["pick"] == option).to_numpy(dtype=float) if question == "pick" else ((frame["tools"].to_numpy() >> ["x", "y", "z"].index(option)) & 1).astype(float)
        yield f"{wave}/{question}/{option}", wave, chosen, [(r.group_ref, r.chosen) for r in shown.itertuples()]


def test_the_four_person_team_is_hidden_in_every_table(scenario):
    _, _, _, insights = scenario
    a = insights.trends[insights.trends.group_ref == G + "team-a"]
    assert len(a) and a["suppressed"].all()
    assert a[["respondents", "value", "ci_low", "ci_high", "change", "p_value"]].isna().all().all()
    assert insights.choices[insights.choices.group_ref == G + "team-a"]["suppressed"].all()
    assert G + "team-a" not in set(insights.comments["group_ref"])
    shown = insights.trends[~insights.trends["suppressed"] & (insights.trends["respondents"] > 0)]
    assert (shown["respondents"] >= K).all()


def test_no_combination_of_published_figures_reveals_the_small_team_or_one_answer(scenario):
    _, _, truth, insights = scenario
    checked = 0
    for layer, wave, values, sums in published_layers(insights, truth):
        frame = truth[wave]
        teams = frame["team_ref"].to_numpy()
        rows = []
        for group, total in sums:
            members = np.isin(teams, [g for g in subtree(group)]).astype(float)
            # The attacker's model is right: the published figure is the sum over these people.
            assert total == pytest.approx(float(members @ values)), layer
            rows.append(members)
        team_a = (teams == G + "team-a").astype(float)
        assert not derivable(rows, team_a), f"{layer}: team-a's total is derivable"
        for person in range(len(frame)):
            single = np.zeros(len(frame))
            single[person] = 1.0
            assert not derivable(rows, single), f"{layer}: respondent {person}'s answer is derivable"
        # The platform lead (a direct member of platform) is a group of one as well.
        lead = (teams == G + "platform").astype(float)
        assert not lead.any() or not derivable(rows, lead), f"{layer}: the platform lead's answer is derivable"
        checked += 1
    # Per wave: response rate, satisfaction mean/top2/eNPS, flow mean/top2, 2 + 3 choice options.
    assert checked == 2 * (1 + 3 + 2 + 2 + 3)
    # w1 needed complementary suppression: platform and all its teams but team-a would be shown.
    w1 = insights.trends[(insights.trends.wave == "w1") & (insights.trends.metric == "mean")]
    assert w1[w1.group_ref == G + "team-b"]["suppressed"].all()
    assert not w1[w1.group_ref == G + "platform"]["suppressed"].any()


def test_comments_of_the_small_team_appear_only_under_groups_at_or_above_k(scenario):
    _, _, _, insights = scenario
    from_a = insights.comments[insights.comments["text"].str.startswith("note from team-a")]
    assert len(from_a) == 8  # all consented, none dropped...
    assert set(from_a["group_ref"]) <= {G + "platform", G + "eng"}  # ...but never under team-a
    shown = insights.trends[(insights.trends.metric == "response_rate") & ~insights.trends["suppressed"]]
    visible = set(zip(shown.wave, shown.group_ref))
    assert all((w, g) in visible for w, g in zip(insights.comments.wave, insights.comments.group_ref))


def test_changes_are_only_published_between_two_shown_cells(scenario):
    _, _, _, insights = scenario
    t = insights.trends
    with_change = t[t["change"].notna()]
    previous = t.set_index(["wave", "group_ref", "dimension", "metric"])["suppressed"]
    for r in with_change.itertuples():
        assert not r.suppressed
        assert not previous[(r.previous_wave, r.group_ref, r.dimension, r.metric)]


# --- the rules, one by one ------------------------------------------------------------------------


def tree(parents: dict[str, str | None], own: dict[str, int]) -> tuple[Hierarchy, np.ndarray]:
    members = {g: [f"user:default/{g}-{i}" for i in range(n)] for g, n in own.items()}
    hier = Hierarchy.from_org(org_from(parents, members))
    n = np.zeros(len(hier.refs))
    for g, count in own.items():
        n[hier.index[g]] += count
        for ancestor in hier.org.ancestors(g):
            n[hier.index[ancestor]] += count
    return hier, n


def hidden_names(hier: Hierarchy, hidden: np.ndarray) -> set[str]:
    return {hier.refs[i] for i in np.flatnonzero(hidden)}


def test_a_parent_with_all_but_one_child_shown_hides_a_second_child():
    hier, n = tree({"p": None, "a": "p", "b": "p", "c": "p"}, {"a": 4, "b": 9, "c": 6})
    assert hidden_names(hier, (n > 0) & (n < K)) == {"a"}
    assert find_disclosures(hier, n, (n > 0) & (n < K), K)  # primary suppression alone leaks
    hidden = suppress(hier, n, K)
    assert hidden_names(hier, hidden) == {"a", "c"}  # the smallest sibling covers it
    assert find_disclosures(hier, n, hidden, K) == []


def test_direct_members_of_a_parent_are_protected_like_a_hidden_child():
    # A manager directly in "p" plus two large teams: p - a - b would be the manager's answer.
    hier, n = tree({"p": None, "a": "p", "b": "p"}, {"p": 1, "a": 8, "b": 7})
    hidden = suppress(hier, n, K)
    assert hidden_names(hier, hidden) == {"b"}
    assert find_disclosures(hier, n, hidden, K) == []


def test_hidden_cells_that_add_up_to_fewer_than_k_get_more_cover():
    # p shown; x (6, hidden to cover a) has children x1 (5, shown) and x2 (1). Two hidden cells in
    # each relation, yet a + x2 = p - others - x1 is a derivable group of 4.
    parents = {"p": None, "a": "p", "x": "p", "o": "p", "x1": "x", "x2": "x"}
    hier, n = tree(parents, {"a": 3, "o": 20, "x1": 5, "x2": 1})
    naive = (n > 0) & (n < K)
    naive[hier.index["x"]] = True
    assert any("derivable group of 4" in p for p in find_disclosures(hier, n, naive, K))
    hidden = suppress(hier, n, K)
    assert find_disclosures(hier, n, hidden, K) == []


def test_zero_respondent_groups_neither_need_nor_give_cover():
    hier, n = tree({"p": None, "a": "p", "b": "p", "z": "p"}, {"a": 3, "b": 9})
    hidden = suppress(hier, n, K)
    assert hidden_names(hier, hidden) == {"a", "b"}  # z (empty) cannot stand in for b


def test_parent_cycles_are_broken_instead_of_looping():
    hier, n = tree({"a": "b", "b": "a", "c": "a"}, {"c": 6, "b": 2})
    assert (hier.parent >= 0).sum() == 2  # one of the cycle's links dropped
    suppress(hier, n, K)


def test_random_org_trees_never_leak_a_hidden_cell_or_a_person():
    rng = np.random.default_rng(5)
    for trial in range(150):
        n_groups = int(rng.integers(2, 12))
        parents: dict[str, str | None] = {"g0": None}
        for i in range(1, n_groups):
            parents[f"g{i}"] = f"g{int(rng.integers(0, i))}" if rng.random() > 0.1 else None
        leaves = [g for g in parents if g not in parents.values()]
        own = {g: int(rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 12])) for g in leaves}
        for g in parents:
            if g not in own and rng.random() < 0.3:
                own[g] = int(rng.integers(1, 3))
        hier, n = tree(parents, own)
        hidden = suppress(hier, n, K)
        assert find_disclosures(hier, n, hidden, K) == [], trial
        # People, and each group's direct members, as indicator vectors over all people.
        people = [(g, i) for g, count in own.items() for i in range(count)]
        if not people:
            continue
        home = np.array([hier.index[g] for g, _ in people])

        def covers(node: int) -> np.ndarray:
            inside = {node} | {hier.index[d] for d in hier.org.descendants(hier.refs[node])}
            return np.isin(home, list(inside)).astype(float)

        shown = [covers(i) for i in range(len(hier.refs)) if not hidden[i] and n[i] > 0]
        for i in range(len(hier.refs)):
            if hidden[i] and n[i] > 0:
                assert not derivable(shown, covers(i)), (trial, hier.refs[i])
            if hier.has_children[i]:
                direct = (home == i).astype(float)
                if direct.any():
                    assert not derivable(shown, direct), (trial, "direct members of", hier.refs[i])
        for p in range(len(people)):
            single = np.zeros(len(people))
            single[p] = 1.0
            assert not derivable(shown, single), (trial, people[p])


def test_the_overall_total_is_hidden_when_a_root_group_is():
    # Two top-level groups; "small" has 3 respondents. Total minus "big" would be "small".
    survey = parse_survey({"id": "two-roots", "dimensions": {"flow": "Flow"},
                           "questions": [{"id": "focus", "type": "likert", "dimension": "flow"}], "waves": [{"id": "w1"}]})
    org = org_from({G + "big": None, G + "small": None}, {G + "big": [f"user:default/b{i}" for i in range(9)], G + "small": ["user:default/s0", "user:default/s1", "user:default/s2"]})
    frame = pd.DataFrame({"respondent": [f"p{i}" for i in range(12)], "team_ref": [G + "big"] * 9 + [G + "small"] * 3, "consent": False,
                          "focus": pd.array([4] * 12, dtype="Int8")})
    invited = pd.DataFrame({"team_ref": [G + "big", G + "small"], "invited": [9, 3]})
    insights = compute_insights(survey, {"w1": WaveData(frame, invited)}, org)
    (row,) = insights.waves.itertuples()
    assert row.suppressed and pd.isna(row.respondents) and pd.isna(row.response_rate)
    assert row.invited == 12  # invitations are not sensitive


# --- invited groups with no respondent (a 0 is a count below k) -------------------------------------


def test_an_invited_group_with_no_respondent_is_hidden_and_covered_like_any_count_below_k():
    # z invited 2 people and nobody answered. "0 of 2" shown in one wave would make a later
    # "hidden" for z mean 1..k-1 respondents, so z is hidden, and covered like a group of 3 would be.
    hier, n = tree({"p": None, "a": "p", "b": "p", "z": "p"}, {"a": 7, "b": 9})
    invited = np.zeros(len(hier.refs))
    for g, count in {"a": 12, "b": 12, "z": 2, "p": 26}.items():
        invited[hier.index[g]] = count
    naive = (n > 0) & (n < K)
    assert "z is shown with 0 respondents (< 5)" in find_disclosures(hier, n, naive, K, invited)
    hidden = suppress(hier, n, K, invited)
    assert hidden_names(hier, hidden) == {"z", "a"}  # the smallest sibling covers z
    assert find_disclosures(hier, n, hidden, K, invited) == []


def test_no_published_figure_shows_or_implies_an_empty_invited_group():
    parents = {G + "eng": None, G + "big": G + "eng", G + "mid": G + "eng", G + "quiet": G + "eng"}
    members = {G + t: [f"user:default/{t}-{i}" for i in range(12)] for t in ["big", "mid", "quiet"]}
    org = org_from(parents, members)
    survey = parse_survey({"id": "zeros", "dimensions": {"flow": "Flow"}, "waves": [{"id": "w1"}, {"id": "w2"}],
                           "questions": [{"id": "focus", "type": "likert", "dimension": "flow"},
                                         {"id": "pick", "type": "single_choice", "dimension": "flow", "options": ["x", "y"]}]})
    sizes = {"w1": {"big": 9, "mid": 7, "quiet": 0}, "w2": {"big": 9, "mid": 7, "quiet": 3}}
    waves = {}
    for wave, per_team in sizes.items():
        teams = [G + t for t, count in per_team.items() for _ in range(count)]
        frame = pd.DataFrame({"respondent": [f"{wave}-{i}" for i in range(len(teams))], "team_ref": teams, "consent": False,
                              "focus": pd.array([4] * len(teams), dtype="Int8"), "pick": pd.array(["x"] * len(teams), dtype="string")})
        waves[wave] = WaveData(frame, pd.DataFrame({"team_ref": [G + "big", G + "mid", G + "quiet"], "invited": [12, 12, 2]}))
    insights = compute_insights(survey, waves, org)
    assert insights.disclosures == []
    t, c = insights.trends, insights.choices
    quiet = t[t.group_ref == G + "quiet"]
    assert set(quiet.wave) == {"w1", "w2"} and quiet["suppressed"].all()  # w1 (0) and w2 (3) look alike
    assert quiet[["respondents", "value"]].isna().all().all()
    assert c[c.group_ref == G + "quiet"]["suppressed"].all() and set(c[c.group_ref == G + "quiet"].wave) == {"w1", "w2"}
    shown = t[~t["suppressed"]]
    assert (shown["respondents"] >= K).all()  # no "0 %" and no "0 of 2 invited" anywhere
    assert (c.loc[~c["suppressed"], "respondents"] >= K).all()
    # Nor can the attacker get quiet's count by differencing: per wave, the published counts are
    # sums of the teams' counts (unknowns big, mid, quiet); quiet's indicator is not in their span.
    for wave in ("w1", "w2"):
        part = shown[(shown.wave == wave) & (shown.metric == "response_rate")]
        span = {G + "eng": [1, 1, 1], G + "big": [1, 0, 0], G + "mid": [0, 1, 0], G + "quiet": [0, 0, 1]}
        rows = [np.array(span[g], dtype=float) for g in part.group_ref]
        assert not derivable(rows, np.array([0, 0, 1.0])), wave
