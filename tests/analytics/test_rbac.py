"""RBAC: the policy model, validation, evaluation (analytics/rbac.py) and the authorizer every door
uses (catalog_pipelines/permissions.py), with membership resolved through the catalog.

Protects: default deny (an empty policy denies everything), first match decides, nested group
members, the membership/ownership rules and their vectorised twins agreeing, validation errors
naming every problem and where it is, the shipped policy, and the admin operations enforcing a
group-based policy read from the catalog database.
"""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from analytics.org import OrgGraph
from analytics.rbac import (
    ENTITY,
    GROUP,
    PERMISSIONS,
    PROVIDER,
    RULES,
    Policy,
    PolicyError,
    Resource,
    Subject,
)
from catalog_pipelines.permissions import (
    INGESTION_MANAGE,
    INGESTION_READ,
    NotAllowed,
    PolicyAuthorizer,
    normalize_actor,
)
from catalog_pipelines.settings import PROJECT_ROOT
from dashboards.sample import example_entities

ORG = OrgGraph.from_entities(example_entities())
DANA, PAULA, QUINN, WIM = "user:default/dana", "user:default/paula", "user:default/quinn", "user:default/wim"
ALPHA, ZULU, BRAVO, PLATFORM, PRODUCT, ACME = (f"group:default/{g}" for g in ("alpha", "zulu", "bravo", "platform", "product", "acme"))
TEAM_SCOPED = {"anyOf": [{"rule": "IS_MEMBER"}, {"rule": "IS_OWNER"}]}


def subject(ref: str) -> Subject:
    return Subject.resolve(ref, ORG)


def group(ref: str) -> Resource:
    return Resource.of(ref)


# ----------------------------------------------------------------------------- default deny


@pytest.mark.parametrize("raw", [None, {}, {"roles": {}}, {"roles": None}, {"roles": {"nobody": {"members": [], "permissions": ["*"]}}}])
def test_an_empty_policy_denies_every_permission_to_everyone(raw):
    policy = Policy.from_dict(raw)
    resources = [None, group(ALPHA), Resource.of("component:default/alpha-api", lambda r: ALPHA), Resource.of("ingestion-provider:seed")]
    for actor, permission, resource in itertools.product([DANA, PAULA, "user:default/admin"], PERMISSIONS, resources):
        assert not policy.is_allowed(subject(actor), permission, resource), (actor, permission, resource)
    assert policy.decide(subject(DANA), "catalog.ingestion.read").explain().endswith("denied by default (no role of this actor matches it)")


def test_a_missing_policy_file_denies_everything(tmp_path):
    authorizer = PolicyAuthorizer.from_file(tmp_path / "nope.yaml", org=ORG)
    assert not any(authorizer.is_allowed("user:default/admin", p, "ingestion-provider:x") for p in PERMISSIONS)
    assert "missing: everything is denied" in authorizer.source


# ------------------------------------------------------------------------ first match decides


def test_first_matching_role_decides_even_when_a_later_role_would_allow():
    policy = Policy.from_dict({"roles": {
        "auditors": {"members": [ALPHA], "permissions": [{"permission": "catalog.ingestion.*", "decision": "deny"}]},
        "everyone": {"members": ["*"], "permissions": ["*"]},
    }})
    assert not policy.is_allowed(subject(DANA), INGESTION_READ, Resource.of("ingestion-provider:x"))
    assert policy.is_allowed(subject(DANA), "audit.read")  # not matched by the first role: falls to the next
    assert policy.is_allowed(subject(QUINN), INGESTION_READ, Resource.of("ingestion-provider:x"))
    assert policy.decide(subject(DANA), INGESTION_MANAGE).role == "auditors"


def test_first_matching_decision_inside_a_role_decides():
    policy = Policy.from_dict({"roles": {"r": {"members": ["*"], "permissions": [
        {"permission": "surveys.read.org", "decision": "deny"}, "*"]}}})
    assert not policy.is_allowed(subject(DANA), "surveys.read.org")
    assert policy.is_allowed(subject(DANA), "surveys.read.team", group(ZULU))


def test_a_conditional_decision_that_does_not_hold_denies_instead_of_falling_through():
    policy = Policy.from_dict({"roles": {
        "members": {"members": ["*"], "permissions": [{"permission": "surveys.read.team", "conditions": {"rule": "IS_MEMBER"}}]},
        "later": {"members": ["*"], "permissions": ["surveys.read.team"]},
    }})
    assert policy.is_allowed(subject(DANA), "surveys.read.team", group(ALPHA))
    assert not policy.is_allowed(subject(DANA), "surveys.read.team", group(ZULU))
    assert not policy.is_allowed(subject(DANA), "surveys.read.team")  # conditional needs a resource to say yes


# ---------------------------------------------------------------------------------- members


def test_group_members_include_everyone_in_its_sub_groups_through_the_catalog():
    policy = Policy.from_dict({"roles": {"platform": {"members": [PLATFORM], "permissions": ["audit.read"]}}})
    assert policy.is_allowed(subject(DANA), "audit.read")  # alpha ⊂ platform
    assert policy.is_allowed(subject(PAULA), "audit.read")  # direct member
    assert policy.is_allowed(subject(QUINN), "audit.read")  # zulu ⊂ platform
    assert not policy.is_allowed(subject(WIM), "audit.read")  # bravo ⊂ product
    assert not policy.is_allowed(Subject.resolve(DANA, None), "audit.read")  # no org: group members match nobody


def test_user_members_and_anyone_match_case_insensitively():
    policy = Policy.from_dict({"roles": {"a": {"members": ["Dana"], "permissions": ["audit.read"]},
                                         "b": {"members": ["*"], "permissions": ["catalog.ingestion.read"]}}})
    assert policy.is_allowed(subject("user:default/DANA"), "audit.read")
    assert not policy.is_allowed(subject(QUINN), "audit.read")
    assert policy.is_allowed(subject(QUINN), INGESTION_READ, Resource.of("ingestion-provider:any"))


# ------------------------------------------------------------------------------------ rules


def test_member_and_owner_rules_cover_own_groups_and_below_but_not_above_or_siblings():
    def allowed(actor: str, conditions: dict) -> set[str]:
        policy = Policy.from_dict({"roles": {"r": {"members": ["*"], "permissions": [{"permission": "surveys.read.team", "conditions": conditions}]}}})
        return {g for g in ORG.all_groups() if policy.is_allowed(subject(actor), "surveys.read.team", group(g))}

    assert allowed(DANA, TEAM_SCOPED) == {ALPHA}
    assert allowed(PAULA, TEAM_SCOPED) == {PLATFORM, ALPHA, ZULU}  # a department lead owns its teams
    assert allowed(DANA, {"rule": "IS_MEMBER", "params": {"nested": True}}) == {ALPHA, PLATFORM, ACME}
    assert allowed(PAULA, {"rule": "IS_MEMBER"}) == {PLATFORM}
    assert allowed(PAULA, {"not": {"rule": "IS_OWNER"}}) == {ACME, PRODUCT, BRAVO}
    assert allowed(DANA, {"allOf": [{"rule": "IS_OWNER"}, {"rule": "IS_RESOURCE", "params": {"refs": [ZULU]}}]}) == set()


def test_entity_rules_use_the_entity_owner_and_kind():
    owners = {"component:default/alpha-api": ALPHA, "component:default/zulu-ledger": ZULU, "system:default/alpha-system": ALPHA}
    policy = Policy.from_dict({"roles": {"r": {"members": ["*"], "permissions": [
        {"permission": "scorecard.exemption.create",
         "conditions": {"allOf": [{"rule": "IS_ENTITY_OWNER"}, {"rule": "IS_ENTITY_KIND", "params": {"kinds": ["Component"]}}]}}]}}})

    def may(actor: str, ref: str) -> bool:
        return policy.is_allowed(subject(actor), "scorecard.exemption.create", Resource.of(ref, owners.get))

    assert may(DANA, "component:default/alpha-api")
    assert not may(DANA, "component:default/zulu-ledger")
    assert not may(DANA, "system:default/alpha-system")  # owned, but not a component
    assert may(PAULA, "component:default/zulu-ledger")  # platform's lead owns zulu's entities
    claims = Policy.from_dict({"roles": {"r": {"members": ["*"], "permissions": [
        {"permission": "scorecard.exemption.create", "conditions": {"rule": "IS_ENTITY_OWNER", "params": {"claims": ["zulu"]}}}]}}})
    assert claims.is_allowed(subject(DANA), "scorecard.exemption.create", Resource.of("component:default/zulu-ledger", owners.get))


def test_resource_rule_scopes_ingestion_to_named_providers():
    policy = Policy.from_dict({"roles": {"ops": {"members": [DANA], "permissions": [
        {"permission": INGESTION_MANAGE, "conditions": {"rule": "IS_RESOURCE", "params": {"refs": ["ingestion-provider:Alpha"]}}}]}}})
    assert policy.is_allowed(subject(DANA), INGESTION_MANAGE, Resource.of("ingestion-provider:alpha"))
    assert not policy.is_allowed(subject(DANA), INGESTION_MANAGE, Resource.of("ingestion-provider:beta"))
    assert not policy.is_allowed(subject(DANA), INGESTION_MANAGE, Resource.of("ingestion-provider:*"))  # all providers at once


def test_vectorised_masks_agree_with_the_scalar_rules():
    """The site filters rows with masks; the doors check one resource at a time: same answers."""
    owners = {f"component:default/c{i}": g for i, g in enumerate(sorted(ORG.all_groups()))}
    entities = pd.DataFrame({"ref": list(owners), "kind": "component", "owner": list(owners.values())})
    groups = pd.DataFrame({"ref": sorted(ORG.all_groups())})
    conditions = [TEAM_SCOPED, {"rule": "IS_MEMBER", "params": {"nested": True}}, {"not": {"rule": "IS_OWNER"}},
                  {"rule": "IS_RESOURCE", "params": {"refs": [ZULU, "component:default/c1"]}}]
    entity_conditions = [{"rule": "IS_ENTITY_OWNER"}, {"anyOf": [{"rule": "IS_ENTITY_KIND", "params": {"kinds": ["api"]}},
                                                                 {"not": {"rule": "IS_ENTITY_OWNER"}}]}]
    for actor in (DANA, PAULA, WIM, "user:default/nobody"):
        s = subject(actor)
        for permission, frame, rtype, conds in (("surveys.read.team", groups, GROUP, conditions),
                                                 ("scorecard.exemption.create", entities, ENTITY, entity_conditions)):
            for cond in conds:
                policy = Policy.from_dict({"roles": {"r": {"members": ["*"], "permissions": [{"permission": permission, "conditions": cond}]}}})
                decision = policy.decide(s, permission)
                mask = decision.mask(frame, rtype)
                scalar = [decision.allows(Resource(r.ref, rtype, r.kind if rtype == ENTITY else "group",
                                                   r.owner if rtype == ENTITY else None)) for r in frame.assign(
                    kind=frame.get("kind", "group"), owner=frame.get("owner")).itertuples()]
                assert mask.tolist() == scalar, (actor, cond)
    assert set(RULES) == {"IS_MEMBER", "IS_OWNER", "IS_ENTITY_OWNER", "IS_ENTITY_KIND", "IS_RESOURCE"}
    assert PROVIDER in RULES["IS_RESOURCE"].resource_types


# ------------------------------------------------------------------------------- validation


def test_validation_lists_every_problem_with_its_location_and_a_suggestion():
    raw = {"roles": {
        "analysts": {"members": [PLATFORM, "component:default/x", ":bad"], "permisions": [], "permissions": [
            "catalog.ingestion.mange",
            {"permission": "surveys.read.team", "conditions": {"anyOf": [{"rule": "IS_MEMEBER"}]}},
            {"permission": "surveys.read.org", "conditions": {"rule": "IS_MEMBER"}},
            {"permission": "scorecard.read", "conditions": {"rule": "IS_ENTITY_OWNER"}},
            {"permission": "audit.read", "decision": "maybe"},
            {"permission": "skills.read", "decision": "allow", "conditions": {"rule": "IS_OWNER"}},
            {"permission": "insights.*.read"},
            {"permission": "catalog.entity.read", "conditions": {"rule": "IS_ENTITY_KIND"}},
        ]},
        "other": "not a mapping",
    }}
    with pytest.raises(PolicyError) as err:
        Policy.from_dict(raw, "policy.yaml")
    text = str(err.value)
    expected = [
        "roles.analysts.permisions: unknown key 'permisions' (did you mean 'permissions'?)",
        "roles.analysts.members[1]: members are users or groups", "roles.analysts.members[2]:",
        "roles.analysts.permissions[0]: unknown permission 'catalog.ingestion.mange'; did you mean 'catalog.ingestion.manage'?",
        "roles.analysts.permissions[1].conditions.anyOf[0]: unknown rule 'IS_MEMEBER'; did you mean 'IS_MEMBER'?",
        "roles.analysts.permissions[2]: surveys.read.org is not about a resource, so it cannot be conditional",
        "roles.analysts.permissions[3]: rule IS_ENTITY_OWNER applies to catalog-entity, but scorecard.read is about a group",
        "roles.analysts.permissions[4].decision: 'maybe' is not one of allow, deny, conditional",
        "roles.analysts.permissions[5]: 'conditions' only go with decision: conditional",
        "roles.analysts.permissions[6].permission: 'insights.*.read': '*' may only be the whole pattern or its last part",
        "roles.analysts.permissions[7].conditions: IS_ENTITY_KIND needs params.kinds",
        "roles.other: must be a mapping with keys among description, members, permissions, got 'not a mapping'",
    ]
    for fragment in expected:
        assert fragment in text, fragment
    assert text.startswith("policy.yaml: 12 problems:")
    assert len(err.value.problems) == 12


def test_a_policy_read_from_yaml_is_parsed_by_its_model_and_every_problem_names_file_and_line():
    text = "roles:\n  admins:\n    membres: [a]\n  b:\n    members: [x]\n    permissions:\n      - scorecard.raed\n      - {permission: audit.read, decision: allow, conditions: {rule: IS_OWNER}}\n"
    with pytest.raises(PolicyError) as err:
        Policy.from_yaml(text, "p.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == "p.yaml: 3 problems:"
    assert lines[1] == "  - p.yaml:3: roles.admins.membres: unknown key 'membres' (did you mean 'members'?)"
    assert lines[2].startswith("  - p.yaml:7: roles.b.permissions[0]: unknown permission 'scorecard.raed'; did you mean 'scorecard.read'?")
    assert lines[3].startswith("  - p.yaml:8: roles.b.permissions[1]: 'conditions' only go with decision: conditional")
    assert err.value.lines == [3, 7, 8]


def test_validation_limits_condition_depth_and_reports_yaml_syntax_errors_by_line():
    deep: dict = {"rule": "IS_OWNER"}
    for _ in range(13):
        deep = {"not": deep}
    with pytest.raises(PolicyError, match="nested deeper than 12 levels"):
        Policy.from_dict({"roles": {"r": {"members": ["*"], "permissions": [{"permission": "skills.read", "conditions": deep}]}}})
    with pytest.raises(PolicyError, match="not valid YAML at line 4, column 16"):
        Policy.from_yaml("roles:\n  r:\n    members: [a\n    permissions: []\n", "p.yaml")
    with pytest.raises(PolicyError, match="roles: must be a mapping"):
        Policy.from_dict({"roles": [{"name": "r"}]})


def test_the_shipped_policy_scopes_insights_to_the_groups_people_belong_to_or_own():
    authorizer = PolicyAuthorizer.from_file(PROJECT_ROOT / "config" / "permissions.yaml", org=ORG,
                                            owner_of={"component:default/alpha-api": ALPHA, "component:default/zulu-ledger": ZULU}.get)
    assert authorizer.permissions_of("user:default/admin") == set(PERMISSIONS)
    assert authorizer.is_allowed(DANA, INGESTION_READ, "ingestion-provider:seed")
    assert not authorizer.is_allowed(DANA, INGESTION_MANAGE, "ingestion-provider:seed")
    assert authorizer.is_allowed(DANA, "insights.team.read", ALPHA)
    assert not authorizer.is_allowed(DANA, "insights.team.read", ZULU)
    assert not authorizer.is_allowed(DANA, "insights.team.read", PLATFORM)  # no department totals: differencing
    assert authorizer.is_allowed(PAULA, "surveys.read.team", ZULU)
    assert authorizer.is_allowed(DANA, "scorecard.exemption.create", "component:default/alpha-api")
    assert not authorizer.is_allowed(DANA, "scorecard.exemption.create", "component:default/zulu-ledger")
    assert not authorizer.is_allowed(DANA, "surveys.read.org")
    assert not authorizer.is_allowed(DANA, "audit.read")


def test_require_names_actor_permission_resource_and_policy():
    authorizer = PolicyAuthorizer.from_dict({"roles": {"r": {"members": [DANA], "permissions": ["audit.read"]}}}, "p.yaml")
    assert authorizer.require("Dana", "audit.read") == DANA
    with pytest.raises(NotAllowed, match=r"user:default/quinn is not allowed catalog.ingestion.manage on ingestion-provider:a \(policy: p.yaml\)"):
        authorizer.require(QUINN, INGESTION_MANAGE, "ingestion-provider:a")
    with pytest.raises(PolicyError):
        normalize_actor("  ")


def test_the_authorizer_reloads_membership_after_its_ttl():
    loads = []

    def load() -> OrgGraph:
        loads.append(1)
        return ORG

    authorizer = PolicyAuthorizer(Policy.from_dict({"roles": {"r": {"members": [PLATFORM], "permissions": ["audit.read"]}}}), load,
                                  org_ttl_seconds=0.0)
    assert authorizer.is_allowed(DANA, "audit.read") and authorizer.is_allowed(DANA, "audit.read")
    assert len(loads) == 2
    cached = PolicyAuthorizer(authorizer.policy, load, org_ttl_seconds=3600)
    cached.is_allowed(DANA, "audit.read"), cached.is_allowed(QUINN, "audit.read")
    assert len(loads) == 3
    no_groups = PolicyAuthorizer(Policy.from_dict({"roles": {"r": {"members": ["*"], "permissions": ["audit.read"]}}}), load)
    assert no_groups.is_allowed(DANA, "audit.read") and len(loads) == 3  # no group members, no rules: no catalog read


# ------------------------------------------------------------------- enforced in the admin doors


def test_admin_operations_enforce_a_group_policy_resolved_from_the_catalog(catalog_url, tmp_path, monkeypatch):
    from helpers import seed_catalog

    from catalog_pipelines.services.admin import IngestionAdmin, PermissionDenied
    from catalog_pipelines.ingestion.config import ProviderConfig
    from catalog_pipelines.storage.audit import entries
    from catalog_pipelines.storage.db import get_engine
    from catalog_pipelines.storage.ledger import Ledger

    url = catalog_url
    seed_catalog(url, example_entities())
    policy = tmp_path / "permissions.yaml"
    policy.write_text(f"""
roles:
  platform-operators:
    members: [{PLATFORM}]
    permissions:
      - permission: catalog.ingestion.manage
        conditions: {{rule: IS_RESOURCE, params: {{refs: ['ingestion-provider:seed']}}}}
      - catalog.ingestion.read
""")
    monkeypatch.setenv("CATALOG_DATABASE_URL", url)
    monkeypatch.setenv("CATALOG_PIPELINES_PERMISSIONS", str(policy))
    engine = get_engine(url)
    admin = IngestionAdmin(engine, [ProviderConfig("seed", "synthetic"), ProviderConfig("other", "synthetic")],
                           PolicyAuthorizer.from_env(), channel="test")

    admin.pause("seed", DANA)  # alpha ⊂ platform, read from the catalog's Group and User entities
    assert Ledger(engine).controls("seed")["paused"]
    with pytest.raises(PermissionDenied):
        admin.pause("other", DANA)  # the condition names only the seed provider
    with pytest.raises(PermissionDenied):
        admin.pause("seed", WIM)
    assert [(e.actor, e.outcome) for e in entries(engine, action="ingestion.pause")] == [
        (WIM, "denied"), (DANA, "denied"), (DANA, "success")]
    assert "permissions.yaml" in str(admin.authorizer.source)
