"""`survey_exports_sensor`: a `survey_responses` run for each wave whose export files changed."""

# No `from __future__ import annotations`: Dagster reads the context annotation.
import json

import dagster as dg

from catalog_pipelines.assets.surveys import surveys_root
from catalog_pipelines.jobs import survey_responses_job
from catalog_pipelines.partitions import survey_waves


@dg.sensor(job=survey_responses_job, minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.RUNNING)
def survey_exports_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Requests a `survey_responses` run for each wave whose export files were added or changed."""
    from catalog_pipelines.storage.surveys_store import exports_fingerprint

    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    root = surveys_root()
    requests = []
    for wave_id in survey_waves.get_partition_keys():
        fingerprint = exports_fingerprint(root, wave_id)
        if fingerprint and seen.get(wave_id) != fingerprint:
            requests.append(dg.RunRequest(partition_key=wave_id, run_key=f"{wave_id}:{fingerprint}"))
            seen[wave_id] = fingerprint
    if not requests:
        return dg.SkipReason(f"no new or changed exports under {root / 'exports'}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
