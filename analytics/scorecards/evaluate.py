"""Scorecard evaluation: checks over facts, vectorised over entities; tracks, levels, exemptions.

One evaluation takes the catalog's entities, the latest facts per source and the validated YAML
configuration (`analytics.scorecards.config`) and produces one state per (entity, check):

- passed; failed; warning (a failed check whose `severity: warning`: it does not block a level);
- not_applicable (the entity is in a track's scope but outside the check's filter);
- not_reported (a fact the rule needs is missing for the entity: shown, never silently skipped);
- error (the fact has a value the operator cannot use, e.g. text where a number is expected).

Rules combine conditions with Kleene three-valued logic, so a missing fact only makes a result
"not reported" when it matters: `any` with one true branch passes even if another branch's fact
is missing; `all` with one false branch fails. `exists` is the only operator that is never
unknown.

Each check is evaluated once over all entities with numpy/pandas column operations (no Python loop
per entity and check). Certification in a track is the highest level whose checks, and those of
every lower level, are all passed, warning or not applicable (a `severity: warning` check never
blocks, whatever its state); an active exemption turns a check into passed until it expires (the
raw state is kept alongside).
"""

from __future__ import annotations

import operator as op
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from analytics.facts.collect import LIVE_FACTS, canonical_series
from analytics.scorecards.config import FILTER_EXISTS, Check, Filter, ScorecardConfig

STATES = ("passed", "failed", "warning", "not_applicable", "not_reported", "error")
PASSED, FAILED, WARNING, NOT_APPLICABLE, NOT_REPORTED, ERROR = range(6)
BLOCKING = np.array([FAILED, NOT_REPORTED, ERROR])
OUTSIDE = -1  # the entity is not evaluated for this check at all

# Filter keys that the entities frame already holds as columns (faster than walking bodies).
_COLUMN_KEYS = {"kind": "kind", "metadata.name": "name", "metadata.namespace": "namespace", "spec.type": "type", "spec.lifecycle": "lifecycle"}


# ---------------------------------------------------------------------------------------------
# entities


def prepare_entities(entities: pd.DataFrame) -> pd.DataFrame:
    """The entities frame with canonical `owner`, `system` and `domain` refs and a RangeIndex.

    Accepts the resource's `entities_frame()` (ref, kind, namespace, name, type, owner, system,
    lifecycle, entity); owner/system may be written as people write them (`team-a`) or canonical.
    """
    frame = entities.drop_duplicates(subset="ref", keep="last").reset_index(drop=True).copy()
    bodies = frame["entity"] if "entity" in frame.columns else pd.Series([{}] * len(frame))
    specs = [(b or {}).get("spec") or {} for b in bodies]
    namespaces = frame["namespace"] if "namespace" in frame.columns else pd.Series("default", index=frame.index)
    for column, key, kind in (("owner", "owner", "group"), ("system", "system", "system")):
        raw = frame[column] if column in frame.columns else pd.Series([s.get(key) for s in specs], index=frame.index)
        frame[column] = canonical_series(raw, kind, namespaces)
    own_domain = canonical_series(pd.Series([s.get("domain") for s in specs], index=frame.index, dtype=object), "domain", namespaces)
    is_system = frame["kind"].str.lower() == "system"
    system_domain = dict(zip(frame.loc[is_system, "ref"], own_domain[is_system], strict=True))
    # Domain: through the entity's system; a system's own spec.domain; a domain is its own.
    domain = frame["system"].map(system_domain).astype(object).where(~is_system, own_domain)
    frame["domain"] = domain.where(frame["kind"].str.lower() != "domain", frame["ref"]).astype(object)
    for column in ("type", "lifecycle", "name", "namespace"):
        if column not in frame.columns:
            frame[column] = None
    if "entity" not in frame.columns:
        frame["entity"] = [{}] * len(frame)
    return frame


# ---------------------------------------------------------------------------------------------
# filters (Backstage catalog-filter semantics)


def _leaves(value: Any) -> list[str]:
    out = []
    for leaf in value if isinstance(value, list) else [value]:
        if isinstance(leaf, bool):
            out.append("true" if leaf else "false")
        elif isinstance(leaf, str | int | float):
            out.append(str(leaf).lower())
    return out


def _search_values(node: Any, key: str) -> list[str]:
    """Values under a dot-path key, as Backstage's search index flattens an entity.

    Keys compare case-insensitively and may themselves contain dots
    (`metadata.annotations.backstage.io/techdocs-ref`); arrays contribute every element.
    Exact-case dictionary lookups at each dot come first (keys are nearly always lower case and
    this runs once per entity); other keys are compared case-insensitively only when they have
    an upper-case letter.
    """
    if isinstance(node, list):
        out: list[str] = []
        for item in node:
            out += _search_values(item, key)
        return out
    if not isinstance(node, dict):
        return []
    out = _leaves(node[key]) if key in node else []
    dot = key.find(".")
    while dot != -1:
        head = key[:dot]
        if head in node:
            out += _search_values(node[head], key[dot + 1 :])
        dot = key.find(".", dot + 1)
    # `"".join(keys).islower()` is one C call: most dicts (metadata, annotations) have no
    # upper-case key at all, so the case-insensitive pass is skipped for them.
    if "".join(k for k in node if isinstance(k, str)).islower():
        return out
    for k, v in node.items():
        if isinstance(k, str) and k != (kl := k.lower()):
            if kl == key:
                out += _leaves(v)
            elif key.startswith(kl + "."):
                out += _search_values(v, key[len(kl) + 1 :])
    return out


def _search_plan(node: Any, key: str) -> list[str] | None:
    """The exact-case dictionary keys that `key` splits into for `node`, if it resolves that way."""
    if not isinstance(node, dict):
        return None
    if key in node:
        return [key]
    dot = key.find(".")
    while dot != -1:
        head = key[:dot]
        if head in node:
            sub = _search_plan(node[head], key[dot + 1 :])
            if sub is not None:
                return [head, *sub]
        dot = key.find(".", dot + 1)
    return None


def search_column(bodies: Iterable[Any], key: str) -> list[list[str]]:
    """`_search_values` over many entities that share a shape.

    The exact-case split that worked for an earlier entity is followed first (one lookup per
    segment); where it stops, the general search continues from that level only.
    """
    plan: list[str] | None = None
    out: list[list[str]] = []
    for body in bodies:
        if plan is not None:
            node, remaining = body, key
            for segment in plan:
                if isinstance(node, dict) and segment in node:
                    node = node[segment]
                    remaining = remaining[len(segment) + 1 :]
                else:
                    break
            if not remaining:
                out.append(_leaves(node) if not isinstance(node, dict) else [])
            else:
                out.append(_search_values(node, remaining))
            continue
        values = _search_values(body, key)
        out.append(values)
        if values:
            plan = _search_plan(body, key)
    return out


class FilterIndex:
    """Filter masks over the prepared entities, cached per key/value set."""

    def __init__(self, entities: pd.DataFrame):
        self.entities = entities
        self.n = len(entities)
        self._keys: dict[str, pd.Series] = {}
        self._masks: dict[Any, np.ndarray] = {}

    def _values(self, key: str) -> pd.Series:
        if key not in self._keys:
            column = _COLUMN_KEYS.get(key)
            if column is not None:
                self._keys[key] = self.entities[column].astype("str").str.lower()
            else:
                self._keys[key] = pd.Series(search_column(self.entities["entity"], key), index=self.entities.index, dtype=object)
        return self._keys[key]

    def _key_mask(self, key: str, values: list[str]) -> np.ndarray:
        cache_key = (key, tuple(sorted(values)))
        if cache_key not in self._masks:
            series = self._values(key)
            if key in _COLUMN_KEYS:
                mask = series.isin(values).to_numpy(dtype=bool)
                if FILTER_EXISTS in values:
                    mask = mask | series.notna().to_numpy(dtype=bool)
            else:
                exploded = series.explode()
                mask = exploded.isin(values).groupby(level=0).any().reindex(series.index, fill_value=False).to_numpy(dtype=bool)
                if FILTER_EXISTS in values:
                    mask = mask | series.map(bool).to_numpy(dtype=bool)
            self._masks[cache_key] = mask
        return self._masks[cache_key]

    def mask(self, filt: Filter | None, *, empty: bool = True) -> np.ndarray:
        """Entities matching `filt` (OR of AND-sets); `empty` is the answer for no filter."""
        if not filt:
            return np.full(self.n, empty, dtype=bool)
        out = np.zeros(self.n, dtype=bool)
        for and_set in filt:
            part = np.ones(self.n, dtype=bool)
            for key, values in and_set.items():
                part &= self._key_mask(key, values)
            out |= part
        return out

    def scope(self, filt: Filter | None, exclude: Filter | None) -> np.ndarray:
        return self.mask(filt) & ~self.mask(exclude, empty=False)


# ---------------------------------------------------------------------------------------------
# facts aligned to entities


def resolve_path(value: Any, path: str) -> Any:
    """A JSONPath-like dot path into a fact value (`$.metadata.annotations.backstage.io/x`).

    Keys may contain dots, so at each level the longest key that prefixes the rest wins; numeric
    segments index lists. Returns None when the path does not exist.
    """
    rest = path[2:] if path.startswith("$.") else path.lstrip("$")
    return _resolve(value, rest)


def _resolve(node: Any, rest: str) -> Any:
    while rest:
        if isinstance(node, dict):
            if rest in node:
                return node[rest]
            # Longest prefix first: try the dots from the right, each one dictionary lookup.
            dot = rest.rfind(".")
            while dot != -1 and rest[:dot] not in node:
                dot = rest.rfind(".", 0, dot)
            if dot == -1:
                return None
            node, rest = node[rest[:dot]], rest[dot + 1 :]
        elif isinstance(node, list):
            head, _, tail = rest.partition(".")
            if not head.isdigit() or int(head) >= len(node):
                return None
            node, rest = node[int(head)], tail
        else:
            return None
    return node


_MISS = object()


def resolve_paths(values: Iterable[Any], path: str) -> list[Any]:
    """`resolve_path` over many values that share a shape (entity bodies, fact objects).

    The key split that works for the first value that has the path is followed for all values,
    one list comprehension per segment; a value where it stops is resolved from the level where
    it stopped (keys containing dots may split differently there).
    """
    rest = path[2:] if path.startswith("$.") else path.lstrip("$")
    values = list(values)
    plan = next((p for p in (_plan(v, rest) for v in values if v is not None) if p), None)
    if plan is None:
        return [_resolve(v, rest) if v is not None else None for v in values]
    levels = [values]
    for segment in plan:
        levels.append([c.get(segment, _MISS) if type(c) is dict else _MISS for c in levels[-1]])
    out = levels[-1]
    for i, value in enumerate(out):
        if value is _MISS:
            depth = len(plan) - 1
            while depth > 0 and levels[depth][i] is _MISS:
                depth -= 1
            node = levels[depth][i]
            out[i] = _resolve(node, ".".join(plan[depth:])) if node is not None else None
    return out


def _plan(value: Any, rest: str) -> list[str] | None:
    """The dictionary keys `rest` splits into for `value`, or None if it goes through a list."""
    segments: list[str] = []
    node = value
    while rest:
        if not isinstance(node, dict):
            return None
        if rest in node:
            return [*segments, rest]
        dot = rest.rfind(".")
        while dot != -1 and rest[:dot] not in node:
            dot = rest.rfind(".", 0, dot)
        if dot == -1:
            return segments + [rest] if segments else None
        segments.append(rest[:dot])
        node, rest = node[rest[:dot]], rest[dot + 1 :]
    return segments


def _all_bool(column: pd.Series) -> bool:
    if column.dtype != object:
        return False
    present = column.dropna()
    return len(present) > 0 and all(isinstance(v, bool | np.bool_) for v in present.iloc[:1000]) and present.map(type).isin([bool, np.bool_]).all()


class FactTable:
    """Fact columns aligned to the prepared entities (position = entity), cached per fact/path."""

    def __init__(self, entities: pd.DataFrame, facts: dict[str, pd.DataFrame]):
        self.entities = entities
        self.refs = pd.Index(entities["ref"])
        self.facts = facts
        self._aligned: dict[str, pd.DataFrame | None] = {}
        self._series: dict[tuple[str, str | None], pd.Series] = {}

    def _source(self, source: str) -> pd.DataFrame | None:
        if source not in self._aligned:
            frame = self.facts.get(source)
            if frame is None or frame.empty:
                self._aligned[source] = None
            else:
                frame = frame.drop_duplicates(subset="entity_ref", keep="last").set_index("entity_ref")
                aligned = frame.reindex(self.refs).reset_index(drop=True)
                # Entities without facts turn a bool column into objects; nullable booleans keep
                # comparisons vectorised (and missing stays missing).
                for column in frame.columns:
                    if pd.api.types.is_bool_dtype(frame[column].dtype) or _all_bool(frame[column]):
                        aligned[column] = aligned[column].astype("boolean")
                self._aligned[source] = aligned
        return self._aligned[source]

    def series(self, fact: str, path: str | None = None) -> pd.Series:
        key = (fact, path)
        if key not in self._series:
            source, _, name = fact.partition(".")
            if (source, name) in LIVE_FACTS:
                base = self.entities["entity"].reset_index(drop=True)
            else:
                frame = self._source(source)
                base = frame[name] if frame is not None and name in frame.columns else pd.Series([None] * len(self.refs), dtype=object)
            if path:
                base = pd.Series(resolve_paths(base, path), dtype=object)
            self._series[key] = base
        return self._series[key]


# ---------------------------------------------------------------------------------------------
# operators: each returns (truth, error) arrays; rows with a missing fact are masked by the caller


def _kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s.dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(s.dtype):
        return "num"
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return "str"
    return "obj"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)


def _strict_eq(a: Any, b: Any) -> bool:
    # json-rules-engine's `equal` is JavaScript `===`: 1 is not "1" and true is not 1.
    if isinstance(a, bool | np.bool_) or isinstance(b, bool):
        return isinstance(a, bool | np.bool_) and isinstance(b, bool) and bool(a) == b
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def _arr(values: Iterable[bool], n: int) -> np.ndarray:
    return np.fromiter(values, dtype=bool, count=n)


def _same_type(kind: str, value: Any) -> bool:
    return {"num": _is_number, "bool": lambda v: isinstance(v, bool), "str": lambda v: isinstance(v, str)}.get(kind, lambda v: True)(value)


def _op_equal(s: pd.Series, value: Any) -> tuple[np.ndarray, np.ndarray]:
    kind = _kind(s)
    zeros = np.zeros(len(s), dtype=bool)
    if kind == "obj":
        return _arr((_strict_eq(v, value) for v in s), len(s)), zeros
    if not _same_type(kind, value):
        return zeros, zeros
    return (s == value).fillna(False).to_numpy(dtype=bool), zeros


def _op_not_equal(s: pd.Series, value: Any) -> tuple[np.ndarray, np.ndarray]:
    truth, error = _op_equal(s, value)
    return ~truth, error


def _numeric(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numbers, and an error mask for present values that are not numbers."""
    kind = _kind(s)
    if kind == "num":
        return s.astype(float), np.zeros(len(s), dtype=bool)
    values = [float(v) if _is_number(v) else np.nan for v in s]
    num = pd.Series(values, dtype=float)
    return num, (num.isna() & s.notna()).to_numpy()


def _numeric_op(fn: Any):
    def run(s: pd.Series, value: Any) -> tuple[np.ndarray, np.ndarray]:
        num, error = _numeric(s)
        return fn(num, float(value)).fillna(False).to_numpy(dtype=bool), error

    return run


def _op_in(s: pd.Series, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    kind = _kind(s)
    zeros = np.zeros(len(s), dtype=bool)
    if kind == "obj":
        return _arr((any(_strict_eq(v, x) for x in values) for v in s), len(s)), zeros
    typed = [v for v in values if _same_type(kind, v)]
    return s.isin(typed).to_numpy(dtype=bool), zeros


def _op_not_in(s: pd.Series, values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    truth, error = _op_in(s, values)
    return ~truth, error


def _op_contains(s: pd.Series, value: Any) -> tuple[np.ndarray, np.ndarray]:
    kind = _kind(s)
    n = len(s)
    if kind == "str":
        return s.str.contains(str(value), regex=False).fillna(False).to_numpy(dtype=bool), np.zeros(n, dtype=bool)
    if kind != "obj":
        return np.zeros(n, dtype=bool), s.notna().to_numpy()
    is_list = _arr((isinstance(v, list) for v in s), n)
    is_str = _arr((isinstance(v, str) for v in s), n)
    truth = np.zeros(n, dtype=bool)
    if is_list.any():
        items = s[is_list].explode()
        if isinstance(value, str):
            hits = items == value  # str == only matches str: already strict
        else:
            hits = items.map(lambda v: _strict_eq(v, value))
        hits = hits.fillna(False).astype(bool).groupby(level=0).any()
        truth[hits.index[hits.to_numpy(dtype=bool)]] = True
    if is_str.any():
        truth[is_str] = [str(value) in v for v in s[is_str]]
    return truth, s.notna().to_numpy() & ~is_list & ~is_str


def _op_does_not_contain(s: pd.Series, value: Any) -> tuple[np.ndarray, np.ndarray]:
    truth, error = _op_contains(s, value)
    return ~truth, error


def _op_matches(s: pd.Series, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    compiled = re.compile(pattern)
    n = len(s)
    is_str = _arr((isinstance(v, str) for v in s), n)
    truth = np.zeros(n, dtype=bool)
    if is_str.any():
        truth[is_str] = [compiled.search(v) is not None for v in s[is_str]]
    return truth, s.notna().to_numpy() & ~is_str


OPERATORS = {
    "equal": _op_equal,
    "notEqual": _op_not_equal,
    "lessThan": _numeric_op(op.lt),
    "lessThanInclusive": _numeric_op(op.le),
    "greaterThan": _numeric_op(op.gt),
    "greaterThanInclusive": _numeric_op(op.ge),
    "in": _op_in,
    "notIn": _op_not_in,
    "contains": _op_contains,
    "doesNotContain": _op_does_not_contain,
    "matches": _op_matches,
}


def _missing(s: pd.Series) -> np.ndarray:
    return s.isna().to_numpy(dtype=bool)


def evaluate_rule(node: dict[str, Any], facts: FactTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, known, error) over all entities; `known` is False where the answer is unknown."""
    n = len(facts.refs)
    if "all" in node or "any" in node:
        is_all = "all" in node
        parts = [evaluate_rule(child, facts) for child in node["all" if is_all else "any"]]
        truths = np.array([t & k for t, k, _ in parts])
        falses = np.array([~t & k for t, k, _ in parts])
        errors = np.array([e for _, _, e in parts])
        if is_all:
            decided_true, decided_false = truths.all(axis=0), falses.any(axis=0)
        else:
            decided_true, decided_false = truths.any(axis=0), falses.all(axis=0)
        known = decided_true | decided_false
        return decided_true, known, ~known & errors.any(axis=0)
    if "not" in node:
        truth, known, error = evaluate_rule(node["not"], facts)
        return ~truth & known, known, error
    series = facts.series(node["fact"], node.get("path"))
    missing = _missing(series)
    if node["operator"] == "exists":
        present = ~missing
        return (present if node["value"] else missing), np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    if missing.all():
        zeros = np.zeros(n, dtype=bool)
        return zeros, zeros, zeros
    if series.dtype == object and missing.any():
        # Python-level operators only look at entities that have the fact.
        present = np.flatnonzero(~missing)
        sub_truth, sub_error = OPERATORS[node["operator"]](series.iloc[present].reset_index(drop=True), node["value"])
        truth, error = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        truth[present], error[present] = sub_truth, sub_error
    else:
        truth, error = OPERATORS[node["operator"]](series, node["value"])
    error = error & ~missing
    known = ~missing & ~error
    return truth & known, known, error


# ---------------------------------------------------------------------------------------------
# evaluation


@dataclass
class Evaluation:
    """Everything one evaluation produced, as frames ready to store."""

    entities: pd.DataFrame  # entity_ref, kind, name, owner, system, domain
    results: pd.DataFrame  # entity_ref, check_id, state, raw_state, exempted
    levels: pd.DataFrame  # entity_ref, track_id, level, level_name, max_level, next_level_name, next_blockers, checks_passed, checks_total
    fix_candidates: pd.DataFrame  # entity_ref, track_id, level, check_id, levels_unlocked, sole_blocker
    campaign_members: pd.DataFrame  # campaign_id, entity_ref, done, checks_passing, checks_total
    errors: list[str] = field(default_factory=list)


def active_exemptions(exemptions: pd.DataFrame | None, now: datetime) -> pd.DataFrame:
    """Exemptions in force at `now`: created, not expired, not revoked."""
    columns = ["exemption_id", "entity_ref", "check_id", "expires_at"]
    if exemptions is None or exemptions.empty:
        return pd.DataFrame(columns=columns)
    stamp = pd.Timestamp(now)
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp
    frame = exemptions.copy()
    for column in ("created_at", "expires_at", "revoked_at"):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="mixed").dt.tz_localize(None)
    live = (frame["expires_at"] > stamp) & (frame.get("created_at", stamp) <= stamp)
    if "revoked_at" in frame.columns:
        live &= frame["revoked_at"].isna() | (frame["revoked_at"] > stamp)
    return frame.loc[live, columns].reset_index(drop=True)


def evaluate(
    config: ScorecardConfig,
    entities: pd.DataFrame,
    facts: dict[str, pd.DataFrame],
    *,
    exemptions: pd.DataFrame | None = None,
    now: datetime,
) -> Evaluation:
    """Evaluate every check of `config` on `entities` with the latest `facts` per source."""
    ents = prepare_entities(entities)
    n = len(ents)
    filters = FilterIndex(ents)
    table = FactTable(ents, facts)
    errors: list[str] = []

    # Which entities each check must report on: the scopes of the tracks and campaigns that use
    # it, plus whatever its own filter selects.
    containers: dict[str, np.ndarray] = {}
    for container in [*config.tracks.values(), *config.campaigns.values()]:
        scope = filters.scope(container.filter, container.exclude)
        ids = container.check_ids() if hasattr(container, "check_ids") else container.checks
        for cid in ids:
            containers[cid] = containers.get(cid, np.zeros(n, dtype=bool)) | scope

    raw: dict[str, np.ndarray] = {}
    for check in config.checks.values():
        applicable = filters.scope(check.filter, check.exclude)
        universe = containers.get(check.id, np.zeros(n, dtype=bool))
        if check.filter or check.id not in containers:
            universe = universe | applicable
        try:
            truth, known, error = evaluate_rule(check.rule, table)
            fail = WARNING if check.severity == "warning" else FAILED
            rule_code = np.where(error, ERROR, np.where(~known, NOT_REPORTED, np.where(truth, PASSED, fail)))
        except Exception as exc:  # one broken check must not hide the results of the others
            errors.append(f"check {check.id!r}: {type(exc).__name__}: {exc}")
            rule_code = np.full(n, ERROR)
        code = np.full(n, OUTSIDE, dtype=np.int8)
        code[universe] = np.where(applicable[universe], rule_code[universe], NOT_APPLICABLE)
        raw[check.id] = code

    # Exemptions: an active exemption counts as passed (the raw state stays visible).
    effective = {cid: code.copy() for cid, code in raw.items()}
    exempted = {cid: np.zeros(n, dtype=bool) for cid in raw}
    active = active_exemptions(exemptions, now)
    if not active.empty:
        position = pd.Series(np.arange(n), index=ents["ref"])
        active = active[active["check_id"].isin(list(raw)) & active["entity_ref"].isin(position.index)]
        for cid, group in active.groupby("check_id"):
            pos = position.loc[group["entity_ref"]].to_numpy()
            applicable = (raw[cid][pos] != OUTSIDE) & (raw[cid][pos] != NOT_APPLICABLE)
            pos = pos[applicable]
            exempted[cid][pos] = True
            effective[cid][pos] = PASSED

    results = _long_results(ents, config, raw, effective, exempted)
    levels, fixes = _levels(ents, config, filters, effective)
    members = _campaign_members(ents, config, filters, effective)
    entity_info = ents[["ref", "kind", "name", "owner", "system", "domain"]].rename(columns={"ref": "entity_ref"})
    return Evaluation(entities=entity_info, results=results, levels=levels, fix_candidates=fixes, campaign_members=members, errors=errors)


def _campaign_members(ents: pd.DataFrame, config: ScorecardConfig, filters: FilterIndex, codes: dict) -> pd.DataFrame:
    frames = []
    for campaign in config.campaigns.values():
        pos = np.flatnonzero(filters.scope(campaign.filter, campaign.exclude))
        # A campaign asks for checks to *pass*: a warning is not done, not applicable is.
        passing = np.zeros(len(pos), dtype=np.int32)
        for cid in campaign.checks:
            passing += np.isin(codes[cid][pos], [PASSED, NOT_APPLICABLE])
        frames.append(
            pd.DataFrame(
                {
                    "campaign_id": campaign.id,
                    "entity_ref": ents["ref"].to_numpy()[pos],
                    "done": passing == len(campaign.checks),
                    "checks_passing": passing,
                    "checks_total": len(campaign.checks),
                }
            )
        )
    columns = ["campaign_id", "entity_ref", "done", "checks_passing", "checks_total"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _long_results(ents: pd.DataFrame, config: ScorecardConfig, raw: dict, effective: dict, exempted: dict) -> pd.DataFrame:
    check_ids = list(config.checks)
    pos_parts, check_parts, state_parts, raw_parts, ex_parts = [], [], [], [], []
    for i, cid in enumerate(check_ids):
        pos = np.flatnonzero(raw[cid] != OUTSIDE)
        pos_parts.append(pos)
        check_parts.append(np.full(len(pos), i, dtype=np.int32))
        state_parts.append(effective[cid][pos])
        raw_parts.append(raw[cid][pos])
        ex_parts.append(exempted[cid][pos])
    pos = np.concatenate(pos_parts) if pos_parts else np.array([], dtype=int)
    cat = lambda codes, cats: pd.Categorical.from_codes(codes, categories=list(cats))  # noqa: E731
    return pd.DataFrame(
        {
            "entity_ref": cat(pos, ents["ref"]),
            "check_id": cat(np.concatenate(check_parts) if check_parts else [], check_ids),
            "state": cat(np.concatenate(state_parts) if state_parts else [], STATES),
            "raw_state": cat(np.concatenate(raw_parts) if raw_parts else [], STATES),
            "exempted": np.concatenate(ex_parts) if ex_parts else np.array([], dtype=bool),
        }
    )


def _blocking(check: Check, states: np.ndarray) -> np.ndarray:
    """Which states keep a level from being certified: none at all for a warning-severity check
    (its failure, missing fact or error is shown, never blocking)."""
    if check.severity == "warning":
        return np.zeros(len(states), dtype=bool)
    return np.isin(states, BLOCKING)


def _levels(ents: pd.DataFrame, config: ScorecardConfig, filters: FilterIndex, codes: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    level_frames, fix_frames = [], []
    for track in config.tracks.values():
        pos = np.flatnonzero(filters.scope(track.filter, track.exclude))
        depth = len(track.levels)
        blockers = np.zeros((len(pos), depth), dtype=np.int32)
        passed = np.zeros(len(pos), dtype=np.int32)
        total = np.zeros(len(pos), dtype=np.int32)
        for k, level in enumerate(track.levels):
            for cid in level.checks:
                states = codes[cid][pos]
                blockers[:, k] += _blocking(config.checks[cid], states)
                passed += states == PASSED
                total += (states != NOT_APPLICABLE) & (states != OUTSIDE)
        clear = blockers == 0
        achieved = np.cumprod(clear, axis=1).sum(axis=1) if depth else np.zeros(len(pos), dtype=int)
        names = np.array(["none", *[lv.name for lv in track.levels]], dtype=object)
        next_names = np.array([*[lv.name for lv in track.levels], None], dtype=object)
        incomplete = achieved < depth
        nxt = np.minimum(achieved, depth - 1)
        next_blockers = np.where(incomplete, blockers[np.arange(len(pos)), nxt], 0)
        # Levels that fixing every blocker of the next level would unlock: up to the next level
        # that has blockers of its own.
        after = (blockers > 0) & (np.arange(depth)[None, :] > nxt[:, None])
        first_after = np.where(after.any(axis=1), after.argmax(axis=1), depth)
        gain = np.where(incomplete, first_after - achieved, 0)
        level_frames.append(
            pd.DataFrame(
                {
                    "entity_ref": ents["ref"].to_numpy()[pos],
                    "track_id": track.id,
                    "level": achieved.astype(int),
                    "level_name": names[achieved],
                    "max_level": depth,
                    "next_level_name": next_names[achieved],
                    "next_blockers": next_blockers.astype(int),
                    "checks_passed": passed,
                    "checks_total": total,
                }
            )
        )
        for k, level in enumerate(track.levels):
            at_k = incomplete & (achieved == k)
            if not at_k.any():
                continue
            for cid in level.checks:
                sel = at_k & _blocking(config.checks[cid], codes[cid][pos])
                if not sel.any():
                    continue
                fix_frames.append(
                    pd.DataFrame(
                        {
                            "entity_ref": ents["ref"].to_numpy()[pos[sel]],
                            "track_id": track.id,
                            "level": k + 1,
                            "check_id": cid,
                            # Shared between the blockers of that level: fixing one of two
                            # blockers is half the way to the levels it unlocks.
                            "levels_unlocked": gain[sel] / next_blockers[sel],
                            "sole_blocker": next_blockers[sel] == 1,
                        }
                    )
                )
    level_cols = ["entity_ref", "track_id", "level", "level_name", "max_level", "next_level_name", "next_blockers", "checks_passed", "checks_total"]
    fix_cols = ["entity_ref", "track_id", "level", "check_id", "levels_unlocked", "sole_blocker"]
    levels = pd.concat(level_frames, ignore_index=True) if level_frames else pd.DataFrame(columns=level_cols)
    fixes = pd.concat(fix_frames, ignore_index=True) if fix_frames else pd.DataFrame(columns=fix_cols)
    return levels, fixes


def check_frame(config: ScorecardConfig) -> pd.DataFrame:
    """The check definitions as a table (for the CLI and dashboards), with track/level placement."""
    placement: dict[str, list[str]] = {}
    for track in config.tracks.values():
        for k, level in enumerate(track.levels, start=1):
            for cid in level.checks:
                placement.setdefault(cid, []).append(f"{track.id}:{k}")
    rows = [
        {
            "check_id": c.id,
            "name": c.name,
            "description": c.description,
            "severity": c.severity,
            "passed_message": c.passed_message,
            "failed_message": c.failed_message,
            "fix_hint": c.fix_hint,
            "facts": ",".join(sorted(c.facts())),
            "tracks": ",".join(placement.get(c.id, [])),
            "source": f"{c.file}:{c.line}",
        }
        for c in config.checks.values()
    ]
    return pd.DataFrame(rows, columns=["check_id", "name", "description", "severity", "passed_message", "failed_message", "fix_hint", "facts", "tracks", "source"])


def track_frame(config: ScorecardConfig) -> pd.DataFrame:
    """One row per (track, level, check), levels numbered from 1 (lowest)."""
    rows = [
        {"track_id": t.id, "track_name": t.name, "level": k, "level_name": lv.name, "check_id": cid}
        for t in config.tracks.values()
        for k, lv in enumerate(t.levels, start=1)
        for cid in lv.checks
    ]
    return pd.DataFrame(rows, columns=["track_id", "track_name", "level", "level_name", "check_id"])


def campaign_frame(config: ScorecardConfig) -> pd.DataFrame:
    rows = [
        {"campaign_id": c.id, "name": c.name, "description": c.description, "owner": c.owner, "checks": ",".join(c.checks), "start": c.start.isoformat() if c.start else None, "deadline": c.deadline.isoformat()}
        for c in config.campaigns.values()
    ]
    return pd.DataFrame(rows, columns=["campaign_id", "name", "description", "owner", "checks", "start", "deadline"])
