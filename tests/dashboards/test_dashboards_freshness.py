"""Each page says "fresh as of ..." or "stale since ..." from its sources' declared freshness
(model/freshness.py) and the asset materialisation times the build read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from analytics.org import OrgGraph
from dashboards import build_site
from dashboards.sample import entities_frame_from, example_entities, sample_inputs


def test_pages_show_fresh_as_of_or_stale_since_from_the_declared_policies(tmp_path):
    entities = example_entities()
    inputs = sample_inputs(OrgGraph.from_entities(entities), entities_frame_from(entities), seed=3)
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    inputs.generated_at = now  # freshness is evaluated at the build's time
    inputs.materialized = {
        "catalog_snapshot": now - timedelta(hours=1),
        "scorecard_results": now - timedelta(hours=1), "scorecard_reports": now - timedelta(hours=1),
        "usage_insights": now - timedelta(days=3),  # 50 h window: stale since 22 h ago
    }
    report = build_site(inputs, tmp_path / "site")
    line = lambda page: re.search(r'<p class="freshness">(.*?)</p>', (tmp_path / "site" / page).read_text()).group(1)  # noqa: E731
    assert f"fresh as of {(now - timedelta(hours=1)):%Y-%m-%d %H:%M} UTC" in line("scorecards.html")
    assert f'<strong class="stale">stale since {(now - timedelta(days=3) + timedelta(hours=50)):%Y-%m-%d %H:%M} UTC</strong>' in line("usage.html")
    assert "fresh as of" not in line("skills.html") and "stale since" not in line("skills.html")  # never materialised
    pages = {p["key"]: p for p in report.pages}
    assert pages["usage"]["freshness"] == "stale" and pages["scorecards"]["freshness"] == "fresh"
