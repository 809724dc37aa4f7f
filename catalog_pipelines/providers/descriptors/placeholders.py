"""`$text` / `$json` / `$yaml` placeholders, resolved against the descriptor file, never fetched.

Backstage's `PlaceholderProcessor` replaces any mapping that has exactly one key, `$<resolver>`,
with a string value, by the content that value points at. Mappings with an unknown `$` key
(`$ref` in an embedded JSON schema) or a non-string value are left alone, and resolved content is
not scanned for further placeholders; both rules are kept here.

The difference is on purpose: remote targets (`https://…`, any `scheme:`) are **never fetched**.
The field gets a readable stand-in string and the entity lists what is missing in the
`catalog-pipelines.io/unresolved-placeholders` annotation (a JSON array), so the entity still
ingests and the gap is visible. Local targets are read relative to the descriptor file and must
stay inside the provider's root directory (a descriptor cannot pull in `/etc/passwd` or a file
from a sibling checkout); a missing, unreadable, oversized or unparsable local target rejects the
entity with the reason, as Backstage does.

Placeholders amplify: 300 components with `$text: ./big.txt` turn 1 MB of input into a 300 MB
catalog. A `PlaceholderBudget` caps the bytes placeholders pull in per descriptor file and per
chunk (`Limits.max_placeholder_bytes_per_file`, `…_per_chunk`); an entity whose placeholders
would go over rejects with the cap named, and the entities before it keep what they used. A
target used many times in one file is read once (a per-file cache). Targets are read with
`safefile.read_regular_file`: a FIFO or device behind a `$text` is refused, never waited on.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from catalog_pipelines.model.limits import DEFAULT_LIMITS, Limits
from catalog_pipelines.providers.descriptors.safefile import FileProblem, read_regular_file
from catalog_pipelines.providers.descriptors.yamlsafe import YamlDocumentError, parse_document, split_documents

UNRESOLVED_ANNOTATION = "catalog-pipelines.io/unresolved-placeholders"
RESOLVERS = ("text", "json", "yaml")

# `https:`, `git+ssh:`, `file:` … A one-letter "scheme" is a Windows drive, not a URL.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+:")


class PlaceholderError(ValueError):
    """A local placeholder target could not be used; `field` is where the placeholder sits."""

    def __init__(self, field: str, reason: str, rule: str, target: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.rule = rule
        self.target = target


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A placeholder left as a stand-in string because its target is remote."""

    field: str
    placeholder: str  # "$text"
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "placeholder": self.placeholder, "target": self.target}


def is_remote(target: str) -> bool:
    """True for URLs (`https://…`, `url:…`, `file://…` too: we only read plain relative paths)."""
    return _SCHEME.match(target) is not None


def resolve_local(target: str, relative_to: Path, base_dir: Path) -> tuple[Path | None, str | None]:
    """Resolve a local path written in a descriptor to a real path inside `base_dir`.

    Returns `(path, None)`, or `(None, reason)` when the path leaves `base_dir` (also through a
    symlink). The path may not exist; callers decide what a missing file means.
    """
    candidate = Path(os.path.normpath(relative_to / target))
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(base_dir):
        return None, f"it resolves to {real}, outside the provider root {base_dir}"
    return real, None


class PlaceholderBudget:
    """Bytes that placeholders may still pull in, per descriptor file and per chunk.

    One budget lives for a chunk (the provider makes a new one in `around()`); `start_file`
    begins the per-file count of each descriptor file (with what earlier pages of the same file
    used, which the provider's cursor carries). Bytes count each time a target is substituted,
    because that is what the stored catalog grows by.
    """

    __slots__ = ("cache", "chunk_used", "file_used", "limits")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.chunk_used = 0
        self.file_used = 0
        self.cache: dict[Path, bytes] = {}

    def start_file(self, used_before: int = 0) -> None:
        self.file_used = used_before
        self.cache = {}

    def over(self, pending: int) -> tuple[str, str] | None:
        """`(reason, rule)` when `pending` more bytes would exceed a cap, else None."""
        file_cap, chunk_cap = self.limits.max_placeholder_bytes_per_file, self.limits.max_placeholder_bytes_per_chunk
        if self.file_used + pending > file_cap:
            return (
                f"placeholders in this file would pull in {self.file_used + pending:,} bytes, over the limit of "
                f"{file_cap:,} bytes per descriptor file (max_placeholder_bytes_per_file)",
                "maxPlaceholderBytesPerFile",
            )
        if self.chunk_used + pending > chunk_cap:
            return (
                f"placeholders in this chunk would pull in {self.chunk_used + pending:,} bytes, over the limit of "
                f"{chunk_cap:,} bytes per chunk (max_placeholder_bytes_per_chunk)",
                "maxPlaceholderBytesPerChunk",
            )
        return None

    def spend(self, used: int) -> None:
        self.file_used += used
        self.chunk_used += used


def resolve_placeholders(
    entity: dict[str, Any],
    *,
    file_path: Path,
    base_dir: Path,
    limits: Limits | None = None,
    budget: PlaceholderBudget | None = None,
) -> tuple[dict[str, Any], list[Unresolved]]:
    """Substitute the placeholders of one entity; returns the new entity and what stayed unresolved.

    The input is not mutated; containers are copied only along the paths that changed. Raises
    `PlaceholderError` for an unusable local target or when the `budget` (a fresh one per call
    when not given) would be exceeded; only a successful entity spends from the budget.
    """
    limits = limits or DEFAULT_LIMITS
    resolver = _Resolver(file_path.parent, base_dir, limits, budget or PlaceholderBudget(limits))
    result = resolver.walk(entity, "")
    resolver.budget.spend(resolver.used)
    if result is _UNCHANGED:
        result = entity
    if resolver.unresolved:
        result = _annotate(result, resolver.unresolved)
    return result, resolver.unresolved


_UNCHANGED: Any = object()


class _Resolver:
    def __init__(self, directory: Path, base_dir: Path, limits: Limits, budget: PlaceholderBudget) -> None:
        self.directory = directory
        self.base_dir = base_dir
        self.limits = limits
        self.budget = budget
        self.used = 0  # bytes this entity's placeholders pulled in so far
        self.unresolved: list[Unresolved] = []

    def walk(self, value: Any, path: str) -> Any:
        """The replacement for `value`, or `_UNCHANGED` (so untouched subtrees are not copied)."""
        if type(value) is dict:
            if len(value) == 1:
                ((key, argument),) = value.items()
                if type(key) is str and key.startswith("$"):
                    if key[1:] in RESOLVERS and type(argument) is str:
                        return self.resolve(key, argument, path)
                    return _UNCHANGED
            changed: dict[str, Any] | None = None
            for key, item in value.items():
                new = self.walk(item, f"{path}.{key}" if path else str(key))
                if new is not _UNCHANGED:
                    if changed is None:
                        changed = dict(value)
                    changed[key] = new
            return _UNCHANGED if changed is None else changed
        if type(value) is list:
            changed_list: list[Any] | None = None
            for index, item in enumerate(value):
                new = self.walk(item, f"{path}.{index}")
                if new is not _UNCHANGED:
                    if changed_list is None:
                        changed_list = list(value)
                    changed_list[index] = new
            return _UNCHANGED if changed_list is None else changed_list
        return _UNCHANGED

    def resolve(self, key: str, target: str, field: str) -> Any:
        if is_remote(target):
            self.unresolved.append(Unresolved(field, key, target))
            return f"(unresolved {key} placeholder: {target}; remote content is not fetched)"
        path, problem = resolve_local(target, self.directory, self.base_dir)
        if path is None:
            raise PlaceholderError(
                field,
                f"{key} placeholder target {target!r} is not allowed: {problem}",
                "placeholderOutsideRoot",
                target,
            )
        content = self.budget.cache.get(path)
        if content is None:
            try:
                content = read_regular_file(path, self.limits.max_placeholder_bytes, f"{key} placeholder target {target!r}")
            except FileNotFoundError:
                raise PlaceholderError(
                    field, f"{key} placeholder target {target!r} does not exist ({path})", "placeholderNotFound", target
                ) from None
            except FileProblem as problem:
                rule = {"tooLarge": "maxPlaceholderBytes", "notRegularFile": "placeholderNotRegularFile"}.get(
                    problem.rule, "placeholderUnreadable"
                )
                raise PlaceholderError(field, problem.reason, rule, target) from None
        over = self.budget.over(self.used + len(content))
        if over is not None:
            reason, rule = over
            raise PlaceholderError(field, f"{key} placeholder target {target!r} is not substituted: {reason}", rule, target)
        self.budget.cache[path] = content
        self.used += len(content)
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PlaceholderError(
                field, f"{key} placeholder target {target!r} is not UTF-8 text", "placeholderEncoding", target
            ) from None
        if key == "$text":
            return text
        if key == "$json":
            try:
                return orjson.loads(content)
            except orjson.JSONDecodeError as error:
                raise PlaceholderError(
                    field, f"$json placeholder target {target!r} is not valid JSON: {error}", "placeholderParse", target
                ) from None
        documents = split_documents(text)
        if len(documents) != 1:
            raise PlaceholderError(
                field,
                f"$yaml placeholder target {target!r} must hold exactly one YAML document, found {len(documents)}",
                "placeholderParse",
                target,
            )
        try:
            return parse_document(documents[0], self.limits)
        except YamlDocumentError as error:
            raise PlaceholderError(
                field, f"$yaml placeholder target {target!r}: {error.reason}", "placeholderParse", target
            ) from None


def _annotate(entity: dict[str, Any], unresolved: list[Unresolved]) -> dict[str, Any]:
    metadata = entity.get("metadata")
    if type(metadata) is not dict:
        return entity  # not an entity validation will accept anyway; nothing to annotate
    annotations = metadata.get("annotations")
    annotations = dict(annotations) if type(annotations) is dict else {}
    annotations[UNRESOLVED_ANNOTATION] = json.dumps([item.to_dict() for item in unresolved], separators=(",", ":"))
    return {**entity, "metadata": {**metadata, "annotations": annotations}}
