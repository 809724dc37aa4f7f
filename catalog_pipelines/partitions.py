"""Every partitions definition of the code location.

- ingestion chunks: one dynamic partitions definition per provider (`<provider>_chunks`), keyed by the
  chunk's sequence number within a cycle ("00000", "00001", …). Keys are re-used every cycle, so the
  partition count stays bounded by the largest cycle (the ledger, the sensors and `run_cycle` address
  a chunk by its sequence). The cycle is visible where operators look instead: every chunk and sweep
  run carries `catalog/cycle` (filter the Runs page or a partition's runs by it) and
  `catalog/chunk` = `c<cycle>-<sequence>` (`cycle_run_tags`), and each materialisation's metadata
  holds `cycle` and `sequence`.
- survey waves: static, one key per wave of every survey definition (`config/surveys/*.yaml`).
- usage days: daily UTC partitions from `CATALOG_PIPELINES_USAGE_START` (default 2025-01-01); the
  latest partition is yesterday, the last complete day.
- delivery days: daily UTC partitions of the delivery events from `CATALOG_PIPELINES_DELIVERY_START`
  (default 2024-12-01, two years before the delivery insights); the latest is yesterday.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from catalog_pipelines.settings import Settings


def chunk_key(sequence: int) -> str:
    return f"{sequence:05d}"


PROVIDER_TAG = "catalog/provider"
CYCLE_TAG = "catalog/cycle"
CHUNK_TAG = "catalog/chunk"


def cycle_run_tags(provider: str, cycle: int, sequence: int | None = None) -> dict[str, str]:
    """The tags of a chunk run (with its sequence) or a sweep run (without), whichever door launches
    it: the sensor or `run_cycle`. `catalog/chunk` tells cycles apart where the partition key cannot."""
    tags = {PROVIDER_TAG: provider, CYCLE_TAG: str(cycle)}
    if sequence is not None:
        tags[CHUNK_TAG] = f"c{cycle}-{chunk_key(sequence)}"
    return tags


def chunk_run(provider: str, cycle: int, first: int, count: int = 1) -> tuple[list[str], str | None, dict[str, str]]:
    """(partition keys, partition_key, tags) of a chunk run writing chunks `first` .. `first + count - 1`.

    One chunk is a run of that partition; several are one run over the partition range (Dagster's
    range tags, as a single-run backfill launches it), in which the chunk asset records each chunk
    it commits as its own partition materialisation. Every door (the sensor, `run_cycle`) launches
    chunk runs through this; the keys must exist as dynamic partitions before the run starts.
    """
    keys = [chunk_key(s) for s in range(first, first + max(count, 1))]
    tags = cycle_run_tags(provider, cycle, first)
    if len(keys) == 1:
        return keys, keys[0], tags
    tags[CHUNK_TAG] = f"{tags[CHUNK_TAG]}..{keys[-1]}"
    return keys, None, {**tags, "dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


def chunk_partitions(provider: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{provider}_chunks")


def wave_keys(config_dir: Path | None = None) -> list[str]:
    """Every wave id of every survey definition, in file then wave order (the partition keys)."""
    from analytics.surveys.config import load_surveys
    from catalog_pipelines.services.surveys import surveys_config_dir

    return [w.id for s in load_surveys(config_dir or surveys_config_dir()) for w in s.waves]


survey_waves = dg.StaticPartitionsDefinition(wave_keys())

# Days are UTC days; the latest partition is yesterday, the last complete day.
usage_days = dg.DailyPartitionsDefinition(start_date=Settings.from_env().usage_start, timezone="UTC")

# The delivery events' days (an event's day: `model.delivery_events.DAY_TIMES`).
delivery_days = dg.DailyPartitionsDefinition(start_date=Settings.from_env().delivery_start, timezone="UTC")
