"""A tiny loopback server that replays vendor-shaped API responses, with the vendors' own paging.

`serve_replay(pages)` serves a mapping `{(vendor, path, query): body}` (what
`analytics.facts.synthetic_apis.vendor_pages` generates, or recorded responses) on 127.0.0.1 and
returns a `ReplayServer` whose `base_url(vendor)` is what a collector's `base_url` should be
(`http://127.0.0.1:PORT/<vendor>`). It lets the demo and tests run the real API collectors end to
end without the internet.

Matching: the request's path under `/<vendor>`, and its query with the paging parameters removed,
canonicalised (sorted `key=value` pairs, `&`-joined, unquoted); a key with the query `""` serves
any query of that path. Unknown paths answer 404 with a vendor-like `{"message": ...}`.

Paging, as each vendor does it, over the list in the body:
- github, gitlab: the body is a JSON array, or an object with one list (`workflow_runs`): `page`/
  `per_page`, `Link: <…>; rel="next"` (GitLab also `x-next-page`, `x-total`);
- pagerduty: `offset`/`limit`, `more`, `offset`, `limit` in the body;
- jira: `/search/jql` `nextPageToken`/`isLast`; `/search` `startAt`/`maxResults`/`total`;
- sonarqube: `p`/`ps`, `paging: {pageIndex, pageSize, total}`.
Imports nothing of the project (a door with no service behind it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

PAGING_PARAMS = frozenset({"page", "per_page", "offset", "limit", "startAt", "maxResults", "nextPageToken",
                           "p", "ps", "total"})
LIST_KEYS = ("workflow_runs", "services", "incidents", "oncalls", "issues", "components")


def canonical_query(query: str | list[tuple[str, str]] | Mapping[str, str]) -> str:
    """The query a replay key uses: paging parameters removed, pairs sorted, `&`-joined."""
    pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(
        query.items() if isinstance(query, Mapping) else query)
    return "&".join(f"{k}={v}" for k, v in sorted(pairs) if k not in PAGING_PARAMS)


class ReplayServer:
    def __init__(self, pages: Mapping[tuple[str, str, str], Any], host: str = "127.0.0.1", port: int = 0,
                 handler: Callable[[Any], type[BaseHTTPRequestHandler]] | None = None) -> None:
        """`handler`: a factory of the request handler class (tests pass one that injects faults)."""
        self.pages = {(vendor, path, canonical_query(query)): body for (vendor, path, query), body in pages.items()}
        self.requests: list[Any] = []
        handler = (handler or _handler)(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="replay", daemon=True)
        self._thread.start()

    def base_url(self, vendor: str) -> str:
        return f"http://{self.host}:{self.port}/{vendor}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lookup(self, vendor: str, path: str, query: str) -> Any:
        key = (vendor, path, canonical_query(query))
        if key in self.pages:
            return self.pages[key]
        return self.pages.get((vendor, path, ""), MISSING)


def serve_replay(pages: Mapping[tuple[str, str, str], Any], host: str = "127.0.0.1", port: int = 0) -> ReplayServer:
    """Start serving `pages` in a background thread; close the returned server when done."""
    return ReplayServer(pages, host, port)


MISSING = object()  # what `lookup` returns for a path nothing serves


def _handler(replay: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the vendors serve
        wbufsize = 1 << 16  # headers and body in one write (no Nagle/delayed-ACK stall per request)
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            vendor, _, rest = parts.path.lstrip("/").partition("/")
            path = "/" + rest
            replay.requests.append(self.path)
            body = replay.lookup(vendor, path, parts.query)
            if body is MISSING:
                self._send(404, {"message": f"Not Found: {path}"})
                return
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            page_body, headers = page_response(vendor, path, query, body, f"http://{replay.host}:{replay.port}", parts)
            self._send(200, page_body, headers)

        def _send(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def _int(query: Mapping[str, str], key: str, default: int) -> int:
    try:
        return max(0, int(query.get(key, default)))
    except ValueError:
        return default


def _list_key(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in LIST_KEYS:
            if isinstance(body.get(key), list):
                return key
    return None


def page_response(vendor: str, path: str, query: dict[str, str], body: Any, origin: str,
          parts: Any) -> tuple[Any, dict[str, str]]:
    key = _list_key(body)
    items = body if isinstance(body, list) else body.get(key) if key else None
    if items is None:
        return body, {}
    if vendor in ("github", "gitlab"):
        size = max(1, _int(query, "per_page", 30))
        page = max(1, _int(query, "page", 1))
        chunk = items[(page - 1) * size: page * size]
        headers: dict[str, str] = {}
        if page * size < len(items):
            nxt = urlencode({**query, "page": str(page + 1)})
            headers["Link"] = f'<{origin}{parts.path}?{nxt}>; rel="next"'
            if vendor == "gitlab":
                headers["x-next-page"] = str(page + 1)
        if vendor == "gitlab":
            headers["x-total"] = str(len(items))
        return (chunk if isinstance(body, list) else {**body, key: chunk, "total_count": len(items)}), headers
    if vendor == "pagerduty":
        limit = max(1, _int(query, "limit", 25))
        offset = _int(query, "offset", 0)
        chunk = items[offset: offset + limit]
        return {**body, key: chunk, "limit": limit, "offset": offset, "more": offset + limit < len(items),
                "total": None}, {}
    if vendor == "jira":
        size = max(1, _int(query, "maxResults", 50))
        if path.endswith("/search/jql"):
            start = _int(query, "nextPageToken", 0)
            chunk = items[start: start + size]
            more = start + size < len(items)
            page_body = {**body, key: chunk, "isLast": not more}
            if more:
                page_body["nextPageToken"] = str(start + size)
            return page_body, {}
        start = _int(query, "startAt", 0)
        return {**body, key: items[start: start + size], "startAt": start, "maxResults": size,
                "total": len(items)}, {}
    if vendor == "sonarqube":
        size = max(1, _int(query, "ps", 100))
        page = max(1, _int(query, "p", 1))
        return {**body, key: items[(page - 1) * size: page * size],
                "paging": {"pageIndex": page, "pageSize": size, "total": len(items)}}, {}
    return body, {}
