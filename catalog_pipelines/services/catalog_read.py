"""The catalog read API as a use case: Backstage's catalog read endpoints over this project's store.

Every operation takes the caller (`Caller`: anonymous-allowed, a service, or a user ref) and the
request's parameters as Backstage's router receives them, and answers what Backstage answers:
entities with `metadata.uid`, `metadata.etag`, `relations` (`type`, `targetRef`, both directions)
and the `backstage.io/managed-by-location` annotations; `{items, totalItems, pageInfo}` for
by-query; `{items}` with nulls for by-refs; `{facets}`. Errors are `ApiError`s named as Backstage's
(`InputError` 400, `NotFoundError` 404, `NotAllowedError` 403, `AuthenticationError` 401); the
web door renders them in Backstage's error body.

The parsing follows plugin-catalog-backend 3.2 (Backstage 1.45): `filter` params are ORed, the
`key=value` statements within one are ANDed (values of one key ORed), a bare `key` means the key
exists, keys and values match case-insensitively; `fields` projects dot-paths (annotation keys
with dots included); `orderField=field,asc|desc`; cursors are opaque base64 JSON.

Reads are filtered by RBAC (`catalog.entity.read`): the caller's decision becomes one more filter
node (`access_filter`), applied to pages, totals, by-refs, single lookups and facets alike, so a
conditional grant such as IS_ENTITY_OWNER hides the same entities everywhere. Services (static
tokens) and anonymous callers of a server started with --allow-anonymous read everything.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from catalog_pipelines.storage import catalog_query as q
from catalog_pipelines.storage.catalog_search import entity_uid

if TYPE_CHECKING:
    import sqlalchemy as sa

    from analytics.rbac import Condition, Subject

ENTITY_READ = "catalog.entity.read"
DEFAULT_LIMIT = 200  # Backstage's by-query default
ALL_BATCH = 10_000  # GET /entities without paging reads in keyset batches of this size
ANNOTATION_LOCATION = "backstage.io/managed-by-location"
ANNOTATION_ORIGIN_LOCATION = "backstage.io/managed-by-origin-location"


class ApiError(Exception):
    name = "Error"
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InputError(ApiError):
    name, status = "InputError", 400


class AuthenticationError(ApiError):
    name, status = "AuthenticationError", 401


class NotAllowedError(ApiError):
    name, status = "NotAllowedError", 403


class NotFoundError(ApiError):
    name, status = "NotFoundError", 404


@dataclass(frozen=True)
class Caller:
    kind: str  # "anonymous" | "service" | "user"
    name: str  # the service's name, or the user's canonical ref


# ----------------------------------------------------------------------------- parameter parsing


def parse_filter(filter_params: Sequence[str]) -> q.Filter | None:
    """Backstage's parseEntityFilterParams: each `filter` param is one alternative (ORed)."""
    outer: list[q.Filter] = []
    for text in filter_params:
        statements = [p.strip() for p in text.split(",") if p.strip()]
        if not statements:
            continue
        by_key: dict[str, list[str] | None] = {}
        for statement in statements:
            key, sep, value = statement.partition("=")
            key = key.strip() if sep else statement
            if not key:
                raise InputError(f"Invalid filter, '{statement}' is not a valid statement (expected a string on the form a=b or a= or a)")
            values = by_key.setdefault(key, None)
            if sep:
                by_key[key] = [*(values or []), value.strip()]
        inner = [q.Match(k, None if v is None else tuple(v)) for k, v in by_key.items()]
        outer.append(inner[0] if len(inner) == 1 else q.AllOf(tuple(inner)))
    if not outer:
        return None
    return outer[0] if len(outer) == 1 else q.AnyOf(tuple(outer))


def _path_value(entity: Any, field: str) -> tuple[list[str], Any]:
    """Backstage's getPathArrayAndValue: dot-path segments, joining segments while no key matches
    (so `metadata.annotations.backstage.io/x` finds the annotation key with dots)."""
    parts = field.split(".")
    path: list[str] = []
    current = entity
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif i + 1 < len(parts):
            parts[i + 1] = f"{part}.{parts[i + 1]}"
        else:
            return path, None
        i += 1
    return path, current


def parse_fields(fields_params: Sequence[str], extra: Sequence[str] = ()) -> Callable[[dict], dict] | None:
    """Backstage's parseEntityTransformParams: a projection to the listed dot-paths, or None."""
    fields = list(dict.fromkeys(f.strip() for f in [*extra, *(p for param in fields_params for p in param.split(","))] if f.strip()))
    if not fields:
        return None
    array_field = next((f for f in fields if "[" in f), None)
    if array_field:
        raise InputError(f'Invalid field "{array_field}", array type fields are not supported')

    def project(entity: dict) -> dict:
        out: dict = {}
        for field in fields:
            path, value = _path_value(entity, field)
            if value is None or not path:
                continue
            target = out
            for part in path[:-1]:
                target = target.setdefault(part, {})
            target[path[-1]] = value
        return out

    return project


def parse_order_field(params: Sequence[str]) -> q.Order | None:
    """`orderField=metadata.name,desc`; Backstage uses the first and ignores the rest."""
    orders = []
    for text in params:
        field, _, order = text.partition(",")
        if order and order not in ("asc", "desc"):
            raise InputError("Invalid order field order, must be asc or desc")
        orders.append(q.Order(field.lower(), order == "desc"))
    return orders[0] if orders else None


def parse_order(params: Sequence[str]) -> q.Order | None:
    """GET /entities' `order=asc:metadata.name` (the first one orders; ties by ref)."""
    orders = []
    for text in params:
        head, sep, field = text.partition(":")
        if not sep or head not in ("asc", "desc") or not field:
            raise InputError(f'Invalid order parameter "{text}", expected "<asc or desc>:<field name>"')
        orders.append(q.Order(field.lower(), head == "desc"))
    return orders[0] if orders else None


def _int_param(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InputError(f"request/query/{name} must be integer") from None


def filter_to_json(node: q.Filter | None) -> Any:
    if node is None:
        return None
    if isinstance(node, q.Match):
        return {"key": node.key, **({} if node.values is None else {"values": list(node.values)})}
    if isinstance(node, q.AllOf):
        return {"allOf": [filter_to_json(i) for i in node.items]}
    if isinstance(node, q.AnyOf):
        return {"anyOf": [filter_to_json(i) for i in node.items]}
    if isinstance(node, q.Not):
        return {"not": filter_to_json(node.item)}
    raise TypeError(node)


def filter_from_json(data: Any) -> q.Filter | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("filter must be an object")
    if "key" in data:
        values = data.get("values")
        if not isinstance(data["key"], str) or (values is not None and not all(isinstance(v, str) for v in values)):
            raise ValueError("filter key and values must be strings")
        return q.Match(data["key"], None if values is None else tuple(values))
    if "allOf" in data:
        return q.AllOf(tuple(filter_from_json(i) for i in data["allOf"]))
    if "anyOf" in data:
        return q.AnyOf(tuple(filter_from_json(i) for i in data["anyOf"]))
    if "not" in data:
        return q.Not(filter_from_json(data["not"]))
    raise ValueError("unknown filter node")


@dataclass
class Cursor:
    """By-query position: the query it continues plus where (Backstage's cursor fields)."""

    filter: q.Filter | None
    order: q.Order | None
    full_text: q.FullText | None
    position: list[Any] | None
    is_previous: bool
    first: list[Any] | None
    total: int

    def encode(self) -> str:
        data = {
            "filter": filter_to_json(self.filter),
            "orderFields": [] if self.order is None else [{"field": self.order.field, "order": "desc" if self.order.descending else "asc"}],
            "fullTextFilter": None if self.full_text is None else {"term": self.full_text.term, "fields": list(self.full_text.fields)},
            "orderFieldValues": self.position,
            "isPrevious": self.is_previous,
            "firstSortFieldValues": self.first,
            "totalItems": self.total,
        }
        return base64.b64encode(orjson.dumps(data)).decode()

    @classmethod
    def decode(cls, text: str) -> "Cursor":
        try:
            data = orjson.loads(base64.b64decode(text.encode(), validate=False))
            orders = data["orderFields"]
            order = q.Order(orders[0]["field"], orders[0]["order"] == "desc") if orders else None
            text_filter = data.get("fullTextFilter")
            full_text = q.FullText(text_filter["term"], tuple(text_filter["fields"])) if text_filter else None
            position = data["orderFieldValues"]
            if position is not None and (not isinstance(position, list) or len(position) not in (1, 2)):
                raise ValueError("orderFieldValues")
            return cls(filter_from_json(data.get("filter")), order, full_text, position, bool(data["isPrevious"]),
                       data.get("firstSortFieldValues"), int(data["totalItems"]))
        except Exception as exc:  # any malformed cursor is the caller's error
            raise InputError(f"Malformed cursor: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------ access


def condition_filter(condition: "Condition", subject: "Subject") -> q.Filter:
    """An RBAC condition (analytics/rbac.py) as a filter on catalog entities."""
    from analytics.rbac import ENTITY, RULES, ownership_claims

    if condition.op == "allOf":
        return q.AllOf(tuple(condition_filter(c, subject) for c in condition.children))
    if condition.op == "anyOf":
        return q.AnyOf(tuple(condition_filter(c, subject) for c in condition.children))
    if condition.op == "not":
        return q.Not(condition_filter(condition.children[0], subject))
    rule, params = condition.rule or "", condition.params
    if ENTITY not in RULES[rule].resource_types:
        return q.Nothing()  # a rule about another resource type matches no entity
    if rule == "IS_ENTITY_OWNER":
        return q.OwnedBy(frozenset(r.lower() for r in ownership_claims(subject, params)))
    if rule == "IS_ENTITY_KIND":
        return q.KindIn(frozenset(k.lower() for k in params["kinds"]))
    if rule == "IS_RESOURCE":
        return q.RefIn(frozenset(r.lower() for r in params["refs"]))
    if rule == "IS_MEMBER":
        return q.RefIn(subject.groups if params.get("nested") else subject.direct_groups)
    if rule == "IS_OWNER":
        return q.RefIn(subject.owned_groups)
    return q.Nothing()


# ------------------------------------------------------------------------------------ reader


class CatalogReader:
    """The read operations over one catalog database. `authorizer` (a `PolicyAuthorizer`) decides
    users' reads; None lets every identified caller read everything."""

    def __init__(self, engine: "sa.Engine", authorizer: Any = None):
        self.engine = engine
        self.authorizer = authorizer

    # -- access
    def access_filter(self, caller: Caller) -> q.Filter | None:
        """None: everything; otherwise the filter of what `caller` may read."""
        if caller.kind in ("anonymous", "service") or self.authorizer is None:
            return None
        from analytics.rbac import ALLOW, CONDITIONAL

        decision = self.authorizer.decide(caller.name, ENTITY_READ)
        if decision.result == ALLOW:
            return None
        if decision.result == CONDITIONAL and decision.condition is not None and decision.subject is not None:
            return condition_filter(decision.condition, decision.subject)
        return q.Nothing()

    @staticmethod
    def _and(access: q.Filter | None, where: q.Filter | None) -> q.Filter | None:
        if access is None:
            return where
        return access if where is None else q.AllOf((access, where))

    # -- rendering
    def _render(self, conn: "sa.Connection", rows: Sequence[q.Row], project: Callable[[dict], dict] | None = None) -> list[dict]:
        relations = q.relations_of(conn, [r.ref for r in rows])
        return [render_entity(r, relations.get(r.ref, []), project) for r in rows]

    # -- operations
    def query_entities(self, caller: Caller, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """GET /entities/by-query."""
        project = parse_fields(params.get("fields", []))
        limit = _int_param(_one(params, "limit"), "limit")
        limit = DEFAULT_LIMIT if limit is None else limit
        if limit < 0:
            raise InputError("request/query/limit must be >= 0")
        access = self.access_filter(caller)
        offset = None
        if _one(params, "cursor"):
            cursor = Cursor.decode(_one(params, "cursor"))
            initial = False
        else:
            term = (_one(params, "fullTextFilterTerm") or "").strip().lower()
            order = parse_order_field(params.get("orderField", []))
            fields = [f.lower() for p in params.get("fullTextFilterFields", []) for f in p.split(",") if f.strip()]
            full_text = q.FullText(term, tuple(fields or [order.field if order else "metadata.uid"])) if term else None
            cursor = Cursor(parse_filter(params.get("filter", [])), order, full_text, None, False, None, -1)
            offset = _int_param(_one(params, "offset"), "offset")
            initial = True
        where = self._and(access, cursor.filter)
        with self.engine.connect() as conn:
            if cursor.total < 0:
                cursor.total = q.count(conn, where=where, full_text=cursor.full_text)
            rows = [] if limit == 0 else q.page(
                conn, where=where, order=cursor.order, full_text=cursor.full_text, position=cursor.position,
                backwards=cursor.is_previous, limit=limit if cursor.is_previous else limit + 1, offset=offset)
            more = limit > 0 and (cursor.is_previous or len(rows) > limit)
            rows = rows[:limit]
            items = self._render(conn, rows, project)

        def position(row: q.Row | None) -> list[Any] | None:
            if row is None:
                return None
            return [row.ref] if cursor.order is None else [row.value, row.ref]

        first = cursor.first if not initial else position(rows[0] if rows else None)
        page_info: dict[str, str] = {}
        if more and rows:
            page_info["nextCursor"] = Cursor(cursor.filter, cursor.order, cursor.full_text, position(rows[-1]), False, first, cursor.total).encode()
        if not initial and rows and position(rows[0]) != cursor.first:
            page_info["prevCursor"] = Cursor(cursor.filter, cursor.order, cursor.full_text, position(rows[0]), True, cursor.first, cursor.total).encode()
        return {"items": items, "totalItems": cursor.total, "pageInfo": page_info}

    def entities(self, caller: Caller, params: Mapping[str, Sequence[str]]) -> tuple[list[dict], str | None]:
        """GET /entities: every matching entity, or a page (limit/offset/after, Backstage's
        offset cursor); returns the entities and, when another page follows, its `after`."""
        where = self._and(self.access_filter(caller), parse_filter(params.get("filter", [])))
        project = parse_fields(params.get("fields", []))
        order = parse_order(params.get("order", []))
        limit = _int_param(_one(params, "limit"), "limit")
        offset = _int_param(_one(params, "offset"), "offset")
        after = _one(params, "after")
        if offset is not None and offset < 0:
            raise InputError("Invalid offset, must be zero or greater")
        if limit is not None and limit <= 0:
            raise InputError("Invalid limit, must be greater than zero")
        if after is not None:
            if not after:
                raise InputError("Invalid after, must not be empty")
            try:
                data = orjson.loads(base64.b64decode(after))
                limit = int(data["limit"]) if data.get("limit") is not None else limit
                offset = int(data["offset"]) if data.get("offset") is not None else offset
            except Exception:
                raise InputError("Malformed after cursor, could not be parsed") from None
        with self.engine.connect() as conn:
            if limit is None and offset is None:
                rows: list[q.Row] = []
                position = None
                while True:
                    batch = q.page(conn, where=where, order=order, position=position, limit=ALL_BATCH)
                    rows.extend(batch)
                    if len(batch) < ALL_BATCH:
                        break
                    position = [batch[-1].ref] if order is None else [batch[-1].value, batch[-1].ref]
                return self._render(conn, rows, project), None
            rows = q.page(conn, where=where, order=order, limit=(limit + 1) if limit is not None else 1_000_000_000, offset=offset or None)
            next_after = None
            if limit is not None and len(rows) > limit:
                rows = rows[:limit]
                next_after = base64.b64encode(orjson.dumps({"limit": limit, "offset": (offset or 0) + limit})).decode()
            return self._render(conn, rows, project), next_after

    def by_refs(self, caller: Caller, body: Any, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        """POST /entities/by-refs: {items} in request order, null for unknown or hidden refs."""
        if not isinstance(body, dict) or not isinstance(body.get("entityRefs"), list) or not all(isinstance(r, str) for r in body["entityRefs"]) \
                or not (body.get("fields") is None or (isinstance(body["fields"], list) and all(isinstance(f, str) for f in body["fields"]))):
            raise InputError("Malformed request body (did you remember to specify an application/json content type?), "
                             "expected {entityRefs: string[], fields?: string[]}")
        refs: list[str] = body["entityRefs"]
        project = parse_fields(params.get("fields", []), body.get("fields") or ())
        where = self._and(self.access_filter(caller), parse_filter(params.get("filter", [])))
        with self.engine.connect() as conn:
            found = q.by_refs(conn, [_canonical(r) for r in refs if _canonical(r)], where)
            rows = list(found.values())
            rendered = dict(zip((r.ref for r in rows), self._render(conn, rows, project)))
        return {"items": [rendered.get(_canonical(r) or "") for r in refs]}

    def _one(self, caller: Caller, ref: str, not_found: str) -> tuple[dict, q.Row]:
        with self.engine.connect() as conn:
            row = q.by_refs(conn, [ref], self.access_filter(caller)).get(ref)
            if row is None:
                raise NotFoundError(not_found)
            return self._render(conn, [row])[0], row

    def by_uid(self, caller: Caller, uid: str) -> dict:
        with self.engine.connect() as conn:
            ref = q.ref_of_uid(conn, uid)
        return self._one(caller, ref or "", f"No entity with uid {uid}")[0]

    def by_name(self, caller: Caller, kind: str, namespace: str, name: str) -> dict:
        ref = f"{kind}:{namespace}/{name}".lower()
        return self._one(caller, ref, f"No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'")[0]

    def ancestry(self, caller: Caller, kind: str, namespace: str, name: str) -> dict:
        """This store keeps no processing parents (Backstage's refresh_state_references): the
        entity is its own root, with the stored Location entity that names its file as parent when
        there is one. Documented in docs/backstage.md."""
        ref = f"{kind}:{namespace}/{name}".lower()
        entity, _ = self._one(caller, ref, f"No such entity {kind.lower()}:{namespace}/{name}")
        return {"rootEntityRef": _display_ref(entity), "items": [{"entity": entity, "parentEntityRefs": []}]}

    def facets(self, caller: Caller, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        keys = [f for f in params.get("facet", []) if f]
        if not keys:
            raise InputError("Missing facet parameter")
        where = self._and(self.access_filter(caller), parse_filter(params.get("filter", [])))
        with self.engine.connect() as conn:
            found = q.facets(conn, [k.lower() for k in keys], where)
        return {"facets": {k: [{"value": v, "count": n} for v, n in found.get(k.lower(), [])] for k in keys}}

    def locations(self, caller: Caller) -> list[dict]:
        """GET /locations: the locations the visible entities came from, as Backstage's rows."""
        self._require_some_access(caller)
        with self.engine.connect() as conn:
            return [{"data": location_row(loc)} for loc in q.locations(conn)]

    def location(self, caller: Caller, location_id: str) -> dict:
        for item in self.locations(caller):
            if item["data"]["id"] == location_id:
                return item["data"]
        raise NotFoundError(f"Found no location with ID {location_id}")

    def location_by_entity(self, caller: Caller, kind: str, namespace: str, name: str) -> dict:
        ref = f"{kind}:{namespace}/{name}".lower()
        entity, row = self._one(caller, ref, f"found no entity for ref {kind}:{namespace}/{name}")
        location = (entity.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_ORIGIN_LOCATION) or row.location
        if not location:
            raise NotFoundError(f"found no origin annotation for ref {kind}:{namespace}/{name}")
        return location_row(location)

    def _require_some_access(self, caller: Caller) -> None:
        if isinstance(self.access_filter(caller), q.Nothing):
            raise NotAllowedError(f"{caller.name} may not read the catalog ({ENTITY_READ})")


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name) or []
    return values[0] if values else None


def _canonical(ref: str) -> str | None:
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    try:
        return parse_entity_ref(ref, default_kind=None).canonical()
    except (EntityRefError, TypeError, ValueError):
        return None


def _display_ref(entity: Mapping[str, Any]) -> str:
    md = entity.get("metadata") or {}
    return f"{str(entity.get('kind', '')).lower()}:{md.get('namespace') or 'default'}/{md.get('name')}"


def location_row(location: str) -> dict[str, str]:
    """A location string (`type:target`) as Backstage's location row, its id derived from it."""
    type_, _, target = location.partition(":")
    return {"id": entity_uid("location|" + location), "type": type_, "target": target}


def render_entity(row: q.Row, relations: Sequence[tuple[str, str]], project: Callable[[dict], dict] | None = None) -> dict:
    """A stored entity as Backstage serves it (before `fields` projection)."""
    entity = orjson.loads(row.body)
    metadata = entity.setdefault("metadata", {})
    metadata.setdefault("namespace", "default")
    if row.location:
        annotations = metadata.setdefault("annotations", {})
        annotations.setdefault(ANNOTATION_LOCATION, row.location)
        annotations.setdefault(ANNOTATION_ORIGIN_LOCATION, row.location)
    metadata.pop("etag", None)
    metadata["uid"] = entity_uid(row.ref)
    entity["relations"] = [{"type": t, "targetRef": target} for t, target in relations]
    # Stable while the served entity is unchanged: a digest of everything else it holds.
    metadata["etag"] = hashlib.sha1(orjson.dumps(entity, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return project(entity) if project else entity


def refresh_search(engine: "sa.Engine") -> dict[str, Any]:
    """Bring the read API's search rows up to date with the entities table (only what was added,
    changed or removed since the last refresh; storage/catalog_search.refresh). Every door calls
    this: the `catalog_snapshot` asset after each ingestion cycle, `serve` at start and every
    `--refresh-interval` seconds, `catalog-pipelines catalog refresh-search`."""
    from catalog_pipelines.storage.catalog_search import refresh

    r = refresh(engine)
    return {"entities_refreshed": r.entities, "entities_removed": r.removed, "search_rows_written": r.rows,
            "seconds": round(r.seconds, 3), "vacuum_analyze_seconds": round(r.maintenance_seconds, 3),
            "index_build_seconds": round(r.index_seconds, 3)}


class SearchRefresher:
    """`serve`'s refresh loop: `refresh_search` every `interval` seconds on a daemon thread, so the
    API's filters, facets and orders lag the entities table by at most `interval` plus one
    refresh's duration (docs/backstage.md). A failed refresh is logged and retried next time."""

    def __init__(self, engine: "sa.Engine", interval: float, log: Callable[[str], None] = print):
        import threading

        self.engine, self.interval, self.log = engine, interval, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="search-refresh", daemon=True)

    def start(self) -> "SearchRefresher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                figures = refresh_search(self.engine)
            except Exception as exc:  # a busy or briefly unreachable database: try again next interval
                self.log(f"search rows refresh failed: {type(exc).__name__}: {exc}")
                continue
            if figures["entities_refreshed"] or figures["entities_removed"]:
                self.log(f"search rows refreshed: {figures}")


def open_reader(url: str | None = None) -> tuple[CatalogReader, dict[str, Any]]:
    """The reader over the settings' catalog database (or `url`), with the RBAC policy of the
    settings: the schema ensured and the search rows refreshed. Returns the reader and the
    refresh's figures."""
    from catalog_pipelines.permissions import PolicyAuthorizer
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.db import ensure_schema, get_engine

    url = url or Settings.from_env().catalog_database_url
    engine = get_engine(url)
    ensure_schema(engine)
    figures = refresh_search(engine)
    return CatalogReader(engine, PolicyAuthorizer.from_env(catalog_url=url)), figures
