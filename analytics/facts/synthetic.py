"""Realistic fact exports for the synthetic organisation: CI runs, vulnerabilities, tickets and
incidents, coverage and on-call, in the documented export formats (`docs/scorecards.md`).

Teams differ and change over time. Each owning team gets a seeded profile: a base engineering
quality, and a slow oscillation around it (period 2 to 6 months) so that some teams improve while
others slip. Each entity adds its own fixed offset. Every export is a function of
`(seed, entity ref, team, date)` only, so the same day always produces the same files and
consecutive days differ the way a real organisation's do: a team in a bad phase sees its CI
success rate drop, findings pile up and tickets age.

Not every entity is covered by every tool (some services have no CI, some are never scanned):
those gaps are intentional, they make checks "not reported".
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from analytics.facts.collect import canonical_series
from analytics.org import OrgGraph

SOURCES = ("ci", "vulnerabilities", "tickets", "coverage", "oncall")
DEFAULT_FORMATS = {"ci": "json", "vulnerabilities": "json", "tickets": "csv", "coverage": "csv", "oncall": "jsonl"}
_SCORED_KINDS = ("component",)
_HISTORY_DAYS = 120  # how far back finding and ticket arrivals are simulated
_EPOCH = date(2026, 1, 1)


def _unit(values: pd.Series, seed: int, salt: str) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per value (the same on every machine and run)."""
    key = hashlib.sha256(f"{seed}:{salt}".encode()).hexdigest()[:16]
    hashed = pd.util.hash_array(values.astype(object).to_numpy(), hash_key=key, categorize=True)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _rng(seed: int, day: date, salt: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{day.isoformat()}:{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _team_frame(entities: pd.DataFrame, org: OrgGraph) -> pd.DataFrame:
    """Scored entities (components) with their owning team, sorted by ref for stable streams.

    An entity owned by a user belongs to that user's (first) team: teams, not people, have an
    engineering culture.
    """
    comps = entities[entities["kind"].str.lower().isin(_SCORED_KINDS)].copy()
    namespaces = comps["namespace"] if "namespace" in comps.columns else pd.Series("default", index=comps.index)
    owner = canonical_series(comps["owner"], "group", namespaces)
    users = {u: sorted(org.teams_of(u)) for u in owner.dropna().unique() if u.startswith("user:")}
    comps["team"] = owner.map(lambda o: (users.get(o) or [o])[0] if isinstance(o, str) else "(unowned)")
    comps["type"] = comps["type"].fillna("other").astype(str).str.lower() if "type" in comps.columns else "other"
    return comps[["ref", "team", "type"]].sort_values("ref").reset_index(drop=True)


def team_quality(teams: pd.Series, day: date, seed: int) -> np.ndarray:
    """Engineering quality in [0.05, 0.98] of each team on `day`: seeded base plus a slow wave."""
    return _Profile(teams, seed).at(day)


class _Profile:
    """Per-row team parameters, hashed once; `at(day)` is then cheap for every simulated day."""

    def __init__(self, teams: pd.Series, seed: int, refs: pd.Series | None = None):
        self.base = 0.25 + 0.65 * _unit(teams, seed, "base")
        self.amplitude = 0.05 + 0.2 * _unit(teams, seed, "amplitude")
        self.period = 60 + 120 * _unit(teams, seed, "period")
        self.phase = _unit(teams, seed, "phase")
        self.offset = (_unit(refs, seed, "entity") - 0.5) * 0.2 if refs is not None else 0.0

    def at(self, day: date) -> np.ndarray:
        t = (day - _EPOCH).days
        team = np.clip(self.base + self.amplitude * np.sin(2 * np.pi * (t / self.period + self.phase)), 0.05, 0.98)
        return np.clip(team + self.offset, 0.02, 0.99) if not np.isscalar(self.offset) else team


_PROFILES: dict[tuple, _Profile] = {}


def _quality(frame: pd.DataFrame, day: date, seed: int) -> np.ndarray:
    refs = frame["ref"]
    key = (id(frame), seed, len(frame), refs.iat[0] if len(frame) else None, refs.iat[-1] if len(frame) else None)
    if key not in _PROFILES:
        if len(_PROFILES) > 16:
            _PROFILES.clear()
        _PROFILES[key] = _Profile(frame["team"], seed, frame["ref"])
    return _PROFILES[key].at(day)


def _covered(frame: pd.DataFrame, seed: int, salt: str, share: np.ndarray | float) -> np.ndarray:
    return _unit(frame["ref"], seed, f"covered:{salt}") < share


def _iso(values: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC strings for datetime64 values (NaT → None), vectorised."""
    out = np.char.add(np.datetime_as_string(values.astype("datetime64[s]"), unit="s"), "Z").astype(object)
    out[np.isnat(values)] = None
    return out


def _stamp(day: date, seconds: np.ndarray) -> np.ndarray:
    return _iso(np.datetime64(day.isoformat(), "s") + seconds.astype("timedelta64[s]"))


def _ids(prefix: str, names: np.ndarray, day_codes: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """`<prefix><name>-<yyyymmdd>-<k>` ids, built with vectorised string operations."""
    parts = pd.Series(names, dtype="str") + "-" + pd.Series(day_codes, dtype="str") + "-" + pd.Series(seq, dtype="str")
    return (prefix + parts).to_numpy(dtype=object)


def _names(frame: pd.DataFrame) -> np.ndarray:
    return frame["ref"].str.rsplit("/", n=1).str[-1].to_numpy(dtype=object)


def ci_runs(frame: pd.DataFrame, day: date, seed: int) -> pd.DataFrame:
    """CI runs of one day: `run_id, entity_ref, branch, default_branch, status, started_at, duration_seconds`."""
    q = _quality(frame, day, seed)
    covered = _covered(frame, seed, "ci", 0.8 + 0.15 * _quality(frame, _EPOCH, seed))
    rng = _rng(seed, day, "ci")
    counts = rng.poisson(np.where(frame["type"] == "library", 0.8, 2.0)) * covered
    idx = np.repeat(np.arange(len(frame)), counts)
    n = len(idx)
    default = rng.random(n) < 0.6
    success = rng.random(n) < 0.5 + 0.48 * q[idx]
    cancelled = rng.random(n) < 0.03
    status = np.where(cancelled, "cancelled", np.where(success, "success", "failed"))
    duration = np.round(rng.lognormal(np.log(240 * (1.7 - q[idx])), 0.35), 1)
    seq = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    refs = frame["ref"].to_numpy(dtype=object)
    runs = pd.DataFrame(
        {
            "run_id": _ids("", _names(frame)[idx], np.full(n, f"{day:%Y%m%d}"), seq),
            "entity_ref": refs[idx],
            "branch": np.where(default, "main", "feature"),
            "default_branch": default,
            "status": status,
            "started_at": _stamp(day, rng.integers(0, 86400, n)),
            "duration_seconds": duration,
        }
    )
    # A covered entity without runs today still exists for the CI tool: one marker row.
    idle = refs[covered & (counts == 0)]
    markers = pd.DataFrame({"run_id": None, "entity_ref": idle})
    return pd.concat([runs, markers], ignore_index=True)


def _arrivals(frame: pd.DataFrame, as_of: date, seed: int, salt: str, rate: np.ndarray | float, quality_weight: float, max_days: int = _HISTORY_DAYS) -> pd.DataFrame:
    """Items that arrived on each of the `max_days` days up to `as_of`.

    Columns: entity index, sequence within the entity and day, days back from `as_of`, the
    entity's quality that day, and three uniform draws per item (from the same day's stream, so
    an item looks the same whatever `as_of` it is seen from).
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("idx", "seq", "back", "q", "u0", "u1", "u2")}
    for back in range(max_days):
        day = as_of - timedelta(days=back)
        q = _quality(frame, day, seed)
        rng = _rng(seed, day, salt)
        counts = rng.poisson(rate * (1.0 + quality_weight * (1.0 - q)))
        if not counts.any():
            continue
        idx = np.repeat(np.arange(len(frame)), counts)
        draws = rng.random((len(idx), 3))
        parts["idx"].append(idx)
        parts["seq"].append(np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts))
        parts["back"].append(np.full(len(idx), back))
        parts["q"].append(q[idx])
        for k in range(3):
            parts[f"u{k}"].append(draws[:, k])
    if not parts["idx"]:
        return pd.DataFrame({k: np.array([], dtype=float) for k in parts}).astype({"idx": int, "seq": int, "back": int})
    return pd.DataFrame({k: np.concatenate(v) for k, v in parts.items()})


def _history_items(frame: pd.DataFrame, items: pd.DataFrame, as_of: date, prefix: str, mean_days: np.ndarray) -> dict[str, np.ndarray]:
    """Ids, entity refs, open and close times of simulated items; close = open + exponential."""
    idx = items["idx"].to_numpy(dtype=int)
    back = items["back"].to_numpy(dtype=int)
    day0 = np.datetime64(as_of.isoformat(), "s")
    opened = day0 - back.astype("timedelta64[D]").astype("timedelta64[s]") + (items["u0"].to_numpy() * 86400).astype("timedelta64[s]")
    duration = -np.log(1.0 - items["u1"].to_numpy()) * mean_days * 86400
    closed = opened + duration.astype("timedelta64[s]")
    days = np.datetime_as_string(day0.astype("datetime64[D]") - back.astype("timedelta64[D]"))
    day_codes = pd.Series(days, dtype="str").str.replace("-", "").to_numpy(dtype=object)
    return {
        "id": _ids(prefix, _names(frame)[idx], day_codes, items["seq"].to_numpy(dtype=int)),
        "entity_ref": frame["ref"].to_numpy(dtype=object)[idx],
        "opened": opened,
        "closed": closed,
    }


def vulnerabilities(frame: pd.DataFrame, as_of: date, seed: int) -> pd.DataFrame:
    """Findings snapshot: `vulnerability_id, entity_ref, severity, opened_at, resolved_at`."""
    covered = _covered(frame, seed, "vulns", 0.7 + 0.25 * _quality(frame, _EPOCH, seed))
    scanned = frame[covered].reset_index(drop=True)
    found = _arrivals(scanned, as_of, seed, "vulns", 0.03, 2.0)
    u = found["u2"].to_numpy()
    severity = np.select([u < 0.05, u < 0.25, u < 0.65], ["critical", "high", "medium"], "low")
    mean_fix = pd.Series(severity).map({"critical": 4.0, "high": 12.0, "medium": 35.0, "low": 70.0}).to_numpy() * (1.8 - found["q"].to_numpy(dtype=float))
    items = _history_items(scanned, found, as_of, "V-", mean_fix)
    cutoff = np.datetime64((as_of + timedelta(days=1)).isoformat(), "s")
    keep = items["closed"] >= cutoff - np.timedelta64(30, "D")
    resolved = np.where(items["closed"] < cutoff, items["closed"], np.datetime64("NaT"))
    out = pd.DataFrame(
        {
            "vulnerability_id": items["id"][keep],
            "entity_ref": items["entity_ref"][keep],
            "severity": severity[keep],
            "opened_at": _iso(items["opened"][keep]),
            "resolved_at": _iso(resolved[keep]),
        }
    )
    markers = pd.DataFrame({"vulnerability_id": None, "entity_ref": scanned["ref"].to_numpy(dtype=object)})
    return pd.concat([out, markers], ignore_index=True)


def tickets(frame: pd.DataFrame, as_of: date, seed: int) -> pd.DataFrame:
    """Tickets and incidents snapshot: `ticket_id, entity_ref, type, priority, opened_at, closed_at`."""
    tracked = frame[_covered(frame, seed, "tickets", 0.92) & frame["type"].isin(["service", "website"]).to_numpy()].reset_index(drop=True)
    cutoff = np.datetime64((as_of + timedelta(days=1)).isoformat(), "s")
    parts = []
    for kind, rate, weight, mean_close in (("ticket", 0.12, 1.5, 9.0), ("incident", 0.01, 3.0, 1.5)):
        found = _arrivals(tracked, as_of, seed, f"tickets:{kind}", rate, weight, max_days=90)
        items = _history_items(tracked, found, as_of, f"{kind[:3].upper()}-", mean_close * (1.8 - found["q"].to_numpy(dtype=float)))
        keep = items["closed"] >= cutoff - np.timedelta64(30, "D")
        closed = np.where(items["closed"] < cutoff, items["closed"], np.datetime64("NaT"))
        u = found["u2"].to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "ticket_id": items["id"][keep],
                    "entity_ref": items["entity_ref"][keep],
                    "type": kind,
                    "priority": np.select([u < 0.1, u < 0.4], ["P1", "P2"], "P3")[keep],
                    "opened_at": _iso(items["opened"][keep]),
                    "closed_at": _iso(closed[keep]),
                }
            )
        )
    parts.append(pd.DataFrame({"ticket_id": None, "entity_ref": tracked["ref"].to_numpy(dtype=object)}))
    return pd.concat(parts, ignore_index=True)


def coverage(frame: pd.DataFrame, day: date, seed: int) -> pd.DataFrame:
    """One day's coverage reports: `entity_ref, measured_at, line_coverage, branch_coverage`."""
    q = _quality(frame, day, seed)
    covered = _covered(frame, seed, "coverage", 0.55 + 0.4 * _quality(frame, _EPOCH, seed)) & (frame["type"] != "website").to_numpy()
    rng = _rng(seed, day, "coverage")
    line = np.clip(30 + 65 * q + rng.normal(0, 3, len(frame)), 0, 100).round(1)
    branch = np.clip(line - rng.uniform(4, 15, len(frame)), 0, 100).round(1)
    return pd.DataFrame(
        {
            "entity_ref": frame["ref"].to_numpy()[covered],
            "measured_at": _stamp(day, rng.integers(3600, 7200, len(frame)))[covered],
            "line_coverage": line[covered],
            "branch_coverage": branch[covered],
        }
    )


def oncall(frame: pd.DataFrame, as_of: date, seed: int) -> pd.DataFrame:
    """On-call snapshot for services: `entity_ref, schedule_id, escalation_policy, responders, updated_at`."""
    services = frame[(frame["type"] == "service").to_numpy() & _covered(frame, seed, "oncall", 0.95)].reset_index(drop=True)
    q = _quality(services, as_of, seed)
    # Re-drawn weekly, so a team's on-call set-up changes now and then, not every day.
    week = (as_of - _EPOCH).days // 7
    u = _unit(services["ref"] + f"@{week}", seed, "schedule")
    has = u < 0.3 + 0.7 * q
    responders = np.where(has, 1 + np.floor(6 * q * _unit(services["ref"], seed, "responders") + 2 * q).astype(int), 0)
    policy = _unit(services["ref"] + f"@{week}", seed, "policy") < 0.4 + 0.6 * q
    names = services["ref"].str.split("/").str[-1]
    return pd.DataFrame(
        {
            "entity_ref": services["ref"].to_numpy(),
            "schedule_id": np.where(has, "PD-" + names, None),
            "escalation_policy": np.where(has & policy, "EP-" + services["team"].str.split("/").str[-1], None),
            "responders": responders,
            "updated_at": f"{as_of.isoformat()}T06:00:00Z",
        }
    )


def synthetic_exports(entities: pd.DataFrame, org: OrgGraph, *, as_of: date, seed: int = 7, days: int = 1) -> dict[str, dict[date, pd.DataFrame]]:
    """Exports for every source: `{source: {day: records}}`.

    Event sources (CI runs, coverage) get one export per day for the `days` days ending at
    `as_of`; snapshot sources (vulnerabilities, tickets, on-call) one export for `as_of`.
    Teams are the owning groups (`org` maps user owners to their team).
    """
    frame = _team_frame(entities, org)
    window = [as_of - timedelta(days=back) for back in range(days - 1, -1, -1)]
    return {
        "ci": {d: ci_runs(frame, d, seed) for d in window},
        "coverage": {d: coverage(frame, d, seed) for d in window},
        "vulnerabilities": {as_of: vulnerabilities(frame, as_of, seed)},
        "tickets": {as_of: tickets(frame, as_of, seed)},
        "oncall": {as_of: oncall(frame, as_of, seed)},
    }


def today_utc() -> date:
    return datetime.now(timezone.utc).date()
