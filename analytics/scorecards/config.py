"""Scorecard configuration as YAML files (GitOps): checks, tracks with levels, campaigns.

Every file in the directory may hold `checks:`, `tracks:` and `campaigns:` lists. The loader keeps
the line of every key and list item, so that each problem is reported as `file:line: message`
(unknown operator, unknown fact, a value of the wrong type, bad YAML, a track naming a check that
does not exist, ...). All problems of all files are collected before raising, so one run of
`catalog-pipelines scorecard validate` shows everything to fix.

Rules follow json-rules-engine (as Backstage Tech Insights and Soundcheck do): nested `all` /
`any` / `not` over `{fact, path, operator, value}` conditions, plus the `matches` (regular
expression) and `exists` operators. Filters follow Backstage's catalog-filter semantics: dot-path
keys, case-insensitive, a list of filter sets is an OR of AND-sets, a list of values is an OR.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, ValidationError, WithJsonSchema

from collections.abc import Mapping

from analytics.facts.sources import CATALOG_FACTS, FactSpec
from catalog_pipelines.model import config_files

OPERATORS = (
    "equal",
    "notEqual",
    "lessThan",
    "lessThanInclusive",
    "greaterThan",
    "greaterThanInclusive",
    "in",
    "notIn",
    "contains",
    "doesNotContain",
    "matches",
    "exists",
)
NUMERIC_OPERATORS = ("lessThan", "lessThanInclusive", "greaterThan", "greaterThanInclusive")
# Which operators make sense for which fact type (the value types are checked separately).
OPERATORS_BY_TYPE = {
    "boolean": ("equal", "notEqual", "in", "notIn", "exists"),
    "number": ("equal", "notEqual", *NUMERIC_OPERATORS, "in", "notIn", "exists"),
    "string": ("equal", "notEqual", "in", "notIn", "contains", "doesNotContain", "matches", "exists"),
    "list": ("contains", "doesNotContain", "exists"),
    "object": OPERATORS,
}
SEVERITIES = ("error", "warning")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")



# ---------------------------------------------------------------------------------------------
# model

Filter = list[dict[str, list[str]]]  # OR of AND-sets; keys and values lower-cased
FILTER_EXISTS = "\x00exists"  # stands for Backstage's CATALOG_FILTER_EXISTS in a value list


@dataclass
class Check:
    id: str
    name: str
    rule: dict[str, Any]
    description: str = ""
    filter: Filter | None = None
    exclude: Filter | None = None
    severity: str = "error"
    passed_message: str = ""
    failed_message: str = ""
    fix_hint: str = ""
    file: str = ""
    line: int = 0

    def facts(self) -> set[str]:
        return set(_facts_in(self.rule))


@dataclass
class Level:
    name: str
    checks: list[str]
    description: str = ""


@dataclass
class Track:
    id: str
    name: str
    levels: list[Level]
    description: str = ""
    owner: str | None = None
    filter: Filter | None = None
    exclude: Filter | None = None
    file: str = ""
    line: int = 0

    def check_ids(self) -> list[str]:
        return [c for level in self.levels for c in level.checks]


@dataclass
class Campaign:
    id: str
    name: str
    checks: list[str]
    deadline: date
    description: str = ""
    owner: str | None = None
    start: date | None = None
    filter: Filter | None = None
    exclude: Filter | None = None
    file: str = ""
    line: int = 0


# The team leaderboard ranks no group with fewer entities than this (`leaderboard.minEntities`):
# a 4-entity team at 100 % says little next to a 400-entity one.
LEADERBOARD_MIN_ENTITIES = 10


@dataclass
class ScorecardConfig:
    checks: dict[str, Check] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    digest: str = ""
    leaderboard_min_entities: int = LEADERBOARD_MIN_ENTITIES


ConfigIssue = config_files.ConfigIssue


class ScorecardConfigError(ValueError):
    """One or more problems in the scorecard YAML; `issues` name file and line for each."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("invalid scorecard configuration:\n" + "\n".join(f"  {i}" for i in issues))


def _facts_in(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    if "fact" in node:
        return [node["fact"]]
    out: list[str] = []
    for key in ("all", "any"):
        for child in node.get(key) or []:
            out += _facts_in(child)
    if "not" in node:
        out += _facts_in(node["not"])
    return out


# ---------------------------------------------------------------------------------------------
# validation: the shape of a file is its pydantic model's (`ScorecardFile`, below: unknown keys,
# types, required keys, operators, severities, ids, filters, dates), reported by
# `config_files.validate` with file, line, path and "did you mean". What a schema cannot say is
# checked here, on items the model accepted: known facts, operators and values per fact type,
# regular expressions, a check listed twice in a track, a campaign's dates; `load_config_texts`
# adds ids unique across files and references to checks.

_line = config_files.line


def _rule_issues(node: Any, line: int, what: str, facts: Mapping[str, FactSpec]) -> list[tuple[int, str]]:
    """Problems of a rule the model accepted (so: exactly one of all / any / not / fact); `facts`
    is the fact catalog (`"<source>.<fact>" -> FactSpec`)."""
    line = _line(node, default=line)
    for kind in ("all", "any"):
        if kind in node:
            return [p for i, child in enumerate(node[kind]) for p in _rule_issues(child, _line(node[kind], i), what, facts)]
    if "not" in node:
        return _rule_issues(node["not"], _line(node, "not"), what, facts)
    out: list[tuple[int, str]] = []
    fact, path, operator = node["fact"], node.get("path"), node["operator"]
    spec = facts.get(fact)
    if spec is None:
        known = sorted(facts)
        hint = difflib.get_close_matches(fact, known, n=1)
        out.append((_line(node, "fact"), f"{what}: unknown fact {fact!r}" + (f" (did you mean {hint[0]!r}?)" if hint else f"; known facts: {', '.join(known)}")))
    elif path is not None and spec.type != "object":
        out.append((_line(node, "path"), f"{what}: fact {fact!r} is a {spec.type}; 'path' only applies to object facts"))
    fact_type = spec.type if spec is not None else None
    if fact_type == "object" and not path and operator != "exists":
        out.append((_line(node, "operator"), f"{what}: fact {fact!r} is an object; give a 'path' to compare a field, or use 'exists'"))
    elif fact_type is not None and fact_type != "object" and operator not in OPERATORS_BY_TYPE[fact_type]:
        out.append((_line(node, "operator"), f"{what}: operator {operator!r} does not apply to {fact_type} fact {fact!r} (use one of {', '.join(OPERATORS_BY_TYPE[fact_type])})"))
    else:
        problem = _value_problem(operator, node["value"], None if fact_type == "object" else fact_type)
        if problem:
            out.append((_line(node, "value"), f"{what}: {problem}"))
    return out


def _track_issues(obj: Any, what: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for i, level in enumerate(obj["levels"]):
        for j, cid in enumerate(level["checks"]):
            if cid in seen:
                out.append((_line(level["checks"], j), f"{what} level {i + 1}: check {cid!r} is already in level {seen[cid]} of this track"))
            seen[cid] = i + 1
    return out


def _filter(value: Any) -> Filter | None:
    """A filter the model accepted, normalised: an OR-list of AND-sets, keys and values lower-cased."""
    if value is None:
        return None
    out: Filter = []
    for entry in value if isinstance(value, list) else [value]:
        normalised: dict[str, list[str]] = {}
        for fkey, fval in entry.items():
            # `key: {exists: true}` is Backstage's CATALOG_FILTER_EXISTS (any value at all).
            values = [FILTER_EXISTS] if isinstance(fval, dict) else [_filter_value(v) for v in (fval if isinstance(fval, list) else [fval])]
            normalised.setdefault(str(fkey).lower(), []).extend(values)
        out.append(normalised)
    return out or None


def _item(model: type[BaseModel], item: Any) -> Any:
    """`item` validated by `model`, or None (the file's validation has reported why)."""
    try:
        return model.model_validate(item)
    except ValidationError:
        return None


def _filter_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_problem(operator: str, value: Any, fact_type: str | None) -> str | None:
    """Why `value` does not fit `operator` on a fact of `fact_type` (None: unknown type)."""
    scalar_ok = {
        "boolean": lambda v: isinstance(v, bool),
        "number": _is_number,
        "string": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, str | int | float | bool),
        None: lambda v: isinstance(v, str | int | float | bool) or v is None,
    }[fact_type]
    expected = {"boolean": "a boolean", "number": "a number", "string": "a string", "list": "a scalar", None: "a scalar"}[fact_type]
    if operator == "exists":
        return None if isinstance(value, bool) else f"operator 'exists' takes true or false, got {_show(value)}"
    if operator in NUMERIC_OPERATORS:
        return None if _is_number(value) else f"operator {operator!r} needs a number, got {_show(value)}"
    if operator in ("in", "notIn"):
        if not isinstance(value, list) or not value:
            return f"operator {operator!r} needs a non-empty list of values, got {_show(value)}"
        bad = [v for v in value if not scalar_ok(v)]
        return f"operator {operator!r} needs a list of {expected[2:] if expected.startswith('a ') else expected}s, got {_show(bad[0])} in the list" if bad else None
    if operator == "matches":
        if not isinstance(value, str):
            return f"operator 'matches' needs a regular expression string, got {_show(value)}"
        try:
            re.compile(value)
        except re.error as exc:
            return f"operator 'matches': invalid regular expression {value!r}: {exc}"
        return None
    if operator in ("contains", "doesNotContain") and fact_type == "string" and not isinstance(value, str):
        return f"operator {operator!r} on a string fact needs a string, got {_show(value)}"
    if not scalar_ok(value):
        return f"operator {operator!r} on a {fact_type or 'field'} needs {expected}, got {_show(value)}"
    return None


def _show(value: Any) -> str:
    kind = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}.get(type(value))
    if kind is None:
        kind = "list" if isinstance(value, list) else "mapping" if isinstance(value, dict) else type(value).__name__
    text = repr(_plain(value))
    return f"{kind} {text[:60]}"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# loading


def load_config(directory: Path | str, *, relative_to: Path | str | None = None, facts: Mapping[str, FactSpec] | None = None) -> ScorecardConfig:
    """Load and validate every `*.yaml` / `*.yml` file in `directory` (or one file). Checks may
    reference the facts of `facts` only (the fact catalog, `services.facts.fact_catalog()`;
    default: the catalog's own facts).

    Raises `ScorecardConfigError` listing every problem as `file:line: message`.
    """
    directory = Path(directory)
    paths = [directory] if directory.is_file() else sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    base = Path(relative_to) if relative_to else (directory.parent if directory.is_file() else directory)
    texts = [(p, p.read_text(encoding="utf-8")) for p in paths]
    return load_config_texts([(_display(p, base), text) for p, text in texts], facts=facts)


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def load_config_texts(files: list[tuple[str, str]], *, facts: Mapping[str, FactSpec] | None = None) -> ScorecardConfig:
    """Load from `(file name, YAML text)` pairs: the names appear in error messages. `facts`: the
    fact catalog checks may reference (default: the catalog's own facts)."""
    facts = CATALOG_FACTS if facts is None else facts
    issues: list[ConfigIssue] = []
    config = ScorecardConfig(files=[name for name, _ in files])
    digest = hashlib.sha256()
    where: dict[tuple[str, str], ConfigIssue] = {}
    # Ids of checks that were defined but invalid: a track naming one is not a second error.
    invalid_checks: set[str] = set()
    refs: list[tuple[str, str, str, str, int]] = []  # (file, "track"/"campaign", its id, check id, line)
    for name, text in files:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        try:
            doc = config_files.load_yaml(text)
        except yaml.YAMLError as exc:
            issues.append(config_files.yaml_issue(exc, name))
            continue
        if doc is None:
            continue
        parsed_file, file_issues = config_files.validate(ScorecardFile, doc, name)
        semantic: list[tuple[int, str]] = []
        board = getattr(parsed_file, "leaderboard", None)
        if board is not None:
            if (("leaderboard", "")) in where:
                first = where[("leaderboard", "")]
                semantic.append((_line(doc, "leaderboard"), f"leaderboard is already set at {first.file}:{first.line}"))
            else:
                where[("leaderboard", "")] = ConfigIssue(name, _line(doc, "leaderboard"), "")
                config.leaderboard_min_entities = board.minEntities
        for section, model in (("checks", CheckModel), ("tracks", TrackModel), ("campaigns", CampaignModel)):
            items = doc.get(section) if isinstance(doc, dict) else None
            for i, item in enumerate(items if isinstance(items, list) else []):
                line, kind = _line(items, i), section[:-1]
                parsed = _item(model, item)
                what = f"{kind} {parsed.id!r}" if parsed is not None else kind
                if parsed is None:
                    problems = [(line, "")]  # reported by the file's validation
                elif section == "checks":
                    problems = _rule_issues(item["rule"], _line(item, "rule"), what, facts)
                elif section == "tracks":
                    problems = _track_issues(item, what)
                else:
                    problems = [(_line(item, "start"), f"{what}: start {parsed.start} is after the deadline {parsed.deadline}")] if parsed.start and parsed.start > parsed.deadline else []
                semantic += [p for p in problems if p[1]]
                if problems:
                    if section == "checks" and isinstance(item, dict) and isinstance(item.get("id"), str):
                        invalid_checks.add(item["id"])
                    continue
                registry = getattr(config, section)
                if parsed.id in registry:
                    first = where[(section, parsed.id)]
                    semantic.append((line, f"duplicate {kind} id {parsed.id!r} (first defined at {first.file}:{first.line})"))
                    continue
                where[(section, parsed.id)] = ConfigIssue(name, line, "")
                registry[parsed.id] = _build(section, parsed, item, name)
                if section == "tracks":
                    refs += [(name, kind, parsed.id, cid, _line(level["checks"], j)) for level in item["levels"] for j, cid in enumerate(level["checks"])]
                elif section == "campaigns":
                    refs += [(name, kind, parsed.id, cid, _line(item["checks"], j)) for j, cid in enumerate(item["checks"])]
        issues += sorted(file_issues + [ConfigIssue(name, line, message) for line, message in semantic], key=lambda i: i.line)
    for file, kind, owner, cid, line in refs:
        if cid not in config.checks and cid not in invalid_checks:
            hint = difflib.get_close_matches(cid, sorted(config.checks), n=1)
            issues.append(ConfigIssue(file, line, f"{kind} {owner!r} names unknown check {cid!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")))
    if issues:
        raise ScorecardConfigError(issues)
    config.digest = digest.hexdigest()[:16]
    return config


def _build(section: str, m: Any, item: Any, file: str) -> Check | Track | Campaign:
    """The dataclass of a validated check, track or campaign."""
    common = {"id": m.id, "name": m.name, "description": m.description or "", "filter": _filter(m.filter), "exclude": _filter(m.exclude), "file": file, "line": _line(item)}
    if section == "checks":
        return Check(**common, rule=_plain(item["rule"]), severity=m.severity, passed_message=m.passedMessage or "", failed_message=m.failedMessage or "", fix_hint=m.fixHint or "")
    if section == "tracks":
        return Track(**common, owner=m.owner, levels=[Level(name=lv.name, checks=list(lv.checks), description=lv.description or "") for lv in m.levels])
    return Campaign(**common, owner=m.owner, checks=list(m.checks), start=m.start, deadline=m.deadline)


# ---------------------------------------------------------------------------------------------
# schema (pydantic): the shape of a scorecard file. `load_config` parses every file through it, and
# `catalog-pipelines config schema/validate` publish and apply it.

_Id = Annotated[str, StringConstraints(pattern=_ID.pattern)]
_Text = Annotated[str, StringConstraints(min_length=1)]


def _check_filter(value: Any) -> Any:
    """A filter is a mapping of dot-path keys to values, or a list of them (an OR of AND-sets)."""
    for entry in value if isinstance(value, list) else [value]:
        if not isinstance(entry, dict) or not entry:
            raise ValueError(f"must be a mapping of dot-path keys to values, or a list of them; got {_show(entry)}")
        for key, fval in entry.items():
            if isinstance(fval, dict):
                if set(fval) != {"exists"} or fval["exists"] is not True:
                    raise ValueError(f"{key} must be a value, a list of values or {{exists: true}}, got {_show(fval)}")
                continue
            values = fval if isinstance(fval, list) else [fval]
            if not values or any(isinstance(v, dict | list) or v is None for v in values):
                raise ValueError(f"{key} must be a value, a list of values or {{exists: true}}, got {_show(fval)}")
    return value


_SCALAR = {"type": ["string", "number", "boolean"]}
_FILTER_SET = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {
        "anyOf": [
            _SCALAR,
            {"type": "array", "items": _SCALAR, "minItems": 1},
            {"type": "object", "properties": {"exists": {"const": True}}, "required": ["exists"], "additionalProperties": False},
        ]
    },
}
EntityFilter = Annotated[
    Any,
    AfterValidator(_check_filter),
    WithJsonSchema({"description": "Backstage catalog filter: dot-path keys (case-insensitive) to a value, a list of values (OR) or {exists: true}; a list of such mappings is an OR", "anyOf": [_FILTER_SET, {"type": "array", "items": _FILTER_SET, "minItems": 1}, {"type": "null"}]}),
]


def _condition_kind(value: Any) -> str:
    if isinstance(value, dict):
        return next((f"{k.capitalize()}Condition" for k in ("all", "any", "not") if k in value), "FactCondition")
    return type(value).__name__


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactCondition(_Strict):
    fact: str = Field(description="a fact like 'catalog.has_owner' (declared: the catalog's facts and the collectors' in collectors.yaml)")
    path: _Text | None = Field(None, description="dot path into an object fact")
    operator: Literal[OPERATORS]  # type: ignore[valid-type]
    value: Any


class AllCondition(_Strict):
    all: list["RuleCondition"] = Field(min_length=1)


class AnyCondition(_Strict):
    any: list["RuleCondition"] = Field(min_length=1)


class NotCondition(_Strict):
    not_: "RuleCondition" = Field(alias="not")


# Tagged by the key present (tags are the class names, so error paths skip them).
RuleCondition = Annotated[
    Union[
        Annotated[AllCondition, Tag("AllCondition")],
        Annotated[AnyCondition, Tag("AnyCondition")],
        Annotated[NotCondition, Tag("NotCondition")],
        Annotated[FactCondition, Tag("FactCondition")],
    ],
    Discriminator(_condition_kind, custom_error_type="condition", custom_error_message="a condition must be a mapping with 'all', 'any', 'not' or 'fact'"),
]


class CheckModel(_Strict):
    id: _Id
    name: _Text
    description: str | None = None
    filter: EntityFilter = None
    exclude: EntityFilter = None
    severity: Literal[SEVERITIES] = "error"  # type: ignore[valid-type]
    rule: RuleCondition
    passedMessage: str | None = None
    failedMessage: str | None = None
    fixHint: str | None = None
    links: Any = None


class LevelModel(_Strict):
    name: _Text
    description: str | None = None
    checks: list[str] = Field(min_length=1)


class TrackModel(_Strict):
    id: _Id
    name: _Text
    description: str | None = None
    owner: str | None = None
    filter: EntityFilter = None
    exclude: EntityFilter = None
    levels: list[LevelModel] = Field(min_length=1, description="lowest level first")


class CampaignModel(_Strict):
    id: _Id
    name: _Text
    description: str | None = None
    owner: str | None = None
    checks: list[str] = Field(min_length=1)
    filter: EntityFilter = None
    exclude: EntityFilter = None
    start: date | None = None
    deadline: date


class LeaderboardModel(_Strict):
    minEntities: int = Field(LEADERBOARD_MIN_ENTITIES, ge=1, description="groups with fewer entities are not ranked on the team leaderboard")


class ScorecardFile(_Strict):
    """One scorecard YAML file (config/scorecards/*.yaml)."""

    checks: list[CheckModel] | None = None
    tracks: list[TrackModel] | None = None
    campaigns: list[CampaignModel] | None = None
    leaderboard: LeaderboardModel | None = Field(None, description="how the dashboards rank teams (set in one file only)")


for _model in (AllCondition, AnyCondition, NotCondition, CheckModel):
    _model.model_rebuild()
