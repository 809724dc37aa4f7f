"""Catalog history use cases: the catalog as of a cycle or a time, diffs, one entity's versions,
and the per-cycle change summary (the `catalog_changes` asset, the dashboards' changes page).

What is kept and how is `storage/history.py`; every door (CLI `catalog describe --as-of`, `catalog
diff`, `catalog history`, the asset, the site) calls these functions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

FIELDS = ("owner", "lifecycle", "system")


class HistoryError(ValueError):
    """A question history cannot answer (unknown ref or cycle); the message is one line."""


@dataclass(frozen=True)
class Point:
    """A point of the catalog's history: the end of cycle `cycle` (each provider's own numbering),
    or the time `at` (UTC)."""

    cycle: int | None = None
    at: dt.datetime | None = None

    def __str__(self) -> str:
        return f"cycle {self.cycle}" if self.cycle is not None else self.at.isoformat()

    def sees(self, version: dict[str, Any]) -> bool:
        if self.cycle is not None:
            return version["cycle"] <= self.cycle
        return _aware(version["at"]) <= self.at

    def clause(self):
        from catalog_pipelines.storage.history import visible

        return visible(cycle=self.cycle, at=self.at)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def parse_point(value: str | int) -> Point:
    """A cycle number ("12") or an ISO time ("2026-03-01", "2026-03-01T12:00Z"); a bare date is its end."""
    text = str(value).strip()
    if text.isdigit():
        return Point(cycle=int(text))
    try:
        at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HistoryError(f"{text!r} is neither a cycle number nor an ISO time (like 2026-03-01T12:00Z)") from None
    if len(text) == 10:  # a date: its end
        at = at + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return Point(at=_aware(at).astimezone(dt.timezone.utc))


def _check(engine: "sa.Engine", point: Point, provider: str | None = None) -> None:
    if point.cycle is None:
        return
    from catalog_pipelines.storage.history import cycles

    known = sorted({c["cycle"] for c in cycles(engine, provider)})
    if point.cycle not in known and point.cycle != 0:
        where = f" of provider {provider!r}" if provider else ""
        span = f"cycles so far: {known[0]}..{known[-1]}" if known else "no cycle has run yet"
        raise HistoryError(f"no cycle {point.cycle}{where} ({span})")


def _canonical(ref: str) -> str:
    from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

    try:
        return parse_entity_ref(ref, default_kind="component").canonical()
    except EntityRefError as exc:
        raise HistoryError(f"{ref!r}: {exc}") from None


def history_of(engine: "sa.Engine", ref: str) -> list[dict[str, Any]]:
    """Every kept version of `ref`, oldest first: change, cycle, chunk, time, fields, owner ..."""
    from catalog_pipelines.storage.history import versions

    canonical = _canonical(ref)
    found = versions(engine, canonical)
    if not found:
        raise HistoryError(f"no history for {canonical}: no cycle has ingested it (or its versions were pruned)")
    return found


def _declared(body: dict[str, Any] | None) -> set[tuple[str, str]]:
    if not body:
        return set()
    from catalog_pipelines.model.refs import parse_entity_ref
    from catalog_pipelines.storage.history import declared_pairs

    try:
        ref = parse_entity_ref(f"{body['kind']}:{body['metadata'].get('namespace', 'default')}/{body['metadata']['name']}").canonical()
    except Exception:  # noqa: BLE001 - a stored body derived its relations once; a diff must not fail on one
        return set()
    return declared_pairs(ref, body)


def describe_as_of(engine: "sa.Engine", ref: str, as_of: str | int | Point) -> dict[str, Any]:
    """`ref` as the catalog held it at the end of a cycle or at a time: its body and version."""
    from catalog_pipelines.storage.history import REMOVED, STATE_CHANGES, body_of

    point = as_of if isinstance(as_of, Point) else parse_point(as_of)
    found = history_of(engine, ref)
    _check(engine, point, found[-1]["provider"])
    seen = [v for v in found if v["change"] in STATE_CHANGES and point.sees(v)]
    if not seen:
        raise HistoryError(f"{found[0]['ref']} did not exist as of {point} (first ingested in cycle {found[0]['cycle']}, {found[0]['at']})")
    version = seen[-1]
    if version["change"] == REMOVED:
        raise HistoryError(f"{version['ref']} did not exist as of {point} (removed in cycle {version['cycle']}, {version['at']})")
    body = body_of(engine, version["ref"], version["id"]) or {}
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    return {
        "ref": version["ref"],
        "as_of": str(point),
        "kind": body.get("kind"),
        "title": meta.get("title"),
        "description": meta.get("description"),
        "owner": version["owner"],
        "lifecycle": version["lifecycle"] or spec.get("lifecycle"),
        "system": version["system"],
        "relations": [{"type": t, "target": x} for t, x in sorted(_declared(body))],
        "provider": version["provider"],
        "version": {k: version[k] for k in ("id", "change", "cycle", "chunk", "at", "fields")},
        "body": body,
    }


# Positions in storage.history.DIFF_COLUMNS.
(ID, REF, KIND, PROVIDER, CYCLE, CHANGE, FIELDS, CONTENT_HASH, OWNER, LIFECYCLE, SYSTEM, RELATIONS_HASH, DELTA,
 PREVIOUS_OWNER, PREVIOUS_LIFECYCLE, PREVIOUS_SYSTEM, PREVIOUS_RELATIONS_HASH) = range(17)
_SUMMARY = (("owner", OWNER), ("lifecycle", LIFECYCLE), ("system", SYSTEM))


def _relations_change(added: list[tuple[str, str]], removed: list[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    return {"added": [{"type": t, "target": x} for t, x in added], "removed": [{"type": t, "target": x} for t, x in removed]}


def diff(engine: "sa.Engine", start: str | int | Point, end: str | int | Point, *, kind: str | None = None,
         provider: str | None = None) -> dict[str, Any]:
    """What changed between two points: entities added, removed and changed, the changed ones with
    the fields that changed and the before/after of owner, lifecycle, system and relations."""
    import orjson

    from catalog_pipelines.storage.history import ADDED, CHANGED, REMOVED, bodies, compose_deltas, diff_versions, states_at

    a = start if isinstance(start, Point) else parse_point(start)
    b = end if isinstance(end, Point) else parse_point(end)
    _check(engine, a, provider)
    _check(engine, b, provider)
    if (a.cycle is None) != (b.cycle is None):
        raise HistoryError("--from and --to must both be cycles or both be times")
    if (a.cycle is not None and a.cycle > b.cycle) or (a.at is not None and a.at > b.at):
        raise HistoryError(f"--from ({a}) is after --to ({b})")
    rows = diff_versions(engine, a.clause(), b.clause(), kind=kind, provider=provider)
    by_ref: dict[str, list] = {}
    for row in rows:  # oldest first
        by_ref.setdefault(row[REF], []).append(row)
    # A ref's state at `a` is what the first version after it replaced (`previous_*`); only
    # versions written before those columns were need a lookup.
    states = states_at(engine, a.clause(), [ref for ref, vs in by_ref.items() if vs[0][CHANGE] != ADDED and vs[0][PREVIOUS_RELATIONS_HASH] is None])
    added, removed, changed = [], [], []
    unknown: list[tuple[dict[str, Any], int, int]] = []  # relations no delta tells: from the bodies
    for ref in sorted(by_ref):
        between = by_ref[ref]
        first, after = between[0], between[-1]
        if first[CHANGE] == ADDED:  # it did not exist at `a` (never, or removed by then)
            before = None
        elif first[PREVIOUS_RELATIONS_HASH] is not None:
            before = first[PREVIOUS_OWNER:PREVIOUS_RELATIONS_HASH + 1]
        else:
            state = states.get(ref)
            before = None if state is None or state[CHANGE] == REMOVED else (state[OWNER], state[LIFECYCLE], state[SYSTEM], state[RELATIONS_HASH])
        now = after[CHANGE] != REMOVED
        head = {"ref": ref, "kind": after[KIND], "provider": after[PROVIDER]}
        if before is None:
            if now:
                added.append({**head, "cycle": after[CYCLE], "owner": after[OWNER]})
        elif not now:
            removed.append({**head, "cycle": after[CYCLE], "owner": before[0]})
        else:
            fields = sorted({f for v in between if v[FIELDS] for f in orjson.loads(v[FIELDS])})
            entry = {**head, "cycle": after[CYCLE], "fields": fields, "changes": {}}
            for k, (name, col) in enumerate(_SUMMARY):
                if before[k] != after[col]:
                    entry["changes"][name] = {"from": before[k], "to": after[col]}
            relations_differ = before[3] != after[RELATIONS_HASH]
            if relations_differ:
                if all(v[CHANGE] == CHANGED and v[DELTA] is not None for v in between):
                    entry["changes"]["relations"] = _relations_change(*compose_deltas([v[DELTA] for v in between]))
                else:  # a removal and re-add between the points, or versions written before deltas were:
                    unknown.append((entry, first[ID] - 1, after[ID]))  # (the state just before `first`)
            if fields or entry["changes"] or relations_differ:
                changed.append(entry)
    found = bodies(engine, [(e["ref"], v) for e, a_id, b_id in unknown for v in (a_id, b_id)])
    for entry, a_id, b_id in unknown:
        old, new = _declared(found[(entry["ref"], a_id)]), _declared(found[(entry["ref"], b_id)])
        entry["changes"]["relations"] = _relations_change(sorted(new - old), sorted(old - new))
    return {
        "from": str(a),
        "to": str(b),
        "filters": {"kind": kind, "provider": provider},
        "counts": {"added": len(added), "removed": len(removed), "changed": len(changed)},
        "added": added,
        "removed": removed,
        "changed": changed,
    }


# ------------------------------------------------------------------------ the change summary


def change_frames(engine: "sa.Engine") -> dict[str, "pd.DataFrame"]:
    """The per-cycle change summary as frames: `changes_by_cycle` (versions per provider, cycle,
    kind and change), `ownership_changes` (an entity's owner went from one ref to another) and
    `lost_owners` (an entity's owner disappeared: the owner entity was removed, or the entity
    stopped naming one)."""
    import pandas as pd

    from catalog_pipelines.storage.history import CHANGED, REMOVED, change_counts, owner_events

    counts = pd.DataFrame(change_counts(engine), columns=["provider", "cycle", "kind", "change", "count"])
    if len(counts):
        counts["kind"] = counts["kind"].fillna("")
        counts = (counts.pivot_table(index=["provider", "cycle", "kind"], columns="change", values="count", aggfunc="sum", fill_value=0)
                  .reset_index())
    for change in ("added", "changed", "removed", "rejected"):
        if change not in counts:
            counts[change] = 0
    counts = counts[["provider", "cycle", "kind", "added", "changed", "removed", "rejected"]].astype(
        {"cycle": int, "added": int, "changed": int, "removed": int, "rejected": int})
    counts.columns.name = None

    events = owner_events(engine)
    removals = {v["ref"]: v for v in events if v["change"] == REMOVED}
    ownership, lost = [], []
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for v in events:
        by_ref.setdefault(v["ref"], []).append(v)
    for ref, versions in by_ref.items():
        for prev, cur in zip(versions, versions[1:]):
            if cur["change"] != CHANGED or prev["change"] == REMOVED or prev["owner"] == cur["owner"]:
                continue
            row = {"ref": ref, "kind": cur["kind"], "provider": cur["provider"], "cycle": cur["cycle"], "at": cur["at"],
                   "from_owner": prev["owner"], "to_owner": cur["owner"]}
            ownership.append(row)
            if prev["owner"] and not cur["owner"]:
                lost.append({**row, "owner": prev["owner"], "reason": "no owner named any more"})
    # Entities whose owner entity was removed while they still named it.
    owned_by: dict[str, set[str]] = {}
    for v in events:
        if v["owner"]:
            owned_by.setdefault(v["owner"], set()).add(v["ref"])
    for owner, removal in removals.items():
        for ref in sorted(owned_by.get(owner, ())):
            versions = by_ref[ref]
            state = next((v for v in reversed(versions) if v["id"] < removal["id"]), None)
            if state is not None and state["change"] != REMOVED and state["owner"] == owner:
                lost.append({"ref": ref, "kind": state["kind"], "provider": state["provider"], "cycle": removal["cycle"],
                             "at": removal["at"], "from_owner": owner, "to_owner": None, "owner": owner,
                             "reason": "owner removed from the catalog"})
    columns = ["ref", "kind", "provider", "cycle", "at", "from_owner", "to_owner"]
    return {
        "changes_by_cycle": counts,
        "ownership_changes": pd.DataFrame(ownership, columns=columns),
        "lost_owners": pd.DataFrame(lost, columns=[*columns, "owner", "reason"]),
    }


def build_change_summary(engine: "sa.Engine") -> dict[str, Any]:
    """Compute and store the change summary (insight tables `HISTORY.*`); returns the frames and a
    markdown preview of the latest cycle of each provider."""
    from catalog_pipelines.model.insight_tables import HISTORY
    from catalog_pipelines.storage.insights import write_frames

    frames = change_frames(engine)
    write_frames(engine, {HISTORY.get(name): frame for name, frame in frames.items()})
    return {**frames, "preview": preview(frames)}


def preview(frames: dict[str, "pd.DataFrame"], rows: int = 10) -> str:
    """Markdown: the latest cycle's counts per provider and kind, ownership changes, lost owners."""
    counts = frames["changes_by_cycle"]
    if not len(counts):
        return "_no history yet_"
    latest = counts[counts["cycle"] == counts.groupby("provider")["cycle"].transform("max")]
    parts = ["**Latest cycle per provider**", "", latest.to_markdown(index=False)]
    for title, name, cols in (("Ownership changes", "ownership_changes", ["ref", "cycle", "from_owner", "to_owner"]),
                              ("Entities that lost their owner", "lost_owners", ["ref", "cycle", "owner", "reason"])):
        frame = frames[name]
        parts += ["", f"**{title}** ({len(frame)})", ""]
        parts.append(frame.sort_values("cycle", ascending=False)[cols].head(rows).to_markdown(index=False) if len(frame) else "_none_")
    return "\n".join(parts)


def changes_page_data(engine: "sa.Engine") -> dict[str, "pd.DataFrame"] | None:
    """The stored change summary for the dashboards' changes page (None before `catalog_changes` ran)."""
    from catalog_pipelines.model.insight_tables import HISTORY
    from catalog_pipelines.storage.insights import read_frame

    frames = {t.name: read_frame(engine, t) for t in HISTORY.tables()}
    return None if frames["changes_by_cycle"] is None else frames
