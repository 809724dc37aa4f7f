"""Seeded delivery histories for a synthetic organisation (demo, tests, benchmark).

`synthetic_delivery_events(entities, org, days=, seed=, end=)` returns the five event frames of
`catalog_pipelines.model.delivery_events` (pull requests, reviews, deployments, incidents,
pipeline runs) for the components of `entities`, shaped like what the GitHub, GitLab and
PagerDuty collectors store. What is modelled:

- every team gets a delivery *tier* (elite / high / medium / low) that sets its PR rate, cycle
  time, review habits, deployment style, change failure rate and time to restore; each entity's
  activity is skewed (a log-normal multiplier), so a few repositories do most of the work;
- deployments are bursty: working hours on weekdays in the team's time of day, elite teams deploy
  every merge (continuous delivery), high/medium teams deploy at their own rate from the default
  branch head, low teams ride a release train every six weeks; 30-40% of production deployments
  are preceded by a staging one; a few attempts fail; a few deployments ship no PR's merge commit
  (config or hotfix deploys: "no linked change");
- PRs: some merged without any review, some closed unmerged, some left open for months (stale),
  drafts; sizes log-normal; GitLab repositories (their `source` is `gitlab`) have no first-commit
  time (null), as the GitLab collector does not read commits;
- failures: a bad production deployment is followed by a rollback deployment (`is_rollback`) or an
  incident on the entity within hours; background incidents happen too, and 3% of incidents hit a
  PagerDuty service no entity carries (`entity_ref` null);
- PLANTED effects (see `Planted`, `planted_teams`): the largest team is the *regressing* team, high
  tier until `reorg_at` (five weeks before `end`, a Monday) and then 5x slower reviews and a third
  of the deployments, so its lead time trend goes up; the second largest team is *elite* (every
  repository busy, each merge deployed), the third *low* (release train every six weeks).

People (authors, reviewers) are the owner team's members from `org` when it has them, else made-up
team members; either way they are pseudonymised with `key` (`analytics/pseudonymise.py`) before
they land in a frame. Deterministic in `(entities, org, days, seed, end, activity)`; vectorised
(numpy), no loop per event: the 200,000-entity, two-year benchmark org is generated in seconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.pseudonymise import pseudonymise
from catalog_pipelines.model.delivery_events import COLUMNS, DEPLOYMENTS, INCIDENTS, PIPELINE_RUNS, PULL_REQUESTS, REVIEWS

if TYPE_CHECKING:
    from analytics.org import OrgGraph

DEFAULT_KEY = b"synthetic-delivery"
HOUR = 3600.0
DAY = 86400.0
TIERS = ("elite", "high", "medium", "low")


@dataclass(frozen=True)
class TierProfile:
    prs_per_week: float  # per entity, before the entity's activity multiplier
    deploys_per_week: float  # rate-driven deploys (0: every merge is deployed)
    cycle_hours: float  # median created -> merged
    first_review_hours: float  # median created -> first review
    unreviewed: float  # share of merged PRs without any review
    change_failure: float  # share of production deployments that fail
    restore_hours: float  # median incident start -> resolve
    train_days: int = 0  # release train period (0: no train)


PROFILES: dict[str, TierProfile] = {
    "elite": TierProfile(12.0, 0.0, 4.0, 0.7, 0.03, 0.03, 0.4),
    "high": TierProfile(3.0, 2.5, 20.0, 3.0, 0.06, 0.07, 4.0),
    "medium": TierProfile(1.5, 0.6, 72.0, 16.0, 0.10, 0.12, 40.0),
    "low": TierProfile(1.0, 0.0, 260.0, 60.0, 0.25, 0.30, 240.0, train_days=42),
}
REGRESSED = TierProfile(3.0, 0.8, 110.0, 30.0, 0.06, 0.07, 4.0)


@dataclass(frozen=True)
class Planted:
    """The effects the generator plants, for tests and the demo's story."""

    regressing_team: str | None
    elite_team: str | None
    low_team: str | None
    reorg_at: datetime


def _end_of(end: datetime | date | None) -> datetime:
    if end is None:
        return datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    if isinstance(end, datetime):
        return end if end.tzinfo else end.replace(tzinfo=UTC)
    return datetime.combine(end, time(0, 0), tzinfo=UTC)


def _components(entities: pd.DataFrame) -> pd.DataFrame:
    frame = entities
    if "kind" in frame.columns:
        frame = frame[frame["kind"].astype(str).str.lower() == "component"]
    return frame.sort_values("ref").reset_index(drop=True)


def planted_teams(entities: pd.DataFrame, end: datetime | date | None = None) -> Planted:
    """The regressing (largest), elite (second) and low (third) teams by components owned (ties by
    name); the reorganisation is the Monday five weeks before `end`."""
    end_at = _end_of(end)
    comps = _components(entities)
    counts = comps["owner"].dropna().value_counts()
    ranked = sorted(counts.index, key=lambda t: (-int(counts[t]), str(t)))
    pick = (ranked + [None, None, None])[:3]
    reorg = (end_at - timedelta(weeks=5)).date()
    reorg -= timedelta(days=reorg.weekday())
    return Planted(pick[0], pick[1], pick[2], datetime.combine(reorg, time(0, 0), tzinfo=UTC))


def _hex(rng: np.random.Generator, n: int, chars: int) -> pd.Series:
    """`n` random lower-case hex strings of `chars` characters, without a Python loop (Arrow
    strings: 40 bytes a commit, not 160 as numpy's fixed-width unicode)."""
    import pyarrow as pa

    raw = rng.integers(0, 256, size=(n, chars // 2), dtype=np.uint8).tobytes().hex()
    return pd.Series(pd.array(pa.array(np.frombuffer(raw.encode(), dtype=f"S{chars}")).cast(pa.string()), dtype="str"))


def _take(values: np.ndarray, codes: np.ndarray, text: bool = False) -> pd.Series:
    """`values[codes]` as a categorical column (a code per row, each distinct text once: the
    benchmark's millions of rows name a few hundred thousand repositories and people), or as an
    Arrow string column with `text`."""
    cats, inverse = np.unique(np.asarray(values).astype(str), return_inverse=True)
    column = pd.Series(pd.Categorical.from_codes(inverse[np.asarray(codes, dtype=np.int64)], categories=pd.Index(cats, dtype=object)))
    return column.astype("str") if text else column


def _numbered(prefix: str, n: int) -> pd.Series:
    return prefix + pd.Series(np.arange(n)).astype("str")


def _utc(seconds: np.ndarray) -> pd.Series:
    """Epoch seconds (float, NaN = missing) as tz-aware UTC times."""
    values = np.where(np.isnan(seconds), np.iinfo(np.int64).min, np.floor(seconds) * 1e9).astype("int64")
    arr = values.view("datetime64[ns]")
    return pd.Series(pd.DatetimeIndex(arr).tz_localize("UTC"))


def _working_times(rng: np.random.Generator, start: float, days: int, n: int, hour_offset: np.ndarray) -> np.ndarray:
    """`n` moments in `[start, start + days)`, mostly on weekdays between 9:00 and 18:00 of each
    event's team time (`hour_offset` hours from UTC)."""
    day = rng.integers(0, max(days, 1), n)
    weekday = (np.floor(start / DAY).astype(np.int64) + day + 3) % 7  # 1970-01-01 was a Thursday
    weekend = weekday >= 5
    move = weekend & (rng.random(n) < 0.93)  # most weekend draws move to the Friday before
    day = np.where(move, day - (weekday - 4), day)
    day = np.clip(day, 0, max(days - 1, 0))
    hour = np.clip(rng.normal(13.5, 2.6, n), 7.0, 21.0) - hour_offset
    return start + day * DAY + hour * HOUR


def _lognormal(rng: np.random.Generator, median: np.ndarray | float, sigma: float, n: int) -> np.ndarray:
    return np.asarray(median) * np.exp(rng.normal(0.0, sigma, n))


def _people(teams: list[str], org: OrgGraph | None, sizes: np.ndarray, key: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per team: offset into and count of a flat array of pseudonymised people."""
    flat: list[str] = []
    offsets = np.zeros(len(teams), dtype=np.int64)
    counts = np.zeros(len(teams), dtype=np.int64)
    for i, team in enumerate(teams):
        members = sorted(org.members(team)) if org is not None else []
        if not members:
            members = [f"{team}#dev{j}" for j in range(max(2, int(sizes[i])))]
        offsets[i] = len(flat)
        counts[i] = len(members)
        flat.extend(pseudonymise(m, key) for m in members)
    return np.asarray(flat, dtype=object), offsets, counts


def synthetic_delivery_events(
    entities: pd.DataFrame,
    org: OrgGraph | None = None,
    *,
    days: int = 120,
    seed: int = 7,
    end: datetime | date | None = None,
    activity: float = 1.0,
    key: bytes = DEFAULT_KEY,
    planted: Planted | None = None,
    pipeline_runs: bool = True,
    chunk_entities: int = 15_000,
) -> dict[str, pd.DataFrame]:
    """The event frames of the components in `entities` (columns `ref`, `name`, `owner`, optional
    `kind`; optional annotations as columns `repository`, `source`, `service_id`) over the `days`
    days before `end`. `activity` scales every rate (the benchmark's 200k-entity org uses ~0.04).
    Text columns naming entities, repositories and people are categoricals. Entities are generated
    `chunk_entities` at a time (each chunk from its own seeded stream; a team's tier, time zone
    and people do not depend on the chunk), which bounds the memory of a big org."""
    end_at = _end_of(end)
    planted = planted or planted_teams(entities, end_at)
    comps = _components(entities)
    bounds = list(range(0, len(comps), chunk_entities)) or [0]
    parts = [_generate(comps.iloc[i:i + chunk_entities], org, days=days, seed=seed, chunk=n, end_at=end_at, activity=activity,
                       key=key, planted=planted, pipeline_runs=pipeline_runs) for n, i in enumerate(bounds)]
    if len(parts) == 1:
        return parts[0]
    out = {}
    for kind_ in COLUMNS:
        out[kind_] = _concat([p.pop(kind_) for p in parts])
    return out


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    from pandas.api.types import union_categoricals

    frames = [f for f in frames if len(f)] or frames[:1]
    columns = {}
    for column in frames[0].columns:
        values = [f[column] for f in frames]
        if all(isinstance(v.dtype, pd.CategoricalDtype) for v in values):
            columns[column] = pd.Series(union_categoricals([v.array for v in values]))
        else:
            columns[column] = pd.concat(values, ignore_index=True)
    return pd.DataFrame(columns)


def _team_draw(seed: int, team: str, choices: list) -> object:
    """A per-team draw that does not depend on which other teams are generated with it."""
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{team}".encode()).digest()[:8], "little")
    return choices[digest % len(choices)]


def _generate(comps: pd.DataFrame, org: OrgGraph | None, *, days: int, seed: int, chunk: int, end_at: datetime,
              activity: float, key: bytes, planted: Planted, pipeline_runs: bool) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng([seed, chunk])
    end_s = end_at.timestamp()
    start_s = end_s - days * DAY
    comps = comps.reset_index(drop=True)
    n_ent = len(comps)
    names = comps["name"].astype(str).to_numpy() if "name" in comps.columns else comps["ref"].astype(str).str.split("/").str[-1].to_numpy()
    refs = comps["ref"].astype(str).to_numpy()
    owners = comps["owner"].astype(object).where(comps["owner"].notna(), "group:default/unowned").astype(str).to_numpy()
    # where each entity's code and pager live (the synthetic provider's rule: one in eight on GitLab)
    hashed = pd.util.hash_array(refs.astype(object)) if n_ent else np.array([], dtype=np.uint64)
    if "source" in comps.columns:
        source = comps["source"].fillna("github").astype(str).to_numpy()
    else:
        source = np.where((hashed >> np.uint64(37)) & np.uint64(7) == 0, "gitlab", "github")
    if "repository" in comps.columns:
        repo = comps["repository"].fillna("").astype(str).to_numpy()
        repo = np.where(repo == "", np.char.add("acme/", names.astype(str)), repo)
    else:
        repo = np.where(source == "gitlab", np.char.add("acme/platform/", names.astype(str)), np.char.add("acme/", names.astype(str)))
    if "service_id" in comps.columns:
        service = comps["service_id"].astype(object).to_numpy()
        service = np.where(pd.isna(service), np.char.add("P", np.char.zfill((hashed % np.uint64(10**6)).astype(str), 6)), service).astype(str)
    else:
        service = np.char.add("P", np.char.zfill((hashed % np.uint64(10**6)).astype(str), 6))
    repo_url = np.where(source == "gitlab", np.char.add("https://gitlab.acme.example/", repo.astype(str)),
                        np.char.add("https://github.com/", repo.astype(str)))
    pull_path = np.where(source == "gitlab", "/-/merge_requests/", "/pull/")

    # teams, tiers, people
    teams, team_idx = np.unique(owners, return_inverse=True) if n_ent else (np.array([], dtype=str), np.array([], dtype=np.int64))
    teams_l = [str(t) for t in teams]
    tier_of = np.array([_team_draw(seed, t, ["elite", "high", "high", "medium", "medium", "medium", "low"]) for t in teams_l], dtype="<U6")
    for team, tier in ((planted.regressing_team, "high"), (planted.elite_team, "elite"), (planted.low_team, "low")):
        if team in teams_l:
            tier_of[teams_l.index(team)] = tier
    team_hour = np.array([_team_draw(seed + 1, t, [-1.0, 0.0, 1.0, 5.0, 8.0]) for t in teams_l], dtype=float)  # team zones vs UTC
    entity_count = np.bincount(team_idx, minlength=len(teams_l)) if n_ent else np.zeros(0, dtype=np.int64)
    fallback = np.array([_team_draw(seed + 2, t, list(range(3, 15))) for t in teams_l], dtype=np.int64)
    flat_people, p_off, p_cnt = _people(teams_l, org, fallback, key)
    regressing = teams_l.index(planted.regressing_team) if planted.regressing_team in teams_l else -1
    reorg_s = planted.reorg_at.timestamp()

    def prof(field_name: str, after_reorg: np.ndarray | None = None, tidx: np.ndarray | None = None) -> np.ndarray:
        per_team = np.array([getattr(PROFILES[t], field_name) for t in tier_of], dtype=float)
        values = per_team[tidx if tidx is not None else team_idx]
        if after_reorg is not None and regressing >= 0:
            values = np.where(after_reorg & ((tidx if tidx is not None else team_idx) == regressing),
                              getattr(REGRESSED, field_name), values)
        return values

    act = activity * np.exp(rng.normal(-0.5, 1.0, n_ent))  # skewed: mean ~1 x activity
    elite = teams_l.index(planted.elite_team) if planted.elite_team in teams_l else -1
    act = np.where(team_idx == elite, np.maximum(act, activity), act)  # the planted elite team: every repository busy

    # ---- pull requests --------------------------------------------------------------------
    weeks = days / 7.0
    pr_n = rng.poisson(prof("prs_per_week") * act * weeks) if n_ent else np.zeros(0, dtype=np.int64)
    pe = np.repeat(np.arange(n_ent), pr_n)
    n_pr = len(pe)
    pt = team_idx[pe]
    created = _working_times(rng, start_s - 10 * DAY, days + 10, n_pr, team_hour[pt])
    after = created >= reorg_s
    cycle = _lognormal(rng, prof("cycle_hours", after, pt), 0.9, n_pr) * HOUR
    ttfr = np.minimum(_lognormal(rng, prof("first_review_hours", after, pt), 0.9, n_pr) * HOUR, cycle * 0.8)
    fate = rng.random(n_pr)
    unreviewed = rng.random(n_pr) < prof("unreviewed", after, pt)
    stale = fate < 0.03  # left open
    closed_unmerged = (fate >= 0.03) & (fate < 0.10)
    merged_at = created + cycle
    is_merged = ~stale & ~closed_unmerged & (merged_at <= end_s)
    first_review = np.where(unreviewed, np.nan, created + ttfr)
    approve_gap = (cycle - ttfr) * rng.uniform(0.3, 0.9, n_pr)
    approved = np.where(unreviewed, np.nan, created + ttfr + approve_gap)
    closed_at = np.where(is_merged, merged_at, np.where(closed_unmerged, created + cycle * rng.uniform(0.5, 3, n_pr), np.nan))
    closed_at = np.where(closed_at > end_s, np.nan, closed_at)
    is_merged_final = is_merged
    merged_col = np.where(is_merged_final, merged_at, np.nan)
    # whatever lies after `end` has not happened yet
    first_review = np.where(first_review > end_s, np.nan, first_review)
    approved = np.where((approved > end_s) | closed_unmerged, np.nan, approved)
    first_commit = created - _lognormal(rng, 6.0, 1.2, n_pr) * HOUR
    first_commit = np.where(source[pe] == "gitlab", np.nan, first_commit)
    additions = np.minimum(rng.lognormal(3.8, 1.4, n_pr), 20000).astype(np.int64) + 1
    deletions = (additions * rng.beta(1.2, 3.0, n_pr)).astype(np.int64)
    changed = 1 + (additions / rng.uniform(15, 80, n_pr)).astype(np.int64)
    draft = ~is_merged_final & np.isnan(closed_at) & (rng.random(n_pr) < 0.2)
    # drop what lies entirely before the window (created in the warm-up and closed before start)
    keep = created >= start_s - 10 * DAY
    order = np.lexsort((created, pe))
    pe, pt, created, first_commit, first_review, approved, merged_col, closed_at = (
        a[order] for a in (pe, pt, created, first_commit, first_review, approved, merged_col, closed_at))
    additions, deletions, changed, draft, keep = (a[order] for a in (additions, deletions, changed, draft, keep))
    starts = np.r_[0, np.cumsum(pr_n)[:-1]] if n_ent else np.zeros(0, dtype=np.int64)
    number = np.arange(n_pr) - np.repeat(starts, pr_n) + 1 + (hashed[pe] % np.uint64(500)).astype(np.int64)
    merge_sha = _hex(rng, n_pr, 40).where(~np.isnan(merged_col))
    authors_i = p_off[pt] + (rng.random(n_pr) * p_cnt[pt]).astype(np.int64)
    sel = np.flatnonzero(keep & (created <= end_s))
    prs = pd.DataFrame({
        "entity_ref": _take(refs, pe[sel]), "source": _take(source, pe[sel]), "repository": _take(repo, pe[sel]), "number": number[sel],
        "url": _take(np.char.add(repo_url.astype(str), pull_path.astype(str)), pe[sel], text=True) + pd.Series(number[sel]).astype("str"),
        "author": _take(flat_people, authors_i[sel]),
        "created_at": _utc(created[sel]), "first_commit_at": _utc(first_commit[sel]), "first_review_at": _utc(first_review[sel]),
        "approved_at": _utc(approved[sel]), "merged_at": _utc(merged_col[sel]), "closed_at": _utc(closed_at[sel]),
        "additions": additions[sel], "deletions": deletions[sel], "changed_files": changed[sel],
        "merge_commit_sha": merge_sha.iloc[sel].reset_index(drop=True), "draft": draft[sel],
    })

    # ---- reviews -----------------------------------------------------------------------------
    reviewed = ~np.isnan(first_review) & keep & (created <= end_s)
    ri = np.flatnonzero(reviewed)
    extra = rng.poisson(0.6, len(ri))
    rows_first = ri
    rows_approve = ri[~np.isnan(approved[ri])]
    rows_extra = np.repeat(ri, extra)
    idx = np.concatenate([rows_first, rows_approve, rows_extra])
    kind = np.concatenate([np.zeros(len(rows_first), np.int8), np.ones(len(rows_approve), np.int8), np.full(len(rows_extra), 2, np.int8)])
    lo = first_review[idx]
    hi = np.where(np.isnan(merged_col[idx]), np.minimum(end_s, lo + 3 * DAY), merged_col[idx])
    when = np.where(kind == 0, first_review[idx], np.where(kind == 1, approved[idx], lo + (hi - lo) * rng.random(len(idx))))
    state = np.where(kind == 1, "APPROVED", np.where(rng.random(len(idx)) < 0.3, "CHANGES_REQUESTED", "COMMENTED"))
    t_idx = pt[idx]
    size = p_cnt[t_idx]
    author_local = authors_i[idx] - p_off[t_idx]
    shift = 1 + (rng.random(len(idx)) * np.maximum(size - 1, 1)).astype(np.int64)
    reviewer_local = np.where(size > 1, (author_local + shift) % np.maximum(size, 1), author_local)
    o = np.lexsort((when, number[idx], pe[idx]))  # by repository, PR and time
    idx, when, state, who = idx[o], when[o], state[o], (p_off[t_idx] + reviewer_local)[o]
    reviews = pd.DataFrame({
        "entity_ref": _take(refs, pe[idx]), "source": _take(source, pe[idx]), "repository": _take(repo, pe[idx]), "number": number[idx],
        "reviewer": _take(flat_people, who), "submitted_at": _utc(when), "state": _take(state, np.arange(len(state))),
    })

    # ---- deployments ----------------------------------------------------------------------
    tier_e = tier_of[team_idx] if n_ent else np.array([], dtype=str)
    merged_mask = ~np.isnan(merged_col)
    # continuous delivery: elite teams deploy (almost) every merge
    cd = merged_mask & (tier_e[pe] == "elite") & (rng.random(n_pr) < 0.92)
    d_cd_e = pe[cd]
    d_cd_t = merged_col[cd] + rng.uniform(5, 45, int(cd.sum())) * 60
    # rate-driven deploys of the default branch head
    rate = prof("deploys_per_week") * act
    rate_after = np.where(team_idx == regressing, REGRESSED.deploys_per_week * act, rate) if n_ent else rate
    frac_after = np.clip((end_s - reorg_s) / (days * DAY), 0, 1)
    d_n = rng.poisson(rate * weeks * (1 - frac_after) + rate_after * weeks * frac_after) if n_ent else np.zeros(0, np.int64)
    d_rate_e = np.repeat(np.arange(n_ent), d_n)
    d_rate_t = _working_times(rng, start_s, days, len(d_rate_e), team_hour[team_idx[d_rate_e]])
    # regressing team: keep the pre-reorg share of its rate-driven deploys before the reorg
    # release trains: low teams deploy on train days (every `train_days`, a Tuesday afternoon)
    train = np.array([PROFILES[t].train_days for t in tier_of], dtype=float)[team_idx] if n_ent else np.zeros(0)
    n_trains = np.where(train > 0, np.ceil(days / np.maximum(train, 1)), 0).astype(np.int64)
    d_tr_e = np.repeat(np.arange(n_ent), n_trains)
    k = np.arange(len(d_tr_e)) - np.repeat(np.r_[0, np.cumsum(n_trains)[:-1]] if n_ent else np.zeros(0, np.int64), n_trains)
    first_tuesday = np.floor(start_s / DAY) + ((1 - (np.floor(start_s / DAY) + 3) % 7) % 7)
    d_tr_t = (first_tuesday + k * train[d_tr_e]) * DAY + (14.0 - team_hour[team_idx[d_tr_e]]) * HOUR + rng.uniform(0, 2, len(d_tr_e)) * HOUR
    de = np.concatenate([d_cd_e, d_rate_e, d_tr_e]).astype(np.int64)
    dt = np.concatenate([d_cd_t, d_rate_t, d_tr_t])
    rides = np.concatenate([np.ones(len(d_cd_e) + len(d_rate_e), bool), rng.random(len(d_tr_e)) < 0.5])  # half the trains carry nothing of a repository
    keep_d = (dt >= start_s) & (dt <= end_s) & rides
    de, dt = de[keep_d], dt[keep_d]
    # bursts: a fifth of deploys follow the one before within two hours (a fix-forward, a retry)
    if len(de):
        burst = rng.random(len(de)) < 0.2
        o = np.lexsort((dt, de))
        de, dt, burst = de[o], dt[o], burst[o]
        prev_same = np.r_[False, de[1:] == de[:-1]]
        dt = np.where(burst & prev_same, np.r_[dt[:1], dt[:-1]] + rng.uniform(10, 120, len(dt)) * 60, dt)
        dt = np.minimum(dt, end_s)
    n_dep = len(de)
    # the deployed commit: the newest merge on the repository before the deployment
    pr_key_e = pe[merged_mask]
    pr_key_t = merged_col[merged_mask]
    pr_sha = merge_sha[merged_mask]
    o = np.lexsort((pr_key_t, pr_key_e))
    pr_key_e, pr_key_t, pr_sha = pr_key_e[o], pr_key_t[o], pr_sha.iloc[o].reset_index(drop=True)
    big = float(2 ** 34)
    pos = np.searchsorted(pr_key_e * big + pr_key_t, de * big + dt, side="right") - 1
    linked = (pos >= 0) & (pr_key_e[np.clip(pos, 0, max(len(pr_key_e) - 1, 0))] == de) if len(pr_key_e) else np.zeros(n_dep, bool)
    unlinked_roll = rng.random(n_dep) < 0.05  # config and hotfix deploys that ship no PR
    fresh_sha = _hex(rng, n_dep, 40)
    use_pr = linked & ~unlinked_roll
    if len(pr_sha):
        taken = pd.Series(pr_sha.to_numpy()[np.clip(pos, 0, len(pr_sha) - 1)]).astype("str")
        sha = taken.where(use_pr, fresh_sha).to_numpy()
    else:
        sha = fresh_sha.to_numpy()
    status = np.where(rng.random(n_dep) < 0.04, np.where(rng.random(n_dep) < 0.7, "failure", "error"), "success")
    d_team = team_idx[de] if n_dep else np.zeros(0, np.int64)
    cfr = prof("change_failure", dt >= reorg_s, d_team) if n_dep else np.zeros(0)
    bad = (status == "success") & (rng.random(n_dep) < cfr)
    by_rollback = bad & (rng.random(n_dep) < 0.4)
    by_incident = bad & ~by_rollback
    # rollback deployments: the commit deployed before, shortly after the bad one
    prev_sha = np.r_[None, sha[:-1]] if n_dep else sha
    same_prev = np.r_[False, de[1:] == de[:-1]] if n_dep else np.zeros(0, bool)
    rb = np.flatnonzero(by_rollback & same_prev)
    rb_t = np.minimum(dt[rb] + rng.uniform(10, 240, len(rb)) * 60, end_s)
    all_e = np.concatenate([de, de[rb]])
    all_t = np.concatenate([dt, rb_t])
    all_sha = np.concatenate([sha, prev_sha[rb]])
    all_status = np.concatenate([status, np.full(len(rb), "success")])
    all_rb = np.concatenate([np.zeros(n_dep, bool), np.ones(len(rb), bool)])
    duration = rng.uniform(2, 25, len(all_e)) * 60
    finished = all_t + duration
    finished = np.where(finished > end_s, np.nan, finished)
    prod = np.ones(len(all_e), bool)
    # staging deployments of the same commit before a third of the production ones
    st = np.flatnonzero(rng.random(len(all_e)) < 0.35)
    st_t = all_t[st] - rng.uniform(20, 90, len(st)) * 60
    de_all = np.concatenate([all_e, all_e[st]])
    deploy_frame = pd.DataFrame({
        "entity_ref": _take(refs, de_all), "source": _take(source, de_all), "repository": _take(repo, de_all),
        "deployment_id": _numbered(f"d{chunk}-", len(de_all)),
        "environment": pd.Categorical.from_codes(np.r_[np.zeros(len(all_e), np.int8), np.ones(len(st), np.int8)],
                                                 categories=["production", "staging"]),
        "is_production": np.concatenate([prod, np.zeros(len(st), bool)]),
        "status": pd.Categorical(np.concatenate([all_status, np.full(len(st), "success")])),
        "commit_sha": pd.Series(np.concatenate([all_sha, all_sha[st]]), dtype="str"),
        "created_at": _utc(np.concatenate([all_t, st_t])),
        "finished_at": _utc(np.concatenate([finished, st_t + 300])),
        "is_rollback": np.concatenate([all_rb, np.zeros(len(st), bool)]),
    })
    deploy_frame = deploy_frame.sort_values("created_at", kind="stable").reset_index(drop=True)

    # ---- incidents -----------------------------------------------------------------------------
    inc_caused = np.flatnonzero(by_incident)
    inc_e1 = de[inc_caused]
    inc_t1 = dt[inc_caused] + rng.uniform(5, 600, len(inc_caused)) * 60
    bg_n = rng.poisson(0.02 * weeks * np.clip(act, 0, 3)) if n_ent else np.zeros(0, np.int64)
    inc_e2 = np.repeat(np.arange(n_ent), bg_n)
    inc_t2 = start_s + rng.random(len(inc_e2)) * days * DAY
    inc_e = np.concatenate([inc_e1, inc_e2]).astype(np.int64)
    inc_t = np.concatenate([inc_t1, inc_t2])
    n_inc = len(inc_e)
    orphan = rng.random(n_inc) < 0.03  # a PagerDuty service no catalog entity carries
    restore = _lognormal(rng, prof("restore_hours", inc_t >= reorg_s, team_idx[inc_e]) if n_inc else 1.0, 1.0, n_inc) * HOUR
    resolved = inc_t + restore
    resolved = np.where(resolved > end_s, np.nan, resolved)
    urgency = np.where(rng.random(n_inc) < 0.8, "high", "low")
    incidents = pd.DataFrame({
        "entity_ref": pd.array(np.where(orphan, None, refs[inc_e] if n_inc else np.array([], dtype=object)), dtype="str"),
        "source": "pagerduty",
        "incident_id": _numbered(f"Q{chunk}-", n_inc),
        "service_id": np.where(orphan, ("PX" + pd.Series(rng.integers(0, 10**5, n_inc)).astype(str).str.zfill(5)).to_numpy(dtype=object),
                               service[inc_e] if n_inc else np.array([], dtype=str)),
        "urgency": urgency, "started_at": _utc(inc_t), "resolved_at": _utc(resolved),
    })
    incidents = incidents[inc_t <= end_s].sort_values("started_at", kind="stable").reset_index(drop=True)

    frames = {PULL_REQUESTS: prs, REVIEWS: reviews, DEPLOYMENTS: deploy_frame, INCIDENTS: incidents}
    # ---- pipeline runs: CI on each PR's branch, the deploy workflow on main ------------------
    if pipeline_runs:
        pr_rows = np.flatnonzero(keep & (created <= end_s))
        d_rows = np.flatnonzero(deploy_frame["is_production"].to_numpy())
        n_runs = len(pr_rows) + len(d_rows)
        d_ent = pd.Index(refs).get_indexer(deploy_frame["entity_ref"].to_numpy()[d_rows]) if len(d_rows) else np.zeros(0, np.int64)
        run_e = np.concatenate([pe[pr_rows], d_ent]).astype(np.int64)
        run_t = np.concatenate([created[pr_rows] + 120, pd.DatetimeIndex(deploy_frame["created_at"]).as_unit("ns").asi8[d_rows] / 1e9 - 600])
        conclusion = np.where(rng.random(n_runs) < 0.9, "success", np.where(rng.random(n_runs) < 0.8, "failure", "cancelled"))
        fin = run_t + rng.uniform(60, 1500, n_runs)
        frames[PIPELINE_RUNS] = pd.DataFrame({
            "entity_ref": _take(refs, run_e), "source": _take(source, run_e), "repository": _take(repo, run_e),
            "run_id": _numbered(f"r{chunk}-", n_runs),
            "workflow": np.concatenate([np.full(len(pr_rows), "CI"), np.full(len(d_rows), "Deploy")]),
            "branch": pd.concat([("feature/" + pd.Series(number[pr_rows]).astype("str")), pd.Series(["main"] * len(d_rows), dtype="str")],
                                ignore_index=True),
            "conclusion": conclusion, "started_at": _utc(run_t), "finished_at": _utc(np.where(fin > end_s, np.nan, fin)),
        })
    else:
        none = _utc(np.zeros(0))
        frames[PIPELINE_RUNS] = pd.DataFrame({c: none if c.endswith("_at") else pd.Series([], dtype="str") for c in COLUMNS[PIPELINE_RUNS]})
    return {kind_: frames[kind_][list(COLUMNS[kind_])] for kind_ in COLUMNS}


def known_at(events: dict[str, pd.DataFrame], at: datetime) -> dict[str, pd.DataFrame]:
    """The frames as a collector would have seen them at `at`: events that started later are
    dropped, and times after `at` (a merge, a resolution still to come) are missing."""
    from catalog_pipelines.model.delivery_events import TIME_COLUMNS

    cut = pd.Timestamp(at)
    out = {}
    for kind_, frame in events.items():
        main, *rest = TIME_COLUMNS[kind_]
        f = frame[frame[main] <= cut].copy()
        for column in rest:
            f[column] = f[column].where(f[column] <= cut)
        if kind_ == PULL_REQUESTS:
            f["merge_commit_sha"] = f["merge_commit_sha"].where(f["merged_at"].notna())
        out[kind_] = f
    return out


__all__ = ["known_at", "PROFILES", "Planted", "TIERS", "planted_teams", "synthetic_delivery_events"]
