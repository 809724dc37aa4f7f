"""catalog-pipelines: a Dagster-orchestrated data platform for a Backstage-compatible software catalog."""

__version__ = "0.1.0"
