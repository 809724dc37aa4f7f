"""The entity model: refs, Backstage's validation rules, relations. No I/O: descriptor files are
read by `catalog_pipelines.providers.descriptors`, which calls this package.

The ingestion hot path needs only `process_entity`; `validate_entity` and `derive_relations` are
its two halves, exported for callers that need one without the other. This package imports no
Dagster and no SQLAlchemy.
"""

from catalog_pipelines.model.entity import ProcessedEntity, RawEntity, Rejection, Relation
from catalog_pipelines.model.limits import DEFAULT_LIMITS, Limits
from catalog_pipelines.model.process import process_entity
from catalog_pipelines.model.refs import (
    CompoundRef,
    EntityRefError,
    canonical_ref,
    parse_entity_ref,
    stringify_entity_ref,
)
from catalog_pipelines.model.relations import RelationError, derive_relations
from catalog_pipelines.model.validation import EntityValidationError, Issue, validate_entity

__all__ = [
    "DEFAULT_LIMITS",
    "CompoundRef",
    "EntityRefError",
    "EntityValidationError",
    "Issue",
    "Limits",
    "ProcessedEntity",
    "RawEntity",
    "Rejection",
    "Relation",
    "RelationError",
    "canonical_ref",
    "derive_relations",
    "parse_entity_ref",
    "process_entity",
    "stringify_entity_ref",
    "validate_entity",
]
