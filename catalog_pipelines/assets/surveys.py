"""Survey assets: one partition of validated responses per wave, and the anonymised trends.

- `survey_responses` (partitioned by wave, keys from `config/surveys/*.yaml`): validates the wave's
  exports in `<data_dir>/surveys/exports/<wave>/`, matches respondents to catalog users and teams,
  pseudonymises them and keeps the wave in `<data_dir>/surveys/responses/<wave>.parquet`.
  Response-level data never goes to the catalog database.
- `survey_trends`: every wave's figures per team (rolled up the group hierarchy) and dimension,
  anonymity rules applied, into insight tables (area `surveys`):

| table | content |
| --- | --- |
| `trends` | wave x group x dimension x metric (mean, top2_pct, enps, response_rate): value, 95% CI, change vs previous wave, Welch p-value, suppressed flag |
| `choices` | wave x group x choice question x option: share of respondents |
| `comments` | consented free text, attached to the lowest shown group of its author |
| `waves` | each wave: dates, k, overall invited / respondents / response rate |

`survey_exports_sensor` (sensors/surveys.py) requests a `survey_responses` run when a wave's export files change.
"""

# No `from __future__ import annotations`: Dagster reads the context and resource annotations.
from typing import TYPE_CHECKING, Any

import dagster as dg

from catalog_pipelines.automation import EAGER_DESPITE_MISSING_DEPS, freshness_policy
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.partitions import survey_waves
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.services.surveys import surveys_root

if TYPE_CHECKING:
    import pandas as pd

SURVEYS_GROUP = "surveys"
SURVEY_RESPONSES = dg.AssetKey("survey_responses")
SURVEY_TRENDS = dg.AssetKey("survey_trends")
# Metadata key of survey_responses: the fingerprint of the exports the run read (sensors/surveys.py).
EXPORTS_FINGERPRINT = "exports_fingerprint"
ANSWERS_IN_RANGE = "answers_in_range"
ONE_RESPONSE_PER_RESPONDENT = "one_response_per_respondent"
RESPONSE_RATE_COLLAPSE = "response_rate_collapse"
PUBLISHED_RESPECT_K = "published_figures_respect_k"




def k_check_result(problems: list[str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=PUBLISHED_RESPECT_K,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"violations": len(problems), "examples": dg.MetadataValue.json(problems[:20])},
    )


# ---------------------------------------------------------------------------------------------
# assets


@dg.asset(
    key=SURVEY_RESPONSES,
    partitions_def=survey_waves,
    group_name=SURVEYS_GROUP,
    kinds={"python", "pandas", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(ANSWERS_IN_RANGE, asset=SURVEY_RESPONSES, description="The wave's exports had no out-of-range or unreadable answers (bad answers are dropped, not stored)."),
        dg.AssetCheckSpec(ONE_RESPONSE_PER_RESPONDENT, asset=SURVEY_RESPONSES, description="Nobody answered the wave twice (only the latest response is stored)."),
    ],
)
def survey_responses(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """One survey wave's responses: the survey tool's CSV/JSON exports validated (row-level errors
    name file, row and column; valid rows land), respondents matched to catalog users and their
    team, identifiers replaced by keyed pseudonyms, free text kept only with consent. Stored as
    Parquet in the data directory, never in the catalog database."""
    from analytics.surveys.config import SCALES, load_surveys
    from catalog_pipelines.storage.surveys_store import response_path
    from catalog_pipelines.services.surveys import ingest_wave_from_catalog, surveys_config_dir

    from catalog_pipelines.storage.surveys_store import exports_fingerprint

    wave_id = context.partition_key
    root, config_dir = surveys_root(), surveys_config_dir()
    # What the survey_exports_sensor compares with: exports read by this run are not requested again.
    fingerprint = exports_fingerprint(root, wave_id)
    try:
        result = ingest_wave_from_catalog(catalog.get_engine(), wave_id)
    except (LookupError, ValueError) as err:
        raise dg.Failure(description=str(err)) from err
    for error in result.errors[:50]:
        context.log.warning(str(error))

    survey = next(s for s in load_surveys(config_dir) if wave_id in {w.id for w in s.waves})
    kinds = result.error_counts()
    stored = result.responses
    # Belt and braces: what was stored must be clean even if the export was not.
    stored_out_of_range = sum(
        int(((stored[q.id] < SCALES[q.type][0]) | (stored[q.id] > SCALES[q.type][1])).fillna(False).sum())
        for q in survey.questions
        if q.type in SCALES
    )
    stored_duplicates = int(stored["respondent"].duplicated().sum())
    bad_answers = [e for e in result.errors if e.kind in ("out_of_range", "invalid_value")]
    duplicates = [e for e in result.errors if e.kind == "duplicate_respondent"]
    stats = result.stats
    return dg.MaterializeResult(
        metadata={
            "survey": survey.id,
            "files": stats["files"],
            "rows_read": stats["rows_read"],
            "rows_landed": stats["rows_landed"],
            "rows_dropped": stats["rows_dropped"],
            "invited": stats["invited"],
            "response_rate_pct": round(100.0 * stats["respondents"] / stats["invited"], 1) if stats["invited"] else float("nan"),
            "errors_by_kind": dg.MetadataValue.json(kinds),
            "errors": dg.MetadataValue.md(_errors_markdown(result.errors)),
            "path": dg.MetadataValue.path(str(response_path(root, wave_id))),
            EXPORTS_FINGERPRINT: fingerprint or "",
            "dagster/row_count": stats["rows_landed"],
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=ANSWERS_IN_RANGE,
                passed=not bad_answers and stored_out_of_range == 0,
                severity=dg.AssetCheckSeverity.ERROR if stored_out_of_range else dg.AssetCheckSeverity.WARN,
                metadata={
                    "bad_answers_in_exports": len(bad_answers),
                    "out_of_range_stored": stored_out_of_range,
                    "examples": dg.MetadataValue.json([str(e) for e in bad_answers[:20]]),
                },
            ),
            dg.AssetCheckResult(
                check_name=ONE_RESPONSE_PER_RESPONDENT,
                passed=not duplicates and stored_duplicates == 0,
                severity=dg.AssetCheckSeverity.ERROR if stored_duplicates else dg.AssetCheckSeverity.WARN,
                metadata={
                    "duplicate_responses_in_exports": len(duplicates),
                    "duplicates_stored": stored_duplicates,
                    "examples": dg.MetadataValue.json([str(e) for e in duplicates[:20]]),
                },
            ),
        ],
    )


def _errors_markdown(errors: list[Any], limit: int = 30) -> str:
    if not errors:
        return "No problems found."
    lines = ["| file | row | column | problem |", "| --- | --- | --- | --- |"]
    lines += [f"| {e.file} | {e.row if e.row is not None else ''} | {e.column or ''} | {e.message.replace('|', '/')} |" for e in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"\n… and {len(errors) - limit} more (see the run logs).")
    return "\n".join(lines)


@dg.asset(
    key=SURVEY_TRENDS,
    deps=[SURVEY_RESPONSES, CATALOG_SNAPSHOT],
    group_name=SURVEYS_GROUP,
    kinds={"python", "pandas"},
    # Waves declared for the future have no partition yet.
    automation_condition=EAGER_DESPITE_MISSING_DEPS,
    freshness_policy=freshness_policy("survey_trends"),
    check_specs=[
        dg.AssetCheckSpec(RESPONSE_RATE_COLLAPSE, asset=SURVEY_TRENDS, description="No wave's overall response rate collapsed against the previous wave (thresholds in the survey YAML)."),
        # Part of the asset's own op, not a separate @asset_check: every run that materialises
        # survey_trends (the automation sensor's included, which leaves separate checks out of its
        # runs) evaluates it, and a failure blocks what depends on survey_trends in that run.
        dg.AssetCheckSpec(
            PUBLISHED_RESPECT_K, asset=SURVEY_TRENDS, blocking=True,
            description="The stored survey tables show no figure for fewer than k respondents (zero included).",
        ),
    ],
)
def survey_trends(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Survey figures per wave x team (rolled up the group hierarchy) x dimension: mean, top-2-box %,
    eNPS and response rate with 95% intervals, wave-over-wave change with Welch's test, option
    shares of choice questions and consented comments. Groups with fewer than k respondents are
    hidden everywhere, and further cells are hidden so that no hidden group can be computed by
    differencing parents and siblings. Published as insight tables (area `surveys`)."""
    from catalog_pipelines.services.surveys import publish_catalog_trends

    try:
        published = publish_catalog_trends(catalog.get_engine())
    except RuntimeError as err:
        raise dg.Failure(description=str(err)) from err
    insights, rows, stored_problems, collapses = (published[k] for k in ("insights", "rows", "stored_problems", "collapses"))
    latest = insights.waves.sort_values("wave_order").groupby("survey").tail(1)
    latest_collapsed = {c["wave"] for c in collapses} & set(latest["wave"])
    shown = insights.trends[~insights.trends["suppressed"].astype(bool)]
    return dg.MaterializeResult(
        metadata={
            "waves": len(insights.waves),
            "trend_rows": rows["trends"],
            "shown_rows": len(shown),
            "cells_below_k": insights.stats.get("cells_below_k", 0),
            "cells_complementary": insights.stats.get("cells_complementary", 0),
            "respondents_unassigned": insights.stats.get("respondents_unassigned", 0),
            "comments": rows["comments"],
            "overall": dg.MetadataValue.md(_waves_markdown(insights.waves)),
            "dagster/row_count": rows["trends"],
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=RESPONSE_RATE_COLLAPSE,
                # Only the newest wave can still be acted on; older collapses are listed for context.
                passed=not latest_collapsed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"collapsed_latest": dg.MetadataValue.json(sorted(latest_collapsed)), "all_collapses": dg.MetadataValue.json(collapses)},
            ),
            k_check_result(stored_problems),
        ],
    )


def _waves_markdown(waves: "pd.DataFrame") -> str:
    lines = ["| survey | wave | invited | respondents | response rate |", "| --- | --- | --- | --- | --- |"]
    for r in waves.itertuples():
        rate = "" if r.response_rate != r.response_rate else f"{r.response_rate:.1f}%"
        resp = "" if r.respondents is None or r.respondents != r.respondents else int(r.respondents)
        lines.append(f"| {r.survey} | {r.wave} | {int(r.invited)} | {resp} | {rate} |")
    return "\n".join(lines)


survey_assets = [survey_responses, survey_trends]
# Every survey check is a check_spec of its asset (evaluated in every run of it); none stands alone.
survey_asset_checks: list[dg.AssetChecksDefinition] = []
