"""Where the project keeps its data, read from the environment once per call.

Everything the project writes (the SQLite catalog, DAGSTER_HOME, generated outputs) lives under one
data directory so that a checkout stays clean and one `rm -rf .data` resets a machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    catalog_database_url: str
    dagster_home: Path
    output_dir: Path
    providers_config: Path
    pseudonym_key: bytes

    @classmethod
    def from_env(cls) -> "Settings":
        data_dir = Path(os.environ.get("CATALOG_PIPELINES_DATA_DIR", PROJECT_ROOT / ".data")).resolve()
        db_url = os.environ.get("CATALOG_DATABASE_URL") or f"sqlite:///{data_dir / 'catalog.db'}"
        dagster_home = Path(os.environ.get("DAGSTER_HOME") or data_dir / "dagster_home")
        output_dir = Path(os.environ.get("CATALOG_PIPELINES_OUTPUT_DIR") or data_dir / "outputs")
        providers = Path(
            os.environ.get("CATALOG_PIPELINES_PROVIDERS") or PROJECT_ROOT / "config" / "providers.yaml"
        )
        # The pseudonymisation key must come from the environment in production; the fallback
        # keeps the demo and tests deterministic and is documented as unsafe.
        key = os.environ.get("CATALOG_PIPELINES_PSEUDONYM_KEY", "insecure-demo-key-change-me").encode()
        return cls(data_dir, db_url, dagster_home, output_dir, providers, key)

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.dagster_home, self.output_dir):
            path.mkdir(parents=True, exist_ok=True)


def surveys_config_dir() -> Path:
    """`CATALOG_PIPELINES_SURVEYS`, else the project's `config/surveys`."""
    configured = os.environ.get("CATALOG_PIPELINES_SURVEYS")
    return Path(configured) if configured else PROJECT_ROOT / "config" / "surveys"
