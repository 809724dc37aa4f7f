"""Read entities from a Backstage catalog through its REST API (`GET /api/catalog/entities/by-query`).

The API pages with an opaque server cursor (`pageInfo.nextCursor`); this provider wraps it in its own
JSON cursor `{"next": "<opaque>"}` so the ingestion engine can store it and resume in any process.
Behaviour of the real API that shapes this code (checked against a stock Backstage 1.45 backend,
see `shared/tools/backstage-peer/README.md`):

- Without `orderField` items come in the order of the catalog's internal entity id (the uid), a
  keyset order that is stable for the whole walk. That is why no `orderField` is sent by default:
  it would only add a join on the search table, and newer backends drop entities that lack the
  ordered field from the items *and* from `totalItems`.
- The server cursor carries the filter, the order and `totalItems` (counted once, on the first
  page); `filter` and `orderField` sent together with a cursor are ignored, so they are sent on the
  first page only. `limit` is not carried and is sent on every page.
- No `nextCursor` means there is no further page (the server fetches `limit + 1` rows to tell), so
  a walk never ends with an empty page.

A walk is checked as it goes, because a resumed cycle continues from a server cursor stored in the
ledger and the source may have restarted meanwhile (a fresh database with new uids, another order,
still loading): that cursor then points anywhere. The provider's cursor carries the walk's state,
`{"next": …, "walk": {"head", "total", "pages", "recent"}}` (constant size): the uid of the walk's
first entity and the total the first page reported, the pages served so far and hashes of the
latest server cursors. `WalkInDoubt` is raised, and the engine restarts the walk from the first
page, when the source refuses the stored cursor (HTTP 400), hands back a cursor seen before in the
walk or serves more than twice the pages its reported total needs. A walk that reaches the end is
followed by a fresh look at the head of the source (one `limit=1` request): a different first
entity or total than at the start (or another total mid-walk) is reported as the last page's
`doubt`, and the sweep restarts the walk or asks the source about each removal. The last page's
`total` is that fresh count, which the sweep compares with what the cycle saw.

Fields that the server rewrites on every processing pass (`metadata.uid`, `metadata.etag`, the
legacy `metadata.generation`, `relations`, `status`) are stripped, otherwise every cycle would see
every entity as changed. Relations are derived again from the spec by the model. For comparing the
two, `keep_server_relations=True` records Backstage's own `relations` per entity in
`provider.server_relations` (canonical ref -> list of `{"type", "targetRef"}` as served). That is the
one piece of state this provider keeps between calls, and it is diagnostic only: the ingestion engine
never reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from catalog_pipelines.model.entity import RawEntity, Rejection
from catalog_pipelines.model.refs import canonical_ref
from catalog_pipelines.model.retry import backoff_delay, parse_retry_after
from catalog_pipelines.providers.base import Page, ProviderError, WalkInDoubt
from catalog_pipelines.settings import env_value

if TYPE_CHECKING:
    from catalog_pipelines.providers.registry import ChunkOptions

BY_QUERY_PATH = "/api/catalog/entities/by-query"
BY_NAME_PATH = "/api/catalog/entities/by-name"
BY_REFS_PATH = "/api/catalog/entities/by-refs"

# Server cursors remembered (as short hashes) in the walk state to catch a cursor loop at once; a
# longer loop is caught by the page bound, which the source's own total sets.
RECENT_CURSORS = 64
# Refs per `by-refs` request when the sweep asks which removal candidates are still there.
CONFIRM_BATCH = 200

# Written by the server on each processing pass; kept, they would change the content hash of every
# entity on every cycle although nobody changed the entity.
SERVER_MANAGED_METADATA = ("uid", "etag", "generation")
SERVER_MANAGED_TOP_LEVEL = ("relations", "status")


class BackstageApiProvider:
    """An entity provider over a Backstage catalog's `by-query` endpoint.

    `counts_exactly`: a page's `total` is the catalog's own count of the entities the query matches
    (the last page's, a fresh count taken after it), so the sweep can check a walk against it.

    `max_retries` counts retries after the first attempt of a request, so a request is tried at most
    `max_retries + 1` times. Retried: HTTP 5xx, 429, connection errors and timeouts, with exponential
    backoff (`backoff_base * 2**retry`, capped at `backoff_max`) and jitter, or the server's
    `Retry-After` on a 429 (seconds or an HTTP date). A `Retry-After` longer than `max_retry_after`
    is not slept through here: the request fails with `ProviderError` at once and the engine's own
    backoff decides when to come back, so one chunk run does not sit idle for minutes. Any other 4xx
    fails at once: retrying a bad token or a bad cursor cannot help.

    `timeout` is a total deadline per request (connect, headers and body together), not a per-read
    timeout: a server that drips one byte a second cannot hold a request past it.

    `token` wins over the environment variable named by `token_env`; with neither, requests go
    without an `Authorization` header (a backend that allows anonymous reads).
    `sleep`, `rng` and `clock` are injectable so tests can record backoff without waiting.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        page_size: int = 500,
        token_env: str = "BACKSTAGE_TOKEN",
        token: str | None = None,
        filter: str | list[str] | None = None,
        timeout: float = 30,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        *,
        order_field: str | None = None,
        max_retry_after: float = 120,
        keep_server_relations: bool = False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if page_size < 1:
            # limit=0 makes the real API answer with no items and no nextCursor: a silent empty walk.
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.token_env = token_env
        self.token = token
        self.filters = [filter] if isinstance(filter, str) else list(filter or [])
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.order_field = order_field
        self.keep_server_relations = keep_server_relations
        self.server_relations: dict[str, list[dict[str, Any]]] = {}
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self.counts_exactly = True
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- provider contract -------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, name: str, params: dict[str, Any], options: ChunkOptions, base_dir: Path
    ) -> BackstageApiProvider:
        """The `backstage_api` type of providers.yaml: pages default to the chunk size, at most 500."""
        params = dict(params)
        params.setdefault("page_size", min(500, options.chunk_size))
        return cls(name=name, **params)

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        """Hold one HTTP client (one connection pool, on one event loop) for all pages of a run."""
        with self._session():
            yield

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        if self._client is not None:  # nested: the outer session serves
            yield
            return
        loop = asyncio.new_event_loop()
        self._loop, self._client = loop, self._new_client()
        try:
            yield
        finally:
            client, self._client, self._loop = self._client, None, None
            try:
                loop.run_until_complete(client.aclose())
            finally:
                loop.close()

    def next(self, cursor: Any) -> Page:
        """Fetch the page after `cursor` (None: the first page), checking the walk as it goes.

        The returned cursor is `{"next": "<server cursor>", "walk": {…}}`, or None together with
        `done=True`. Raises `WalkInDoubt` when the walk can no longer be trusted (module docstring).
        """
        server_cursor, walk = self._walk_state(cursor)
        params: list[tuple[str, str]] = [("limit", str(self.page_size))]
        if server_cursor is None:
            params += self._query_params()
        else:
            params.append(("cursor", server_cursor))

        with self._session():
            try:
                body = self._get_json(BY_QUERY_PATH, params)
            except _CursorRefused as exc:
                raise WalkInDoubt(f"{self.name}: the source no longer honours the stored cursor ({exc})") from exc
            items, total, next_cursor = self._page_parts(body)
            if server_cursor is None:
                walk = {"head": _uid(items[0]) if items else None, "total": total, "pages": 0, "recent": []}
            self._check_page(walk, server_cursor, next_cursor)
            walk = {**walk, "pages": walk["pages"] + 1,
                    "recent": [*walk["recent"], _short_hash(next_cursor)][-RECENT_CURSORS:] if next_cursor else walk["recent"]}
            if walk["total"] is not None and total is not None and total != walk["total"] and not walk.get("doubt"):
                walk["doubt"] = (f"{self.name}: page {walk['pages']} of the walk: the source reports {total} entities, "
                                 f"{walk['total']} when the walk started")
            done = not next_cursor
            doubt = None
            if done and walk["pages"] > 1:
                # The walk spanned several requests, maybe several processes and a source restart:
                # a fresh look at the head of the source tells whether it is still the same one.
                total, doubt = self._check_head(walk)
                doubt = walk.get("doubt") or doubt

        entities: list[RawEntity] = []
        rejections: list[Rejection] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                rejections.append(
                    Rejection(
                        location=f"url:{self._url(BY_QUERY_PATH)}",
                        message=f"item {index} of the page is a {type(item).__name__}, not an entity object: {_preview(item)}",
                        doc_index=index,
                        rule="object",
                        value=_preview(item),
                    )
                )
                continue
            entities.append(RawEntity(entity=self._clean(item), location=self._location(item)))

        return Page(
            entities=entities,
            cursor=None if done else {"next": next_cursor, "walk": walk},
            done=done,
            rejections=rejections,
            total=total,
            doubt=doubt,
        )

    def still_present(self, refs: list[str]) -> set[str]:
        """Which of `refs` the source still serves (`POST by-refs`, nulls for missing entities).

        The sweep's last guard: a removal candidate the source still holds is not removed.
        """
        present: set[str] = set()
        with self._session():
            for start in range(0, len(refs), CONFIRM_BATCH):
                batch = refs[start:start + CONFIRM_BATCH]
                body = self._request_json("POST", BY_REFS_PATH, json={
                    "entityRefs": batch, "fields": ["kind", "metadata.namespace", "metadata.name"]})
                items = body.get("items")
                if not isinstance(items, list) or len(items) != len(batch):
                    raise ProviderError(f"POST {self._url(BY_REFS_PATH)}: expected {len(batch)} items in request order, got {_preview(body)}")
                for ref, item in zip(batch, items):
                    if item is not None:
                        present.add(ref)
        return present

    # -- the walk ----------------------------------------------------------------------------

    def _query_params(self) -> list[tuple[str, str]]:
        params = [("filter", f) for f in self.filters]
        if self.order_field:
            params.append(("orderField", self.order_field))
        return params

    def _page_parts(self, body: dict[str, Any]) -> tuple[list[Any], int | None, str | None]:
        items = body.get("items")
        if not isinstance(items, list):
            raise ProviderError(f"{self._url(BY_QUERY_PATH)} answered without an 'items' list: {_preview(body)}")
        page_info = body.get("pageInfo") or {}
        next_cursor = page_info.get("nextCursor") if isinstance(page_info, dict) else None
        if next_cursor is not None and not isinstance(next_cursor, str):
            raise ProviderError(f"{self._url(BY_QUERY_PATH)} answered with a non-string nextCursor: {_preview(next_cursor)}")
        total = body.get("totalItems")
        return items, (total if isinstance(total, int) and not isinstance(total, bool) else None), next_cursor or None

    def _check_page(self, walk: dict[str, Any], server_cursor: str | None, next_cursor: str | None) -> None:
        where = f"{self.name}: page {walk['pages'] + 1} of the walk"
        if next_cursor is not None and (next_cursor == server_cursor or _short_hash(next_cursor) in walk["recent"]):
            raise WalkInDoubt(f"{where}: the source handed back a cursor already seen in this walk (a cursor loop)")
        if walk["total"] is not None and next_cursor is not None:
            # Twice the pages the reported total needs (entities added while walking stay well
            # inside it); beyond that the walk is going round in circles longer than RECENT_CURSORS.
            expected = max(1, math.ceil(walk["total"] / self.page_size))
            bound = 2 * expected + 2
            if walk["pages"] + 1 >= bound:
                raise WalkInDoubt(f"{where}: still not at the end after {walk['pages'] + 1} pages although "
                                  f"{walk['total']} entities fit in {expected} pages of {self.page_size}")

    def _check_head(self, walk: dict[str, Any]) -> tuple[int | None, str | None]:
        """(the source's total now, why the walk is in doubt or None): its first entity and total
        must still be those the walk started with."""
        body = self._get_json(BY_QUERY_PATH, [("limit", "1"), *self._query_params()])
        items, total, _ = self._page_parts(body)
        head = _uid(items[0]) if items else None
        if head != walk["head"]:
            return total, (f"{self.name}: the source changed during the walk: its first entity is now "
                           f"{head!r}, it was {walk['head']!r} (a restart or a reorder)")
        if walk["total"] is not None and total != walk["total"]:
            return total, (f"{self.name}: the source changed during the walk: it now reports {total} entities, "
                           f"{walk['total']} when the walk started")
        return total, None

    def _walk_state(self, cursor: Any) -> tuple[str | None, dict[str, Any]]:
        if cursor is None:
            return None, {}
        if isinstance(cursor, str):
            # A cursor that went through a store as text rather than as JSON.
            try:
                cursor = json.loads(cursor)
            except ValueError as exc:
                raise ProviderError(f"provider {self.name}: cursor is not JSON: {cursor[:100]!r}") from exc
        if not isinstance(cursor, dict) or not isinstance(cursor.get("next"), str):
            raise ProviderError(f'provider {self.name}: expected a cursor like {{"next": "..."}}, got {cursor!r:.100}')
        walk = cursor.get("walk")
        if not (isinstance(walk, dict) and isinstance(walk.get("pages"), int) and isinstance(walk.get("recent"), list)):
            # A cursor stored by an older version carries no walk state: nothing to check it against.
            raise WalkInDoubt(f"{self.name}: the stored cursor carries no walk state to verify the walk with")
        return cursor["next"], walk

    # -- HTTP --------------------------------------------------------------------------------

    def _new_client(self) -> httpx.AsyncClient:
        headers = {"Accept": "application/json"}
        token = self.token if self.token is not None else env_value(self.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request under a total deadline of `timeout` seconds (connect, headers and body)."""
        assert self._loop is not None and self._client is not None
        try:
            return self._loop.run_until_complete(
                asyncio.wait_for(self._client.request(method, path, **kwargs), timeout=self.timeout))
        except asyncio.TimeoutError as exc:
            raise httpx.TimeoutException(f"no complete answer within the {self.timeout:g} s deadline") from exc

    def _get_json(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        return self._request_json("GET", path, params=params)

    def _request_json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = self._url(path)
        attempts = self.max_retries + 1
        last_problem = ""
        for attempt in range(1, attempts + 1):
            try:
                response = self._send(method, path, **kwargs)
                status = response.status_code
                if status < 400:
                    return self._decode(response, url)
            except httpx.TransportError as exc:  # connection refused/reset, deadline, truncated body
                last_problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = self._backoff(attempt)
            except ProviderError as exc:  # a body that is not the JSON object promised: truncated
                last_problem = str(exc)
                delay = self._backoff(attempt)
            else:
                if status == 429:
                    last_problem = f"HTTP 429 {_error_message(response)}"
                    retry_after = self._retry_after(response)
                    if retry_after is not None and retry_after > self.max_retry_after:
                        raise ProviderError(
                            f"{method} {url}: HTTP 429, server asks to retry after {retry_after:.0f} s, longer than the "
                            f"{self.max_retry_after:.0f} s this provider waits in-process (attempt {attempt} of {attempts})"
                        )
                    delay = retry_after if retry_after is not None else self._backoff(attempt)
                elif status >= 500:
                    last_problem = f"HTTP {status} {_error_message(response)}"
                    delay = self._backoff(attempt)
                elif status == 400 and any(k == "cursor" for k, _ in kwargs.get("params") or ()):
                    raise _CursorRefused(self._client_error(url, response))
                else:
                    raise ProviderError(self._client_error(url, response))
            if attempt < attempts:
                self._sleep(delay)
        raise ProviderError(f"{method} {url} failed after {attempts} attempts; last: {last_problem}")

    def _decode(self, response: httpx.Response, url: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderError(f"{response.request.method} {url}: HTTP {response.status_code} but the body is not JSON ({exc}): {response.text[:200]!r}") from exc
        if not isinstance(body, dict):
            raise ProviderError(f"{response.request.method} {url}: expected a JSON object, got {_preview(body)}")
        return body

    def _client_error(self, url: str, response: httpx.Response) -> str:
        status = response.status_code
        detail = _error_message(response)
        if status == 401:
            source = "the token passed to the provider" if self.token is not None else f"${self.token_env}"
            state = "was rejected" if self.token is not None or env_value(self.token_env) else "is not set"
            return f"GET {url}: HTTP 401 Unauthorized: the bearer token is missing or wrong ({source} {state}). {detail}".rstrip()
        if status == 403:
            return f"GET {url}: HTTP 403 Forbidden: the token is valid but may not read the catalog. {detail}".rstrip()
        return f"GET {url}: HTTP {status} (not retried: a client error does not go away by retrying). {detail}".rstrip()

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter (`model.retry.backoff_delay`)."""
        return backoff_delay(attempt, self.backoff_base, self.backoff_max, self._rng)

    def _retry_after(self, response: httpx.Response) -> float | None:
        """`Retry-After` in seconds or as an HTTP date (`model.retry.parse_retry_after`)."""
        return parse_retry_after(response.headers.get("Retry-After"), self._clock())

    # -- entities ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _location(self, item: dict[str, Any]) -> str:
        kind = item.get("kind")
        meta = item.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(kind, str) or not isinstance(name, str):
            # Validation rejects it with the precise reason; the location only says where it was served.
            return f"url:{self._url(BY_QUERY_PATH)}"
        namespace = meta.get("namespace") or "default"
        parts = "/".join(quote(str(p), safe="") for p in (kind.lower(), namespace, name))
        return f"url:{self._url(BY_NAME_PATH)}/{parts}"

    def _clean(self, item: dict[str, Any]) -> dict[str, Any]:
        relations = item.pop("relations", None)
        for key in SERVER_MANAGED_TOP_LEVEL:
            item.pop(key, None)
        meta = item.get("metadata")
        if isinstance(meta, dict):
            for key in SERVER_MANAGED_METADATA:
                meta.pop(key, None)
        if self.keep_server_relations and isinstance(meta, dict):
            try:
                ref = canonical_ref(item["kind"], meta.get("namespace"), meta["name"])
            except (KeyError, TypeError, AttributeError):
                ref = None
            if ref is not None:
                self.server_relations[ref] = list(relations or [])
        return item


class _CursorRefused(ProviderError):
    """HTTP 400 on a request that carried a server cursor: the source no longer honours it."""


def _uid(item: Any) -> str | None:
    meta = item.get("metadata") if isinstance(item, dict) else None
    uid = meta.get("uid") if isinstance(meta, dict) else None
    return uid if isinstance(uid, str) else None


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _error_message(response: httpx.Response) -> str:
    """Backstage's error body is `{"error": {"name", "message"}, ...}`; fall back to the raw text."""
    try:
        body = response.json()
        error = body["error"]
        return f"{error.get('name', 'Error')}: {error.get('message', '')}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:200]


def _preview(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
