"""Notifications end to end through real receivers: an SMTP server (aiosmtpd) and an HTTP webhook
on loopback capture what apprise sends (`tests/receivers.py`). On SQLite and PostgreSQL.

Protected: one digest per team per run, to the channel the team's Group annotation names (else the
default); the sent-log stops a second send; dry-run sends and records nothing; a failing receiver
(500s, refused connection) is retried with backoff, recorded, never raises, and gets the items on
the next run; survey figures about fewer than k respondents never reach a message.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analytics.scorecards.reports import level_changes, regressions, result_changes
from catalog_pipelines.model.insight_tables import ORPHANS, SCORECARDS, SURVEYS
from catalog_pipelines.services.notify_config import parse_notifications_text
from catalog_pipelines.services.notify import run_notifications
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.insights import write_frames
from catalog_pipelines.storage.notifications import deliveries, sent_items
from helpers import seed_catalog
from receivers import SmtpReceiver, WebhookReceiver, refused_url

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
API, UI = "component:default/payments-api", "component:default/billing-ui"
TEAM_A, TEAM_B, PLATFORM = "group:default/team-a", "group:default/team-b", "group:default/platform"


def group(name: str, channel: str | None = None) -> dict:
    meta = {"name": name, **({"annotations": {"catalog-pipelines.io/notify-channel": channel}} if channel else {})}
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": meta, "spec": {"type": "team", "children": []}}


def component(name: str, owner: str) -> dict:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
            "spec": {"type": "service", "lifecycle": "production", "owner": owner}}


@pytest.fixture(scope="module")
def smtp():
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def webhook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def env(monkeypatch, tmp_path):
    # No providers configured: provider health is not part of these tests (the ledger rules are).
    monkeypatch.setenv("CATALOG_PIPELINES_PROVIDERS", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("CATALOG_PIPELINES_SURVEYS", str(tmp_path / "surveys"))
    (tmp_path / "surveys").mkdir()
    return tmp_path


def config(*, team_a: str, default: str, operators: str, attempts: int = 3):
    return parse_notifications_text(textwrap.dedent(f"""\
        channels:
          team-a-mail: {{urls: ["{team_a}"]}}
          teams-default: {{urls: ["{default}"]}}
          operators: {{urls: ["{operators}"]}}
        default_channel: teams-default
        operators_channel: operators
        rules:
          campaign_deadlines: {{lead_days: [14, 3]}}
        delivery: {{attempts: {attempts}, backoff_seconds: 2, max_backoff_seconds: 30}}
        """), "notifications.yaml")


def seed_insights(url: str) -> None:
    """A catalog with three teams and the insight tables their producers write (same functions)."""
    seed_catalog(url, [group("team-a", "team-a-mail"), group("team-b"), group("platform", "no-such-channel"),
                       component("payments-api", "team-a"), component("billing-ui", "team-b")])
    engine = get_engine(url)
    at = (NOW - timedelta(hours=1)).replace(tzinfo=None)
    before = pd.DataFrame({"entity_ref": [API, API], "check_id": ["pr-techdocs", "pr-owner"], "state": ["passed", "passed"]})
    after = before.assign(state=["failed", "passed"])
    changes = result_changes(before, after, 7, at)
    levels = level_changes(pd.DataFrame({"entity_ref": [API], "track_id": ["production-readiness"], "level": [2]}),
                           pd.DataFrame({"entity_ref": [API], "track_id": ["production-readiness"], "level": [1]}), 7, at)
    entities = pd.DataFrame({"entity_ref": [API, UI], "owner": [TEAM_A, TEAM_B]})
    deadline = (NOW + timedelta(days=10)).date().isoformat()
    write_frames(engine, {
        SCORECARDS.regressions: regressions(changes, levels, entities),
        SCORECARDS.checks: pd.DataFrame({"check_id": ["pr-techdocs", "pr-owner"], "name": ["Has TechDocs", "Has an owner"]}),
        SCORECARDS.entities: entities,
        SCORECARDS.campaigns: pd.DataFrame([{"campaign_id": "techdocs", "name": "TechDocs everywhere", "description": "", "owner": PLATFORM,
                                             "checks": "pr-techdocs", "start": None, "deadline": deadline}]),
        SCORECARDS.campaign_members: pd.DataFrame({"campaign_id": ["techdocs", "techdocs"], "entity_ref": [API, UI], "done": [False, True],
                                                   "checks_passing": [0, 1], "checks_total": [1, 1]}),
    })
    report = pd.DataFrame([
        {"category": "owner_unresolved", "severity": "error", "ref": UI, "kind": "component", "provider": "seed", "owner": "group:default/gone",
         "notify_group": TEAM_B, "related_ref": "group:default/gone", "detail": "owner group:default/gone is not in the catalog", "cycle": None, "removed_at": None},
        {"category": "component_without_system", "severity": "info", "ref": API, "kind": "component", "provider": "seed", "owner": TEAM_A,
         "notify_group": TEAM_A, "related_ref": None, "detail": "", "cycle": None, "removed_at": None},
    ])
    write_frames(engine, {ORPHANS.report: report})


def test_one_digest_per_team_reaches_its_channel_once_and_dry_run_sends_nothing(catalog_url, env, smtp, webhook):
    seed_insights(catalog_url)
    engine = get_engine(catalog_url)
    cfg = config(team_a=smtp.url("team-a@example.org"), default=webhook.url("/default"), operators=webhook.url("/ops"))
    stale = {"scorecard_results": NOW - timedelta(hours=5)}
    mails, posts = len(smtp.messages), len(webhook.requests)

    dry = run_notifications(engine, dry_run=True, now=NOW, materialized=stale, config=cfg)
    assert len(smtp.messages) == mails and len(webhook.requests) == posts
    assert deliveries(engine) == [] and sent_items(engine) == []
    assert {d["recipient"]: d["channel"] for d in dry["digests"]} == {
        TEAM_A: "team-a-mail", TEAM_B: "teams-default", PLATFORM: "teams-default", "operators": "operators"}
    assert any("no-such-channel" in w for w in dry["warnings"])

    sent = run_notifications(engine, now=NOW, materialized=stale, config=cfg)
    assert [d["outcome"] for d in sent["digests"]] == ["sent"] * 4
    # team-a: one e-mail with its regressions (check and level) and the campaign, nothing else
    new_mail = smtp.messages[mails:]
    assert len(new_mail) == 1 and new_mail[0].rcpt_tos == ["team-a@example.org"]
    text = new_mail[0].text
    assert "Has TechDocs (pr-techdocs) passed -> failed" in text and "production-readiness level lost (2 -> 1)" in text
    assert "campaign TechDocs everywhere: 1 of your 1 entities still open" in text and "pr-owner" not in text
    assert "component_without_system" not in text  # info: below min_severity
    # team-b and the campaign owner: one webhook call each on the default channel; operators one
    default = [r.body for r in webhook.requests[posts:] if r.path == "/default"]
    assert len(default) == 2
    by_title = {b["title"]: b["message"] for b in default}
    assert "owner_unresolved" in by_title[f"catalog-pipelines: 1 notification for {TEAM_B}"]
    assert "(you own it): 1 of 2 entities done" in by_title[f"catalog-pipelines: 1 notification for {PLATFORM}"]
    ops = [r.body["message"] for r in webhook.requests[posts:] if r.path == "/ops"]
    assert len(ops) == 1 and "scorecard_results: stale since" in ops[0]

    again = run_notifications(engine, now=NOW + timedelta(minutes=30), materialized=stale, config=cfg)
    assert again["digests"] == [] and again["already_sent"] == sent["items"]
    assert len(smtp.messages) == mails + 1 and len(webhook.requests) == posts + 3
    assert {(r, rule) for r, rule, _ in sent_items(engine)} == {
        (TEAM_A, "scorecard_regressions"), (TEAM_A, "campaign_deadlines"), (TEAM_B, "orphans"),
        (PLATFORM, "campaign_deadlines"), ("operators", "stale_assets")}


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_a_failing_receiver_is_retried_with_backoff_recorded_and_served_next_run(catalog_url, env, webhook):
    seed_catalog(catalog_url, [group("team-a")])
    engine = get_engine(catalog_url)
    stale = {"orphan_report": NOW - timedelta(days=3)}
    webhook.fail("/down")  # 500 on every request
    before = len(webhook.requests)
    cfg = config(team_a=refused_url(), default=refused_url(), operators=webhook.url("/down"))
    sleeps = Sleeps()
    result = run_notifications(engine, now=NOW, materialized=stale, config=cfg, sleep=sleeps)
    [digest] = result["digests"]
    assert digest["outcome"] == "failed" and digest["attempts"] == 3 and sleeps == [2, 4] and digest["backoff_seconds"] == 6
    assert "500" in digest["error"] or "Internal Server Error" in digest["error"]
    assert [r.status for r in webhook.requests[before:] if r.path == "/down"] == [500, 500, 500]
    [row] = deliveries(engine)
    assert (row.outcome, row.attempts, row.channel) == ("failed", 3, "operators") and sent_items(engine) == []

    webhook.heal("/down")
    retried = run_notifications(engine, now=NOW, materialized=stale, config=cfg, sleep=sleeps)
    assert [d["outcome"] for d in retried["digests"]] == ["sent"]
    assert [r.status for r in webhook.requests[before:] if r.path == "/down"] == [500, 500, 500, 200]
    assert run_notifications(engine, now=NOW, materialized=stale, config=cfg, sleep=sleeps)["digests"] == []


def test_a_refused_connection_fails_the_digest_not_the_run_and_a_flaky_one_succeeds_on_retry(catalog_url, env, webhook):
    seed_catalog(catalog_url, [group("team-a")])
    engine = get_engine(catalog_url)
    stale = {"orphan_report": NOW - timedelta(days=3)}
    sleeps = Sleeps()
    refused = run_notifications(engine, now=NOW, materialized=stale, sleep=sleeps,
                                config=config(team_a=refused_url(), default=refused_url(), operators=refused_url(), attempts=2))
    assert [(d["outcome"], d["attempts"]) for d in refused["digests"]] == [("failed", 2)] and sleeps == [2]
    assert "connection" in refused["digests"][0]["error"].lower()

    webhook.fail("/flaky", times=2)
    before = len(webhook.requests)
    flaky = run_notifications(engine, now=NOW, materialized=stale, sleep=sleeps,
                              config=config(team_a=refused_url(), default=refused_url(), operators=webhook.url("/flaky")))
    assert [(d["outcome"], d["attempts"], d["backoff_seconds"]) for d in flaky["digests"]] == [("sent", 3, 6.0)]
    assert [r.status for r in webhook.requests[before:] if r.path == "/flaky"] == [500, 500, 200]


def test_a_channel_url_that_failed_gets_the_items_next_run_and_the_one_that_worked_does_not_get_them_twice(catalog_url, env, webhook):
    seed_catalog(catalog_url, [group("team-a")])
    engine = get_engine(catalog_url)
    cfg = parse_notifications_text(textwrap.dedent(f"""\
        channels:
          teams-default: {{urls: ["{webhook.url('/default')}"]}}
          operators: {{urls: ["{webhook.url('/ops-chat')}", "{webhook.url('/ops-pager')}"]}}
        default_channel: teams-default
        operators_channel: operators
        delivery: {{attempts: 2, backoff_seconds: 1, max_backoff_seconds: 1}}
        """), "notifications.yaml")
    sleeps = Sleeps()
    webhook.fail("/ops-pager")
    before = len(webhook.requests)
    first = run_notifications(engine, now=NOW, materialized={"orphan_report": NOW - timedelta(days=3)}, config=cfg, sleep=sleeps)
    assert [d["outcome"] for d in first["digests"]] == ["failed"]
    assert [r.status for r in webhook.requests[before:]] == [200, 500, 500]

    # next run: a second asset went stale; the chat URL gets only that, the pager both
    webhook.heal("/ops-pager")
    stale = {"orphan_report": NOW - timedelta(days=3), "scorecard_results": NOW - timedelta(hours=5)}
    second = run_notifications(engine, now=NOW + timedelta(minutes=30), materialized=stale, config=cfg, sleep=sleeps)
    assert [d["outcome"] for d in second["digests"]] == ["sent"]
    chat = [r.body["message"] for r in webhook.requests[before:] if r.path == "/ops-chat"]
    pager = [r.body["message"] for r in webhook.requests[before:] if r.path == "/ops-pager" and r.status == 200]
    assert len(chat) == 2 and "orphan_report" in chat[0] and "orphan_report" not in chat[1] and "scorecard_results" in chat[1]
    assert len(pager) == 1 and "orphan_report" in pager[0] and "scorecard_results" in pager[0]
    assert run_notifications(engine, now=NOW + timedelta(hours=1), materialized=stale, config=cfg, sleep=sleeps)["digests"] == []
    # no URL, not even hashed, names a token-bearing address in the sent-log
    assert all("http" not in recipient for recipient, _, _ in sent_items(engine))


SURVEY = """\
id: pulse
title: Pulse
owner: group:default/team-b
anonymity: {min_group_size: 5}
dimensions: {sat: Satisfaction}
questions:
  - {id: sat_overall, type: likert, dimension: sat, text: I am satisfied.}
waves:
  - {id: w1}
  - {id: w2}
  - {id: w3}
"""


def waves(*rows: tuple[str, int, float, float, bool]) -> pd.DataFrame:
    return pd.DataFrame([{"survey": "pulse", "survey_title": "Pulse", "wave": w, "wave_order": i, "wave_title": w, "opens": None, "closes": None,
                          "min_group_size": 5, "invited": invited, "respondents": n, "response_rate": rate, "suppressed": hidden}
                         for i, (w, invited, n, rate, hidden) in enumerate(rows)])


def test_survey_collapse_goes_to_the_owner_and_never_carries_a_figure_below_k(catalog_url, env, webhook):
    (env / "surveys" / "pulse.yaml").write_text(SURVEY)
    seed_catalog(catalog_url, [group("team-b")])
    engine = get_engine(catalog_url)
    cfg = config(team_a=refused_url(), default=webhook.url("/surveys"), operators=webhook.url("/ops-surveys"))
    nan = float("nan")
    # w2 had 3 respondents (< k = 5): published hidden, no figure. w3 collapsed below 20 %.
    write_frames(engine, {SURVEYS.waves: waves(("w1", 60, 48, 80.0, False), ("w2", 40, nan, nan, True), ("w3", 60, 9, 15.0, False))})
    [digest] = run_notifications(engine, now=NOW, config=cfg)["digests"]
    assert digest["recipient"] == TEAM_B and "survey Pulse, wave w3: response rate 15% (below 20%)" in digest["body"]
    assert "w2" not in digest["body"]

    # A table that breaks k (w2 shown with 3 respondents, 7.5 %): nothing about the survey is sent.
    write_frames(engine, {SURVEYS.waves: waves(("w1", 60, 48, 80.0, False), ("w2", 40, 3, 7.5, False), ("w4", 60, 9, 15.0, False))})
    result = run_notifications(engine, now=NOW, config=cfg)
    assert result["digests"] == []
    bodies = " ".join(r.body.get("message", "") for r in webhook.requests)
    assert "7.5" not in bodies and "w2" not in bodies and "w4" not in bodies


def test_ingestion_guard_refusals_and_refused_operations_go_to_operators(catalog_url, env, webhook):
    from catalog_pipelines.storage import audit
    from catalog_pipelines.storage.ledger import Ledger

    engine = get_engine(catalog_url)
    ledger = Ledger(engine)
    cycle = ledger.start_cycle("github")
    ledger.close(cycle.id, status="complete", next_action="rest", ingestion_completed_at=NOW - timedelta(hours=1),
                 sweep_outcome="rejected-threshold", sweep_message="would remove 40% (> 10%)", removed=0)
    audit.record(engine, actor="user:default/mallory", action="ingestion.reset", target="github", outcome="denied",
                 details={"reason": "missing permission ingestion.provider.reset"}, at=NOW - timedelta(hours=2))
    cfg = config(team_a=refused_url(), default=refused_url(), operators=webhook.url("/ops-ingestion"))
    [digest] = run_notifications(engine, now=NOW, config=cfg)["digests"]
    assert digest["recipient"] == "operators" and digest["outcome"] == "sent"
    assert "provider github cycle 1: removal sweep rejected-threshold: would remove 40% (> 10%)" in digest["body"]
    assert "refused ingestion.reset on github by user:default/mallory: missing permission" in digest["body"]
