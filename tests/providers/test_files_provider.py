"""DescriptorFileProvider: the provider contract, paging and resuming from a JSON cursor."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import catalog_pipelines.providers.files as files_module
from catalog_pipelines.model import ProcessedEntity, process_entity
from catalog_pipelines.providers.base import EntityProvider, ProviderError
from catalog_pipelines.providers.files import DescriptorFileProvider
from helpers import COMPONENT, TEST_DATA

DATA = TEST_DATA / "model"
EXAMPLES = TEST_DATA / "backstage-examples"
EXAMPLE_ROOTS = [EXAMPLES / "all.yaml", EXAMPLES / "acme-corp.yaml"]



def run(roots, page_size, *, fresh_provider_per_page=True):
    """Page until done, JSON round-tripping the cursor; returns (pages, last cursor).

    A fresh provider per page stands in for resuming in another process.
    """
    pages, cursor = [], None
    provider = DescriptorFileProvider("files", roots, page_size=page_size)
    while True:
        if fresh_provider_per_page:
            provider = DescriptorFileProvider("files", roots, page_size=page_size)
        with provider.around():
            page = provider.next(cursor)
        pages.append(page)
        cursor = json.loads(json.dumps(page.cursor))
        if page.done:
            return pages, cursor
        assert len(pages) < 1000, "the provider does not make progress"


def entity_keys(pages):
    return [(raw.location, raw.doc_index) for page in pages for raw in page.entities]


def rejection_keys(pages):
    return [(r.location, r.doc_index, r.rule) for page in pages for r in page.rejections]


def test_provider_satisfies_the_provider_protocol():
    assert isinstance(DescriptorFileProvider("files", EXAMPLE_ROOTS), EntityProvider)


def test_paging_by_seven_and_resuming_from_json_cursors_matches_one_pass():
    one_pass, _ = run(EXAMPLE_ROOTS, page_size=10_000, fresh_provider_per_page=False)
    paged, cursor = run(EXAMPLE_ROOTS, page_size=7)
    assert len(one_pass) == 1
    assert len(paged) == 10  # 66 entities, 7 per page
    assert all(len(page.entities) + len(page.rejections) <= 7 for page in paged)
    assert entity_keys(paged) == entity_keys(one_pass)
    assert len(set(entity_keys(paged))) == 66
    assert [raw.entity for page in paged for raw in page.entities] == [raw.entity for raw in one_pass[0].entities]
    assert cursor["stats"] == {"files": 48, "skipped_files": 0, "remote_targets": 0}


def test_every_paged_example_entity_processes_and_locations_are_entities_too():
    pages, _ = run(EXAMPLE_ROOTS, page_size=7)
    results = [process_entity(raw) for page in pages for raw in page.entities]
    assert all(isinstance(result, ProcessedEntity) for result in results)
    assert Counter(result.kind for result in results)["Location"] == 9


def test_cursor_is_small_and_holds_no_entity_state():
    pages, _ = run(EXAMPLE_ROOTS, page_size=7)
    location_files = {
        Path(raw.location.removeprefix("file:")).relative_to(EXAMPLES).as_posix()
        for page in pages
        for raw in page.entities
        if raw.entity["kind"] == "Location"
    }
    for page in pages:
        assert len(json.dumps(page.cursor)) < 1024
        assert set(page.cursor) <= {"v", "file", "ordinal", "doc", "at", "pbytes", "locations", "stats", "done"}
        # The only list in the cursor is the Location files seen so far: never entities.
        assert set(page.cursor["locations"]) <= location_files
    assert set(pages[-1].cursor["locations"]) == location_files


def test_resumed_pages_do_not_reread_the_files_before_the_cursor(monkeypatch):
    reads: list[tuple[str, int]] = []
    original = files_module.load_file

    def counting_load_file(path, **kwargs):
        reads.append((path.name, kwargs.get("first_doc", 0)))
        return original(path, **kwargs)

    monkeypatch.setattr(files_module, "load_file", counting_load_file)
    pages, cursor = run(EXAMPLE_ROOTS, page_size=7)
    # Every file is read by exactly one page, plus once more by each page that resumes inside it
    # (and then from the resume document on, not from the start).
    fresh_reads = Counter(name for name, first_doc in reads if first_doc == 0)
    assert set(fresh_reads.values()) == {1}
    assert len(fresh_reads) == cursor["stats"]["files"]
    assert len(reads) - len(fresh_reads) <= len(pages) - 1


def test_directory_root_walks_yaml_files_and_counts_non_descriptor_files():
    pages, cursor = run([EXAMPLES], page_size=500)
    names = {raw.entity["metadata"]["name"] for page in pages for raw in page.entities}
    assert len(entity_keys(pages)) == 68  # every entity in the folder, extras included
    assert {"invalid component", "different-namespace"} <= names
    assert cursor["stats"]["skipped_files"] == 1  # petstore-webhook.oas.yaml
    assert cursor["locations"] == []  # directory roots do not follow Locations


def test_directory_and_descriptor_roots_together_read_each_file_once():
    one, _ = run([EXAMPLES / "acme-corp.yaml", EXAMPLES / "acme"], page_size=500)
    keys = entity_keys(one)
    assert len(keys) == len(set(keys)) == 27  # 2 Locations, 8 Groups, 17 Users, as in acme/


def test_broken_documents_are_rejected_on_their_page_and_neighbours_still_arrive():
    one_pass, _ = run([DATA / "bad-documents.yaml"], page_size=100)
    paged, _ = run([DATA / "bad-documents.yaml"], page_size=3)
    assert len(paged) == 3
    assert entity_keys(paged) == entity_keys(one_pass)
    assert rejection_keys(paged) == rejection_keys(one_pass)
    # YAML-level failures are page rejections; the rest travel as entities for process_entity.
    assert [rule for *_, rule in rejection_keys(paged)] == ["yamlSyntax", "maxYamlNodes", "unsafeTag"]
    assert [index for _, index in entity_keys(paged)] == [0, 2, 5, 6, 8]


def test_location_cycle_is_reported_once_across_pages():
    for page_size in (1, 2, 100):
        pages, cursor = run([DATA / "cycle" / "root.yaml"], page_size=page_size)
        rules = [rule for *_, rule in rejection_keys(pages)]
        assert sorted(rules) == ["locationCycle", "locationTarget"], page_size
        assert [raw.entity["metadata"]["name"] for page in pages for raw in page.entities] == [
            "cycle-root",
            "cycle-middle",
            "cycle-leaf",
        ]
        assert cursor["stats"]["remote_targets"] == 1


def test_a_file_deleted_between_pages_does_not_end_the_cycle_early(tmp_path):
    for name in "abcd":
        (tmp_path / f"{name}.yaml").write_text(COMPONENT.format(name=name))
    provider = DescriptorFileProvider("files", [tmp_path], page_size=1)
    first = provider.next(None)
    assert first.cursor["file"] == "b.yaml"
    (tmp_path / "b.yaml").unlink()
    rest, cursor = [], first.cursor
    while True:
        page = provider.next(cursor)
        rest += [raw.entity["metadata"]["name"] for raw in page.entities]
        cursor = page.cursor
        if page.done:
            break
    assert rest == ["c", "d"]


def test_done_cursor_gives_an_empty_final_page():
    _, cursor = run([DATA / "cycle" / "leaf.yaml"], page_size=10)
    page = DescriptorFileProvider("files", [DATA / "cycle" / "leaf.yaml"]).next(cursor)
    assert (page.entities, page.done, page.total) == ([], True, None)


def test_missing_root_fails_the_page_instead_of_looking_empty(tmp_path):
    provider = DescriptorFileProvider("files", [tmp_path / "not-mounted"])
    with pytest.raises(ProviderError):
        provider.next(None)


def test_foreign_cursor_is_refused():
    with pytest.raises(ValueError):
        DescriptorFileProvider("files", EXAMPLE_ROOTS).next({"next": "opaque"})


def test_limits_can_come_from_provider_config_as_a_mapping():
    provider = DescriptorFileProvider("files", [DATA / "bad-documents.yaml"], limits={"max_yaml_nodes": 50})
    page = provider.next(None)
    assert provider.limits.max_yaml_nodes == 50
    assert "maxYamlNodes" in [r.rule for r in page.rejections]
    with pytest.raises(TypeError):
        DescriptorFileProvider("files", [DATA], limits={"max_bogus": 1})
