"""The delivery event frames: one kind of event per frame, their column names, declared once.

The events side (collectors → `storage/delivery_events.py` → `read_events`) writes and reads these
frames; the delivery metrics (`analytics/delivery/`) compute from them. Both import the column
tuples from here so a name is never typed twice. Pure (stdlib only): no pandas here.

Conventions of every frame:
- times are tz-aware UTC (`datetime64[ns, UTC]`); a nullable time is `NaT`;
- people (`author`, `reviewer`) are already pseudonymised (HMAC, `analytics/pseudonymise.py`):
  no raw login or e-mail is ever stored;
- `entity_ref` is the catalog entity the event's target (repository, project, service) maps to;
  it is null only for an incident whose service maps to no entity (so "incidents with no service"
  stay visible);
- `source` is the collector's name (the `name:` in collectors.yaml);
- text columns may be pandas categoricals (the stored frames' repeated text is: entity, people,
  names, states; `storage.delivery_events.CATEGORICAL`), counts nullable `Int64`, flags `bool`;
  rows come in no particular order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

PULL_REQUESTS = "pull_requests"
REVIEWS = "reviews"
DEPLOYMENTS = "deployments"
INCIDENTS = "incidents"
PIPELINE_RUNS = "pipeline_runs"

#: Every kind of delivery event, in a stable order.
KINDS: tuple[str, ...] = (PULL_REQUESTS, REVIEWS, DEPLOYMENTS, INCIDENTS, PIPELINE_RUNS)

PULL_REQUEST_COLUMNS: tuple[str, ...] = (
    "entity_ref",
    "source",
    "repository",
    "number",
    "url",
    "author",
    "created_at",
    "first_commit_at",
    "first_review_at",
    "approved_at",
    "merged_at",
    "closed_at",
    "additions",
    "deletions",
    "changed_files",
    "merge_commit_sha",
    "draft",
)

REVIEW_COLUMNS: tuple[str, ...] = (
    "entity_ref",
    "source",
    "repository",
    "number",
    "reviewer",
    "submitted_at",
    "state",
)

DEPLOYMENT_COLUMNS: tuple[str, ...] = (
    "entity_ref",
    "source",
    "repository",
    "deployment_id",
    "environment",
    "is_production",
    "status",
    "commit_sha",
    "created_at",
    "finished_at",
    "is_rollback",
)

INCIDENT_COLUMNS: tuple[str, ...] = (
    "entity_ref",
    "source",
    "incident_id",
    "service_id",
    "urgency",
    "started_at",
    "resolved_at",
)

PIPELINE_RUN_COLUMNS: tuple[str, ...] = (
    "entity_ref",
    "source",
    "repository",
    "run_id",
    "workflow",
    "branch",
    "conclusion",
    "started_at",
    "finished_at",
)

#: The columns of each kind's frame, in order.
COLUMNS: dict[str, tuple[str, ...]] = {
    PULL_REQUESTS: PULL_REQUEST_COLUMNS,
    REVIEWS: REVIEW_COLUMNS,
    DEPLOYMENTS: DEPLOYMENT_COLUMNS,
    INCIDENTS: INCIDENT_COLUMNS,
    PIPELINE_RUNS: PIPELINE_RUN_COLUMNS,
}

#: The time columns of each kind (tz-aware UTC): its `*_at` columns, in order; the first is the
#: event's main time, whose UTC date is the event's `day` (the daily partition it belongs to).
TIME_COLUMNS: dict[str, tuple[str, ...]] = {kind: tuple(c for c in columns if c.endswith("_at")) for kind, columns in COLUMNS.items()}

#: The natural key of each kind within one source (a stored event is keyed by source + these).
KEYS: dict[str, tuple[str, ...]] = {
    PULL_REQUESTS: ("repository", "number"),
    REVIEWS: ("repository", "number", "reviewer", "submitted_at"),
    DEPLOYMENTS: ("repository", "deployment_id"),
    INCIDENTS: ("incident_id",),
    PIPELINE_RUNS: ("repository", "run_id"),
}

#: Integer and boolean columns (the rest that is not a time is text: `deployment_id`, `run_id`,
#: `incident_id` are strings whatever the vendor uses).
INT_COLUMNS: dict[str, tuple[str, ...]] = {
    PULL_REQUESTS: ("number", "additions", "deletions", "changed_files"),
    REVIEWS: ("number",),
    DEPLOYMENTS: (),
    INCIDENTS: (),
    PIPELINE_RUNS: (),
}
BOOL_COLUMNS: dict[str, tuple[str, ...]] = {
    PULL_REQUESTS: ("draft",),
    REVIEWS: (),
    DEPLOYMENTS: ("is_production", "is_rollback"),
    INCIDENTS: (),
    PIPELINE_RUNS: (),
}

#: Review states the frames use (GitHub's names; GitLab approvals map to APPROVED).
REVIEW_STATES: tuple[str, ...] = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED")

#: The times whose UTC date is an event's `day` (its daily partition), the first one set wins: a
#: pull request belongs to the day it was merged, else closed, else (still open) opened, so a day's
#: partition holds the pull requests that ended that day and a merge moves the row forward; the
#: other kinds to the day they started.
DAY_TIMES: dict[str, tuple[str, ...]] = {
    PULL_REQUESTS: ("merged_at", "closed_at", "created_at"),
    REVIEWS: ("submitted_at",),
    DEPLOYMENTS: ("created_at",),
    INCIDENTS: ("started_at",),
    PIPELINE_RUNS: ("started_at",),
}


def event_day(kind: str, attributes: Mapping[str, Any]) -> date | None:
    """The UTC date an event belongs to (`DAY_TIMES`), or None when it has none of those times."""
    for column in DAY_TIMES[kind]:
        value = attributes.get(column)
        if isinstance(value, datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            return aware.astimezone(timezone.utc).date()
    return None
