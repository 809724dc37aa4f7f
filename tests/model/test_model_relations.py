"""derive_relations on real example entities, with the expected relations written out by hand."""

from __future__ import annotations

import pytest

from catalog_pipelines.model import Relation, derive_relations
from catalog_pipelines.providers.descriptors.loader import iter_descriptors
from catalog_pipelines.model.relations import RelationError
from helpers import TEST_DATA

EXAMPLES = TEST_DATA / "backstage-examples"


@pytest.fixture(scope="module")
def examples():
    by_ref = {}
    roots = [EXAMPLES / "all.yaml", EXAMPLES / "acme-corp.yaml", EXAMPLES / "components" / "different-namespace.yaml"]
    for raw in iter_descriptors(roots):
        meta = raw.entity["metadata"]
        by_ref[f"{raw.entity['kind']}:{meta.get('namespace', 'default')}/{meta['name']}".lower()] = raw.entity
    return by_ref


def relations_of(entity):
    return {(r.source, r.type, r.target) for r in derive_relations(entity)}


def test_component_with_owner_system_and_kind_qualified_dependency(examples):
    assert relations_of(examples["component:default/artist-lookup"]) == {
        ("component:default/artist-lookup", "ownedBy", "group:default/team-a"),
        ("group:default/team-a", "ownerOf", "component:default/artist-lookup"),
        ("component:default/artist-lookup", "partOf", "system:default/artist-engagement-portal"),
        ("system:default/artist-engagement-portal", "hasPart", "component:default/artist-lookup"),
        ("component:default/artist-lookup", "dependsOn", "resource:default/artists-db"),
        ("resource:default/artists-db", "dependencyOf", "component:default/artist-lookup"),
        # spec.apiConsumedBy is not a spec field Backstage derives anything from.
    }


def test_component_in_another_namespace_owned_across_namespaces(examples):
    # owner: default/team-a names the namespace but not the kind, so the kind defaults to Group.
    assert relations_of(examples["component:alternative/different-namespace"]) == {
        ("component:alternative/different-namespace", "ownedBy", "group:default/team-a"),
        ("group:default/team-a", "ownerOf", "component:alternative/different-namespace"),
    }


def test_user_in_another_namespace_is_member_of_a_default_namespace_group(examples):
    assert relations_of(examples["user:development/guest"]) == {
        ("user:development/guest", "memberOf", "group:default/team-a"),
        ("group:default/team-a", "hasMember", "user:development/guest"),
    }
    # The same name in the default namespace is another user, with its own membership.
    assert ("user:default/guest", "memberOf", "group:default/team-a") in relations_of(examples["user:default/guest"])


def test_group_with_parent_and_children_relates_both_ways(examples):
    assert relations_of(examples["group:default/backstage"]) == {
        ("group:default/backstage", "childOf", "group:default/infrastructure"),
        ("group:default/infrastructure", "parentOf", "group:default/backstage"),
        ("group:default/backstage", "parentOf", "group:default/team-a"),
        ("group:default/team-a", "childOf", "group:default/backstage"),
        ("group:default/backstage", "parentOf", "group:default/team-b"),
        ("group:default/team-b", "childOf", "group:default/backstage"),
    }


def test_component_that_provides_and_consumes_apis(examples):
    assert relations_of(examples["component:default/wayback-search"]) == {
        ("component:default/wayback-search", "ownedBy", "group:default/team-a"),
        ("group:default/team-a", "ownerOf", "component:default/wayback-search"),
        ("component:default/wayback-search", "providesApi", "api:default/wayback-search"),
        ("api:default/wayback-search", "apiProvidedBy", "component:default/wayback-search"),
        ("component:default/wayback-search", "consumesApi", "api:default/wayback-archive"),
        ("api:default/wayback-archive", "apiConsumedBy", "component:default/wayback-search"),
    }


def test_subcomponent_and_subdomain_are_part_of_their_parents(examples):
    assert (
        "component:default/wayback-archive-ingestion",
        "partOf",
        "component:default/wayback-archive",
    ) in relations_of(examples["component:default/wayback-archive-ingestion"])
    assert relations_of(examples["domain:default/artists"]) == {
        ("domain:default/artists", "ownedBy", "group:default/team-a"),
        ("group:default/team-a", "ownerOf", "domain:default/artists"),
        ("domain:default/artists", "partOf", "domain:default/audio"),
        ("domain:default/audio", "hasPart", "domain:default/artists"),
    }


def test_kind_qualified_owner_overrides_the_default_group_kind(examples):
    assert ("domain:default/playback", "ownedBy", "user:default/frank.tiernan") in relations_of(
        examples["domain:default/playback"]
    )


def test_locations_have_no_relations(examples):
    assert derive_relations(examples["location:default/example-all"]) == []


def test_refs_are_canonical_lowercase():
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "Svc", "namespace": "ns"},
        "spec": {"type": "service", "lifecycle": "production", "owner": "Team-A", "dependsOn": ["Resource:Other/DB"]},
    }
    assert derive_relations(entity)[:4] == [
        Relation("component:ns/svc", "ownedBy", "group:ns/team-a"),
        Relation("group:ns/team-a", "ownerOf", "component:ns/svc"),
        Relation("component:ns/svc", "dependsOn", "resource:other/db"),
        Relation("resource:other/db", "dependencyOf", "component:ns/svc"),
    ]


def test_members_listed_twice_give_one_relation_each_way():
    group = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": "team"},
        "spec": {"type": "team", "children": [], "members": ["ann", "user:ann", "user:default/ann"]},
    }
    assert derive_relations(group) == [
        Relation("group:default/team", "hasMember", "user:default/ann"),
        Relation("user:default/ann", "memberOf", "group:default/team"),
    ]


@pytest.mark.parametrize("field", ["dependsOn", "dependencyOf"])
def test_dependency_without_a_kind_is_an_error_naming_the_field(field):
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": {"name": "db"},
        "spec": {"type": "database", "owner": "team-a", field: ["component:ok", "no-kind"]},
    }
    with pytest.raises(RelationError) as raised:
        derive_relations(entity)
    assert raised.value.field == f"spec.{field}.1"
    assert (
        str(raised.value)
        == 'Entity reference "no-kind" had missing or empty kind (e.g. did not start with "component:" or similar)'
    )


def test_template_owner_and_ai_resource_system_relations():
    template = {
        "kind": "Template",
        "metadata": {"name": "t"},
        "spec": {"owner": "team-a", "type": "service", "steps": []},
    }
    assert relations_of(template) == {
        ("template:default/t", "ownedBy", "group:default/team-a"),
        ("group:default/team-a", "ownerOf", "template:default/t"),
    }
    skill = {
        "kind": "AiResource",
        "metadata": {"name": "s"},
        "spec": {"owner": "team-a", "system": "tools", "type": "skill"},
    }
    assert ("airesource:default/s", "partOf", "system:default/tools") in relations_of(skill)


@pytest.mark.parametrize(
    "ref",
    [
        "team",
        "Team",
        "ns/team",
        "user:team",
        "User:NS/Team",
        "a:b/c/d",
        "a:b/c:d",
        "a/b:c",
        "x:y:z",
        "group:default/team-a",
    ],
)
@pytest.mark.parametrize("field", ["owner", "dependsOn"])
def test_relation_targets_agree_with_the_general_ref_parser(ref, field):
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    default_kind = "Group" if field == "owner" else None
    entity = {
        "kind": "Component",
        "metadata": {"name": "c", "namespace": "home"},
        "spec": {field: [ref] if field == "dependsOn" else ref},
    }
    try:
        expected = parse_entity_ref(ref, default_kind=default_kind, default_namespace="home").canonical()
    except EntityRefError:
        with pytest.raises(RelationError):
            derive_relations(entity)
        return
    assert derive_relations(entity)[0].target == expected


@pytest.mark.parametrize("ref", ["", ":b/c", "a:/c", "a:b/", "/c", "b/", "a:"])
def test_malformed_refs_are_errors_not_relations(ref):
    entity = {"kind": "Component", "metadata": {"name": "c"}, "spec": {"owner": "team", "dependsOn": [ref]}}
    with pytest.raises(RelationError) as raised:
        derive_relations(entity)
    assert raised.value.field == "spec.dependsOn.0"


def test_derived_relations_are_ordinary_frozen_relations():
    import dataclasses

    entity = {"kind": "API", "metadata": {"name": "a"}, "spec": {"owner": "team-a"}}
    relation = derive_relations(entity)[0]
    assert relation == Relation("api:default/a", "ownedBy", "group:default/team-a")
    assert hash(relation) == hash(Relation("api:default/a", "ownedBy", "group:default/team-a"))
    assert dataclasses.asdict(relation) == {
        "source": "api:default/a",
        "type": "ownedBy",
        "target": "group:default/team-a",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        relation.type = "changed"
