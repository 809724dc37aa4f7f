"""Reading Backstage descriptor files: documents, placeholders, and the Location graph.

Two layers:

- `load_file` reads one file: it splits it into documents (`yamlsafe`), parses each within the
  limits, resolves placeholders, and returns a `RawEntity` or a `Rejection` per document, plus
  the targets of the file's Location entities. A file in which no document has `apiVersion` or
  `kind` (an OpenAPI spec that a `$text` placeholder points at, say) is marked as not a
  descriptor, so callers can skip and count it instead of rejecting it.
- `DescriptorWalk` puts the files of several roots in one deterministic order: a directory root
  contributes its `**/*.yaml` and `**/*.yml` files sorted by path; a root descriptor file
  contributes itself and then, depth first, whatever its Location entities point at, in the
  order written. Every file appears at most once (a second path to it is ignored), a target that
  leads back to a file on the current chain is reported as a Location cycle, and Location
  entities themselves are entities too (Backstage stores them).

`iter_descriptors` is the one-pass convenience on top of both. The paging provider
(`providers/files.py`) drives `DescriptorWalk` itself, because it must stop and resume mid-walk.

Descriptor roots follow Locations; directory roots do not, because the walk already lists every
file under them. Local paths must stay inside the root's directory (the directory itself for a
directory root, the file's directory for a root file). Locations only point at local files here:
a remote target (`https://…`) is counted, not followed, and not an error.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog_pipelines.model.entity import RawEntity, Rejection
from catalog_pipelines.model.limits import DEFAULT_LIMITS, Limits
from catalog_pipelines.model.placeholders import PlaceholderError, is_remote, resolve_local, resolve_placeholders
from catalog_pipelines.model.process import describe_ref, rejection_message
from catalog_pipelines.model.validation import Issue, truncate
from catalog_pipelines.model.yamlsafe import DocumentText, YamlDocumentError, parse_document, split_documents

YAML_SUFFIXES = (".yaml", ".yml")
_GLOB_CHARS = frozenset("*?[")


def file_location(path: Path) -> str:
    """The location string of a descriptor file, Backstage's `file:<absolute path>` form."""
    return f"file:{path.as_posix()}"


# --- one file ----------------------------------------------------------------------------------


@dataclass(slots=True)
class TargetOutcome:
    """What one Location target led to: local files, a remote target, or a problem to report."""

    paths: list[Path] = field(default_factory=list)
    remote: str | None = None
    problem: Rejection | None = None
    # Where the target was written, so a later cycle report can point at it.
    location: str = ""
    doc_index: int | None = None
    field: str = ""
    ref: str | None = None
    target: str = ""


@dataclass(slots=True)
class LoadedFile:
    """The documents of one file, from `first_doc` on, as entities or rejections.

    `items` holds `(document index, item)` pairs in document order; a problem with the whole file
    (unreadable, too large, not UTF-8) is one rejection at index 0 with `doc_index` None.
    `targets` covers the Location entities of *all* documents of the file, also those before
    `first_doc`, because the walk needs them to continue after the file. `is_descriptor` is False
    when every document parsed and none has `apiVersion` or `kind` (then `items` is empty); a
    document that does not parse counts as a descriptor, so that its error is reported.
    """

    path: Path
    location: str
    items: list[tuple[int, RawEntity | Rejection]]
    targets: list[TargetOutcome]
    is_descriptor: bool
    has_locations: bool
    document_count: int


def load_file(
    path: Path,
    *,
    base_dir: Path,
    limits: Limits | None = None,
    first_doc: int = 0,
    locations_only: bool = False,
) -> LoadedFile:
    """Read one descriptor file (see `LoadedFile`).

    `first_doc` skips the documents before it without parsing them (except Location documents,
    for their targets): that is how a page that ends in the middle of a file resumes cheaply.
    `locations_only` parses nothing but Location documents and returns no items.
    """
    limits = limits or DEFAULT_LIMITS
    location = file_location(path)
    problem = _read_problem(path, limits)
    text: str | None = None
    if problem is None:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            problem = f"the file is not UTF-8 text ({error.reason} at byte {error.start})", "encoding"
        except OSError as error:
            problem = f"the file cannot be read: {error.strerror or error}", "unreadable"
    if text is None:
        reason, rule = problem  # type: ignore[misc]
        rejection = Rejection(location, f"{location}: {reason} (rule: {rule})", None, None, "(file)", rule, None)
        return LoadedFile(path, location, [(0, rejection)], [], True, False, 0)

    documents = split_documents(text)
    items: list[tuple[int, RawEntity | Rejection]] = []
    targets: list[TargetOutcome] = []
    is_descriptor = first_doc > 0  # an earlier page already found entities in this file
    has_locations = False
    for document in documents:
        before_first = document.index < first_doc
        if (before_first or locations_only) and "Location" not in document.text:
            continue  # cannot be a Location entity: not worth parsing
        try:
            data = parse_document(document, limits)
        except YamlDocumentError as error:
            is_descriptor = True
            if not (before_first or locations_only):
                items.append((document.index, _yaml_rejection(location, document, error)))
            continue
        if type(data) is dict and ("apiVersion" in data or "kind" in data):
            is_descriptor = True
            if data.get("kind") == "Location":
                has_locations = True
                targets.extend(_location_targets(data, path, base_dir, location, document.index))
        if before_first or locations_only or data is None:
            # An empty document (a trailing `---`) is not an entity, as in Backstage.
            continue
        # No `$` anywhere in the text: no placeholder to look for in the parsed data.
        placeholders = "$" in document.text
        items.append(
            (document.index, _entity_item(data, path, base_dir, location, document.index, limits, placeholders))
        )
    if not is_descriptor:
        items = []
    return LoadedFile(path, location, items, targets, is_descriptor, has_locations, len(documents))


def _read_problem(path: Path, limits: Limits) -> tuple[str, str] | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "the file does not exist", "notFound"
    except OSError as error:
        return f"the file cannot be read: {error.strerror or error}", "unreadable"
    if size > limits.max_file_bytes:
        return f"the file is {size:,} bytes, over the limit of {limits.max_file_bytes:,} bytes per file", "maxFileBytes"
    return None


def _yaml_rejection(location: str, document: DocumentText, error: YamlDocumentError) -> Rejection:
    found = f'; found "{error.value}"' if error.value else ""
    message = f"{location}, document {document.index}: {error.reason}{found} (rule: {error.rule})"
    # No entity and no field exist yet: the whole document is what is rejected.
    return Rejection(location, message, document.index, None, "(document)", error.rule, error.value)


def _entity_item(
    data: Any, path: Path, base_dir: Path, location: str, doc_index: int, limits: Limits, placeholders: bool
) -> RawEntity | Rejection:
    if type(data) is not dict or not placeholders:
        # A non-mapping is still an entity as far as the contract goes: validation rejects it.
        return RawEntity(data, location, doc_index)
    try:
        entity, _ = resolve_placeholders(data, file_path=path, base_dir=base_dir, limits=limits)
    except PlaceholderError as error:
        ref = describe_ref(data)
        issue = Issue(
            error.field, error.rule, truncate(error.target), f"{error.field}: {error.reason} (rule: {error.rule})"
        )
        return Rejection(
            location,
            rejection_message(location, doc_index, ref, [issue]),
            doc_index,
            ref,
            error.field,
            error.rule,
            truncate(error.target),
        )
    return RawEntity(entity, location, doc_index)


def _location_targets(entity: dict, path: Path, base_dir: Path, location: str, doc_index: int) -> list[TargetOutcome]:
    spec = entity.get("spec")
    if type(spec) is not dict:
        return []
    written: list[tuple[str, Any]] = []
    if "target" in spec:
        written.append(("spec.target", spec["target"]))
    if type(spec.get("targets")) is list:
        written.extend((f"spec.targets.{i}", target) for i, target in enumerate(spec["targets"]))
    optional = spec.get("presence") == "optional"
    location_type = spec.get("type")
    ref = describe_ref(entity)
    outcomes = []
    for field_path, target in written:
        if type(target) is not str or not target:
            continue  # validation rejects the Location entity itself for this
        outcome = TargetOutcome(location=location, doc_index=doc_index, field=field_path, ref=ref, target=target)
        if is_remote(target) or location_type not in (None, "file", "url"):
            outcome.remote = target
        else:
            _resolve_target(outcome, target, path.parent, base_dir, optional)
        outcomes.append(outcome)
    return outcomes


def _resolve_target(outcome: TargetOutcome, target: str, directory: Path, base_dir: Path, optional: bool) -> None:
    if _GLOB_CHARS.intersection(target):
        # Backstage's file reader accepts globs in file targets; matches come in path order.
        pattern = os.path.normpath(directory / target)
        matches = sorted(Path(match) for match in glob.glob(pattern, recursive=True) if os.path.isfile(match))
        for match in matches:
            real, problem = resolve_local(str(match), directory, base_dir)
            if real is not None:
                outcome.paths.append(real)
        if not outcome.paths and not optional:
            outcome.problem = target_problem(outcome, "locationTarget", f"Location target {target!r} matches no file")
        return
    real, problem = resolve_local(target, directory, base_dir)
    if real is None:
        outcome.problem = target_problem(
            outcome, "outsideRoot", f"Location target {target!r} is not followed: {problem}"
        )
    elif real.is_file():
        outcome.paths.append(real)
    elif not optional:
        state = "is not a file" if real.exists() else "does not exist"
        outcome.problem = target_problem(outcome, "locationTarget", f"Location target {target!r} {state} ({real})")


def target_problem(outcome: TargetOutcome, rule: str, reason: str) -> Rejection:
    """A rejection that points at the Location entity and field where a target was written."""
    issue = Issue(outcome.field, rule, truncate(outcome.target), f"{outcome.field}: {reason} (rule: {rule})")
    return Rejection(
        outcome.location,
        rejection_message(outcome.location, outcome.doc_index, outcome.ref, [issue]),
        outcome.doc_index,
        outcome.ref,
        outcome.field,
        rule,
        truncate(outcome.target),
    )


# --- the walk over roots -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Root:
    """A provider root: a directory to walk, or a descriptor file whose Locations are followed."""

    path: Path
    is_dir: bool
    base_dir: Path

    @classmethod
    def of(cls, path: str | Path) -> Root:
        real = Path(os.path.realpath(path))
        is_dir = real.is_dir()
        return cls(real, is_dir, real if is_dir else real.parent)


@dataclass(frozen=True, slots=True)
class VisitFile:
    """The walk reached a file; `ordinal` counts the files of the walk from 0."""

    root: Root
    path: Path
    ordinal: int
    follows_locations: bool


@dataclass(frozen=True, slots=True)
class WalkProblem:
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    target: str


WalkEvent = VisitFile | WalkProblem | RemoteTarget


class RootMissingError(FileNotFoundError):
    """A configured root does not exist (a config or mount problem, not an empty catalog)."""


def directory_files(directory: Path) -> list[Path]:
    """`**/*.yaml` and `**/*.yml` under a directory, sorted by relative path; `.git` is skipped."""
    found: list[tuple[str, Path]] = []
    for current, dirs, files in os.walk(directory):
        dirs[:] = [name for name in dirs if name != ".git"]
        for name in files:
            if name.endswith(YAML_SUFFIXES):
                full = Path(current, name)
                found.append((full.relative_to(directory).as_posix(), full))
    found.sort()
    return [path for _, path in found]


class DescriptorWalk:
    """The deterministic file order of a set of roots (see the module notes).

    The walk needs the Location targets of a file after it has yielded it. Whoever consumes the
    events loads the file and hands its targets back with `register` before asking for the next
    event. Files that are only replayed (already processed by an earlier page) are not loaded by
    the consumer; for those the walk re-reads the Location documents itself, but only for files
    listed in `location_files` (the files known to hold Location entities). Every other replayed
    file is a leaf, which is what keeps a resume cheap.
    """

    def __init__(
        self, roots: Iterable[Root], *, limits: Limits | None = None, location_files: Iterable[Path] = ()
    ) -> None:
        self.roots = list(roots)
        self.limits = limits or DEFAULT_LIMITS
        self.location_files = set(location_files)
        self._registered: dict[Path, list[TargetOutcome]] = {}
        self._visited: set[Path] = set()
        self._ordinal = 0

    def register(self, path: Path, targets: list[TargetOutcome]) -> None:
        self._registered[path] = targets

    def events(self) -> Iterator[WalkEvent]:
        for root in self.roots:
            if not root.path.exists():
                raise RootMissingError(f"provider root {root.path} does not exist")
            if root.is_dir:
                for path in directory_files(root.path):
                    real = Path(os.path.realpath(path))
                    if real in self._visited or not real.is_relative_to(root.base_dir):
                        continue
                    self._visited.add(real)
                    yield self._visit(root, real, follows_locations=False)
            elif root.path not in self._visited:
                yield from self._follow(root, root.path, ())

    def _visit(self, root: Root, path: Path, follows_locations: bool) -> VisitFile:
        event = VisitFile(root, path, self._ordinal, follows_locations)
        self._ordinal += 1
        return event

    def _follow(self, root: Root, path: Path, chain: tuple[Path, ...]) -> Iterator[WalkEvent]:
        self._visited.add(path)
        yield self._visit(root, path, follows_locations=True)
        chain = (*chain, path)
        for outcome in self._targets_of(root, path):
            if outcome.problem is not None:
                yield WalkProblem(outcome.problem)
                continue
            if outcome.remote is not None:
                yield RemoteTarget(outcome.remote)
                continue
            for target in outcome.paths:
                if target in chain:
                    cycle = " → ".join(_shown(step, root) for step in (*chain[chain.index(target) :], target))
                    reason = f"Location cycle {cycle}; {_shown(target, root)} is not read again"
                    yield WalkProblem(target_problem(outcome, "locationCycle", reason))
                elif target in self._visited:
                    continue  # reached before by another path: read once per cycle
                elif len(chain) >= self.limits.max_location_depth:
                    depth = self.limits.max_location_depth
                    reason = f"Locations nest deeper than {depth} files; {_shown(target, root)} is not read"
                    yield WalkProblem(target_problem(outcome, "maxLocationDepth", reason))
                else:
                    yield from self._follow(root, target, chain)

    def _targets_of(self, root: Root, path: Path) -> list[TargetOutcome]:
        registered = self._registered.pop(path, None)
        if registered is not None:
            return registered
        if path in self.location_files:
            return load_file(path, base_dir=root.base_dir, limits=self.limits, locations_only=True).targets
        return []


def _shown(path: Path, root: Root) -> str:
    return path.relative_to(root.base_dir).as_posix() if path.is_relative_to(root.base_dir) else str(path)


def iter_descriptors(roots: Iterable[str | Path], *, limits: Limits | None = None) -> Iterator[RawEntity | Rejection]:
    """Every entity and rejection of the given roots in walk order, in one pass.

    Non-descriptor files are skipped silently and remote Location targets are not followed; use
    `DescriptorFileProvider` for paging and for the counts.
    """
    limits = limits or DEFAULT_LIMITS
    walk = DescriptorWalk([Root.of(root) for root in roots], limits=limits)
    for event in walk.events():
        if isinstance(event, VisitFile):
            loaded = load_file(event.path, base_dir=event.root.base_dir, limits=limits)
            if event.follows_locations:
                walk.register(event.path, loaded.targets)
            for _, item in loaded.items:
                yield item
        elif isinstance(event, WalkProblem):
            yield event.rejection
