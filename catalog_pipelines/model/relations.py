"""Relations derived from an entity's spec, as Backstage's `BuiltinKindsEntityProcessor` emits them.

Each reference field produces two relations: `self -outgoing-> target` and
`target -incoming-> self`. A reference without a kind takes the field's default kind; one without
a namespace takes the *referring entity's* namespace (not `default`). Fields without a default kind
(`dependsOn`, `dependencyOf`) must name the kind, otherwise derivation fails with Backstage's own
message. Which kinds emit what is taken from Backstage's processor and its tests
(`tests/data/backstage-conformance/vectors.json`, section `relations`):

- Resource has no `partOf` for `subcomponentOf` and no providesApi/consumesApi;
- Group emits both directions for `parent`, `children` and `members`, User for `memberOf`;
- Template's `owner` comes from the scaffolder's processor (`ownedBy`/`ownerOf`, default kind Group);
- AiResource (the ai-model catalog module) is treated like a Resource: `owner`, `system` and
  `dependsOn` (kind required). That module's processor is not in the conformance vectors, so this
  part is our reading of its documentation rather than a verified port.

Refs in `Relation` are canonical (fully lower-cased). Duplicates within one entity are dropped,
keeping the first occurrence, because the catalog stores relations as a set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from itertools import starmap
from typing import Any

from catalog_pipelines.model.entity import Relation
from catalog_pipelines.model.refs import DEFAULT_NAMESPACE, EntityRefError, parse_entity_ref

OWNED_BY, OWNER_OF = "ownedBy", "ownerOf"
PART_OF, HAS_PART = "partOf", "hasPart"
PROVIDES_API, API_PROVIDED_BY = "providesApi", "apiProvidedBy"
CONSUMES_API, API_CONSUMED_BY = "consumesApi", "apiConsumedBy"
DEPENDS_ON, DEPENDENCY_OF = "dependsOn", "dependencyOf"
MEMBER_OF, HAS_MEMBER = "memberOf", "hasMember"
CHILD_OF, PARENT_OF = "childOf", "parentOf"

# (spec field, default target kind or None, outgoing type, incoming type)
RelationRule = tuple[str, "str | None", str, str]

_OWNER: RelationRule = ("owner", "Group", OWNED_BY, OWNER_OF)
_SYSTEM: RelationRule = ("system", "System", PART_OF, HAS_PART)
_DEPENDS_ON: RelationRule = ("dependsOn", None, DEPENDS_ON, DEPENDENCY_OF)
_DEPENDENCY_OF: RelationRule = ("dependencyOf", None, DEPENDENCY_OF, DEPENDS_ON)

RULES: dict[str, tuple[RelationRule, ...]] = {
    "Component": (
        _OWNER,
        ("subcomponentOf", "Component", PART_OF, HAS_PART),
        ("providesApis", "API", PROVIDES_API, API_PROVIDED_BY),
        ("consumesApis", "API", CONSUMES_API, API_CONSUMED_BY),
        _DEPENDS_ON,
        _DEPENDENCY_OF,
        _SYSTEM,
    ),
    "API": (_OWNER, _SYSTEM),
    "Resource": (_OWNER, _DEPENDS_ON, _DEPENDENCY_OF, _SYSTEM),
    "User": (("memberOf", "Group", MEMBER_OF, HAS_MEMBER),),
    "Group": (
        ("parent", "Group", CHILD_OF, PARENT_OF),
        ("children", "Group", PARENT_OF, CHILD_OF),
        ("members", "User", HAS_MEMBER, MEMBER_OF),
    ),
    "System": (_OWNER, ("domain", "Domain", PART_OF, HAS_PART)),
    "Domain": (_OWNER, ("subdomainOf", "Domain", PART_OF, HAS_PART)),
    "Template": (_OWNER,),
    "AiResource": (_OWNER, _SYSTEM, _DEPENDS_ON),
}
# Canonical refs are lower-case; lower the default kinds once instead of per reference.
_RULES_LOWER: dict[str, tuple[tuple[str, str | None, str, str], ...]] = {
    kind: tuple((key, default.lower() if default else None, out, inc) for key, default, out, inc in rules)
    for kind, rules in RULES.items()
}


class RelationError(EntityRefError):
    """A reference in the spec could not be resolved; `field` says which (e.g. `spec.dependsOn.0`).

    The message is Backstage's, e.g. `Entity reference "r" had missing or empty kind (...)`.
    """

    def __init__(self, message: str, field: str, value: Any) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


def derive_relations(entity: dict[str, Any]) -> list[Relation]:
    """All relations that `entity`'s spec declares, in both directions, canonical refs.

    The entity should have passed `validate_entity`; an entity of a kind without relation rules
    (Location, unknown kinds) or without a spec yields no relations. Raises `RelationError` for a
    reference that cannot be parsed (empty parts, or a missing kind where the field has no default).
    """
    rules = _RULES_LOWER.get(entity.get("kind"))  # type: ignore[arg-type]
    spec = entity.get("spec")
    if not rules or type(spec) is not dict:
        return []
    metadata = entity["metadata"]
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    self_ref = f"{entity['kind']}:{namespace}/{metadata['name']}".lower()
    pairs: dict[tuple[str, str, str], None] = {}
    for key, default_kind, outgoing, incoming in rules:
        targets = spec.get(key)
        if not targets:
            continue
        if type(targets) is not list:
            targets = (targets,)
        for index, target in enumerate(targets):
            ref = None
            if type(target) is str:
                # `[kind:][namespace/]name` split inline for well-formed refs; anything else
                # (an empty part, a missing kind where the field has no default) goes to the
                # general parser, for Backstage's exact error message.
                colon = target.find(":")
                slash = target.find("/")
                last = len(target) - 1
                if colon == -1 or (slash != -1 and slash < colon):
                    if default_kind is not None:
                        if slash == -1:
                            if target:
                                ref = f"{default_kind}:{namespace}/{target}"
                        elif 0 < slash < last:
                            ref = f"{default_kind}:{target}"
                elif slash == -1:
                    if 0 < colon < last:
                        ref = f"{target[:colon]}:{namespace}/{target[colon + 1 :]}"
                elif colon > 0 and colon + 1 < slash < last:
                    ref = target  # already kind:namespace/name
            if ref is None:
                try:
                    parsed = parse_entity_ref(target, default_kind=default_kind, default_namespace=namespace)
                except EntityRefError as error:
                    raise RelationError(str(error), f"spec.{key}.{index}", target) from None
                ref = f"{parsed.kind}:{parsed.namespace}/{parsed.name}"
            target_ref = ref.lower()
            pairs[(self_ref, outgoing, target_ref)] = None
            pairs[(target_ref, incoming, self_ref)] = None
    # A dict of plain tuples dedupes in C and keeps the order; hashing the frozen dataclasses
    # instead would cost a Python-level __hash__ per relation.
    return _build_relations(pairs)


def _relations_via_slots(pairs: Iterable[tuple[str, str, str]]) -> list[Relation]:
    # A frozen dataclass's __init__ goes through object.__setattr__ once per field, which makes
    # Relation() the single most expensive step of derivation (about 0.5 µs, several per entity).
    # Writing the three slots through their descriptors builds the same frozen, hashable object
    # at about 60% of the cost. Used only while Relation has exactly these three slot fields.
    relations: list[Relation] = []
    append = relations.append
    for source, type_, target in pairs:
        relation = _new(Relation)
        _set_source(relation, source)
        _set_type(relation, type_)
        _set_target(relation, target)
        append(relation)
    return relations


def _relations_via_init(pairs: Iterable[tuple[str, str, str]]) -> list[Relation]:
    return list(starmap(Relation, pairs))


if (
    tuple(f.name for f in dataclasses.fields(Relation)) == ("source", "type", "target")
    and "__slots__" in Relation.__dict__
):
    _new = object.__new__
    _set_source = Relation.__dict__["source"].__set__
    _set_type = Relation.__dict__["type"].__set__
    _set_target = Relation.__dict__["target"].__set__
    _build_relations = _relations_via_slots
else:  # Relation gained a field: let its own __init__ fill it in.
    _build_relations = _relations_via_init
