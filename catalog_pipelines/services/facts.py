"""Facts: the catalog's own facts, and the configured collectors' (collect, map, store, show).

Every door (Dagster asset, `catalog-pipelines facts collect|show`, benchmark) calls these.

- `collectors_file()` / `collector_entry(name)`: collectors.yaml through its pydantic model.
- `fact_catalog()`: every declared fact, `"<source>.<fact>" -> FactSpec` (the catalog's facts and
  each configured collector's), what scorecard validation accepts.
- `collect(engine, name)`: run one collector from its stored cursor, map each observation to an
  entity through the catalog's annotations (`AnnotationIndex`), store batch by batch (cursor in
  the same transaction), apply retention, record the run (mapped / unmapped / ambiguous /
  rejected, with the first of each listed).
- `entity_facts(engine, ref)`: an entity's latest facts with source and time (`facts show`).
- `load_latest_facts(engine)`: `{source: one row of facts per entity}` for scorecard evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_pipelines.model.config_files import ConfigIssue
from catalog_pipelines.model.insight_tables import FACTS

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

    from analytics.facts.sources import FactSpec
    from catalog_pipelines.collectors.base import Collector, Event, Observation
    from catalog_pipelines.services.collectors_config import CollectorEntry, CollectorsFile

# How many unmapped / ambiguous observations and rejections a run lists (the counts are complete).
LISTED = 200


class CollectorConfigError(ValueError):
    """collectors.yaml is invalid (every problem as `file:line: path: message`), or names no such collector."""

    def __init__(self, issues: list[ConfigIssue] | str):
        self.issues = [ConfigIssue("collectors.yaml", 1, issues)] if isinstance(issues, str) else issues
        super().__init__("\n".join(str(i) for i in self.issues))


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------------------------------
# configuration


def collectors_config_path() -> Path:
    """`CATALOG_PIPELINES_COLLECTORS`, else the project's `config/collectors.yaml`."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().collectors_config


def collectors_file(path: Path | None = None) -> "CollectorsFile":
    """collectors.yaml parsed through its model; a missing file is no collectors."""
    from catalog_pipelines.services.collectors_config import CollectorsFile
    from catalog_pipelines.model.config_files import validate_text

    path = Path(path) if path is not None else collectors_config_path()
    if not path.exists():
        return CollectorsFile()
    model, issues = validate_text(CollectorsFile, path.read_text(encoding="utf-8"), str(path))
    if issues or model is None:
        raise CollectorConfigError(issues)
    return model


def collector_entry(name: str, path: Path | None = None) -> "CollectorEntry":
    entries = {e.name: e for e in collectors_file(path).collectors}
    if name not in entries:
        raise CollectorConfigError(f"no collector named {name!r} in collectors.yaml; configured: {', '.join(sorted(entries)) or 'none'}")
    return entries[name]


def build_collector(entry: "CollectorEntry", base_dir: Path, *, environ: Mapping[str, str] | None = None, strict: bool = True) -> "Collector":
    """The collector instance of a collectors.yaml entry: its type's factory called with the entry's
    params (`${VAR}` substituted; `lookback_days` added when the entry sets it) and the config
    file's directory."""
    from catalog_pipelines.collectors.registry import COLLECTORS
    from catalog_pipelines.services.collectors_config import substitute_env

    if environ is None:
        from catalog_pipelines.settings import Settings, environ as process_environ

        # The data directory is always known, so report folders can live under it.
        environ = {"CATALOG_PIPELINES_DATA_DIR": str(Settings.from_env().data_dir), **process_environ()}
    params = substitute_env(dict(entry.params), environ, f"collector {entry.name!r}: params", strict=strict)
    if entry.lookback_days is not None:
        params.setdefault("lookback_days", entry.lookback_days)
    factory = COLLECTORS.load(entry.type)
    return factory(entry.name, params, base_dir)


def one_line(exc: BaseException) -> str:
    """An exception as one line (pydantic's multi-line errors without their help links)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.strip().startswith("For further information")]
    return "; ".join(lines) or type(exc).__name__


def fact_issues(entry: "CollectorEntry", collector: "Collector") -> list[tuple[str, str]]:
    """Where the entry's `facts:` disagrees with what its type declares: `(fact, problem)`."""
    from catalog_pipelines.model.config_files import did_you_mean

    declared = collector.facts()
    out = []
    for name, fact in (entry.facts or {}).items():
        decl = declared.get(name)
        if decl is None:
            out.append((name, f"collector {entry.name!r}: fact {name!r} is not one type {entry.type!r} declares{did_you_mean(name, declared)}"))
        elif decl.type != fact.type:
            out.append((name, f"collector {entry.name!r}: fact {name!r} is a {decl.type} in type {entry.type!r}, not a {fact.type}"))
    return out


def validate_collectors_file(path: Path, shown: str) -> list[ConfigIssue]:
    """The checks a schema cannot make (`config validate`): each type is registered and builds,
    and each declared fact is one its type emits, with the same type."""
    from catalog_pipelines.model.config_files import load_yaml, line

    model = collectors_file(path)
    doc = load_yaml(path.read_text(encoding="utf-8")) or {}
    items = doc.get("collectors") or []
    issues = []
    for i, entry in enumerate(model.collectors):
        where = line(items, i)
        try:
            collector = build_collector(entry, path.parent, strict=False)
        except Exception as exc:  # noqa: BLE001 - any factory failure is a config problem to report
            issues.append(ConfigIssue(shown, where, f"collector {entry.name!r} (type {entry.type!r}) cannot be built: {one_line(exc)}", f"collectors[{i}]"))
            continue
        facts_doc = items[i].get("facts") or {}
        issues += [ConfigIssue(shown, line(facts_doc, name, where), p, f"collectors[{i}].facts.{name}") for name, p in fact_issues(entry, collector)]
    return issues


def fact_catalog(path: Path | None = None) -> dict[str, "FactSpec"]:
    """Every declared fact, `"<source>.<fact>" -> FactSpec(type, description)`: the catalog's own
    facts and, per configured collector, its `facts:` (or, if it lists none, what its type
    declares). Scorecard checks may reference these only."""
    from analytics.delivery.metrics import ENTITY_FACTS
    from analytics.facts.sources import CATALOG_FACTS, FactSpec

    out = dict(CATALOG_FACTS)
    # the delivery metrics' per-entity figures (DELIVERY.entity_facts, docs/delivery.md)
    out.update({f"delivery.{name}": FactSpec(t, d) for name, (t, d) in ENTITY_FACTS.items()})
    for entry in collectors_file(path).collectors:
        if entry.facts is not None:
            for name, fact in entry.facts.items():
                out[f"{entry.name}.{name}"] = FactSpec(fact.type, fact.description)
            continue
        try:
            collector = build_collector(entry, (Path(path) if path else collectors_config_path()).parent, strict=False)
        except Exception:  # noqa: BLE001 - `config validate` reports it; its facts stay unknown
            continue
        for name, decl in collector.facts().items():
            out[f"{entry.name}.{name}"] = FactSpec(decl.type, decl.description)
    return out


# ---------------------------------------------------------------------------------------------
# entity mapping through annotations

_TREE = re.compile(r"/(?:-/)?(?:tree|blob|src)/[^/]+(?:/.*)?$")


def normalise_location(value: str) -> str:
    """A source location as compared: no `url:` prefix, scheme and host lower-case, no
    `/tree/<branch>/…` (`/blob/`, GitLab's `/-/tree/`), no `.git`, no trailing slash; paths compare
    case-insensitively (GitHub and GitLab paths do)."""
    text = value.strip()
    if text.lower().startswith("url:"):
        text = text[4:].strip()
    text = text.split("?", 1)[0].split("#", 1)[0]
    text = _TREE.sub("", text).rstrip("/")
    if text.lower().endswith(".git"):
        text = text[:-4]
    return text.rstrip("/").lower()


def _fold(value: str) -> str:
    return value.strip().lower()


def _exact(value: str) -> str:
    return value.strip()


# Annotations naming a scope that several entities declare on purpose: a Jira project (or a slice of
# it, `jira/component` / `jira/label`) is a team's, shared by its components, as Backstage's Jira
# plugin shows the project's issues on each. A record about such a scope belongs to every entity
# that declares exactly that scope ("shared" in a run's figures); for every other annotation a
# record naming several entities is ambiguous and stored for none.
SHARED_SCOPES = frozenset({"jira/project-key"})

# annotation -> how its values compare (docs/facts.md, "Entity mapping").
ANNOTATIONS: dict[str, Any] = {
    "github.com/project-slug": _fold,
    "gitlab.com/project-slug": _fold,
    "gitlab.com/project-id": _exact,
    # "KEY", or "KEY;jira/component=NAME;jira/label=NAME" (the parts set, in that order) for an
    # entity that narrows its project with jira/component and/or jira/label.
    "jira/project-key": _fold,
    "pagerduty.com/service-id": _exact,
    "pagerduty.com/integration-key": _exact,
    "sonarqube.org/project-key": _exact,
    "backstage.io/source-location": normalise_location,
}


@dataclass
class AnnotationIndex:
    """`(annotation, normalised value) -> refs` over the stored catalog, and the refs themselves.

    An entity with `jira/component` and/or `jira/label` claims that slice of its project only: it
    is indexed as `jira/project-key = KEY;jira/component=C;jira/label=L` (the parts it has), not
    under the bare key, so a whole-project record never lands on it."""

    by_value: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    refs: set[str] = field(default_factory=set)

    @classmethod
    def from_annotations(cls, rows: Iterable[tuple[str, Mapping[str, Any]]], refs: Iterable[str]) -> "AnnotationIndex":
        index = cls(refs=set(refs))
        by_value = index.by_value
        known = ANNOTATIONS.get
        for ref, annotations in rows:
            for annotation, value in annotations.items():
                normalise = known(annotation)
                if normalise is None or not isinstance(value, str) or not value.strip():
                    continue
                if annotation == "jira/project-key":
                    narrow = [f"{k}={annotations[k].strip()}" for k in ("jira/component", "jira/label") if isinstance(annotations.get(k), str) and annotations[k].strip()]
                    value = ";".join([value.strip(), *narrow])
                key = (annotation, normalise(value))
                found = by_value.get(key)
                if found is None:
                    by_value[key] = [ref]
                else:
                    found.append(ref)
        return index

    @classmethod
    def load(cls, engine: "sa.Engine") -> "AnnotationIndex":
        from catalog_pipelines.storage.facts import annotations_by_entity, entity_refs

        return cls.from_annotations(annotations_by_entity(engine), entity_refs(engine))

    @classmethod
    def lazy(cls, engine: "sa.Engine") -> "LazyAnnotationIndex":
        """Built on the first observation to map: a run with nothing new reads no catalog."""
        return LazyAnnotationIndex(engine)

    def candidates(self, annotation: str, value: str) -> list[str]:
        from catalog_pipelines.collectors.base import ENTITY_REF
        from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

        if annotation == ENTITY_REF:
            try:
                ref = parse_entity_ref(value.strip(), default_kind="component", default_namespace="default").canonical()
            except EntityRefError:
                return []
            return [ref] if ref in self.refs else []
        normalise = ANNOTATIONS.get(annotation)
        if normalise is None:
            return []
        return sorted(set(self.by_value.get((annotation, normalise(value)), ())))

    def resolve(self, observation: "Observation") -> tuple[str | None, list[str]]:
        """`(ref, [])` for the first target that names exactly one entity; else `(None, the
        entities the targets named)`: none is unmapped, several ambiguous. Never a guess."""
        seen: list[str] = []
        for target in observation.targets:
            found = self.candidates(target.annotation, target.value)
            if len(found) == 1:
                return found[0], []
            seen += [r for r in found if r not in seen]
        return None, seen

    def resolve_all(self, observation: "Observation") -> tuple[list[str], list[str]]:
        """`([refs], [])`: the entities the record's facts belong to; `([], candidates)` when none
        (unmapped) or several that do not share it (ambiguous). A target on a *shared scope*
        (`SHARED_SCOPES`: a Jira project, which a team's entities declare together) belongs to
        every entity that declares exactly that scope; any other target must name one entity."""
        seen: list[str] = []
        for target in observation.targets:
            found = self.candidates(target.annotation, target.value)
            if len(found) == 1 or (found and target.annotation in SHARED_SCOPES):
                return found, []
            seen += [r for r in found if r not in seen]
        return [], seen


class LazyAnnotationIndex:
    """An `AnnotationIndex` loaded from the catalog when first asked (shared by a run's collectors)."""

    def __init__(self, engine: "sa.Engine"):
        self.engine, self._index = engine, None

    @property
    def index(self) -> AnnotationIndex:
        if self._index is None:
            self._index = AnnotationIndex.load(self.engine)
        return self._index

    def resolve(self, observation: "Observation") -> tuple[str | None, list[str]]:
        return self.index.resolve(observation)

    def resolve_all(self, observation: "Observation") -> tuple[list[str], list[str]]:
        return self.index.resolve_all(observation)

    def candidates(self, annotation: str, value: str) -> list[str]:
        return self.index.candidates(annotation, value)


def _describe(observation: "Observation | Event") -> str:
    targets = ", ".join(f"{t.annotation}={t.value}" for t in observation.targets) or "no target"
    return f"{observation.origin or '?'} ({targets})"


# ---------------------------------------------------------------------------------------------
# collecting


def collect(
    engine: "sa.Engine",
    collector_name: str,
    *,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    index: "AnnotationIndex | LazyAnnotationIndex | None" = None,
) -> dict[str, Any]:
    """Run one configured collector: collect from its cursor, map, store, apply retention, record.

    Returns the run's figures: observations, mapped, unmapped, ambiguous, rejected, stored,
    unchanged, batches, pruned, the cursor, and the first `unmapped_records`,
    `ambiguous_records` ({record, entities}) and `rejections`. A
    collector that raises leaves every batch stored before it (and its cursor) in place; the
    failed run is recorded and the error re-raised.
    """
    from catalog_pipelines.storage import facts as store

    path = Path(config_path) if config_path is not None else collectors_config_path()
    entry = collector_entry(collector_name, path)
    collector = build_collector(entry, path.parent, environ=environ)
    now = now or utc_now()
    started = utc_now()
    cursor = store.read_cursor(engine, entry.name)
    index = index or AnnotationIndex.lazy(engine)
    state: dict | None = None  # the collector's latest facts, read when the first facts arrive
    events = EventMapper(entry.name)
    declared = collector.facts()
    emitted = set(entry.facts) if entry.facts is not None else set(declared)
    figures = {k: 0 for k in ("observations", "mapped", "shared", "unmapped", "ambiguous", "rejected", "stored", "unchanged", "batches")}
    unmapped: list[str] = []
    ambiguous: list[dict[str, Any]] = []
    rejections: list[str] = []
    undeclared: set[str] = set()
    error: str | None = None
    try:
        for batch in collector.collect(cursor, now):
            figures["batches"] += 1
            rows = []
            for observation in batch.observations:
                figures["observations"] += 1
                refs, candidates = index.resolve_all(observation)
                if not refs:
                    if candidates:
                        figures["ambiguous"] += 1
                        if len(ambiguous) < LISTED:
                            ambiguous.append({"record": _describe(observation), "entities": candidates})
                    else:
                        figures["unmapped"] += 1
                        if len(unmapped) < LISTED:
                            unmapped.append(_describe(observation))
                    continue
                figures["mapped"] += 1
                if len(refs) > 1:
                    figures["shared"] += 1
                facts = {k: v for k, v in observation.facts.items() if k in emitted}
                undeclared |= {k for k in observation.facts if k not in declared}
                if facts:
                    rows += [store.MappedObservation(ref, observation.observed_at, observation.origin, facts) for ref in refs]
            event_rows = events.map(batch.events, index) if batch.events else None
            figures["rejected"] += len(batch.rejections)
            rejections += [str(r) for r in batch.rejections[: max(0, LISTED - len(rejections))]]
            if rows and state is None:
                state = store.latest_state(engine, entry.name)
            written = store.store_batch(engine, entry.name, rows, batch.cursor, now, state=state if state is not None else {},
                                        events=event_rows)
            events.figures["events_stored"] += written.get("events", 0)
            figures["stored"] += written["stored"]
            figures["unchanged"] += written["unchanged"]
            if batch.cursor is not None:
                cursor = dict(batch.cursor)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        pruned = store.apply_retention(engine, entry.name, max_items=entry.retention.max_items, ttl=entry.retention.ttl_delta(), now=now) if error is None else 0
        if error is None and events.figures["events"]:
            from catalog_pipelines.storage.delivery_events import apply_retention as prune_events

            events.figures["events_pruned"] = sum(prune_events(engine, collectors_file(path).delivery_events.retention(), now.date()).values())
        if undeclared:
            rejections.append(f"collector {entry.name!r}: facts its type does not declare were ignored: {', '.join(sorted(undeclared))}")
        details = {"unmapped": unmapped, "ambiguous": ambiguous, "rejections": rejections, "cursor": cursor, "error": error}
        if events.figures["events"]:
            details["events"] = {**events.figures, "unmapped": events.unmapped, "ambiguous": events.ambiguous}
        run_id = store.record_run(engine, entry.name, started_at=started, finished_at=utc_now(), figures=figures, details=details)
    return {"collector": entry.name, "type": entry.type, "run_id": run_id, **figures, **events.figures, "pruned": pruned, "cursor": cursor,
            "unmapped_records": unmapped, "ambiguous_records": ambiguous, "rejections": rejections}


class EventMapper:
    """Maps a run's delivery events to entities exactly as observations are mapped (the same
    annotation index, `resolve`: the first target naming exactly one entity), pseudonymises the
    people in them (`analytics.pseudonymise`, keyed by the settings' pseudonym key, one HMAC per
    person per run) and turns them into the rows `storage.delivery_events` upserts. An event that
    maps to no entity, or to several, is counted and listed; it is stored with no entity only when
    the collector says so (`keep_unmapped`: incidents), otherwise dropped."""

    def __init__(self, source: str, key: bytes | None = None) -> None:
        self.source = source
        self._key = key
        self._tokens: dict[str, str] = {}
        self.figures = {k: 0 for k in ("events", "events_mapped", "events_unmapped", "events_ambiguous", "events_kept_unmapped",
                                       "events_stored", "events_pruned")}
        self.unmapped: list[str] = []
        self.ambiguous: list[dict[str, Any]] = []

    def _person(self, login: Any) -> str | None:
        if not isinstance(login, str) or not login.strip():
            return None
        token = self._tokens.get(login)
        if token is None:
            from analytics.pseudonymise import pseudonymise

            if self._key is None:
                from catalog_pipelines.settings import Settings

                self._key = Settings.from_env().pseudonym_key
            token = self._tokens[login] = pseudonymise(login, self._key)
        return token

    def map(self, events: Iterable["Event"], index: Any) -> dict[str, list[dict[str, Any]]]:
        from catalog_pipelines.collectors.base import PERSON_ATTRIBUTES
        from catalog_pipelines.model.delivery_events import COLUMNS

        out: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            self.figures["events"] += 1
            ref, candidates = index.resolve(event)
            if ref is None:
                if candidates:
                    self.figures["events_ambiguous"] += 1
                    if len(self.ambiguous) < LISTED:
                        self.ambiguous.append({"record": _describe(event), "entities": candidates})
                else:
                    self.figures["events_unmapped"] += 1
                    if len(self.unmapped) < LISTED:
                        self.unmapped.append(_describe(event))
                if not event.keep_unmapped:
                    continue
                self.figures["events_kept_unmapped"] += 1
            else:
                self.figures["events_mapped"] += 1
            attributes = dict(event.attributes)
            for person in PERSON_ATTRIBUTES:
                if person in attributes:
                    attributes[person] = self._person(attributes[person])
            row = {c: attributes.get(c) for c in COLUMNS[event.kind]}
            row.update(entity_ref=ref, source=self.source, event_key=event.key)
            out.setdefault(event.kind, []).append(row)
        return out


def wanted_collectors(names: Iterable[str] | None = None, config_path: Path | None = None) -> list[str]:
    """The named collectors (default: every configured one); an unknown name or an invalid
    collectors.yaml is a CollectorConfigError."""
    configured = [e.name for e in collectors_file(config_path).collectors]
    wanted = list(names or ()) or configured
    unknown = [n for n in wanted if n not in configured]
    if unknown:
        raise CollectorConfigError(f"no collector named {', '.join(map(repr, unknown))} in collectors.yaml; configured: {', '.join(configured) or 'none'}")
    return wanted


def collect_all(engine: "sa.Engine", names: Iterable[str] | None = None, *, config_path: Path | None = None) -> list[dict[str, Any]]:
    """Run the named collectors (default: every configured one) with one annotation index. An
    unknown name is a CollectorConfigError before anything runs; a collector that fails is one
    `{"collector", "error"}` entry and the others still run."""
    wanted = wanted_collectors(names, config_path)
    index = AnnotationIndex.lazy(engine)
    runs: list[dict[str, Any]] = []
    for name in wanted:
        try:
            runs.append(collect(engine, name, config_path=config_path, index=index))
        except Exception as exc:  # noqa: BLE001 - one failing collector must not stop the others
            runs.append({"collector": name, "error": f"{type(exc).__name__}: {exc}"})
    return runs


# ---------------------------------------------------------------------------------------------
# reading


def entity_facts(engine: "sa.Engine", ref: str) -> dict[str, Any]:
    """An entity's latest facts, per source: `{ref, sources: {source: {observed_at, collected_at,
    origin, facts}}}`; the catalog's own facts under `catalog`."""
    from catalog_pipelines.model.refs import parse_entity_ref
    from catalog_pipelines.storage.facts import latest_facts

    canonical = parse_entity_ref(ref, default_kind="component", default_namespace="default").canonical()
    sources: dict[str, Any] = {}
    catalog = _catalog_latest(engine)
    if catalog is not None:
        row = catalog[catalog["entity_ref"] == canonical]
        if len(row):
            record = row.iloc[-1].to_dict()
            collected = record.pop("collected_at", None)
            record.pop("entity_ref", None)
            sources["catalog"] = {"observed_at": collected, "collected_at": collected, "origin": "catalog", "facts": {k: _plain(v) for k, v in record.items()}}
    for row in latest_facts(engine, entity_ref=canonical):
        sources[row["collector"]] = {k: row[k] for k in ("observed_at", "collected_at", "origin", "facts")}
    return {"ref": canonical, "sources": sources}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def collected_latest_frame(engine: "sa.Engine", collectors: Iterable[str] | None = None) -> "pd.DataFrame":
    """Long frame of the latest collected facts: collector, entity_ref, observed_at, fact, value
    (what the team pages read; facts of every collector, compared by fact name)."""
    import pandas as pd

    from catalog_pipelines.storage.facts import latest_facts

    rows = [
        (r["collector"], r["entity_ref"], r["observed_at"], name, value)
        for r in latest_facts(engine, collectors=list(collectors) if collectors is not None else None)
        for name, value in r["facts"].items()
    ]
    return pd.DataFrame.from_records(rows, columns=["collector", "entity_ref", "observed_at", "fact", "value"])


def store_collected_frame(engine: "sa.Engine", frame: "pd.DataFrame", observed_at: datetime) -> int:
    """The long frame `collected_latest_frame` returns (collector, entity_ref, fact, value) stored
    back into the fact store, as collectors would have: for sample data (dashboards benchmark and
    tests). Returns the observations stored."""
    from catalog_pipelines.storage.facts import MappedObservation, store_batch

    stored = 0
    for collector, rows in frame.groupby("collector"):
        by_entity: dict[str, dict[str, Any]] = {}
        for ref, fact, value in zip(rows["entity_ref"], rows["fact"], rows["value"]):
            by_entity.setdefault(ref, {})[fact] = value.item() if hasattr(value, "item") else value
        observations = [MappedObservation(ref, observed_at, "sample", facts) for ref, facts in by_entity.items()]
        stored += store_batch(engine, str(collector), observations, None, observed_at)["stored"]
    return stored


def load_latest_facts(engine: "sa.Engine") -> dict[str, "pd.DataFrame"]:
    """`{source: one row per entity, a column per fact}`: the catalog's facts and every collector's."""
    import pandas as pd

    from catalog_pipelines.storage.facts import latest_facts

    out: dict[str, pd.DataFrame] = {}
    catalog = _catalog_latest(engine)
    if catalog is not None:
        out["catalog"] = catalog
    by_source: dict[str, list[dict[str, Any]]] = {}
    for row in latest_facts(engine):
        by_source.setdefault(row["collector"], []).append({"entity_ref": row["entity_ref"], "collected_at": row["observed_at"], **row["facts"]})
    for source, records in by_source.items():
        out[source] = pd.DataFrame.from_records(records)
    delivery = _delivery_latest(engine)
    if delivery is not None:
        out["delivery"] = delivery
    return out


def _delivery_latest(engine: "sa.Engine") -> "pd.DataFrame | None":
    """The delivery metrics' per-entity figures as the `delivery` fact source (NaN: not reported)."""
    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.storage.insights import read_frame

    frame = read_frame(engine, DELIVERY.entity_facts)
    if frame is None or not len(frame):
        return None
    return frame.astype(object).where(frame.notna(), None)


# ---------------------------------------------------------------------------------------------
# the catalog's own facts (an insight table pair, as before collectors)


def _catalog_latest(engine: "sa.Engine") -> "pd.DataFrame | None":
    from analytics.facts.collect import decode_from_storage
    from catalog_pipelines.storage.insights import read_frame

    frame = read_frame(engine, FACTS.latest("catalog"))
    return decode_from_storage(frame, "catalog") if frame is not None else None


def store_facts(engine: "sa.Engine", source: str, facts: "pd.DataFrame", collected_at: datetime) -> dict[str, Any]:
    """Append one collection of the catalog's facts to its history, apply retention, refresh latest."""
    import pandas as pd

    from analytics.facts.collect import FACT_SOURCES, apply_retention, encode_for_storage, latest_facts
    from catalog_pipelines.storage.insights import read_frame, write_frames

    spec = FACT_SOURCES[source]
    new = encode_for_storage(facts, source, collected_at)
    history = read_frame(engine, FACTS.history(source))
    combined = new if history is None or history.empty else pd.concat([history, new], ignore_index=True)
    kept = apply_retention(combined, spec.retention, collected_at)
    write_frames(engine, {FACTS.history(source): kept, FACTS.latest(source): latest_facts(kept)})
    return {"entities": len(facts), "history_rows": len(kept), "pruned_rows": len(combined) - len(kept), "retention": spec.retention.describe()}


def collect_catalog_facts(engine: "sa.Engine") -> dict[str, Any]:
    """Catalog facts per owned entity from the stored catalog, stored; figures for the caller."""
    from analytics.facts.collect import catalog_facts as compute
    from catalog_pipelines.storage.frames import entities_frame

    entities = entities_frame(engine)
    facts = compute(entities, known_refs=entities["ref"])
    stored = store_facts(engine, "catalog", facts, utc_now())
    shares = {c: round(float(facts[c].mean()), 4) for c in ("has_owner", "owner_is_group", "has_description", "has_techdocs") if len(facts)}
    return {"stored": stored, "rows": len(facts), "shares": shares}


# ---------------------------------------------------------------------------------------------
# demo


def reports_dir() -> Path:
    """Where the demo writes report files: `<data dir>/reports` (collectors.yaml reads it)."""
    from catalog_pipelines.settings import Settings

    return Settings.from_env().data_dir / "reports"


def write_synthetic_sources(engine: "sa.Engine", *, seed: int, as_of: Any = None) -> dict[str, Any]:
    """Demo only: real-format report files for the catalog's repositories, written under
    `reports_dir()` in the report-folder layout (`<host>/<owner>/<repo>/...`).

    The content comes from `analytics.facts.synthetic_reports.synthetic_reports(repositories,
    seed=, day=, teams=) -> {relative path: bytes}` for the catalog's components, each as
    `(ref, source location or GitHub slug, owning team)`; vendor-shaped API pages
    (`analytics.facts.synthetic_apis`) are served by their loopback replay server.
    """
    from datetime import date

    from analytics.facts.synthetic_reports import synthetic_reports
    from catalog_pipelines.storage.frames import entities_frame

    as_of = as_of or date.today()
    entities = entities_frame(engine, kinds=["component"])
    repositories = []
    for ref, owner, body in zip(entities["ref"], entities["owner"], entities["entity"]):
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        location = annotations.get("backstage.io/source-location") or annotations.get("github.com/project-slug")
        repositories.append((ref, location, owner or ref))
    files = synthetic_reports(repositories, seed=seed, day=as_of)
    root = reports_dir()
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # a collector never reads a half-written report
    return {"as_of": as_of.isoformat(), "files": len(files), "directory": str(root)}


# The vendors whose API collectors the demo feeds from loopback (analytics.facts.synthetic_apis).
DEMO_VENDORS = ("github", "gitlab", "jira", "pagerduty", "sonarqube")
# The demo's delivery history (analytics.delivery.synthetic): days before now, and the activity
# scale (every pull request costs the GitHub collector three requests: the demo stays quick).
DEMO_DELIVERY_DAYS = 91
DEMO_DELIVERY_ACTIVITY = 0.05


def demo_delivery_entities(entities: list[dict[str, Any]], owners: Mapping[str, Any]) -> "pd.DataFrame":
    """The components with a GitHub or GitLab repository as `synthetic_delivery_events` takes them:
    ref, name, owner, source, repository, service_id (from their annotations)."""
    import pandas as pd

    rows = []
    for entity in entities:
        annotations = entity["annotations"]
        github, gitlab = annotations.get("github.com/project-slug"), annotations.get("gitlab.com/project-slug")
        if not (github or gitlab):
            continue
        rows.append({"ref": entity["ref"], "kind": "component", "name": entity["ref"].rsplit("/", 1)[-1],
                     "owner": owners.get(entity["ref"]), "source": "github" if github else "gitlab",
                     "repository": github or gitlab, "service_id": annotations.get("pagerduty.com/service-id")})
    return pd.DataFrame(rows, columns=["ref", "kind", "name", "owner", "source", "repository", "service_id"])


def demo_vendor_pages(engine: "sa.Engine", *, as_of: Any = None, seed: int = 7,
                      now: datetime | None = None) -> tuple[dict, list[dict[str, Any]]]:
    """Demo only: vendor-shaped API responses (GitHub, GitLab, Jira, PagerDuty, SonarQube) for the
    catalog's annotated components, and the entities they were made for (`{"ref", "annotations"}`).
    The GitHub, GitLab and PagerDuty pages carry a delivery history up to `now`
    (`analytics.delivery.synthetic.synthetic_delivery_events` for the catalog's organisation)."""
    from datetime import date

    from analytics.delivery.synthetic import synthetic_delivery_events
    from analytics.facts.synthetic_apis import vendor_pages
    from catalog_pipelines.storage.frames import entities_frame

    frame = entities_frame(engine, kinds=["component"])
    entities = [{"ref": ref, "annotations": (body.get("metadata") or {}).get("annotations") or {}} for ref, body in zip(frame["ref"], frame["entity"])]
    now = (now or utc_now()).replace(second=0, microsecond=0)
    delivery = synthetic_delivery_events(demo_delivery_entities(entities, dict(zip(frame["ref"], frame["owner"]))),
                                         days=DEMO_DELIVERY_DAYS, seed=seed, end=now, activity=DEMO_DELIVERY_ACTIVITY)
    return vendor_pages(entities, as_of=as_of or date.today(), seed=seed, delivery=delivery), entities


def write_demo_collectors_config(entities: list[dict[str, Any]], base_urls: Mapping[str, str], *, source: Path | None = None,
                                 pages: Mapping[tuple[str, str, str], Any] | None = None) -> Path:
    """Demo only: collectors.yaml with the API collectors pointed at the demo's loopback vendor
    pages (`base_urls`: vendor -> base URL) and reading exactly the demo's repositories, projects
    and services (with `pages`: also the PagerDuty services no entity carries, and the delivery
    events), a GitLab entry added when the demo has GitLab projects and the file none; every other
    entry (the report-file collectors) as configured. Written to `<data>/demo/collectors.yaml`;
    returns its path."""
    import yaml

    from analytics.facts.synthetic_apis import collector_params
    from catalog_pipelines.settings import Settings

    source = Path(source) if source is not None else collectors_config_path()
    document = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    services = ()
    if pages is not None:
        listing = pages.get(("pagerduty", "/services", "include[]=integrations")) or {}
        services = [s["id"] for s in listing.get("services") or []]
    params = collector_params(entities, base_urls, services=services,
                              events_lookback_days=DEMO_DELIVERY_DAYS + 15 if pages is not None else None)
    document.setdefault("collectors", [])
    for entry in document["collectors"]:
        if entry.get("type") in params:
            entry["params"] = params[entry["type"]]
    if "gitlab" in params and not any(e.get("type") == "gitlab" for e in document["collectors"]):
        document["collectors"].append({"name": "gitlab", "type": "gitlab", "description": "GitLab pipelines, merge requests and deployments.",
                                       "params": params["gitlab"], "cadence": "20 * * * *", "retention": {"max_items": 14, "ttl": "14d"}})
    report_root = str(reports_dir())
    for entry in document.get("collectors") or []:
        if entry.get("type") == "report_files":
            entry["params"] = {**entry.get("params", {}), "path": report_root}
    target = Settings.from_env().data_dir / "demo" / "collectors.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("# Written by the demo (services.facts.write_demo_collectors_config): the API collectors read\n"
                      "# the demo's loopback vendor pages. Production uses config/collectors.yaml.\n"
                      + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target
