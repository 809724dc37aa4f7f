"""validate_entity: Backstage's rules as one call, and rejections precise enough to act on."""

from __future__ import annotations

import copy

import pytest

from catalog_pipelines.model import RawEntity, Rejection, process_entity, validate_entity
from catalog_pipelines.providers.descriptors.loader import iter_descriptors, load_file
from catalog_pipelines.model.validation import KINDS, truncate
from helpers import TEST_DATA

EXAMPLES = TEST_DATA / "backstage-examples"


def component(**spec_overrides):
    spec = {"type": "service", "lifecycle": "production", "owner": "team-a", **spec_overrides}
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "svc"}, "spec": spec}


def issue_fields(entity):
    return [issue.field for issue in validate_entity(entity)]


@pytest.fixture(scope="module")
def example_entities():
    items = list(iter_descriptors([EXAMPLES / "all.yaml", EXAMPLES / "acme-corp.yaml"]))
    assert all(isinstance(item, RawEntity) for item in items), [getattr(i, "message", i) for i in items]
    return items


def test_every_entity_reachable_from_the_example_roots_validates(example_entities):
    # SOURCE.md: 68 entities in the folder, of which the two extras are not reachable.
    assert len(example_entities) == 66
    problems = {
        raw.entity["metadata"]["name"]: [str(i) for i in validate_entity(raw.entity)] for raw in example_entities
    }
    assert {name: issues for name, issues in problems.items() if issues} == {}


def test_example_catalog_has_the_kinds_its_source_notes_list(example_entities):
    kinds = sorted(raw.entity["kind"] for raw in example_entities)
    counts = {kind: kinds.count(kind) for kind in set(kinds)}
    assert counts == {
        "User": 17, "Component": 13, "API": 10, "Location": 9, "Group": 8,
        "Domain": 3, "System": 3, "AiResource": 2, "Resource": 1,
    }  # fmt: skip


def test_invalid_example_component_is_rejected_naming_the_name_and_the_bad_tag():
    path = EXAMPLES / "components" / "invalid-component.yaml"
    [(_, raw)] = load_file(path, base_dir=path.parent).items
    result = process_entity(raw)
    assert isinstance(result, Rejection)
    assert "invalid-component.yaml" in result.message and "document 0" in result.message
    assert "metadata.name: expected a string that is sequences of [a-zA-Z0-9]" in result.message
    assert '"invalid component"' in result.message and "(rule: isValidEntityName)" in result.message
    assert (
        "metadata.tags.1:" in result.message
        and '"go 1.15.3"' in result.message
        and "(rule: isValidTag)" in result.message
    )
    assert (result.field, result.rule, result.value) == ("metadata.name", "isValidEntityName", "invalid component")


def test_mcp_server_api_needs_no_definition_but_other_apis_do():
    api = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "API",
        "metadata": {"name": "tools"},
        "spec": {
            "type": "mcp-server",
            "lifecycle": "experimental",
            "owner": "team-a",
            "remotes": [{"type": "streamable-http", "url": "http://x"}],
        },
    }
    assert validate_entity(api) == []
    assert issue_fields({**api, "spec": {**api["spec"], "type": "openapi"}}) == ["spec.definition"]
    assert issue_fields({**api, "spec": {**api["spec"], "remotes": [{"type": "sse"}]}}) == ["spec.remotes.0.url"]


def test_ai_resource_rules_need_a_category_and_a_rationale():
    rule = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "AiResource",
        "metadata": {"name": "use-internal-apis"},
        "spec": {
            "type": "rule",
            "lifecycle": "production",
            "owner": "team-a",
            "category": "architecture",
            "rationale": "why",
        },
    }
    assert validate_entity(rule) == []
    del rule["spec"]["rationale"]
    assert issue_fields(rule) == ["spec.rationale"]


def test_template_needs_type_and_steps_with_actions():
    template = {
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "springboot-template"},
        "spec": {"type": "service", "owner": "team-a", "steps": [{"id": "fetch", "action": "fetch:template"}]},
    }
    assert validate_entity(template) == []
    assert issue_fields({**template, "apiVersion": "backstage.io/v1alpha1"}) == ["apiVersion"]
    template["spec"]["steps"].append({"id": "publish"})
    assert issue_fields(template) == ["spec.steps.1.action"]


# The example of Backstage's Template.v1beta3.schema.json (plugins/scaffolder-common), with the
# optional blocks the schema types added.
BACKSTAGE_TEMPLATE_EXAMPLE = {
    "apiVersion": "scaffolder.backstage.io/v1beta3",
    "kind": "Template",
    "metadata": {"name": "react-ssr-template", "tags": ["recommended", "react"]},
    "spec": {
        "owner": "artist-relations-team",
        "type": "website",
        "lifecycle": "production",
        "parameters": {
            "required": ["name"],
            "backstage:permissions": {"tags": ["one", "two"]},
            "properties": {"name": {"title": "Name", "type": "string"}},
        },
        "steps": [
            {"id": "fetch", "name": "Fetch", "action": "fetch:plain", "input": {"url": "./template"},
             "backstage:permissions": {"tags": ["one"]}},
            {"id": "publish", "name": "Publish", "action": "publish:github", "if": "${{ parameters.repoUrl }}"},
            {"action": "debug:log", "if": False},
        ],
        "output": {
            "catalogInfoUrl": "${{ steps.publish.output.catalogInfoUrl }}",
            "links": [{"title": "Repository", "url": "https://example.com", "if": True}, {"entityRef": "component:x"}],
            "text": [{"title": "Done", "content": "**ok**"}],
        },
        "secrets": {"schema": {"type": "object"}},
        "presentation": {"buttonLabels": {"createButtonText": "Go"}},
        "EXPERIMENTAL_formDecorators": [{"id": "hook", "input": {}}],
    },
}  # fmt: skip


def test_template_v1beta3_example_from_backstage_is_valid():
    assert validate_entity(BACKSTAGE_TEMPLATE_EXAMPLE) == []


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (("steps", 0, "id"), None, "spec.steps.0.id", "spec.steps.0.id: expected a string but found null (rule: type)"),
        (("steps", 1, "name"), 7, "spec.steps.1.name", 'expected a string but found "7" (a number)'),
        (("steps", 0, "action"), ["fetch"], "spec.steps.0.action", "expected a string"),
        (("steps", 0, "input"), "url=./x", "spec.steps.0.input", "expected an object"),
        (("steps", 1, "if"), 1, "spec.steps.1.if", "expected a string or a boolean"),
        (("steps", 0, "backstage:permissions", "tags"), [3], "spec.steps.0.backstage:permissions.tags.0", "a string"),
        (("parameters",), [{"title": "ok"}, "form"], "spec.parameters.1", "expected an object (a JSON schema)"),
        (("parameters", "backstage:permissions"), ["a"], "spec.parameters.backstage:permissions", "an object"),
        (("output", "links", 0, "url"), "", "spec.output.links.0.url", "(rule: minLength)"),
        (("output", "links", 1, "if"), None, "spec.output.links.1.if", "expected a string or a boolean"),
        (("output", "links"), {"url": "x"}, "spec.output.links", "expected an array of links objects"),
        (("output", "text", 0, "content"), 5, "spec.output.text.0.content", "expected a string"),
        (("output", "catalogInfoUrl"), {"nested": 1}, "spec.output.catalogInfoUrl", "expected a string"),
        (("secrets", "schema"), "x", "spec.secrets.schema", "expected an object"),
        (("presentation", "buttonLabels", "createButtonText"), 1, "spec.presentation.buttonLabels.createButtonText",
         "expected a string"),
        (("EXPERIMENTAL_formDecorators", 0, "id"), False, "spec.EXPERIMENTAL_formDecorators.0.id", "a string"),
    ],
)  # fmt: skip
def test_template_v1beta3_fields_are_typed_like_backstages_schema(path, value, field, message):
    template = copy.deepcopy(BACKSTAGE_TEMPLATE_EXAMPLE)
    container = template["spec"]
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = value
    issues = validate_entity(template)
    assert [issue.field for issue in issues] == [field]
    assert message in issues[0].message


def test_unknown_kind_is_an_issue_that_lists_the_accepted_kinds():
    entity = component()
    entity["kind"] = "Gadget"
    [issue] = validate_entity(entity)
    assert (issue.field, issue.rule, issue.value) == ("kind", "knownKind", "Gadget")
    assert all(kind in issue.message for kind in KINDS)


def test_kinds_are_case_sensitive_like_backstage():
    entity = component()
    entity["kind"] = "component"
    assert [i.rule for i in validate_entity(entity)] == ["knownKind"]


def test_known_kind_with_an_unsupported_api_version_is_rejected():
    entity = component()
    entity["apiVersion"] = "backstage.io/v2"
    [issue] = validate_entity(entity)
    assert (issue.field, issue.rule) == ("apiVersion", "supportedApiVersion")


def test_foreign_root_fields_are_rejected():
    entity = component()
    entity["annotations"] = {"a": "b"}
    [issue] = validate_entity(entity)
    assert issue.field == "annotations" and "additional properties" in issue.message


def test_namespace_must_be_a_lowercase_dns_label():
    entity = component()
    entity["metadata"]["namespace"] = "Team_A"
    assert [(i.field, i.rule) for i in validate_entity(entity)] == [("metadata.namespace", "isValidNamespace")]


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("labels", {"example.com/team": "Bad Value"}, "isValidLabelValue"),
        ("labels", {"bad key!": "ok"}, "isValidLabelKey"),
        ("annotations", {"-bad/key": "x"}, "isValidAnnotationKey"),
        ("annotations", {"example.com/n": 7}, "type"),
        ("tags", ["UPPER"], "isValidTag"),
        ("links", [{"url": "not a url"}], "isValidUrl"),
        ("links", [{"url": "https://x.example", "title": "  "}], "isNonEmptyString"),
    ],
)
def test_metadata_format_rules_name_the_field_and_rule(field, value, rule):
    entity = component()
    entity["metadata"][field] = value
    issues = validate_entity(entity)
    assert [i.rule for i in issues] == [rule]
    assert issues[0].field.startswith(f"metadata.{field}.")


def test_tags_may_use_colon_plus_and_hash():
    entity = component()
    entity["metadata"]["tags"] = ["c++", "c#", "lang:go", "a-b"]
    assert validate_entity(entity) == []


def test_a_field_broken_in_type_is_not_reported_again_as_a_format_issue():
    entity = component()
    entity["metadata"]["name"] = 7
    assert issue_fields(entity) == ["metadata.name"]


def test_all_issues_of_an_entity_are_reported_together():
    entity = component()
    del entity["spec"]["owner"]
    entity["metadata"]["tags"] = ["ok", "Not OK"]
    assert issue_fields(entity) == ["spec.owner", "metadata.tags.1"]


def test_long_values_are_truncated_in_messages():
    entity = component()
    entity["metadata"]["name"] = "x" * 10_000
    [issue] = validate_entity(entity)
    assert len(issue.message) < 400
    assert issue.value == truncate("x" * 10_000) and "10,000 characters" in issue.value


def test_validation_does_not_modify_the_entity():
    entity = component(dependsOn=["resource:db"])
    before = copy.deepcopy(entity)
    validate_entity(entity)
    assert entity == before


@pytest.mark.parametrize("document", [None, 7, "text", ["a", "list"]])
def test_non_mapping_documents_are_one_root_issue(document):
    [issue] = validate_entity(document)
    assert (issue.field, issue.rule) == ("(root)", "type")
