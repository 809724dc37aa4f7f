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

Fields that the server rewrites on every processing pass (`metadata.uid`, `metadata.etag`, the
legacy `metadata.generation`, `relations`, `status`) are stripped, otherwise every cycle would see
every entity as changed. Relations are derived again from the spec by the model. For comparing the
two, `keep_server_relations=True` records Backstage's own `relations` per entity in
`provider.server_relations` (canonical ref -> list of `{"type", "targetRef"}` as served). That is the
one piece of state this provider keeps between calls, and it is diagnostic only: the ingestion engine
never reads it.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from datetime import timezone
from typing import Any
from urllib.parse import quote

import httpx

from catalog_pipelines.model.entity import RawEntity, Rejection
from catalog_pipelines.model.refs import canonical_ref
from catalog_pipelines.providers.base import Page, ProviderError

BY_QUERY_PATH = "/api/catalog/entities/by-query"
BY_NAME_PATH = "/api/catalog/entities/by-name"

# Written by the server on each processing pass; kept, they would change the content hash of every
# entity on every cycle although nobody changed the entity.
SERVER_MANAGED_METADATA = ("uid", "etag", "generation")
SERVER_MANAGED_TOP_LEVEL = ("relations", "status")


class BackstageApiProvider:
    """An entity provider over a Backstage catalog's `by-query` endpoint.

    `max_retries` counts retries after the first attempt of a request, so a request is tried at most
    `max_retries + 1` times. Retried: HTTP 5xx, 429, connection errors and timeouts, with exponential
    backoff (`backoff_base * 2**retry`, capped at `backoff_max`) and jitter, or the server's
    `Retry-After` on a 429 (seconds or an HTTP date). A `Retry-After` longer than `max_retry_after`
    is not slept through here: the request fails with `ProviderError` at once and the engine's own
    backoff decides when to come back, so one chunk run does not sit idle for minutes. Any other 4xx
    fails at once: retrying a bad token or a bad cursor cannot help.

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
        self._client: httpx.Client | None = None

    # -- provider contract -------------------------------------------------------------------

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        """Hold one HTTP client (one connection pool) for all pages of a run."""
        with self._new_client() as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    def next(self, cursor: Any) -> Page:
        """Fetch the page after `cursor` (None: the first page).

        The returned cursor is `{"next": "<server cursor>"}`, or None together with `done=True`.
        """
        server_cursor = self._server_cursor(cursor)
        params: list[tuple[str, str]] = [("limit", str(self.page_size))]
        if server_cursor is None:
            params += [("filter", f) for f in self.filters]
            if self.order_field:
                params.append(("orderField", self.order_field))
        else:
            params.append(("cursor", server_cursor))

        with self._client_scope() as client:
            body = self._get_json(client, BY_QUERY_PATH, params)

        items = body.get("items")
        if not isinstance(items, list):
            raise ProviderError(f"{self._url(BY_QUERY_PATH)} answered without an 'items' list: {_preview(body)}")
        page_info = body.get("pageInfo") or {}
        next_cursor = page_info.get("nextCursor") if isinstance(page_info, dict) else None
        if next_cursor is not None and next_cursor == server_cursor:
            # A server that hands back the cursor it was given would make the engine loop forever.
            raise ProviderError(f"{self._url(BY_QUERY_PATH)} returned the same cursor it was given; refusing to loop")
        total = body.get("totalItems")

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

        done = not next_cursor
        return Page(
            entities=entities,
            cursor=None if done else {"next": next_cursor},
            done=done,
            rejections=rejections,
            total=total if isinstance(total, int) else None,
        )

    # -- HTTP --------------------------------------------------------------------------------

    def _new_client(self) -> httpx.Client:
        headers = {"Accept": "application/json"}
        token = self.token if self.token is not None else os.environ.get(self.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout)

    @contextlib.contextmanager
    def _client_scope(self) -> Iterator[httpx.Client]:
        # Outside around() (a one-off call from a script) a client lives for this one page.
        if self._client is not None:
            yield self._client
            return
        with self._new_client() as client:
            yield client

    def _get_json(self, client: httpx.Client, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        url = self._url(path)
        attempts = self.max_retries + 1
        last_problem = ""
        for attempt in range(1, attempts + 1):
            try:
                response = client.get(path, params=params)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                last_problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = self._backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return self._decode(response, url)
                if status == 429:
                    last_problem = f"HTTP 429 {_error_message(response)}"
                    retry_after = self._retry_after(response)
                    if retry_after is not None and retry_after > self.max_retry_after:
                        raise ProviderError(
                            f"GET {url}: HTTP 429, server asks to retry after {retry_after:.0f} s, longer than the "
                            f"{self.max_retry_after:.0f} s this provider waits in-process (attempt {attempt} of {attempts})"
                        )
                    delay = retry_after if retry_after is not None else self._backoff(attempt)
                elif status >= 500:
                    last_problem = f"HTTP {status} {_error_message(response)}"
                    delay = self._backoff(attempt)
                else:
                    raise ProviderError(self._client_error(url, response))
            if attempt < attempts:
                self._sleep(delay)
        raise ProviderError(f"GET {url} failed after {attempts} attempts; last: {last_problem}")

    def _decode(self, response: httpx.Response, url: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderError(f"GET {url}: HTTP {response.status_code} but the body is not JSON ({exc}): {response.text[:200]!r}") from exc
        if not isinstance(body, dict):
            raise ProviderError(f"GET {url}: expected a JSON object with 'items', got {_preview(body)}")
        return body

    def _client_error(self, url: str, response: httpx.Response) -> str:
        status = response.status_code
        detail = _error_message(response)
        if status == 401:
            source = "the token passed to the provider" if self.token is not None else f"${self.token_env}"
            state = "was rejected" if self.token is not None or os.environ.get(self.token_env) else "is not set"
            return f"GET {url}: HTTP 401 Unauthorized: the bearer token is missing or wrong ({source} {state}). {detail}".rstrip()
        if status == 403:
            return f"GET {url}: HTTP 403 Forbidden: the token is valid but may not read the catalog. {detail}".rstrip()
        return f"GET {url}: HTTP {status} (not retried: a client error does not go away by retrying). {detail}".rstrip()

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': between half and all of the capped delay.

        Jitter spreads the retries of many workers; keeping the lower half avoids near-zero waits
        that would hammer a server that is already failing.
        """
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None  # unparseable: fall back to our own backoff
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - self._clock())

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

    def _server_cursor(self, cursor: Any) -> str | None:
        if cursor is None:
            return None
        if isinstance(cursor, str):
            # A cursor that went through a store as text rather than as JSON.
            try:
                cursor = json.loads(cursor)
            except ValueError as exc:
                raise ProviderError(f"provider {self.name}: cursor is not JSON: {cursor[:100]!r}") from exc
        if not isinstance(cursor, dict) or not isinstance(cursor.get("next"), str):
            raise ProviderError(f'provider {self.name}: expected a cursor like {{"next": "..."}}, got {cursor!r:.100}')
        return cursor["next"]


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
