"""`catalog-pipelines surveys …`: survey trends, waves and comments, plus loading exports.

The read commands (`trends`, `waves`, `comments`) only read the insight tables `survey_trends`
wrote, which are already anonymity-filtered: the CLI cannot show anything a dashboard could not.
`validate` checks an export file against a survey definition without storing anything;
`generate` writes synthetic exports for the catalog's org and `load` ingests the exports and
recomputes the trends through Dagster (real runs in the instance), as the demo does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table
from catalog_pipelines.model.insight_tables import SURVEYS
from catalog_pipelines.model.vocabulary import SUPPRESSED

METRICS = ("mean", "top2_pct", "enps", "response_rate")


def _read(table, engine=None):
    """One published survey table (k verified first, see `services.surveys.published_table`)."""
    from catalog_pipelines.services.surveys import SurveysUnavailable, published_table

    try:
        return published_table(table, engine)
    except SurveysUnavailable as exc:
        raise click.ClickException(str(exc)) from exc


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def _resolve_group(trends, team: str) -> str:
    """A group ref present in the published figures, from a ref, a name or a display name."""
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    refs = set(trends["group_ref"])
    try:
        ref = parse_entity_ref(team.strip(), default_kind="group").canonical()
    except EntityRefError:
        ref = None
    if ref in refs:
        return ref
    by_name = sorted(set(trends.loc[trends["group_name"].str.casefold() == team.strip().casefold(), "group_ref"]))
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise click.ClickException(f"{team!r} names several groups: {', '.join(by_name)}; use a group ref")
    raise click.ClickException(f"no survey figures for group {team!r} (not a group in the catalog, or nobody in it was surveyed)")


def trends_report(team: str | None = None, survey: str | None = None, dimension: str | None = None, metric: str | None = None, engine=None) -> dict[str, Any]:
    """What `surveys trends` prints, as data (the JSON output and the tests use this)."""
    trends = _read(SURVEYS.trends, engine)
    waves = _read(SURVEYS.waves, engine)
    if survey:
        trends = trends[trends["survey"] == survey]
        if not len(trends):
            raise click.ClickException(f"no figures for survey {survey!r}")
    if dimension:
        trends = trends[trends["dimension"] == dimension]
    if metric:
        trends = trends[trends["metric"] == metric]
    if team:
        groups = [_resolve_group(trends, team)]
    else:
        top = trends["depth"].min() if len(trends) else 0
        groups = sorted(set(trends.loc[trends["depth"] == top, "group_ref"]))
    trends = trends.sort_values(["survey", "wave_order", "dimension", "metric"], kind="stable")
    out_groups = []
    for ref in groups:
        rows = trends[trends["group_ref"] == ref]
        series = []
        for (survey_id, dim, met), part in rows.groupby(["survey", "dimension", "metric"], sort=True):
            points = []
            for r in part.itertuples(index=False):
                point = {
                    key: _clean(getattr(r, key))
                    for key in ("wave", "wave_title", "respondents", "invited", "value", "ci_low", "ci_high", "change", "p_value", "significant", "suppressed")
                }
                # Counts come back from SQL as floats when the column has nulls.
                for key in ("respondents", "invited"):
                    point[key] = None if point[key] is None else int(point[key])
                for key in ("significant", "suppressed"):
                    point[key] = None if point[key] is None else bool(point[key])
                points.append(point)
            series.append({"survey": survey_id, "dimension": dim, "dimension_title": part["dimension_title"].iat[0], "metric": met, "points": points})
        first = rows.iloc[0] if len(rows) else None
        out_groups.append(
            {
                "group_ref": ref,
                "group_name": _clean(first["group_name"]) if first is not None else ref,
                "parent_ref": _clean(first["parent_ref"]) if first is not None else None,
                "series": series,
            }
        )
    k = {s: int(v) for s, v in zip(waves["survey"], waves["min_group_size"])}
    return {"min_group_size": k, "groups": out_groups}


def _fmt(metric: str, point: dict[str, Any]) -> str:
    if point["suppressed"]:
        return SUPPRESSED
    value = point["value"]
    if value is None:
        return ""
    if metric == "mean":
        text = f"{value:.2f}"
        if point["ci_low"] is not None:
            text += f" ±{(point['ci_high'] - point['ci_low']) / 2:.2f}"
        return text
    if metric == "enps":
        return f"{value:+.0f}"
    return f"{value:.0f}%"


@click.group("surveys")
def surveys() -> None:
    """R&D pulse surveys: trends per team with anonymity protection.

    Figures for groups with fewer than k respondents (k is set per survey, default 5, never below
    3) are suppressed everywhere, as are the cells that would let a suppressed group be computed.
    """


@surveys.command("trends")
@click.option("--team", "team", metavar="GROUP", help="Group ref or name (default: the top-level groups).")
@click.option("--survey", help="Survey id (default: all).")
@click.option("--dimension", help="Only this dimension (e.g. feedback_loops, or participation).")
@click.option("--metric", type=click.Choice(METRICS), help="Only this metric.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def trends_cmd(team: str | None, survey: str | None, dimension: str | None, metric: str | None, as_json: bool) -> None:
    """Trend of every dimension across waves for one team (rolled up over its sub-teams).

    Cells show the value (mean ± half the 95% interval, top-2-box %, eNPS, response rate);
    `suppressed` marks figures suppressed for anonymity. The last column is the change against the
    previous wave, starred when Welch's test gives p < 0.05.
    """
    report = trends_report(team, survey, dimension, metric)
    if as_json:
        emit_json(report)
        return
    for group in report["groups"]:
        click.echo(f"{group['group_name']} ({group['group_ref']})")
        if not group["series"]:
            click.echo("  no figures")
            continue
        waves = [p["wave_title"] for p in group["series"][0]["points"]]
        rows = []
        for s in group["series"]:
            last = s["points"][-1]
            digits = 2 if s["metric"] == "mean" else 1
            change = "" if last["change"] is None else f"{last['change']:+.{digits}f}{'*' if last['significant'] else ''}"
            rows.append([s["dimension_title"], s["metric"], *[_fmt(s["metric"], p) for p in s["points"]], change])
        click.echo(table(rows, ["dimension", "metric", *waves, "change"]))
        click.echo("")
    ks = ", ".join(f"{s}: k={k}" for s, k in report["min_group_size"].items())
    click.echo(f"{SUPPRESSED} = fewer than k respondents, or would let a suppressed group be computed ({ks}); * p < 0.05")


@surveys.command("waves")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def waves_cmd(as_json: bool) -> None:
    """Every ingested wave: dates, k, invited, respondents and the overall response rate."""
    waves = _read(SURVEYS.waves).sort_values(["survey", "wave_order"])
    records = [{k: _clean(v) for k, v in row.items()} for row in waves.to_dict("records")]
    if as_json:
        emit_json(records)
        return
    rows = [
        [r["survey"], r["wave"], r["wave_title"], r["opens"] or "", r["closes"] or "", r["min_group_size"], r["invited"],
         SUPPRESSED if r["suppressed"] else r["respondents"], "" if r["response_rate"] is None else f"{r['response_rate']:.1f}%"]
        for r in records
    ]
    click.echo(table(rows, ["survey", "wave", "title", "opens", "closes", "k", "invited", "respondents", "rate"]))


@surveys.command("comments")
@click.option("--team", "team", metavar="GROUP", help="Group ref or name: its comments and its sub-teams' (default: all).")
@click.option("--wave", help="Only this wave.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def comments_cmd(team: str | None, wave: str | None, as_json: bool) -> None:
    """Free-text answers from respondents who consented, for groups at or above k."""
    comments = _read(SURVEYS.comments)
    if wave:
        comments = comments[comments["wave"] == wave]
    if team:
        trends = _read(SURVEYS.trends)
        ref = _resolve_group(trends, team)
        pairs = trends[["group_ref", "parent_ref"]].drop_duplicates()
        children: dict[str, set[str]] = {}
        for g, p in zip(pairs["group_ref"], pairs["parent_ref"]):
            if isinstance(p, str):
                children.setdefault(p, set()).add(g)
        scope, stack = {ref}, [ref]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in scope:
                    scope.add(child)
                    stack.append(child)
        comments = comments[comments["group_ref"].isin(scope)]
    records = [{k: _clean(row[k]) for k in ("survey", "wave", "group_ref", "group_name", "question", "text")} for row in comments.to_dict("records")]
    if as_json:
        emit_json(records)
        return
    if not records:
        click.echo("no comments")
        return
    for r in records:
        click.echo(f"[{r['wave']}] {r['group_name']} · {r['question']}: {r['text']}")


@surveys.command("validate")
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--survey", "survey_id", help="Survey id (default: the only survey).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def validate_cmd(export: Path, survey_id: str | None, as_json: bool) -> None:
    """Check an export file against a survey definition (columns, answer ranges, options).

    Nothing is stored. Respondents are not matched to the catalog here; `load` does that.
    Exits 1 when there are problems.
    """
    from analytics.surveys.config import load_surveys
    from analytics.surveys.ingest import validate_export
    from catalog_pipelines.services.surveys import surveys_config_dir
    from catalog_pipelines.services.surveys import read_export

    surveys_ = load_surveys(surveys_config_dir())
    if survey_id:
        survey = next((s for s in surveys_ if s.id == survey_id), None)
        if survey is None:
            raise click.ClickException(f"no survey {survey_id!r}; known: {', '.join(s.id for s in surveys_)}")
    elif len(surveys_) == 1:
        survey = surveys_[0]
    else:
        raise click.ClickException(f"several surveys are defined; pass --survey ({', '.join(s.id for s in surveys_)})")
    table_ = read_export(export)
    result = validate_export(table_, survey)
    layout = table_.layout.name + (" (numeric values)" if table_.layout.choice_numbers else "")
    report = {"file": str(export), "survey": survey.id, "layout": layout, "rows": result.rows_read, "errors": [e.to_dict() for e in result.errors]}
    if as_json:
        emit_json(report)
    else:
        click.echo(f"{export}: {layout} export, {result.rows_read} responses, {len(result.errors)} problems")
        for error in result.errors[:200]:
            click.echo(f"  {error}")
    if result.errors:
        raise SystemExit(1)


@surveys.command("generate")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--email-domain", help="Identify respondents as name@DOMAIN (default: by user name).")
@click.option("--survey", "survey_id", help="Survey id (default: every survey).")
@click.option("--layout", type=click.Choice(["generic", "qualtrics", "qualtrics_numeric", "surveymonkey", "google_forms", "microsoft_forms"]),
              default="generic", show_default=True, help="Write the responses as this survey tool exports them.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def generate_cmd(seed: int, email_domain: str | None, survey_id: str | None, layout: str, as_json: bool) -> None:
    """Write synthetic exports for the catalog's users and teams, with planted effects."""
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.services.surveys import generate_exports, surveys_root

    out = generate_exports(engine_from_env(), seed=seed, email_domain=email_domain, survey_id=survey_id, layout=layout)
    if out is None:
        raise click.ClickException("the catalog has no users: ingest the catalog first (`catalog-pipelines demo` or `ingest`)")
    if as_json:
        emit_json(out)
        return
    for item in out:
        s = item["scenario"]
        click.echo(f"{item['survey']}: {len(item['files'])} files under {surveys_root() / 'exports'}")
        # A small org may have no second team large enough to split, or none small enough for low
        # turnout: say so instead of printing "None".
        reorg = (f"reorg at {s['reorg_wave']}: {s['moved_users']} people {s['reorg_from']} -> {s['reorg_to']}"
                 if s["reorg_wave"] else "no reorg (no second team large enough to split)")
        click.echo(f"  faster CI: {s['improving_team']}; {reorg}; low turnout: {s['low_turnout_team'] or 'none'}")


@surveys.command("load")
@click.option("--wave", "waves", multiple=True, help="Only these waves (default: every wave with exports).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def load_cmd(waves: tuple[str, ...], as_json: bool) -> None:
    """Ingest the exports of each wave and recompute the trends (Dagster runs, in-process)."""
    from catalog_pipelines.runs import instance_from_env, materialize_waves

    report = materialize_waves(instance_from_env(), list(waves) or None)
    if as_json:
        emit_json(report)
        return
    for wave, rows in report["waves"].items():
        click.echo(f"{wave}: {rows} responses")
    click.echo("checks: " + ", ".join(f"{k} {'passed' if v else 'FAILED'}" for k, v in report["checks"].items()))
