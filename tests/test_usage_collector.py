"""The HTTP collector: validation per event, batching, resends and late events over real HTTP
requests (Starlette's TestClient drives the ASGI app in-process); authentication (service tokens,
Backstage user tokens verified against a JWKS served on loopback), CORS, body and concurrency
limits, the /flush rate limit and the bounded audit of refusals."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest
from starlette.testclient import TestClient
from test_usage_store import stored_text

from analytics.usage_store import RawEventStore
from catalog_pipelines.usage_collector import CollectorSecurity, create_collector_app

KEY = b"k"
NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
SERVICE_TOKEN = "svc-0123456789abcdef"
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
SECURITY = CollectorSecurity(service_tokens={SERVICE_TOKEN: "backstage-analytics"})


def collector_app(raw_dir, security=SECURITY, **options):
    options = {"flush_events": 1000, "flush_seconds": 3600, "clock": lambda: NOW, **options}
    return create_collector_app(raw_dir, KEY, security=security, **options)


def ev(event_id: str, ts: str = "2025-03-12T09:00:00Z", **extra) -> dict:
    out = {
        "eventId": event_id, "timestamp": ts, "userEntityRef": "user:default/jane", "sessionId": "s",
        "action": "navigate", "subject": "/catalog", "context": {"pluginId": "catalog"},
    }
    out.update(extra)
    return out


@pytest.fixture
def client(tmp_path):
    with TestClient(collector_app(tmp_path / "raw"), headers=SERVICE) as c:
        yield c


def test_a_batch_lands_except_its_malformed_events_which_are_rejected_with_reasons(client, tmp_path):
    response = client.post("/events", json=[ev("a"), ev("b", action=None), ev("c", timestamp="soon"), ev("d")])
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert body["rejected_count"] == 2
    assert [(r["index"], r["event_id"], r["reasons"]) for r in body["rejected"]] == [
        (1, "b", ["action: required non-empty string"]),
        (2, "c", ["timestamp: 'soon' is not an ISO-8601 date-time"]),
    ]
    assert client.post("/flush").json() == {"written": 2}
    stats = client.get("/stats").json()
    assert (stats["accepted"], stats["rejected"], stats["rejected_by_field"]) == (2, 2, {"action": 1, "timestamp": 1})
    raw = RawEventStore(tmp_path / "raw")
    assert raw.compact_day(date(2025, 3, 12)).events == 2
    assert raw.rejected_on(NOW.date()) == 2


def test_a_batch_of_only_bad_events_is_unprocessable(client):
    response = client.post("/events", json={"events": [{"eventId": "x"}]})
    assert response.status_code == 422
    assert response.json()["accepted"] == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"[]", 400), (b"{not json", 400), (b'{"events": 3}', 400), (None, 400), (b"[" + b"{}," * 2_000_000 + b"{}]", 413)],
)
def test_batches_must_hold_1_to_100_events(client, body, status):
    if body is None:
        body = b"[" + b",".join([b"{}"] * 101) + b"]"
    assert client.post("/events", content=body).status_code == status


def test_resent_batches_and_late_events_count_once_in_their_own_day(client, tmp_path):
    batch = [ev("a"), ev("b")]
    client.post("/events", json=batch)
    client.post("/events", json=batch)  # the sender timed out and retried
    client.post("/events", json=[ev("late", ts="2025-03-09T22:00:00Z")])
    client.post("/flush")
    raw = RawEventStore(tmp_path / "raw")
    assert raw.days() == [date(2025, 3, 9), date(2025, 3, 12)]
    today = raw.compact_day(date(2025, 3, 12))
    assert (today.events, today.duplicates) == (2, 2)
    assert raw.compact_day(date(2025, 3, 9)).late_events == 1


def test_the_buffer_is_written_when_full_and_on_shutdown(tmp_path):
    app = collector_app(tmp_path / "raw", flush_events=3)
    raw = RawEventStore(tmp_path / "raw")
    with TestClient(app, headers=SERVICE) as c:
        c.post("/events", json=[ev("a"), ev("b")])
        assert raw.parts(date(2025, 3, 12)) == []  # buffered
        c.post("/events", json=[ev("c"), ev("d")])
        assert len(raw.parts(date(2025, 3, 12))) == 1  # 4 >= 3: written
        c.post("/events", json=[ev("e")])
    # leaving the client runs the lifespan shutdown, which writes what is left
    assert raw.compact_day(date(2025, 3, 12)).events == 5


def test_a_quiet_buffer_is_written_after_flush_seconds(tmp_path):
    app = collector_app(tmp_path / "raw", flush_seconds=0.2)
    raw = RawEventStore(tmp_path / "raw")
    with TestClient(app, headers=SERVICE) as c:
        c.post("/events", json=[ev("a")])
        deadline = time.monotonic() + 5
        while not raw.parts(date(2025, 3, 12)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert raw.parts(date(2025, 3, 12)), "the background flush did not run"
        assert c.get("/stats").json()["buffered"] == 0


def test_raw_user_refs_never_reach_disk(client, tmp_path):
    # Parquet pages are compressed: the files are decoded before looking (their bytes would hide it).
    client.post("/events", json=[ev("a", userEntityRef="user:default/very.secret.person"), ev("b", subject="/catalog/default/user/very.secret.person")])
    client.post("/flush")
    assert "very.secret.person" not in stored_text(tmp_path / "raw")
