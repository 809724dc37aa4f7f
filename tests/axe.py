"""axe-core (npm) for the dashboards' accessibility test: the browser test injects `axe.min.js`
into every page of the site and fails on a `serious` or `critical` violation.

axe-core is installed on demand from the npm registry into `<data dir>/axe-core/` (git-ignored; a
no-op once installed), as tests/prism.py installs Prism. `.ci/run` installs it before the timed
test run. Without node/npm the browser test skips locally and fails under CI.
"""

from __future__ import annotations

import os
from pathlib import Path

from catalog_pipelines.settings import Settings
from helpers import NpmUnavailable, npm_install

AXE_PACKAGE = "axe-core@4.10.3"


def axe_home() -> Path:
    return Settings.from_env().data_dir / "axe-core"


def axe_script(home: Path | None = None) -> Path:
    return (home or axe_home()) / "node_modules" / "axe-core" / "axe.min.js"


def install(home: Path | None = None, timeout: float = 300) -> Path:
    """`npm install axe-core` into `home` unless already there; the path of axe.min.js."""
    home = home or axe_home()
    return npm_install(home, AXE_PACKAGE, axe_script(home), timeout)


def require_axe() -> Path:
    """axe.min.js, installing it if needed; skips without node/npm locally, fails under CI."""
    import pytest

    try:
        return install()
    except NpmUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the accessibility test: {exc}")
        pytest.skip(str(exc))
