"""The catalog read API's own guarantees, on SQLite and PostgreSQL: who may read what (tokens,
Backstage user tokens, RBAC conditions applied to pages, totals, by-refs and facets alike),
keyset paging through ties in both directions, the search rows following the chunk writes and
the sweep after a refresh (and only the changed entities refreshed), and the `serve` command's
anonymous switch and refresh loop. Backstage conformance itself is
tests/web/test_catalog_api_differential.py (against the real Backstage)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from catalog_pipelines.services.catalog_read import CatalogReader, refresh_search
from catalog_pipelines.storage.db import ensure_schema, get_engine
from catalog_pipelines.web.catalog_api import ApiSecurity, create_catalog_app
from helpers import seed_catalog

SERVICE_TOKEN = "static-service-token-0123456789"
POLICY = {
    "roles": {
        "readers": {"members": ["user:default/root"], "permissions": ["catalog.entity.read"]},
        "owners": {"members": ["*"], "permissions": [{"permission": "catalog.entity.read", "conditions": {"rule": "IS_ENTITY_OWNER"}}]},
    }
}


def _entities() -> list[dict]:
    groups = [{"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": g},
               "spec": {"type": "team", "children": []}} for g in ("team-a", "team-b")]
    users = [{"apiVersion": "backstage.io/v1alpha1", "kind": "User", "metadata": {"name": u},
              "spec": {"memberOf": [g]}} for u, g in (("alice", "team-a"), ("bob", "team-b"), ("root", "team-b"))]
    components = [
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
         "metadata": {"name": f"svc-{i:02d}", "tags": ["python"] if i % 3 == 0 else ["java"]},
         "spec": {"type": ("service", "website", "library")[i % 3], "lifecycle": "production",
                  "owner": "team-a" if i < 8 else "team-b"}}
        for i in range(20)
    ]
    return groups + users + components


@pytest.fixture
def catalog(catalog_url):
    ensure_schema(get_engine(catalog_url))
    seed_catalog(catalog_url, _entities())
    refresh_search(get_engine(catalog_url))  # as the catalog_snapshot asset does after a cycle
    return catalog_url


def _client(url: str, security: ApiSecurity | None = None) -> TestClient:
    from catalog_pipelines.permissions import PolicyAuthorizer, catalog_org

    authorizer = PolicyAuthorizer.from_dict(POLICY, org=lambda: catalog_org(url))
    security = security or ApiSecurity({SERVICE_TOKEN: "backstage"})
    return TestClient(create_catalog_app(CatalogReader(get_engine(url), authorizer), security))


def _names(answer) -> list[str]:
    items = answer["items"] if isinstance(answer, dict) else answer
    return [e["metadata"]["name"] if e else None for e in items]


def test_requests_without_a_token_get_backstage_401_unless_anonymous_is_allowed(catalog):
    answer = _client(catalog).get("/api/catalog/entities/by-query")
    assert answer.status_code == 401
    assert answer.json() == {"error": {"name": "AuthenticationError", "message": "Missing credentials"},
                             "request": {"method": "GET", "url": "/api/catalog/entities/by-query"}, "response": {"statusCode": 401}}
    wrong = _client(catalog).get("/api/catalog/entities", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    anonymous = _client(catalog, ApiSecurity(allow_anonymous=True)).get("/api/catalog/entities/by-query")
    assert anonymous.status_code == 200 and anonymous.json()["totalItems"] == 25


def test_a_static_service_token_reads_the_whole_catalog(catalog):
    answer = _client(catalog).get("/api/catalog/entities/by-query", params={"limit": 1},
                                  headers={"Authorization": f"Bearer {SERVICE_TOKEN}"})
    assert answer.status_code == 200 and answer.json()["totalItems"] == 25


def test_is_entity_owner_filters_pages_totals_by_refs_and_facets_alike(catalog):
    """alice (team-a) owns svc-00..07 through her group; she sees exactly those, everywhere."""
    from catalog_pipelines.permissions import PolicyAuthorizer, catalog_org
    from catalog_pipelines.services.catalog_read import Caller, NotFoundError

    read = CatalogReader(get_engine(catalog), PolicyAuthorizer.from_dict(POLICY, org=lambda: catalog_org(catalog)))
    alice = Caller("user", "user:default/alice")
    page = read.query_entities(alice, {"filter": ["kind=component"], "orderField": ["metadata.name,asc"], "limit": ["3"]})
    assert page["totalItems"] == 8 and _names(page) == ["svc-00", "svc-01", "svc-02"]
    everything = read.query_entities(alice, {"limit": ["100"]})
    assert everything["totalItems"] == 8 and {e["spec"]["owner"] for e in everything["items"]} == {"team-a"}
    refs = read.by_refs(alice, {"entityRefs": ["component:default/svc-01", "component:default/svc-12", "user:default/alice"]}, {})
    assert _names(refs) == ["svc-01", None, None]
    facets = read.facets(alice, {"facet": ["spec.type", "relations.ownedBy"]})["facets"]
    assert sum(f["count"] for f in facets["spec.type"]) == 8
    assert facets["relations.ownedBy"] == [{"value": "group:default/team-a", "count": 8}]
    with pytest.raises(NotFoundError):
        read.by_name(alice, "component", "default", "svc-12")
    root = read.query_entities(Caller("user", "user:default/root"), {"limit": ["1"]})
    assert root["totalItems"] == 25
    stranger = read.query_entities(Caller("user", "user:default/nobody"), {"limit": ["5"]})
    assert stranger["totalItems"] == 0 and stranger["items"] == []


def test_backstage_user_tokens_are_verified_against_the_auth_backends_jwks(catalog):
    from test_usage_collector import FakeAuthBackend

    from catalog_pipelines.web.usage_collector import BackstageTokenVerifier

    backend = FakeAuthBackend()
    try:
        backend.new_key("k1")
        client = _client(catalog, ApiSecurity(verifier=BackstageTokenVerifier(backend.url)))
        bob = client.get("/api/catalog/entities/by-query", headers={"Authorization": f"Bearer {backend.sign('user:default/bob')}"})
        assert bob.status_code == 200 and bob.json()["totalItems"] == 12  # team-b's components
        expired = client.get("/api/catalog/entities/by-query",
                             headers={"Authorization": f"Bearer {backend.sign('user:default/bob', lifetime=-3600)}"})
        assert expired.status_code == 401 and expired.json()["error"]["name"] == "AuthenticationError"
    finally:
        backend.close()


def test_keyset_paging_walks_ties_forward_and_back_without_repeats(catalog):
    client = _client(catalog)
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    for order in ("asc", "desc"):
        params = {"filter": "kind=component", "orderField": f"spec.type,{order}", "limit": 3}
        page = client.get("/api/catalog/entities/by-query", params=params, headers=headers).json()
        forward = [_names(page)]
        while "nextCursor" in page["pageInfo"]:
            page = client.get("/api/catalog/entities/by-query", params={"cursor": page["pageInfo"]["nextCursor"], "limit": 3}, headers=headers).json()
            forward.append(_names(page))
        backward = []
        while "prevCursor" in page["pageInfo"]:
            page = client.get("/api/catalog/entities/by-query", params={"cursor": page["pageInfo"]["prevCursor"], "limit": 3}, headers=headers).json()
            backward.append(_names(page))
        walked = [n for p in forward for n in p]
        assert sorted(walked) == sorted(f"svc-{i:02d}" for i in range(20))  # each once
        types = ["service", "website", "library"]
        by_type = [types[int(n[-2:]) % 3] for n in walked]
        assert by_type == sorted(by_type, reverse=order == "desc")
        # Ties (7 services, ...) are broken by a stable key: the same order every time, and
        # the backward walk revisits exactly the forward pages.
        assert backward == forward[:-1][::-1]


def test_writes_answer_backstage_readonly_error(catalog):
    client = _client(catalog)
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    answer = client.post("/api/catalog/locations", json={"type": "url", "target": "https://x/catalog-info.yaml"}, headers=headers)
    assert answer.status_code == 403
    assert answer.json()["error"] == {"name": "NotAllowedError", "message": "This operation not allowed in readonly mode"}
    assert client.delete("/api/catalog/entities/by-uid/x", headers=headers).status_code == 403


def test_search_rows_follow_changed_entities_and_the_sweep_after_a_refresh(catalog):
    import sqlalchemy as sa

    from catalog_pipelines.services.catalog_read import Caller
    from catalog_pipelines.storage import schema
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.ledger import Ledger

    engine = get_engine(catalog)
    read = CatalogReader(engine)
    anyone = Caller("service", "test")
    ledger = Ledger(engine)
    ledger.close(ledger.open_ingestion("seed").id, status="complete")
    entities = _entities()
    entities[-1]["spec"]["type"] = "pipeline"  # svc-19 was a website
    del entities[3:5]  # bob and root disappear
    seed_catalog(catalog, entities)  # the next cycle of the same provider
    ingestion = ledger.open_ingestion("seed")
    result = CatalogStore(engine).sweep(provider="seed", ingestion_id=ingestion.id, cycle=ingestion.cycle,
                                        reject_removals_above_percentage=None, reject_empty_source_collections=True)
    assert result.removed == 2
    # The ingestion wrote no search rows: until the refresh, filters answer the previous catalog
    # (bodies and existence are current: removed entities are gone from pages already).
    assert _names(read.query_entities(anyone, {"filter": ["spec.type=pipeline"]})) == []
    assert _names(read.query_entities(anyone, {"filter": ["kind=user"]})) == ["alice"]
    figures = refresh_search(engine)
    assert (figures["entities_refreshed"], figures["entities_removed"]) == (1, 2)  # only what changed
    assert _names(read.query_entities(anyone, {"filter": ["spec.type=pipeline"]})) == ["svc-19"]
    assert "svc-19" not in _names(read.query_entities(anyone, {"filter": ["spec.type=website"]}))
    assert _names(read.query_entities(anyone, {"filter": ["kind=user"]})) == ["alice"]
    assert read.facets(anyone, {"facet": ["kind"]})["facets"]["kind"] == [
        {"value": "Component", "count": 20}, {"value": "Group", "count": 2}, {"value": "User", "count": 1}]
    with engine.connect() as conn:
        orphans = conn.execute(sa.select(sa.func.count()).select_from(schema.entity_search).where(
            ~schema.entity_search.c.ref.in_(sa.select(schema.entities.c.ref)))).scalar_one()
    assert orphans == 0
    assert refresh_search(engine)["entities_refreshed"] == 0  # idempotent


def test_refresh_rebuilds_rows_written_without_its_state(catalog):
    """A database whose search rows predate `entity_search_state` (or were lost) is rebuilt whole."""
    import sqlalchemy as sa

    from catalog_pipelines.services.catalog_read import Caller
    from catalog_pipelines.storage import schema

    engine = get_engine(catalog)
    with engine.begin() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(schema.entity_search)).scalar_one()
        conn.execute(schema.entity_search_state.delete())
        conn.execute(schema.entity_search.delete().where(schema.entity_search.c.key == "kind"))
    assert CatalogReader(engine).query_entities(Caller("service", "t"), {"filter": ["kind=user"]})["totalItems"] == 0
    assert refresh_search(engine)["entities_refreshed"] == 25
    assert refresh_search(engine)["entities_refreshed"] == 0
    assert CatalogReader(engine).query_entities(Caller("service", "t"), {"filter": ["kind=user"]})["totalItems"] == 3
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.entity_search)).scalar_one() == rows


def test_serves_refresh_loop_picks_up_a_new_cycle(catalog):
    import time

    from catalog_pipelines.services.catalog_read import Caller, SearchRefresher

    engine = get_engine(catalog)
    late = {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "late"},
            "spec": {"type": "pipeline", "lifecycle": "production", "owner": "team-a"}}
    seed_catalog(catalog, [late], provider="other")
    logged: list[str] = []
    refresher = SearchRefresher(engine, interval=0.05, log=logged.append).start()
    try:
        deadline = time.monotonic() + 30
        while not logged and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        refresher.stop()
    assert _names(CatalogReader(engine).query_entities(Caller("service", "t"), {"filter": ["spec.type=pipeline"]})) == ["late"]


def test_serve_refuses_to_start_without_callers_and_warns_about_anonymous(monkeypatch, tmp_path, caplog):
    import uvicorn
    from click.testing import CliRunner

    from catalog_pipelines.cli import main

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(kw))
    env = {"CATALOG_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "CATALOG_PIPELINES_CATALOG_API_TOKENS": "",
           "CATALOG_PIPELINES_BACKSTAGE_AUTH_URL": ""}
    refused = CliRunner().invoke(main, ["serve"], env=env)
    assert refused.exit_code == 2 and "no callers can authenticate" in refused.output
    with caplog.at_level("WARNING"):
        ok = CliRunner().invoke(main, ["serve", "--allow-anonymous", "--port", "7999"], env=env)
    assert ok.exit_code == 0, ok.output
    assert started == [{"host": "127.0.0.1", "port": 7999, "log_level": "info"}]
    assert any("--allow-anonymous" in r.message for r in caplog.records if r.levelname == "WARNING")


def test_a_first_refresh_of_a_large_catalog_builds_the_filter_indexes_after_its_rows(catalog, monkeypatch):
    """Above BUILD_ABOVE entities, a first refresh on PostgreSQL writes the rows without the two
    filter indexes and builds them after: the same rows, the same answers, both indexes back; an
    index missing when a refresh starts (a build interrupted) is created again."""
    import sqlalchemy as sa

    from catalog_pipelines.services.catalog_read import Caller
    from catalog_pipelines.storage import catalog_search, schema

    engine = get_engine(catalog)
    columns = [schema.entity_search.c[c] for c in catalog_search.COLUMNS]

    def rows() -> list[tuple]:
        with engine.connect() as conn:
            return conn.execute(sa.select(*columns).order_by(*columns[:2])).all()

    def indexes() -> set[str]:
        with engine.connect() as conn:
            return {i["name"] for i in sa.inspect(conn).get_indexes("entity_search")}

    before = rows()
    monkeypatch.setattr(catalog_search, "BUILD_ABOVE", 5)  # the catalog holds 25 entities
    with engine.begin() as conn:
        conn.execute(schema.entity_search_state.delete())  # a first refresh
    figures = refresh_search(engine)
    assert figures["entities_refreshed"] == 25 and rows() == before
    assert {"ix_entity_search_key_value", "ix_entity_search_facets"} <= indexes()
    assert (figures["index_build_seconds"] > 0) == (engine.dialect.name == "postgresql")
    assert CatalogReader(engine).query_entities(Caller("service", "t"), {"filter": ["kind=user"]})["totalItems"] == 3
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_entity_search_facets"))
        assert refresh_search(engine)["entities_refreshed"] == 0
        assert "ix_entity_search_facets" in indexes()
