"""The HTTP door (catalog_pipelines/web/admin.py): Backstage's paths and JSON shapes under
/api/catalog/incremental/, bearer-token identity (401), permissions (403, audited, nothing
changed), 404 bodies for unknown providers, and the pause/delay/halt additions reaching the
controls the state machine reads.
"""

from __future__ import annotations

import datetime as dt
import warnings

import pytest

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2 for its TestClient; httpx (a project dependency) works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from catalog_pipelines.web.admin import PREFIX, create_admin_app
from catalog_pipelines.ingestion import engine as machine
from catalog_pipelines.services.admin import IngestionAdmin
from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
from catalog_pipelines.ingestion.cycle import snapshot
from catalog_pipelines.permissions import INGESTION_MANAGE, INGESTION_READ, StaticPolicy
from catalog_pipelines.storage.audit import REFUSALS_ACTION, REFUSALS_PER_WINDOW, entries
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger
from tests.services.test_admin import Clock, ledger_state, write_chunk

# ######################################################################################## FIXTURES

ADMIN, READER, OUTSIDER = "user:default/alice", "user:default/bob", "user:default/eve"
TOKENS = {"admin-token": ADMIN, "reader-token": READER, "outsider-token": OUTSIDER}
POLICY = {
    "roles": {
        "admins": {"permissions": [INGESTION_READ, INGESTION_MANAGE], "members": [ADMIN]},
        "readers": {"permissions": [INGESTION_READ], "members": [READER]},
    }
}
AS_ADMIN = {"Authorization": "Bearer admin-token"}
AS_READER = {"Authorization": "Bearer reader-token"}
AS_OUTSIDER = {"Authorization": "Bearer outsider-token"}


@pytest.fixture
def engine(catalog_url):
    return get_engine(catalog_url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(engine, clock) -> TestClient:
    configs = [ProviderConfig("alpha", "synthetic"), ProviderConfig("beta", "synthetic")]
    admin = IngestionAdmin(engine, configs, StaticPolicy.from_dict(POLICY), channel="http", clock=clock)
    return TestClient(create_admin_app(admin, TOKENS))


def url(path: str) -> str:
    return PREFIX + path


# ########################################################################################### TESTS

# --------------------------------------------------------------------------- identity and access


# Every route and the operation its audit rows name.
ROUTES = [
    ("GET", "/health", "health", None), ("GET", "/providers", "providers", None),
    ("GET", "/providers/alpha", "status", "alpha"), ("GET", "/providers/alpha/marks", "marks", "alpha"),
    ("POST", "/providers/alpha/pause", "pause", "alpha"), ("POST", "/providers/alpha/resume", "resume", "alpha"),
    ("POST", "/providers/alpha/trigger", "trigger", "alpha"), ("POST", "/providers/alpha/start", "start", "alpha"),
    ("POST", "/providers/alpha/cancel", "cancel", "alpha"), ("DELETE", "/providers/alpha", "reset", "alpha"),
    ("DELETE", "/providers/alpha/marks", "clear_marks", "alpha"),
    ("POST", "/providers/alpha/delay?hours=2", "delay", "alpha"), ("POST", "/halt", "halt_all", None),
    ("POST", "/resume", "resume_all", None), ("POST", "/cleanup", "cleanup", None),
]


@pytest.mark.parametrize("headers,reason", [
    ({}, "no token"), ({"Authorization": "Bearer wrong"}, "unknown token"),
    ({"Authorization": "Basic admin-token"}, "no token"), ({"Authorization": "Bearer "}, "no token"),
])
def test_requests_without_a_known_bearer_token_get_401_change_nothing_and_are_audited(
        client, engine, clock, headers, reason):
    write_chunk(engine, "alpha", ["a1"], done=False)
    before = ledger_state(engine)
    for method, path, _, _ in ROUTES:
        response = client.request(method, url(path), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["name"] == "AuthenticationError"
        assert response.headers["www-authenticate"].startswith("Bearer")
        clock.advance(minutes=1)  # one refusal a minute: each gets its own row (more are only counted)
    assert ledger_state(engine) == before
    rows = {(e.action, e.target): e for e in entries(engine, action_prefix="ingestion.")}
    assert len(rows) == len(ROUTES)
    for method, path, operation, provider in ROUTES:
        row = rows[(f"ingestion.{operation}", f"ingestion-provider:{provider or '*'}")]
        assert (row.actor, row.outcome) == ("anonymous", "denied")
        assert (row.details["reason"], row.details["channel"], row.details["method"]) == (reason, "http", method)
        assert row.details["source"] == "testclient" and row.details["path"] == url(path.split("?")[0])
        assert "wrong" not in str(row.details) and "admin-token" not in str(row.details)


def test_a_flood_of_unauthenticated_requests_is_audited_within_the_bound_and_counted(client, engine, clock):
    sent = 0
    for minute in range(2):
        for i in range(500):
            headers = {"Authorization": f"Bearer guess-{i}"} if i % 2 else {}
            assert client.post(url("/providers/alpha/pause"), headers=headers).status_code == 401
            sent += 1
        clock.advance(minutes=1)
    rows = entries(engine)
    summaries = entries(engine, action=REFUSALS_ACTION)
    assert len(rows) <= 2 * (REFUSALS_PER_WINDOW + 1)
    assert sum(s.details["attempts"] for s in summaries) == sent == 1000
    assert sum(s.details["recorded"] for s in summaries) == len(rows) - len(summaries)
    assert {k for s in summaries for k in s.details["suppressed_by"]} == {
        "ingestion.pause no token testclient", "ingestion.pause unknown token testclient"}
    assert sum(n for s in summaries for n in s.details["suppressed_by"].values()) == sent - (len(rows) - len(summaries))


def test_a_valid_token_without_the_permission_gets_403_on_every_mutation_and_is_audited(client, engine, clock):
    for method, path, operation, provider in ROUTES[4:]:
        assert client.request(method, url(path), headers=AS_READER).status_code == 403
        clock.advance(minutes=1)
    denied = entries(engine, action_prefix="ingestion.")
    assert sorted(e.action for e in denied) == sorted(f"ingestion.{op}" for _, _, op, _ in ROUTES[4:])
    assert {(e.actor, e.outcome, e.details["reason"]) for e in denied} == {(READER, "denied", "no permission")}


@pytest.mark.parametrize(
    "method,path",
    [("POST", "/providers/alpha/pause"), ("POST", "/providers/alpha/trigger"), ("POST", "/providers/alpha/start"),
     ("POST", "/providers/alpha/cancel"), ("DELETE", "/providers/alpha"), ("DELETE", "/providers/alpha/marks"),
     ("POST", "/providers/alpha/delay?hours=2"), ("POST", "/halt"), ("POST", "/resume"), ("POST", "/cleanup")],
)
def test_a_reader_gets_403_for_mutations_which_change_nothing_and_are_audited(client, engine, method, path):
    write_chunk(engine, "alpha", ["a1"], done=False)
    before = ledger_state(engine)

    response = client.request(method, url(path), headers=AS_READER)

    assert response.status_code == 403
    body = response.json()
    assert body["error"]["name"] == "NotAllowedError" and body["response"] == {"statusCode": 403}
    assert ledger_state(engine) == before
    [row] = entries(engine, action_prefix="ingestion.")
    assert (row.actor, row.outcome, row.details["channel"], row.details["permission"]) == (
        READER, "denied", "http", INGESTION_MANAGE)


def test_a_caller_without_read_permission_gets_403_on_reads(client):
    for path in ("/health", "/providers", "/providers/alpha", "/providers/alpha/marks"):
        assert client.get(url(path), headers=AS_OUTSIDER).status_code == 403
    assert client.get(url("/health"), headers=AS_READER).status_code == 200


# --------------------------------------------------------------------------- Backstage's shapes


def test_health_and_providers_return_backstage_shapes(client):
    assert client.get(url("/health"), headers=AS_READER).json() == {"healthy": True}
    assert client.head(url("/health"), headers=AS_READER).status_code == 200
    assert client.get(url("/providers"), headers=AS_READER).json() == {"success": True, "providers": ["alpha", "beta"]}


def test_provider_status_returns_backstage_shapes_and_404_for_unknown(client, engine):
    body = client.get(url("/providers/alpha"), headers=AS_READER).json()
    assert body["success"] is True and body["status"] == {"current_action": "rest complete, waiting to start"}

    Ledger(engine).start_cycle("alpha")
    body = client.get(url("/providers/alpha"), headers=AS_READER).json()
    assert body["status"]["current_action"] == "bursting"
    assert dt.datetime.fromisoformat(body["status"]["next_action_at"]).tzinfo is not None
    assert body["last_error"] is None and body["details"]["provider"] == "alpha"

    missing = client.get(url("/providers/gamma"), headers=AS_READER)
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "status": {}, "last_error": "Provider 'gamma' not found"}


def test_trigger_start_cancel_return_backstage_messages(client, engine):
    for action in ("trigger", "start", "cancel"):
        response = client.post(url(f"/providers/alpha/{action}"), headers=AS_ADMIN)
        assert response.status_code == 200 and response.json()["success"] is True  # no open cycle: "restarting"

    write_chunk(engine, "alpha", ["a1"], done=False)
    assert client.post(url("/providers/alpha/trigger"), headers=AS_ADMIN).json() == {
        "success": True, "message": "alpha: Next action triggered."}
    assert client.post(url("/providers/alpha/start"), headers=AS_ADMIN).json() == {
        "success": True, "message": "alpha: Next cycle triggered."}
    assert client.post(url("/providers/alpha/cancel"), headers=AS_ADMIN).json()["message"].startswith(
        "alpha: Current ingestion canceled")

    missing = client.post(url("/providers/gamma/trigger"), headers=AS_ADMIN)
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Provider 'gamma' not found"}


def test_cancel_over_http_leads_to_a_new_cycle_at_the_next_decide(client, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=False)
    client.post(url("/providers/alpha/cancel"), headers=AS_ADMIN)
    decision = machine.decide(snapshot(Ledger(engine), "alpha"), IngestionOptions(), clock.now)
    assert decision.action == "start_cycle"


def test_delete_provider_purges_its_ledger_and_returns_backstage_counts(client, engine):
    write_chunk(engine, "alpha", ["a1", "a2"], done=True)

    body = client.delete(url("/providers/alpha"), headers=AS_ADMIN).json()

    assert body == {"provider": "alpha", "ingestionsDeleted": 1, "marksDeleted": 1, "markEntitiesDeleted": 2}
    [row] = Ledger(engine).history("alpha")
    assert (row.status, Ledger(engine).marks(row.id)) == ("resting", [])
    assert client.delete(url("/providers/gamma"), headers=AS_ADMIN).status_code == 404


def test_marks_get_and_delete_return_backstage_shapes(client, engine):
    assert client.get(url("/providers/alpha/marks"), headers=AS_READER).json() == {
        "success": True, "message": "No records yet (provider is restarting)"}
    write_chunk(engine, "alpha", ["a1", "a2"], done=False)

    body = client.get(url("/providers/alpha/marks"), headers=AS_READER).json()
    assert body["success"] is True
    [mark] = body["records"]
    assert {"id", "ingestion_id", "sequence", "cursor", "created_at"} <= set(mark)

    body = client.delete(url("/providers/alpha/marks"), headers=AS_ADMIN).json()
    assert body == {"success": True, "message": "Expired marks for provider 'alpha' removed.",
                    "deletions": {"deletions": {"markEntitiesDeleted": 0, "marksDeleted": 0, "ingestionsDeleted": 0}}}
    assert client.get(url("/providers/gamma/marks"), headers=AS_READER).json()["last_error"] == "Provider 'gamma' not found"


def test_cleanup_returns_backstage_counts(client, engine):
    write_chunk(engine, "alpha", ["a1"], done=True)
    body = client.post(url("/cleanup"), headers=AS_ADMIN).json()
    assert body == {"ingestionsDeleted": 1, "ingestionMarksDeleted": 1, "markEntitiesDeleted": 1}


# ------------------------------------------------------------------------ beyond Backstage


def test_pause_resume_delay_halt_and_resume_all_change_the_controls_the_engine_reads(client, engine, clock):
    ledger = Ledger(engine)
    ledger.start_cycle("alpha")

    def action(provider: str) -> str:
        return machine.decide(snapshot(ledger, provider), IngestionOptions(), clock.now).action

    assert client.post(url("/providers/alpha/pause"), headers=AS_ADMIN).json()["controls"]["paused"] is True
    assert action("alpha") == "wait"
    client.post(url("/providers/alpha/resume"), headers=AS_ADMIN)
    assert action("alpha") == "run_chunk"

    body = client.post(url("/providers/alpha/delay?hours=2"), headers=AS_ADMIN).json()
    assert dt.datetime.fromisoformat(body["controls"]["halted_until"]) == clock.now + dt.timedelta(hours=2)
    assert action("alpha") == "wait"
    client.post(url("/providers/alpha/resume"), headers=AS_ADMIN)

    body = client.post(url("/halt?hours=1"), headers=AS_ADMIN).json()
    assert body["providers"] == ["alpha", "beta"]
    assert (action("alpha"), action("beta")) == ("wait", "wait")
    assert client.post(url("/resume"), headers=AS_ADMIN).json()["resumed"] == ["alpha", "beta"]
    assert (action("alpha"), action("beta")) == ("run_chunk", "start_cycle")


def test_delay_defaults_to_24_hours_and_rejects_bad_hours_with_400(client, engine, clock):
    client.post(url("/providers/beta/delay"), headers=AS_ADMIN)
    assert Ledger(engine).controls("beta")["halted_until"] == clock.now + dt.timedelta(hours=24)
    for bad in ("abc", "0", "-3"):
        response = client.post(url(f"/providers/alpha/delay?hours={bad}"), headers=AS_ADMIN)
        assert response.status_code == 400 and response.json()["error"]["name"] == "InputError"
    assert Ledger(engine).controls("alpha")["halted_until"] is None


# ------------------------------------------------------------------------- through the real sensor


def test_http_operations_steer_the_real_sensor(catalog_url, dagster_instance):
    """Pause, resume, cancel, reset and trigger over HTTP, each followed by a real sensor tick
    (tests/cycle_harness.py: the sensor body against a real instance, runs launched in-process)."""
    import dagster as dg

    from catalog_pipelines.storage.catalog import set_clock
    from tests.cycle_harness import Harness

    config = ProviderConfig("org", "synthetic", params={"size": 300, "seed": 7},
                            options=IngestionOptions(chunk_size=100, burst_length=dt.timedelta(hours=1)))
    instance = dagster_instance
    harness = Harness(config, catalog_url, instance)
    try:
        admin = IngestionAdmin(harness.catalog.get_engine(), [config], StaticPolicy.from_dict(POLICY), channel="http")
        client = TestClient(create_admin_app(admin, TOKENS))
        ledger = harness.catalog.ledger()

        assert harness.step() == "chunk"
        client.post(url("/providers/org/pause"), headers=AS_ADMIN)
        assert harness.step() == "wait" and "paused" in harness.skips[-1]
        client.post(url("/providers/org/resume"), headers=AS_ADMIN)
        assert harness.step() == "chunk"

        first = ledger.open_ingestion("org").cycle
        client.post(url("/providers/org/cancel"), headers=AS_ADMIN)
        assert harness.step() == "chunk"  # the new cycle's first chunk: no parking
        assert ledger.open_ingestion("org").cycle == first + 1
        assert ledger.last_mark(ledger.open_ingestion("org").id).sequence == 0

        client.delete(url("/providers/org"), headers=AS_ADMIN)
        harness.advance(dt.timedelta(hours=1))
        assert harness.step() == "wait" and "resting" in harness.skips[-1]
        client.post(url("/providers/org/trigger"), headers=AS_ADMIN)
        assert harness.step() == "chunk"
    finally:
        set_clock(None)
