"""API collectors: pages (HTTP requests) per second, and how a run behaves under 429s.

Three measurements, printed as JSON lines and a summary:
1. `prism`: each collector against Prism serving its vendor's description (tests/prism.py), so
   Prism validates every request; Prism's own validation dominates the time.
2. `replay`: each collector against the loopback replay server serving the synthetic
   organisation's vendor pages (`analytics.facts.synthetic_apis`), i.e. the collector's own cost.
3. `429`: GitHub against the fault-injecting fake with a share of requests answered 429
   (`Retry-After: 1`, waits recorded, not slept): extra requests, recorded wait, facts unchanged;
   and a 429 asking for an hour: the run stops, and the resumed run reads only what was left.

    python benchmarks/collectors_prism.py [--entities 50] [--rounds 3] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "collectors")]

from analytics.facts.synthetic_apis import vendor_pages  # noqa: E402
from catalog_pipelines.collectors.apis.github import GithubCollector  # noqa: E402
from catalog_pipelines.collectors.apis.http import RateLimited  # noqa: E402
from catalog_pipelines.collectors.apis.jira import JiraCollector  # noqa: E402
from catalog_pipelines.collectors.apis.pagerduty import PagerdutyCollector  # noqa: E402
from catalog_pipelines.collectors.apis.sonarqube import SonarqubeCollector  # noqa: E402
from catalog_pipelines.web.replay import serve_replay  # noqa: E402

NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)


def entities(count: int) -> list[dict[str, Any]]:
    return [{"ref": f"component:default/svc-{n}", "annotations": {
        "github.com/project-slug": f"acme/svc-{n}", "pagerduty.com/service-id": f"PSVC{n:04d}",
        "jira/project-key": f"SVC{n}", "sonarqube.org/project-key": f"acme_svc-{n}"}} for n in range(count)]


def build(cls: Any, base_url: str, **params: Any) -> Any:
    return cls(cls.__name__, cls.Params.model_validate({"base_url": base_url, "token": "t", **params}),
               sleep=lambda s: None)


def measure(collector: Any, now: datetime = NOW) -> dict[str, Any]:
    started = time.perf_counter()
    batches = list(collector.collect(None, now))
    seconds = time.perf_counter() - started
    requests = collector.last_client.requests
    return {"units": sum(len(b.observations) for b in batches), "requests": requests,
            "seconds": round(seconds, 3), "pages_per_s": round(requests / seconds, 1)}


def configs(count: int) -> dict[str, tuple[Any, dict[str, Any]]]:
    return {
        "github": (GithubCollector, {"repositories": [f"acme/svc-{n}" for n in range(count)]}),
        "pagerduty": (PagerdutyCollector, {"services": [f"PSVC{n:04d}" for n in range(count)]}),
        "jira": (JiraCollector, {"projects": [f"SVC{n}" for n in range(count)], "email": "bot@example.com"}),
        "sonarqube": (SonarqubeCollector, {"projects": [f"acme_svc-{n}" for n in range(count)]}),
    }


def bench_prism(vendors: list[str], count: int, rounds: int) -> list[dict[str, Any]]:
    import prism

    out = []
    servers = prism.start_all(Path(tempfile.mkdtemp(prefix="prism-bench-")), tuple(vendors))
    try:
        for vendor in vendors:
            cls, params = configs(count)[vendor]
            for _ in range(rounds):
                result = measure(build(cls, servers[vendor].base_url, max_retries=1, **params),
                                 datetime(2020, 2, 1, tzinfo=timezone.utc))
                out.append({"bench": "prism", "collector": vendor, **result})
            assert servers[vendor].request_violations() == [], servers[vendor].request_violations()
    finally:
        for server in servers.values():
            server.stop()
    return out


def bench_replay(count: int, rounds: int) -> list[dict[str, Any]]:
    out = []
    pages = vendor_pages(entities(count), as_of=date(2026, 12, 7))
    with serve_replay(pages) as replay:
        for vendor, (cls, params) in configs(count).items():
            for _ in range(rounds):
                out.append({"bench": "replay", "collector": vendor,
                            **measure(build(cls, replay.base_url(vendor), **params))})
    return out


def bench_429(count: int, share: float) -> list[dict[str, Any]]:
    from api_fake import Fault, FaultyApi

    pages = vendor_pages(entities(count), as_of=date(2026, 12, 7))
    repos = {"repositories": [f"acme/svc-{n}" for n in range(count)]}
    out = []
    with FaultyApi(pages) as api:
        clean = build(GithubCollector, api.base_url("github"), **repos)
        baseline = measure(clean)
        clean_facts = [o.facts for b in clean.collect(None, NOW) for o in b.observations]
    rng = random.Random(19)
    waits: list[float] = []
    with FaultyApi(pages, fault_for=lambda n, p: Fault("429", retry_after="1") if rng.random() < share else None) as api:
        collector = GithubCollector("gh", GithubCollector.Params.model_validate(
            {"base_url": api.base_url("github"), "token": "t", "max_retries": 8, **repos}), sleep=waits.append)
        started = time.perf_counter()
        facts = [o.facts for b in collector.collect(None, NOW) for o in b.observations]
        seconds = time.perf_counter() - started
        out.append({"bench": "429", "share": share, "requests": collector.last_client.requests,
                    "baseline_requests": baseline["requests"], "retries": collector.last_client.retries,
                    "recorded_wait_s": round(sum(waits), 1), "seconds_without_waits": round(seconds, 3),
                    "facts_unchanged": facts == clean_facts})
    # A 429 asking for an hour, in the middle: the run stops; the resumed run reads only the rest.
    half = f"/repos/acme/svc-{count // 2}"
    with FaultyApi(pages, fault_for=lambda n, p: Fault("429", retry_after="3600") if half in p else None) as api:
        collector = build(GithubCollector, api.base_url("github"), **repos)
        stored = []
        try:
            for batch in collector.collect(None, NOW):
                stored.append(batch)
        except RateLimited:
            pass
        first = len(api.requests)
    with FaultyApi(pages) as api:
        resumed = build(GithubCollector, api.base_url("github"), **repos)
        rest = list(resumed.collect(stored[-1].cursor if stored else None, NOW))
        out.append({"bench": "429-long", "stored_before_stop": len(stored), "requests_before_stop": first,
                    "resumed_units": sum(len(b.observations) for b in rest), "resumed_requests": len(api.requests),
                    "units_total": count})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.2, help="share of requests answered 429")
    parser.add_argument("--vendors", default="github,pagerduty,jira")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, no Prism (its start costs ~10-20 s; tests/collectors runs Prism already)")
    args = parser.parse_args()
    if args.smoke:
        args.entities, args.rounds, args.vendors = 3, 1, ""
    vendors = [v for v in args.vendors.split(",") if v]
    rows = [*(bench_prism(vendors, max(1, args.entities // 5), args.rounds) if vendors else []),
            *bench_replay(args.entities, args.rounds), *bench_429(args.entities, args.share)]
    for row in rows:
        print(json.dumps(row))
    print("\nsummary (best round):")
    for bench in ("prism", "replay"):
        for vendor in ("github", "pagerduty", "jira", "sonarqube"):
            mine = [r for r in rows if r["bench"] == bench and r["collector"] == vendor]
            if mine:
                best = max(mine, key=lambda r: r["pages_per_s"])
                print(f"  {bench:7} {vendor:10} {best['pages_per_s']:8.1f} pages/s "
                      f"({best['requests']} requests, {best['units']} units, {best['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
