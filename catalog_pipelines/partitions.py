"""Every partitions definition of the code location.

- ingestion chunks: one dynamic partitions definition per provider (`<provider>_chunks`), keyed by the
  chunk's sequence number within a cycle ("00000", "00001", …). Keys are re-used every cycle, so the
  partition count stays bounded by the largest cycle.
- survey waves: static, one key per wave of every survey definition (`config/surveys/*.yaml`).
- usage days: daily UTC partitions from `CATALOG_PIPELINES_USAGE_START` (default 2025-01-01); the
  latest partition is yesterday, the last complete day.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from catalog_pipelines.settings import Settings


def chunk_key(sequence: int) -> str:
    return f"{sequence:05d}"


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
