"""Entity references, as Backstage's `parseEntityRef` / `stringifyEntityRef` define them.

A ref is `[kind:][namespace/]name`. Names may themselves contain ':' and '/', so only the first ':'
before any '/' separates the kind and only the first '/' separates the namespace. Refs compare
case-insensitively, so the catalog stores the canonical, fully lower-cased form as its key.
"""

from __future__ import annotations

from typing import Any, NamedTuple

DEFAULT_NAMESPACE = "default"


class EntityRefError(ValueError):
    """An entity reference could not be parsed."""


class CompoundRef(NamedTuple):
    kind: str
    namespace: str
    name: str

    def canonical(self) -> str:
        return canonical_ref(self.kind, self.namespace, self.name)


def parse_entity_ref(
    ref: Any,
    *,
    default_kind: str | None = None,
    default_namespace: str | None = DEFAULT_NAMESPACE,
) -> CompoundRef:
    """Parse a string or `{kind, namespace, name}` mapping into its three parts.

    Missing parts come from the defaults (the context of the entity that holds the ref, as in
    Backstage); a missing kind with no default is an error.
    """
    if isinstance(ref, str):
        kind, namespace, name = _split(ref)
        if kind is None:
            if default_kind is None:
                # Backstage's exact wording, so messages match what users see in Backstage.
                raise EntityRefError(
                    f'Entity reference "{ref}" had missing or empty kind '
                    '(e.g. did not start with "component:" or similar)'
                )
            kind = default_kind
        if namespace is None:
            if default_namespace is None:
                raise EntityRefError(f'Entity reference "{ref}" had missing or empty namespace')
            namespace = default_namespace
        return CompoundRef(kind, namespace, name)
    if isinstance(ref, dict):
        kind = ref.get("kind", default_kind)
        namespace = ref.get("namespace", default_namespace)
        name = ref.get("name")
        for part, value in (("kind", kind), ("namespace", namespace), ("name", name)):
            if not isinstance(value, str) or not value:
                raise EntityRefError(f"Entity reference {ref!r} had missing or empty {part}")
        return CompoundRef(kind, namespace, name)
    raise EntityRefError(f"Unable to parse entity reference {ref!r}: expected a string or an object")


def _split(ref: str) -> tuple[str | None, str | None, str]:
    colon = ref.find(":")
    slash = ref.find("/")
    kind: str | None = None
    namespace: str | None = None
    rest = ref
    # The kind separator only counts when it comes before any namespace separator.
    if colon != -1 and (slash == -1 or colon < slash):
        kind, rest = ref[:colon], ref[colon + 1 :]
        if not kind:
            raise EntityRefError(f'Entity reference "{ref}" had an empty kind')
        slash = rest.find("/")
    if slash != -1:
        namespace, rest = rest[:slash], rest[slash + 1 :]
        if not namespace:
            raise EntityRefError(f'Entity reference "{ref}" had an empty namespace')
    if not rest:
        raise EntityRefError(f'Entity reference "{ref}" had an empty name')
    return kind, namespace, rest


def stringify_entity_ref(kind: str, namespace: str | None, name: str) -> str:
    """Backstage's `stringifyEntityRef`: kind lower-cased, namespace and name kept as written."""
    return f"{kind.lower()}:{namespace or DEFAULT_NAMESPACE}/{name}"


def canonical_ref(kind: str, namespace: str | None, name: str) -> str:
    """The catalog's key for an entity: the whole ref lower-cased (refs compare case-insensitively)."""
    return f"{kind}:{namespace or DEFAULT_NAMESPACE}/{name}".lower()


def entity_ref_of(entity: dict[str, Any]) -> str:
    """Canonical ref of an entity body."""
    meta = entity.get("metadata") or {}
    return canonical_ref(entity["kind"], meta.get("namespace"), meta["name"])
