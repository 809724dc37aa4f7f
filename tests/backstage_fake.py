"""A small local server that speaks the shape of Backstage's `GET /api/catalog/entities/by-query`.

It serves a given list of items with cursor paging (`items`, `totalItems`, `pageInfo.nextCursor`
as opaque base64 JSON, `prevCursor` from the second page on), answers 401 without the right bearer
token, 400 on a malformed cursor, and can inject faults (HTTP 500/503, a slow answer that trips the
client's timeout, 429 with `Retry-After`, a body dripped a byte at a time, a body cut short) at
given request numbers or at a seeded random rate. It also fails the way a real catalog does between
requests: `restart()` replaces its contents (new uids, another order, optionally still loading, so
an old cursor points anywhere), `loop_back` makes a page's `nextCursor` lead back to an earlier page,
and `items` may be emptied or shrunk at any time. `POST by-refs` answers with nulls for missing refs.
It follows the real API where a client can tell the difference (see
`shared/tools/backstage-peer/README.md`): the cursor carries filter, order and `totalItems`, and
`filter`/`orderField` sent with a cursor are ignored; `limit` is not carried.

Run with Starlette on uvicorn in a background thread, on a free loopback port:

    with FakeBackstage(items, faults={2: Fault("500")}) as fake:
        provider = BackstageApiProvider("fake", fake.base_url, token=fake.token)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

FAULT_KINDS = ("500", "503", "timeout", "429")
# Faults that are not drawn at random: each is scheduled on purpose by a test.
SCRIPTED_FAULT_KINDS = ("drip", "truncate")


@dataclass(frozen=True)
class Fault:
    """What to do instead of answering normally.

    kind: "500" or "503" (an error status), "429" (rate limited, with `retry_after` as the header
    value, or no header when None), "timeout" (answer normally but only after `seconds`, longer than
    the client's timeout), "drip" (the normal answer, one byte every `seconds`), "truncate" (the
    normal answer's headers, then half its body and a closed connection).
    """

    kind: str
    retry_after: str | None = "1"
    seconds: float = 1.0


@dataclass
class RecordedRequest:
    number: int
    params: list[tuple[str, str]]
    authorization: str | None
    outcome: str  # "ok", or the fault kind, or "401"/"400"

    def param(self, key: str) -> list[str]:
        return [v for k, v in self.params if k == key]


def entity(kind: str, name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """A served-looking entity, with the server-managed fields a real catalog adds."""
    uid = f"uid-{kind}-{namespace}-{name}".lower()
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "etag": f"etag-{uid}"},
        "spec": dict(spec),
        "relations": [],
    }


class FakeBackstage:
    """The fake server. `requests` records every by-query request in order (faulted ones too)."""

    def __init__(
        self,
        items: list[Any],
        *,
        token: str | None = "fake-backstage-token",
        faults: dict[int, Fault] | None = None,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = FAULT_KINDS,
        seed: int = 0,
        timeout_seconds: float = 1.0,
        retry_after: str | None = "1",
    ) -> None:
        self.items = list(items)
        self.token = token
        self.faults = dict(faults or {})
        self.fault_rate = fault_rate
        self.fault_kinds = fault_kinds
        self.timeout_seconds = timeout_seconds
        self.retry_after = retry_after
        self.requests: list[RecordedRequest] = []
        # {offset: earlier offset}: the page served at `offset` hands out a nextCursor to the earlier
        # one, so a walk that follows it goes round for ever (A -> B -> ... -> A).
        self.loop_back: dict[int, int] = {}
        # While loading, only the first `available` items are served (None: all of them).
        self.available: int | None = None
        self.load_step = 0  # items that become available with every by-query request while loading
        self.generation = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.app = Starlette(
            routes=[
                Route("/api/catalog/entities/by-query", self._by_query),
                Route("/api/catalog/entities/by-refs", self._by_refs, methods=["POST"]),
                Route("/api/catalog/entities/by-name/{kind}/{namespace}/{name}", self._by_name),
            ]
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeBackstage":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake Backstage server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "FakeBackstage":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- failing the way a real catalog does --------------------------------------------------

    def restart(self, *, seed: int | None = None, loading_from: int | None = None, load_step: int = 0) -> None:
        """The catalog restarted on a fresh database: every entity gets a new uid and they come in
        another order (the uid order, as in Backstage); with `loading_from`, only that many are
        served at first, `load_step` more with every request, until all are back."""
        with self._lock:
            self.generation += 1
            rng = random.Random(self.generation if seed is None else seed)
            items = [_with_uid(item, f"uid-g{self.generation}-{rng.getrandbits(64):016x}") for item in self.items]
            items.sort(key=lambda item: item["metadata"]["uid"] if isinstance(item, dict) else "")
            self.items = items
            self.available = loading_from
            self.load_step = load_step

    def _served_items(self) -> list[Any]:
        if self.available is None:
            return self.items
        items = self.items[: self.available]
        self.available += self.load_step
        if self.available >= len(self.items):
            self.available = None
        return items

    # -- handlers ----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        return self.token is None or request.headers.get("authorization") == f"Bearer {self.token}"

    def _pick_fault(self, number: int) -> Fault | None:
        if number in self.faults:
            return self.faults[number]
        if self.fault_rate and self._rng.random() < self.fault_rate:
            return Fault(self._rng.choice(self.fault_kinds), retry_after=self.retry_after, seconds=self.timeout_seconds)
        return None

    async def _by_query(self, request: Request) -> JSONResponse:
        params = list(request.query_params.multi_items())
        with self._lock:
            number = len(self.requests) + 1
            fault = self._pick_fault(number)
            record = RecordedRequest(number, params, request.headers.get("authorization"), "ok")
            self.requests.append(record)

        if not self._authorised(request):
            record.outcome = "401"
            return _error(401, "AuthenticationError", "Missing credentials" if "authorization" not in request.headers else "Invalid token")
        if fault is not None:
            record.outcome = fault.kind
            if fault.kind in SCRIPTED_FAULT_KINDS:
                pass  # the answer is computed normally and then delivered badly (below)
            elif fault.kind == "timeout":
                # A slow server: the answer comes, but after the client has given up.
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "429":
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                return _error(429, "TooManyRequests", "Rate limited", headers)
            else:
                return _error(int(fault.kind), "Error", f"injected {fault.kind}")

        query = request.query_params
        limit = int(query["limit"]) if "limit" in query else None
        if "cursor" in query:
            try:
                state = json.loads(base64.b64decode(query["cursor"], validate=True))
                offset, filters, order, total = state["offset"], state["filters"], state["orderField"], state["totalItems"]
            except (binascii.Error, ValueError, KeyError, TypeError) as exc:
                record.outcome = "400"
                return _error(400, "InputError", f"Malformed cursor: {exc}")
        else:
            offset, filters, order, total = 0, query.getlist("filter"), query.get("orderField"), None

        with self._lock:
            selected = self._select(filters, order)
        if total is None:
            total = len(selected)
        end = len(selected) if limit is None else offset + limit
        page = selected[offset:end]
        page_info: dict[str, str] = {}
        if limit is not None and end < len(selected):
            target = self.loop_back.get(offset, end)
            page_info["nextCursor"] = _encode({"offset": target, "filters": filters, "orderField": order, "totalItems": total})
        if offset > 0:
            page_info["prevCursor"] = _encode({"offset": max(0, offset - (limit or 0)), "filters": filters, "orderField": order, "totalItems": total})
        body = {"items": page, "totalItems": total, "pageInfo": page_info}
        if fault is not None and fault.kind == "drip":
            return _dripped(json.dumps(body).encode(), fault.seconds)
        if fault is not None and fault.kind == "truncate":
            return _TruncatedResponse(json.dumps(body).encode())
        return JSONResponse(body)

    async def _by_refs(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, "AuthenticationError", "Missing credentials")
        try:
            refs = (await request.json())["entityRefs"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "InputError", "Expected a body with entityRefs")
        with self._lock:
            served = {_canonical(item): item for item in self._served_items() if isinstance(item, dict)}
        return JSONResponse({"items": [served.get(str(ref).lower()) for ref in refs]})

    async def _by_name(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, "AuthenticationError", "Missing credentials")
        want = tuple(request.path_params[k].lower() for k in ("kind", "namespace", "name"))
        for item in self.items:
            if isinstance(item, dict) and _ref_parts(item) == want:
                return JSONResponse(item)
        return _error(404, "NotFoundError", f"No entity named {'/'.join(want)}")

    def _select(self, filters: list[str], order: str | None) -> list[Any]:
        # Separate filter parameters are ORed, the comma-separated conditions inside one are ANDed,
        # matching is case-insensitive: Backstage's rules.
        chosen = [item for item in self._served_items() if not filters or any(_matches(item, f) for f in filters)]
        if order:
            path, _, direction = order.partition(",")
            chosen = [item for item in chosen if _lookup(item, path) is not None]
            chosen.sort(key=lambda item: str(_lookup(item, path)).lower(), reverse=direction == "desc")
        return chosen


def _encode(state: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(state).encode()).decode()


def _error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"name": name, "message": message}, "response": {"statusCode": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _lookup(item: Any, path: str) -> Any:
    value = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        lowered = {str(k).lower(): v for k, v in value.items()}
        value = lowered.get(part.lower())
    return value


def _matches(item: Any, expression: str) -> bool:
    for condition in expression.split(","):
        key, has_value, expected = condition.partition("=")
        value = _lookup(item, key.strip())
        if value is None:
            return False
        if has_value:
            values = value if isinstance(value, list) else [value]
            if expected.strip().lower() not in {str(v).lower() for v in values}:
                return False
    return True


def _ref_parts(item: dict[str, Any]) -> tuple[str, str, str]:
    meta = item.get("metadata") or {}
    return (str(item.get("kind", "")).lower(), str(meta.get("namespace") or "default").lower(), str(meta.get("name", "")).lower())


def _with_uid(item: Any, uid: str) -> Any:
    if not isinstance(item, dict):
        return item
    meta = dict(item.get("metadata") or {})
    meta["uid"], meta["etag"] = uid, f"etag-{uid}"
    return {**item, "metadata": meta}


def _canonical(item: dict[str, Any]) -> str:
    kind, namespace, name = _ref_parts(item)
    return f"{kind}:{namespace}/{name}"


def _dripped(body: bytes, seconds: float) -> StreamingResponse:
    """The answer, one byte every `seconds`: each read succeeds, the whole never arrives in time."""

    async def drip():
        for i in range(len(body)):
            yield body[i:i + 1]
            await asyncio.sleep(seconds)

    return StreamingResponse(drip(), media_type="application/json")


class _TruncatedResponse(Response):
    """Headers promising the whole body, then half of it, then the connection is closed."""

    def __init__(self, body: bytes) -> None:
        super().__init__(content=body, media_type="application/json")

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
        raise ConnectionResetError("truncated on purpose")
