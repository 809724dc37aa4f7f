"""The HTTP client of the API collectors: httpx with the project's retry policy (`model.retry`).

`ApiClient.get` sends one GET and retries what retrying can fix:
- HTTP 5xx, connection errors, timeouts, a body cut short or not JSON: exponential backoff with
  equal jitter;
- HTTP 429, and HTTP 403 that is a rate limit (GitHub answers 403 for its primary limit, with
  `x-ratelimit-remaining: 0` and `x-ratelimit-reset`, and for its secondary limit, with
  `retry-after` or a message naming it): the server's `Retry-After` (seconds or HTTP date), else the
  rate-limit reset, else backoff (at least `secondary_wait` for a secondary limit without headers);
- a wait the server asks for longer than `max_retry_after` is not sat through: `RateLimited` is
  raised at once, and the collector's caller resumes from the last stored cursor on its next run.
Any other 4xx raises `ApiError` at once (a bad token or a bad parameter does not heal).

Time: `timeout` bounds each request as a whole (connect, headers and a body dripped byte by byte);
`deadline` bounds the whole client's life (all requests and waits): once it would be passed, no
further attempt or wait starts and `DeadlineExceeded` is raised. `sleep`, `clock` (epoch seconds,
for `Retry-After` dates and rate-limit resets) and `monotonic` are injectable, so tests record the
waits instead of waiting. `rate_limited_waits` records every wait asked for by a server.

Paging styles of the vendors (`pages_*`), each guarded by `max_pages`:
- `pages_link`: RFC 8288 `Link: <…>; rel="next"` (GitHub; GitLab, which also sends `x-next-page`),
  always followed on the configured origin (scheme, host, port), never to a host a response names;
- `pages_offset`: PagerDuty's `offset`/`limit` and `more`;
- `pages_start_at`: Jira's legacy `startAt`/`maxResults`/`total`;
  (both stop when the server echoes another `offset`/`startAt` than asked: it served page 1 again,
  as a mock serving one example does, and reading on would count it twice);
- `pages_token`: Jira's `/search/jql` `nextPageToken`/`isLast`;
- `pages_numbered`: SonarQube's `p`/`ps` and `paging.total`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

import httpx

from catalog_pipelines.model.retry import RetryPolicy, server_wait

Params = list[tuple[str, str]]


class ApiError(RuntimeError):
    """A request that failed for good (after retries, or a client error). `status` is the last
    HTTP status, None for a transport failure."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ApiError):
    """The server asks to wait longer than this run waits in-process."""


class DeadlineExceeded(ApiError):
    """The client's total deadline would be passed by another attempt or wait."""


class _BadBody(Exception):
    pass


class ApiClient:
    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        name: str = "api",
        timeout: float = 30.0,
        deadline: float = 3600.0,
        policy: RetryPolicy | None = None,
        secondary_wait: float = 60.0,
        max_pages: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self.deadline = deadline
        self.policy = policy or RetryPolicy()
        self.secondary_wait = secondary_wait
        self.max_pages = max_pages
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._started = monotonic()
        self.requests = 0
        self.retries = 0
        self.rate_limited_waits: list[float] = []
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": "application/json", "User-Agent": "catalog-pipelines", **(headers or {})},
            auth=auth,
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request -------------------------------------------------------------------------

    def get(self, path: str, params: Params | Mapping[str, Any] | None = None,
            *, allow: tuple[int, ...] = ()) -> tuple[int, Any, httpx.Headers]:
        """GET `path` (relative to the base URL, or absolute as a `Link` gives it) and return
        (status, decoded JSON body, headers). Statuses in `allow` (e.g. 404 for "branch not
        protected") are returned instead of raised."""
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        attempts = self.policy.max_retries + 1
        last = ""
        status: int | None = None
        limited = False
        for attempt in range(1, attempts + 1):
            self._check_deadline(url, 0.0)
            self.requests += 1
            try:
                status, body, headers = self._send(url, params)
            except (httpx.TransportError, _BadBody) as exc:
                status = None
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = self.policy.backoff(attempt, self._rng)
            else:
                if status < 400 or status in allow:
                    if isinstance(body, _Undecodable):
                        if status in allow:
                            return status, None, headers
                        last = f"HTTP {status} but the body is not JSON: {body.text!r:.120}"
                        delay = self.policy.backoff(attempt, self._rng)
                    else:
                        return status, body, headers
                elif status == 429 or (status == 403 and self._is_rate_limit(headers, body)):
                    last = f"HTTP {status} {_message(body)}".rstrip()
                    limited = True
                    delay = self._rate_limit_delay(url, status, headers, body, attempt, attempts)
                elif status >= 500:
                    last = f"HTTP {status} {_message(body)}".rstrip()
                    limited = False
                    delay = self.policy.backoff(attempt, self._rng)
                else:
                    raise ApiError(f"GET {url}: HTTP {status} (not retried: a client error does not go away by "
                                   f"retrying). {_message(body)}".rstrip(), status)
            if attempt < attempts:
                self._check_deadline(url, delay, last)
                self.retries += 1
                self._sleep(delay)
        error = RateLimited if limited else ApiError
        raise error(f"GET {url} failed after {attempts} attempts; last: {last}", status)

    def _send(self, url: str, params: Any) -> tuple[int, Any, httpx.Headers]:
        """One attempt under a total `timeout` (connect, headers and the whole body)."""
        remaining = self.deadline - (self._monotonic() - self._started)
        budget = max(0.001, min(self.timeout, remaining))
        started = time.monotonic()
        with self._client.stream("GET", url, params=params, timeout=budget) as response:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() - started > budget:
                    raise httpx.ReadTimeout(f"no complete answer within {budget:g} s")
            raw = b"".join(chunks)
        if not raw.strip():
            return response.status_code, None, response.headers
        try:
            return response.status_code, json.loads(raw), response.headers
        except ValueError:
            if response.status_code < 400:
                # A 2xx whose body does not parse was cut short on the way: retried.
                raise _BadBody(f"HTTP {response.status_code} but the body is not complete JSON: {raw[:120]!r}") from None
            return response.status_code, _Undecodable(raw.decode("utf-8", "replace")), response.headers

    def _is_rate_limit(self, headers: httpx.Headers, body: Any) -> bool:
        if headers.get("retry-after") is not None or headers.get("x-ratelimit-remaining", "").strip() == "0":
            return True
        return "rate limit" in _message(body).lower()

    def _rate_limit_delay(self, url: str, status: int, headers: httpx.Headers, body: Any,
                          attempt: int, attempts: int) -> float:
        wait = server_wait(headers, self._clock())
        if wait is None:
            wait = self.policy.backoff(attempt, self._rng)
            if status == 403:  # GitHub's secondary limit without headers: "wait at least one minute"
                wait = max(wait, self.secondary_wait)
        self.rate_limited_waits.append(wait)
        if wait > self.policy.max_retry_after:
            raise RateLimited(
                f"GET {url}: HTTP {status} rate limited, the server asks to wait {wait:.0f} s, longer than the "
                f"{self.policy.max_retry_after:.0f} s waited in-process (attempt {attempt} of {attempts})", status)
        return wait

    def _check_deadline(self, url: str, delay: float, last: str = "") -> None:
        elapsed = self._monotonic() - self._started
        if elapsed + delay >= self.deadline:
            why = f"; last: {last}" if last else ""
            raise DeadlineExceeded(f"GET {url}: the {self.deadline:g} s deadline of this run is reached "
                                   f"({elapsed:.1f} s spent, next wait {delay:.1f} s){why}")

    # -- paging --------------------------------------------------------------------------------

    def pages_link(self, path: str, params: Params | None = None) -> Iterator[tuple[Any, httpx.Headers]]:
        """Follow `Link: rel="next"` (else GitLab's `x-next-page`) from `path`."""
        url: str | None = path
        query: Params | None = params
        seen: set[str] = set()
        for _ in range(self.max_pages):
            assert url is not None
            _, body, headers = self.get(url, query)
            yield body, headers
            nxt = next_link(headers.get("link"))
            if nxt is None and headers.get("x-next-page", "").strip():
                nxt_page = headers["x-next-page"].strip()
                base = dict(query or [])
                base["page"] = nxt_page
                nxt = str(httpx.URL(self._absolute(url)).copy_with(params=base))
            if nxt is None:
                return
            nxt = self._same_origin(urljoin(self._absolute(url), nxt))
            if nxt in seen:
                raise ApiError(f"GET {url}: the next-page link loops back to {nxt}")
            seen.add(nxt)
            url, query = nxt, None
        raise ApiError(f"GET {path}: still more pages after {self.max_pages} (max_pages)")

    def pages_offset(self, path: str, params: Params, key: str, limit: int = 100) -> Iterator[list[Any]]:
        """PagerDuty: `offset`/`limit`, until `more` is false (or a page comes back empty)."""
        offset = 0
        for _ in range(self.max_pages):
            _, body, _ = self.get(path, [*params, ("limit", str(limit)), ("offset", str(offset))])
            items = _list(body, key, path)
            if offset and _echo_differs(body, "offset", offset):
                return  # the server ignored the offset (served page 1 again): nothing more to read
            yield items
            if not body.get("more") or not items:
                return
            offset += len(items)
        raise ApiError(f"GET {path}: still more pages after {self.max_pages} (max_pages)")

    def pages_start_at(self, path: str, params: Params, key: str, limit: int = 100) -> Iterator[list[Any]]:
        """Jira legacy search: `startAt`/`maxResults`, until `startAt + len(items) >= total`."""
        start = 0
        for _ in range(self.max_pages):
            _, body, _ = self.get(path, [*params, ("startAt", str(start)), ("maxResults", str(limit))])
            items = _list(body, key, path)
            if start and _echo_differs(body, "startAt", start):
                return  # the server ignored startAt (served the first page again)
            yield items
            start += len(items)
            total = body.get("total")
            if not items or not isinstance(total, int) or start >= total:
                return
        raise ApiError(f"GET {path}: still more pages after {self.max_pages} (max_pages)")

    def pages_token(self, path: str, params: Params, key: str, limit: int = 100) -> Iterator[list[Any]]:
        """Jira `/search/jql`: `nextPageToken` until `isLast` (or no token)."""
        token: str | None = None
        seen: set[str] = set()
        for _ in range(self.max_pages):
            query = [*params, ("maxResults", str(limit))] + ([("nextPageToken", token)] if token else [])
            _, body, _ = self.get(path, query)
            items = _list(body, key, path)
            yield items
            token = body.get("nextPageToken")
            if body.get("isLast") or not token or not items:
                return
            if token in seen:
                raise ApiError(f"GET {path}: nextPageToken {token!r:.40} came back twice (a paging loop)")
            seen.add(token)
        raise ApiError(f"GET {path}: still more pages after {self.max_pages} (max_pages)")

    def pages_numbered(self, path: str, params: Params, key: str, size: int = 100) -> Iterator[list[Any]]:
        """SonarQube: `p`/`ps` and `paging: {pageIndex, pageSize, total}`."""
        page = 1
        for _ in range(self.max_pages):
            _, body, _ = self.get(path, [*params, ("p", str(page)), ("ps", str(size))])
            items = _list(body, key, path)
            yield items
            paging = body.get("paging") or {}
            total = paging.get("total") if isinstance(paging, dict) else None
            if not items or not isinstance(total, int) or page * size >= total:
                return
            page += 1
        raise ApiError(f"GET {path}: still more pages after {self.max_pages} (max_pages)")

    def _same_origin(self, url: str) -> str:
        """A next-page link on the configured origin: its path and query, our scheme and host, so
        the token is never sent to a host a response names (a proxy or a mock may name another)."""
        link, base = httpx.URL(url), httpx.URL(self.base_url)
        return str(link.copy_with(scheme=base.scheme, host=base.host, port=base.port))

    def _absolute(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else f"{self.base_url}{url}"


class _Undecodable:
    def __init__(self, text: str) -> None:
        self.text = text


def next_link(header: str | None) -> str | None:
    """The `rel="next"` target of an RFC 8288 `Link` header, or None."""
    if not header:
        return None
    for part in header.split(","):
        if ";" not in part:
            continue
        target, *attrs = part.split(";")
        for attr in attrs:
            name, _, value = attr.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').split():
                return target.strip().lstrip("<").rstrip(">")
    return None


def _echo_differs(body: Any, key: str, sent: int) -> bool:
    """PagerDuty echoes `offset`, Jira `startAt`: a page that says another one was served."""
    echoed = body.get(key) if isinstance(body, dict) else None
    return isinstance(echoed, int) and not isinstance(echoed, bool) and echoed != sent


def _list(body: Any, key: str, path: str) -> list[Any]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ApiError(f"GET {path}: expected a JSON object with a {key!r} list, got {str(body)[:120]}")
    return items


def _message(body: Any) -> str:
    """The error text vendors put in their bodies (GitHub/GitLab `message`, Jira `errorMessages`,
    PagerDuty `error.message`, SonarQube `errors[].msg`)."""
    if isinstance(body, _Undecodable):
        return body.text[:200]
    if not isinstance(body, dict):
        return "" if body is None else str(body)[:200]
    for key in ("message", "error_description"):
        if isinstance(body.get(key), str):
            return body[key]
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message", ""))
    if isinstance(error, str):
        return error
    for key in ("errorMessages", "errors"):
        value = body.get(key)
        if isinstance(value, list) and value:
            first = value[0]
            return str(first.get("msg", first)) if isinstance(first, dict) else str(first)
    return ""
