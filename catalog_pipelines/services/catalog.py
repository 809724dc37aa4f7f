"""Catalog reads shared by the other services: the database from the settings, the org graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import sqlalchemy as sa

    from analytics.org import OrgGraph


def engine_from_env(*, create: bool = False) -> "sa.Engine":
    """The catalog database the settings name (CATALOG_DATABASE_URL, else the data directory's).

    Only the doors that fill a catalog (`ingest`, `demo`) pass `create=True`; for every reader a
    missing catalog is `NoCatalog`, saying where it looked and what to do, never an empty catalog
    created at a mistyped path that then reports zeros.
    """
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.db import NoCatalog, get_engine, get_existing_engine

    settings = Settings.from_env()
    url = settings.catalog_database_url
    if create:
        return get_engine(url)
    try:
        return get_existing_engine(url)
    except NoCatalog as exc:
        where = ("CATALOG_DATABASE_URL" if "catalog_database_url" in settings.model_fields_set
                 else f"CATALOG_PIPELINES_DATA_DIR={settings.data_dir}")
        raise NoCatalog(f"{exc} ({where}): fix the variable if it is mistyped, or create the catalog with "
                        "`catalog-pipelines ingest` (or `make demo`)") from None


def org_graph(engine: "sa.Engine") -> "OrgGraph":
    """Users and groups of the stored catalog as the org hierarchy."""
    from analytics.org import OrgGraph
    from catalog_pipelines.storage.catalog import CatalogStore

    return OrgGraph.from_entities(CatalogStore(engine).iter_entities(kinds=["User", "Group"]))


class MalformedRef(ValueError):
    """A ref that is not `kind:namespace/name` under Backstage's naming rules."""


class UnknownRef(LookupError):
    """A well-formed ref the catalog does not hold; the message suggests near matches."""


def parse_ref(text: str, default_kind: str = "component") -> str:
    """The canonical ref `text` names; MalformedRef (saying which part breaks which rule) when it
    is not a ref at all, so `api::/x` is reported as malformed, not as an entity that is missing."""
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref
    from catalog_pipelines.model.validators import is_valid_entity_name, is_valid_kind, is_valid_namespace

    try:
        ref = parse_entity_ref(text, default_kind=default_kind)
    except EntityRefError as exc:
        raise MalformedRef(f"malformed ref {text!r}: {exc}; expected kind:namespace/name, e.g. component:default/petstore") from None
    for part, value, valid in (("kind", ref.kind, is_valid_kind), ("namespace", ref.namespace, is_valid_namespace),
                               ("name", ref.name, is_valid_entity_name)):
        if not valid(value):
            raise MalformedRef(f"malformed ref {text!r}: {value!r} is not a valid {part}; "
                               "expected kind:namespace/name, e.g. component:default/petstore")
    return ref.canonical()


def near_refs(candidates: "Iterable[str]", ref: str, limit: int = 3) -> list[str]:
    """Refs among `candidates` whose name looks like `ref`'s (a typo; the same name under another
    kind or namespace), best first, the same kind first among equals."""
    import difflib

    kind = ref.partition(":")[0]
    name = ref.rpartition("/")[2]
    by_name: dict[str, list[str]] = {}
    for candidate in set(candidates):
        by_name.setdefault(candidate.rpartition("/")[2], []).append(candidate)
    close: list[str] = []
    for match in difflib.get_close_matches(name, list(by_name), n=limit, cutoff=0.75):
        close += sorted(by_name[match], key=lambda c: (c.partition(":")[0] != kind, c))
    return [c for c in close if c != ref][:limit]


def unknown_ref(ref: str, candidates: "Iterable[str]", what: str = "entity") -> UnknownRef:
    """`no entity <ref> in the catalog`, with near matches when there are any."""
    near = near_refs(candidates, ref)
    hint = f"; did you mean {' or '.join(near)}?" if near else " (try `catalog-pipelines catalog search`)"
    return UnknownRef(f"no {what} {ref} in the catalog{hint}")


def require_entity(engine: "sa.Engine", text: str, default_kind: str = "component") -> str:
    """The canonical ref of an entity the catalog holds; MalformedRef or UnknownRef otherwise."""
    from catalog_pipelines.storage.catalog import CatalogStore

    ref = parse_ref(text, default_kind)
    store = CatalogStore(engine)
    if store.get_entity(ref) is None:
        raise unknown_ref(ref, store.refs())
    return ref
