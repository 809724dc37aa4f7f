"""R&D pulse surveys: definitions (YAML) and the trend metrics computed from validated responses.

A survey definition names its questions (Likert 1-5, NPS 0-10, single/multi choice, free text),
ties each to a dimension (satisfaction, flow, cognitive load, feedback loops, tooling, ...) and lists
its waves. Responses are validated and pseudonymised by `analytics.surveys.ingest`; this module turns
them into figures per wave x team (rolled up the group hierarchy) x dimension and hides every figure
the anonymity rules of `analytics.surveys.anonymity` say must not be shown.

Every figure is a mean over respondents of a per-respondent value, so that one set of sufficient
statistics (n, sum, sum of squares) serves the point estimate, the confidence interval, the roll-up
(sums add up the hierarchy) and the wave-over-wave test:

- `mean`: the respondent's mean Likert answer in the dimension (1-5);
- `top2_pct`: 100 x the share of the respondent's Likert answers that are 4 or 5 ("favourable");
- `enps`: 100 x the respondent's mean NPS class (promoter 9-10 = +1, passive 7-8 = 0, detractor
  0-6 = -1), which is the usual %promoters - %detractors;
- `response_rate`: respondents / invited x 100 (a census count: no interval, no test).

Intervals are Student-t 95% intervals on the respondent values; wave-over-wave changes are tested
with Welch's t-test on the same statistics. The respondent, not the answer, is the unit throughout,
because answers from one person are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analytics.org import OrgGraph
from analytics.surveys.anonymity import Hierarchy, find_disclosures, suppress
from analytics.surveys.config import (  # noqa: F401 - re-exported: the survey API in one import
    CONSENT,
    DEFAULT_MIN_GROUP_SIZE,
    MIN_GROUP_SIZE_FLOOR,
    PARTICIPATION,
    QUESTION_TYPES,
    RESPONDENT,
    TEAM,
    CollapseThresholds,
    Dimension,
    ExportFormat,
    Question,
    SurveyConfigError,
    SurveyDefinition,
    Wave,
    load_survey,
    load_surveys,
    parse_survey,
)


# --- metrics ------------------------------------------------------------------------------------


@dataclass
class WaveData:
    """One wave as stored by ingestion: the wide response frame and invited counts per team."""

    responses: pd.DataFrame
    invited: pd.DataFrame  # team_ref, invited


@dataclass
class SurveyInsights:
    """What the surveys area publishes. Every frame is already anonymity-filtered."""

    trends: pd.DataFrame
    choices: pd.DataFrame
    comments: pd.DataFrame
    waves: pd.DataFrame
    stats: dict[str, int] = field(default_factory=dict)
    disclosures: list[str] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: list["SurveyInsights"]) -> "SurveyInsights":
        def cat(name: str, columns: list[str]) -> pd.DataFrame:
            frames = [getattr(p, name) for p in parts if len(getattr(p, name))]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)

        stats: dict[str, int] = {}
        for p in parts:
            for key, value in p.stats.items():
                stats[key] = stats.get(key, 0) + value
        return cls(
            cat("trends", TREND_COLUMNS), cat("choices", CHOICE_COLUMNS), cat("comments", COMMENT_COLUMNS),
            cat("waves", WAVE_COLUMNS), stats, [d for p in parts for d in p.disclosures],
        )


TREND_COLUMNS = [
    "survey", "wave", "wave_order", "wave_title", "group_ref", "group_name", "group_type", "parent_ref",
    "depth", "dimension", "dimension_title", "metric", "respondents", "invited", "value", "ci_low",
    "ci_high", "previous_wave", "previous_value", "change", "p_value", "significant", "suppressed",
]
CHOICE_COLUMNS = [
    "survey", "wave", "wave_order", "group_ref", "group_name", "question", "question_text", "option",
    "respondents", "chosen", "share_pct", "suppressed",
]
COMMENT_COLUMNS = ["survey", "wave", "wave_order", "group_ref", "group_name", "question", "question_text", "text"]
WAVE_COLUMNS = [
    "survey", "survey_title", "wave", "wave_order", "wave_title", "opens", "closes", "min_group_size",
    "invited", "respondents", "response_rate", "suppressed",
]


def compute_insights(survey: SurveyDefinition, waves: Mapping[str, WaveData], org: OrgGraph) -> SurveyInsights:
    """All published survey figures for the waves present in `waves`, anonymity rules applied.

    Respondents count once per level of the hierarchy: each is stored with one (primary) team, and
    team figures roll up to every ancestor group through `OrgGraph.rollup_frame()`.
    """
    k = survey.min_group_size
    hier = Hierarchy.from_org(org)
    present = [w for w in survey.waves if w.id in waves]
    n_nodes, n_waves = len(hier.refs), len(present)
    if n_waves == 0 or n_nodes == 0:
        return SurveyInsights(*(pd.DataFrame(columns=c) for c in (TREND_COLUMNS, CHOICE_COLUMNS, COMMENT_COLUMNS, WAVE_COLUMNS)))

    frames = []
    unassigned = 0
    node_index = pd.Index(hier.refs)
    for w_idx, wave in enumerate(present):
        frame = waves[wave.id].responses
        team_idx = node_index.get_indexer(frame[TEAM].astype(object).where(frame[TEAM].notna(), None)).astype(np.int64)
        unassigned += int((team_idx < 0).sum())
        keep = team_idx >= 0
        part = frame.loc[keep].reset_index(drop=True)
        part["_code"] = w_idx * n_nodes + team_idx[keep]
        part["_wave"] = w_idx
        frames.append(part)
    data = pd.concat(frames, ignore_index=True)
    code = data["_code"].to_numpy()
    # Transposed once: sparse @ dense is the fast direction for rolling (waves x teams) sums up.
    rollup_t = hier.rollup_matrix().T.tocsr()

    def rolled(values: np.ndarray | None, mask: np.ndarray | None = None) -> np.ndarray:
        """Sum `values` (or count rows) per (wave, team), then roll the sums up the hierarchy."""
        if values is None:
            weights = None if mask is None else mask.astype(np.float64)
        else:
            # Zero-weighting is twice as fast as copying the selected rows out.
            weights = values if mask is None else np.where(mask, values, 0.0)
        leaf = np.bincount(code, weights=weights, minlength=n_waves * n_nodes).reshape(n_waves, n_nodes)
        return np.asarray((rollup_t @ leaf.T).T)

    invited_leaf = np.zeros((n_waves, n_nodes))
    for w_idx, wave in enumerate(present):
        inv = waves[wave.id].invited
        if len(inv):
            idx = inv[TEAM].map(hier.index)
            ok = idx.notna().to_numpy()
            np.add.at(invited_leaf[w_idx], idx[ok].astype(np.int64).to_numpy(), inv["invited"].to_numpy()[ok])
    invited = np.asarray((rollup_t @ invited_leaf.T).T)
    respondents = rolled(None)

    # A group somebody was invited to is present in every layer: zero respondents (or zero answers
    # to a question) is hidden like any count below k, never shown as "0".
    def layer_suppression(n: np.ndarray, layer: str) -> np.ndarray:
        hidden = np.vstack([suppress(hier, n[w], k, invited[w]) for w in range(n_waves)])
        disclosures.extend(f"{present[w].id}/{layer}: {d}" for w in range(n_waves) for d in find_disclosures(hier, n[w], hidden[w], k, invited[w]))
        return hidden

    disclosures: list[str] = []
    hidden_participation = layer_suppression(respondents, PARTICIPATION)
    stats = {"respondents_unassigned": unassigned, "cells_below_k": 0, "cells_complementary": 0}

    def count_suppression(n: np.ndarray, hidden: np.ndarray) -> None:
        present_cells = (n > 0) | (invited > 0)
        primary = present_cells & (n < k)
        stats["cells_below_k"] += int(primary.sum())
        stats["cells_complementary"] += int((hidden & ~primary & present_cells).sum())

    count_suppression(respondents, hidden_participation)
    meta = _group_meta(org, hier)
    wave_meta = pd.DataFrame(
        {"wave": [w.id for w in present], "wave_order": [w.order for w in present], "wave_title": [w.title for w in present]}
    )
    in_scope = (respondents > 0) | (invited > 0)

    trend_parts: list[pd.DataFrame] = []
    # Response rate: one series per group, dimension "participation".
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(invited > 0, 100.0 * respondents / invited, np.nan)
    trend_parts.append(
        _trend_rows(PARTICIPATION, "Participation", "response_rate", respondents, rate, None, None, hidden_participation, in_scope, invited)
    )

    for dim in survey.dimensions:
        likert = [q.id for q in survey.questions if q.dimension == dim.id and q.type == "likert"]
        nps = [q.id for q in survey.questions if q.dimension == dim.id and q.type == "nps"]
        if likert:
            x = _matrix(data, likert)
            answered = (~np.isnan(x)).sum(axis=1)
            has = answered > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_r = np.nansum(x, axis=1) / answered
                fav_r = 100.0 * (x >= 4).sum(axis=1) / answered
            n = rolled(None, has)
            hidden = layer_suppression(n, f"{dim.id}/likert")
            count_suppression(n, hidden)
            for metric, values in (("mean", mean_r), ("top2_pct", fav_r)):
                s1, s2 = rolled(values, has), rolled(values * values, has)
                trend_parts.append(_stat_rows(dim, metric, n, s1, s2, hidden, in_scope, invited, clip=(1, 5) if metric == "mean" else (0, 100)))
        if nps:
            y = _matrix(data, nps)
            cls = np.where(np.isnan(y), np.nan, np.where(y >= 9, 1.0, np.where(y <= 6, -1.0, 0.0)))
            answered = (~np.isnan(y)).sum(axis=1)
            has = answered > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                enps_r = 100.0 * np.nansum(cls, axis=1) / answered
            n = rolled(None, has)
            hidden = layer_suppression(n, f"{dim.id}/nps")
            count_suppression(n, hidden)
            s1, s2 = rolled(enps_r, has), rolled(enps_r * enps_r, has)
            trend_parts.append(_stat_rows(dim, "enps", n, s1, s2, hidden, in_scope, invited, clip=(-100, 100)))

    trends = pd.concat(trend_parts, ignore_index=True)
    trends = _decorate(trends, survey, wave_meta, meta)
    trends = trends[TREND_COLUMNS].sort_values(["wave_order", "depth", "group_ref", "dimension", "metric"], kind="stable")

    choices = _choice_rows(survey, data, present, hier, rolled, in_scope, layer_suppression, count_suppression)
    choices = choices.merge(meta[["group_ref", "group_name"]], on="group_ref", how="left")
    choices.insert(0, "survey", survey.id)
    choices = choices.merge(wave_meta[["wave", "wave_order"]], on="wave", how="left")[CHOICE_COLUMNS]

    comments = _comment_rows(survey, data, present, hier, hidden_participation, meta)

    totals_resp = respondents[:, hier.roots].sum(axis=1)
    totals_inv = invited[:, hier.roots].sum(axis=1)
    # The total is the sum of the root groups: hidden with any of them, or the difference would
    # give the hidden root away.
    root_hidden = (hidden_participation[:, hier.roots] & in_scope[:, hier.roots]).any(axis=1)
    total_hidden = (((totals_resp > 0) | (totals_inv > 0)) & (totals_resp < k)) | root_hidden
    wave_rows = pd.DataFrame(
        {
            "survey": survey.id,
            "survey_title": survey.title,
            "wave": [w.id for w in present],
            "wave_order": [w.order for w in present],
            "wave_title": [w.title for w in present],
            "opens": [w.opens.isoformat() if w.opens else None for w in present],
            "closes": [w.closes.isoformat() if w.closes else None for w in present],
            "min_group_size": k,
            "invited": totals_inv.astype(np.int64),
            "respondents": pd.array(np.where(total_hidden, np.nan, totals_resp), dtype="Int64"),
            "response_rate": np.where(total_hidden | (totals_inv == 0), np.nan, 100.0 * totals_resp / np.where(totals_inv == 0, 1, totals_inv)),
            "suppressed": total_hidden,
        }
    )
    return SurveyInsights(trends.reset_index(drop=True), choices, comments, wave_rows[WAVE_COLUMNS], stats, disclosures)


def _matrix(data: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return np.column_stack([data[c].to_numpy(dtype="float64", na_value=np.nan) for c in columns])


def _t_crit(n: np.ndarray) -> np.ndarray:
    # scipy.special, not scipy.stats: same function, a third of the import time.
    from scipy.special import stdtrit

    df = np.where(n >= 2, n - 1, np.nan)
    return stdtrit(df, 0.975)


def _stat_rows(
    dim: Dimension,
    metric: str,
    n: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    hidden: np.ndarray,
    in_scope: np.ndarray,
    invited: np.ndarray,
    clip: tuple[float, float],
) -> pd.DataFrame:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s1 / n, np.nan)
        var = np.where(n >= 2, np.maximum(s2 - s1 * s1 / np.where(n > 0, n, 1), 0.0) / (n - 1), np.nan)
        sd = np.sqrt(var)
        half = _t_crit(n) * sd / np.sqrt(n)
    low, high = np.clip(mean - half, *clip), np.clip(mean + half, *clip)
    return _trend_rows(dim.id, dim.title, metric, n, mean, (low, high), sd, hidden, in_scope, invited)


def _trend_rows(
    dimension: str,
    dimension_title: str,
    metric: str,
    n: np.ndarray,
    value: np.ndarray,
    ci: tuple[np.ndarray, np.ndarray] | None,
    sd: np.ndarray | None,
    hidden: np.ndarray,
    in_scope: np.ndarray,
    invited: np.ndarray,
) -> pd.DataFrame:
    """Long rows for one series; changes against the previous present wave, hidden cells blanked."""
    n_waves, n_nodes = n.shape
    if metric != "response_rate":  # 0 of N invited is a rate of 0%; a mean of nobody is nothing
        value = np.where(n > 0, value, np.nan)
    shown = ~hidden
    prev_value = np.full_like(value, np.nan)
    change = np.full_like(value, np.nan)
    p_value = np.full_like(value, np.nan)
    if n_waves > 1:
        both = shown[1:] & shown[:-1] & (n[1:] > 0) & (n[:-1] > 0)
        prev_value[1:] = np.where(both, value[:-1], np.nan)
        change[1:] = np.where(both, value[1:] - value[:-1], np.nan)
        if sd is not None:
            p_value[1:] = np.where(both, _welch_p(value[:-1], sd[:-1], n[:-1], value[1:], sd[1:], n[1:]), np.nan)
    low, high = ci if ci is not None else (np.full_like(value, np.nan), np.full_like(value, np.nan))
    w_idx, g_idx = np.nonzero(in_scope)
    h = hidden[w_idx, g_idx]

    def pick(arr: np.ndarray) -> np.ndarray:
        return np.where(h, np.nan, arr[w_idx, g_idx])

    p = pick(p_value)
    return pd.DataFrame(
        {
            "_wave": w_idx,
            "_node": g_idx,
            "dimension": dimension,
            "dimension_title": dimension_title,
            "metric": metric,
            "respondents": pd.array(np.where(h, np.nan, n[w_idx, g_idx]), dtype="Int64"),
            "invited": invited[w_idx, g_idx].astype(np.int64),
            "value": pick(value),
            "ci_low": pick(low),
            "ci_high": pick(high),
            "previous_value": pick(prev_value),
            "change": pick(change),
            "p_value": p,
            "significant": pd.array(np.where(np.isnan(p), None, p < 0.05), dtype="boolean"),
            "suppressed": h,
        }
    )


def _welch_p(m1: np.ndarray, s1: np.ndarray, n1: np.ndarray, m2: np.ndarray, s2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Two-sided Welch t-test p-values from summary statistics (NaN where either side has n < 2)."""
    from scipy.special import stdtr

    with np.errstate(invalid="ignore", divide="ignore"):
        v1, v2 = s1 * s1 / n1, s2 * s2 / n2
        se = np.sqrt(v1 + v2)
        t = (m2 - m1) / se
        df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
        p = 2 * stdtr(df, -np.abs(t))
    # No spread on either side: the difference is certain (p = 0) or there is none (p = 1).
    p = np.where(se == 0, np.where(m1 == m2, 1.0, 0.0), p)
    return np.where((n1 >= 2) & (n2 >= 2), p, np.nan)


def _group_meta(org: OrgGraph, hier: Hierarchy) -> pd.DataFrame:
    names, types = [], []
    for ref in hier.refs:
        info = org.groups.get(ref) or {}
        names.append(info.get("display_name") or info.get("name") or ref.split("/")[-1])
        types.append(info.get("type"))
    return pd.DataFrame(
        {
            "_node": np.arange(len(hier.refs)),
            "group_ref": hier.refs,
            "group_name": names,
            "group_type": types,
            "parent_ref": [hier.refs[p] if p >= 0 else None for p in hier.parent],
            "depth": hier.depth,
        }
    )


def _decorate(rows: pd.DataFrame, survey: SurveyDefinition, wave_meta: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    rows = rows.merge(meta, on="_node", how="left")
    rows["wave"] = wave_meta["wave"].to_numpy()[rows["_wave"].to_numpy()]
    rows["wave_order"] = wave_meta["wave_order"].to_numpy()[rows["_wave"].to_numpy()]
    rows["wave_title"] = wave_meta["wave_title"].to_numpy()[rows["_wave"].to_numpy()]
    previous = np.concatenate([[None], wave_meta["wave"].to_numpy()[:-1]]) if len(wave_meta) else np.array([])
    rows["previous_wave"] = previous[rows["_wave"].to_numpy()]
    rows["survey"] = survey.id
    return rows


def _choice_rows(
    survey: SurveyDefinition,
    data: pd.DataFrame,
    present: list[Wave],
    hier: Hierarchy,
    rolled: Callable[..., np.ndarray],
    in_scope: np.ndarray,
    layer_suppression: Callable[[np.ndarray, str], np.ndarray],
    count_suppression: Callable[[np.ndarray, np.ndarray], None],
) -> pd.DataFrame:
    """Option shares per wave x group for choice questions; each question is its own table layer.
    Every group in scope has rows, hidden when fewer than k answered (zero included)."""
    rows: list[pd.DataFrame] = []
    for q in survey.questions:
        if q.type not in ("single_choice", "multi_choice") or q.id not in data.columns:
            continue
        col = data[q.id]
        if q.type == "single_choice":
            codes = pd.Categorical(col, categories=list(q.options)).codes
            has = codes >= 0
            chosen = [rolled(None, has & (codes == i)) for i in range(len(q.options))]
        else:
            mask = col.to_numpy(dtype="float64", na_value=np.nan)
            has = ~np.isnan(mask)
            bits = np.where(has, mask, 0).astype(np.int64)
            chosen = [rolled(None, has & ((bits >> i) & 1).astype(bool)) for i in range(len(q.options))]
        n = rolled(None, has)
        hidden = layer_suppression(n, q.id)
        count_suppression(n, hidden)
        w_idx, g_idx = np.nonzero(in_scope)
        h = hidden[w_idx, g_idx]
        for i, option in enumerate(q.options):
            c = chosen[i][w_idx, g_idx]
            nn = n[w_idx, g_idx]
            rows.append(
                pd.DataFrame(
                    {
                        "wave": [present[w].id for w in w_idx],
                        "group_ref": [hier.refs[g] for g in g_idx],
                        "question": q.id,
                        "question_text": q.text,
                        "option": option,
                        "respondents": pd.array(np.where(h, np.nan, nn), dtype="Int64"),
                        "chosen": pd.array(np.where(h, np.nan, c), dtype="Int64"),
                        "share_pct": np.where(h, np.nan, 100.0 * c / np.where(nn > 0, nn, 1)),
                        "suppressed": h,
                    }
                )
            )
    columns = ["wave", "group_ref", "question", "question_text", "option", "respondents", "chosen", "share_pct", "suppressed"]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


def _comment_rows(
    survey: SurveyDefinition, data: pd.DataFrame, present: list[Wave], hier: Hierarchy, hidden_participation: np.ndarray, meta: pd.DataFrame
) -> pd.DataFrame:
    """Consented free text, each attached to the lowest group the respondent is in that is shown.

    A comment is never attached to a group below k. Listing it once at the lowest shown ancestor
    tells a reader no more than listing it at every shown ancestor would (the difference between a
    parent's and its shown children's comments is the same set), and stores each comment once.
    Respondent tokens are not carried along, and rows are sorted by text, so comments cannot be
    linked to one another or to a respondent.
    """
    text_questions = [q for q in survey.questions if q.type == "free_text" and q.id in data.columns]
    if not text_questions or not len(data):
        return pd.DataFrame(columns=COMMENT_COLUMNS)
    team_idx = (data["_code"].to_numpy() % len(hier.refs)).astype(np.int64)
    wave_idx = data["_wave"].to_numpy()
    consent = data[CONSENT].fillna(False).to_numpy(dtype=bool) if CONSENT in data.columns else np.zeros(len(data), bool)
    # For each wave and group: the lowest shown ancestor-or-self (-1: none).
    target = np.full(hidden_participation.shape, -1, dtype=np.int64)
    for w in range(len(present)):
        for node in hier.topological:  # parents first
            if not hidden_participation[w, node]:
                target[w, node] = node
            elif hier.parent[node] >= 0:
                target[w, node] = target[w, hier.parent[node]]
    parts = []
    for q in text_questions:
        text = data[q.id]
        ok = consent & text.notna().to_numpy() & (text.fillna("").str.strip() != "").to_numpy()
        dest = target[wave_idx[ok], team_idx[ok]]
        keep = dest >= 0
        parts.append(
            pd.DataFrame(
                {
                    "survey": survey.id,
                    "wave": [present[w].id for w in wave_idx[ok][keep]],
                    "wave_order": [present[w].order for w in wave_idx[ok][keep]],
                    "_node": dest[keep],
                    "question": q.id,
                    "question_text": q.text,
                    "text": text.to_numpy()[ok][keep],
                }
            )
        )
    out = pd.concat(parts, ignore_index=True).merge(meta[["_node", "group_ref", "group_name"]], on="_node", how="left")
    out["text"] = out["text"].astype(str).str.strip()
    return out.sort_values(["wave_order", "group_ref", "question", "text"], kind="stable")[COMMENT_COLUMNS].reset_index(drop=True)


# --- checks on published figures -------------------------------------------------------------------


def response_rate_collapses(waves_table: pd.DataFrame, thresholds: CollapseThresholds) -> pd.DataFrame:
    """Waves whose overall response rate collapsed against the previous wave of the same survey.

    Returns rows `survey, wave, previous_wave, previous_rate, response_rate, reason`.
    """
    out = []
    for survey_id, frame in waves_table.sort_values("wave_order").groupby("survey", sort=False):
        previous = None
        for row in frame.itertuples(index=False):
            rate = row.response_rate
            if rate is None or (isinstance(rate, float) and math.isnan(rate)):
                previous = None
                continue
            reason = None
            if rate < thresholds.min_rate_pct:
                reason = f"below {thresholds.min_rate_pct:g}%"
            elif previous is not None and rate < previous[1] * (1 - thresholds.max_relative_drop):
                reason = f"fell more than {thresholds.max_relative_drop:.0%} from {previous[1]:.1f}%"
            if reason:
                out.append((survey_id, row.wave, previous[0] if previous else None, previous[1] if previous else None, rate, reason))
            previous = (row.wave, rate)
    return pd.DataFrame(out, columns=["survey", "wave", "previous_wave", "previous_rate", "response_rate", "reason"])
