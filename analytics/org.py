"""The organisation as the catalog describes it: groups, their hierarchy, and who belongs where.

Every insight that reports "per team" (scorecards, surveys, usage adoption, skills) rolls figures up
the group hierarchy through this one class, so that all of them agree on what a team is.
Membership follows Backstage's relations in both directions: `User.spec.memberOf` and
`Group.spec.members`; hierarchy from `Group.spec.parent` and `Group.spec.children`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref


def _ref(value: Any, default_kind: str, namespace: str) -> str | None:
    try:
        return parse_entity_ref(value, default_kind=default_kind, default_namespace=namespace).canonical()
    except EntityRefError:
        return None


@dataclass
class OrgGraph:
    """Groups (ref → display name, type), parent links and direct memberships, by canonical ref."""

    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    direct_members: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_entities(cls, entities: Iterable[dict[str, Any]]) -> "OrgGraph":
        org = cls()
        children: list[tuple[str, str]] = []
        for entity in entities:
            kind = str(entity.get("kind", "")).lower()
            meta = entity.get("metadata") or {}
            spec = entity.get("spec") or {}
            namespace = meta.get("namespace") or "default"
            ref = _ref({"kind": kind, "namespace": namespace, "name": meta.get("name")}, kind, namespace)
            if ref is None:
                continue
            if kind == "group":
                profile = spec.get("profile") or {}
                org.groups[ref] = {
                    "name": meta.get("name"),
                    "display_name": profile.get("displayName") or meta.get("title") or meta.get("name"),
                    "type": spec.get("type"),
                }
                if spec.get("parent"):
                    parent = _ref(spec["parent"], "group", namespace)
                    if parent:
                        org.parent[ref] = parent
                for child in spec.get("children") or []:
                    child_ref = _ref(child, "group", namespace)
                    if child_ref:
                        children.append((ref, child_ref))
                for member in spec.get("members") or []:
                    member_ref = _ref(member, "user", namespace)
                    if member_ref:
                        org.direct_members[ref].add(member_ref)
            elif kind == "user":
                profile = spec.get("profile") or {}
                org.users[ref] = {"name": meta.get("name"), "display_name": profile.get("displayName") or meta.get("name")}
                for group in spec.get("memberOf") or []:
                    group_ref = _ref(group, "group", namespace)
                    if group_ref:
                        org.direct_members[group_ref].add(ref)
        for parent, child in children:
            org.parent.setdefault(child, parent)
        return org

    @classmethod
    def from_frames(cls, groups: pd.DataFrame, memberships: pd.DataFrame) -> "OrgGraph":
        """From `groups[group_ref, parent_ref, display_name]` and `memberships[user_ref, group_ref]`."""
        org = cls()
        for row in groups.itertuples(index=False):
            org.groups[row.group_ref] = {"name": row.group_ref.split("/")[-1], "display_name": getattr(row, "display_name", None) or row.group_ref, "type": getattr(row, "type", None)}
            if isinstance(row.parent_ref, str) and row.parent_ref:
                org.parent[row.group_ref] = row.parent_ref
        for row in memberships.itertuples(index=False):
            org.direct_members[row.group_ref].add(row.user_ref)
            org.users.setdefault(row.user_ref, {"name": row.user_ref.split("/")[-1], "display_name": row.user_ref})
        return org

    def ancestors(self, group: str) -> list[str]:
        """Parents of `group`, nearest first; stops on a cycle rather than looping."""
        out: list[str] = []
        seen = {group}
        current = self.parent.get(group)
        while current and current not in seen:
            out.append(current)
            seen.add(current)
            current = self.parent.get(current)
        return out

    def children(self, group: str) -> list[str]:
        return sorted(child for child, parent in self.parent.items() if parent == group)

    def descendants(self, group: str) -> set[str]:
        by_parent: dict[str, list[str]] = defaultdict(list)
        for child, parent in self.parent.items():
            by_parent[parent].append(child)
        out: set[str] = set()
        stack = [group]
        while stack:
            for child in by_parent.get(stack.pop(), []):
                if child not in out and child != group:
                    out.add(child)
                    stack.append(child)
        return out

    def members(self, group: str, recursive: bool = True) -> set[str]:
        groups = {group} | (self.descendants(group) if recursive else set())
        return set().union(*(self.direct_members.get(g, set()) for g in groups))

    def teams_of(self, user: str) -> set[str]:
        return {group for group, members in self.direct_members.items() if user in members}

    def all_groups(self) -> set[str]:
        return set(self.groups) | set(self.direct_members) | set(self.parent) | set(self.parent.values())

    def depth(self, group: str) -> int:
        """0 for a group without a parent, 1 for its children, ..."""
        return len(self.ancestors(group))

    def level_of(self, group: str) -> str:
        """The organisation level a group sits at, for comparing like with like: its `spec.type`
        (organization, department, team, ...), else `level <depth>` (0 at the top)."""
        kind = (self.groups.get(group) or {}).get("type")
        return str(kind) if kind else f"level {self.depth(group)}"

    def levels(self) -> dict[str, list[str]]:
        """Organisation level → its groups, levels ordered top-down (by the mean depth of their
        groups), groups sorted by ref."""
        by_level: dict[str, list[str]] = defaultdict(list)
        for group in sorted(self.all_groups()):
            by_level[self.level_of(group)].append(group)
        mean_depth = {lv: sum(self.depth(g) for g in gs) / len(gs) for lv, gs in by_level.items()}
        return {lv: by_level[lv] for lv in sorted(by_level, key=lambda lv: (mean_depth[lv], lv))}

    def rollup_frame(self) -> pd.DataFrame:
        """One row per (group_ref, rollup_ref): each group with itself and every ancestor.

        Join facts keyed by a team onto this frame and group by `rollup_ref` to roll them up.
        """
        rows = [(g, a) for g in sorted(self.all_groups()) for a in [g, *self.ancestors(g)]]
        return pd.DataFrame(rows, columns=["group_ref", "rollup_ref"])

    def membership_frame(self) -> pd.DataFrame:
        """Direct memberships as `[user_ref, group_ref]`."""
        rows = [(u, g) for g, members in self.direct_members.items() for u in members]
        return pd.DataFrame(sorted(rows), columns=["user_ref", "group_ref"])
