"""The catalog database schema (SQLAlchemy Core).

Catalog tables live in the default schema; the ingestion ledger lives in schema `ingestion` on
PostgreSQL and in the same file on SQLite (mapped away with `schema_translate_map`).

Relations are stored once per pair, in the direction the originating entity declared it
(`source_ref` is always the entity whose spec produced the row); the inverse direction
(`ownerOf` for `ownedBy`, …) is derived when reading. That halves the rows a chunk writes, and a
changed entity's relations are exactly the rows whose `source_ref` is that entity.
"""

from __future__ import annotations

import sqlalchemy as sa

from catalog_pipelines.model import delivery_events as _ev

SCHEMA_VERSION = 4
LEDGER_SCHEMA = "ingestion"

metadata = sa.MetaData()

# Entity refs compare byte-wise on PostgreSQL ("C" collation), as they do on SQLite (BINARY) and
# in Python's sort. Refs are identifiers, not prose, and a locale collation makes every index
# comparison a strcoll call: with "C", the server's CPU for a 200k-entity first cycle fell from
# 15.2 s to 12.5 s (relations: 8.7 s to 6.4 s). Schema version 2 migrates older databases.
REF_COLLATION = "C"
REF = sa.String(512).with_variant(sa.String(512, collation=REF_COLLATION), "postgresql")
PROVIDER = sa.String(255)
TS = sa.DateTime(timezone=True)

schema_version = sa.Table(
    "catalog_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", TS, nullable=False),
)

entities = sa.Table(
    "entities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ref", REF, nullable=False, unique=True),
    sa.Column("kind", sa.String(63), nullable=False),  # lower-case, for filtering
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("provider", PROVIDER, nullable=False),
    sa.Column("location", sa.Text, nullable=True),
    sa.Column("body", sa.Text, nullable=False),  # the entity as JSON
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("first_seen", TS, nullable=False),
    sa.Column("last_changed", TS, nullable=False),
    sa.Index("ix_entities_provider", "provider"),
    sa.Index("ix_entities_kind", "kind"),
)

relations = sa.Table(
    "relations",
    metadata,
    sa.Column("source_ref", REF, primary_key=True),
    sa.Column("type", sa.String(63), primary_key=True),
    sa.Column("target_ref", REF, primary_key=True),
    sa.Index("ix_relations_target", "target_ref"),
    sqlite_with_rowid=False,
)

# The read API's flattened key/value index of entity bodies, as Backstage's `search` table:
# one row per leaf path (arrays give one row per item, plus `<path>.<item>` = true for string
# items), keys and values lower-cased (`original_value` keeps the case, for facets), values over
# 200 characters stored as NULL. Derived data, off ingestion's path: refreshed incrementally from
# `entities` (storage/catalog_search.refresh; `entity_search_state` below says which entities'
# rows are current); relations are not copied here: filters on `relations.<type>` read
# the relations table. The primary key (ref, ordinal) clusters an entity's rows (SQLite: WITHOUT
# ROWID), serving the order field's value of each entity (orderField) and the deletes of rewrites
# and the sweep; the index (key, value, ref) serves every filter as an index-only lookup. One
# B-tree less than a rowid table with a (ref) index: the rows cost ingestion a third less.
# See docs/backstage.md.
entity_search = sa.Table(
    "entity_search",
    metadata,
    sa.Column("ref", REF, primary_key=True),
    sa.Column("ordinal", sa.Integer, primary_key=True, autoincrement=False),  # the row's place among its entity's rows
    sa.Column("key", sa.String(200).with_variant(sa.String(200, collation=REF_COLLATION), "postgresql"), nullable=False),
    sa.Column("value", sa.String(200).with_variant(sa.String(200, collation=REF_COLLATION), "postgresql"), nullable=True),
    sa.Column("original_value", sa.String(200), nullable=True),
    sa.Index("ix_entity_search_key_value", "key", "value", "ref"),
    # Facets: group a key's rows by original value, index-only (without it PostgreSQL read all
    # rows of the table at 200k: 1.7 s). Written by the refresh only, off ingestion's path.
    sa.Index("ix_entity_search_facets", "key", "original_value"),
    sqlite_with_rowid=False,
)

# Which entity version each ref's search rows were built from (the entity's `content_hash` at the
# last refresh): a ref whose hash differs from `entities.content_hash`, or that has no row here,
# is stale; a row here without an entity is a removal the refresh has not applied yet.
entity_search_state = sa.Table(
    "entity_search_state",
    metadata,
    sa.Column("ref", REF, primary_key=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sqlite_with_rowid=False,
)

rejections = sa.Table(
    "rejections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", PROVIDER, nullable=False),
    sa.Column("ingestion_id", sa.Integer, nullable=True),
    sa.Column("chunk", sa.Integer, nullable=True),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("doc_index", sa.Integer, nullable=True),
    sa.Column("ref", REF, nullable=True),
    sa.Column("field", sa.String(255), nullable=True),
    sa.Column("rule", sa.String(255), nullable=True),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("rejected_at", TS, nullable=False),
    sa.Index("ix_rejections_provider_ingestion", "provider", "ingestion_id", "chunk"),
)

removals = sa.Table(
    "removals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ref", REF, nullable=False),
    sa.Column("kind", sa.String(63), nullable=False),
    sa.Column("provider", PROVIDER, nullable=False),
    sa.Column("ingestion_id", sa.Integer, nullable=False),
    sa.Column("cycle", sa.Integer, nullable=False),
    sa.Column("removed_at", TS, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_removals_provider", "provider", "removed_at"),
)

# Catalog history (storage/history.py): one row per change a cycle made, written in the chunk's
# (or the sweep's) transaction. A row never holds the body it introduced: the current body is in
# `entities`, so a version's body is the `previous_body` of the next version of the ref (zlib'd
# JSON), or the entity row while it is the latest. An unchanged entity writes nothing; a first
# cycle writes narrow rows only. `owner`, `lifecycle`, `system` and `relations_hash` let diffs and
# the change summary compare versions without opening bodies.
entity_history = sa.Table(
    "entity_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ref", REF, nullable=False),
    sa.Column("kind", sa.String(63), nullable=True),
    sa.Column("provider", PROVIDER, nullable=False),
    sa.Column("ingestion_id", sa.Integer, nullable=True),
    sa.Column("cycle", sa.Integer, nullable=False),
    sa.Column("chunk", sa.Integer, nullable=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("change", sa.String(16), nullable=False),  # added | changed | removed | rejected
    sa.Column("fields", sa.Text, nullable=True),  # JSON: changed fields, or the rejection's rule and message
    sa.Column("content_hash", sa.String(64), nullable=True),
    sa.Column("owner", REF, nullable=True),
    sa.Column("lifecycle", sa.String(63), nullable=True),
    sa.Column("system", REF, nullable=True),
    sa.Column("relations_hash", sa.String(16), nullable=True),
    # `changed` versions: the declared relations it added and removed ("+type target" / "-type
    # target" lines, "" when none), so a diff composes them instead of deriving bodies' relations.
    sa.Column("relations_delta", sa.Text, nullable=True),
    # `changed` and `removed` versions: the summary of the state they replaced, so a diff knows
    # each entity's state at its earlier point from the first version after it, without a lookup.
    sa.Column("previous_owner", REF, nullable=True),
    sa.Column("previous_lifecycle", sa.String(63), nullable=True),
    sa.Column("previous_system", REF, nullable=True),
    sa.Column("previous_relations_hash", sa.String(16), nullable=True),
    sa.Column("previous_body", sa.LargeBinary, nullable=True),
    # The one index: a ref's versions in order (history, describe --as-of, diffs' second step).
    # Diffs, the change summary and pruning scan by cycle instead: the table holds changes only, and
    # a second index cost a first cycle more than those scans cost the queries.
    sa.Index("ix_entity_history_ref", "ref", "id"),
)

# --- ingestion ledger -------------------------------------------------------------------------

ingestions = sa.Table(
    "ingestions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", PROVIDER, nullable=False),
    sa.Column("cycle", sa.Integer, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("next_action", sa.String(32), nullable=False),
    sa.Column("next_action_at", TS, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("ingestion_completed_at", TS, nullable=True),
    sa.Column("rest_completed_at", TS, nullable=True),
    # 'open' while the cycle runs; a unique token once finished. The unique constraint enforces at
    # most one open cycle per provider, across processes.
    sa.Column("completion_ticket", sa.String(64), nullable=False),
    sa.Column("burst_started_at", TS, nullable=True),
    sa.Column("entities_seen", sa.Integer, nullable=False, default=0),
    sa.Column("removed", sa.Integer, nullable=True),
    sa.Column("sweep_outcome", sa.String(32), nullable=True),
    sa.Column("sweep_message", sa.Text, nullable=True),
    sa.UniqueConstraint("provider", "completion_ticket", name="uq_ingestions_open"),
    sa.Index("ix_ingestions_provider", "provider", "cycle"),
    schema=LEDGER_SCHEMA,
)

ingestion_marks = sa.Table(
    "ingestion_marks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ingestion_id", sa.Integer, sa.ForeignKey(f"{LEDGER_SCHEMA}.ingestions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("cursor_in", sa.Text, nullable=True),  # JSON: where this chunk started
    sa.Column("cursor", sa.Text, nullable=True),  # JSON: where the next chunk resumes
    sa.Column("done", sa.Boolean, nullable=False, default=False),
    sa.Column("entity_count", sa.Integer, nullable=False, default=0),
    sa.Column("added", sa.Integer, nullable=False, default=0),
    sa.Column("changed", sa.Integer, nullable=False, default=0),
    sa.Column("unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("rejected", sa.Integer, nullable=False, default=0),
    sa.Column("source_total", sa.Integer, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", TS, nullable=False),
    sa.UniqueConstraint("ingestion_id", "sequence", name="uq_marks_sequence"),
    schema=LEDGER_SCHEMA,
)

ingestion_mark_entities = sa.Table(
    "ingestion_mark_entities",
    metadata,
    # Unique per provider and ref: two providers emitting the same ref keep separate rows, so one
    # cannot move the other's mark (Backstage's pre-2026 defect).
    sa.Column("provider", PROVIDER, primary_key=True),
    sa.Column("ref", REF, primary_key=True),
    sa.Column("ingestion_id", sa.Integer, nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("seen_at", TS, nullable=False),
    sqlite_with_rowid=False,
    schema=LEDGER_SCHEMA,
)

provider_controls = sa.Table(
    "provider_controls",
    metadata,
    sa.Column("provider", PROVIDER, primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("halted_until", TS, nullable=True),
    sa.Column("updated_by", sa.String(255), nullable=True),
    sa.Column("updated_at", TS, nullable=True),
    schema=LEDGER_SCHEMA,
)

INVERSE_RELATION = {
    "ownedBy": "ownerOf",
    "ownerOf": "ownedBy",
    "partOf": "hasPart",
    "hasPart": "partOf",
    "providesApi": "apiProvidedBy",
    "apiProvidedBy": "providesApi",
    "consumesApi": "apiConsumedBy",
    "apiConsumedBy": "consumesApi",
    "dependsOn": "dependencyOf",
    "dependencyOf": "dependsOn",
    "memberOf": "hasMember",
    "hasMember": "memberOf",
    "childOf": "parentOf",
    "parentOf": "childOf",
}

# Who did what to which target, when, and how it ended (storage/audit.py writes and reads it).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=False), nullable=False),  # UTC
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("action", sa.String(120), nullable=False),
    sa.Column("target", sa.String(1024), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("details", sa.Text, nullable=True),  # JSON
    sa.Index("ix_audit_log_action_at", "action", "at"),
    sa.Index("ix_audit_log_target", "target"),
)

# --- notifications (storage/notifications.py; services/notify.py) ------------------------------
# One row per digest a run tried to deliver (one per recipient and run): where to, how many items,
# the outcome after its retries. The channel is the name in config/notifications.yaml, never the URL
# (apprise URLs carry tokens).
notification_deliveries = sa.Table(
    "notification_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),  # a group ref, or "operators"
    sa.Column("channel", sa.String(120), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # sent | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("backoff_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_notification_deliveries_at", "at"),
)

# The sent-log: every item delivered to a recipient, so that no later run sends it again.
notifications_sent = sa.Table(
    "notifications_sent",
    metadata,
    sa.Column("recipient", sa.String(320), primary_key=True),
    sa.Column("item_key", sa.String(512), primary_key=True),
    sa.Column("rule", sa.String(63), nullable=False),
    sa.Column("delivery_id", sa.Integer, nullable=False),
    sa.Column("sent_at", TS, nullable=False),
)

# --- Collected facts (issue 19; storage/facts.py writes and reads them) --------------------------
# One row per (collector, entity, observation) with the facts as one JSON object: a fact per row
# would multiply the rows by ~10 and the write cost with them (docs/facts.md, "Storage").
COLLECTOR = sa.String(63)

fact_history = sa.Table(
    "fact_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("collector", COLLECTOR, nullable=False),
    sa.Column("entity_ref", REF, nullable=False),
    sa.Column("observed_at", TS, nullable=False),
    sa.Column("collected_at", TS, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("facts", sa.Text, nullable=False),  # JSON object {fact: value}
    sa.Index("ix_fact_history_collector_entity", "collector", "entity_ref", "observed_at"),
    sa.Index("ix_fact_history_collector_observed", "collector", "observed_at"),
)

# The newest facts per (collector, entity): new observations are merged into it fact by fact (a
# run that re-read only the changed report files keeps the facts of the others).
fact_latest = sa.Table(
    "fact_latest",
    metadata,
    sa.Column("collector", COLLECTOR, primary_key=True),
    sa.Column("entity_ref", REF, primary_key=True),
    sa.Column("observed_at", TS, nullable=False),
    sa.Column("collected_at", TS, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("facts", sa.Text, nullable=False),  # JSON object
    sa.Column("digest", sa.String(32), nullable=False),  # of `facts`: an unchanged re-run writes nothing
    sa.Index("ix_fact_latest_entity", "entity_ref"),
)

# Where each collector resumes; written in the transaction that stores the batch it follows.
fact_cursors = sa.Table(
    "fact_cursors",
    metadata,
    sa.Column("collector", COLLECTOR, primary_key=True),
    sa.Column("cursor", sa.Text, nullable=False),  # JSON
    sa.Column("updated_at", TS, nullable=False),
)

# One row per collector run: what mapped, what did not, what was rejected (lists capped, counts whole).
fact_runs = sa.Table(
    "fact_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collector", COLLECTOR, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("finished_at", TS, nullable=False),
    sa.Column("observations", sa.Integer, nullable=False),
    sa.Column("mapped", sa.Integer, nullable=False),
    sa.Column("unmapped", sa.Integer, nullable=False),
    sa.Column("ambiguous", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("stored", sa.Integer, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON: unmapped / ambiguous / rejections lists
    sa.Index("ix_fact_runs_collector", "collector", "id"),
)

# --- Delivery events (issue 22; storage/delivery_events.py writes and reads them) -----------------
# One table per kind of `model/delivery_events.py`, its frame's columns plus: `event_key` (the
# collector's stable key of the event; with `source` the primary key, so re-reading an event
# updates it), `day` (the UTC date of the event's day time, `DAY_TIMES`: what the daily partitions
# and retention cut on, indexed) and `collected_at`. `entity_ref` is null only for an incident
# whose service maps to no entity.


def _event_type(kind: str, column: str) -> sa.types.TypeEngine:
    if column in _ev.TIME_COLUMNS[kind]:
        return TS
    if column in _ev.INT_COLUMNS[kind]:
        return sa.BigInteger()
    if column in _ev.BOOL_COLUMNS[kind]:
        return sa.Boolean()
    return sa.Text()


_REPOSITORY_INDEXED = (_ev.PULL_REQUESTS, _ev.DEPLOYMENTS)


def _event_table(kind: str) -> sa.Table:
    name = f"delivery_{kind}"
    columns = [c for c in _ev.COLUMNS[kind] if c not in ("entity_ref", "source")]
    t = sa.Table(
        name,
        metadata,
        sa.Column("source", COLLECTOR, primary_key=True),
        sa.Column("event_key", sa.String(512), primary_key=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("entity_ref", REF, nullable=True),
        *(sa.Column(c, _event_type(kind, c), nullable=True) for c in columns),
        sa.Column("collected_at", TS, nullable=False),
        sa.Index(f"ix_{name}_day", "day"),
        sa.Index(f"ix_{name}_entity_day", "entity_ref", "day"),
        # what changed since the delivery metrics were last computed (services.delivery: a new
        # day recomputes from the first day holding an event collected since)
        sa.Index(f"ix_{name}_collected", "collected_at"),
        # a new day links its deployments to the pull requests they shipped reading only the
        # deploying repositories' look-back (services.delivery._events_from)
        *([sa.Index(f"ix_{name}_repository_day", "repository", "day")] if kind in _REPOSITORY_INDEXED else []),
    )
    if kind == _ev.PULL_REQUESTS:
        # every open pull request, whatever its day, is read by each new day (partial: the few
        # open ones, not a scan of the table; 1.7 s -> ~0.1 s on SQLite at 200k)
        still_open = sa.and_(t.c.merged_at.is_(None), t.c.closed_at.is_(None))
        sa.Index(f"ix_{name}_open", t.c.day, sqlite_where=still_open, postgresql_where=still_open)
    return t


delivery_event_tables: dict[str, sa.Table] = {kind: _event_table(kind) for kind in _ev.KINDS}

# One row per (day, kind) a daily partition closed: what it held when it was closed.
delivery_event_days = sa.Table(
    "delivery_event_days",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("entities", sa.Integer, nullable=False),
    sa.Column("unmapped", sa.Integer, nullable=False),
    sa.Column("problems", sa.Integer, nullable=False),
    sa.Column("closed_at", TS, nullable=False),
)
