"""process_entity: the ingestion hot path's single entry point."""

from __future__ import annotations

import copy
import hashlib
import json

import orjson
import pytest

from catalog_pipelines.model import Limits, ProcessedEntity, RawEntity, Rejection, Relation, process_entity


def component(**metadata):
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "Checkout-Service", **metadata},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a", "system": "shop"},
    }


def test_valid_entity_gets_canonical_ref_default_namespace_relations_and_location():
    result = process_entity(RawEntity(component(), "file:/repo/catalog-info.yaml", 2))
    assert isinstance(result, ProcessedEntity)
    assert (result.ref, result.kind, result.namespace, result.name) == (
        "component:default/checkout-service",
        "Component",
        "default",
        "Checkout-Service",
    )
    assert result.entity["metadata"]["namespace"] == "default"
    assert result.location == "file:/repo/catalog-info.yaml"
    assert result.relations == [
        Relation("component:default/checkout-service", "ownedBy", "group:default/team-a"),
        Relation("group:default/team-a", "ownerOf", "component:default/checkout-service"),
        Relation("component:default/checkout-service", "partOf", "system:default/shop"),
        Relation("system:default/shop", "hasPart", "component:default/checkout-service"),
    ]


def test_content_hash_is_sha256_of_the_normalised_entity_with_sorted_keys():
    result = process_entity(RawEntity(component(), "x"))
    expected = hashlib.sha256(orjson.dumps(result.entity, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert result.content_hash == expected
    # Independent of key order, and equal to the hash of the entity with its namespace written out.
    shuffled = json.loads(json.dumps(component(namespace="default"), sort_keys=True))
    shuffled["metadata"] = dict(reversed(list(shuffled["metadata"].items())))
    assert process_entity(RawEntity(shuffled, "y")).content_hash == result.content_hash


def test_content_hash_changes_when_the_entity_changes():
    one = process_entity(RawEntity(component(), "x")).content_hash
    other = process_entity(RawEntity(component(description="changed"), "x")).content_hash
    assert one != other


def test_input_entity_is_not_mutated_when_the_namespace_is_filled_in():
    raw_entity = component()
    before = copy.deepcopy(raw_entity)
    result = process_entity(RawEntity(raw_entity, "x"))
    assert raw_entity == before
    assert result.entity is not raw_entity


def test_entity_with_a_namespace_is_stored_as_given_without_copying():
    raw_entity = component(namespace="shop")
    result = process_entity(RawEntity(raw_entity, "x"))
    assert result.entity is raw_entity and result.namespace == "shop"


def test_rejection_names_location_document_ref_field_rule_and_value():
    entity = component(tags=["Bad Tag"])
    result = process_entity(RawEntity(entity, "file:/repo/catalog-info.yaml", 3))
    assert isinstance(result, Rejection)
    assert (result.location, result.doc_index, result.ref) == (
        "file:/repo/catalog-info.yaml",
        3,
        "component:default/checkout-service",
    )
    assert (result.field, result.rule, result.value) == ("metadata.tags.0", "isValidTag", "Bad Tag")
    assert result.message.startswith(
        "file:/repo/catalog-info.yaml, document 3, component:default/checkout-service: metadata.tags.0:"
    )


def test_dependency_without_kind_is_rejected_with_backstages_message():
    entity = component()
    entity["spec"]["dependsOn"] = ["payments"]
    result = process_entity(RawEntity(entity, "x", 0))
    assert isinstance(result, Rejection)
    assert (result.field, result.rule, result.value) == ("spec.dependsOn.0", "entityRef", "payments")
    assert 'Entity reference "payments" had missing or empty kind' in result.message


def test_entity_over_the_size_limit_is_rejected():
    entity = component(annotations={"example.com/blob": "x" * 5000})
    assert isinstance(process_entity(RawEntity(entity, "x")), ProcessedEntity)
    result = process_entity(RawEntity(entity, "x"), limits=Limits(max_entity_bytes=4096))
    assert isinstance(result, Rejection) and result.rule == "maxEntityBytes"


def test_values_that_are_not_json_are_rejected_not_raised():
    entity = component()
    entity["spec"]["weird"] = {1: "integer key"}
    result = process_entity(RawEntity(entity, "x"))
    assert isinstance(result, Rejection) and result.rule == "json"


@pytest.mark.parametrize("document", [None, [], "text", 42])
def test_any_document_becomes_a_rejection_rather_than_an_exception(document):
    result = process_entity(RawEntity(document, "x", 1))
    assert isinstance(result, Rejection)
    assert result.ref is None and result.field == "(root)"


def test_many_issues_are_capped_in_the_message_with_a_count():
    entity = component(tags=[f"Bad {i}" for i in range(25)])
    result = process_entity(RawEntity(entity, "x"))
    assert result.message.count("(rule: isValidTag)") == 10
    assert result.message.endswith("and 15 more")


def test_model_and_file_provider_import_neither_dagster_nor_sqlalchemy():
    import subprocess
    import sys

    code = (
        "import sys, catalog_pipelines.model, catalog_pipelines.providers.descriptors.loader, catalog_pipelines.providers.files;"
        "print(sorted(m for m in ('dagster', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_model_imports_no_other_project_package_nor_dagster_storage_or_yaml():
    """The model is pure: every import in model/*.py (also the ones inside functions) stays inside
    the model or the standard library and orjson; descriptor reading lives in providers/descriptors."""
    import ast
    import sys
    from pathlib import Path

    import catalog_pipelines.model as model

    allowed_third_party = {"orjson"}
    # config_files.py turns configuration *text* into pydantic models with a line in every error
    # (shared by every config kind, analytics' included, which may import only the model); it reads
    # no file, but it needs a YAML parser that keeps node marks, and pydantic.
    allowed_in = {"config_files.py": {"yaml", "pydantic", "pydantic_core"}}
    offenders = []
    for path in sorted(Path(model.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                inside = name == "catalog_pipelines.model" or name.startswith("catalog_pipelines.model.")
                if inside or top in sys.stdlib_module_names or top in allowed_third_party | allowed_in.get(path.name, set()):
                    continue
                offenders.append(f"{path.name}: {name}")
    assert offenders == []
