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
  commit is the PR's merge commit *or a later one*. "Later" is judged by merge time: a
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

from collections.abc import Mapping
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


def group_quantiles(keys: pd.DataFrame, values: np.ndarray, qs: tuple[float, ...] = QS) -> pd.DataFrame:
    """`keys` columns + `n` + `p50`/`p75`/`p90`... per distinct key row, linear interpolation (as
    numpy's default); NaN values are dropped. Sort-based: fast for many small groups."""
    ok = ~np.isnan(values)
    keys, values = keys[ok].reset_index(drop=True), values[ok]
    cols = list(keys.columns)
    names = [f"p{int(round(q * 100))}" for q in qs]
    if not len(values):
        return pd.DataFrame({**{c: pd.Series([], dtype=keys[c].dtype) for c in cols}, "n": pd.Series([], dtype="int64"),
                             **{n: pd.Series([], dtype=float) for n in names}})
    codes = keys.groupby(cols, sort=False, observed=True).ngroup().to_numpy()
    order = np.lexsort((values, codes))
    v = values[order]
    counts = np.bincount(codes)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    first = order[starts]
    out = keys.iloc[first].reset_index(drop=True)
    out["n"] = counts
    for q, name in zip(qs, names):
        pos = starts + q * (counts - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts + counts - 1)
        frac = pos - lo
        out[name] = v[lo] + (v[hi] - v[lo]) * frac
    return out


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

def _production(deployments: pd.DataFrame) -> pd.DataFrame:
    d = deployments
    mask = d["is_production"].fillna(False).astype(bool) & (d["status"].astype(str).str.lower() == "success")
    return d[mask]


def _link_changes(prod: pd.DataFrame, prs: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """(linked flag per production deployment, one row per delivered PR: deployment row, PR row)."""
    n = len(prod)
    empty = pd.DataFrame({"deploy": np.zeros(0, np.int64), "pr": np.zeros(0, np.int64)})
    merged = prs[prs["merged_at"].notna() & prs["merge_commit_sha"].notna()]
    if not n or not len(merged):
        return np.zeros(n, bool), empty
    repos = pd.Index(pd.unique(pd.concat([prod["repository"], merged["repository"]], ignore_index=True).astype(str)))
    m_repo = repos.get_indexer(merged["repository"].astype(str)).astype(np.int64)
    m_time = _ns(merged["merged_at"])
    sha_time = pd.Series(m_time, index=pd.Index(merged["merge_commit_sha"].astype(str)))
    sha_time = sha_time[~sha_time.index.duplicated()]
    d_repo = repos.get_indexer(prod["repository"].astype(str)).astype(np.int64)
    d_at = prod["finished_at"].where(prod["finished_at"].notna(), prod["created_at"])
    d_time = _ns(d_at)
    shipped = sha_time.reindex(prod["commit_sha"].astype(str)).to_numpy()  # merge time of the deployed commit
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


def daily_facts(events: Mapping[str, pd.DataFrame], config: DeliveryConfig, *, since: date | None = None) -> dict[str, pd.DataFrame]:
    """Day-grain fact rows (see the module docstring) of the days >= `since` (all when None)."""
    tz = config.timezone
    prs = events["pull_requests"].reset_index(drop=True)
    deployments = events["deployments"].reset_index(drop=True)
    incidents = events["incidents"].reset_index(drop=True)
    reviews = events["reviews"].reset_index(drop=True)
    window_ns = config.failure_window_hours * HOUR_NS

    # deployments
    prod = _production(deployments).reset_index(drop=True)
    entities = pd.Index(pd.unique(pd.concat([prod["entity_ref"], incidents["entity_ref"].dropna()], ignore_index=True).astype(str)))
    prod = prod.assign(_ent=entities.get_indexer(prod["entity_ref"].astype(str)))
    at = prod["finished_at"].where(prod["finished_at"].notna(), prod["created_at"])
    prod_ns = _ns(prod["created_at"])
    linked, delivered = _link_changes(prod, prs)
    rollback = prod["is_rollback"].fillna(False).astype(bool).to_numpy()
    inc_ent = entities.get_indexer(incidents["entity_ref"].astype(str).where(incidents["entity_ref"].notna(), "\x00"))
    failed = np.zeros(len(prod), bool)
    failed[_blame(prod, prod_ns, inc_ent, _ns(incidents["started_at"]), window_ns)] = True
    rb = np.flatnonzero(rollback)
    failed[_blame(prod, prod_ns, prod["_ent"].to_numpy()[rb], prod_ns[rb], window_ns)] = True
    day = local_day(prod["created_at"], tz)
    per = pd.DataFrame({"entity_ref": prod["entity_ref"].astype(str), "day": day, "deployments": 1,
                        "changes_deployed": (~rollback).astype(np.int64), "failed": (failed & ~rollback).astype(np.int64),
                        "unlinked": (~linked & ~rollback).astype(np.int64)})
    deploy_days = per.groupby(["entity_ref", "day"], as_index=False, sort=True)[["deployments", "changes_deployed", "failed", "unlinked"]].sum()

    # changes
    dp = delivered["deploy"].to_numpy()
    pr_rows = prs.loc[delivered["pr"].to_numpy()]
    start = pr_rows["first_commit_at"].where(pr_rows["first_commit_at"].notna(), pr_rows["created_at"])
    lead = (_ns(at.iloc[dp]) - _ns(start)) / HOUR_NS
    changes = pd.DataFrame({"entity_ref": prod["entity_ref"].astype(str).to_numpy()[dp], "day": day.to_numpy()[dp],
                            "lead_time_h": lead,
                            "start": np.where(pr_rows["first_commit_at"].notna().to_numpy(), "first_commit", "pr_created"),
                            "repository": pr_rows["repository"].astype(str).to_numpy(), "number": pr_rows["number"].to_numpy()})

    # incidents
    inc = pd.DataFrame({"incident_id": incidents["incident_id"].astype(str), "entity_ref": incidents["entity_ref"],
                        "service_id": incidents["service_id"], "day": local_day(incidents["started_at"], tz),
                        "restore_h": (_ns(incidents["resolved_at"]) - _ns(incidents["started_at"])) / HOUR_NS})

    # pull requests (merged ones; open PRs are a snapshot, see open_pull_requests)
    m = prs[prs["merged_at"].notna()]
    created, merged_ns = _ns(m["created_at"]), _ns(m["merged_at"])
    review, approved = _ns(m["first_review_at"]), _ns(m["approved_at"])
    pr_facts = pd.DataFrame({
        "entity_ref": m["entity_ref"].astype(str).to_numpy(), "day": local_day(m["merged_at"], tz).to_numpy(),
        "cycle_time": (merged_ns - created) / HOUR_NS, "time_to_first_review": (review - created) / HOUR_NS,
        "review_to_approval": (approved - review) / HOUR_NS, "approval_to_merge": (merged_ns - approved) / HOUR_NS,
        "size": (m["additions"].fillna(0) + m["deletions"].fillna(0)).to_numpy(dtype=float),
        "reviewed": ~np.isnan(review),
    })
    rv = pd.DataFrame({"entity_ref": reviews["entity_ref"].astype(str), "reviewer": reviews["reviewer"].astype(str),
                       "day": local_day(reviews["submitted_at"], tz), "repository": reviews["repository"].astype(str),
                       "number": reviews["number"]})
    facts = {"deploy_days": deploy_days, "changes": changes, "incidents": inc, "prs": pr_facts, "reviews": rv}
    if since is not None:
        cut = pd.Timestamp(since)
        resolved_day = local_day(incidents["resolved_at"], tz)
        for name, frame in facts.items():
            if name == "incidents":
                facts[name] = frame[(frame["day"] >= cut) | (resolved_day >= cut)].reset_index(drop=True)
            else:
                facts[name] = frame[frame["day"] >= cut].reset_index(drop=True)
    return facts


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
        out[name] = pd.concat([old, new], ignore_index=True) if len(old) else new.reset_index(drop=True)
    return out


def open_pull_requests(prs: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Open pull requests at `as_of` (not merged, not closed): entity_ref, repository, number, url,
    draft, age_days."""
    now = pd.Timestamp(as_of)
    now = now.tz_localize("UTC") if now.tzinfo is None else now
    mask = prs["merged_at"].isna() & prs["closed_at"].isna() & (prs["created_at"] <= now)
    o = prs[mask]
    age = (now - o["created_at"]).dt.total_seconds() / 86400.0
    return pd.DataFrame({"entity_ref": o["entity_ref"].astype(str).to_numpy(), "repository": o["repository"].to_numpy(),
                         "number": o["number"].to_numpy(), "url": o["url"].to_numpy(), "draft": o["draft"].fillna(False).to_numpy(),
                         "age_days": age.round(1).to_numpy()})


# ---------------------------------------------------------------------------------------------
# scopes: an entity, its owner team and the team's ancestors, the organisation

class Scopes:
    """entity -> the scopes its figures count in (`entity`, each `team` up the hierarchy, `org`)."""

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
        # scope ids: 0..n_e-1 entities, n_e..n_e+n_t-1 teams, last: org
        self.names = pd.DataFrame({"scope_type": ["entity"] * n_e + ["team"] * n_t + ["org"],
                                   "scope_ref": [*self.index, *team_refs, ORG]})
        self.org_id = n_e + n_t
        pairs_e = np.r_[np.arange(n_e), up["e"].to_numpy(np.int64), np.arange(n_e)]
        pairs_s = np.r_[np.arange(n_e), n_e + team_refs.get_indexer(up["rollup_ref"].astype(str)), np.full(n_e, self.org_id)]
        o = np.lexsort((pairs_s, pairs_e))
        self._e, self._s = pairs_e[o], pairs_s[o]
        self._indptr = np.r_[0, np.cumsum(np.bincount(self._e, minlength=n_e))]
        self.team_ids = np.arange(n_e, n_e + n_t)

    def expand(self, entity_refs: pd.Series | np.ndarray, kinds: tuple[str, ...] = ("entity", "team", "org")) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, scope ids): each row once per scope of its entity; unknown or null
        entities count for the organisation only."""
        codes = self.index.get_indexer(pd.Series(entity_refs).astype(object).where(pd.notna(entity_refs), "\x00").astype(str))
        known = codes >= 0
        kc = np.where(known, codes, 0)
        counts = np.where(known, self._indptr[kc + 1] - self._indptr[kc], 0)
        rows = np.repeat(np.arange(len(codes)), counts)
        offs = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        scope = self._s[np.repeat(self._indptr[kc], counts) + offs]
        unknown = np.flatnonzero(~known)
        rows = np.r_[rows, unknown]
        scope = np.r_[scope, np.full(len(unknown), self.org_id)]
        if kinds != ("entity", "team", "org"):
            types = self.names["scope_type"].to_numpy()[scope]
            keep = np.isin(types, kinds)
            rows, scope = rows[keep], scope[keep]
        return rows, scope


# ---------------------------------------------------------------------------------------------
# step 2: the published tables

def _window(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["day"] >= start) & (frame["day"] < end)]


def _reason(n: np.ndarray, need: int, what: str) -> np.ndarray:
    out = np.full(len(n), None, dtype=object)
    low = n < need
    out[low] = [f"not enough data: {int(k)} {what} < {need}" for k in n[low]]
    return out


def _window_dora(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig,
                 start: pd.Timestamp, end: pd.Timestamp, active: np.ndarray) -> pd.DataFrame:
    """The four keys of every scope over [start, end): one row per (scope, metric)."""
    n_scopes = len(scopes.names)
    weeks = (end - start).days / 7.0
    dd = _window(facts["deploy_days"], start, end)
    rows, sc = scopes.expand(dd["entity_ref"].to_numpy())
    sums = {c: np.bincount(sc, weights=dd[c].to_numpy(float)[rows], minlength=n_scopes) for c in
            ("deployments", "changes_deployed", "failed", "unlinked")}
    parts = []
    per_entity = sums["deployments"] / weeks / np.maximum(active, 1)
    parts.append(pd.DataFrame({"scope": np.arange(n_scopes), "metric": "deployment_frequency", "value": per_entity,
                               "p75": np.nan, "p90": np.nan, "events": sums["deployments"], "excluded": 0.0, "reason": None}))
    ch = _window(facts["changes"], start, end)
    rows, sc = scopes.expand(ch["entity_ref"].to_numpy())
    q = group_quantiles(pd.DataFrame({"scope": sc}), ch["lead_time_h"].to_numpy(float)[rows])
    lt = pd.DataFrame({"scope": np.arange(n_scopes)}).merge(q, on="scope", how="left")
    n = lt["n"].fillna(0).to_numpy()
    parts.append(pd.DataFrame({"scope": lt["scope"], "metric": "lead_time", "value": lt["p50"], "p75": lt["p75"], "p90": lt["p90"],
                               "events": n, "excluded": sums["unlinked"], "reason": _reason(n, config.min_events.lead_time, "changes")}))
    denom = sums["changes_deployed"]
    cfr = np.divide(sums["failed"], denom, out=np.full(n_scopes, np.nan), where=denom > 0)
    parts.append(pd.DataFrame({"scope": np.arange(n_scopes), "metric": "change_failure_rate", "value": cfr, "p75": np.nan, "p90": np.nan,
                               "events": denom, "excluded": 0.0,
                               "reason": _reason(denom, config.min_events.change_failure_rate, "deployments")}))
    inc = _window(facts["incidents"], start, end)
    rows, sc = scopes.expand(inc["entity_ref"].to_numpy())
    restore = inc["restore_h"].to_numpy(float)[rows]
    unresolved = np.bincount(sc, weights=np.isnan(restore).astype(float), minlength=n_scopes)
    q = group_quantiles(pd.DataFrame({"scope": sc}), restore)
    tr = pd.DataFrame({"scope": np.arange(n_scopes)}).merge(q, on="scope", how="left")
    n = tr["n"].fillna(0).to_numpy()
    parts.append(pd.DataFrame({"scope": tr["scope"], "metric": "time_to_restore", "value": tr["p50"], "p75": tr["p75"], "p90": tr["p90"],
                               "events": n, "excluded": unresolved, "reason": _reason(n, config.min_events.time_to_restore, "resolved incidents")}))
    out = pd.concat(parts, ignore_index=True)
    hide = out["reason"].notna()
    out.loc[hide, ["value", "p75", "p90"]] = np.nan
    return out


def _active(facts: Mapping[str, pd.DataFrame], scopes: Scopes, end: pd.Timestamp, days: int) -> np.ndarray:
    dd = _window(facts["deploy_days"], end - pd.Timedelta(days=days), end)
    ents = pd.unique(dd.loc[dd["deployments"] > 0, "entity_ref"])
    rows, sc = scopes.expand(np.asarray(ents, dtype=object))
    return np.bincount(sc, minlength=len(scopes.names)).astype(float)


def _trend(current: np.ndarray, previous: np.ndarray, lower_is_better: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    change = current - previous
    rel = np.divide(change, np.abs(previous), out=np.full(len(change), np.nan), where=np.abs(previous) > 0)
    better = np.where(lower_is_better, change < 0, change > 0)
    flat = (change == 0) | (np.abs(np.nan_to_num(rel, nan=1.0)) < 0.05)
    trend = np.where(np.isnan(change), None, np.where(flat, "flat", np.where(better, "improving", "worsening")))
    return change, trend


def dora_summary(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date) -> pd.DataFrame:
    """The four keys of every scope over the rolling window ending `as_of` (exclusive of as_of's
    day + 1), with band, previous window, change and trend."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    w = pd.Timedelta(days=config.window_days)
    cur = _window_dora(facts, scopes, config, end - w, end, _active(facts, scopes, end, config.active_days))
    prev = _window_dora(facts, scopes, config, end - 2 * w, end - w, _active(facts, scopes, end - w, config.active_days))
    cur["previous_value"] = prev["value"].to_numpy()
    lower = cur["metric"].map(LOWER_IS_BETTER).to_numpy(bool)
    cur["change"], cur["trend"] = _trend(cur["value"].to_numpy(float), cur["previous_value"].to_numpy(float), lower)
    cur["band"] = None
    for metric in METRICS:
        mask = (cur["metric"] == metric).to_numpy()
        cur.loc[mask, "band"] = _bands(cur.loc[mask, "value"].to_numpy(float), getattr(config.bands, metric), LOWER_IS_BETTER[metric],
                                       inclusive=metric == "change_failure_rate")
    cur["unit"] = cur["metric"].map(UNITS)
    names = scopes.names.iloc[cur["scope"].to_numpy()].reset_index(drop=True)
    out = pd.concat([names, cur.drop(columns=["scope"]).reset_index(drop=True)], axis=1)
    out["window_start"] = (end - w).date()
    out["window_end"] = as_of
    # entities without any delivery event are not listed (a row of zeros for each of 200k entities)
    has = out.groupby(["scope_type", "scope_ref"], sort=False)["events"].transform("sum") > 0
    keep = has | (out["scope_type"] != "entity")
    cols = ["scope_type", "scope_ref", "metric", "value", "p75", "p90", "unit", "events", "excluded", "reason", "band",
            "previous_value", "change", "trend", "window_start", "window_end"]
    return out.loc[keep, cols].reset_index(drop=True)


def dora_weekly(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date) -> pd.DataFrame:
    """Per ISO week (the last `config.weeks`, the current one included), per scope: deployments
    (zeros for weeks without), median lead time, change failure rate, median time to restore."""
    this_week = pd.Timestamp(as_of) - pd.Timedelta(days=pd.Timestamp(as_of).weekday())
    weeks = pd.DatetimeIndex([this_week - pd.Timedelta(weeks=i) for i in range(config.weeks - 1, -1, -1)])
    start, end = weeks[0], this_week + pd.Timedelta(weeks=1)
    n_w = len(weeks)
    dd = _window(facts["deploy_days"], start, end)
    rows, sc = scopes.expand(dd["entity_ref"].to_numpy())
    wk = ((iso_week(dd["day"]) - start).dt.days // 7).to_numpy()[rows]
    key = sc * n_w + wk
    size = len(scopes.names) * n_w
    dep = np.bincount(key, weights=dd["deployments"].to_numpy(float)[rows], minlength=size)
    chg = np.bincount(key, weights=dd["changes_deployed"].to_numpy(float)[rows], minlength=size)
    fail = np.bincount(key, weights=dd["failed"].to_numpy(float)[rows], minlength=size)
    seen = np.unique(sc)
    parts = []
    grid_s = np.repeat(seen, n_w)
    grid_w = np.tile(np.arange(n_w), len(seen))
    g = grid_s * n_w + grid_w
    parts.append(pd.DataFrame({"scope": grid_s, "week": grid_w, "metric": "deployments", "value": dep[g], "events": dep[g]}))
    cfr = np.divide(fail[g], chg[g], out=np.full(len(g), np.nan), where=chg[g] >= config.min_events.change_failure_rate)
    parts.append(pd.DataFrame({"scope": grid_s, "week": grid_w, "metric": "change_failure_rate", "value": cfr, "events": chg[g]}))
    for table, column, metric, need in (("changes", "lead_time_h", "lead_time", config.min_events.lead_time),
                                        ("incidents", "restore_h", "time_to_restore", config.min_events.time_to_restore)):
        f = _window(facts[table], start, end)
        rows, sc = scopes.expand(f["entity_ref"].to_numpy())
        wk = ((iso_week(f["day"]) - start).dt.days // 7).to_numpy()[rows]
        q = group_quantiles(pd.DataFrame({"scope": sc, "week": wk}), f[column].to_numpy(float)[rows], qs=(0.5,))
        q = q.assign(metric=metric, value=np.where(q["n"] >= need, q["p50"], np.nan), events=q["n"])
        parts.append(q[["scope", "week", "metric", "value", "events"]])
    out = pd.concat(parts, ignore_index=True)
    names = scopes.names.iloc[out["scope"].to_numpy()].reset_index(drop=True)
    out = pd.concat([names, out.drop(columns=["scope"]).reset_index(drop=True)], axis=1)
    out["week"] = weeks[out["week"].to_numpy()].date
    return out[["scope_type", "scope_ref", "week", "metric", "value", "events"]]


def pr_flow(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date,
            open_prs: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """PR flow over the rolling window: `pr_flow` (cycle time and parts, size: p50/p75/p90 per
    scope), `pr_summary` (merged, merged without review and its share, open, stale), `pr_sizes`
    (size buckets), `stale_prs` (the stalest open PRs per team and entity)."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=config.window_days)
    p = _window(facts["prs"], start, end)
    rows, sc = scopes.expand(p["entity_ref"].to_numpy(), kinds=("entity", "team", "org"))
    parts = []
    need = config.min_events.pr_flow
    for part in PR_PARTS:
        q = group_quantiles(pd.DataFrame({"scope": sc}), p[part].to_numpy(float)[rows])
        q["metric"] = part
        q["unit"] = "lines" if part == "size" else "hours"
        q["reason"] = _reason(q["n"].to_numpy(), need, "merged pull requests")
        q.loc[q["reason"].notna(), ["p50", "p75", "p90"]] = np.nan
        parts.append(q)
    flow = pd.concat(parts, ignore_index=True).rename(columns={"n": "events"})
    flow = pd.concat([scopes.names.iloc[flow["scope"].to_numpy()].reset_index(drop=True), flow.drop(columns=["scope"]).reset_index(drop=True)], axis=1)
    n_scopes = len(scopes.names)
    merged = np.bincount(sc, minlength=n_scopes)
    unreviewed = np.bincount(sc, weights=(~p["reviewed"].to_numpy(bool))[rows].astype(float), minlength=n_scopes)
    # sizes
    lines = p["size"].to_numpy(float)[rows]
    bucket = np.searchsorted(np.array([b for _, b in SIZE_BUCKETS]), lines, side="left")
    nb = len(SIZE_BUCKETS)
    counts = np.bincount(sc * nb + bucket, minlength=n_scopes * nb).reshape(n_scopes, nb)
    seen = np.flatnonzero(merged > 0)
    sizes = pd.DataFrame({"scope": np.repeat(seen, nb), "bucket": np.tile([b for b, _ in SIZE_BUCKETS], len(seen)),
                          "prs": counts[seen].ravel()})
    sizes["share"] = sizes["prs"] / np.repeat(merged[seen], nb)
    sizes = pd.concat([scopes.names.iloc[sizes["scope"].to_numpy()].reset_index(drop=True), sizes.drop(columns=["scope"])], axis=1)
    # open and stale
    if open_prs is None:
        open_prs = pd.DataFrame({"entity_ref": [], "repository": [], "number": [], "url": [], "draft": [], "age_days": []})
    orow, osc = scopes.expand(open_prs["entity_ref"].to_numpy())
    age = open_prs["age_days"].to_numpy(float)[orow]
    stale_mask = age > config.stale_pr_days
    open_n = np.bincount(osc, minlength=n_scopes)
    stale_n = np.bincount(osc, weights=stale_mask.astype(float), minlength=n_scopes)
    summary = scopes.names.copy()
    summary["merged"] = merged
    summary["merged_without_review"] = unreviewed.astype(np.int64)
    summary["share_merged_without_review"] = np.divide(unreviewed, merged, out=np.full(n_scopes, np.nan), where=merged >= need)
    summary["open_prs"] = open_n
    summary["stale_prs"] = stale_n.astype(np.int64)
    summary["reason"] = _reason(merged, need, "merged pull requests")
    summary = summary[(summary["merged"] > 0) | (summary["open_prs"] > 0) | (summary["scope_type"] != "entity")].reset_index(drop=True)
    st = pd.DataFrame({"scope": osc[stale_mask], "row": orow[stale_mask], "age_days": age[stale_mask]})
    st = st[scopes.names["scope_type"].to_numpy()[st["scope"].to_numpy()] != "org"] if len(st) else st
    st = st.sort_values(["scope", "age_days"], ascending=[True, False], kind="stable")
    st["rank"] = st.groupby("scope").cumcount() + 1
    st = st[st["rank"] <= config.stalest_shown]
    o = open_prs.iloc[st["row"].to_numpy()].reset_index(drop=True)
    stale = pd.concat([scopes.names.iloc[st["scope"].to_numpy()].reset_index(drop=True),
                       pd.DataFrame({"rank": st["rank"].to_numpy()}),
                       o[["entity_ref", "repository", "number", "url", "draft", "age_days"]]], axis=1)
    return {"pr_flow": flow[["scope_type", "scope_ref", "metric", "unit", "p50", "p75", "p90", "events", "reason"]],
            "pr_summary": summary, "pr_sizes": sizes[["scope_type", "scope_ref", "bucket", "prs", "share"]], "stale_prs": stale}


def review_load(facts: Mapping[str, pd.DataFrame], scopes: Scopes, config: DeliveryConfig, as_of: date) -> dict[str, pd.DataFrame]:
    """Reviews per reviewer over the window, for teams and the organisation (never one entity):
    `review_load` (reviewers, reviews, per-reviewer p50/p75/p90, share of reviews done by the top
    fifth of reviewers) and `reviewer_load` (per pseudonymised reviewer). A scope with fewer than
    `config.min_people` reviewers shows no figure about its reviewers (suppressed)."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    r = _window(facts["reviews"], end - pd.Timedelta(days=config.window_days), end)
    rows, sc = scopes.expand(r["entity_ref"].to_numpy(), kinds=("team", "org"))
    per = pd.DataFrame({"scope": sc, "reviewer": r["reviewer"].to_numpy()[rows], "pr": (r["repository"] + "#" + r["number"].astype(str)).to_numpy()[rows]})
    load = per.groupby(["scope", "reviewer"], as_index=False, sort=False).agg(reviews=("pr", "size"), prs_reviewed=("pr", "nunique"))
    q = group_quantiles(load[["scope"]], load["reviews"].to_numpy(float))
    load = load.sort_values(["scope", "reviews"], ascending=[True, False], kind="stable")
    load["rank"] = load.groupby("scope").cumcount()
    reviewers = load.groupby("scope")["reviewer"].transform("size")
    top = load[load["rank"] < np.ceil(reviewers * 0.2)].groupby("scope")["reviews"].sum()
    total = load.groupby("scope")["reviews"].sum()
    q["reviews"] = q["scope"].map(total).to_numpy()
    q["top_fifth_share"] = (q["scope"].map(top) / q["reviews"]).to_numpy()
    q = q.rename(columns={"n": "reviewers"})
    suppressed = q["reviewers"] < config.min_people
    q.loc[suppressed, ["reviewers", "reviews", "p50", "p75", "p90", "top_fifth_share"]] = np.nan
    q["suppressed"] = suppressed
    summary = pd.concat([scopes.names.iloc[q["scope"].to_numpy()].reset_index(drop=True), q.drop(columns=["scope"])], axis=1)
    shown = load[load["scope"].isin(q.loc[~suppressed, "scope"])]
    per_reviewer = pd.concat([scopes.names.iloc[shown["scope"].to_numpy()].reset_index(drop=True),
                              shown[["reviewer", "reviews", "prs_reviewed"]].reset_index(drop=True)], axis=1)
    return {"review_load": summary[["scope_type", "scope_ref", "reviewers", "reviews", "p50", "p75", "p90", "top_fifth_share", "suppressed"]],
            "reviewer_load": per_reviewer}


def delivery_metrics(facts: Mapping[str, pd.DataFrame], entities: pd.DataFrame, org: OrgGraph | None, config: DeliveryConfig,
                     *, as_of: date, open_prs: pd.DataFrame | None = None, scopes: Scopes | None = None) -> dict[str, pd.DataFrame]:
    """Every published delivery table (by name: `dora_summary`, `dora_weekly`, `pr_flow`,
    `pr_summary`, `pr_sizes`, `stale_prs`, `review_load`, `reviewer_load`, `incidents_summary`)."""
    scopes = scopes or Scopes(entities, org)
    out = {"dora_summary": dora_summary(facts, scopes, config, as_of), "dora_weekly": dora_weekly(facts, scopes, config, as_of)}
    out.update(pr_flow(facts, scopes, config, as_of, open_prs))
    out.update(review_load(facts, scopes, config, as_of))
    end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    inc = _window(facts["incidents"], end - pd.Timedelta(days=config.window_days), end)
    dd = _window(facts["deploy_days"], end - pd.Timedelta(days=config.window_days), end)
    out["incidents_summary"] = pd.DataFrame([{
        "window_start": (end - pd.Timedelta(days=config.window_days)).date(), "window_end": as_of,
        "incidents": len(inc), "without_service": int(inc["entity_ref"].isna().sum()),
        "unresolved": int(inc["restore_h"].isna().sum()),
        "deployments": int(dd["deployments"].sum()), "unlinked_deployments": int(dd["unlinked"].sum()),
        "rollbacks": int((dd["deployments"] - dd["changes_deployed"]).sum())}])
    return out


__all__ = ["METRICS", "Scopes", "band_of", "daily_facts", "delivery_metrics", "dora_summary", "dora_weekly", "group_quantiles",
           "iso_week", "local_day", "merge_facts", "open_pull_requests", "pr_flow", "review_load"]
