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


import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from catalog_pipelines.automation import every_cron_tick
from catalog_pipelines.assets.facts import FACT_ASSET_KEYS
from catalog_pipelines.resources import CatalogDatabase

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

SCORECARDS_GROUP = "scorecards"
AREA = "scorecards"
SCORECARD_RESULTS = dg.AssetKey("scorecard_results")
NO_ERRORS_CHECK = "no_evaluation_errors"


def scorecards_config_dir() -> Path:
    """`CATALOG_PIPELINES_SCORECARDS`, else the project's `config/scorecards`."""
    from catalog_pipelines.settings import PROJECT_ROOT

    configured = os.environ.get("CATALOG_PIPELINES_SCORECARDS")
    return Path(configured) if configured else PROJECT_ROOT / "config" / "scorecards"


def write_tables(engine: "sa.Engine", tables: dict[str, tuple["pd.DataFrame", bool]]) -> None:
    """Write several insight tables of this area in ONE transaction (`name: (frame, append)`).

    Either the whole evaluation lands (latest tables, history rows, the evaluation summary) or
    none of it does, so the change log never disagrees with the latest results.
    """
    from catalog_pipelines.storage.insights import write_frames

    write_frames(engine, AREA, {name: _storable(frame) for name, (frame, _) in tables.items()},
                 append={name for name, (_, append) in tables.items() if append})


def _storable(frame: "pd.DataFrame") -> "pd.DataFrame":
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype(str)
    return out


def read_table(engine: "sa.Engine", name: str) -> "pd.DataFrame | None":
    from catalog_pipelines.storage.insights import read_frame

    return read_frame(engine, AREA, name)


def run_evaluation(engine: "sa.Engine", entities: "pd.DataFrame", config_dir: Path, now: Any) -> dict[str, Any]:
    """Evaluate and store one evaluation; returns figures for the asset's metadata.

    Plain function (no Dagster) so the CLI, the benchmark and tests can drive the same code path.
    Raises `ScorecardConfigError` before writing anything when the configuration is invalid.
    """
    from analytics.scorecards import campaign_frame, check_frame, evaluate, track_frame
    from analytics.scorecards_config import load_config
    from analytics.scorecards_reports import evaluation_summary, level_changes, regressions, result_changes
    from catalog_pipelines.assets.facts import load_latest_facts

    config = load_config(config_dir)
    facts = load_latest_facts(engine)
    previous_results = read_table(engine, "results")
    previous_levels = read_table(engine, "levels")
    evaluations = read_table(engine, "evaluations")
    evaluation_id = int(evaluations["evaluation_id"].max()) + 1 if evaluations is not None and len(evaluations) else 1
    ev = evaluate(config, entities, facts, exemptions=read_table(engine, "exemptions"), now=now)
    changes = result_changes(previous_results, ev.results, evaluation_id, now)
    lchanges = level_changes(previous_levels, ev.levels, evaluation_id, now)
    regressed = regressions(changes, lchanges, ev.entities)
    summary = evaluation_summary(ev.results, evaluation_id, now, config, len(ev.entities), len(regressed), ev.errors)
    write_tables(
        engine,
        {
            "checks": (check_frame(config), False),
            "tracks": (track_frame(config), False),
            "campaigns": (campaign_frame(config), False),
            "entities": (ev.entities, False),
            "results": (ev.results.assign(evaluation_id=evaluation_id), False),
            "levels": (ev.levels.assign(evaluation_id=evaluation_id), False),
            "fix_candidates": (ev.fix_candidates, False),
            "campaign_members": (ev.campaign_members, False),
            "result_changes": (changes, True),
            "level_changes": (lchanges, True),
            "regressions": (regressed, True),
            "evaluations": (summary, True),
        },
    )
    states = summary.iloc[0].to_dict()
    return {
        "evaluation_id": evaluation_id,
        "config_digest": config.digest,
        "checks": len(config.checks),
        "tracks": len(config.tracks),
        "entities": len(ev.entities),
        "results": len(ev.results),
        "changes": len(changes),
        "regressions": len(regressed),
        "states": {k: int(states[k]) for k in ("passed", "failed", "warning", "not_applicable", "not_reported", "error", "exempted")},
        "errors": ev.errors,
        "levels": ev.levels.groupby(["track_id", "level_name"]).size().to_dict() if len(ev.levels) else {},
    }


def run_reports(engine: "sa.Engine", org: Any, now: Any) -> dict[str, int]:
    """Roll-ups, campaign progress and fix-next from the stored latest evaluation."""
    from analytics.scorecards_reports import campaign_progress, fix_next, rollup_checks, rollup_levels, rollup_summary

    # The configuration stored with the evaluation, not the YAML as it is now: the reports must
    # describe the results they summarise.
    entities, results, levels = read_table(engine, "entities"), read_table(engine, "results"), read_table(engine, "levels")
    if entities is None or results is None or levels is None:
        raise RuntimeError("no scorecard evaluation stored yet: materialise scorecard_results first")
    evaluation_id = int(levels["evaluation_id"].max()) if len(levels) else int(results["evaluation_id"].max())
    summary = rollup_summary(levels, entities, org)
    progress = campaign_progress(read_table(engine, "campaign_members"), entities, org, read_table(engine, "campaigns"), now.date())
    tables = {
        "rollup_levels": (rollup_levels(levels, entities, org, read_table(engine, "tracks")), False),
        "rollup_summary": (summary, False),
        "rollup_checks": (rollup_checks(results, entities, org), False),
        "fix_next": (fix_next(read_table(engine, "fix_candidates"), entities, org), False),
        # Trends are kept for teams and the org; systems and domains only as the latest view.
        "rollup_history": (summary[summary["scope_type"].isin(["group", "org"])].assign(evaluation_id=evaluation_id, evaluated_at=_naive(now)), True),
        "campaign_progress": (progress.assign(evaluation_id=evaluation_id, evaluated_at=_naive(now)), True),
    }
    write_tables(engine, tables)
    return {name: len(frame) for name, (frame, _) in tables.items()}


def _naive(now: Any) -> Any:
    import pandas as pd

    stamp = pd.Timestamp(now)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


# ---------------------------------------------------------------------------------------------
# assets


@dg.asset(
    key=SCORECARD_RESULTS,
    deps=FACT_ASSET_KEYS,
    group_name=SCORECARDS_GROUP,
    kinds={"python", "pandas"},
    # Hourly, after the facts of the hour have landed; every evaluation is kept as history.
    automation_condition=every_cron_tick("45 * * * *", label="hourly at :45"),
    check_specs=[dg.AssetCheckSpec(NO_ERRORS_CHECK, asset=SCORECARD_RESULTS, description="No check ended in the error state and no check failed to evaluate.")],
)
def scorecard_results(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Evaluates every check of `config/scorecards/*.yaml` over the latest facts: one state per
    entity and check (passed, failed, warning, not applicable, not reported, error), certification
    per track, exemptions applied. Keeps the change log of every evaluation and flags pass→fail
    regressions per owner. An invalid configuration fails the run and leaves the previous results."""
    from analytics.facts import utc_now
    from analytics.scorecards_config import ScorecardConfigError

    config_dir = scorecards_config_dir()
    try:
        figures = run_evaluation(catalog.get_engine(), catalog.entities_frame(), config_dir, utc_now())
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
)
def scorecard_reports(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
    """Roll-ups of the latest evaluation per owning group and up the group hierarchy, per system,
    per domain and for the organisation; campaign progress per team and org (kept over time);
    and per team the checks to fix next, ordered by how many levels fixing them unlocks."""
    from analytics.facts import utc_now

    counts = run_reports(catalog.get_engine(), catalog.org_graph(), utc_now())
    return dg.MaterializeResult(metadata={**{f"rows_{k}": v for k, v in counts.items()}, "dagster/row_count": counts["rollup_summary"]})


scorecard_assets = [scorecard_results, scorecard_reports]
