"""Plugin registries: a `type` name in configuration -> the factory that builds it.

A registry is an entry-point group plus the project's own built-ins. Another distribution adds a
plugin by declaring, in its pyproject.toml,

    [project.entry-points."catalog_pipelines.providers"]      # or "catalog_pipelines.collectors"
    gitlab = "acme_gitlab.provider:GitlabProvider.from_config"

and `type: gitlab` in providers.yaml (collectors.yaml) then builds it. The built-ins are declared
the same way in this project's pyproject.toml *and* listed in code, so they work even when the
installed package metadata predates them (an editable install made before a plugin was added).

Rules:
- Lazy: `names()` reads package metadata only; a factory's module is imported by `load(name)`,
  i.e. when a plugin of that type is built, never when the code location is imported.
- A built-in wins over an entry point of the same name (a stale or foreign declaration cannot
  replace `files`); two distributions declaring the same name for different targets is an error
  naming both.
- The loaded object is the factory; if it has a `from_config` attribute (a class registered by
  its name), that is the factory.

It lives in the model (no I/O beyond package metadata) so that providers and collectors, which may
import the model only, share one mechanism: `providers.registry.PROVIDERS`,
`collectors.registry.COLLECTORS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    """An unknown plugin name, or a name declared twice with different targets."""


@dataclass(frozen=True)
class Registry(Generic[T]):
    """Names -> factories of one entry-point `group`, plus `builtins` ("module:attr" references)."""

    group: str
    builtins: Mapping[str, str] = field(default_factory=dict)
    # What a plugin is called in error messages ("provider type", "fact collector").
    what: str = "plugin"

    def _declared(self) -> dict[str, list[EntryPoint]]:
        found: dict[str, list[EntryPoint]] = {}
        for ep in entry_points(group=self.group):
            if ep.name in self.builtins:
                continue
            same = found.setdefault(ep.name, [])
            if all(other.value != ep.value for other in same):
                same.append(ep)
        return found

    def names(self) -> tuple[str, ...]:
        """Every known name, sorted (built-ins and installed entry points; nothing is imported)."""
        return tuple(sorted({*self.builtins, *self._declared()}))

    def reference(self, name: str) -> str:
        """The "module:attr" the name resolves to, without importing it."""
        if name in self.builtins:
            return self.builtins[name]
        declared = self._declared().get(name)
        if not declared:
            raise RegistryError(f"unknown {self.what} {name!r}; known: {', '.join(self.names())}")
        if len(declared) > 1:
            targets = ", ".join(sorted(f"{ep.value} ({ep.dist.name if ep.dist else '?'})" for ep in declared))
            raise RegistryError(f"{self.what} {name!r} is declared more than once in {self.group!r}: {targets}")
        return declared[0].value

    def load(self, name: str) -> Callable[..., T]:
        """Import and return the factory registered under `name`."""
        module_name, _, attrs = self.reference(name).partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for attr in filter(None, attrs.strip().split(".")):
            obj = getattr(obj, attr)
        return getattr(obj, "from_config", obj)
