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

from catalog_pipelines.model import config_files
from catalog_pipelines.model.config_files import ConfigIssue
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
    """A survey definition is invalid; the message names the file, the line and the offending entry
    (one `file:line: path: message` per problem, also in `issues`)."""

    def __init__(self, message: str, issues: list[ConfigIssue] | None = None):
        super().__init__(message)
        self.issues = issues or []


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
    ids: tuple[str, ...] = ()  # the tool's ids for it (Qualtrics QID7 or Q7, ...)
    texts: tuple[str, ...] = ()  # other wordings of its text in exports

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
    match: str = "id_or_text"  # how questions find their export column: id, text or id_or_text


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
    owner: str | None = None  # canonical group ref

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
        doc = config_files.load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        issue = config_files.yaml_issue(exc, str(path))
        raise SurveyConfigError(str(issue), [issue]) from exc
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
    """Validate a decoded definition through `SurveyFile` (pydantic), then the rules a schema cannot
    say (question ids unique and not reserved, dimensions declared, options and labels per question
    type, wave ids unique, dates in order, population refs). Every problem names the file, the line
    (when `doc` comes from `config_files.load_yaml`) and the entry, e.g. `questions[3].type`."""
    model, issues = config_files.validate(SurveyFile, doc, source)
    if model is None:
        raise SurveyConfigError("\n".join(map(str, issues)), issues)

    def fail(path: tuple[Any, ...], message: str) -> None:
        issues.append(ConfigIssue(source, config_files.line_of(doc, path), message, config_files.show_path(path)))

    if not _ID.match(model.id.replace("-", "_")):
        fail(("id",), f"{model.id!r} must be a lower-case identifier (letters, digits, '-', '_')")
    dimensions = [
        Dimension(dim_id, (spec if isinstance(spec, str) else spec.title if spec else None) or dim_id.replace("_", " ").capitalize(),
                  None if isinstance(spec, str) or spec is None else spec.framework)
        for dim_id, spec in model.dimensions.items()
    ]
    dim_ids = {d.id for d in dimensions}

    questions: list[Question] = []
    for i, q in enumerate(model.questions):
        where = ("questions", i)
        if q.id in RESERVED_COLUMNS:
            fail((*where, "id"), f"{q.id!r} must be a lower-case identifier other than {sorted(RESERVED_COLUMNS)}")
        if q.id in {x.id for x in questions}:
            fail((*where, "id"), f"duplicate question id {q.id!r}")
        if q.dimension not in dim_ids:
            fail((*where, "dimension"), f"{q.dimension!r} is not a declared dimension ({', '.join(sorted(dim_ids))})")
        options = tuple(str(o) for o in (q.options or ()))
        if q.type in ("single_choice", "multi_choice"):
            if len(options) < 2 or len(set(o.casefold() for o in options)) != len(options):
                fail((*where, "options"), "choice questions need at least two distinct options")
            if q.type == "multi_choice" and len(options) > MAX_MULTI_OPTIONS:
                fail((*where, "options"), f"at most {MAX_MULTI_OPTIONS} options")
            if any(sep in o for o in options for sep in (";", "|")):
                fail((*where, "options"), "options may not contain ';' or '|' (they separate multiple choices)")
        elif options:
            fail((*where, "options"), f"only choice questions have options, not {q.type}")
        labels = tuple(q.labels or ())
        if q.type == "likert":
            labels = labels or DEFAULT_LIKERT_LABELS
            if len(labels) != 5:
                fail((*where, "labels"), "a Likert question needs exactly five labels (for 1..5)")
        elif labels:
            fail((*where, "labels"), "only Likert questions have labels")
        questions.append(Question(q.id, q.text or q.id, q.type, q.dimension, options, labels, q.column, tuple(q.ids or ()), tuple(q.texts or ())))

    waves: list[Wave] = []
    for i, w in enumerate(model.waves):
        where = ("waves", i)
        if w.id in {x.id for x in waves}:
            fail((*where, "id"), f"duplicate wave id {w.id!r}")
        if w.opens and w.closes and w.closes < w.opens:
            fail((*where, "closes"), "closes before it opens")
        if waves and w.opens and waves[-1].opens and w.opens < waves[-1].opens:
            fail((*where, "opens"), "waves must be listed in chronological order")
        groups: list[str] = []
        for j, g in enumerate((w.population.groups if w.population else None) or ()):
            try:
                groups.append(parse_entity_ref(g, default_kind="group").canonical())
            except EntityRefError as exc:
                fail((*where, "population", "groups", j), str(exc))
        waves.append(Wave(w.id, i, w.title or w.id, w.opens, w.closes, tuple(groups)))
    if issues:
        raise SurveyConfigError("\n".join(map(str, issues)), issues)

    owner = None
    if model.owner:
        try:
            owner = parse_entity_ref(model.owner, default_kind="group").canonical()
        except EntityRefError as exc:
            fail(("owner",), str(exc))
    if issues:
        raise SurveyConfigError("\n".join(map(str, issues)), issues)
    export = model.export or ExportModel()
    collapse = (model.checks.response_rate_collapse if model.checks else None) or CollapseModel()
    return SurveyDefinition(
        id=model.id,
        title=model.title or model.id,
        dimensions=tuple(dimensions),
        questions=tuple(questions),
        waves=tuple(waves),
        min_group_size=(model.anonymity or AnonymityModel()).min_group_size,
        export=ExportFormat(**{key: value for key in ("respondent_column", "consent_column", "submitted_column", "match") if (value := getattr(export, key))}),
        collapse=CollapseThresholds(collapse.max_relative_drop, collapse.min_rate_pct),
        source=source,
        owner=owner,
    )


# --- schema (pydantic) -------------------------------------------------------------------------
# The shape of a survey file: `parse_survey` parses every definition through it (then checks the
# cross-field rules: options per question type, dimensions declared, chronological waves), and
# `catalog-pipelines config schema/validate` publish and apply it (editors complete and check
# config/surveys/*.yaml).

from typing import Annotated, Literal  # noqa: E402

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints  # noqa: E402


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _at_least_the_floor(k: int) -> int:
    if k < MIN_GROUP_SIZE_FLOOR:
        raise ValueError(f"{k} is below the floor of {MIN_GROUP_SIZE_FLOOR}; smaller groups cannot be reported anonymously")
    return k


class AnonymityModel(_Strict):
    min_group_size: Annotated[int, AfterValidator(_at_least_the_floor)] = Field(
        DEFAULT_MIN_GROUP_SIZE, strict=True, json_schema_extra={"minimum": MIN_GROUP_SIZE_FLOOR}, description="groups with fewer respondents are hidden everywhere")


class ExportModel(_Strict):
    respondent_column: str | None = None
    consent_column: str | None = None
    submitted_column: str | None = None
    match: Literal["id", "text", "id_or_text"] | None = Field(
        None, description="how questions find their export column: by id (header, Qualtrics ImportId), by question text, or id first (default)")


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
    ids: list[str] | None = Field(None, description="the survey tool's ids for this question, e.g. Qualtrics QID7 or Q7")
    texts: list[str] | None = Field(None, description="other wordings of the question text in exports (e.g. an earlier wave's)")


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
    owner: str | None = Field(None, description="the group that runs the survey (e.g. group:default/dx-team): it is notified when the response rate collapses")
    anonymity: AnonymityModel | None = None
    export: ExportModel | None = None
    checks: ChecksModel | None = None
    dimensions: dict[Annotated[str, StringConstraints(pattern=_ID.pattern)], str | DimensionModel | None] = Field(min_length=1)
    questions: list[QuestionModel] = Field(min_length=1)
    waves: list[WaveModel] = Field(min_length=1)
