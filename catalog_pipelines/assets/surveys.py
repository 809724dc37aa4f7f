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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from catalog_pipelines.automation import EAGER_DESPITE_MISSING_DEPS
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.partitions import survey_waves
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import surveys_config_dir

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from analytics.org import OrgGraph
    from analytics.surveys import SurveyInsights
    from analytics.surveys_ingest import WaveIngest

SURVEYS_GROUP = "surveys"
AREA = "surveys"
TABLES = ("trends", "choices", "comments", "waves")
SURVEY_RESPONSES = dg.AssetKey("survey_responses")
SURVEY_TRENDS = dg.AssetKey("survey_trends")
ANSWERS_IN_RANGE = "answers_in_range"
ONE_RESPONSE_PER_RESPONDENT = "one_response_per_respondent"
RESPONSE_RATE_COLLAPSE = "response_rate_collapse"
PUBLISHED_RESPECT_K = "published_figures_respect_k"


def surveys_root() -> Path:
    """Exports in, validated responses out: `<data_dir>/surveys` (see analytics.surveys_store)."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().data_dir / "surveys"


# ---------------------------------------------------------------------------------------------
# plain functions (no Dagster): the assets, the CLI and the tests drive the same code


def ingest_survey_wave(wave_id: str, org: "OrgGraph", users: list[dict[str, Any]], root: Path, config_dir: Path, key: bytes) -> "WaveIngest":
    """Validate, match and pseudonymise a wave's exports and store them; returns the ingest report.

    Raises `LookupError` when the wave has no exports and `ValueError` when nothing valid landed;
    in both cases the previously stored wave is left as it was.
    """
    from analytics.surveys_config import load_surveys
    from analytics.surveys_ingest import RespondentDirectory, ingest_wave
    from analytics.surveys_store import export_dir, export_files, write_wave

    survey = next((s for s in load_surveys(config_dir) if wave_id in {w.id for w in s.waves}), None)
    if survey is None:
        raise LookupError(f"no survey in {config_dir} has a wave {wave_id!r}")
    files, invited = export_files(root, wave_id)
    if not files:
        raise LookupError(f"no exports for wave {wave_id!r}: put the survey tool's CSV/JSON exports in {export_dir(root, wave_id)}")
    result = ingest_wave(survey, survey.wave(wave_id), files, RespondentDirectory(org, users), key, invited)
    if not len(result.responses):
        problems = "\n".join(str(e) for e in result.errors[:20])
        raise ValueError(f"no valid response in the exports of wave {wave_id!r}; previous data kept.\n{problems}")
    write_wave(root, wave_id, result.responses, result.invited, result.stats)
    return result


def compute_survey_trends(org: "OrgGraph", root: Path, config_dir: Path) -> "SurveyInsights":
    """Figures for every survey and every stored wave, anonymity rules applied."""
    from analytics.surveys import SurveyInsights, compute_insights
    from analytics.surveys_config import load_surveys
    from analytics.surveys_store import read_waves

    parts = []
    for survey in load_surveys(config_dir):
        waves = read_waves(root, [w.id for w in survey.waves])
        parts.append(compute_insights(survey, waves, org))
    return SurveyInsights.concat(parts)


def publish_survey_trends(engine: "sa.Engine", insights: "SurveyInsights") -> dict[str, int]:
    """Write the published tables, refusing to when any figure would break the anonymity rules.

    Two gates, both before anything is written (so the previous tables stay): `compute_insights`'s
    own re-check of every table layer against differencing (`insights.disclosures`), and
    `k_violations` on the exact frames about to be written (no shown figure about fewer than k
    respondents, zero included). Every door that writes survey tables calls this function.
    """
    from analytics.surveys_publication import k_violations
    from catalog_pipelines.storage.insights import write_frames

    frames = {name: getattr(insights, name) for name in TABLES}
    problems = [*insights.disclosures, *k_violations(frames)]
    if problems:
        raise RuntimeError("anonymity verification failed; nothing was published:\n" + "\n".join(problems[:20]))
    return write_frames(engine, AREA, frames)


def read_table(engine: "sa.Engine", name: str) -> "pd.DataFrame | None":
    from catalog_pipelines.storage.insights import read_frame

    return read_frame(engine, AREA, name)


def published_violations(engine: "sa.Engine") -> list[str]:
    """Figures in the stored tables that break the k-threshold (empty when none).

    Reads only what dashboards and the CLI read, so it checks the published data itself, whatever
    produced it (see `analytics.surveys_publication.k_violations`).
    """
    from analytics.surveys_publication import k_violations

    return k_violations({name: read_table(engine, name) for name in TABLES})


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
    from analytics.surveys_config import SCALES, load_surveys
    from analytics.surveys_store import response_path
    from catalog_pipelines.settings import Settings

    wave_id = context.partition_key
    root, config_dir = surveys_root(), surveys_config_dir()
    users = catalog.entities_frame(["User"])
    try:
        result = ingest_survey_wave(
            wave_id, catalog.org_graph(), list(users["entity"]) if len(users) else [], root, config_dir, Settings.from_env().pseudonym_key
        )
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
    from analytics.surveys import response_rate_collapses
    from analytics.surveys_config import load_surveys

    config_dir = surveys_config_dir()
    insights = compute_survey_trends(catalog.org_graph(), surveys_root(), config_dir)
    engine = catalog.get_engine()
    try:
        rows = publish_survey_trends(engine, insights)
    except RuntimeError as err:
        raise dg.Failure(description=str(err)) from err
    # What readers will see: the stored tables, re-read.
    stored_problems = published_violations(engine)

    surveys = {s.id: s for s in load_surveys(config_dir)}
    collapses = []
    for survey_id, frame in insights.waves.groupby("survey"):
        found = response_rate_collapses(frame, surveys[survey_id].collapse)
        collapses += found.to_dict(orient="records")
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
