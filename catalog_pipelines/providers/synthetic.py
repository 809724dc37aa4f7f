"""A synthetic organisation: a seeded, deterministic, Backstage-shaped catalog of any size.

It stands in for a production catalog in tests and benchmarks (50 to 1,000,000 entities): an
organisation tree of groups (org → departments → divisions → teams), users in teams, domains,
systems, components, APIs and resources, wired the way real catalogs are (ownership by teams,
components and resources in systems, systems in domains, provided and consumed APIs, dependencies)
and with the production relation shape: a median of about four relations declared per entity and a
long tail (a few platform components and APIs that hundreds of entities use, a few entities that
depend on hundreds of others).

Statelessness is the design constraint. Entity `i` is computed from `(seed, i, generation)` alone:

- the slot layout is closed-form: groups, users, domains, systems, components, APIs, resources,
  each a contiguous run of slots; the group tree is a complete k-ary tree in heap order; the
  components and resources of system `s`, and the systems of domain `d`, are contiguous blocks;
  API `a` is provided by component `a * P // A`;
- what other entities need to know about the `j`-th entity of a kind (its name, type, owner) comes
  from one 64-bit hash of `(seed, kind, j)`;
- everything else comes from the entity's own hash of `(seed, i)` and a random stream seeded by it.

So a provider resumes at any cursor in any process at the cost of one page, and memory is bounded
by the page (plus name caches of bounded size).

Mutations model what changes between ingestion cycles. Generation 0 is the base; in each generation
`h = 1..g` every entity still present is independently removed, renamed or changed with the given
probabilities, decided by a hash of `(seed, i, h)`. Effects accumulate, so generation `g` differs
from `g - 1` by about the configured rates. A change redraws the description, lifecycle and tags;
a rename appends `-v<n>` to the name. References follow renames (whoever points at a renamed entity
points at its new name); references to removed entities are left dangling, as in a real catalog.

Speed: generating must keep up with what it feeds (200,000 entities in about 3 s on a 2-core VM
where one Python bytecode costs ~0.1 µs), so the builders read their fixed random choices from bit
fields of one 64-bit hash rather than drawing them one by one, and the hot loop in `_targets`
inlines its generator.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_pipelines.model.entity import RawEntity
from catalog_pipelines.providers.base import Page, no_setup

if TYPE_CHECKING:
    from catalog_pipelines.providers.registry import ChunkOptions

__all__ = ["KINDS", "MIN_SIZE", "SyntheticOrg", "SyntheticOrgProvider", "write_descriptor_tree"]

API_VERSION = "backstage.io/v1alpha1"
NAMESPACE = "default"
ORG_NAME = "northwind"  # not "acme-corp": the Backstage example catalog owns that ref
MIN_SIZE = 20
KINDS = ("Group", "User", "Domain", "System", "Component", "API", "Resource")
_GROUP, _USER, _DOMAIN, _SYSTEM, _COMPONENT, _API, _RESOURCE = range(7)

_M64 = (1 << 64) - 1
_U64 = float(1 << 64)
_GOLDEN = 0x9E3779B97F4A7C15
_LCG_A = 6364136223846793005
_LCG_C = 1442695040888963407
_INV53 = 1.0 / (1 << 53)

# --- shape parameters -------------------------------------------------------------------------
# Share of slots per kind; components take the rest (about 60%), as in real catalogs. Users, APIs,
# systems, domains and most groups can only declare one or two relations, so the ~4 median rests
# on keeping their share well below half.
_SHARE_GROUP = 0.02
_SHARE_USER = 0.10
_SHARE_SYSTEM = 0.04
_SHARE_API = 0.12
_SHARE_RESOURCE = 0.11
# A popular target's index is floor(n * u**_ZIPF): index 0 receives about n**(-1/_ZIPF) of all
# draws (2.5% at n = 10,000), which makes the first (platform) components and APIs used by hundreds.
_ZIPF = 2.5
# Outgoing counts are Pareto, floor(scale * u**(-1/alpha)): most components depend on two to four
# things, about one in 500 on a hundred or more (capped at _MAX_TARGETS).
_DEPS_SCALE = 2.0
_DEPS_EXPONENT = -1.0 / 1.7
_CONSUMES_EXPONENT = -1.0 / 1.6
_DEPS_ON_RESOURCES = 0.3
_MAX_TARGETS = 600
# Probabilities compared with 10-bit fields of an entity's hash.
_P_SUBCOMPONENT = round(0.03 * 1024)
_P_NO_CONSUMES = round(0.20 * 1024)
_P_NO_DEPS = round(0.05 * 1024)
_P_RESOURCE_DEPENDS = round(0.30 * 1024)
_P_SECOND_TEAM = round(0.15 * 1024)
_P_HAS_SYSTEM = round(0.92 * 1024)
_P_SYSTEM_OWNER = round(0.80 * 1024)
# Component type by a roll in [0, 100): service 55%, website 15%, library 30%.
_COMPONENT_TYPE_ROLL = (0,) * 55 + (1,) * 15 + (2,) * 30
_API_TYPE_ROLL = (0,) * 60 + (1,) * 25 + (2,) * 15
_RESOURCE_TYPE_ROLL = (0,) * 45 + (1,) * 25 + (2,) * 30

# --- vocabulary ---------------------------------------------------------------------------------
# "platform" comes first: domain 0 holds system 0, which holds the first, most depended-on components.
_AREAS = (
    "platform", "payments", "checkout", "billing", "identity", "search", "catalog", "inventory",
    "logistics", "shipping", "pricing", "messaging", "notifications", "analytics", "reporting",
    "media", "streaming", "replay", "recommendations", "ads", "growth", "onboarding", "fraud",
    "risk", "compliance", "security", "support", "marketplace", "loyalty", "booking", "maps",
    "insights", "content", "commerce", "accounts", "subscriptions", "partners", "data", "infra",
    "observability",
)
_NOUNS = (
    "ledger", "gateway", "router", "indexer", "scheduler", "ingest", "sync", "resolver", "tracker",
    "profile", "session", "cart", "quote", "ranking", "feed", "export", "archive", "audit", "token",
    "webhook", "renderer", "proxy", "pipeline", "registry", "cache", "planner", "matcher", "events",
    "orders", "invoices", "refunds", "wallet", "ratings", "reviews", "alerts", "metrics", "config",
    "flags", "assets", "uploads", "thumbnails", "translations", "consent", "entitlements", "quotas",
    "settlements", "payouts", "receipts", "coupons", "vouchers", "routes", "geocoder", "dispatch",
    "manifest", "labels", "warehouse", "stock", "forecast", "segments", "cohorts", "experiments",
)
_ADJECTIVES = (
    "swift", "bright", "blue", "red", "iron", "silver", "golden", "quiet", "rapid", "bold", "calm",
    "clever", "cosmic", "crimson", "emerald", "fierce", "frosty", "gentle", "happy", "jade", "lunar",
    "mighty", "noble", "orange", "polar", "purple", "royal", "solar", "steady", "stellar", "sunny",
    "tidal", "urban", "vivid", "wild", "amber", "arctic", "atomic", "brave", "coral",
)
_FIRST = (
    "ada", "alan", "amara", "ana", "arjun", "bea", "bruno", "chen", "chloe", "dario", "dmitri",
    "elena", "emil", "fatima", "felix", "grace", "hana", "hugo", "ines", "ivan", "jamal", "julia",
    "kenji", "lara", "leo", "lucia", "malik", "maria", "mateo", "mei", "nadia", "nils", "olga",
    "omar", "priya", "rafael", "sara", "tomas", "yara", "zoe",
)
_LAST = (
    "adams", "akhtar", "alvarez", "bauer", "berg", "costa", "dawe", "dubois", "eriksen", "fischer",
    "garcia", "haddad", "hansen", "ito", "jensen", "kaur", "kim", "kowalski", "larsen", "lopez",
    "manning", "moreau", "nakamura", "novak", "okafor", "olsen", "patel", "petrov", "quinn", "rossi",
    "sato", "schmidt", "silva", "smith", "tanaka", "varga", "weber", "wong", "yilmaz", "zhang",
)
_SYSTEM_NOUNS = ("platform", "suite", "hub", "engine", "core", "services", "portal", "backbone", "stack")
_COMPONENT_TYPES = ("service", "website", "library")
_COMPONENT_SUFFIXES = (
    ("service", "svc", "worker", "server", "daemon"),
    ("web", "portal", "ui", "console", "site"),
    ("lib", "sdk", "client", "utils", "common"),
)
_API_TYPES = ("openapi", "grpc", "graphql")
_API_TAGS = ("rest", "grpc", "graphql")
_RESOURCE_TYPES = ("database", "queue", "bucket")
_RESOURCE_SUFFIXES = ("db", "queue", "bucket")
_RESOURCE_TAGS = ("postgres", "kafka", "s3")
_RESOURCE_WORDS = ("PostgreSQL database", "Kafka topic", "S3 bucket")
_RESOURCE_ARN = ("rds", "kafka", "s3")
_LANGUAGES = ("java", "kotlin", "python", "go", "typescript", "javascript", "rust", "scala", "ruby", "csharp")
_TOPICS = (
    "grpc", "rest", "graphql", "kafka", "postgres", "redis", "spring-boot", "django", "fastapi",
    "react", "nextjs", "kubernetes", "lambda", "terraform", "pci", "gdpr", "tier-1", "tier-2",
    "tier-3", "batch", "streaming", "internal", "public", "ml",
)
_LIFECYCLES = ("production",) * 14 + ("experimental",) * 4 + ("deprecated",) * 2
_VERBS = (
    "handles", "serves", "computes", "stores", "publishes", "reconciles", "validates", "aggregates",
    "routes", "tracks", "exposes", "schedules",
)
_REGIONS = ("eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1", "eu-central-1")
_JOB_TITLES = (
    "Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager",
    "Site Reliability Engineer", "Product Manager", "Data Engineer", "Designer", "QA Engineer",
    "Principal Engineer",
)
_CITIES = (
    "Amsterdam", "Austin", "Bangalore", "Berlin", "Dublin", "Lisbon", "London", "Madrid", "Montreal",
    "Nairobi", "New York", "Paris", "Sao Paulo", "Seoul", "Singapore", "Stockholm", "Sydney",
    "Tokyo", "Toronto", "Warsaw",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def _closing_sentences() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The sentences a description ends with, for (technical entities, users, groups).

    A "change" mutation always picks a different one, which is what guarantees that a changed
    entity's content differs; all sentences of a table are distinct.
    """
    tech = [f"It runs in {region} and scales with the traffic of the region." for region in _REGIONS]
    tech += [f"Migrated off the legacy monolith in {year}; read the runbook before changing retention." for year in range(2016, 2025)]
    tech += [f"Read-heavy; results are cached for {minutes} minutes." for minutes in range(5, 65, 5)]
    tech += [f"Part of the {area} golden path; changes need a review from the owning team." for area in _AREAS]
    tech += [f"Emits events consumed by downstream {area} reporting jobs." for area in _AREAS]
    tech.append("On-call follows the owning team's rotation during business hours.")
    users = [f"Based in {city}." for city in _CITIES] + [f"Works remotely from near {city}." for city in _CITIES]
    groups = [f"Stand-up is at {h}:{m:02d} every weekday." for h in (9, 10) for m in (0, 15, 30, 45)]
    groups += [f"Sprint planning happens every other {day}." for day in _DAYS]
    groups += [f"Office hours on {day} afternoons." for day in _DAYS]
    return tuple(tech), tuple(users), tuple(groups)


_TECH_CLOSINGS, _USER_CLOSINGS, _GROUP_CLOSINGS = _closing_sentences()
_CLOSINGS = (_GROUP_CLOSINGS, _USER_CLOSINGS) + (_TECH_CLOSINGS,) * 5


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash of a 64-bit integer."""
    x = (x + _GOLDEN) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _seed_key(seed: int) -> int:
    """A 64-bit key from a seed of any size or sign (built-in hash() of an int is no mixer)."""
    x = 0
    for part in seed.to_bytes((seed.bit_length() + 8) // 8 + 1, "little", signed=True):
        x = _mix(x ^ part)
    return x


def _tag_sets(count: int) -> tuple[tuple[str, ...], ...]:
    """`count` tag lists (a language, then one to three topics), the same for every seed."""
    rng = _Rng(0x7A65)
    out = []
    for _ in range(count):
        tags = [_LANGUAGES[rng.below(len(_LANGUAGES))]]
        for _ in range(1 + rng.below(3)):
            topic = _TOPICS[rng.below(len(_TOPICS))]
            if topic not in tags:
                tags.append(topic)
        out.append(tuple(tags))
    return tuple(out)


class _Rng:
    """An entity's stream of random draws: a 64-bit LCG of which only the high bits are used.

    Seeding `random.Random` costs ~7 µs here, half of an entity's budget; an LCG step is a few
    integer operations, and its high bits are good enough for synthetic data.
    """

    __slots__ = ("s",)

    def __init__(self, state: int) -> None:
        self.s = state

    def bits(self) -> int:
        """The next 64-bit state: use its high bits (its low bits have short periods)."""
        self.s = (self.s * _LCG_A + _LCG_C) & _M64
        return self.s

    def below(self, n: int) -> int:
        """Uniform in [0, n) for n < 2**32 (multiply-shift; bias below n / 2**32)."""
        s = self.s = (self.s * _LCG_A + _LCG_C) & _M64
        return ((s >> 32) * n) >> 32

    def random(self) -> float:
        """Uniform in [0, 1)."""
        s = self.s = (self.s * _LCG_A + _LCG_C) & _M64
        return (s >> 11) * _INV53


_TAG_SETS = _tag_sets(1024)


def _title(slug: str) -> str:
    return slug.replace("-", " ").title()


def _stem(name: str) -> str:
    """A name without its index and rename suffix: "checkout-ledger-svc-12-v3" → "checkout-ledger-svc"."""
    stem, last = name.rsplit("-", 1)
    if last[0] == "v":  # indices are digits, so a last part starting with "v" is a rename suffix
        stem = stem.rsplit("-", 1)[0]
    return stem


class SyntheticOrg:
    """A synthetic Backstage catalog of `size` entity slots, each computed on demand.

    Slots are laid out by kind in the order of `KINDS` (`kind_counts()` gives the sizes; the
    minimum size is `MIN_SIZE`). `entity(i)` builds slot `i` for this generation, or returns None
    when the mutations removed it. `dangling_fraction` of the dependency targets (`dependsOn`,
    `consumesApis` entries) name entities that never exist; with 0, every reference in generation 0
    resolves.
    """

    def __init__(
        self,
        size: int,
        seed: int = 42,
        generation: int = 0,
        remove_fraction: float = 0.0,
        rename_fraction: float = 0.0,
        change_fraction: float = 0.0,
        dangling_fraction: float = 0.002,
    ) -> None:
        if size < MIN_SIZE:
            raise ValueError(f"size must be at least {MIN_SIZE}, got {size}")
        if generation < 0:
            raise ValueError(f"generation must be >= 0, got {generation}")
        for label, value in (
            ("remove_fraction", remove_fraction),
            ("rename_fraction", rename_fraction),
            ("change_fraction", change_fraction),
            ("dangling_fraction", dangling_fraction),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be between 0 and 1, got {value}")
        if remove_fraction + rename_fraction + change_fraction > 1.0:
            raise ValueError("remove_fraction + rename_fraction + change_fraction must not exceed 1")
        self.size = size
        self.seed = seed
        self.generation = generation
        self.remove_fraction = remove_fraction
        self.rename_fraction = rename_fraction
        self.change_fraction = change_fraction
        self.dangling_fraction = dangling_fraction

        n_group = max(4, round(size * _SHARE_GROUP))
        n_user = max(5, round(size * _SHARE_USER))
        n_domain = max(2, round(size**0.5 / 4))
        n_system = max(2, round(size * _SHARE_SYSTEM))
        n_api = max(3, round(size * _SHARE_API))
        n_resource = max(3, round(size * _SHARE_RESOURCE))
        n_component = size - n_group - n_user - n_domain - n_system - n_api - n_resource
        self._counts = (n_group, n_user, n_domain, n_system, n_component, n_api, n_resource)
        offsets = [0]
        for count in self._counts:
            offsets.append(offsets[-1] + count)
        self._offsets = tuple(offsets)

        # The smallest fanout k with k**3 >= groups keeps the tree at about three levels below the
        # organisation at any size (k = 3 for 50 entities, 28 for a million).
        k = 3
        while k**3 < n_group:
            k += 1
        self._fanout = k
        self._first_leaf = (n_group - 1 + k - 1) // k  # groups [first_leaf, n_group) are the teams
        self._n_teams = n_group - self._first_leaf
        self._n_departments = min(k, n_group - 1)
        # Components [0, P) are services that provide the APIs, about 1.4 each.
        self._n_providers = min(n_component, max(1, round(n_api / 1.4)))

        key = _seed_key(seed)
        self._entity_key = _mix(key ^ 0xE1)
        self._change_key = _mix(key ^ 0xC4)
        self._mutation_key = _mix(key ^ 0x5E)
        self._kind_keys = tuple(_mix(key ^ (0xA5A50000 + kind)) for kind in range(7))
        self._mutating = generation > 0 and (remove_fraction + rename_fraction + change_fraction) > 0
        self._t_remove = int(remove_fraction * _U64)
        self._t_rename = int((remove_fraction + rename_fraction) * _U64)
        self._t_change = int((remove_fraction + rename_fraction + change_fraction) * _U64)
        # Popular targets are named over and over. Each cache is emptied when it reaches
        # _NAME_CACHE entries, so memory stays bounded whatever the size (~15 MB at 200k).
        self._names: tuple[dict[int, str], ...] = tuple({} for _ in KINDS)

    # 2**18 holds every name of a 200k org's largest kind: at 2**15 the component cache was
    # emptied every 33k names and a 200k pass cost 5.5 s of CPU instead of 4.2 s.
    _NAME_CACHE = 1 << 18

    # --- layout ---------------------------------------------------------------------------------

    def count_slots(self) -> int:
        """Number of slots; in generation 0 every slot holds an entity."""
        return self.size

    def __len__(self) -> int:
        return self.size

    def kind_counts(self) -> dict[str, int]:
        """Slots per kind, in layout order."""
        return dict(zip(KINDS, self._counts))

    def kind_range(self, kind: str) -> range:
        """The slots that hold `kind` (a name from `KINDS`)."""
        k = KINDS.index(kind)
        return range(self._offsets[k], self._offsets[k + 1])

    def slot_kind(self, i: int) -> str:
        return KINDS[self._locate(i)[0]]

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < self.size:
            raise IndexError(f"slot {i} out of range for a synthetic org of {self.size}")
        kind = bisect_right(self._offsets, i) - 1
        return kind, i - self._offsets[kind]

    # --- mutations --------------------------------------------------------------------------------

    def _mutation(self, i: int) -> tuple[bool, int, int]:
        """(removed, generation of the last rename, generation of the last change) of slot `i`."""
        if not self._mutating:
            return False, 0, 0
        renamed = changed = 0
        base = _mix(self._mutation_key ^ i)
        t_remove, t_rename, t_change = self._t_remove, self._t_rename, self._t_change
        for h in range(1, self.generation + 1):
            x = _mix((base + h * _GOLDEN) & _M64)
            if x < t_remove:
                return True, renamed, changed
            if x < t_rename:
                renamed = h
            elif x < t_change:
                changed = h
        return False, renamed, changed

    def is_removed(self, i: int) -> bool:
        """Whether slot `i` holds no entity in this generation."""
        self._locate(i)
        return self._mutation(i)[0]

    # --- cross-entity facts: closed form or one hash each ----------------------------------------

    def _team(self, x: int) -> int:
        return self._first_leaf + x % self._n_teams

    def _group_children(self, g: int) -> range:
        k = self._fanout
        return range(k * g + 1, min(k * g + k, self._counts[_GROUP] - 1) + 1)

    def _group_type(self, g: int) -> str:
        if g == 0:
            return "organization"
        if g >= self._first_leaf:
            return "team"
        return "department" if g <= self._fanout else "division"

    def _user_teams(self, u: int) -> list[int]:
        h = _mix(self._kind_keys[_USER] ^ u)
        n_teams = self._n_teams
        first = (h >> 24) % n_teams
        teams = [self._first_leaf + first]
        if n_teams > 1 and (h & 0x3FF) < _P_SECOND_TEAM:
            teams.append(self._first_leaf + (first + 1 + (h >> 10 & 0x3FFF) % (n_teams - 1)) % n_teams)
        return teams

    def _system_domain(self, s: int) -> int:
        return s * self._counts[_DOMAIN] // self._counts[_SYSTEM]

    def _system_owner(self, s: int) -> int:
        return self._team(_mix(self._kind_keys[_SYSTEM] ^ s) >> 8)

    def _component_facts(self, c: int) -> tuple[int, int | None, int, int]:
        """(type index, system or None, owning team, noun index) of component `c`."""
        h = _mix(self._kind_keys[_COMPONENT] ^ c)
        ctype = 0 if c < self._n_providers else _COMPONENT_TYPE_ROLL[h % 100]
        system = c * self._counts[_SYSTEM] // self._counts[_COMPONENT] if (h >> 24 & 0x3FF) < _P_HAS_SYSTEM else None
        if system is not None and (h >> 34 & 0x3FF) < _P_SYSTEM_OWNER:
            team = self._system_owner(system)
        else:
            team = self._team(h >> 44)
        return ctype, system, team, (h >> 8) % len(_NOUNS)

    def _provided_apis(self, c: int) -> range:
        if c >= self._n_providers:
            return range(0)
        n_api, p = self._counts[_API], self._n_providers
        return range(-(-c * n_api // p), -(-(c + 1) * n_api // p))

    # --- names ------------------------------------------------------------------------------------

    def _name(self, kind: int, j: int) -> str:
        """Current name of the `j`-th entity of `kind` (its last name, if it was removed)."""
        cache = self._names[kind]
        name = cache.get(j)
        if name is None:
            if len(cache) >= self._NAME_CACHE:
                cache.clear()
            name = self._base_name(kind, j)
            if self._mutating:
                renamed = self._mutation(self._offsets[kind] + j)[1]
                if renamed:
                    # Base names end in "-<index>", so "-v<n>" after it never equals a base name.
                    name = f"{name}-v{renamed + 1}"
            cache[j] = name
        return name

    def _base_name(self, kind: int, j: int) -> str:
        """Name of the `j`-th entity of `kind` in generation 0: words, then the per-kind index."""
        # Components, APIs and resources are named for every reference to them, so the
        # closed-form layout (system of a component, domain of a system) is inlined here.
        n_group, n_user, n_domain, n_system, n_component, n_api, n_resource = self._counts
        if kind == _COMPONENT:
            h = _mix(self._kind_keys[_COMPONENT] ^ j)
            ctype = 0 if j < self._n_providers else _COMPONENT_TYPE_ROLL[h % 100]
            area = _AREAS[(j * n_system // n_component) * n_domain // n_system % len(_AREAS)]
            return f"{area}-{_NOUNS[(h >> 8) % len(_NOUNS)]}-{_COMPONENT_SUFFIXES[ctype][(h >> 16 & 0xFF) % 5]}-{j}"
        if kind == _API:
            p = j * self._n_providers // n_api
            h = _mix(self._kind_keys[_COMPONENT] ^ p)
            area = _AREAS[(p * n_system // n_component) * n_domain // n_system % len(_AREAS)]
            return f"{area}-{_NOUNS[(h >> 8) % len(_NOUNS)]}-api-{j}"
        if kind == _RESOURCE:
            h = _mix(self._kind_keys[_RESOURCE] ^ j)
            area = _AREAS[(j * n_system // n_resource) * n_domain // n_system % len(_AREAS)]
            return f"{area}-{_NOUNS[(h >> 8) % len(_NOUNS)]}-{_RESOURCE_SUFFIXES[_RESOURCE_TYPE_ROLL[h % 100]]}-{j}"
        if kind == _SYSTEM:
            noun = _SYSTEM_NOUNS[_mix(self._kind_keys[_SYSTEM] ^ j) % len(_SYSTEM_NOUNS)]
            return f"{_AREAS[self._system_domain(j) % len(_AREAS)]}-{noun}-{j}"
        if kind == _DOMAIN:
            area = _AREAS[j % len(_AREAS)]
            return area if j < len(_AREAS) else f"{area}-{j // len(_AREAS)}"
        if kind == _USER:
            h = _mix(self._kind_keys[_USER] ^ j) >> 48
            return f"{_FIRST[h % len(_FIRST)]}.{_LAST[(h >> 8) % len(_LAST)]}.{j}"
        if j == 0:
            return ORG_NAME
        h = _mix(self._kind_keys[_GROUP] ^ j)
        gtype = self._group_type(j)
        if gtype == "team":
            return f"team-{_ADJECTIVES[(h >> 8) % len(_ADJECTIVES)]}-{_NOUNS[(h >> 16) % len(_NOUNS)]}-{j}"
        if gtype == "department":
            return f"{_AREAS[h % len(_AREAS)]}-{j}"
        return f"{_AREAS[h % len(_AREAS)]}-{_NOUNS[(h >> 16) % len(_NOUNS)]}-{j}"

    def ref(self, i: int) -> str:
        """Canonical ref of slot `i` in this generation (its last ref if it was removed)."""
        kind, j = self._locate(i)
        return f"{KINDS[kind].lower()}:{NAMESPACE}/{self._name(kind, j)}"

    # --- entities ---------------------------------------------------------------------------------

    def entity(self, i: int) -> dict[str, Any] | None:
        """Slot `i` as a Backstage entity body, or None if it is removed in this generation.

        Builders get `x`, the entity's 64-bit hash, whose bit fields hold its fixed random
        choices; `rng`, a stream for variable-length draws; `y`, 64 bits for the fields a change
        redraws (description words, lifecycle, tags); and the description's closing sentence.
        """
        if not 0 <= i < self.size:
            raise IndexError(f"slot {i} out of range for a synthetic org of {self.size}")
        kind = bisect_right(self._offsets, i) - 1
        changed = 0
        if self._mutating:
            removed, _, changed = self._mutation(i)
            if removed:
                return None
        x = _mix(self._entity_key ^ i)
        rng = _Rng(x)
        y = rng.bits()
        closings = _CLOSINGS[kind]
        closing = (y >> 40) % len(closings)
        if changed:
            before = closing
            y = _mix(self._change_key ^ (i << 20 | changed))
            closing = (y >> 40) % len(closings)
            if closing == before:
                closing = (closing + 1) % len(closings)
        return _BUILDERS[kind](self, i - self._offsets[kind], x, rng, y, closings[closing])

    def iter_entities(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """Entities of slots `[start, stop)` in slot order, skipping removed ones."""
        stop = self.size if stop is None else min(stop, self.size)
        for i in range(max(0, start), stop):
            entity = self.entity(i)
            if entity is not None:
                yield entity

    def users_and_groups(self) -> Iterator[dict[str, Any]]:
        """Only the Group and User entities (the first slots), e.g. to build an `OrgGraph`."""
        return self.iter_entities(0, self._offsets[_USER + 1])

    # --- pieces shared by the builders ------------------------------------------------------------

    def _targets(self, rng: _Rng, count: int, kind: int, exclude: range, out: list[str]) -> None:
        """Append up to `count` distinct, Zipf-popular refs of `kind`, some of them dangling.

        This loop runs for most relations of the whole org, so the generator step and the name
        cache lookup are inlined (method calls per draw doubled its cost).
        """
        prefix = f"{KINDS[kind].lower()}:{NAMESPACE}/"
        pool = self._counts[kind]
        dangle = self.dangling_fraction
        keep = 1.0 - dangle
        cache = self._names[kind]
        seen: set[int] = set()
        s = rng.s
        for _ in range(count):
            s = (s * _LCG_A + _LCG_C) & _M64
            u = (s >> 11) * _INV53
            if u < dangle:
                # "retired-" starts no generated name, so this ref never resolves.
                out.append(f"{prefix}retired-{_NOUNS[(s >> 40) % len(_NOUNS)]}-{s >> 44}")
                continue
            # One draw serves both decisions: past the dangling share, u rescaled is uniform again.
            t = int(pool * ((u - dangle) / keep) ** _ZIPF)
            if t in seen or t in exclude:
                continue
            seen.add(t)
            name = cache.get(t)
            out.append(prefix + (name if name is not None else self._name(kind, t)))
        rng.s = s

    def _group_ref(self, g: int) -> str:
        return f"group:{NAMESPACE}/{self._name(_GROUP, g)}"

    def _system_ref(self, s: int) -> str:
        return f"system:{NAMESPACE}/{self._name(_SYSTEM, s)}"

    # --- builders, one per kind -------------------------------------------------------------------

    def _build_group(self, g: int, x: int, rng: _Rng, y: int, closing: str) -> dict[str, Any]:
        name = self._name(_GROUP, g)
        gtype = self._group_type(g)
        if g == 0:
            display = "Northwind"
            description = f"Northwind, the whole engineering organisation. {closing}"
        else:
            display = _title(_stem(name[5:] if gtype == "team" else name))
            description = (
                f"The {display} {gtype} {_VERBS[(y >> 8) % len(_VERBS)]} {_NOUNS[(y >> 16) % len(_NOUNS)]} "
                f"and {_NOUNS[(y >> 24) % len(_NOUNS)]} work for {_AREAS[(y >> 32) % len(_AREAS)]}. {closing}"
            )
        spec: dict[str, Any] = {
            "type": gtype,
            "profile": {
                "displayName": display,
                "email": f"{name}@acme.example",
                "picture": f"https://avatars.acme.example/groups/{name}.png",
            },
        }
        if g:
            spec["parent"] = self._group_ref((g - 1) // self._fanout)
        spec["children"] = [self._group_ref(child) for child in self._group_children(g)]
        return {
            "apiVersion": API_VERSION,
            "kind": "Group",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "description": description,
                "annotations": {"github.com/team-slug": f"acme/{name}"},
                "links": [{"url": f"https://acme.slack.example/channels/{name}", "title": "Slack channel", "icon": "chat"}],
            },
            "spec": spec,
        }

    def _build_user(self, u: int, x: int, rng: _Rng, y: int, closing: str) -> dict[str, Any]:
        name = self._name(_USER, u)
        first, last, _ = name.split(".", 2)
        return {
            "apiVersion": API_VERSION,
            "kind": "User",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "description": f"{_JOB_TITLES[(y >> 8) % len(_JOB_TITLES)]}, {_AREAS[(y >> 16) % len(_AREAS)]}. {closing}",
                "annotations": {"github.com/user-login": f"{first}-{last}-{u}"},
            },
            "spec": {
                "profile": {
                    "displayName": f"{first.capitalize()} {last.capitalize()}",
                    "email": f"{name}@acme.example",
                    "picture": f"https://avatars.acme.example/users/{name}.png",
                },
                "memberOf": [self._group_ref(t) for t in self._user_teams(u)],
            },
        }

    def _build_domain(self, d: int, x: int, rng: _Rng, y: int, closing: str) -> dict[str, Any]:
        name = self._name(_DOMAIN, d)
        area = _AREAS[d % len(_AREAS)]
        owner = 1 + (x >> 8) % self._n_departments
        return {
            "apiVersion": API_VERSION,
            "kind": "Domain",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "title": _title(self._base_name(_DOMAIN, d)),
                "description": f"Everything {area}: the systems behind {area} {_NOUNS[(y >> 8) % len(_NOUNS)]} and {_NOUNS[(y >> 16) % len(_NOUNS)]}. {closing}",
                "tags": [area, *_TAG_SETS[(y >> 24) & 1023][1:]],
                "annotations": {"backstage.io/techdocs-ref": f"url:https://github.com/acme/domain-{name}"},
                "links": [{"url": f"https://wiki.acme.example/domains/{name}", "title": "Domain handbook", "icon": "docs"}],
            },
            "spec": {"owner": self._group_ref(owner)},
        }

    def _build_system(self, s: int, x: int, rng: _Rng, y: int, closing: str) -> dict[str, Any]:
        name = self._name(_SYSTEM, s)
        title = _title(_stem(name))
        return {
            "apiVersion": API_VERSION,
            "kind": "System",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "title": title,
                "description": (
                    f"{title} {_VERBS[(y >> 8) % len(_VERBS)]} {_NOUNS[(y >> 16) % len(_NOUNS)]} "
                    f"and {_NOUNS[(y >> 24) % len(_NOUNS)]} end to end. {closing}"
                ),
                "tags": list(_TAG_SETS[(y >> 32) & 1023]),
                "annotations": {
                    "backstage.io/techdocs-ref": "dir:.",
                    "github.com/project-slug": f"acme/{name}",
                    "backstage.io/source-location": f"url:https://github.com/acme/{name}/tree/main/",
                },
                "links": [{"url": f"https://grafana.acme.example/d/{name}", "title": "Dashboard", "icon": "dashboard"}],
            },
            "spec": {
                "owner": self._group_ref(self._system_owner(s)),
                "domain": f"domain:{NAMESPACE}/{self._name(_DOMAIN, self._system_domain(s))}",
            },
        }

    def _build_component(self, c: int, x: int, rng: _Rng, y: int, closing: str) -> dict[str, Any]:
        name = self._name(_COMPONENT, c)
        ctype, system, team, noun = self._component_facts(c)
        spec: dict[str, Any] = {
            "type": _COMPONENT_TYPES[ctype],
            "lifecycle": _LIFECYCLES[(y >> 8) % len(_LIFECYCLES)],
            "owner": self._group_ref(team),
        }
        if system is not None:
            spec["system"] = self._system_ref(system)
        if c and (x & 0x3FF) < _P_SUBCOMPONENT:
            spec["subcomponentOf"] = f"component:{NAMESPACE}/{self._name(_COMPONENT, rng.below(c))}"
        provided = self._provided_apis(c)
        if provided:
            spec["providesApis"] = [f"api:{NAMESPACE}/{self._name(_API, a)}" for a in provided]
        if ctype != 2 and (x >> 10 & 0x3FF) >= _P_NO_CONSUMES:
            consumes: list[str] = []
            self._targets(rng, min(int((1.0 - rng.random()) ** _CONSUMES_EXPONENT), _MAX_TARGETS), _API, provided, consumes)
            if consumes:
                spec["consumesApis"] = consumes
        if (x >> 20 & 0x3FF) >= _P_NO_DEPS:
            count = min(int(_DEPS_SCALE * (1.0 - rng.random()) ** _DEPS_EXPONENT), _MAX_TARGETS)
            # One draw rounds count * 30% up or down, instead of a coin per target.
            to_resources = int(count * _DEPS_ON_RESOURCES + rng.random())
            depends: list[str] = []
            self._targets(rng, count - to_resources, _COMPONENT, range(c, c + 1), depends)
            self._targets(rng, to_resources, _RESOURCE, range(0), depends)
            if depends:
                spec["dependsOn"] = depends
        # Where the repository lives (fact collectors map by these annotations, docs/facts.md):
        # one component in eight is on the company GitLab instead of GitHub.
        if (x >> 37 & 7) == 0:
            annotations = {
                "backstage.io/techdocs-ref": "dir:.",
                "gitlab.com/project-slug": f"acme/platform/{name}",
                "backstage.io/source-location": f"url:https://gitlab.acme.example/acme/platform/{name}/-/tree/main/",
            }
        else:
            annotations = {
                "backstage.io/techdocs-ref": "dir:.",
                "github.com/project-slug": f"acme/{name}",
                "backstage.io/source-location": f"url:https://github.com/acme/{name}/tree/main/",
            }
        # Three in four components track work in their team's Jira project; one in four of those
        # narrows it to its own Jira component.
        if (x >> 34 & 3) != 0:
            team_name = self._group_ref(team).rsplit("/", 1)[-1]
            annotations["jira/project-key"] = "".join(ch for ch in team_name if ch.isalpha())[:3].upper() + str(team)
            if (x >> 36 & 1) and (x >> 40 & 1):
                annotations["jira/component"] = name
        links = [{"url": f"https://grafana.acme.example/d/{name}", "title": "Dashboard", "icon": "dashboard"}]
        if ctype == 0:
            annotations["pagerduty.com/service-id"] = f"P{x >> 40:06X}"
            annotations["backstage.io/kubernetes-id"] = name
            links.append({"url": f"https://runbooks.acme.example/{name}", "title": "Runbook", "icon": "help"})
        if x >> 30 & 1:
            annotations["sonarqube.org/project-key"] = f"acme:{name}"
        if (x >> 31 & 7) < 3:
            links.append({"url": f"https://acme.slack.example/channels/{name}", "title": "Slack channel", "icon": "chat"})
        title = _title(_stem(name))
        scope = _title(_stem(self._name(_SYSTEM, system))) if system is not None else "several teams"
        return {
            "apiVersion": API_VERSION,
            "kind": "Component",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "title": title,
                "description": (
                    f"{title} {_VERBS[(y >> 16) % len(_VERBS)]} {_NOUNS[noun]} {_NOUNS[(y >> 24) % len(_NOUNS)]} "
                    f"for {scope}. {closing}"
                ),
                "tags": list(_TAG_SETS[(y >> 48) & 1023]),
                "annotations": annotations,
                "links": links,
            },
            "spec": spec,
        }

    def _build_api(self, a: int, x: int, rng: _Rng, y: int, closing: str) -> dict[str, Any]:
        name = self._name(_API, a)
        _, system, team, noun = self._component_facts(a * self._n_providers // self._counts[_API])
        atype = _API_TYPE_ROLL[x % 100]
        title = _title(_stem(name)).replace(" Api", " API")
        spec: dict[str, Any] = {
            "type": _API_TYPES[atype],
            "lifecycle": _LIFECYCLES[(y >> 8) % len(_LIFECYCLES)],
            "owner": self._group_ref(team),
        }
        if system is not None:
            spec["system"] = self._system_ref(system)
        spec["definition"] = _definition(atype, title, _NOUNS[noun], x >> 8)
        first_tag = _API_TAGS[atype]
        return {
            "apiVersion": API_VERSION,
            "kind": "API",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "title": title,
                "description": f"The {title} {_VERBS[(y >> 16) % len(_VERBS)]} {_NOUNS[noun]} for internal and partner clients. {closing}",
                "tags": [first_tag, *[t for t in _TAG_SETS[(y >> 24) & 1023][1:] if t != first_tag]],
                "annotations": {
                    "backstage.io/techdocs-ref": "dir:.",
                    "github.com/project-slug": f"acme/{name}",
                    "backstage.io/source-location": f"url:https://github.com/acme/{name}/tree/main/",
                },
                "links": [{"url": f"https://developer.acme.example/apis/{name}", "title": "API reference", "icon": "docs"}],
            },
            "spec": spec,
        }

    def _build_resource(self, r: int, x: int, rng: _Rng, y: int, closing: str) -> dict[str, Any]:
        name = self._name(_RESOURCE, r)
        n_system = self._counts[_SYSTEM]
        h = _mix(self._kind_keys[_RESOURCE] ^ r)  # the hash the name came from: same type and noun
        rtype = _RESOURCE_TYPE_ROLL[h % 100]
        system = r * n_system // self._counts[_RESOURCE]
        team = self._system_owner(system) if (h >> 24 & 0x3FF) < _P_SYSTEM_OWNER else self._team(h >> 34)
        spec: dict[str, Any] = {
            "type": _RESOURCE_TYPES[rtype],
            "owner": self._group_ref(team),
            "system": self._system_ref(system),
        }
        if (x & 0x3FF) < _P_RESOURCE_DEPENDS:
            depends: list[str] = []
            self._targets(rng, 1 + (x >> 10 & 1), _RESOURCE, range(r, r + 1), depends)
            if depends:
                spec["dependsOn"] = depends
        region = _REGIONS[(x >> 12) % len(_REGIONS)]
        first_tag = _RESOURCE_TAGS[rtype]
        return {
            "apiVersion": API_VERSION,
            "kind": "Resource",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "description": (
                    f"{_RESOURCE_WORDS[rtype]} holding {_NOUNS[(h >> 8) % len(_NOUNS)]} "
                    f"{_NOUNS[(y >> 8) % len(_NOUNS)]} data. {closing}"
                ),
                "tags": [first_tag, *[t for t in _TAG_SETS[(y >> 16) & 1023][1:] if t != first_tag]],
                "annotations": {
                    "backstage.io/managed-by": "terraform",
                    "aws.amazon.com/region": region,
                    "aws.amazon.com/arn": f"arn:aws:{_RESOURCE_ARN[rtype]}:{region}:123456789012:{name}",
                },
                "links": [{"url": f"https://console.acme.example/{region}/{name}", "title": "Console", "icon": "cloud"}],
            },
            "spec": spec,
        }


def _definition(api_type: int, title: str, noun: str, bits: int) -> str:
    """A short but well-formed API definition: OpenAPI YAML, a proto file or a GraphQL schema."""
    major = 1 + bits % 4
    version = f"{major}.{(bits >> 2) % 10}.{(bits >> 6) % 10}"
    item = noun[:-1] if noun.endswith("s") else noun
    entity = item.capitalize()
    if api_type == 0:
        return (
            f"openapi: 3.0.3\ninfo:\n  title: {title}\n  version: {version}\npaths:\n"
            f"  /{noun}/{{id}}:\n    get:\n      summary: Get one {item}\n"
            f"      responses:\n        '200':\n          description: The {item}\n"
        )
    if api_type == 1:
        return (
            f'syntax = "proto3";\npackage acme.{noun}.v{major};\n\n'
            f"service {entity}Service {{\n  rpc Get{entity}(Get{entity}Request) returns ({entity});\n}}\n"
        )
    return f"type Query {{\n  {item}(id: ID!): {entity}\n}}\n\ntype {entity} {{\n  id: ID!\n  updatedAt: String\n}}\n"


_BUILDERS = (
    SyntheticOrg._build_group,
    SyntheticOrg._build_user,
    SyntheticOrg._build_domain,
    SyntheticOrg._build_system,
    SyntheticOrg._build_component,
    SyntheticOrg._build_api,
    SyntheticOrg._build_resource,
)


class SyntheticOrgProvider:
    """The synthetic org behind the provider contract.

    The cursor is `{"next": <slot>}`; a page covers `page_size` slots, so in a generation with
    removals it holds fewer entities. `total` is the slot count (the entity count in generation 0).
    """

    def __init__(
        self,
        name: str,
        size: int,
        seed: int = 42,
        page_size: int = 1000,
        generation: int = 0,
        remove_fraction: float = 0.0,
        rename_fraction: float = 0.0,
        change_fraction: float = 0.0,
        dangling_fraction: float = 0.002,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be positive, got {page_size}")
        self.name = name
        self.page_size = page_size
        self.org = SyntheticOrg(
            size,
            seed=seed,
            generation=generation,
            remove_fraction=remove_fraction,
            rename_fraction=rename_fraction,
            change_fraction=change_fraction,
            dangling_fraction=dangling_fraction,
        )

    @classmethod
    def from_config(
        cls, name: str, params: dict[str, Any], options: ChunkOptions, base_dir: Path
    ) -> SyntheticOrgProvider:
        """The `synthetic` type of providers.yaml: pages default to the chunk size, at most 1000."""
        params = dict(params)
        params.setdefault("page_size", min(1000, options.chunk_size))
        return cls(name=name, **params)

    def around(self) -> contextlib.AbstractContextManager[None]:
        return no_setup()

    def next(self, cursor: Any) -> Page:
        start = 0
        if cursor is not None:
            value = cursor.get("next") if isinstance(cursor, dict) else None
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"synthetic provider {self.name!r}: invalid cursor {cursor!r}")
            start = value
        slots = self.org.count_slots()
        stop = max(start, min(start + self.page_size, slots))
        prefix = f"synthetic:{self.name}#"
        entities = []
        for i in range(start, stop):
            entity = self.org.entity(i)
            if entity is not None:
                entities.append(RawEntity(entity, f"{prefix}{i}"))
        return Page(entities=entities, cursor={"next": stop}, done=stop >= slots, total=slots)


def write_descriptor_tree(org: SyntheticOrg, directory: Path, files: int = 100) -> list[Path]:
    """Write the org as multi-document Backstage YAML files under `directory`; return their paths.

    Slots are split into `files` contiguous runs (fewer if the org is smaller), written as
    `<directory>/<NNN>/catalog-info-<NNNNN>.yaml` with at most 100 files per sub-directory: the
    nested layout a file provider meets in a repository checkout. Removed slots are left out.
    """
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    directory = Path(directory)
    slots = org.count_slots()
    files = max(1, min(files, slots))
    paths: list[Path] = []
    for k in range(files):
        start, stop = k * slots // files, (k + 1) * slots // files
        path = directory / f"{k // 100:03d}" / f"catalog-info-{k:05d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            yaml.dump_all(org.iter_entities(start, stop), handle, Dumper=dumper, sort_keys=False, explicit_start=True)
        paths.append(path)
    return paths
