"""What an evaluation means for people: history, regressions, roll-ups, campaigns, what to fix next.

History is kept as a change log: the first evaluation writes every (entity, check) state, each
later one writes only the pairs whose state changed (or that disappeared, as `removed`). Together
with the per-evaluation summary this keeps every evaluation (`state_at` rebuilds any of them)
without storing 200,000 × 25 rows each time.

Roll-ups count entities per owning group *and every ancestor group* (through
`OrgGraph.rollup_frame`, shared by every per-team insight), per system, per domain and for the
whole organisation (`scope_ref = "*"`).
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from analytics.org import OrgGraph
from analytics.scorecards.evaluate import STATES
from analytics.scorecards.config import ScorecardConfig

REMOVED = "removed"
REGRESSED_TO = ("failed", "warning")
ORG_SCOPE = "*"


def _objects(values: pd.Series) -> np.ndarray:
    """A column as a numpy object array, cheaply for categoricals (no string round trip)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        out = values.cat.categories.to_numpy(dtype=object)[np.maximum(codes, 0)]
        if (codes < 0).any():
            out = out.copy()
            out[codes < 0] = None
        return out
    return values.to_numpy(dtype=object)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain strings, so frames from different evaluations compare and store."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(str)
    return out


# ---------------------------------------------------------------------------------------------
# history


def _pair_codes(prev: pd.DataFrame, cur: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """One int64 key per (a, b) pair, consistent across the two frames."""
    a_codes, _ = pd.factorize(np.concatenate([_objects(prev[a]), _objects(cur[a])]))
    b_codes, b_uniques = pd.factorize(np.concatenate([_objects(prev[b]), _objects(cur[b])]))
    key = a_codes.astype(np.int64) * max(len(b_uniques), 1) + b_codes
    return key[: len(prev)], key[len(prev) :]


def result_changes(previous: pd.DataFrame | None, current: pd.DataFrame, evaluation_id: int, evaluated_at: datetime) -> pd.DataFrame:
    """Rows whose state differs from the previous evaluation (all rows the first time).

    Pairs are matched on integer keys, not by merging millions of string rows.
    """
    columns = ["evaluation_id", "evaluated_at", "entity_ref", "check_id", "previous_state", "state"]
    cur = current[["entity_ref", "check_id", "state"]]
    if previous is None or previous.empty:
        out = _plain(cur).assign(previous_state=None)
    else:
        prev = previous[["entity_ref", "check_id", "state"]]
        prev_key, cur_key = _pair_codes(prev, cur, "entity_ref", "check_id")
        where = pd.Index(prev_key).get_indexer(cur_key)
        prev_state = _objects(prev["state"])
        cur_state = _objects(cur["state"])
        before = np.where(where >= 0, prev_state[np.maximum(where, 0)], None)
        changed = (where < 0) | (before != cur_state)
        gone = ~pd.Index(prev_key).isin(cur_key)
        out = pd.concat(
            [
                pd.DataFrame({"entity_ref": _objects(cur["entity_ref"])[changed], "check_id": _objects(cur["check_id"])[changed], "previous_state": before[changed], "state": cur_state[changed]}),
                pd.DataFrame({"entity_ref": _objects(prev["entity_ref"])[gone], "check_id": _objects(prev["check_id"])[gone], "previous_state": prev_state[gone], "state": REMOVED}),
            ],
            ignore_index=True,
        )
    out = out.assign(evaluation_id=evaluation_id, evaluated_at=_naive(evaluated_at))
    return out[columns].reset_index(drop=True)


def level_changes(previous: pd.DataFrame | None, current: pd.DataFrame, evaluation_id: int, evaluated_at: datetime) -> pd.DataFrame:
    """Per (entity, track): level changes since the previous evaluation (all rows the first time)."""
    cur = current[["entity_ref", "track_id", "level"]]
    columns = ["evaluation_id", "evaluated_at", "entity_ref", "track_id", "previous_level", "level"]
    if previous is None or previous.empty:
        merged = cur.assign(previous_level=np.nan)
    else:
        prev = previous[["entity_ref", "track_id", "level"]].rename(columns={"level": "previous_level"})
        merged = prev.merge(cur, on=["entity_ref", "track_id"], how="outer")
        merged = merged[merged["level"].ne(merged["previous_level"]) & ~(merged["level"].isna() & merged["previous_level"].isna())]
    merged = merged.assign(evaluation_id=evaluation_id, evaluated_at=_naive(evaluated_at))
    return merged[columns].reset_index(drop=True)


def state_at(changes: pd.DataFrame, evaluation_id: int) -> pd.DataFrame:
    """Every (entity, check) state as it was after evaluation `evaluation_id`."""
    upto = changes[changes["evaluation_id"] <= evaluation_id].sort_values("evaluation_id", kind="stable")
    last = upto.groupby(["entity_ref", "check_id"], sort=True).tail(1)
    return last[last["state"] != REMOVED][["entity_ref", "check_id", "state"]].sort_values(["entity_ref", "check_id"]).reset_index(drop=True)


def regressions(changes: pd.DataFrame, levels: pd.DataFrame, entities: pd.DataFrame) -> pd.DataFrame:
    """Pass→fail transitions of checks and drops in certification level, each with its owner.

    `changes` are this evaluation's `result_changes` and `levels` its `level_changes`.
    """
    owner = entities.set_index("entity_ref")["owner"]
    checks = changes[(changes["previous_state"] == "passed") & changes["state"].isin(REGRESSED_TO)]
    check_rows = pd.DataFrame(
        {
            "evaluation_id": checks["evaluation_id"],
            "evaluated_at": checks["evaluated_at"],
            "owner": checks["entity_ref"].map(owner),
            "entity_ref": checks["entity_ref"],
            "subject_type": "check",
            "subject_id": checks["check_id"],
            "previous": checks["previous_state"],
            "current": checks["state"],
        }
    )
    drops = levels[levels["previous_level"].notna() & levels["level"].notna() & (levels["level"] < levels["previous_level"])]
    track_rows = pd.DataFrame(
        {
            "evaluation_id": drops["evaluation_id"],
            "evaluated_at": drops["evaluated_at"],
            "owner": drops["entity_ref"].map(owner),
            "entity_ref": drops["entity_ref"],
            "subject_type": "track",
            "subject_id": drops["track_id"],
            "previous": drops["previous_level"].astype(int).astype(str),
            "current": drops["level"].astype(int).astype(str),
        }
    )
    out = pd.concat([check_rows, track_rows], ignore_index=True)
    out["owner"] = out["owner"].fillna("(unowned)")
    return out.sort_values(["owner", "entity_ref", "subject_type", "subject_id"]).reset_index(drop=True)


def regression_digest(regression_rows: pd.DataFrame) -> pd.DataFrame:
    """One row per owner: what regressed, deduplicated (one notification per owner, not per row)."""
    columns = ["owner", "entities", "check_regressions", "track_regressions", "summary"]
    if regression_rows.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for owner, group in regression_rows.groupby("owner", sort=True):
        checks = group[group["subject_type"] == "check"]
        tracks = group[group["subject_type"] == "track"]
        parts = [f"{e}: {', '.join(sorted(g['subject_id']))}" for e, g in checks.groupby("entity_ref")]
        parts += [f"{r.entity_ref}: {r.subject_id} level {r.previous}→{r.current}" for r in tracks.itertuples()]
        rows.append({"owner": owner, "entities": group["entity_ref"].nunique(), "check_regressions": len(checks), "track_regressions": len(tracks), "summary": "; ".join(parts)})
    return pd.DataFrame(rows, columns=columns)


def _naive(ts: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


# ---------------------------------------------------------------------------------------------
# roll-ups


def scopes(entities: pd.DataFrame, org: OrgGraph) -> pd.DataFrame:
    """Each entity's scopes: its owner and every ancestor group, its system, its domain, the org."""
    rollup = org.rollup_frame()
    owned = entities[["entity_ref", "owner"]].dropna(subset=["owner"])
    known = owned.merge(rollup, left_on="owner", right_on="group_ref", how="inner")[["entity_ref", "rollup_ref"]]
    # An owner the org graph does not know (a user, an unresolved group) still gets its own row.
    unknown = owned[~owned["owner"].isin(rollup["group_ref"])].rename(columns={"owner": "rollup_ref"})
    parts = [
        pd.concat([known, unknown], ignore_index=True).rename(columns={"rollup_ref": "scope_ref"}).assign(scope_type="group"),
        entities[["entity_ref", "system"]].dropna().rename(columns={"system": "scope_ref"}).assign(scope_type="system"),
        entities[["entity_ref", "domain"]].dropna().rename(columns={"domain": "scope_ref"}).assign(scope_type="domain"),
        entities[["entity_ref"]].assign(scope_ref=ORG_SCOPE, scope_type="org"),
    ]
    return pd.concat(parts, ignore_index=True)[["entity_ref", "scope_type", "scope_ref"]]


def rollup_levels(levels: pd.DataFrame, entities: pd.DataFrame, org: OrgGraph, tracks: pd.DataFrame) -> pd.DataFrame:
    """Per scope and track: how many entities sit at each level (0 = not certified).

    `tracks` is `analytics.scorecards.evaluate.track_frame(config)` (as stored with the evaluation).
    """
    columns = ["scope_type", "scope_ref", "track_id", "level", "level_name", "entities", "share"]
    if levels.empty:
        return pd.DataFrame(columns=columns)
    scoped = levels[["entity_ref", "track_id", "level"]].merge(scopes(entities, org), on="entity_ref")
    counts = scoped.groupby(["scope_type", "scope_ref", "track_id", "level"]).size().rename("entities").reset_index()
    # Every level appears for every scope, with 0 where nobody is there, so trends line up.
    named = tracks[["track_id", "level", "level_name"]].drop_duplicates()
    grid_frame = pd.concat([pd.DataFrame({"track_id": named["track_id"].unique(), "level": 0, "level_name": "none"}), named], ignore_index=True)
    keys = counts[["scope_type", "scope_ref", "track_id"]].drop_duplicates()
    full = keys.merge(grid_frame, on="track_id").merge(counts, on=["scope_type", "scope_ref", "track_id", "level"], how="left")
    full["entities"] = full["entities"].fillna(0).astype(int)
    total = full.groupby(["scope_type", "scope_ref", "track_id"])["entities"].transform("sum")
    full["share"] = (full["entities"] / total).round(4)
    return full[columns].sort_values(["scope_type", "scope_ref", "track_id", "level"]).reset_index(drop=True)


def rollup_summary(levels: pd.DataFrame, entities: pd.DataFrame, org: OrgGraph) -> pd.DataFrame:
    """Per scope and track: entities, mean level, share certified (level ≥ 1), share at the top."""
    columns = ["scope_type", "scope_ref", "track_id", "entities", "mean_level", "certified_share", "top_level_share", "check_pass_rate"]
    if levels.empty:
        return pd.DataFrame(columns=columns)
    scoped = levels.merge(scopes(entities, org), on="entity_ref")
    scoped["certified"] = scoped["level"] >= 1
    scoped["top"] = scoped["level"] == scoped["max_level"]
    grouped = scoped.groupby(["scope_type", "scope_ref", "track_id"])
    out = grouped.agg(entities=("entity_ref", "size"), mean_level=("level", "mean"), certified_share=("certified", "mean"), top_level_share=("top", "mean"), passed=("checks_passed", "sum"), total=("checks_total", "sum")).reset_index()
    out["check_pass_rate"] = (out["passed"] / out["total"].where(out["total"] > 0)).round(4)
    for column in ("mean_level", "certified_share", "top_level_share"):
        out[column] = out[column].round(4)
    return out[columns]


def rollup_checks(results: pd.DataFrame, entities: pd.DataFrame, org: OrgGraph) -> pd.DataFrame:
    """Per scope and check: counts of each state and the pass rate among applicable entities.

    Counted with integer codes per owner, system and domain (one `bincount` each), then summed up
    the group hierarchy: the results are never multiplied by the number of scopes.
    """
    columns = ["scope_type", "scope_ref", "check_id", *STATES, "exempted", "applicable", "pass_rate"]
    if results.empty:
        return pd.DataFrame(columns=columns)
    ref_codes, ref_uniques = pd.factorize(_objects(results["entity_ref"]))
    check_codes, check_uniques = pd.factorize(_objects(results["check_id"]))
    state_codes = pd.Categorical(_objects(results["state"]), categories=list(STATES)).codes.astype(np.int64)
    exempted = results["exempted"].to_numpy(dtype=bool)
    info = entities.drop_duplicates("entity_ref").set_index("entity_ref").reindex(pd.Index(ref_uniques))
    n_checks, n_states = len(check_uniques), len(STATES)
    parts = []
    for scope_type, column in (("group", "owner"), ("system", "system"), ("domain", "domain"), ("org", None)):
        scope_of_ref = np.full(len(ref_uniques), ORG_SCOPE, dtype=object) if column is None else info[column].to_numpy(dtype=object)
        scope_codes_of_ref, scope_uniques = pd.factorize(pd.Series(scope_of_ref, dtype=object))
        row_scope = scope_codes_of_ref[ref_codes]
        keep = row_scope >= 0
        n_scopes = len(scope_uniques)
        if n_scopes == 0:
            continue
        flat = (row_scope[keep].astype(np.int64) * n_checks + check_codes[keep]) * n_states + state_codes[keep]
        counts = np.bincount(flat, minlength=n_scopes * n_checks * n_states).reshape(n_scopes, n_checks, n_states)
        ex = np.bincount(row_scope[keep].astype(np.int64) * n_checks + check_codes[keep], weights=exempted[keep], minlength=n_scopes * n_checks).reshape(n_scopes, n_checks)
        scope_names = np.asarray(scope_uniques, dtype=object)
        if scope_type == "group":
            # Sum every owner's counts into itself and each ancestor group.
            rollup = org.rollup_frame()
            position = {name: i for i, name in enumerate(scope_names)}
            groups = set(rollup["group_ref"])
            pairs = [(position[g], r) for g, r in zip(rollup["group_ref"].to_numpy(dtype=object), rollup["rollup_ref"].to_numpy(dtype=object), strict=True) if g in position]
            pairs += [(i, name) for i, name in enumerate(scope_names) if name not in groups]
            targets, target_names = pd.factorize(pd.Series([r for _, r in pairs], dtype=object))
            sources = np.array([s for s, _ in pairs], dtype=np.int64)
            summed = np.zeros((len(target_names), n_checks, n_states), dtype=np.int64)
            np.add.at(summed, targets, counts[sources])
            summed_ex = np.zeros((len(target_names), n_checks))
            np.add.at(summed_ex, targets, ex[sources])
            counts, ex, scope_names = summed, summed_ex, np.asarray(target_names, dtype=object)
        total = counts.sum(axis=2)
        s_idx, c_idx = np.nonzero(total)
        frame = pd.DataFrame(counts[s_idx, c_idx], columns=list(STATES))
        frame.insert(0, "check_id", np.asarray(check_uniques, dtype=object)[c_idx])
        frame.insert(0, "scope_ref", scope_names[s_idx])
        frame.insert(0, "scope_type", scope_type)
        frame["exempted"] = ex[s_idx, c_idx].astype(int)
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    out["applicable"] = out[[s for s in STATES if s != "not_applicable"]].sum(axis=1)
    out["pass_rate"] = (out["passed"] / out["applicable"].where(out["applicable"] > 0)).round(4)
    return out[columns].sort_values(["scope_type", "scope_ref", "check_id"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# campaigns and what to fix next


def campaign_progress(members: pd.DataFrame, entities: pd.DataFrame, org: OrgGraph, campaigns: pd.DataFrame, today: date) -> pd.DataFrame:
    """Per campaign, per team (rolled up) and for the org: entities in scope, done, share, status.

    `campaigns` is `analytics.scorecards.evaluate.campaign_frame(config)` (as stored with the evaluation).
    """
    columns = ["campaign_id", "scope_type", "scope_ref", "entities", "done", "share_done", "deadline", "days_left", "status"]
    if members.empty:
        return pd.DataFrame(columns=columns)
    all_scopes = scopes(entities, org)
    scoped = members.merge(all_scopes[all_scopes["scope_type"].isin(["group", "org"])], on="entity_ref")
    out = scoped.groupby(["campaign_id", "scope_type", "scope_ref"]).agg(entities=("entity_ref", "size"), done=("done", "sum")).reset_index()
    out["share_done"] = (out["done"] / out["entities"]).round(4)
    deadline = pd.to_datetime(out["campaign_id"].map(dict(zip(campaigns["campaign_id"], campaigns["deadline"], strict=True))))
    out["deadline"] = deadline.dt.strftime("%Y-%m-%d")
    out["days_left"] = (deadline - pd.Timestamp(today)).dt.days
    out["status"] = np.where(out["done"] == out["entities"], "done", np.where(out["days_left"] < 0, "overdue", "open"))
    return out[columns]


def fix_next(candidates: pd.DataFrame, entities: pd.DataFrame, org: OrgGraph, *, per_scope: int = 20) -> pd.DataFrame:
    """Per team (rolled up the hierarchy): the checks whose fixing unlocks the most levels.

    `levels_unlocked` adds up, over the team's entities, the levels each fix unlocks (shared among
    the blockers of the same level); ties go to fixes that unlock a level on their own, then to the
    check that blocks more entities.
    """
    columns = ["scope_ref", "rank", "track_id", "level", "check_id", "entities", "sole_blocker_entities", "levels_unlocked"]
    if candidates.empty:
        return pd.DataFrame(columns=columns)
    all_scopes = scopes(entities, org)
    scoped = candidates.merge(all_scopes[all_scopes["scope_type"] == "group"], on="entity_ref")
    grouped = scoped.groupby(["scope_ref", "track_id", "level", "check_id"])
    out = grouped.agg(entities=("entity_ref", "size"), sole_blocker_entities=("sole_blocker", "sum"), levels_unlocked=("levels_unlocked", "sum")).reset_index()
    out["levels_unlocked"] = out["levels_unlocked"].round(3)
    # Ties: a fix that unlocks a level on its own beats half of a pair; then the broader fix.
    out = out.sort_values(["scope_ref", "levels_unlocked", "sole_blocker_entities", "entities", "level", "check_id"], ascending=[True, False, False, False, True, True])
    out["rank"] = out.groupby("scope_ref").cumcount() + 1
    return out[out["rank"] <= per_scope][columns].reset_index(drop=True)


def evaluation_summary(results: pd.DataFrame, evaluation_id: int, evaluated_at: datetime, config: ScorecardConfig, n_entities: int, n_regressions: int, errors: list[str]) -> pd.DataFrame:
    """One row describing an evaluation: when, which configuration, how many of each state."""
    counts = results["state"].astype(str).value_counts()
    row = {
        "evaluation_id": evaluation_id,
        "evaluated_at": _naive(evaluated_at),
        "config_digest": config.digest,
        "checks": len(config.checks),
        "tracks": len(config.tracks),
        "entities": n_entities,
        "results": len(results),
        **{state: int(counts.get(state, 0)) for state in STATES},
        "exempted": int(results["exempted"].sum()) if len(results) else 0,
        "regressions": n_regressions,
        "errors": "\n".join(errors),
    }
    return pd.DataFrame([row])
