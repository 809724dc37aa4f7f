"""Entity validation with Backstage's rules, written out by hand for speed (no jsonschema).

Backstage checks an entity in layers, and so does this module:

1. the envelope and common schema (`entityEnvelopeSchemaValidator`, `entitySchemaValidator`,
   the `Entity`/`EntityMeta` JSON schemas): types, required fields, non-empty strings, no foreign
   root fields;
2. the kind schema (`*EntityV1alpha1Validator`, `entityKindSchemaValidator`): the `spec` fields that
   each kind requires;
3. the formats (`FieldFormatEntityPolicy`): name, namespace, label, annotation, tag and link rules
   from `validators`.

`validate_entity` runs all three and returns a list of `Issue`s, empty when the entity is valid.
Each issue names the field (a dotted path such as `metadata.tags.1`), the rule, and the offending
value truncated to about 80 characters, so a rejection can be fixed without opening a debugger.
The per-layer functions are public too, because the conformance tests check each Backstage
validator on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalog_pipelines.model import validators as v

MAX_SHOWN_CHARS = 80

ROOT_FIELDS = ("apiVersion", "kind", "metadata", "spec", "relations", "status")
_ROOT_FIELD_SET = frozenset(ROOT_FIELDS)
_STATUS_LEVELS = ("info", "warning", "error")
_BACKSTAGE_API_VERSIONS = frozenset({"backstage.io/v1alpha1", "backstage.io/v1beta1"})
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Issue:
    """One broken rule. `message` is the complete sentence (field, expectation, value, rule)."""

    field: str
    rule: str
    value: str | None
    message: str

    def __str__(self) -> str:
        return self.message


class EntityValidationError(ValueError):
    """Raised by the check-style validators (kind validators, policies) that Backstage throws from."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(issue.message for issue in issues))


# --- rendering values in messages -------------------------------------------------------------


def truncate(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """Cut long values so that a 10 MB annotation does not become a 10 MB error message."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def js_string(value: Any) -> str:
    """Roughly JavaScript's `String(value)`, with JSON for containers (more useful in a message)."""
    if type(value) is str:
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def show(value: Any) -> str:
    """`"value"` for strings, `"7" (a number)` for the rest, `null` for null: always short."""
    if value is None:
        return "null"
    text = f'"{truncate(js_string(value))}"'
    return text if type(value) is str else f"{text} ({type_name(value)})"


def missing(path: str) -> Issue:
    return Issue(path, "required", None, f"{path}: is required but missing (rule: required)")


def wrong(path: str, rule: str, expectation: str, value: Any) -> Issue:
    return Issue(
        path,
        rule,
        truncate(js_string(value)),
        f"{path}: expected {expectation} but found {show(value)} (rule: {rule})",
    )


def _string(container: dict, key: str, path: str, issues: list[Issue], required: bool, *, allow_empty: bool = False) -> None:
    """A non-empty string (`type: string, minLength: 1` in Backstage's schemas); with
    `allow_empty`, any string (`type: string`)."""
    value = container.get(key, _MISSING)
    if value is _MISSING:
        if required:
            issues.append(missing(path))
    elif type(value) is not str:
        issues.append(wrong(path, "type", "a string" if allow_empty else "a non-empty string", value))
    elif not value and not allow_empty:
        issues.append(wrong(path, "minLength", "a non-empty string", value))


def _string_list(container: dict, key: str, path: str, issues: list[Issue], required: bool) -> None:
    """An array of non-empty strings."""
    value = container.get(key, _MISSING)
    if value is _MISSING:
        if required:
            issues.append(missing(path))
        return
    if type(value) is not list:
        issues.append(wrong(path, "type", "an array of non-empty strings", value))
        return
    for index, item in enumerate(value):
        if type(item) is not str:
            issues.append(wrong(f"{path}.{index}", "type", "a non-empty string", item))
        elif not item:
            issues.append(wrong(f"{path}.{index}", "minLength", "a non-empty string", item))


def _object(container: dict, key: str, path: str, issues: list[Issue], required: bool) -> dict | None:
    value = container.get(key, _MISSING)
    if value is _MISSING:
        if required:
            issues.append(missing(path))
        return None
    if type(value) is not dict:
        issues.append(wrong(path, "type", "an object", value))
        return None
    return value


# --- layer 1: envelope and common schema -------------------------------------------------------


def envelope_issues(entity: Any) -> list[Issue]:
    """`entityEnvelopeSchemaValidator`: the minimum any entity-like object needs.

    Unknown root and metadata fields are allowed at this level.
    """
    issues: list[Issue] = []
    if type(entity) is not dict:
        return [_root_type(entity)]
    _string(entity, "apiVersion", "apiVersion", issues, True)
    _string(entity, "kind", "kind", issues, True)
    metadata = _object(entity, "metadata", "metadata", issues, True)
    if metadata is not None:
        _string(metadata, "name", "metadata.name", issues, True)
        _string(metadata, "namespace", "metadata.namespace", issues, False)
    return issues


def _root_type(entity: Any) -> Issue:
    return Issue(
        "(root)",
        "type",
        truncate(js_string(entity)),
        f"(root): expected an object (a YAML mapping) but found {show(entity)} (rule: type)",
    )


def schema_issues(entity: Any) -> list[Issue]:
    """`entitySchemaValidator`: the `Entity` and `EntityMeta` schemas, without any kind rules."""
    if type(entity) is not dict:
        return [_root_type(entity)]
    issues: list[Issue] = []
    _check_schema(entity, issues)
    return issues


def _check_schema(entity: dict, issues: list[Issue]) -> None:
    for key in entity:
        if key not in _ROOT_FIELD_SET:
            issues.append(_foreign_root_field(key, entity[key]))
    _string(entity, "apiVersion", "apiVersion", issues, True)
    _string(entity, "kind", "kind", issues, True)
    metadata = _object(entity, "metadata", "metadata", issues, True)
    if metadata is not None:
        _check_metadata_schema(metadata, issues)
    spec = entity.get("spec", _MISSING)
    if spec is not _MISSING and type(spec) is not dict:
        issues.append(wrong("spec", "type", "an object", spec))
    if "relations" in entity:
        _check_relations_schema(entity["relations"], issues)
    if "status" in entity:
        _check_status_schema(entity["status"], issues)


def _foreign_root_field(key: Any, value: Any) -> Issue:
    allowed = ", ".join(ROOT_FIELDS)
    return Issue(
        str(key),
        "additionalProperties",
        truncate(js_string(value)),
        f"{key}: unknown root field; an entity must not have additional properties "
        f"(allowed: {allowed}) (rule: additionalProperties)",
    )


_METADATA_STRINGS = (
    ("namespace", "metadata.namespace"),
    ("uid", "metadata.uid"),
    ("etag", "metadata.etag"),
    ("title", "metadata.title"),
)
_LINK_STRINGS = ("title", "icon", "type")


def _check_metadata_schema(metadata: dict, issues: list[Issue]) -> None:
    # Each check is an inline test on the happy path; the helper that builds the issue (and
    # tells missing from wrong type from empty) only runs when the test fails.
    name = metadata.get("name")
    if type(name) is not str or not name:
        _string(metadata, "name", "metadata.name", issues, True)
    for key, path in _METADATA_STRINGS:
        value = metadata.get(key, _MISSING)
        if value is not _MISSING and (type(value) is not str or not value):
            _string(metadata, key, path, issues, False)
    value = metadata.get("description", _MISSING)
    if value is not _MISSING and type(value) is not str:
        _string(metadata, "description", "metadata.description", issues, False, allow_empty=True)
    for key in ("labels", "annotations"):
        mapping = metadata.get(key, _MISSING)
        if mapping is _MISSING:
            continue
        if type(mapping) is not dict:
            issues.append(wrong(f"metadata.{key}", "type", "an object", mapping))
            continue
        for name, value in mapping.items():
            if type(value) is not str:
                issues.append(wrong(f"metadata.{key}.{name}", "type", "a string", value))
    tags = metadata.get("tags", _MISSING)
    if tags is not _MISSING:
        if type(tags) is not list:
            issues.append(wrong("metadata.tags", "type", "an array of non-empty strings", tags))
        else:
            for index, tag in enumerate(tags):
                if type(tag) is not str:
                    issues.append(wrong(f"metadata.tags.{index}", "type", "a non-empty string", tag))
                elif not tag:
                    issues.append(wrong(f"metadata.tags.{index}", "minLength", "a non-empty string", tag))
    links = metadata.get("links", _MISSING)
    if links is not _MISSING:
        if type(links) is not list:
            issues.append(wrong("metadata.links", "type", "an array of link objects", links))
            return
        for index, link in enumerate(links):
            if type(link) is not dict:
                issues.append(wrong(f"metadata.links.{index}", "type", "a link object with a url", link))
                continue
            url = link.get("url")
            if type(url) is not str or not url:
                _string(link, "url", f"metadata.links.{index}.url", issues, True)
            for key in _LINK_STRINGS:
                value = link.get(key, _MISSING)
                if value is not _MISSING and (type(value) is not str or not value):
                    _string(link, key, f"metadata.links.{index}.{key}", issues, False)


def _check_relations_schema(relations: Any, issues: list[Issue]) -> None:
    if type(relations) is not list:
        issues.append(wrong("relations", "type", "an array of relation objects", relations))
        return
    for index, relation in enumerate(relations):
        path = f"relations.{index}"
        if type(relation) is not dict:
            issues.append(wrong(path, "type", "a relation object", relation))
            continue
        for key in relation:
            if key not in ("type", "targetRef", "target"):
                issues.append(
                    Issue(
                        f"{path}.{key}",
                        "additionalProperties",
                        truncate(js_string(relation[key])),
                        f"{path}.{key}: unknown relation field; a relation must not have additional "
                        "properties (allowed: type, targetRef, target) (rule: additionalProperties)",
                    )
                )
        _string(relation, "type", f"{path}.type", issues, True)
        _string(relation, "targetRef", f"{path}.targetRef", issues, True)
        target = _object(relation, "target", f"{path}.target", issues, False)
        if target is not None:
            for key in ("kind", "namespace", "name"):
                _string(target, key, f"{path}.target.{key}", issues, True)


def _check_status_schema(status: Any, issues: list[Issue]) -> None:
    if type(status) is not dict:
        issues.append(wrong("status", "type", "an object", status))
        return
    items = status.get("items", _MISSING)
    if items is _MISSING:
        return
    if type(items) is not list:
        issues.append(wrong("status.items", "type", "an array of status items", items))
        return
    for index, item in enumerate(items):
        path = f"status.items.{index}"
        if type(item) is not dict:
            issues.append(wrong(path, "type", "a status item object", item))
            continue
        _string(item, "type", f"{path}.type", issues, True)
        level = item.get("level", _MISSING)
        if level is _MISSING:
            issues.append(missing(f"{path}.level"))
        elif level not in _STATUS_LEVELS or type(level) is not str:
            issues.append(wrong(f"{path}.level", "enum", "one of info, warning, error", level))
        _string(item, "message", f"{path}.message", issues, True, allow_empty=True)
        error = _object(item, "error", f"{path}.error", issues, False)
        if error is not None:
            _string(error, "name", f"{path}.error.name", issues, True)
            _string(error, "message", f"{path}.error.message", issues, True, allow_empty=True)
            _string(error, "code", f"{path}.error.code", issues, False, allow_empty=True)
            _string(error, "stack", f"{path}.error.stack", issues, False, allow_empty=True)


def foreign_root_field_issues(entity: Any) -> list[Issue]:
    """`NoForeignRootFieldsEntityPolicy`: only the known root fields may appear."""
    if type(entity) is not dict:
        return [_root_type(entity)]
    return [_foreign_root_field(key, entity[key]) for key in entity if key not in _ROOT_FIELD_SET]


# --- layer 2: kinds ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What one kind's schema requires of `spec` (all string fields are non-empty strings)."""

    kind: str
    api_versions: frozenset[str]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    required_lists: tuple[str, ...] = ()
    optional_lists: tuple[str, ...] = ()
    extra: Callable[[dict, list[Issue]], None] | None = field(default=None)

    def check_spec(self, spec: dict, issues: list[Issue]) -> None:
        for key in self.required:
            value = spec.get(key)
            if type(value) is not str or not value:
                _string(spec, key, f"spec.{key}", issues, True)
        for key in self.optional:
            value = spec.get(key, _MISSING)
            if value is not _MISSING and (type(value) is not str or not value):
                _string(spec, key, f"spec.{key}", issues, False)
        for key in self.required_lists:
            _string_list(spec, key, f"spec.{key}", issues, True)
        for key in self.optional_lists:
            value = spec.get(key, _MISSING)
            if value is not _MISSING and (type(value) is not list or not all(type(i) is str and i for i in value)):
                _string_list(spec, key, f"spec.{key}", issues, False)
        if self.extra is not None:
            self.extra(spec, issues)


def _check_profile(spec: dict, issues: list[Issue]) -> None:
    profile = spec.get("profile", _MISSING)
    if profile is _MISSING:
        return
    if type(profile) is not dict:
        issues.append(wrong("spec.profile", "type", "an object", profile))
        return
    for key in ("displayName", "email", "picture"):
        if key in profile:
            _string(profile, key, f"spec.profile.{key}", issues, False)


def _check_location(spec: dict, issues: list[Issue]) -> None:
    presence = spec.get("presence", _MISSING)
    if presence is not _MISSING and (type(presence) is not str or presence not in ("required", "optional")):
        issues.append(wrong("spec.presence", "enum", "one of required, optional", presence))


def _check_api(spec: dict, issues: list[Issue]) -> None:
    # MCP servers (API type `mcp-server`, from the ai-model catalog module) describe their
    # endpoints in `remotes` instead of carrying a definition.
    if spec.get("type") != "mcp-server":
        _string(spec, "definition", "spec.definition", issues, True)
        return
    if "definition" in spec:
        _string(spec, "definition", "spec.definition", issues, False)
    remotes = spec.get("remotes", _MISSING)
    if remotes is _MISSING:
        return
    if type(remotes) is not list:
        issues.append(wrong("spec.remotes", "type", "an array of {type, url} objects", remotes))
        return
    for index, remote in enumerate(remotes):
        if type(remote) is not dict:
            issues.append(wrong(f"spec.remotes.{index}", "type", "a {type, url} object", remote))
            continue
        _string(remote, "type", f"spec.remotes.{index}.type", issues, True)
        _string(remote, "url", f"spec.remotes.{index}.url", issues, True)


def _check_ai_resource(spec: dict, issues: list[Issue]) -> None:
    if spec.get("type") == "rule":
        _string(spec, "category", "spec.category", issues, True)
        _string(spec, "rationale", "spec.rationale", issues, True)


def _check_template(spec: dict, issues: list[Issue]) -> None:
    """`Template.v1beta3.schema.json` of `@backstage/plugin-scaffolder-common`, field by field."""
    steps = spec.get("steps", _MISSING)
    if steps is _MISSING:
        issues.append(missing("spec.steps"))
    elif type(steps) is not list:
        issues.append(wrong("spec.steps", "type", "an array of step objects", steps))
    else:
        for index, step in enumerate(steps):
            path = f"spec.steps.{index}"
            if type(step) is not dict:
                issues.append(wrong(path, "type", "a step object", step))
                continue
            _string(step, "action", f"{path}.action", issues, True, allow_empty=True)
            _string(step, "id", f"{path}.id", issues, False, allow_empty=True)
            _string(step, "name", f"{path}.name", issues, False, allow_empty=True)
            _object(step, "input", f"{path}.input", issues, False)
            _condition(step, path, issues)
            _permissions(step, path, issues)
    parameters = spec.get("parameters", _MISSING)
    if parameters is not _MISSING:
        if type(parameters) is dict:
            _permissions(parameters, "spec.parameters", issues)
        elif type(parameters) is list:
            for index, form in enumerate(parameters):
                if type(form) is not dict:
                    issues.append(wrong(f"spec.parameters.{index}", "type", "an object (a JSON schema)", form))
                else:
                    _permissions(form, f"spec.parameters.{index}", issues)
        else:
            issues.append(wrong("spec.parameters", "type", "an object or an array of objects", parameters))
    output = _object(spec, "output", "spec.output", issues, False)
    if output is not None:
        _check_template_output(output, issues)
    secrets = _object(spec, "secrets", "spec.secrets", issues, False)
    if secrets is not None:
        _object(secrets, "schema", "spec.secrets.schema", issues, False)
    presentation = _object(spec, "presentation", "spec.presentation", issues, False)
    if presentation is not None:
        labels = _object(presentation, "buttonLabels", "spec.presentation.buttonLabels", issues, False)
        if labels is not None:
            for key in ("backButtonText", "createButtonText", "reviewButtonText"):
                _string(labels, key, f"spec.presentation.buttonLabels.{key}", issues, False, allow_empty=True)
    recovery = _object(spec, "EXPERIMENTAL_recovery", "spec.EXPERIMENTAL_recovery", issues, False)
    if recovery is not None:
        path = "spec.EXPERIMENTAL_recovery.EXPERIMENTAL_strategy"
        _string(recovery, "EXPERIMENTAL_strategy", path, issues, False, allow_empty=True)
    decorators = spec.get("EXPERIMENTAL_formDecorators", _MISSING)
    if decorators is not _MISSING:
        if type(decorators) is not list:
            issues.append(wrong("spec.EXPERIMENTAL_formDecorators", "type", "an array of objects", decorators))
        else:
            for index, decorator in enumerate(decorators):
                path = f"spec.EXPERIMENTAL_formDecorators.{index}"
                if type(decorator) is not dict:
                    issues.append(wrong(path, "type", "an object", decorator))
                    continue
                _string(decorator, "id", f"{path}.id", issues, False, allow_empty=True)
                _object(decorator, "input", f"{path}.input", issues, False)


def _condition(container: dict, path: str, issues: list[Issue]) -> None:
    """`if: {type: [string, boolean]}` of steps, output links and output texts."""
    value = container.get("if", _MISSING)
    if value is not _MISSING and type(value) not in (str, bool):
        issues.append(wrong(f"{path}.if", "type", "a string or a boolean", value))


def _permissions(container: dict, path: str, issues: list[Issue]) -> None:
    """`backstage:permissions: {tags: string[]}` of steps and parameter forms."""
    permissions = _object(container, "backstage:permissions", f"{path}.backstage:permissions", issues, False)
    if permissions is None:
        return
    tags = permissions.get("tags", _MISSING)
    if tags is _MISSING:
        return
    tags_path = f"{path}.backstage:permissions.tags"
    if type(tags) is not list:
        issues.append(wrong(tags_path, "type", "an array of strings", tags))
        return
    for index, tag in enumerate(tags):
        if type(tag) is not str:
            issues.append(wrong(f"{tags_path}.{index}", "type", "a string", tag))


def _check_template_output(output: dict, issues: list[Issue]) -> None:
    for key, value in output.items():
        path = f"spec.output.{key}"
        if key in ("links", "text"):
            if type(value) is not list:
                issues.append(wrong(path, "type", f"an array of {key} objects", value))
                continue
            strings = ("url", "entityRef", "title", "icon") if key == "links" else ("title", "icon")
            for index, item in enumerate(value):
                item_path = f"{path}.{index}"
                if type(item) is not dict:
                    issues.append(wrong(item_path, "type", "an object", item))
                    continue
                _condition(item, item_path, issues)
                for name in strings:
                    _string(item, name, f"{item_path}.{name}", issues, False)
                if key == "text":
                    _string(item, "content", f"{item_path}.content", issues, False, allow_empty=True)
        elif type(value) is not str:
            # `additionalProperties: {type: string}`: any other output is a (templated) string.
            issues.append(wrong(path, "type", "a string", value))


KINDS: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(
            "Component",
            _BACKSTAGE_API_VERSIONS,
            required=("type", "lifecycle", "owner"),
            optional=("subcomponentOf", "system"),
            optional_lists=("providesApis", "consumesApis", "dependsOn", "dependencyOf"),
        ),
        KindSpec(
            "API",
            _BACKSTAGE_API_VERSIONS,
            required=("type", "lifecycle", "owner"),
            optional=("system",),
            extra=_check_api,
        ),
        KindSpec(
            "Resource",
            _BACKSTAGE_API_VERSIONS,
            required=("type", "owner"),
            optional=("system",),
            optional_lists=("dependsOn", "dependencyOf"),
        ),
        KindSpec("System", _BACKSTAGE_API_VERSIONS, required=("owner",), optional=("domain", "type")),
        KindSpec("Domain", _BACKSTAGE_API_VERSIONS, required=("owner",), optional=("subdomainOf", "type")),
        KindSpec(
            "Group",
            _BACKSTAGE_API_VERSIONS,
            required=("type",),
            optional=("parent",),
            required_lists=("children",),
            optional_lists=("members",),
            extra=_check_profile,
        ),
        KindSpec("User", _BACKSTAGE_API_VERSIONS, required_lists=("memberOf",), extra=_check_profile),
        KindSpec(
            "Location",
            _BACKSTAGE_API_VERSIONS,
            optional=("type", "target"),
            optional_lists=("targets",),
            extra=_check_location,
        ),
        KindSpec(
            "Template",
            frozenset({"scaffolder.backstage.io/v1beta3"}),
            required=("type",),
            optional=("owner", "lifecycle", "system"),
            extra=_check_template,
        ),
        KindSpec(
            "AiResource",
            _BACKSTAGE_API_VERSIONS,
            required=("type", "lifecycle", "owner"),
            optional=("system",),
            optional_lists=("disciplines", "categories", "agents", "dependsOn"),
            extra=_check_ai_resource,
        ),
    )
}


def kind_spec_issues(entity: dict, spec_rules: KindSpec) -> list[Issue]:
    """Only the `spec` rules of one kind (the entity is assumed to be that kind)."""
    issues: list[Issue] = []
    spec = _object(entity, "spec", "spec", issues, True)
    if spec is not None:
        spec_rules.check_spec(spec, issues)
    return issues


def check_kind(entity: Any, kind: str) -> bool:
    """A Backstage kind validator: `True` valid, `False` not this kind, raises when invalid.

    Mirrors `entityKindSchemaValidator`: a kind or apiVersion that is a string but not the one this
    validator handles is a "soft" mismatch (another validator may claim the entity), unless one of
    those two fields is also broken in another way (wrong type), which is a hard error.
    """
    rules = KINDS[kind]
    if type(entity) is not dict:
        raise EntityValidationError([_root_type(entity)])
    entity_kind = entity.get("kind", _MISSING)
    api_version = entity.get("apiVersion", _MISSING)
    soft = (type(entity_kind) is str and entity_kind != rules.kind) or (
        type(api_version) is str and api_version not in rules.api_versions
    )
    hard = (entity_kind is not _MISSING and type(entity_kind) is not str) or (
        api_version is not _MISSING and type(api_version) is not str
    )
    if soft and not hard:
        return False
    issues: list[Issue] = []
    _check_schema(entity, issues)
    spec = entity.get("spec", _MISSING)
    if spec is _MISSING:
        issues.append(missing("spec"))
    elif type(spec) is dict:
        rules.check_spec(spec, issues)
    if issues:
        raise EntityValidationError(issues)
    return True


def kind_schema_check(entity: Any, kind: str) -> Any:
    """`entityKindSchemaValidator(schema)(entity)`: the entity itself when valid, else `False`/raises."""
    return entity if check_kind(entity, kind) else False


# --- layer 3: field formats --------------------------------------------------------------------

_EXPECT_NAME = "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total"
_EXPECT_PREFIXED = "a valid prefix and/or suffix"
_EXPECT_NAMESPACE = "a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total"
_EXPECT_TAG = "a string that is sequences of [a-z0-9:+#] separated by [-], at most 63 characters in total"
_EXPECT_KIND = "a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total"
_EXPECT_URL = "a string that is a valid url"
_EXPECT_NON_EMPTY = "a non empty string"


def _format(
    path: str,
    value: Any,
    check: Callable[[Any], bool],
    rule: str,
    expectation: str,
    issues: list[Issue],
) -> None:
    """FieldFormatEntityPolicy's `require`: present (not null) and passing the validator."""
    if value is None:
        issues.append(Issue(path, "required", None, f"{path}: must have a value (rule: required)"))
    elif not check(value):
        issues.append(wrong(path, rule, expectation, value))


def field_format_issues(entity: Any) -> list[Issue]:
    """`FieldFormatEntityPolicy`: the formats of apiVersion, kind, name, namespace, labels,
    annotations, tags and links. Absent fields are not checked here (the schema layer requires them).
    """
    if type(entity) is not dict:
        return [_root_type(entity)]
    issues: list[Issue] = []
    _check_formats(entity, issues)
    return issues


# Memoised for the values that repeat across a catalog; names and urls are unique, so not those.
_API_VERSION_OK = v.Memo(v.is_valid_api_version)
_KIND_OK = v.Memo(v.is_valid_kind)
_NAMESPACE_OK = v.Memo(v.is_valid_namespace)
_LABEL_KEY_OK = v.Memo(v.is_valid_label_key)
_LABEL_VALUE_OK = v.Memo(v.is_valid_label_value)
_ANNOTATION_KEY_OK = v.Memo(v.is_valid_annotation_key)
_TAG_OK = v.Memo(v.is_valid_tag)
_name_ok = v.is_valid_entity_name
_url_ok = v.is_valid_url
_plain_web_url = v.PLAIN_WEB_URL.match


def _check_formats(entity: dict, issues: list[Issue]) -> None:
    # The happy path of each field is one inline test (mostly a memo hit); `_format`, which also
    # tells a null from a bad value, only runs when that test fails.
    value = entity.get("apiVersion", _MISSING)
    if value is not _MISSING and not (type(value) is str and _API_VERSION_OK[value]):
        _format("apiVersion", value, v.is_valid_api_version, "isValidApiVersion", _EXPECT_PREFIXED, issues)
    value = entity.get("kind", _MISSING)
    if value is not _MISSING and not (type(value) is str and _KIND_OK[value]):
        _format("kind", value, v.is_valid_kind, "isValidKind", _EXPECT_KIND, issues)
    metadata = entity.get("metadata")
    if type(metadata) is not dict:
        return
    value = metadata.get("name", _MISSING)
    if value is not _MISSING and not _name_ok(value):
        _format("metadata.name", value, v.is_valid_entity_name, "isValidEntityName", _EXPECT_NAME, issues)
    value = metadata.get("namespace", _MISSING)
    if value is not _MISSING and not (type(value) is str and _NAMESPACE_OK[value]):
        _format("metadata.namespace", value, v.is_valid_namespace, "isValidNamespace", _EXPECT_NAMESPACE, issues)
    labels = metadata.get("labels")
    if type(labels) is dict:
        for key, value in labels.items():
            if not (type(key) is str and _LABEL_KEY_OK[key]):
                _format(
                    f"metadata.labels.{key}", key, v.is_valid_label_key, "isValidLabelKey", _EXPECT_PREFIXED, issues
                )
            if not (type(value) is str and _LABEL_VALUE_OK[value]):
                _format(
                    f"metadata.labels.{key}", value, v.is_valid_label_value, "isValidLabelValue", _EXPECT_NAME, issues
                )
    annotations = metadata.get("annotations")
    if type(annotations) is dict:
        for key, value in annotations.items():
            if not (type(key) is str and _ANNOTATION_KEY_OK[key]):
                _format(
                    f"metadata.annotations.{key}",
                    key,
                    v.is_valid_annotation_key,
                    "isValidAnnotationKey",
                    _EXPECT_PREFIXED,
                    issues,
                )
            if type(value) is not str:
                _format(
                    f"metadata.annotations.{key}",
                    value,
                    v.is_valid_annotation_value,
                    "isValidAnnotationValue",
                    "a string",
                    issues,
                )
    tags = metadata.get("tags")
    if type(tags) is list:
        for index, tag in enumerate(tags):
            if not (type(tag) is str and _TAG_OK[tag]):
                _format(f"metadata.tags.{index}", tag, v.is_valid_tag, "isValidTag", _EXPECT_TAG, issues)
    links = metadata.get("links")
    if type(links) is list:
        for index, link in enumerate(links):
            if type(link) is not dict:
                link = {}
            url = link.get("url")
            if not (type(url) is str and _plain_web_url(url)) and not _url_ok(url):
                # The url is required even at this layer; title and icon only when present.
                _format(f"metadata.links.{index}.url", url, v.is_valid_url, "isValidUrl", _EXPECT_URL, issues)
            for key in ("title", "icon"):
                value = link.get(key, _MISSING)
                if value is not _MISSING and not (type(value) is str and value.strip()):
                    _format(
                        f"metadata.links.{index}.{key}",
                        value,
                        v.is_non_empty_string,
                        "isNonEmptyString",
                        _EXPECT_NON_EMPTY,
                        issues,
                    )


# --- everything together -----------------------------------------------------------------------


def validate_entity(entity: Any) -> list[Issue]:
    """All of Backstage's checks for one entity; an empty list means valid.

    Order: common schema, then the kind's spec rules (an unknown kind, or a kind with an
    unsupported apiVersion, is itself an issue), then field formats. A field reported by an
    earlier layer is not reported again by a later one (a name of 7 is a type error, not also a
    format error).
    """
    if type(entity) is not dict:
        return [_root_type(entity)]
    issues: list[Issue] = []
    _check_schema(entity, issues)
    kind = entity.get("kind")
    rules = KINDS.get(kind) if type(kind) is str else None
    if rules is None:
        if type(kind) is str and kind:
            known = ", ".join(sorted(KINDS))
            issues.append(
                Issue(
                    "kind",
                    "knownKind",
                    truncate(kind),
                    f'kind: unknown kind "{truncate(kind)}"; this catalog accepts {known} (rule: knownKind)',
                )
            )
    else:
        api_version = entity.get("apiVersion")
        if type(api_version) is str and api_version and api_version not in rules.api_versions:
            supported = ", ".join(sorted(rules.api_versions))
            issues.append(
                Issue(
                    "apiVersion",
                    "supportedApiVersion",
                    truncate(api_version),
                    f'apiVersion: kind {kind} does not support apiVersion "{truncate(api_version)}"; '
                    f"expected {supported} (rule: supportedApiVersion)",
                )
            )
        spec = entity.get("spec", _MISSING)
        if spec is _MISSING:
            issues.append(missing("spec"))
        elif type(spec) is dict:
            rules.check_spec(spec, issues)
    if issues:
        format_issues: list[Issue] = []
        _check_formats(entity, format_issues)
        reported = {issue.field for issue in issues}
        issues.extend(issue for issue in format_issues if issue.field not in reported)
        return issues
    _check_formats(entity, issues)
    return issues
