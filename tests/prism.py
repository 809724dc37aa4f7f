"""Serve vendors' OpenAPI descriptions with Stoplight Prism (`prism mock`) on loopback, for the
API collector tests and benchmark.

Prism is installed on demand from the npm registry into `<data dir>/prism/` (git-ignored; a no-op
once installed). `.ci/run` installs it before the timed test run. The session fixture
`prism_servers` skips without node/npm, except when `CI` is set, where it fails: CI must not go
green by skipping the tests against the vendors' own descriptions.

Prism runs in static mode (the descriptions' own examples) without `--errors`: the vendors'
examples do not always match their own response schemas (GitHub's `GET /repos/{owner}/{repo}`
example lacks the required `language` of `source`), and `--errors` turns those into HTTP 500s. A
request that does not validate still fails: Prism answers 422 for an invalid parameter (the client
raises), and every other request violation is logged as "Request did not pass the validation rules",
which `PrismServer.request_violations()` reports and the tests assert to be empty.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from catalog_pipelines.settings import Settings
from helpers import NpmUnavailable, free_port, npm_install

REPO_ROOT = Path(__file__).resolve().parent.parent
PRISM_PACKAGE = "@stoplight/prism-cli@5.14.2"
SPECS = REPO_ROOT / "tests" / "data" / "openapi"
# vendor -> the trimmed description Prism serves (see tests/data/openapi/<vendor>/SOURCE.md).
VENDOR_SPECS = {
    "github": SPECS / "github" / "api.github.com.trimmed.json",
    "pagerduty": SPECS / "pagerduty" / "openapiv3.trimmed.json",
    "jira": SPECS / "jira" / "swagger-v3.v3.trimmed.json",
    "gitlab": SPECS / "gitlab" / "openapi_v2.trimmed.json",  # Swagger 2.0, which Prism serves too
}
REQUEST_VIOLATION = "Request did not pass the validation rules"


PrismUnavailable = NpmUnavailable


def prism_home() -> Path:
    return Settings.from_env().data_dir / "prism"


def prism_bin(home: Path | None = None) -> Path:
    return (home or prism_home()) / "node_modules" / ".bin" / "prism"


def install(home: Path | None = None, timeout: float = 600) -> Path:
    """`npm install @stoplight/prism-cli` into `home` unless already there; the prism binary."""
    home = home or prism_home()
    return npm_install(home, PRISM_PACKAGE, prism_bin(home), timeout)


@dataclass
class PrismServer:
    vendor: str
    spec: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    _read: int = field(default=0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> None:
        """Forget the log so far: `request_violations` reports what comes after."""
        self._read = len(self.log())

    def request_violations(self) -> list[str]:
        text = self.log()[self._read:]
        lines = text.splitlines()
        # Prism logs a request that fails validation as a warning, then one line per violation.
        return [line.strip() for line in lines if REQUEST_VIOLATION in line or "Violation: request" in line]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def start(vendor: str, spec: Path, binary: Path, log_dir: Path, port: int | None = None) -> PrismServer:
    port = port or free_port()
    log_path = log_dir / f"prism-{vendor}-{port}.log"
    out = open(log_path, "wb")
    process = subprocess.Popen([str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    return PrismServer(vendor, spec, port, process, log_path)


def wait_ready(server: PrismServer, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"Prism for {server.vendor} exited: {server.log()[-2000:]}")
        if "Prism is listening" in server.log():
            try:
                httpx.get(server.base_url + "/", timeout=2)
                server.mark()
                return
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Prism for {server.vendor} not listening after {timeout:.0f} s: {server.log()[-2000:]}")


def start_all(log_dir: Path, vendors: tuple[str, ...] = tuple(VENDOR_SPECS)) -> dict[str, PrismServer]:
    binary = install()
    servers = {vendor: start(vendor, VENDOR_SPECS[vendor], binary, log_dir) for vendor in vendors}
    try:
        for server in servers.values():
            wait_ready(server)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


@pytest.fixture(scope="session")
def prism_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PrismServer]]:
    """One Prism per vendor description for the whole session (started together, ~5 s)."""
    try:
        servers = start_all(tmp_path_factory.mktemp("prism"))
    except PrismUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the collectors against Prism: {exc}")
        pytest.skip(str(exc))
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()
