"""The descriptor loader: documents, placeholders, Location following."""

from __future__ import annotations

import json
from pathlib import Path

from catalog_pipelines.model import Limits, ProcessedEntity, RawEntity, Rejection, process_entity
from catalog_pipelines.providers.descriptors import yamlsafe
from catalog_pipelines.providers.descriptors.loader import DescriptorWalk, Root, VisitFile, iter_descriptors, load_file
from catalog_pipelines.providers.descriptors.placeholders import UNRESOLVED_ANNOTATION
from helpers import COMPONENT, TEST_DATA

DATA = TEST_DATA / "model"
EXAMPLES = TEST_DATA / "backstage-examples"



def by_doc(path: Path, **kwargs):
    """Document index -> processed entity or rejection, for one file."""
    loaded = load_file(path, base_dir=path.parent, **kwargs)
    return {index: process_entity(item) if isinstance(item, RawEntity) else item for index, item in loaded.items}


def test_every_broken_document_is_rejected_with_a_reason_and_the_good_ones_come_through():
    results = by_doc(DATA / "bad-documents.yaml")  # an alias bomb among them: document 3
    assert sorted(results) == [0, 1, 2, 3, 4, 5, 6, 8]  # 7 is an empty document, ignored
    assert [results[i].ref for i in (0, 8)] == ["component:default/first-good", "group:default/last-good"]
    expected_rules = {1: "yamlSyntax", 2: "type", 3: "maxYamlNodes", 4: "unsafeTag", 5: "knownKind", 6: "type"}
    assert {i: results[i].rule for i in expected_rules} == expected_rules
    for index in expected_rules:
        rejection = results[index]
        assert isinstance(rejection, Rejection) and rejection.doc_index == index
        assert rejection.message.startswith(f"file:{DATA / 'bad-documents.yaml'}, document {index}")
    assert {results[i].field for i in (1, 3, 4)} == {"(document)"}
    assert "line 18" in results[1].message
    assert "expected an object (a YAML mapping)" in results[2].message
    assert "!!python/object/apply:os.system" in results[4].message
    assert 'unknown kind "Gadget"' in results[5].message


def test_ten_megabyte_annotation_is_rejected_without_parsing_and_the_rest_of_the_file_loads(tmp_path, monkeypatch):
    huge = (
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: huge\n  annotations:\n"
        f"    example.com/blob: '{'x' * 10 * 1024 * 1024}'\nspec:\n  type: service\n"
    )
    path = tmp_path / "catalog-info.yaml"
    path.write_text(COMPONENT.format(name="before") + "---\n" + huge + "---\n" + COMPONENT.format(name="after"))
    parsed = []
    real_parser = yamlsafe._Parser
    monkeypatch.setattr(yamlsafe, "_Parser", lambda text: parsed.append(len(text)) or real_parser(text))
    results = by_doc(path)
    assert len(parsed) == 2 and max(parsed) < 1024  # the huge document never reached the YAML parser
    assert [results[0].ref, results[2].ref] == ["component:default/before", "component:default/after"]
    assert results[1].rule == "maxDocumentBytes" and "10,485," in results[1].message


def test_local_text_json_and_yaml_placeholders_are_substituted():
    results = by_doc(DATA / "placeholders" / "api.yaml")
    api = results[0].entity
    assert api["spec"]["definition"] == (DATA / "placeholders" / "specs" / "openapi.yaml").read_text()
    assert UNRESOLVED_ANNOTATION not in api["metadata"].get("annotations", {})
    spec = results[2].entity["spec"]
    assert spec["settings"] == {"retries": 3, "regions": ["eu", "us"]}
    assert spec["schedule"] == {"cron": "0 * * * *", "enabled": "yes"}
    assert spec["schema"] == {"$ref": "#/definitions/left-alone"}  # unknown resolvers are left alone


def test_remote_placeholder_is_recorded_not_fetched_and_the_entity_still_ingests():
    result = by_doc(DATA / "placeholders" / "api.yaml")[1]
    assert isinstance(result, ProcessedEntity)
    assert result.entity["spec"]["definition"] == (
        "(unresolved $text placeholder: https://example.com/openapi.yaml; remote content is not fetched)"
    )
    listed = json.loads(result.entity["metadata"]["annotations"][UNRESOLVED_ANNOTATION])
    assert listed == [
        {"field": "spec.definition", "placeholder": "$text", "target": "https://example.com/openapi.yaml"}
    ]


def test_placeholder_that_leaves_the_root_is_rejected_and_not_read():
    result = by_doc(DATA / "placeholders" / "api.yaml")[3]
    assert isinstance(result, Rejection)
    assert (result.field, result.rule) == ("spec.secret", "placeholderOutsideRoot")
    assert "outside the provider root" in result.message


def test_missing_local_placeholder_target_rejects_the_entity(tmp_path):
    (tmp_path / "api.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: a\n"
        "spec:\n  type: openapi\n  lifecycle: production\n  owner: team-a\n  definition:\n    $text: ./nope.yaml\n"
    )
    [result] = by_doc(tmp_path / "api.yaml").values()
    assert (result.rule, result.field) == ("placeholderNotFound", "spec.definition")


def test_example_placeholders_resolve_locally_and_remote_ones_are_listed():
    entities = {
        (raw.entity["kind"], raw.entity["metadata"]["name"]): raw.entity
        for raw in iter_descriptors([EXAMPLES / "all.yaml"])
    }
    assert entities["API", "petstore-webhook"]["spec"]["definition"].startswith("openapi: 3.1.0")
    unresolved = sorted(
        key for key, e in entities.items() if UNRESOLVED_ANNOTATION in e["metadata"].get("annotations", {})
    )
    assert unresolved == [("API", "spotify"), ("API", "wayback-archive"), ("API", "wayback-search")]


def test_location_cycle_is_reported_and_each_file_is_read_once():
    items = list(iter_descriptors([DATA / "cycle" / "root.yaml"]))
    entities = [item.entity["metadata"]["name"] for item in items if isinstance(item, RawEntity)]
    assert entities == ["cycle-root", "cycle-middle", "cycle-leaf"]
    problems = {item.rule: item for item in items if isinstance(item, Rejection)}
    assert set(problems) == {"locationCycle", "locationTarget"}
    cycle = problems["locationCycle"]
    assert "Location cycle root.yaml → middle.yaml → root.yaml" in cycle.message
    assert (cycle.field, cycle.ref, cycle.value) == ("spec.targets.0", "location:default/cycle-middle", "./root.yaml")
    assert problems["locationTarget"].field == "spec.targets.2" and "missing.yaml" in problems["locationTarget"].message


def test_remote_location_targets_are_not_followed():
    walk = DescriptorWalk([Root.of(DATA / "cycle" / "root.yaml")])
    remote = []
    for event in walk.events():
        if isinstance(event, VisitFile):
            walk.register(event.path, load_file(event.path, base_dir=event.root.base_dir).targets)
        elif type(event).__name__ == "RemoteTarget":
            remote.append(event.target)
    assert remote == ["https://example.com/remote/catalog-info.yaml"]


def test_location_targets_may_be_globs_and_optional(tmp_path):
    (tmp_path / "teams").mkdir()
    for name in ("b", "a"):
        (tmp_path / "teams" / f"{name}.yaml").write_text(COMPONENT.format(name=f"team-{name}"))
    (tmp_path / "root.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: root\n"
        "spec:\n  presence: optional\n  targets: ['./teams/*.yaml', './absent.yaml']\n"
    )
    items = list(iter_descriptors([tmp_path / "root.yaml"]))
    assert [item.entity["metadata"]["name"] for item in items] == ["root", "team-a", "team-b"]


def test_location_target_outside_the_root_is_not_followed(tmp_path):
    (tmp_path / "outside.yaml").write_text(COMPONENT.format(name="outside"))
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "root.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: root\nspec:\n  target: ../outside.yaml\n"
    )
    items = list(iter_descriptors([tmp_path / "repo" / "root.yaml"]))
    assert [type(i).__name__ for i in items] == ["RawEntity", "Rejection"]
    assert items[1].rule == "outsideRoot"


def test_file_without_any_apiversion_or_kind_is_not_a_descriptor():
    loaded = load_file(EXAMPLES / "apis" / "petstore-webhook.oas.yaml", base_dir=EXAMPLES)
    assert loaded.is_descriptor is False and loaded.items == []


def test_whole_file_problems_are_one_rejection(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(COMPONENT.format(name="big") * 3)
    [(_, rejection)] = load_file(big, base_dir=tmp_path, limits=Limits(max_file_bytes=100)).items
    assert (rejection.rule, rejection.field, rejection.doc_index) == ("maxFileBytes", "(file)", None)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(COMPONENT.format(name="caf\xe9").encode("latin-1"))
    [(_, rejection)] = load_file(latin1, base_dir=tmp_path).items
    assert rejection.rule == "encoding"


def test_resuming_inside_a_file_still_knows_its_earlier_location_targets(tmp_path):
    (tmp_path / "leaf.yaml").write_text(COMPONENT.format(name="leaf"))
    (tmp_path / "root.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: root\n"
        "spec:\n  target: ./leaf.yaml\n---\n" + COMPONENT.format(name="second")
    )
    loaded = load_file(tmp_path / "root.yaml", base_dir=tmp_path, first_doc=1)
    assert [item.entity["metadata"]["name"] for _, item in loaded.items] == ["second"]
    assert [target.paths for target in loaded.targets] == [[tmp_path / "leaf.yaml"]]
