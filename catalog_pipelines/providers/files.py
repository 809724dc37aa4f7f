"""Entities from Backstage descriptor files on disk, paged with a small, stateless JSON cursor.

Roots are directories (every `*.yaml`/`*.yml` below, sorted) or root descriptor files (the file,
then whatever its Location entities point at, depth first); see `providers/descriptors/loader.py` for the
walk and its rules (read once per cycle, cycles reported, paths confined to the root).

**The cursor** says where the next page starts and nothing about the entities before it:

    {"v": 1, "file": "acme/team-a-group.yaml", "ordinal": 12, "doc": 3,
     "at": [1804, 61, 2, 5120, 1733500000000000000], "pbytes": 0,
     "locations": ["acme-corp.yaml", "acme/org.yaml"], "stats": {...}}

- `file` / `doc`: the next document to emit (paths relative to the common directory of the
  roots), `ordinal`: that file's position in the walk, used only if the file has disappeared
  since the page before.
- `at` (only when a page stops inside a file): character offset, line and index of the document
  before `doc`, and the size and mtime of the file version they belong to (`ResumeMark`). The
  next page starts cutting the file into documents there; a file that changed since is cut
  from its start again. `pbytes` (only when not 0): the bytes the file's placeholders have pulled
  in before `doc`, so the per-file placeholder cap holds across pages.
- `locations`: the files seen so far that hold Location entities. Resuming replays the walk up
  to `file` by re-reading only these (for their targets) and listing directories; every other
  file before the resume point is neither read nor parsed. Its size grows with the number of
  Location files, never with the number of entities.
- `stats`: running counts for the cycle: descriptor files read, files skipped because no
  document in them has `apiVersion` or `kind`, remote Location targets not followed.

**A file is cut and parsed once per cycle.** A page reads the file it resumes in, starts cutting
it into documents at the cursor's `at` offset (nothing before it is scanned), and parses only
until the page is full (`load_file(max_items=…)`, documents after that are not even cut out).
The text before `at` is searched once more, for the word `Location`, by the page that finishes
the file, and cut and parsed (for Location targets only) when it has it. A file has at most
`Limits.max_documents_per_file` documents, and a run of documents identical to the one before is
read once (one `repeatedDocument` rejection stands for the run). The state is all in the cursor,
so pages can run in different processes without a shared cache; what each page re-does is
reading (not parsing) the file's bytes.

**Placeholder bytes** are capped per file (the cursor carries the count across pages) and per
chunk: the budget is renewed by `around()`, which the chunk collector enters once per chunk.

A page holds at most `page_size` items (entities plus document-level rejections). Problems found
while following Locations (a cycle, a missing target) ride along on the page where they occur.
`total` is None: counting would mean reading every file up front.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_pipelines.model.entity import RawEntity, Rejection
from catalog_pipelines.model.limits import DEFAULT_LIMITS, Limits
from catalog_pipelines.providers.descriptors.placeholders import PlaceholderBudget
from catalog_pipelines.providers.descriptors.loader import (
    DescriptorWalk,
    RemoteTarget,
    ResumeMark,
    Root,
    RootMissingError,
    VisitFile,
    WalkProblem,
    load_file,
)
from catalog_pipelines.providers.base import Page, ProviderError

if TYPE_CHECKING:
    from catalog_pipelines.providers.registry import ChunkOptions

CURSOR_VERSION = 1
_STAT_KEYS = ("files", "skipped_files", "remote_targets")


class DescriptorFileProvider:
    """An `EntityProvider` over descriptor files (see the module notes for the cursor)."""

    def __init__(
        self,
        name: str,
        roots: Iterable[str | Path],
        page_size: int = 500,
        limits: Limits | dict[str, int] | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.name = name
        self.roots = [Root.of(root) for root in roots]
        if not self.roots:
            raise ValueError("DescriptorFileProvider needs at least one root")
        self.page_size = page_size
        # A mapping comes from provider config YAML, e.g. `limits: {max_document_bytes: 2097152}`.
        self.limits = Limits(**limits) if isinstance(limits, dict) else limits or DEFAULT_LIMITS
        # Cursor paths are relative to this, so a cursor stays short and readable.
        self.anchor = Path(os.path.commonpath([str(root.base_dir) for root in self.roots]))
        # Placeholder bytes of the current chunk; pages called outside `around()` share one.
        self._budget = PlaceholderBudget(self.limits)

    @classmethod
    def from_config(
        cls, name: str, params: dict[str, Any], options: ChunkOptions, base_dir: Path
    ) -> DescriptorFileProvider:
        """The `files` type of providers.yaml: relative `roots` are relative to `base_dir` (the
        configuration file's directory); pages default to the chunk size, at most 500 items."""
        params = dict(params)
        roots = [path if path.is_absolute() else (base_dir / path).resolve() for path in map(Path, params.pop("roots"))]
        params.setdefault("page_size", min(500, options.chunk_size))
        return cls(name=name, roots=roots, **params)

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        """One chunk: a fresh per-chunk placeholder budget."""
        self._budget = PlaceholderBudget(self.limits)
        yield

    def next(self, cursor: Any) -> Page:
        state = _CursorState.parse(cursor)
        if state.done:
            return Page([], state.to_json(), True)
        page = self._page(state, by_ordinal=False)
        if page is None:
            # The file the cursor names is gone (deleted or renamed between pages): carry on
            # from the same position in the walk rather than skip the rest of the cycle.
            page = self._page(state, by_ordinal=True)
        if page is None:
            # Fewer files now than the cursor's position: the walk is over.
            return Page([], state.finished().to_json(), True)
        return page

    def _page(self, state: _CursorState, *, by_ordinal: bool) -> Page | None:
        walk = DescriptorWalk(self.roots, limits=self.limits, location_files=[self.anchor / p for p in state.locations])
        stats = dict(state.stats)
        locations = list(state.locations)
        entities: list[RawEntity] = []
        rejections: list[Rejection] = []
        resume_key = state.file
        replaying = resume_key is not None
        try:
            for event in walk.events():
                first_doc = 0
                if replaying:
                    if not isinstance(event, VisitFile):
                        continue  # reported by the page that got there first
                    key = self._key(event.path)
                    if by_ordinal:
                        if event.ordinal < state.ordinal:
                            continue
                    elif key != resume_key:
                        continue
                    else:
                        first_doc = state.doc
                    replaying = False
                elif isinstance(event, VisitFile) and len(entities) + len(rejections) >= self.page_size:
                    # Stop between files rather than load one whose documents cannot fit.
                    cursor = _CursorState(self._key(event.path), event.ordinal, 0, locations, stats).to_json()
                    return Page(entities, cursor, False, rejections)
                if isinstance(event, WalkProblem):
                    rejections.append(event.rejection)
                    continue
                if isinstance(event, RemoteTarget):
                    stats["remote_targets"] += 1
                    continue
                key = self._key(event.path)
                loaded = load_file(
                    event.path,
                    base_dir=event.root.base_dir,
                    limits=self.limits,
                    first_doc=first_doc,
                    max_items=self.page_size - len(entities) - len(rejections),
                    budget=self._budget,
                    resume=ResumeMark.from_json(state.at, state.pbytes) if first_doc else None,
                    is_root=event.path == event.root.path,
                )
                if event.follows_locations:
                    if loaded.next_doc is None:  # targets are complete only for a finished file
                        walk.register(event.path, loaded.targets)
                    if loaded.has_locations and key not in locations:
                        locations.append(key)
                if not loaded.is_descriptor:
                    stats["skipped_files"] += 1
                    continue
                if first_doc == 0:  # a page that stopped inside this file has counted it
                    stats["files"] += 1
                for position, (doc_index, item) in enumerate(loaded.items):
                    if len(entities) + len(rejections) >= self.page_size:
                        cursor = _CursorState.inside(key, event.ordinal, doc_index, locations, stats, loaded.marks[position])
                        return Page(entities, cursor.to_json(), False, rejections)
                    if isinstance(item, RawEntity):
                        entities.append(item)
                    else:
                        rejections.append(item)
                if loaded.next_doc is not None:
                    cursor = _CursorState.inside(key, event.ordinal, loaded.next_doc, locations, stats, loaded.marks[-1])
                    return Page(entities, cursor.to_json(), False, rejections)
        except RootMissingError as error:
            # A missing root is a mount or configuration problem; an empty page here would let the
            # cycle end "successfully" and the sweep remove every entity of this provider.
            raise ProviderError(str(error)) from error
        if replaying:
            return None
        return Page(entities, _CursorState(None, 0, 0, locations, stats, done=True).to_json(), True, rejections)

    def _key(self, path: Path) -> str:
        return path.relative_to(self.anchor).as_posix()


class _CursorState:
    __slots__ = ("at", "doc", "done", "file", "locations", "ordinal", "pbytes", "stats")

    def __init__(
        self,
        file: str | None,
        ordinal: int,
        doc: int,
        locations: list[str],
        stats: dict[str, int],
        done: bool = False,
        pbytes: int = 0,
        at: list[int] | None = None,
    ) -> None:
        self.pbytes = pbytes
        self.at = at
        self.file = file
        self.ordinal = ordinal
        self.doc = doc
        self.locations = locations
        self.stats = stats
        self.done = done

    @classmethod
    def parse(cls, cursor: Any) -> _CursorState:
        empty_stats = dict.fromkeys(_STAT_KEYS, 0)
        if cursor is None:
            return cls(None, 0, 0, [], empty_stats)
        if not isinstance(cursor, dict) or cursor.get("v") != CURSOR_VERSION:
            raise ValueError(f"not a DescriptorFileProvider cursor (version {CURSOR_VERSION}): {cursor!r:.200}")
        stats = {**empty_stats, **{k: int(v) for k, v in (cursor.get("stats") or {}).items() if k in empty_stats}}
        locations = [str(path) for path in cursor.get("locations") or []]
        if cursor.get("done"):
            return cls(None, 0, 0, locations, stats, done=True)
        return cls(
            str(cursor["file"]),
            int(cursor["ordinal"]),
            int(cursor["doc"]),
            locations,
            stats,
            pbytes=int(cursor.get("pbytes") or 0),
            at=cursor.get("at"),
        )

    @classmethod
    def inside(
        cls, file: str, ordinal: int, doc: int, locations: list[str], stats: dict[str, int], mark: ResumeMark | None
    ) -> _CursorState:
        """A cursor that resumes at document `doc` of `file`, where `mark` says how (see `ResumeMark`)."""
        if mark is None:
            return cls(file, ordinal, doc, locations, stats)
        return cls(file, ordinal, doc, locations, stats, pbytes=mark.placeholder_bytes, at=mark.to_json())

    def finished(self) -> _CursorState:
        return _CursorState(None, 0, 0, self.locations, self.stats, done=True)

    def to_json(self) -> dict[str, Any]:
        if self.done:
            return {"v": CURSOR_VERSION, "done": True, "locations": self.locations, "stats": self.stats}
        cursor = {
            "v": CURSOR_VERSION,
            "file": self.file,
            "ordinal": self.ordinal,
            "doc": self.doc,
            "locations": self.locations,
            "stats": self.stats,
        }
        if self.at is not None:
            cursor["at"] = self.at
        if self.pbytes:
            cursor["pbytes"] = self.pbytes
        return cursor
