"""`survey_exports_sensor`: a `survey_responses` run for each wave whose export files changed."""

# No `from __future__ import annotations`: Dagster reads the context annotation.
import json

import dagster as dg

from catalog_pipelines.assets.surveys import EXPORTS_FINGERPRINT, SURVEY_RESPONSES, surveys_root
from catalog_pipelines.jobs import survey_responses_job
from catalog_pipelines.partitions import survey_waves


def materialised_fingerprint(instance: dg.DagsterInstance, wave_id: str) -> str | None:
    """The exports fingerprint the wave's latest `survey_responses` materialisation read, if any."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SURVEY_RESPONSES, asset_partitions=[wave_id]), limit=1).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get(EXPORTS_FINGERPRINT)
    return getattr(value, "value", None) or None


def instance_of(context: dg.SensorEvaluationContext) -> dg.DagsterInstance | None:
    """The sensor's instance; None for a context built in a test without one."""
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:
        return None


@dg.sensor(
    job=survey_responses_job, minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the survey tool's exports (<data>/surveys/exports/<wave>/) and requests a "
        "`survey_responses` run for each wave whose files were added or changed. Starts from what is "
        "already materialised (a wave whose latest run read the same files is not requested again) "
        "and keeps a cursor of the exports it has seen."
    ),
)
def survey_exports_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Requests a `survey_responses` run for each wave whose export files were added or changed."""
    from catalog_pipelines.storage.surveys_store import exports_fingerprint

    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    root = surveys_root()
    instance = instance_of(context)
    requests = []
    for wave_id in survey_waves.get_partition_keys():
        fingerprint = exports_fingerprint(root, wave_id)
        if not fingerprint or seen.get(wave_id) == fingerprint:
            continue
        if wave_id not in seen and instance is not None and materialised_fingerprint(instance, wave_id) == fingerprint:
            seen[wave_id] = fingerprint  # first look at this wave: already materialised from these files
            continue
        requests.append(dg.RunRequest(partition_key=wave_id, run_key=f"{wave_id}:{fingerprint}"))
        seen[wave_id] = fingerprint
    cursor = json.dumps(seen, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason=f"no new or changed exports under {root / 'exports'}", cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
