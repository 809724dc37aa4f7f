"""The provider registry: `type:` in providers.yaml -> a factory, from entry points and built-ins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from catalog_pipelines.ingestion.chunks import run_chunk
from catalog_pipelines.ingestion.config import ConfigError, ProviderConfig, load_providers, parse_providers
from catalog_pipelines.model import plugins as registry
from catalog_pipelines.providers.registry import BUILTIN_PROVIDERS, PROVIDER_GROUP, PROVIDERS, Registry, RegistryError
from catalog_pipelines.storage.catalog import CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger
from helpers import REPO_ROOT

ROOT = REPO_ROOT

# A provider that lives in another distribution: it reads the names to emit from a file given
# relative to the configuration file, and pages two at a time.
ACME_PROVIDER = '''
from catalog_pipelines.model.entity import RawEntity
from catalog_pipelines.providers.base import Page, no_setup


class AcmeProvider:
    def __init__(self, name, names, page_size):
        self.name, self.names, self.page_size = name, names, page_size

    @classmethod
    def from_config(cls, name, params, options, base_dir):
        names = (base_dir / params["names_file"]).read_text().split()
        return cls(name, names, page_size=min(2, options.chunk_size))

    def around(self):
        return no_setup()

    def next(self, cursor):
        start = cursor or 0
        end = min(start + self.page_size, len(self.names))
        entities = [
            RawEntity({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                       "metadata": {"name": n}, "spec": {"type": "service", "lifecycle": "production", "owner": "acme"}},
                      f"acme:{n}")
            for n in self.names[start:end]
        ]
        return Page(entities, end, done=end >= len(self.names), total=len(self.names))
'''


def install_fake_distribution(path: Path, monkeypatch, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """A distribution importlib.metadata finds on sys.path: `<dist>-1.0.dist-info` plus its modules."""
    info = path / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, source in modules.items():
        (path / f"{module}.py").write_text(source)
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.syspath_prepend(str(path))


def test_a_third_party_provider_is_built_by_type_name_from_providers_yaml_and_ingested(catalog_url, tmp_path, monkeypatch):
    install_fake_distribution(
        tmp_path / "site", monkeypatch, "acme_catalog_provider",
        f"[{PROVIDER_GROUP}]\nacme = acme_provider:AcmeProvider\n", {"acme_provider": ACME_PROVIDER},
    )
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "names.txt").write_text("alpha beta gamma delta epsilon\n")
    (config_dir / "providers.yaml").write_text(textwrap.dedent("""
        providers:
          - name: acme
            type: acme
            names_file: names.txt
            options: {chunk_size: 100}
    """))
    assert "acme" in PROVIDERS.names()
    [config] = load_providers(config_dir / "providers.yaml")
    provider = config.build()
    assert type(provider).__module__ == "acme_provider"

    engine = get_engine(catalog_url)
    store, ledger = CatalogStore(engine), Ledger(engine)
    ingestion = ledger.start_cycle(config.name)
    outcome = run_chunk(store, ledger, provider, ingestion, 0, config.options.chunk_size)
    assert outcome.done and outcome.pages == 3 and outcome.result.added == 5
    assert store.count("acme") == 5
    assert store.get_entity("component:default/gamma")["body"]["metadata"]["name"] == "gamma"


def test_an_unknown_provider_type_is_a_config_error_naming_the_known_types(tmp_path):
    with pytest.raises(ConfigError, match=r"providers\[0\]\.type: 'gitlab' is not one of backstage_api, files, synthetic"):
        parse_providers({"providers": [{"name": "x", "type": "gitlab"}]}, tmp_path)
    with pytest.raises(ConfigError, match=r"provider 'x': unknown provider type 'gitlab'; "
                                          r"known: backstage_api, files, synthetic"):
        ProviderConfig("x", "gitlab").build()


def test_builtins_work_when_package_metadata_declares_no_providers(tmp_path, monkeypatch):
    """An editable install made before the entry points existed has no metadata for them."""
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    assert PROVIDERS.names() == ("backstage_api", "files", "synthetic")
    (tmp_path / "c.yaml").write_text("apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: g}\n"
                                     "spec: {type: team, children: []}\n")
    [files] = parse_providers({"providers": [{"name": "f", "type": "files", "roots": ["."]}]}, tmp_path)
    built = files.build()
    assert [str(r.path) for r in built.roots] == [str(tmp_path.resolve())] and built.page_size == 500
    assert ProviderConfig("s", "synthetic", params={"size": 300}).build().page_size == 1000


def test_builtin_providers_in_code_equal_the_pyproject_entry_points():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"][PROVIDER_GROUP] == BUILTIN_PROVIDERS


def test_an_entry_point_cannot_replace_a_builtin_and_a_name_declared_twice_is_an_error(tmp_path, monkeypatch):
    install_fake_distribution(
        tmp_path / "one", monkeypatch, "one_dist",
        "[test.plugins]\nfiles = one_mod:hijack\nshared = one_mod:make\n",
        {"one_mod": "def hijack(*a):\n    raise AssertionError('hijacked')\ndef make(*a):\n    return 'one'\n"},
    )
    install_fake_distribution(
        tmp_path / "two", monkeypatch, "two_dist", "[test.plugins]\nshared = two_mod:make\n",
        {"two_mod": "def make(*a):\n    return 'two'\n"},
    )
    plugins = Registry("test.plugins", {"files": "os.path:join"}, what="test plugin")
    assert plugins.names() == ("files", "shared")
    assert plugins.load("files") is __import__("os").path.join
    with pytest.raises(RegistryError, match=r"'shared' is declared more than once.*one_mod:make \(one_dist\).*two_mod:make \(two_dist\)"):
        plugins.load("shared")


def test_reading_providers_yaml_imports_no_provider_module_until_one_is_built(tmp_path):
    """The code location loads every providers.yaml; building is what imports a provider's module."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from catalog_pipelines.ingestion.config import parse_providers
        configs = parse_providers({{"providers": [
            {{"name": "f", "type": "files", "roots": ["."]}},
            {{"name": "b", "type": "backstage_api", "base_url": "http://127.0.0.1:1"}},
            {{"name": "s", "type": "synthetic", "size": 300}},
        ]}}, Path({str(tmp_path)!r}))
        sources = ("files", "backstage_api", "synthetic", "descriptors")
        loaded = lambda: [s for s in sources if "catalog_pipelines.providers." + s in sys.modules]
        print(loaded())
        configs[2].build()
        print(loaded())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = result.stdout.split("\n")[:2]
    assert (before, after) == ("[]", "['synthetic']")
