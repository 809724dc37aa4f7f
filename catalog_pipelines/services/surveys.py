"""Surveys: ingest a wave's exports (validated, matched, pseudonymised, stored as Parquet),
compute the anonymised trends and publish them, refusing any figure that breaks the k rule.

Tables (`model.insight_tables.SURVEYS` in the insight store) are described in `catalog_pipelines/assets/surveys.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from analytics.org import OrgGraph
    from analytics.surveys.config import SurveyDefinition
    from analytics.surveys.ingest import ExportTable, WaveIngest
    from analytics.surveys.synthetic import Scenario
    from analytics.surveys.trends import SurveyInsights, WaveData
    from catalog_pipelines.model.insight_tables import InsightTable

from catalog_pipelines.model.insight_tables import SURVEYS

TABLES = SURVEYS.tables()  # the published tables, each checked against the k-threshold


class SurveysUnavailable(LookupError):
    """The published survey tables cannot be shown (none yet, or they break the k rule)."""


def surveys_config_dir() -> Path:
    """`CATALOG_PIPELINES_SURVEYS`, else the project's `config/surveys`."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().surveys_config


def surveys_root() -> Path:
    """Exports in, validated responses out: `<data_dir>/surveys` (see catalog_pipelines.storage.surveys_store)."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().data_dir / "surveys"


def wave_keys(config_dir: Path | None = None) -> list[str]:
    """Every wave id of every survey definition, in file then wave order (the partition keys)."""
    from analytics.surveys.config import load_surveys

    return [w.id for s in load_surveys(config_dir or surveys_config_dir()) for w in s.waves]


def read_export(path: str | Path) -> "ExportTable":
    """One export file as the ingest reads it, named by its file name: a CSV or Excel file as a grid
    (`storage.surveys_store.read_export_grid`) whose tool layout `analytics.surveys.formats.
    export_table` recognises (Qualtrics, SurveyMonkey, Google Forms, Microsoft Forms, generic),
    a JSON file as records. An unreadable file is an `ExportTable` without a frame and one
    `unreadable_file` error."""
    from analytics.surveys.formats import export_table
    from analytics.surveys.ingest import ExportTable
    from catalog_pipelines.storage.surveys_store import GRID_SUFFIXES, UNREADABLE, read_export_frame, read_export_grid

    name = Path(path).name
    try:
        if Path(path).suffix.lower() in GRID_SUFFIXES:
            return export_table(name, read_export_grid(path))
        return ExportTable(name, read_export_frame(path))
    except UNREADABLE as exc:
        return ExportTable.unreadable(name, exc)


def read_wave_exports(root: Path, wave_id: str) -> tuple[list["ExportTable"], "ExportTable | None"]:
    """(the wave's response exports, its invitation list or None), read (see `export_files`)."""
    from catalog_pipelines.storage.surveys_store import export_files

    files, invited = export_files(root, wave_id)
    return [read_export(p) for p in files], read_export(invited) if invited is not None else None


def read_wave(root: Path, wave_id: str) -> "WaveData | None":
    """A stored wave: its responses and invited counts per team."""
    import pandas as pd

    from analytics.surveys.trends import TEAM, WaveData
    from catalog_pipelines.storage.surveys_store import read_wave_frames

    stored = read_wave_frames(root, wave_id)
    if stored is None:
        return None
    responses, invited = stored
    return WaveData(responses, pd.DataFrame(invited, columns=[TEAM, "invited"]))


def read_waves(root: Path, wave_ids: list[str]) -> dict[str, "WaveData"]:
    return {wave_id: data for wave_id in wave_ids if (data := read_wave(root, wave_id)) is not None}


def write_synthetic_exports(
    root: Path,
    survey: "SurveyDefinition",
    org: "OrgGraph",
    seed: int = 7,
    *,
    email_domain: str | None = None,
    waves: list[str] | None = None,
    layout: str = "generic",
) -> tuple[list[Path], "Scenario"]:
    """Write `exports/<wave>/responses.csv` and `invited.csv` for each wave under a surveys root,
    answered by `analytics.surveys.synthetic` (the demo's, tests' and benchmarks' survey tool).
    `layout` writes the responses as a survey tool does (`analytics.surveys.formats.LAYOUTS`:
    `qualtrics`, `qualtrics_numeric`, `surveymonkey`, `google_forms` as CSV, `microsoft_forms` as
    `responses.xlsx`)."""
    from analytics.surveys.formats import tool_export
    from analytics.surveys.synthetic import export_frame, generate_waves, identifier, invited_frame
    from catalog_pipelines.storage.surveys_store import export_dir, write_export_grid, write_exports

    generated, scenario = generate_waves(survey, org, seed, waves=waves)
    written = []
    for wave_id, wave in generated.items():
        if layout == "generic":
            written += write_exports(root, wave_id, {"responses": export_frame(survey, wave, email_domain),
                                                     "invited": invited_frame(survey, wave, email_domain)})
            continue
        tool = layout.removesuffix("_numeric")
        rows = tool_export(survey, wave.answers, tool, [identifier(u, email_domain) for u in wave.answers["user_ref"]],
                           numeric=layout.endswith("_numeric"))
        suffix = ".xlsx" if tool == "microsoft_forms" else ".csv"
        written.append(write_export_grid(export_dir(root, wave_id) / f"responses{suffix}", rows))
        written += write_exports(root, wave_id, {"invited": invited_frame(survey, wave, email_domain)})
    return written, scenario


def ingest_survey_wave(wave_id: str, org: "OrgGraph", users: list[dict[str, Any]], root: Path, config_dir: Path, key: bytes) -> "WaveIngest":
    """Validate, match and pseudonymise a wave's exports and store them; returns the ingest report.

    Raises `LookupError` when the wave has no exports and `ValueError` when nothing valid landed;
    in both cases the previously stored wave is left as it was.
    """
    from analytics.surveys.config import load_surveys
    from analytics.surveys.ingest import RespondentDirectory, ingest_wave
    from catalog_pipelines.storage.surveys_store import export_dir, write_wave

    survey = next((s for s in load_surveys(config_dir) if wave_id in {w.id for w in s.waves}), None)
    if survey is None:
        raise LookupError(f"no survey in {config_dir} has a wave {wave_id!r}")
    exports, invited = read_wave_exports(root, wave_id)
    if not exports:
        raise LookupError(f"no exports for wave {wave_id!r}: put the survey tool's CSV/JSON exports in {export_dir(root, wave_id)}")
    result = ingest_wave(survey, survey.wave(wave_id), exports, RespondentDirectory(org, users), key, invited)
    if not len(result.responses):
        problems = "\n".join(str(e) for e in result.errors[:20])
        raise ValueError(f"no valid response in the exports of wave {wave_id!r}; previous data kept.\n{problems}")
    write_wave(root, wave_id, result.responses, result.invited, result.stats)
    return result


def compute_survey_trends(org: "OrgGraph", root: Path, config_dir: Path) -> "SurveyInsights":
    """Figures for every survey and every stored wave, anonymity rules applied."""
    from analytics.surveys.trends import SurveyInsights, compute_insights
    from analytics.surveys.config import load_surveys

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
    from analytics.surveys.publication import k_violations
    from catalog_pipelines.storage.insights import write_frames

    frames = {table: getattr(insights, table.name) for table in TABLES}
    problems = [*insights.disclosures, *k_violations({table.name: frame for table, frame in frames.items()})]
    if problems:
        raise RuntimeError("anonymity verification failed; nothing was published:\n" + "\n".join(problems[:20]))
    return write_frames(engine, frames)


def read_table(engine: "sa.Engine", table: "InsightTable") -> "pd.DataFrame | None":
    from catalog_pipelines.storage.insights import read_frame

    return read_frame(engine, table)


def published_violations(engine: "sa.Engine") -> list[str]:
    """Figures in the stored tables that break the k-threshold (empty when none).

    Reads only what dashboards and the CLI read, so it checks the published data itself, whatever
    produced it (see `analytics.surveys.publication.k_violations`).
    """
    from analytics.surveys.publication import k_violations

    return k_violations({table.name: read_table(engine, table) for table in TABLES})


def ingest_wave_from_catalog(engine: "sa.Engine", wave_id: str) -> "WaveIngest":
    """`ingest_survey_wave` with the stored catalog's users and org and the configured folders."""
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.frames import entities_frame

    users = entities_frame(engine, ["User"])
    return ingest_survey_wave(
        wave_id, org_graph(engine), list(users["entity"]) if len(users) else [], surveys_root(), surveys_config_dir(), Settings.from_env().pseudonym_key
    )


def publish_catalog_trends(engine: "sa.Engine") -> dict[str, Any]:
    """Compute the trends over the stored org and publish them (RuntimeError, nothing written, when
    a figure would break the anonymity rules). Returns the insights, the rows written, the
    violations found when re-reading the stored tables, and the response-rate collapses."""
    from analytics.surveys.trends import response_rate_collapses
    from analytics.surveys.config import load_surveys
    from catalog_pipelines.services.catalog import org_graph

    config_dir = surveys_config_dir()
    insights = compute_survey_trends(org_graph(engine), surveys_root(), config_dir)
    rows = publish_survey_trends(engine, insights)
    # What readers will see: the stored tables, re-read.
    stored_problems = published_violations(engine)
    surveys = {s.id: s for s in load_surveys(config_dir)}
    collapses = []
    for survey_id, frame in insights.waves.groupby("survey"):
        found = response_rate_collapses(frame, surveys[survey_id].collapse)
        collapses += found.to_dict(orient="records")
    return {"insights": insights, "rows": rows, "stored_problems": stored_problems, "collapses": collapses}


def generate_exports(engine: "sa.Engine", *, seed: int, email_domain: str | None = None, survey_id: str | None = None, layout: str = "generic") -> list[dict[str, Any]] | None:
    """Synthetic exports for the catalog's users and teams, with planted effects; None when the
    catalog has no users."""
    from analytics.surveys.config import load_surveys
    from catalog_pipelines.services.catalog import org_graph

    org = org_graph(engine)
    if not org.users:
        return None
    out = []
    for survey in load_surveys(surveys_config_dir()):
        if survey_id and survey.id != survey_id:
            continue
        files, scenario = write_synthetic_exports(surveys_root(), survey, org, seed, email_domain=email_domain, layout=layout)
        out.append({"survey": survey.id, "files": [str(f) for f in files], "scenario": {**scenario.__dict__, "moved_users": len(scenario.moved_users)}})
    return out


def published_table(table: "InsightTable", engine: "sa.Engine | None" = None) -> "pd.DataFrame":
    """One published survey table, after verifying k on all of them in this process: nothing about
    people is shown from tables that break the anonymity threshold (SurveysUnavailable)."""
    from analytics.surveys.publication import k_violations
    from catalog_pipelines.services.catalog import engine_from_env
    from catalog_pipelines.storage.insights import read_frame

    engine = engine or engine_from_env()
    tables = {t.name: read_frame(engine, t) for t in TABLES}
    problems = k_violations(tables)
    if problems:
        raise SurveysUnavailable(
            f"refusing to show survey figures: {len(problems)} in the published tables break the anonymity threshold "
            f"(first: {problems[0]}); re-materialise `survey_trends` (or `catalog-pipelines surveys load`)"
        )
    frame = tables[table.name]
    if frame is None:
        raise SurveysUnavailable(
            "no survey results yet: materialise `survey_trends` first (Dagster UI, or `catalog-pipelines surveys load`)"
        )
    return frame
