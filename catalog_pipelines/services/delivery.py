"""Delivery insights (issue 22): the events side and the metrics side, Dagster-free.

Events side (this group): the API collectors write delivery events while they collect facts
(`services.facts.collect`: mapping, pseudonymisation, upsert with the cursor, retention); here:
- `collect_delivery_events(engine, names=None)`: run the collectors that collect events;
- `close_day(engine, day)`: one daily partition: what the day holds per kind (events, entities,
  unmapped, rows failing the checks, events per entity), recorded in `delivery_event_days`;
- `read_delivery_events(engine, since_day, until_day, kinds=None)`: the contract frames
  (`model/delivery_events.py`) for a day range (the metrics read narrower selections:
  `_events_from`);
- `event_day_range(engine)`: the first and last day with events (the demo's backfill range).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from analytics.delivery.config import DeliveryConfig
    import sqlalchemy as sa


# ---------------------------------------------------------------------------------------------
# events side: collect, close a day, read


def event_collectors(config_path: Path | None = None) -> list[str]:
    """The configured collectors whose params ask for delivery events."""
    from catalog_pipelines.services.facts import collectors_file

    return [e.name for e in collectors_file(config_path).collectors if e.params.get("events")]


def collect_delivery_events(engine: "sa.Engine", names: Iterable[str] | None = None, *,
                            config_path: Path | None = None) -> list[dict[str, Any]]:
    """Run the named collectors (default: every one collecting events) from their cursors: their
    facts and events are stored as `services.facts.collect_all` stores them."""
    from catalog_pipelines.services.facts import collect_all

    wanted = list(names) if names is not None else event_collectors(config_path)
    return collect_all(engine, wanted, config_path=config_path) if wanted else []


def close_day(engine: "sa.Engine", day: date, *, now: datetime | None = None) -> dict[str, Any]:
    """Validate and record one day of events: per kind the events, entities, unmapped events (no
    entity: incidents of unknown services), `problems` (times contradicting each other) and the
    events per entity. Re-closing a day (a backfill, late events) replaces its record."""
    from catalog_pipelines.model.delivery_events import KINDS
    from catalog_pipelines.storage.delivery_events import day_summary, record_day

    summaries = [day_summary(engine, kind, day) for kind in KINDS]
    record_day(engine, summaries, now or datetime.now(timezone.utc))
    return {
        "day": day.isoformat(),
        "events": {x["kind"]: x["events"] for x in summaries},
        "entities": {x["kind"]: x["entities"] for x in summaries},
        "unmapped": {x["kind"]: x["unmapped"] for x in summaries},
        "problems": {x["kind"]: x["problems"] for x in summaries},
        "per_entity": {x["kind"]: x["per_entity"] for x in summaries},
    }


def close_days(engine: "sa.Engine", days: Iterable[date]) -> list[dict[str, Any]]:
    """`close_day` for each day (a backfill's partition range)."""
    now = datetime.now(timezone.utc)
    return [close_day(engine, day, now=now) for day in days]


def read_delivery_events(engine: "sa.Engine", since_day: date | None = None, until_day: date | None = None,
                         kinds: Iterable[str] | None = None) -> dict[str, "pd.DataFrame"]:
    """`{kind: frame}` of the stored events whose day lies in `[since_day, until_day]`."""
    from catalog_pipelines.model.delivery_events import KINDS
    from catalog_pipelines.storage.delivery_events import read_events

    return {kind: read_events(engine, kind, since_day, until_day) for kind in (kinds or KINDS)}


def event_day_range(engine: "sa.Engine") -> tuple[date | None, date | None]:
    from catalog_pipelines.storage.delivery_events import day_range

    return day_range(engine)


def closed_event_days(engine: "sa.Engine", since_day: date | None = None, until_day: date | None = None) -> "pd.DataFrame":
    """The record of each closed day and kind (day, kind, events, entities, unmapped, problems, closed_at)."""
    from catalog_pipelines.storage.delivery_events import closed_days

    return closed_days(engine, since_day, until_day)


# ---------------------------------------------------------------------------------------------
# metrics side (analytics/delivery): the four keys, PR flow and review load, published as DELIVERY.*


def delivery_config(path: Path | None = None) -> "DeliveryConfig":
    """config/delivery.yaml (settings.delivery_config), validated; defaults when absent."""
    from analytics.delivery.config import load_config
    from catalog_pipelines.settings import Settings

    return load_config(path if path is not None else Settings.from_env().delivery_config)


# What a new day needs of the last run is kept between runs (docs/delivery.md, "Incremental"):
# `DELIVERY.facts_state` (one row: the as-of day and first day the facts cover, when they were
# computed, fingerprints of the config and of the catalog's scopes) and `DELIVERY.facts_kept`, one
# row per part, each a Parquet document (base64): the day-grain facts (analytics.delivery.metrics.
# daily_facts; pull requests and reviews of the rolling window only), the published source-control
# table and the digests of the tables published by changed keys (`_BY_KEY`). Parquet, not rows:
# a new day reads ~430k fact rows and ~290k other rows back, ~1.5 s of CPU through SQL rows and
# ~0.1 s as columns; and it writes them whole, in the transaction that publishes the tables.
_FACT_CATEGORICAL = ("entity_ref", "repository", "reviewer", "start", "service_id")


def _kept_frame(parts: dict[str, "pd.DataFrame"]) -> "pd.DataFrame":
    """The kept parts as `DELIVERY.facts_kept` rows: `name`, `data` (the part as Parquet, in
    base64: a text column reads and writes alike on every database and through pandas)."""
    import base64
    import io

    import pandas as pd

    rows = []
    for name, frame in parts.items():
        frame = frame.reset_index(drop=True)
        for column in frame.columns:  # (a merged categorical keeps every category it ever had: reading
            if isinstance(frame[column].dtype, pd.CategoricalDtype):  # back 100k unused ones costs)
                frame[column] = frame[column].cat.remove_unused_categories()
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, compression="zstd")
        rows.append({"name": name, "data": base64.b64encode(buffer.getvalue()).decode("ascii")})
    return pd.DataFrame(rows, columns=["name", "data"])


# The facts a new day changes only in its last weeks are kept as a document per ISO week
# ("facts_deploy_days@2025-05-26", the week's Monday): a new day writes the weeks from its first
# changed day's on and drops the weeks no window reads any more, not the whole span again.
_WEEKLY_FACTS = ("deploy_days", "changes", "prs", "reviews")


def _fact_documents(facts: dict[str, "pd.DataFrame"], kept: dict[str, "pd.DataFrame"], *, first_day: date, window_start: date,
                    since: date | None) -> tuple[dict[str, "pd.DataFrame"], Any]:
    """The kept documents of the day-grain facts a run writes, and the condition deleting the
    documents they replace. Pull requests and reviews: the rolling window's only. `since` (an
    incremental run's first recomputed day): the weeks from its week on, and the weeks before the
    oldest one still read are deleted; None (from scratch), or a part kept whole by an older
    version: every week written, every document of the part replaced."""
    from datetime import timedelta

    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    def monday(day: date) -> date:
        return day - timedelta(days=day.weekday())

    name = sa.column("name", sa.String)
    parts: dict[str, pd.DataFrame] = {}
    conditions = []
    for fact, frame in facts.items():
        oldest = window_start if fact in ("prs", "reviews") else first_day
        if fact in ("prs", "reviews"):
            frame = frame[(frame["day"] >= pd.Timestamp(window_start)).to_numpy()]
        if fact not in _WEEKLY_FACTS:
            parts[f"facts_{fact}"] = frame
            conditions.append(name == f"facts_{fact}")
            continue
        previous = kept.get(f"facts_{fact}")
        whole = since is None or previous is None or any("@" not in n for n in previous.attrs.get("documents", [""]))
        days = frame["day"].to_numpy().astype("datetime64[D]")
        weeks = days - ((days.astype(np.int64) + 3) % 7).astype("timedelta64[D]")  # (1970-01-01 was a Thursday)
        first_week = None if whole else np.datetime64(monday(since), "D")
        # (and the oldest week still read: its days before the oldest one dropped, so what is
        # kept is what the windows read, no more)
        oldest_week = np.datetime64(monday(oldest), "D")
        for week in np.unique(weeks):
            if first_week is None or week >= first_week or week == oldest_week:
                parts[f"facts_{fact}@{week}"] = frame[weeks == week]
        if not len(frame):  # (no rows at all: an empty document keeps the part, and its columns, known)
            parts[f"facts_{fact}@{oldest_week}"] = frame
        every = name.between(f"facts_{fact}@0", f"facts_{fact}@9")  # (the weeks' names: ISO dates)
        if whole:
            conditions.extend([name == f"facts_{fact}", every])
        else:
            conditions.append(sa.and_(every, sa.or_(name >= f"facts_{fact}@{first_week}", name <= f"facts_{fact}@{oldest_week}")))
    return parts, sa.or_(*conditions)


def _kept_names(parts: dict[str, Any]) -> Any:
    """The condition deleting the kept documents of these parts (they are written again)."""
    import sqlalchemy as sa

    return sa.column("name", sa.String).in_(list(parts))


def _read_kept(engine: "sa.Engine", names: list[str] | None = None, *, exclude: list[str] | None = None) -> dict[str, "pd.DataFrame"]:
    """The kept parts by name ({} when never written or unreadable: compute from scratch); only
    `names` when given, none of `exclude`."""
    import base64
    import binascii
    import io

    import pandas as pd
    import sqlalchemy as sa

    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.storage.insights import read_rows

    where = _kept_names(names) if names is not None else sa.not_(_kept_names(exclude)) if exclude else None
    rows = read_rows(engine, DELIVERY.facts_kept, ("name", "data"), where=where)  # (a few large texts: no frame around them)
    if rows is None:
        return {}
    import pyarrow as pa
    import pyarrow.parquet as pq

    documents: dict[str, list[tuple[str, Any]]] = {}
    out = {}
    try:
        for name, data in rows:  # a part kept as several documents ("facts_changes@2025-05-26"): one frame
            # (`ParquetFile.read`: `read_table`'s dataset layer costs ~3x more on 50 small documents)
            documents.setdefault(str(name).split("@")[0], []).append((str(name), pq.ParquetFile(io.BytesIO(base64.b64decode(str(data)))).read()))
        for part_name, docs in documents.items():
            table = docs[0][1] if len(docs) == 1 else pa.concat_tables([t for _, t in docs], promote_options="permissive")
            part = table.to_pandas()  # (categoricals' dictionaries united by Arrow)
            for column in part.columns:  # texts as the fresh frames hold them: objects, not Arrow strings
                if isinstance(part[column].dtype, pd.StringDtype):
                    part[column] = part[column].astype(object).where(part[column].notna(), None)
            part.attrs["documents"] = sorted(name for name, _ in docs)
            out[part_name] = part
    except (OSError, ValueError, binascii.Error, pa.ArrowException):  # (a damaged document: the next run starts from scratch)
        return {}
    return out


def _config_fingerprint(config: "DeliveryConfig") -> str:
    import hashlib

    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:32]


def _facts_state(engine: "sa.Engine") -> dict[str, Any] | None:
    """The kept facts' state row, or None (never written, or unreadable: compute from scratch)."""
    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.storage.insights import read_frame

    frame = read_frame(engine, DELIVERY.facts_state)
    if frame is None or len(frame) != 1:
        return None
    row = frame.iloc[0]
    try:  # written by this module as ISO texts (computed_at with its UTC offset)
        return {"as_of": date.fromisoformat(str(row["as_of"])), "first_day": date.fromisoformat(str(row["first_day"])),
                "computed_at": datetime.fromisoformat(str(row["computed_at"])), "config": str(row["config"]),
                "scopes": str(row["scopes"]) if "scopes" in row.index and row["scopes"] is not None else None,
                "catalog": str(row["catalog"]) if "catalog" in row.index and row["catalog"] is not None else None}
    except (KeyError, ValueError):
        return None


def _kept_facts(kept: dict[str, "pd.DataFrame"], first_day: date, before: date, window_start: date | None = None) -> dict[str, "pd.DataFrame"] | None:
    """The kept day-grain facts of the days in [first_day, before) (incidents: every kept one whose
    day is >= first_day; a fresh one replaces it by id). Pull requests and reviews only from
    `window_start` when given: only the rolling window reads them (PR flow, review load). None
    when a part is missing (compute from scratch)."""
    import pandas as pd

    from analytics.delivery.metrics import FACT_TABLES

    out = {}
    for name in FACT_TABLES:
        frame = kept.get(f"facts_{name}")
        if frame is None:
            return None
        frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
        start = window_start if window_start is not None and name in ("prs", "reviews") else first_day
        keep = frame["day"] >= pd.Timestamp(start)
        if name != "incidents":
            keep &= frame["day"] < pd.Timestamp(before)
        frame = frame[keep.to_numpy()].reset_index(drop=True)
        for column in _FACT_CATEGORICAL:
            if column in frame.columns:  # object categories, as the fresh facts' (no per-merge recoding)
                values = frame[column]
                if isinstance(values.dtype, pd.CategoricalDtype):
                    frame[column] = pd.Categorical.from_codes(values.cat.codes.to_numpy(),
                                                              categories=pd.Index(values.cat.categories.astype(object), dtype=object))
                else:
                    frame[column] = values.astype(object).where(values.notna(), None).astype("category")
        out[name] = frame
    return out


def _read_facts(engine: "sa.Engine", first_day: date, before: date, window_start: date | None = None) -> dict[str, "pd.DataFrame"] | None:
    """`_kept_facts` of what the database keeps."""
    return _kept_facts(_read_kept(engine), first_day, before, window_start)


def _incremental_plan(engine: "sa.Engine", state: dict[str, Any] | None, config: "DeliveryConfig",
                      as_of: date, kept_incidents: "pd.DataFrame | None") -> tuple[date, "pd.DataFrame"] | None:
    """When the kept facts can be used for `as_of` (None: compute from scratch): the first day to
    recompute and the incidents read again since the kept facts were computed.

    From the day after the kept facts' as-of day, or the first day holding an event collected since
    they were computed (a backfill, a late merge, a late deployment or review), whichever is
    earlier, less the failure window (an incident or rollback fails the deployment before it) and
    a day of time-zone slack. Pull requests count when merged (an open one's update changes no
    day's facts; the open ones are read whole). An incident read again (resolved since) has its
    row rebuilt whatever its day; only an incident new to the facts moves the first day back
    (it may fail a deployment of its day)."""
    from datetime import timedelta

    import pandas as pd

    from analytics.delivery.metrics import facts_span_days
    from catalog_pipelines.model.delivery_events import DEPLOYMENTS, INCIDENTS, PULL_REQUESTS, REVIEWS
    from catalog_pipelines.storage.delivery_events import first_day_collected_after, read_events

    if (state is None or kept_incidents is None or state["config"] != _config_fingerprint(config)
            or as_of < state["as_of"]):
        return None
    after = state["computed_at"]
    days = [state["as_of"] + timedelta(days=1)]
    for kind in (PULL_REQUESTS, REVIEWS, DEPLOYMENTS):
        day = first_day_collected_after(engine, kind, after, merged_only=kind == PULL_REQUESTS)
        if day is not None:
            days.append(day)
    incidents = read_events(engine, INCIDENTS, collected_after=after)
    if len(incidents):
        new = incidents[~incidents["incident_id"].astype(str).isin(set(kept_incidents["incident_id"].astype(str)))]
        if len(new):
            days.append(pd.Timestamp(new["started_at"].min()).date())
    since = min(days) - timedelta(days=int(config.failure_window_hours // 24) + 1)
    if since <= as_of - timedelta(days=facts_span_days(config)) or since <= state["first_day"]:
        return None
    return since, incidents


# The event columns the metrics read (analytics.delivery.metrics), not the authors, titles, ids
_PR_COLUMNS = ("entity_ref", "source", "repository", "number", "url", "created_at", "first_commit_at", "first_review_at",
               "approved_at", "merged_at", "closed_at", "additions", "deletions", "merge_commit_sha", "draft")
_PR_LINK_COLUMNS = ("entity_ref", "source", "repository", "number", "created_at", "first_commit_at", "merged_at", "merge_commit_sha")
_REVIEW_COLUMNS = ("entity_ref", "repository", "number", "reviewer", "submitted_at")
_DEPLOYMENT_COLUMNS = ("entity_ref", "source", "repository", "is_production", "status", "commit_sha", "created_at", "finished_at",
                       "is_rollback")


def _events_from(engine: "sa.Engine", config: "DeliveryConfig", since: date, as_of: date,
                 changed_incidents: "pd.DataFrame | None" = None, *, incremental: bool = False,
                 kept_open: "pd.DataFrame | None" = None, after: datetime | None = None) -> dict[str, "pd.DataFrame"]:
    """What computing the day-grain facts from `since` reads: production deployments and pull
    requests of the link look-back before it, every open pull request (whatever its day), the
    reviews from `since`, the incidents of the look-back and `changed_incidents` (those read again
    since the last run, whatever their day).

    `incremental` (a new day): of the look-back before `since`, only the repositories deploying
    to production from `since` on are read (their deployments and merged pull requests). It gives
    the same day-grain facts from `since` on: a deployment is linked to the pull requests of its
    own repository only, from that repository's earlier deployments (which changes they shipped
    already), and an incident or rollback from `since` on blames a deployment of those days
    (the plan starts the days a failure window before the first changed one). At 200k entities:
    ~70k look-back rows instead of ~470k.

    `kept_open` and `after` (a new day): the pull requests open at the end of the last run and
    when it started. The open ones before `since`'s days are then that set updated by the pull
    requests collected since (`_open_since`), not read whole (~46k rows at 200k entities), when
    their count matches the store's (else, after a retention run say, they are read)."""
    from datetime import timedelta

    import pandas as pd

    from catalog_pipelines.model.delivery_events import DEPLOYMENTS, INCIDENTS, PULL_REQUESTS, REVIEWS
    from catalog_pipelines.storage.delivery_events import _concat, empty_frame, read_events

    lookback = since - timedelta(days=config.link_lookback_days)
    recent = since - timedelta(days=1)  # a local day may begin on the UTC day before
    if incremental:
        deployments = read_events(engine, DEPLOYMENTS, recent, as_of, production_only=True, columns=_DEPLOYMENT_COLUMNS)
        repositories = pd.Index(deployments["repository"].astype(object).dropna().unique()).astype(str).tolist()
        earlier = read_events(engine, DEPLOYMENTS, lookback, recent - timedelta(days=1), production_only=True,
                              columns=_DEPLOYMENT_COLUMNS, repositories=repositories)
        deployments = _concat([deployments, earlier]) if len(earlier) else deployments
    else:
        repositories = None
        deployments = read_events(engine, DEPLOYMENTS, lookback, as_of, production_only=True, columns=_DEPLOYMENT_COLUMNS)
    events = {DEPLOYMENTS: deployments, REVIEWS: read_events(engine, REVIEWS, recent, as_of, columns=_REVIEW_COLUMNS)}
    # before `recent`, only merged pull requests matter (a deployment of the days recomputed may
    # ship them), and only the columns that link them; every open one is read whatever its day
    older_open = None
    if incremental and kept_open is not None and after is not None:
        older_open = _open_since(engine, kept_open, after, recent - timedelta(days=1))
    if older_open is None:
        older_open = read_events(engine, PULL_REQUESTS, None, recent - timedelta(days=1), open_only=True, columns=_PR_COLUMNS)
    prs = [read_events(engine, PULL_REQUESTS, recent, as_of, columns=_PR_COLUMNS),
           read_events(engine, PULL_REQUESTS, lookback, recent - timedelta(days=1), merged_only=True, columns=_PR_LINK_COLUMNS,
                       repositories=repositories),
           older_open]
    template = empty_frame(PULL_REQUESTS, _PR_COLUMNS)
    prs = [p if list(p.columns) == list(_PR_COLUMNS) else
           p.assign(**{c: pd.Series(pd.array([None] * len(p), dtype=template[c].dtype)) for c in _PR_COLUMNS if c not in p.columns})[list(_PR_COLUMNS)]
           for p in prs]
    incidents = [read_events(engine, INCIDENTS, lookback, as_of)]
    if changed_incidents is not None and len(changed_incidents):  # read again since the last run, whatever their day
        incidents = [incidents[0][~incidents[0]["incident_id"].astype(str).isin(set(changed_incidents["incident_id"].astype(str)))],
                     changed_incidents]
    events[PULL_REQUESTS] = _concat([p for p in prs if len(p)] or prs[:1])
    events[INCIDENTS] = _concat([p for p in incidents if len(p)] or incidents[:1])
    return events


def _open_pull_requests_kept(prs: "pd.DataFrame") -> "pd.DataFrame":
    """The open pull requests among a run's events (every open one, whatever its day): the part a
    new day updates (`_open_since`)."""
    open_now = prs["merged_at"].isna().to_numpy() & prs["closed_at"].isna().to_numpy()
    if all(c in prs.columns for c in _PR_COLUMNS):
        prs = prs[list(_PR_COLUMNS)]
    return prs[open_now].reset_index(drop=True)


def _open_since(engine: "sa.Engine", kept_open: "pd.DataFrame", after: datetime, until_day: date) -> "pd.DataFrame | None":
    """The pull requests open now with a day up to `until_day` (an open one's day is the UTC date
    it was opened), from those open at the last run (`kept_open`) and the ones collected since
    `after` (a later row replaces the kept one of the same repository and number; one
    merged or closed since leaves the set). None when the result's count differs from the store's
    (a retention run deleted some, a collector's clock lagged): the caller reads them whole."""
    from datetime import timedelta

    import numpy as np
    import pandas as pd

    from analytics.delivery.metrics import pr_key
    from catalog_pipelines.model.delivery_events import PULL_REQUESTS
    from catalog_pipelines.storage.delivery_events import _concat, count_open_pull_requests, read_events

    if list(kept_open.columns) != list(_PR_COLUMNS):
        return None
    collected = read_events(engine, PULL_REQUESTS, collected_after=after, columns=_PR_COLUMNS)

    def key(frame: pd.DataFrame) -> np.ndarray:  # (a pull request's natural key: repository and number)
        return pr_key(frame["repository"], frame["number"])

    parts = [kept_open[~np.isin(key(kept_open), key(collected))]]
    if len(collected):
        parts.append(collected[(collected["merged_at"].isna() & collected["closed_at"].isna()).to_numpy()])
    open_now = _concat([p for p in parts if len(p)] or parts[:1])
    end = pd.Timestamp(until_day + timedelta(days=1), tz="UTC")  # (opened before the end of that UTC day)
    older = open_now[(open_now["created_at"] < end).to_numpy()].reset_index(drop=True)
    if len(older) != count_open_pull_requests(engine, until_day):
        return None
    return older


class _Inline:
    """An executor that runs what it is given at once, in this thread (`compute_delivery_metrics`
    on SQLite)."""

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import Future

        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to whoever asks for the result, as a thread's would be
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        return None


def compute_delivery_metrics(engine: "sa.Engine", *, as_of: date | None = None, config: "DeliveryConfig | None" = None,
                             events: dict[str, "pd.DataFrame"] | None = None, full: bool = False) -> dict[str, Any]:
    """Compute the delivery tables for `as_of` (default: the last day with events) and publish
    them (`DELIVERY.*`, one transaction, the day-grain facts kept with them).

    From scratch (the first run, `full`, given `events` frames, a changed config, an as-of day
    before the kept one, or more changed days than the windows span): every event the windows
    need (`_events_from`) -> day-grain facts -> tables. Otherwise incrementally: the days
    from `_incremental_plan` are recomputed from the look-back's events, merged into the kept
    facts (`merge_facts`, `prune_facts`), the windows recomposed from the facts (reading the
    published weekly series back would cost more than recomputing it) and source control updated;
    only what changed is rewritten (the weekly series' changed weeks, the keys whose rows changed,
    source control's changed rows). Both give the same tables (tests/services).
    Returns the tables, the rows written, the as-of day, `mode` ("full" / "incremental"),
    `since` (the first recomputed day) and `catalog` ("read", or "kept": the scopes kept by the
    last run, the catalog unchanged since, `storage.catalog.catalog_version`)."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta
    from functools import partial

    import pandas as pd
    import sqlalchemy as sa

    from analytics.delivery.metrics import (
        Scopes,
        daily_facts,
        end_of_day,
        facts_span_days,
        finish_tables,
        merge_facts,
        open_pull_requests,
        prune_facts,
        source_control,
        update_source_control,
    )
    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.services.catalog import org_graph
    from catalog_pipelines.storage.catalog import catalog_version
    from catalog_pipelines.storage.frames import owners_frame
    from catalog_pipelines.storage.insights import FramesWriter, changed_rows, read_frame
    from catalog_pipelines.storage.sql import in_values

    config = config or delivery_config()
    started = datetime.now(timezone.utc)
    if as_of is None:
        last = event_day_range(engine)[1] if events is None else None
        as_of = last or (datetime.now(timezone.utc).date() - timedelta(days=1))
    moment = end_of_day(as_of)
    first_day = as_of - timedelta(days=facts_span_days(config))
    timings: dict[str, float] = {}
    clock = datetime.now(timezone.utc)

    def lap(name: str) -> None:  # where the time went, returned (the benchmark prints it)
        nonlocal clock
        now = datetime.now(timezone.utc)
        timings[name] = round((now - clock).total_seconds(), 3)
        clock = now

    def read_catalog() -> tuple["pd.DataFrame", Any, Scopes]:
        entities = owners_frame(engine)
        org = org_graph(engine)
        return entities, org, Scopes(entities, org)

    # Reads overlap on PostgreSQL: the catalog (owners, the org, the scopes, when it must be read)
    # and a new day's events on worker threads while this one decodes the kept documents and
    # computes: the database answers one query while Python parses another's rows. (SQLite does
    # its work in this process, under the same interpreter lock: there the reads run one after
    # another, as threads only contended: 21.6 -> 24.8 s)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="delivery-read") if engine.dialect.name == "postgresql" else _Inline()
    try:
        state = None if (full or events is not None) else _facts_state(engine)
        # the catalog's scopes are kept with the facts: reused while the catalog is unchanged
        version = catalog_version(engine)
        reuse = state is not None and state.get("catalog") == version
        catalog = None if reuse else pool.submit(read_catalog)
        lap("read_catalog")  # (PostgreSQL: the time shows in "catalog_wait", what was left of it at the end)
        # the kept incidents first (the plan needs them) and the kept open pull requests (the
        # events read needs them): the events the plan asks for are read while the other kept
        # parts are decoded
        kept = _read_kept(engine, ["facts_incidents", "open_prs"]) if state else {}
        plan = _incremental_plan(engine, state, config, as_of, kept.get("facts_incidents")) if state else None
        since, changed_incidents = plan if plan is not None else (None, None)
        lap("plan")
        reading = None
        if since is not None:
            reading = pool.submit(_events_from, engine, config, since, as_of, changed_incidents, incremental=True,
                                  kept_open=kept.get("open_prs"), after=state["computed_at"])
            kept.update(_read_kept(engine, exclude=["facts_incidents", "open_prs"]))
        scopes = Scopes.from_parts(kept) if reuse else None
        if reuse and scopes is None:  # (not kept: read after all)
            catalog = pool.submit(read_catalog)
        lap("read_kept")
        cached = None
        if since is not None:
            cached = _kept_facts(kept, first_day, since, as_of - timedelta(days=config.window_days - 1))
        if cached is not None:
            events = reading.result()
            lap("read_events")
            fresh = daily_facts(events, config, since=since, include_incidents=changed_incidents["incident_id"].astype(str).tolist())
            lap("day_facts")
    finally:
        pool.shutdown(wait=False)
    if cached is None:
        since = None
        if events is None:
            events = _events_from(engine, config, first_day, as_of)
        lap("read_events")
        facts = daily_facts(events, config, since=first_day)
        lap("day_facts")
    else:
        facts = prune_facts(merge_facts(cached, fresh, since), first_day)
        lap("merge_facts")
    # Published through a writer on a thread of its own (one transaction, as `write_frames`): each
    # table is handed over as soon as it is computed, so the database writes it while the next
    # ones are computed here.
    with FramesWriter(engine) as writer:
        incremental = cached is not None
        # what the next day reads back: the facts first (pull requests and reviews: the rolling
        # window's), their Parquet documents built on the writer's thread. Replaced whole from
        # scratch; else (and while the kept scopes are reused) part by part.
        documents, replaced = _fact_documents(facts, kept, first_day=first_day, window_start=as_of - timedelta(days=config.window_days - 1),
                                              since=since if incremental else None)
        whole = not incremental and catalog is not None
        writer.put(DELIVERY.facts_kept, partial(_kept_frame, documents), delete=None if whole else replaced)
        if not incremental:
            sc = source_control(events, moment)
            writer.put(DELIVERY.source_control, sc)
        else:
            previous = kept.get("source_control")
            if previous is None:  # (kept by an older version: the published table)
                previous = read_frame(engine, DELIVERY.source_control)
            sc = update_source_control(previous, source_control(events, moment))
            # only the entities whose row changed are rewritten (most keep theirs from day to day)
            sc_changed = changed_rows(previous, sc, "entity_ref")  # (every row when there is no previous table)
            if len(sc_changed) < len(sc) // 2:
                writer.put(DELIVERY.source_control, sc_changed,
                           delete=in_values(engine, sa.column("entity_ref"), sc_changed["entity_ref"].astype(str)))
            else:
                writer.put(DELIVERY.source_control, sc)
            lap("source_control")
        others = {"source_control": sc, "open_prs": _open_pull_requests_kept(events["pull_requests"])}
        writer.put(DELIVERY.facts_kept, partial(_kept_frame, others), delete=_kept_names(others))
        entities = org = None
        if catalog is not None:
            entities, org, scopes = catalog.result()
        scopes_digest = scopes.digest() if catalog is not None else state["scopes"]  # (kept scopes: the kept digest)
        lap("catalog_wait")
        # each table handed to the writer as soon as it is final: incrementally, what changed of
        # it (the weekly series: the weeks from the first changed day's on rewritten, the weeks
        # that left the series dropped, the older weeks kept but where a rebuilt incident (started
        # in an older week, resolved since) changes one scope's time to restore: that scope's
        # week (`_weekly_changes`); both series rewritten whole when the catalog's scopes changed:
        # an entity added, removed or moved to another team changes the teams' older weeks. The
        # entities' four keys, their scorecard facts and the reviewers' load: only the keys whose
        # rows changed (`_by_changed_keys`)). The rest is replaced whole.
        weekly_changes = None
        if incremental and state is not None and state.get("scopes") == scopes_digest:
            changed_week = since - timedelta(days=since.weekday())
            first_week = as_of - timedelta(days=as_of.weekday(), weeks=config.weeks - 1)
            touched = _incident_weeks(cached["incidents"], fresh["incidents"], first_week, changed_week)
            weekly_changes = {"dora_weekly_entities": ("entity",), "dora_weekly": ("team", "org")}
        previous_digests = kept.get("digests") if incremental else None
        digest_parts: list[pd.DataFrame] = []

        def publish(name: str, frame: pd.DataFrame) -> None:
            table = DELIVERY.get(name)
            if name == "source_control":  # (handed over above)
                return
            if weekly_changes is not None and name in weekly_changes:
                rows, condition = _weekly_changes(engine, frame, scopes, touched, weekly_changes[name], changed_week, first_week,
                                                  zeros=name == "dora_weekly")
                writer.put(table, rows, delete=condition)
            elif name in _BY_KEY:
                changed, condition, key_digests = _by_changed_keys(engine, table, frame, _BY_KEY[name], previous_digests, incremental=incremental)
                digest_parts.append(key_digests)
                writer.put(table, changed, delete=condition)
            else:
                writer.put(table, frame)

        tables = finish_tables(facts, entities, org, config, as_of=as_of, open_prs=open_pull_requests(events["pull_requests"], moment),
                               source_ctl=sc, moment=moment, scopes=scopes, emit=publish)
        lap("windows")
        digests = pd.concat(digest_parts, ignore_index=True)
        parts = {"digests": digests, **(scopes.to_parts() if catalog is not None else {})}
        writer.put(DELIVERY.facts_kept, partial(_kept_frame, parts), delete=_kept_names(parts))
        writer.put(DELIVERY.facts_state, pd.DataFrame([{
            "as_of": as_of.isoformat(), "first_day": first_day.isoformat(), "computed_at": started.isoformat(),
            "config": _config_fingerprint(config), "scopes": scopes_digest, "catalog": version}]))
        lap("publish_plan")
    rows = writer.rows
    lap("write")
    return {"tables": tables, "rows": rows, "as_of": as_of, "mode": "full" if since is None else "incremental",
            "since": since, "catalog": "read" if catalog is not None else "kept", "timings": timings, "writer": writer.seconds}


# Tables published by changed keys: their key columns. A new day computes them whole but
# rewrites only the keys (an entity; a team and reviewer) whose rows changed, found by comparing a
# digest of each key's rows with the one kept from the last run (the kept part "digests"): most
# entities' figures do not change from one day to the next.
_BY_KEY = {"dora_entities": ("scope_ref",), "entity_facts": ("entity_ref",), "reviewer_load": ("scope_ref", "reviewer")}


def _joined(*parts: Any) -> Any:
    """A composite key as one text: the parts (text arrays, or SQL text columns for the matching
    condition) joined by a unit separator."""
    out = parts[0]
    for part in parts[1:]:
        out = out + "\x1f" + part
    return out


def _by_changed_keys(engine: "sa.Engine", table: Any, frame: "pd.DataFrame", key_columns: tuple[str, ...],
                     previous: "pd.DataFrame | None", *, incremental: bool) -> tuple["pd.DataFrame", Any, "pd.DataFrame"]:
    """What publishing `frame` to `table` by changed keys writes: (the rows of the keys that are
    new or changed, the condition deleting those keys' and the vanished keys' rows, the digests of
    every key (name, key, digest) for the next run). The whole frame and no condition (the table
    replaced) when not `incremental` (from scratch), without previous digests, or when most keys
    changed."""
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    from catalog_pipelines.storage.insights import changed_keys, group_digests
    from catalog_pipelines.storage.sql import in_values

    keys = frame[key_columns[0]]
    if len(key_columns) > 1:
        keys = pd.Series(_joined(*(frame[c].astype(object).astype(str).to_numpy(dtype=object) for c in key_columns)),
                         index=frame.index, dtype=object)
    digests = group_digests(frame, keys)
    mine = previous[previous["name"].astype(str) == table.name] if previous is not None else None
    found = changed_keys(digests, mine) if incremental else None
    every = pd.DataFrame({"name": table.name, "key": digests.index.to_numpy(), "digest": digests.to_numpy()})
    if found is None or len(found[0]) + len(found[1]) > len(digests) // 2:
        return frame, None, every  # replaced whole
    changed, removed = found
    codes, uniques = pd.factorize(keys)  # (the changed keys found among the distinct ones, then taken by row)
    wanted = pd.Index(np.asarray(uniques, dtype=object).astype(str), dtype=object).isin(pd.Index(changed, dtype=object))
    condition = in_values(engine, _joined(*(sa.column(c, sa.String) for c in key_columns)), changed + removed)
    return frame[(codes >= 0) & wanted[np.maximum(codes, 0)]], condition, every


def _incident_weeks(cached: "pd.DataFrame", fresh: "pd.DataFrame", first_week: date, changed_week: date) -> "pd.DataFrame":
    """(week, entity_ref) of the incidents rebuilt by id whose week is kept (in [first_week,
    changed_week)): the fresh rows and the kept rows they replace (an incident may change its
    service, so its entity). `entity_ref` null: an incident counted for the organisation only."""
    import pandas as pd

    ids = set(fresh["incident_id"].astype(str))
    rows = [fresh[["day", "entity_ref"]], cached.loc[cached["incident_id"].astype(str).isin(ids).to_numpy(), ["day", "entity_ref"]]]
    both = pd.DataFrame({"day": pd.to_datetime(pd.concat([r["day"] for r in rows], ignore_index=True)),
                         "entity_ref": pd.concat([r["entity_ref"].astype(object) for r in rows], ignore_index=True)})
    week = (both["day"] - pd.to_timedelta(both["day"].dt.weekday, unit="D")).dt.date
    both = pd.DataFrame({"week": week, "entity_ref": both["entity_ref"].where(both["entity_ref"].notna(), None)})
    return both[((week >= first_week) & (week < changed_week)).to_numpy()].drop_duplicates().reset_index(drop=True)


def _weekly_changes(engine: "sa.Engine", frame: "pd.DataFrame", scopes: Any, touched: "pd.DataFrame", kinds: tuple[str, ...],
                    changed_week: date, first_week: date, *, zeros: bool) -> tuple["pd.DataFrame", Any]:
    """The rows of a weekly table (`dora_weekly_entities`, or `dora_weekly` of teams and the
    organisation) a new day rewrites, and the condition deleting the rows they replace: every
    week from `changed_week` on, the weeks before `first_week` (gone from the series), and in the
    kept weeks the (week, scope) of each `touched` entity's scopes of `kinds`.

    `zeros`: the table carries zero rows (deployments, change failure rate) in every week for a
    scope that deployed in any week of the series: a scope that deploys in the rewritten weeks
    only (none of its kept weeks) has all its weeks rewritten (it may have no zero rows in the
    kept weeks yet), and one that no longer deploys in any week of the series loses its zero rows
    in the kept weeks."""
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    from catalog_pipelines.storage.sql import in_values

    week_categories = pd.Index(frame["week"].cat.categories).astype(str)
    week_codes = frame["week"].cat.codes.to_numpy()
    rewritten_weeks = np.asarray(week_categories >= changed_week.isoformat())
    rewrite = rewritten_weeks[week_codes] & (week_codes >= 0)
    ref_categories = pd.Index(frame["scope_ref"].cat.categories)
    ref_codes = frame["scope_ref"].cat.codes.to_numpy().astype(np.int64)
    # the touched (week, scope) pairs
    if len(touched):
        known = touched["entity_ref"].notna().to_numpy()
        rows, scope_ids = scopes.expand(touched["entity_ref"].astype(object).where(known, None), kinds=kinds)
        pair_weeks = touched["week"].to_numpy()[rows]
        pair_scopes = np.asarray(scopes.columns(scope_ids)["scope_ref"].astype(object))
        pairs = pd.DataFrame({"week": pd.Index(pair_weeks).astype(str), "scope_ref": pair_scopes}).drop_duplicates()
    else:
        pairs = pd.DataFrame({"week": pd.Series([], dtype=object), "scope_ref": pd.Series([], dtype=object)})
    if len(pairs):
        w = week_categories.get_indexer(pairs["week"])
        r = ref_categories.get_indexer(pairs["scope_ref"].astype(str))
        ok = (w >= 0) & (r >= 0)
        keys = np.unique(w[ok].astype(np.int64) * len(ref_categories) + r[ok])
        rewrite |= np.isin(week_codes.astype(np.int64) * len(ref_categories) + ref_codes, keys)
    week, scope_ref, metric = sa.column("week", sa.String), sa.column("scope_ref", sa.String), sa.column("metric", sa.String)
    conditions = [week >= changed_week.isoformat(), week < first_week.isoformat()]
    if len(pairs):
        conditions.append(in_values(engine, _joined(week, scope_ref), _joined(pairs["week"], pairs["scope_ref"].astype(str)).tolist()))
    if zeros:
        deployments = np.asarray(frame["metric"].astype(str) == "deployments") if len(frame) else np.zeros(0, bool)
        seen = np.unique(ref_codes[deployments])
        kept_deploying = np.unique(ref_codes[deployments & ~rewritten_weeks[week_codes] & (frame["events"].to_numpy(float) > 0)])
        new = np.setdiff1d(seen, kept_deploying)
        if len(new):
            rewrite |= np.isin(ref_codes, new)
            conditions.append(in_values(engine, scope_ref, ref_categories[new].astype(str).tolist()))
        conditions.append(sa.and_(week < changed_week.isoformat(), metric.in_(["deployments", "change_failure_rate"]),
                                  sa.not_(in_values(engine, scope_ref, ref_categories[seen].astype(str).tolist()))))
    return frame[rewrite].reset_index(drop=True), sa.or_(*conditions)


def read_delivery_tables(engine: "sa.Engine") -> dict[str, "pd.DataFrame | None"]:
    """The published delivery tables by name (None for one never written; not the kept facts)."""
    from catalog_pipelines.model.insight_tables import DELIVERY
    from catalog_pipelines.storage.insights import read_frame

    return {t.name: read_frame(engine, t) for t in DELIVERY.tables() if not t.name.startswith("facts_")}


def _records(frame: "pd.DataFrame") -> list[dict[str, Any]]:
    import math

    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if (isinstance(v, float) and math.isnan(v)) or v is None or (v != v) else
                        (v.item() if hasattr(v, "item") else v)) for k, v in row.items()})
    return out


def delivery_report(engine: "sa.Engine", team: str | None = None, tables: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """One scope's delivery figures from the published tables (`team`: a group ref or its name;
    None: the organisation): the four keys, PR flow, PR summary, stalest PRs. None when nothing
    has been published; a `KeyError` naming the known teams for an unknown team."""
    tables = tables if tables is not None else read_delivery_tables(engine)
    summary = tables.get("dora_summary")
    if summary is None or not len(summary):
        return None
    if team is None:
        scope_type, scope_ref = "org", "org"
    else:
        teams = summary.loc[summary["scope_type"] == "team", "scope_ref"].astype(str).unique().tolist()
        wanted = [t for t in teams if t == team or t.split("/")[-1] == team.lower()]
        if not wanted:
            raise KeyError(f"no delivery figures for team {team!r}; teams: {', '.join(sorted(teams)[:20])}")
        scope_type, scope_ref = "team", wanted[0]

    def pick(name: str) -> "pd.DataFrame":
        frame = tables.get(name)
        if frame is None:
            return summary.iloc[0:0]
        return frame[(frame["scope_type"].astype(str) == scope_type) & (frame["scope_ref"].astype(str) == scope_ref)]

    keys = pick("dora_summary")
    flow = pick("pr_flow")
    pr_summary = pick("pr_summary")
    stale = pick("stale_prs")
    first = keys.iloc[0]
    return {
        "scope_type": scope_type, "scope_ref": scope_ref,
        "window_start": str(first["window_start"]), "window_end": str(first["window_end"]),
        "four_keys": _records(keys[["metric", "value", "p75", "p90", "unit", "events", "excluded", "reason", "band",
                                    "previous_value", "change", "trend"]].astype({"metric": str, "band": object, "trend": object})),
        "pr_flow": _records(flow[["metric", "unit", "p50", "p75", "p90", "events", "reason"]].astype({"metric": str})) if len(flow) else [],
        "pr_summary": _records(pr_summary.drop(columns=["scope_type", "scope_ref"]))[0] if len(pr_summary) else None,
        "stale_prs": _records(stale.sort_values("rank")[["rank", "entity_ref", "url", "age_days", "draft"]]) if len(stale) else [],
    }
