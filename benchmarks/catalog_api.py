"""The catalog read API under load, side by side with the real Backstage catalog.

Ours: a synthetic org of --size entities ingested (the real chunk path), its search rows refreshed
(timed apart: full, no-op, 1% stale)
into PostgreSQL (--postgres, a fresh database on CATALOG_TEST_POSTGRES_URL's server) or SQLite,
served by `catalog-pipelines serve` in its own process, read over HTTP:
- by-query first page (limit 100, filter kind=component): p50 / p99 of --repeat requests;
- walking every page of the whole catalog with by-query cursors (limit 500);
- entity-facets on kind and spec.type;
- by-refs of 1,000 refs;
- 50 concurrent clients, each asking --per-client first pages: errors, p50 / p99, requests/s.
The peer: the same queries against the real Backstage 1.45.6 (tests/peer.py) loaded with the
first --peer-size entities of the same synthetic org (its ingestion is slow: ~70-90 entities/s).

    python benchmarks/catalog_api.py --postgres                     # 200k ours, 20k peer
    python benchmarks/catalog_api.py --size 20000 --peer-size 0     # ours only, SQLite
    python benchmarks/catalog_api.py --smoke                        # tiny, SQLite, no peer

Timings are printed, never asserted. The machine is shared: note `nproc` and `uptime`.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

TOKEN = "benchmark-service-token-0123456789"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def refresh_figures(engine) -> dict[str, float]:
    """The search rows' refresh (services.catalog_read.refresh_search), off the ingestion's path:
    the first (every entity new), a no-op one (what serve's loop costs when nothing changed), and
    one with 1% of the entities stale (their state hashes overwritten: a cycle that changed 1%)."""
    import sqlalchemy as sa

    from catalog_pipelines.services.catalog_read import refresh_search
    from catalog_pipelines.storage import schema as s

    out = {}
    c0 = time.process_time()
    first = refresh_search(engine)
    out["refresh_full_s"], out["refresh_full_cpu_s"] = first["seconds"], round(time.process_time() - c0, 2)
    out["refresh_noop_s"] = refresh_search(engine)["seconds"]
    with engine.begin() as conn:
        refs = conn.execute(sa.select(s.entity_search_state.c.ref).order_by(s.entity_search_state.c.ref)).scalars().all()[::100]
        conn.execute(s.entity_search_state.update().where(s.entity_search_state.c.ref.in_(refs)).values(content_hash="stale"))
    one = refresh_search(engine)
    out["refresh_1pct_s"] = one["seconds"]
    print(f"ours: search refresh: full {first} (process CPU {out['refresh_full_cpu_s']} s); no-op {out['refresh_noop_s']} s; "
          f"1% stale ({one['entities_refreshed']} entities) {one['seconds']} s", flush=True)
    return out


def ingest(url: str, size: int) -> tuple[float, int]:
    """The synthetic org through the real chunk path (one cycle, 20k chunks); seconds, entities."""
    from catalog_pipelines.ingestion.chunks import run_chunk
    from catalog_pipelines.providers.synthetic import SyntheticOrgProvider
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.db import ensure_schema, get_engine
    from catalog_pipelines.storage.ledger import Ledger

    engine = get_engine(url)
    ensure_schema(engine)
    store, ledger = CatalogStore(engine), Ledger(engine)
    provider = SyntheticOrgProvider("synthetic", size)
    started = time.perf_counter()
    ingestion = ledger.start_cycle(provider.name)
    with provider.around():
        sequence = 0
        while True:
            outcome = run_chunk(store, ledger, provider, ingestion, sequence, 20_000)
            sequence += 1
            if outcome.done:
                break
    seconds = time.perf_counter() - started
    refresh_figures(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            import sqlalchemy as sa

            conn.execute(sa.text("ANALYZE"))
    return seconds, store.count()


def jsonb_experiment(url: str, repeat: int) -> dict[str, float]:
    """The alternative not taken, measured on the same database (PostgreSQL only): a lower-cased
    JSONB copy of every body with a GIN index (jsonb_path_ops), queried the way the search table is
    (first page of kind=component by ref, its total, facets on kind and spec.type). Only an
    experiment: the column and index are dropped again afterwards."""
    import sqlalchemy as sa

    from catalog_pipelines.storage.db import get_engine

    engine = get_engine(url)
    out: dict[str, float] = {}
    with engine.begin() as conn:
        t0 = time.perf_counter()
        conn.execute(sa.text("ALTER TABLE entities ADD COLUMN body_lower jsonb"))
        conn.execute(sa.text("UPDATE entities SET body_lower = lower(body)::jsonb"))
        conn.execute(sa.text("CREATE INDEX ix_entities_body_lower ON entities USING gin (body_lower jsonb_path_ops)"))
        conn.execute(sa.text("ANALYZE entities"))
        out["jsonb_build_s"] = time.perf_counter() - t0
        out["jsonb_index_mb"] = conn.execute(sa.text("SELECT pg_relation_size('ix_entities_body_lower')")).scalar() / 2**20
        out["search_table_mb"] = conn.execute(sa.text("SELECT pg_total_relation_size('entity_search')")).scalar() / 2**20
    queries = {
        "jsonb_first_page_ms": "SELECT ref, body FROM entities WHERE body_lower @> '{\"kind\": \"component\"}' ORDER BY ref LIMIT 101",
        "jsonb_total_ms": "SELECT count(*) FROM entities WHERE body_lower @> '{\"kind\": \"component\"}'",
        "jsonb_facets_ms": "SELECT k, v, count(*) FROM (SELECT 'kind' AS k, body::jsonb->>'kind' AS v FROM entities "
                           "UNION ALL SELECT 'spec.type', body::jsonb->'spec'->>'type' FROM entities) f WHERE v IS NOT NULL GROUP BY k, v",
    }
    with engine.connect() as conn:
        for name, sql in queries.items():
            times = []
            for _ in range(max(3, repeat // 20)):
                t0 = time.perf_counter()
                conn.execute(sa.text(sql)).all()
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times) * 1000
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE entities DROP COLUMN body_lower"))
    return out


def start_server(url: str) -> tuple[subprocess.Popen, str]:
    from helpers import free_port

    port = free_port()
    env = {**os.environ, "CATALOG_DATABASE_URL": url, "CATALOG_PIPELINES_CATALOG_API_TOKENS": f"{TOKEN}=benchmark",
           "CATALOG_PIPELINES_BACKSTAGE_AUTH_URL": ""}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-c", "from catalog_pipelines.cli import main; main()", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    import httpx

    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(base + "/.backstage/health/v1/readiness", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("serve did not start")


def measure(base: str, token: str, *, repeat: int, per_client: int, clients: int, kinds: tuple[str, str]) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    api = base + "/api/catalog"
    out: dict[str, Any] = {}
    with httpx.Client(headers=headers, timeout=600) as client:
        def timed(fn: Callable[[], Any]) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        def first_page() -> None:
            r = client.get(api + "/entities/by-query", params={"limit": 100, "filter": f"kind={kinds[0]}"})
            r.raise_for_status()

        first_page()  # warm
        times = [timed(first_page) for _ in range(repeat)]
        out["first_page_p50_ms"], out["first_page_p99_ms"] = pct(times, 50) * 1000, pct(times, 99) * 1000

        def walk() -> int:
            r = client.get(api + "/entities/by-query", params={"limit": 500}).json()
            n = len(r["items"])
            while r["pageInfo"].get("nextCursor"):
                r = client.get(api + "/entities/by-query", params={"cursor": r["pageInfo"]["nextCursor"], "limit": 500}).json()
                n += len(r["items"])
            out["walk_total"] = r["totalItems"]
            return n

        t0 = time.perf_counter()
        out["walk_items"] = walk()
        out["walk_s"] = time.perf_counter() - t0

        def facets() -> None:
            client.get(api + "/entity-facets", params=[("facet", "kind"), ("facet", "spec.type")]).raise_for_status()

        out["facets_ms"] = statistics.median(timed(facets) for _ in range(max(3, repeat // 20))) * 1000
        refs_page = client.get(api + "/entities/by-query", params={"limit": 1000, "fields": "kind,metadata.name,metadata.namespace"}).json()
        refs = [f"{e['kind'].lower()}:{e['metadata'].get('namespace', 'default')}/{e['metadata']['name']}" for e in refs_page["items"]]

        def by_refs() -> None:
            r = client.post(api + "/entities/by-refs", json={"entityRefs": refs})
            r.raise_for_status()
            assert sum(1 for i in r.json()["items"] if i) == len(refs)

        out["by_refs_n"] = len(refs)
        out["by_refs_ms"] = statistics.median(timed(by_refs) for _ in range(max(3, repeat // 20))) * 1000

    errors, latencies = 0, []

    def one_client(_: int) -> tuple[int, list[float]]:
        errs, lat = 0, []
        with httpx.Client(headers=headers, timeout=120) as c:
            for _ in range(per_client):
                t0 = time.perf_counter()
                try:
                    c.get(api + "/entities/by-query", params={"limit": 100, "filter": f"kind={kinds[1]}"}).raise_for_status()
                except httpx.HTTPError:
                    errs += 1
                lat.append(time.perf_counter() - t0)
        return errs, lat

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        for errs, lat in pool.map(one_client, range(clients)):
            errors += errs
            latencies += lat
    wall = time.perf_counter() - t0
    out.update(concurrent_clients=clients, concurrent_errors=errors, concurrent_p50_ms=pct(latencies, 50) * 1000,
               concurrent_p99_ms=pct(latencies, 99) * 1000, concurrent_rps=len(latencies) / wall)
    return out


def peer_figures(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """The real Backstage loaded with the first `size` entities of the same synthetic org."""
    import httpx
    import yaml

    import peer as peer_module
    from catalog_pipelines.providers.synthetic import SyntheticOrg

    folder = Path(tempfile.mkdtemp(prefix="peer-bench-"))
    entities = list(SyntheticOrg(size, seed=42).iter_entities())
    (folder / "all.yaml").write_text(yaml.safe_dump_all(entities, sort_keys=False))
    (folder / "acme-corp.yaml").write_text(yaml.safe_dump({"apiVersion": "backstage.io/v1alpha1", "kind": "Location",
                                                           "metadata": {"name": "empty"}, "spec": {"targets": []}}))
    t0 = time.perf_counter()
    # start_peer waits for an exact total; here Backstage is still ingesting when it is ready, so
    # this waits itself: until the total stops growing for 60 s.
    waits = peer_module._wait_total
    peer_module._wait_total = lambda *a, **k: None
    try:
        peer = peer_module.start_peer(examples=folder, settle=False)
    finally:
        peer_module._wait_total = waits
    try:
        last, since = -1, time.monotonic()
        with httpx.Client(base_url=peer.base_url, headers=peer.headers, timeout=60) as client:
            while time.monotonic() - since < 60 and time.perf_counter() - t0 < args.peer_timeout:
                try:
                    total = client.get("/api/catalog/entities/by-query", params={"limit": 0}).json()["totalItems"]
                except httpx.TimeoutException:
                    continue  # busy ingesting
                if total != last:
                    last, since = total, time.monotonic()
                if total >= len(entities) + 3:
                    break
                time.sleep(2)
        out = {"peer_entities": last, "peer_ingest_s": time.perf_counter() - t0}
        out.update(measure(peer.base_url, peer.token, repeat=args.repeat, per_client=args.per_client, clients=args.clients,
                           kinds=("component", "component")))
        return out
    finally:
        peer.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000, help="0: the peer only")
    parser.add_argument("--peer-size", type=int, default=20_000, help="0: no peer")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--peer-timeout", type=float, default=1800)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no peer")
    parser.add_argument("--explain", action="store_true", help="print the plans of the representative queries")
    parser.add_argument("--jsonb", action="store_true", help="PostgreSQL: also measure the JSONB + GIN alternative")
    parser.add_argument("--no-http", action="store_true", help="ingest, refresh and --explain only: no server, no peer")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.peer_size, args.repeat, args.clients, args.per_client, args.explain = 400, 0, 5, 5, 2, True

    drop = None
    results: dict[str, Any] = {}
    url = ""
    if args.size == 0:
        pass  # the peer only
    elif args.postgres:
        from ingest_200k import fresh_postgres_url  # the same helper, with a prefix of this benchmark's own

        url, drop = fresh_postgres_url(os.environ.get("CATALOG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
                                       prefix="readapi_bench")
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='readapi-bench-')}/catalog.db"
    print(f"machine: nproc={os.cpu_count()} load={os.getloadavg()} backend={'postgresql' if args.postgres else 'sqlite'}")
    if args.size:
        try:
            seconds, count = ingest(url, args.size)
            print(f"ours: ingested {count} entities in {seconds:.1f} s (search refresh apart, above)")
            if args.explain:
                from catalog_pipelines.storage.catalog_query import explain_plans
                from catalog_pipelines.storage.db import get_engine

                with get_engine(url).connect() as conn:
                    for name, plan in explain_plans(conn).items():
                        # Long literal arrays (by-refs) cut short: the plan's shape is what matters.
                        print(f"-- plan: {name}\n" + "\n".join(line[:160] for line in plan.splitlines()))
            if args.no_http:
                return results
            proc, base = start_server(url)
            try:
                results["ours"] = {"entities": count, "ingest_s": seconds, **measure(base, TOKEN, repeat=args.repeat, per_client=args.per_client,
                                                                                       clients=args.clients, kinds=("component", "api"))}
                print(f"ours: {results['ours']}", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            if args.jsonb and args.postgres:
                results["ours"].update(jsonb_experiment(url, args.repeat))
        finally:
            if drop:
                drop()
    if args.peer_size:
        results["peer"] = {"entities": args.peer_size, **peer_figures(args.peer_size, args)}
    rows = sorted({k for r in results.values() for k in r})
    print(f"{'figure':<22}" + "".join(f"{name:>16}" for name in results))
    for key in rows:
        cells = []
        for r in results.values():
            v = r.get(key, "")
            cells.append(f"{v:>16.1f}" if isinstance(v, float) else f"{v!s:>16}")
        print(f"{key:<22}" + "".join(cells))
    return results


if __name__ == "__main__":
    main()
