"""The Backstage analytics module (integrations/backstage-analytics) against the real collector.

Its own unit tests (node's test runner) run here so CI runs them; the end-to-end test starts the
collector with uvicorn on loopback, next to a Backstage-like auth backend serving a JWKS, and runs
the module in node: its events (by request and by beacon) must land in the day's Parquet file
attributed to the user the token proves, pseudonymised."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from tests.storage.test_usage_store import stored_text
from tests.web.test_usage_collector import SERVICE, SERVICE_TOKEN, FakeAuthBackend

from analytics.pseudonymise import pseudonymise
from analytics_module import analytics_module  # noqa: F401
from catalog_pipelines.storage.usage_store import RawEventStore
from catalog_pipelines.web.usage_collector import BackstageTokenVerifier, CollectorSecurity, create_collector_app

KEY = b"e2e-key"
PORTAL = "https://portal.example.com"


def test_the_modules_own_tests_pass(analytics_module):
    done = subprocess.run(["node", "--test", *sorted(str(p) for p in (analytics_module / "build" / "test").glob("*.test.js"))],
                          cwd=analytics_module, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    backend = FakeAuthBackend()
    backend.new_key("k1")
    raw_dir = tmp_path_factory.mktemp("usage") / "raw"
    security = CollectorSecurity(service_tokens={SERVICE_TOKEN: "ops"}, verifier=BackstageTokenVerifier(backend.url), cors_origins=(PORTAL,))
    app = create_collector_app(raw_dir, KEY, security=security, flush_seconds=3600)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", backend, raw_dir
    server.should_exit = True
    thread.join(10)
    backend.close()


def test_events_sent_by_the_module_land_in_the_daily_parquet_with_the_verified_pseudonymised_user(analytics_module, collector):
    url, backend, raw_dir = collector
    env = {**os.environ, "COLLECTOR_URL": url, "BACKSTAGE_TOKEN": backend.sign("user:default/jane.doe"), "PORTAL_ORIGIN": PORTAL}
    done = subprocess.run(["node", "build/e2e/send-to-collector.js"], cwd=analytics_module, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["sentByRequest"], summary["beaconAccepted"], summary["beaconStatus"]) == (4, 2, [200])

    assert httpx.post(f"{url}/flush", headers=SERVICE).json() == {"written": 6}
    raw = RawEventStore(raw_dir)
    days = raw.days()
    assert days and all(d <= datetime.now(UTC).date() for d in days)
    rows = []
    for day in days:
        raw.compact_day(day)
        rows += raw.read_day(day).to_pylist()
    assert len(rows) == 6
    assert {r["user"] for r in rows} == {pseudonymise("user:default/jane.doe", KEY)}
    assert sorted(r["action"] for r in rows) == ["click", "navigate", "navigate", "navigate", "navigate", "search"]
    assert "jane.doe" not in stored_text(raw_dir)


def test_a_forged_token_gets_nothing_in(analytics_module, collector):
    url, backend, _ = collector
    forged = backend.sign("user:default/mallory", kid=backend.new_key("not-published", publish=False))
    env = {**os.environ, "COLLECTOR_URL": url, "BACKSTAGE_TOKEN": forged, "PORTAL_ORIGIN": PORTAL}
    done = subprocess.run(["node", "build/e2e/send-to-collector.js"], cwd=analytics_module, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    stats = httpx.get(f"{url}/stats", headers=SERVICE).json()
    assert stats["refused_by_reason"].get("unknown_key", 0) >= 1
