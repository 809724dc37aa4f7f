"""Portal usage insights from Backstage analytics events: pure pandas, no Dagster.

Two stages, so that a new day never means re-reading 90 days of events:

1. `summarise_day(events, day)` reduces one compacted day of raw events to a `DaySummary`: who was
   active, (dimension, key, user) pairs for plugins, pages, entities, actions, search terms and
   templates, search outcomes, template savings, funnel progress and day totals. A day of ~110k
   events becomes a few tens of thousands of small rows.
2. `compute_insights(summaries, org, key)` combines the summaries of the retained days into the
   insight tables. Distinct-user figures are not additive across days, so the summaries keep users;
   everything else is a sum.

Definitions (all days are UTC days):

- DAU: distinct signed-in users on a day; WAU / MAU: distinct users in the rolling 7 / 28 days ending
  that day (28, not 30, so that every window holds each weekday four times); stickiness = DAU / MAU.
  Anonymous events count as events, never as users.
- New user on day d: d is their first active day in the retained history (so during the first
  weeks of collection nearly everyone is "new"). Returning = DAU - new.
- Weekly cohorts: users by the ISO week (Monday) of their first active day; retention of a cohort
  in week k = share of it active in the k-th week after.
- Reach: distinct users of a key in the last N days. Stored as a histogram of each user's last active
  day per key (`reach`), so that any window N up to the retention is an exact sum.
- Pages: `navigate` subjects with query and fragment removed and route parameters (which Backstage
  passes as attributes) replaced by `:name`, e.g. `/catalog/:namespace/:kind/:name`.
- Entities: `navigate` events whose context carries an `entityRef`.
- Search: a `search` event's `value` is its result count (null when permissions hide it); a
  zero-result search has value 0; the zero-result rate is over searches with a count. A search is
  clicked through when the next search-or-discover event of the same session is a `discover` within
  30 minutes.
- Templates: `create` events, keyed by the template ref in the context (else the subject); `value`
  is the minutes saved (Backstage reads it from the template's `backstage.io/time-saved`).
- Funnels: per session, ordered steps; a step counts when a matching event occurs at or after the
  previous step's first match.
- Team adoption: the share of a group's members (itself and every descendant group, through the
  catalog's memberships, each person counted once) active in the last 28 days. A group's figure is
  suppressed when it has fewer than `min_team_size` (k) members, or when its active members or its
  inactive members (members - active, which the published member count gives away) number fewer
  than k, zero included: "1 of 12 active" or "11 of 12 active" would single a person out; search
  terms used by fewer than `min_term_users` people are dropped for the same reason.
- People counts: every count of people below k = `min_team_size` (DAU, WAU, MAU, new and
  returning users, weekly, cohort and plugin users, zero included) is published as missing, with
  the figures that would give it back by difference (`analytics.usage.privacy.
  protect_people_figures`); `window_summary` shows no window count below k either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analytics.pseudonymise import pseudonymise_series
from analytics.usage.privacy import adoption_hidden, difference_safe, protect_people_figures, published_windows, shown_count

if TYPE_CHECKING:
    from analytics.org import OrgGraph

EPOCH = date(1970, 1, 1)
DIMENSIONS = ("plugin", "action", "page", "entity", "search_term", "template")


@dataclass(frozen=True)
class FunnelStep:
    """Conditions an event must meet to count as this step; None means "any"."""

    name: str
    action: str | None = None
    plugin_id: str | None = None
    subject_prefix: str | None = None
    with_entity: bool | None = None


DEFAULT_FUNNELS: tuple[tuple[str, tuple[FunnelStep, ...]], ...] = (
    ("search_to_result", (FunnelStep("search", action="search"), FunnelStep("open a result", action="discover"))),
    (
        "template_to_create",
        (
            FunnelStep("open scaffolder", action="navigate", plugin_id="scaffolder"),
            FunnelStep("create", action="create"),
        ),
    ),
    (
        "catalog_to_docs",
        (
            FunnelStep("browse catalog", action="navigate", plugin_id="catalog", with_entity=False),
            FunnelStep("open an entity", action="navigate", plugin_id="catalog", with_entity=True),
            FunnelStep("read its docs", action="navigate", plugin_id="techdocs"),
        ),
    ),
)


@dataclass(frozen=True)
class UsageConfig:
    retention_days: int = 90
    wau_days: int = 7
    mau_days: int = 28
    click_window_minutes: int = 30
    min_team_size: int = 5
    min_term_users: int = 3
    # The insight tables keep this many keys per dimension (ranked by distinct users over the
    # retained days, then events); the daily summaries keep every key.
    top_keys: int = 250
    funnels: tuple[tuple[str, tuple[FunnelStep, ...]], ...] = DEFAULT_FUNNELS


# --- stage 1: one day ------------------------------------------------------------------------------

SUMMARY_PARTS = ("users", "pairs", "keys", "searches", "templates", "funnels", "totals")
_S, _I, _F = pa.string(), pa.int64(), pa.float64()
SUMMARY_SCHEMAS = {
    "users": pa.schema([("user", _S), ("events", _I), ("sessions", _I)]),
    "pairs": pa.schema([("dimension", _S), ("key", _S), ("user", _S), ("events", _I)]),
    "keys": pa.schema([("dimension", _S), ("key", _S), ("events", _I), ("users", _I)]),
    "searches": pa.schema([("term", _S), ("searches", _I), ("with_count", _I), ("zero_results", _I), ("clicked", _I)]),
    "templates": pa.schema([("template", _S), ("creates", _I), ("minutes_saved", _F)]),
    "funnels": pa.schema([("funnel", _S), ("step", pa.int16()), ("step_name", _S), ("sessions", _I)]),
    "totals": pa.schema(
        [(name, _I) for name in ("events", "anonymous_events", "users", "sessions", "navigations", "searches",
                                 "searches_with_count", "zero_result_searches", "searches_clicked", "creates")]
        + [("minutes_saved", _F)]
    ),
}
# Read back as dictionaries (pandas categoricals): 90 days of pairs are millions of rows whose
# strings repeat, and integer codes make the combine step cheap in time and memory.
SUMMARY_DICTIONARY_COLUMNS = {
    "users": ["user"],
    "pairs": ["dimension", "key", "user"],
    "keys": ["dimension", "key"],
    "searches": ["term"],
    "templates": ["template"],
    "funnels": ["funnel", "step_name"],
}


@dataclass
class DaySummary:
    """One day reduced to what the insights need (see the module docstring)."""

    day: date
    users: pd.DataFrame  # user, events, sessions
    pairs: pd.DataFrame  # dimension, key, user (null = anonymous), events
    keys: pd.DataFrame  # dimension, key, events, users
    searches: pd.DataFrame  # term, searches, with_count, zero_results, clicked
    templates: pd.DataFrame  # template, creates, minutes_saved
    funnels: pd.DataFrame  # funnel, step, step_name, sessions
    totals: pd.DataFrame  # one row of day totals

    def parts(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in SUMMARY_PARTS}


def normalise_page(subject: str, attributes: Mapping[str, Any] | None) -> str:
    """`/catalog/default/component/petstore?tab=api` + route params → `/catalog/:namespace/:kind/:name`.

    Backstage passes a route's parameters as the navigate event's attributes, so a path segment
    equal to a parameter's value is that parameter. Segments are matched from the end (parameters
    trail a route's static prefix) and each parameter is used once, so `/catalog/x/catalog` with
    `{name: "catalog"}` keeps its leading static segment.
    """
    parts = urlsplit(subject) if "://" in subject else None
    path = parts.path if parts else subject.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    if not attributes:
        return path
    params = {str(v): k for k, v in reversed(list(attributes.items())) if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v)}
    segments = path.split("/")
    used: set[str] = set()
    for i in range(len(segments) - 1, 0, -1):
        name = params.get(unquote(segments[i]))
        if name is not None and name not in used:
            segments[i] = ":" + name
            used.add(name)
    return "/".join(segments)


def normalise_terms(terms: pd.Series) -> pd.Series:
    """Case, surrounding and repeated whitespace don't make a different search."""
    return terms.str.lower().str.strip().str.replace(r"\s+", " ", regex=True).str.slice(0, 100)


_EVENT_COLUMNS = ["ts", "user", "session_id", "action", "subject", "value", "attributes", "plugin_id", "entity_ref"]
_NOT_REACHED = np.iinfo(np.int64).max


def _events_frame(events: pa.Table | pd.DataFrame) -> pd.DataFrame:
    if isinstance(events, pd.DataFrame):
        events = pa.Table.from_pandas(events, preserve_index=False)
    table = events.select(_EVENT_COLUMNS)
    # Integer milliseconds: comparisons and differences on int64 are cheaper than on timestamps.
    table = table.set_column(0, "ts", pc.cast(table["ts"], pa.int64()))
    return table.to_pandas()


@lru_cache(maxsize=200_000)
def _page(subject: str, attributes: str) -> str:
    # Cached across days: the same pages come back every day.
    return normalise_page(subject, orjson.loads(attributes) if attributes else None)


class _Codes:
    """Integer codes for one string column (-1 for null), with the values they stand for."""

    def __init__(self, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values)
        self.codes = codes.astype(np.int64)
        # one extra slot at the end so that code -1 (null) looks up None
        self.values = np.append(np.asarray(uniques, dtype=object), None)

    def __len__(self) -> int:
        return len(self.values) - 1


def _pairs(dimension: str, keys: pd.Series, users: _Codes, rows: np.ndarray | None = None) -> pd.DataFrame:
    """Events per (key, user) for one dimension; `keys` is indexed like the day's rows."""
    key_codes, key_values = pd.factorize(keys)
    user_codes = users.codes if rows is None else users.codes[rows]
    valid = key_codes >= 0
    width = len(users) + 1
    combined = key_codes[valid].astype(np.int64) * width + (user_codes[valid] + 1)
    unique, counts = np.unique(combined, return_counts=True)
    return pd.DataFrame(
        {
            "dimension": dimension,
            "key": pd.Series(np.asarray(key_values, dtype=object)[unique // width], dtype="str"),
            "user": pd.Series(users.values[unique % width - 1], dtype="str"),
            "events": counts.astype(np.int64),
        }
    )


def _step_mask(df: pd.DataFrame, step: FunnelStep, cache: dict[tuple[str, Any], np.ndarray]) -> np.ndarray:
    def equal(column: str, value: Any) -> np.ndarray:
        if (column, value) not in cache:
            cache[(column, value)] = (df[column] == value).fillna(False).to_numpy(dtype=bool)
        return cache[(column, value)]

    mask = np.ones(len(df), dtype=bool)
    if step.action is not None:
        mask &= equal("action", step.action)
    if step.plugin_id is not None:
        mask &= equal("plugin_id", step.plugin_id)
    if step.subject_prefix is not None:
        mask &= df["subject"].str.startswith(step.subject_prefix).fillna(False).to_numpy(dtype=bool)
    if step.with_entity is not None:
        mask &= df["entity_ref"].notna().to_numpy() == step.with_entity
    return mask


def _funnels(df: pd.DataFrame, sessions: _Codes, funnels: Iterable[tuple[str, tuple[FunnelStep, ...]]]) -> pd.DataFrame:
    rows = []
    ts = df["ts"].to_numpy()
    in_session = sessions.codes >= 0
    cache: dict[tuple[str, Any], np.ndarray] = {}
    for name, steps in funnels:
        reached: np.ndarray | None = None  # per session: time of this step, or _NOT_REACHED
        for number, step in enumerate(steps, start=1):
            mask = _step_mask(df, step, cache) & in_session
            codes, times = sessions.codes[mask], ts[mask]
            if reached is not None:
                later = times >= reached[codes]
                codes, times = codes[later], times[later]
            reached = np.full(len(sessions), _NOT_REACHED, dtype=np.int64)
            np.minimum.at(reached, codes, times)
            rows.append((name, number, step.name, int((reached != _NOT_REACHED).sum())))
    return pd.DataFrame(rows, columns=["funnel", "step", "step_name", "sessions"]).astype({"step": "int16", "sessions": "int64"})


def _clicked_searches(df: pd.DataFrame, window_ms: int) -> pd.Series:
    """Boolean per search row: is the session's next search-or-discover event a discover in time?"""
    sd = df.loc[df["action"].isin(["search", "discover"]) & df["session"].notna(), ["session", "ts", "action"]]
    sd = sd.assign(order=(sd["action"] == "discover").astype("int8")).sort_values(["session", "ts", "order"], kind="stable")
    nxt = sd.shift(-1)
    clicked = (
        (sd["action"] == "search")
        & (nxt["session"] == sd["session"])
        & (nxt["action"] == "discover")
        & ((nxt["ts"] - sd["ts"]) <= window_ms)
    )
    return clicked.fillna(False).astype(bool).reindex(df.index, fill_value=False)


def summarise_day(events: pa.Table | pd.DataFrame, day: date, config: UsageConfig = UsageConfig()) -> DaySummary:
    """Reduce one day's deduplicated events (columns of `RAW_SCHEMA`) to a `DaySummary`."""
    df = _events_frame(events)
    # Events without a session id still form a session per signed-in user and day.
    df["session"] = df["session_id"].fillna(df["user"])
    users_c = _Codes(df["user"])
    sessions_c = _Codes(df["session"])
    signed_in = users_c.codes >= 0

    user_sessions = np.unique(users_c.codes[signed_in] * (len(sessions_c) + 1) + sessions_c.codes[signed_in] + 1) // (len(sessions_c) + 1)
    users = pd.DataFrame(
        {
            "user": pd.Series(users_c.values[:-1], dtype="str"),
            "events": np.bincount(users_c.codes[signed_in], minlength=len(users_c)).astype(np.int64),
            "sessions": np.bincount(user_sessions, minlength=len(users_c)).astype(np.int64),
        }
    ).sort_values("user", ignore_index=True)

    action = df["action"]
    navigate = (action == "navigate").to_numpy()
    nav = df.loc[navigate, ["subject", "attributes"]]
    # Normalise each distinct (subject, attributes) once, not every navigation.
    subject_codes, subject_values = pd.factorize(nav["subject"])
    attribute_codes, attribute_values = pd.factorize(nav["attributes"].fillna(""))
    pair_codes, pair_index = np.unique(subject_codes.astype(np.int64) * (len(attribute_values) + 1) + attribute_codes, return_inverse=True)
    subject_values, attribute_values = np.asarray(subject_values, dtype=object), np.asarray(attribute_values, dtype=object)
    width = len(attribute_values) + 1
    page_values = np.array([_page(subject_values[c // width], attribute_values[c % width]) for c in pair_codes.tolist()], dtype=object)
    pages = pd.Series(page_values[pair_index] if len(pair_index) else [], index=nav.index, dtype="str")
    search = (action == "search").to_numpy()
    terms = normalise_terms(df.loc[search, "subject"])
    terms = terms[terms != ""]
    create = (action == "create").to_numpy()
    templates_key = df.loc[create, "entity_ref"].fillna(df.loc[create, "subject"])

    nav_rows, create_rows = np.flatnonzero(navigate), np.flatnonzero(create)
    term_rows = df.index.get_indexer(terms.index)
    pairs = pd.concat(
        [
            _pairs("plugin", df["plugin_id"], users_c),
            _pairs("action", action, users_c),
            _pairs("page", pages, users_c, nav_rows),
            _pairs("entity", df["entity_ref"].iloc[nav_rows], users_c, nav_rows),
            _pairs("search_term", terms, users_c, term_rows),
            _pairs("template", templates_key, users_c, create_rows),
        ],
        ignore_index=True,
    )
    pairs["dimension"] = pairs["dimension"].astype("str")
    keys = (
        pairs.groupby(["dimension", "key"], sort=True)
        .agg(events=("events", "sum"), users=("user", "count"))
        .reset_index()
        .astype({"events": "int64", "users": "int64"})
    )

    clicked = _clicked_searches(df, config.click_window_minutes * 60_000)
    values = df["value"]
    searches = (
        pd.DataFrame(
            {
                "term": terms,
                "with_count": values.loc[terms.index].notna(),
                "zero_results": values.loc[terms.index] == 0,
                "clicked": clicked.loc[terms.index],
            }
        )
        .groupby("term", sort=True)
        .agg(searches=("term", "size"), with_count=("with_count", "sum"), zero_results=("zero_results", "sum"), clicked=("clicked", "sum"))
        .reset_index()
        .astype({"searches": "int64", "with_count": "int64", "zero_results": "int64", "clicked": "int64"})
    )

    minutes = values.iloc[create_rows].fillna(0.0)
    templates = (
        pd.DataFrame({"template": templates_key, "minutes": minutes})
        .groupby("template", sort=True)
        .agg(creates=("template", "size"), minutes_saved=("minutes", "sum"))
        .reset_index()
        .astype({"creates": "int64", "minutes_saved": "float64"})
    )

    search_values = values.iloc[np.flatnonzero(search)]
    totals = pd.DataFrame(
        [
            {
                "events": len(df),
                "anonymous_events": int((~signed_in).sum()),
                "users": len(users),
                "sessions": len(sessions_c),
                "navigations": int(navigate.sum()),
                "searches": int(search.sum()),
                "searches_with_count": int(search_values.notna().sum()),
                "zero_result_searches": int((search_values == 0).sum()),
                "searches_clicked": int(clicked.to_numpy()[search].sum()),
                "creates": int(create.sum()),
                "minutes_saved": float(minutes.sum()),
            }
        ]
    )
    return DaySummary(day, users, pairs, keys, searches, templates, _funnels(df, sessions_c, config.funnels), totals)


# --- stage 2: combine the retained days ----------------------------------------------------------


def day_number(values: Any) -> Any:
    """Dates (or ISO strings) → days since 1970-01-01, the integer the combine step works in."""
    if isinstance(values, date):
        return (values - EPOCH).days
    return (pd.to_datetime(pd.Series(values)).values.astype("datetime64[D]").astype("int64"))


def day_string(numbers: Any) -> Any:
    if isinstance(numbers, (int, np.integer)):
        return (EPOCH + timedelta(days=int(numbers))).isoformat()
    return pd.Series(np.asarray(numbers, dtype="int64").astype("datetime64[D]").astype(str), dtype="str")


def _rolling_distinct(active: pd.DataFrame, window: int, first: int, last: int) -> np.ndarray:
    """Distinct users active in [d - window + 1, d] for every day d in [first, last].

    Each (user, day) activity covers the days up to `window - 1` later, cut short where the same
    user's next activity takes over, so every user contributes disjoint intervals and a difference
    array counts them without materialising a users × days matrix.
    """
    days = active["day"].to_numpy()
    users = active["user_code"].to_numpy()
    order = np.lexsort((days, users))
    days, users = days[order], users[order]
    next_day = np.empty_like(days)
    next_day[:-1] = np.where(users[1:] == users[:-1], days[1:], np.iinfo(days.dtype).max)
    if len(days):
        next_day[-1] = np.iinfo(days.dtype).max
    end = np.minimum(days + window, next_day)  # exclusive
    span = last - first + 2
    diff = np.zeros(span + window, dtype=np.int64)
    np.add.at(diff, days - first, 1)
    np.add.at(diff, np.minimum(end - first, span + window - 1), -1)
    return np.cumsum(diff)[: last - first + 1]


def _week_start(days: np.ndarray | pd.Series) -> np.ndarray:
    # 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
    days = np.asarray(days, dtype="int64")
    return days - (days + 3) % 7


def compute_insights(
    parts: Mapping[str, pd.DataFrame],
    *,
    org: "OrgGraph | None" = None,
    key: bytes | None = None,
    config: UsageConfig = UsageConfig(),
    as_of: date | None = None,
    computed_at: datetime | None = None,
    protect: bool = True,
) -> dict[str, pd.DataFrame]:
    """The insight tables from the summaries of the retained days.

    With `protect` (always, for anything published) every people count below k is hidden
    (`analytics.usage.privacy.protect_people_figures`); `protect=False` gives the raw arithmetic,
    for tests that check it by hand, never for a door (they re-verify with
    `people_figure_violations`).

    `parts` maps each summary part name to the concatenation of that part over the days, with an
    integer `day` column (days since 1970-01-01), as `DailySummaryStore.load` returns it. `org` and
    `key` (the pseudonymisation key) enable team adoption: members' refs are pseudonymised with the
    same key as the events, so the two join without anyone's identity being stored.
    """
    totals = parts["totals"]
    if totals.empty:
        raise ValueError("no daily summaries to combine")
    last = day_number(as_of) if as_of else int(totals["day"].max())
    first = max(int(totals["day"].min()), last - config.retention_days + 1)
    within = {name: _categorical(_days_between(frame, first, last), name) for name, frame in parts.items()}
    totals = within["totals"]
    all_days = np.arange(first, last + 1)

    users = within["users"]
    users = pd.DataFrame({"day": users["day"].to_numpy(), "user_code": users["user"].cat.codes.to_numpy().astype(np.int64)})
    user_values = within["users"]["user"].cat.categories

    # daily ----------------------------------------------------------------------------------------
    dau = users.groupby("day").size().reindex(all_days, fill_value=0).to_numpy()
    wau = _rolling_distinct(users, config.wau_days, first, last)
    mau = _rolling_distinct(users, config.mau_days, first, last)
    first_seen = users.groupby("user_code")["day"].min()
    last_seen = users.groupby("user_code")["day"].max()
    new = first_seen.value_counts().reindex(all_days, fill_value=0).to_numpy()
    daily = pd.DataFrame({"day": all_days})
    daily = daily.merge(totals.drop(columns=["users"], errors="ignore"), on="day", how="left")
    # summarised: the day's summary exists (its events may still be zero); False means the day's
    # partition was never processed, so its zeros are unknowns
    daily.insert(1, "summarised", daily["events"].notna())
    count_columns = [c for c in daily.columns if c not in ("day", "summarised", "minutes_saved")]
    daily[count_columns] = daily[count_columns].fillna(0).astype("int64")
    daily["minutes_saved"] = daily["minutes_saved"].fillna(0.0)
    daily["dau"] = dau
    daily["wau"] = wau
    daily["mau"] = mau
    daily["stickiness"] = np.where(mau > 0, dau / np.maximum(mau, 1), np.nan)
    daily["new_users"] = new
    daily["returning_users"] = dau - new
    daily["mau_partial"] = (all_days - first + 1) < config.mau_days
    daily["zero_result_rate"] = _ratio(daily["zero_result_searches"], daily["searches_with_count"])
    daily["click_through_rate"] = _ratio(daily["searches_clicked"], daily["searches"])

    # weekly and cohorts ----------------------------------------------------------------------------
    users["week"] = _week_start(users["day"])
    weekly_users = users.groupby("week")["user_code"].nunique()
    first_week = pd.Series(_week_start(first_seen.to_numpy()), index=first_seen.index)
    weeks = np.unique(_week_start(all_days))
    daily_week = _week_start(daily["day"])
    weekly = pd.DataFrame({"week": weeks})
    weekly["active_users"] = weekly_users.reindex(weeks, fill_value=0).to_numpy()
    weekly["new_users"] = first_week.value_counts().reindex(weeks, fill_value=0).to_numpy()
    weekly["events"] = daily.groupby(daily_week)["events"].sum().reindex(weeks, fill_value=0).to_numpy()
    weekly["days_covered"] = pd.Series(1, index=daily_week).groupby(level=0).sum().reindex(weeks, fill_value=0).to_numpy()
    weekly["partial"] = weekly["days_covered"] < 7

    user_weeks = users[["user_code", "week"]].drop_duplicates()
    user_weeks["cohort"] = first_week.reindex(user_weeks["user_code"]).to_numpy()
    user_weeks["weeks_since"] = (user_weeks["week"] - user_weeks["cohort"]) // 7
    cohorts = user_weeks.groupby(["cohort", "weeks_since"]).size().rename("active_users").reset_index()
    cohorts = cohorts.join(first_week.value_counts().rename("cohort_users"), on="cohort")
    cohorts["retention"] = cohorts["active_users"] / cohorts["cohort_users"]

    # reach: per key, a histogram of its users' last active day ---------------------------------
    pairs = within["pairs"]
    key_reach = _pair_reach(pairs)  # dimension, key, last_seen, users (every key)
    key_users = key_reach.groupby(["dimension", "key"], observed=True)["users"].sum()

    # search terms too few people used are dropped before anything about them is stored
    term_users = key_users.xs("search_term", level="dimension") if "search_term" in key_users.index.get_level_values(0) else pd.Series(dtype="int64")
    all_terms = set(_strings(pairs.loc[pairs["dimension"] == "search_term", "key"]))
    hidden_terms = {t for t in all_terms if term_users.get(t, 0) < config.min_term_users}

    keys_part = within["keys"]
    key_events = keys_part.groupby(["dimension", "key"], observed=True)["events"].sum()
    kept = _top_keys(key_users, key_events, hidden_terms, config.top_keys)
    key_reach = key_reach[_in_kept(key_reach, kept)]

    reach_parts = [_last_seen_hist_all(last_seen), key_reach]

    # adoption by team -------------------------------------------------------------------------
    adoption = pd.DataFrame(columns=["group_ref", "display_name", "type", "parent_ref", "members", "active_members", "share", "suppressed", "window_days"])
    meta_org: dict[str, Any] = {}
    if org is not None and key is not None:
        last_seen_user = pd.Series(last_seen.to_numpy(), index=np.asarray(user_values)[last_seen.index.to_numpy()])
        adoption, team_reach, meta_org = _team_adoption(org, key, last_seen_user, last, config)
        reach_parts.append(team_reach)
    reach = pd.concat(reach_parts, ignore_index=True).sort_values(["dimension", "key", "last_seen"], kind="stable")

    top_daily = keys_part[_in_kept(keys_part, kept)]
    search_terms = within["searches"]
    search_terms = search_terms[search_terms["term"].isin(kept.get("search_term", set()))]

    # plugin adoption curves ----------------------------------------------------------------------
    plugin_pairs = pairs.loc[(pairs["dimension"] == "plugin") & pairs["user"].notna(), ["key", "user", "day"]]
    plugin_adoption = _plugin_adoption(plugin_pairs, weeks)

    meta = pd.DataFrame(
        [
            {
                "as_of": day_string(last),
                "first_day": day_string(first),
                "days": int(last - first + 1),
                "days_summarised": int(daily["summarised"].sum()),
                "days_with_events": int((daily["events"] > 0).sum()),
                "retention_days": config.retention_days,
                "wau_days": config.wau_days,
                "mau_days": config.mau_days,
                "min_team_size": config.min_team_size,
                "min_term_users": config.min_term_users,
                "top_keys": config.top_keys,
                "hidden_search_terms": len(hidden_terms),
                "computed_at": (computed_at or datetime.now().astimezone()).isoformat(timespec="seconds"),
                **meta_org,
            }
        ]
    )

    tables = {
        "daily": daily,
        "weekly": weekly,
        "cohorts": cohorts.rename(columns={"cohort": "cohort_week"}),
        "reach": reach,
        "top_daily": top_daily.rename(columns={"users": "daily_users"}),
        "search_terms_daily": search_terms,
        "templates_daily": within["templates"],
        "funnels_daily": within["funnels"],
        "adoption": adoption,
        "plugin_adoption": plugin_adoption,
        "meta": meta,
    }
    plain = {name: _plain(frame) for name, frame in tables.items()}
    # No figure about fewer than k people is published (analytics.usage.privacy).
    return protect_people_figures(plain, config.min_team_size) if protect else plain


def _days_between(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    days = frame["day"].to_numpy()
    if len(days) == 0 or (days.min() >= first and days.max() <= last):
        return frame  # the usual case: the store loaded exactly the retained days
    return frame[(days >= first) & (days <= last)]


def _strings(values: pd.Series) -> np.ndarray:
    """A column as an object array of str/None, cheaply for categoricals (decode the codes)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = np.append(np.asarray(values.cat.categories, dtype=object), None)
        return lookup[values.cat.codes.to_numpy()]
    return values.to_numpy(dtype=object)


def _categorical(frame: pd.DataFrame, part: str) -> pd.DataFrame:
    columns = [c for c in SUMMARY_DICTIONARY_COLUMNS.get(part, []) if c in frame.columns and not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    if not columns:
        return frame
    return frame.astype({c: "category" for c in columns})


_DAY_BITS = 20  # day numbers (days since 1970) fit in 20 bits until the year 4840
_DAY_MASK = (1 << _DAY_BITS) - 1


def _runs(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how often each occurs."""
    if len(sorted_values) == 0:
        return sorted_values, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    return sorted_values[starts], np.diff(np.r_[starts, len(sorted_values)])


def _pair_reach(pairs: pd.DataFrame) -> pd.DataFrame:
    """(dimension, key, user, day) pairs → (dimension, key, last_seen, users), on integer codes.

    Sorting packed integers (pair code << 20 | day) beats hashing here: after one sort, the last
    element of each pair's run holds its latest day. ~9M pairs take about a second.
    """
    user = pairs["user"].cat.codes.to_numpy()
    signed = user >= 0
    n_keys, n_users = len(pairs["key"].cat.categories) + 1, len(pairs["user"].cat.categories) + 1
    dimkey = pairs["dimension"].cat.codes.to_numpy()[signed].astype(np.int64) * n_keys + pairs["key"].cat.codes.to_numpy()[signed]
    packed = np.sort(((dimkey * n_users + user[signed]) << _DAY_BITS) | pairs["day"].to_numpy()[signed])
    pair = packed >> _DAY_BITS
    latest = packed[np.r_[pair[1:] != pair[:-1], True]] if len(packed) else packed
    values, counts = _runs(np.sort(((latest >> _DAY_BITS) // n_users) << _DAY_BITS | (latest & _DAY_MASK)))
    dimkeys, last_seen = values >> _DAY_BITS, values & _DAY_MASK
    dims = np.asarray(pairs["dimension"].cat.categories, dtype=object)
    keys = np.asarray(pairs["key"].cat.categories, dtype=object)
    return pd.DataFrame(
        {
            "dimension": pd.Series(dims[dimkeys // n_keys], dtype="str"),
            "key": pd.Series(keys[dimkeys % n_keys], dtype="str"),
            "last_seen": last_seen,
            "users": counts.astype(np.int64),
        }
    )


def _top_keys(key_users: pd.Series, key_events: pd.Series, hidden_terms: set[str], top: int) -> dict[str, set[str]]:
    """Per dimension, the `top` keys by distinct users then events (hidden search terms excluded)."""
    frame = pd.DataFrame({"users": key_users}).join(pd.DataFrame({"events": key_events}), how="outer").fillna(0)
    frame = frame.reset_index()
    frame["dimension"] = frame["dimension"].astype("str")
    frame["key"] = frame["key"].astype("str")
    frame = frame[~((frame["dimension"] == "search_term") & frame["key"].isin(hidden_terms))]
    frame = frame.sort_values(["dimension", "users", "events", "key"], ascending=[True, False, False, True], kind="stable")
    return {dimension: set(group["key"].head(top)) for dimension, group in frame.groupby("dimension", sort=False)}


def _in_kept(frame: pd.DataFrame, kept: dict[str, set[str]]) -> np.ndarray:
    wanted = {(d, k) for d, keys in kept.items() for k in keys}
    if isinstance(frame["dimension"].dtype, pd.CategoricalDtype) and isinstance(frame["key"].dtype, pd.CategoricalDtype):
        # decide per distinct (dimension, key) code pair, then broadcast
        dims = np.asarray(frame["dimension"].cat.categories, dtype=object)
        keys = np.asarray(frame["key"].cat.categories, dtype=object)
        codes = frame["dimension"].cat.codes.to_numpy().astype(np.int64) * (len(keys) + 1) + frame["key"].cat.codes.to_numpy()
        distinct, inverse = np.unique(codes, return_inverse=True)
        keep = np.array([(dims[c // (len(keys) + 1)], keys[c % (len(keys) + 1)]) in wanted for c in distinct.tolist()], dtype=bool)
        return keep[inverse] if len(codes) else np.zeros(0, dtype=bool)
    return pd.MultiIndex.from_arrays([_strings(frame["dimension"]), _strings(frame["key"])]).isin(list(wanted))


_DAY_COLUMNS = ("day", "week", "cohort_week", "last_seen")


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Day numbers → ISO dates and categoricals → strings, ready for any SQL backend."""
    frame = frame.reset_index(drop=True).copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype("str")
    for column in _DAY_COLUMNS:
        if column in frame.columns:
            frame[column] = day_string(frame[column].to_numpy()).to_numpy()
    return frame


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype("float64")


def _last_seen_hist_all(last_seen: pd.Series) -> pd.DataFrame:
    hist = last_seen.value_counts().rename("users").rename_axis("last_seen").reset_index().sort_values("last_seen")
    hist.insert(0, "key", "*")
    hist.insert(0, "dimension", "all")
    return hist


def _team_adoption(org: "OrgGraph", key: bytes, last_seen_user: pd.Series, last: int, config: UsageConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    membership = org.membership_frame()
    rolled = membership.merge(org.rollup_frame(), on="group_ref")[["user_ref", "rollup_ref"]].drop_duplicates()
    tokens = pseudonymise_series(pd.Series(sorted(set(membership["user_ref"]) | set(org.users)), dtype="str"), key)
    token_of = dict(zip(sorted(set(membership["user_ref"]) | set(org.users)), tokens))
    rolled["user"] = rolled["user_ref"].map(token_of)
    rolled["last_seen"] = rolled["user"].map(last_seen_user)
    window_start = last - config.mau_days + 1

    groups = sorted(org.all_groups())
    members = rolled.groupby("rollup_ref")["user"].nunique().reindex(groups, fill_value=0)
    active = rolled[rolled["last_seen"] >= window_start].groupby("rollup_ref")["user"].nunique().reindex(groups, fill_value=0)
    adoption = pd.DataFrame(
        {
            "group_ref": groups,
            "display_name": [org.groups.get(g, {}).get("display_name") or g for g in groups],
            "type": [org.groups.get(g, {}).get("type") for g in groups],
            "parent_ref": [org.parent.get(g) for g in groups],
            "members": members.to_numpy().astype("int64"),
            "active_members": active.to_numpy().astype("int64"),
        }
    )
    adoption["share"] = _ratio(adoption["active_members"], adoption["members"])
    # below the minimum size nothing is computed; teams whose active or inactive members are
    # fewer than k are hidden with the other people counts (`protect_people_figures`)
    adoption["suppressed"] = adoption["members"] < config.min_team_size
    adoption.loc[adoption["suppressed"], ["active_members", "share"]] = np.nan
    adoption["window_days"] = config.mau_days

    seen = rolled.dropna(subset=["last_seen"])
    team_reach = (
        seen.groupby(["rollup_ref", "last_seen"]).size().rename("users").reset_index().rename(columns={"rollup_ref": "key"})
    )
    team_reach["last_seen"] = team_reach["last_seen"].astype("int64")
    team_reach.insert(0, "dimension", "team")

    catalog_tokens = set(token_of.values())
    active_tokens = set(last_seen_user[last_seen_user >= window_start].index)
    meta = {
        "catalog_users": len(catalog_tokens),
        "active_catalog_users": len(active_tokens & catalog_tokens),
        # Active users the catalog doesn't know: a sign-in resolver that doesn't put the user
        # entity ref in the token shows up here first.
        "active_unknown_users": len(active_tokens - catalog_tokens),
    }
    return adoption, team_reach, meta


def _plugin_adoption(plugin_pairs: pd.DataFrame, weeks: np.ndarray) -> pd.DataFrame:
    """Per plugin and week: distinct users, first-time users and the running total of users."""
    columns = ["plugin", "week", "active_users", "new_users", "cumulative_users"]
    if plugin_pairs.empty:
        return pd.DataFrame(columns=columns)
    plugin_codes, plugins = pd.factorize(pd.Series(_strings(plugin_pairs["key"])), sort=True)
    user = plugin_pairs["user"]
    user_codes = user.cat.codes.to_numpy() if isinstance(user.dtype, pd.CategoricalDtype) else pd.factorize(user)[0]
    week_index = np.searchsorted(weeks, _week_start(plugin_pairs["day"]))
    n_weeks, n_users = len(weeks), int(user_codes.max()) + 1
    plugin_week = plugin_codes.astype(np.int64) * n_weeks + week_index
    # distinct (plugin, week, user), then count per (plugin, week)
    active_values, _ = _runs(np.sort(plugin_week * n_users + user_codes))
    active = np.bincount(active_values // n_users, minlength=len(plugins) * n_weeks)
    # each (plugin, user)'s first week: the first of its run once sorted by (plugin, user, week)
    by_user = np.sort((plugin_codes.astype(np.int64) * n_users + user_codes) * n_weeks + week_index)
    firsts = by_user[np.r_[True, by_user[1:] // n_weeks != by_user[:-1] // n_weeks]]
    new = np.bincount((firsts // n_weeks // n_users) * n_weeks + firsts % n_weeks, minlength=len(plugins) * n_weeks)
    out = pd.DataFrame(
        {
            "plugin": np.repeat(np.asarray(plugins, dtype=object), n_weeks),
            "week": np.tile(weeks, len(plugins)),
            "active_users": active.astype(np.int64),
            "new_users": new.astype(np.int64),
        }
    )
    out["cumulative_users"] = out.groupby("plugin")["new_users"].cumsum()
    return out[columns]


# --- reading the stored tables: a window of N days --------------------------------------------------


def window_summary(tables: Mapping[str, pd.DataFrame | None], days: int = 28, top: int = 5) -> dict[str, Any]:
    """What `catalog-pipelines usage summary --days N` shows, from the stored insight tables only.

    Sums are exact for any window; distinct users come from the last-seen histograms, so they are
    exact too (for windows up to the retention).
    """
    meta_frame, daily = tables.get("meta"), tables.get("daily")
    if meta_frame is None or daily is None or meta_frame.empty:
        raise LookupError("no usage insights stored yet: materialise the usage_insights asset first")
    meta = meta_frame.iloc[0].to_dict()
    k = int(meta.get("min_people") or meta.get("min_team_size") or 5)
    windows = published_windows(meta)
    if days not in windows:
        raise ValueError(
            f"usage figures are published for windows of {', '.join(map(str, windows))} days only, not {days}: "
            f"two other windows could be subtracted to count fewer than {k} people"
        )
    as_of = date.fromisoformat(meta["as_of"])

    def start_of(window_days: int) -> str:
        return (as_of - timedelta(days=window_days - 1)).isoformat()

    start_s = start_of(days)
    window = daily[daily["day"] >= start_s]
    last = daily[daily["day"] == meta["as_of"]].iloc[0]
    reach = tables.get("reach")
    if reach is None:
        reach = pd.DataFrame(columns=["dimension", "key", "last_seen", "users"])

    def users_of(dimension: str) -> pd.Series:
        """Distinct users per key in the window, hidden (NaN) below k and where a smaller
        published window's count would give fewer than k people back by difference."""
        rows = reach[reach["dimension"] == dimension]
        counts = {w: rows[rows["last_seen"] >= start_of(w)].groupby("key")["users"].sum() for w in windows if w <= days}
        return difference_safe(counts, k)[days]

    def top_of(dimension: str) -> list[dict[str, Any]]:
        top_daily = tables.get("top_daily")
        if top_daily is None:
            return []
        rows = top_daily[(top_daily["dimension"] == dimension) & (top_daily["day"] >= start_s)]
        events = rows.groupby("key")["events"].sum()
        frame = pd.DataFrame({"events": events, "users": users_of(dimension).reindex(events.index)})
        frame = frame[frame["users"].notna()]  # a key fewer than k people used is not listed
        frame = frame.sort_values(["users", "events"], ascending=False, kind="stable").head(top)
        return [{"key": k, "users": int(r.users), "events": int(r.events)} for k, r in frame.iterrows()]

    searches = int(window["searches"].sum())
    with_count = int(window["searches_with_count"].sum())
    terms_table = tables.get("search_terms_daily")
    top_terms = []
    if terms_table is not None and not terms_table.empty:
        terms = terms_table[terms_table["day"] >= start_s].groupby("term")[["searches", "zero_results", "clicked"]].sum()
        terms = terms.sort_values("searches", ascending=False, kind="stable").head(top)
        top_terms = [{"term": t, "searches": int(r.searches), "zero_results": int(r.zero_results), "clicked": int(r.clicked)} for t, r in terms.iterrows()]

    templates_table = tables.get("templates_daily")
    templates = []
    if templates_table is not None and not templates_table.empty:
        t = templates_table[templates_table["day"] >= start_s].groupby("template")[["creates", "minutes_saved"]].sum()
        t = t.sort_values("creates", ascending=False, kind="stable").head(top)
        templates = [{"template": k, "creates": int(r.creates), "minutes_saved": float(r.minutes_saved)} for k, r in t.iterrows()]

    funnels_table = tables.get("funnels_daily")
    funnels: dict[str, list[dict[str, Any]]] = {}
    if funnels_table is not None and not funnels_table.empty:
        f = funnels_table[funnels_table["day"] >= start_s].groupby(["funnel", "step", "step_name"])["sessions"].sum().reset_index()
        for name, steps in f.groupby("funnel", sort=True):
            steps = steps.sort_values("step")
            first_step = int(steps["sessions"].iloc[0]) or 0
            funnels[name] = [
                {"step": s.step_name, "sessions": int(s.sessions), "conversion": (s.sessions / first_step) if first_step else None}
                for s in steps.itertuples()
            ]

    adoption_out: dict[str, Any] = {}
    team_users = users_of("team")
    adoption_table = tables.get("adoption")
    if adoption_table is not None and not adoption_table.empty:
        a = adoption_table[["group_ref", "display_name", "members"]].copy()
        a["active_members"] = team_users.reindex(a["group_ref"]).to_numpy()
        a["share"] = a["active_members"] / a["members"].where(a["members"] > 0)
        hidden = a["active_members"].isna() | adoption_hidden(a["members"], a["active_members"], max(k, int(meta.get("min_team_size", 5))))
        shown = a[~hidden]
        shown = shown.sort_values(["share", "members"], ascending=[False, False], kind="stable")
        roots = adoption_table.loc[adoption_table["parent_ref"].isna(), "group_ref"]
        adoption_out = {
            "catalog_users": _int_or_none(meta.get("catalog_users")),
            "active_catalog_users": shown_count(meta.get("active_catalog_users"), k),
            "teams_shown": len(shown),
            "teams_suppressed": int(len(a) - len(shown)),
            "top_teams": _team_rows(shown.head(top)),
            "bottom_teams": _team_rows(shown.tail(top).iloc[::-1]),
            "top_level": _team_rows(shown[shown["group_ref"].isin(roots)]),
        }

    active = shown_count(users_of("all").sum(min_count=1), k)
    # The window's new users are the sum of its days' new users: known only when none is hidden.
    new_users = None if window["new_users"].isna().any() else shown_count(window["new_users"].sum(), k)
    dau_average = float(window["dau"].mean()) if len(window) and not window["dau"].isna().any() else None
    return {
        "as_of": meta["as_of"],
        "days": days,
        "window_start": start_s,
        "data_from": meta["first_day"],
        "days_with_events": int((window["events"] > 0).sum()),
        "days_not_summarised": int((~window["summarised"].astype(bool)).sum()),
        "events": int(window["events"].sum()),
        "anonymous_events": int(window["anonymous_events"].sum()),
        "active_users": active,
        "new_users": new_users,
        "dau_average": dau_average,
        "dau": shown_count(last["dau"], k),
        "wau": shown_count(last["wau"], k),
        "mau": shown_count(last["mau"], k),
        "stickiness": _float_or_none(last["stickiness"]),
        "top_plugins": top_of("plugin"),
        "top_pages": top_of("page"),
        "top_entities": top_of("entity"),
        "search": {
            "searches": searches,
            "zero_result_rate": (int(window["zero_result_searches"].sum()) / with_count) if with_count else None,
            "click_through_rate": (int(window["searches_clicked"].sum()) / searches) if searches else None,
            "top_terms": top_terms,
        },
        "templates": {
            "creates": int(window["creates"].sum()),
            "minutes_saved": float(window["minutes_saved"].sum()),
            "top": templates,
        },
        "funnels": funnels,
        "adoption": adoption_out,
    }


def _team_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"group_ref": r.group_ref, "name": r.display_name, "members": int(r.members), "active_members": int(r.active_members), "share": float(r.share)}
        for r in frame.itertuples()
    ]


def _float_or_none(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)
