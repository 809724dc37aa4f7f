"""BackstageApiProvider and our relation model against a real Backstage catalog backend.

The peer (`shared/tools/backstage-peer`, started by `tests/peer.py`) runs Backstage 1.45's own
catalog over the example catalog and serves 61 entities: 59 fixture entities plus 2 Locations it
generates for its config locations; it rejects 7 fixture entities (see its README).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest
import yaml

from catalog_pipelines.model import derive_relations, process_entity
from catalog_pipelines.model.entity import ProcessedEntity, RawEntity
from catalog_pipelines.model.refs import canonical_ref, entity_ref_of
from catalog_pipelines.providers.backstage_api import BackstageApiProvider
from catalog_pipelines.providers.base import Page, ProviderError, WalkInDoubt
from peer import EXPECTED_TOTAL, KNOWN_REJECTED, BackstagePeer, backstage_peer  # noqa: F401 (fixture)

pytestmark = pytest.mark.peer

PAGE_SIZE = 7
GENERATED_LOCATION = re.compile(r"^location:default/generated-[0-9a-f]{40}$")


def walk(provider: BackstageApiProvider, cursor=None) -> list[Page]:
    pages = []
    with provider.around():
        while True:
            page = provider.next(cursor)
            pages.append(page)
            if page.done:
                return pages
            cursor = json.loads(json.dumps(page.cursor))
            assert len(pages) < 1000, "provider never reported done"


def provider_for(peer: BackstagePeer, **options) -> BackstageApiProvider:
    options.setdefault("token", peer.token)
    options.setdefault("page_size", PAGE_SIZE)
    return BackstageApiProvider("backstage-peer", peer.base_url, **options)


@pytest.fixture(scope="module")
def served(backstage_peer: BackstagePeer) -> tuple[BackstageApiProvider, list[Page], list[RawEntity]]:
    provider = provider_for(backstage_peer, keep_server_relations=True)
    pages = walk(provider)
    return provider, pages, [e for p in pages for e in p.entities]


def test_provider_pages_through_real_backstage_and_gets_every_entity_exactly_once(served):
    _, pages, entities = served
    refs = [entity_ref_of(e.entity) for e in entities]
    assert len(entities) == EXPECTED_TOTAL
    assert len(set(refs)) == EXPECTED_TOTAL, [r for r, n in Counter(refs).items() if n > 1]
    assert len(pages) == -(-EXPECTED_TOTAL // PAGE_SIZE)  # no empty trailing page
    assert [p.total for p in pages] == [EXPECTED_TOTAL] * len(pages)
    assert [len(p.entities) for p in pages[:-1]] == [PAGE_SIZE] * (len(pages) - 1)
    assert not any(p.rejections for p in pages)


def test_server_managed_fields_of_real_entities_are_stripped(served):
    _, _, entities = served
    for raw in entities:
        assert "relations" not in raw.entity and "status" not in raw.entity
        assert not {"uid", "etag", "generation"} & set(raw.entity["metadata"])
        assert raw.entity["metadata"]["namespace"]  # the server fills it in; keep it


def test_every_entity_location_resolves_to_that_entity_on_real_backstage(served, backstage_peer):
    _, _, entities = served
    with httpx.Client(headers=backstage_peer.headers, timeout=10) as client:
        for raw in entities:
            response = client.get(raw.location.removeprefix("url:"))
            assert response.status_code == 200, raw.location
            assert entity_ref_of(response.json()) == entity_ref_of(raw.entity)


def test_our_relations_match_backstages_for_every_served_entity(served):
    """Backstage lists on entity E every relation whose *source* is E, wherever it came from: a
    group's ownerOf comes from a component's spec.owner, a group's hasMember from a user's
    spec.memberOf. So derive over all served entities, group by source, and compare per entity."""
    provider, _, entities = served
    ours: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for raw in entities:
        for relation in derive_relations(raw.entity):
            ours[relation.source].add((relation.type, relation.target))
    theirs = {
        ref: {(r["type"], r["targetRef"].lower()) for r in relations} for ref, relations in provider.server_relations.items()
    }
    assert set(theirs) == {entity_ref_of(e.entity) for e in entities}

    differences = {
        ref: {"only_ours": sorted(ours.get(ref, set()) - theirs[ref]), "only_backstage": sorted(theirs[ref] - ours.get(ref, set()))}
        for ref in theirs
        if ours.get(ref, set()) != theirs[ref]
    }
    assert differences == {}
    # What we derive beyond that has a source Backstage does not serve: the reverse side of a
    # relation to an entity it rejected (e.g. apiProvidedBy on a rejected API). Backstage keeps
    # such rows too, with no entity to show them on.
    assert set(ours) - set(theirs) <= set(KNOWN_REJECTED)
    # The comparison must have had something to compare, including relations from other entities.
    assert sum(len(v) for v in theirs.values()) >= 100
    assert ("hasMember", "user:development/guest") in theirs["group:default/team-a"]


def test_every_entity_backstage_accepted_passes_our_validation(served):
    _, _, entities = served
    results = [process_entity(RawEntity(json.loads(json.dumps(raw.entity)), raw.location)) for raw in entities]
    rejected = [r.to_dict() for r in results if not isinstance(r, ProcessedEntity)]
    assert rejected == []


def fixture_entities_reachable_from_the_roots(examples: Path) -> dict[str, dict]:
    """Follow Location targets from the peer's two config locations, as Backstage does."""
    found: dict[str, dict] = {}
    seen: set[Path] = set()

    def visit(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or "kind" not in doc:
                continue
            meta = doc.get("metadata") or {}
            found[canonical_ref(doc["kind"], meta.get("namespace"), meta["name"])] = doc
            if doc["kind"] == "Location":
                spec = doc.get("spec") or {}
                for target in [spec.get("target"), *(spec.get("targets") or [])]:
                    if target:
                        visit(path.parent / target)

    visit(examples / "all.yaml")
    visit(examples / "acme-corp.yaml")
    return found


def test_the_fixture_entities_backstage_rejects_are_absent_and_everything_else_is_served(served, backstage_peer):
    _, _, entities = served
    served_refs = {entity_ref_of(e.entity) for e in entities}
    reachable = fixture_entities_reachable_from_the_roots(backstage_peer.examples_dir)
    assert len(reachable) == 66
    assert set(KNOWN_REJECTED) <= set(reachable)

    assert served_refs.isdisjoint(KNOWN_REJECTED)
    assert set(reachable) - served_refs == set(KNOWN_REJECTED)
    generated = served_refs - set(reachable)
    assert len(generated) == 2 and all(GENERATED_LOCATION.match(r) for r in generated), generated

    log = backstage_peer.log_text()
    with httpx.Client(headers=backstage_peer.headers, timeout=10) as client:
        for ref in KNOWN_REJECTED:
            kind, _, rest = ref.partition(":")
            assert client.get(f"{backstage_peer.base_url}/api/catalog/entities/by-name/{kind}/{rest}").status_code == 404
            assert f"Rejected {ref}:" in log, f"the peer did not log why it rejected {ref}"


def test_resume_in_a_fresh_provider_from_a_json_cursor_against_real_backstage(backstage_peer):
    first = provider_for(backstage_peer)
    with first.around():
        p1 = first.next(None)
        p2 = first.next(p1.cursor)
    stored = json.dumps(p2.cursor)
    rest = walk(provider_for(backstage_peer), cursor=json.loads(stored))
    refs = [entity_ref_of(e.entity) for p in [p1, p2, *rest] for e in p.entities]
    assert len(refs) == EXPECTED_TOTAL and len(set(refs)) == EXPECTED_TOTAL


def test_order_and_filter_given_on_the_first_page_hold_for_the_whole_walk_on_real_backstage(backstage_peer):
    by_name = [e for p in walk(provider_for(backstage_peer, order_field="metadata.name,asc")) for e in p.entities]
    names = [e.entity["metadata"]["name"].lower() for e in by_name]
    assert len(names) == EXPECTED_TOTAL and names == sorted(names)

    users_pages = walk(provider_for(backstage_peer, page_size=5, filter="kind=user"))
    users = [e for p in users_pages for e in p.entities]
    assert {e.entity["kind"] for e in users} == {"User"}
    assert len(users) == 17 and users_pages[0].total == 17


def test_wrong_token_on_real_backstage_is_a_clear_provider_error_without_retries(backstage_peer):
    sleeps: list[float] = []
    provider = provider_for(backstage_peer, token="not-the-token", sleep=sleeps.append)
    with pytest.raises(ProviderError, match=r"HTTP 401 Unauthorized: the bearer token is missing or wrong"), provider.around():
        provider.next(None)
    assert sleeps == []


def test_a_cursor_real_backstage_refuses_puts_the_walk_in_doubt_without_retries(backstage_peer):
    provider = provider_for(backstage_peer, sleep=lambda s: pytest.fail("a 400 must not be retried"))
    walk_state = {"head": None, "total": EXPECTED_TOTAL, "pages": 1, "recent": []}
    with pytest.raises(WalkInDoubt, match=r"no longer honours the stored cursor.*HTTP 400 .*InputError: Malformed cursor"), \
            provider.around():
        provider.next({"next": "bm90LWEtY3Vyc29y", "walk": walk_state})


def test_a_walk_over_real_backstage_ends_with_a_head_check_that_finds_nothing_changed(backstage_peer):
    pages = walk(provider_for(backstage_peer, page_size=10))
    assert pages[-1].done and pages[-1].doubt is None and pages[-1].total == EXPECTED_TOTAL


def test_real_backstage_confirms_which_removal_candidates_it_still_holds(served, backstage_peer):
    _, _, entities = served
    live = sorted({entity_ref_of(e.entity) for e in entities})[:250]  # more than one by-refs batch
    gone = ["component:default/no-such-component", "group:other/nobody"]
    provider = provider_for(backstage_peer)
    assert provider.still_present(live + gone) == set(live)


@pytest.mark.timeout(300)
def test_real_backstage_restarted_on_a_fresh_database_mid_walk_is_never_trusted(backstage_peer):
    """The peer keeps its catalog in memory: a restart is a fresh database with new uids (and so
    another order). A walk resumed from a cursor of the old process must not end trusted."""
    from helpers import free_port
    from peer import start_peer

    port = free_port()
    old = start_peer(port=port)
    try:
        first = provider_for(old, page_size=10)
        with first.around():
            p1 = first.next(None)
            p2 = first.next(p1.cursor)
        stored = json.loads(json.dumps(p2.cursor))
    finally:
        old.stop()
    new = start_peer(port=port)
    try:
        resumed = provider_for(new, page_size=10)
        try:
            rest = walk(resumed, cursor=stored)
        except WalkInDoubt:
            return  # the new process refused the old cursor, or the walk went wrong: restarted
        assert rest[-1].doubt is not None and "changed during the walk" in rest[-1].doubt
    finally:
        new.stop()
