"""Seeded skill profiles and gigs for a synthetic organisation (demos, benchmarks, tests).

The synthetic org (`catalog_pipelines.providers.synthetic`) has teams and people but nobody has
said what they know. This module makes that up, deterministically from a seed, with the shape a
real skills survey has: each team works on a stack (two languages, two frameworks or platforms,
one technique), its people mostly know that stack at mixed levels, a few know something else,
about a third want to learn something, and some set a mentoring capacity or opt out of gigs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analytics.health.skills import (
    CAPACITY_ANNOTATION,
    GIGS_ANNOTATION,
    LEARNING_ANNOTATION,
    SKILLS_ANNOTATION,
    SkillProfiles,
    Taxonomy,
    merge_profiles,
)

if TYPE_CHECKING:
    from analytics.org import OrgGraph

LEVEL_WEIGHTS = np.array([0.20, 0.40, 0.28, 0.12])  # beginner .. expert


def _by_category(taxonomy: Taxonomy) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in sorted(taxonomy.skills):
        out.setdefault(taxonomy.category(name), []).append(name)
    return out


def synthetic_profiles(org: OrgGraph, taxonomy: Taxonomy, seed: int = 7) -> SkillProfiles:
    """Profiles for every user in `org`; the same org, taxonomy and seed give the same profiles."""
    rng = np.random.default_rng(seed)
    cats = _by_category(taxonomy)
    everything = sorted(taxonomy.skills)
    stack_source = [
        ("LANGUAGES", 2),
        ("FRAMEWORKS", 1),
        ("INFRASTRUCTURE", 1),
        ("TECHNIQUES", 1),
    ]
    membership = org.membership_frame()
    team_of = membership.groupby("user_ref")["group_ref"].min()  # one home team per person
    stacks: dict[str, list[str]] = {}
    for team in sorted(set(team_of)):
        stack: list[str] = []
        for category, count in stack_source:
            pool = cats.get(category) or everything
            stack.extend(rng.choice(pool, size=min(count, len(pool)), replace=False).tolist())
        stacks[team] = stack
    skills, wishes, people = [], [], []
    for user in sorted(set(org.users) | set(team_of.index)):
        stack = stacks.get(team_of.get(user), everything[:5])
        n_stack = int(rng.integers(1, len(stack) + 1))
        mine = set(rng.choice(stack, size=n_stack, replace=False).tolist())
        if rng.random() < 0.3:
            mine.add(str(rng.choice(everything)))
        for skill in sorted(mine):
            skills.append((user, skill, int(rng.choice(4, p=LEVEL_WEIGHTS)) + 1, "synthetic"))
        if rng.random() < 0.35:
            lacking = [s for s in stack if s not in mine] or [s for s in everything if s not in mine]
            for skill in rng.choice(lacking, size=min(len(lacking), int(rng.integers(1, 3))), replace=False):
                wishes.append((user, str(skill), "synthetic"))
        roll = rng.random()
        if roll < 0.25 or roll > 0.9:
            capacity = int(rng.integers(0, 4)) if roll < 0.25 else None
            people.append((user, capacity, False if roll > 0.9 else None))
    w = pd.DataFrame(wishes, columns=["user_ref", "skill", "source"])
    w.insert(2, "current_level", pd.NA)
    return merge_profiles(
        SkillProfiles(
            pd.DataFrame(skills, columns=["user_ref", "skill", "level", "source"]),
            w,
            pd.DataFrame(people, columns=["user_ref", "mentor_capacity", "gigs_available"]),
        )
    )


def synthetic_gigs(org: OrgGraph, taxonomy: Taxonomy, count: int = 20, seed: int = 7) -> list[dict[str, Any]]:
    """`count` gigs asked for by random teams, needing one to three skills."""
    rng = np.random.default_rng(seed + 1)
    teams = sorted(set(org.membership_frame()["group_ref"]))
    everything = sorted(taxonomy.skills)
    kinds = ["embed", "embed", "pairing", "hack"]
    gigs = []
    for i in range(count):
        kind = str(rng.choice(kinds))
        skills = rng.choice(everything, size=int(rng.integers(1, 4)), replace=False)
        gigs.append(
            {
                "id": f"gig-{i:04d}",
                "title": f"{kind.title()} on {', '.join(skills)}",
                "kind": kind,
                "team": str(rng.choice(teams)) if teams and kind != "hack" else None,
                "priority": str(rng.choice(taxonomy.priorities)),
                "seats": int(rng.integers(1, 3)),
                "skills": [f"{s}:{int(rng.integers(2, 4))}" for s in skills],
            }
        )
    return gigs


def annotate_users(entities: Iterable[dict[str, Any]], profiles: SkillProfiles) -> Iterator[dict[str, Any]]:
    """The entities, with each User's profile written into the skills annotations.

    Lets a demo or test catalog carry skills the way a real one would (on the User entity), so the
    annotation path is exercised end to end. Other entities pass through unchanged.
    """
    from catalog_pipelines.model.refs import entity_ref_of

    skills = profiles.skills.groupby("user_ref").apply(
        lambda g: ", ".join(f"{s}:{lvl}" for s, lvl in zip(g["skill"], g["level"])), include_groups=False
    ) if len(profiles.skills) else pd.Series(dtype=object)
    wishes = profiles.wishes.groupby("user_ref")["skill"].agg(", ".join) if len(profiles.wishes) else pd.Series(dtype=object)
    people = profiles.people.set_index("user_ref") if len(profiles.people) else pd.DataFrame()
    for entity in entities:
        if str(entity.get("kind", "")).lower() != "user":
            yield entity
            continue
        ref = entity_ref_of(entity)
        extra = {}
        if ref in skills.index:
            extra[SKILLS_ANNOTATION] = skills[ref]
        if ref in wishes.index:
            extra[LEARNING_ANNOTATION] = wishes[ref]
        if len(people) and ref in people.index:
            cap, gigs = people.at[ref, "mentor_capacity"], people.at[ref, "gigs_available"]
            if cap is not None and not pd.isna(cap):
                extra[CAPACITY_ANNOTATION] = str(int(cap))
            if gigs is False:
                extra[GIGS_ANNOTATION] = "unavailable"
        if not extra:
            yield entity
            continue
        meta = dict(entity.get("metadata") or {})
        meta["annotations"] = {**(meta.get("annotations") or {}), **extra}
        yield {**entity, "metadata": meta}
