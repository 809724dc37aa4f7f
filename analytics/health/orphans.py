"""The orphan report: what in the catalog is lost, unowned or pointing at nothing.

One row per finding, each with a severity and the group to notify, so that the report can be
routed rather than read. Categories (docs/catalog_health.md has the full table):

| category                   | severity                                    |
| -------------------------- | ------------------------------------------- |
| `removed_from_source`      | warning while something still references it, else info |
| `orphan_annotation`        | warning (`backstage.io/orphan: 'true'` from an upstream Backstage) |
| `owner_unresolved`         | error                                       |
| `no_owner`                 | error                                       |
| `dangling_relation`        | error for dependencies (`dependsOn`, `consumesApi`), else warning |
| `component_without_system` | info                                        |
| `group_without_members`    | warning if the group owns entities, else info |
| `user_without_group`       | info                                        |
| `owner_is_user`            | info (Tech Insights' `hasGroupOwner`: people leave, teams stay) |

Who is notified: the entity's owning group; for an entity owned by a user, that user's team; when
the owner is missing or broken, the owner of the entity's system, then of the system's domain;
failing all of these, the configured admin group.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analytics.health.graph import CodedRelations, entity_index, isin, zip_columns

if TYPE_CHECKING:
    from analytics.org import OrgGraph

SEVERITIES = ("error", "warning", "info")
CATEGORIES = (
    "removed_from_source",
    "orphan_annotation",
    "owner_unresolved",
    "no_owner",
    "dangling_relation",
    "component_without_system",
    "group_without_members",
    "user_without_group",
    "owner_is_user",
)
REPORT_COLUMNS = [
    "category", "severity", "ref", "kind", "provider", "owner", "notify_group", "related_ref",
    "detail", "cycle", "removed_at",
]
ORPHAN_ANNOTATION = "backstage.io/orphan"
# Kinds that Backstage does not give an owner: everything else is expected to have one.
UNOWNED_KINDS = frozenset({"user", "group", "location"})
# Relations whose source *needs* the missing end: broken for impact analysis, hence errors.
DEPENDENCY_RELATIONS = frozenset({"dependsOn", "consumesApi"})


class _Notifier:
    """Resolves "which group hears about this entity" along owner → system → domain → admins."""

    def __init__(self, index: pd.DataFrame, coded: CodedRelations, org: OrgGraph, admin_group: str | None):
        self.admin_group = admin_group
        self.exists = set(index["ref"])
        self.owner_of = dict(zip_columns(index["ref"], index["owner"]))
        self.system_of = dict(zip_columns(index["ref"], index["system"]))
        in_domain = coded.of_type("partOf") & coded.kind_mask("system")[coded.source] & coded.kind_mask("domain")[coded.target]
        self.domain_of = dict(zip(coded.refs[coded.source[in_domain]], coded.refs[coded.target[in_domain]]))
        self.groups = set(index.loc[index["kind"] == "group", "ref"])
        teams: dict[str, list[str]] = defaultdict(list)
        for user, group in org.membership_frame().itertuples(index=False):
            if group in self.groups:
                teams[user].append(group)
        self.team_of = {user: min(groups) for user, groups in teams.items()}

    def group_for(self, owner: Any) -> str | None:
        if not isinstance(owner, str) or owner not in self.exists:
            return None
        if owner in self.groups:
            return owner
        return self.team_of.get(owner)

    def __call__(self, ref: str, *, skip_own_owner: bool = False) -> str | None:
        chain = [] if skip_own_owner else [self.owner_of.get(ref)]
        system = self.system_of.get(ref)
        if isinstance(system, str):
            chain.append(self.owner_of.get(system))
            domain = self.domain_of.get(system)
            if domain:
                chain.append(self.owner_of.get(domain))
        if ref.startswith("system:") and ref in self.domain_of:
            chain.append(self.owner_of.get(self.domain_of[ref]))
        for owner in chain:
            group = self.group_for(owner)
            if group:
                return group
        return self.admin_group


def _annotations(entity: Any) -> dict[str, Any]:
    if not isinstance(entity, dict):
        return {}
    return (entity.get("metadata") or {}).get("annotations") or {}


def orphan_report(
    entities: pd.DataFrame,
    relations: pd.DataFrame,
    removals: pd.DataFrame,
    org: OrgGraph,
    *,
    admin_group: str | None = None,
    removal_cycles: int = 1,
) -> pd.DataFrame:
    """Every finding as one row (`REPORT_COLUMNS`), most severe first.

    `removals` lists entities their provider stopped emitting (`ref, kind, provider, cycle,
    removed_at`). The report lists the removals of each provider's last `removal_cycles` cycles,
    plus any older removal that something in the catalog still references; an entity that has
    come back since is not reported.
    """
    coded = CodedRelations.encode(relations, extra=entities["ref"])
    index = entity_index(entities, coded)
    notify = _Notifier(index, coded, org, admin_group)
    exists = notify.exists
    kind_by_ref = dict(zip_columns(index["ref"], index["kind"]))
    provider_by_ref = dict(zip_columns(index["ref"], index["provider"]))
    removed = _latest_removals(removals)
    removal_of = {r["ref"]: r for r in removed.to_dict("records")}
    rows: list[dict[str, Any]] = []

    def add(category: str, severity: str, ref: str, **extra: Any) -> None:
        row = {
            "category": category,
            "severity": severity,
            "ref": ref,
            "kind": kind_by_ref.get(ref) or ref.split(":", 1)[0],
            "provider": provider_by_ref.get(ref),
            "owner": notify.owner_of.get(ref),
            "notify_group": None,
            "related_ref": None,
            "detail": "",
            "cycle": None,
            "removed_at": None,
        }
        row.update(extra)
        if row["notify_group"] is None:
            row["notify_group"] = notify(ref)
        rows.append(row)

    # Who references what, in both directions, for removals and dangling refs.
    # Existence per code, then per relation end: integer lookups, not string matching.
    in_catalog = np.zeros(len(coded.refs), dtype=bool)
    in_catalog[coded.index.get_indexer(index["ref"])] = True
    source_in, target_in = in_catalog[coded.source], in_catalog[coded.target]
    missing_source = coded.frame(~source_in & target_in)
    missing_target = coded.frame(source_in & ~target_in)
    referrers: dict[str, set[str]] = defaultdict(set)
    for missing, present in zip_columns(missing_target["target"], missing_target["source"]):
        referrers[missing].add(present)
    for missing, present in zip_columns(missing_source["source"], missing_source["target"]):
        referrers[missing].add(present)

    # 1. Removed from their source.
    window = _removal_window(removals, removal_cycles)
    for rec in removed.to_dict("records"):
        ref = rec["ref"]
        if ref in exists:
            continue  # it came back in a later cycle
        still = sorted(referrers.get(ref, ()))
        if not still and (rec["provider"], rec["cycle"]) not in window:
            continue
        detail = f"removed by provider {rec['provider']} in cycle {rec['cycle']}"
        if still:
            detail += f"; still referenced by {len(still)} entit{'y' if len(still) == 1 else 'ies'}"
        add(
            "removed_from_source",
            "warning" if still else "info",
            ref,
            kind=str(rec.get("kind") or ref.split(":", 1)[0]).lower(),
            provider=rec["provider"],
            owner=None,
            related_ref=still[0] if still else None,
            notify_group=(notify(still[0]) if still else admin_group),
            detail=detail,
            cycle=rec["cycle"],
            removed_at=rec["removed_at"],
        )

    # 2. Marked orphan by an upstream Backstage.
    if "entity" in index:
        flagged = index["entity"].map(lambda e: str(_annotations(e).get(ORPHAN_ANNOTATION, "")).lower() == "true")
        for ref in index.loc[flagged, "ref"]:
            add("orphan_annotation", "warning", ref, detail=f"marked orphan by its source ({ORPHAN_ANNOTATION})")

    # 3/4/9. Ownership.
    ownable = index[~index["kind"].isin(UNOWNED_KINDS)]
    raw = ownable["owner_raw"]
    no_owner = raw.isna() | (raw.astype(str).str.strip() == "")
    for ref in ownable.loc[no_owner, "ref"]:
        add("no_owner", "error", ref, notify_group=notify(ref, skip_own_owner=True), detail="no spec.owner")
    has_owner = ownable[~no_owner]
    owner_in = isin(has_owner["owner"], exists)
    broken = has_owner[~owner_in]
    for ref, owner, owner_raw in zip_columns(broken["ref"], broken["owner"], broken["owner_raw"]):
        shown = owner or owner_raw
        detail = f"owner {shown} is not in the catalog"
        if owner in removal_of:
            r = removal_of[owner]
            detail += f" (removed by provider {r['provider']} in cycle {r['cycle']})"
        elif owner is None:
            detail = f"owner {owner_raw!r} is not a valid entity reference"
        add("owner_unresolved", "error", ref, related_ref=shown, notify_group=notify(ref, skip_own_owner=True), detail=detail)
    user_owned = has_owner[owner_in & has_owner["owner"].fillna("").str.startswith("user:")]
    for ref, owner in zip_columns(user_owned["ref"], user_owned["owner"]):
        add("owner_is_user", "info", ref, related_ref=owner, detail=f"owned by the person {owner}, not by a group")

    # 5. Dangling relations (a broken owner is reported once, above, not again here).
    dangling = pd.concat(
        [
            missing_target.assign(present=missing_target["source"], missing=missing_target["target"]),
            missing_source.assign(present=missing_source["target"], missing=missing_source["source"]),
        ],
        ignore_index=True,
    )
    dangling = dangling[dangling["type"] != "ownedBy"].sort_values(["present", "type", "missing"])
    for src, rtype, tgt, present, missing in dangling[["source", "type", "target", "present", "missing"]].itertuples(index=False):
        detail = f"{src} {rtype} {tgt}: {missing} is not in the catalog"
        if missing in removal_of:
            r = removal_of[missing]
            detail += f" (removed by provider {r['provider']} in cycle {r['cycle']})"
        add(
            "dangling_relation",
            "error" if rtype in DEPENDENCY_RELATIONS else "warning",
            present,
            related_ref=missing,
            detail=detail,
        )

    # 6. Components in no system.
    loose = index[(index["kind"] == "component") & index["system"].isna()]
    for ref in loose["ref"]:
        add("component_without_system", "info", ref, detail="no spec.system, and no parent component with one")

    # 7/8. The organisation.
    groups = set(index.loc[index["kind"] == "group", "ref"])
    users = set(index.loc[index["kind"] == "user", "ref"])
    members = org.membership_frame()
    members = members[isin(members["user_ref"], users) & isin(members["group_ref"], groups)]
    rollup = org.rollup_frame()
    staffed = set(rollup.loc[rollup["group_ref"].isin(set(members["group_ref"])), "rollup_ref"])
    owned_counts = index["owner"].value_counts()
    for ref in sorted(groups - staffed):
        owns = int(owned_counts.get(ref, 0))
        parent = org.parent.get(ref)
        add(
            "group_without_members",
            "warning" if owns else "info",
            ref,
            notify_group=parent if parent in groups else admin_group,
            detail=f"no members in it or its sub-groups; owns {owns} entit{'y' if owns == 1 else 'ies'}",
        )
    for ref in sorted(users - set(members["user_ref"])):
        claimed = sorted(org.teams_of(ref) - groups) if ref in org.users else []
        detail = "in no group" + (f" (memberOf {', '.join(claimed)}, not in the catalog)" if claimed else "")
        add("user_without_group", "info", ref, notify_group=admin_group, detail=detail)

    if not rows:
        return pd.DataFrame(columns=REPORT_COLUMNS)
    out = pd.DataFrame(rows)[REPORT_COLUMNS]
    out["_s"] = out["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    out["_c"] = out["category"].map({c: i for i, c in enumerate(CATEGORIES)})
    return out.sort_values(["_s", "_c", "ref", "related_ref"], na_position="first", ignore_index=True).drop(columns=["_s", "_c"])


def _latest_removals(removals: pd.DataFrame) -> pd.DataFrame:
    """The last removal of each ref (an entity can be removed, come back and be removed again)."""
    cols = ["ref", "kind", "provider", "cycle", "removed_at"]
    if removals is None or removals.empty:
        return pd.DataFrame(columns=cols)
    rem = removals.copy()
    rem["ref"] = rem["ref"].str.lower()
    return rem.sort_values("removed_at").drop_duplicates("ref", keep="last")[cols]


def _removal_window(removals: pd.DataFrame, cycles: int) -> set[tuple[Any, Any]]:
    """(provider, cycle) pairs of each provider's last `cycles` cycles with removals."""
    if removals is None or removals.empty or cycles <= 0:
        return set()
    last = removals.groupby(["provider", "cycle"], dropna=False)["removed_at"].max().reset_index()
    last = last.sort_values("removed_at").groupby("provider", dropna=False).tail(cycles)
    return set(zip(last["provider"], last["cycle"]))


def summary(report: pd.DataFrame) -> pd.DataFrame:
    """Counts per category and severity (zero rows omitted)."""
    if report.empty:
        return pd.DataFrame(columns=["category", "severity", "count"])
    return report.groupby(["category", "severity"]).size().rename("count").reset_index()


def trend_snapshot(report: pd.DataFrame, as_of: datetime | None = None) -> pd.DataFrame:
    """This report's counts stamped with `as_of`; appended to the trend table on every run, with a
    zero row for every category so that a category that went to zero shows as a drop, not a gap.
    """
    as_of = as_of or datetime.now(UTC)
    counts = report.groupby("category").size() if len(report) else pd.Series(dtype="int64")
    errors = report[report["severity"] == "error"].groupby("category").size() if len(report) else pd.Series(dtype="int64")
    return pd.DataFrame(
        {
            "as_of": pd.Timestamp(as_of),
            "category": list(CATEGORIES),
            "count": [int(counts.get(c, 0)) for c in CATEGORIES],
            "errors": [int(errors.get(c, 0)) for c in CATEGORIES],
        }
    )


def removal_trend(removals: pd.DataFrame) -> pd.DataFrame:
    """Removals per provider and ingestion cycle, oldest cycle first: the per-cycle trend."""
    cols = ["provider", "cycle", "removed", "first_removed_at", "last_removed_at"]
    if removals is None or removals.empty:
        return pd.DataFrame(columns=cols)
    out = (
        removals.groupby(["provider", "cycle"], dropna=False)
        .agg(removed=("ref", "size"), first_removed_at=("removed_at", "min"), last_removed_at=("removed_at", "max"))
        .reset_index()
    )
    return out.sort_values(["last_removed_at", "provider"], ignore_index=True)[cols]
