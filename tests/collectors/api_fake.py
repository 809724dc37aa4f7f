"""A loopback vendor API that fails on purpose (the pattern of tests/backstage_fake.py, for the API
collectors): it serves vendor-shaped pages like the replay server (same matching and paging,
`catalog_pipelines.web.replay`), and injects scripted faults by request number or by path.

Faults: "500"/"503"; "429" with `retry_after` (seconds or an HTTP date, None for no header);
"403-ratelimit" (GitHub's primary limit: `x-ratelimit-remaining: 0`, `x-ratelimit-reset` = epoch
`reset`); "403-secondary" (GitHub's secondary limit: 403 with `retry-after`); "hang" (no answer for
`seconds`); "truncate" (headers promise the full body, half is sent, the connection closes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from catalog_pipelines.web.replay import MISSING, ReplayServer, page_response


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: str | None = "1"
    reset: float = 0.0
    seconds: float = 5.0


class FaultyApi(ReplayServer):
    def __init__(self, pages: dict[tuple[str, str, str], Any],
                 faults: dict[int, Fault] | None = None,
                 fault_for: Callable[[int, str], Fault | None] | None = None) -> None:
        self.faults = dict(faults or {})
        self.fault_for = fault_for
        self._lock = threading.Lock()
        super().__init__(pages, handler=_handler)
        self.requests: list[tuple[int, str, str]] = []  # (number, path with query, outcome)

    def paths(self, outcome: str | None = "ok") -> list[str]:
        return [p for _, p, o in self.requests if outcome is None or o == outcome]


def _handler(api: FaultyApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body in one write (no Nagle/delayed-ACK stall per request)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            with api._lock:
                number = len(api.requests) + 1
                fault = api.faults.get(number) or (api.fault_for(number, self.path) if api.fault_for else None)
                api.requests.append((number, self.path, fault.kind if fault else "ok"))
            parts = urlsplit(self.path)
            vendor, _, rest = parts.path.lstrip("/").partition("/")
            path = "/" + rest
            if fault and fault.kind == "hang":
                time.sleep(fault.seconds)
            if fault and fault.kind in ("500", "503"):
                return self._send(int(fault.kind), {"message": "Server Error"})
            if fault and fault.kind == "429":
                return self._send(429, {"message": "Too Many Requests"},
                                  {"Retry-After": fault.retry_after} if fault.retry_after is not None else {})
            if fault and fault.kind == "403-ratelimit":
                return self._send(403, {"message": "API rate limit exceeded for installation ID 1."},
                                  {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(fault.reset))})
            if fault and fault.kind == "403-secondary":
                return self._send(403, {"message": "You have exceeded a secondary rate limit."},
                                  {"retry-after": fault.retry_after or "60"})
            body = api.lookup(vendor, path, parts.query)
            if body is MISSING:
                return self._send(404, {"message": "Not Found"})
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            page, headers = page_response(vendor, path, query, body, f"http://{api.host}:{api.port}", parts)
            self._send(200, page, headers, truncate=bool(fault and fault.kind == "truncate"))

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, truncate: bool = False) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(raw[: len(raw) // 2] if truncate else raw)
            if truncate:
                self.close_connection = True
                self.wfile.flush()

    return Handler
