"""The HTTP door to the ingestion admin operations: Backstage's routes under /api/catalog/incremental/.

Paths, methods and JSON shapes follow Backstage's incremental-ingestion router, so scripts written
against Backstage work here; pause/resume/delay/halt are additions. Every route is a thin call into
`IngestionAdmin`, which checks permissions, changes the ledger and writes the audit log.

Identity is an operator token, sent as a bearer token and resolved to an entity ref by
`IngestionAdmin.authenticate` (permissions.identity_for_token: the same resolution as the Dagster
admin job). A request without a known token gets 401, a caller without the permission 403; both
are audited as refusals (bounded per minute, storage.audit.record_refusal) and change nothing. An
unknown provider gets 404 with Backstage's body for that route.

Served by `catalog-pipelines admin serve` (uvicorn); `create_admin_app` is also what tests use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from catalog_pipelines.services.admin import (
    IngestionAdmin,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from catalog_pipelines.permissions import bearer_token, token_table

PREFIX = "/api/catalog/incremental"

# Backstage answers an unknown provider in two ways depending on the route.
NOT_FOUND_STATUS = "status"  # {success: false, status: {}, last_error}
NOT_FOUND_MESSAGE = "message"  # {success: false, message}


def error_response(request: Request, status: int, name: str, message: str) -> JSONResponse:
    """Backstage's ErrorResponseBody, as its error middleware renders errors (also the catalog
    read API's, web/catalog_api.py)."""
    body = {
        "error": {"name": name, "message": message},
        "request": {"method": request.method, "url": str(request.url.path)},
        "response": {"statusCode": status},
    }
    headers = {"WWW-Authenticate": 'Bearer realm="catalog-pipelines"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _not_found(exc: NotFound, style: str) -> JSONResponse:
    if style == NOT_FOUND_STATUS:
        return JSONResponse({"success": False, "status": {}, "last_error": str(exc)}, status_code=404)
    return JSONResponse({"success": False, "message": str(exc)}, status_code=404)


def create_admin_app(admin: IngestionAdmin, tokens: Mapping[str, str]) -> Starlette:
    """A Starlette app serving the admin routes for `admin`; `tokens` maps operator token (or its
    `sha256:` digest) → identity."""
    tokens = token_table(tokens)

    def route(path: str, method: str, operation: str, call: Callable[[Request, str], Any],
              not_found: str = NOT_FOUND_MESSAGE) -> Route:
        # Sync endpoint: Starlette runs it in its thread pool, which suits the blocking database calls.
        def endpoint(request: Request) -> JSONResponse:
            try:
                actor = admin.authenticate(
                    tokens, bearer_token(request.headers.get("authorization")), operation,
                    request.path_params.get("provider"),
                    source=request.client.host if request.client else "unknown",
                    details={"method": request.method, "path": request.url.path},
                )
            except NotAuthenticated:
                return error_response(request, 401, "AuthenticationError", "a valid bearer token is required")
            try:
                return JSONResponse(call(request, actor))
            except PermissionDenied as exc:
                return error_response(request, 403, "NotAllowedError", str(exc))
            except NotFound as exc:
                return _not_found(exc, not_found)
            except InvalidRequest as exc:
                return error_response(request, 400, "InputError", str(exc))

        return Route(PREFIX + path, endpoint, methods=[method])

    def provider(request: Request) -> str:
        return request.path_params["provider"]

    def hours(request: Request) -> dict[str, Any]:
        value = request.query_params.get("hours")
        return {} if value is None else {"hours": value}

    routes = [
        # Backstage's routes (GET also answers HEAD).
        route("/health", "GET", "health", lambda r, a: admin.health(a)),
        route("/cleanup", "POST", "cleanup", lambda r, a: admin.cleanup(a)),
        route("/providers", "GET", "providers", lambda r, a: admin.providers(a)),
        route("/providers/{provider}", "GET", "status", lambda r, a: admin.status(provider(r), a), NOT_FOUND_STATUS),
        route("/providers/{provider}", "DELETE", "reset", lambda r, a: admin.reset(provider(r), a)),
        route("/providers/{provider}/trigger", "POST", "trigger", lambda r, a: admin.trigger(provider(r), a)),
        route("/providers/{provider}/start", "POST", "start", lambda r, a: admin.start(provider(r), a)),
        route("/providers/{provider}/cancel", "POST", "cancel", lambda r, a: admin.cancel(provider(r), a)),
        route("/providers/{provider}/marks", "GET", "marks", lambda r, a: admin.marks(provider(r), a), NOT_FOUND_STATUS),
        route("/providers/{provider}/marks", "DELETE", "clear_marks", lambda r, a: admin.clear_marks(provider(r), a)),
        # Beyond Backstage: operator controls the state machine honours.
        route("/providers/{provider}/pause", "POST", "pause", lambda r, a: admin.pause(provider(r), a)),
        route("/providers/{provider}/resume", "POST", "resume", lambda r, a: admin.resume(provider(r), a)),
        route("/providers/{provider}/delay", "POST", "delay", lambda r, a: admin.delay(provider(r), a, **hours(r))),
        route("/halt", "POST", "halt_all", lambda r, a: admin.halt_all(a, **hours(r))),
        route("/resume", "POST", "resume_all", lambda r, a: admin.resume_all(a)),
    ]
    return Starlette(routes=routes)
