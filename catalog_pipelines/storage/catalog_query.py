"""The catalog read API's queries: Backstage's filter, order, cursor and facet semantics in SQL.

A filter is a tree of `Match` (Backstage's `{key, values}`: the entity has a search row with that
key, and, when values are given, one of them; keys and values compare lower-cased), `AllOf`,
`AnyOf` and `Not`; the read service builds it from the query string and adds the caller's access
condition (`OwnedBy`, `RefIn`, `KindIn`, `Nothing`) on top, so pages, totals and facets are
filtered by exactly the same predicate. Every node compiles to a predicate on a ref column:
`ref IN (SELECT ref FROM entity_search WHERE key = … AND value IN …)`, served by the index
(key, value, ref). Keys `relations.<type>` read the relations table in both stored directions.

Paging is keyset only (no OFFSET): a page is the rows strictly after (or, going back, before) the
last row's (order value, ref), in the order (value NULLS LAST, ref), both ascending or both
descending; ties on the value are broken by the ref, which is unique and stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import sqlalchemy as sa

from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.catalog_search import UID_KEY
from catalog_pipelines.storage.sql import batched, in_values

# Refs per lookup statement (by-refs, a page's relations). With 1,000 refs in one `= ANY(array)`
# PostgreSQL's planner prefers a sequential scan of the relations (measured at 290k relation
# rows: 400-900 ms); 200 at a time it probes the indexes. Backstage batches by 200 as well.
LOOKUP_BATCH = 200

# relations.<type> keys are lower-cased; the relations table stores Backstage's spelling.
_RELATION_TYPES = {t.lower(): t for t in s.INVERSE_RELATION}


@dataclass(frozen=True)
class Match:
    key: str
    values: tuple[str, ...] | None = None  # None: the key exists


@dataclass(frozen=True)
class AllOf:
    items: tuple["Filter", ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple["Filter", ...]


@dataclass(frozen=True)
class Not:
    item: "Filter"


@dataclass(frozen=True)
class OwnedBy:
    """The entity has an ownedBy relation to one of these canonical refs."""

    refs: frozenset[str]


@dataclass(frozen=True)
class RefIn:
    refs: frozenset[str]


@dataclass(frozen=True)
class KindIn:
    kinds: frozenset[str]  # lower-case


@dataclass(frozen=True)
class Nothing:
    """Matches no entity (an access condition that denies)."""


Filter = Union[Match, AllOf, AnyOf, Not, OwnedBy, RefIn, KindIn, Nothing]


@dataclass(frozen=True)
class Order:
    field: str  # lower-cased search key
    descending: bool = False


@dataclass(frozen=True)
class FullText:
    term: str  # lower-cased, trimmed, not empty
    fields: tuple[str, ...]  # lower-cased search keys


def _relation_match(ref: sa.ColumnElement, type_: str, values: Sequence[str] | None) -> sa.ColumnElement[bool]:
    r = s.relations
    forward = sa.select(r.c.source_ref).where(r.c.type == type_)
    backward = sa.select(r.c.target_ref).where(r.c.type == s.INVERSE_RELATION[type_])
    if values is not None:
        forward = forward.where(r.c.target_ref.in_(list(values)))
        backward = backward.where(r.c.source_ref.in_(list(values)))
    return sa.or_(ref.in_(forward), ref.in_(backward))


def compile_filter(node: Filter | None, ref: sa.ColumnElement) -> sa.ColumnElement[bool]:
    """The predicate `node` puts on the entity ref column `ref`."""
    es = s.entity_search
    if node is None:
        return sa.true()
    if isinstance(node, Match):
        key = node.key.lower()
        values = None if node.values is None else [v.lower() for v in node.values]
        if key.startswith("relations."):
            type_ = _RELATION_TYPES.get(key.removeprefix("relations."))
            return sa.false() if type_ is None else _relation_match(ref, type_, values)
        q = sa.select(es.c.ref).where(es.c.key == key)
        if values is not None:
            q = q.where(es.c.value == values[0]) if len(values) == 1 else q.where(es.c.value.in_(values))
        return ref.in_(q)
    if isinstance(node, AllOf):
        return sa.and_(sa.true(), *(compile_filter(i, ref) for i in node.items))
    if isinstance(node, AnyOf):
        return sa.or_(sa.false(), *(compile_filter(i, ref) for i in node.items))
    if isinstance(node, Not):
        return sa.not_(compile_filter(node.item, ref))
    if isinstance(node, OwnedBy):
        return _relation_match(ref, "ownedBy", sorted(node.refs)) if node.refs else sa.false()
    if isinstance(node, RefIn):
        return ref.in_(sorted(node.refs)) if node.refs else sa.false()
    if isinstance(node, KindIn):
        return ref.in_(sa.select(es.c.ref).where((es.c.key == "kind") & es.c.value.in_(sorted(node.kinds)))) if node.kinds else sa.false()
    if isinstance(node, Nothing):
        return sa.false()
    raise TypeError(f"not a filter node: {node!r}")


def _full_text(text: FullText | None, ref: sa.ColumnElement) -> sa.ColumnElement[bool]:
    if text is None:
        return sa.true()
    es = s.entity_search
    pattern = "%" + text.term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return ref.in_(sa.select(es.c.ref).where(es.c.key.in_(list(text.fields)) & es.c.value.like(pattern, escape="\\")))


@dataclass
class Row:
    ref: str
    body: str
    location: str | None
    value: str | None  # the order field's value (lower-cased), when ordered


def _base(predicate: sa.ColumnElement[bool], order: Order | None) -> tuple[sa.Select, sa.ColumnElement | None]:
    e = s.entities
    if order is None:
        return sa.select(e.c.ref, e.c.body, e.c.location, sa.null().label("value")).where(predicate), None
    o = s.entity_search.alias("o")
    joined = e.outerjoin(o, (o.c.ref == e.c.ref) & (o.c.key == order.field))
    return sa.select(e.c.ref, e.c.body, e.c.location, o.c.value.label("value")).select_from(joined).where(predicate), o.c.value


def _after(val: sa.ColumnElement | None, ref: sa.ColumnElement, position: Sequence[Any], desc: bool) -> sa.ColumnElement[bool]:
    """Rows strictly after `position` = (value, ref) in the order (value NULLS LAST, ref)."""
    v, r = (None, position[-1]) if val is None else (position[0], position[1])
    ref_gt = ref < r if desc else ref > r
    if val is None:
        return ref_gt
    if v is None:
        return sa.and_(val.is_(None), ref_gt)
    return sa.or_(val.is_(None), val < v if desc else val > v, sa.and_(val == v, ref_gt))


def _before(val: sa.ColumnElement | None, ref: sa.ColumnElement, position: Sequence[Any], desc: bool) -> sa.ColumnElement[bool]:
    v, r = (None, position[-1]) if val is None else (position[0], position[1])
    ref_lt = ref > r if desc else ref < r
    if val is None:
        return ref_lt
    if v is None:
        return sa.or_(val.is_not(None), ref_lt)
    return sa.and_(val.is_not(None), sa.or_(val > v if desc else val < v, sa.and_(val == v, ref_lt)))


def page_statement(
    conn: sa.Connection,
    *,
    where: Filter | None,
    order: Order | None = None,
    full_text: FullText | None = None,
    position: Sequence[Any] | None = None,
    backwards: bool = False,
    limit: int,
    offset: int | None = None,
) -> sa.Select:
    """The SELECT of `page` (also what `explain` shows)."""
    e = s.entities
    predicate = sa.and_(compile_filter(where, e.c.ref), _full_text(full_text, e.c.ref))
    q, val = _base(predicate, order)
    desc = order.descending if order else False
    if position is not None:
        q = q.where((_before if backwards else _after)(val, e.c.ref, position, desc))
    reverse = desc != backwards  # the SQL direction
    keys = []
    if val is not None:
        key = val.desc() if reverse else val.asc()
        keys.append(key.nulls_first() if backwards else key.nulls_last())
    keys.append(e.c.ref.desc() if reverse else e.c.ref.asc())
    q = q.order_by(*keys).limit(limit)
    return q.offset(offset) if offset else q


def _ordered_parts(
    *,
    where: Filter | None,
    order: Order,
    full_text: FullText | None,
    position: Sequence[Any] | None,
    backwards: bool,
    limit: int,
) -> list[sa.Select]:
    """A page ordered by a field, as the statements to run in turn until `limit` rows are had.

    The order (value NULLS LAST, ref) is two runs: the entities with a value for the field,
    walked on the index (key, value, ref) from the position on (no sort of the whole filtered
    set, whatever its size), then the entities without one, walked on the entities' ref index.
    Going back, the same two in reverse."""
    e, o = s.entities, s.entity_search.alias("o")
    reverse = order.descending != backwards  # the SQL direction of this walk

    def predicate(ref: sa.ColumnElement) -> sa.ColumnElement[bool]:
        return sa.and_(compile_filter(where, ref), _full_text(full_text, ref))

    def with_value(start: Sequence[Any] | None) -> sa.Select:
        q = (sa.select(e.c.ref, e.c.body, e.c.location, o.c.value.label("value"))
             .select_from(o.join(e, e.c.ref == o.c.ref))
             .where((o.c.key == order.field) & o.c.value.is_not(None) & predicate(o.c.ref)))
        if start is not None:
            here, there = sa.tuple_(o.c.key, o.c.value, o.c.ref), sa.tuple_(sa.literal(order.field), sa.literal(start[0]), sa.literal(start[1]))
            q = q.where(here < there if reverse else here > there)
        keys = (o.c.value.desc(), o.c.ref.desc()) if reverse else (o.c.value.asc(), o.c.ref.asc())
        return q.order_by(*keys).limit(limit)

    def without_value(start_ref: str | None) -> sa.Select:
        o2 = s.entity_search.alias("o2")
        has_value = sa.exists().where((o2.c.ref == e.c.ref) & (o2.c.key == order.field) & o2.c.value.is_not(None))
        q = sa.select(e.c.ref, e.c.body, e.c.location, sa.null().label("value")).where(predicate(e.c.ref) & ~has_value)
        if start_ref is not None:
            q = q.where(e.c.ref < start_ref if reverse else e.c.ref > start_ref)
        return q.order_by(e.c.ref.desc() if reverse else e.c.ref.asc()).limit(limit)

    value, ref = (position[0], position[1]) if position is not None else (None, None)
    if not backwards:
        if position is None:
            return [with_value(None), without_value(None)]
        return [with_value((value, ref)), without_value(None)] if value is not None else [without_value(ref)]
    if position is None or value is None:
        return [without_value(ref), with_value(None)]
    return [with_value((value, ref))]


def page(
    conn: sa.Connection,
    *,
    where: Filter | None,
    order: Order | None = None,
    full_text: FullText | None = None,
    position: Sequence[Any] | None = None,
    backwards: bool = False,
    limit: int,
    offset: int | None = None,
) -> list[Row]:
    """Up to `limit` rows after `position` (or before it, `backwards`), in the requested order
    (returned in that order also when going back). The caller asks for one row more than it
    shows to learn whether another page follows. `offset` only for the API's explicit offset
    parameters (GET /entities?offset=, by-query's first request); cursors never use it."""
    if order is None:
        stmts = [page_statement(conn, where=where, full_text=full_text, position=position, backwards=backwards, limit=limit, offset=offset)]
        skip = 0
    else:
        skip = offset or 0
        stmts = _ordered_parts(where=where, order=order, full_text=full_text, position=position, backwards=backwards, limit=limit + skip)
    rows: list[Row] = []
    for stmt in stmts:
        rows.extend(Row(r.ref, r.body, r.location, r.value) for r in conn.execute(stmt.limit(limit + skip - len(rows))))
        if len(rows) >= limit + skip:
            break
    rows = rows[skip:]
    if backwards:
        rows.reverse()
    return rows


def count_statement(where: Filter | None, full_text: FullText | None = None) -> sa.Select:
    """The count of the entities that pass (each once, whatever the order field's values)."""
    e, es = s.entities, s.entity_search
    if full_text is None and isinstance(where, Match) and where.values is not None and len(where.values) == 1 \
            and not where.key.lower().startswith("relations."):
        # One key = one value (the catalog table's usual first page): an entity has at most one
        # such row (rows are distinct per key/value), so the index range alone counts them,
        # without the semi-join to `entities` (2.6 s at 200k on PostgreSQL, spilling to disk).
        # Between a sweep and the next search refresh it still counts the swept entities.
        return sa.select(sa.func.count()).select_from(es).where(
            (es.c.key == where.key.lower()) & (es.c.value == where.values[0].lower()))
    q, _ = _base(sa.and_(compile_filter(where, e.c.ref), _full_text(full_text, e.c.ref)), None)
    return sa.select(sa.func.count()).select_from(q.subquery())


def count(conn: sa.Connection, *, where: Filter | None, full_text: FullText | None = None) -> int:
    """The number of entities that pass (each once, whatever the order field's values)."""
    return conn.execute(count_statement(where, full_text)).scalar_one()


def by_refs(conn: sa.Connection, refs: Iterable[str], where: Filter | None = None) -> dict[str, Row]:
    """The stored rows of `refs` (canonical) that pass `where`, by ref."""
    e = s.entities
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    out: dict[str, Row] = {}
    for batch in batched(refs, LOOKUP_BATCH):
        q = sa.select(e.c.ref, e.c.body, e.c.location).where(in_values(conn, e.c.ref, batch) & compile_filter(where, e.c.ref))
        out.update((r.ref, Row(r.ref, r.body, r.location, None)) for r in conn.execute(q))
    return out


def ref_of_uid(conn: sa.Connection, uid: str) -> str | None:
    es = s.entity_search
    return conn.execute(sa.select(es.c.ref).where((es.c.key == UID_KEY) & (es.c.value == uid.lower())).limit(1)).scalar()


def relations_of(conn: sa.Connection, refs: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """(type, target) of every relation of each of `refs`, both stored directions, sorted."""
    r = s.relations
    if not refs:
        return {}
    out: dict[str, set[tuple[str, str]]] = {ref: set() for ref in refs}
    inverse = s.INVERSE_RELATION
    for batch in batched(refs, LOOKUP_BATCH):
        forward = sa.select(sa.literal(0).label("d"), r.c.source_ref, r.c.type, r.c.target_ref).where(in_values(conn, r.c.source_ref, batch))
        backward = sa.select(sa.literal(1).label("d"), r.c.source_ref, r.c.type, r.c.target_ref).where(in_values(conn, r.c.target_ref, batch))
        for d, source, type_, target in conn.execute(sa.union_all(forward, backward)).tuples():
            if d == 0:
                out[source].add((type_, target))
            else:
                out[target].add((inverse[type_], source))
    return {ref: sorted(pairs) for ref, pairs in out.items()}


def _facets_statement(keys: Sequence[str], where: Filter | None) -> sa.Select:
    es = s.entity_search
    return (
        # count(*): an entity has one row per distinct (key, value) (catalog_search.search_rows),
        # so no DISTINCT, and the database may hash instead of sorting every row of the keys.
        sa.select(es.c.key, es.c.original_value, sa.func.count())
        .where(es.c.key.in_(list(keys)) & es.c.original_value.is_not(None) & compile_filter(where, es.c.ref))
        .group_by(es.c.key, es.c.original_value)
        .order_by(es.c.key, es.c.original_value)
    )


def facets(conn: sa.Connection, keys: Sequence[str], where: Filter | None) -> dict[str, list[tuple[str, int]]]:
    """For each search key (lower-cased): (original value, number of entities) of the entities
    that pass `where`."""
    es, r = s.entity_search, s.relations
    out: dict[str, list[tuple[str, int]]] = {}
    plain = [k for k in dict.fromkeys(keys) if not k.startswith("relations.")]
    if plain:
        for key, value, n in conn.execute(_facets_statement(plain, where)):
            out.setdefault(key, []).append((value, n))
    for key in dict.fromkeys(k for k in keys if k.startswith("relations.")):
        type_ = _RELATION_TYPES.get(key.removeprefix("relations."))
        if type_ is None:
            continue
        forward = sa.select(r.c.source_ref.label("entity"), r.c.target_ref.label("value")).where(
            (r.c.type == type_) & compile_filter(where, r.c.source_ref))
        backward = sa.select(r.c.target_ref.label("entity"), r.c.source_ref.label("value")).where(
            (r.c.type == s.INVERSE_RELATION[type_]) & compile_filter(where, r.c.target_ref))
        both = sa.union_all(forward, backward).subquery()
        q = sa.select(both.c.value, sa.func.count(sa.distinct(both.c.entity))).group_by(both.c.value).order_by(both.c.value)
        out[key] = [(value, n) for value, n in conn.execute(q)]
    return out


def locations(conn: sa.Connection) -> list[str]:
    """Every distinct location the stored entities came from."""
    e = s.entities
    return list(conn.execute(sa.select(e.c.location).where(e.c.location.is_not(None)).distinct().order_by(e.c.location)).scalars())


def location_of(conn: sa.Connection, ref: str) -> str | None:
    e = s.entities
    return conn.execute(sa.select(e.c.location).where(e.c.ref == ref)).scalar()


def explain(conn: sa.Connection, stmt: sa.Executable) -> str:
    """The database's plan of `stmt`, executed (PostgreSQL: EXPLAIN ANALYZE; SQLite: EXPLAIN
    QUERY PLAN), for docs/backstage.md and the benchmark."""
    compiled = stmt.compile(conn, compile_kwargs={"render_postcompile": True})
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + compiled.string, compiled.params)
        return "\n".join(r[0] for r in rows)
    params = tuple(compiled.params[name] for name in compiled.positiontup) if compiled.positiontup else ()
    return "\n".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params))


def explain_plans(conn: sa.Connection) -> dict[str, str]:
    """The plans of the read API's representative queries on this database."""
    e = s.entities
    component = Match("kind", ("component",))
    name_order = Order("metadata.name")
    some = conn.execute(sa.select(e.c.ref).order_by(e.c.ref).limit(1000)).scalars().all()
    middle = conn.execute(sa.select(s.entity_search.c.value, s.entity_search.c.ref).where(
        s.entity_search.c.key == "metadata.name").order_by(s.entity_search.c.value).limit(1).offset(
        max(0, len(some) // 2))).first()
    plans = {
        "by-query first page (kind=component, limit 100)": page_statement(conn, where=component, limit=101),
        "by-query cursor page (orderField metadata.name)": _ordered_parts(
            where=component, order=name_order, full_text=None, position=list(middle) if middle else [None, ""], backwards=False, limit=101)[0],
        "totalItems (kind=component)": count_statement(component),
        "totalItems (kind=component, spec.lifecycle=production: the semi-join)": count_statement(
            AllOf((component, Match("spec.lifecycle", ("production",))))),
        "by-refs (1000 refs)": sa.select(e.c.ref, e.c.body, e.c.location).where(in_values(conn, e.c.ref, some)),
        "entity-facets (kind, spec.type)": _facets_statement(["kind", "spec.type"], None),
    }
    return {name: explain(conn, stmt) for name, stmt in plans.items()}
