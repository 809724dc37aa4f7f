"""`usage_arrivals_sensor`: a `usage_days_job` run for each complete day that received events."""

# No `from __future__ import annotations`: Dagster reads the context annotation.
import json

import dagster as dg

from catalog_pipelines.assets.usage import raw_store
from catalog_pipelines.jobs import usage_days_job
from catalog_pipelines.partitions import usage_days

MAX_DAYS_PER_TICK = 31


@dg.sensor(
    job=usage_days_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests a `usage_days_job` run for each complete UTC day that received events since it was last "
        "compacted (late events, imports of old days, re-sent batches). Starts from what is materialised: "
        "a compacted day has no pending files, so nothing is requested twice; the cursor names the newest day "
        "requested. Today waits for its partition (after midnight UTC)."
    ),
)
def usage_arrivals_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Requests a `usage_events` + `usage_daily_activity` run for each complete day that received
    events since it was last compacted: late events, imports of old days, re-sent batches. Today
    waits for its partition (after midnight UTC)."""
    pending = raw_store().pending()
    valid = set(usage_days.get_partition_keys())
    requests = []
    for day, parts in sorted(pending.items()):
        key = day.isoformat()
        if key in valid:
            # The newest part names the state: the same pending files never request twice.
            requests.append(dg.RunRequest(partition_key=key, run_key=f"{key}:{parts[-1].name}"))
    if not requests:
        waiting = sorted(d.isoformat() for d in pending)
        return dg.SkipReason(f"no complete day with new events{' (waiting: ' + ', '.join(waiting) + ')' if waiting else ''}")
    return dg.SensorResult(run_requests=requests[:MAX_DAYS_PER_TICK], cursor=json.dumps({"last": requests[-1].partition_key}))
