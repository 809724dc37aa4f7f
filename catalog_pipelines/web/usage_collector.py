"""The HTTP collector for portal analytics events: an ASGI app (Starlette) a Backstage analytics
module posts batches to.

    POST /events    a JSON array of 1–100 events (or {"events": [...]}), Backstage's analytics
                    shape plus eventId, timestamp, userEntityRef, sessionId; or, from a browser's
                    `navigator.sendBeacon` (which cannot set headers), {"token": <Backstage user
                    token>, "events": [...]} without an Authorization header
                    → 200 {"accepted": n, "rejected": [{"index", "event_id", "reasons"}], ...}
                      422 when every event of the batch was rejected (resending will not help)
                      400 / 413 when the body is not a batch of 1–100 events (413: over the limit)
    POST /flush     write the buffer now (ops, tests): service token only, rate-limited (429)
    GET  /stats     counters since start (service token only)
    GET  /health    open

Who may post (see `CollectorSecurity`): every route but /health needs `Authorization: Bearer …`,
either a static service token from configuration (compared in constant time) or a Backstage user
token, verified the way Backstage backends verify one (`BackstageTokenVerifier`: the auth
backend's JWKS, ES256, audience `backstage`, the configured issuer, `exp`/`iat`/`sub` required) and
whose `sub` must be a User ref. With a user token the user is the token's: events are attributed
to it, and an event claiming another `userEntityRef` is rejected (with a reason, like any other bad
event). A beacon carries the user token in its body instead (`BEACON_TOKEN_FIELD`): it is verified by
the same verifier, only a Backstage user token is accepted there (never a service token, which has
no business in a browser), and the body is read within the same size and concurrency limits before
the token is checked. With a service token (a trusted relay) the events' own `userEntityRef` is taken, which must
be a User ref. A request from a browser origin not on the allow-list is refused (403), and CORS
headers are only sent to allowed origins. Refused requests are counted and audited as one row per
route, reason and window (`RefusalAudit`), so a flood cannot fill the audit table.

Resources: the body is read as a stream and cut off at `max_body_bytes` (413) whatever
Content-Length says, so a request never holds more than the limit plus one chunk; at most
`max_concurrent` requests read or process a body at once (503 with Retry-After beyond that).

Each event is validated on its own: a malformed one is rejected with every reason and counted, the
rest of the batch is accepted. Accepted events are pseudonymised at once (no raw identity, neither
the acting user's nor anyone else's the event names, reaches disk: `analytics.usage.privacy`) and
buffered; the buffer is written as Parquet part files, one per UTC day of the events' own
timestamps, when it holds `flush_events` events or is `flush_seconds` old. So late events land in
their day's partition, and a re-sent batch is written again and deduplicated by event id when the
day is compacted (`usage_events`).

Durability: acknowledged events wait in memory for up to `flush_seconds` (default 5 s, like the
open-source adoption-analytics plugin). Starlette runs the lifespan (which flushes on shutdown) of
the app it serves, not of mounted sub-apps: a server that mounts this app should call
`app.state.collector.flush()` in its own shutdown.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from catalog_pipelines.settings import environ as settings_environ

MAX_BODY_BYTES = 1_048_576
MAX_CONCURRENT = 16
FLUSH_INTERVAL_SECONDS = 10.0
AUDIT_WINDOW_SECONDS = 60.0
MIN_SERVICE_TOKEN_CHARS = 16

SERVICE_TOKENS_ENV = "CATALOG_PIPELINES_USAGE_SERVICE_TOKENS"
BACKSTAGE_AUTH_URL_ENV = "CATALOG_PIPELINES_BACKSTAGE_AUTH_URL"
BACKSTAGE_ISSUER_ENV = "CATALOG_PIPELINES_BACKSTAGE_ISSUER"
CORS_ORIGINS_ENV = "CATALOG_PIPELINES_USAGE_CORS_ORIGINS"

# Backstage's user tokens: `aud` is always "backstage" and TokenFactory signs ES256 unless its
# deployment configures another algorithm (then list it here too).
BACKSTAGE_AUDIENCE = "backstage"
BACKSTAGE_ALGORITHMS = ("ES256",)
# `navigator.sendBeacon` cannot set an Authorization header: the analytics module puts the user's
# Backstage token in this body field instead, and it is verified exactly like the header.
BEACON_TOKEN_FIELD = "token"


class ConfigError(ValueError):
    """Collector configuration that cannot work; the message names the variable and entry."""


class AuthRefused(Exception):
    """A request that is not let in. `reason` is a fixed code (it keys the audit rows), never text
    from the request."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Caller:
    kind: str  # "service" or "user"
    name: str  # the service's configured name, or the canonical user ref the token proved


def parse_service_tokens(spec: str, where: str = SERVICE_TOKENS_ENV) -> dict[str, str]:
    """`'token1=backstage-analytics,token2=ops'` → {token: service name}. Errors never echo a token;
    they name the variable `where` (the catalog read API reads its own)."""
    tokens: dict[str, str] = {}
    for index, item in enumerate(p.strip() for p in (spec or "").split(",")):
        if not item:
            continue
        token, sep, name = item.partition("=")
        token, name = token.strip(), name.strip()
        if not sep or not token or not name:
            raise ConfigError(f"{where}: entry {index + 1} must look like TOKEN=service-name")
        if len(token) < MIN_SERVICE_TOKEN_CHARS:
            raise ConfigError(f"{where}: entry {index + 1} ({name}): a token needs at least {MIN_SERVICE_TOKEN_CHARS} characters")
        if token in tokens:
            raise ConfigError(f"{where}: entry {index + 1} ({name}) repeats an earlier token")
        tokens[token] = name
    return tokens


class BackstageTokenVerifier:
    """Verifies Backstage user tokens as Backstage backends do (DefaultIdentityClient /
    UserTokenHandler): the signature against the auth backend's JWKS
    (`<auth_url>/.well-known/jwks.json`), the algorithm against an allow-list (ES256), `aud` =
    `backstage`, `iss` = the configured issuer (Backstage's is `<backend base URL>/api/auth`),
    `exp` (with `leeway` seconds of clock skew), and `iat`, `exp`, `sub` present.

    Keys are cached; a token signed with an unknown key id re-reads the JWKS (key rotation) at most
    once per `refresh_after` seconds, so tokens with made-up key ids cannot make the collector
    hammer the auth backend.
    """

    def __init__(
        self,
        auth_url: str,
        *,
        issuer: str | None = None,
        audience: str = BACKSTAGE_AUDIENCE,
        algorithms: tuple[str, ...] = BACKSTAGE_ALGORITHMS,
        leeway: float = 10.0,
        refresh_after: float = 30.0,
        timeout: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if "none" in {a.lower() for a in algorithms}:
            raise ConfigError("the 'none' algorithm can never be allowed")
        self.jwks_url = auth_url.rstrip("/") + "/.well-known/jwks.json"
        self.issuer = (issuer or auth_url).rstrip("/")
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.leeway = leeway
        self.refresh_after = refresh_after
        self.timeout = timeout
        self.monotonic = monotonic
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def _key(self, kid: str) -> Any:
        with self._lock:
            key = self._keys.get(kid)
            stale = self._fetched_at is None or self.monotonic() - self._fetched_at >= self.refresh_after
            if key is None and stale:
                self._fetch()
                key = self._keys.get(kid)
        if key is None:
            raise AuthRefused("unknown_key", "the token is signed with a key the auth backend does not publish")
        return key

    def _fetch(self) -> None:
        import httpx
        import jwt

        self._fetched_at = self.monotonic()
        self.fetches += 1
        try:
            response = httpx.get(self.jwks_url, timeout=self.timeout)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthRefused("jwks_unavailable", f"cannot read the auth backend's keys: {type(exc).__name__}", 503) from None
        keys = {}
        for jwk in data.get("keys", []) if isinstance(data, dict) else []:
            try:
                key = jwt.PyJWK(jwk)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type or algorithm this collector does not use
            if key.key_id:
                keys[key.key_id] = key
        self._keys = keys

    def verify(self, token: str) -> str:
        """The canonical User ref the token was issued to, or `AuthRefused`."""
        import jwt

        from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthRefused("malformed_token", "the bearer token is neither a service token nor a JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthRefused("algorithm_not_allowed", f"tokens must be signed with {', '.join(self.algorithms)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthRefused("unknown_key", "the token names no key id")
        key = self._key(kid)
        if key.algorithm_name != alg:
            raise AuthRefused("algorithm_not_allowed", "the token's algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthRefused("expired", "the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthRefused("wrong_audience", f"the token is not for audience {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthRefused("wrong_issuer", "the token was not issued by the configured Backstage auth backend") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthRefused("missing_claim", f"the token has no {exc.claim!r} claim") from None
        except jwt.ImmatureSignatureError:
            raise AuthRefused("not_yet_valid", "the token is not valid yet") from None
        except jwt.InvalidSignatureError:
            raise AuthRefused("bad_signature", "the token's signature does not verify") from None
        except jwt.InvalidTokenError:
            raise AuthRefused("invalid_token", "the token is not a valid Backstage user token") from None
        sub = claims.get("sub")
        try:
            ref = parse_entity_ref(sub, default_kind=None) if isinstance(sub, str) else None
        except EntityRefError:
            ref = None
        if ref is None or ref.kind.lower() != "user":
            raise AuthRefused("not_a_user", "the token's subject is not a User entity ref", 403)
        return ref.canonical()


@dataclass(frozen=True)
class CollectorSecurity:
    """Who may call the collector and how much they may send (see the module docstring)."""

    service_tokens: Mapping[str, str] = field(default_factory=dict)
    verifier: BackstageTokenVerifier | None = None
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = MAX_BODY_BYTES
    max_concurrent: int = MAX_CONCURRENT
    flush_interval: float = FLUSH_INTERVAL_SECONDS
    audit_window: float = AUDIT_WINDOW_SECONDS

    def __post_init__(self) -> None:
        if not self.service_tokens and self.verifier is None:
            raise ConfigError(f"the usage collector needs callers it can authenticate: set {SERVICE_TOKENS_ENV} and/or {BACKSTAGE_AUTH_URL_ENV}")
        for origin in self.cors_origins:
            if origin == "*" or not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ConfigError(f"{CORS_ORIGINS_ENV}: {origin!r} is not an origin like https://portal.example.com")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "CollectorSecurity":
        env = settings_environ() if environ is None else environ
        auth_url = (env.get(BACKSTAGE_AUTH_URL_ENV) or "").strip()
        verifier = BackstageTokenVerifier(auth_url, issuer=(env.get(BACKSTAGE_ISSUER_ENV) or "").strip() or None) if auth_url else None
        origins = tuple(o.strip() for o in (env.get(CORS_ORIGINS_ENV) or "").split(",") if o.strip())
        return cls(parse_service_tokens(env.get(SERVICE_TOKENS_ENV, "")), verifier, origins)

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller an `Authorization` header proves, or `AuthRefused`. Blocking (may read the JWKS)."""
        from catalog_pipelines.permissions import bearer_token, identity_for_token

        token = bearer_token(authorization)
        if token is None:
            raise AuthRefused("missing_token", "an Authorization: Bearer token is required")
        service = identity_for_token(self.service_tokens, token)
        if service is not None:
            return Caller("service", service)
        if self.verifier is None:
            raise AuthRefused("invalid_token", "the bearer token is not a known service token")
        return Caller("user", self.verifier.verify(token))

    def authenticate_beacon(self, token: Any) -> Caller:
        """The user a beacon body's token proves: a verified Backstage user token only, or
        `AuthRefused`. Blocking (may read the JWKS)."""
        if not isinstance(token, str) or not token:
            raise AuthRefused("missing_token", "an Authorization: Bearer token (or, for a beacon, a 'token' field) is required")
        if self.verifier is None:
            raise AuthRefused("invalid_token", "this collector accepts no user tokens, so no beacons")
        return Caller("user", self.verifier.verify(token))


class RefusalAudit:
    """Refused requests, counted per (route, reason) and written to the audit log as one row per
    pair and window (`storage.audit.record_window`): a flood of N refusals costs at most
    routes × reasons rows per window, never N rows. Without an engine they are only counted."""

    ACTOR = "unauthenticated"
    ACTION = "usage.collector.refused"

    def __init__(self, engine: Any = None, *, window: float = AUDIT_WINDOW_SECONDS, clock: Callable[[], datetime], monotonic: Callable[[], float]) -> None:
        self.engine = engine
        self.window = window
        self.clock = clock
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._started: tuple[datetime, float] | None = None
        self.totals: dict[str, int] = {}
        self.rows_written = 0

    def add(self, route: str, reason: str) -> None:
        with self._lock:
            self._counts[(route, reason)] = self._counts.get((route, reason), 0) + 1
            self.totals[reason] = self.totals.get(reason, 0) + 1
            if self._started is None:
                self._started = (self.clock(), self.monotonic())

    def due(self) -> bool:
        with self._lock:
            return self._started is not None and self.monotonic() - self._started[1] >= self.window

    def write(self) -> int:
        """Write the window's rows now (the ticker calls this when `due`, shutdown always)."""
        with self._lock:
            counts, started = self._counts, self._started
            self._counts, self._started = {}, None
        if not counts or started is None or self.engine is None:
            return 0
        from catalog_pipelines.storage import audit

        end = self.clock()
        for (route, reason), count in sorted(counts.items()):
            audit.record_window(
                self.engine, actor=self.ACTOR, action=self.ACTION, target=f"usage-collector:{route}",
                count=count, window_start=started[0], window_end=end, details={"reason": reason},
            )
        with self._lock:
            self.rows_written += len(counts)
        return len(counts)


class Collector:
    """Validates batches, buffers accepted events and writes them to the raw store."""

    def __init__(
        self,
        raw_dir: Path | str,
        key: bytes,
        *,
        flush_events: int = 5000,
        flush_seconds: float = 5.0,
        retention_days: int = 90,
        clock: Callable[[], datetime] | None = None,
        people: Any = None,
    ) -> None:
        from analytics.usage.privacy import Scrubber
        from catalog_pipelines.storage.usage_store import RawEventStore

        self.store = RawEventStore(raw_dir)
        self.key = key
        # One scrubber for the collector's life: its caches make repeated pages and terms cheap.
        self.scrubber = Scrubber(key, people)
        self.flush_events = flush_events
        self.flush_seconds = flush_seconds
        self.retention_days = retention_days
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._tables: list[Any] = []
        self._rejections: list[Any] = []
        self._buffered = 0
        self._oldest: float | None = None
        self.stats: dict[str, Any] = {
            "batches": 0,
            "accepted": 0,
            "rejected": 0,
            "rejected_by_field": {},
            "flushes": 0,
            "events_written": 0,
            "part_files_written": 0,
            "last_flush": None,
        }

    def accept(self, events: list[Any], acting_user: str | None = None) -> tuple[int, list[Any]]:
        """Validate and buffer a batch; `acting_user` is the user a verified token proved."""
        from analytics.usage.events import prepare_events

        now = self.clock()
        table, rejections = prepare_events(events, self.key, now=now, retention_days=self.retention_days, acting_user=acting_user, scrubber=self.scrubber)
        with self._lock:
            self.stats["batches"] += 1
            self.stats["accepted"] += table.num_rows
            self.stats["rejected"] += len(rejections)
            by_field = self.stats["rejected_by_field"]
            for rejection in rejections:
                for reason in rejection.reasons:
                    field = reason.split(":", 1)[0]
                    by_field[field] = by_field.get(field, 0) + 1
            if table.num_rows:
                self._tables.append(table)
                self._buffered += table.num_rows
            self._rejections.extend(rejections)
            if self._oldest is None and (table.num_rows or rejections):
                self._oldest = time.monotonic()
        return table.num_rows, rejections

    def due(self) -> bool:
        with self._lock:
            if self._buffered >= self.flush_events:
                return True
            return self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds

    def flush(self) -> int:
        """Write everything buffered; returns the events written. Safe to call from any thread."""
        import pyarrow as pa

        with self._flush_lock:
            with self._lock:
                tables, rejections = self._tables, self._rejections
                self._tables, self._rejections, self._buffered, self._oldest = [], [], 0, None
            if rejections:
                self.store.record_rejections(rejections, source="collector", now=self.clock())
            if not tables:
                return 0
            written = self.store.append(pa.concat_tables(tables))
            with self._lock:
                self.stats["flushes"] += 1
                self.stats["events_written"] += sum(written.values())
                self.stats["part_files_written"] += len(written)
                self.stats["last_flush"] = self.clock().isoformat()
            return sum(written.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.stats, "rejected_by_field": dict(self.stats["rejected_by_field"]), "buffered": self._buffered}




def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=dict(headers or {}))


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk and abandoned as soon as it passes `limit` bytes
    (`BodyTooLarge`): a declared Content-Length over the limit is refused before reading, and a
    body longer than it declared (or chunked, with no length) is cut off at the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_collector_app(
    raw_dir: Path | str,
    key: bytes,
    *,
    security: CollectorSecurity,
    audit_engine: Any = None,
    people: Any = None,
    flush_events: int = 5000,
    flush_seconds: float = 5.0,
    retention_days: int = 90,
    clock: Callable[[], datetime] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The collector as an ASGI app writing to `raw_dir` (`<data_dir>/usage/raw`), pseudonymising
    people with `key` (`Settings.from_env().pseudonym_key`), letting in only the callers `security`
    authenticates (`CollectorSecurity.from_env()`), auditing refusals to `audit_engine` (the
    catalog database) and recognising the names of `people` (`analytics.usage.privacy.People`)."""
    collector = Collector(raw_dir, key, flush_events=flush_events, flush_seconds=flush_seconds, retention_days=retention_days, clock=clock, people=people)
    refusals = RefusalAudit(audit_engine, window=security.audit_window, clock=collector.clock, monotonic=monotonic)
    ticker: dict[str, asyncio.Task[None] | None] = {"task": None}
    load = {"in_flight": 0, "busy": 0, "too_large": 0, "last_flush": None}
    origins = frozenset(security.cors_origins)

    async def tick() -> None:
        # Flush a quiet buffer (and a window of refusals) even when no further request arrives.
        while True:
            await asyncio.sleep(max(0.05, min(flush_seconds, security.audit_window) / 2))
            if collector.due():
                await run_in_threadpool(collector.flush)
            if refusals.due():
                await run_in_threadpool(refusals.write)

    def ensure_ticker() -> None:
        task = ticker["task"]
        if task is None or task.done():
            ticker["task"] = asyncio.get_running_loop().create_task(tick())

    def refuse(route: str, exc: AuthRefused) -> Response:
        refusals.add(route, exc.reason)
        headers = {"WWW-Authenticate": f'Bearer realm="usage-collector", error="invalid_token", error_description="{exc.reason}"'} if exc.status == 401 else {}
        if exc.status == 503:
            headers["Retry-After"] = "5"
        return _json(exc.status, {"error": str(exc), "reason": exc.reason}, headers)

    def origin_refused(request: Request, route: str) -> Response | None:
        origin = request.headers.get("origin")
        if origin is not None and origin not in origins:
            return refuse(route, AuthRefused("origin_not_allowed", "requests from this origin are not allowed", 403))
        return None

    async def admit(request: Request, route: str, *, service_only: bool = False) -> Caller | Response:
        """Origin allow-list, then authentication; a refusal is counted for the audit."""
        ensure_ticker()
        refused = origin_refused(request, route)
        if refused is not None:
            return refused
        try:
            caller = await run_in_threadpool(security.authenticate, request.headers.get("authorization"))
        except AuthRefused as exc:
            return refuse(route, exc)
        if service_only and caller.kind != "service":
            return refuse(route, AuthRefused("service_token_required", f"{route} takes a service token, not a user token", 403))
        return caller

    def busy() -> Response:
        load["busy"] += 1
        return _json(503, {"error": f"the collector is handling {security.max_concurrent} requests; retry shortly"}, {"Retry-After": "1"})

    async def post_events(request: Request) -> Response:
        # A beacon (no Authorization header) is authenticated from its body, once read within the limits.
        beacon = request.headers.get("authorization") is None
        caller: Caller | Response | None = None
        if beacon:
            ensure_ticker()
            caller = origin_refused(request, "/events")
        else:
            caller = await admit(request, "/events")
        if isinstance(caller, Response):
            return caller
        if load["in_flight"] >= security.max_concurrent:
            return busy()
        load["in_flight"] += 1
        try:
            try:
                body = await read_body(request, security.max_body_bytes)
            except BodyTooLarge:
                load["too_large"] += 1
                return _json(413, {"error": f"body larger than {security.max_body_bytes} bytes"})
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                payload = None
            if beacon:
                token = payload.get(BEACON_TOKEN_FIELD) if isinstance(payload, dict) else None
                try:
                    caller = await run_in_threadpool(security.authenticate_beacon, token)
                except AuthRefused as exc:
                    return refuse("/events", exc)
            if payload is None:
                return _json(400, {"error": "body is not valid JSON"})
            events = payload.get("events") if isinstance(payload, dict) else payload
            if not isinstance(events, list):
                return _json(400, {"error": "expected a JSON array of events (or an object with an 'events' array)"})
            from analytics.usage.events import MAX_BATCH

            if not 1 <= len(events) <= MAX_BATCH:
                return _json(400, {"error": f"a batch holds 1 to {MAX_BATCH} events, got {len(events)}"})
            assert isinstance(caller, Caller)
            accepted, rejections = collector.accept(events, acting_user=caller.name if caller.kind == "user" else None)
            if collector.due():
                await run_in_threadpool(collector.flush)
            body_out = {"accepted": accepted, "rejected_count": len(rejections), "rejected": [r.as_dict() for r in rejections]}
            return _json(200 if accepted else 422, body_out)
        finally:
            load["in_flight"] -= 1

    async def post_flush(request: Request) -> Response:
        caller = await admit(request, "/flush", service_only=True)
        if isinstance(caller, Response):
            return caller
        now = monotonic()
        last = load["last_flush"]
        if last is not None and now - last < security.flush_interval:
            wait = math.ceil(security.flush_interval - (now - last))
            refusals.add("/flush", "rate_limited")
            return _json(429, {"error": f"/flush runs at most once every {security.flush_interval:g} s"}, {"Retry-After": str(wait)})
        if load["in_flight"] >= security.max_concurrent:
            return busy()
        load["last_flush"] = now
        load["in_flight"] += 1
        try:
            written = await run_in_threadpool(collector.flush)
        finally:
            load["in_flight"] -= 1
        return _json(200, {"written": written})

    async def get_stats(request: Request) -> Response:
        caller = await admit(request, "/stats", service_only=True)
        if isinstance(caller, Response):
            return caller
        return _json(200, {**collector.snapshot(), "refused_by_reason": dict(refusals.totals), "busy": load["busy"], "too_large": load["too_large"]})

    async def health(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        task = ticker["task"]
        if task is not None:
            task.cancel()
        await run_in_threadpool(collector.flush)
        await run_in_threadpool(refusals.write)

    app = Starlette(
        routes=[
            Route("/events", post_events, methods=["POST"]),
            Route("/flush", post_flush, methods=["POST"]),
            Route("/stats", get_stats, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        middleware=[
            # Preflights and CORS headers for the portal's origins only; other origins get no CORS
            # headers (and `admit` refuses their requests outright).
            Middleware(
                CORSMiddleware,
                allow_origins=list(security.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        ],
        lifespan=lifespan,
    )
    app.state.collector = collector
    app.state.refusals = refusals
    app.state.load = load
    return app
