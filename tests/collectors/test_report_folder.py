"""The `report_files` collector: folder layout -> targets, merging several reports of one target,
bad files rejected while the rest lands, and incremental runs through the cursor."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from catalog_pipelines.collectors.base import ENTITY_REF, Target
from catalog_pipelines.collectors.reports.folder import ReportFolderCollector, merge_facts, targets_for
from test_report_parsers import BILLION_LAUGHS, DATA, EXTERNAL_ENTITY

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)


def put(root: Path, rel: str, source: str | bytes, mtime: int = 1_700_000_000) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        shutil.copyfile(DATA / source, path)
    os.utime(path, ns=(mtime * 10**9, mtime * 10**9))
    return path


def run(collector: ReportFolderCollector, cursor=None):
    batches = list(collector.collect(cursor, NOW))
    observations = [o for b in batches for o in b.observations]
    rejections = [r for b in batches for r in b.rejections]
    cursors = [b.cursor for b in batches]
    return observations, rejections, cursors


def by_target(observations):
    return {o.targets[-1].value: o for o in observations}


@pytest.mark.parametrize(
    ("rel", "targets"),
    [
        ("github.com/acme/petstore/ci/trivy.json", (Target("github.com/project-slug", "acme/petstore"), Target("backstage.io/source-location", "url:https://github.com/acme/petstore"))),
        ("gitlab.com/group/sub/repo/-/ci/junit.xml", (Target("gitlab.com/project-slug", "group/sub/repo"), Target("backstage.io/source-location", "url:https://gitlab.com/group/sub/repo"))),
        ("gitlab.example.org/group/repo/junit.xml", (Target("gitlab.com/project-slug", "group/repo"), Target("backstage.io/source-location", "url:https://gitlab.example.org/group/repo"))),
        ("bitbucket.org/team/repo/reports/x.sarif", (Target("backstage.io/source-location", "url:https://bitbucket.org/team/repo"),)),
        ("entity/component/default/petstore/coverage.xml", (Target(ENTITY_REF, "component:default/petstore"),)),
    ],
)
def test_folder_layout_names_targets_as_backstage_annotations(rel, targets):
    placed = targets_for(rel.split("/"))
    assert not isinstance(placed, str)
    assert placed[0] == targets


def test_both_gitlab_layouts_of_one_project_are_one_target():
    assert targets_for("gitlab.com/g/sub/repo/a.xml".split("/")) == targets_for("gitlab.com/g/sub/repo/-/ci/b.xml".split("/"))


@pytest.mark.parametrize("rel", ["loose.sarif", "github.com/acme/x.sarif", "entity/component/petstore/x.xml"])
def test_files_outside_the_layout_are_explained(rel):
    assert isinstance(targets_for(rel.split("/")), str)


def test_each_instance_reads_its_formats_and_merges_a_targets_reports(tmp_path):
    put(tmp_path, "github.com/acme/petstore/ci/codeql.sarif", "sarif/codeql-action-valid.sarif")
    put(tmp_path, "github.com/acme/petstore/ci/trivy.sarif", "sarif/trivy-alpine-310.sarif")
    put(tmp_path, "github.com/acme/petstore/ci/trivy.json", "trivy/debian-buster.json")
    put(tmp_path, "github.com/acme/petstore/ci/coverage.xml", "cobertura/coveragepy-y-xml-branch.xml", mtime=1_700_000_100)
    put(tmp_path, "github.com/acme/petstore/ci/lcov.info", "lcov/lcov-parse-parts.info", mtime=1_700_000_000)
    put(tmp_path, "entity/component/default/billing/TEST-Circle.xml", "junit/TEST-com.shape.CircleTest.xml")
    put(tmp_path, "entity/component/default/billing/gotestsum.xml", "junit/gotestsum-report.xml")

    security = ReportFolderCollector.from_config("security", {"path": ".", "formats": ["sarif", "trivy", "grype", "osv"]}, tmp_path)
    obs, rejections, _ = run(security)
    assert rejections == []
    (petstore,) = obs
    assert petstore.targets[0] == Target("github.com/project-slug", "acme/petstore")
    assert petstore.facts["results_total"] == 3 + 4  # both SARIF files summed
    assert petstore.facts["results_by_level"] == {"error": 0, "warning": 4, "note": 3, "none": 0}
    assert petstore.facts["tools"] == ["CodeQL command-line toolchain", "LGTM.com", "Trivy"]
    assert petstore.facts["vulnerabilities_total"] == 2
    assert "results_total" in security.facts() and "line_coverage_pct" not in security.facts()

    coverage = ReportFolderCollector.from_config("coverage", {"path": str(tmp_path), "formats": ["cobertura", "lcov", "jacoco"]}, None)
    (cov,), rejections, _ = run(coverage)
    assert cov.facts["line_coverage_pct"] == 80.0 and cov.facts["branch_coverage_pct"] == 50.0  # the newest file
    assert cov.observed_at == datetime.fromtimestamp(1_700_000_100, tz=timezone.utc)

    tests = ReportFolderCollector.from_config("tests", {"path": str(tmp_path), "formats": ["junit"]}, None)
    (billing,), _, _ = run(tests)
    assert billing.targets == (Target(ENTITY_REF, "component:default/billing"),)
    assert billing.facts == {"tests": 68, "failures": 14, "errors": 1, "skipped": 5, "flaky": 0}


def test_bad_files_are_rejected_with_file_and_reason_while_the_rest_lands(tmp_path):
    good = "github.com/acme/good/ci"
    put(tmp_path, f"{good}/junit.xml", "junit/gotestsum-report.xml")
    put(tmp_path, f"{good}/truncated-trivy.json", (DATA / "trivy/debian-buster.json").read_bytes()[:700])
    put(tmp_path, "github.com/acme/bomb/junit.xml", BILLION_LAUGHS)
    put(tmp_path, "github.com/acme/xxe/coverage.xml", EXTERNAL_ENTITY)
    put(tmp_path, "github.com/acme/notes/README.txt", b"just some notes")
    put(tmp_path, "github.com/acme/wrong/scan.sarif", (DATA / "grype/grype-image.json").read_bytes().replace(b'"matches"', b'"runs"'))
    huge = tmp_path / "github.com/acme/huge/results.sarif"
    huge.parent.mkdir(parents=True)
    with open(huge, "wb") as handle:
        handle.write(b'{"version": "2.1.0", "runs": [')
        handle.truncate(1024**3)  # 1 GiB on paper, sparse: nothing is written
    put(tmp_path, "stray.sarif", "sarif/trivy-alpine-310.sarif")

    collector = ReportFolderCollector.from_config("all", {"path": str(tmp_path), "max_file_bytes": 16384}, None)
    obs, rejections, cursors = run(collector)
    assert [o.targets[0].value for o in obs] == ["acme/good"]
    assert obs[0].facts["tests"] == 60 and "vulnerabilities_total" not in obs[0].facts
    reasons = {r.where.split(":")[0]: r.reason for r in rejections}
    assert set(reasons) == {
        f"{good}/truncated-trivy.json",
        "github.com/acme/bomb/junit.xml",
        "github.com/acme/xxe/coverage.xml",
        "github.com/acme/notes/README.txt",
        "github.com/acme/wrong/scan.sarif",
        "github.com/acme/huge/results.sarif",
        "stray.sarif",
    }
    assert "truncated JSON" in reasons[f"{good}/truncated-trivy.json"]
    assert "entity declaration" in reasons["github.com/acme/bomb/junit.xml"]
    assert "entity declaration" in reasons["github.com/acme/xxe/coverage.xml"]
    assert "no report format recognised" in reasons["github.com/acme/notes/README.txt"]
    assert "over the limit of 16384 bytes" in reasons["github.com/acme/huge/results.sarif"]
    assert "not under <host>/<owner>/<repo>/" in reasons["stray.sarif"]
    assert all("\n" not in str(r) for r in rejections)
    assert cursors[-1] is not None


def test_an_unchanged_rerun_reads_nothing_and_a_change_rereads_the_whole_target(tmp_path):
    put(tmp_path, "github.com/acme/a/one.sarif", "sarif/codeql-action-valid.sarif", mtime=1_700_000_000)
    put(tmp_path, "github.com/acme/a/two.sarif", "sarif/trivy-alpine-310.sarif", mtime=1_700_000_000)
    put(tmp_path, "github.com/acme/b/one.sarif", "sarif/trivy-alpine-310.sarif", mtime=1_700_000_050)
    collector = ReportFolderCollector("security", tmp_path, ["sarif"], batch_targets=1)

    obs, _, cursors = run(collector)
    assert sorted(o.targets[0].value for o in obs) == ["acme/a", "acme/b"]
    assert cursors[:-1] == [None] and cursors[-1] == {"mtime_ns": 1_700_000_050 * 10**9, "names": ["github.com/acme/b/one.sarif"]}

    obs, rejections, again = run(collector, cursors[-1])
    assert obs == [] and rejections == [] and again == [cursors[-1]]

    # A new file at the very same mtime as the cursor is still noticed (names at that mtime).
    put(tmp_path, "github.com/acme/c/x.sarif", "sarif/trivy-alpine-310.sarif", mtime=1_700_000_050)
    obs, _, third = run(collector, cursors[-1])
    assert [o.targets[0].value for o in obs] == ["acme/c"]
    assert third[-1]["names"] == ["github.com/acme/b/one.sarif", "github.com/acme/c/x.sarif"]

    # One file of a target changes: the target's facts are read whole again (sums stay right).
    put(tmp_path, "github.com/acme/a/two.sarif", "sarif/trivy-alpine-310.sarif", mtime=1_700_000_200)
    (a,), _, _ = run(collector, third[-1])
    assert a.targets[0].value == "acme/a" and a.facts["results_total"] == 3 + 4


def test_merge_takes_coverage_figures_together_from_the_newest_report():
    merged = merge_facts([(2, {"line_coverage_pct": 50.0}), (1, {"line_coverage_pct": 90.0, "branch_coverage_pct": 70.0}), (1, {"tests": 3, "tools": ["b"]}), (1, {"tests": 4, "tools": ["a", "b"]})])
    assert merged == {"line_coverage_pct": 50.0, "tests": 7, "tools": ["a", "b"]}


def test_config_is_validated(tmp_path):
    with pytest.raises(ValidationError):
        ReportFolderCollector.from_config("x", {"path": ".", "formats": ["pdf"]}, tmp_path)
    with pytest.raises(ValidationError):
        ReportFolderCollector.from_config("x", {"path": ".", "max_file_bytes": 0}, tmp_path)
    with pytest.raises(ValidationError):
        ReportFolderCollector.from_config("x", {"path": ".", "colour": "blue"}, tmp_path)


def test_a_missing_folder_is_a_rejection_not_a_crash(tmp_path):
    obs, rejections, cursors = run(ReportFolderCollector("x", tmp_path / "nope"))
    assert obs == [] and "does not exist" in rejections[0].reason and cursors == [None]


def test_symbolic_links_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    put(outside, "secret.sarif", "sarif/trivy-alpine-310.sarif")
    reports = tmp_path / "reports"
    (reports / "github.com/acme/a").mkdir(parents=True)
    (reports / "github.com/acme/a/linked.sarif").symlink_to(outside / "secret.sarif")
    (reports / "github.com/acme/b").symlink_to(outside, target_is_directory=True)
    obs, rejections, _ = run(ReportFolderCollector("x", reports))
    assert obs == [] and rejections == []
