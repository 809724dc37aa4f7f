"""The raw event store: day partitions, deduplication, late events, imports and retention."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from analytics.usage.insights import summarise_day
from catalog_pipelines.services.usage_pipeline import compact_days, summarise_days, sweep
from catalog_pipelines.storage.usage_store import DailySummaryStore, RawEventStore
from helpers import TEST_DATA

KEY = b"k"
NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
DATA = TEST_DATA / "usage"


def ev(event_id: str, ts: str, user: str | None = "user:default/jane", action: str = "navigate") -> dict:
    out = {"eventId": event_id, "timestamp": ts, "sessionId": "s", "action": action, "subject": "/catalog", "context": {"pluginId": "catalog"}}
    if user:
        out["userEntityRef"] = user
    return out


def test_events_land_in_the_partition_of_their_own_utc_day(tmp_path):
    raw = RawEventStore(tmp_path)
    result = raw.ingest([ev("a", "2025-03-10T23:30:00-02:00"), ev("b", "2025-03-11T00:10:00Z")], KEY, source="test", now=NOW)
    assert result.by_day == {date(2025, 3, 11): 2}  # 23:30 at -02:00 is 01:30 UTC on the 11th
    assert [p.parent.name for p in raw.parts(date(2025, 3, 11))] == ["date=2025-03-11"]


def test_a_resent_batch_is_stored_once(tmp_path):
    raw = RawEventStore(tmp_path)
    batch = [ev("a", "2025-03-11T10:00:00Z"), ev("b", "2025-03-11T10:01:00Z")]
    raw.ingest(batch, KEY, source="test", now=NOW)
    raw.ingest(batch, KEY, source="test", now=NOW)  # the client did not see our 200 and resent
    first = raw.compact_day(date(2025, 3, 11))
    assert (first.events, first.duplicates, first.parts) == (2, 2, 2)
    raw.ingest(batch[:1], KEY, source="test", now=NOW)  # resent again after compaction
    second = raw.compact_day(date(2025, 3, 11))
    assert (second.events, second.new_events, second.duplicates) == (2, 0, 1)
    assert summarise_day(raw.read_day(date(2025, 3, 11)), date(2025, 3, 11)).totals.iloc[0]["events"] == 2


def test_late_events_are_added_to_their_already_compacted_day(tmp_path):
    raw = RawEventStore(tmp_path)
    raw.ingest([ev("a", "2025-03-10T10:00:00Z")], KEY, source="test", now=datetime(2025, 3, 10, 11, tzinfo=UTC))
    assert raw.compact_day(date(2025, 3, 10)).late_events == 0
    assert raw.pending() == {}
    # two days later a browser that was offline delivers its queue
    raw.ingest([ev("late", "2025-03-10T18:00:00Z", user="user:default/bob")], KEY, source="test", now=NOW)
    assert list(raw.pending()) == [date(2025, 3, 10)]
    c = raw.compact_day(date(2025, 3, 10))
    assert (c.events, c.new_events, c.late_events, c.users) == (2, 1, 1, 2)
    assert sorted(raw.read_day(date(2025, 3, 10))["event_id"].to_pylist()) == ["a", "late"]


def test_compacting_twice_changes_nothing(tmp_path):
    raw = RawEventStore(tmp_path)
    raw.ingest([ev("a", "2025-03-11T10:00:00Z")], KEY, source="test", now=NOW)
    raw.compact_day(date(2025, 3, 11))
    mtime = (raw.day_path(date(2025, 3, 11)) / "events.parquet").stat().st_mtime_ns
    again = raw.compact_day(date(2025, 3, 11))
    assert (again.events, again.new_events, again.parts) == (1, 0, 0)
    assert (raw.day_path(date(2025, 3, 11)) / "events.parquet").stat().st_mtime_ns == mtime


def test_jsonl_import_reports_bad_lines_by_number_and_counts_them(tmp_path):
    raw = RawEventStore(tmp_path)
    result = raw.import_jsonl(DATA / "events.jsonl", KEY, now=NOW)
    assert result.accepted == 21  # 24 lines, 3 malformed (the duplicate is only dropped at compaction)
    assert [(r.index, r.reasons) for r in result.rejected] == [
        (21, ("action: required non-empty string",)),
        (22, ("timestamp: has no time zone (add 'Z' or an offset)",)),
        (23, ("line: not valid JSON",)),
    ]
    assert result.reason_counts() == {"action": 1, "line": 1, "timestamp": 1}
    # reasons are logged by the day they were received, without the payloads
    assert raw.rejected_on(NOW.date()) == 3
    log = b"".join(p.read_bytes() for p in (tmp_path / "_rejected").rglob("*.jsonl"))
    assert b"carol" not in log and b"line: not valid JSON" in log


def test_chunked_imports_keep_line_numbers(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [orjson.dumps(ev(f"e{i}", "2025-03-11T10:00:00Z")) for i in range(5)]
    lines.insert(3, b"{broken")
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = RawEventStore(tmp_path / "raw").import_jsonl(path, KEY, now=NOW, chunk=2)
    assert result.accepted == 5
    assert [r.index for r in result.rejected] == [4]


def test_retention_deletes_old_days_of_events_summaries_and_rejection_logs(tmp_path):
    raw, summaries = RawEventStore(tmp_path / "raw"), DailySummaryStore(tmp_path / "daily")
    raw.ingest([ev("a", "2025-01-01T10:00:00Z"), ev("b", "2025-03-01T10:00:00Z"), ev("bad", "x")], KEY, source="t", now=datetime(2025, 3, 2, tzinfo=UTC), retention_days=365)
    compact_days(raw, raw.days())
    summarise_days(raw, summaries, raw.days())
    result = sweep(raw, summaries, date(2025, 3, 31), retention_days=90)
    # 90 days including today: 2025-01-01 .. 2025-03-31, so 2025-01-01 is still kept
    assert result["cutoff"] == date(2025, 1, 1)
    assert raw.days() == [date(2025, 1, 1), date(2025, 3, 1)]
    result = sweep(raw, summaries, date(2025, 4, 1), retention_days=90)
    assert result["raw_days"] == [date(2025, 1, 1)] and result["summary_days"] == [date(2025, 1, 1)]
    assert raw.days() == [date(2025, 3, 1)] and summaries.days() == [date(2025, 3, 1)]
    assert raw.rejected_on(date(2025, 3, 2)) == 1  # received inside the window: kept
    sweep(raw, summaries, date(2025, 6, 1), retention_days=90)
    assert raw.days() == [] and raw.rejected_on(date(2025, 3, 2)) == 0


def test_identity_leaks_catch_a_raw_ref_written_around_the_validation(tmp_path):
    import pyarrow as pa

    from analytics.usage.events import prepare_events

    raw = RawEventStore(tmp_path)
    table, _ = prepare_events([ev("a", "2025-03-11T10:00:00Z"), ev("b", "2025-03-11T10:00:00Z", user=None)], KEY, now=NOW)
    leaked = table.set_column(table.schema.get_field_index("user"), "user", pa.array(["user:default/jane", None], pa.string()))
    raw.append(leaked)
    raw.compact_day(date(2025, 3, 11))
    assert raw.identity_leaks(date(2025, 3, 11)) == 1


def stored_text(root: Path) -> str:
    """Everything written under `root`, as text: Parquet files decoded (their pages are compressed,
    so their bytes would hide a raw name), every other file as it is."""
    import pyarrow.parquet as pq

    texts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            texts.append(orjson.dumps(table.to_pylist(), default=str).decode())
            texts.append(" ".join(map(str, table.schema.metadata.values() if table.schema.metadata else [])))
        else:
            texts.append(path.read_bytes().decode(errors="replace"))
    return "\n".join(texts).lower()


# A person other than the acting user, named in every field that can hold one.
VISITED = {"ref": "user:default/jane.doe", "name": "jane.doe", "email": "jane.doe@example.com", "display": "Jane Doe"}


def events_naming_a_visited_person() -> list[dict]:
    base = {"timestamp": "2025-03-11T10:00:00Z", "userEntityRef": "user:default/bob", "sessionId": "s"}
    return [
        # a profile view: path, route attributes and context entity ref
        {**base, "eventId": "v1", "action": "navigate", "subject": "/catalog/default/user/jane.doe",
         "attributes": {"namespace": "default", "kind": "user", "name": "jane.doe"},
         "context": {"pluginId": "catalog", "routeRef": "catalog:entity", "entityRef": "User:default/Jane.Doe"}},
        # the same page without attributes, with a query naming her again (URL-encoded ref and e-mail)
        {**base, "eventId": "v2", "action": "navigate", "subject": "/catalog/default/user/jane.doe?owner=user%3Adefault%2Fjane.doe&mail=jane.doe%40example.com",
         "context": {"pluginId": "catalog"}},
        # searches for her e-mail, her ref, her entity name and her display name
        {**base, "eventId": "s1", "action": "search", "subject": "jane.doe@example.com", "value": 1, "context": {"pluginId": "search"}},
        {**base, "eventId": "s2", "action": "search", "subject": "owner user:default/jane.doe", "value": 0, "context": {"pluginId": "search"}},
        {**base, "eventId": "s3", "action": "search", "subject": "jane.doe", "value": 2, "context": {"pluginId": "search"}},
        {**base, "eventId": "s4", "action": "search", "subject": "Jane  Doe on-call", "value": 2, "context": {"pluginId": "search"}},
        # a click whose label and attributes name her
        {**base, "eventId": "c1", "action": "click", "subject": "Mail Jane Doe", "attributes": {"to": "mailto:jane.doe@example.com", "owner": "user:jane.doe"},
         "context": {"pluginId": "org"}},
        # an ordinary page, which must stay readable
        {**base, "eventId": "p1", "action": "navigate", "subject": "/catalog/default/component/petstore",
         "attributes": {"namespace": "default", "kind": "component", "name": "petstore"},
         "context": {"pluginId": "catalog", "entityRef": "component:default/petstore"}},
    ]


def test_a_visited_or_searched_person_never_reaches_disk_in_raw_events_or_daily_summaries(tmp_path):
    from analytics.pseudonymise import pseudonymise
    from analytics.usage.privacy import People

    people = People.from_entities([{"kind": "User", "metadata": {"name": "jane.doe"}, "spec": {"profile": {"displayName": "Jane Doe", "email": "jane.doe@example.com"}}}])
    raw, summaries = RawEventStore(tmp_path / "raw"), DailySummaryStore(tmp_path / "daily")
    result = raw.ingest(events_naming_a_visited_person(), KEY, source="test", now=NOW, people=people)
    assert result.accepted == 8 and not result.rejected
    compact_days(raw, raw.days())
    summarise_days(raw, summaries, raw.days())

    text = stored_text(tmp_path)
    for raw_string in ("jane.doe", "jane doe", "jane  doe", "jane%2edoe", "example.com", "bob"):
        assert raw_string not in text, f"{raw_string!r} reached disk"
    # She is one token everywhere, the same one she gets as an acting user.
    token = pseudonymise(VISITED["ref"], KEY)
    assert text.count(token) >= 10
    day = raw.read_day(date(2025, 3, 11)).to_pylist()
    by_id = {row["event_id"]: row for row in day}
    assert by_id["v1"]["entity_ref"] == token
    assert by_id["v1"]["subject"] == f"/catalog/default/user/{token}"
    assert by_id["s4"]["subject"] == f"{token} on-call"
    # ... and the figures still work: the profile page normalises like any entity page, the
    # component page stays readable.
    summary = summarise_day(raw.read_day(date(2025, 3, 11)), date(2025, 3, 11))
    pages = set(summary.keys.loc[summary.keys["dimension"] == "page", "key"])
    assert pages == {"/catalog/:namespace/:kind/:name", f"/catalog/default/user/{token}"}
    assert set(summary.keys.loc[summary.keys["dimension"] == "entity", "key"]) == {token, "component:default/petstore"}


def test_people_are_pseudonymised_by_ref_and_e_mail_without_a_directory(tmp_path):
    raw = RawEventStore(tmp_path / "raw")
    raw.ingest(events_naming_a_visited_person(), KEY, source="test", now=NOW)
    raw.compact_day(date(2025, 3, 11))
    text = stored_text(tmp_path)
    for raw_string in ("user:default/jane.doe", "jane.doe@example.com", "jane.doe%40example.com", "user%3adefault%2fjane.doe", "/user/jane.doe"):
        assert raw_string not in text, f"{raw_string!r} reached disk"


def test_a_group_is_not_a_user(tmp_path):
    result = RawEventStore(tmp_path).ingest([ev("g", "2025-03-11T10:00:00Z", user="group:default/x")], KEY, source="test", now=NOW)
    assert result.accepted == 0
    assert result.rejected[0].reasons == ("userEntityRef: must be a User entity ref (user:<namespace>/<name>), got kind 'group'",)


def test_identity_leaks_count_raw_people_in_any_column(tmp_path):
    import pyarrow as pa

    from analytics.usage.events import prepare_events

    raw = RawEventStore(tmp_path)
    table, _ = prepare_events([ev("a", "2025-03-11T10:00:00Z"), ev("b", "2025-03-11T10:00:00Z")], KEY, now=NOW)
    column = table.schema.get_field_index("entity_ref")
    raw.append(table.set_column(column, "entity_ref", pa.array(["user:default/jane", None], pa.string())))
    raw.compact_day(date(2025, 3, 11))
    assert raw.identity_leaks(date(2025, 3, 11)) == 1
