"""PagerDuty (REST API v2): services, on-calls and incidents.

Targets, tried in order: `pagerduty.com/service-id` = the service id, then
`pagerduty.com/integration-key` = each integration key of the service (Events API integrations).
Services: `services: [ID, ...]` (`GET /services/{id}`), else every service of the account
(`GET /services`, `offset`/`limit`/`more` paging), both with `include[]=integrations`.

Endpoints: `GET /oncalls?escalation_policy_ids[]=…&earliest=true` (who is on call now, level 1),
`GET /incidents?statuses[]=triggered&statuses[]=acknowledged&date_range=all&service_ids[]=…` (open
now), `GET /incidents?since=WINDOW_START&until=NOW&service_ids[]=…` (the window), all with
`offset`/`limit`/`more` paging and ids sent in chunks of `ids_per_request` (not one request per
service). Auth: `Authorization: Token token=…`; PagerDuty answers 429 when rate limited (honoured
with `Retry-After`, else backoff). The Events API is not used.

Delivery events (`events: [incidents]`, docs/facts.md, "Delivery events"):
`GET /incidents?service_ids[]=…&since=SINCE&until=NOW` (ids in chunks as above; the range cut into
spans of at most 179 days, PagerDuty's limit being six months): incident_id = `id`, service_id =
`service.id`, urgency, started_at = `created_at`, resolved_at = `resolved_at`, else
`last_status_change_at` when `status` is resolved. An incident whose service maps to no entity is
stored with no entity (`keep_unmapped`). An incident is re-read while it was created within
`events_refresh_days` of a run, and once more when it is resolved later than that:
`GET /incidents?date_range=all&statuses[]=resolved&sort_by=resolved_at:desc&service_ids[]=…`,
newest resolution first, read down to the run's start (incidents created within
`events_lookback_days`).

Written on httpx: PagerDuty's own `pagerduty` client (python-pagerduty) retries on its own clock
(no injectable sleep, no total deadline) and is a thin wrapper over these GETs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from catalog_pipelines.collectors.apis.common import (
    ApiCollector, ApiParams, Unit, dig, in_window, iso, parse_time, targets,
)
from catalog_pipelines.collectors.apis.http import ApiClient
from catalog_pipelines.collectors.base import Event, FactDecl, Observation, Rejection
from catalog_pipelines.model import delivery_events as ev

SERVICE_ID = "pagerduty.com/service-id"
INTEGRATION_KEY = "pagerduty.com/integration-key"
OPEN_STATUSES = ("triggered", "acknowledged")
# PagerDuty refuses a since..until range longer than six months.
MAX_RANGE = timedelta(days=179)

FACTS = (
    FactDecl("has_oncall", "boolean", "someone is on call now at level 1 of the service's escalation policy"),
    FactDecl("oncall_responders", "number", "distinct people on call now at level 1 of the escalation policy"),
    FactDecl("has_escalation_policy", "boolean", "the service has an escalation policy"),
    FactDecl("open_incidents", "number", "incidents triggered or acknowledged now"),
    FactDecl("incidents", "number", "incidents created in the look-back window"),
    FactDecl("service_status", "string", "the service's status (active, warning, critical, maintenance, disabled)"),
)


class PagerdutyParams(ApiParams):
    base_url: str = "https://api.pagerduty.com"
    services: list[str] = []
    ids_per_request: int = 50


class PagerdutyCollector(ApiCollector):
    FACTS = FACTS
    EVENT_KINDS = (ev.INCIDENTS,)
    Params = PagerdutyParams
    params: PagerdutyParams
    _unit_index: dict[str, Unit] = {}
    _prefetched: dict[str, dict[str, Any]] | None = None
    _prefetched_events: dict[str, list[Event]] | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.pagerduty+json;version=2, application/json", "Content-Type": "application/json"}
        if self.params.token:
            headers["Authorization"] = f"Token token={self.params.token}"
        return headers

    def units(self, client: ApiClient) -> list[Unit]:
        include = [("include[]", "integrations")]
        services: list[dict[str, Any]] = []
        if self.params.services:
            for ident in self.params.services:
                _, body, _ = client.get(f"/services/{ident}", include)
                if isinstance(dig(body, "service"), dict):
                    services.append(body["service"])
        else:
            for page in client.pages_offset("/services", include, "services"):
                services += [s for s in page if isinstance(s, dict)]
        units = {str(s["id"]): Unit(str(s["id"]), s) for s in services if s.get("id")}
        self._unit_index = units
        self._prefetched: dict[str, dict[str, Any]] | None = None
        self._prefetched_events = None
        return list(units.values())

    def observe(self, client: ApiClient, unit: Unit, window_start: datetime,
                now: datetime) -> tuple[Observation | None, list[Rejection]]:
        # On-calls and incidents are asked for many services at once; the first unit of a chunk
        # fetches for the whole chunk.
        prefetched = self._prefetched
        if prefetched is None or unit.key not in prefetched:
            prefetched = self._prefetch(client, unit, window_start, now)
            self._prefetched = prefetched
        state = prefetched[unit.key]
        service = unit.data
        policy = dig(service, "escalation_policy", "id")
        responders = state["responders"]
        facts: dict[str, Any] = {
            "has_escalation_policy": bool(policy),
            "has_oncall": bool(responders),
            "oncall_responders": len(responders),
            "open_incidents": state["open"],
            "incidents": state["window"],
        }
        if isinstance(service.get("status"), str):
            facts["service_status"] = service["status"]
        keys = [i.get("integration_key") for i in service.get("integrations") or [] if isinstance(i, dict)]
        observation = Observation(
            targets((SERVICE_ID, unit.key), *((INTEGRATION_KEY, k) for k in keys if isinstance(k, str))),
            facts, now, f"{client.base_url}/services/{unit.key}")
        return observation, []

    def _prefetch(self, client: ApiClient, unit: Unit, window_start: datetime,
                  now: datetime) -> dict[str, dict[str, Any]]:
        chunk = self._chunk_of(unit.key)
        services = {key: self._unit_index[key].data for key in chunk}
        state: dict[str, dict[str, Any]] = {k: {"responders": set(), "open": 0, "window": 0} for k in chunk}
        by_policy: dict[str, list[str]] = defaultdict(list)
        for key, service in services.items():
            policy = dig(service, "escalation_policy", "id")
            if isinstance(policy, str):
                by_policy[policy].append(key)
        if by_policy:
            query = [("escalation_policy_ids[]", p) for p in sorted(by_policy)] + [("earliest", "true")]
            for page in client.pages_offset("/oncalls", query, "oncalls"):
                for oncall in page:
                    policy = dig(oncall, "escalation_policy", "id")
                    user = dig(oncall, "user", "id")
                    if oncall.get("escalation_level") == 1 and isinstance(user, str):
                        for key in by_policy.get(policy, ()):
                            state[key]["responders"].add(user)
        ids = [("service_ids[]", k) for k in chunk]
        for page in client.pages_offset(
                "/incidents", [*ids, *(("statuses[]", s) for s in OPEN_STATUSES), ("date_range", "all")], "incidents"):
            for incident in page:
                key = dig(incident, "service", "id")
                if key in state and incident.get("status") in OPEN_STATUSES:
                    state[key]["open"] += 1
        for page in client.pages_offset(
                "/incidents", [*ids, ("since", iso(window_start)), ("until", iso(now))], "incidents"):
            for incident in page:
                key = dig(incident, "service", "id")
                if key in state and in_window(incident.get("created_at"), window_start, now):
                    state[key]["window"] += 1
        return state

    def _chunk_of(self, key: str) -> list[str]:
        keys = sorted(self._unit_index)
        start = keys.index(key)
        return keys[start:start + self.params.ids_per_request]

    # -- delivery events -----------------------------------------------------------------------

    def events(self, client: ApiClient, unit: Unit, since: datetime,
               now: datetime) -> tuple[list[Event], list[Rejection]]:
        # Like the facts: the first unit of a chunk of services reads the incidents of the chunk.
        prefetched = self._prefetched_events
        if prefetched is None or unit.key not in prefetched:
            prefetched = self._incidents(client, self._chunk_of(unit.key), since, now)
            self._prefetched_events = prefetched
        return prefetched.pop(unit.key, []), []

    def _incidents(self, client: ApiClient, chunk: list[str], since: datetime, now: datetime) -> dict[str, list[Event]]:
        out: dict[str, list[Event]] = {key: [] for key in chunk}
        ids = [("service_ids[]", k) for k in chunk]
        seen: set[str] = set()
        start = since
        while start < now:
            end = min(now, start + MAX_RANGE)
            for page in client.pages_offset("/incidents", [*ids, ("since", iso(start)), ("until", iso(end))], "incidents"):
                for incident in page:
                    key = dig(incident, "service", "id")
                    ident = incident.get("id") if isinstance(incident, dict) else None
                    started = parse_time(incident.get("created_at")) if isinstance(incident, dict) else None
                    if key not in out or not isinstance(ident, str) or ident in seen or started is None \
                            or not since <= started <= now:
                        continue
                    seen.add(ident)
                    out[key].append(self._event(client, incident, key, ident, started))
            start = end
        # Incidents created before `since` and resolved since (a long outage resolved after the
        # refresh days): `date_range=all&statuses[]=resolved&sort_by=resolved_at:desc`, newest
        # resolution first, read down to `since`; created within the look-back only (older ones
        # have been pruned).
        floor = now - timedelta(days=self.params.events_lookback_days)
        for page in client.pages_offset("/incidents", [*ids, ("date_range", "all"), ("statuses[]", "resolved"),
                                                       ("sort_by", "resolved_at:desc")], "incidents"):
            older = 0
            for incident in page:
                if not isinstance(incident, dict):
                    continue
                resolved = _resolved_at(incident)
                if resolved is None or resolved < since:
                    older += 1
                    continue
                key, ident = dig(incident, "service", "id"), incident.get("id")
                started = parse_time(incident.get("created_at"))
                if key not in out or not isinstance(ident, str) or ident in seen or started is None or not floor <= started <= now:
                    continue
                seen.add(ident)
                out[key].append(self._event(client, incident, key, ident, started))
            if page and older == len(page):  # a whole page resolved before `since`: the rest is older still
                break
        return out

    def _event(self, client: ApiClient, incident: dict[str, Any], key: str, ident: str, started: datetime) -> Event:
        service = self._unit_index[key].data
        keys = [i.get("integration_key") for i in service.get("integrations") or [] if isinstance(i, dict)]
        return Event(
            ev.INCIDENTS,
            targets((SERVICE_ID, key), *((INTEGRATION_KEY, k) for k in keys if isinstance(k, str))),
            ident,
            {"incident_id": ident, "service_id": key, "urgency": incident.get("urgency"),
             "started_at": started, "resolved_at": _resolved_at(incident)},
            str(incident.get("html_url") or f"{client.base_url}/incidents/{ident}"), keep_unmapped=True)


def _resolved_at(incident: dict[str, Any]) -> datetime | None:
    """`resolved_at`, else the last status change of a resolved incident (older descriptions)."""
    resolved = parse_time(incident.get("resolved_at"))
    if resolved is None and incident.get("status") == "resolved":
        resolved = parse_time(incident.get("last_status_change_at"))
    return resolved
