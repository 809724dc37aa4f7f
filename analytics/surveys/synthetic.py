"""Synthetic survey waves for the demo, tests and benchmarks, with effects the trends should show.

Answers come from a latent score per person, item and wave:

    z = 0.35 + person + team + team x dimension + wave mood + effects + item noise

cut into Likert 1-5 and stretched into NPS 0-10. Three planted effects (`Scenario` says where):

- **faster CI**: one team's feedback loops, tooling and satisfaction improve every wave, and fewer of
  its people pick the first option of choice questions (e.g. "Waiting for CI");
- **reorg**: from the middle wave, half of the largest other team moves to a sibling team (the
  invitation lists record the team at the time, so team sizes change), and the receiving team's
  cognitive load and collaboration scores dip for a wave;
- **low turnout**: one team answers rarely, so its figures are suppressed by the anonymity rules.

Everything is drawn from `numpy.random.default_rng` seeded with `seed` (and the wave's position for
that wave's answers): the same org, survey and seed give the same exports, wave by wave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

import numpy as np
import pandas as pd

from analytics.org import OrgGraph
from analytics.surveys.config import CONSENT, RESPONDENT, TEAM, SurveyDefinition
from analytics.surveys.ingest import primary_teams

IMPROVING_DIMENSIONS = ("feedback_loops", "tooling", "satisfaction")
REORG_DIMENSIONS = {"cognitive_load": -0.7, "collaboration": -0.5}
_CUTS = np.array([-1.3, -0.45, 0.35, 1.2])
_POSITIVE = (
    "The new CI runners made a real difference this quarter.",
    "Code reviews are fast and friendly.",
    "I like the developer portal; finding owners is easy now.",
    "Good quarter, the team works well together.",
    "Deploys are boring in the best way.",
)
_NEGATIVE = (
    "Builds are still too slow, I lose hours every week waiting.",
    "Too many meetings, hard to get focus time.",
    "Documentation is scattered across three wikis.",
    "Flaky test environments block us every sprint.",
    "Since the reorg it is unclear who owns what.",
)


@dataclass(frozen=True)
class Scenario:
    improving_team: str | None
    reorg_from: str | None
    reorg_to: str | None
    reorg_wave: str | None
    moved_users: tuple[str, ...]
    low_turnout_team: str | None


@dataclass
class SyntheticWave:
    """One wave: answers with the real user refs (never stored as such) and the invitation list."""

    answers: pd.DataFrame  # user_ref, team_ref, consent, submitted_at, <question ids> (typed)
    invited: pd.DataFrame  # user_ref, team_ref


def generate_waves(
    survey: SurveyDefinition,
    org: OrgGraph,
    seed: int = 7,
    *,
    response_rate: float = 0.78,
    waves: list[str] | None = None,
) -> tuple[dict[str, SyntheticWave], Scenario]:
    """Answers for every wave of `survey` (or the listed ones) from the org's users and teams."""
    rng = np.random.default_rng(seed)
    team_of = primary_teams(org)
    users = np.array(sorted(team_of), dtype=object)
    if not len(users):
        raise ValueError("the org has no users in teams to survey")
    base_team = np.array([team_of[u] for u in users], dtype=object)
    teams, team_idx = np.unique(base_team, return_inverse=True)
    sizes = np.bincount(team_idx, minlength=len(teams))
    k = survey.min_group_size
    scenario = _scenario(rng, org, survey, teams, sizes, users, base_team, k)

    dims = [d.id for d in survey.dimensions]
    all_teams = np.array(sorted(set(teams) | {t for t in (scenario.reorg_to,) if t}), dtype=object)
    t_index = {t: i for i, t in enumerate(all_teams)}
    person = rng.normal(0, 0.55, len(users))
    team_eff = rng.normal(0, 0.3, len(all_teams))
    team_dim = rng.normal(0, 0.25, (len(all_teams), len(dims)))
    team_turnout = np.clip(rng.normal(response_rate, 0.08, len(all_teams)), 0.3, 0.98)
    if scenario.low_turnout_team:
        team_turnout[t_index[scenario.low_turnout_team]] = 0.25
    moved = np.isin(users, np.array(scenario.moved_users, dtype=object))
    consent_person = rng.random(len(users)) < 0.6

    selected = [w for w in survey.waves if waves is None or w.id in waves]
    reorg_at = next((i for i, w in enumerate(survey.waves) if w.id == scenario.reorg_wave), None)
    out: dict[str, SyntheticWave] = {}
    for wave in selected:
        w = wave.order
        # One stream per wave: a wave's answers do not depend on which other waves are generated.
        rng = np.random.default_rng([seed, 1 + w])
        team_now = base_team.copy()
        if reorg_at is not None and w >= reorg_at:
            team_now[moved] = scenario.reorg_to
        if wave.population_groups:
            members = set().union(*(org.members(g) for g in wave.population_groups))
            in_population = np.isin(users, np.array(sorted(members), dtype=object))
        else:
            in_population = np.ones(len(users), dtype=bool)
        tix = np.array([t_index[t] for t in team_now], dtype=np.int64)
        mood = rng.normal(0, 0.08)
        answers_p = np.clip(team_turnout[tix] + rng.normal(0, 0.04), 0.05, 0.99)
        responded = in_population & (rng.random(len(users)) < answers_p)
        r = np.flatnonzero(responded)
        rt = tix[r]
        frame: dict[str, object] = {
            "user_ref": users[r],
            TEAM: team_now[r],
            CONSENT: consent_person[r],
            "submitted_at": _timestamps(rng, wave, len(r)),
        }
        improving = (team_now[r] == scenario.improving_team) if scenario.improving_team else np.zeros(len(r), bool)
        receiving = (team_now[r] == scenario.reorg_to) if scenario.reorg_to else np.zeros(len(r), bool)
        base = 0.35 + person[r] + team_eff[rt] + mood
        for q in survey.questions:
            d = dims.index(q.dimension)
            effect = team_dim[rt, d].copy()
            if q.dimension in IMPROVING_DIMENSIONS:
                effect += np.where(improving, 0.25 * w - 0.4, 0.0)
            if reorg_at is not None and q.dimension in REORG_DIMENSIONS and w >= reorg_at:
                # A dip in the reorg wave, half of it the wave after, gone later.
                fade = {0: 1.0, 1: 0.5}.get(w - reorg_at, 0.0)
                effect += np.where(receiving, REORG_DIMENSIONS[q.dimension] * fade, 0.0)
            z = base + effect + rng.normal(0, 0.7, len(r))
            skipped = rng.random(len(r)) < 0.03
            if q.type == "likert":
                values = (np.digitize(z, _CUTS) + 1).astype(float)
                frame[q.id] = pd.array(np.where(skipped, np.nan, values), dtype="Float64").astype("Int8")
            elif q.type == "nps":
                values = np.clip(np.round(7.0 + 1.7 * z), 0, 10)
                frame[q.id] = pd.array(np.where(skipped, np.nan, values), dtype="Float64").astype("Int8")
            elif q.type == "single_choice":
                weights = np.ones((len(r), len(q.options)))
                weights[:, 0] = np.where(improving, max(0.15, 2.5 - 0.45 * w), 2.0)
                probs = weights / weights.sum(axis=1, keepdims=True)
                pick = (rng.random(len(r))[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
                pick = np.minimum(pick, len(q.options) - 1)
                frame[q.id] = pd.array(np.where(skipped, None, np.array(q.options, dtype=object)[pick]), dtype="string")
            elif q.type == "multi_choice":
                p = np.full((len(r), len(q.options)), 0.3)
                p[:, 0] = np.where(improving, max(0.05, 0.6 - 0.08 * w), 0.5)
                chosen = rng.random(p.shape) < p
                mask = (chosen * (1 << np.arange(len(q.options)))).sum(axis=1)
                frame[q.id] = pd.array(np.where(skipped | (mask == 0), np.nan, mask), dtype="Float64").astype("Int32")
            else:
                writes = rng.random(len(r)) < 0.3
                positive = z > 0.4
                pos = np.array(_POSITIVE, dtype=object)[rng.integers(0, len(_POSITIVE), len(r))]
                neg = np.array(_NEGATIVE, dtype=object)[rng.integers(0, len(_NEGATIVE), len(r))]
                frame[q.id] = pd.array(np.where(writes, np.where(positive, pos, neg), None), dtype="string")
        invited_idx = np.flatnonzero(in_population)
        out[wave.id] = SyntheticWave(
            pd.DataFrame(frame),
            pd.DataFrame({"user_ref": users[invited_idx], TEAM: team_now[invited_idx]}),
        )
    return out, scenario


def _scenario(rng, org, survey, teams, sizes, users, base_team, k) -> Scenario:  # noqa: ANN001
    order = np.argsort(-sizes, kind="stable")
    big = [teams[i] for i in order if sizes[i] >= 2 * k + 2]
    improving = big[int(rng.integers(0, len(big)))] if big else (teams[order[0]] if len(teams) else None)
    reorg_from = next((t for t in big if t != improving), None)
    reorg_to = None
    if reorg_from is not None:
        parent = org.parent.get(reorg_from)
        siblings = [t for t in teams if t not in (reorg_from, improving) and org.parent.get(t) == parent]
        others = [t for t in teams if t not in (reorg_from, improving)]
        pool = siblings or others
        reorg_to = pool[int(rng.integers(0, len(pool)))] if pool else None
    moved: tuple[str, ...] = ()
    reorg_wave = None
    if reorg_from and reorg_to and len(survey.waves) >= 2:
        members = users[base_team == reorg_from]
        moved = tuple(sorted(rng.choice(members, size=len(members) // 2, replace=False)))
        reorg_wave = survey.waves[len(survey.waves) // 2].id
    small = [teams[i] for i in order[::-1] if k <= sizes[i] <= 3 * k and teams[i] not in (improving, reorg_from, reorg_to)]
    return Scenario(improving, reorg_from, reorg_to, reorg_wave, moved, small[0] if small else None)


def _timestamps(rng: np.random.Generator, wave, n: int) -> pd.Series:  # noqa: ANN001
    opens = wave.opens or datetime(2024, 1, 1).date()
    closes = wave.closes or (opens + timedelta(days=14))
    start = datetime.combine(opens, time(8), tzinfo=timezone.utc)
    span = max(1.0, (datetime.combine(closes, time(18), tzinfo=timezone.utc) - start).total_seconds())
    return pd.Series(pd.to_datetime(start) + pd.to_timedelta(rng.random(n) * span, unit="s"))


def identifier(user_ref: str, email_domain: str | None = None) -> str:
    """What a survey tool would know a user by: `name@domain`, or the user's name (namespace-qualified
    outside the default namespace)."""
    ns_name = user_ref.split(":", 1)[-1]
    ns, name = ns_name.split("/", 1)
    if email_domain:
        return f"{name}@{email_domain}"
    return name if ns == "default" else ns_name


def export_frame(survey: SurveyDefinition, wave: SyntheticWave, email_domain: str | None = None) -> pd.DataFrame:
    """The answers shaped like a survey tool's CSV export (one column per question, text cells)."""
    a = wave.answers
    fmt = survey.export
    out = pd.DataFrame(
        {
            "response_id": [f"R_{i:06d}" for i in range(1, len(a) + 1)],
            fmt.respondent_column: [identifier(u, email_domain) for u in a["user_ref"]],
            fmt.submitted_column: a["submitted_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            fmt.consent_column: np.where(a[CONSENT], "yes", "no"),
        }
    )
    for q in survey.questions:
        col = a[q.id]
        if q.type == "multi_choice":
            bits = col.to_numpy(dtype="float64", na_value=np.nan)
            cells = [
                "" if np.isnan(b) else ";".join(o for i, o in enumerate(q.options) if int(b) >> i & 1) for b in bits
            ]
        else:
            cells = col.astype("string").fillna("").to_numpy(dtype=object)
        out[q.column or q.id] = cells
    return out


def invited_frame(survey: SurveyDefinition, wave: SyntheticWave, email_domain: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            survey.export.respondent_column: [identifier(u, email_domain) for u in wave.invited["user_ref"]],
            "group": wave.invited[TEAM].to_numpy(),
        }
    )


def stored_frame(survey: SurveyDefinition, wave: SyntheticWave, tokens: pd.Series) -> pd.DataFrame:
    """The answers in the stored (post-ingestion) shape, for benchmarks that skip parsing exports."""
    a = wave.answers
    out = pd.DataFrame({RESPONDENT: tokens.to_numpy(), TEAM: a[TEAM].astype("string").to_numpy(), CONSENT: a[CONSENT].to_numpy()})
    for q in survey.questions:
        values = a[q.id]
        if q.type == "free_text":
            values = values.where(a[CONSENT], pd.NA)
        out[q.id] = values.array
    return out

