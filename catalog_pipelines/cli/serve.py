"""`catalog-pipelines serve`: Backstage's catalog read API over this project's catalog database.

The routes are web/catalog_api.py; the reads services/catalog_read.py. docs/backstage.md shows the
Backstage `app-config.yaml` lines that send a Backstage app's catalog reads here.
"""

from __future__ import annotations

import logging

import click

log = logging.getLogger("catalog_pipelines.serve")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=7007, show_default=True)
@click.option("--allow-anonymous", is_flag=True, default=False,
              help="Let requests without a token read the whole catalog (local use and tests only).")
@click.option("--refresh-interval", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds between refreshes of the search rows (filters, facets and orders lag ingestion by at most this "
                   "plus one refresh).")
def serve(host: str, port: int, allow_anonymous: bool, refresh_interval: float) -> None:
    """Serve the catalog read API under /api/catalog/ (Backstage's routes and shapes).

    Callers send `Authorization: Bearer <token>`: a static service token from
    CATALOG_PIPELINES_CATALOG_API_TOKENS='TOKEN=service-name,…' (reads everything), or a Backstage
    user token verified against CATALOG_PIPELINES_BACKSTAGE_AUTH_URL's JWKS (reads what the RBAC
    policy's catalog.entity.read grants). Without a token: 401, unless --allow-anonymous.
    """
    import uvicorn

    from catalog_pipelines.services.catalog_read import SearchRefresher, open_reader
    from catalog_pipelines.web.catalog_api import PREFIX, TOKENS_ENV, ApiSecurity, create_catalog_app
    from catalog_pipelines.web.usage_collector import BACKSTAGE_AUTH_URL_ENV, ConfigError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        security = ApiSecurity.from_env(allow_anonymous=allow_anonymous)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if not (security.service_tokens or security.verifier or allow_anonymous):
        raise click.UsageError(f"no callers can authenticate: set {TOKENS_ENV} and/or {BACKSTAGE_AUTH_URL_ENV}, "
                               "or pass --allow-anonymous for local use")
    if allow_anonymous:
        log.warning("--allow-anonymous: requests without a token read the WHOLE catalog, unfiltered by RBAC; "
                    "for local use and tests only")
    reader, figures = open_reader()
    log.info("search rows refreshed at start: %s", figures)
    refresher = SearchRefresher(reader.engine, refresh_interval, log=log.info).start()
    log.info("catalog read API on http://%s:%d%s/ (%d service token(s), user tokens %s)", host, port, PREFIX,
             len(security.service_tokens), "verified" if security.verifier else "not accepted")
    try:
        uvicorn.run(create_catalog_app(reader, security), host=host, port=port, log_level="info")
    finally:
        refresher.stop()
