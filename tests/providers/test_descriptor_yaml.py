"""Safe YAML reading: hostile documents are rejected quickly, in bounded memory, with a reason."""

from __future__ import annotations

import tracemalloc

import pytest

from catalog_pipelines.model import Limits
from catalog_pipelines.providers.descriptors.yamlsafe import YamlDocumentError, parse_document, split_documents

ALIAS_BOMB = "\n".join(
    [
        'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)),
    ]
)


def rejected(text: str, limits: Limits | None = None) -> YamlDocumentError:
    with pytest.raises(YamlDocumentError) as raised:
        parse_document(text, limits)
    return raised.value


def test_alias_bomb_is_rejected_quickly_and_in_bounded_memory():
    tracemalloc.start()
    error = rejected(ALIAS_BOMB)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert error.rule == "maxYamlNodes" and "alias" in error.reason
    # Expanded, this document is 9**10 (about 3.5 billion) strings; rejected, it costs next to nothing.
    assert peak < 2_000_000


def test_aliases_within_the_node_budget_are_expanded_as_shared_data():
    data = parse_document("base: &b {owner: team-a}\ncopy: *b\n")
    assert data == {"base": {"owner": "team-a"}, "copy": {"owner": "team-a"}}


def test_recursive_alias_is_rejected():
    assert rejected("a: &x [1, *x]\n").rule == "recursiveAlias"


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo pwned']\n",
        "a: !!python/object:collections.OrderedDict {}\n",
        "a: !!python/name:os.system\n",
    ],
)
def test_python_tags_are_refused_not_constructed(text):
    error = rejected(text)
    assert error.rule == "unsafeTag" and "!!python/" in error.reason and error.value.startswith("!!python/")


@pytest.mark.parametrize(
    "text", ["a: !!binary aGk=\n", "a: !!timestamp 2020-01-01\n", "a: !!set {x}\n", "a: !custom x\n"]
)
def test_tags_outside_json_data_are_refused(text):
    assert rejected(text).rule == "unsupportedTag"


def test_scalars_follow_the_yaml_1_2_core_schema_like_backstage():
    data = parse_document(
        "a: yes\nb: on\nc: 2024-01-01\nd: 0o17\ne: 0x1F\nf: 012\ng: 1.5e3\nh: ~\ni: True\nj: '7'\n200: ok\n"
    )
    assert data == {
        "a": "yes", "b": "on", "c": "2024-01-01", "d": 15, "e": 31, "f": 12, "g": 1500.0,
        "h": None, "i": True, "j": "7", "200": "ok",
    }  # fmt: skip


def test_duplicate_keys_are_an_error_not_last_one_wins():
    error = rejected("name: a\nname: b\n")
    assert error.rule == "duplicateKey" and error.line == 2


def test_complex_keys_are_refused():
    assert rejected("? [a, b]\n: value\n").rule == "complexKey"


def test_malformed_yaml_reports_the_line_in_the_file():
    [first, second] = split_documents("a: 1\n---\nb: 1\nc: d: e\n")
    assert parse_document(first) == {"a": 1}
    with pytest.raises(YamlDocumentError) as raised:
        parse_document(second)
    error = raised.value
    assert error.rule == "yamlSyntax" and error.line == 4 and "line 4, column 5" in error.reason
    assert error.value == "c: d: e"


def test_oversized_document_is_rejected_without_parsing(monkeypatch):
    from catalog_pipelines.providers.descriptors import yamlsafe

    document = "apiVersion: x\nmetadata:\n  annotations:\n    big: '" + "x" * 10_000_000 + "'\n"
    monkeypatch.setattr(yamlsafe, "_Parser", lambda text: pytest.fail("the oversized document was parsed"))
    error = rejected(document)
    assert error.rule == "maxDocumentBytes" and "10,000,0" in error.reason


def test_document_size_limit_counts_utf8_bytes():
    text = "a: '" + "é" * 600 + "'\n"  # 600 characters, 1,200 bytes
    assert rejected(text, Limits(max_document_bytes=1000)).rule == "maxDocumentBytes"
    assert parse_document(text, Limits(max_document_bytes=2000)) == {"a": "é" * 600}


def test_deep_nesting_is_rejected():
    assert rejected("a: " + "[" * 150 + "]" * 150 + "\n").rule == "maxYamlDepth"


def test_split_keeps_document_indexes_lines_and_directives():
    text = "# leading comment only\n%YAML 1.2\n---\na: 1\n...\n---\nb: 2\n---\n--- c\n"
    documents = split_documents(text)
    assert [(d.index, d.first_line) for d in documents] == [(0, 1), (1, 6), (2, 8), (3, 9)]
    assert [parse_document(d) for d in documents] == [{"a": 1}, {"b": 2}, None, "c"]


def test_markers_inside_content_do_not_split():
    text = "a: |\n  ---not a marker\n  text\nb: '--- quoted'\n"
    [document] = split_documents(text)
    assert parse_document(document) == {"a": "---not a marker\ntext\n", "b": "--- quoted"}


def test_byte_order_mark_and_comment_only_files():
    assert [parse_document(d) for d in split_documents("\ufeffa: 1\n")] == [{"a": 1}]
    assert split_documents("# nothing here\n\n") == []
