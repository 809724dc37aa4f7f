"""The Backstage analytics module (`integrations/backstage-analytics`, TypeScript): its npm packages
installed on demand into the package's own `node_modules` (from the committed package-lock.json,
`npm ci`), and its TypeScript built with tsc. `.ci/run` calls `install()` before the timed test run;
the `analytics_module` fixture does it when needed. Without node/npm the fixture skips, except when
`CI` is set, where it fails: CI must not go green by skipping the module's tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "integrations" / "backstage-analytics"


class ModuleUnavailable(RuntimeError):
    pass


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=PACKAGE, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ModuleUnavailable(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _newest(*paths: Path) -> float:
    return max((f.stat().st_mtime for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()), default=0.0)


def install(*, package_build: bool = False) -> Path:
    """`npm ci` when node_modules is missing or older than the lock file, then compile the sources,
    tests and end-to-end script (tsc, into `build/`) unless that build is newer than every source.
    `package_build` also builds the published package (`dist/`, with declarations), as CI does."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise ModuleUnavailable(f"{tool} is not on PATH")
    marker = PACKAGE / "node_modules" / ".package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < (PACKAGE / "package-lock.json").stat().st_mtime:
        _run("npm", "ci", "--no-audit", "--no-fund")
    tsc = str(PACKAGE / "node_modules" / "typescript" / "bin" / "tsc")
    if package_build:
        _run("node", tsc, "-p", "tsconfig.json")
    sources = [PACKAGE / name for name in ("src", "test", "e2e", "tsconfig.json", "tsconfig.test.json", "package-lock.json")]
    built = PACKAGE / "build"
    if not built.is_dir() or _newest(built) < _newest(*sources):
        _run("node", tsc, "-p", "tsconfig.test.json")
    return PACKAGE


@pytest.fixture(scope="session")
def analytics_module() -> Path:
    try:
        return install()
    except ModuleUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI is set and the Backstage analytics module cannot be built: {exc}", pytrace=False)
        pytest.skip(f"Backstage analytics module unavailable: {exc}")
