"""What every API collector shares: its config keys, its HTTP client, its run over units (a
repository, a project, a service) with a resumable cursor, and window arithmetic.

Config keys common to all API collectors (collectors.yaml `params`): `base_url`, `token` (a secret,
`${ENV}` substituted by the caller), `lookback_days` (the window of window facts, default 30),
`timeout` (per request, total), `deadline` (per run, total), `max_retries`, `backoff_base`,
`backoff_max`, `max_retry_after`, `max_pages`, `facts` (a selection of the declared facts).

The cursor (small, one per collector instance, never per entity):
`{"v": 1, "pass": {"started": ISO, "after": KEY} | null, "last_complete": ISO | null}`.
Units are walked in key order; after each unit a batch carries the cursor with `after` = that
unit's key, so a run that fails (rate limit beyond `max_retry_after`, deadline, source down) resumes
after the last stored unit, within the same pass (a pass older than a day starts afresh). Window
facts are counted from the window `[now - lookback_days, now]`, read with the vendor's own
since-filter (`created>=`, `updated_after`, `since`/`until`, JQL `created >=`): a run reads the
window, never the history before it, so a count over the window is exact on every run without any
per-entity state. Current-state facts (open pull requests, open alerts, on-call, quality gate) are
read with the vendor's `state=open`-style filters: what is closed is never read.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from catalog_pipelines.collectors.apis.http import ApiClient, ApiError, DeadlineExceeded, RateLimited
from catalog_pipelines.collectors.base import Batch, Event, FactDecl, Observation, Rejection, Target
from catalog_pipelines.model.retry import RetryPolicy

CURSOR_VERSION = 1
# A pass interrupted longer ago than this starts afresh instead of resuming.
PASS_TTL = timedelta(days=1)


class ApiParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str
    token: str | None = None
    lookback_days: int = Field(30, ge=1, le=366)
    timeout: float = Field(30.0, gt=0)
    deadline: float = Field(3600.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_base: float = Field(0.5, ge=0)
    backoff_max: float = Field(30.0, ge=0)
    max_retry_after: float = Field(120.0, ge=0)
    max_pages: int = Field(1000, ge=1)
    facts: list[str] | None = None
    # Delivery events (docs/facts.md, "Delivery events"): the kinds to collect (none by default:
    # they cost requests per pull request), how far back the first run reaches, and how far back
    # every later run re-reads (states that change after the event: deployment statuses, incidents
    # resolved later).
    events: list[str] = []
    events_lookback_days: int = Field(90, ge=1, le=3650)
    events_refresh_days: int = Field(3, ge=0, le=366)


class Unit:
    """One thing a collector reads facts for (a repository, a project, a service)."""

    def __init__(self, key: str, data: Mapping[str, Any] | None = None) -> None:
        self.key = key
        self.data = dict(data or {})

    def __repr__(self) -> str:
        return f"Unit({self.key!r})"


class ApiCollector:
    """Base of the vendor collectors. Subclasses set `FACTS`, `Params`, `headers()`/`auth()`,
    `units(client)` and `observe(client, unit, window_start, now) -> (Observation | None,
    [Rejection])`. Keyword `client_options` (sleep, clock, monotonic, rng, transport) are for tests
    and benchmarks; they never come from config."""

    FACTS: ClassVar[tuple[FactDecl, ...]] = ()
    EVENT_KINDS: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[ApiParams]] = ApiParams

    def __init__(self, name: str, params: ApiParams, **client_options: Any) -> None:
        self.name = name
        self.params = params
        self.client_options = client_options
        declared = {fact.name: fact for fact in self.FACTS}
        if params.facts is not None:
            unknown = [f for f in params.facts if f not in declared]
            if unknown:
                raise ValueError(f"collector {name}: unknown facts {unknown}; declared: {sorted(declared)}")
            declared = {f: declared[f] for f in params.facts}
        self._facts = declared
        unknown_events = [k for k in params.events if k not in self.EVENT_KINDS]
        if unknown_events:
            raise ValueError(f"collector {name}: unknown event kinds {unknown_events}; this type collects: {list(self.EVENT_KINDS)}")
        self._events = tuple(k for k in self.EVENT_KINDS if k in params.events)
        self.last_client: ApiClient | None = None

    @classmethod
    def from_config(cls, name: str, params: dict[str, Any], base_dir: Any = None) -> ApiCollector:
        return cls(name, cls.Params.model_validate(params))

    def facts(self) -> Mapping[str, FactDecl]:
        return dict(self._facts)

    def event_kinds(self) -> tuple[str, ...]:
        """The delivery event kinds this instance collects (`params.events`)."""
        return self._events

    # -- to implement --------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        return {}

    def auth(self) -> Any:
        return None

    def units(self, client: ApiClient) -> list[Unit]:
        raise NotImplementedError

    def observe(self, client: ApiClient, unit: Unit, window_start: datetime,
                now: datetime) -> tuple[Observation | None, list[Rejection]]:
        raise NotImplementedError

    def events(self, client: ApiClient, unit: Unit, since: datetime,
               now: datetime) -> tuple[list[Event], list[Rejection]]:
        """The unit's delivery events of the kinds in `self._events` that happened or changed
        since `since` (called only when some kind is asked for)."""
        return [], []

    def events_since(self, cursor: Mapping[str, Any] | None, now: datetime) -> datetime:
        """Where this run's event reading starts: the previous complete pass with the same kinds
        (less `events_refresh_days`), never further back than `events_lookback_days`."""
        p = self.params
        floor = now - timedelta(days=p.events_lookback_days)
        state = (cursor or {}).get("events") if isinstance(cursor, Mapping) else None
        if isinstance(state, Mapping) and list(state.get("kinds") or []) == list(self._events):
            complete = parse_time(state.get("complete"))
            if complete is not None:
                return max(floor, min(complete, now - timedelta(days=p.events_refresh_days)))
        return floor

    # -- the run -------------------------------------------------------------------------------

    def client(self) -> ApiClient:
        p = self.params
        policy = RetryPolicy(max_retries=p.max_retries, backoff_base=p.backoff_base,
                             backoff_max=p.backoff_max, max_retry_after=p.max_retry_after)
        return ApiClient(p.base_url, self.headers(), auth=self.auth(), name=self.name, timeout=p.timeout,
                         deadline=p.deadline, policy=policy, max_pages=p.max_pages, **self.client_options)

    def collect(self, cursor: Mapping[str, Any] | None, now: datetime) -> Iterator[Batch]:
        now = _aware(now)
        started, after = _resume_point(cursor, now)
        last_complete = (cursor or {}).get("last_complete")
        events_state = (cursor or {}).get("events")
        window_start = now - timedelta(days=self.params.lookback_days)
        # A resumed pass reads events from where the pass it continues started reading.
        since = self.events_since(cursor, started)
        with self.client() as client:
            self.last_client = client
            units = sorted(self.units(client), key=lambda u: u.key)
            for unit in units:
                if after is not None and unit.key <= after:
                    continue
                events: list[Event] = []
                try:
                    observation, rejections = self.observe(client, unit, window_start, now) if self._facts else (None, [])
                    if self._events:
                        events, event_rejections = self.events(client, unit, since, now)
                        rejections = [*rejections, *event_rejections]
                except ApiError as exc:
                    if isinstance(exc, (RateLimited, DeadlineExceeded)) or exc.status is None or exc.status >= 429:
                        raise  # the source is down or rate limited: stop, resume from the cursor
                    observation, events, rejections = None, [], [Rejection(f"{self.name}:{unit.key}", str(exc))]
                batch = Batch(rejections=rejections, events=events,
                              cursor=_cursor(started, unit.key, last_complete, events_state))
                if observation is not None:
                    facts = {k: v for k, v in observation.facts.items() if k in self._facts}
                    batch.observations.append(Observation(observation.targets, facts, observation.observed_at,
                                                          observation.origin))
                yield batch
        final: dict[str, Any] = {"v": CURSOR_VERSION, "pass": None, "last_complete": _iso(now)}
        if self._events:
            # Events are complete from `since` up to when this pass started.
            final["events"] = {"kinds": list(self._events), "complete": _iso(started)}
        yield Batch(cursor=final)


def _cursor(started: datetime, after: str, last_complete: str | None,
            events_state: Any = None) -> dict[str, Any]:
    cursor = {"v": CURSOR_VERSION, "pass": {"started": _iso(started), "after": after}, "last_complete": last_complete}
    if events_state is not None:
        cursor["events"] = events_state
    return cursor


def _resume_point(cursor: Mapping[str, Any] | None, now: datetime) -> tuple[datetime, str | None]:
    """(when this pass started, the key of the last unit stored in it, or None)."""
    state = (cursor or {}).get("pass") if isinstance(cursor, Mapping) else None
    if isinstance(state, Mapping) and isinstance(state.get("after"), str):
        started = parse_time(state.get("started"))
        if started is not None and timedelta(0) <= now - started <= PASS_TTL:
            return started, state["after"]
    return now, None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def iso(moment: datetime) -> str:
    return _iso(moment)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as vendors write it (`Z`, `+00:00`, `+0100`, fractions), aware; else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"  # +0100 -> +01:00 (SonarQube, Jira)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return _aware(parsed)


def in_window(value: Any, window_start: datetime, now: datetime) -> bool:
    moment = parse_time(value)
    return moment is not None and window_start <= moment <= now


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def duration(start: Any, end: Any) -> float | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None or b < a:
        return None
    return (b - a).total_seconds()


def count_by(items: list[Any], key: Callable[[Any], Any], names: tuple[str, ...]) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    for item in items:
        value = key(item)
        if isinstance(value, str) and value.lower() in counts:
            counts[value.lower()] += 1
    return counts


def dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def targets(*pairs: tuple[str, Any]) -> tuple[Target, ...]:
    out: list[Target] = []
    for annotation, value in pairs:
        if value is not None and str(value) != "" and Target(annotation, str(value)) not in out:
            out.append(Target(annotation, str(value)))
    return tuple(out)
