"""Real receivers on loopback that capture what the notification tests send.

- `SmtpReceiver`: an aiosmtpd SMTP server; `messages` holds every accepted message (from, to,
  subject, text body). apprise reaches it with `mailto://127.0.0.1:<port>?from=...&to=...&mode=insecure`.
- `WebhookReceiver`: a threaded HTTP server; every POST is recorded with its path and JSON body.
  `fail(path, times)` makes the next `times` requests to `path` answer 500 (`times=None`: always),
  so a flaky or a dead receiver is one line. apprise reaches it with `json://127.0.0.1:<port>/<path>`.
- `refused_url()`: a json:// URL on a port nothing listens on (connection refused).

Start once per module (they cost milliseconds, but a test module shares one of each).
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from helpers import free_port


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    subject: str
    text: str


class SmtpReceiver:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Mail] = []
        self.port = free_port()
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd's hook
                parsed = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
                part = parsed.get_body(preferencelist=("plain",))
                receiver.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), str(parsed["subject"]),
                                              part.get_content() if part is not None else ""))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def url(self, to: str) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=catalog-pipelines@example.org&to={to}&mode=insecure"

    def __enter__(self) -> "SmtpReceiver":
        self._controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._controller.stop()


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    status: int


@dataclass
class WebhookReceiver:
    requests: list[Request] = field(default_factory=list)
    _failures: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._status(self.path)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                receiver.requests.append(Request(self.path, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _status(self, path: str) -> int:
        if path not in self._failures:
            return 200
        left = self._failures[path]
        if left is None:
            return 500
        if left <= 0:
            return 200
        self._failures[path] = left - 1
        return 500

    def fail(self, path: str, times: int | None = None) -> None:
        self._failures[path] = times

    def heal(self, path: str) -> None:
        self._failures.pop(path, None)

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path and r.status == 200]

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def refused_url() -> str:
    return f"json://127.0.0.1:{free_port()}/nobody-listens"
