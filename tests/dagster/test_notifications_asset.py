"""The Dagster glue of freshness and notifications: every insight asset carries its declared
freshness policy (shown in the UI), and the `notifications` asset sends after the insights without
ever failing its run on a dead receiver."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import dagster as dg
import pandas as pd
from click.testing import CliRunner

from catalog_pipelines.assets.notifications import DELIVERED_CHECK, notifications
from catalog_pipelines.cli import main
from catalog_pipelines.model.freshness import FRESHNESS
from catalog_pipelines.model.insight_tables import ORPHANS
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.insights import write_frames
from catalog_pipelines.storage.notifications import deliveries
from helpers import seed_catalog
from receivers import WebhookReceiver, refused_url

INSIGHT_GROUPS = {"facts", "scorecards", "surveys", "usage", "catalog_health", "dashboards", "delivery"}
NOT_INSIGHTS = {"synthetic_fact_sources", "usage_retention"}  # the demo's input, a maintenance job


def test_every_insight_asset_declares_its_freshness_policy():
    from catalog_pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    insight = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()
               if graph.get(k).group_name in INSIGHT_GROUPS and not graph.get(k).is_partitioned}
    # A collector's facts asset follows its collectors.yaml cadence (automation.freshness_policy).
    collectors = {name for name, node in insight.items() if "facts/collector_type" in node.tags}
    assert collectors, "the shipped collectors.yaml configures collectors"
    assert set(insight) - NOT_INSIGHTS - collectors == set(FRESHNESS)
    for name in collectors:
        policy = insight[name].freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() > policy.warn_window.to_timedelta(), name
    for name, declared in FRESHNESS.items():
        policy = insight[name].freshness_policy
        assert policy is not None and hasattr(policy, "fail_window"), name  # a time-window policy
        assert (policy.fail_window.to_timedelta(), policy.warn_window.to_timedelta()) == (declared.fail, declared.warn)


def _config(path, operators: str, default: str) -> None:
    path.write_text(textwrap.dedent(f"""\
        channels:
          ops: {{urls: ["{operators}"]}}
          teams: {{urls: ["{default}"]}}
        default_channel: teams
        operators_channel: ops
        delivery: {{attempts: 2, backoff_seconds: 0}}
        """))


def _orphan(url: str) -> None:
    seed_catalog(url, [{"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "team-b"}, "spec": {"type": "team", "children": []}}])
    write_frames(get_engine(url), {ORPHANS.report: pd.DataFrame([{
        "category": "no_owner", "severity": "error", "ref": "component:default/lost", "kind": "component", "provider": "seed",
        "owner": None, "notify_group": "group:default/team-b", "related_ref": None, "detail": "no spec.owner", "cycle": None, "removed_at": None}])})


def test_the_asset_reports_a_dead_receiver_as_a_warning_and_its_run_succeeds(catalog_url, dagster_instance, monkeypatch, tmp_path):
    monkeypatch.setenv("CATALOG_PIPELINES_NOTIFICATIONS", str(tmp_path / "notifications.yaml"))
    monkeypatch.setenv("CATALOG_PIPELINES_PROVIDERS", str(tmp_path / "none.yaml"))
    _config(tmp_path / "notifications.yaml", refused_url(), refused_url())
    _orphan(catalog_url)
    result = dg.materialize([notifications], resources={"catalog": CatalogDatabase(url=catalog_url)}, instance=dagster_instance)
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == DELIVERED_CHECK and not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    metadata = result.asset_materializations_for_node("notifications")[0].metadata
    assert (metadata["digests"].value, metadata["failed"].value) == (1, 1)
    assert [(d.recipient, d.outcome, d.attempts) for d in deliveries(get_engine(catalog_url))] == [("group:default/team-b", "failed", 2)]


def test_the_cli_dry_run_prints_the_digest_and_the_real_run_sends_it_once(monkeypatch, tmp_path):
    # One backend: the CLI's own part is printing and exit codes (the service and its sent-log run
    # on both backends in tests/notifications/); each command builds an instance (~2 s).
    monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "data" / "dagster_home"))
    monkeypatch.delenv("CATALOG_DATABASE_URL", raising=False)
    with WebhookReceiver() as hook:
        monkeypatch.setenv("CATALOG_PIPELINES_NOTIFICATIONS", str(tmp_path / "notifications.yaml"))
        monkeypatch.setenv("CATALOG_PIPELINES_PROVIDERS", str(tmp_path / "none.yaml"))
        _config(tmp_path / "notifications.yaml", refused_url(), hook.url("/team"))
        from catalog_pipelines.settings import Settings

        _orphan(Settings.from_env().catalog_database_url)
        runner = CliRunner()
        dry = runner.invoke(main, ["notify", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "== group:default/team-b via teams (1 item(s), would send)" in dry.output and "[error] no_owner component:default/lost" in dry.output
        assert hook.requests == []
        sent = runner.invoke(main, ["notify", "--json"])
        assert sent.exit_code == 0, sent.output
        assert '"outcome": "sent"' in sent.output and len(hook.delivered("/team")) == 1
        again = runner.invoke(main, ["notify"])
        assert again.exit_code == 0 and "0 digest(s), 1 item(s) found, 1 already sent" in again.output
        assert len(hook.requests) == 1
    (tmp_path / "notifications.yaml").write_text("channels: {}\ndefault_channel: x\noperators_channel: x\n")
    bad = CliRunner().invoke(main, ["notify"])
    assert bad.exit_code == 2 and "notifications.yaml:2: default_channel: 'x' is not a declared channel" in bad.output
