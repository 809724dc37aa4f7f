"""The synthetic organisation: deterministic, stateless, production-shaped, and valid Backstage.

Benchmarks and the orphan, graph and org insights all run on this source, so what is pinned here is
what they rely on: the same seed gives the same bytes in any process and from any cursor, the
relation shape has the production median and long tail, dangling targets and mutations come at the
configured rates, and every entity passes the catalog's own validation.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
from collections import Counter

import orjson
import pytest
import yaml

from catalog_pipelines.model.entity import RawEntity
from catalog_pipelines.providers.base import EntityProvider
from catalog_pipelines.providers.synthetic import KINDS, ORG_NAME, SyntheticOrg, SyntheticOrgProvider, write_descriptor_tree
from helpers import REPO_ROOT

REPO = REPO_ROOT

# Every spec field through which an entity declares a relation, as the brief counts them.
SINGLE_REF_FIELDS = ("owner", "system", "domain", "parent", "subcomponentOf")
LIST_REF_FIELDS = ("memberOf", "children", "members", "dependsOn", "dependencyOf", "providesApis", "consumesApis")
DEPENDENCY_FIELDS = ("dependsOn", "consumesApis")


def declared_relations(entity: dict) -> int:
    spec = entity["spec"]
    return sum(1 for f in SINGLE_REF_FIELDS if spec.get(f)) + sum(len(spec.get(f) or ()) for f in LIST_REF_FIELDS)


def refs_of(entity: dict) -> list[str]:
    spec = entity["spec"]
    out = [spec[f] for f in SINGLE_REF_FIELDS if spec.get(f)]
    for f in LIST_REF_FIELDS:
        out.extend(spec.get(f) or ())
    return out


def ref_of(entity: dict) -> str:
    return f"{entity['kind'].lower()}:{entity['metadata']['namespace']}/{entity['metadata']['name']}"


def digest(entities) -> str:
    h = hashlib.sha256()
    for entity in entities:
        h.update(orjson.dumps(entity))
    return h.hexdigest()


@pytest.fixture(scope="module")
def org20k() -> tuple[SyntheticOrg, list[dict]]:
    org = SyntheticOrg(20_000, seed=42)
    return org, list(org.iter_entities())


# ##### DETERMINISM AND STATELESSNESS


def test_generation_zero_is_byte_identical_across_instances_and_depends_on_the_seed():
    first = [orjson.dumps(e) for e in SyntheticOrg(2_000, seed=7).iter_entities()]
    again = [orjson.dumps(e) for e in SyntheticOrg(2_000, seed=7).iter_entities()]
    assert first == again
    other = [orjson.dumps(e) for e in SyntheticOrg(2_000, seed=8).iter_entities()]
    assert len(other) == len(first)
    assert sum(a != b for a, b in zip(first, other)) > 0.9 * len(first)


def test_entity_i_is_the_ith_entity_of_a_full_iteration_whatever_was_generated_before():
    full = list(SyntheticOrg(3_000, seed=3).iter_entities())
    # A fresh instance visited backwards and by stride: no state carried from earlier slots.
    fresh = SyntheticOrg(3_000, seed=3)
    for i in list(range(2_999, -1, -7)) + [0, 1, 1_500]:
        assert fresh.entity(i) == full[i], i


def test_output_is_the_same_in_another_process_with_another_hash_seed():
    code = (
        "import hashlib, orjson\n"
        "from catalog_pipelines.providers.synthetic import SyntheticOrg\n"
        "h = hashlib.sha256()\n"
        "for e in SyntheticOrg(5_000, seed=99, generation=2, remove_fraction=0.05, rename_fraction=0.05,"
        " change_fraction=0.05).iter_entities(4_000, 4_600):\n"
        "    h.update(orjson.dumps(e))\n"
        "print(h.hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    here = SyntheticOrg(5_000, seed=99, generation=2, remove_fraction=0.05, rename_fraction=0.05, change_fraction=0.05)
    assert out.stdout.strip() == digest(here.iter_entities(4_000, 4_600))


def test_provider_resumes_from_a_json_round_tripped_cursor_in_a_new_instance_identically():
    size, page_size = 2_500, 137
    provider = SyntheticOrgProvider("synth", size, seed=5, page_size=page_size)
    assert isinstance(provider, EntityProvider)
    straight, cursor, pages = [], None, 0
    with provider.around():
        while True:
            page = provider.next(cursor)
            straight.extend(page.entities)
            pages += 1
            assert page.total == size
            cursor = page.cursor
            if page.done:
                break
    assert pages == -(-size // page_size)
    assert cursor == {"next": size}

    resumed, cursor, done = [], None, False
    while not done:
        # Every page from a new provider that only knows the stored (JSON) cursor.
        page = SyntheticOrgProvider("synth", size, seed=5, page_size=page_size).next(json.loads(json.dumps(cursor)))
        resumed.extend(page.entities)
        cursor, done = page.cursor, page.done
    assert [(r.entity, r.location) for r in resumed] == [(r.entity, r.location) for r in straight]
    assert all(isinstance(r, RawEntity) and r.doc_index is None for r in straight)
    assert [r.location for r in straight[:3]] == ["synthetic:synth#0", "synthetic:synth#1", "synthetic:synth#2"]
    assert [r.entity for r in straight] == list(SyntheticOrg(size, seed=5).iter_entities())


def test_provider_rejects_a_cursor_it_did_not_make():
    provider = SyntheticOrgProvider("synth", 100)
    for bad in ({"next": -1}, {"next": "5"}, {"offset": 5}, [5], {"next": True}):
        with pytest.raises(ValueError, match="invalid cursor"):
            provider.next(bad)
    assert provider.next({"next": 100}).entities == [] and provider.next({"next": 100}).done


def test_a_page_deep_in_a_million_entity_org_builds_only_that_page(monkeypatch):
    # Generating slots 0..i-1 to reach slot i would take minutes at this size: count what is built.
    built = []
    real_entity = SyntheticOrg.entity
    monkeypatch.setattr(SyntheticOrg, "entity", lambda self, i: built.append(i) or real_entity(self, i))
    provider = SyntheticOrgProvider("big", 1_000_000, page_size=500)
    page = provider.next({"next": 999_000})
    last = provider.org.entity(999_999)
    assert len(page.entities) == 500 and page.cursor == {"next": 999_500} and not page.done
    assert last is not None and last["kind"] == "Resource"
    assert sorted(built) == [*range(999_000, 999_500), 999_999]


# ##### SHAPE


def test_kind_mix_and_org_hierarchy_at_5000_look_like_a_real_catalog():
    org = SyntheticOrg(5_000, seed=1)
    counts = org.kind_counts()
    assert list(counts) == list(KINDS) and sum(counts.values()) == 5_000 == len(org) == org.count_slots()
    assert 0.5 < counts["Component"] / 5_000 < 0.7
    assert counts["Component"] > counts["API"] > counts["Group"] > counts["Domain"] >= 2
    assert 0.05 < counts["User"] / 5_000 < 0.15 and counts["System"] > counts["Domain"]

    entities = list(org.iter_entities())
    assert Counter(e["kind"] for e in entities) == Counter(counts)
    by_kind = {kind: [e for e in entities if e["kind"] == kind] for kind in KINDS}
    assert set(Counter(e["spec"]["type"] for e in by_kind["Component"])) == {"service", "website", "library"}
    assert set(Counter(e["spec"]["type"] for e in by_kind["API"])) == {"openapi", "grpc", "graphql"}
    assert set(Counter(e["spec"]["type"] for e in by_kind["Resource"])) == {"database", "queue", "bucket"}
    lifecycles = Counter(e["spec"]["lifecycle"] for e in by_kind["Component"] + by_kind["API"])
    assert set(lifecycles) == {"production", "experimental", "deprecated"}
    assert lifecycles["production"] > lifecycles["experimental"] > lifecycles["deprecated"]
    assert Counter(e["spec"]["type"] for e in by_kind["Group"]) == {"organization": 1, "department": 5, "division": 14, "team": 80}
    assert all(e["spec"]["definition"] for e in by_kind["API"])
    # Libraries provide nothing and consume nothing; only services provide APIs.
    assert all("providesApis" not in e["spec"] and "consumesApis" not in e["spec"] for e in by_kind["Component"] if e["spec"]["type"] == "library")
    assert {e["spec"]["type"] for e in by_kind["Component"] if "providesApis" in e["spec"]} == {"service"}
    # Everything technical is owned by a team (domains by departments).
    owners = [e["spec"]["owner"] for kind in ("Component", "API", "Resource", "System") for e in by_kind[kind]]
    assert all(o.startswith("group:default/") for o in owners)
    assert sum(o.startswith("group:default/team-") for o in owners) == len(owners)

    sizes = [len(orjson.dumps(e)) for e in entities]
    assert 1_000 <= statistics.mean(sizes) <= 1_500
    for e in entities:
        meta = e["metadata"]
        assert meta["description"] and meta["annotations"], ref_of(e)
        if e["kind"] in ("Component", "API", "System", "Resource", "Domain"):
            assert meta["tags"] and meta["links"], ref_of(e)
        if e["kind"] in ("API", "System") or (e["kind"] == "Component" and "gitlab.com/project-slug" not in meta["annotations"]):
            assert meta["annotations"]["github.com/project-slug"] == f"acme/{meta['name']}"
        if e["kind"] in ("Component", "API", "System"):
            assert meta["annotations"]["backstage.io/techdocs-ref"] and meta["annotations"]["backstage.io/source-location"]
    components = [e["metadata"]["annotations"] for e in by_kind["Component"]]
    # Realistic shares for the fact collectors' annotations (docs/facts.md): some on GitLab, most in Jira.
    assert 0.08 <= sum("gitlab.com/project-slug" in a for a in components) / len(components) <= 0.17
    assert 0.65 <= sum("jira/project-key" in a for a in components) / len(components) <= 0.85
    assert 0 < sum("jira/component" in a for a in components) < sum("jira/project-key" in a for a in components)
    assert all("pagerduty.com/service-id" in e["metadata"]["annotations"] for e in by_kind["Component"] if e["spec"]["type"] == "service")


def test_relations_have_a_median_of_four_and_a_long_tail_at_20000(org20k):
    _, entities = org20k
    counts = sorted(declared_relations(e) for e in entities)
    assert statistics.median(counts) == 4
    assert counts[-1] >= 100
    heavy = sum(c >= 100 for c in counts)
    assert 5 <= heavy <= 0.005 * len(entities)  # "a few" entities depend on hundreds
    assert counts[int(0.99 * len(counts))] < 100

    inbound = Counter(target for e in entities for f in DEPENDENCY_FIELDS for target in e["spec"].get(f, ()))
    popular = [ref for ref, n in inbound.items() if n >= 100]
    assert 3 <= len(popular) <= 50
    assert any(ref.startswith("component:") for ref in popular) and any(ref.startswith("api:") for ref in popular)
    assert inbound.most_common(1)[0][1] >= 300


def test_about_two_per_mille_of_dependency_targets_dangle_by_default(org20k):
    _, entities = org20k
    existing = {ref_of(e) for e in entities}
    targets = [t for e in entities for f in DEPENDENCY_FIELDS for t in e["spec"].get(f, ())]
    dangling = [t for t in targets if t not in existing]
    assert len(targets) > 40_000
    assert 0.0015 <= len(dangling) / len(targets) <= 0.0025, len(dangling) / len(targets)
    # Structural refs (owner, system, domain, parent, children, memberOf, providesApis) never dangle.
    structural = [r for e in entities for r in refs_of(e)]
    assert len([r for r in structural if r not in existing]) == len(dangling)


@pytest.mark.parametrize(("fraction", "low", "high"), [(0.0, 0.0, 0.0), (0.05, 0.045, 0.055)])
def test_dangling_fraction_is_configurable_down_to_none(fraction, low, high):
    entities = list(SyntheticOrg(8_000, seed=4, dangling_fraction=fraction).iter_entities())
    existing = {ref_of(e) for e in entities}
    refs = [r for e in entities for r in refs_of(e)]
    targets = [t for e in entities for f in DEPENDENCY_FIELDS for t in e["spec"].get(f, ())]
    missing = [r for r in refs if r not in existing]
    assert low <= len(missing) / len(targets) <= high
    assert all(r.split("/", 1)[1].startswith("retired-") for r in missing)


# ##### MUTATIONS


def test_remove_fraction_removes_that_share_reproducibly_and_generation_zero_is_the_base():
    size = 20_000
    gen1 = SyntheticOrg(size, generation=1, remove_fraction=0.03)
    removed = {i for i in range(size) if gen1.is_removed(i)}
    assert 0.027 <= len(removed) / size <= 0.033
    again = SyntheticOrg(size, generation=1, remove_fraction=0.03)
    assert removed == {i for i in range(size) if again.is_removed(i)}
    # Mutations accumulate: generation 2 keeps generation 1's removals and adds about as many.
    gen2 = SyntheticOrg(size, generation=2, remove_fraction=0.03)
    removed2 = {i for i in range(size) if gen2.is_removed(i)}
    assert removed < removed2 and 0.025 <= (len(removed2) - len(removed)) / size <= 0.033
    # Generation 0 is the base whatever the rates.
    base = SyntheticOrg(3_000)
    zero = SyntheticOrg(3_000, generation=0, remove_fraction=0.5, rename_fraction=0.2, change_fraction=0.2)
    assert digest(zero.iter_entities()) == digest(base.iter_entities())
    # Removed slots are the ones entity() returns None for, and nothing else is missing.
    small = SyntheticOrg(3_000, generation=1, remove_fraction=0.03)
    assert [small.entity(i) is None for i in range(3_000)] == [small.is_removed(i) for i in range(3_000)]
    assert len(list(small.iter_entities())) == 3_000 - sum(small.is_removed(i) for i in range(3_000)) < 3_000


def test_renames_and_changes_happen_at_their_rates_and_references_follow_renames():
    size = 6_000
    base = list(SyntheticOrg(size).iter_entities())
    mutated = SyntheticOrg(size, generation=1, rename_fraction=0.04, change_fraction=0.05)
    after = [mutated.entity(i) for i in range(size)]
    assert None not in after

    renamed = {ref_of(base[i]): ref_of(after[i]) for i in range(size) if ref_of(after[i]) != ref_of(base[i])}
    assert 0.034 <= len(renamed) / size <= 0.046
    old_refs, new_refs = {ref_of(e) for e in base}, {ref_of(e) for e in after}
    assert len(new_refs) == size and not set(renamed) & new_refs and not set(renamed.values()) & old_refs

    # References follow renames: every relation is the base one with renamed targets replaced.
    for before, now in zip(base, after):
        assert refs_of(now) == [renamed.get(r, r) for r in refs_of(before)], ref_of(now)
    # A change always redraws the description (and may redraw lifecycle and tags); renames do not.
    redrawn = [i for i in range(size) if after[i]["metadata"]["description"] != base[i]["metadata"]["description"]]
    assert 0.044 <= len(redrawn) / size <= 0.056
    assert not {ref_of(base[i]) for i in redrawn} & set(renamed)
    lifecycle_changed = [i for i in redrawn if after[i]["spec"].get("lifecycle") != base[i]["spec"].get("lifecycle")]
    assert lifecycle_changed


def test_removed_entities_leave_dangling_references_behind():
    size = 6_000
    mutated = SyntheticOrg(size, generation=1, remove_fraction=0.05, dangling_fraction=0.0)
    entities = list(mutated.iter_entities())
    removed_refs = {mutated.ref(i) for i in range(size) if mutated.is_removed(i)}
    existing = {ref_of(e) for e in entities}
    assert len(entities) == size - len(removed_refs)
    missing = {r for e in entities for r in refs_of(e) if r not in existing}
    assert missing and missing <= removed_refs


def test_invalid_parameters_are_rejected():
    for kwargs in (
        {"size": 10},
        {"size": 100, "generation": -1},
        {"size": 100, "remove_fraction": 1.5},
        {"size": 100, "dangling_fraction": -0.1},
        {"size": 100, "remove_fraction": 0.6, "rename_fraction": 0.6},
    ):
        with pytest.raises(ValueError):
            SyntheticOrg(**kwargs)
    with pytest.raises(IndexError):
        SyntheticOrg(100).entity(100)


# ##### VALIDITY AND HELPERS


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 50},
        {"size": 4_000, "seed": 2},
        {"size": 3_000, "generation": 3, "remove_fraction": 0.05, "rename_fraction": 0.05, "change_fraction": 0.05},
    ],
    ids=["smallest", "base", "three-mutated-generations"],
)
def test_every_generated_entity_passes_catalog_validation(kwargs):
    from catalog_pipelines.model import ProcessedEntity, process_entity

    org = SyntheticOrg(**kwargs)
    seen = 0
    for i in range(len(org)):
        entity = org.entity(i)
        if entity is None:
            continue
        outcome = process_entity(RawEntity(entity=entity, location=f"synthetic:t#{i}"))
        assert isinstance(outcome, ProcessedEntity), outcome.message
        assert outcome.ref == ref_of(entity)
        seen += 1
    assert seen > 0.8 * len(org)


def test_users_and_groups_form_an_org_of_teams_with_some_people_in_two():
    from analytics.org import OrgGraph

    org = SyntheticOrg(5_000, seed=9)
    people = list(org.users_and_groups())
    assert {e["kind"] for e in people} == {"User", "Group"}
    assert len(people) == org.kind_counts()["User"] + org.kind_counts()["Group"]
    graph = OrgGraph.from_entities(people)
    root = f"group:default/{ORG_NAME}"
    teams = [g for g, info in graph.groups.items() if info["type"] == "team"]
    assert teams and all(graph.ancestors(t)[-1] == root for t in teams)
    assert max(len(graph.ancestors(t)) for t in teams) == 3  # team → division → department → org
    assert graph.descendants(root) == set(graph.groups) - {root}
    memberships = Counter(len(graph.teams_of(u)) for u in graph.users)
    assert set(memberships) == {1, 2}
    assert 0.10 <= memberships[2] / len(graph.users) <= 0.20
    assert len(graph.members(root)) == len(graph.users)


def test_descriptor_tree_holds_exactly_the_org_as_multi_document_yaml(tmp_path):
    org = SyntheticOrg(300, seed=6, generation=1, remove_fraction=0.1)
    paths = write_descriptor_tree(org, tmp_path / "catalog", files=7)
    assert len(paths) == 7 and all(p.is_file() and p.parent.parent == tmp_path / "catalog" for p in paths)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded = [doc for p in paths for doc in yaml.load_all(p.read_text(encoding="utf-8"), Loader=loader)]
    assert loaded == list(org.iter_entities())
    assert len(loaded) < 300
    assert len(write_descriptor_tree(SyntheticOrg(20), tmp_path / "small", files=100)) == 20
