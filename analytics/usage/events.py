"""Portal usage events: Backstage's analytics event shape, validated and pseudonymised for storage.

An event is what Backstage's Analytics API hands a sink (`action`, `subject`, `value?`,
`attributes?`, `context`) wrapped in the envelope a sink adds: an event id, a timestamp, the signed-in
user's entity ref (absent for anonymous use) and a session id. Example::

    {"eventId": "3f2c...", "timestamp": "2025-03-04T09:15:02.120Z",
     "userEntityRef": "user:default/jane.doe", "sessionId": "b81e...",
     "action": "navigate", "subject": "/catalog/default/component/petstore",
     "attributes": {"namespace": "default", "kind": "component", "name": "petstore"},
     "context": {"pluginId": "catalog", "routeRef": "catalog:entity", "extension": "App",
                 "entityRef": "component:default/petstore"}}

`id`, `user` and `session_id` are accepted as aliases, and the new frontend system's
`context.extensionId` as well as the legacy `routeRef`. `prepare_events` turns a batch into a
pyarrow table in `RAW_SCHEMA` plus one `Rejection` (with every reason) per malformed event, so one bad
event never costs the rest of its batch. `userEntityRef` must be a User ref. User refs are
canonicalised and then replaced by a keyed pseudonym before anything is written, and so is every
other person an event names (a visited profile, a searched-for e-mail: `analytics.usage.privacy`):
raw identities never reach disk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from analytics.usage.privacy import People, Scrubber
from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

RAW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("received_at", pa.timestamp("ms", tz="UTC")),
        ("user", pa.string()),  # keyed pseudonym of the canonical user ref; null = anonymous
        ("session_id", pa.string()),
        ("action", pa.string()),
        ("subject", pa.string()),
        ("value", pa.float64()),
        ("attributes", pa.string()),  # JSON object, kept as text: it is only parsed per unique page
        ("plugin_id", pa.string()),
        ("route_ref", pa.string()),
        ("extension_id", pa.string()),
        ("extension", pa.string()),
        ("entity_ref", pa.string()),  # canonical (lower-case) so that spellings of one entity merge
        ("search_types", pa.list_(pa.string())),
    ]
)

MAX_BATCH = 100
MAX_ID = 200
MAX_ACTION = 100
MAX_SUBJECT = 2048
MAX_CONTEXT_VALUE = 512
MAX_ATTRIBUTES = 50
# Browsers' clocks drift; an hour of skew is tolerated, anything further ahead is a bug upstream.
MAX_FUTURE = timedelta(hours=1)
DEFAULT_RETENTION_DAYS = 90


@dataclass(frozen=True)
class Rejection:
    """A malformed event: its position in the batch or file, its id when it had one, and why."""

    index: int
    event_id: str | None
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "reasons": list(self.reasons)}


def event_day(ts_ms: int) -> date:
    """The UTC day an event belongs to; partitions are UTC days."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date()


def _now_ms(now: datetime) -> int:
    return int(now.timestamp() * 1000)


def _parse_timestamp(value: Any, reasons: list[str]) -> int | None:
    if isinstance(value, bool) or value is None:
        reasons.append("timestamp: required (ISO-8601 with a time zone, or epoch milliseconds)")
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            reasons.append("timestamp: not a finite number")
            return None
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            reasons.append(f"timestamp: {value[:40]!r} is not an ISO-8601 date-time")
            return None
        if parsed.tzinfo is None:
            reasons.append("timestamp: has no time zone (add 'Z' or an offset)")
            return None
        return int(parsed.timestamp() * 1000)
    reasons.append("timestamp: must be a string or a number")
    return None


def _optional_str(obj: Mapping[str, Any], names: tuple[str, ...], field: str, limit: int, reasons: list[str]) -> str | None:
    for name in names:
        if name in obj and obj[name] is not None:
            value = obj[name]
            if not isinstance(value, str):
                reasons.append(f"{field}: must be a string")
                return None
            if len(value) > limit:
                reasons.append(f"{field}: longer than {limit} characters")
                return None
            return value or None
    return None


def _validate(obj: Any, now_ms: int, oldest_ms: int) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """One event → (record with the raw canonical user ref, event id, reasons)."""
    if not isinstance(obj, Mapping):
        return None, None, ["event: must be a JSON object"]
    reasons: list[str] = []

    event_id = obj.get("eventId", obj.get("id"))
    if not isinstance(event_id, str) or not event_id.strip():
        reasons.append("eventId: required non-empty string")
        event_id = None
    elif len(event_id) > MAX_ID:
        reasons.append(f"eventId: longer than {MAX_ID} characters")
        event_id = None

    ts = _parse_timestamp(obj.get("timestamp"), reasons)
    if ts is not None:
        if ts > now_ms + MAX_FUTURE.total_seconds() * 1000:
            reasons.append("timestamp: more than an hour in the future")
        elif ts < oldest_ms:
            reasons.append("timestamp: older than the retention period")

    action = obj.get("action")
    if not isinstance(action, str) or not action.strip():
        reasons.append("action: required non-empty string")
    elif len(action) > MAX_ACTION:
        reasons.append(f"action: longer than {MAX_ACTION} characters")

    subject = obj.get("subject")
    if not isinstance(subject, str):
        reasons.append("subject: required string")
    elif len(subject) > MAX_SUBJECT:
        reasons.append(f"subject: longer than {MAX_SUBJECT} characters")

    value = obj.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        reasons.append("value: must be a finite number")

    attributes = obj.get("attributes")
    attributes_json = None
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            reasons.append("attributes: must be an object")
        elif len(attributes) > MAX_ATTRIBUTES:
            reasons.append(f"attributes: more than {MAX_ATTRIBUTES} keys")
        elif not all(isinstance(v, (str, int, float, bool)) for v in attributes.values()):
            # Backstage types attributes as string | number | boolean; nesting means a broken sink.
            reasons.append("attributes: values must be strings, numbers or booleans")
        elif attributes:
            attributes_json = dict(attributes)  # serialised once its people are pseudonymised

    context = obj.get("context")
    plugin_id = route_ref = extension_id = extension = entity_ref = None
    search_types: list[str] | None = None
    if not isinstance(context, Mapping):
        reasons.append("context: required object with pluginId")
    else:
        plugin_id = _optional_str(context, ("pluginId",), "context.pluginId", MAX_CONTEXT_VALUE, reasons)
        if plugin_id is None and not any(r.startswith("context.pluginId") for r in reasons):
            reasons.append("context.pluginId: required non-empty string")
        route_ref = _optional_str(context, ("routeRef",), "context.routeRef", MAX_CONTEXT_VALUE, reasons)
        extension_id = _optional_str(context, ("extensionId",), "context.extensionId", MAX_CONTEXT_VALUE, reasons)
        extension = _optional_str(context, ("extension",), "context.extension", MAX_CONTEXT_VALUE, reasons)
        raw_entity = _optional_str(context, ("entityRef",), "context.entityRef", MAX_CONTEXT_VALUE, reasons)
        if raw_entity is not None:
            try:
                entity_ref = parse_entity_ref(raw_entity, default_kind=None).canonical()
            except EntityRefError as exc:
                reasons.append(f"context.entityRef: {exc}")
        types = context.get("searchTypes")
        if types is not None:
            if isinstance(types, str):
                search_types = [types]
            elif isinstance(types, list) and all(isinstance(t, str) for t in types):
                search_types = list(types)
            else:
                reasons.append("context.searchTypes: must be a list of strings")

    user = None
    raw_user = obj.get("userEntityRef", obj.get("user"))
    if raw_user is not None:
        if not isinstance(raw_user, str) or not raw_user.strip():
            reasons.append("userEntityRef: must be an entity ref string, or absent for anonymous use")
        else:
            try:
                # Backstage identities are `user:<ns>/<name>`; `jane` alone means user:default/jane.
                parsed = parse_entity_ref(raw_user.strip(), default_kind="user")
            except EntityRefError as exc:
                reasons.append(f"userEntityRef: {exc}")
            else:
                if parsed.kind.lower() != "user":
                    # Only people use the portal: a group or component ref is a broken (or forged) sink.
                    reasons.append(f"userEntityRef: must be a User entity ref (user:<namespace>/<name>), got kind {parsed.kind!r}")
                else:
                    user = parsed.canonical()

    session_id = None
    raw_session = obj.get("sessionId", obj.get("session_id"))
    if raw_session is not None:
        if not isinstance(raw_session, str) or len(raw_session) > MAX_ID:
            reasons.append(f"sessionId: must be a string of at most {MAX_ID} characters")
        else:
            session_id = raw_session or None

    if reasons:
        return None, event_id, reasons
    record = {
        "event_id": event_id,
        "ts": ts,
        "user": user,
        "session_id": session_id,
        "action": action,
        "subject": subject,
        "value": None if value is None else float(value),
        "attributes": attributes_json,
        "plugin_id": plugin_id,
        "route_ref": route_ref,
        "extension_id": extension_id,
        "extension": extension,
        "entity_ref": entity_ref,
        "search_types": search_types,
    }
    return record, event_id, []


def prepare_events(
    events: Iterable[Any],
    key: bytes,
    *,
    now: datetime | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    indices: Sequence[int] | None = None,
    people: People | None = None,
    acting_user: str | None = None,
    scrubber: Scrubber | None = None,
) -> tuple[pa.Table, list[Rejection]]:
    """Validate a batch: accepted events as a `RAW_SCHEMA` table (people pseudonymised), rejections.

    Events older than the retention period are rejected too: the retention sweep would delete them
    anyway, and accepting them would re-create partitions that were deliberately removed.
    A rejection's `index` is the event's position in `events`, or `indices[position]` when given
    (line numbers of a file).

    Every person an event names is replaced by their keyed token (`analytics.usage.privacy`): the
    acting user, and a visited or searched-for person in the subject, attributes and entity ref.
    `people` (the catalog's users) lets names in free text be recognised too.

    `acting_user` is the canonical user ref a verified token proved (the collector): every event
    is that user's, and an event that claims another `userEntityRef` is rejected.
    """
    now = now or datetime.now(UTC)
    now_ms = _now_ms(now)
    oldest_ms = _now_ms(datetime.combine(now.date() - timedelta(days=retention_days - 1), datetime.min.time(), UTC))
    records: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    scrub = scrubber or Scrubber(key, people)
    for offset, obj in enumerate(events):
        record, event_id, reasons = _validate(obj, now_ms, oldest_ms)
        if record is not None and acting_user is not None:
            if record["user"] is not None and record["user"] != acting_user:
                record, reasons = None, ["userEntityRef: differs from the user the request's token was issued to"]
            else:
                record["user"] = acting_user
        if record is None:
            rejections.append(Rejection(indices[offset] if indices is not None else offset, event_id, tuple(reasons)))
            continue
        if record["user"] is not None:
            record["user"] = scrub.user(record["user"])
        record["subject"], record["attributes"] = scrub.subject_and_attributes_json(record["subject"], record["attributes"])
        record["entity_ref"] = scrub.entity_ref(record["entity_ref"])
        record["received_at"] = now_ms
        records.append(record)
    return pa.Table.from_pylist(records, schema=RAW_SCHEMA), rejections


def empty_events() -> pa.Table:
    return RAW_SCHEMA.empty_table()
