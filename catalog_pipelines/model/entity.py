"""The data that flows from providers through validation into storage.

`RawEntity` is what a provider emits (one decoded document and where it came from);
`ProcessedEntity` is a validated entity ready to store; `Rejection` is a document that failed,
with a reason precise enough to fix it (file, document index, field, rule, offending value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Relation:
    """One directed relation between two canonical (lower-case) entity refs."""

    source: str
    type: str
    target: str


@dataclass(slots=True)
class RawEntity:
    """A decoded document from a source, not yet validated.

    `entity` is whatever the source decoded: usually a dict, but a non-mapping document must still
    travel as far as validation so that it is rejected with a reason rather than dropped.
    """

    entity: Any
    location: str
    doc_index: int | None = None


@dataclass(slots=True)
class Rejection:
    """Why a document was not accepted. `message` is the full human-readable reason."""

    location: str
    message: str
    doc_index: int | None = None
    ref: str | None = None
    field: str | None = None
    rule: str | None = None
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "doc_index": self.doc_index,
            "ref": self.ref,
            "field": self.field,
            "rule": self.rule,
            "value": self.value,
            "message": self.message,
        }


@dataclass(slots=True)
class ProcessedEntity:
    """A validated entity: canonical ref, normalised body, derived relations and content hash."""

    ref: str  # canonical, fully lower-case "kind:namespace/name"
    kind: str  # as written in the entity (e.g. "Component")
    namespace: str
    name: str
    entity: dict[str, Any]  # normalised body (namespace filled in)
    relations: list[Relation] = field(default_factory=list)
    content_hash: str = ""
    location: str = ""
