"""Start the real Backstage peer (`shared/tools/backstage-peer/`) for tests and benchmarks.

The peer folder lives in `shared/`, which is read-only in CI, so it is copied into the project's
data dir (`.data/backstage-peer/`, git-ignored) and installed and run from there. `node_modules`
stays there between runs: only the first `npm install` costs minutes; after that `run.sh` only
checks its install stamp.

`shared/` is found through `CATALOG_PIPELINES_SHARED_DIR`, defaulting to `<repo>/../shared`.

For pytest, `backstage_peer` is a session fixture. Register it in a conftest with
`from peer import backstage_peer`. Test modules that need it may import it as well: every
definition shares one process per pytest session (reference-counted), so a double registration
never starts two peers. Without node/npm or `shared/` the fixture skips, except when `CI` is set,
where it fails: CI must not go green by skipping the one test against the real Backstage.

The benchmark (`benchmarks/peer_compare.py`) uses `start_peer` directly to time a cold start.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from catalog_pipelines.settings import Settings
from helpers import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
PEER_TOKEN = "backstage-peer-token"
# What the peer serves from the example catalog: 59 fixture entities plus 2 generated Locations.
EXPECTED_TOTAL = 61
# Fixture entities that Backstage 1.45 rejects (shared/tools/backstage-peer/README.md, "Not served").
KNOWN_REJECTED = (
    "airesource:default/frontend-design",
    "airesource:default/use-internal-apis",
    "api:default/backstage-mcp-server",
    "api:default/petstore-webhook",
    "api:default/spotify",
    "api:default/wayback-archive",
    "api:default/wayback-search",
)
# The files of the peer folder; node_modules and the lock file are made by the install.
PEER_FILES = ("package.json", "index.js", "app-config.yaml", "run.sh", "verify.sh", "README.md", ".gitignore")


class PeerUnavailable(RuntimeError):
    """The machine lacks what the peer needs (node, npm, the shared folder)."""


def shared_dir() -> Path:
    return Path(os.environ.get("CATALOG_PIPELINES_SHARED_DIR") or REPO_ROOT.parent / "shared").resolve()


def peer_source_dir() -> Path:
    return shared_dir() / "tools" / "backstage-peer"


def examples_dir() -> Path:
    """The example catalog the peer serves: shared's copy, else the repository's identical copy."""
    shared = shared_dir() / "fixtures" / "backstage-examples"
    return shared if (shared / "all.yaml").is_file() else REPO_ROOT / "tests" / "data" / "backstage-examples"


def peer_home() -> Path:
    return Settings.from_env().data_dir / "backstage-peer"


def check_prerequisites() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise PeerUnavailable(f"the Backstage peer needs {' and '.join(missing)} on PATH (Node 20 or 22 with npm)")
    if not (peer_source_dir() / "run.sh").is_file():
        raise PeerUnavailable(
            f"no Backstage peer at {peer_source_dir()}; set CATALOG_PIPELINES_SHARED_DIR to the shared/ folder"
        )


def prepare_home(home: Path | None = None) -> Path:
    """Copy the peer folder into a writable place and return it.

    The copy must be writable: run.sh installs beside itself only when its folder is writable
    (otherwise it falls back to ~/.cache, outside the project), and copying from a read-only
    shared/ would carry the read-only bits along.
    """
    home = home or peer_home()
    home.mkdir(parents=True, exist_ok=True)
    source = peer_source_dir()
    for name in PEER_FILES:
        src = source / name
        if not src.is_file():
            continue
        dst = home / name
        if dst.exists() and dst.read_bytes() == src.read_bytes():
            continue
        if dst.exists():
            dst.chmod(0o644)
        shutil.copyfile(src, dst)
        dst.chmod(0o755 if os.access(src, os.X_OK) else 0o644)
    return home


def install(home: Path, timeout: float = 1200) -> float:
    """Run `run.sh --install-only` (a no-op after the first install); return the seconds it took."""
    log_path = home / "install.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(home / "run.sh"), "--install-only"],
            cwd=home,
            env=_peer_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a timeout can stop npm and the compilers it started
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            raise RuntimeError(f"npm install of the Backstage peer took over {timeout:.0f} s; log: {log_path}") from None
    if code != 0:
        raise RuntimeError(f"installing the Backstage peer failed (exit {code}):\n{_tail(log_path)}")
    return time.monotonic() - started


@dataclass
class BackstagePeer:
    """A running peer. Times are seconds from process start (`time.monotonic` at `started_at`)."""

    base_url: str
    token: str
    port: int
    process: subprocess.Popen
    log_path: Path
    examples_dir: Path
    started_at: float
    ready_after: float = 0.0
    all_served_after: float = 0.0
    settled_after: float = 0.0
    _log_file: object = field(default=None, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM the node process (run.sh execs node, so its PID is the server's) and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_peer(
    *,
    port: int | None = None,
    token: str = PEER_TOKEN,
    examples: Path | None = None,
    expected_total: int = EXPECTED_TOTAL,
    ready_timeout: float = 120,
    serve_timeout: float = 120,
    settle: bool = True,
    settle_quiet: float = 1.5,
    install_timeout: float = 1200,
) -> BackstagePeer:
    """Install if needed, start the peer and wait until it serves `expected_total` entities.

    With `settle`, also wait until no entity's etag changed for `settle_quiet` seconds: entities
    become visible as soon as they are first stitched, but relations that other entities produce
    (a group's ownerOf from a component's spec.owner) arrive when those are processed, and the
    entity is stitched again, so a count of 61 alone does not mean the relations are complete.
    """
    check_prerequisites()
    home = prepare_home()
    install(home, timeout=install_timeout)
    port = port or free_port()
    examples = (examples or examples_dir()).resolve()
    # One log per start (named by port); keep the last few for a look after a failure.
    for old_log in sorted(home.glob("peer-*.log"), key=lambda p: p.stat().st_mtime)[:-4]:
        old_log.unlink(missing_ok=True)
    log_path = home / f"peer-{port}.log"
    log = open(log_path, "wb")
    env = _peer_env(
        BACKSTAGE_PEER_PORT=str(port),
        BACKSTAGE_PEER_TOKEN=token,
        BACKSTAGE_PEER_ANONYMOUS="false",
        BACKSTAGE_PEER_EXAMPLES_DIR=str(examples),
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(home / "run.sh")], cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    peer = BackstagePeer(f"http://127.0.0.1:{port}", token, port, proc, log_path, examples, started, _log_file=log)
    atexit.register(peer.stop)  # an interrupted session must not leave a 180 MiB node process behind
    try:
        with httpx.Client(base_url=peer.base_url, headers=peer.headers, timeout=5) as client:
            _wait_ready(peer, client, ready_timeout)
            peer.ready_after = time.monotonic() - started
            _wait_total(peer, client, expected_total, serve_timeout)
            peer.all_served_after = time.monotonic() - started
            if settle:
                _wait_settled(peer, client, settle_quiet, serve_timeout)
            peer.settled_after = time.monotonic() - started
    except BaseException:
        peer.stop()
        raise
    return peer


def _peer_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # run.sh would copy its files onto themselves if BACKSTAGE_PEER_HOME named the copy it runs from.
    env.pop("BACKSTAGE_PEER_HOME", None)
    env.update(extra)
    return env


def _check_alive(peer: BackstagePeer, waiting_for: str) -> None:
    if peer.process.poll() is not None:
        raise RuntimeError(
            f"the Backstage peer exited with {peer.process.returncode} while waiting for {waiting_for}:\n{_tail(peer.log_path)}"
        )


def _wait_ready(peer: BackstagePeer, client: httpx.Client, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(peer, "readiness")
        try:
            if client.get("/.backstage/health/v1/readiness").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the Backstage peer was not ready after {timeout:.0f} s:\n{_tail(peer.log_path)}")


def _wait_total(peer: BackstagePeer, client: httpx.Client, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    total = None
    while time.monotonic() < deadline:
        _check_alive(peer, f"{expected} entities")
        response = client.get("/api/catalog/entities/by-query", params={"limit": 1})
        response.raise_for_status()
        total = response.json()["totalItems"]
        if total == expected:
            return
        time.sleep(0.05)
    raise RuntimeError(f"the Backstage peer served {total} entities, not {expected}, after {timeout:.0f} s:\n{_tail(peer.log_path)}")


def _wait_settled(peer: BackstagePeer, client: httpx.Client, quiet: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: dict[str, str] | None = None
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        _check_alive(peer, "the catalog to settle")
        response = client.get("/api/catalog/entities/by-query", params={"fields": "metadata.uid,metadata.etag"})
        response.raise_for_status()
        snapshot = {item["metadata"]["uid"]: item["metadata"]["etag"] for item in response.json()["items"]}
        now = time.monotonic()
        if snapshot != last:
            last, quiet_since = snapshot, now
        elif now - quiet_since >= quiet:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the Backstage peer's entities kept changing for {timeout:.0f} s")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# -- pytest --------------------------------------------------------------------------------------

_session_lock = threading.Lock()
_session_peer: BackstagePeer | None = None
_session_users = 0


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def backstage_peer() -> Iterator[BackstagePeer]:
    """One real Backstage catalog backend for the session, serving the example catalog."""
    global _session_peer, _session_users
    with _session_lock:
        if _session_peer is None:
            try:
                _session_peer = start_peer()
            except PeerUnavailable as exc:
                if _in_ci():
                    pytest.fail(f"CI is set and the Backstage peer cannot run: {exc}", pytrace=False)
                pytest.skip(f"Backstage peer unavailable: {exc}")
        _session_users += 1
        peer = _session_peer
    try:
        yield peer
    finally:
        with _session_lock:
            _session_users -= 1
            if _session_users == 0 and _session_peer is not None:
                _session_peer.stop()
                _session_peer = None
