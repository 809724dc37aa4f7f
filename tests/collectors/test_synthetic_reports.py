"""The synthetic organisation's report files: real formats that our parsers (and the folder
collector) read back to exactly the planted figures, teams that differ, and determinism."""

from __future__ import annotations

from datetime import date

from analytics.facts.synthetic_reports import report_folder, synthetic_report_plan, synthetic_reports
from catalog_pipelines.collectors.base import ENTITY_REF, Target
from catalog_pipelines.collectors.reports import parse_bytes
from catalog_pipelines.collectors.reports.folder import ReportFolderCollector

DAY = date(2026, 12, 7)
TEAMS = [f"group:default/team-{t}" for t in range(12)]
REPOS = [(f"component:default/svc-{i}", f"acme/svc-{i}" if i % 5 else f"url:https://gitlab.com/acme/platform/svc-{i}/-/tree/main", TEAMS[i % len(TEAMS)]) for i in range(120)]
REPOS.append(("component:payments/ledger", None, TEAMS[0]))


def test_reports_parse_to_the_planted_figures():
    files = synthetic_reports(REPOS, seed=7, day=DAY)
    plans = synthetic_report_plan(REPOS, seed=7, day=DAY)
    assert sum(len(p.files) for p in plans) == len(files)
    for plan in plans:
        for rel in plan.files:
            fmt, found = parse_bytes(None, files[f"{plan.folder}/{rel}"], rel)
            if fmt == "junit":
                assert found == {**plan.tests, "flaky": 0}
            elif fmt == "cobertura":
                assert (found["line_coverage_pct"], found["branch_coverage_pct"]) == (plan.line_coverage_pct, plan.branch_coverage_pct)
            elif fmt == "sarif":
                assert found["results_by_level"] == {**plan.sarif_by_level, "none": 0} and found["tools"] == ["CodeQL"]
            else:
                assert fmt == "trivy"
                assert found["vulnerabilities_by_severity"] == {k.lower(): v for k, v in plan.vulnerabilities.items()}


def test_teams_differ_failing_tests_critical_vulnerabilities_and_unscanned_repositories():
    plans = synthetic_report_plan(REPOS, seed=7, day=DAY)
    failing = {p.team for p in plans if p.tests and p.tests["failures"]}
    green = {p.team for p in plans if p.tests} - failing
    critical = {p.team for p in plans if p.vulnerabilities and p.vulnerabilities["CRITICAL"]}
    unscanned = {p.team for p in plans if p.vulnerabilities is None}
    assert failing and green and critical and unscanned
    assert any(p.tests is None for p in plans) and any(p.tests for p in plans)
    coverage = sorted(p.line_coverage_pct for p in plans if p.line_coverage_pct is not None)
    assert coverage[-1] - coverage[0] > 30  # a real spread between the best and the worst


def test_the_folder_collector_reads_the_written_reports_back(tmp_path):
    files = synthetic_reports(REPOS, seed=7, day=DAY)
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    collector = ReportFolderCollector("tests", tmp_path, ["junit"])
    batches = list(collector.collect(None, DAY))
    observations = [o for b in batches for o in b.observations]
    assert not [r for b in batches for r in b.rejections]
    plans = {p.folder: p for p in synthetic_report_plan(REPOS, seed=7, day=DAY) if p.tests}
    assert len(observations) == len(plans)
    by_source = {o.targets[-1].value: o for o in observations}
    svc1 = by_source["url:https://github.com/acme/svc-1"]
    assert svc1.targets[0] == Target("github.com/project-slug", "acme/svc-1")
    assert svc1.facts["tests"] == plans["github.com/acme/svc-1"].tests["tests"]
    gitlab = by_source.get("url:https://gitlab.com/acme/platform/svc-5")
    if gitlab is not None:
        assert gitlab.targets[0] == Target("gitlab.com/project-slug", "acme/platform/svc-5")


def test_same_inputs_same_bytes_and_days_differ():
    assert synthetic_reports(REPOS[:10], seed=7, day=DAY) == synthetic_reports(REPOS[:10], seed=7, day=DAY)
    assert synthetic_reports(REPOS[:10], seed=7, day=DAY) != synthetic_reports(REPOS[:10], seed=7, day=date(2026, 12, 8))


def test_report_folders_follow_the_layout():
    assert report_folder("component:default/a", "acme/a") == "github.com/acme/a"
    assert report_folder("component:default/a", "url:https://github.com/acme/a/tree/main/") == "github.com/acme/a"
    assert report_folder("component:default/a", "https://gitlab.com/g/sub/a/-/tree/main") == "gitlab.com/g/sub/a/-"
    assert report_folder("component:default/a", "url:https://gitlab.com/g/a") == "gitlab.com/g/a"
    assert report_folder("component:payments/ledger", None) == "entity/component/payments/ledger"
    placed = [p for p in synthetic_report_plan(REPOS[-1:], seed=7, day=DAY)]
    assert placed[0].folder == "entity/component/payments/ledger"
    assert ENTITY_REF == "entity_ref"
