"""Scorecard assets: evaluate the YAML checks over the latest facts, keep every evaluation, and
derive roll-ups, campaign progress and "what to fix next".

`scorecard_results` validates `config/scorecards/*.yaml` first: a bad file fails the run with the
file and line of every problem, and because nothing is written before validation passes, the
previous good results stay in place. Tables (area `scorecards` in the insight store):

| table | content | written |
| --- | --- | --- |
| `checks`, `tracks`, `campaigns` | the configuration that produced the results | replaced |
| `entities` | entity → owner, system, domain at evaluation time | replaced |
| `results` | latest state per (entity, check), raw state and exemption flag | replaced |
| `levels` | latest certification per (entity, track) | replaced |
| `result_changes`, `level_changes` | every change since the previous evaluation (history) | appended |
| `regressions` | pass→fail and level drops, with the owner to notify | appended |
| `evaluations` | one summary row per evaluation | appended |
| `fix_candidates`, `campaign_members` | per-entity inputs of the reports below | replaced |
| `rollup_levels`, `rollup_summary`, `rollup_checks` | per group (up the hierarchy), system, domain, org | replaced |
| `rollup_history` | `rollup_summary` of every evaluation, for trends | appended |
| `campaign_progress` | per campaign, per team and org, every evaluation | appended |
| `fix_next` | per team, checks ranked by levels unlocked | replaced |
"""


import dagster as dg

from catalog_pipelines.automation import every_cron_tick, freshness_policy
from catalog_pipelines.assets.facts import fact_asset_keys
from catalog_pipelines.resources import CatalogDatabase

SCORECARDS_GROUP = "scorecards"
SCORECARD_RESULTS = dg.AssetKey("scorecard_results")
NO_ERRORS_CHECK = "no_evaluation_errors"


# ---------------------------------------------------------------------------------------------
# assets


@dg.asset(
    key=SCORECARD_RESULTS,
    deps=fact_asset_keys(),
    group_name=SCORECARDS_GROUP,
    kinds={"python", "pandas"},
    # Hourly, after the facts of the hour have landed; every evaluation is kept as history.
    automation_condition=every_cron_tick("45 * * * *", label="hourly at :45"),
    freshness_policy=freshness_policy("scorecard_results"),
    check_specs=[dg.AssetCheckSpec(NO_ERRORS_CHECK, asset=SCORECARD_RESULTS, description="No check ended in the error state and no check failed to evaluate.")],
)
def scorecard_results(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Evaluates every check of `config/scorecards/*.yaml` over the latest facts: one state per
    entity and check (passed, failed, warning, not applicable, not reported, error), certification
    per track, exemptions applied. Keeps the change log of every evaluation and flags pass→fail
    regressions per owner. An invalid configuration fails the run and leaves the previous results."""
    from analytics.facts.collect import utc_now
    from analytics.scorecards.config import ScorecardConfigError
    from catalog_pipelines.services.scorecards import evaluate_catalog, scorecards_config_dir

    config_dir = scorecards_config_dir()
    try:
        figures = evaluate_catalog(catalog.get_engine(), utc_now())
    except ScorecardConfigError as err:
        raise dg.Failure(
            description=f"Invalid scorecard configuration in {config_dir}; previous results kept.\n{err}",
            metadata={"issues": dg.MetadataValue.json([str(i) for i in err.issues])},
        ) from err
    for error in figures["errors"]:
        context.log.error(error)
    states = figures["states"]
    passed = not figures["errors"] and states["error"] == 0
    return dg.MaterializeResult(
        metadata={
            "evaluation_id": figures["evaluation_id"],
            "config_digest": figures["config_digest"],
            "entities": figures["entities"],
            "checks": figures["checks"],
            "dagster/row_count": figures["results"],
            "changes": figures["changes"],
            "regressions": figures["regressions"],
            "states": dg.MetadataValue.json(states),
            "levels": dg.MetadataValue.json({f"{t}/{lv}": n for (t, lv), n in figures["levels"].items()}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=NO_ERRORS_CHECK,
                passed=passed,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"error_results": states["error"], "failed_checks": dg.MetadataValue.json(figures["errors"])},
            )
        ],
    )


@dg.asset(
    deps=[SCORECARD_RESULTS],
    group_name=SCORECARDS_GROUP,
    kinds={"python", "pandas"},
    automation_condition=dg.AutomationCondition.eager(),
    freshness_policy=freshness_policy("scorecard_reports"),
)
def scorecard_reports(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Roll-ups of the latest evaluation per owning group and up the group hierarchy, per system,
    per domain and for the organisation; campaign progress per team and org (kept over time);
    and per team the checks to fix next, ordered by how many levels fixing them unlocks."""
    from analytics.facts.collect import utc_now
    from catalog_pipelines.model.insight_tables import SCORECARDS
    from catalog_pipelines.services.scorecards import report_catalog, report_digest

    engine = catalog.get_engine()
    counts = report_catalog(engine, utc_now())
    digest = report_digest(engine)
    return dg.MaterializeResult(metadata={
        **{f"rows_{k}": v for k, v in counts.items()},
        "levels": dg.MetadataValue.md(levels_markdown(digest["levels"])),
        "regressions": digest["regressions_total"],
        "top_regressions": dg.MetadataValue.md(regressions_markdown(digest["regressions"], digest["regressions_total"])),
        "dagster/row_count": counts[SCORECARDS.rollup_summary.name],
    })


def _md_table(headers: list[str], rows: list[list]) -> str:
    cell = lambda v: "" if v is None else str(v).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)])


def levels_markdown(levels: dict[str, dict[str, int]]) -> str:
    """Entities per track and certification level, as a markdown table."""
    if not levels:
        return "_no evaluation stored_"
    return _md_table(["track", "level", "entities"],
                     [[track, level, n] for track, by_level in sorted(levels.items()) for level, n in sorted(by_level.items())])


def regressions_markdown(rows: list[dict], total: int) -> str:
    """The latest evaluation's regressions (the first few), as a markdown table."""
    if not rows:
        return "_no regression in the latest evaluation_"
    table = _md_table(["owner", "entity", "check / track", "from", "to"],
                      [[r["owner"], r["entity_ref"], f"{r['subject_type']} {r['subject_id']}", r["previous"], r["current"]] for r in rows])
    return table + (f"\n\n{total - len(rows)} more on the dashboards' Scorecards page" if total > len(rows) else "")


scorecard_assets = [scorecard_results, scorecard_reports]
