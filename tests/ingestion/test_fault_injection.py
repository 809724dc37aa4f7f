"""Fault injection: a Backstage catalog that fails the way real ones do, driven through the real
sensor code and real Dagster runs (issue 15, "Done when").

Every scenario ingests the source once cleanly (cycle 1), then lets it misbehave during the next
cycle: 5xx, 429 with Retry-After, hangs, a body dripped a byte at a time, a body cut short, a cursor
that leads back to an earlier page, a restart on a fresh database (new uids, another order) early or
late in the walk, fully loaded or still loading, an empty source and a shrinking one. After each:
every entity the source holds is stored exactly once, and no entity the source still held was ever
removed (the `removals` table is the record of every removal).
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from backstage_fake import FakeBackstage, Fault, entity
from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
from catalog_pipelines.ingestion.health import provider_health_report
from catalog_pipelines.storage import schema
from catalog_pipelines.storage.catalog import set_clock
from tests.cycle_harness import Harness

N = 300  # entities: 15 pages of 20, 5 chunks of 60
PAGE = 20


def catalog_items(n: int = N) -> list[dict]:
    groups = [entity("Group", f"team-{i:03d}", type="team", children=[]) for i in range(n // 10)]
    components = [entity("Component", f"svc-{i:04d}", type="service", lifecycle="production", owner=f"team-{i % (n // 10):03d}")
                  for i in range(n - len(groups))]
    return groups + components


def ref_of(item: dict) -> str:
    meta = item["metadata"]
    return f"{item['kind'].lower()}:{meta.get('namespace') or 'default'}/{meta['name']}".lower()


def backstage_provider(fake: FakeBackstage, **options) -> ProviderConfig:
    opts = dict(chunk_size=60, burst_length=dt.timedelta(hours=1), burst_interval=dt.timedelta(seconds=30),
                rest_length=dt.timedelta(hours=1), retry_max=0, retry_delay_seconds=0)
    opts.update(options)
    params = dict(base_url=fake.base_url, token=fake.token, page_size=PAGE, timeout=0.5, max_retries=4,
                  backoff_base=0.01, backoff_max=0.05, max_retry_after=5)
    return ProviderConfig(name="bs", type="backstage_api", params=params, options=IngestionOptions(**opts))


@pytest.fixture
def source():
    with FakeBackstage(catalog_items()) as fake:
        yield fake


@pytest.fixture
def harness(source, dagster_instance, catalog_url):
    h = Harness(backstage_provider(source), catalog_url, dagster_instance)
    h.run_until_resting()  # cycle 1: a clean walk
    assert h.catalog.store().refs("bs") == {ref_of(i) for i in source.items}
    h.advance(dt.timedelta(hours=1))
    yield h
    set_clock(None)


def removed_refs(h: Harness) -> set[str]:
    with h.catalog.store().engine.connect() as conn:
        return set(conn.execute(sa.select(schema.removals.c.ref)).scalars())


def stored_rows(h: Harness) -> list[str]:
    with h.catalog.store().engine.connect() as conn:
        return list(conn.execute(sa.select(schema.entities.c.ref).where(schema.entities.c.provider == "bs")).scalars())


def assert_source_stored_exactly_once_and_nothing_live_removed(h: Harness, source: FakeBackstage) -> None:
    live = {ref_of(i) for i in source.items}
    rows = stored_rows(h)
    assert len(rows) == len(set(rows))
    assert set(rows) == live
    assert not removed_refs(h) & live


def sweeps(h: Harness) -> list[str]:
    return [past.sweep_outcome for past in reversed(h.catalog.ledger().history("bs", limit=50))]


@pytest.mark.parametrize("kind", ["500", "503", "429", "timeout", "drip", "truncate"])
def test_transient_faults_mid_walk_deliver_every_entity_once(harness, source, kind):
    first = len(source.requests) + 1
    # Three pages of cycle 2 fail once each, one of them twice in a row.
    source.faults = {first + 2: Fault(kind, retry_after="0", seconds=0.3 if kind == "drip" else 1.0),
                     first + 3: Fault(kind, retry_after="0", seconds=1.0),
                     first + 9: Fault(kind, retry_after="0", seconds=1.0)}
    harness.run_until_resting(max_steps=400)
    assert {r.outcome for r in source.requests[first - 1:]} >= {kind, "ok"}
    assert sweeps(harness)[-1] == "nothing-to-remove"
    assert_source_stored_exactly_once_and_nothing_live_removed(harness, source)


@pytest.mark.timeout(120)
def test_a_server_dripping_bytes_cannot_hold_a_request_past_its_total_deadline(source):
    from catalog_pipelines.providers.backstage_api import BackstageApiProvider
    from catalog_pipelines.providers.base import ProviderError

    # Each byte comes 0.05 s after the last: every read is quick, the whole body takes > 100 s.
    source.faults = {n: Fault("drip", seconds=0.05) for n in range(1, 4)}
    provider = BackstageApiProvider("bs", source.base_url, token=source.token, page_size=N, timeout=0.5,
                                    max_retries=2, backoff_base=0.01, backoff_max=0.01)
    with pytest.raises(ProviderError, match=r"failed after 3 attempts.*deadline"):
        provider.next(None)
    assert [r.outcome for r in source.requests] == ["drip"] * 3


def test_a_cursor_loop_never_ends_a_walk_nor_sweeps_and_the_walk_completes_once_it_stops(harness, source):
    # The page at offset 160 leads back to offset 60: A -> B -> ... -> A, in every walk.
    source.loop_back = {160: 60}
    cycle = harness.catalog.ledger().open_ingestion("bs").cycle
    events = []
    for _ in range(80):  # 6 h 40 min of sensor ticks, 5 minutes apart
        events.append(harness.step())
        harness.advance(dt.timedelta(minutes=5))
    # Bounded: each walk stops at the loop (in chunk 2), nothing is swept, and the provider backs off
    # further after each restart (1m, 5m, 30m, 3h, 3h…) instead of walking into the loop every minute.
    assert "sweep" not in events and 4 <= events.count("failed") <= 8
    assert events.count("chunk") <= 3 * events.count("failed")
    ledger = harness.catalog.ledger()
    closed = [(past.cycle, past.sweep_outcome) for past in ledger.history("bs", limit=50) if past.cycle > cycle and not past.is_open]
    assert closed and all(outcome == "walk-restarted" for _, outcome in closed), closed[-4:]
    current = ledger.open_ingestion("bs")
    assert current.attempts >= 4 and "cursor loop" in (current.last_error or "")
    report = provider_health_report(ledger, harness.catalog.store(), harness.config, now=harness.now)
    assert not report["healthy"] and "cursor loop" in report["reason"]
    assert_source_stored_exactly_once_and_nothing_live_removed(harness, source)
    # The loop is fixed: the next walk completes and rests.
    source.loop_back = {}
    harness.advance(dt.timedelta(hours=4))
    harness.run_until_resting(max_steps=400)
    assert sweeps(harness)[-1] == "nothing-to-remove"
    assert_source_stored_exactly_once_and_nothing_live_removed(harness, source)


@pytest.mark.parametrize("after_chunks", [1, 4], ids=["early", "late"])
@pytest.mark.parametrize("loading", [False, True], ids=["loaded", "loading"])
def test_a_source_restarting_mid_walk_with_new_uids_and_order_loses_nothing(harness, source, after_chunks, loading):
    # Cycle 2 writes `after_chunks` of its 5 chunks, then the catalog restarts on a fresh database:
    # the stored cursor now points anywhere in another order, possibly into a catalog still loading.
    events = []
    while events.count("chunk") < after_chunks:
        events.append(harness.step())
        harness.advance(dt.timedelta(seconds=30))
        assert len(events) < 50
    assert harness.catalog.ledger().open_ingestion("bs").cycle == 2
    source.restart(loading_from=N // 3 if loading else None, load_step=PAGE if loading else 0)
    harness.run_until_resting(max_steps=400)
    outcomes = sweeps(harness)
    assert "walk-restarted" in outcomes[1:] and outcomes[-1] == "nothing-to-remove"
    assert_source_stored_exactly_once_and_nothing_live_removed(harness, source)


def test_an_emptied_source_removes_nothing_and_the_provider_reports_it(harness, source):
    source.items = []
    harness.run_until_resting(max_steps=400)
    assert sweeps(harness)[-1] == "rejected-empty"
    assert len(stored_rows(harness)) == N and not removed_refs(harness)
    report = provider_health_report(harness.catalog.ledger(), harness.catalog.store(), harness.config, now=harness.now)
    assert not report["healthy"]


def test_a_source_shrinking_a_little_removes_exactly_what_it_lost_and_a_large_shrink_is_refused(harness, source):
    lost = source.items[-9:]  # 3 %
    source.items = source.items[:-9]
    harness.run_until_resting(max_steps=400)
    assert sweeps(harness)[-1] == "applied"
    assert removed_refs(harness) == {ref_of(i) for i in lost}
    assert_source_stored_exactly_once_and_nothing_live_removed(harness, source)
    # Cycle 3: 60 % gone at once looks like an outage, not a clean-up: refused by the default guard.
    harness.advance(dt.timedelta(hours=2))
    kept = list(source.items)
    source.items = source.items[: len(kept) * 4 // 10]
    harness.run_until_resting(max_steps=400)
    assert sweeps(harness)[-1] == "rejected-threshold"
    assert {ref_of(i) for i in kept} <= set(stored_rows(harness))


def test_a_walk_that_skipped_entities_still_removes_only_what_the_source_confirms_gone(harness, source):
    # The source keeps changing (a restart in every walk), so no walk is ever verifiably complete.
    # After two restarts the sweep stops restarting and asks the source about each candidate.
    gone = source.items[-3:]
    source.items = source.items[:-3]
    restarts = 0
    for _ in range(400):
        event = harness.step()
        ledger = harness.catalog.ledger()
        last = ledger.last_mark(ledger.open_ingestion("bs").id)
        if event == "chunk" and last is not None and last.sequence == 1:
            source.restart()  # after the second chunk of every walk
            restarts += 1
        if event == "sweep" and harness.catalog.ledger().history("bs", limit=1)[0].sweep_outcome is not None:
            break
        harness.advance(dt.timedelta(seconds=30))
    assert restarts == 3
    assert sweeps(harness)[-3:] == ["walk-restarted", "walk-restarted", "applied"]
    assert removed_refs(harness) == {ref_of(i) for i in gone}
    assert_source_stored_exactly_once_and_nothing_live_removed(harness, source)


def test_the_one_shot_door_restarts_a_walk_the_source_changed_under_and_loses_nothing(source, dagster_instance, catalog_url):
    from catalog_pipelines.definitions import build_definitions
    from catalog_pipelines.runs import run_cycle

    config = backstage_provider(source)
    defs = build_definitions([config], catalog_url=catalog_url)
    first = run_cycle(defs, config, dagster_instance)
    assert first.sweep["outcome"] == "nothing-to-remove" and first.added == N
    chunks_seen = []

    def restart_after_the_second_chunk(meta: dict) -> None:
        chunks_seen.append(meta["sequence"])
        if len(chunks_seen) == 2:
            source.restart()

    second = run_cycle(defs, config, dagster_instance, on_chunk=restart_after_the_second_chunk)
    assert second.walk_restarts == 1 and second.sweep["outcome"] == "nothing-to-remove"
    assert second.cycle == first.cycle + 2  # the doubtful walk's cycle was closed unswept
    store = defs.resources["catalog"].store()
    assert store.refs("bs") == {ref_of(i) for i in source.items}
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.removals)).scalar_one() == 0
