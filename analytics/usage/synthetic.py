"""Synthetic portal usage: realistic Backstage analytics events for demos, tests and benchmarks.

Given an `OrgGraph` and a seed, `SyntheticUsage` produces days of events in the raw store's shape
(`RAW_SCHEMA`), vectorised with numpy so that tens of millions of events take minutes, one day in
memory at a time. What it models, so that every insight has something to find:

- **Power-law usage across teams**: each team's activity weight is Pareto-distributed (a few teams
  account for most of the traffic) and each person's a log-normal multiple of their team's; a share
  of people never use the portal, so adoption is below 100 %.
- **Weekday seasonality**: weekends carry about a tenth of a weekday's traffic; Fridays are quieter;
  a slow growth trend and a little day-to-day noise on top.
- **A plugin launch**: `launch_plugin` does not exist before `launch_day`; afterwards people adopt
  it after an exponentially distributed delay, which shows up as an adoption curve.
- **Search**: terms follow a Zipf distribution; some terms never return anything (value 0, and no
  `discover` follows), others are clicked through about half of the time.
- **Templates**: scaffolder template pages, some followed by a `create` whose value is the
  template's minutes saved.
- Sessions, route parameters as attributes, entity refs in the context, a share of anonymous
  events and, optionally, re-sent duplicates.

Deterministic: the same org, seed and parameters give the same events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa

from analytics.pseudonymise import pseudonymise
from analytics.usage.events import RAW_SCHEMA

if TYPE_CHECKING:
    from analytics.org import OrgGraph

# Monday .. Sunday
WEEKDAY_FACTOR = np.array([1.0, 1.05, 1.05, 1.0, 0.85, 0.12, 0.08])
BASE_PLUGINS = ("catalog", "techdocs", "search", "scaffolder", "api-docs", "kubernetes", "home", "explore", "tech-radar")
BASE_WEIGHTS = np.array([0.34, 0.18, 0.14, 0.07, 0.06, 0.06, 0.09, 0.04, 0.02])
DEFAULT_TEMPLATES = (
    ("template:default/springboot-service", 120.0),
    ("template:default/react-app", 90.0),
    ("template:default/docs-site", 30.0),
    ("template:default/data-pipeline", 240.0),
    ("template:default/kafka-topic", 45.0),
)
_WORDS = (
    "payments kafka oncall runbook postgres grafana terraform kubernetes helm deploy billing auth login "
    "search api gateway checkout inventory orders shipping tracing logging metrics alerts incident "
    "ownership scorecard golden path template docs onboarding review release pipeline ci cd cache redis "
    "queue events schema graphql rest sdk mobile web frontend backend data warehouse airflow dagster "
    "spark ml feature flags experiments cost budget security vault secrets certificates dns network"
).split()
_SESSION_MEAN_GAP_S = 40.0
_DISCOVER_RATE = 0.5
_CREATE_RATE = 0.35


def _splitmix(x: np.ndarray) -> np.ndarray:
    """A 64-bit mixing function, vectorised: stable pseudo-random ids from counters."""
    x = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hex(a: np.ndarray, b: np.ndarray | None = None) -> list[str]:
    if b is None:
        return [f"{v:016x}" for v in a.tolist()]
    return [f"{x:016x}{y:016x}" for x, y in zip(a.tolist(), b.tolist())]


@dataclass(frozen=True)
class _Entity:
    ref: str
    namespace: str
    kind: str
    name: str


class SyntheticUsage:
    """Days of synthetic events for `org`'s users; see the module docstring for what is modelled."""

    def __init__(
        self,
        org: "OrgGraph",
        *,
        seed: int = 0,
        start: date,
        days: int = 90,
        events: int = 1_000_000,
        entity_refs: Sequence[str] | None = None,
        templates: Sequence[tuple[str, float]] = DEFAULT_TEMPLATES,
        launch_plugin: str = "cost-insights",
        launch_day: int | None = None,
        dormant_share: float = 0.2,
        weekday_active_share: float = 0.45,
        anonymous_share: float = 0.02,
        duplicate_share: float = 0.0,
        zero_result_share: float = 0.1,
        vocabulary: int = 400,
    ) -> None:
        users = sorted(org.users) or sorted(org.membership_frame()["user_ref"].unique())
        if not users:
            raise ValueError("the org has no users to generate usage for")
        self.users = users
        self.seed = seed
        self.start = start
        self.days = days
        self.events = events
        self.launch_plugin = launch_plugin
        self.launch_day = days * 2 // 5 if launch_day is None else launch_day
        self.anonymous_share = anonymous_share
        self.duplicate_share = duplicate_share
        self.templates = list(templates)
        rng = np.random.default_rng([seed, 1])
        n = len(users)

        # Power law across teams, log-normal spread within a team, and people who never come.
        membership = org.membership_frame().drop_duplicates("user_ref")
        team_of = dict(zip(membership["user_ref"], membership["group_ref"]))
        teams = sorted(set(team_of.values()))
        team_weight = dict(zip(teams, rng.pareto(1.16, len(teams)) + 1.0))
        weights = np.array([team_weight.get(team_of.get(u), 1.0) for u in users]) * rng.lognormal(0.0, 0.8, n)
        weights[rng.random(n) < dormant_share] = 0.0
        if not weights.any():
            weights[:] = 1.0
        self.weights = weights
        self.intensity = self._calibrate(weights, weekday_active_share)

        # Launch adoption: 70 % of people adopt, after an exponential delay (mean two weeks).
        adopt_delay = np.floor(rng.exponential(14.0, n))
        self.adoption_day = np.where(rng.random(n) < 0.7, self.launch_day + adopt_delay, np.inf)

        # Day-level volume: weekday factor, +0.2 % a day of growth, ±5 % noise.
        weekday = np.array([(start + timedelta(days=i)).weekday() for i in range(days)])
        season = WEEKDAY_FACTOR[weekday] * (1 + 0.002 * np.arange(days)) * rng.lognormal(0.0, 0.05, days)
        self.season = season
        # Derived events (discover, create) add about 5 % on top of the base events.
        self.base_events = np.maximum(1, np.round(events / 1.05 * season / season.sum())).astype(np.int64)

        entity_refs = list(entity_refs) if entity_refs else [f"component:default/service-{i:04d}" for i in range(max(50, n // 4))]
        self.entities = [self._entity(ref) for ref in entity_refs]
        ents = self.entities
        self._entity_path = np.array([f"/catalog/{e.namespace}/{e.kind}/{e.name}" for e in ents], dtype=object)
        self._docs_path = np.array([f"/docs/{e.namespace}/{e.kind}/{e.name}/" for e in ents], dtype=object)
        self._k8s_path = np.array([f"/catalog/{e.namespace}/{e.kind}/{e.name}/kubernetes" for e in ents], dtype=object)
        self._entity_attrs = np.array(
            [orjson.dumps({"namespace": e.namespace, "kind": e.kind, "name": e.name}).decode() for e in ents], dtype=object
        )
        self._entity_ref = np.array([e.ref for e in ents], dtype=object)
        self._entity_title = np.array([e.name.replace("-", " ").title() for e in ents], dtype=object)
        popularity = 1.0 / np.arange(1, len(ents) + 1) ** 1.1
        self._entity_p = popularity / popularity.sum()

        words = list(_WORDS) + [e.name for e in ents[: max(0, vocabulary - len(_WORDS))]]
        words = words[:vocabulary]
        zero = rng.random(len(words)) < zero_result_share
        # misspellings never find anything
        known = set(words)
        typos = [t for w in words[: max(1, len(words) // 10)] if len(w) > 3 and (t := w[:-2] + w[-1] + w[-2]) not in known]
        self._terms = np.array(words + typos, dtype=object)
        self._term_zero = np.concatenate([zero, np.ones(len(typos), dtype=bool)])
        tp = 1.0 / np.arange(1, len(self._terms) + 1) ** 1.0
        self._term_p = rng.permutation(tp / tp.sum())

        self._template_ref = np.array([t for t, _ in self.templates], dtype=object)
        self._template_minutes = np.array([m for _, m in self.templates], dtype=float)
        self._template_path = np.array([f"/create/templates/default/{t.split('/')[-1]}" for t, _ in self.templates], dtype=object)
        self._template_attrs = np.array(
            [orjson.dumps({"namespace": "default", "templateName": t.split("/")[-1]}).decode() for t, _ in self.templates], dtype=object
        )
        self._plugins = np.array([*BASE_PLUGINS, launch_plugin], dtype=object)

    @staticmethod
    def _entity(ref: str) -> _Entity:
        kind, rest = ref.split(":", 1)
        namespace, name = rest.split("/", 1)
        return _Entity(ref.lower(), namespace, kind.lower(), name)

    @staticmethod
    def _calibrate(weights: np.ndarray, target: float) -> float:
        """c such that the mean of 1 - exp(-c·w) over non-dormant people is `target` on a weekday."""
        active = weights[weights > 0]
        lo, hi = 1e-6, 1e6
        for _ in range(80):
            mid = (lo * hi) ** 0.5
            if np.mean(1 - np.exp(-mid * active)) < target:
                lo = mid
            else:
                hi = mid
        return hi

    def day(self, index: int) -> date:
        return self.start + timedelta(days=index)

    def day_table(self, index: int, key: bytes | None = None) -> pa.Table:
        """Events of day `index` in `RAW_SCHEMA`; user refs pseudonymised when `key` is given."""
        rng = np.random.default_rng([self.seed, 2, index])
        day = self.day(index)
        day_start_ms = int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)
        n_users = len(self.users)

        # who is active today, and how much
        p_active = 1 - np.exp(-self.intensity * self.weights * self.season[index])
        active = np.flatnonzero(rng.random(n_users) < p_active)
        if len(active) == 0:
            active = np.array([int(np.argmax(self.weights))])
        target = int(self.base_events[index])
        extra = max(0, target - len(active))
        w = self.weights[active]
        counts = 1 + rng.multinomial(extra, w / w.sum())
        user = np.repeat(active, counts)
        n = len(user)

        # sessions: 1 + Poisson(0.7) per person and day, started around office hours
        n_sessions = np.minimum(counts, 1 + rng.poisson(0.7, len(active)))
        session_of_event = (rng.random(n) * np.repeat(n_sessions, counts)).astype(np.int64)
        session_key = user.astype(np.int64) * 16 + session_of_event
        order = np.lexsort((rng.random(n), session_key))
        user, session_key = user[order], session_key[order]
        uniq_sessions, session_idx = np.unique(session_key, return_inverse=True)
        start_s = np.clip(rng.normal(13.5 * 3600, 2.5 * 3600, len(uniq_sessions)), 6 * 3600, 21 * 3600)
        gaps = rng.exponential(_SESSION_MEAN_GAP_S, n)
        cum = np.cumsum(gaps)
        first_of_session = np.r_[0, np.flatnonzero(np.diff(session_idx)) + 1]
        offset = cum - np.repeat(cum[first_of_session] - gaps[first_of_session], np.diff(np.r_[first_of_session, n]))
        ts = day_start_ms + ((start_s[session_idx] + offset) * 1000).astype(np.int64)
        ts = np.minimum(ts, day_start_ms + 86_400_000 - 1)
        session_hash = _splitmix(uniq_sessions.astype(np.uint64) ^ _splitmix(np.array([self.seed * 100_003 + index], dtype=np.uint64)))
        session_id = np.array(_hex(session_hash), dtype=object)[session_idx]

        # which plugin: the base mix, with the launched plugin taking a share for adopters
        plugin = rng.choice(len(BASE_PLUGINS), size=n, p=BASE_WEIGHTS / BASE_WEIGHTS.sum())
        adopted = self.adoption_day[user] <= index
        plugin[adopted & (rng.random(n) < 0.12)] = len(BASE_PLUGINS)

        action = np.full(n, "navigate", dtype=object)
        subject = np.full(n, "/", dtype=object)
        attributes = np.full(n, None, dtype=object)
        entity_ref = np.full(n, None, dtype=object)
        route_ref = np.full(n, None, dtype=object)
        value = np.full(n, np.nan)
        search_types = np.full(n, None, dtype=object)
        entity = rng.choice(len(self.entities), size=n, p=self._entity_p)
        u = rng.random(n)

        def pick(plugin_name: str) -> np.ndarray:
            return plugin == int(np.flatnonzero(self._plugins == plugin_name)[0])

        m = pick("catalog")
        idx_m = m & (u < 0.25)
        route_ref[idx_m], subject[idx_m] = "catalog:index", "/catalog"
        ent = m & ~idx_m
        route_ref[ent], subject[ent] = "catalog:entity", self._entity_path[entity[ent]]
        attributes[ent], entity_ref[ent] = self._entity_attrs[entity[ent]], self._entity_ref[entity[ent]]
        click = ent & (rng.random(n) < 0.15)
        action[click], subject[click] = "click", "View Source"

        m = pick("techdocs")
        idx_m = m & (u < 0.1)
        route_ref[idx_m], subject[idx_m] = "techdocs:index", "/docs"
        ent = m & ~idx_m
        route_ref[ent], subject[ent] = "techdocs:reader", self._docs_path[entity[ent]]
        attributes[ent], entity_ref[ent] = self._entity_attrs[entity[ent]], self._entity_ref[entity[ent]]

        m = pick("kubernetes")
        route_ref[m], subject[m] = "kubernetes:entity-content", self._k8s_path[entity[m]]
        attributes[m], entity_ref[m] = self._entity_attrs[entity[m]], self._entity_ref[entity[m]]

        m = pick("api-docs")
        route_ref[m], subject[m] = "api-docs:index", "/api-docs"

        for name, path in (("home", "/"), ("explore", "/explore"), ("tech-radar", "/tech-radar")):
            m = pick(name)
            route_ref[m], subject[m] = f"{name}:root", path
        m = pick(self.launch_plugin)
        route_ref[m] = f"{self.launch_plugin}:root"
        subject[m] = np.where(u[m] < 0.7, f"/{self.launch_plugin}", f"/{self.launch_plugin}/labels")

        m = pick("search")
        nav = m & (u < 0.4)
        route_ref[nav], subject[nav] = "search:root", "/search"
        srch = m & ~nav
        term = rng.choice(len(self._terms), size=n, p=self._term_p)
        action[srch], subject[srch], route_ref[srch] = "search", self._terms[term[srch]], "search:root"
        results = np.where(self._term_zero[term], 0, rng.poisson(8, n) + 1).astype(float)
        results[rng.random(n) < 0.05] = np.nan  # permissions hide the count
        value[srch] = results[srch]
        search_types[srch] = "software-catalog"

        m = pick("scaffolder")
        tpl = rng.integers(0, len(self.templates), n)
        page = m & (u < 0.45)
        route_ref[m], subject[m] = "scaffolder:root", "/create"
        subject[page], attributes[page] = self._template_path[tpl[page]], self._template_attrs[tpl[page]]
        route_ref[page] = "scaffolder:select-template"

        base = {
            "user": user,
            "session_id": session_id,
            "ts": ts,
            "action": action,
            "subject": subject,
            "value": value,
            "attributes": attributes,
            "plugin": plugin,
            "route_ref": route_ref,
            "entity_ref": entity_ref,
            "search_types": search_types,
        }

        # derived events: a discover after some successful searches, a create after some template pages
        clicked = srch & (results > 0) & (rng.random(n) < _DISCOVER_RATE)
        created = page & (rng.random(n) < _CREATE_RATE)
        d_rows = np.flatnonzero(clicked)
        c_rows = np.flatnonzero(created)
        search_plugin = int(np.flatnonzero(self._plugins == "search")[0])
        scaffolder_plugin = int(np.flatnonzero(self._plugins == "scaffolder")[0])
        discover = {
            "user": user[d_rows],
            "session_id": session_id[d_rows],
            "ts": np.minimum(ts[d_rows] + (2000 + rng.exponential(20_000, len(d_rows))).astype(np.int64), day_start_ms + 86_400_000 - 1),
            "action": np.full(len(d_rows), "discover", dtype=object),
            "subject": self._entity_title[entity[d_rows]],
            "value": np.minimum(rng.geometric(0.45, len(d_rows)), 25).astype(float),
            "attributes": np.array([orjson.dumps({"to": p}).decode() for p in self._entity_path[entity[d_rows]]], dtype=object),
            "plugin": np.full(len(d_rows), search_plugin),
            "route_ref": np.full(len(d_rows), "search:root", dtype=object),
            "entity_ref": np.full(len(d_rows), None, dtype=object),
            "search_types": np.full(len(d_rows), None, dtype=object),
        }
        create = {
            "user": user[c_rows],
            "session_id": session_id[c_rows],
            "ts": np.minimum(ts[c_rows] + (120_000 + rng.integers(0, 480_000, len(c_rows))), day_start_ms + 86_400_000 - 1),
            "action": np.full(len(c_rows), "create", dtype=object),
            "subject": np.array([f"new {t.split('/')[-1]}" for t in self._template_ref[tpl[c_rows]]], dtype=object),
            "value": self._template_minutes[tpl[c_rows]],
            "attributes": np.full(len(c_rows), None, dtype=object),
            "plugin": np.full(len(c_rows), scaffolder_plugin),
            "route_ref": np.full(len(c_rows), "scaffolder:root", dtype=object),
            "entity_ref": self._template_ref[tpl[c_rows]],
            "search_types": np.full(len(c_rows), None, dtype=object),
        }
        cols = {k: np.concatenate([base[k], discover[k], create[k]]) for k in base}
        total = len(cols["ts"])
        ids = _splitmix(np.arange(total, dtype=np.uint64) + np.uint64(index) * np.uint64(1 << 32))
        ids2 = _splitmix(ids ^ np.uint64(self.seed & 0xFFFFFFFF))
        event_id = np.array(_hex(ids, ids2), dtype=object)

        # anonymous share: no user (Backstage sends no identity for guests)
        anonymous = rng.random(total) < self.anonymous_share
        user_values = self._user_values(key)
        user_col = user_values[cols["user"]]
        user_col[anonymous] = None

        table = pa.table(
            {
                "event_id": pa.array(event_id, pa.string()),
                "ts": pa.array(cols["ts"], pa.timestamp("ms", tz="UTC")),
                "received_at": pa.array(cols["ts"] + 2000, pa.timestamp("ms", tz="UTC")),
                "user": pa.array(user_col, pa.string()),
                "session_id": pa.array(cols["session_id"], pa.string()),
                "action": pa.array(cols["action"], pa.string()),
                "subject": pa.array(cols["subject"], pa.string()),
                "value": pa.array(cols["value"], pa.float64(), from_pandas=True),
                "attributes": pa.array(cols["attributes"], pa.string()),
                "plugin_id": pa.array(self._plugins[cols["plugin"]], pa.string()),
                "route_ref": pa.array(cols["route_ref"], pa.string()),
                "extension_id": pa.nulls(total, pa.string()),
                "extension": pa.array(np.full(total, "App", dtype=object), pa.string()),
                "entity_ref": pa.array(cols["entity_ref"], pa.string()),
                "search_types": pa.array([[t] if t else None for t in cols["search_types"].tolist()], pa.list_(pa.string())),
            },
            schema=RAW_SCHEMA,
        )
        table = table.sort_by([("ts", "ascending")])
        if self.duplicate_share > 0:
            again = np.flatnonzero(rng.random(total) < self.duplicate_share)
            table = pa.concat_tables([table, table.take(pa.array(again))])
        return table

    _user_cache: dict[bytes | None, np.ndarray]

    def _user_values(self, key: bytes | None) -> np.ndarray:
        cache = self.__dict__.setdefault("_user_cache", {})
        if key not in cache:
            cache[key] = np.array(self.users if key is None else [pseudonymise(u, key) for u in self.users], dtype=object)
        return cache[key].copy()

    def tables(self, key: bytes | None = None) -> Iterator[tuple[date, pa.Table]]:
        for index in range(self.days):
            yield self.day(index), self.day_table(index, key)

    def backstage_events(self, index: int) -> Iterator[dict[str, Any]]:
        """Day `index` as Backstage-shaped event objects (raw user refs), e.g. for JSON-lines files."""
        table = self.day_table(index, key=None)
        for row in table.to_pylist():
            context: dict[str, Any] = {"pluginId": row["plugin_id"], "extension": row["extension"]}
            if row["route_ref"]:
                context["routeRef"] = row["route_ref"]
            if row["entity_ref"]:
                context["entityRef"] = row["entity_ref"]
            if row["search_types"]:
                context["searchTypes"] = row["search_types"]
            event: dict[str, Any] = {
                "eventId": row["event_id"],
                "timestamp": row["ts"].isoformat().replace("+00:00", "Z"),
                "sessionId": row["session_id"],
                "action": row["action"],
                "subject": row["subject"],
                "context": context,
            }
            if row["user"]:
                event["userEntityRef"] = row["user"]
            if row["value"] is not None and not np.isnan(row["value"]):
                event["value"] = row["value"]
            if row["attributes"]:
                event["attributes"] = orjson.loads(row["attributes"])
            yield event
