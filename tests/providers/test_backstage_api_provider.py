"""BackstageApiProvider against a local fake of the by-query API (tests/backstage_fake.py)."""

from __future__ import annotations

import email.utils
import json
import math
import random
import socket
from collections import Counter

import httpx
import pytest

from backstage_fake import FakeBackstage, Fault, entity
from catalog_pipelines.model.entity import RawEntity, Rejection
from catalog_pipelines.providers.backstage_api import BackstageApiProvider
from catalog_pipelines.providers.base import EntityProvider, Page, ProviderError, WalkInDoubt


def make_items(n: int) -> list[dict]:
    kinds = ("Component", "API", "Group", "User", "System")
    return [entity(kinds[i % len(kinds)], f"item-{i:04d}", owner="team-a") for i in range(n)]


class RecordingSleep:
    """Stands in for time.sleep: records the delays the provider asked for, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def provider_for(fake: FakeBackstage, **options) -> BackstageApiProvider:
    options.setdefault("token", fake.token)
    options.setdefault("sleep", RecordingSleep())
    options.setdefault("rng", random.Random(7))
    return BackstageApiProvider("backstage-test", fake.base_url, **options)


def walk(provider: BackstageApiProvider, cursor=None, max_pages: int = 10_000) -> tuple[list[Page], list[RawEntity]]:
    """Call next() until done, as the engine would, JSON round-tripping every cursor."""
    pages: list[Page] = []
    with provider.around():
        for _ in range(max_pages):
            page = provider.next(cursor)
            pages.append(page)
            if page.done:
                break
            cursor = json.loads(json.dumps(page.cursor))
        else:
            raise AssertionError("provider never reported done")
    return pages, [e for p in pages for e in p.entities]


def names(entities: list[RawEntity]) -> list[str]:
    return [e.entity["metadata"]["name"] for e in entities]


def test_provider_satisfies_the_provider_protocol():
    assert isinstance(BackstageApiProvider("p", "http://127.0.0.1:1"), EntityProvider)


@pytest.mark.parametrize("n, page_size", [(0, 5), (1, 5), (23, 5), (25, 5), (25, 25), (25, 100)])
def test_paging_yields_every_entity_exactly_once_and_ends_without_an_empty_page(n, page_size):
    items = make_items(n)
    with FakeBackstage(items) as fake:
        pages, got = walk(provider_for(fake, page_size=page_size))
    assert Counter(names(got)) == Counter(e["metadata"]["name"] for e in items)
    assert len(pages) == max(1, math.ceil(n / page_size))
    assert all(p.total == n for p in pages)
    assert pages[-1].done and pages[-1].cursor is None
    assert not any(p.done for p in pages[:-1])


def test_first_page_sends_limit_filter_and_order_and_later_pages_send_only_cursor_and_limit():
    items = make_items(12)
    with FakeBackstage(items) as fake:
        provider = provider_for(fake, page_size=2, filter=["kind=component", "kind=user"], order_field="metadata.name,desc")
        pages, got = walk(provider)
        requests = list(fake.requests)
    # The last request is the fresh look at the head of the source that ends a multi-page walk:
    # the first page's query again, with limit=1.
    first, later, probe = requests[0], requests[1:-1], requests[-1]
    assert first.param("limit") == ["2"]
    assert first.param("filter") == ["kind=component", "kind=user"]
    assert first.param("orderField") == ["metadata.name,desc"]
    assert first.param("cursor") == []
    assert later and all(r.param("cursor") and r.param("limit") == ["2"] for r in later)
    assert not any(r.param("filter") or r.param("orderField") for r in later)
    assert probe.param("limit") == ["1"] and probe.param("cursor") == []
    assert probe.param("filter") == first.param("filter") and probe.param("orderField") == first.param("orderField")
    # The filter and order travelled inside the server cursor: only components and users, name descending.
    expected = [e["metadata"]["name"] for e in items if e["kind"] in ("Component", "User")]
    assert names(got) == sorted(expected, reverse=True)
    assert pages[0].total == len(expected)


def test_cursor_is_plain_json_wrapping_the_servers_opaque_cursor():
    with FakeBackstage(make_items(10)) as fake:
        provider = provider_for(fake, page_size=4)
        with provider.around():
            page = provider.next(None)
            provider.next(json.loads(json.dumps(page.cursor)))
        second_request_cursor = fake.requests[-1].param("cursor")
    assert set(page.cursor) == {"next", "walk"} and isinstance(page.cursor["next"], str)
    # The walk state is constant in size: the first entity's uid, the total, pages, recent cursors.
    assert page.cursor["walk"]["head"] == "uid-component-default-item-0000"
    assert page.cursor["walk"]["total"] == 10 and page.cursor["walk"]["pages"] == 1
    assert second_request_cursor == [page.cursor["next"]]


def test_resume_from_a_json_round_tripped_cursor_in_a_fresh_provider_continues_where_it_left_off():
    items = make_items(30)
    with FakeBackstage(items) as fake:
        first = provider_for(fake, page_size=7)
        with first.around():
            p1 = first.next(None)
            p2 = first.next(p1.cursor)
        stored = json.dumps(p2.cursor)  # what the ledger keeps between Dagster runs
        del first
        _, rest = walk(provider_for(fake, page_size=7), cursor=json.loads(stored))
    got = names(p1.entities) + names(p2.entities) + names(rest)
    assert got == [e["metadata"]["name"] for e in items]


def test_resume_accepts_a_cursor_stored_as_json_text():
    with FakeBackstage(make_items(10)) as fake:
        provider = provider_for(fake, page_size=6)
        with provider.around():
            p1 = provider.next(None)
            p2 = provider.next(json.dumps(p1.cursor))
    assert names(p2.entities) == [f"item-{i:04d}" for i in range(6, 10)] and p2.done


def test_server_managed_fields_are_stripped_and_the_rest_is_kept():
    item = entity("Component", "svc", owner="team-a", type="service", lifecycle="production")
    item["metadata"].update(generation=3, annotations={"backstage.io/managed-by-location": "file:/x.yaml"}, tags=["a"])
    item["relations"] = [{"type": "ownedBy", "targetRef": "group:default/team-a"}]
    item["status"] = {"items": []}
    with FakeBackstage([item]) as fake:
        _, got = walk(provider_for(fake))
    body = got[0].entity
    assert "relations" not in body and "status" not in body
    assert body["metadata"] == {
        "name": "svc",
        "namespace": "default",
        "annotations": {"backstage.io/managed-by-location": "file:/x.yaml"},
        "tags": ["a"],
    }
    assert body["spec"] == {"owner": "team-a", "type": "service", "lifecycle": "production"}


def test_keep_server_relations_records_backstages_relations_by_canonical_ref():
    a = entity("Component", "Svc-A", namespace="Prod", owner="team-a")
    a["relations"] = [{"type": "ownedBy", "targetRef": "group:default/team-a"}]
    b = entity("Group", "team-a")
    b["relations"] = [{"type": "ownerOf", "targetRef": "component:Prod/Svc-A"}]
    with FakeBackstage([a, b]) as fake:
        keeping = provider_for(fake, keep_server_relations=True)
        _, got = walk(keeping)
        plain = provider_for(fake)
        walk(plain)
    assert all("relations" not in e.entity for e in got)
    assert keeping.server_relations == {
        "component:prod/svc-a": [{"type": "ownedBy", "targetRef": "group:default/team-a"}],
        "group:default/team-a": [{"type": "ownerOf", "targetRef": "component:Prod/Svc-A"}],
    }
    assert plain.server_relations == {}


def test_each_entity_location_is_its_by_name_url_and_resolves_on_the_server():
    items = [entity("Component", "svc"), entity("User", "guest", namespace="development")]
    with FakeBackstage(items) as fake:
        _, got = walk(provider_for(fake))
        bodies = [httpx.get(e.location.removeprefix("url:"), headers={"Authorization": f"Bearer {fake.token}"}).json() for e in got]
        base = fake.base_url
    assert [e.location for e in got] == [
        f"url:{base}/api/catalog/entities/by-name/component/default/svc",
        f"url:{base}/api/catalog/entities/by-name/user/development/guest",
    ]
    assert [b["metadata"]["name"] for b in bodies] == ["svc", "guest"]


def test_an_item_that_is_not_an_object_becomes_a_rejection_and_the_rest_of_the_page_still_arrives():
    items = [entity("Component", "a"), "not-an-entity", entity("Component", "b"), [1, 2], None]
    with FakeBackstage(items) as fake:
        pages, got = walk(provider_for(fake, page_size=10))
    assert names(got) == ["a", "b"]
    rejections = pages[0].rejections
    assert [r.doc_index for r in rejections] == [1, 3, 4]
    assert all(isinstance(r, Rejection) and r.rule == "object" and "by-query" in r.location for r in rejections)
    assert "str" in rejections[0].message and "'not-an-entity'" in rejections[0].message


def test_an_object_without_kind_or_name_is_passed_on_for_validation_to_reject():
    with FakeBackstage([{"metadata": {}}]) as fake:
        _, got = walk(provider_for(fake))
    assert got[0].entity == {"metadata": {}}
    assert got[0].location.endswith("/api/catalog/entities/by-query")


@pytest.mark.parametrize("kind", ["500", "503", "timeout"])
def test_a_transient_failure_is_retried_with_backoff_and_every_entity_arrives_once(kind):
    items = make_items(20)
    faults = {n: Fault(kind, seconds=0.5) for n in (2, 3, 5)}
    sleep = RecordingSleep()
    with FakeBackstage(items, faults=faults) as fake:
        pages, got = walk(provider_for(fake, page_size=6, timeout=0.2, sleep=sleep, backoff_base=0.5))
        outcomes = [r.outcome for r in fake.requests]
    assert Counter(names(got)) == Counter(e["metadata"]["name"] for e in items) and len(got) == 20
    # Four pages, then the fresh look at the source's head that ends a multi-page walk.
    assert outcomes == ["ok", kind, kind, "ok", kind, "ok", "ok", "ok"]
    # Page 2 needed two retries (backoff steps 1 and 2), page 3 one (step 1); equal jitter keeps
    # each delay between half and all of base * 2**(retry - 1).
    assert len(sleep.delays) == 3
    for delay, ceiling in zip(sleep.delays, (0.5, 1.0, 0.5)):
        assert ceiling / 2 <= delay <= ceiling


def test_429_retry_after_in_seconds_is_honoured_exactly():
    sleep = RecordingSleep()
    faults = {1: Fault("429", retry_after="7"), 3: Fault("429", retry_after="0")}
    with FakeBackstage(make_items(8), faults=faults) as fake:
        _, got = walk(provider_for(fake, page_size=5, sleep=sleep))
    assert sleep.delays == [7.0, 0.0]
    assert len(got) == 8


def test_429_retry_after_as_an_http_date_is_turned_into_a_delay_from_now():
    now = 1_700_000_000.0
    sleep = RecordingSleep()
    when = email.utils.formatdate(now + 42, usegmt=True)
    with FakeBackstage(make_items(3), faults={1: Fault("429", retry_after=when)}) as fake:
        _, got = walk(provider_for(fake, sleep=sleep, clock=lambda: now))
    assert sleep.delays == [42.0]
    assert len(got) == 3


def test_429_without_retry_after_falls_back_to_exponential_backoff():
    sleep = RecordingSleep()
    with FakeBackstage(make_items(3), faults={1: Fault("429", retry_after=None)}) as fake:
        walk(provider_for(fake, sleep=sleep, backoff_base=2))
    assert len(sleep.delays) == 1 and 1.0 <= sleep.delays[0] <= 2.0


def test_429_asking_for_longer_than_max_retry_after_fails_at_once_for_the_engine_to_back_off():
    sleep = RecordingSleep()
    with FakeBackstage(make_items(3), faults={1: Fault("429", retry_after="3600")}) as fake:
        provider = provider_for(fake, sleep=sleep, max_retry_after=60)
        with pytest.raises(ProviderError, match="retry after 3600 s"), provider.around():
            provider.next(None)
        assert len(fake.requests) == 1
    assert sleep.delays == []


def test_persistent_5xx_raises_provider_error_naming_url_status_and_attempts():
    sleep = RecordingSleep()
    with FakeBackstage(make_items(3), fault_rate=1.0, fault_kinds=("503",)) as fake:
        provider = provider_for(fake, sleep=sleep, max_retries=3, backoff_base=1, backoff_max=1.5)
        with pytest.raises(ProviderError) as info, provider.around():
            provider.next(None)
        requests = len(fake.requests)
        url = f"{fake.base_url}/api/catalog/entities/by-query"
    message = str(info.value)
    assert url in message and "503" in message and "after 4 attempts" in message
    assert requests == 4
    # Three waits between four attempts, the last capped by backoff_max.
    assert len(sleep.delays) == 3
    assert 0.5 <= sleep.delays[0] <= 1.0 and 0.75 <= sleep.delays[2] <= 1.5


def test_connection_refused_is_retried_then_raises_provider_error():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleep = RecordingSleep()
    provider = BackstageApiProvider("down", f"http://127.0.0.1:{port}", token="t", max_retries=2, sleep=sleep)
    with pytest.raises(ProviderError, match=r"after 3 attempts; last: ConnectError"), provider.around():
        provider.next(None)
    assert len(sleep.delays) == 2


def test_seeded_random_faults_of_every_kind_still_deliver_every_entity_exactly_once():
    items = make_items(150)
    sleep = RecordingSleep()
    with FakeBackstage(items, fault_rate=0.35, seed=11, timeout_seconds=0.6) as fake:
        pages, got = walk(provider_for(fake, page_size=9, timeout=0.15, max_retries=12, sleep=sleep))
        outcomes = Counter(r.outcome for r in fake.requests)
    assert Counter(names(got)) == Counter(e["metadata"]["name"] for e in items) and len(got) == 150
    assert len(pages) == math.ceil(150 / 9)
    # The seed must actually have exercised each kind of fault, or this test proves little.
    assert {k for k in outcomes if k != "ok"} == {"500", "503", "429", "timeout"}
    assert outcomes["ok"] == len(pages) + 1  # every page, and the head check at the end
    assert len(sleep.delays) == sum(outcomes.values()) - outcomes["ok"]


def test_missing_token_gives_a_clear_401_error_without_retrying(monkeypatch):
    monkeypatch.delenv("BACKSTAGE_TOKEN", raising=False)
    sleep = RecordingSleep()
    with FakeBackstage(make_items(3)) as fake:
        provider = BackstageApiProvider("p", fake.base_url, sleep=sleep)
        with pytest.raises(ProviderError) as info, provider.around():
            provider.next(None)
        assert len(fake.requests) == 1
    assert "401" in str(info.value) and "token is missing or wrong" in str(info.value)
    assert "$BACKSTAGE_TOKEN is not set" in str(info.value)
    assert sleep.delays == []


def test_wrong_token_gives_a_401_error_saying_the_token_was_rejected():
    with FakeBackstage(make_items(3)) as fake:
        provider = provider_for(fake, token="not-the-token")
        with pytest.raises(ProviderError, match="401.*token passed to the provider was rejected"), provider.around():
            provider.next(None)


def test_token_is_read_from_the_named_environment_variable(monkeypatch):
    with FakeBackstage(make_items(3)) as fake:
        monkeypatch.setenv("MY_BACKSTAGE_TOKEN", fake.token)
        provider = BackstageApiProvider("p", fake.base_url, token_env="MY_BACKSTAGE_TOKEN")
        _, got = walk(provider)
        assert fake.requests[0].authorization == f"Bearer {fake.token}"
    assert len(got) == 3


def test_explicit_token_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("BACKSTAGE_TOKEN", "stale-token")
    with FakeBackstage(make_items(2)) as fake:
        _, got = walk(BackstageApiProvider("p", fake.base_url, token=fake.token))
    assert len(got) == 2


def test_a_rejected_cursor_puts_the_walk_in_doubt_and_is_not_retried():
    sleep = RecordingSleep()
    walk_state = {"head": None, "total": 3, "pages": 1, "recent": []}
    with FakeBackstage(make_items(3)) as fake:
        provider = provider_for(fake, sleep=sleep)
        with pytest.raises(WalkInDoubt, match=r"no longer honours the stored cursor.*HTTP 400 .*Malformed cursor"), provider.around():
            provider.next({"next": "%%% not base64 %%%", "walk": walk_state})
        assert len(fake.requests) == 1
    assert sleep.delays == []


def test_a_cursor_of_the_wrong_shape_is_refused_before_any_request():
    with FakeBackstage(make_items(3)) as fake:
        provider = provider_for(fake)
        with pytest.raises(ProviderError, match='expected a cursor like {"next"'):
            provider.next({"offset": 3})
        assert fake.requests == []


def test_next_works_outside_around_with_a_short_lived_client():
    with FakeBackstage(make_items(4)) as fake:
        page = provider_for(fake, page_size=10).next(None)
    assert len(page.entities) == 4 and page.done


def test_page_size_below_one_is_refused():
    # limit=0 would make Backstage answer with nothing and no cursor: a walk that silently ends empty.
    with pytest.raises(ValueError, match="page_size"):
        BackstageApiProvider("p", "http://127.0.0.1:1", page_size=0)
