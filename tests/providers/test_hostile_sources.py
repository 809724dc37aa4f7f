"""Hostile descriptor sources (issue 15): bounded work, clear rejections, the rest of the batch lands.

Every case that ingests a hostile tree does it in a child process (`ingest_guarded`) that pages
the files provider to the end, one fresh provider per page with the cursor round-tripped through
JSON (as separate Dagster runs do), under an address-space limit (RLIMIT_AS) and a generous
timeout. Both are hang-guards, not speed assertions: on the code before this fix these trees
hung the cycle (a symlink loop under a glob, a FIFO) or blew up its memory (placeholders). The
child also reports counts of work done (documents parsed, bytes emitted, peak RSS) that the
tests bound.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from catalog_pipelines.model.limits import MIB
from helpers import COMPONENT

# Hang-guards: far above what the cases need (seconds, tens of MB); they only stop a runaway.
GUARD_SECONDS = 90
GUARD_ADDRESS_SPACE = 2048 * MIB
# Peak resident memory a hostile case may reach in the child (the interpreter alone is ~60 MB).
PEAK_RSS_CAP = 400 * MIB


_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import orjson
    from catalog_pipelines.providers.descriptors import loader
    from catalog_pipelines.providers.files import DescriptorFileProvider

    args = json.loads(sys.argv[1])
    parses = 0
    original_parse = loader.parse_document

    def counting_parse(*a, **k):
        global parses
        parses += 1
        return original_parse(*a, **k)

    loader.parse_document = counting_parse
    cut = 0
    original_iter = getattr(loader, "iter_documents", None)

    def counting_iter(*a, **k):
        global cut
        for document in original_iter(*a, **k):
            cut += 1
            yield document

    if original_iter is not None:
        loader.iter_documents = counting_iter
    entities, rejections, pages, entity_bytes, cursor = [], [], 0, 0, None
    while True:
        provider = DescriptorFileProvider("hostile", args["roots"], page_size=args["page_size"], limits=args["limits"])
        with provider.around():
            page = provider.next(cursor)
        pages += 1
        for raw in page.entities:
            entity_bytes += len(orjson.dumps(raw.entity))
            meta = raw.entity.get("metadata") if type(raw.entity) is dict else None
            name = meta.get("name") if type(meta) is dict else None
            entities.append([raw.location.rsplit("/", 1)[-1], raw.doc_index, raw.entity.get("kind") if type(raw.entity) is dict else None, name])
        rejections += [r.to_dict() for r in page.rejections]
        cursor = json.loads(json.dumps(page.cursor))
        if page.done or pages > args["max_pages"]:
            break
    print(json.dumps({
        "entities": entities, "rejections": rejections, "pages": pages, "done": page.done,
        "parses": parses, "cut": cut, "entity_bytes": entity_bytes, "cursor": cursor,
        # VmHWM: this process image's own peak. getrusage's ru_maxrss would also count the pytest
        # process this child was forked from (Linux keeps the pre-exec peak in maxrss).
        "peak_rss": next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")),
    }))
    """
)


def ingest_guarded(roots, *, page_size: int = 500, limits: dict | None = None, max_pages: int = 10_000) -> dict:
    """Page the files provider over `roots` to the end in a child process under the hang-guards."""

    def limit_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (GUARD_ADDRESS_SPACE, GUARD_ADDRESS_SPACE))

    args = {"roots": [str(root) for root in roots], "page_size": page_size, "limits": limits or {}, "max_pages": max_pages}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=GUARD_SECONDS,
            preexec_fn=limit_address_space,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"ingesting {roots} did not finish within the {GUARD_SECONDS} s hang-guard")
    assert done.returncode == 0, f"the ingestion child failed (rc {done.returncode}):\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout)
    assert result["done"], "the provider never reported the end of the source"
    assert result["peak_rss"] < PEAK_RSS_CAP, f"peak RSS {result['peak_rss']:,} bytes"
    return result


def rules(result: dict) -> list[str]:
    return [r["rule"] for r in result["rejections"]]


def names(result: dict) -> list[str]:
    return [name for *_, name in result["entities"]]


def root_location(path: Path, *targets: str, name: str = "root") -> Path:
    listed = "".join(f"\n    - {target}" for target in targets) if targets else " []"
    path.write_text(
        f"apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n  targets:{listed}\n"
    )
    return path


# --- 9: glob Location targets ------------------------------------------------------------------


def test_glob_target_over_an_in_root_symlink_loop_reads_each_file_once_and_ends(tmp_path):
    repo = tmp_path / "repo"
    (repo / "d").mkdir(parents=True)
    (repo / "d" / "a").symlink_to("..", target_is_directory=True)  # d/a -> repo: a loop
    (repo / "d" / "b").symlink_to(repo, target_is_directory=True)
    (repo / "one.yaml").write_text(COMPONENT.format(name="one"))
    (repo / "d" / "two.yaml").write_text(COMPONENT.format(name="two"))
    root = root_location(repo / "catalog.yaml", "./**/*.yaml")
    result = ingest_guarded([root])
    assert sorted(names(result)) == ["one", "root", "two"]
    assert "maxGlobMatches" not in rules(result)


def test_glob_target_that_leaves_the_root_is_refused_before_anything_is_listed(tmp_path):
    repo = tmp_path / "deep" / "er" / "repo"
    repo.mkdir(parents=True)
    (tmp_path / "secret.yaml").write_text(COMPONENT.format(name="secret"))
    root = root_location(repo / "catalog.yaml", "../../../../**/*.yaml", "../../../secret.yaml")
    result = ingest_guarded([root])
    assert names(result) == ["root"]
    assert rules(result) == ["outsideRoot", "outsideRoot"]
    assert "globs are only expanded inside the root" in result["rejections"][0]["message"]


def test_glob_matches_are_capped_and_the_cap_is_a_rejection_naming_it(tmp_path):
    for index in range(8):
        (tmp_path / f"c{index}.yaml").write_text(COMPONENT.format(name=f"c{index}"))
    root = root_location(tmp_path / "catalog.yaml", "./c*.yaml")
    result = ingest_guarded([root], limits={"max_glob_matches": 5})
    assert names(result) == ["root", "c0", "c1", "c2", "c3", "c4"]
    [rejection] = result["rejections"]
    assert rejection["rule"] == "maxGlobMatches" and "more than 5 files" in rejection["message"]
    assert "catalog.yaml" in rejection["location"]


def test_glob_matching_a_symlink_out_of_the_root_reports_it(tmp_path):
    (tmp_path / "outside.yaml").write_text(COMPONENT.format(name="outside"))
    repo = tmp_path / "repo"
    (repo / "parts").mkdir(parents=True)
    (repo / "parts" / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    (repo / "parts" / "inside.yaml").write_text(COMPONENT.format(name="inside"))
    result = ingest_guarded([root_location(repo / "catalog.yaml", "./parts/*.yaml")])
    assert sorted(names(result)) == ["inside", "root"]
    assert rules(result) == ["outsideRoot"] and "outside.yaml" in result["rejections"][0]["message"]


# --- 10: FIFOs and other non-regular files ---------------------------------------------------


def test_fifos_named_yaml_are_rejected_not_waited_on(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    os.mkfifo(tree / "pipe.yaml")
    (tree / "ok.yaml").write_text(COMPONENT.format(name="ok"))
    (tree / "uses-text.yaml").write_text(
        COMPONENT.format(name="with-text") + "  description:\n    $text: ./pipe.yaml\n"
    )
    os.mkfifo(tmp_path / "root-pipe.yaml")
    result = ingest_guarded([tree, tmp_path / "root-pipe.yaml"])
    assert names(result) == ["ok"]
    by_rule = sorted((r["rule"], r["location"].rsplit("/", 1)[-1]) for r in result["rejections"])
    assert by_rule == [
        ("notRegularFile", "pipe.yaml"),
        ("notRegularFile", "root-pipe.yaml"),
        ("placeholderNotRegularFile", "uses-text.yaml"),
    ]
    assert all("FIFO" in r["message"] for r in result["rejections"])


# --- 11: many documents in one file ----------------------------------------------------------


def test_every_document_of_a_big_file_is_parsed_once_however_many_pages_it_spans(tmp_path):
    count = 3000
    (tmp_path / "many.yaml").write_text("---\n".join(COMPONENT.format(name=f"c{i}") for i in range(count)))
    result = ingest_guarded([tmp_path], page_size=100)
    assert len(result["entities"]) == count and result["rejections"] == []
    assert result["pages"] == count // 100
    # Before the fix every page parsed every document after its resume point (~45,000 parses)
    # and cut the whole file into documents again. Now each page starts cutting at its resume
    # point: one document before it (to spot repeats), and the one it stops at, are cut twice.
    assert result["parses"] == count
    assert 0 < result["cut"] <= count + 2 * result["pages"]


def test_a_flood_of_repeated_documents_is_capped_and_summarised(tmp_path):
    (tmp_path / "flood.yaml").write_text(COMPONENT.format(name="real") + "---\n{}\n" * 200_000)
    result = ingest_guarded([tmp_path])
    assert names(result) == ["real", None]  # the first `{}` is an entity (validation rejects it)
    assert rules(result) == ["repeatedDocument", "maxDocumentsPerFile"]
    repeated, capped = result["rejections"]
    assert "documents 2-49999 (49,998 documents) are identical to document 1" in repeated["message"]
    assert "more than 50,000 documents" in capped["message"] and capped["doc_index"] == 50_000
    assert result["parses"] == 2


def test_the_document_cap_is_configurable_and_documents_before_it_land(tmp_path):
    (tmp_path / "a.yaml").write_text("---\n".join(COMPONENT.format(name=f"c{i}") for i in range(12)))
    for page_size in (1, 5, 100):
        result = ingest_guarded([tmp_path], page_size=page_size, limits={"max_documents_per_file": 10})
        assert names(result) == [f"c{i}" for i in range(10)], page_size
        assert rules(result) == ["maxDocumentsPerFile"]


# --- 12: placeholder amplification -------------------------------------------------------------


def test_placeholder_bytes_are_capped_per_file(tmp_path):
    (tmp_path / "big.txt").write_text("x" * MIB)
    text_component = COMPONENT + "  description:\n    $text: ./big.txt\n"
    (tmp_path / "catalog.yaml").write_text("---\n".join(text_component.format(name=f"c{i}") for i in range(300)))
    result = ingest_guarded([tmp_path])
    # 16 MiB per file by default: 16 components get the text, the other 284 are rejected with the cap.
    assert len(result["entities"]) == 16
    assert rules(result) == ["maxPlaceholderBytesPerFile"] * 284
    assert "max_placeholder_bytes_per_file" in result["rejections"][0]["message"]
    assert result["entity_bytes"] < 17 * MIB  # before the fix: 301 MB from 1.1 MB of input


def test_the_per_file_placeholder_cap_holds_across_pages(tmp_path):
    (tmp_path / "part.txt").write_text("y" * 1000)
    text_component = COMPONENT + "  description:\n    $text: ./part.txt\n"
    (tmp_path / "catalog.yaml").write_text("---\n".join(text_component.format(name=f"c{i}") for i in range(30)))
    for page_size in (1, 4, 500):
        result = ingest_guarded([tmp_path], page_size=page_size, limits={"max_placeholder_bytes_per_file": 10_000})
        assert names(result) == [f"c{i}" for i in range(10)], page_size
        assert rules(result) == ["maxPlaceholderBytesPerFile"] * 20


def test_placeholder_bytes_are_capped_per_chunk_across_files(tmp_path):
    (tmp_path / "part.txt").write_text("z" * 1000)
    for index in range(20):
        (tmp_path / f"c{index:02}.yaml").write_text(
            COMPONENT.format(name=f"c{index:02}") + "  description:\n    $text: ./part.txt\n"
        )
    # One page is one chunk here (each page runs under its own `around()`).
    result = ingest_guarded([tmp_path], page_size=500, limits={"max_placeholder_bytes_per_chunk": 4000})
    assert names(result) == ["c00", "c01", "c02", "c03"]
    assert rules(result) == ["maxPlaceholderBytesPerChunk"] * 16
    spread = ingest_guarded([tmp_path], page_size=4, limits={"max_placeholder_bytes_per_chunk": 4000})
    assert len(spread["entities"]) == 20 and spread["rejections"] == []


# --- 13: nothing skipped silently ------------------------------------------------------------


def test_a_directory_root_symlink_out_of_the_root_is_a_rejection(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "passwd.yaml").symlink_to("/etc/passwd")
    (tree / "ok.yaml").write_text(COMPONENT.format(name="ok"))
    result = ingest_guarded([tree])
    assert names(result) == ["ok"]
    [rejection] = result["rejections"]
    assert rejection["rule"] == "outsideRoot" and rejection["location"].endswith("passwd.yaml")
    assert "/etc/passwd" in rejection["message"]


def test_nan_infinity_and_overflowing_numbers_are_rejected_not_stored_as_null(tmp_path):
    documents = [
        COMPONENT.format(name=f"n{index}") + f"  weight: {value}\n"
        for index, value in enumerate([".nan", "1e400", "-.inf", "1" + "0" * 400, "2.5"])
    ]
    (tmp_path / "numbers.yaml").write_text("---\n".join(documents))
    result = ingest_guarded([tmp_path])
    assert names(result) == ["n4"]
    assert rules(result) == ["nonFiniteNumber"] * 4
    assert '"1e400" is not a finite number' in result["rejections"][1]["message"]


# --- item 2: an empty root Location is not an entity -------------------------------------------


def test_a_root_location_without_targets_is_a_rejection_not_an_entity(tmp_path):
    empty = root_location(tmp_path / "empty.yaml", name="empty")
    result = ingest_guarded([empty])
    assert result["entities"] == []  # so `reject_empty_source_collections` sees an empty source
    [rejection] = result["rejections"]
    assert rejection["rule"] == "emptyRootLocation" and rejection["ref"] == "location:default/empty"
    (tmp_path / "leaf.yaml").write_text(COMPONENT.format(name="leaf"))
    full = root_location(tmp_path / "full.yaml", "./leaf.yaml", name="full")
    assert names(ingest_guarded([full])) == ["full", "leaf"]  # a Location with targets stays an entity


# --- 14: full refs in `catalog rejected --json` --------------------------------------------------


def test_catalog_rejected_json_carries_full_refs(data_env, tmp_path):
    from click.testing import CliRunner

    from catalog_pipelines.cli import main

    namespace, name = "n" * 63, "a-name-that-is-far-too-long-" + "x" * 70
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "long.yaml").write_text(
        COMPONENT.format(name=name).replace("metadata:\n", f"metadata:\n  namespace: {namespace}\n")
    )
    runner = CliRunner()
    ingested = runner.invoke(main, ["ingest", str(tree), "--name", "tree", "--json"], catch_exceptions=False)
    assert ingested.exit_code == 0, ingested.output
    rows = json.loads(runner.invoke(main, ["catalog", "rejected", "--json"]).output)
    expected = f"component:{namespace}/{name}"
    assert [row["ref"] for row in rows] == [expected]
    assert expected in rows[0]["message"] and "…" not in rows[0]["ref"]


def test_pages_resume_inside_a_file_exactly_where_one_pass_would_be(tmp_path):
    (tmp_path / "leaf.yaml").write_text(COMPONENT.format(name="leaf"))
    (tmp_path / "late.yaml").write_text(COMPONENT.format(name="late"))
    location = "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {name}\nspec:\n  target: {target}\n"
    documents = [location.format(name="first", target="./leaf.yaml")]
    documents += [COMPONENT.format(name=f"c{i}") for i in range(3)]
    documents += ["{}\n"] * 4 + [COMPONENT.format(name="c3")] * 3 + ["bad: [\n"]
    documents += [location.format(name="last", target="./late.yaml"), COMPONENT.format(name="c4")]
    root = tmp_path / "catalog.yaml"
    root.write_text("\ufeff" + "---\n".join(documents))
    one_pass = ingest_guarded([root])
    assert names(one_pass) == ["first", "c0", "c1", "c2", None, "c3", "last", "c4", "leaf", "late"]
    assert rules(one_pass) == ["repeatedDocument", "repeatedDocument", "yamlSyntax"]
    for page_size in (1, 2, 3):
        paged = ingest_guarded([root], page_size=page_size)
        assert paged["entities"] == one_pass["entities"], page_size
        assert paged["rejections"] == one_pass["rejections"], page_size
        # Location documents are parsed again for their targets (by the page that finishes the
        # file, and by pages after it that replay the walk); nothing else is.
        assert paged["parses"] <= one_pass["parses"] + 2 * paged["pages"], page_size


def test_a_file_changed_between_pages_is_cut_from_its_start_again(tmp_path):
    from catalog_pipelines.providers.files import DescriptorFileProvider

    path = tmp_path / "a.yaml"
    path.write_text("---\n".join(COMPONENT.format(name=f"c{i}") for i in range(4)))
    provider = DescriptorFileProvider("files", [tmp_path], page_size=2)
    first = provider.next(None)
    assert first.cursor["doc"] == 2 and "at" in first.cursor
    path.write_text("# a comment that moves every offset\n" + path.read_text())
    second = provider.next(first.cursor)
    assert [raw.entity["metadata"]["name"] for raw in second.entities] == ["c2", "c3"]
