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
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from analytics.facts.collect import FACT_SOURCES, fact_spec
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

CHECK_KEYS = {"id", "name", "description", "filter", "exclude", "severity", "rule", "passedMessage", "failedMessage", "fixHint", "links"}
TRACK_KEYS = {"id", "name", "description", "owner", "filter", "exclude", "levels"}
LEVEL_KEYS = {"name", "description", "checks"}
CAMPAIGN_KEYS = {"id", "name", "description", "owner", "checks", "filter", "exclude", "start", "deadline"}
TOP_KEYS = {"checks", "tracks", "campaigns"}


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


@dataclass
class ScorecardConfig:
    checks: dict[str, Check] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    digest: str = ""


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
# YAML with line numbers (shared by every config file: catalog_pipelines.model.config_files)

_Map = config_files._Map
_Loader = config_files._Loader
_DuplicateKey = config_files.DuplicateKeyError
_line = config_files.line


# ---------------------------------------------------------------------------------------------
# validation


class _Validator:
    def __init__(self, file: str):
        self.file = file
        self.issues: list[ConfigIssue] = []
        # Ids of checks that were defined but invalid: a track naming one is not a second error.
        self.invalid_checks: set[str] = set()

    def error(self, line: int, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, line, message))

    # -- generic
    def unknown_keys(self, obj: _Map, allowed: set[str], what: str) -> None:
        for key in obj:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                self.error(_line(obj, key), f"unknown key {key!r} in {what}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))

    def string(self, obj: _Map, key: str, what: str, required: bool = False) -> str | None:
        if key not in obj:
            if required:
                self.error(_line(obj), f"{what} is missing required key {key!r}")
            return None
        value = obj[key]
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(_line(obj, key), f"{what}: {key!r} must be a non-empty string, got {_show(value)}")
            return None
        return value

    def ident(self, obj: _Map, what: str) -> str | None:
        value = self.string(obj, "id", what, required=True)
        if value is not None and not _ID.match(value):
            self.error(_line(obj, "id"), f"{what}: id {value!r} must match {_ID.pattern}")
            return None
        return value

    def id_list(self, obj: _Map, key: str, what: str) -> list[tuple[str, int]]:
        value = obj.get(key)
        if not isinstance(value, list) or not value:
            self.error(_line(obj, key), f"{what}: {key!r} must be a non-empty list of check ids, got {_show(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.error(_line(value, i), f"{what}: check id must be a string, got {_show(item)}")
            else:
                out.append((item, _line(value, i)))
        return out

    def date_value(self, obj: _Map, key: str, what: str, required: bool) -> date | None:
        if key not in obj:
            if required:
                self.error(_line(obj), f"{what} is missing required key {key!r}")
            return None
        value = obj[key]
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.error(_line(obj, key), f"{what}: {key!r} must be a date (YYYY-MM-DD), got {_show(value)}")
        return None

    # -- filters
    def filter(self, obj: _Map, key: str, what: str) -> Filter | None:
        if key not in obj or obj[key] is None:
            return None
        value = obj[key]
        sets = value if isinstance(value, list) else [value]
        out: Filter = []
        for i, entry in enumerate(sets):
            line = _line(value, i) if isinstance(value, list) else _line(obj, key)
            if not isinstance(entry, dict) or not entry:
                self.error(line, f"{what}: {key} must be a mapping of dot-path keys to values, or a list of them; got {_show(entry)}")
                continue
            normalised: dict[str, list[str]] = {}
            for fkey, fval in entry.items():
                fline = _line(entry, fkey, line)
                if not isinstance(fkey, str) or not fkey:
                    self.error(fline, f"{what}: {key} key must be a string, got {_show(fkey)}")
                    continue
                if isinstance(fval, dict):
                    # `key: {exists: true}` is Backstage's CATALOG_FILTER_EXISTS (any value at all).
                    if set(fval) != {"exists"} or fval["exists"] is not True:
                        self.error(fline, f"{what}: {key}.{fkey} must be a value, a list of values or {{exists: true}}, got {_show(fval)}")
                        continue
                    normalised.setdefault(fkey.lower(), []).append(FILTER_EXISTS)
                    continue
                values = fval if isinstance(fval, list) else [fval]
                if not values or any(isinstance(v, dict | list) or v is None for v in values):
                    self.error(fline, f"{what}: {key}.{fkey} must be a value, a list of values or {{exists: true}}, got {_show(fval)}")
                    continue
                normalised.setdefault(fkey.lower(), []).extend(_filter_value(v) for v in values)
            out.append(normalised)
        return out or None

    # -- rules
    def condition(self, node: Any, line: int, what: str, depth: int = 0) -> bool:
        if depth > 20:
            self.error(line, f"{what}: rule nested too deeply")
            return False
        if not isinstance(node, dict):
            self.error(line, f"{what}: a condition must be a mapping with 'all', 'any', 'not' or 'fact', got {_show(node)}")
            return False
        line = _line(node, default=line)
        kinds = [k for k in ("all", "any", "not", "fact") if k in node]
        if len(kinds) != 1:
            self.error(line, f"{what}: a condition needs exactly one of 'all', 'any', 'not' or 'fact' (found {kinds or 'none'})")
            return False
        kind = kinds[0]
        if kind in ("all", "any"):
            self.unknown_keys(node, {kind}, f"{what} '{kind}' condition")
            children = node[kind]
            if not isinstance(children, list) or not children:
                self.error(_line(node, kind), f"{what}: '{kind}' must be a non-empty list of conditions")
                return False
            ok = True
            for i, child in enumerate(children):
                ok = self.condition(child, _line(children, i), what, depth + 1) and ok
            return ok
        if kind == "not":
            self.unknown_keys(node, {"not"}, f"{what} 'not' condition")
            return self.condition(node["not"], _line(node, "not"), what, depth + 1)
        return self.fact_condition(node, what)

    def fact_condition(self, node: _Map, what: str) -> bool:
        self.unknown_keys(node, {"fact", "path", "operator", "value"}, f"{what} condition")
        before = len(self.issues)
        fact = node.get("fact")
        spec = None
        if not isinstance(fact, str):
            self.error(_line(node, "fact"), f"{what}: 'fact' must be a string like 'catalog.has_owner', got {_show(fact)}")
        else:
            spec = fact_spec(fact)
            if spec is None:
                known = sorted(f"{s}.{f}" for s, src in FACT_SOURCES.items() for f in src.facts)
                hint = difflib.get_close_matches(fact, known, n=1)
                self.error(_line(node, "fact"), f"{what}: unknown fact {fact!r}" + (f" (did you mean {hint[0]!r}?)" if hint else f"; known facts: {', '.join(known)}"))
        path = node.get("path")
        if "path" in node:
            if not isinstance(path, str) or not path.strip():
                self.error(_line(node, "path"), f"{what}: 'path' must be a non-empty string, got {_show(path)}")
            elif spec is not None and spec.type != "object":
                self.error(_line(node, "path"), f"{what}: fact {fact!r} is a {spec.type}; 'path' only applies to object facts")
        operator = node.get("operator")
        if "operator" not in node:
            self.error(_line(node), f"{what}: condition is missing 'operator'")
        elif operator not in OPERATORS:
            hint = difflib.get_close_matches(str(operator), OPERATORS, n=1)
            shown = repr(operator) if isinstance(operator, str) else _show(operator)
            self.error(_line(node, "operator"), f"{what}: unknown operator {shown}" + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; known operators: {', '.join(OPERATORS)}")
            operator = None
        if "value" not in node:
            self.error(_line(node), f"{what}: condition is missing 'value'")
        elif operator is not None:
            fact_type = spec.type if spec is not None else None
            if fact_type == "object" and not path and operator != "exists":
                self.error(_line(node, "operator"), f"{what}: fact {fact!r} is an object; give a 'path' to compare a field, or use 'exists'")
            elif fact_type is not None and fact_type != "object" and operator not in OPERATORS_BY_TYPE[fact_type]:
                self.error(_line(node, "operator"), f"{what}: operator {operator!r} does not apply to {fact_type} fact {fact!r} (use one of {', '.join(OPERATORS_BY_TYPE[fact_type])})")
            else:
                problem = _value_problem(operator, node["value"], None if fact_type == "object" else fact_type)
                if problem:
                    self.error(_line(node, "value"), f"{what}: {problem}")
        return len(self.issues) == before

    # -- top-level objects
    def check(self, obj: Any, line: int) -> Check | None:
        if not isinstance(obj, dict):
            self.error(line, f"a check must be a mapping, got {_show(obj)}")
            return None
        what = f"check {obj.get('id', '?')!r}" if isinstance(obj.get("id"), str) else "check"
        before = len(self.issues)
        self.unknown_keys(obj, CHECK_KEYS, what)
        cid = self.ident(obj, what)
        name = self.string(obj, "name", what, required=True)
        severity = obj.get("severity", "error")
        if severity not in SEVERITIES:
            self.error(_line(obj, "severity"), f"{what}: severity must be one of {SEVERITIES}, got {_show(severity)}")
        filt = self.filter(obj, "filter", what)
        excl = self.filter(obj, "exclude", what)
        for key in ("description", "passedMessage", "failedMessage", "fixHint"):
            self.string(obj, key, what)
        if "rule" not in obj:
            self.error(_line(obj), f"{what} is missing required key 'rule'")
        else:
            self.condition(obj["rule"], _line(obj, "rule"), what)
        if len(self.issues) != before or cid is None or name is None:
            if cid is not None:
                self.invalid_checks.add(cid)
            return None
        return Check(
            id=cid,
            name=name,
            rule=_plain(obj["rule"]),
            description=obj.get("description") or "",
            filter=filt,
            exclude=excl,
            severity=severity,
            passed_message=obj.get("passedMessage") or "",
            failed_message=obj.get("failedMessage") or "",
            fix_hint=obj.get("fixHint") or "",
            file=self.file,
            line=_line(obj),
        )

    def track(self, obj: Any, line: int) -> tuple[Track, list[tuple[str, int]]] | None:
        if not isinstance(obj, dict):
            self.error(line, f"a track must be a mapping, got {_show(obj)}")
            return None
        what = f"track {obj.get('id', '?')!r}" if isinstance(obj.get("id"), str) else "track"
        before = len(self.issues)
        self.unknown_keys(obj, TRACK_KEYS, what)
        tid = self.ident(obj, what)
        name = self.string(obj, "name", what, required=True)
        self.string(obj, "description", what)
        self.string(obj, "owner", what)
        filt = self.filter(obj, "filter", what)
        excl = self.filter(obj, "exclude", what)
        levels_raw = obj.get("levels")
        levels: list[Level] = []
        refs: list[tuple[str, int]] = []
        if not isinstance(levels_raw, list) or not levels_raw:
            self.error(_line(obj, "levels"), f"{what}: 'levels' must be a non-empty list (lowest level first)")
        else:
            seen: dict[str, int] = {}
            for i, level in enumerate(levels_raw):
                lline = _line(levels_raw, i)
                if not isinstance(level, dict):
                    self.error(lline, f"{what}: a level must be a mapping with 'name' and 'checks'")
                    continue
                lwhat = f"{what} level {i + 1}"
                self.unknown_keys(level, LEVEL_KEYS, lwhat)
                lname = self.string(level, "name", lwhat, required=True)
                self.string(level, "description", lwhat)
                ids = self.id_list(level, "checks", lwhat)
                for cid, cline in ids:
                    if cid in seen:
                        self.error(cline, f"{lwhat}: check {cid!r} is already in level {seen[cid]} of this track")
                    seen[cid] = i + 1
                refs += ids
                levels.append(Level(name=lname or "", checks=[c for c, _ in ids], description=level.get("description") or ""))
        if len(self.issues) != before or tid is None or name is None:
            return None
        track = Track(id=tid, name=name, levels=levels, description=obj.get("description") or "", owner=obj.get("owner"), filter=filt, exclude=excl, file=self.file, line=_line(obj))
        return track, refs

    def campaign(self, obj: Any, line: int) -> tuple[Campaign, list[tuple[str, int]]] | None:
        if not isinstance(obj, dict):
            self.error(line, f"a campaign must be a mapping, got {_show(obj)}")
            return None
        what = f"campaign {obj.get('id', '?')!r}" if isinstance(obj.get("id"), str) else "campaign"
        before = len(self.issues)
        self.unknown_keys(obj, CAMPAIGN_KEYS, what)
        cid = self.ident(obj, what)
        name = self.string(obj, "name", what, required=True)
        self.string(obj, "description", what)
        self.string(obj, "owner", what)
        ids = self.id_list(obj, "checks", what)
        deadline = self.date_value(obj, "deadline", what, required=True)
        start = self.date_value(obj, "start", what, required=False)
        if start and deadline and start > deadline:
            self.error(_line(obj, "start"), f"{what}: start {start} is after the deadline {deadline}")
        filt = self.filter(obj, "filter", what)
        excl = self.filter(obj, "exclude", what)
        if len(self.issues) != before or cid is None or name is None or deadline is None:
            return None
        campaign = Campaign(id=cid, name=name, checks=[c for c, _ in ids], deadline=deadline, description=obj.get("description") or "", owner=obj.get("owner"), start=start, filter=filt, exclude=excl, file=self.file, line=_line(obj))
        return campaign, ids


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


def load_config(directory: Path | str, *, relative_to: Path | str | None = None) -> ScorecardConfig:
    """Load and validate every `*.yaml` / `*.yml` file in `directory` (or one file).

    Raises `ScorecardConfigError` listing every problem as `file:line: message`.
    """
    directory = Path(directory)
    paths = [directory] if directory.is_file() else sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    base = Path(relative_to) if relative_to else (directory.parent if directory.is_file() else directory)
    texts = [(p, p.read_text(encoding="utf-8")) for p in paths]
    return load_config_texts([(_display(p, base), text) for p, text in texts])


def _display(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def load_config_texts(files: list[tuple[str, str]]) -> ScorecardConfig:
    """Load from `(file name, YAML text)` pairs: the names appear in error messages."""
    issues: list[ConfigIssue] = []
    config = ScorecardConfig(files=[name for name, _ in files])
    digest = hashlib.sha256()
    where: dict[tuple[str, str], ConfigIssue] = {}
    invalid_checks: set[str] = set()
    track_refs: list[tuple[str, str, str, int]] = []
    campaign_refs: list[tuple[str, str, str, int]] = []
    for name, text in files:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        validator = _Validator(name)
        try:
            doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except _DuplicateKey as exc:
            issues.append(ConfigIssue(name, exc.line, f"duplicate key {exc.key!r}"))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            issues.append(ConfigIssue(name, line, f"invalid YAML: {problem}"))
            continue
        if doc is None:
            continue
        if not isinstance(doc, dict):
            issues.append(ConfigIssue(name, 1, f"a scorecard file must be a mapping with 'checks', 'tracks' or 'campaigns', got {_show(doc)}"))
            continue
        validator.unknown_keys(doc, TOP_KEYS, "scorecard file")
        for section, method in (("checks", validator.check), ("tracks", validator.track), ("campaigns", validator.campaign)):
            items = doc.get(section)
            if items is None:
                continue
            if not isinstance(items, list):
                validator.error(_line(doc, section), f"{section!r} must be a list")
                continue
            for i, item in enumerate(items):
                line = _line(items, i)
                parsed = method(item, line)
                if parsed is None:
                    continue
                obj, refs = (parsed, []) if section == "checks" else parsed
                registry = getattr(config, section)
                kind = section[:-1]
                if obj.id in registry:
                    first = where[(section, obj.id)]
                    validator.error(line, f"duplicate {kind} id {obj.id!r} (first defined at {first.file}:{first.line})")
                    continue
                registry[obj.id] = obj
                where[(section, obj.id)] = ConfigIssue(name, line, "")
                target = track_refs if section == "tracks" else campaign_refs
                target += [(name, obj.id, cid, cline) for cid, cline in refs]
        issues += validator.issues
        invalid_checks |= validator.invalid_checks
    for refs, kind in ((track_refs, "track"), (campaign_refs, "campaign")):
        for file, owner, cid, line in refs:
            if cid not in config.checks and cid not in invalid_checks:
                hint = difflib.get_close_matches(cid, sorted(config.checks), n=1)
                issues.append(ConfigIssue(file, line, f"{kind} {owner!r} names unknown check {cid!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")))
    if issues:
        raise ScorecardConfigError(issues)
    config.digest = digest.hexdigest()[:16]
    return config


# ---------------------------------------------------------------------------------------------
# schema (pydantic): the shape of a scorecard file, for `catalog-pipelines config schema/validate`.
# `load_config` checks the same shape and more (facts, operators per fact type, references across
# files) with its own messages; tests/services/test_config_schemas.py keeps the two in agreement on config/.

from typing import Annotated, Literal, Union  # noqa: E402

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, WithJsonSchema  # noqa: E402

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
    fact: str = Field(description="a fact like 'catalog.has_owner' (analytics.facts.collect.FACT_SOURCES)")
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
    Discriminator(_condition_kind),
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


class ScorecardFile(_Strict):
    """One scorecard YAML file (config/scorecards/*.yaml)."""

    checks: list[CheckModel] | None = None
    tracks: list[TrackModel] | None = None
    campaigns: list[CampaignModel] | None = None


for _model in (AllCondition, AnyCondition, NotCondition, CheckModel):
    _model.model_rebuild()
