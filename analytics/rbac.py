"""Role-based access control: the policy model, its validation and its evaluation.

Pure (no Dagster, no database): membership comes from an `OrgGraph` (analytics/org.py), so a role
granted to `group:default/engineering` reaches everybody in engineering's sub-groups too.

The model follows Spotify's RBAC and the community RBAC plugin:

- a **policy** is an ordered list of **roles**; a role has **members** (user refs, group refs, or
  `'*'` for any identified caller) and an ordered list of **permission decisions**;
- a decision matches permissions by name (`catalog.ingestion.read`), by prefix
  (`catalog.ingestion.*`) or globally (`*`), and is `allow`, `deny` or `conditional`;
- a conditional decision carries **conditions**: rules (`IS_MEMBER`, `IS_OWNER`, `IS_ENTITY_OWNER`,
  `IS_ENTITY_KIND`, `IS_RESOURCE`) combined with `allOf` / `anyOf` / `not`, evaluated against the
  resource the caller acts on (a group, a catalog entity, an ingestion provider);
- **the first match decides**: roles in file order, the actor's roles only, and inside a role its
  decisions in order; the first decision whose pattern matches the permission is the answer (a
  conditional one that does not hold is a denial, it does not fall through);
- **default deny**: no match, no access. An empty policy denies everything.

Validation fails with every problem at once, each naming where it is (`roles.analysts.permissions[2]
.conditions.anyOf[0]: unknown rule 'IS_MEMEBER'; did you mean 'IS_MEMBER'?`). Permission names
are checked against `PERMISSIONS` so that a typo cannot silently grant or deny nothing.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from analytics.org import OrgGraph

ANYONE = "*"
ALLOW, DENY, CONDITIONAL = "allow", "deny", "conditional"
DECISIONS = (ALLOW, DENY, CONDITIONAL)

# Resource types: what a permission acts on, and what its conditions can look at.
ENTITY, GROUP, PROVIDER = "catalog-entity", "group", "ingestion-provider"
RESOURCE_TYPES = (ENTITY, GROUP, PROVIDER)
# Refs of these kinds are not catalog entities; they keep their `kind:name` form.
NON_ENTITY_KINDS = {PROVIDER}

# Limits from the community RBAC plugin's conditional-policy validation.
MAX_CONDITION_DEPTH = 12
MAX_CONDITION_NODES = 256
MAX_CRITERIA_ITEMS = 64


class PolicyError(ValueError):
    """The policy is malformed; the message lists every problem and where it is (`path: reason`,
    after `file:line:` when the policy came from YAML)."""

    def __init__(self, problems: str | list[str], source: str = "", lines: list[int] | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.lines = lines
        shown = [f"{source}:{line}: {p}" for p, line in zip(self.problems, lines, strict=True)] if lines is not None else self.problems
        prefix = f"{source}: " if source and lines is None else ""
        if len(self.problems) == 1:
            message = prefix + shown[0]
        else:
            message = f"{source + ': ' if source else ''}{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in shown)
        super().__init__(message)


# --------------------------------------------------------------------------------- permissions


@dataclass(frozen=True)
class Permission:
    name: str
    resource_type: str | None  # None: the permission is about the whole organisation
    action: str
    description: str


def _p(name: str, resource_type: str | None, action: str, description: str) -> tuple[str, Permission]:
    return name, Permission(name, resource_type, action, description)


# Backstage's names where Backstage has one (catalog.*), the issue's names for the rest.
PERMISSIONS: dict[str, Permission] = dict(
    [
        _p("catalog.entity.read", ENTITY, "read", "see catalog entities (catalog overview, catalog health)"),
        _p("catalog.ingestion.read", PROVIDER, "read", "read ingestion health, status and marks"),
        _p("catalog.ingestion.manage", PROVIDER, "update", "operate ingestion: trigger, start, cancel, pause, delay, reset, marks"),
        _p("scorecard.read", GROUP, "read", "scorecard results of a team (without a resource: the organisation's)"),
        _p("scorecard.exemption.create", ENTITY, "create", "exempt an entity from a scorecard check"),
        _p("scorecard.exemption.revoke", ENTITY, "delete", "revoke an exemption"),
        _p("insights.team.read", GROUP, "read", "a team's page: what it owns, vulnerabilities, pipelines, tickets"),
        _p("insights.usage.read", GROUP, "read", "portal usage (without a resource: the organisation's; with a group: its adoption)"),
        _p("surveys.read.team", GROUP, "read", "survey figures of a team"),
        _p("surveys.read.org", None, "read", "survey figures of the organisation and of every team"),
        _p("skills.read", GROUP, "read", "skills exchange: coverage, knowledge risks, mentoring, gigs"),
        _p("audit.read", None, "read", "the audit log of admin and exemption actions"),
    ]
)


def permission_matches(pattern: str, permission: str) -> bool:
    """`*` matches everything, `a.b.*` every permission under `a.b.`, anything else itself."""
    if pattern == ANYONE:
        return True
    if pattern.endswith(".*"):
        return permission.startswith(pattern[:-1])
    return pattern == permission


# -------------------------------------------------------------------------------------- refs


def normalize_ref(value: Any, default_kind: str = "user") -> str:
    """Canonical (lower-case) entity ref; `alice` means `user:default/alice`. Raises PolicyError."""
    if not isinstance(value, str) or not value.strip():
        raise PolicyError("an entity ref is required (such as user:default/alice)")
    try:
        return parse_entity_ref(value.strip(), default_kind=default_kind).canonical()
    except EntityRefError as exc:
        raise PolicyError(f"{value!r} is not an entity ref: {exc}") from None


def resource_key(value: str) -> str:
    """How a resource ref compares: entity refs canonical, `ingestion-provider:x` lower-cased."""
    text = value.strip()
    kind = text.split(":", 1)[0].lower() if ":" in text else ""
    if kind in NON_ENTITY_KINDS:
        return text.lower()
    try:
        return parse_entity_ref(text, default_kind="component").canonical()
    except EntityRefError:
        return text.lower()


def resource_type_of_kind(kind: str | None) -> str | None:
    if not kind:
        return None
    kind = kind.lower()
    if kind in NON_ENTITY_KINDS:
        return kind
    return GROUP if kind == "group" else ENTITY


# ------------------------------------------------------------------------------ who and what


@dataclass(frozen=True)
class Subject:
    """An actor with their memberships resolved through the catalog.

    - `direct_groups`: the groups that list the actor as a member (or that `memberOf` names);
    - `groups`: the groups the actor belongs to, nested: their own and every ancestor (a member of
      a sub-team is a member of its department). Role members are matched against these;
    - `owned_groups`: the groups the actor "owns": their own and every group below them (a
      department head listed in the department group leads its teams);
    - `ownership_refs`: whose entities count as the actor's: the actor and the groups they own
      (Backstage's ownership refs, extended down the hierarchy; not up, or every member of a
      department would own the department's entities).
    """

    ref: str
    direct_groups: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    owned_groups: frozenset[str] = frozenset()

    @property
    def ownership_refs(self) -> frozenset[str]:
        return frozenset({self.ref}) | self.owned_groups

    @classmethod
    def resolve(cls, actor: str, org: OrgGraph | None = None) -> Subject:
        ref = normalize_ref(actor)
        if org is None:
            return cls(ref)
        direct = {ref} if ref.startswith("group:") else org.teams_of(ref)
        groups: set[str] = set(direct)
        for group in direct:
            groups.update(org.ancestors(group))
        owned: set[str] = set(direct)
        if direct:
            children: dict[str, list[str]] = {}
            for child, parent in org.parent.items():
                children.setdefault(parent, []).append(child)
            stack = list(direct)
            while stack:
                for child in children.get(stack.pop(), ()):
                    if child not in owned:
                        owned.add(child)
                        stack.append(child)
        return cls(ref, frozenset(direct), frozenset(groups), frozenset(owned))


@dataclass(frozen=True)
class Resource:
    """What a permission is checked against: a ref, its type, and for entities kind and owner."""

    ref: str
    type: str | None
    kind: str | None = None
    owner: str | None = None

    @classmethod
    def of(cls, value: Resource | str | None, owner_of: Callable[[str], str | None] | None = None) -> Resource | None:
        if value is None or isinstance(value, Resource):
            return value
        key = resource_key(value)
        kind = key.split(":", 1)[0] if ":" in key else None
        rtype = resource_type_of_kind(kind)
        owner = owner_of(key) if rtype == ENTITY and owner_of is not None else None
        return cls(key, rtype, kind, owner)


# ------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    name: str
    resource_types: tuple[str, ...]
    description: str
    params: dict[str, str]  # name -> "bool" | "refs" | "kinds"
    test: Callable[[Subject, Resource, Mapping[str, Any]], bool]
    mask: Callable[[Subject, pd.DataFrame, Mapping[str, Any]], np.ndarray]


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    import pandas as pd

    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _member_of(subject: Subject, params: Mapping[str, Any]) -> frozenset[str]:
    return subject.groups if params.get("nested") else subject.direct_groups


def _is_member(subject: Subject, resource: Resource, params: Mapping[str, Any]) -> bool:
    return resource.ref in _member_of(subject, params)


def _is_member_mask(subject: Subject, frame: pd.DataFrame, params: Mapping[str, Any]) -> np.ndarray:
    return _col(frame, "ref").isin(_member_of(subject, params)).to_numpy(dtype=bool)


def _is_owner(subject: Subject, resource: Resource, params: Mapping[str, Any]) -> bool:
    return resource.ref in subject.owned_groups


def _is_owner_mask(subject: Subject, frame: pd.DataFrame, params: Mapping[str, Any]) -> np.ndarray:
    return _col(frame, "ref").isin(subject.owned_groups).to_numpy(dtype=bool)


def _claims(subject: Subject, params: Mapping[str, Any]) -> frozenset[str]:
    claims = params.get("claims")
    if not claims:
        return subject.ownership_refs
    out: set[str] = set()
    for claim in claims:
        if claim == "$ownerRefs":
            out |= subject.ownership_refs
        elif claim == "$currentUser":
            out.add(subject.ref)
        else:
            out.add(claim)
    return frozenset(out)


def ownership_claims(subject: Subject, params: Mapping[str, Any]) -> frozenset[str]:
    """The owner refs `IS_ENTITY_OWNER` with these params accepts for this subject (for doors
    that turn the rule into a query, such as the catalog read API)."""
    return _claims(subject, params)


def _is_entity_owner(subject: Subject, resource: Resource, params: Mapping[str, Any]) -> bool:
    return resource.owner is not None and resource.owner in _claims(subject, params)


def _is_entity_owner_mask(subject: Subject, frame: pd.DataFrame, params: Mapping[str, Any]) -> np.ndarray:
    return _col(frame, "owner").isin(_claims(subject, params)).to_numpy(dtype=bool)


def _is_entity_kind(subject: Subject, resource: Resource, params: Mapping[str, Any]) -> bool:
    return (resource.kind or "") in params["kinds"]


def _is_entity_kind_mask(subject: Subject, frame: pd.DataFrame, params: Mapping[str, Any]) -> np.ndarray:
    return _col(frame, "kind").str.lower().isin(params["kinds"]).to_numpy(dtype=bool)


def _is_resource(subject: Subject, resource: Resource, params: Mapping[str, Any]) -> bool:
    return resource.ref in params["refs"]


def _is_resource_mask(subject: Subject, frame: pd.DataFrame, params: Mapping[str, Any]) -> np.ndarray:
    return _col(frame, "ref").isin(params["refs"]).to_numpy(dtype=bool)


RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        # Direct membership by default: with `nested: true` a team member also sees the groups
        # above their team, whose totals minus their own team's give away a sibling team's figures.
        Rule("IS_MEMBER", (GROUP,), "the group is one the user is a direct member of (params: nested: true "
             "to include the groups above it)", {"nested": "bool"}, _is_member, _is_member_mask),
        Rule("IS_OWNER", (GROUP,), "the group is one the user owns: their own group or one below it",
             {}, _is_owner, _is_owner_mask),
        Rule("IS_ENTITY_OWNER", (ENTITY,), "the entity is owned by the user or a group they belong to or own "
             "(params: claims: refs, $currentUser, $ownerRefs)", {"claims": "claims"}, _is_entity_owner, _is_entity_owner_mask),
        Rule("IS_ENTITY_KIND", (ENTITY,), "the entity is of one of these kinds (params: kinds)", {"kinds": "kinds"},
             _is_entity_kind, _is_entity_kind_mask),
        Rule("IS_RESOURCE", RESOURCE_TYPES, "the resource is one of these refs (params: refs)", {"refs": "refs"},
             _is_resource, _is_resource_mask),
    )
}
REQUIRED_PARAMS = {"IS_ENTITY_KIND": ("kinds",), "IS_RESOURCE": ("refs",)}


@dataclass(frozen=True)
class Condition:
    """A rule with its parameters, or `allOf` / `anyOf` / `not` over conditions."""

    op: str  # "rule" | "allOf" | "anyOf" | "not"
    rule: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[Condition, ...] = ()

    def test(self, subject: Subject, resource: Resource | None) -> bool:
        if resource is None:
            return False
        if self.op == "rule":
            rule = RULES[self.rule or ""]
            # A rule only speaks about its own resource types; anything else does not match.
            return resource.type in rule.resource_types and rule.test(subject, resource, self.params)
        if self.op == "allOf":
            return all(c.test(subject, resource) for c in self.children)
        if self.op == "anyOf":
            return any(c.test(subject, resource) for c in self.children)
        return not self.children[0].test(subject, resource)

    def mask(self, subject: Subject, frame: pd.DataFrame, resource_type: str) -> np.ndarray:
        """Vectorised `test` over a frame of resources of one type (columns ref, and for entities
        kind and owner): one boolean per row."""
        import numpy as np

        if self.op == "rule":
            rule = RULES[self.rule or ""]
            if resource_type not in rule.resource_types:
                return np.zeros(len(frame), dtype=bool)
            return rule.mask(subject, frame, self.params)
        masks = [c.mask(subject, frame, resource_type) for c in self.children]
        if self.op == "allOf":
            return np.logical_and.reduce(masks) if masks else np.ones(len(frame), dtype=bool)
        if self.op == "anyOf":
            return np.logical_or.reduce(masks) if masks else np.zeros(len(frame), dtype=bool)
        return ~masks[0]

    def rules(self) -> set[str]:
        return {self.rule} if self.op == "rule" and self.rule else set().union(*(c.rules() for c in self.children))

    def describe(self) -> str:
        if self.op == "rule":
            params = ", ".join(f"{k}={v}" for k, v in self.params.items())
            return f"{self.rule}({params})"
        if self.op == "not":
            return f"not {self.children[0].describe()}"
        return f"{self.op}[" + ", ".join(c.describe() for c in self.children) + "]"


# ------------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class Grant:
    pattern: str
    decision: str
    condition: Condition | None = None


@dataclass(frozen=True)
class Role:
    name: str
    members: frozenset[str]  # canonical refs, or ANYONE
    grants: tuple[Grant, ...]
    description: str = ""

    def includes(self, subject: Subject) -> bool:
        return ANYONE in self.members or subject.ref in self.members or bool(self.members & subject.groups)


@dataclass(frozen=True)
class Decision:
    """The answer for one actor and permission, before looking at a resource."""

    result: str  # allow | deny | conditional
    permission: str
    role: str | None = None
    grant: int | None = None
    condition: Condition | None = None
    subject: Subject | None = None

    def allows(self, resource: Resource | None = None) -> bool:
        """Allowed on this resource? A conditional decision needs a resource to say yes."""
        if self.result == ALLOW:
            return True
        if self.result == CONDITIONAL and self.condition is not None and self.subject is not None:
            return self.condition.test(self.subject, resource)
        return False

    def mask(self, frame: pd.DataFrame, resource_type: str) -> np.ndarray:
        """Which rows of `frame` (resources of one type) are allowed."""
        import numpy as np

        if self.result == ALLOW:
            return np.ones(len(frame), dtype=bool)
        if self.result == CONDITIONAL and self.condition is not None and self.subject is not None:
            return self.condition.mask(self.subject, frame, resource_type)
        return np.zeros(len(frame), dtype=bool)

    def explain(self) -> str:
        if self.role is None:
            return f"{self.permission}: denied by default (no role of this actor matches it)"
        how = self.result if self.condition is None else f"conditional on {self.condition.describe()}"
        return f"{self.permission}: {how}, by role '{self.role}' (permission decision #{(self.grant or 0) + 1})"


@dataclass(frozen=True)
class Policy:
    roles: tuple[Role, ...] = ()
    source: str = "<empty policy>"
    digest: str = ""

    def decide(self, subject: Subject, permission: str) -> Decision:
        """First match decides: the actor's roles in order, each role's decisions in order."""
        for role in self.roles:
            if not role.includes(subject):
                continue
            for index, grant in enumerate(role.grants):
                if permission_matches(grant.pattern, permission):
                    return Decision(grant.decision, permission, role.name, index, grant.condition, subject)
        return Decision(DENY, permission, subject=subject)

    def is_allowed(self, subject: Subject, permission: str, resource: Resource | None = None) -> bool:
        return self.decide(subject, permission).allows(resource)

    @property
    def member_groups(self) -> set[str]:
        return {m for r in self.roles for m in r.members if m.startswith("group:")}

    @property
    def needs_org(self) -> bool:
        """Whether evaluating this policy needs catalog membership (group members or group rules)."""
        conditional_rules = {rule for r in self.roles for g in r.grants if g.condition for rule in g.condition.rules()}
        return bool(self.member_groups) or bool(conditional_rules & {"IS_MEMBER", "IS_OWNER", "IS_ENTITY_OWNER"})

    # ------------------------------------------------------------------------------ loading

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<dict>") -> Policy:
        """A policy from its decoded document; a document from `config_files.load_yaml` (as
        `from_yaml` reads it) knows its lines, and every problem then names its line too."""
        from catalog_pipelines.model import config_files

        problems: list[str] = []
        roles = _parse_policy(raw, problems, source)
        if problems:
            if not config_files.line(raw, default=0):  # a plain dict: no lines to tell
                raise PolicyError(problems, source)
            located = sorted(((config_files.line_of(raw, _path_of(p)), p) for p in problems), key=lambda lp: lp[0])
            raise PolicyError([p for _, p in located], source, [line for line, _ in located])
        digest = hashlib.sha256(repr(raw).encode()).hexdigest()[:12]
        return cls(tuple(roles), source, digest)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<yaml>") -> Policy:
        import yaml

        from catalog_pipelines.model import config_files

        try:
            raw = config_files.load_yaml(text)
        except config_files.DuplicateKeyError as exc:
            raise PolicyError(f"not valid YAML at line {exc.line}: duplicate key {exc.key!r}", source) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise PolicyError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", source) from None
        return cls.from_dict(raw, source)

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        """A missing file is an empty policy: everything is denied (fail closed)."""
        path = Path(path)
        if not path.exists():
            return cls((), f"{path} (missing: everything is denied)")
        return cls.from_yaml(path.read_text(), str(path))


def _path_of(problem: str) -> tuple[Any, ...]:
    """The document path a problem starts with (`roles.a.permissions[2]: ...`)."""
    where = problem.split(": ", 1)[0] if ": " in problem else ""
    return tuple(int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", where))


def _suggest(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _parse_policy(raw: Any, problems: list[str], source: str) -> list[Role]:
    """The roles of a policy document: its shape checked by `PolicyFile` (pydantic), then, on every
    member and permission decision the model accepted, what a schema cannot say (refs, permission
    names and prefixes, rules and their params, which rules apply to which permission)."""
    from catalog_pipelines.model import config_files

    if raw is None:
        return []
    _, issues = config_files.validate(PolicyFile, raw, source)
    problems += [f"{i.path}: {i.message}" if i.path else i.message for i in issues]
    roles_raw = raw.get("roles") if isinstance(raw, dict) else None
    roles = []
    for name, spec in (roles_raw or {}).items() if isinstance(roles_raw, dict) else ():
        if isinstance(spec, dict):
            roles.append(_parse_role(str(name), spec, f"roles.{name}", problems))
    return roles


def _parse_role(name: str, spec: Any, where: str, problems: list[str]) -> Role:
    members: set[str] = set()
    raw_members = spec.get("members")
    for index, member in enumerate(raw_members if isinstance(raw_members, list) else []):
        at = f"{where}.members[{index}]"
        if member == ANYONE:
            members.add(ANYONE)
            continue
        if not isinstance(member, str):
            continue  # the model said so
        if not member.strip():
            problems.append(f"{at}: expected a user or group ref such as group:default/platform, got {member!r}")
            continue
        try:
            ref = normalize_ref(member)
        except PolicyError as exc:
            problems.append(f"{at}: {exc.problems[0]}")
            continue
        if not ref.startswith(("user:", "group:")):
            problems.append(f"{at}: members are users or groups, got {member!r}")
            continue
        members.add(ref)
    raw_grants = spec.get("permissions")
    grants = []
    for index, item in enumerate(raw_grants if isinstance(raw_grants, list) else []):
        if _fits(item):
            grant = _parse_grant(item, f"{where}.permissions[{index}]", problems)
            if grant is not None:
                grants.append(grant)
    return Role(name, frozenset(members), tuple(grants), str(spec.get("description") or ""))


def _fits(item: Any) -> bool:
    """Whether a permission decision has the model's shape (else the model has said why)."""
    from pydantic import ValidationError

    try:
        _GRANT.validate_python(item)
    except ValidationError:
        return False
    return True


def _matched_permissions(pattern: str, where: str, problems: list[str]) -> list[Permission] | None:
    if not isinstance(pattern, str) or not pattern:
        problems.append(f"{where}: expected a permission name such as catalog.ingestion.read, got {pattern!r}")
        return None
    if pattern == ANYONE:
        return list(PERMISSIONS.values())
    if "*" in pattern:
        if not pattern.endswith(".*") or "*" in pattern[:-1]:
            problems.append(f"{where}: {pattern!r}: '*' may only be the whole pattern or its last part (catalog.ingestion.*)")
            return None
        matched = [p for n, p in PERMISSIONS.items() if permission_matches(pattern, n)]
        if not matched:
            problems.append(f"{where}: {pattern!r} matches no known permission{_suggest(pattern, PERMISSIONS)}")
            return None
        return matched
    if pattern not in PERMISSIONS:
        problems.append(f"{where}: unknown permission {pattern!r}{_suggest(pattern, PERMISSIONS)} "
                        f"(known: {', '.join(sorted(PERMISSIONS))})")
        return None
    return [PERMISSIONS[pattern]]


def _parse_grant(item: Any, where: str, problems: list[str]) -> Grant | None:
    """A permission decision of the model's shape: a name, or {permission, decision, conditions}."""
    if isinstance(item, str):
        return Grant(item, ALLOW) if _matched_permissions(item, where, problems) is not None else None
    pattern = item["permission"]
    matched = _matched_permissions(pattern, f"{where}.permission", problems)
    conditions = item.get("conditions")
    decision = item.get("decision") or (CONDITIONAL if conditions is not None else ALLOW)
    if decision == CONDITIONAL and conditions is None:
        problems.append(f"{where}: a conditional decision needs 'conditions'")
        return None
    if decision != CONDITIONAL and conditions is not None:
        problems.append(f"{where}: 'conditions' only go with decision: conditional (or leave 'decision' out), not {decision!r}")
        return None
    condition = None
    if conditions is not None:
        counter = [0]
        condition = _parse_condition(conditions, f"{where}.conditions", problems, depth=1, counter=counter)
        if counter[0] > MAX_CONDITION_NODES:
            problems.append(f"{where}.conditions: {counter[0]} nodes, more than the limit of {MAX_CONDITION_NODES}")
        if condition is not None and matched:
            for permission in matched:
                if permission.resource_type is None:
                    problems.append(f"{where}: {permission.name} is not about a resource, so it cannot be conditional "
                                    "(allow or deny it)")
                    continue
                for rule in sorted(condition.rules()):
                    if permission.resource_type not in RULES[rule].resource_types:
                        problems.append(f"{where}: rule {rule} applies to {', '.join(RULES[rule].resource_types)}, "
                                        f"but {permission.name} is about a {permission.resource_type}")
    if matched is None:
        return None
    return Grant(pattern, decision, condition)


def _parse_condition(raw: Any, where: str, problems: list[str], depth: int, counter: list[int]) -> Condition | None:
    """A condition of the model's shape (one of allOf / anyOf / not / rule); limits, rules, params."""
    counter[0] += 1
    if depth > MAX_CONDITION_DEPTH:
        problems.append(f"{where}: conditions nested deeper than {MAX_CONDITION_DEPTH} levels")
        return None
    op = next((k for k in ("allOf", "anyOf", "not") if k in raw), None)
    if op == "not":
        child = _parse_condition(raw["not"], f"{where}.not", problems, depth + 1, counter)
        return Condition("not", children=(child,)) if child else None
    if op is not None:
        items = raw[op]
        if len(items) > MAX_CRITERIA_ITEMS:
            problems.append(f"{where}.{op}: {len(items)} items, more than the limit of {MAX_CRITERIA_ITEMS}")
        children = [_parse_condition(c, f"{where}.{op}[{i}]", problems, depth + 1, counter) for i, c in enumerate(items)]
        if any(c is None for c in children):
            return None
        return Condition(op, children=tuple(c for c in children if c is not None))
    name = raw["rule"]
    if name not in RULES:
        problems.append(f"{where}: unknown rule {name!r}{_suggest(str(name), RULES)} (known: {', '.join(RULES)})")
        return None
    rule = RULES[name]
    if "resourceType" in raw and raw["resourceType"] not in rule.resource_types:
        problems.append(f"{where}: rule {name} applies to {', '.join(rule.resource_types)}, not {raw['resourceType']!r}")
    params_raw = raw.get("params") or {}
    params: dict[str, Any] = {}
    for key, value in params_raw.items():
        kind = rule.params.get(key)
        at = f"{where}.params.{key}"
        if kind is None:
            problems.append(f"{at}: {name} has no parameter {key!r}" + (f" (it takes {', '.join(rule.params)})" if rule.params else " (it takes none)"))
        elif kind == "bool":
            if not isinstance(value, bool):
                problems.append(f"{at}: expected true or false, got {value!r}")
            params[key] = bool(value)
        else:
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                problems.append(f"{at}: expected a non-empty list of strings")
                continue
            if kind == "kinds":
                params[key] = frozenset(v.lower() for v in value)
            elif kind == "refs":
                params[key] = frozenset(resource_key(v) for v in value)
            else:  # claims
                claims = set()
                for v in value:
                    if v in ("$currentUser", "$ownerRefs"):
                        claims.add(v)
                    else:
                        try:
                            claims.add(normalize_ref(v, default_kind="group"))
                        except PolicyError as exc:
                            problems.append(f"{at}: {exc.problems[0]}")
                params[key] = frozenset(claims)
    for required in REQUIRED_PARAMS.get(name, ()):
        if required not in params_raw:
            problems.append(f"{where}: {name} needs params.{required}")
    return Condition("rule", name, params)


# ------------------------------------------------------------------------------ schema (pydantic)
# The shape of the policy file: `Policy.from_dict` parses every policy through it (then checks the
# rules' meaning: permission names and prefixes, which rules apply to which resource), and
# `catalog-pipelines config schema/validate` publish and apply it (editors complete the names).

from typing import Annotated, Literal, Union  # noqa: E402

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter  # noqa: E402


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleConditionModel(_Strict):
    rule: str = Field(description="IS_MEMBER, IS_OWNER, IS_ENTITY_OWNER, IS_ENTITY_KIND, IS_RESOURCE, ...")
    params: dict[str, Any] | None = None
    resourceType: str | None = None


class AllOfModel(_Strict):
    allOf: list["PolicyCondition"] = Field(min_length=1)


class AnyOfModel(_Strict):
    anyOf: list["PolicyCondition"] = Field(min_length=1)


class NotModel(_Strict):
    not_: "PolicyCondition" = Field(alias="not")


def _condition_kind(value: Any) -> str:
    if isinstance(value, dict):
        return next((name for key, name in (("allOf", "AllOfModel"), ("anyOf", "AnyOfModel"), ("not", "NotModel")) if key in value), "RuleConditionModel")
    return type(value).__name__


# Tagged by the key present (tags are the class names, so error paths skip them).
PolicyCondition = Annotated[
    Union[
        Annotated[AllOfModel, Tag("AllOfModel")],
        Annotated[AnyOfModel, Tag("AnyOfModel")],
        Annotated[NotModel, Tag("NotModel")],
        Annotated[RuleConditionModel, Tag("RuleConditionModel")],
    ],
    Discriminator(_condition_kind),
]


class GrantModel(_Strict):
    permission: str = Field(description="a permission name, a prefix (catalog.ingestion.*) or '*'")
    decision: Literal[DECISIONS] | None = None  # type: ignore[valid-type]
    conditions: PolicyCondition | None = None


# A permission decision: a permission name, or {permission, decision, conditions}.
GrantItem = Annotated[Union[Annotated[str, Tag("str")], Annotated[GrantModel, Tag("GrantModel")]], Discriminator(lambda v: "str" if isinstance(v, str) else "GrantModel")]


class RoleModel(_Strict):
    description: str | None = None
    members: list[str] | None = Field(None, description="user or group refs, or '*' for anyone")
    permissions: list[GrantItem] | None = None


class PolicyFile(_Strict):
    """The RBAC policy (config/permissions.yaml): roles apply in the order written."""

    version: Literal[1] = 1
    description: str | None = None
    roles: dict[str, RoleModel] | None = None


for _model in (AllOfModel, AnyOfModel, NotModel, GrantModel, RoleModel, PolicyFile):
    _model.model_rebuild()
_GRANT: TypeAdapter[Any] = TypeAdapter(GrantItem)
