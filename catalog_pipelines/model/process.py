"""The one entry point of the ingestion hot path: raw document in, stored entity or rejection out.

`process_entity` runs for every entity of every cycle (200,000 in the benchmark), so it avoids
work the happy path does not need: validation is hand-written checks with precompiled regexes, the
body is only copied (shallowly, two levels) when the namespace has to be filled in, and the entity
is serialised exactly once, for both the content hash and the size check.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from catalog_pipelines.model.entity import ProcessedEntity, RawEntity, Rejection
from catalog_pipelines.model.limits import DEFAULT_LIMITS, Limits
from catalog_pipelines.model.refs import DEFAULT_NAMESPACE
from catalog_pipelines.model.relations import RelationError, derive_relations
from catalog_pipelines.model.validation import Issue, js_string, truncate, validate_entity

# Enough to fix the document without flooding logs or the rejections table.
MAX_ISSUES_IN_MESSAGE = 10

_SORT_KEYS = orjson.OPT_SORT_KEYS
_sha256 = hashlib.sha256


def process_entity(raw: RawEntity, *, limits: Limits | None = None) -> ProcessedEntity | Rejection:
    """Validate one raw entity, fill its default namespace, derive its relations and hash it.

    Returns a `ProcessedEntity` (canonical ref, normalised body, relations, `content_hash` = sha256
    hex of the body serialised with sorted keys) or a `Rejection` whose message names the location,
    document index, entity ref (when known), field, rule and offending value. Never raises for bad
    input: any document, however broken, becomes one or the other.
    """
    entity = raw.entity
    issues = validate_entity(entity)
    if issues:
        return _rejection(raw, issues)
    metadata = entity["metadata"]
    namespace = metadata.get("namespace")
    if namespace is None:
        # DefaultNamespaceEntityPolicy. Copy only the two levels that change: the caller's dict
        # (possibly shared with a provider's cache) must not be mutated.
        namespace = DEFAULT_NAMESPACE
        metadata = {**metadata, "namespace": namespace}
        entity = {**entity, "metadata": metadata}
    kind = entity["kind"]
    name = metadata["name"]
    try:
        relations = derive_relations(entity)
    except RelationError as error:
        return _rejection(
            raw,
            [
                Issue(
                    error.field,
                    "entityRef",
                    truncate(js_string(error.value)),
                    f"{error.field}: {error} (rule: entityRef)",
                )
            ],
        )
    try:
        body = orjson.dumps(entity, option=_SORT_KEYS)
    except orjson.JSONEncodeError as error:
        return _rejection(
            raw,
            [Issue("(root)", "json", None, f"(root): the entity cannot be serialised as JSON: {error} (rule: json)")],
        )
    max_bytes = (limits or DEFAULT_LIMITS).max_entity_bytes
    if len(body) > max_bytes:
        return _rejection(
            raw,
            [
                Issue(
                    "(root)",
                    "maxEntityBytes",
                    f"{len(body)} bytes",
                    f"(root): the entity is {len(body):,} bytes as JSON, over the limit of {max_bytes:,} bytes "
                    "(rule: maxEntityBytes)",
                )
            ],
        )
    return ProcessedEntity(
        ref=f"{kind}:{namespace}/{name}".lower(),
        kind=kind,
        namespace=namespace,
        name=name,
        entity=entity,
        relations=relations,
        content_hash=_sha256(body).hexdigest(),
        location=raw.location,
    )


# The width of the `ref` columns (`storage/schema.py` REF): a longer "ref" is not a ref any entity
# could have (kind, namespace and name are at most 63 characters each), and PostgreSQL would refuse it.
MAX_REF_CHARS = 512


def describe_ref(entity: Any) -> str | None:
    """Best-effort canonical ref of a possibly invalid entity, in full (a rejection row must name
    the entity exactly: `catalog rejected --json` is read by scripts); None when unknowable or
    longer than `MAX_REF_CHARS` (the message then shows a shortened one, see `shown_ref`)."""
    ref = shown_ref(entity)
    return ref if ref is not None and len(ref) <= MAX_REF_CHARS else None


def shown_ref(entity: Any) -> str | None:
    """The canonical ref of a possibly invalid entity for a message: full unless absurdly long."""
    if type(entity) is not dict:
        return None
    kind = entity.get("kind")
    metadata = entity.get("metadata")
    name = metadata.get("name") if type(metadata) is dict else None
    if type(kind) is not str or type(name) is not str or not kind or not name:
        return None
    namespace = metadata.get("namespace")
    namespace = namespace if type(namespace) is str and namespace else DEFAULT_NAMESPACE
    ref = f"{kind}:{namespace}/{name}".lower()
    return ref if len(ref) <= MAX_REF_CHARS else truncate(ref)


def rejection_message(location: str, doc_index: int | None, ref: str | None, issues: list[Issue]) -> str:
    """`<location>, document <n>, <ref>: <issue>; <issue>; …` (issues capped, with a count)."""
    where = location or "(unknown location)"
    if doc_index is not None:
        where = f"{where}, document {doc_index}"
    if ref:
        where = f"{where}, {ref}"
    shown = "; ".join(issue.message for issue in issues[:MAX_ISSUES_IN_MESSAGE])
    hidden = len(issues) - MAX_ISSUES_IN_MESSAGE
    if hidden > 0:
        shown = f"{shown}; and {hidden} more"
    return f"{where}: {shown}"


def _rejection(raw: RawEntity, issues: list[Issue]) -> Rejection:
    ref = describe_ref(raw.entity)
    first = issues[0]
    return Rejection(
        location=raw.location,
        message=rejection_message(raw.location, raw.doc_index, shown_ref(raw.entity), issues),
        doc_index=raw.doc_index,
        ref=ref,
        field=first.field,
        rule=first.rule,
        value=first.value,
    )
