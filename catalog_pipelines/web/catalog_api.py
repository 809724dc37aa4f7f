"""The HTTP door to the catalog read API: Backstage's catalog routes under /api/catalog/.

Paths, parameters, bodies, status codes and error bodies are Backstage's (plugin-catalog-backend
3.2, Backstage 1.45), so `@backstage/catalog-client` and Backstage's frontend read this server as
they read Backstage's catalog (docs/backstage.md: pointing a Backstage app's discovery at it).
Every route is a thin call into `services.catalog_read.CatalogReader`.

Who may call (`ApiSecurity`): `Authorization: Bearer …` with a static service token from
CATALOG_PIPELINES_CATALOG_API_TOKENS (`TOKEN=service-name,…`, as Backstage's
`backend.auth.externalAccess` static tokens), or a Backstage user token verified against the
Backstage auth backend's JWKS (CATALOG_PIPELINES_BACKSTAGE_AUTH_URL; the usage collector's
`BackstageTokenVerifier`). Users' reads are filtered by the RBAC policy (`catalog.entity.read`).
Without a token: 401, unless the server was started with --allow-anonymous (local use, tests).

Writes (registering or deleting locations, deleting entities, refresh) answer 403 with
Backstage's read-only-mode error: entities come from this project's providers
(config/providers.yaml), not from API calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from catalog_pipelines.services.catalog_read import ApiError, AuthenticationError, Caller, CatalogReader, InputError, NotAllowedError
from catalog_pipelines.web.admin import error_response
from catalog_pipelines.web.usage_collector import (
    BACKSTAGE_AUTH_URL_ENV,
    BACKSTAGE_ISSUER_ENV,
    AuthRefused,
    BackstageTokenVerifier,
    parse_service_tokens,
)

PREFIX = "/api/catalog"
TOKENS_ENV = "CATALOG_PIPELINES_CATALOG_API_TOKENS"
READONLY_MESSAGE = "This operation not allowed in readonly mode"


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass(frozen=True)
class ApiSecurity:
    """Static service tokens, the Backstage user-token verifier, and whether anonymous reads pass."""

    service_tokens: Mapping[str, str] = field(default_factory=dict)
    verifier: BackstageTokenVerifier | None = None
    allow_anonymous: bool = False

    def __post_init__(self) -> None:
        # identity_for_token compares digests in constant time; the names stay as configured.
        from catalog_pipelines.permissions import token_digest

        object.__setattr__(self, "_by_digest", {token_digest(t): name for t, name in self.service_tokens.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, allow_anonymous: bool = False) -> "ApiSecurity":
        from catalog_pipelines.settings import environ as settings_environ

        env = settings_environ() if environ is None else environ
        auth_url = (env.get(BACKSTAGE_AUTH_URL_ENV) or "").strip()
        verifier = BackstageTokenVerifier(auth_url, issuer=(env.get(BACKSTAGE_ISSUER_ENV) or "").strip() or None) if auth_url else None
        return cls(parse_service_tokens(env.get(TOKENS_ENV, ""), where=TOKENS_ENV), verifier, allow_anonymous)

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller an `Authorization` header proves; `AuthenticationError` otherwise. Blocking."""
        from catalog_pipelines.permissions import bearer_token, identity_for_token

        token = bearer_token(authorization)
        if token is None:
            if self.allow_anonymous:
                return Caller("anonymous", "anonymous")
            raise AuthenticationError("Missing credentials")
        service = identity_for_token(self._by_digest, token)  # type: ignore[attr-defined]
        if service is not None:
            return Caller("service", service)
        if self.verifier is None:
            raise AuthenticationError("Invalid token: not a known service token")
        try:
            return Caller("user", self.verifier.verify(token))
        except AuthRefused as exc:
            if exc.status == 403:
                raise NotAllowedError(str(exc)) from None
            raise AuthenticationError(str(exc)) from None


def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out


def create_catalog_app(reader: CatalogReader, security: ApiSecurity) -> Starlette:
    """A Starlette app serving Backstage's catalog read routes for `reader`."""
    def route(path: str, method: str, call: Callable[[Request, Caller], Response]) -> Route:
        # Sync endpoint: Starlette runs it in its thread pool, which suits the blocking database calls.
        def endpoint(request: Request) -> Response:
            try:
                caller = security.authenticate(request.headers.get("authorization"))
                return call(request, caller)
            except ApiError as exc:
                return error_response(request, exc.status, exc.name, exc.message)

        return Route(PREFIX + path, endpoint, methods=[method])

    def json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return OrjsonResponse(body, status_code=status, headers=dict(headers or {}))

    def entities(request: Request, caller: Caller) -> Response:
        items, after = reader.entities(caller, _params(request))
        headers = {}
        if after is not None:
            params = [(k, v) for k, v in request.query_params.multi_items() if k not in ("offset", "after")]
            from urllib.parse import urlencode

            headers["link"] = f'<{request.url.path}?{urlencode([*params, ("after", after)])}>; rel="next"'
        return json(items, headers=headers)

    def by_refs(request: Request, caller: Caller) -> Response:
        import anyio.from_thread

        raw = anyio.from_thread.run(request.body)
        content_type = request.headers.get("content-type", "")
        try:
            body = orjson.loads(raw) if raw and content_type.startswith("application/json") else None
        except orjson.JSONDecodeError:
            raise InputError("Malformed request body: not JSON") from None
        return json(reader.by_refs(caller, body, _params(request)))

    def path(request: Request, *names: str) -> list[str]:
        return [request.path_params[n] for n in names]

    def readonly(request: Request, caller: Caller) -> Response:
        raise NotAllowedError(READONLY_MESSAGE)

    def health(request: Request) -> Response:
        return json({"status": "ok"})

    routes = [
        route("/entities", "GET", entities),
        route("/entities/by-query", "GET", lambda r, c: json(reader.query_entities(c, _params(r)))),
        route("/entities/by-refs", "POST", by_refs),
        route("/entities/by-uid/{uid}", "GET", lambda r, c: json(reader.by_uid(c, r.path_params["uid"]))),
        route("/entities/by-name/{kind}/{namespace}/{name}", "GET", lambda r, c: json(reader.by_name(c, *path(r, "kind", "namespace", "name")))),
        route("/entities/by-name/{kind}/{namespace}/{name}/ancestry", "GET",
              lambda r, c: json(reader.ancestry(c, *path(r, "kind", "namespace", "name")))),
        route("/entity-facets", "GET", lambda r, c: json(reader.facets(c, _params(r)))),
        route("/locations", "GET", lambda r, c: json(reader.locations(c))),
        route("/locations/{id}", "GET", lambda r, c: json(reader.location(c, r.path_params["id"]))),
        route("/locations/by-entity/{kind}/{namespace}/{name}", "GET",
              lambda r, c: json(reader.location_by_entity(c, *path(r, "kind", "namespace", "name")))),
        # Writes: entities come from the providers (config/providers.yaml), not from API calls.
        route("/entities/by-uid/{uid}", "DELETE", readonly),
        route("/locations", "POST", readonly),
        route("/locations/{id}", "DELETE", readonly),
        route("/refresh", "POST", readonly),
        route("/analyze-location", "POST", readonly),
        Route("/.backstage/health/v1/readiness", health),
        Route("/.backstage/health/v1/liveness", health),
    ]
    return Starlette(routes=routes)
