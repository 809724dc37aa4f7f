"""Entity-provider registry: `type:` in providers.yaml -> the factory that builds the provider.

The mechanism (`Registry`: entry-point group + built-ins, lazy, built-ins win, duplicates are
errors) is `catalog_pipelines.model.plugins`, shared with the fact collectors
(`catalog_pipelines.collectors.registry`). Another distribution adds a provider by declaring, in
its pyproject.toml,

    [project.entry-points."catalog_pipelines.providers"]
    gitlab = "acme_gitlab.provider:GitlabProvider.from_config"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from catalog_pipelines.model.plugins import Registry, RegistryError  # noqa: F401  (re-exported)
from catalog_pipelines.providers.base import EntityProvider


class ChunkOptions(Protocol):
    """What a provider factory may read of the provider's options (`ingestion.config.IngestionOptions`)."""

    chunk_size: int


class ProviderFactory(Protocol):
    """Builds a provider from its providers.yaml entry: `name`, the entry's other keys (`params`,
    already merged with any overrides; the factory may consume them), its `options`, and the
    directory of the configuration file (relative paths are relative to it)."""

    def __call__(self, name: str, params: dict[str, Any], options: ChunkOptions, base_dir: Path) -> EntityProvider: ...


PROVIDER_GROUP = "catalog_pipelines.providers"

# Also declared under [project.entry-points."catalog_pipelines.providers"] in pyproject.toml
# (tests/providers/test_provider_registry.py keeps the two equal).
BUILTIN_PROVIDERS = {
    "files": "catalog_pipelines.providers.files:DescriptorFileProvider.from_config",
    "backstage_api": "catalog_pipelines.providers.backstage_api:BackstageApiProvider.from_config",
    "synthetic": "catalog_pipelines.providers.synthetic:SyntheticOrgProvider.from_config",
}

PROVIDERS: Registry[EntityProvider] = Registry(PROVIDER_GROUP, BUILTIN_PROVIDERS, what="provider type")
