"""Dagster-free use cases that every door calls: assets, CLI, HTTP routes, benchmarks.

One module per domain (catalog_health, facts, scorecards, site, surveys, usage). Services read and
write through `catalog_pipelines.storage` (no SQL here) and never import Dagster; heavy modules
are imported inside functions.
"""
