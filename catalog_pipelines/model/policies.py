"""Backstage's entity policies that change an entity rather than only check it.

The checks themselves live in `validation` (where `validate_entity` runs them all at once); the
policy-shaped wrappers here return the entity or raise `EntityValidationError`, as Backstage's
`EntityPolicy.enforce` does. The two policies that fill things in return the same object when
nothing changes and a new one (shallow copies of the changed levels only) when something does.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.model.refs import DEFAULT_NAMESPACE, parse_entity_ref, stringify_entity_ref
from catalog_pipelines.model.validation import (
    EntityValidationError,
    Issue,
    field_format_issues,
    foreign_root_field_issues,
    schema_issues,
)


def default_namespace(entity: dict[str, Any]) -> dict[str, Any]:
    """`DefaultNamespaceEntityPolicy`: a missing (or empty) namespace becomes `default`."""
    metadata = entity.get("metadata") or {}
    if metadata.get("namespace"):
        return entity
    return {**entity, "metadata": {**metadata, "namespace": DEFAULT_NAMESPACE}}


class GroupDefaultParentPolicy:
    """`GroupDefaultParentEntityPolicy`: every Group without a parent gets `parent_ref` as parent.

    For catalogs whose group source has no single root: pointing orphan groups at one group keeps
    the hierarchy a tree. The parent group itself is left alone (it would become its own parent).
    """

    def __init__(self, parent_ref: str) -> None:
        kind, namespace, name = parse_entity_ref(parent_ref, default_kind="Group", default_namespace=DEFAULT_NAMESPACE)
        if kind.lower() != "group":
            raise ValueError(f"The default parent must be a Group, not {parent_ref!r}")
        self.parent_ref = stringify_entity_ref(kind, namespace, name)

    def enforce(self, entity: dict[str, Any]) -> dict[str, Any]:
        if entity.get("kind") != "Group":
            return entity
        spec = entity.get("spec") or {}
        if spec.get("parent"):
            return entity
        metadata = entity.get("metadata") or {}
        if stringify_entity_ref("Group", metadata.get("namespace"), metadata.get("name", "")) == self.parent_ref:
            return entity
        return {**entity, "spec": {**spec, "parent": self.parent_ref}}


def schema_valid_policy(entity: Any) -> Any:
    """`SchemaValidEntityPolicy`: the entity itself when it matches the common schema, else raises."""
    return _enforce(entity, schema_issues(entity))


def no_foreign_root_fields_policy(entity: Any) -> Any:
    """`NoForeignRootFieldsEntityPolicy`: the entity itself when it has only known root fields."""
    return _enforce(entity, foreign_root_field_issues(entity))


def field_format_policy(entity: Any) -> Any:
    """`FieldFormatEntityPolicy`: the entity itself when every checked field has a valid format."""
    return _enforce(entity, field_format_issues(entity))


def _enforce(entity: Any, issues: list[Issue]) -> Any:
    if issues:
        raise EntityValidationError(issues)
    return entity
