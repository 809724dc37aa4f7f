"""Ingestion admin operations (catalog_pipelines/services/admin.py) and two of their doors.

Protects: permission checks (a denied call changes nothing, raises, and is audited), that every
operation changes the ledger the way the state machine (ingestion/engine.py) reads it, that reset
and clear-marks purge what they say, the status figures, the static policy and bearer-token
parsing, the Dagster job (typed launchpad config) and the CLI group.
HTTP routes are in test_admin_http.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from catalog_pipelines.ingestion import engine as machine
from catalog_pipelines.cli.admin import os_login
from catalog_pipelines.services.admin import (
    MUTATIONS,
    IngestionAdmin,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from catalog_pipelines.ingestion.config import IngestionOptions, ProviderConfig
from catalog_pipelines.ingestion.cycle import finish_rest, record_failure, run_sweep, snapshot
from catalog_pipelines.model import process_entity
from catalog_pipelines.model.entity import RawEntity
from catalog_pipelines.permissions import (
    INGESTION_MANAGE,
    INGESTION_READ,
    PolicyError,
    StaticPolicy,
    bearer_token,
    identity_for_token,
    normalize_actor,
    parse_tokens,
    token_digest,
)
from catalog_pipelines.storage import schema as s
from catalog_pipelines.storage.audit import (
    MAX_SUMMARY_KEYS,
    REFUSALS_ACTION,
    REFUSALS_PER_WINDOW,
    entries,
    max_refusal_rows_per_hour,
    record_refusal,
)
from catalog_pipelines.storage.catalog import CatalogStore, utcnow
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger

# ######################################################################################## FIXTURES

ADMIN, READER = "user:default/alice", "user:default/bob"
OPTIONS = IngestionOptions(chunk_size=10)
POLICY = {
    "roles": {
        "admins": {"permissions": [INGESTION_READ, INGESTION_MANAGE], "members": [ADMIN]},
        "everyone": {"permissions": [INGESTION_READ], "members": ["*"]},
    }
}


class Clock:
    """Starts at the real time (the ledger stamps rows with it) and moves only when told."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def url(catalog_url) -> str:
    return catalog_url


@pytest.fixture
def engine(url):
    return get_engine(url)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def configs() -> list[ProviderConfig]:
    return [ProviderConfig("alpha", "synthetic", options=OPTIONS), ProviderConfig("beta", "synthetic", options=OPTIONS)]


@pytest.fixture
def admin(engine, configs, clock) -> IngestionAdmin:
    return IngestionAdmin(engine, configs, StaticPolicy.from_dict(POLICY, "test-policy"), channel="test", clock=clock)


def component(name: str) -> dict:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
            "spec": {"type": "service", "lifecycle": "production", "owner": "group:default/team-a"}}


def write_chunk(engine, provider: str, names: list[str], *, done: bool) -> None:
    """One chunk of the provider's open cycle, written as the chunk asset writes it."""
    ledger = Ledger(engine)
    ingestion = ledger.start_cycle(provider)
    last = ledger.last_mark(ingestion.id)
    processed = [process_entity(RawEntity(entity=component(n), location="test", doc_index=i)) for i, n in enumerate(names)]
    CatalogStore(engine).write_chunk(
        provider=provider, ingestion_id=ingestion.id, sequence=0 if last is None else last.sequence + 1,
        cursor_in=None, cursor={"after": names[-1]} if names else None, done=done, entities=processed, rejections=[],
    )


def decide(engine, provider: str, now: dt.datetime) -> machine.Decision:
    return machine.decide(snapshot(Ledger(engine), provider), OPTIONS, now)


def apply(engine, provider: str, decision: machine.Decision) -> None:
    """Apply a decision to the ledger the way the sensor does (close, then start or update)."""
    ledger = Ledger(engine)
    current = ledger.open_ingestion(provider)
    if decision.close_current is not None and current is not None:
        ledger.close(current.id, **decision.close_current)
    if decision.action == "start_cycle":
        ledger.start_cycle(provider)
    elif decision.updates and current is not None:
        ledger.update(current.id, **decision.updates)


def ledger_state(engine) -> dict[str, list]:
    """Every ledger row and the catalog's entities: what a refused operation must leave alone."""
    tables = [s.ingestions, s.ingestion_marks, s.ingestion_mark_entities, s.provider_controls, s.entities]
    with engine.connect() as conn:
        return {t.name: sorted(map(tuple, conn.execute(sa.select(t)).all()), key=repr) for t in tables}


# ########################################################################################### TESTS

# ----------------------------------------------------------------------------------- permissions


@pytest.mark.parametrize("operation", MUTATIONS)
def test_denied_mutation_changes_nothing_raises_and_is_audited(admin, engine, operation):
    write_chunk(engine, "alpha", ["a1", "a2"], done=True)
    admin.pause("beta", ADMIN)
    before = ledger_state(engine)

    provider = None if operation in ("halt_all", "resume_all", "cleanup") else "alpha"
    with pytest.raises(PermissionDenied) as err:
        admin.run(operation, READER, provider=provider, hours=5)

    assert err.value.permission == INGESTION_MANAGE
    assert ledger_state(engine) == before
    row = entries(engine, action=f"ingestion.{operation}")[0]
    assert (row.actor, row.outcome, row.details["channel"]) == (READER, "denied", "test")
    assert row.target == ("ingestion-provider:*" if provider is None else "ingestion-provider:alpha")


def test_reads_need_the_read_permission_and_denials_are_audited(engine, configs, clock):
    admins_only = StaticPolicy.from_dict({"roles": {"admins": POLICY["roles"]["admins"]}})
    admin = IngestionAdmin(engine, configs, admins_only, clock=clock)

    for read in (lambda: admin.health(READER), lambda: admin.providers(READER),
                 lambda: admin.status("alpha", READER), lambda: admin.marks("alpha", READER)):
        with pytest.raises(PermissionDenied):
            read()
    assert admin.providers(ADMIN) == {"success": True, "providers": ["alpha", "beta"]}
    assert {e.action for e in entries(engine, action_prefix="ingestion.") if e.outcome == "denied"} == {
        "ingestion.health", "ingestion.providers", "ingestion.status", "ingestion.marks"}


def test_unknown_provider_is_not_found_after_the_permission_check(admin, engine):
    with pytest.raises(NotFound):
        admin.pause("gamma", ADMIN)
    with pytest.raises(PermissionDenied):  # a reader learns nothing about which providers exist
        admin.pause("gamma", READER)
    with pytest.raises(NotFound):
        admin.status("gamma", READER)
    outcomes = [(e.actor, e.outcome) for e in entries(engine, action="ingestion.pause")]
    assert outcomes == [(READER, "denied"), (ADMIN, "failure")]


def test_successful_mutations_are_audited_with_actor_time_and_result(admin, engine, clock):
    admin.delay("alpha", "Alice", hours=3)  # a bare, mixed-case name is user:default/alice
    row = entries(engine, action="ingestion.delay")[0]
    assert (row.actor, row.outcome, row.target) == (ADMIN, "success", "ingestion-provider:alpha")
    assert row.at == clock.now.replace(tzinfo=None)
    assert row.details["hours"] == 3 and "delayed until" in row.details["result"]["message"]


def test_a_change_whose_audit_row_cannot_be_written_is_rolled_back(admin, engine, monkeypatch):
    """The change and its audit row are one transaction: no unaudited change survives."""
    from catalog_pipelines.storage import audit

    real = audit.record

    def success_fails(bind, **row):
        if row["outcome"] == "success":
            raise RuntimeError("audit log unavailable")
        return real(bind, **row)

    monkeypatch.setattr(audit, "record", success_fails)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        admin.pause("alpha", ADMIN)
    assert Ledger(engine).controls("alpha")["paused"] is False
    (failure,) = entries(engine, action="ingestion.pause")
    assert failure.outcome == "failure" and "audit log unavailable" in failure.details["error"]
    monkeypatch.undo()
    admin.reset("alpha", ADMIN)  # a multi-step change (purge, then rest) commits whole, with its row
    assert Ledger(engine).open_ingestion("alpha").status == "resting"
    assert [e.outcome for e in entries(engine, action="ingestion.reset")] == ["success"]


def test_out_of_range_hours_are_refused_and_audited_as_failures(admin, engine):
    for hours in (0, -1, "soon", float("inf"), 24 * 400):
        with pytest.raises(InvalidRequest):
            admin.delay("alpha", ADMIN, hours=hours)
    assert Ledger(engine).controls("alpha")["halted_until"] is None
    assert {e.outcome for e in entries(engine, action="ingestion.delay")} == {"failure"}


def test_run_rejects_a_missing_or_superfluous_provider(admin):
    with pytest.raises(InvalidRequest):
        admin.run("pause", ADMIN)
    with pytest.raises(InvalidRequest):
        admin.run("halt_all", ADMIN, provider="alpha")
    with pytest.raises(InvalidRequest):
        admin.run("drop_tables", ADMIN, provider="alpha")


# ------------------------------------------------------------------------ controls and the engine


def test_pause_makes_the_engine_wait_and_resume_lets_it_run(admin, engine, clock):
    Ledger(engine).start_cycle("alpha")
    assert decide(engine, "alpha", clock.now).action == "run_chunk"

    admin.pause("alpha", ADMIN)
    decision = decide(engine, "alpha", clock.advance(hours=100))
    assert (decision.action, decision.reason) == ("wait", "paused by an operator")
    assert admin.report("alpha", ADMIN)["state"] == "paused"

    admin.resume("alpha", ADMIN)
    assert decide(engine, "alpha", clock.now).action == "run_chunk"


def test_delay_holds_the_provider_until_the_delay_ends(admin, engine, clock):
    Ledger(engine).start_cycle("alpha")
    start = clock.now
    admin.delay("alpha", ADMIN, hours=2)

    assert Ledger(engine).controls("alpha")["halted_until"] == start + dt.timedelta(hours=2)
    assert decide(engine, "alpha", start + dt.timedelta(hours=1, minutes=59)).action == "wait"
    assert decide(engine, "alpha", start + dt.timedelta(hours=2, seconds=1)).action == "run_chunk"
    assert decide(engine, "beta", start).action == "start_cycle"  # only alpha was delayed


def test_delay_defaults_to_24_hours(admin, engine, clock):
    admin.delay("alpha", ADMIN)
    assert Ledger(engine).controls("alpha")["halted_until"] == clock.now + dt.timedelta(hours=24)


def test_halt_all_holds_every_provider_and_resume_all_lifts_halts_but_not_pauses(admin, engine, clock):
    admin.pause("beta", ADMIN)
    result = admin.halt_all(ADMIN, hours=1)
    assert result["providers"] == ["alpha", "beta"]
    for name in ("alpha", "beta"):
        assert decide(engine, name, clock.now + dt.timedelta(minutes=30)).action == "wait"

    result = admin.resume_all(ADMIN)
    assert result["resumed"] == ["alpha", "beta"] and result["paused"] == ["beta"]
    assert decide(engine, "alpha", clock.now).action == "start_cycle"
    assert decide(engine, "beta", clock.now).reason == "paused by an operator"


def test_cancel_leads_to_a_new_cycle_at_the_next_decide(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=False)
    admin.cancel("alpha", ADMIN)
    assert Ledger(engine).open_ingestion("alpha").status == machine.CANCELING

    decision = decide(engine, "alpha", clock.now)
    assert decision.action == "start_cycle" and decision.close_current["next_action"] == "nothing (canceled)"
    apply(engine, "alpha", decision)

    cycle = Ledger(engine).open_ingestion("alpha")
    assert (cycle.cycle, cycle.status) == (2, machine.BURSTING)
    decision = decide(engine, "alpha", clock.now)
    assert (decision.action, decision.sequence) == ("run_chunk", 0)  # ingesting again, not parked


def test_cancel_of_a_paused_provider_starts_the_new_cycle_once_resumed(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=False)
    admin.pause("alpha", ADMIN)
    admin.cancel("alpha", ADMIN)
    assert decide(engine, "alpha", clock.now).action == "wait"
    admin.resume("alpha", ADMIN)
    assert decide(engine, "alpha", clock.now).action == "start_cycle"


def test_cancel_leaves_a_resting_cycle_alone(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=True)
    ledger = Ledger(engine)
    run_sweep(CatalogStore(engine), ledger, ledger.open_ingestion("alpha"), OPTIONS, now=clock.now)

    result = admin.cancel("alpha", ADMIN)
    assert "nothing to cancel" in result["message"]
    assert ledger.open_ingestion("alpha").status == machine.RESTING


def test_cancel_during_the_sweep_is_not_overwritten_by_the_rest(admin, engine, clock, monkeypatch):
    write_chunk(engine, "alpha", ["a1", "a2"], done=True)
    real_sweep = CatalogStore.sweep

    def sweep_then_cancel(store, **kwargs):
        result = real_sweep(store, **kwargs)
        admin.cancel("alpha", ADMIN)  # the operator acts while the sweep run is finishing
        return result

    monkeypatch.setattr(CatalogStore, "sweep", sweep_then_cancel)
    ledger = Ledger(engine)
    result = run_sweep(CatalogStore(engine), ledger, ledger.open_ingestion("alpha"), OPTIONS, now=clock.now)
    cycle = ledger.open_ingestion("alpha")
    # The sweep's outcome is recorded, but the cycle does not rest: the cancel asked for a new one.
    assert (cycle.status, cycle.next_action) == (machine.CANCELING, machine.CANCEL)
    assert (cycle.sweep_outcome, cycle.entities_seen, cycle.ingestion_completed_at) == (result.outcome, 2, clock.now)
    decision = decide(engine, "alpha", clock.now)
    assert decision.action == "start_cycle" and decision.close_current["next_action"] == "nothing (canceled)"


def test_start_completes_a_resting_cycle_so_the_next_decide_starts_a_new_one(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=True)
    ledger = Ledger(engine)
    run_sweep(CatalogStore(engine), ledger, ledger.open_ingestion("alpha"), OPTIONS, now=clock.now)
    assert decide(engine, "alpha", clock.now).action == "wait"  # resting for rest_length

    assert admin.start("alpha", ADMIN)["message"] == "alpha: Next cycle triggered."
    assert ledger.open_ingestion("alpha") is None
    assert ledger.history("alpha")[0].status == "complete"
    assert decide(engine, "alpha", clock.now).action == "start_cycle"


def test_start_cancels_a_running_cycle(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=False)
    admin.start("alpha", ADMIN)
    assert decide(engine, "alpha", clock.now).close_current["next_action"] == "nothing (canceled)"


def test_trigger_ends_a_backoff_wait_now(admin, engine, clock):
    Ledger(engine).start_cycle("alpha")
    record_failure(Ledger(engine), "alpha", OPTIONS, "HTTP 500", now=clock.now)
    assert decide(engine, "alpha", clock.now).action == "wait"

    assert admin.trigger("alpha", ADMIN)["message"] == "alpha: Next action triggered."
    assert decide(engine, "alpha", clock.now).action == "run_chunk"


def test_trigger_ends_a_rest_even_for_a_cron_scheduled_provider(engine, clock):
    cron = [ProviderConfig("alpha", "synthetic", options=IngestionOptions(cron_schedule="0 3 * * *"))]
    admin = IngestionAdmin(engine, cron, StaticPolicy.from_dict(POLICY), clock=clock)
    write_chunk(engine, "alpha", ["a1"], done=True)
    ledger = Ledger(engine)
    run_sweep(CatalogStore(engine), ledger, ledger.open_ingestion("alpha"), OPTIONS, now=clock.now)

    admin.trigger("alpha", ADMIN)
    assert ledger.open_ingestion("alpha") is None  # the next tick opens a new cycle


def test_trigger_on_a_paused_provider_warns_that_nothing_will_run(admin, engine):
    Ledger(engine).start_cycle("alpha")
    admin.pause("alpha", ADMIN)
    assert "paused" in admin.trigger("alpha", ADMIN)["warning"]


# ------------------------------------------------------------------------------ reset and marks


def test_reset_purges_the_ledger_keeps_entities_and_rests_24_hours(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1", "a2"], done=False)
    write_chunk(engine, "alpha", ["a3"], done=True)
    write_chunk(engine, "beta", ["b1"], done=True)

    result = admin.reset("alpha", ADMIN)

    assert result == {"provider": "alpha", "ingestionsDeleted": 1, "marksDeleted": 2, "markEntitiesDeleted": 3}
    ledger = Ledger(engine)
    [row] = ledger.history("alpha")
    assert (row.status, row.next_action, row.next_action_at) == ("resting", "rest", clock.now + dt.timedelta(hours=24))
    assert ledger.marks(row.id) == [] and row.ingestion_completed_at is None
    assert admin.report("alpha", READER)["last_cycle"] is None
    with engine.connect() as conn:
        refs = conn.execute(sa.select(s.ingestion_mark_entities.c.provider)).scalars().all()
    assert refs == ["beta"]
    assert CatalogStore(engine).count("alpha") == 3  # the catalog keeps alpha's entities
    assert decide(engine, "alpha", clock.now + dt.timedelta(hours=23)).action == "wait"
    assert decide(engine, "alpha", clock.now + dt.timedelta(hours=25)).action == "start_cycle"


def test_cleanup_purges_every_provider_including_unconfigured_ones(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=True)
    write_chunk(engine, "retired", ["r1", "r2"], done=True)

    result = admin.cleanup(ADMIN)

    assert result == {"ingestionsDeleted": 2, "ingestionMarksDeleted": 2, "markEntitiesDeleted": 3}
    ledger = Ledger(engine)
    assert ledger.providers() == ["alpha", "beta"]  # resting rows for the configured providers only
    assert {ledger.open_ingestion(p).status for p in ("alpha", "beta")} == {"resting"}


def test_marks_lists_the_open_cycle_newest_first_and_clear_marks_keeps_them(admin, engine, clock):
    write_chunk(engine, "alpha", ["a1"], done=True)
    ledger = Ledger(engine)
    finish_rest(ledger, ledger.open_ingestion("alpha"), clock.now)
    write_chunk(engine, "alpha", ["a1", "a2"], done=False)
    write_chunk(engine, "alpha", ["a3"], done=False)

    records = admin.marks("alpha", READER)["records"]
    assert [(m["sequence"], m["entity_count"]) for m in records] == [(1, 1), (0, 2)]
    assert records[0]["cursor"] == {"after": "a3"}

    result = admin.clear_marks("alpha", ADMIN)
    assert result["deletions"]["deletions"]["marksDeleted"] == 1  # the finished cycle's one mark
    assert len(admin.marks("alpha", READER)["records"]) == 2


def test_marks_without_an_open_cycle_says_the_provider_is_restarting(admin):
    assert admin.marks("alpha", READER) == {"success": True, "message": "No records yet (provider is restarting)"}


# ------------------------------------------------------------------------------ status and health


def test_status_reports_the_open_cycle_in_backstage_shape(admin, engine):
    assert admin.status("alpha", READER)["status"] == {"current_action": "rest complete, waiting to start"}
    Ledger(engine).start_cycle("alpha")
    body = admin.status("alpha", READER)
    assert body["status"]["current_action"] == "bursting"
    assert set(body) == {"success", "status", "last_error", "details"}


def test_report_gives_entities_owned_and_the_last_cycle_duration_and_throughput(admin, engine, clock):
    ledger = Ledger(engine)
    write_chunk(engine, "alpha", [f"a{i}" for i in range(6)], done=True)
    ingestion = ledger.open_ingestion("alpha")
    completed = ingestion.created_at + dt.timedelta(seconds=3)
    run_sweep(CatalogStore(engine), ledger, ingestion, OPTIONS, now=completed)

    report = admin.report("alpha", READER)

    assert (report["state"], report["healthy"], report["cycle"], report["last_cycle"]) == ("resting", True, 1, 1)
    assert report["entities_owned"] == 6
    assert report["last_cycle_seconds"] == 3.0 and report["last_cycle_entities_per_second"] == 2.0
    assert report["last_sweep"] == "nothing-to-remove"
    assert report["next_action_at"] == (completed + OPTIONS.rest_length).isoformat()


def test_report_names_who_paused_or_delayed_the_provider(admin, clock):
    admin.delay("alpha", ADMIN, hours=1)
    report = admin.report("alpha", READER)
    assert report["controls_updated_by"] == ADMIN and report["paused"] is False
    assert report["halted_until"] == (clock.now + dt.timedelta(hours=1)).isoformat()


def test_health_is_unhealthy_when_a_provider_backs_off_past_its_schedule(admin, engine, clock):
    Ledger(engine).start_cycle("alpha")
    assert admin.health(READER) == {"healthy": True}
    for attempt in range(len(OPTIONS.backoff)):
        record_failure(Ledger(engine), "alpha", OPTIONS, f"HTTP 503 #{attempt}", now=clock.now)

    health = admin.health(READER)

    assert health["healthy"] is False and health["duplicateIngestions"] == []
    [item] = health["unhealthyProviders"]
    assert item["provider"] == "alpha" and "HTTP 503 #3" in item["reason"]
    assert admin.report("alpha", READER)["attempts"] == 4


def test_health_lists_providers_with_duplicate_unfinished_cycles(admin, engine):
    ledger = Ledger(engine)
    first = ledger.start_cycle("alpha")
    ledger.close(first.id, status="complete")  # closed without rest_completed_at: bookkeeping bug
    ledger.start_cycle("alpha")
    assert admin.health(READER)["duplicateIngestions"] == ["alpha"]


# ------------------------------------------------------------------------- policy and identities


def test_static_policy_grants_by_role_and_denies_by_default(tmp_path):
    policy = StaticPolicy.from_dict(POLICY)
    assert policy.is_allowed("user:default/ALICE", INGESTION_MANAGE)
    assert policy.is_allowed("alice", INGESTION_MANAGE)
    assert policy.is_allowed("user:default/anyone", INGESTION_READ)
    assert not policy.is_allowed("user:default/anyone", INGESTION_MANAGE)
    assert not policy.is_allowed("", INGESTION_READ)
    assert not StaticPolicy.from_file(tmp_path / "missing.yaml").is_allowed(ADMIN, INGESTION_READ)
    assert StaticPolicy.from_dict({"roles": {"root": {"permissions": ["*"], "members": [ADMIN]}}}).is_allowed(
        ADMIN, "catalog.anything")


def test_the_shipped_policy_file_is_valid():
    from catalog_pipelines.settings import PROJECT_ROOT

    policy = StaticPolicy.from_file(PROJECT_ROOT / "config" / "permissions.yaml")
    assert policy.is_allowed("user:default/admin", INGESTION_MANAGE)
    assert not policy.is_allowed("user:default/someone", INGESTION_MANAGE)


@pytest.mark.parametrize("raw", [{"roles": []}, {"roles": {"x": {"permissions": "all"}}},
                                 {"roles": {"x": {"members": [":bad"]}}}, {"roles": {"x": {"typo": []}}}])
def test_malformed_policies_are_refused(raw):
    with pytest.raises(PolicyError):
        StaticPolicy.from_dict(raw)


def test_tokens_map_to_normalised_identities_and_errors_never_echo_tokens():
    alice_token, bob_token = "s3cret-s3cret-s3cret", "other-token-0123456789"
    tokens = parse_tokens(f" {alice_token}=user:default/Alice , {token_digest(bob_token)}=bob ")
    # Only digests are kept; an entry may be the digest itself, so configuration need hold no secret.
    assert tokens == {token_digest(alice_token): ADMIN, token_digest(bob_token): READER}
    assert alice_token not in str(tokens)
    assert identity_for_token(tokens, bearer_token(f"Bearer {alice_token}")) == ADMIN
    assert identity_for_token(tokens, bearer_token(f"bearer {bob_token}")) == READER
    assert identity_for_token(tokens, bearer_token(f"Basic {alice_token}")) is None
    assert identity_for_token(tokens, alice_token[:-1]) is None
    assert identity_for_token(tokens, token_digest(alice_token)) is None  # a leaked digest is no token
    assert identity_for_token({alice_token: ADMIN}, alice_token) == ADMIN  # code may pass plain tokens
    with pytest.raises(PolicyError) as err:
        parse_tokens("hunter2")
    assert "hunter2" not in str(err.value)
    with pytest.raises(PolicyError) as err:
        parse_tokens("hunter2=alice")  # too short to resist guessing
    assert "hunter2" not in str(err.value) and "16 characters" in str(err.value)
    with pytest.raises(PolicyError):
        parse_tokens(f"{alice_token}=alice,{token_digest(alice_token)}=bob")  # the same token twice
    assert normalize_actor("group:Default/Ops") == "group:default/ops"


# ------------------------------------------------------------------------- refusals, bounded


def refusal_summaries(engine) -> list:
    return entries(engine, action=REFUSALS_ACTION)


def assert_refusal_counts_add_up(engine, attempts: int, windows: int) -> None:
    """Every refusal is counted once in its minute's summary; the individual rows are the
    summaries' `recorded`; and the table holds at most the bound per window."""
    rows = entries(engine)
    summaries = refusal_summaries(engine)
    individual = [e for e in rows if e.outcome == "denied" and e.action != REFUSALS_ACTION]
    assert len(summaries) == windows
    assert sum(s.details["attempts"] for s in summaries) == attempts
    for s in summaries:
        assert s.details["attempts"] == s.details["recorded"] + s.details["suppressed"]
        assert sum(s.details["suppressed_by"].values()) == s.details["suppressed"]
    assert len(individual) == sum(s.details["recorded"] for s in summaries)
    assert len(rows) <= windows * (REFUSALS_PER_WINDOW + 1)


def test_a_flood_of_refusals_is_audited_within_the_per_minute_bound(admin, engine, clock):
    attempts = 0
    for minute in range(3):
        for i in range(400):
            with pytest.raises(NotAuthenticated):
                admin.authenticate({}, "guess-%d" % i if i % 2 else None, "pause", "alpha", source=f"10.0.0.{i % 7}")
            attempts += 1
        clock.advance(minutes=1)
    assert_refusal_counts_add_up(engine, attempts, windows=3)
    assert max_refusal_rows_per_hour() == 60 * (REFUSALS_PER_WINDOW + 1) == 660
    # What was only counted is still told apart by action, reason and source.
    assert all(s.details["suppressed_by"]["ingestion.pause unknown token 10.0.0.1"] > 0 for s in refusal_summaries(engine))


def test_refusal_rows_stay_small_whatever_the_attacker_sends(engine):
    at = utcnow()
    for i in range(200):
        record_refusal(engine, actor="x" * 5000, action="ingestion.pause", target="ingestion-provider:" + "p" * 5000,
                       reason="unknown token", source=f"host-{i}-" + "h" * 5000, details={"path": "/" + "a" * 5000},
                       at=at)
    rows = entries(engine)
    assert len(rows) == REFUSALS_PER_WINDOW + 1
    for row in rows:
        assert len(row.actor) <= 200 and len(row.target) <= 200
        assert all(len(str(v)) <= 200 for v in row.details.values() if isinstance(v, str))
    for summary in refusal_summaries(engine):
        assert len(summary.details["suppressed_by"]) <= MAX_SUMMARY_KEYS + 1
    assert sum(s.details["attempts"] for s in refusal_summaries(engine)) == 200


def test_concurrent_refusals_keep_the_bound_and_the_count(engine):
    from concurrent.futures import ThreadPoolExecutor

    at = utcnow().replace(second=1)

    def refuse(i: int) -> None:
        record_refusal(engine, actor="anonymous", action="ingestion.pause", target="ingestion-provider:alpha",
                       reason="no token", source=f"thread-{i % 8}", at=at)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(refuse, range(200)))
    assert_refusal_counts_add_up(engine, 200, windows=1)


# ------------------------------------------------------------------------------------- the doors


ADMIN_TOKEN, READER_TOKEN = "admin-token-0123456789", "reader-token-0123456789"
TOKENS = {token_digest(ADMIN_TOKEN): ADMIN, token_digest(READER_TOKEN): READER}


@pytest.fixture
def launch(url, configs, dagster_instance):
    """Launch `ingestion_admin_job` as the launchpad does: the run config is all the caller controls."""
    from catalog_pipelines.jobs import ADMIN_OP, build_ingestion_admin_job
    from catalog_pipelines.resources import CatalogDatabase

    job = build_ingestion_admin_job(configs, authorizer=lambda: StaticPolicy.from_dict(POLICY), tokens=lambda: TOKENS)

    def run(**config):
        return job.execute_in_process(run_config={"ops": {ADMIN_OP: {"config": config}}},
                                      resources={"catalog": CatalogDatabase(url=url)}, instance=dagster_instance,
                                      raise_on_error=False)

    return run


def failure_of(result):
    """The step failure as the UI shows it: Dagster's error and the Failure's description."""
    [event] = result.get_step_failure_events()
    return event.event_specific_data.error, event.event_specific_data.user_failure_data


def test_dagster_job_runs_an_operation_from_typed_config(launch, engine):
    import dagster as dg

    result = launch(operation="delay", provider="beta", hours=6, token=ADMIN_TOKEN)
    assert result.success
    assert Ledger(engine).controls("beta")["halted_until"] is not None
    audit = entries(engine, action="ingestion.delay")[0]
    assert (audit.actor, audit.outcome, audit.details["channel"]) == (ADMIN, "success", "dagster")

    denied = launch(operation="pause", provider="alpha", token=READER_TOKEN)
    assert not denied.success
    assert "not allowed" in failure_of(denied)[1].description
    assert Ledger(engine).controls("alpha")["paused"] is False

    assert launch(operation="halt_all", token=ADMIN_TOKEN).success
    assert all(Ledger(engine).controls(p)["halted_until"] for p in ("alpha", "beta"))

    with pytest.raises(dg.DagsterInvalidConfigError):  # the launchpad offers only configured providers
        launch(operation="pause", provider="gamma", token=ADMIN_TOKEN)


@pytest.mark.parametrize("token,reason", [(None, "no token"), ("", "no token"), ("guessed-token-0123456789", "unknown token"),
                                          (token_digest(ADMIN_TOKEN), "unknown token")])
def test_admin_job_refuses_a_forged_actor_without_a_valid_token_in_one_line_and_audits_it(launch, engine, token, reason):
    before = ledger_state(engine)
    config = {"operation": "pause", "provider": "alpha", "actor": ADMIN}  # typed into the launchpad: a claim
    if token is not None:
        config["token"] = token

    result = launch(**config)

    assert not result.success
    assert ledger_state(engine) == before
    error, failure = failure_of(result)
    assert failure.description == (f"not authenticated: {reason}; pause needs a valid operator token; "
                                   "put your operator token in `token`")
    assert "\n" not in failure.description
    assert error.message.strip().endswith(failure.description) and error.message.strip().count("\n") == 0
    assert error.cause is None and error.context is None  # no chained traceback of the admin internals
    [row] = entries(engine, action="ingestion.pause")
    assert (row.actor, row.outcome, row.target) == ("anonymous", "denied", "ingestion-provider:alpha")
    assert (row.details["reason"], row.details["channel"], row.details["claimed_actor"]) == (reason, "dagster", ADMIN)
    assert row.details["source"] == f"dagster run {result.run_id}"
    if token:
        assert token not in str(row.details) and token not in failure.description


def test_admin_job_acts_as_the_tokens_identity_whatever_actor_is_typed(launch, engine):
    assert launch(operation="pause", provider="alpha", token=ADMIN_TOKEN, actor=READER).success
    [row] = entries(engine, action="ingestion.pause")
    assert (row.actor, row.outcome, row.details["channel"]) == (ADMIN, "success", "dagster")
    assert ADMIN_TOKEN not in str(row.details)

    # A reader's token stays a reader's, even when the launchpad says "admin".
    denied = launch(operation="resume", provider="alpha", token=READER_TOKEN, actor=ADMIN)
    assert not denied.success and failure_of(denied)[1].description.startswith(f"{READER} is not allowed to resume")
    assert Ledger(engine).controls("alpha")["paused"] is True
    assert [(e.actor, e.outcome) for e in entries(engine, action="ingestion.resume")] == [(READER, "denied")]


def test_admin_job_with_no_tokens_configured_refuses_everyone(url, configs, dagster_instance, engine, monkeypatch):
    from catalog_pipelines.jobs import ADMIN_OP, build_ingestion_admin_job
    from catalog_pipelines.resources import CatalogDatabase

    monkeypatch.delenv("CATALOG_PIPELINES_ADMIN_TOKENS", raising=False)
    job = build_ingestion_admin_job(configs, authorizer=lambda: StaticPolicy.from_dict(POLICY))  # tokens from env
    result = job.execute_in_process(
        run_config={"ops": {ADMIN_OP: {"config": {"operation": "halt_all", "token": ADMIN_TOKEN}}}},
        resources={"catalog": CatalogDatabase(url=url)}, instance=dagster_instance, raise_on_error=False)
    assert not result.success
    assert failure_of(result)[1].description.startswith("not authenticated: unknown token")
    assert [e.details["reason"] for e in entries(engine, action="ingestion.halt_all")] == ["unknown token"]


@pytest.fixture
def cli_env(tmp_path, url, monkeypatch):
    providers = tmp_path / "providers.yaml"
    providers.write_text(yaml.safe_dump({"providers": [{"name": "alpha", "type": "synthetic"}]}))
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(yaml.safe_dump(POLICY))
    monkeypatch.setenv("CATALOG_DATABASE_URL", url)
    monkeypatch.setenv("CATALOG_PIPELINES_PROVIDERS", str(providers))
    monkeypatch.setenv("CATALOG_PIPELINES_PERMISSIONS", str(permissions))
    monkeypatch.setenv("CATALOG_PIPELINES_ACTOR", READER)


def test_cli_acts_as_the_given_identity_and_maps_refusals_to_exit_codes(cli_env, engine):
    from catalog_pipelines.cli.admin import admin as group

    runner = CliRunner()
    denied = runner.invoke(group, ["pause", "alpha"])  # as $CATALOG_PIPELINES_ACTOR, a reader
    assert denied.exit_code == 3 and "not permitted" in denied.output
    assert runner.invoke(group, ["pause", "alpha", "--as", ADMIN]).exit_code == 0
    assert Ledger(engine).controls("alpha")["paused"] is True
    assert runner.invoke(group, ["pause", "nope", "--as", ADMIN]).exit_code == 4
    assert runner.invoke(group, ["reset", "alpha", "--as", ADMIN], input="n\n").exit_code == 1  # not confirmed
    assert runner.invoke(group, ["reset", "alpha", "--as", ADMIN, "--yes"]).exit_code == 0
    assert [e.details["channel"] for e in entries(engine, action="ingestion.reset")] == ["cli"]
    # The CLI's actor is a claim: the OS account behind it is recorded with it.
    assert {e.details["os_user"] for e in entries(engine, action_prefix="ingestion.")} == {os_login()}


def test_cli_token_makes_an_operator_token_whose_entry_maps_it_to_the_identity():
    from catalog_pipelines.cli.admin import admin as group

    out = CliRunner().invoke(group, ["token", "Alice"])
    assert out.exit_code == 0, out.output
    token_line, entry_line = out.output.splitlines()
    secret = token_line.rsplit(" ", 1)[1]
    entry = entry_line.split(": ", 1)[1]
    assert secret not in entry and entry.startswith("sha256:")
    assert identity_for_token(parse_tokens(entry), secret) == ADMIN
    assert CliRunner().invoke(group, ["token", ":bad"]).exit_code == 2


def test_cli_status_prints_every_provider_as_a_table_or_json(cli_env, engine):
    import json

    from catalog_pipelines.cli.admin import admin as group

    write_chunk(engine, "alpha", ["a1", "a2"], done=False)
    runner = CliRunner()
    out = runner.invoke(group, ["status"])
    assert out.exit_code == 0, out.output
    header, _, row = out.output.splitlines()[:3]
    assert header.split()[:3] == ["provider", "state", "cycle"] and row.split()[:3] == ["alpha", "bursting", "1"]
    [report] = json.loads(runner.invoke(group, ["status", "--json"]).output)
    assert (report["provider"], report["entities_owned"], report["state"]) == ("alpha", 2, "bursting")
