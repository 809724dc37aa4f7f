"""Report files for the synthetic organisation, in the formats real CI jobs publish: JUnit XML
(pytest's shape), Cobertura XML (coverage.py's shape), SARIF 2.1.0 (CodeQL's shape: rules in a
query-pack extension, results pointing at them by index, levels left to the rule default) and
Trivy JSON. Pure: `synthetic_reports(...)` returns `{relative path: bytes}` in the report-folder
layout (docs/facts.md, "Report files"); the caller writes them.

Teams differ, the way real organisations do. Each team has a seeded engineering quality (with a
slow wave over the year, so some teams improve while others slip) and each repository a fixed
offset: low-quality teams have failing tests, lower coverage and critical vulnerabilities. Some
teams never scan (no SARIF, no Trivy), and a few repositories have no CI (no JUnit, no coverage):
checks then say "not reported". `synthetic_report_plan(...)` gives the planted figures per
repository (what a parser must find), for tests and the demo's explanations.

Everything is a function of (seed, entity ref, team, day): the same day gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from html import escape

_EPOCH = date(2026, 1, 1)
_SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
# CodeQL-like rules of the synthetic query pack: (id, default level, short description).
_RULES = (
    ("py/sql-injection", "error", "Database query built from user-controlled sources"),
    ("py/path-injection", "error", "Uncontrolled data used in path expression"),
    ("py/clear-text-logging-sensitive-data", "error", "Clear-text logging of sensitive information"),
    ("py/incomplete-url-substring-sanitization", "warning", "Incomplete URL substring sanitization"),
    ("py/weak-cryptographic-algorithm", "warning", "Use of a broken or weak cryptographic algorithm"),
    ("py/empty-except", "note", "Empty except"),
    ("py/unused-import", "note", "Unused import"),
)
_PACKAGES = ("openssl", "libxml2", "zlib", "requests", "urllib3", "jinja2", "pyyaml", "log4j-core", "lodash", "express")


def quoteattr(value: str) -> str:
    return '"' + escape(value, quote=True) + '"'


def _unit(seed: int, *parts: object) -> float:
    """A stable number in [0, 1) for (seed, parts), the same on every machine."""
    digest = hashlib.sha256(":".join([str(seed), *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:7], "little") / float(1 << 56)


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(":".join(["rng", str(seed), *map(str, parts)]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def team_quality(team: str, day: date, seed: int) -> float:
    """Engineering quality of a team on a day, in [0.05, 0.98]: a seeded base and a slow wave."""
    base = 0.2 + 0.7 * _unit(seed, "base", team)
    amplitude = 0.05 + 0.15 * _unit(seed, "amplitude", team)
    period = 60 + 120 * _unit(seed, "period", team)
    phase = _unit(seed, "phase", team)
    t = (day - _EPOCH).days
    return min(0.98, max(0.05, base + amplitude * math.sin(2 * math.pi * (t / period + phase))))


def report_folder(ref: str, location: str | None) -> str:
    """The folder of an entity's reports: `<host>/<owner...>/<repo>` from a GitHub slug
    (`owner/repo`) or a source-location URL (`url:https://gitlab.com/group/sub/repo/-/tree/main`),
    with a `-` segment after GitLab project paths deeper than owner/repo; else
    `entity/<kind>/<namespace>/<name>`."""
    if location:
        loc = location.strip()
        if loc.startswith("url:"):
            loc = loc[4:]
        if "://" not in loc:
            loc = "https://github.com/" + loc.strip("/")
        host, _, path = loc.split("://", 1)[1].partition("/")
        segments = [s for s in path.split("/") if s]
        for stop in ("-", "tree", "blob"):
            if stop in segments:
                segments = segments[: segments.index(stop)]
        if segments and segments[-1].endswith(".git"):
            segments[-1] = segments[-1][:-4]
        if len(segments) >= 2:
            host = host.lower()
            if "gitlab" in host and len(segments) > 2:
                return "/".join([host, *segments, "-"])
            if "gitlab" not in host:
                segments = segments[:2]
            return "/".join([host, *segments])
    kind, _, rest = ref.partition(":")
    namespace, _, name = rest.rpartition("/")
    return f"entity/{kind.lower()}/{namespace or 'default'}/{name}"


@dataclass
class PlannedReports:
    """What the synthetic reports of one repository-entity say (the figures parsers must find)."""

    ref: str
    folder: str
    team: str
    quality: float
    tests: dict[str, int] | None = None  # tests, failures, errors, skipped
    line_coverage_pct: float | None = None
    branch_coverage_pct: float | None = None
    coverage_lines: tuple[int, int] = (0, 0)  # covered, total
    coverage_branches: tuple[int, int] = (0, 0)
    sarif_by_level: dict[str, int] | None = None
    vulnerabilities: dict[str, int] | None = None  # by Trivy severity word
    files: list[str] = field(default_factory=list)


def synthetic_report_plan(repositories: Iterable[tuple[str, ...]], *, seed: int, day: date, teams: Mapping[str, str] | None = None) -> list[PlannedReports]:
    """The planted figures per repository. `repositories` are `(entity ref, location)` pairs
    (location: a GitHub slug, a source-location URL, or None) or `(ref, location, team)` triples;
    `teams` maps refs to teams otherwise (a ref without a team is its own team)."""
    plans = []
    for item in repositories:
        ref, location = item[0], item[1]
        team = item[2] if len(item) > 2 and item[2] else (teams or {}).get(ref, ref)
        q = min(0.99, max(0.02, team_quality(team, day, seed) + (_unit(seed, "entity", ref) - 0.5) * 0.2))
        plan = PlannedReports(ref=ref, folder=report_folder(ref, location), team=team, quality=round(q, 4))
        rng = _rng(seed, ref, day.isoformat())
        if _unit(seed, "ci", ref) >= 0.08:  # ~8 % of repositories have no CI reports
            tests = rng.randint(8, 160)
            failing = q < 0.45 and rng.random() < 0.8
            failures = rng.randint(1, max(1, tests // 12)) if failing else 0
            errors = rng.randint(0, 2) if failing and rng.random() < 0.4 else 0
            skipped = rng.randint(0, max(0, tests // 15))
            plan.tests = {"tests": tests, "failures": failures, "errors": errors, "skipped": skipped}
            total = rng.randint(80, 600)
            target = min(0.99, max(0.05, 0.25 + 0.7 * q + rng.uniform(-0.08, 0.08)))
            covered = round(total * target)
            branches = 2 * rng.randint(10, max(10, total // 8))
            covered_branches = min(branches, round(branches * max(0.0, target - rng.uniform(0.0, 0.15))))
            plan.coverage_lines, plan.coverage_branches = (covered, total), (covered_branches, branches)
            plan.line_coverage_pct = round(100.0 * covered / total, 2)
            plan.branch_coverage_pct = round(100.0 * covered_branches / branches, 2)
            plan.files += ["ci/junit.xml", "ci/coverage.xml"]
        scans = _unit(seed, "scans", team) >= 0.2 and _unit(seed, "scans", ref) >= 0.05  # some teams never scan
        if scans:
            weak = 1.0 - q
            plan.sarif_by_level = {
                "error": _poisson(rng, 3.0 * weak * weak),
                "warning": _poisson(rng, 6.0 * weak),
                "note": _poisson(rng, 4.0),
            }
            plan.vulnerabilities = {
                "CRITICAL": _poisson(rng, 2.5 * max(0.0, 0.5 - q) * 2),
                "HIGH": _poisson(rng, 4.0 * weak),
                "MEDIUM": _poisson(rng, 6.0 * weak),
                "LOW": _poisson(rng, 5.0),
                "UNKNOWN": _poisson(rng, 0.3),
            }
            plan.files += ["security/codeql.sarif", "security/trivy.json"]
        plans.append(plan)
    return plans


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: small means only (here at most ~10)."""
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def synthetic_reports(repositories: Iterable[tuple[str, ...]], *, seed: int, day: date, teams: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """`{relative path: bytes}` of every repository's reports for `day` (see the module docstring)."""
    out: dict[str, bytes] = {}
    for plan in synthetic_report_plan(repositories, seed=seed, day=day, teams=teams):
        out.update(render_reports(plan, seed=seed, day=day))
    return out


def render_reports(plan: PlannedReports, *, seed: int, day: date) -> dict[str, bytes]:
    rng = _rng(seed, "render", plan.ref, day.isoformat())
    stamp = datetime(day.year, day.month, day.day, 6, rng.randint(0, 59), rng.randint(0, 59), tzinfo=timezone.utc)
    name = plan.ref.rpartition("/")[2]
    out: dict[str, bytes] = {}
    if plan.tests is not None:
        out[f"{plan.folder}/ci/junit.xml"] = _junit(plan.tests, name, stamp, rng)
        out[f"{plan.folder}/ci/coverage.xml"] = _cobertura(plan, name, stamp, rng)
    if plan.sarif_by_level is not None and plan.vulnerabilities is not None:
        out[f"{plan.folder}/security/codeql.sarif"] = _sarif(plan.sarif_by_level, name, rng)
        out[f"{plan.folder}/security/trivy.json"] = _trivy(plan.vulnerabilities, plan.folder, stamp, rng)
    return out


def _junit(counts: Mapping[str, int], name: str, stamp: datetime, rng: random.Random) -> bytes:
    """pytest's `--junitxml` shape: one <testsuite> in <testsuites>."""
    outcomes = ["failure"] * counts["failures"] + ["error"] * counts["errors"] + ["skipped"] * counts["skipped"]
    outcomes += ["passed"] * (counts["tests"] - len(outcomes))
    rng.shuffle(outcomes)
    module = name.replace("-", "_")
    cases = []
    total_time = 0.0
    for i, outcome in enumerate(outcomes):
        seconds = round(rng.uniform(0.001, 0.4), 3)
        total_time += seconds
        head = f'<testcase classname="tests.test_{module}_{i // 10}" name="test_case_{i}" time="{seconds}"'
        if outcome == "passed":
            cases.append(head + " />")
        elif outcome == "failure":
            cases.append(head + f'><failure message="AssertionError: assert {i} == {i + 1}">def test_case_{i}():\n&gt;       assert {i} == {i + 1}\nE       AssertionError</failure></testcase>')
        elif outcome == "error":
            cases.append(head + '><error message="failed on setup with &quot;ConnectionError&quot;">ConnectionError: database not reachable</error></testcase>')
        else:
            cases.append(head + f'><skipped type="pytest.skip" message="needs credentials">tests/test_{module}.py:{10 + i}: needs credentials</skipped></testcase>')
    suite = (
        f'<testsuite name="pytest" errors="{counts["errors"]}" failures="{counts["failures"]}" skipped="{counts["skipped"]}" '
        f'tests="{counts["tests"]}" time="{total_time:.3f}" timestamp="{stamp.isoformat()}" hostname="ci-runner">'
    )
    return ('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">' + suite + "".join(cases) + "</testsuite></testsuites>").encode()


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` positive integers (parts <= total)."""
    cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
    bounds = [0, *cuts, total]
    return [b - a for a, b in zip(bounds, bounds[1:])]


def _cobertura(plan: PlannedReports, name: str, stamp: datetime, rng: random.Random) -> bytes:
    """coverage.py's `coverage xml` shape, lines and branches exactly as planned."""
    covered, total = plan.coverage_lines
    covered_branches, branches = plan.coverage_branches
    branch_lines = branches // 2  # two outcomes per branch line
    files = max(1, min(12, total // 40))
    sizes = _split(total, files, rng)
    # Which lines are covered, and which are branch lines (with 0, 1 or 2 of 2 outcomes taken).
    hit = [True] * covered + [False] * (total - covered)
    rng.shuffle(hit)
    branch_at = set(rng.sample(range(total), branch_lines))
    taken: dict[int, int] = {}
    remaining = covered_branches
    for index in sorted(branch_at):
        taken[index] = 0
    for index in sorted(branch_at, key=lambda _: rng.random()):
        if remaining <= 0:
            break
        add = min(2, remaining)
        taken[index] = add
        remaining -= add
    package = name.replace("-", "_")
    classes = []
    line_index = 0
    for f, size in enumerate(sizes):
        filename = f"{package}/module_{f}.py"
        rows = []
        for n in range(size):
            number = 1 + 2 * n
            hits = 1 if hit[line_index] else 0
            if line_index in branch_at:
                t = taken[line_index]
                missing = "" if t == 2 else f' missing-branches="{number + 1}"'
                rows.append(f'<line number="{number}" hits="{hits}" branch="true" condition-coverage="{50 * t}% ({t}/2)"{missing}/>')
            else:
                rows.append(f'<line number="{number}" hits="{hits}"/>')
            line_index += 1
        classes.append(f'<class name="module_{f}.py" filename={quoteattr(filename)} complexity="0" line-rate="0" branch-rate="0"><methods/><lines>{"".join(rows)}</lines></class>')
    rate = covered / total if total else 0.0
    branch_rate = covered_branches / branches if branches else 0.0
    timestamp = int(stamp.timestamp() * 1000)
    return (
        '<?xml version="1.0" ?>\n'
        f'<coverage version="7.6.1" timestamp="{timestamp}" lines-valid="{total}" lines-covered="{covered}" line-rate="{rate:.4g}" '
        f'branches-covered="{covered_branches}" branches-valid="{branches}" branch-rate="{branch_rate:.4g}" complexity="0">'
        "<!-- Generated by coverage.py: https://coverage.readthedocs.io/en/7.6.1 -->"
        f"<sources><source>/home/runner/work/{quoteattr(name)[1:-1]}</source></sources>"
        f'<packages><package name={quoteattr(package)} line-rate="{rate:.4g}" branch-rate="{branch_rate:.4g}" complexity="0"><classes>{"".join(classes)}</classes></package></packages>'
        "</coverage>"
    ).encode()


def _sarif(by_level: Mapping[str, int], name: str, rng: random.Random) -> bytes:
    """CodeQL's shape: rules in a query-pack extension, results `rule: {index, toolComponent}`;
    a result whose level equals its rule's default omits it (as CodeQL does)."""
    rules_by_level: dict[str, list[int]] = {}
    for i, (_rid, level, _desc) in enumerate(_RULES):
        rules_by_level.setdefault(level, []).append(i)
    results = []
    for level in ("error", "warning", "note"):
        for _ in range(by_level[level]):
            index = rng.choice(rules_by_level[level])
            rule_id = _RULES[index][0]
            result: dict[str, object] = {
                "ruleId": rule_id,
                "rule": {"id": rule_id, "index": index, "toolComponent": {"index": 0}},
                "message": {"text": _RULES[index][2] + "."},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": f"src/{name.replace('-', '_')}/module_{rng.randint(0, 9)}.py", "uriBaseId": "%SRCROOT%"}, "region": {"startLine": rng.randint(1, 400), "startColumn": 5, "endColumn": 40}}}],
                "partialFingerprints": {"primaryLocationLineHash": f"{rng.getrandbits(64):016x}:1"},
            }
            results.append(result)
    rng.shuffle(results)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "CodeQL", "organization": "GitHub", "semanticVersion": "2.19.3"},
                    "extensions": [
                        {
                            "name": "codeql/python-queries",
                            "semanticVersion": "1.3.2",
                            "rules": [
                                {"id": rid, "name": rid.split("/")[1], "shortDescription": {"text": desc}, "defaultConfiguration": {"enabled": True, "level": level}, "properties": {"tags": ["security"], "precision": "high"}}
                                for rid, level, desc in _RULES
                            ],
                        }
                    ],
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
                "properties": {"semmle.formatSpecifier": "sarif-latest"},
            }
        ],
    }
    return json.dumps(log, separators=(",", ":")).encode()


def _trivy(counts: Mapping[str, int], folder: str, stamp: datetime, rng: random.Random) -> bytes:
    """Trivy's `--format json` shape (SchemaVersion 2): one filesystem result per lock file."""
    vulns = []
    for severity in _SEVERITIES:
        for _ in range(counts[severity]):
            package = rng.choice(_PACKAGES)
            vulns.append(
                {
                    "VulnerabilityID": f"CVE-{rng.randint(2019, 2026)}-{rng.randint(1000, 49999)}",
                    "PkgName": package,
                    "InstalledVersion": f"{rng.randint(0, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
                    "FixedVersion": f"{rng.randint(5, 9)}.0.0",
                    "Status": "fixed",
                    "Severity": severity,
                    "Title": f"{package}: synthetic advisory",
                }
            )
    rng.shuffle(vulns)
    doc = {
        "SchemaVersion": 2,
        "CreatedAt": stamp.isoformat().replace("+00:00", "Z"),
        "ArtifactName": ".",
        "ArtifactType": "filesystem",
        "Metadata": {"ImageConfig": {"architecture": "", "created": "0001-01-01T00:00:00Z", "os": "", "rootfs": {"type": "", "diff_ids": None}, "config": {}}},
        "Results": [{"Target": "requirements.txt", "Class": "lang-pkgs", "Type": "pip", "Vulnerabilities": vulns or None}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()
