"""Event validation and pseudonymisation (analytics.usage.events)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics.pseudonymise import pseudonymise
from analytics.usage.events import RAW_SCHEMA, prepare_events

KEY = b"k"
NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)


def event(**overrides):
    base = {
        "eventId": "e1",
        "timestamp": "2025-03-12T09:00:00Z",
        "userEntityRef": "user:default/jane.doe",
        "sessionId": "s1",
        "action": "navigate",
        "subject": "/catalog",
        "context": {"pluginId": "catalog", "routeRef": "catalog:index", "extension": "App"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def reasons_for(obj) -> list[str]:
    table, rejections = prepare_events([obj], KEY, now=NOW)
    assert table.num_rows == (0 if rejections else 1)
    return list(rejections[0].reasons) if rejections else []


def test_a_valid_event_is_stored_with_a_keyed_pseudonym_and_canonical_refs():
    table, rejections = prepare_events(
        [event(userEntityRef="User:Default/Jane.Doe", context={"pluginId": "catalog", "entityRef": "Component:default/PetStore", "searchTypes": "techdocs"})],
        KEY,
        now=NOW,
    )
    assert rejections == []
    row = table.to_pylist()[0]
    assert table.schema == RAW_SCHEMA
    assert row["user"] == pseudonymise("user:default/jane.doe", KEY)
    assert row["user"] != pseudonymise("user:default/jane.doe", b"another key")
    assert row["entity_ref"] == "component:default/petstore"
    assert row["search_types"] == ["techdocs"]
    assert row["received_at"] == NOW


def test_aliases_and_the_new_frontend_context_are_accepted():
    obj = event(eventId=..., id="x", userEntityRef=..., user="jane", sessionId=..., session_id="s", context={"pluginId": "catalog", "extensionId": "page:catalog"})
    table, rejections = prepare_events([obj], KEY, now=NOW)
    assert not rejections
    row = table.to_pylist()[0]
    assert (row["event_id"], row["session_id"], row["extension_id"]) == ("x", "s", "page:catalog")
    assert row["user"] == pseudonymise("user:default/jane", KEY)  # bare names are users in default


def test_anonymous_events_have_no_user():
    table, _ = prepare_events([event(userEntityRef=None), event(eventId="e2", userEntityRef=...)], KEY, now=NOW)
    assert table["user"].to_pylist() == [None, None]


def test_epoch_milliseconds_and_offsets_give_the_same_instant():
    table, _ = prepare_events(
        [event(timestamp=1741770000000), event(eventId="e2", timestamp="2025-03-12T10:00:00+01:00")], KEY, now=NOW
    )
    assert table["ts"].to_pylist()[0] == table["ts"].to_pylist()[1]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ("not an object", ["event: must be a JSON object"]),
        (event(eventId=...), ["eventId: required non-empty string"]),
        (event(timestamp="2025-03-12 09:00:00"), ["timestamp: has no time zone (add 'Z' or an offset)"]),
        (event(timestamp="yesterday"), ["timestamp: 'yesterday' is not an ISO-8601 date-time"]),
        (event(timestamp="2025-03-12T14:00:00Z"), ["timestamp: more than an hour in the future"]),
        (event(timestamp="2024-11-01T00:00:00Z"), ["timestamp: older than the retention period"]),
        (event(action=""), ["action: required non-empty string"]),
        (event(subject=None), ["subject: required string"]),
        (event(value="3"), ["value: must be a finite number"]),
        (event(attributes={"nested": {"a": 1}}), ["attributes: values must be strings, numbers or booleans"]),
        (event(context={"routeRef": "x"}), ["context.pluginId: required non-empty string"]),
        (event(context={"pluginId": "catalog", "entityRef": "petstore"}), ["context.entityRef"]),
        (event(context={"pluginId": "catalog", "searchTypes": [1]}), ["context.searchTypes: must be a list of strings"]),
        (event(userEntityRef=42), ["userEntityRef: must be an entity ref string, or absent for anonymous use"]),
    ],
)
def test_malformed_events_are_rejected_with_a_reason(obj, expected):
    reasons = reasons_for(obj)
    assert len(reasons) == len(expected)
    for reason, prefix in zip(reasons, expected):
        assert reason.startswith(prefix)


def test_every_problem_of_an_event_is_reported_not_just_the_first():
    reasons = reasons_for({"eventId": "x", "timestamp": "nope", "subject": 3, "context": {}})
    assert [r.split(":")[0] for r in reasons] == ["timestamp", "action", "subject", "context.pluginId"]


def test_one_bad_event_does_not_cost_the_rest_of_the_batch():
    batch = [event(eventId="a"), event(eventId="b", action=None), event(eventId="c")]
    table, rejections = prepare_events(batch, KEY, now=NOW)
    assert table["event_id"].to_pylist() == ["a", "c"]
    assert [(r.index, r.event_id) for r in rejections] == [(1, "b")]
