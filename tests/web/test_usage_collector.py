"""The HTTP collector: validation per event, batching, resends and late events over real HTTP
requests (Starlette's TestClient drives the ASGI app in-process); authentication (service tokens,
Backstage user tokens verified against a JWKS served on loopback), CORS, body and concurrency
limits, the /flush rate limit and the bounded audit of refusals."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest
from starlette.testclient import TestClient
from tests.storage.test_usage_store import stored_text

from catalog_pipelines.storage.usage_store import RawEventStore
from catalog_pipelines.web.usage_collector import CollectorSecurity, create_collector_app

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


# --- authentication: a Backstage auth backend's JWKS, served on loopback ------------------------

import asyncio  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

import jwt  # noqa: E402
import orjson  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from analytics.pseudonymise import pseudonymise  # noqa: E402
from catalog_pipelines.web.usage_collector import BackstageTokenVerifier  # noqa: E402


class FakeAuthBackend:
    """`<url>/.well-known/jwks.json` as Backstage's auth backend serves it: EC P-256 public keys,
    each with a key id and alg ES256. `sign` issues tokens like its TokenFactory."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.published: set[str] = set()
        self.requests = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                backend.requests += 1
                if self.path != "/api/auth/.well-known/jwks.json":
                    self.send_response(404)
                    self.end_headers()
                    return
                jwks = {"keys": [backend.public_jwk(kid) for kid in sorted(backend.published)]}
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/auth"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def new_key(self, kid: str, publish: bool = True) -> str:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        if publish:
            self.published.add(kid)
        return kid

    def public_jwk(self, kid: str) -> dict:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}

    def sign(self, sub: str = "user:default/jane", *, kid: str = "k1", lifetime: int = 3600, **overrides) -> str:
        iat = int(time.time())
        claims = {"iss": self.url, "sub": sub, "ent": [sub, "group:default/team-a"], "aud": "backstage", "iat": iat, "exp": iat + lifetime,
                  "typ": "vnd.backstage.user", **overrides}
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.keys[kid], algorithm="ES256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def auth_backend():
    backend = FakeAuthBackend()
    backend.new_key("k1")
    yield backend
    backend.close()


class Clock:
    """A monotonic clock the test moves by hand (rate limits and windows without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def user_security(backend: FakeAuthBackend, clock=time.monotonic, **options) -> CollectorSecurity:
    verifier = BackstageTokenVerifier(backend.url, monotonic=clock)
    return CollectorSecurity(service_tokens={SERVICE_TOKEN: "backstage-analytics"}, verifier=verifier, **options)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_but_health_refuses_callers_without_a_valid_token(tmp_path):
    with TestClient(collector_app(tmp_path / "raw")) as c:
        for headers in ({}, bearer("not-the-token-0123456789"), {"Authorization": f"Basic {SERVICE_TOKEN}"}):
            assert c.post("/events", json=[ev("a")], headers=headers).status_code == 401
            assert c.post("/flush", headers=headers).status_code == 401
            assert c.get("/stats", headers=headers).status_code == 401
        assert c.get("/health").status_code == 200
        response = c.post("/events", json=[ev("a")])
        assert response.headers["www-authenticate"].startswith('Bearer realm="usage-collector"')
        assert c.get("/stats", headers=SERVICE).json()["accepted"] == 0


def test_a_backstage_user_token_makes_its_sub_the_user_of_every_event(tmp_path, auth_backend):
    raw = RawEventStore(tmp_path / "raw")
    with TestClient(collector_app(tmp_path / "raw", user_security(auth_backend))) as c:
        token = auth_backend.sign("User:default/Jane")
        response = c.post("/events", json=[ev("a", userEntityRef=None), ev("b", userEntityRef="user:default/jane")], headers=bearer(token))
        assert response.status_code == 200 and response.json()["accepted"] == 2
        c.post("/flush", headers=SERVICE)
    users = raw.compact_day(date(2025, 3, 12)) and raw.read_day(date(2025, 3, 12))["user"].to_pylist()
    assert users == [pseudonymise("user:default/jane", KEY)] * 2


def test_an_event_claiming_another_user_than_the_token_is_rejected(tmp_path, auth_backend):
    # Decision: the token wins. An event asserting someone else is a forged or broken client; it is
    # rejected with a reason (the rest of the batch lands), never re-attributed.
    with TestClient(collector_app(tmp_path / "raw", user_security(auth_backend))) as c:
        response = c.post("/events", json=[ev("mine"), ev("theirs", userEntityRef="user:default/mallory")], headers=bearer(auth_backend.sign("user:default/jane")))
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "event_id": "theirs", "reasons": ["userEntityRef: differs from the user the request's token was issued to"]}]


@pytest.mark.parametrize(
    ("make_token", "status", "reason"),
    [
        (lambda b: b.sign(lifetime=-3600), 401, "expired"),
        (lambda b: b.sign(iss="http://127.0.0.1:1/api/auth"), 401, "wrong_issuer"),
        (lambda b: b.sign(aud="another-service"), 401, "wrong_audience"),
        (lambda b: b.sign(sub=None), 401, "missing_claim"),
        (lambda b: b.sign(kid=b.new_key("unpublished", publish=False)), 401, "unknown_key"),
        (lambda b: jwt.encode({"sub": "user:default/jane", "aud": "backstage", "iss": b.url, "iat": 1, "exp": 2**40}, None, algorithm="none", headers={"kid": "k1"}), 401, "algorithm_not_allowed"),
        # HS256 keyed with the public key: the classic algorithm confusion
        (lambda b: jwt.encode({"sub": "user:default/jane"}, "public-key-as-secret-0123456789abcdef", algorithm="HS256", headers={"kid": "k1"}), 401, "algorithm_not_allowed"),
        (lambda b: b.sign() [:-8] + "AAAAAAAA", 401, "bad_signature"),
        (lambda b: b.sign("group:default/team-a"), 403, "not_a_user"),
        (lambda b: b.sign("component:default/petstore"), 403, "not_a_user"),
    ],
    ids=["expired", "wrong-issuer", "wrong-audience", "no-sub", "unknown-kid", "alg-none", "hs256-confusion", "bad-signature", "group-sub", "component-sub"],
)
def test_user_tokens_that_do_not_verify_are_refused(tmp_path, auth_backend, make_token, status, reason):
    with TestClient(collector_app(tmp_path / "raw", user_security(auth_backend))) as c:
        response = c.post("/events", json=[ev("a")], headers=bearer(make_token(auth_backend)))
        assert (response.status_code, response.json()["reason"]) == (status, reason)
        stats = c.get("/stats", headers=SERVICE).json()
    assert stats["accepted"] == 0 and stats["refused_by_reason"] == {reason: 1}


def test_a_rotated_signing_key_is_fetched_but_made_up_key_ids_cannot_hammer_the_auth_backend(tmp_path, auth_backend):
    clock = Clock()
    with TestClient(collector_app(tmp_path / "raw", user_security(auth_backend, clock))) as c:
        assert c.post("/events", json=[ev("a")], headers=bearer(auth_backend.sign())).status_code == 200
        fetched = auth_backend.requests
        for i in range(50):
            forged = jwt.encode({"sub": "user:default/jane"}, auth_backend.keys["k1"], algorithm="ES256", headers={"kid": f"made-up-{i}"})
            assert c.post("/events", json=[ev(f"f{i}")], headers=bearer(forged)).json()["reason"] == "unknown_key"
        assert auth_backend.requests == fetched  # inside refresh_after: no re-read at all
        auth_backend.new_key("k2")  # the auth backend rotates its key
        clock.now += 30
        assert c.post("/events", json=[ev("b")], headers=bearer(auth_backend.sign(kid="k2"))).status_code == 200
        assert auth_backend.requests == fetched + 1


def test_a_service_token_relays_the_events_users_but_only_user_refs(client):
    response = client.post("/events", json=[ev("a"), ev("g", userEntityRef="group:default/x")])
    assert response.json()["rejected"] == [{"index": 1, "event_id": "g", "reasons": ["userEntityRef: must be a User entity ref (user:<namespace>/<name>), got kind 'group'"]}]


def test_flush_takes_a_service_token_and_is_rate_limited(tmp_path, auth_backend):
    clock = Clock()
    raw = RawEventStore(tmp_path / "raw")
    app = collector_app(tmp_path / "raw", user_security(auth_backend, clock, flush_interval=10), monotonic=clock)
    with TestClient(app, headers=SERVICE) as c:
        user = bearer(auth_backend.sign())
        assert c.post("/flush", headers=user).json()["reason"] == "service_token_required"
        assert c.get("/stats", headers=user).status_code == 403
        statuses = []
        for i in range(300):  # the reported flood: a flush after every batch
            c.post("/events", json=[ev(f"e{i}")])
            response = c.post("/flush")
            statuses.append(response.status_code)
        assert statuses[0] == 200 and set(statuses[1:]) == {429}
        assert response.headers["retry-after"] == "10"
        assert len(raw.parts(date(2025, 3, 12))) == 1
        clock.now += 10
        assert c.post("/flush").json() == {"written": 299}


def test_only_the_portal_origin_gets_cors_and_other_origins_are_refused(tmp_path):
    security = CollectorSecurity(service_tokens={SERVICE_TOKEN: "relay"}, cors_origins=("https://portal.example.com",))
    with TestClient(collector_app(tmp_path / "raw", security)) as c:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        ok = c.options("/events", headers={"Origin": "https://portal.example.com", **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://portal.example.com"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        evil = c.options("/events", headers={"Origin": "https://evil.example.net", **preflight})
        assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
        posted = c.post("/events", json=[ev("a")], headers={"Origin": "https://portal.example.com", **SERVICE})
        assert posted.status_code == 200 and posted.headers["access-control-allow-origin"] == "https://portal.example.com"
        # a non-preflighted request from another origin is refused outright, token or not
        refused = c.post("/events", json=[ev("b")], headers={"Origin": "https://evil.example.net", **SERVICE})
        assert (refused.status_code, refused.json()["reason"]) == (403, "origin_not_allowed")
        assert c.get("/stats", headers=SERVICE).json()["accepted"] == 1


# --- beacons: navigator.sendBeacon cannot set headers, so the user token travels in the body -----

BEACON_HEADERS = {"Content-Type": "text/plain;charset=UTF-8", "Origin": "https://portal.example.com"}


def beacon_app(tmp_path, backend):
    security = user_security(backend, cors_origins=("https://portal.example.com",))
    return collector_app(tmp_path / "raw", security)


def test_a_beacon_is_attributed_to_the_verified_token_in_its_body(tmp_path, auth_backend):
    raw = RawEventStore(tmp_path / "raw")
    with TestClient(beacon_app(tmp_path, auth_backend)) as c:
        body = orjson.dumps({"token": auth_backend.sign("user:default/jane"), "events": [ev("a", userEntityRef=None), ev("b", userEntityRef=None)]})
        response = c.post("/events", content=body, headers=BEACON_HEADERS)
        assert (response.status_code, response.json()["accepted"]) == (200, 2)
        # the beacon's events may not name another user either: the token wins
        forged = c.post("/events", content=orjson.dumps({"token": auth_backend.sign("user:default/jane"), "events": [ev("c", userEntityRef="user:default/mallory")]}),
                        headers=BEACON_HEADERS)
        assert forged.status_code == 422
        c.post("/flush", headers=SERVICE)
    raw.compact_day(date(2025, 3, 12))
    assert raw.read_day(date(2025, 3, 12))["user"].to_pylist() == [pseudonymise("user:default/jane", KEY)] * 2


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing_token"),
        (SERVICE_TOKEN, "malformed_token"),  # a service token is never accepted from a body
        (lambda b: b.sign(lifetime=-3600), "expired"),
        (lambda b: b.sign(kid=b.new_key("forged", publish=False)), "unknown_key"),
        (lambda b: b.sign(sub="group:default/team-a"), "not_a_user"),
    ],
)
def test_a_beacon_whose_token_does_not_verify_is_refused_and_audited(tmp_path, auth_backend, token, reason):
    with TestClient(beacon_app(tmp_path, auth_backend)) as c:
        value = token(auth_backend) if callable(token) else token
        payload = {"events": [ev("a")], **({"token": value} if value else {})}
        response = c.post("/events", content=orjson.dumps(payload), headers=BEACON_HEADERS)
        assert response.json()["reason"] == reason and response.status_code in (401, 403)
        stats = c.get("/stats", headers=SERVICE).json()
        assert (stats["accepted"], stats["refused_by_reason"]) == (0, {reason: 1})


def test_a_beacon_from_another_origin_is_refused_before_its_body_is_read(tmp_path, auth_backend):
    with TestClient(beacon_app(tmp_path, auth_backend)) as c:
        body = orjson.dumps({"token": auth_backend.sign("user:default/jane"), "events": [ev("a")]})
        response = c.post("/events", content=body, headers={**BEACON_HEADERS, "Origin": "https://evil.example.net"})
        assert (response.status_code, response.json()["reason"]) == (403, "origin_not_allowed")


def test_a_beacon_without_user_token_support_is_refused(tmp_path):
    with TestClient(collector_app(tmp_path / "raw")) as c:  # service tokens only: no verifier
        response = c.post("/events", content=orjson.dumps({"token": SERVICE_TOKEN, "events": [ev("a")]}), headers={"Content-Type": "text/plain"})
        assert (response.status_code, response.json()["reason"]) == (401, "invalid_token")


# --- resources: the body is streamed and cut off, requests are bounded -------------------------

LIMIT = 64 * 1024
CHUNK = 16 * 1024


class Upload:
    """Drives the ASGI app directly with a body delivered chunk by chunk, counting what the app
    pulled: how much the server buffered is then a count, not a guess from timing or RSS."""

    def __init__(self, total: int, content_length: int | None, hold: asyncio.Event | None = None, payload: bytes | None = None) -> None:
        self.total, self.content_length, self.hold, self.payload = total, content_length, hold, payload
        self.pulled = 0
        self.started = asyncio.Event()
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}

    def scope(self) -> dict:
        headers = [(b"authorization", f"Bearer {SERVICE_TOKEN}".encode()), (b"content-type", b"application/json")]
        if self.content_length is None:
            headers.append((b"transfer-encoding", b"chunked"))
        else:
            headers.append((b"content-length", str(self.content_length).encode()))
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/events",
                "raw_path": b"/events", "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive(self) -> dict:
        self.started.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.pulled >= self.total:
            return {"type": "http.disconnect"}
        size = min(CHUNK, self.total - self.pulled)
        body = self.payload[self.pulled : self.pulled + size] if self.payload is not None else b" " * size
        self.pulled += size
        return {"type": "http.request", "body": body, "more_body": self.pulled < self.total}

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message.get("headers", []))

    async def run(self, app) -> "Upload":
        await app(self.scope(), self.receive, self.send)
        return self


def limited_app(tmp_path, **options):
    return collector_app(tmp_path / "raw", CollectorSecurity(service_tokens={SERVICE_TOKEN: "relay"}, max_body_bytes=LIMIT, **options))


@pytest.mark.parametrize(
    ("content_length", "most_pulled"),
    [(None, LIMIT + CHUNK), (100, LIMIT + CHUNK), (50 * 1024 * 1024, 0)],
    ids=["chunked", "content-length-lie", "declared-too-large"],
)
def test_an_oversized_body_is_cut_off_at_the_limit_without_being_buffered(tmp_path, content_length, most_pulled):
    app = limited_app(tmp_path)
    upload = asyncio.run(Upload(total=50 * 1024 * 1024, content_length=content_length).run(app))
    assert upload.status == 413
    assert upload.pulled <= most_pulled  # of 50 MB offered: at most the limit plus one chunk
    assert app.state.load["in_flight"] == 0


def test_a_body_of_exactly_the_limit_is_read_whole_from_chunks(tmp_path):
    json_batch = orjson.dumps([ev("a")])
    payload = json_batch + b" " * (LIMIT - len(json_batch))
    upload = asyncio.run(Upload(total=LIMIT, content_length=None, payload=payload).run(limited_app(tmp_path)))
    assert (upload.status, upload.pulled) == (200, LIMIT)


def test_requests_beyond_the_concurrency_bound_get_503(tmp_path):
    app = limited_app(tmp_path, max_concurrent=2)

    async def scenario() -> tuple[list[int | None], Upload]:
        hold = asyncio.Event()
        held = [Upload(total=10, content_length=10, hold=hold) for _ in range(2)]
        tasks = [asyncio.create_task(u.run(app)) for u in held]
        await asyncio.wait_for(asyncio.gather(*(u.started.wait() for u in held)), timeout=30)
        extra = await asyncio.wait_for(Upload(total=10, content_length=10).run(app), timeout=30)
        hold.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        return [u.status for u in held], extra

    held_statuses, extra = asyncio.run(scenario())
    assert extra.status == 503 and extra.headers[b"retry-after"] == b"1"
    assert extra.pulled == 0  # refused before a byte of its body was read
    assert held_statuses == [400, 400]  # the held requests went on (their 10 spaces are not JSON)
    assert app.state.load["in_flight"] == 0


# --- refused authentication is audited, one row per route, reason and window ---------------------


def test_a_flood_of_refused_requests_is_audited_in_a_bounded_number_of_rows(tmp_path, catalog_url):
    from catalog_pipelines.storage.audit import entries
    from catalog_pipelines.storage.db import get_engine

    engine = get_engine(catalog_url)
    clock = Clock()
    app = collector_app(tmp_path / "raw", CollectorSecurity(service_tokens={SERVICE_TOKEN: "relay"}, audit_window=60), audit_engine=engine, monotonic=clock)
    with TestClient(app) as c:
        for window in range(3):
            for i in range(200):
                c.post("/events", json=[ev("a")], headers=bearer(f"guess-{window}-{i}-0123456789"))
            c.post("/flush")  # no token at all
            clock.now += 60
            assert app.state.refusals.due()
            app.state.refusals.write()  # what the ticker does once a window is due
    rows = entries(engine, action="usage.collector.refused")
    # 603 refusals → 2 rows per window (/events invalid_token, /flush missing_token), not 603
    assert len(rows) == 6
    assert sum(r.details["count"] for r in rows) == 603
    assert {(r.target, r.details["reason"], r.outcome, r.actor) for r in rows} == {
        ("usage-collector:/events", "invalid_token", "denied", "unauthenticated"),
        ("usage-collector:/flush", "missing_token", "denied", "unauthenticated"),
    }
    assert not any("guess" in json.dumps(r.details) for r in rows)  # presented tokens are never stored
