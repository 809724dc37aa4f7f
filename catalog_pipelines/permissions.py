"""Who may do what: the `Authorizer` contract every door asks, and the RBAC policy behind it.

Every door to an operation (the admin CLI, HTTP routes and Dagster job, scorecard exemptions, the
dashboards site) asks an `Authorizer` before acting. `PolicyAuthorizer` answers from the RBAC
policy in `config/permissions.yaml` (or `CATALOG_PIPELINES_PERMISSIONS`), evaluated by
`analytics/rbac.py`: roles in order, members as user or group refs resolved through catalog
membership including nested groups, conditional rules, first match decides, default deny (see
docs/rbac.md). Permission names are Backstage's where Backstage has them (`catalog.ingestion.read`,
`catalog.ingestion.manage`), so the same names work when the catalog sits behind Backstage.

Callers of the HTTP admin routes and of the Dagster admin job prove who they are with an operator
token; `tokens_from_env` maps tokens (configured as SHA-256 digests, or as the tokens themselves) to
identities from `CATALOG_PIPELINES_ADMIN_TOKENS='sha256:<hex>=user:default/alice,…'`, and
`identity_for_token` is the one place a presented token becomes an actor.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from analytics.rbac import ANYONE, PERMISSIONS, Decision, Policy, PolicyError, Resource, Subject, normalize_ref
from catalog_pipelines.settings import environ as settings_environ

if TYPE_CHECKING:
    from analytics.org import OrgGraph

__all__ = [
    "ANYONE",
    "AUDIT_READ",
    "EXEMPTION_CREATE",
    "EXEMPTION_REVOKE",
    "INGESTION_MANAGE",
    "INGESTION_READ",
    "PERMISSIONS_ENV",
    "TOKENS_ENV",
    "Authorizer",
    "NotAllowed",
    "PolicyAuthorizer",
    "PolicyError",
    "StaticPolicy",
    "bearer_token",
    "identity_for_token",
    "new_token",
    "normalize_actor",
    "parse_tokens",
    "token_digest",
    "token_table",
    "tokens_from_env",
]

INGESTION_READ = "catalog.ingestion.read"
INGESTION_MANAGE = "catalog.ingestion.manage"
EXEMPTION_CREATE = "scorecard.exemption.create"
EXEMPTION_REVOKE = "scorecard.exemption.revoke"
AUDIT_READ = "audit.read"

PERMISSIONS_ENV = "CATALOG_PIPELINES_PERMISSIONS"
TOKENS_ENV = "CATALOG_PIPELINES_ADMIN_TOKENS"
# How long a long-running door (the HTTP server) trusts the membership it read from the catalog.
ORG_TTL_SECONDS = 300.0


@runtime_checkable
class Authorizer(Protocol):
    def is_allowed(self, actor: str, permission: str, resource: str | None = None) -> bool:
        """May `actor` (an entity ref such as user:default/alice) use `permission` on `resource`?"""
        ...


class NotAllowed(PermissionError):
    """Raised by `PolicyAuthorizer.require`; the message names the actor, permission and policy."""

    def __init__(self, actor: str, permission: str, resource: str | None, policy: str):
        self.actor, self.permission, self.resource = actor, permission, resource
        on = f" on {resource}" if resource else ""
        super().__init__(f"{actor} is not allowed {permission}{on} (policy: {policy})")


def normalize_actor(actor: str) -> str:
    """`alice` → `user:default/alice`; refs compare case-insensitively, as in Backstage."""
    if not isinstance(actor, str) or not actor.strip():
        raise PolicyError("an actor is required (an entity ref such as user:default/alice)")
    try:
        return normalize_ref(actor)
    except PolicyError as exc:
        raise PolicyError(f"actor {actor!r} is not an entity ref: {exc.problems[0]}") from None


class PolicyAuthorizer:
    """An RBAC policy plus the catalog's organisation, answering the `Authorizer` contract.

    `org` is an `OrgGraph` or a function that loads one (called lazily, only when the policy has
    group members or membership rules, and again after `org_ttl_seconds`); `owner_of(ref)` gives a
    catalog entity's owner for `IS_ENTITY_OWNER`. Without an org, group members match nobody.

    `resource` may be an entity ref (`component:default/x`, `group:default/team-a`), an
    `ingestion-provider:<name>` ref or an `analytics.rbac.Resource`.
    """

    def __init__(
        self,
        policy: Policy,
        org: Any = None,
        owner_of: Callable[[str], str | None] | None = None,
        *,
        org_ttl_seconds: float = ORG_TTL_SECONDS,
    ):
        self.policy = policy
        self._org_source = org
        self._owner_of = owner_of
        self._org_ttl = org_ttl_seconds
        self._org: OrgGraph | None = None
        self._org_loaded_at = 0.0

    # the StaticPolicy surface the doors and tests use
    @property
    def source(self) -> str:
        return self.policy.source

    @property
    def roles(self) -> tuple:
        return self.policy.roles

    def org(self) -> OrgGraph | None:
        if self._org_source is None or not self.policy.needs_org:
            return None
        if not callable(self._org_source):
            return self._org_source
        now = time.monotonic()
        if self._org is None or now - self._org_loaded_at > self._org_ttl:
            self._org = self._org_source()
            self._org_loaded_at = now
        return self._org

    def subject(self, actor: str) -> Subject:
        return Subject.resolve(normalize_actor(actor), self.org())

    def decide(self, actor: str, permission: str) -> Decision:
        return self.policy.decide(self.subject(actor), permission)

    def is_allowed(self, actor: str, permission: str, resource: Any = None) -> bool:
        try:
            subject = self.subject(actor)
        except PolicyError:
            return False
        decision = self.policy.decide(subject, permission)
        return decision.allows(Resource.of(resource, self._owner_of))

    def require(self, actor: str, permission: str, resource: Any = None) -> str:
        """The normalised actor if allowed; raises `NotAllowed` (or PolicyError for a bad actor)."""
        who = normalize_actor(actor)
        if not self.is_allowed(who, permission, resource):
            shown = resource.ref if isinstance(resource, Resource) else resource
            raise NotAllowed(who, permission, shown, self.source)
        return who

    def permissions_of(self, actor: str) -> set[str]:
        """Known permissions the actor holds, unconditionally or under conditions."""
        subject = self.subject(actor)
        return {name for name in PERMISSIONS if self.policy.decide(subject, name).result != "deny"}

    # ---------------------------------------------------------------------------- loading

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<dict>", org: Any = None, owner_of: Callable[[str], str | None] | None = None) -> PolicyAuthorizer:
        return cls(Policy.from_dict(raw, source), org, owner_of)

    @classmethod
    def from_file(cls, path: Path, org: Any = None, owner_of: Callable[[str], str | None] | None = None) -> PolicyAuthorizer:
        """A missing file is an empty policy, which denies everything (fail closed)."""
        return cls(Policy.from_file(Path(path)), org, owner_of)

    @classmethod
    def from_env(cls, org: Any = None, catalog_url: str | None = None) -> PolicyAuthorizer:
        """The policy named by CATALOG_PIPELINES_PERMISSIONS, else config/permissions.yaml, with
        membership and ownership read from the catalog database (`catalog_url`, default settings)."""
        from catalog_pipelines.settings import Settings

        url = catalog_url or Settings.from_env().catalog_database_url
        return cls(
            Policy.from_file(policy_path()),
            org if org is not None else (lambda: catalog_org(url)),
            lambda ref: catalog_owner(url, ref),
        )


# The name the doors used before RBAC replaced the static policy; same constructors, same contract.
StaticPolicy = PolicyAuthorizer


def policy_path() -> Path:
    from catalog_pipelines.settings import Settings

    return Settings.from_env().permissions_config


def catalog_org(url: str) -> OrgGraph:
    """Groups and memberships from the User and Group entities in the catalog database."""
    from analytics.org import OrgGraph
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.db import get_engine

    return OrgGraph.from_entities(CatalogStore(get_engine(url)).iter_entities(kinds=["User", "Group"]))


def catalog_owner(url: str, ref: str) -> str | None:
    """A catalog entity's owner as a canonical ref (groups by default, as Backstage resolves it)."""
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.db import get_engine

    row = CatalogStore(get_engine(url)).get_entity(ref)
    body = (row or {}).get("body") or {}
    owner = (body.get("spec") or {}).get("owner")
    if not owner:
        return None
    namespace = (body.get("metadata") or {}).get("namespace") or "default"
    try:
        return parse_entity_ref(owner, default_kind="group", default_namespace=namespace).canonical()
    except EntityRefError:
        return None


# -------------------------------------------------------------------------------- operator tokens
#
# One concept for every door that proves an identity (the HTTP routes' bearer token, the Dagster
# admin job's `token` field): an operator token maps to an actor ref. Only SHA-256 digests of the
# tokens are kept in memory, a configuration may hold digests instead of the tokens themselves, and
# a presented token is hashed and compared with every known digest in constant time.

TOKEN_DIGEST_PREFIX = "sha256:"
# Tokens are secrets an attacker can guess online (and offline, from a leaked digest): refuse short
# ones in configuration. `catalog-pipelines admin token` makes 43-character ones.
MIN_TOKEN_LENGTH = 16


def token_digest(token: str) -> str:
    """`sha256:<hex>` of a token: what configuration may hold instead of the token itself."""
    return TOKEN_DIGEST_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def _is_digest(value: str) -> bool:
    hexpart = value[len(TOKEN_DIGEST_PREFIX):]
    return value.startswith(TOKEN_DIGEST_PREFIX) and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


def new_token() -> str:
    """A fresh random operator token (256 bits)."""
    return secrets.token_urlsafe(32)


def parse_tokens(spec: str, *, where: str = TOKENS_ENV) -> dict[str, str]:
    """`'sha256:<hex>=user:default/alice,<token>=bob'` → {digest: normalised identity}.

    Each entry is a token's digest (`token_digest`, preferred: the configuration then holds no
    secret) or the token itself (at least MIN_TOKEN_LENGTH characters), mapped to an entity ref.
    Error messages name the entry by position and never echo a token: they end up in logs.
    """
    tokens: dict[str, str] = {}
    for index, item in enumerate(p.strip() for p in (spec or "").split(",")):
        if not item:
            continue
        token, sep, identity = item.rpartition("=")
        token, identity = token.strip(), identity.strip()
        if not sep or not token or not identity:
            raise PolicyError(f"{where}: entry {index + 1} must look like sha256:<hex>=user:default/name or TOKEN=user:default/name")
        if not _is_digest(token) and len(token) < MIN_TOKEN_LENGTH:
            raise PolicyError(f"{where}: entry {index + 1}: a token must have at least {MIN_TOKEN_LENGTH} characters "
                              "(make one with `catalog-pipelines admin token`)")
        digest = token if _is_digest(token) else token_digest(token)
        if digest in tokens:
            raise PolicyError(f"{where}: entry {index + 1} repeats an earlier token")
        try:
            tokens[digest] = normalize_actor(identity)
        except PolicyError as exc:
            raise PolicyError(f"{where}: entry {index + 1}: {exc}") from exc
    return tokens


def tokens_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The operator tokens of CATALOG_PIPELINES_ADMIN_TOKENS, as {digest: identity}."""
    return parse_tokens((environ if environ is not None else settings_environ()).get(TOKENS_ENV, ""))


def token_table(tokens: Mapping[str, str]) -> dict[str, str]:
    """{token or digest: identity} → {digest: normalised identity} (what `identity_for_token` reads)."""
    return {(k if _is_digest(k) else token_digest(k)): normalize_actor(v) for k, v in tokens.items()}


def identity_for_token(tokens: Mapping[str, str], presented: str | None) -> str | None:
    """The identity a presented operator token maps to, or None: the one token → actor resolution.

    `tokens` maps digests (or, for tests and code, tokens) to identities. The presented token is
    hashed and compared with every known digest in constant time, so response timing reveals
    neither which entry nor how much of a guess was right.
    """
    if not presented or not isinstance(presented, str):
        return None
    given = token_digest(presented).encode()
    found = None
    for key, identity in tokens.items():
        digest = key if _is_digest(key) else token_digest(key)
        if hmac.compare_digest(digest.encode(), given):
            found = identity
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
