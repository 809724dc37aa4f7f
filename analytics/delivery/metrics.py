"""DORA's four keys and pull-request flow, from the delivery event frames. Pure: frames in, frames out.

Two steps, so that a new day recomputes only what it must (docs/delivery.md, "Incremental"):

1. `daily_facts(events, config, since=)`: event frames -> day-grain fact rows, each keyed by the
   local day (`config.timezone`) it belongs to:
   - `deploy_days` (entity_ref, day): `deployments` (successful production deployments, rollbacks
     included: a rollback is a deployment), `changes_deployed` (the same without rollbacks: the
     change failure rate's denominator), `failed` (of those, the ones that failed, see below),
     `unlinked` (of those, the ones whose commit is no pull request's merge commit: counted and
     shown, excluded from lead time);
   - `changes` (one row per pull request delivered to production, keyed by the deployment's day):
     `lead_time_h`, `start` (`first_commit` or `pr_created`);
   - `incidents` (one row per incident, keyed by its start day): `restore_h` (NaN while
     unresolved: excluded from time to restore and counted), `entity_ref` null when the incident's
     service maps to no entity (counted at organisation level only);
   - `prs` (one row per merged pull request, keyed by its merge day): cycle time and its parts,
     size, whether it was reviewed;
   - `reviews` (one row per review, keyed by its day): reviewer (pseudonymised), entity.
   Only rows of days >= `since` are returned; the events given must reach back far enough for the
   links (a deployment's changes may have merged weeks before; see `link_lookback_days`).
2. `delivery_metrics(facts, entities, org, config, as_of=, open_prs=)`: the published tables,
   recomposed from the day-grain rows of the windows only.

Definitions (DORA, https://dora.dev/guides/dora-metrics-four-keys/):

- **Deployment frequency**: successful (`status == "success"`) production (`is_production`)
  deployments. Per ISO week (weeks with none count as zero, not missing) and per rolling window
  as deployments per week per *deploying entity* (an entity with a production deployment in the
  last `active_days`): a team of ten services deploying weekly each deploys "weekly", not "daily".
  For one entity it is its own deployments per week. Always a number (zero is a fact).
- **Lead time for changes**: from the pull request's *first commit* (its creation when the source
  gives no commit time, e.g. GitLab; the `start` column says which) to the end (`finished_at`, else
  `created_at`) of the first successful production deployment of the same repository whose
  commit is the PR's merge commit *or a later one* (a commit is looked up among the merge commits
  of the deployment's own repository only). "Later" is judged by merge time: a
  deployment of the merge commit of a PR merged at t ships every PR of that repository merged at
  or before t and not yet shipped (the default branch is linear in merge order; we do not read the
  commit graph). Why first commit: it is DORA's definition ("code committed to code successfully
  running in production") and counts the time before the PR was opened, which PR-creation start
  would hide; the PR-creation fallback is flagged. A rollback ships no new change and is skipped
  for linking. Deployments whose commit matches no PR's merge commit (direct pushes, config
  deploys) are *unlinked*: counted, shown and excluded.
- **Change failure rate**: of the production deployments that ship a change (rollbacks excluded),
  the share followed within `failure_window_hours` by an incident on the same entity or by a
  rollback deployment of the same entity. Each incident or rollback is blamed on the *latest*
  production deployment of its entity before it (the change most likely at fault), and a
  deployment counts as failed once however many followed it.
- **Time to restore service**: incident start -> resolve, for incidents that started in the window
  and are resolved; unresolved ones are excluded and counted (`excluded`).

Every window figure is also shown with its p75 and p90 (medians, never only means), its event
count, the previous window's value and a trend. Honest statistics: a median or rate on fewer than
`config.min_events` events is NaN with a `reason` ("not enough data: 3 changes < 5").
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.delivery.config import Band, DeliveryConfig

if TYPE_CHECKING:
    from analytics.org import OrgGraph

HOUR_NS = 3_600 * 10**9
QS = (0.5, 0.75, 0.9)
METRICS = ("deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore")
UNITS = {"deployment_frequency": "per week", "lead_time": "hours", "change_failure_rate": "share", "time_to_restore": "hours"}
LOWER_IS_BETTER = {"deployment_frequency": False, "lead_time": True, "change_failure_rate": True, "time_to_restore": True}
PR_PARTS = ("cycle_time", "time_to_first_review", "review_to_approval", "approval_to_merge", "size")
SIZE_BUCKETS = (("XS", 10), ("S", 50), ("M", 250), ("L", 1000), ("XL", np.inf))
FACT_TABLES = ("deploy_days", "changes", "incidents", "prs", "reviews")
ORG = "org"


# ---------------------------------------------------------------------------------------------
# helpers

def _ns(times: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch (float, NaN for NaT)."""
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    values = idx.as_unit("ns").asi8.astype(float)
    values[idx.isna()] = np.nan
    return values


def local_day(times: pd.Series, timezone: str) -> pd.Series:
    """The calendar day (naive midnight) of each time in `timezone`; DST changes are the zone's."""
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    if timezone != "UTC":
        idx = idx.tz_convert(timezone)
    return pd.Series(idx.tz_localize(None).floor("D").as_unit("ns"), index=times.index)


def iso_week(days: pd.Series) -> pd.Series:
    """The Monday of each day's ISO week."""
    d = pd.DatetimeIndex(days)
    return pd.Series(d - pd.to_timedelta(d.weekday, unit="D"), index=days.index)


def band_of(value: float, band: Band, lower_is_better: bool, inclusive: bool = False) -> str | None:
    """elite / high / medium / low for one value; None for NaN (see `_bands`)."""
    return _bands(np.array([value], dtype=float), band, lower_is_better, inclusive)[0]


def _bands(values: np.ndarray, band: Band, lower_is_better: bool, inclusive: bool = False) -> np.ndarray:
    """Bands of many values: higher-is-better metrics need at least the limit; lower-is-better ones
    less than it (`inclusive`: at most it, as the change failure rate's "5%")."""
    limits = np.array([band.elite, band.high, band.medium])
    out = np.full(len(values), None, dtype=object)
    v = np.asarray(values, dtype=float)
    known = ~np.isnan(v)
    if lower_is_better:
        level = np.where(v <= limits[0] if inclusive else v < limits[0], 0,
                         np.where(v <= limits[1] if inclusive else v < limits[1], 1,
                                  np.where(v <= limits[2] if inclusive else v < limits[2], 2, 3)))
    else:
        level = np.where(v >= limits[0], 0, np.where(v >= limits[1], 1, np.where(v >= limits[2], 2, 3)))
    names = np.array(["elite", "high", "medium", "low"], dtype=object)
    out[known] = names[level[known]]
    return out


# ---------------------------------------------------------------------------------------------
# step 1: day-grain facts

def _cat(values: pd.Series) -> pd.Categorical:
    """The column as a categorical (itself when it is one: the generator's and a big read's
    text columns are, so no per-row string is made)."""
    return values.array if isinstance(values.dtype, pd.CategoricalDtype) else pd.Categorical(values)


def _index_of(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each value in `index` (-1: missing or null), mapping distinct values only."""
    cat = _cat(values)
    mapped = index.get_indexer(pd.Index(cat.categories).astype(str))
    codes = np.asarray(cat.codes)
    return np.where(codes >= 0, mapped[np.maximum(codes, 0)] if len(mapped) else -1, -1)


PRODUCTION_COLUMNS = ("entity_ref", "source", "repository", "commit_sha", "created_at", "finished_at", "is_rollback")


def _production(deployments: pd.DataFrame) -> pd.DataFrame:
    """Successful production deployments, with only the columns the metrics read (no copy of the rest)."""
    d = deployments
    status = _cat(d["status"])
    ok = np.asarray(pd.Index(status.categories).astype(str).str.lower() == "success")
    codes = np.asarray(status.codes)
    mask = d["is_production"].fillna(False).astype(bool).to_numpy() & (codes >= 0) & ok[np.maximum(codes, 0)]
    return d.loc[mask, list(PRODUCTION_COLUMNS)]


def _link_changes(prod: pd.DataFrame, prs: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """(linked flag per production deployment, one row per delivered PR: deployment row, PR row)."""
    n = len(prod)
    empty = pd.DataFrame({"deploy": np.zeros(0, np.int64), "pr": np.zeros(0, np.int64)})
    merged = prs.loc[(prs["merged_at"].notna() & prs["merge_commit_sha"].notna()).to_numpy(), ["repository", "merged_at", "merge_commit_sha"]]
    if not n or not len(merged):
        return np.zeros(n, bool), empty
    repos = pd.Index(sorted(set(_cat(prod["repository"]).categories.astype(str)) | set(_cat(merged["repository"]).categories.astype(str))))
    m_repo = _index_of(merged["repository"], repos).astype(np.int64)
    m_time = _ns(merged["merged_at"])
    d_repo = _index_of(prod["repository"], repos).astype(np.int64)
    d_at = prod["finished_at"].where(prod["finished_at"].notna(), prod["created_at"])
    d_time = _ns(d_at)
    # the merge time of each deployed commit: the merge commit of a PR of the deployment's own
    # repository (one integer key per (repository, sha); the first PR read wins a repeated one)
    sha_codes, _ = pd.factorize(np.r_[merged["merge_commit_sha"].astype(str).to_numpy(dtype=object),
                                      prod["commit_sha"].astype(object).where(prod["commit_sha"].notna(), "").astype(str).to_numpy(dtype=object)])
    n_sha = int(sha_codes.max()) + 1 if len(sha_codes) else 1
    m_key = m_repo * n_sha + sha_codes[: len(merged)]
    d_key = np.where(d_repo >= 0, d_repo * n_sha + sha_codes[len(merged):], -1)
    first_key = ~pd.Index(m_key).duplicated()
    where = pd.Index(m_key[first_key]).get_indexer(d_key)
    shipped = np.where(where >= 0, m_time[first_key][np.maximum(where, 0)], np.nan)  # merge time of the deployed commit
    shipped[d_key < 0] = np.nan
    rollback = prod["is_rollback"].fillna(False).astype(bool).to_numpy()
    linked = ~np.isnan(shipped) & ~rollback
    li = np.flatnonzero(linked)
    if not len(li):
        return linked, empty
    # per repository, in deployment order: the newest merge time shipped so far (running max); a PR
    # merged at m is delivered by the first deployment whose running max reaches m
    o = li[np.lexsort((d_time[li], d_repo[li]))]
    rep, ship = d_repo[o], shipped[o]
    runmax = pd.Series(ship).groupby(rep).cummax().to_numpy()
    # keep the deployments that raise the running max: the others ship nothing new
    first_of_max = np.r_[True, (rep[1:] != rep[:-1]) | (runmax[1:] > runmax[:-1])]
    o, rep, runmax = o[first_of_max], rep[first_of_max], runmax[first_of_max]
    pos = _search_pairs(rep, runmax, m_repo, m_time)
    ok = pos < len(rep)
    ok[ok] &= rep[pos[ok]] == m_repo[ok]
    pr_rows = np.flatnonzero(ok)
    return linked, pd.DataFrame({"deploy": o[pos[ok]], "pr": merged.index.to_numpy()[pr_rows]})


def _search_pairs(a_major: np.ndarray, a_minor: np.ndarray, b_major: np.ndarray, b_minor: np.ndarray) -> np.ndarray:
    """For pairs `a` sorted by (major, minor): the position of the first `a` pair >= each `b` pair
    (len(a) when none). Exact: minors are replaced by their dense rank over both arrays, so one
    integer key orders the pairs."""
    ranks = pd.Series(np.r_[a_minor, b_minor]).rank(method="dense").to_numpy().astype(np.int64)
    width = int(ranks.max()) + 1
    ka = a_major.astype(np.int64) * width + ranks[: len(a_minor)]
    kb = b_major.astype(np.int64) * width + ranks[len(a_minor):]
    return np.searchsorted(ka, kb, side="left")


def _blame(prod: pd.DataFrame, prod_ns: np.ndarray, ent: np.ndarray, at_ns: np.ndarray, window_ns: float) -> np.ndarray:
    """Production deployment rows (positions in `prod`) blamed for events on entity codes `ent` at
    `at_ns`: the latest non-rollback production deployment of that entity before, within the window."""
    keep = ~prod["is_rollback"].fillna(False).astype(bool).to_numpy() & (prod["_ent"].to_numpy() >= 0)
    idx = np.flatnonzero(keep)
    if not len(idx) or not len(ent):
        return np.zeros(0, np.int64)
    e = prod["_ent"].to_numpy()[idx].astype(np.int64)
    t = prod_ns[idx]
    o = np.lexsort((t, e))
    e, t, idx = e[o], t[o], idx[o]
    width = 2**40  # entity codes < 2**22, times in whole seconds < 2**40
    ka = e * width + (t // 1e9).astype(np.int64)
    kb = ent.astype(np.int64) * width + (at_ns // 1e9).astype(np.int64)
    pos = np.searchsorted(ka, kb, side="left") - 1  # strictly before
    good = (pos >= 0) & (ent >= 0)
    pos_c = np.maximum(pos, 0)
    good &= (e[pos_c] == ent) & (at_ns - t[pos_c] <= window_ns) & (at_ns >= t[pos_c])
    return np.unique(idx[pos_c[good]])


def facts_span_days(config: DeliveryConfig) -> int:
    """Days of day-grain facts the published tables read: the current and previous windows, the
    weekly series (its first week may start six days earlier) and the deploying-entity window."""
    return max(2 * config.window_days, 7 * (config.weeks + 1), config.active_days) + 1


def daily_facts(events: Mapping[str, pd.DataFrame], config: DeliveryConfig, *, since: date | None = None,
                include_incidents: Collection[str] = ()) -> dict[str, pd.DataFrame]:
    """Day-grain fact rows (see the module docstring) of the days >= `since` (all when None).
    Incident rows are built for the incidents that started or were resolved from `since` on, and
    for those named in `include_incidents` (ids read again since the last run, whenever they
    started or were resolved: their row replaces the kept one, `merge_facts`).

    The events may reach further back than `since` (they must, for the links: the deployments and
    merged PRs of the link look-back decide which deployment first shipped a change); only the
    rows of days >= `since` are built, so a new day costs the look-back's linking (numpy sorts)
    plus the new days' rows, not the history's rows."""
    tz = config.timezone
    prs = events["pull_requests"].reset_index(drop=True)
    deployments = events["deployments"].reset_index(drop=True)
    incidents = events["incidents"].reset_index(drop=True)
    reviews = events["reviews"].reset_index(drop=True)
    window_ns = config.failure_window_hours * HOUR_NS
    # rows at or after this UTC moment may fall on a local day >= since (any zone is within 14 h)
    cut = pd.Timestamp(since) if since is not None else None
    early = (cut - pd.Timedelta(hours=15)).tz_localize("UTC") if cut is not None else None

    def recent(times: pd.Series) -> np.ndarray:
        return np.ones(len(times), bool) if early is None else (times >= early).to_numpy()

    # one set of entity categories for every fact table, so scopes map them once
    refs = np.concatenate([pd.Index(_cat(f["entity_ref"]).categories).astype(str).to_numpy(dtype=object)
                           for f in (prs, deployments, incidents, reviews)])
    ref_dtype = pd.CategoricalDtype(pd.Index(np.sort(pd.unique(refs)), dtype=object))

    # deployments: linked and blamed over everything given, rows built for the recent days
    prod = _production(deployments).reset_index(drop=True)
    entities = ref_dtype.categories
    prod = prod.assign(_ent=_index_of(prod["entity_ref"], entities))
    prod_ns = _ns(prod["created_at"])
    linked, delivered = _link_changes(prod, prs)
    rollback = prod["is_rollback"].fillna(False).astype(bool).to_numpy()
    inc_ent = _index_of(incidents["entity_ref"], entities)
    failed = np.zeros(len(prod), bool)
    failed[_blame(prod, prod_ns, inc_ent, _ns(incidents["started_at"]), window_ns)] = True
    rb = np.flatnonzero(rollback)
    failed[_blame(prod, prod_ns, prod["_ent"].to_numpy()[rb], prod_ns[rb], window_ns)] = True
    keep = np.flatnonzero(recent(prod["created_at"]))
    day_all = np.full(len(prod), np.datetime64("NaT"), dtype="datetime64[ns]")
    day_all[keep] = local_day(prod["created_at"].iloc[keep], tz).to_numpy()
    per = pd.DataFrame({"entity_ref": pd.Categorical.from_codes(prod["_ent"].to_numpy()[keep], dtype=ref_dtype), "day": day_all[keep],
                        "deployments": 1, "changes_deployed": (~rollback[keep]).astype(np.int64),
                        "failed": (failed & ~rollback)[keep].astype(np.int64), "unlinked": (~linked & ~rollback)[keep].astype(np.int64)})
    deploy_days = per.groupby(["entity_ref", "day"], as_index=False, sort=True, observed=True)[
        ["deployments", "changes_deployed", "failed", "unlinked"]].sum()

    # changes (keyed by the day of the deployment that shipped them)
    delivered = delivered[~np.isnat(day_all[delivered["deploy"].to_numpy()])]
    dp = delivered["deploy"].to_numpy()
    pr_rows = prs.loc[delivered["pr"].to_numpy()]
    at = prod["finished_at"].iloc[dp].where(prod["finished_at"].iloc[dp].notna(), prod["created_at"].iloc[dp])
    start = pr_rows["first_commit_at"].where(pr_rows["first_commit_at"].notna(), pr_rows["created_at"])
    changes = pd.DataFrame({"entity_ref": pd.Categorical.from_codes(prod["_ent"].to_numpy()[dp], dtype=ref_dtype), "day": day_all[dp],
                            "lead_time_h": (_ns(at) - _ns(start)) / HOUR_NS,
                            "start": pd.Categorical.from_codes(pr_rows["first_commit_at"].isna().to_numpy().astype(np.int8),
                                                               categories=["first_commit", "pr_created"]),
                            "repository": _cat(pr_rows["repository"]), "number": pr_rows["number"].to_numpy()})

    # incidents (keyed by their start day; an old one resolved recently is recomputed too)
    wanted = recent(incidents["started_at"]) | recent(incidents["resolved_at"].fillna(incidents["started_at"]))
    if len(include_incidents):
        wanted |= incidents["incident_id"].astype(str).isin(list(include_incidents)).to_numpy()
    irows = np.flatnonzero(wanted)
    i = incidents.iloc[irows]
    inc = pd.DataFrame({"incident_id": i["incident_id"].astype(str).to_numpy(),
                        "entity_ref": pd.Categorical.from_codes(inc_ent[irows], dtype=ref_dtype),
                        "service_id": i["service_id"].to_numpy(), "day": local_day(i["started_at"], tz).to_numpy(),
                        "restore_h": (_ns(i["resolved_at"]) - _ns(i["started_at"])) / HOUR_NS})

    # pull requests (merged ones, keyed by merge day; open PRs are a snapshot, see open_pull_requests)
    m = prs[prs["merged_at"].notna().to_numpy() & recent(prs["merged_at"].fillna(prs["created_at"]))]
    created, merged_ns = _ns(m["created_at"]), _ns(m["merged_at"])
    review, approved = _ns(m["first_review_at"]), _ns(m["approved_at"])
    pr_facts = pd.DataFrame({
        "entity_ref": pd.Categorical.from_codes(_index_of(m["entity_ref"], entities), dtype=ref_dtype),
        "day": local_day(m["merged_at"], tz).to_numpy(),
        "cycle_time": (merged_ns - created) / HOUR_NS, "time_to_first_review": (review - created) / HOUR_NS,
        "review_to_approval": (approved - review) / HOUR_NS, "approval_to_merge": (merged_ns - approved) / HOUR_NS,
        "size": (m["additions"].fillna(0) + m["deletions"].fillna(0)).to_numpy(dtype=float),
        "reviewed": ~np.isnan(review),
    })
    r = reviews[recent(reviews["submitted_at"])]
    rv = pd.DataFrame({"entity_ref": pd.Categorical.from_codes(_index_of(r["entity_ref"], entities), dtype=ref_dtype),
                       "reviewer": _cat(r["reviewer"]),
                       "day": local_day(r["submitted_at"], tz).to_numpy(), "pr": pr_key(r["repository"], r["number"])})
    facts = {"deploy_days": deploy_days, "changes": changes, "incidents": inc, "prs": pr_facts, "reviews": rv}
    if cut is not None:
        for name, frame in facts.items():
            if name != "incidents":
                facts[name] = frame[frame["day"] >= cut].reset_index(drop=True)
            else:
                facts[name] = frame.reset_index(drop=True)
    return facts


def prune_facts(facts: Mapping[str, pd.DataFrame], first_day: date) -> dict[str, pd.DataFrame]:
    """The facts without the days before `first_day` (what no window reads any more)."""
    cut = pd.Timestamp(first_day)
    return {name: frame[frame["day"] >= cut].reset_index(drop=True) for name, frame in facts.items()}


def pr_key(repository: pd.Series, number: pd.Series) -> np.ndarray:
    """A stable 64-bit key of a pull request (repository, number), the same in every run."""
    cat = _cat(repository)
    h = pd.util.hash_array(pd.Index(cat.categories).astype(str).to_numpy(dtype=object))[np.maximum(np.asarray(cat.codes), 0)]
    return h ^ (pd.to_numeric(number).fillna(0).to_numpy(np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def merge_facts(cached: Mapping[str, pd.DataFrame], fresh: Mapping[str, pd.DataFrame], since: date) -> dict[str, pd.DataFrame]:
    """The cached day-grain facts with the days >= `since` replaced by `fresh` (and incidents
    replaced by id, since an old incident's resolution arrives later)."""
    cut = pd.Timestamp(since)
    out = {}
    for name in FACT_TABLES:
        old, new = cached[name], fresh[name]
        if name == "incidents":
            old = old[~old["incident_id"].isin(new["incident_id"])]
        else:
            old = old[old["day"] < cut]
        out[name] = _concat([old, new])
    return out


def first_changed_day(fresh: Mapping[str, pd.DataFrame], since: date) -> date:
    """The first day whose facts `fresh` may change: `since`, or earlier when an incident that
    started before it was resolved since (its start week's time to restore changes)."""
    days = [pd.Timestamp(since)] + [pd.Timestamp(f["day"].min()) for f in fresh.values() if len(f) and pd.notna(f["day"].min())]
    return min(days).date()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate keeping categorical columns categorical (their categories united)."""
    from pandas.api.types import union_categoricals

    frames = [f.reset_index(drop=True) for f in frames]
    columns = list(frames[0].columns)
    categorical = [c for c in columns if all(isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames)]
    # the other columns concatenated by pandas; the categorical ones only by their union (pandas'
    # concat would first turn categoricals of different categories into objects, then be undone)
    out = pd.concat([f.drop(columns=categorical) for f in frames], ignore_index=True)
    for column in categorical:
        parts = [f[column].array for f in frames]
        if len({p.categories.dtype for p in parts}) > 1 or parts[0].categories.dtype == object:
            # (object categories, or mixed ones such as an empty frame's: united by one hash lookup
            # of the later parts' categories, the first part's codes kept as they are)
            out[column] = _union_categorical(parts)
        else:
            out[column] = union_categoricals(parts)
    return out[columns]


def _union_categorical(parts: list[pd.Categorical]) -> pd.Categorical:
    """`union_categoricals(parts)` for object categories, as a merge of a large kept frame with a
    few fresh rows needs it: the first part's codes are kept as they are (its categories first,
    each later part's new ones appended in order, as union_categoricals orders them) and only
    the later parts are recoded, through one hash lookup of their categories (pandas recodes
    every part: ~1 s of a 200k new day)."""
    categories = pd.Index(parts[0].categories, dtype=object)
    codes = [np.asarray(parts[0].codes, dtype=np.int64)]
    grown = parts[0].categories.dtype != object
    for part in parts[1:]:
        theirs = pd.Index(part.categories, dtype=object)
        where = categories.get_indexer(theirs)
        missing = where < 0
        if missing.any():
            where[missing] = len(categories) + np.arange(int(missing.sum()))
            categories = categories.append(theirs[missing])
            grown = True
        c = np.asarray(part.codes, dtype=np.int64)
        codes.append(np.where(c >= 0, where[np.maximum(c, 0)], -1) if len(where) else np.full(len(c), -1))
    if not grown:  # the first part's categories as they are (their dtype reused: not validated again)
        return pd.Categorical.from_codes(np.concatenate(codes), dtype=parts[0].dtype)
    return pd.Categorical.from_codes(np.concatenate(codes), categories=categories)


def open_pull_requests(prs: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Open pull requests at `as_of` (not merged, not closed): entity_ref, repository, number, url,
    draft, age_days."""
    now = pd.Timestamp(as_of)
    now = now.tz_localize("UTC") if now.tzinfo is None else now
    mask = prs["merged_at"].isna() & prs["closed_at"].isna() & (prs["created_at"] <= now)
    o = prs[mask]
    age = (now - o["created_at"]).dt.total_seconds() / 86400.0
    return pd.DataFrame({"entity_ref": o["entity_ref"].astype(object).to_numpy(), "repository": o["repository"].astype(object).to_numpy(),
                         "number": o["number"].to_numpy(), "url": o["url"].to_numpy(), "draft": o["draft"].fillna(False).to_numpy(),
                         "age_days": age.round(1).to_numpy()})


# ---------------------------------------------------------------------------------------------
# scopes: an entity, its owner team and the team's ancestors, the organisation

SCOPE_TYPES = ("entity", "team", "org")


class Scopes:
    """entity -> the scopes its figures count in (`entity`, each `team` up the hierarchy, `org`).

    Scopes are integer ids (entities first, then teams, then the organisation); the tables get
    their `scope_type` / `scope_ref` columns at the end, as categoricals (`columns`)."""

    def __init__(self, entities: pd.DataFrame, org: OrgGraph | None):
        ents = entities[["ref", "owner"]].drop_duplicates("ref")
        self.index = pd.Index(ents["ref"].astype(str))
        rollup = org.rollup_frame() if org is not None else pd.DataFrame({"group_ref": [], "rollup_ref": []})
        owner = ents["owner"].astype(object).where(ents["owner"].notna(), None)
        teams = pd.DataFrame({"e": np.arange(len(ents)), "group_ref": owner.to_numpy()}).dropna()
        up = teams.merge(rollup, on="group_ref", how="left")
        up["rollup_ref"] = up["rollup_ref"].where(up["rollup_ref"].notna(), up["group_ref"])
        team_refs = pd.Index(sorted(pd.unique(up["rollup_ref"].astype(str))))
        n_e, n_t = len(ents), len(team_refs)
        self.type_code = np.r_[np.zeros(n_e, np.int8), np.ones(n_t, np.int8), np.int8(2)]
        refs = np.r_[self.index.to_numpy(dtype=object), team_refs.to_numpy(dtype=object), np.array([ORG], dtype=object)]
        # sorted distinct refs and each id's code (hash-based: ~3x faster than np.unique's string sort)
        codes, uniques = pd.factorize(pd.Index(refs, dtype=object), sort=True)
        self.ref_categories, self.ref_code = np.asarray(uniques, dtype=object), codes
        self.n = n_e + n_t + 1
        self.org_id = n_e + n_t
        self.team_ids = np.arange(n_e, n_e + n_t)
        self.team_index = team_refs
        pairs_e = np.r_[np.arange(n_e), up["e"].to_numpy(np.int64), np.arange(n_e)]
        pairs_s = np.r_[np.arange(n_e), n_e + team_refs.get_indexer(up["rollup_ref"].astype(str)), np.full(n_e, self.org_id)]
        o = np.lexsort((pairs_s, pairs_e))
        self._e, self._s = pairs_e[o], pairs_s[o]
        self._indptr = np.r_[0, np.cumsum(np.bincount(self._e, minlength=n_e))]
        self._ref_dtype = pd.CategoricalDtype(pd.Index(self.ref_categories, dtype=object))
        self._type_dtype = pd.CategoricalDtype(list(SCOPE_TYPES))
        self._mapped: list[tuple[pd.Index, np.ndarray]] = []

    def to_parts(self) -> dict[str, pd.DataFrame]:
        """The scopes as frames (`from_parts` rebuilds them without the catalog): what a new day
        keeps, so an unchanged catalog is not read and rolled up again."""
        n_e = len(self.index)
        return {"scopes_ids": pd.DataFrame({"type_code": self.type_code, "ref_code": self.ref_code}),
                "scopes_refs": pd.DataFrame({"ref": np.asarray(self.ref_categories, dtype=object)}),
                "scopes_pairs": pd.DataFrame({"e": self._e, "s": self._s}),
                "scopes_size": pd.DataFrame({"entities": [n_e], "teams": [len(self.team_index)]})}

    @classmethod
    def from_parts(cls, parts: Mapping[str, pd.DataFrame]) -> Scopes | None:
        """The scopes `to_parts` gave (None when a part is missing or they do not fit together)."""
        try:
            ids, refs, pairs, size = (parts[k] for k in ("scopes_ids", "scopes_refs", "scopes_pairs", "scopes_size"))
            n_e, n_t = int(size["entities"].iloc[0]), int(size["teams"].iloc[0])
        except (KeyError, IndexError, ValueError):
            return None
        if len(ids) != n_e + n_t + 1:
            return None
        self = cls.__new__(cls)
        self.type_code = ids["type_code"].to_numpy(np.int8)
        self.ref_code = ids["ref_code"].to_numpy(np.int64)
        self.ref_categories = np.asarray(refs["ref"].astype(object), dtype=object)
        by_id = self.ref_categories[self.ref_code]
        self.index = pd.Index(by_id[:n_e], dtype=object)
        self.team_index = pd.Index(by_id[n_e:n_e + n_t], dtype=object)
        self.n, self.org_id, self.team_ids = n_e + n_t + 1, n_e + n_t, np.arange(n_e, n_e + n_t)
        self._e, self._s = pairs["e"].to_numpy(np.int64), pairs["s"].to_numpy(np.int64)
        self._indptr = np.r_[0, np.cumsum(np.bincount(self._e, minlength=n_e))]
        self._ref_dtype = pd.CategoricalDtype(pd.Index(self.ref_categories, dtype=object))
        self._type_dtype = pd.CategoricalDtype(list(SCOPE_TYPES))
        self._mapped = []
        return self

    def digest(self) -> str:
        """A fingerprint of which scopes every entity counts in (its ref, its team and the team's
        ancestors): equal for two catalogs whose entities roll up the same way (a new day reuses
        the older weeks of the weekly series only then)."""
        import hashlib

        hashes = pd.util.hash_array(np.asarray(self.ref_categories, dtype=object))
        with np.errstate(over="ignore"):  # (uint64 arithmetic wraps, as a hash should)
            pairs = ((hashes[self.ref_code[self._e]] * np.uint64(0x9E3779B97F4A7C15)) ^ hashes[self.ref_code[self._s]]) + self.type_code[self._s].astype(np.uint64)
        # sorted: the same catalog read in another row order gives the same digest
        return hashlib.sha256(np.sort(pairs).tobytes()).hexdigest()[:32]

    @property
    def names(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns(np.arange(self.n)))

    def columns(self, ids: np.ndarray) -> dict[str, pd.Categorical]:
        ids = np.asarray(ids, dtype=np.int64)
        return {"scope_type": pd.Categorical.from_codes(self.type_code[ids], dtype=self._type_dtype),
                "scope_ref": pd.Categorical.from_codes(self.ref_code[ids], dtype=self._ref_dtype)}

    def codes(self, entity_refs: pd.Series | np.ndarray) -> np.ndarray:
        """Entity codes (-1: unknown or null); categorical columns map their categories only."""
        values = entity_refs if isinstance(entity_refs, pd.Series) else pd.Series(entity_refs)
        if isinstance(values.dtype, pd.CategoricalDtype):
            cat = values.cat
            categories = cat.categories
            for known, mapped in self._mapped:  # fact tables share their categories: map them once
                if known is categories:
                    break
            else:
                mapped = self.index.get_indexer(categories.astype(str))
                self._mapped.append((categories, mapped))
            c = cat.codes.to_numpy()
            return np.where(c >= 0, mapped[np.maximum(c, 0)] if len(mapped) else -1, -1)
        return self.index.get_indexer(values.astype(object).where(values.notna(), "\x00").astype(str))

    def expand(self, entity_refs: pd.Series | np.ndarray, kinds: tuple[str, ...] = SCOPE_TYPES) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, scope ids): each row once per scope of its entity; unknown or null
        entities count for the organisation only."""
        codes = self.codes(entity_refs)
        known = codes >= 0
        kc = np.where(known, codes, 0)
        counts = np.where(known, self._indptr[kc + 1] - self._indptr[kc], 0)
        rows = np.repeat(np.arange(len(codes)), counts)
        offs = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        scope = self._s[np.repeat(self._indptr[kc], counts) + offs]
        unknown = np.flatnonzero(~known)
        rows = np.r_[rows, unknown]
        scope = np.r_[scope, np.full(len(unknown), self.org_id)]
        if tuple(kinds) != SCOPE_TYPES:
            keep = np.isin(self.type_code[scope], [SCOPE_TYPES.index(k) for k in kinds])
            rows, scope = rows[keep], scope[keep]
        return rows, scope


# ---------------------------------------------------------------------------------------------
# step 2: the published tables

def _window(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    day = frame["day"]
    return frame[(day >= start) & (day < end)]


def _reason(n: np.ndarray, need: int, what: str) -> np.ndarray:
    out = np.full(len(n), None, dtype=object)
    low = np.flatnonzero(np.asarray(n) < need)
    if len(low):  # one text per possible count (0 .. need - 1: a handful), then a take
        texts = np.array([f"not enough data: {c} {what} < {need}" for c in range(int(need))], dtype=object)
        out[low] = texts[np.asarray(n)[low].astype(np.int64)]
    return out


def _categorical(values: np.ndarray | list, categories: tuple[str, ...] | list[str]) -> pd.Categorical:
    return pd.Categorical(values, categories=list(categories))


def code_quantiles(codes: np.ndarray, values: np.ndarray, qs: tuple[float, ...] = QS) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Per distinct integer code (NaN values dropped): (codes, counts, [quantile arrays]), linear
    interpolation as numpy's default. One sort, no groupby: fast for many small groups."""
    ok = ~np.isnan(values)
    codes, values = np.asarray(codes)[ok], values[ok]
    if not len(values):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), [np.zeros(0) for _ in qs]
    order = np.lexsort((values, codes))
    c, v = codes[order], values[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    counts = np.diff(np.r_[starts, len(c)])
    out = []
    for q in qs:
        pos = starts + q * (counts - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts + counts - 1)
        out.append(v[lo] + (v[hi] - v[lo]) * (pos - lo))
    return c[starts], counts, out


def _dense(n: int, codes: np.ndarray, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    out = np.full(n, fill, dtype=float)
    out[codes] = values
    return out


def _window_dora(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig,
                 start: pd.Timestamp, end: pd.Timestamp, active: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """The four keys of every scope over [start, end): `{metric: {value, p75, p90, events,
    excluded, reason}}`, arrays indexed by scope id."""
    n = scopes.n
    weeks = (end - start).days / 7.0
    dd = _window(facts["deploy_days"], start, end)
    rows, sc = scopes.expand(dd["entity_ref"])
    sums = {c: np.bincount(sc, weights=dd[c].to_numpy(float)[rows], minlength=n) for c in
            ("deployments", "changes_deployed", "failed", "unlinked")}
    nan = np.full(n, np.nan)
    out: dict[str, dict[str, np.ndarray]] = {}
    out["deployment_frequency"] = {"value": sums["deployments"] / weeks / np.maximum(active, 1), "p75": nan, "p90": nan,
                                   "events": sums["deployments"], "excluded": np.zeros(n), "reason": np.full(n, None, dtype=object)}
    ch = _window(facts["changes"], start, end)
    rows, sc = scopes.expand(ch["entity_ref"])
    u, cnt, (p50, p75, p90) = code_quantiles(sc, ch["lead_time_h"].to_numpy(float)[rows])
    events = _dense(n, u, cnt, 0.0)
    out["lead_time"] = {"value": _dense(n, u, p50), "p75": _dense(n, u, p75), "p90": _dense(n, u, p90), "events": events,
                        "excluded": sums["unlinked"], "reason": _reason(events, config.min_events.lead_time, "changes")}
    denom = sums["changes_deployed"]
    out["change_failure_rate"] = {"value": np.divide(sums["failed"], denom, out=np.full(n, np.nan), where=denom > 0), "p75": nan,
                                  "p90": nan, "events": denom, "excluded": np.zeros(n),
                                  "reason": _reason(denom, config.min_events.change_failure_rate, "deployments")}
    inc = _window(facts["incidents"], start, end)
    rows, sc = scopes.expand(inc["entity_ref"])
    restore = inc["restore_h"].to_numpy(float)[rows]
    unresolved = np.bincount(sc, weights=np.isnan(restore).astype(float), minlength=n)
    u, cnt, (p50, p75, p90) = code_quantiles(sc, restore)
    events = _dense(n, u, cnt, 0.0)
    out["time_to_restore"] = {"value": _dense(n, u, p50), "p75": _dense(n, u, p75), "p90": _dense(n, u, p90), "events": events,
                              "excluded": unresolved, "reason": _reason(events, config.min_events.time_to_restore, "resolved incidents")}
    for figures in out.values():
        hide = pd.notna(figures["reason"])
        for column in ("value", "p75", "p90"):
            figures[column] = np.where(hide, np.nan, figures[column])
    return out


def _active(facts: Mapping[str, pd.DataFrame], scopes: Scopes, end: pd.Timestamp, days: int) -> np.ndarray:
    dd = _window(facts["deploy_days"], end - pd.Timedelta(days=days), end)
    dd = dd[dd["deployments"].to_numpy() > 0]
    codes = np.unique(scopes.codes(dd["entity_ref"]))
    rows, sc = scopes.expand(scopes.index.to_numpy()[codes[codes >= 0]])
    return np.bincount(sc, minlength=scopes.n).astype(float)


def _trend(current: np.ndarray, previous: np.ndarray, lower_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    change = current - previous
    rel = np.divide(change, np.abs(previous), out=np.full(len(change), np.nan), where=np.abs(previous) > 0)
    better = change < 0 if lower_is_better else change > 0
    flat = (change == 0) | (np.abs(np.nan_to_num(rel, nan=1.0)) < 0.05)
    trend = np.where(np.isnan(change), None, np.where(flat, "flat", np.where(better, "improving", "worsening")))
    return change, trend


TRENDS = ("improving", "flat", "worsening")
BANDS = ("elite", "high", "medium", "low")


def dora_summary(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date) -> pd.DataFrame:
    """The four keys of every scope over the rolling window ending with `as_of`'s day, with band,
    the previous window's value, change and trend (improving / flat (within 5%) / worsening).
    Entities without any delivery event in either window are left out (not 200k rows of zeros)."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    w = pd.Timedelta(days=config.window_days)
    active = _active(facts, scopes, end, config.active_days)
    cur = _window_dora(facts, scopes, config, end - w, end, active)
    prev = _window_dora(facts, scopes, config, end - 2 * w, end - w, _active(facts, scopes, end - w, config.active_days))
    any_events = sum(cur[m]["events"] + prev[m]["events"] for m in METRICS) > 0
    ids = np.flatnonzero(any_events | (scopes.type_code != 0))
    parts = []
    for metric in METRICS:
        c, p = cur[metric], prev[metric]
        value = c["value"][ids]
        change, trend = _trend(value, p["value"][ids], LOWER_IS_BETTER[metric])
        band = _bands(value, getattr(config.bands, metric), LOWER_IS_BETTER[metric], inclusive=metric == "change_failure_rate")
        parts.append(pd.DataFrame({"sid": ids, "metric": np.full(len(ids), METRICS.index(metric), np.int8), "value": value,
                                   "p75": c["p75"][ids], "p90": c["p90"][ids], "events": c["events"][ids],
                                   "excluded": c["excluded"][ids], "reason": pd.Series(c["reason"][ids], dtype=object),
                                   "band": pd.Categorical(band, categories=list(BANDS)), "previous_value": p["value"][ids],
                                   "change": change, "trend": pd.Categorical(trend, categories=list(TRENDS)),
                                   "deploying_entities": active[ids]}))
    out = pd.concat(parts, ignore_index=True)
    names = scopes.columns(out["sid"].to_numpy())
    metric_codes = out["metric"].to_numpy()
    frame = pd.DataFrame({**names, "metric": pd.Categorical.from_codes(metric_codes, categories=list(METRICS)),
                          "value": out["value"], "p75": out["p75"], "p90": out["p90"],
                          "unit": pd.Categorical.from_codes(metric_codes, categories=[UNITS[m] for m in METRICS]) if len(set(UNITS.values())) == len(METRICS)
                          else np.array([UNITS[m] for m in METRICS], dtype=object)[metric_codes],
                          "events": out["events"], "excluded": out["excluded"], "reason": out["reason"], "band": out["band"],
                          "previous_value": out["previous_value"], "change": out["change"], "trend": out["trend"],
                          "deploying_entities": out["deploying_entities"].astype(np.int64)})
    frame["window_start"] = (end - w).date()
    frame["window_end"] = as_of
    return frame


def dora_weekly(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date, *,
                reuse: pd.DataFrame | None = None, since: date | None = None) -> pd.DataFrame:
    """Per ISO week (the last `config.weeks`, the current one included), per scope with any event:
    deployments (zeros for weeks without: a quiet week is a fact, not a gap), change failure
    rate, median lead time, median time to restore (NaN below the minimum events).

    Incremental: with `reuse` (the previous run's table, built with the same `scopes`) and `since`
    (the first day whose facts changed), the weeks before `since`'s week are taken from `reuse`
    and only the later ones are recomputed (zero rows completed both ways, as `_weekly` gives them)."""
    this_week = pd.Timestamp(as_of) - pd.Timedelta(days=pd.Timestamp(as_of).weekday())
    weeks = pd.DatetimeIndex([this_week - pd.Timedelta(weeks=i) for i in range(config.weeks - 1, -1, -1)])
    if reuse is not None and since is not None and len(reuse) and reuse["scope_ref"].dtype == scopes._ref_dtype:
        changed = pd.Timestamp(since) - pd.Timedelta(days=pd.Timestamp(since).weekday())
        kept_weeks = weeks[weeks < changed]
        if len(kept_weeks):
            return _reuse_weeks(facts, scopes, config, reuse, kept_weeks, weeks[weeks >= changed])
    return _weekly(facts, scopes, config, weeks)


def _reuse_weeks(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, reuse: pd.DataFrame,
                 kept: pd.DatetimeIndex, fresh_weeks: pd.DatetimeIndex) -> pd.DataFrame:
    cats = pd.DatetimeIndex(pd.to_datetime(pd.Index(reuse["week"].cat.categories).astype(str)))
    keep_cat = np.asarray(cats.isin(kept))
    codes = reuse["week"].cat.codes.to_numpy()
    old = reuse[(codes >= 0) & keep_cat[np.maximum(codes, 0)]]
    fresh = _weekly(facts, scopes, config, fresh_weeks)
    # the deployments and change-failure rows exist for every week of each scope that deployed
    # in any week of the series (zeros where it did not): a scope that deployed only in the kept
    # weeks gets them for the fresh weeks, one new in the fresh weeks gets them for the kept ones,
    # and one whose deployments all fell in weeks no longer in the series is left out
    counted_old = old["metric"].astype(str).isin(["deployments", "change_failure_rate"]).to_numpy()
    dep_old = old["metric"].astype(str).to_numpy() == "deployments"
    dep_new = fresh["metric"].astype(str).to_numpy() == "deployments"
    old_codes = old["scope_ref"].cat.codes.to_numpy()
    present_old = np.unique(old_codes[dep_old])  # rows for the kept weeks, zeros or not
    seen_old = np.unique(old_codes[dep_old & (old["events"].to_numpy(float) > 0)])  # deployed in a kept week
    seen_new = np.unique(fresh["scope_ref"].cat.codes.to_numpy()[dep_new])
    old = old[~counted_old | np.isin(old_codes, np.union1d(seen_old, seen_new))]
    parts = [old, fresh]
    by_code = {c: i for i, c in enumerate(scopes.ref_code)}  # scope id of a ref code
    for codes, weeks in ((np.setdiff1d(seen_new, present_old), kept), (np.setdiff1d(seen_old, seen_new), fresh_weeks)):
        if not len(codes) or not len(weeks):
            continue
        ids = np.array([by_code[c] for c in codes], dtype=np.int64)
        n_k = len(weeks)
        zeros = pd.DataFrame(scopes.columns(np.repeat(ids, 2 * n_k)))
        zeros["week"] = pd.Categorical(np.tile(np.array(list(weeks.date) * 2, dtype=object), len(ids)))
        zeros["metric"] = pd.Categorical.from_codes(np.tile(np.repeat(np.array([0, 1], np.int8), n_k), len(ids)), dtype=fresh["metric"].dtype)
        zeros["value"] = np.where(zeros["metric"].cat.codes.to_numpy() == 0, 0.0, np.nan)
        zeros["events"] = 0.0
        parts.append(zeros)
    return _concat(parts)


def _weekly(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, weeks: pd.DatetimeIndex) -> pd.DataFrame:
    start, end = weeks[0], weeks[-1] + pd.Timedelta(weeks=1)
    n_w = len(weeks)
    size = scopes.n * n_w

    def week_of(frame: pd.DataFrame) -> np.ndarray:
        return ((frame["day"].to_numpy() - start.to_datetime64()) // np.timedelta64(7, "D")).astype(np.int64)

    dd = _window(facts["deploy_days"], start, end)
    rows, sc = scopes.expand(dd["entity_ref"])
    key = sc * n_w + week_of(dd)[rows]
    dep = np.bincount(key, weights=dd["deployments"].to_numpy(float)[rows], minlength=size)
    chg = np.bincount(key, weights=dd["changes_deployed"].to_numpy(float)[rows], minlength=size)
    fail = np.bincount(key, weights=dd["failed"].to_numpy(float)[rows], minlength=size)
    seen = np.unique(sc)
    g = (np.repeat(seen, n_w) * n_w + np.tile(np.arange(n_w), len(seen)))
    cfr = np.divide(fail[g], chg[g], out=np.full(len(g), np.nan), where=chg[g] >= config.min_events.change_failure_rate)
    keys = [g, g]
    metric = [np.zeros(len(g), np.int8), np.full(len(g), 1, np.int8)]
    values, events = [dep[g], cfr], [dep[g], chg[g]]
    for i, (table, column, need) in enumerate((("changes", "lead_time_h", config.min_events.lead_time),
                                               ("incidents", "restore_h", config.min_events.time_to_restore)), start=2):
        f = _window(facts[table], start, end)
        rows, sc = scopes.expand(f["entity_ref"])
        u, cnt, (p50,) = code_quantiles(sc * n_w + week_of(f)[rows], f[column].to_numpy(float)[rows], qs=(0.5,))
        keys.append(u)
        metric.append(np.full(len(u), i, np.int8))
        values.append(np.where(cnt >= need, p50, np.nan))
        events.append(cnt.astype(float))
    k = np.concatenate(keys)
    frame = pd.DataFrame(scopes.columns(k // n_w))
    frame["week"] = pd.Categorical.from_codes(k % n_w, categories=pd.Index(list(weeks.date), dtype=object))
    frame["metric"] = pd.Categorical.from_codes(np.concatenate(metric), categories=["deployments", "change_failure_rate", "lead_time", "time_to_restore"])
    frame["value"] = np.concatenate(values)
    frame["events"] = np.concatenate(events)
    return frame


def pr_flow(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date,
            open_prs: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """PR flow over the rolling window (PRs merged in it): `pr_flow` (cycle time = created ->
    merged, and its parts: time to first review, first review -> approval, approval -> merge;
    size = additions + deletions: p50/p75/p90 per scope), `pr_summary` (merged, merged without any
    review and its share, open, stale = open longer than `stale_pr_days`), `pr_sizes` (buckets XS
    <= 10 lines, S <= 50, M <= 250, L <= 1000, XL), `stale_prs` (the `stalest_shown` oldest open PRs
    per entity and team, with links)."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=config.window_days)
    p = _window(facts["prs"], start, end)
    rows, sc = scopes.expand(p["entity_ref"])
    n = scopes.n
    need = config.min_events.pr_flow
    ids, metric, cols = [], [], {"p50": [], "p75": [], "p90": [], "events": []}
    for i, part in enumerate(PR_PARTS):
        u, cnt, qs = code_quantiles(sc, p[part].to_numpy(float)[rows])
        low = cnt < need
        ids.append(u)
        metric.append(np.full(len(u), i, np.int8))
        for name, values in zip(("p50", "p75", "p90"), qs):
            cols[name].append(np.where(low, np.nan, values))
        cols["events"].append(cnt)
    k = np.concatenate(ids)
    m = np.concatenate(metric)
    events = np.concatenate(cols["events"])
    flow = pd.DataFrame({**scopes.columns(k), "metric": pd.Categorical.from_codes(m, categories=list(PR_PARTS)),
                         "unit": np.where(m == PR_PARTS.index("size"), "lines", "hours"),
                         **{c: np.concatenate(cols[c]) for c in ("p50", "p75", "p90")}, "events": events,
                         "reason": _reason(events, need, "merged pull requests")})
    merged = np.bincount(sc, minlength=n)
    unreviewed = np.bincount(sc, weights=(~p["reviewed"].to_numpy(bool))[rows].astype(float), minlength=n)
    lines = p["size"].to_numpy(float)[rows]
    bucket = np.searchsorted(np.array([b for _, b in SIZE_BUCKETS]), lines, side="left")
    nb = len(SIZE_BUCKETS)
    counts = np.bincount(sc * nb + bucket, minlength=n * nb).reshape(n, nb)
    seen = np.flatnonzero(merged > 0)
    sizes = pd.DataFrame({**scopes.columns(np.repeat(seen, nb)),
                          "bucket": pd.Categorical.from_codes(np.tile(np.arange(nb), len(seen)), categories=[b for b, _ in SIZE_BUCKETS]),
                          "prs": counts[seen].ravel()})
    sizes["share"] = sizes["prs"] / np.repeat(merged[seen], nb)
    if open_prs is None:
        open_prs = pd.DataFrame({"entity_ref": pd.Series([], dtype=object), "repository": [], "number": [], "url": [], "draft": [],
                                 "age_days": pd.Series([], dtype=float)})
    orow, osc = scopes.expand(open_prs["entity_ref"])
    age = open_prs["age_days"].to_numpy(float)[orow]
    stale_mask = age > config.stale_pr_days
    open_n = np.bincount(osc, minlength=n)
    stale_n = np.bincount(osc, weights=stale_mask.astype(float), minlength=n)
    keep = np.flatnonzero((merged > 0) | (open_n > 0) | (scopes.type_code != 0))
    summary = pd.DataFrame({**scopes.columns(keep), "merged": merged[keep], "merged_without_review": unreviewed[keep].astype(np.int64),
                            "share_merged_without_review": np.divide(unreviewed[keep], merged[keep], out=np.full(len(keep), np.nan),
                                                                     where=merged[keep] >= need),
                            "open_prs": open_n[keep], "stale_prs": stale_n[keep].astype(np.int64),
                            "reason": _reason(merged[keep], need, "merged pull requests")})
    st_s, st_r, st_a = osc[stale_mask], orow[stale_mask], age[stale_mask]
    not_org = scopes.type_code[st_s] != 2
    st_s, st_r, st_a = st_s[not_org], st_r[not_org], st_a[not_org]
    o = np.lexsort((-st_a, st_s))
    st_s, st_r, st_a = st_s[o], st_r[o], st_a[o]
    first = np.r_[True, st_s[1:] != st_s[:-1]] if len(st_s) else np.zeros(0, bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(st_s)), 0)) if len(st_s) else np.zeros(0, np.int64)
    rank = np.arange(len(st_s)) - group_start + 1
    top = rank <= config.stalest_shown
    chosen = open_prs.iloc[st_r[top]].reset_index(drop=True)
    stale = pd.DataFrame({**scopes.columns(st_s[top]), "rank": rank[top]})
    for column in ("entity_ref", "repository", "number", "url", "draft", "age_days"):
        stale[column] = chosen[column].to_numpy()
    return {"pr_flow": flow, "pr_summary": summary, "pr_sizes": sizes, "stale_prs": stale}


def review_load(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date) -> dict[str, pd.DataFrame]:
    """Reviews per reviewer over the window, for teams and the organisation (never one entity):
    `review_load` (reviewers, reviews, per-reviewer p50/p75/p90, share of reviews done by the top
    fifth of reviewers) and `reviewer_load` (per pseudonymised reviewer). A scope with fewer than
    `config.min_people` reviewers shows no figure about its reviewers (`suppressed`), and lists
    none of them: the k rule of the surveys and usage analytics."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    r = _window(facts["reviews"], end - pd.Timedelta(days=config.window_days), end)
    rows, sc = scopes.expand(r["entity_ref"], kinds=("team", "org"))
    reviewer_codes = r["reviewer"].cat.codes.to_numpy().astype(np.int64)[rows]
    reviewer_names = r["reviewer"].cat.categories
    pr_codes = pd.factorize(r["pr"].to_numpy()[rows])[0]
    n_rev = max(len(reviewer_names), 1)
    pair = sc.astype(np.int64) * n_rev + reviewer_codes
    # one sort of (scope, reviewer, pull request): the reviews of each (scope, reviewer) pair and
    # the distinct pull requests among them
    n_pr = int(pr_codes.max()) + 1 if len(pr_codes) else 1
    key = np.sort(pair * n_pr + pr_codes)
    pair_sorted = key // n_pr
    starts = np.flatnonzero(np.r_[True, pair_sorted[1:] != pair_sorted[:-1]]) if len(key) else np.zeros(0, np.int64)
    upair = pair_sorted[starts]
    reviews = np.diff(np.r_[starts, len(key)])
    new_pr = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
    prs_reviewed = np.add.reduceat(new_pr.astype(np.int64), starts) if len(key) else np.zeros(0, np.int64)
    scope_of, rev_of = upair // n_rev, upair % n_rev
    u, cnt, (p50, p75, p90) = code_quantiles(scope_of, reviews.astype(float))
    total = np.bincount(scope_of, weights=reviews.astype(float), minlength=scopes.n)[u]
    # share of the reviews done by the busiest fifth of reviewers (at least one)
    o = np.lexsort((-reviews, scope_of))
    so, ro = scope_of[o], reviews[o]
    first = np.r_[True, so[1:] != so[:-1]] if len(so) else np.zeros(0, bool)
    rank = np.arange(len(so)) - np.maximum.accumulate(np.where(first, np.arange(len(so)), 0)) if len(so) else np.zeros(0, np.int64)
    size = np.repeat(cnt, cnt)  # code_quantiles and this order both sort by scope
    top = np.bincount(so, weights=np.where(rank < np.ceil(size * 0.2), ro, 0).astype(float), minlength=scopes.n)[u]
    suppressed = cnt < config.min_people

    def shown(values: np.ndarray) -> np.ndarray:
        return np.where(suppressed, np.nan, values)

    summary = pd.DataFrame({**scopes.columns(u), "reviewers": shown(cnt.astype(float)), "reviews": shown(total),
                            "p50": shown(p50), "p75": shown(p75), "p90": shown(p90),
                            "top_fifth_share": shown(np.divide(top, total, out=np.full(len(u), np.nan), where=total > 0)),
                            "suppressed": suppressed})
    allowed = np.zeros(scopes.n, bool)
    allowed[u[~suppressed]] = True
    keep = allowed[scope_of]
    per_reviewer = pd.DataFrame({**scopes.columns(scope_of[keep]), "reviewer": np.asarray(reviewer_names, dtype=object)[rev_of[keep]],
                                 "reviews": reviews[keep], "prs_reviewed": prs_reviewed[keep]})
    return {"review_load": summary, "reviewer_load": per_reviewer}


def delivery_metrics(facts: Mapping[str, pd.DataFrame], entities: pd.DataFrame, org: OrgGraph | None, config: DeliveryConfig,
                     *, as_of: date, open_prs: pd.DataFrame | None = None, scopes: Scopes | None = None,
                     previous: Mapping[str, pd.DataFrame] | None = None, since: date | None = None,
                     emit: Callable[[dict[str, pd.DataFrame]], None] | None = None) -> dict[str, pd.DataFrame]:
    """Every published delivery table (by name: `dora_summary`, `dora_weekly`, `pr_flow`,
    `pr_summary`, `pr_sizes`, `stale_prs`, `review_load`, `reviewer_load`, `incidents_summary`).
    With `previous` (the last run's tables, same `scopes`) and `since` (the first changed day), the
    weekly series keeps its unchanged weeks (`dora_weekly`). `emit` is handed each group of tables
    as soon as it is computed (a caller can publish them while the next ones are computed)."""
    scopes = scopes or Scopes(entities, org)
    out: dict[str, pd.DataFrame] = {}

    def done(group: dict[str, pd.DataFrame]) -> None:
        out.update(group)
        if emit is not None:
            emit(group)

    done({"dora_weekly": dora_weekly(facts, scopes, config, as_of, reuse=(previous or {}).get("dora_weekly"), since=since)})
    done({"dora_summary": dora_summary(facts, scopes, config, as_of)})
    done(pr_flow(facts, scopes, config, as_of, open_prs))
    done(review_load(facts, scopes, config, as_of))
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    inc = _window(facts["incidents"], end - pd.Timedelta(days=config.window_days), end)
    dd = _window(facts["deploy_days"], end - pd.Timedelta(days=config.window_days), end)
    done({"incidents_summary": pd.DataFrame([{
        "window_start": (end - pd.Timedelta(days=config.window_days)).date(), "window_end": as_of,
        "incidents": len(inc), "without_service": int(inc["entity_ref"].isna().sum()),
        "unresolved": int(inc["restore_h"].isna().sum()),
        "deployments": int(dd["deployments"].sum()), "unlinked_deployments": int(dd["unlinked"].sum()),
        "rollbacks": int((dd["deployments"] - dd["changes_deployed"]).sum())}])})
    return out


__all__ = ["FACT_TABLES", "METRICS", "Scopes", "band_of", "daily_facts", "delivery_metrics", "dora_summary", "dora_weekly", "code_quantiles", "facts_span_days", "prune_facts",
           "iso_week", "local_day", "merge_facts", "open_pull_requests", "pr_flow", "review_load"]


# ---------------------------------------------------------------------------------------------
# scorecard facts and source control, per entity

ENTITY_FACTS = {
    # fact name: (type, description); published per entity in `entity_facts`, declared to the
    # scorecards as `delivery.<name>` (services.facts.fact_catalog)
    "deployment_frequency_per_week": ("number", "successful production deployments per week over the rolling window (0 when none)"),
    "deployments": ("number", "successful production deployments in the rolling window"),
    "lead_time_hours": ("number", "median lead time for changes in the window, first commit to production (absent below the minimum events)"),
    "change_failure_rate": ("number", "share of production deployments in the window followed by an incident or rollback (absent below the minimum)"),
    "time_to_restore_hours": ("number", "median incident start to resolve in the window (absent below the minimum)"),
    "deployment_frequency_band": ("string", "DORA band of the deployment frequency: elite, high, medium or low"),
    "lead_time_band": ("string", "DORA band of the lead time (absent below the minimum events)"),
    "stale_pull_requests": ("number", "pull requests open longer than the stale threshold"),
    "merged_without_review_share": ("number", "share of the window's merged pull requests merged without any review"),
}


def entity_facts(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per entity with delivery figures, a column per `ENTITY_FACTS` name (the scorecards'
    `delivery.*` facts). NaN / None where the figure is "not enough data"."""
    s = tables["dora_summary"]
    s = s[(s["scope_type"] == "entity").to_numpy()]
    if isinstance(s["scope_ref"].dtype, pd.CategoricalDtype) and s["scope_ref"].cat.categories.is_monotonic_increasing:
        # (the scopes' refs: sorted categories, so the codes' order is the names' order)
        ref_codes, row = np.unique(s["scope_ref"].cat.codes.to_numpy(), return_inverse=True)
        names = np.asarray(s["scope_ref"].cat.categories.astype(object))[ref_codes].astype(str).astype(object)
    else:
        refs = s["scope_ref"].astype(object).to_numpy()
        names, row = np.unique(refs.astype(str), return_inverse=True) if len(refs) else (np.array([], dtype=object), np.zeros(0, np.int64))
    col = np.asarray(pd.Categorical(s["metric"].astype(object), categories=list(METRICS)).codes)
    n = len(names)
    values = np.full((n, len(METRICS)), np.nan)
    values[row, col] = s["value"].to_numpy(float)
    bands = np.full((n, len(METRICS)), None, dtype=object)
    bands[row, col] = s["band"].astype(object).where(s["band"].notna(), None).to_numpy()
    deployments = np.full(n, np.nan)
    freq = col == 0
    deployments[row[freq]] = s["events"].to_numpy(float)[freq]
    out = pd.DataFrame({"entity_ref": names, "deployment_frequency_per_week": values[:, 0], "deployments": deployments,
                        "lead_time_hours": values[:, 1], "change_failure_rate": values[:, 2], "time_to_restore_hours": values[:, 3],
                        "deployment_frequency_band": bands[:, 0], "lead_time_band": bands[:, 1]})
    prs = tables.get("pr_summary")
    out["stale_pull_requests"] = np.nan
    out["merged_without_review_share"] = np.nan
    if prs is not None and len(prs):
        p = prs[(prs["scope_type"] == "entity").to_numpy()]
        p = pd.DataFrame({"entity_ref": p["scope_ref"].astype(str).to_numpy(), "stale": p["stale_prs"].to_numpy(float),
                          "share": p["share_merged_without_review"].to_numpy(float)})
        out = out.merge(p, on="entity_ref", how="outer")
        out["stale_pull_requests"], out["merged_without_review_share"] = out.pop("stale"), out.pop("share")
    return out[["entity_ref", *ENTITY_FACTS]]


def source_control(events: Mapping[str, pd.DataFrame], as_of: datetime) -> pd.DataFrame:
    """Per entity with delivery events: its repository and source, open pull requests, the last
    merge to the default branch (the last commit the events know of) and the last production
    deployment."""
    now = pd.Timestamp(as_of)
    now = now.tz_localize("UTC") if now.tzinfo is None else now
    prs = events["pull_requests"]
    prs = prs[(prs["created_at"] <= now).to_numpy()]
    d = _production(events["deployments"])
    d = d[(d["created_at"] <= now).to_numpy()]
    index = pd.Index(np.sort(pd.unique(np.concatenate([pd.Index(_cat(f["entity_ref"]).categories).astype(str).to_numpy(dtype=object)
                                                        for f in (prs, d)]))), dtype=object)
    n = len(index)
    pe, de = _index_of(prs["entity_ref"], index), _index_of(d["entity_ref"], index)
    is_open = (prs["merged_at"].isna() & prs["closed_at"].isna()).to_numpy()
    open_prs = np.bincount(pe[(pe >= 0) & is_open], minlength=n)
    merged = _ns(prs["merged_at"])
    merged[merged > now.value] = np.nan
    last_merge = pd.Series(merged).groupby(pe).max().reindex(range(n)).to_numpy()
    last_deploy = pd.Series(_ns(d["created_at"])).groupby(de).max().reindex(range(n)).to_numpy()
    repository = np.full(n, None, dtype=object)
    source = np.full(n, None, dtype=object)
    for frame, codes in ((d, de), (prs, pe)):  # the PRs' names win where both know one
        if not len(frame):
            continue
        first_codes, first = np.unique(codes, return_index=True)
        ok = first_codes >= 0
        repository[first_codes[ok]] = frame["repository"].astype(object).to_numpy()[first[ok]]
        if "source" in frame.columns:
            source[first_codes[ok]] = frame["source"].astype(object).to_numpy()[first[ok]]

    def times(ns: np.ndarray) -> pd.Series:
        return pd.Series(pd.to_datetime(ns, unit="ns", utc=True))

    return pd.DataFrame({"entity_ref": index.to_numpy(), "repository": repository, "source": source, "open_prs": open_prs,
                         "last_merge_at": times(last_merge), "last_deploy_at": times(last_deploy)})


def update_source_control(previous: pd.DataFrame | None, fresh: pd.DataFrame) -> pd.DataFrame:
    """Source control after a new day: `fresh` (`source_control` of the new day's look-back events
    and EVERY open pull request) over `previous` (the last published table): the latest merge and
    deployment of either, the repository and source of `fresh` where it knows one, the open pull
    requests of `fresh` (0 for an entity with none open any more)."""
    if previous is None or not len(previous):
        return fresh
    # by position, not a merge of ~100k rows: the previous rows updated where `fresh` has the
    # entity (a few thousand), the new entities inserted in their sorted places
    prev_ref = previous["entity_ref"].astype(object).to_numpy(dtype=object)
    fresh_ref = fresh["entity_ref"].astype(object).to_numpy(dtype=object)
    prev_index = pd.Index(prev_ref, dtype=object)
    if not (prev_index.is_unique and prev_index.is_monotonic_increasing):  # (sorted by the last update: else sorted here)
        order = np.argsort(prev_ref, kind="stable")
        previous, prev_ref = previous.iloc[order].reset_index(drop=True), prev_ref[order]
        prev_index = pd.Index(prev_ref, dtype=object)
    pos = prev_index.get_indexer(fresh_ref)
    hit, new = np.flatnonzero(pos >= 0), np.flatnonzero(pos < 0)
    at = pos[hit]
    columns: dict[str, np.ndarray] = {"entity_ref": prev_ref}
    for column in ("repository", "source"):
        values = previous[column].astype(object).to_numpy(dtype=object).copy()
        theirs = fresh[column].astype(object).to_numpy(dtype=object)[hit]
        known = pd.notna(theirs)
        values[at[known]] = theirs[known]
        columns[column] = values
    open_prs = np.zeros(len(prev_ref), np.int64)  # (0 for an entity with none open any more)
    open_prs[at] = fresh["open_prs"].to_numpy(np.int64)[hit]
    columns["open_prs"] = open_prs
    def instants(times: pd.Series) -> np.ndarray:  # (UTC nanoseconds, NaT as int64's minimum)
        return pd.to_datetime(times, utc=True).astype("datetime64[ns, UTC]").array.asi8.copy()

    nat = np.iinfo(np.int64).min
    for column in ("last_merge_at", "last_deploy_at"):  # the later of the two (either when one is missing)
        values, theirs = instants(previous[column]), instants(fresh[column])[hit]
        later = (theirs != nat) & ((values[at] == nat) | (theirs >= values[at]))
        values[at[later]] = theirs[later]
        columns[column] = values
    if len(new):
        where = np.searchsorted(prev_ref, fresh_ref[new])
        columns["entity_ref"] = np.insert(prev_ref, where, fresh_ref[new])
        for column in ("repository", "source"):
            columns[column] = np.insert(columns[column], where, fresh[column].astype(object).to_numpy(dtype=object)[new])
        columns["open_prs"] = np.insert(columns["open_prs"], where, fresh["open_prs"].to_numpy(np.int64)[new])
        for column in ("last_merge_at", "last_deploy_at"):
            columns[column] = np.insert(columns[column], where, instants(fresh[column])[new])
    out = pd.DataFrame({c: columns[c] for c in ("entity_ref", "repository", "source", "open_prs")})
    for column in ("last_merge_at", "last_deploy_at"):
        out[column] = pd.to_datetime(columns[column], unit="ns", utc=True)
    return out


def finish_tables(facts: Mapping[str, pd.DataFrame], entities: pd.DataFrame, org: OrgGraph | None, config: DeliveryConfig, *,
                  as_of: date, open_prs: pd.DataFrame, source_ctl: pd.DataFrame, moment: datetime,
                  scopes: Scopes | None = None, emit: Callable[[str, pd.DataFrame], None] | None = None) -> dict[str, pd.DataFrame]:
    """Every published table from the day-grain facts: `delivery_metrics`, the scorecard facts,
    source control and a `meta` row (as-of day, time zone, windows, thresholds). Entity rows of the summary and the weekly series go to
    tables of their own (`dora_entities`, `dora_weekly_entities`): the site and the CLI read teams
    and the organisation only. `dora_weekly_entities` holds an entity's weeks with at least one
    event: a week of the series without a row had no deployment (zero, not missing; the teams' and
    the organisation's series in `dora_weekly` carry their zeros), which keeps a 200k-entity
    catalog's weekly series at the weeks that happened (~1.2 M zero rows less). `emit(name, frame)`
    is called with each published table as soon as it is final (`services.delivery` writes it
    while the next ones are computed)."""
    tables: dict[str, pd.DataFrame] = {}
    whole: dict[str, pd.DataFrame] = {}  # (the tables with their entity rows: the scorecard facts read them)

    def published(name: str, frame: pd.DataFrame) -> None:
        tables[name] = frame
        if emit is not None:
            emit(name, frame)

    def split(group: dict[str, pd.DataFrame]) -> None:
        for name, frame in group.items():
            whole[name] = frame
            is_entity = (frame["scope_type"] == "entity").to_numpy() if "scope_type" in frame.columns else None
            if name in ("pr_flow", "pr_sizes", "pr_summary", "stale_prs"):
                # PR flow, sizes, summary and stale PRs are published for teams and the
                # organisation; an entity's PR figures the scorecards use are in `entity_facts` (a
                # 200k catalog's entity rows of these four tables were ~430 k rows rewritten every
                # day for no reader)
                published(name, frame[~is_entity].reset_index(drop=True))
            elif name in ("dora_summary", "dora_weekly"):
                entity_rows = is_entity if name == "dora_summary" else is_entity & (frame["events"].to_numpy(float) > 0)
                entity_frame = frame[entity_rows].reset_index(drop=True)
                # (an entity's rows carry no window dates, which change every day: `meta` has
                # them; so a new day rewrites only the entities whose figures changed)
                entity_name = "dora_entities" if name == "dora_summary" else "dora_weekly_entities"
                published(entity_name, entity_frame.drop(columns=[c for c in ("window_start", "window_end") if c in entity_frame.columns]))
                published(name, frame[~is_entity].reset_index(drop=True))
            else:
                published(name, frame)

    delivery_metrics(facts, entities, org, config, as_of=as_of, open_prs=open_prs, scopes=scopes, emit=split)
    published("entity_facts", entity_facts(whole))
    published("source_control", source_ctl)
    published("meta", pd.DataFrame([{
        "as_of": as_of.isoformat(), "timezone": config.timezone, "window_days": config.window_days,
        "window_start": (as_of - timedelta(days=config.window_days - 1)).isoformat(), "window_end": as_of.isoformat(), "weeks": config.weeks,
        "failure_window_hours": config.failure_window_hours, "stale_pr_days": config.stale_pr_days,
        "min_people": config.min_people, "compare_min_entities": config.compare_min_entities,
        "computed_at": moment.isoformat(),
    }]))
    return tables


def compute_tables(events: Mapping[str, pd.DataFrame], entities: pd.DataFrame, org: OrgGraph | None, config: DeliveryConfig, *,
                   as_of: date, now: datetime | None = None) -> dict[str, pd.DataFrame]:
    """Every published delivery table by name, from the event frames: the day-grain facts of the
    span the windows read, then `finish_tables`."""
    from datetime import timedelta

    moment = now or end_of_day(as_of)
    facts = daily_facts(events, config, since=as_of - timedelta(days=facts_span_days(config)))
    return finish_tables(facts, entities, org, config, as_of=as_of, open_prs=open_pull_requests(events["pull_requests"], moment),
                         source_ctl=source_control(events, moment), moment=moment)


def end_of_day(as_of: date) -> datetime:
    """The moment the figures of `as_of` are taken at: the end of that UTC day."""
    from datetime import UTC, timedelta

    return datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
