"""`make demo`, the README's first command, end to end: `catalog-pipelines demo` in a fresh data
directory on the embedded default (SQLite catalog, SQLite Dagster instance), as a user runs it.

Protects: the demo ingests both configured sources through Dagster, materialises every insight
asset of the code location, and leaves a catalog, a Dagster history and a dashboards site behind.
A small synthetic org keeps it to about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from conftest import REPO

SIZE = 300
EXAMPLE_ENTITIES = 66  # reachable from the example catalog's roots (tests/dagster/test_ingest_dagster.py)


def test_demo_ingests_both_sources_and_materialises_every_insight_asset(tmp_path, monkeypatch):
    from catalog_pipelines.definitions import defs
    from catalog_pipelines.jobs import insight_selection

    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "DAGSTER_"))}
    env["CATALOG_PIPELINES_DATA_DIR"] = str(data)
    cli = Path(sys.executable).parent / "catalog-pipelines"
    result = subprocess.run([str(cli), "demo", "--size", str(SIZE), "--quiet"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Both providers' cycles, with what each added.
    header, *_ = [line.split() for line in result.stdout.splitlines() if line.startswith("provider   cycle")]
    rows = {}
    for line in result.stdout.splitlines():
        cells = line.split()
        if len(cells) == len(header) and cells[0] in ("examples", "synthetic"):
            rows.setdefault(cells[0], dict(zip(header, cells)))
    assert (rows["examples"]["added"], rows["synthetic"]["added"]) == (str(EXAMPLE_ENTITIES), str(SIZE)), result.stdout
    assert rows["examples"]["rejected"] == rows["synthetic"]["rejected"] == "0"

    # Every insight asset the code location defines, no more and no less.
    expected = sorted(k.to_user_string() for k in insight_selection().resolve(defs.resolve_asset_graph()))
    (listed,) = [line for line in result.stdout.splitlines() if line.startswith("insight assets materialised: ")]
    assert listed.split(": ", 1)[1].split(", ") == expected

    # What it leaves behind: the catalog, the runs in DAGSTER_HOME, the site.
    engine = sa.create_engine(f"sqlite:///{data / 'catalog.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM entities")).scalar_one() == EXAMPLE_ENTITIES + SIZE
        # The collectors stored the demo's delivery history, read from the loopback vendor pages, and
        # its days were closed (issue 22).
        for kind in ("pull_requests", "reviews", "deployments", "incidents", "pipeline_runs"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM delivery_{kind}")).scalar_one() > 0, kind
        assert conn.execute(sa.text("SELECT count(DISTINCT day) FROM delivery_event_days")).scalar_one() > 60
        # ... and the delivery metrics were computed from them: the organisation deploys
        deployed = conn.execute(sa.text("SELECT events FROM insight_delivery_dora_summary WHERE scope_type = 'org' "
                                        "AND metric = 'deployment_frequency'")).scalar_one()
        assert deployed > 0
    engine.dispose()
    # The instance's event log lives relative to DAGSTER_HOME (the data directory is relocatable).
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    with dg.DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        runs = instance.get_run_records()
        assert runs and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        # The demo's run that published survey figures verified k in that same run (docs/surveys.md).
        for asset, check in (("survey_trends", "published_figures_respect_k"), ("dashboards_site", "people_figures_respect_k")):
            key = dg.AssetCheckKey(dg.AssetKey(asset), check)
            (record,) = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
            materialised = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert record.run_id == materialised.run_id and record.status.value == "SUCCEEDED", (asset, record)
    assert (data / "outputs" / "dashboards" / "index.html").exists()

    # It ends saying where the dashboards are, which checks failed and how to look at them (issue 18).
    tail = result.stdout.splitlines()
    index = data / "outputs" / "dashboards" / "index.html"
    assert f"dashboards: {index}" in tail and f"  open it in a browser: {index.as_uri()}" in tail
    checks = [line for line in tail if line.startswith("checks: ")][-1]  # surveys and usage print theirs before
    if checks != "checks: every asset check passed":
        failed = int(checks.split()[1])
        looks = [line for line in tail if line.startswith("    look: make ui, then http://127.0.0.1:3000/assets/")]
        assert failed == len(looks) > 0, tail[-20:]
    with dg.DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        site = instance.get_latest_materialization_event(dg.AssetKey("dashboards_site")).asset_materialization
        assert site.metadata["index"].value == index.as_uri()  # a link in the UI, not a path

        # The first daemon start after the demo requests none of the waves the demo landed.
        from catalog_pipelines.sensors.surveys import survey_exports_sensor

        monkeypatch.setenv("CATALOG_PIPELINES_DATA_DIR", str(data))
        tick = survey_exports_sensor(dg.build_sensor_context(instance=instance))
        assert tick.run_requests == [] and len(json.loads(tick.cursor)) == 8
