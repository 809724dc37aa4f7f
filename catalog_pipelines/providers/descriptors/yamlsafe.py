"""Safe, bounded YAML reading for descriptor files from untrusted repositories.

What "safe" means here, and why each part exists:

- **One document at a time.** A file is split into documents on `---` / `...` marker lines
  (which YAML forbids inside content) before anything is parsed, so a malformed document, or one
  over the size limit, is rejected on its own and the other documents of the file still load.
  The split is also what makes an oversized document cheap to reject: its bytes are counted,
  never parsed.
- **JSON data only.** Scalars resolve with the YAML 1.2 core schema, as Backstage's `yaml`
  library does (`yes`, `on` and `2024-01-01` stay strings); only `str`, `int`, `float`, `bool`,
  `null`, sequences and mappings may be constructed. Any other tag, in particular
  `!!python/object…`, is refused with a reason, never constructed.
- **Bounded expansion.** Before constructing, the composed node graph is measured as if every
  alias were expanded (memoised per node, so the measurement is linear in the graph, not in the
  expansion). An alias bomb ("billion laughs") is tiny on disk and composes into a few dozen
  nodes, but its expanded size is astronomically over `Limits.max_yaml_nodes`, so it is rejected
  in microseconds and without building anything. Recursive aliases are refused too.
- **Duplicate keys are errors**, as in Backstage's parser, rather than silently "last one wins".

Parsing uses libyaml's C parser (`yaml._yaml.CParser`), which also caps nesting at 1,000 levels
on its own; the construction here is our own small function, not PyYAML's constructors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

import yaml
from yaml._yaml import CParser
from yaml.nodes import Node, ScalarNode, SequenceNode

from catalog_pipelines.model.limits import DEFAULT_LIMITS, Limits

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_STANDARD_PREFIX = "tag:yaml.org,2002:"

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_CORE_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_CORE_TRUE = frozenset({"true", "True", "TRUE"})
_CORE_FALSE = frozenset({"false", "False", "FALSE"})
_CORE_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_NUMBER_START = frozenset("0123456789+-.")
_INT64 = 1 << 63

# A document starts at a `---` line and ends before the next `---` or at a `...` line. Both
# markers only count at the start of a line and when followed by whitespace or the line's end.
_MARKER = re.compile(r"^(---|\.\.\.)(?=[ \t]|\r?\n|\Z)", re.MULTILINE)
# The first character of a line that is neither blank nor a comment.
_FIRST_MEANINGFUL = re.compile(r"^[ \t]*([^\s#])", re.MULTILINE)


class YamlDocumentError(ValueError):
    """A document that cannot be accepted; `rule` names the limit or check, `line` is 1-based."""

    def __init__(self, reason: str, rule: str, line: int | None = None, value: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule
        self.line = line
        self.value = value  # the offending text (a source line, a tag, a key), already short


@dataclass(slots=True)
class DocumentText:
    """The source text of one document of a file, before parsing.

    `index` counts the documents of the file from 0, in the order a YAML parser would see them;
    `first_line` is the 1-based line in the file where this text starts (for error messages);
    `offset` is the character position in the file's text (after a byte-order mark) where this
    text starts, so a later page can start cutting the file there (`iter_documents(start=…)`).
    """

    index: int
    text: str
    first_line: int
    offset: int = 0


def split_documents(text: str, limit: int | None = None) -> list[DocumentText]:
    """Cut a YAML stream into its documents without parsing any of them.

    Text before the first marker is a document only if it has content (comments and blank lines
    are not documents); directive lines (`%YAML`) belong to the document that follows them. An
    explicit marker with nothing after it is an (empty) document, as in YAML.

    With `limit`, at most that many documents are cut out and the rest of the text is not looked
    at: a file of 4 million `---` lines costs what its first `limit` documents cost.
    """
    documents = iter_documents(text)
    if limit is None:
        return list(documents)
    return [document for document, _ in zip(documents, range(limit))]


def iter_documents(text: str, *, start: int = 0, first_index: int = 0, first_line: int = 1) -> Iterator[DocumentText]:
    """`split_documents` lazily, optionally from the `offset`, `index` and `first_line` of a
    document found before (the text must be the same): nothing before `start` is looked at."""
    if text.startswith("\ufeff"):
        text = text[1:]
    index = first_index
    line, position = first_line, start
    pending_directives, pending_line, pending_offset = "", 0, 0
    for begin, end, opened in _pieces(text, start):
        line += text.count("\n", position, begin)
        position = begin
        chunk = text[begin:end]
        kind = _content_kind(chunk)
        if kind == "directives" and not opened:
            if not pending_directives:
                pending_line, pending_offset = line, begin
            pending_directives += chunk
            continue
        if kind == "empty" and not opened:
            continue
        doc_line, doc_offset = line, begin
        if pending_directives:
            chunk, doc_line, doc_offset = pending_directives + chunk, pending_line, pending_offset
            pending_directives = ""
        yield DocumentText(index, chunk, doc_line, doc_offset)
        index += 1


def _pieces(text: str, start: int = 0) -> Iterator[tuple[int, int, bool]]:
    """`(start, end, opened by a --- marker)` of the text between marker lines, in order."""
    explicit = False
    for position, marker in _markers(text, start):
        yield start, position, explicit
        if marker == "---":
            start, explicit = position, True
        else:
            newline = text.find("\n", position + 3)
            start, explicit = (len(text) if newline == -1 else newline + 1), False
    yield start, len(text), explicit


def _markers(text: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """Positions of the `---` and `...` marker lines, in order, found lazily.

    `str.find` for newline-plus-marker runs at memory speed; a `^`-anchored multiline regex would
    test every character, which is what makes a 10 MB document slow to split. The two markers are
    searched separately and merged, so only the next position of each is ever held.
    """
    streams = [_marker_positions(text, "---", start), _marker_positions(text, "...", start)]
    heads = [next(stream, None) for stream in streams]
    while True:
        candidates = [(head, i) for i, head in enumerate(heads) if head is not None]
        if not candidates:
            return
        head, i = min(candidates)
        yield head, ("---", "...")[i]
        heads[i] = next(streams[i], None)


def _marker_positions(text: str, marker: str, start: int) -> Iterator[int]:
    # `start` is always the start of a line (0, a marker line, or just after a `...` line).
    if text.startswith(marker, start) and _MARKER.match(text, start):
        yield start
    needle = "\n" + marker
    position = text.find(needle, start)
    while position != -1:
        if _MARKER.match(text, position + 1):
            yield position + 1
        position = text.find(needle, position + 1)


def _content_kind(chunk: str) -> str:
    """`content`, `directives` (only `%` lines, comments, blanks) or `empty`."""
    # A regex search, not a split into lines: a chunk may be a 10 MB document, and only its
    # first meaningful line matters.
    kind = "empty"
    position = 0
    while (match := _FIRST_MEANINGFUL.search(chunk, position)) is not None:
        if match.group(1) != "%" or match.start(1) != match.start():
            return "content"
        kind = "directives"
        newline = chunk.find("\n", match.end())
        if newline == -1:
            break
        position = newline + 1
    return kind


class _Parser(CParser):
    """libyaml's composer with YAML 1.2 core-schema tag resolution and no path resolvers."""

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: str | None, implicit: Any) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                if value in _CORE_NULL:
                    return _NULL
                if value in _CORE_TRUE or value in _CORE_FALSE:
                    return _BOOL
                if value[0] in _NUMBER_START:  # type: ignore[index]
                    if _CORE_INT.fullmatch(value):  # type: ignore[arg-type]
                        return _INT
                    if _CORE_FLOAT.fullmatch(value):  # type: ignore[arg-type]
                        return _FLOAT
            return _STR
        return _SEQ if kind is SequenceNode else _MAP


def parse_document(document: DocumentText | str, limits: Limits | None = None) -> Any:
    """Parse one document's text into JSON-compatible data (None for an empty document).

    Raises `YamlDocumentError` with a reason for malformed YAML, documents over the size, node or
    depth limits, recursive aliases, disallowed tags, duplicate or complex keys.
    """
    limits = limits or DEFAULT_LIMITS
    if isinstance(document, str):
        document = DocumentText(0, document, 1)
    size = len(document.text.encode("utf-8")) if len(document.text) * 4 > limits.max_document_bytes else 0
    if size > limits.max_document_bytes:
        raise YamlDocumentError(
            f"the document is {size:,} bytes, over the limit of {limits.max_document_bytes:,} bytes per document "
            f"(starting at line {document.first_line})",
            "maxDocumentBytes",
            document.first_line,
            f"{size} bytes",
        )
    parser = _Parser(document.text)
    try:
        node = parser.get_single_node()
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, document) from None
    except yaml.YAMLError as error:
        raise YamlDocumentError(f"invalid YAML: {error}", "yamlSyntax", document.first_line) from None
    finally:
        parser.dispose()
    if node is None:
        return None
    constructor = _Constructor(document.first_line, limits.max_yaml_depth)
    data = constructor.construct(node, 0)
    if constructor.aliased:
        # Building shared data was cheap, but whoever walks or serialises it later pays for the
        # full expansion: measure that before letting the document through.
        _measure(node, limits, document.first_line)
    return data


def _syntax_error(error: yaml.MarkedYAMLError, document: DocumentText) -> YamlDocumentError:
    mark = error.problem_mark or error.context_mark
    line = document.first_line + mark.line if mark is not None else document.first_line
    where = f" at line {line}, column {mark.column + 1}" if mark is not None else ""
    problem = error.problem or "syntax error"
    context = f" ({error.context})" if error.context else ""
    source_line = None
    if mark is not None:
        lines = document.text.splitlines()
        if mark.line < len(lines):
            source_line = lines[mark.line].strip()[:80]
    return YamlDocumentError(f"invalid YAML: {problem}{context}{where}", "yamlSyntax", line, source_line)


def _measure(root: Node, limits: Limits, first_line: int) -> None:
    """Refuse documents whose alias-expanded size or depth exceed the limits (see module notes)."""
    max_nodes, max_depth = limits.max_yaml_nodes, limits.max_yaml_depth
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    open_nodes: set[int] = set()

    def visit(node: Node, depth: int) -> tuple[int, int]:
        key = id(node)
        known = measured.get(key)
        if known is not None:
            if depth + known[1] > max_depth:
                raise _too_deep(max_depth, node, first_line)
            return known
        if depth > max_depth:
            raise _too_deep(max_depth, node, first_line)
        if type(node) is ScalarNode:
            measured[key] = (1, 0)
            return 1, 0
        if key in open_nodes:
            line = first_line + node.start_mark.line
            raise YamlDocumentError(
                f"recursive alias at line {line}: an anchor refers to itself", "recursiveAlias", line
            )
        open_nodes.add(key)
        size, height = 1, 0
        children = node.value if type(node) is SequenceNode else (item for pair in node.value for item in pair)
        for child in children:
            child_size, child_height = visit(child, depth + 1)
            size += child_size
            if child_height >= height:
                height = child_height + 1
            if size > max_nodes:
                line = first_line + node.start_mark.line
                raise YamlDocumentError(
                    f"the document expands to more than {max_nodes:,} YAML nodes once every alias is "
                    f'counted as a copy of its anchor (an alias bomb, "billion laughs", looks like this; line {line})',
                    "maxYamlNodes",
                    line,
                    f"more than {max_nodes} nodes",
                )
        open_nodes.discard(key)
        measured[key] = (size, height)
        return size, height

    visit(root, 0)


def _too_deep(max_depth: int, node: Node, first_line: int) -> YamlDocumentError:
    line = first_line + node.start_mark.line
    return YamlDocumentError(
        f"the document nests deeper than {max_depth} levels (line {line})", "maxYamlDepth", line, f"depth > {max_depth}"
    )


def _tag_text(tag: str) -> str:
    return "!!" + tag[len(_STANDARD_PREFIX) :] if tag.startswith(_STANDARD_PREFIX) else tag


class _Constructor:
    """Builds dicts, lists and scalars from nodes; an aliased container becomes a shared object.

    `aliased` records whether any container was reached a second time (through an alias), which
    is when the expansion has to be measured. Nesting is checked here too, so the recursion of
    this builder (and of everything that walks its output later) stays bounded.
    """

    def __init__(self, first_line: int, max_depth: int) -> None:
        self.first_line = first_line
        self.max_depth = max_depth
        self.built: dict[int, Any] = {}
        self.aliased = False

    def construct(self, node: Node, depth: int) -> Any:
        node_type = type(node)
        if node_type is ScalarNode:
            return node.value if node.tag == _STR else self._scalar(node)
        key = id(node)
        built = self.built.get(key)
        if built is not None:
            self.aliased = True
            return built
        if depth > self.max_depth:
            raise _too_deep(self.max_depth, node, self.first_line)
        depth += 1
        if node_type is SequenceNode:
            self._expect(node, _SEQ)
            value: Any = []
            self.built[key] = value
            for child in node.value:
                value.append(self.construct(child, depth))
        else:
            self._expect(node, _MAP)
            value = {}
            self.built[key] = value
            for key_node, value_node in node.value:
                if type(key_node) is not ScalarNode:
                    raise self._error(
                        key_node, "a mapping key must be a plain value, not a sequence or mapping", "complexKey"
                    )
                # Non-string keys (`200:`, `true:`) become their text, as JSON needs string keys.
                name = key_node.value
                if name in value:
                    raise self._error(key_node, f'duplicate mapping key "{name[:80]}"', "duplicateKey", name[:80])
                value[name] = self.construct(value_node, depth)
        return value

    def _expect(self, node: Node, tag: str) -> None:
        if node.tag != tag:
            raise self._tag_error(node)

    def _scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            if text in _CORE_TRUE:
                return True
            if text in _CORE_FALSE:
                return False
            raise self._error(node, f'"{text[:80]}" is not a YAML boolean', "yamlValue", text[:80])
        if tag == _INT:
            try:
                if text.startswith("0o"):
                    number = int(text[2:], 8)
                elif text.startswith("0x"):
                    number = int(text[2:], 16)
                else:
                    number = int(text, 10)
            except ValueError:
                raise self._error(node, f'"{text[:80]}" is not a YAML integer', "yamlValue", text[:80]) from None
            # Beyond 64 bits JSON consumers lose precision anyway; JavaScript makes it a double.
            if -_INT64 <= number < _INT64:
                return number
            try:
                return self._finite(node, float(number))
            except OverflowError:
                return self._finite(node, math.inf)
        if tag == _FLOAT:
            lowered = text.lower().lstrip("+")
            if lowered in (".inf", "-.inf", ".nan"):
                return self._finite(node, {".inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}[lowered])
            try:
                number = float(text)
            except ValueError:
                raise self._error(node, f'"{text[:80]}" is not a YAML number', "yamlValue", text[:80]) from None
            return self._finite(node, number)
        raise self._tag_error(node)

    def _finite(self, node: ScalarNode, number: float) -> float:
        """Refuse NaN and the infinities (also `1e400`, which overflows to one): JSON has no form
        for them, so stored they would silently become null."""
        if math.isfinite(number):
            return number
        text = node.value[:80]
        raise self._error(
            node,
            f'"{text}" is not a finite number; JSON cannot hold NaN or infinity, so it would be stored as null',
            "nonFiniteNumber",
            text,
        )

    def _tag_error(self, node: Node) -> YamlDocumentError:
        shown = _tag_text(node.tag)
        if node.tag.startswith(_STANDARD_PREFIX + "python/"):
            return self._error(
                node,
                f"the Python-specific YAML tag {shown} is not allowed (descriptor files may only hold plain data)",
                "unsafeTag",
                shown[:80],
            )
        return self._error(
            node,
            f"the YAML tag {shown} is not supported (only strings, numbers, booleans, null, sequences and mappings)",
            "unsupportedTag",
            shown[:80],
        )

    def _error(self, node: Node, reason: str, rule: str, value: str | None = None) -> YamlDocumentError:
        line = self.first_line + node.start_mark.line
        return YamlDocumentError(f"{reason} (line {line})", rule, line, value)
