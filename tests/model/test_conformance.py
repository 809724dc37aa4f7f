"""Every case that Backstage's own catalog-model and relation-processor tests assert, run against
our Python equivalents (`tests/data/backstage-conformance/vectors.json`; see its SOURCE.md).

Each vector is its own test, named after the Backstage test it comes from. JavaScript-only inputs
(`undefined`, functions, symbols) are replaced by Python analogues: `UNDEFINED` (a sentinel that is
no JSON value), a lambda, and a bare `object()`.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from typing import Any

import pytest

from catalog_pipelines.model import validators
from catalog_pipelines.model.policies import (
    GroupDefaultParentPolicy,
    default_namespace,
    field_format_policy,
    no_foreign_root_fields_policy,
    schema_valid_policy,
)
from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref
from catalog_pipelines.model.relations import RelationError, derive_relations
from catalog_pipelines.model.validation import (
    EntityValidationError,
    check_kind,
    envelope_issues,
    kind_schema_check,
    schema_issues,
)
from helpers import TEST_DATA

VECTORS = json.loads((TEST_DATA / "backstage-conformance" / "vectors.json").read_text())


class _Undefined:
    """JavaScript's `undefined`: present in a container, but not a JSON value."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = _Undefined()

# The JavaScript expressions that appear in `js_only` rows, and their Python analogues.
JS_ANALOGUES: dict[str, Any] = {
    "undefined": UNDEFINED,
    "() => 'a'": lambda: "a",
    "() => 'hello'": lambda: "hello",
    'Symbol("a")': object(),
    "[undefined]": [UNDEFINED],
    "{ a: undefined }": {"a": UNDEFINED},
}


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)})"


def _assert_error_matches(pattern: dict[str, str] | None, message: str) -> None:
    if pattern is None:
        return
    flags = re.IGNORECASE if "i" in pattern["flags"] else 0
    assert re.search(pattern["regex"], message, flags), f"/{pattern['regex']}/ does not match {message!r}"


# --- validators ------------------------------------------------------------------------------


def _validator_cases() -> list[Any]:
    cases = []
    for name, block in VECTORS["validators"].items():
        if name == "isValidPrefixAndOrSuffix":
            continue
        function = validators.COMMON_VALIDATORS.get(name) or validators.KUBERNETES_VALIDATORS[name]
        for value in block.get("valid", []):
            cases.append(pytest.param(function, value, True, id=f"{name} accepts {_short(value)}"))
        for value in block.get("invalid", []):
            cases.append(pytest.param(function, value, False, id=f"{name} rejects {_short(value)}"))
        for row in block.get("js_only", []):
            cases.append(pytest.param(function, JS_ANALOGUES[row["js"]], row["expected"], id=f"{name} js {row['js']}"))
    return cases


@pytest.mark.parametrize(("function", "value", "expected"), _validator_cases())
def test_validator_function_agrees_with_backstage(function, value, expected):
    assert function(value) is expected


def _prefix_suffix_cases() -> list[Any]:
    block = VECTORS["validators"]["isValidPrefixAndOrSuffix"]
    rows = [(row["value"], row) for row in block["cases"]]
    rows += [(JS_ANALOGUES[row["js"]], row) for row in block["js_only"]]
    return [
        pytest.param(
            value,
            row,
            id=f"{_short(value) if not callable(value) else row['js']} "
            f"prefix={row['prefix_validator_returns']} suffix={row['suffix_validator_returns']}",
        )
        for value, row in rows
    ]


@pytest.mark.parametrize(("value", "row"), _prefix_suffix_cases())
def test_prefix_and_or_suffix_splits_like_backstage(value, row):
    prefix_ok, suffix_ok = row["prefix_validator_returns"], row["suffix_validator_returns"]
    result = validators.is_valid_prefix_and_or_suffix(value, row["separator"], lambda _: prefix_ok, lambda _: suffix_ok)
    assert result is row["expected"]


def test_every_validator_in_the_vectors_has_a_python_equivalent():
    names = set(VECTORS["validators"]) - {"isValidPrefixAndOrSuffix"}
    assert names <= set(validators.COMMON_VALIDATORS) | set(validators.KUBERNETES_VALIDATORS)


# --- entity refs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector", [pytest.param(v, id=f"{v['note']} {_short(v['input'])}") for v in VECTORS["entity_refs"]]
)
def test_entity_ref_parses_like_backstage(vector):
    context = vector["context"] or {}
    kwargs = {"default_kind": context.get("defaultKind")}
    if "defaultNamespace" in context:
        kwargs["default_namespace"] = context["defaultNamespace"]
    if vector["error"]:
        with pytest.raises(EntityRefError) as raised:
            parse_entity_ref(vector["input"], **kwargs)
        _assert_error_matches(vector.get("error_pattern"), str(raised.value))
    else:
        assert parse_entity_ref(vector["input"], **kwargs)._asdict() == vector["expected"]


# --- policies and schema validators ----------------------------------------------------------


def _as_policy(validate):
    """Wrap an issue-list validator in Backstage's throw-or-return shape."""

    def enforce(entity):
        issues = validate(entity)
        if issues:
            raise EntityValidationError(issues)
        return entity

    return enforce


POLICIES = {
    "entityEnvelopeSchemaValidator": _as_policy(envelope_issues),
    "entitySchemaValidator": _as_policy(schema_issues),
    "entityKindSchemaValidator(Component.v1alpha1)": lambda entity: kind_schema_check(entity, "Component"),
    "SchemaValidEntityPolicy": schema_valid_policy,
    "FieldFormatEntityPolicy": field_format_policy,
    "NoForeignRootFieldsEntityPolicy": no_foreign_root_fields_policy,
    "DefaultNamespaceEntityPolicy": default_namespace,
}


def _contains(actual: Any, expected: Any) -> bool:
    """`expect.objectContaining`, applied recursively to nested objects."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    return actual == expected


@pytest.mark.parametrize("vector", [pytest.param(v, id=v["note"]) for v in VECTORS["policies"]])
def test_policy_decides_like_backstage(vector):
    entity = copy.deepcopy(vector["entity"])
    if vector["policy"] == "GroupDefaultParentEntityPolicy":
        policy = GroupDefaultParentPolicy(*vector["policy_args"]).enforce
    else:
        policy = POLICIES[vector["policy"]]

    if vector["outcome"] == "invalid":
        with pytest.raises(EntityValidationError) as raised:
            policy(entity)
        _assert_error_matches(vector.get("error_pattern"), str(raised.value))
        return

    result = policy(entity)
    if vector["outcome"] == "not_applicable":
        assert result is False
        return
    assert result is not False
    if vector.get("returns") == "same_object":
        assert result is entity
    elif vector.get("returns") == "new_object":
        assert result is not entity
    if "output" in vector:
        assert result == vector["output"]
    if "output_contains" in vector:
        assert _contains(result, vector["output_contains"])


# --- kind validators -------------------------------------------------------------------------


def _set_path(entity: dict, path: str, value: Any) -> None:
    """Set `spec.children[0]`-style paths (the form `js_undefined_paths` uses)."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    target: Any = entity
    for part in parts[:-1]:
        target = target[int(part[1:-1])] if part.startswith("[") else target[part]
    last = parts[-1]
    if last.startswith("["):
        target[int(last[1:-1])] = value
    else:
        target[last] = value


@pytest.mark.parametrize(
    "vector", [pytest.param(v, id=f"{v['kind']}: {v['note']}") for v in VECTORS["kind_validators"]]
)
def test_kind_validator_decides_like_backstage(vector):
    entity = copy.deepcopy(vector["entity"])
    for path in vector.get("js_undefined_paths", []):
        _set_path(entity, path, UNDEFINED)

    if vector["outcome"] == "invalid":
        with pytest.raises(EntityValidationError) as raised:
            check_kind(entity, vector["kind"])
        _assert_error_matches(vector.get("error_pattern"), str(raised.value))
    else:
        assert check_kind(entity, vector["kind"]) is (vector["outcome"] == "valid")


# --- relations -------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [pytest.param(v, id=v["note"]) for v in VECTORS["relations"]])
def test_relations_are_emitted_like_backstages_processor(vector):
    entity = copy.deepcopy(vector["entity"])
    if vector.get("error"):
        with pytest.raises(RelationError) as raised:
            derive_relations(entity)
        assert str(raised.value) == vector["error"]
        return

    ours = Counter((r.source, r.type, r.target) for r in derive_relations(entity))
    # The vectors keep the kind's case as the test wrote it (`Group:default/o`); ours are canonical.
    theirs = Counter((e["source"].lower(), e["type"], e["target"].lower()) for e in vector["expected"])
    assert ours == theirs
    assert sum(ours.values()) == vector["expected_count"]


def test_every_vector_section_is_exercised():
    # A new section in vectors.json must get a test here, not be silently skipped.
    assert set(VECTORS) == {"_meta", "validators", "entity_refs", "policies", "kind_validators", "relations"}
