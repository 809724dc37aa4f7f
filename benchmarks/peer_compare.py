"""Time a real Backstage catalog against our path on the same input: the Backstage example catalog.

(a) Backstage (shared/tools/backstage-peer, release 1.45.6): from process start to readiness and to
    all 61 entities served, then one read of the whole catalog through `by-query` (plain httpx).
(b) Ours: `BackstageApiProvider` reading the same catalog from that running peer; and our file path,
    parse + validate + derive relations of the same files with `process_entity` (through
    `DescriptorFileProvider` when that exists, else the model's safe YAML reader over the files
    the peer's two Location roots reach), both warm in-process and from a cold Python process.

    .venv/bin/python benchmarks/peer_compare.py               # 3 cold starts, 20 warm reads
    .venv/bin/python benchmarks/peer_compare.py --smoke       # 1 cold start, 2 warm reads
    .venv/bin/python benchmarks/peer_compare.py --json out.json

Needs node and npm (the first run installs the peer, about 1.5 to 3 minutes); see tests/peer.py.
Figures are medians. The machine is shared, so expect noise of some tens of percent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

import yaml  # noqa: E402

# The peer helpers, httpx and the provider are imported where they are used: the cold-process
# measurement of the file path runs this script and must pay only for what that path imports.


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of `repeat` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


# -- (a) Backstage -------------------------------------------------------------------------------


def cold_start(repeat: int) -> tuple[dict[str, float], Any]:
    """Start the peer `repeat` times; keep the last one running for the read benchmarks."""
    from peer import start_peer

    ready, served = [], []
    peer = None
    for i in range(repeat):
        if peer is not None:
            peer.stop()
        peer = start_peer(settle=False)
        ready.append(peer.ready_after)
        served.append(peer.all_served_after)
    return {"backstage_start_to_ready_s": statistics.median(ready), "backstage_start_to_all_served_s": statistics.median(served)}, peer


def read_by_query(peer: Any, page_size: int) -> int:
    import httpx

    count = 0
    with httpx.Client(base_url=peer.base_url, headers=peer.headers, timeout=30) as client:
        params: dict[str, Any] = {"limit": page_size}
        while True:
            body = client.get("/api/catalog/entities/by-query", params=params).raise_for_status().json()
            count += len(body["items"])
            cursor = body["pageInfo"].get("nextCursor")
            if not cursor:
                return count
            params = {"limit": page_size, "cursor": cursor}


# -- (b) ours ------------------------------------------------------------------------------------


def read_with_provider(peer: Any, page_size: int) -> int:
    from catalog_pipelines.providers.backstage_api import BackstageApiProvider

    provider = BackstageApiProvider("bench", peer.base_url, page_size=page_size, token=peer.token)
    count, cursor = 0, None
    with provider.around():
        while True:
            page = provider.next(cursor)
            count += len(page.entities)
            if page.done:
                return count
            cursor = page.cursor


def reachable_files(examples: Path) -> list[Path]:
    """The files Backstage reads: the two config roots and every Location target, transitively."""
    seen: list[Path] = []
    todo = [examples / "all.yaml", examples / "acme-corp.yaml"]
    while todo:
        path = todo.pop(0).resolve()
        if path in seen:
            continue
        seen.append(path)
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Location":
                spec = doc.get("spec") or {}
                todo += [path.parent / t for t in [spec.get("target"), *(spec.get("targets") or [])] if t]
    return seen


def file_path_runner(examples: Path) -> tuple[str, Callable[[], dict[str, int]]] | None:
    """Our parse + validate + derive over the example files, or None if the model is not there.

    Through `DescriptorFileProvider` when it exists; otherwise through the model's own safe YAML
    reader (`providers.descriptors.yamlsafe`, the parser descriptor files go through) over the files the peer's
    two Location roots reach.
    """
    try:
        from catalog_pipelines.model import process_entity
        from catalog_pipelines.model.entity import ProcessedEntity, RawEntity
        from catalog_pipelines.providers.descriptors.yamlsafe import parse_document, split_documents
    except ImportError:
        return None

    def tally(raws, early_rejections: int = 0) -> dict[str, int]:
        accepted, rejected, relations = 0, early_rejections, 0
        for raw in raws:
            result = process_entity(raw)
            if isinstance(result, ProcessedEntity):
                accepted += 1
                relations += len(result.relations)
            else:
                rejected += 1
        return {"accepted": accepted, "rejected": rejected, "relations": relations}

    try:
        from catalog_pipelines.providers.files import DescriptorFileProvider
    except ImportError:
        DescriptorFileProvider = None

    if DescriptorFileProvider is not None:
        def run_provider() -> dict[str, int]:
            # The peer's two config locations as root descriptor files: the provider follows
            # their Location targets, as Backstage does.
            provider = DescriptorFileProvider("bench-files", [examples / "all.yaml", examples / "acme-corp.yaml"])
            raws, early_rejections, cursor = [], 0, None
            with provider.around():
                while True:
                    page = provider.next(cursor)
                    raws += page.entities
                    early_rejections += len(page.rejections)
                    if page.done:
                        break
                    cursor = page.cursor
            return tally(raws, early_rejections)

        return "DescriptorFileProvider (roots all.yaml, acme-corp.yaml) + process_entity", run_provider

    files = reachable_files(examples)

    def run_yamlsafe() -> dict[str, int]:
        raws = []
        for path in files:
            for document in split_documents(path.read_text()):
                data = parse_document(document)
                if data is not None:
                    raws.append(RawEntity(data, f"file:{path}", document.index))
        return tally(raws)

    return f"descriptors.yamlsafe over the {len(files)} reachable files + process_entity", run_yamlsafe


def cold_file_path(examples: Path) -> float:
    """Wall time of a fresh Python process that imports our code and runs the file path once."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--file-path-only", "--examples", str(examples)], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


# -- main ----------------------------------------------------------------------------------------


def run(smoke: bool, repeat: int | None, starts: int | None, page_size: int, examples: Path) -> dict[str, Any]:
    repeat = repeat or (2 if smoke else 20)
    starts = starts or (1 if smoke else 3)
    figures: dict[str, Any] = {"page_size": page_size, "warm_repeats": repeat, "cold_starts": starts, "examples": str(examples)}

    start_figures, peer = cold_start(starts)
    figures.update(start_figures)
    try:
        figures["backstage_read_by_query_s"], n_raw = timed(lambda: read_by_query(peer, page_size), repeat)
        figures["provider_read_from_peer_s"], n_provider = timed(lambda: read_with_provider(peer, page_size), repeat)
    finally:
        peer.stop()
    figures["entities_served"] = n_raw
    figures["entities_read_by_provider"] = n_provider

    runner = file_path_runner(examples)
    if runner is not None:
        label, fn = runner
        figures["file_path"] = label
        figures["file_path_warm_s"], counts = timed(fn, repeat)
        figures["file_path_counts"] = counts
        figures["file_path_cold_process_s"] = statistics.median(cold_file_path(examples) for _ in range(starts))
        figures["ratio_backstage_start_to_served_over_our_cold_file_path"] = (
            figures["backstage_start_to_all_served_s"] / figures["file_path_cold_process_s"]
        )
        figures["ratio_backstage_start_to_served_over_our_warm_file_path"] = (
            figures["backstage_start_to_all_served_s"] / figures["file_path_warm_s"]
        )
    figures["ratio_provider_over_raw_by_query"] = figures["provider_read_from_peer_s"] / figures["backstage_read_by_query_s"]
    return figures


def report(f: dict[str, Any]) -> str:
    lines = [
        f"input: {f['examples']} (Backstage serves {f['entities_served']} entities)",
        f"medians over {f['cold_starts']} cold start(s) and {f['warm_repeats']} warm repeat(s); page size {f['page_size']}",
        "",
        "(a) Backstage 1.45.6 (node, in-memory SQLite)",
        f"    process start -> readiness               {f['backstage_start_to_ready_s'] * 1000:9.0f} ms",
        f"    process start -> all entities served     {f['backstage_start_to_all_served_s'] * 1000:9.0f} ms",
        f"    read all through by-query (httpx)        {f['backstage_read_by_query_s'] * 1000:9.1f} ms",
        "(b) ours",
        f"    BackstageApiProvider reading the peer    {f['provider_read_from_peer_s'] * 1000:9.1f} ms"
        f"   ({f['entities_read_by_provider']} entities; x{f['ratio_provider_over_raw_by_query']:.2f} of the raw read)",
    ]
    if "file_path" in f:
        c = f["file_path_counts"]
        lines += [
            f"    file path, warm: {f['file_path']}",
            f"        parse+validate+derive                {f['file_path_warm_s'] * 1000:9.1f} ms"
            f"   ({c['accepted']} accepted, {c['rejected']} rejected, {c['relations']} relations)",
            f"    file path from a cold Python process     {f['file_path_cold_process_s'] * 1000:9.0f} ms",
            "ratio: Backstage start->served / our file path",
            f"    cold process: x{f['ratio_backstage_start_to_served_over_our_cold_file_path']:.1f}"
            f"   warm: x{f['ratio_backstage_start_to_served_over_our_warm_file_path']:.0f}",
        ]
    else:
        lines.append("    file path: not available (catalog_pipelines.model.process_entity is missing)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one cold start, two warm repeats: for a quick test")
    parser.add_argument("--repeat", type=int, help="warm repeats per read (default 20, smoke 2)")
    parser.add_argument("--starts", type=int, help="cold starts of Backstage (default 3, smoke 1)")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--examples", type=Path, default=None, help="example catalog folder (default: shared's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--file-path-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.examples is None:
        from peer import examples_dir

        args.examples = examples_dir()
    examples = args.examples.resolve()

    if args.file_path_only:  # the child of cold_file_path
        runner = file_path_runner(examples)
        if runner is None:
            raise SystemExit("catalog_pipelines.model.process_entity is missing")
        print(json.dumps(runner[1]()))
        return None

    figures = run(args.smoke, args.repeat, args.starts, args.page_size, examples)
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
