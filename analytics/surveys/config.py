"""Survey definitions: the YAML files under `config/surveys/`, parsed and validated.

Kept free of pandas/numpy so that the Dagster code location can read the wave ids (its partition
keys) at import time without slowing every run's start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

QUESTION_TYPES = ("likert", "nps", "single_choice", "multi_choice", "free_text")
SCALES = {"likert": (1, 5), "nps": (0, 10)}
DEFAULT_LIKERT_LABELS = ("Strongly disagree", "Disagree", "Neutral", "Agree", "Strongly agree")
DEFAULT_MIN_GROUP_SIZE = 5
MIN_GROUP_SIZE_FLOOR = 3
# Columns of the stored (wide) response frame besides one column per question.
RESPONDENT, TEAM, CONSENT = "respondent", "team_ref", "consent"
RESERVED_COLUMNS = frozenset({RESPONDENT, TEAM, CONSENT})
MAX_MULTI_OPTIONS = 31  # multi-choice answers are stored as an int32 bit mask
PARTICIPATION = "participation"

_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Wave ids become Dagster partition keys and file names.
_WAVE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class SurveyConfigError(ValueError):
    """A survey definition is invalid; the message names the file and the offending entry."""


@dataclass(frozen=True)
class Dimension:
    id: str
    title: str
    framework: str | None = None


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    type: str
    dimension: str
    options: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    column: str | None = None  # header in the export when it is not the question id

    @property
    def scale(self) -> tuple[int, int] | None:
        return SCALES.get(self.type)


@dataclass(frozen=True)
class Wave:
    id: str
    order: int
    title: str
    opens: date | None = None
    closes: date | None = None
    population_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportFormat:
    """Where the export keeps the non-question fields. Aliases cover the common survey tools."""

    respondent_column: str = "email"
    consent_column: str = "free_text_consent"
    submitted_column: str = "submitted_at"


@dataclass(frozen=True)
class CollapseThresholds:
    """A wave's overall response rate has collapsed when it falls by more than `max_relative_drop`
    of the previous wave's rate, or below `min_rate_pct`."""

    max_relative_drop: float = 0.5
    min_rate_pct: float = 20.0


@dataclass(frozen=True)
class SurveyDefinition:
    id: str
    title: str
    dimensions: tuple[Dimension, ...]
    questions: tuple[Question, ...]
    waves: tuple[Wave, ...]
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    export: ExportFormat = field(default_factory=ExportFormat)
    collapse: CollapseThresholds = field(default_factory=CollapseThresholds)
    source: str = ""

    def question(self, question_id: str) -> Question:
        for q in self.questions:
            if q.id == question_id:
                return q
        raise KeyError(question_id)

    def wave(self, wave_id: str) -> Wave:
        for w in self.waves:
            if w.id == wave_id:
                return w
        raise KeyError(wave_id)

    def dimension_title(self, dimension_id: str) -> str:
        return next((d.title for d in self.dimensions if d.id == dimension_id), dimension_id)


# --- loading ----------------------------------------------------------------------------------


def load_survey(path: str | Path) -> SurveyDefinition:
    """Parse and validate one survey definition file."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SurveyConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_survey(doc, source=str(path))


def load_surveys(directory: str | Path) -> list[SurveyDefinition]:
    """Every `*.yaml`/`*.yml` definition in a directory, sorted by file name.

    Wave ids must be unique across all surveys because they are the partition keys of the responses.
    """
    directory = Path(directory)
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    surveys = [load_survey(p) for p in files]
    seen: dict[str, str] = {}
    for survey in surveys:
        if survey.id in {s.id for s in surveys if s is not survey}:
            raise SurveyConfigError(f"{survey.source}: survey id {survey.id!r} is used by another file")
        for wave in survey.waves:
            if wave.id in seen:
                raise SurveyConfigError(
                    f"{survey.source}: wave id {wave.id!r} is already used by survey {seen[wave.id]!r}; "
                    "wave ids are partition keys and must be unique across surveys"
                )
            seen[wave.id] = survey.id
    return surveys


def parse_survey(doc: Any, source: str = "<survey>") -> SurveyDefinition:
    """Validate a decoded definition; errors name the file and the entry, e.g. `questions[3].type`."""

    def fail(where: str, message: str) -> SurveyConfigError:
        return SurveyConfigError(f"{source}: {where}: {message}")

    if not isinstance(doc, dict):
        raise fail("top level", "expected a mapping")
    survey_id = doc.get("id")
    if not isinstance(survey_id, str) or not _ID.match(survey_id.replace("-", "_")):
        raise fail("id", f"{survey_id!r} must be a lower-case identifier (letters, digits, '-', '_')")

    anonymity = doc.get("anonymity") or {}
    k = anonymity.get("min_group_size", DEFAULT_MIN_GROUP_SIZE)
    if isinstance(k, bool) or not isinstance(k, int):
        raise fail("anonymity.min_group_size", f"{k!r} is not a whole number")
    if k < MIN_GROUP_SIZE_FLOOR:
        raise fail(
            "anonymity.min_group_size",
            f"{k} is below the floor of {MIN_GROUP_SIZE_FLOOR}; smaller groups cannot be reported anonymously",
        )

    dimensions: list[Dimension] = []
    raw_dims = doc.get("dimensions")
    if not isinstance(raw_dims, dict) or not raw_dims:
        raise fail("dimensions", "expected a non-empty mapping of dimension id to its title")
    for dim_id, spec in raw_dims.items():
        if not isinstance(dim_id, str) or not _ID.match(dim_id):
            raise fail(f"dimensions.{dim_id}", "dimension ids must be lower-case identifiers")
        if isinstance(spec, str):
            spec = {"title": spec}
        spec = spec or {}
        dimensions.append(Dimension(dim_id, str(spec.get("title") or dim_id.replace("_", " ").capitalize()), spec.get("framework")))
    dim_ids = {d.id for d in dimensions}

    questions: list[Question] = []
    raw_questions = doc.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise fail("questions", "expected a non-empty list")
    for i, q in enumerate(raw_questions):
        where = f"questions[{i}]"
        if not isinstance(q, dict):
            raise fail(where, "expected a mapping")
        qid = q.get("id")
        if not isinstance(qid, str) or not _ID.match(qid) or qid in RESERVED_COLUMNS:
            raise fail(f"{where}.id", f"{qid!r} must be a lower-case identifier other than {sorted(RESERVED_COLUMNS)}")
        if qid in {x.id for x in questions}:
            raise fail(f"{where}.id", f"duplicate question id {qid!r}")
        qtype = q.get("type")
        if qtype not in QUESTION_TYPES:
            raise fail(f"{where}.type", f"{qtype!r} is not one of {', '.join(QUESTION_TYPES)}")
        dim = q.get("dimension")
        if dim not in dim_ids:
            raise fail(f"{where}.dimension", f"{dim!r} is not a declared dimension ({', '.join(sorted(dim_ids))})")
        options = tuple(str(o) for o in (q.get("options") or ()))
        if qtype in ("single_choice", "multi_choice"):
            if len(options) < 2 or len(set(o.casefold() for o in options)) != len(options):
                raise fail(f"{where}.options", "choice questions need at least two distinct options")
            if qtype == "multi_choice" and len(options) > MAX_MULTI_OPTIONS:
                raise fail(f"{where}.options", f"at most {MAX_MULTI_OPTIONS} options")
            if any(sep in o for o in options for sep in (";", "|")):
                raise fail(f"{where}.options", "options may not contain ';' or '|' (they separate multiple choices)")
        elif options:
            raise fail(f"{where}.options", f"only choice questions have options, not {qtype}")
        labels = tuple(str(x) for x in (q.get("labels") or ()))
        if qtype == "likert":
            labels = labels or DEFAULT_LIKERT_LABELS
            if len(labels) != 5:
                raise fail(f"{where}.labels", "a Likert question needs exactly five labels (for 1..5)")
        elif labels:
            raise fail(f"{where}.labels", "only Likert questions have labels")
        questions.append(
            Question(qid, str(q.get("text") or qid), qtype, dim, options, labels, q.get("column"))
        )

    waves: list[Wave] = []
    raw_waves = doc.get("waves")
    if not isinstance(raw_waves, list) or not raw_waves:
        raise fail("waves", "expected a non-empty list")
    for i, w in enumerate(raw_waves):
        where = f"waves[{i}]"
        if not isinstance(w, dict):
            raise fail(where, "expected a mapping")
        wid = w.get("id")
        if not isinstance(wid, str) or not _WAVE_ID.match(wid):
            raise fail(f"{where}.id", f"{wid!r} must be letters, digits, '.', '_' or '-' (it becomes a partition key)")
        if wid in {x.id for x in waves}:
            raise fail(f"{where}.id", f"duplicate wave id {wid!r}")
        opens, closes = (_date(w.get(key), fail, f"{where}.{key}") for key in ("opens", "closes"))
        if opens and closes and closes < opens:
            raise fail(f"{where}.closes", "closes before it opens")
        if waves and opens and waves[-1].opens and opens < waves[-1].opens:
            raise fail(f"{where}.opens", "waves must be listed in chronological order")
        population = w.get("population") or {}
        groups: list[str] = []
        for g in population.get("groups") or ():
            try:
                groups.append(parse_entity_ref(g, default_kind="group").canonical())
            except EntityRefError as exc:
                raise fail(f"{where}.population.groups", str(exc)) from exc
        waves.append(Wave(wid, i, str(w.get("title") or wid), opens, closes, tuple(groups)))

    export = doc.get("export") or {}
    checks = ((doc.get("checks") or {}).get("response_rate_collapse")) or {}
    return SurveyDefinition(
        id=survey_id,
        title=str(doc.get("title") or survey_id),
        dimensions=tuple(dimensions),
        questions=tuple(questions),
        waves=tuple(waves),
        min_group_size=k,
        export=ExportFormat(**{key: str(export[key]) for key in ("respondent_column", "consent_column", "submitted_column") if export.get(key)}),
        collapse=CollapseThresholds(
            float(checks.get("max_relative_drop", CollapseThresholds.max_relative_drop)),
            float(checks.get("min_rate_pct", CollapseThresholds.min_rate_pct)),
        ),
        source=source,
    )


def _date(value: Any, fail: Any, where: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise fail(where, f"{value!r} is not an ISO date") from exc


# --- schema (pydantic) -------------------------------------------------------------------------
# The shape of a survey file, for `catalog-pipelines config schema/validate` (editors complete and
# check config/surveys/*.yaml). `parse_survey` checks the same and the cross-field rules (options per
# question type, dimensions declared, chronological waves) with its own messages.

from typing import Annotated, Literal  # noqa: E402

from pydantic import BaseModel, ConfigDict, Field, StringConstraints  # noqa: E402


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnonymityModel(_Strict):
    min_group_size: int = Field(DEFAULT_MIN_GROUP_SIZE, ge=MIN_GROUP_SIZE_FLOOR, strict=True, description="groups with fewer respondents are hidden everywhere")


class ExportModel(_Strict):
    respondent_column: str | None = None
    consent_column: str | None = None
    submitted_column: str | None = None


class CollapseModel(_Strict):
    max_relative_drop: float = 0.5
    min_rate_pct: float = 20.0


class ChecksModel(_Strict):
    response_rate_collapse: CollapseModel | None = None


class DimensionModel(_Strict):
    title: str | None = None
    framework: str | None = None


class QuestionModel(_Strict):
    id: Annotated[str, StringConstraints(pattern=_ID.pattern)]
    type: Literal[QUESTION_TYPES]  # type: ignore[valid-type]
    dimension: str
    text: str | None = None
    options: list[str | int | float] | None = Field(None, description="choice questions only")
    labels: list[str] | None = Field(None, description="Likert questions only: five labels for 1..5")
    column: str | None = Field(None, description="header in the export when it is not the question id")


class PopulationModel(_Strict):
    groups: list[str] | None = None


class WaveModel(_Strict):
    id: Annotated[str, StringConstraints(pattern=_WAVE_ID.pattern)] = Field(description="a Dagster partition key, unique across surveys")
    title: str | None = None
    opens: date | None = None
    closes: date | None = None
    population: PopulationModel | None = None


class SurveyFile(_Strict):
    """One survey definition (config/surveys/*.yaml)."""

    id: str
    title: str | None = None
    anonymity: AnonymityModel | None = None
    export: ExportModel | None = None
    checks: ChecksModel | None = None
    dimensions: dict[Annotated[str, StringConstraints(pattern=_ID.pattern)], str | DimensionModel | None] = Field(min_length=1)
    questions: list[QuestionModel] = Field(min_length=1)
    waves: list[WaveModel] = Field(min_length=1)
