"""The last gate before survey figures reach anyone: the k-threshold verified on the tables as read.

Dagster-free and pandas-only, so that every door that publishes figures about people runs the same
check, in its own run or process, on exactly the frames it is about to write or show:

- `survey_trends` before writing its tables (nothing is written when it fails) and again on what
  the database then holds (its blocking check `published_figures_respect_k`);
- `dashboards.build_site`, so the `dashboards_site` asset, `catalog-pipelines dashboards build`
  and every audience copy (`--audience`, the asset's `audiences`): survey figures are left out of
  the site when the tables fail;
- the survey CLI (`surveys trends|waves|comments`), which refuses to print.

The rule is the one the tables are built with (`analytics.surveys.trends`): a figure is shown only when
it is about at least k respondents. Zero is a count below k: "0 of 2 invited" is never shown.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from analytics.surveys.config import MIN_GROUP_SIZE_FLOOR
from catalog_pipelines.model.insight_tables import SURVEYS

TABLES = tuple(t.name for t in SURVEYS.tables())  # declared in catalog_pipelines.model.insight_tables


def _flags(frame: pd.DataFrame) -> pd.Series:
    return frame["suppressed"].fillna(True).astype(bool) if "suppressed" in frame.columns else pd.Series(False, index=frame.index)


def _below(frame: pd.DataFrame, limit: pd.Series) -> pd.Series:
    """Shown rows whose respondents are missing, zero or below the survey's k (or whose k is unknown)."""
    respondents = pd.to_numeric(frame["respondents"], errors="coerce") if "respondents" in frame.columns else pd.Series(float("nan"), index=frame.index)
    return ~_flags(frame) & (respondents.isna() | limit.isna() | (respondents < limit))


def k_violations(tables: Mapping[str, pd.DataFrame | None]) -> list[str]:
    """Every figure in the survey tables that breaks the k-threshold (empty when none).

    `tables` maps "trends", "choices", "comments" and "waves" to frames as the insight store
    holds them (missing or None: not published). Checked: no shown trend, choice or wave total about
    fewer than k respondents (zero included) or about an unknown count; no suppressed row carrying
    a figure; no comment under a group that is not shown in its wave; every survey's k is known and
    at least the floor.
    """
    present = {name: frame for name in TABLES if (frame := tables.get(name)) is not None and len(frame)}
    if not present:
        return []
    waves = present.get("waves")
    if waves is None:
        return [f"waves: missing, so k is unknown; the {', '.join(sorted(present))} table(s) may not be shown"]
    k = waves.groupby("survey")["min_group_size"].min()
    problems = [f"waves: survey {s!r} has k = {int(v)}, below the floor of {MIN_GROUP_SIZE_FLOOR}" for s, v in k.items() if v < MIN_GROUP_SIZE_FLOOR]
    k = k.clip(lower=MIN_GROUP_SIZE_FLOOR)
    trends = present.get("trends")
    if trends is not None:
        low = trends[_below(trends, trends["survey"].map(k))]
        problems += [f"trends: {r.wave} {r.group_ref} {r.dimension}/{r.metric} shown with {_count(r.respondents)} respondents" for r in low.itertuples()]
        blank = trends[_flags(trends) & (trends["value"].notna() | trends["respondents"].notna())]
        problems += [f"trends: {r.wave} {r.group_ref} {r.dimension}/{r.metric} is suppressed but carries figures" for r in blank.itertuples()]
    choices = present.get("choices")
    if choices is not None:
        low = choices[_below(choices, choices["survey"].map(k))]
        problems += [f"choices: {r.wave} {r.group_ref} {r.question} shown with {_count(r.respondents)} respondents" for r in low.itertuples()]
        blank = choices[_flags(choices) & (choices["share_pct"].notna() | choices["chosen"].notna() | choices["respondents"].notna())]
        problems += [f"choices: {r.wave} {r.group_ref} {r.question} is suppressed but carries figures" for r in blank.itertuples()]
    low = waves[_below(waves, waves["survey"].map(k)) & (pd.to_numeric(waves["invited"], errors="coerce").fillna(0) > 0)]
    problems += [f"waves: {r.wave} total shown with {_count(r.respondents)} respondents" for r in low.itertuples()]
    blank = waves[_flags(waves) & (waves["respondents"].notna() | waves["response_rate"].notna())]
    problems += [f"waves: {r.wave} total is suppressed but carries figures" for r in blank.itertuples()]
    comments = present.get("comments")
    if comments is not None:
        visible: set[tuple[str, str]] = set()
        if trends is not None:
            participation = trends[(trends["metric"] == "response_rate") & ~_flags(trends) & ~_below(trends, trends["survey"].map(k))]
            visible = set(zip(participation["wave"], participation["group_ref"]))
        stray = comments[[(w, g) not in visible for w, g in zip(comments["wave"], comments["group_ref"])]]
        problems += [f"comments: {r.wave} attached to {r.group_ref}, which is not shown" for r in stray.itertuples()]
    return problems


def _count(value: object) -> str:
    return "an unknown number of" if value is None or pd.isna(value) else str(int(value))  # type: ignore[arg-type]
