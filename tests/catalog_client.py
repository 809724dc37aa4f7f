"""Run the real `@backstage/catalog-client` (npm) from tests: install on demand, drive it from node.

The package is installed into the project's data dir (`.data/catalog-client/`, git-ignored), once;
later runs only check that it is there. The version is the one the Backstage peer (1.45.6) ships,
so the client and the server under comparison are of the same release. `.ci/run` installs it
before the timed test run (`python -c "import catalog_client; catalog_client.install()"`).

`run_cases` starts ONE node process that sends every case to every target and prints one JSON
document (tests/web/catalog_client_driver.js).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from catalog_pipelines.settings import Settings

CLIENT_VERSION = "1.12.1"  # @backstage/catalog-client of Backstage 1.45.6 (the peer's)
DRIVER = Path(__file__).resolve().parent / "web" / "catalog_client_driver.js"


class ClientUnavailable(RuntimeError):
    """node/npm missing."""


def client_home() -> Path:
    return Settings.from_env().data_dir / "catalog-client"


def install(home: Path | None = None, timeout: float = 600) -> Path:
    """`npm install @backstage/catalog-client@CLIENT_VERSION` into `home` unless it is there."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise ClientUnavailable(f"the catalog-client tests need {' and '.join(missing)} on PATH")
    home = home or client_home()
    home.mkdir(parents=True, exist_ok=True)
    package = home / "node_modules" / "@backstage" / "catalog-client" / "package.json"
    if package.is_file() and json.loads(package.read_text()).get("version") == CLIENT_VERSION:
        return home
    (home / "package.json").write_text(json.dumps(
        {"name": "catalog-client-driver", "private": True, "dependencies": {"@backstage/catalog-client": CLIENT_VERSION}}, indent=2))
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=home,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"npm install @backstage/catalog-client@{CLIENT_VERSION} failed:\n{proc.stderr[-3000:]}")
    return home


def run_cases(targets: dict[str, dict[str, str]], cases: list[dict[str, Any]], timeout: float = 120) -> dict[str, dict[str, Any]]:
    """Every case against every target through the real client: {target: {case id: {ok|error}}}."""
    home = install()
    script = home / DRIVER.name
    if not script.exists() or script.read_bytes() != DRIVER.read_bytes():
        shutil.copyfile(DRIVER, script)  # node resolves the package from the script's folder
    proc = subprocess.run(["node", str(script)], input=json.dumps({"targets": targets, "cases": cases}),
                          capture_output=True, text=True, timeout=timeout, cwd=home)
    if proc.returncode != 0:
        raise RuntimeError(f"the catalog-client driver failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
