"""The entity provider contract (ARCHITECTURE.md §4), mirroring Backstage's incremental providers.

A provider is stateless between calls: everything needed to resume lives in the JSON-serialisable
cursor, so any process (any Dagster run) can continue a cycle from the cursor stored in the ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from catalog_pipelines.model.entity import RawEntity, Rejection


@dataclass(slots=True)
class Page:
    """One page from a provider.

    `cursor` is where to resume *after* this page; `done` means the source is exhausted.
    `rejections` carries documents that failed before they could become entities
    (malformed YAML, a document over the size limit, an unreadable file).
    `total` is the source's total item count when it knows it (shown as progress).
    `doubt`, on the last page only: why the walk that just ended cannot be trusted to have seen
    every entity (the source changed while it was walked); the sweep then does not trust it.
    """

    entities: list[RawEntity]
    cursor: Any
    done: bool
    rejections: list[Rejection] = field(default_factory=list)
    total: int | None = None
    doubt: str | None = None


@runtime_checkable
class EntityProvider(Protocol):
    name: str

    def around(self) -> contextlib.AbstractContextManager[None]:
        """Set up and tear down whatever the pages need (an HTTP client, a file handle)."""

    def next(self, cursor: Any) -> Page:
        """Return the page that starts at `cursor` (None: the start of the source)."""


class ProviderError(RuntimeError):
    """A source failed in a way that retrying later may fix (HTTP 5xx, timeout, rate limit)."""


class WalkInDoubt(ProviderError):
    """The walk cannot go on: the source stopped honouring the stored cursor, handed back a cursor
    already seen in this walk, or served more pages than its own total allows.

    The engine answers by restarting the walk from the source's first page (a new cycle, no sweep),
    because resuming such a walk can skip live entities and a sweep would then remove them. (A walk
    that reaches the end although the source changed meanwhile reports `Page.doubt` instead, and
    the sweep decides.)
    """


@runtime_checkable
class ConfirmsRemovals(Protocol):
    """A provider that can ask its source, per entity, whether it is still there.

    The sweep asks before it removes anything: a candidate the source still serves is kept (and
    counted as seen), so an incomplete walk can never remove a live entity of such a source.
    """

    def still_present(self, refs: list[str]) -> set[str]:
        """The canonical refs among `refs` that the source still holds."""


@contextlib.contextmanager
def no_setup() -> Iterator[None]:
    yield
