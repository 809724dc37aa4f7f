"""Catalog health at scale: the relationship graph, the orphan report and the skills exchange on a
200,000-entity synthetic organisation (with its relation long tail).

    .venv/bin/python benchmarks/graph.py                      # the issue's size, from frames
    .venv/bin/python benchmarks/graph.py --size 20000
    .venv/bin/python benchmarks/graph.py --end-to-end         # also through a SQLite catalog

The catalog is `SyntheticOrg(size, seed, generation=1, remove_fraction=...)`: generation 1 with a
share of entities removed since generation 0, so the removals and the dangling references they
leave behind are real. Relations come from `catalog_pipelines.model.derive_relations`, in both
directions, as `storage.frames.relations_frame()` returns them. Building the catalog is not
timed. Timed:

- **graph**: `analytics.health.graph.analyse` (normalise relations, owners and systems, edges, nodes,
  sparse graph, strongly connected components and cycles, exact blast radius of the candidates,
  per-team and per-system contraction, ownership roll-up), then impact queries;
- **orphans**: `analytics.health.orphans.orphan_report`;
- **skills**: profiles, mentor matching (min-cost flow), gigs, coverage and knowledge risks;
- **end to end** (`--end-to-end`): seed a SQLite catalog, then each asset through Dagster (read
  the frames from the database, analyse, write the insight tables), and `catalog deps` on the
  largest hub as the CLI runs it (reading the stored tables).

Prints a Markdown table to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from analytics.health.graph import analyse, impact_summary
from analytics.org import OrgGraph
from analytics.health.orphans import orphan_report
from analytics.health.skills import (
    Taxonomy,
    coverage,
    group_needs,
    knowledge_risks,
    match_gigs,
    match_mentors,
)
from analytics.health.synthetic import synthetic_gigs, synthetic_profiles
from catalog_pipelines.model import derive_relations
from catalog_pipelines.model.refs import entity_ref_of
from catalog_pipelines.providers.synthetic import SyntheticOrg

ROOT = Path(__file__).resolve().parent.parent


def build_catalog(size: int, seed: int, remove_fraction: float):
    """Entity dicts, the entities and relations frames, and the removal log (not timed)."""
    current = SyntheticOrg(size, seed=seed, generation=1, remove_fraction=remove_fraction)
    entities = list(current.iter_entities())
    rows, relations = [], []
    for doc in entities:
        spec = doc.get("spec") or {}
        meta = doc["metadata"]
        rows.append(
            (entity_ref_of(doc), doc["kind"].lower(), meta.get("namespace", "default"), meta["name"], spec.get("type"),
             spec.get("owner"), spec.get("system"), spec.get("lifecycle"), "synthetic", doc)
        )
        relations.extend((r.source, r.type, r.target) for r in derive_relations(doc))
    frame = pd.DataFrame.from_records(
        rows, columns=["ref", "kind", "namespace", "name", "type", "owner", "system", "lifecycle", "provider", "entity"]
    )
    rel = pd.DataFrame.from_records(relations, columns=["source", "type", "target"]).drop_duplicates(ignore_index=True)
    removed = [current.ref(i) for i in range(current.count_slots()) if current.is_removed(i)]
    removals = pd.DataFrame(
        {
            "ref": [r.lower() for r in removed],
            "kind": [r.split(":", 1)[0].lower() for r in removed],
            "provider": "synthetic",
            "cycle": 2,
            "removed_at": pd.Timestamp("2026-03-01", tz="UTC"),
        }
    )
    return entities, frame, rel, removals


def timed(label: str, results: list, fn, *args, **kwargs):
    """Wall and CPU seconds of one step. On a shared machine the wall time grows with the load;
    the CPU time of this (single-threaded) process is close to the wall time on an idle one."""
    started, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    results.append((label, seconds, cpu))
    print(f"  {label}: {seconds:.2f} s wall, {cpu:.2f} s CPU", file=sys.stderr)
    return value


def end_to_end(entities: list[dict], results: list, hub: str, sample: list[str]) -> None:
    """Seed a temporary SQLite catalog, run the assets through Dagster, query like the CLI."""
    folder = Path(tempfile.mkdtemp(prefix="graph-bench-"))
    try:
        _end_to_end(entities, results, hub, sample, f"sqlite:///{folder}/catalog.db")
    finally:
        from catalog_pipelines.storage.db import dispose_engines

        dispose_engines()
        shutil.rmtree(folder, ignore_errors=True)


def _end_to_end(entities: list[dict], results: list, hub: str, sample: list[str], url: str) -> None:
    import dagster as dg

    from catalog_pipelines.assets.catalog_health import catalog_health_assets
    from catalog_pipelines.services.catalog_health import dependency_report
    from catalog_pipelines.model import process_entity
    from catalog_pipelines.model.entity import RawEntity
    from catalog_pipelines.resources import CatalogDatabase
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.ledger import Ledger

    engine = get_engine(url)

    def seed() -> None:
        store, ledger = CatalogStore(engine), Ledger(engine)
        ingestion = ledger.start_cycle("synthetic")
        chunk = 5000
        for seq, start in enumerate(range(0, len(entities), chunk)):
            processed = [process_entity(RawEntity(entity=e, location="bench", doc_index=i)) for i, e in enumerate(entities[start : start + chunk])]
            store.write_chunk(provider="synthetic", ingestion_id=ingestion.id, sequence=seq, cursor_in=None, cursor=None,
                              done=start + chunk >= len(entities), entities=processed, rejections=[])

    timed("seed SQLite catalog (not part of the analysis)", results, seed)
    resources = {"catalog": CatalogDatabase(url=url)}
    instance = dg.DagsterInstance.ephemeral()
    for asset in catalog_health_assets:
        name = asset.key.to_user_string()
        config = {"ops": {"skills_exchange": {"config": {"synthetic_profiles": True}}}} if name == "skills_exchange" else None
        result = timed(f"asset {name} (Dagster, read + analyse + write)", results, dg.materialize, [asset],
                       resources=resources, instance=instance, run_config=config)
        assert result.success
    report = timed(f"CLI `catalog deps {hub} --reverse` (walk the stored graph)", results, dependency_report, hub, reverse=True, engine=engine)
    print(f"  hub impact: {len(report['entities'])} entities, {len(report['summary']['owners'])} teams", file=sys.stderr)

    def typical() -> None:
        for ref in sample:
            dependency_report(ref, engine=engine)
            dependency_report(ref, reverse=True, depth=2, engine=engine)

    timed(f"CLI `catalog deps` for {len(sample)} random entities (needs, and 2-hop dependents)", results, typical)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--remove-fraction", type=float, default=0.01)
    parser.add_argument("--queries", type=int, default=200, help="random impact queries to time")
    parser.add_argument("--end-to-end", action="store_true")
    args = parser.parse_args()

    print(f"building a {args.size:,}-entity synthetic catalog …", file=sys.stderr)
    started = time.perf_counter()
    entities, frame, relations, removals = build_catalog(args.size, args.seed, args.remove_fraction)
    org = OrgGraph.from_entities(e for e in entities if e["kind"] in ("User", "Group"))
    print(f"  built in {time.perf_counter() - started:.1f} s: {len(frame):,} entities, {len(relations):,} relation rows, "
          f"{len(removals):,} removed", file=sys.stderr)

    results: list[tuple[str, float]] = []
    result = timed("graph analysis (`analyse`: nodes, edges, cycles, top 50, team/system views)", results, analyse,
                   frame, relations, org, top=50)
    graph = result.graph
    hub = result.most_depended_on["ref"].iloc[0]
    walk = timed(f"impact of the largest hub ({hub}, reverse, unbounded)", results, graph.traverse, hub, reverse=True)
    rng = np.random.default_rng(1)
    picks = rng.choice(result.nodes["ref"].to_numpy(), size=min(args.queries, len(result.nodes)), replace=False)

    def queries() -> None:
        for ref in picks:
            graph.traverse(ref)
            graph.traverse(ref, reverse=True)

    timed(f"{2 * len(picks)} random impact queries (both directions)", results, queries)
    report = timed("orphan report", results, orphan_report, frame, relations, removals, org, admin_group="group:default/catalog-admins")

    taxonomy = Taxonomy.load(ROOT / "config" / "skills" / "skills.yaml")
    profiles = synthetic_profiles(org, taxonomy)

    def skills() -> tuple:
        mentoring = match_mentors(profiles, org)
        gigs = match_gigs(synthetic_gigs(org, taxonomy, count=200), profiles, org, taxonomy)
        needs = group_needs(frame, org, taxonomy)
        risks = knowledge_risks(needs, profiles.skills, org)
        return mentoring, gigs, coverage(profiles.skills, org), risks

    mentoring, gigs, cov, risks = timed("skills exchange (mentors, 200 gigs, coverage, risks)", results, skills)

    if args.end_to_end:
        end_to_end(entities, results, hub, [str(r) for r in picks[:20]])

    s = impact_summary(walk, result.nodes)
    print()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Catalog health, {len(frame):,}-entity synthetic org (seed {args.seed}; {len(relations):,} relation rows; "
          f"Python {platform.python_version()}, {os.cpu_count()} cores, load average {load:.1f} at the end)")
    print()
    print("| step | wall s | CPU s |")
    print("| --- | ---: | ---: |")
    for label, seconds, cpu in results:
        print(f"| {label} | {seconds:.2f} | {cpu:.2f} |")
    print()
    edges = result.edges
    deg = result.nodes["direct_dependents"]
    print(f"Graph: {len(result.nodes):,} nodes, {len(edges):,} needs-edges; direct dependents max {deg.max():,}, "
          f"p99 {int(deg.quantile(0.99)):,}, median {int(deg.median())}; {len(result.cycles)} cycles "
          f"(largest {int(result.cycles['size'].max()) if len(result.cycles) else 0}); "
          f"largest blast radius {len(walk):,} entities across {len(s['owners'])} teams.")
    by_cat = report["category"].value_counts()
    print(f"Orphans: {len(report):,} findings (" + ", ".join(f"{c} {n:,}" for c, n in by_cat.items()) + ").")
    print(f"Skills: {len(profiles.skills):,} profile rows, {len(profiles.wishes):,} wishes, {len(mentoring.matches):,} mentorships "
          f"({mentoring.matches['cross_team'].mean():.0%} cross-team), {int(gigs['assigned'].sum())} gig seats, "
          f"{len(risks):,} knowledge risks, {len(cov):,} coverage rows.")


if __name__ == "__main__":
    main()
