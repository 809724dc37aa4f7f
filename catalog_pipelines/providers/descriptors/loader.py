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

import fnmatch
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog_pipelines.model.entity import RawEntity, Rejection
from catalog_pipelines.model.limits import DEFAULT_LIMITS, Limits
from catalog_pipelines.providers.descriptors.placeholders import (
    PlaceholderBudget,
    PlaceholderError,
    is_remote,
    resolve_local,
    resolve_placeholders,
)
from catalog_pipelines.model.process import describe_ref, rejection_message, shown_ref
from catalog_pipelines.providers.descriptors.safefile import FileProblem, read_regular
from catalog_pipelines.model.validation import Issue, truncate
from catalog_pipelines.providers.descriptors.yamlsafe import DocumentText, YamlDocumentError, iter_documents, parse_document

YAML_SUFFIXES = (".yaml", ".yml")
_GLOB_CHARS = frozenset("*?[")


def file_location(path: Path) -> str:
    """The location string of a descriptor file, Backstage's `file:<absolute path>` form."""
    return f"file:{path.as_posix()}"


# --- one file ----------------------------------------------------------------------------------


@dataclass(slots=True)
class TargetOutcome:
    """What one Location target led to: local files, a remote target, and problems to report.

    A glob that matched more than `Limits.max_glob_matches` files has both: the first matches
    (followed) and the problem that says the rest were not.
    """

    paths: list[Path] = field(default_factory=list)
    remote: str | None = None
    problems: list[Rejection] = field(default_factory=list)
    # Where the target was written, so a later cycle report can point at it.
    location: str = ""
    doc_index: int | None = None
    field: str = ""
    ref: str | None = None
    target: str = ""


@dataclass(frozen=True, slots=True)
class ResumeMark:
    """Where a later page can pick a file up again without re-reading what came before.

    `offset`, `line` and `index` locate a document in the file's text (the one *before* the
    resume document, so that a run of repeated documents is still recognised across the page
    boundary); `size` and `mtime_ns` identify the file version they belong to (a changed file is
    cut from its start again). `placeholder_bytes` is what the file's placeholders had pulled in
    before the resume document.
    """

    offset: int
    line: int
    index: int
    size: int
    mtime_ns: int
    placeholder_bytes: int = 0

    def to_json(self) -> list[int]:
        return [self.offset, self.line, self.index, self.size, self.mtime_ns]

    @classmethod
    def from_json(cls, value: Any, placeholder_bytes: int = 0) -> ResumeMark | None:
        if type(value) is not list or len(value) != 5 or not all(type(item) is int for item in value):
            return None
        return cls(*value, placeholder_bytes=placeholder_bytes)


@dataclass(slots=True)
class LoadedFile:
    """The documents of one file, from `first_doc` on, as entities or rejections.

    `items` holds `(document index, item)` pairs in document order; a problem with the whole file
    (unreadable, too large, not UTF-8, not a regular file) is one rejection at index 0 with
    `doc_index` None. `is_descriptor` is False when every document parsed and none has
    `apiVersion` or `kind` (then `items` is empty); a document that does not parse counts as a
    descriptor, so that its error is reported.

    `next_doc` is None when the file was read to its end; otherwise loading stopped after
    `max_items` items and `next_doc` is where a later page resumes. `targets` and
    `has_locations` cover the Location entities of *all* documents of the file (also those before
    `first_doc`, because the walk needs them to continue after the file) only when `next_doc` is
    None. `marks[n]` says how to resume at `items[n]` (`marks[-1]`: at `next_doc`), see
    `ResumeMark`.
    """

    path: Path
    location: str
    items: list[tuple[int, RawEntity | Rejection]]
    targets: list[TargetOutcome]
    is_descriptor: bool
    has_locations: bool
    next_doc: int | None = None
    marks: list[ResumeMark | None] = field(default_factory=lambda: [None])


def load_file(
    path: Path,
    *,
    base_dir: Path,
    limits: Limits | None = None,
    first_doc: int = 0,
    locations_only: bool = False,
    max_items: int | None = None,
    budget: PlaceholderBudget | None = None,
    resume: ResumeMark | None = None,
    is_root: bool = False,
) -> LoadedFile:
    """Read one descriptor file (see `LoadedFile`).

    `first_doc` skips the documents before it without parsing them (except Location documents,
    for their targets): that is how a page that ends in the middle of a file resumes cheaply.
    With a `resume` mark from the page before (for this version of the file), cutting the file
    into documents starts at the mark instead of the file's start, so a file is cut and parsed
    once per cycle however many pages it spans; the text before the mark is only searched for
    the word `Location`, and cut and parsed for Location targets only when it has it, by the page
    that finishes the file. `max_items` stops once that many items are collected (documents
    after it are neither cut out nor parsed). `locations_only` parses nothing but Location
    documents and returns no items. `budget` bounds the bytes placeholders pull in (a fresh
    per-file budget when not given). `is_root` marks the root descriptor file of a provider,
    where a Location without targets is refused (see `_empty_root_location`).
    """
    limits = limits or DEFAULT_LIMITS
    location = file_location(path)
    problem: tuple[str, str] | None = None
    text: str | None = None
    try:
        data, info = read_regular(path, limits.max_file_bytes)
        text = data.decode("utf-8")
        del data
    except FileNotFoundError:
        problem = "the file does not exist", "notFound"
    except FileProblem as error:
        reason = error.reason
        if error.rule == "tooLarge":
            reason = f"{reason} per file"
        problem = reason, {"tooLarge": "maxFileBytes"}.get(error.rule, error.rule)
    except UnicodeDecodeError as error:
        problem = f"the file is not UTF-8 text ({error.reason} at byte {error.start})", "encoding"
    if text is None:
        reason, rule = problem  # type: ignore[misc]
        rejection = Rejection(location, f"{location}: {reason} (rule: {rule})", None, None, "(file)", rule, None)
        return LoadedFile(path, location, [(0, rejection)], [], True, False)
    if text.startswith("\ufeff"):
        text = text[1:]  # offsets in resume marks count from after the byte-order mark

    size, mtime_ns = info.st_size, info.st_mtime_ns
    if resume is not None and (resume.size, resume.mtime_ns) == (size, mtime_ns) and resume.index <= first_doc:
        documents = iter_documents(text, start=resume.offset, first_index=resume.index, first_line=resume.line)
        prefix_end = resume.offset
    else:
        documents = iter_documents(text)
        prefix_end = 0
    budget = budget or PlaceholderBudget(limits)
    budget.start_file(resume.placeholder_bytes if resume is not None and first_doc else 0)
    cap = limits.max_documents_per_file

    def mark(document: DocumentText) -> ResumeMark:
        return ResumeMark(document.offset, document.first_line, document.index, size, mtime_ns, budget.file_used)

    items: list[tuple[int, RawEntity | Rejection]] = []
    marks: list[ResumeMark | None] = []
    targets: list[TargetOutcome] = []
    is_descriptor = first_doc > 0  # an earlier page already found entities in this file
    has_locations = False
    next_doc: int | None = None
    overflow = False
    previous: DocumentText | None = None
    previous_key = ""
    pending: DocumentText | None = None
    while True:
        if pending is not None:
            document, pending = pending, None
        else:
            document = next(documents, None)
            if document is None:
                break
        if document.index >= cap:
            overflow = True
            break
        skipped = document.index < first_doc or locations_only
        if not skipped and max_items is not None and is_descriptor and len(items) >= max_items:
            next_doc = document.index
            break
        key = _document_key(document)
        if key and key == previous_key and previous is not None:
            # A run of documents identical to the one before: one summary, nothing parsed.
            last, count = document, 1
            while True:
                following = next(documents, None)
                if following is None or following.index >= cap or _document_key(following) != key:
                    pending = following
                    break
                last, count = following, count + 1
            if not skipped:
                marks.append(mark(previous))
                items.append((document.index, _repeat_rejection(location, document.index, last.index, previous.index, count)))
            previous = last
            continue
        here, previous, previous_key = (previous or document), document, key
        if skipped and "Location" not in document.text:
            continue  # cannot be a Location entity: not worth parsing
        try:
            data = parse_document(document, limits)
        except YamlDocumentError as error:
            is_descriptor = True
            if not skipped:
                marks.append(mark(here))
                items.append((document.index, _yaml_rejection(location, document, error)))
            continue
        if type(data) is dict and ("apiVersion" in data or "kind" in data):
            is_descriptor = True
            if data.get("kind") == "Location":
                has_locations = True
                targets.extend(_location_targets(data, path, base_dir, location, document.index, limits))
        if skipped or data is None:
            # An empty document (a trailing `---`) is not an entity, as in Backstage.
            continue
        marks.append(mark(here))
        if is_root and _empty_root_location(data):
            items.append((document.index, _empty_root_location_rejection(location, document.index, data)))
            continue
        # No `$` anywhere in the text: no placeholder to look for in the parsed data.
        placeholders = "$" in document.text
        items.append(
            (document.index, _entity_item(data, path, base_dir, location, document.index, limits, placeholders, budget))
        )
    if overflow and not locations_only and first_doc <= cap:
        marks.append(mark(previous) if previous is not None else None)
        items.append((cap, _overflow_rejection(location, cap)))
    if next_doc is not None:
        marks.append(mark(previous) if previous is not None else None)
        return LoadedFile(path, location, items, [], True, has_locations, next_doc, marks)
    marks.append(None)
    if prefix_end and "Location" in text[:prefix_end]:
        # The documents before the resume mark were emitted by earlier pages; only their
        # Location targets are needed, now that the walk goes on after this file.
        earlier: list[TargetOutcome] = []
        for document in iter_documents(text[:prefix_end]):
            if "Location" not in document.text:
                continue
            try:
                data = parse_document(document, limits)
            except YamlDocumentError:
                continue
            if type(data) is dict and data.get("kind") == "Location":
                has_locations = True
                earlier.extend(_location_targets(data, path, base_dir, location, document.index, limits))
        targets = earlier + targets
    if not is_descriptor:
        items, marks = [], [None]
    return LoadedFile(path, location, items, targets, is_descriptor, has_locations, None, marks)


def _document_key(document: DocumentText) -> str:
    """A document's text without its `---` marker and surrounding blanks, to spot repeats."""
    text = document.text
    return (text[3:] if text.startswith("---") else text).strip()


def _repeat_rejection(location: str, index: int, last: int, first: int, count: int) -> Rejection:
    span = f"documents {index}-{last} ({count:,} documents) are" if count > 1 else f"document {index} is"
    message = (
        f"{location}, document {index}: {span} identical to document {first} before them; a repeated document "
        f"is read once, so the repeats are skipped (rule: repeatedDocument)"
    )
    return Rejection(location, message, index, None, "(document)", "repeatedDocument", f"{count} repeats of document {first}")


def _overflow_rejection(location: str, cap: int) -> Rejection:
    message = (
        f"{location}, document {cap}: the file has more than {cap:,} documents, the limit per file "
        f"(max_documents_per_file); documents {cap} and later are not read (rule: maxDocumentsPerFile)"
    )
    return Rejection(location, message, cap, None, "(file)", "maxDocumentsPerFile", f"more than {cap} documents")


def _empty_root_location(entity: Any) -> bool:
    """A Location in a root file that points nowhere: no `spec.target`, no (or empty) `spec.targets`."""
    if type(entity) is not dict or entity.get("kind") != "Location":
        return False
    spec = entity.get("spec")
    if type(spec) is not dict:
        return False  # validation rejects it with the reason
    return spec.get("target") is None and spec.get("targets") in (None, [])


def _empty_root_location_rejection(location: str, doc_index: int, entity: dict) -> Rejection:
    ref = describe_ref(entity)
    reason = (
        "the root Location has no targets, so this source holds nothing; it is not stored as an entity, "
        "so that an empty source counts as empty (reject_empty_source_collections)"
    )
    issue = Issue("spec.targets", "emptyRootLocation", None, f"spec.targets: {reason} (rule: emptyRootLocation)")
    return Rejection(
        location,
        rejection_message(location, doc_index, shown_ref(entity), [issue]),
        doc_index,
        ref,
        "spec.targets",
        "emptyRootLocation",
        None,
    )


def _yaml_rejection(location: str, document: DocumentText, error: YamlDocumentError) -> Rejection:
    found = f'; found "{error.value}"' if error.value else ""
    message = f"{location}, document {document.index}: {error.reason}{found} (rule: {error.rule})"
    # No entity and no field exist yet: the whole document is what is rejected.
    return Rejection(location, message, document.index, None, "(document)", error.rule, error.value)


def _entity_item(
    data: Any,
    path: Path,
    base_dir: Path,
    location: str,
    doc_index: int,
    limits: Limits,
    placeholders: bool,
    budget: PlaceholderBudget,
) -> RawEntity | Rejection:
    if type(data) is not dict or not placeholders:
        # A non-mapping is still an entity as far as the contract goes: validation rejects it.
        return RawEntity(data, location, doc_index)
    try:
        entity, _ = resolve_placeholders(data, file_path=path, base_dir=base_dir, limits=limits, budget=budget)
    except PlaceholderError as error:
        ref = describe_ref(data)
        issue = Issue(
            error.field, error.rule, truncate(error.target), f"{error.field}: {error.reason} (rule: {error.rule})"
        )
        return Rejection(
            location,
            rejection_message(location, doc_index, shown_ref(data), [issue]),
            doc_index,
            ref,
            error.field,
            error.rule,
            truncate(error.target),
        )
    return RawEntity(entity, location, doc_index)


def _location_targets(
    entity: dict, path: Path, base_dir: Path, location: str, doc_index: int, limits: Limits
) -> list[TargetOutcome]:
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
            _resolve_target(outcome, target, path.parent, base_dir, optional, limits)
        outcomes.append(outcome)
    return outcomes


def _resolve_target(
    outcome: TargetOutcome, target: str, directory: Path, base_dir: Path, optional: bool, limits: Limits
) -> None:
    if _GLOB_CHARS.intersection(target):
        _expand_glob(outcome, target, directory, base_dir, optional, limits)
        return
    real, problem = resolve_local(target, directory, base_dir)
    if real is None:
        outcome.problems.append(
            target_problem(outcome, "outsideRoot", f"Location target {target!r} is not followed: {problem}")
        )
    elif real.is_file():
        outcome.paths.append(real)
    elif not optional:
        state = "is not a file" if real.exists() else "does not exist"
        outcome.problems.append(
            target_problem(outcome, "locationTarget", f"Location target {target!r} {state} ({real})")
        )


def _expand_glob(
    outcome: TargetOutcome, target: str, directory: Path, base_dir: Path, optional: bool, limits: Limits
) -> None:
    """Backstage's file reader accepts globs in file targets; this expands them within the root.

    The pattern is confined *before* anything is listed: a pattern that leaves the root
    (`../../**/*.yaml`) is refused without touching the filesystem, and the listing starts at the
    pattern's fixed prefix, which must be inside the root too. Symlinked directories are never
    descended into (no loop through `d/a -> .`, no escape through a link), matched symlinked
    files must resolve inside the root, and at most `limits.max_glob_matches` files are taken.
    """
    pattern = Path(os.path.normpath(directory / target))
    if not pattern.is_relative_to(base_dir):
        outcome.problems.append(
            target_problem(
                outcome,
                "outsideRoot",
                f"Location target {target!r} is not followed: the pattern reaches outside the provider root "
                f"{base_dir}; globs are only expanded inside the root",
            )
        )
        return
    parts = pattern.relative_to(base_dir).parts
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARS.intersection(part)), len(parts))
    start = Path(os.path.realpath(base_dir.joinpath(*parts[:fixed])))
    cap = limits.max_glob_matches
    matches: list[Path] = []
    escaped: list[str] = []
    if start.is_relative_to(base_dir) and start.is_dir():
        _glob_walk(start, parts[fixed:], matches, cap + 1, set())
    elif not start.is_relative_to(base_dir):
        escaped.append(str(start))
    cut = len(matches) > cap
    for match in sorted(matches[:cap]):
        real = Path(os.path.realpath(match))
        if real.is_relative_to(base_dir):
            if real not in outcome.paths:
                outcome.paths.append(real)
        else:
            escaped.append(f"{match} -> {real}")
    if escaped:
        shown = ", ".join(escaped[:3]) + (f" and {len(escaped) - 3} more" if len(escaped) > 3 else "")
        outcome.problems.append(
            target_problem(
                outcome, "outsideRoot", f"Location target {target!r}: not followed outside the provider root: {shown}"
            )
        )
    if cut:
        outcome.problems.append(
            target_problem(
                outcome,
                "maxGlobMatches",
                f"Location target {target!r} matches more than {cap:,} files, the limit per glob "
                f"(max_glob_matches); only the first {cap:,} are read",
            )
        )
    if not outcome.paths and not escaped and not optional:
        outcome.problems.append(
            target_problem(outcome, "locationTarget", f"Location target {target!r} matches no file")
        )


def _glob_walk(directory: Path, segments: tuple[str, ...], matches: list[Path], limit: int, seen: set[Path]) -> None:
    """Append what `segments` (glob parts, `**` for any number of directories) match below
    `directory`, in sorted order, stopping at `limit` matches. Like `glob`, `*` does not match a
    leading dot; unlike it, symlinked directories are not entered."""
    if len(matches) >= limit or not segments:
        return
    segment, rest = segments[0], segments[1:]
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return
    if segment == "**":
        if rest:
            _glob_walk(directory, rest, matches, limit, seen)
        for entry in entries:
            if len(matches) >= limit:
                return
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                _glob_walk(Path(entry.path), segments, matches, limit, seen)
            elif not rest:
                _add_match(Path(entry.path), matches, seen)
        return
    literal = not _GLOB_CHARS.intersection(segment)
    for entry in entries:
        if len(matches) >= limit:
            return
        name = entry.name
        if literal:
            if name != segment:
                continue
        elif (name.startswith(".") and not segment.startswith(".")) or not fnmatch.fnmatchcase(name, segment):
            continue
        if rest:
            if entry.is_dir(follow_symlinks=False):
                _glob_walk(Path(entry.path), rest, matches, limit, seen)
        elif not entry.is_dir(follow_symlinks=True):
            _add_match(Path(entry.path), matches, seen)


def _add_match(path: Path, matches: list[Path], seen: set[Path]) -> None:
    if path not in seen:
        seen.add(path)
        matches.append(path)


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
                    if not real.is_relative_to(root.base_dir):
                        yield WalkProblem(_outside_root_file(path, real, root))
                        continue
                    if real in self._visited:
                        continue  # a second path (a symlink) to a file already read
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
            for problem in outcome.problems:
                yield WalkProblem(problem)
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


def _outside_root_file(path: Path, real: Path, root: Root) -> Rejection:
    location = file_location(path)
    message = (
        f"{location}: the file is a symbolic link to {real}, outside the provider root {root.base_dir}; "
        "it is not read (rule: outsideRoot)"
    )
    return Rejection(location, message, None, None, "(file)", "outsideRoot", truncate(str(real)))


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
            loaded = load_file(
                event.path, base_dir=event.root.base_dir, limits=limits, is_root=event.path == event.root.path
            )
            if event.follows_locations:
                walk.register(event.path, loaded.targets)
            for _, item in loaded.items:
                yield item
        elif isinstance(event, WalkProblem):
            yield event.rejection
