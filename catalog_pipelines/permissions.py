"""Who may do what: a small authorizer contract and the static policy that implements it for now.

Every door to an operation (CLI, HTTP, Dagster job) asks an `Authorizer` before acting. Today the
answer comes from `config/permissions.yaml` (`StaticPolicy`); the RBAC issue replaces the policy,
not the contract. Permission names are Backstage's (`catalog.ingestion.read`,
`catalog.ingestion.manage`), so the same names work when the catalog sits behind Backstage.

HTTP callers prove who they are with a bearer token; `tokens_from_env` maps tokens to identities
from `CATALOG_PIPELINES_ADMIN_TOKENS='token1=user:default/alice,token2=user:default/bob'`.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

INGESTION_READ = "catalog.ingestion.read"
INGESTION_MANAGE = "catalog.ingestion.manage"

PERMISSIONS_ENV = "CATALOG_PIPELINES_PERMISSIONS"
TOKENS_ENV = "CATALOG_PIPELINES_ADMIN_TOKENS"
ANYONE = "*"


class PolicyError(ValueError):
    """The permissions file or the token list is malformed; the message says where."""


@runtime_checkable
class Authorizer(Protocol):
    def is_allowed(self, actor: str, permission: str, resource: str | None = None) -> bool:
        """May `actor` (an entity ref such as user:default/alice) use `permission` on `resource`?"""
        ...


def normalize_actor(actor: str) -> str:
    """`alice` → `user:default/alice`; refs compare case-insensitively, as in Backstage."""
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    if not isinstance(actor, str) or not actor.strip():
        raise PolicyError("an actor is required (an entity ref such as user:default/alice)")
    try:
        return parse_entity_ref(actor.strip(), default_kind="user").canonical()
    except EntityRefError as exc:
        raise PolicyError(f"actor {actor!r} is not an entity ref: {exc}") from exc


@dataclass(frozen=True)
class Role:
    name: str
    permissions: frozenset[str]
    members: frozenset[str]  # normalised refs, or ANYONE


@dataclass(frozen=True)
class StaticPolicy:
    """Roles from a YAML file: each grants its `permissions` to its `members`.

    ```yaml
    roles:
      ingestion-admins:
        permissions: [catalog.ingestion.read, catalog.ingestion.manage]
        members: [user:default/alice]
      everyone:
        permissions: [catalog.ingestion.read]
        members: ['*']        # any identified caller
    ```

    `resource` is accepted for the RBAC contract but not used: a static role covers every provider.
    No file means no roles, so everything is denied (fail closed).
    """

    roles: tuple[Role, ...] = ()
    source: str = "<empty policy>"
    _grants: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        grants: dict[str, set[str]] = {}
        for role in self.roles:
            for member in role.members:
                grants.setdefault(member, set()).update(role.permissions)
        object.__setattr__(self, "_grants", {m: frozenset(p) for m, p in grants.items()})

    def is_allowed(self, actor: str, permission: str, resource: str | None = None) -> bool:
        try:
            who = normalize_actor(actor)
        except PolicyError:
            return False
        for member in (who, ANYONE):
            granted = self._grants.get(member, frozenset())
            if permission in granted or ANYONE in granted:
                return True
        return False

    def permissions_of(self, actor: str) -> set[str]:
        who = normalize_actor(actor)
        return set(self._grants.get(who, frozenset()) | self._grants.get(ANYONE, frozenset()))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<dict>") -> "StaticPolicy":
        if raw is None:
            return cls((), source)
        if not isinstance(raw, dict) or not isinstance(raw.get("roles", {}), dict):
            raise PolicyError(f"{source}: expected a mapping with a 'roles' mapping")
        roles = []
        for name, spec in (raw.get("roles") or {}).items():
            where = f"{source}: roles.{name}"
            if not isinstance(spec, dict):
                raise PolicyError(f"{where}: expected a mapping with 'permissions' and 'members'")
            unknown = set(spec) - {"permissions", "members", "description"}
            if unknown:
                raise PolicyError(f"{where}: unknown key(s) {sorted(unknown)}")
            permissions = _string_list(spec.get("permissions"), f"{where}.permissions")
            members = _string_list(spec.get("members"), f"{where}.members")
            try:
                normalised = frozenset(m if m == ANYONE else normalize_actor(m) for m in members)
            except PolicyError as exc:
                raise PolicyError(f"{where}.members: {exc}") from exc
            roles.append(Role(str(name), frozenset(permissions), normalised))
        return cls(tuple(roles), source)

    @classmethod
    def from_file(cls, path: Path) -> "StaticPolicy":
        if not path.exists():
            return cls((), f"{path} (missing: everything is denied)")
        with path.open() as fh:
            return cls.from_dict(yaml.safe_load(fh), str(path))

    @classmethod
    def from_env(cls) -> "StaticPolicy":
        """The policy named by CATALOG_PIPELINES_PERMISSIONS, else config/permissions.yaml."""
        from catalog_pipelines.settings import PROJECT_ROOT

        return cls.from_file(Path(os.environ.get(PERMISSIONS_ENV) or PROJECT_ROOT / "config" / "permissions.yaml"))


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: expected a list of strings")
    return value


# ---------------------------------------------------------------------------------- bearer tokens


def parse_tokens(spec: str) -> dict[str, str]:
    """`'tok1=user:default/alice,tok2=bob'` → {token: normalised identity}.

    Error messages never echo a token: they end up in logs.
    """
    tokens: dict[str, str] = {}
    for index, item in enumerate(p.strip() for p in (spec or "").split(",")):
        if not item:
            continue
        token, sep, identity = item.partition("=")
        token, identity = token.strip(), identity.strip()
        if not sep or not token or not identity:
            raise PolicyError(f"{TOKENS_ENV}: entry {index + 1} must look like TOKEN=user:default/name")
        if token in tokens:
            raise PolicyError(f"{TOKENS_ENV}: entry {index + 1} repeats an earlier token")
        try:
            tokens[token] = normalize_actor(identity)
        except PolicyError as exc:
            raise PolicyError(f"{TOKENS_ENV}: entry {index + 1}: {exc}") from exc
    return tokens


def tokens_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    return parse_tokens((environ if environ is not None else os.environ).get(TOKENS_ENV, ""))


def identity_for_token(tokens: Mapping[str, str], presented: str | None) -> str | None:
    """The identity a presented bearer token maps to, or None.

    Every known token is compared in constant time, so response timing does not reveal how much
    of a guessed token was right.
    """
    if not presented:
        return None
    found = None
    given = presented.encode()
    for token, identity in tokens.items():
        if hmac.compare_digest(token.encode(), given):
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
