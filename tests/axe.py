"""axe-core (npm) for the dashboards' accessibility test: the browser test injects `axe.min.js`
into every page of the site and fails on a `serious` or `critical` violation.

axe-core is installed on demand from the npm registry into `<data dir>/axe-core/` (git-ignored; a
no-op once installed), as tests/prism.py installs Prism. `.ci/run` installs it before the timed
test run. Without node/npm the browser test skips locally and fails under CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from catalog_pipelines.settings import Settings

AXE_PACKAGE = "axe-core@4.10.3"


class AxeUnavailable(RuntimeError):
    pass


def axe_home() -> Path:
    return Settings.from_env().data_dir / "axe-core"


def axe_script(home: Path | None = None) -> Path:
    return (home or axe_home()) / "node_modules" / "axe-core" / "axe.min.js"


def install(home: Path | None = None, timeout: float = 300) -> Path:
    """`npm install axe-core` into `home` unless already there; the path of axe.min.js."""
    home = home or axe_home()
    script = axe_script(home)
    if script.exists():
        return script
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise AxeUnavailable(f"axe-core needs {' and '.join(missing)} on PATH")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "package.json").exists():
        (home / "package.json").write_text(json.dumps({"name": "axe-home", "private": True}) + "\n")
    log = home / "install.log"
    with open(log, "wb") as out:
        code = subprocess.call(["npm", "install", "--no-audit", "--no-fund", AXE_PACKAGE], cwd=home,
                               stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if code != 0 or not script.exists():
        raise RuntimeError(f"npm install {AXE_PACKAGE} failed (exit {code}); log: {log}")
    return script


def require_axe() -> Path:
    """axe.min.js, installing it if needed; skips without node/npm locally, fails under CI."""
    import pytest

    try:
        return install()
    except AxeUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the accessibility test: {exc}")
        pytest.skip(str(exc))
