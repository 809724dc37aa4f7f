"""Skills exchange: who knows what, who wants to learn it, and where knowledge is thin.

Modelled on Spotify's Skill Exchange (skill profiles tied to catalog User entities, mentorships,
embeds/gigs), computed from two sources that are merged per person and skill (highest level wins):

- catalog **User annotations** (values are strings, so any Backstage catalog accepts them):

  | annotation | value |
  | --- | --- |
  | `skills.catalog-pipelines.io/skills` | `python:expert, kubernetes:3, go` (level number or word; none = intermediate) |
  | `skills.catalog-pipelines.io/learning` | `rust, terraform` |
  | `skills.catalog-pipelines.io/mentor-capacity` | `2` (mentees at a time; `0` = not mentoring) |
  | `skills.catalog-pipelines.io/gigs` | `available` or `unavailable` |

  and on a **Group**, `skills.catalog-pipelines.io/needs: kafka, java` declares what the team
  depends on beyond what its entities' tags say;
- a **skills CSV** (`user,skill,level,wants_to_learn[,mentor_capacity]`), e.g. a survey export,
  read by `catalog_pipelines.storage.skills_store` (this module reads no data files).

Levels run 1 (beginner) to 4 (expert). Skill names go through the taxonomy
(`config/skills/skills.yaml`): aliases fold into one name (`k8s` → `kubernetes`).

Skill profiles name people on purpose: the point of the exchange is to find the person who knows
X, and the data is what they published about themselves. It is therefore not pseudonymised (unlike
survey answers and portal usage).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analytics.health.graph import zip_columns
from catalog_pipelines.model import config_files
from catalog_pipelines.model.config_files import ConfigIssue
from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

if TYPE_CHECKING:
    from analytics.org import OrgGraph

ANNOTATION_PREFIX = "skills.catalog-pipelines.io/"
SKILLS_ANNOTATION = ANNOTATION_PREFIX + "skills"
LEARNING_ANNOTATION = ANNOTATION_PREFIX + "learning"
CAPACITY_ANNOTATION = ANNOTATION_PREFIX + "mentor-capacity"
GIGS_ANNOTATION = ANNOTATION_PREFIX + "gigs"
NEEDS_ANNOTATION = ANNOTATION_PREFIX + "needs"

DEFAULT_LEVELS = {1: "beginner", 2: "intermediate", 3: "advanced", 4: "expert"}
DEFAULT_LEVEL = 2
SKILL_COLUMNS = ["user_ref", "skill", "level", "source"]
WISH_COLUMNS = ["user_ref", "skill", "current_level", "source"]
PEOPLE_COLUMNS = ["user_ref", "mentor_capacity", "gigs_available"]
MATCH_COLUMNS = [
    "learner", "skill", "mentor", "mentor_level", "learner_level", "cross_team", "learner_teams", "mentor_teams",
]


# ---------------------------------------------------------------------------------------------
# Taxonomy and settings
# ---------------------------------------------------------------------------------------------


@dataclass
class Taxonomy:
    """Known skills (name → category, aliases, related), level words and matching settings."""

    skills: dict[str, dict[str, Any]] = field(default_factory=dict)
    levels: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    matching: dict[str, Any] = field(default_factory=dict)
    priorities: list[str] = field(default_factory=lambda: ["critical", "high", "normal", "low"])

    def __post_init__(self) -> None:
        self._alias: dict[str, str] = {}
        for name, info in self.skills.items():
            self._alias[_slug(name)] = name
            for alias in (info or {}).get("aliases") or []:
                self._alias[_slug(str(alias))] = name
        self._level_words = {word.lower(): level for level, word in self.levels.items()}

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """skills.yaml parsed through `SkillsFile`; raises `SkillsConfigError` (file:line: path: message)."""
        return cls.from_dict(_load_validated(SkillsFile, path) or {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Taxonomy:
        levels = {int(k): str(v) for k, v in (data.get("levels") or DEFAULT_LEVELS).items()}
        return cls(
            skills={str(k): dict(v or {}) for k, v in (data.get("skills") or {}).items()},
            levels=levels,
            matching=dict(data.get("matching") or {}),
            priorities=[str(p) for p in data.get("priorities") or ["critical", "high", "normal", "low"]],
        )

    def setting(self, name: str, default: Any) -> Any:
        return self.matching.get(name, default)

    def resolve(self, name: Any) -> str | None:
        """The taxonomy's name for a skill or alias, or None when the taxonomy does not know it."""
        if not isinstance(name, str):
            return None
        return self._alias.get(_slug(name))

    def normalise(self, name: Any) -> str | None:
        """Known skills by their taxonomy name; unknown ones as a lower-case slug (kept, not lost)."""
        if not isinstance(name, str) or not name.strip():
            return None
        return self.resolve(name) or _slug(name)

    def category(self, skill: str) -> str:
        return str((self.skills.get(skill) or {}).get("category") or "OTHER")

    def level(self, value: Any, default: int | None = DEFAULT_LEVEL) -> int | None:
        """1-4 from a number or a level word; out-of-range numbers are clipped."""
        if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
            return default
        text = str(value).strip().lower()
        if text in self._level_words:
            return self._level_words[text]
        try:
            number = int(float(text))
        except ValueError:
            return default
        top = max(self.levels) if self.levels else 4
        return max(0, min(top, number))

    def frame(self) -> pd.DataFrame:
        rows = [
            {
                "skill": name,
                "category": self.category(name),
                "aliases": ",".join(sorted(str(a) for a in (info or {}).get("aliases") or [])),
                "related": ",".join(sorted(str(a) for a in (info or {}).get("related") or [])),
            }
            for name, info in sorted(self.skills.items())
        ]
        return pd.DataFrame(rows, columns=["skill", "category", "aliases", "related"])


def _slug(text: str) -> str:
    return re.sub(r"\s+", "-", text.strip().lower())


def _user_ref(value: Any) -> str | None:
    try:
        return parse_entity_ref(str(value).strip(), default_kind="user", default_namespace="default").canonical()
    except EntityRefError:
        return None


def _group_ref(value: Any) -> str | None:
    if not value:
        return None
    try:
        return parse_entity_ref(str(value).strip(), default_kind="group", default_namespace="default").canonical()
    except EntityRefError:
        return None


def _split_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in re.split(r"[,;\n]", str(value)) if part.strip()]


# ---------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------


@dataclass
class SkillProfiles:
    skills: pd.DataFrame  # SKILL_COLUMNS
    wishes: pd.DataFrame  # WISH_COLUMNS
    people: pd.DataFrame  # PEOPLE_COLUMNS (only people who said something)

    @classmethod
    def empty(cls) -> SkillProfiles:
        return cls(
            pd.DataFrame(columns=SKILL_COLUMNS),
            pd.DataFrame(columns=WISH_COLUMNS),
            pd.DataFrame(columns=PEOPLE_COLUMNS),
        )


def profiles_from_entities(entities: pd.DataFrame, taxonomy: Taxonomy) -> SkillProfiles:
    """Skill profiles from User entities' annotations (`entities` as the catalog's entities frame)."""
    users = entities[entities["kind"].astype(str).str.lower() == "user"]
    skills, wishes, people = [], [], []
    for ref, entity in zip_columns(users["ref"].str.lower(), users["entity"]):
        ann = ((entity or {}).get("metadata") or {}).get("annotations") or {}
        for item in _split_list(ann.get(SKILLS_ANNOTATION)):
            name, _, level = item.partition(":")
            skill = taxonomy.normalise(name)
            lvl = taxonomy.level(level) if level else DEFAULT_LEVEL
            if skill and lvl:
                skills.append((ref, skill, lvl, "catalog"))
        for item in _split_list(ann.get(LEARNING_ANNOTATION)):
            skill = taxonomy.normalise(item.partition(":")[0])
            if skill:
                wishes.append((ref, skill, "catalog"))
        capacity = ann.get(CAPACITY_ANNOTATION)
        gigs = ann.get(GIGS_ANNOTATION)
        if capacity is not None or gigs is not None:
            people.append((ref, _count(capacity), _availability(gigs)))
    return _assemble(skills, wishes, people)


def profiles_from_csv(frame: pd.DataFrame, taxonomy: Taxonomy, *, where: str | None = None) -> SkillProfiles:
    """Profiles from the rows of a skills CSV (columns `user, skill, level, wants_to_learn[,
    mentor_capacity, gigs]`, as `catalog_pipelines.storage.skills_store.read_profiles_csv` reads
    it); `where` (the file) prefixes the error when a column is missing.

    A row with `wants_to_learn` true is a learning wish (its level, if any, is where the person is
    now); other rows are skills. `user` is a user ref or a bare name (`jane.doe`).
    """
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = {"user", "skill"} - set(frame.columns)
    if missing:
        raise ValueError(f"{where + ': ' if where else ''}skills CSV lacks column(s) {sorted(missing)}")
    skills, wishes, people = [], [], []
    capacity: dict[str, Any] = {}
    gigs: dict[str, Any] = {}
    for row in frame.to_dict("records"):
        user = _user_ref(row["user"])
        skill = taxonomy.normalise(row.get("skill"))
        if not user:
            continue
        if str(row.get("mentor_capacity", "")).strip():
            capacity[user] = _count(row["mentor_capacity"])
        if str(row.get("gigs", "")).strip():
            gigs[user] = _availability(row["gigs"])
        if not skill:
            continue
        if _truthy(row.get("wants_to_learn")):
            wishes.append((user, skill, "csv"))
            level = taxonomy.level(row.get("level"), default=None)
            if level:
                skills.append((user, skill, level, "csv"))
        else:
            level = taxonomy.level(row.get("level"))
            if level:
                skills.append((user, skill, level, "csv"))
    for user in sorted(set(capacity) | set(gigs)):
        people.append((user, capacity.get(user), gigs.get(user)))
    return _assemble(skills, wishes, people)


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "y", "x"}


def _count(value: Any) -> int | None:
    try:
        return max(0, int(float(str(value).strip())))
    except (TypeError, ValueError):
        return None


def _availability(value: Any) -> bool | None:
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip().lower() not in {"unavailable", "no", "false", "0", "busy"}


def _assemble(skills: list, wishes: list, people: list) -> SkillProfiles:
    s = pd.DataFrame(skills, columns=SKILL_COLUMNS)
    w = pd.DataFrame(wishes, columns=["user_ref", "skill", "source"])
    w.insert(2, "current_level", pd.NA)
    p = pd.DataFrame(people, columns=PEOPLE_COLUMNS)
    return merge_profiles(SkillProfiles(s, w[WISH_COLUMNS], p))


def merge_profiles(*profiles: SkillProfiles) -> SkillProfiles:
    """One profile per person: highest level per skill, sources joined (`catalog+csv`). Each wish
    carries the person's `current_level` in that skill (0 when they have none), which the
    matching uses: a mentor must know more than the learner.
    """
    skills = pd.concat([p.skills for p in profiles if len(p.skills)] or [SkillProfiles.empty().skills], ignore_index=True)
    if len(skills):
        skills["level"] = skills["level"].astype("int64")
        level = skills.groupby(["user_ref", "skill"], sort=True)["level"].max()
        skills = level.reset_index().assign(source=_joined_sources(skills).reindex(level.index).to_numpy())[SKILL_COLUMNS]
    wishes = pd.concat([p.wishes for p in profiles if len(p.wishes)] or [SkillProfiles.empty().wishes], ignore_index=True)
    if len(wishes):
        wishes = _joined_sources(wishes).rename("source").reset_index()
        current = skills.set_index(["user_ref", "skill"])["level"] if len(skills) else pd.Series(dtype="int64")
        keys = list(zip_columns(wishes["user_ref"], wishes["skill"]))
        wishes["current_level"] = [int(current.get(k, 0)) for k in keys]
        wishes = wishes[WISH_COLUMNS]
    people = pd.concat([p.people for p in profiles if len(p.people)] or [SkillProfiles.empty().people], ignore_index=True)
    if len(people):
        # Later sources override earlier ones where they say something.
        people = people.groupby("user_ref", sort=True).agg(
            mentor_capacity=("mentor_capacity", "last"), gigs_available=("gigs_available", "last")
        ).reset_index()[PEOPLE_COLUMNS]
    return SkillProfiles(skills.reset_index(drop=True), wishes.reset_index(drop=True), people.reset_index(drop=True))


def _joined_sources(frame: pd.DataFrame) -> pd.Series:
    """Per (user_ref, skill), its distinct sources joined with "+", sorted by key.

    Vectorised: only the few keys with more than one source are joined in Python (a lambda per
    group costs seconds on a 200,000-entity org).
    """
    distinct = frame[["user_ref", "skill", "source"]].drop_duplicates().sort_values(["user_ref", "skill", "source"])
    counts = distinct.groupby(["user_ref", "skill"], sort=True)["source"].transform("size")
    single = distinct[counts == 1].set_index(["user_ref", "skill"])["source"]
    multi = distinct[counts > 1].groupby(["user_ref", "skill"], sort=True)["source"].agg("+".join)
    return pd.concat([single, multi]).sort_index()


def profiles_with_teams(profiles: SkillProfiles, org: OrgGraph, taxonomy: Taxonomy) -> pd.DataFrame:
    """The stored profile table: one row per person and skill, with display name, teams, category."""
    teams = _teams(org)
    out = profiles.skills.copy()
    out["display_name"] = out["user_ref"].map(lambda u: (org.users.get(u) or {}).get("display_name") or u.split("/")[-1])
    out["teams"] = out["user_ref"].map(lambda u: ",".join(teams.get(u, [])))
    out["category"] = out["skill"].map(taxonomy.category)
    out["level_name"] = out["level"].map(lambda lvl: taxonomy.levels.get(int(lvl), str(lvl)))
    return out[["user_ref", "display_name", "teams", "skill", "category", "level", "level_name", "source"]]


def _teams(org: OrgGraph) -> dict[str, list[str]]:
    teams: dict[str, list[str]] = defaultdict(list)
    for user, group in org.membership_frame().itertuples(index=False):
        teams[user].append(group)
    return {u: sorted(g) for u, g in teams.items()}


def experts(profiles: pd.DataFrame, skill: str, *, min_level: int = 1, team: str | None = None, org: OrgGraph | None = None) -> pd.DataFrame:
    """People with `skill` (a taxonomy name) at `min_level` or above, best first.

    `profiles` is the frame `profiles_with_teams` returns (also the stored table). With `team`,
    only that group's members (with its sub-groups when `org` is given).
    """
    sel = profiles[(profiles["skill"] == skill) & (profiles["level"] >= min_level)]
    if team is not None:
        if org is not None:
            members = org.members(team.lower(), recursive=True)
            sel = sel[sel["user_ref"].isin(members)]
        else:
            sel = sel[sel["teams"].fillna("").str.split(",").map(lambda ts: team.lower() in ts)]
    return sel.sort_values(["level", "user_ref"], ascending=[False, True], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Team coverage and single points of knowledge
# ---------------------------------------------------------------------------------------------


def rolled_members(org: OrgGraph) -> pd.DataFrame:
    """(group_ref, user_ref): every member of a group or of any of its sub-groups, once."""
    members = org.membership_frame().merge(org.rollup_frame(), on="group_ref")
    return (
        members[["rollup_ref", "user_ref"]]
        .rename(columns={"rollup_ref": "group_ref"})
        .drop_duplicates()
        .reset_index(drop=True)
    )


def coverage(skills: pd.DataFrame, org: OrgGraph, *, holder_min_level: int = DEFAULT_LEVEL) -> pd.DataFrame:
    """Per group (sub-groups rolled up) and skill: how many members hold it, how many are advanced,
    the best level, and the group's size.
    """
    members = rolled_members(org)
    size = members.groupby("group_ref").size().rename("members")
    held = members.merge(skills[["user_ref", "skill", "level"]], on="user_ref")
    cols = ["group_ref", "skill", "holders", "advanced", "max_level", "members", "share"]
    if held.empty:
        return pd.DataFrame(columns=cols)
    held = held.assign(holder=held["level"] >= holder_min_level, adv=held["level"] >= 3)
    out = (
        held.groupby(["group_ref", "skill"], sort=True)
        .agg(holders=("holder", "sum"), advanced=("adv", "sum"), max_level=("level", "max"))
        .reset_index()
        .astype({"holders": "int64", "advanced": "int64"})
    )
    out["members"] = out["group_ref"].map(size).astype("int64")
    out["share"] = (out["holders"] / out["members"]).round(3)
    return out[cols]


def group_needs(entities: pd.DataFrame, org: OrgGraph, taxonomy: Taxonomy) -> pd.DataFrame:
    """What each group depends on knowing: declared on the Group, or inferred from what it owns.

    Inferred from the tags of the entities a group owns and the type of its APIs, counting only
    names the taxonomy knows (a tag like `tier-1` is not a skill). `entities` counts how many owned
    entities carry the need.
    """
    from analytics.health.graph import entity_index

    index = entity_index(entities)
    rows: list[tuple[str, str, str, str]] = []
    for ref, kind, owner, etype, entity in zip_columns(index["ref"], index["kind"], index["owner"], index["type"], index["entity"]):
        meta = (entity or {}).get("metadata") or {}
        if kind == "group":
            for item in _split_list((meta.get("annotations") or {}).get(NEEDS_ANNOTATION)):
                skill = taxonomy.normalise(item)
                if skill:
                    rows.append((ref, skill, "declared", ref))
            continue
        if not isinstance(owner, str) or not owner.startswith("group:"):
            continue
        found = {taxonomy.resolve(tag) for tag in meta.get("tags") or []}
        if kind == "api":
            found.add(taxonomy.resolve(etype))
        for skill in found - {None}:
            rows.append((owner, skill, "inferred", ref))
    cols = ["group_ref", "skill", "source", "entities"]
    if not rows:
        return pd.DataFrame(columns=cols)
    frame = pd.DataFrame(rows, columns=["group_ref", "skill", "source", "ref"])
    frame = frame[frame["group_ref"].isin(org.all_groups() | set(index.loc[index["kind"] == "group", "ref"]))]
    frame = frame.assign(declared=frame["source"] == "declared", inferred=frame["source"] == "inferred")
    out = (
        frame.groupby(["group_ref", "skill"], sort=True)
        .agg(declared=("declared", "any"), inferred=("inferred", "any"), entities=("inferred", "sum"))
        .reset_index()
    )
    out["source"] = np.select(
        [out["declared"] & out["inferred"], out["declared"]], ["declared+inferred", "declared"], default="inferred"
    )
    out["entities"] = out["entities"].astype("int64")
    return out[cols]


def knowledge_risks(needs: pd.DataFrame, skills: pd.DataFrame, org: OrgGraph, *, holder_min_level: int = DEFAULT_LEVEL) -> pd.DataFrame:
    """Skills a group depends on that one member has (`single_point`) or none has (`gap`).

    Holders are members of the group or its sub-groups at `holder_min_level` or above. A single
    point of knowledge is a warning (one resignation from a gap); a gap is an error.
    """
    cols = ["group_ref", "skill", "risk", "severity", "holders", "holder", "source", "entities", "members"]
    if needs.empty:
        return pd.DataFrame(columns=cols)
    members = rolled_members(org)
    size = members.groupby("group_ref").size()
    able = skills[skills["level"] >= holder_min_level][["user_ref", "skill"]]
    held = members.merge(able, on="user_ref")
    held = held.drop_duplicates().sort_values("user_ref")
    counted = held.groupby(["group_ref", "skill"]).agg(holders=("user_ref", "size"), holder=("user_ref", "first"))
    out = needs.merge(counted, left_on=["group_ref", "skill"], right_index=True, how="left")
    out["holders"] = out["holders"].fillna(0).astype("int64")
    out = out[out["holders"] <= 1].copy()
    if out.empty:
        return pd.DataFrame(columns=cols)
    out["holder"] = out["holder"].where(out["holders"] == 1, None)
    out["risk"] = np.where(out["holders"] == 1, "single_point", "gap")
    out["severity"] = np.where(out["holders"] == 1, "warning", "error")
    out["members"] = out["group_ref"].map(size).fillna(0).astype("int64")
    return out.sort_values(["severity", "group_ref", "skill"], ignore_index=True)[cols]


# ---------------------------------------------------------------------------------------------
# Mentorships
# ---------------------------------------------------------------------------------------------


@dataclass
class MentorMatching:
    matches: pd.DataFrame  # MATCH_COLUMNS
    unmatched: pd.DataFrame  # learner, skill, reason
    load: pd.DataFrame  # mentor, capacity, assigned


def match_mentors(
    profiles: SkillProfiles,
    org: OrgGraph,
    *,
    min_level: int = 3,
    default_capacity: int = 1,
    candidates_per_wish: int = 10,
) -> MentorMatching:
    """Pair each learning wish with a mentor, as many pairs as capacities allow.

    An assignment problem solved exactly in two stages: first the largest number of wishes that
    can be matched (so preferring one pair never costs another learner their only mentor), then,
    among those maximum matchings, the cheapest. A same-team pair costs more than any difference
    in level (people learn most from another team, and it spreads knowledge across silos); a
    higher mentor level costs less. A mentor needs `min_level` and a level above the learner's,
    takes at most their capacity (`mentor-capacity`, else `default_capacity`) and never gets the
    same learner twice.

    The problem is a network flow (wish → learner/mentor pair → mentor), so its linear programme
    has integral optimal vertices; HiGHS (`scipy.optimize.linprog`, dual simplex) solves it in C.
    Each wish keeps `candidates_per_wish` of the best mentors plus as many spread over the rest of
    the skill's mentors (a different slice per wish), which bounds the problem on a big org
    without letting every wish queue for the same few experts.
    """
    teams = _teams(org)
    team_sets = {u: frozenset(t) for u, t in teams.items()}
    skills = profiles.skills
    capacity = {u: default_capacity for u in skills["user_ref"].unique()}
    for user, cap in zip_columns(profiles.people["user_ref"], profiles.people["mentor_capacity"]):
        if cap is not None and not pd.isna(cap):
            capacity[user] = int(cap)
    able = skills[(skills["level"] >= min_level) & skills["user_ref"].map(lambda u: capacity.get(u, default_capacity) > 0)]
    able = able.sort_values(["skill", "level", "user_ref"], ascending=[True, False, True])
    by_skill = {skill: list(zip_columns(g["user_ref"], g["level"].astype(int))) for skill, g in able.groupby("skill", sort=False)}

    unmatched: list[tuple[str, str, str]] = []
    # Candidate edges: wish index, mentor, level, cross-team, cost.
    cand_wish: list[int] = []
    cand_mentor: list[str] = []
    cand_level: list[int] = []
    cand_cross: list[bool] = []
    cand_cost: list[int] = []
    wish_rows = list(profiles.wishes[["user_ref", "skill", "current_level"]].itertuples(index=False))
    seen_per_skill: dict[str, int] = defaultdict(int)
    empty: frozenset[str] = frozenset()
    for i, (learner, skill, current) in enumerate(wish_rows):
        pool = by_skill.get(skill, [])
        mine = team_sets.get(learner, empty)
        floor = int(current or 0)
        k = candidates_per_wish
        offset = (seen_per_skill[skill] * k) % len(pool) if pool else 0
        seen_per_skill[skill] += 1
        picked: dict[str, tuple[int, bool]] = {}
        # Best first, then a slice of the rest starting where the previous wish's slice ended.
        for start, want in ((0, k), (offset, k)):
            found = 0
            for j in range(len(pool)):
                mentor, level = pool[(start + j) % len(pool)]
                if found >= want:
                    break
                if mentor == learner or level <= floor or mentor in picked:
                    continue
                picked[mentor] = (level, not (mine & team_sets.get(mentor, empty)))
                found += 1
        if not picked:
            unmatched.append((learner, skill, "no mentor with this skill"))
            continue
        for mentor, (level, cross) in picked.items():
            cand_wish.append(i)
            cand_mentor.append(mentor)
            cand_level.append(level)
            cand_cross.append(cross)
            # Same team costs 100, more than the whole level range (0..30): cross-team wins first.
            cand_cost.append((0 if cross else 100) + (4 - level) * 10)

    chosen = _solve_assignment(cand_wish, cand_mentor, [wish_rows[i][0] for i in cand_wish], cand_cost, capacity, default_capacity)
    matches = []
    assigned: dict[str, int] = defaultdict(int)
    matched_wishes = set()
    for e in chosen:
        i, mentor = cand_wish[e], cand_mentor[e]
        learner, skill, current = wish_rows[i]
        matched_wishes.add(i)
        assigned[mentor] += 1
        matches.append(
            (learner, skill, mentor, cand_level[e], int(current or 0), cand_cross[e],
             ",".join(teams.get(learner, [])), ",".join(teams.get(mentor, [])))
        )
    for i in sorted(set(cand_wish) - matched_wishes):
        learner, skill, _ = wish_rows[i]
        unmatched.append((learner, skill, "every mentor for this skill is at capacity"))
    match_frame = pd.DataFrame(matches, columns=MATCH_COLUMNS).sort_values(["learner", "skill"], ignore_index=True)
    unmatched_frame = pd.DataFrame(sorted(unmatched), columns=["learner", "skill", "reason"])
    mentors = sorted(set(able["user_ref"]))
    load = pd.DataFrame(
        {"mentor": mentors, "capacity": [capacity.get(m, default_capacity) for m in mentors], "assigned": [assigned.get(m, 0) for m in mentors]}
    )
    return MentorMatching(match_frame, unmatched_frame, load)


def _solve_assignment(
    wish: list[int], mentor: list[str], learner: list[str], cost: list[int], capacity: dict[str, int], default_capacity: int
) -> list[int]:
    """Indices of the chosen candidate edges: maximum matching first, then minimum cost."""
    if not wish:
        return []
    import numpy as np
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, linprog, milp

    n = len(wish)
    wish_codes, _ = pd.factorize(pd.Series(wish))
    mentor_codes, mentor_names = pd.factorize(pd.Series(mentor, dtype=object))
    pair_codes, _ = pd.factorize(pd.Series([f"{l}\x00{m}" for l, m in zip(learner, mentor)], dtype=object))
    cols = np.arange(n)
    # One row per wish (≤ 1 mentor), per mentor (≤ capacity), per learner/mentor pair (≤ 1).
    blocks = [wish_codes, mentor_codes, pair_codes]
    offsets = np.cumsum([0] + [int(b.max()) + 1 for b in blocks])
    rows = np.concatenate([b + off for b, off in zip(blocks, offsets[:-1])])
    matrix = sparse.csr_array((np.ones(3 * n), (rows, np.tile(cols, 3))), shape=(int(offsets[-1]), n))
    upper = np.concatenate(
        [
            np.ones(offsets[1]),
            np.array([capacity.get(m, default_capacity) for m in mentor_names], dtype=float),
            np.ones(offsets[3] - offsets[2]),
        ]
    )
    # Lexicographic objective in one solve: every match earns `reward`, more than the cost of all
    # matches together, so one more match always beats any saving in cost. (A cardinality
    # constraint in a second solve would break the flow structure of the constraint matrix.)
    costs = np.asarray(cost, dtype=float)
    reward = float(costs.max(initial=0.0)) * (int(offsets[1]) + 1) + 1.0
    # The constraint matrix is totally unimodular (two laminar families of rows), so the dual
    # simplex ends on an integral vertex: an LP solve is exact here, and much faster than a MILP
    # (5 s instead of a minute for 10,000 wishes on the 200,000-entity org).
    cheapest = linprog(costs - reward, A_ub=matrix, b_ub=upper, bounds=(0, 1), method="highs-ds")
    if cheapest.status != 0 or np.any(np.minimum(cheapest.x, 1 - cheapest.x) > 1e-6):
        # Not expected; if it ever happens, the MILP gives the same answer, only slower.
        cheapest = milp(
            costs - reward,
            constraints=[LinearConstraint(matrix, -np.inf, upper)],
            integrality=np.ones(n),
            bounds=Bounds(0, 1),
        )
    if not cheapest.success:
        raise RuntimeError(f"mentor matching failed: {cheapest.message}")
    return [int(e) for e in np.flatnonzero(cheapest.x > 0.5)]


# ---------------------------------------------------------------------------------------------
# Gigs and embeds
# ---------------------------------------------------------------------------------------------

GIG_COLUMNS = [
    "gig_id", "title", "gig_kind", "team", "priority", "rank", "user_ref", "teams", "covered", "missing", "score", "assigned",
]


def load_gigs(path: str | Path) -> list[dict[str, Any]]:
    """gigs.yaml parsed through `GigsFile`; raises `SkillsConfigError` (file:line: path: message)."""
    data = _load_validated(GigsFile, path) or {}
    gigs = list(data.get("gigs") or [])
    seen: dict[str, int] = {}
    issues = []
    for i, gig in enumerate(gigs):
        if gig["id"] in seen:
            issues.append(ConfigIssue(str(path), config_files.line(data["gigs"], i), f"duplicate gig id {gig['id']!r} (first at gigs[{seen[gig['id']]}])", f"gigs[{i}].id"))
        seen.setdefault(gig["id"], i)
    if issues:
        raise SkillsConfigError(issues)
    return gigs


class SkillsConfigError(ValueError):
    """skills.yaml or gigs.yaml does not fit its model; one `file:line: path: message` per problem."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(map(str, issues)))


def _load_validated(model: Any, path: str | Path) -> Any:
    """The YAML document of `path` (lines kept) once `model` accepts it."""
    import yaml

    try:
        doc = config_files.load_yaml(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SkillsConfigError([config_files.yaml_issue(exc, str(path))]) from None
    if doc is None:
        return None
    _, issues = config_files.validate(model, doc, str(path))
    if issues:
        raise SkillsConfigError(issues)
    return doc


def match_gigs(
    gigs: list[dict[str, Any]],
    profiles: SkillProfiles,
    org: OrgGraph,
    taxonomy: Taxonomy,
    *,
    shortlist: int = 5,
    gigs_per_person: int = 1,
) -> pd.DataFrame:
    """Shortlist and staff short-term gigs (embeds, pairing, hack projects) from skill profiles.

    A gig lists `skills` (a name, or `{skill, level}`; level defaults to intermediate), `seats`,
    a `priority` label and the `team` asking. Candidates hold at least one required skill at the
    required level; embeds and pairing come from outside the asking team (its sub-groups
    included), hack projects from anywhere. People who set themselves unavailable are skipped.
    Score: 10 per covered skill plus the levels held, so covering more skills always wins.
    Gigs are staffed in priority order, each person in at most `gigs_per_person` gigs.
    """
    teams = _teams(org)
    unavailable = set(profiles.people.loc[profiles.people["gigs_available"] == False, "user_ref"])
    level_of = {(u, s): int(lvl) for u, s, lvl in zip_columns(profiles.skills["user_ref"], profiles.skills["skill"], profiles.skills["level"])}
    # Holders per skill, best first, so a gig only looks at people at its required level.
    holders: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for (u, s), lvl in level_of.items():
        holders[s].append((lvl, u))
    for found in holders.values():
        found.sort(key=lambda lu: -lu[0])
    priority_rank = {p: i for i, p in enumerate(taxonomy.priorities)}
    ordered = sorted(
        enumerate(gigs),
        key=lambda ig: (priority_rank.get(str(ig[1].get("priority", "normal")), len(priority_rank)), str(ig[1].get("id", ig[0]))),
    )
    load: dict[str, int] = defaultdict(int)
    rows = []
    for _, gig in ordered:
        required = []
        for item in gig.get("skills") or []:
            if isinstance(item, dict):
                skill, level = taxonomy.normalise(item.get("skill")), taxonomy.level(item.get("level"))
            else:
                name, _, lvl = str(item).partition(":")
                skill, level = taxonomy.normalise(name), taxonomy.level(lvl) if lvl else DEFAULT_LEVEL
            if skill:
                required.append((skill, level or DEFAULT_LEVEL))
        kind = str(gig.get("kind", "embed"))
        team = _group_ref(gig.get("team"))
        excluded = org.members(team, recursive=True) if team and kind in {"embed", "pairing"} else set()
        pool: set[str] = set()
        for skill, need in required:
            for lvl, user in holders.get(skill, []):
                if lvl < need:
                    break
                pool.add(user)
        pool -= excluded | unavailable
        scored = []
        for user in pool:
            covered = [s for s, lvl in required if level_of.get((user, s), 0) >= lvl]
            if not covered:
                continue
            score = 10 * len(covered) + sum(level_of[(user, s)] for s in covered)
            scored.append((-score, load[user], user, covered))
        scored.sort()
        seats = int(gig.get("seats", 1))
        filled = 0
        for rank, (neg, _, user, covered) in enumerate(scored, start=1):
            take = filled < seats and load[user] < gigs_per_person
            if take:
                load[user] += 1
                filled += 1
            elif rank > shortlist:
                if filled >= seats:
                    break
                continue
            rows.append(
                {
                    "gig_id": str(gig.get("id")),
                    "title": gig.get("title"),
                    "gig_kind": kind,
                    "team": team,
                    "priority": gig.get("priority", "normal"),
                    "rank": rank,
                    "user_ref": user,
                    "teams": ",".join(teams.get(user, [])),
                    "covered": ",".join(covered),
                    "missing": ",".join(s for s, _ in required if s not in covered),
                    "score": -neg,
                    "assigned": take,
                }
            )
        # A gig nobody can take is reported too, so it shows up as unstaffed rather than vanishing.
        if not scored:
            rows.append(
                {
                    "gig_id": str(gig.get("id")), "title": gig.get("title"), "gig_kind": kind, "team": team,
                    "priority": gig.get("priority", "normal"), "rank": None, "user_ref": None, "teams": None,
                    "covered": "", "missing": ",".join(s for s, _ in required), "score": 0, "assigned": False,
                }
            )
    return pd.DataFrame(rows, columns=GIG_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Schema (pydantic) of config/skills/skills.yaml and gigs.yaml, for
# `catalog-pipelines config schema/validate`; the loaders above stay lenient on what they read.
# ---------------------------------------------------------------------------------------------

from typing import Literal  # noqa: E402

from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

SKILL_CATEGORIES = ("DISCIPLINE", "FRAMEWORKS", "INFRASTRUCTURE", "LANGUAGES", "TECHNIQUES", "OTHER")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatchingModel(_Strict):
    mentor_min_level: int | None = Field(None, description="lowest level that may mentor")
    default_mentor_capacity: int | None = Field(None, description="mentees per mentor when the person has not said")
    candidates_per_wish: int | None = None
    holder_min_level: int | None = Field(None, description="'has the skill' for coverage and single points of knowledge")
    gig_shortlist: int | None = Field(None, description="candidates listed per gig")
    gigs_per_person: int | None = None


class SkillModel(_Strict):
    category: Literal[SKILL_CATEGORIES] | None = None  # type: ignore[valid-type]
    aliases: list[str | int | float] | None = None
    related: list[str] | None = None


class SkillsFile(_Strict):
    """The skill taxonomy and matching settings (config/skills/skills.yaml)."""

    levels: dict[int, str] | None = Field(None, description="level number -> word (1: beginner ... 4: expert)")
    matching: MatchingModel | None = None
    priorities: list[str] | None = Field(None, description="gig priority labels, most urgent first")
    skills: dict[str, SkillModel | None] | None = None


class GigSkillModel(_Strict):
    skill: str
    level: int | str | None = None


class GigModel(_Strict):
    id: str
    title: str | None = None
    description: str | None = None
    kind: Literal["embed", "pairing", "hack"] = "embed"
    team: str | None = Field(None, description="the group asking, e.g. group:default/team-b")
    priority: str | None = Field(None, description="one of the labels in skills.yaml `priorities`")
    seats: int | None = Field(None, ge=1)
    weeks: int | float | None = None
    skills: list[str | GigSkillModel] | None = Field(None, description='a name, "name:level" or {skill, level}')


class GigsFile(_Strict):
    """Gigs and embeds offered on the skills exchange (config/skills/gigs.yaml)."""

    gigs: list[GigModel] | None = None
