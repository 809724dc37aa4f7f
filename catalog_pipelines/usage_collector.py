"""The HTTP collector for portal analytics events: an ASGI app (Starlette) a Backstage analytics
module posts batches to.

    POST /events    a JSON array of 1–100 events (or {"events": [...]}), Backstage's analytics
                    shape plus eventId, timestamp, userEntityRef (absent = anonymous), sessionId
                    → 200 {"accepted": n, "rejected": [{"index", "event_id", "reasons"}], ...}
                      422 when every event of the batch was rejected (resending will not help)
                      400 / 413 when the body is not a batch of 1–100 events
    POST /flush     write the buffer now (ops, tests)
    GET  /stats     counters since start: batches, accepted, rejected by field, flushes, buffered
    GET  /health

Each event is validated on its own: a malformed one is rejected with every reason and counted, the
rest of the batch is accepted. Accepted events are pseudonymised at once (the raw user ref never
reaches disk) and buffered; the buffer is written as Parquet part files, one per UTC day of the
events' own timestamps, when it holds `flush_events` events or is `flush_seconds` old. So late
events land in their day's partition, and a re-sent batch is written again and deduplicated by
event id when the day is compacted (`usage_events`).

Durability: acknowledged events wait in memory for up to `flush_seconds` (default 5 s, like the
open-source adoption-analytics plugin). Starlette runs the lifespan (which flushes on shutdown) of
the app it serves, not of mounted sub-apps: a server that mounts this app should call
`app.state.collector.flush()` in its own shutdown.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MAX_BODY_BYTES = 1_048_576


class Collector:
    """Validates batches, buffers accepted events and writes them to the raw store."""

    def __init__(
        self,
        raw_dir: Path | str,
        key: bytes,
        *,
        flush_events: int = 5000,
        flush_seconds: float = 5.0,
        retention_days: int = 90,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from analytics.usage_store import RawEventStore

        self.store = RawEventStore(raw_dir)
        self.key = key
        self.flush_events = flush_events
        self.flush_seconds = flush_seconds
        self.retention_days = retention_days
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._tables: list[Any] = []
        self._rejections: list[Any] = []
        self._buffered = 0
        self._oldest: float | None = None
        self.stats: dict[str, Any] = {
            "batches": 0,
            "accepted": 0,
            "rejected": 0,
            "rejected_by_field": {},
            "flushes": 0,
            "events_written": 0,
            "part_files_written": 0,
            "last_flush": None,
        }

    def accept(self, events: list[Any]) -> tuple[int, list[Any]]:
        from analytics.usage_events import prepare_events

        now = self.clock()
        table, rejections = prepare_events(events, self.key, now=now, retention_days=self.retention_days)
        with self._lock:
            self.stats["batches"] += 1
            self.stats["accepted"] += table.num_rows
            self.stats["rejected"] += len(rejections)
            by_field = self.stats["rejected_by_field"]
            for rejection in rejections:
                for reason in rejection.reasons:
                    field = reason.split(":", 1)[0]
                    by_field[field] = by_field.get(field, 0) + 1
            if table.num_rows:
                self._tables.append(table)
                self._buffered += table.num_rows
            self._rejections.extend(rejections)
            if self._oldest is None and (table.num_rows or rejections):
                self._oldest = time.monotonic()
        return table.num_rows, rejections

    def due(self) -> bool:
        with self._lock:
            if self._buffered >= self.flush_events:
                return True
            return self._oldest is not None and time.monotonic() - self._oldest >= self.flush_seconds

    def flush(self) -> int:
        """Write everything buffered; returns the events written. Safe to call from any thread."""
        import pyarrow as pa

        with self._flush_lock:
            with self._lock:
                tables, rejections = self._tables, self._rejections
                self._tables, self._rejections, self._buffered, self._oldest = [], [], 0, None
            if rejections:
                self.store.record_rejections(rejections, source="collector", now=self.clock())
            if not tables:
                return 0
            written = self.store.append(pa.concat_tables(tables))
            with self._lock:
                self.stats["flushes"] += 1
                self.stats["events_written"] += sum(written.values())
                self.stats["part_files_written"] += len(written)
                self.stats["last_flush"] = self.clock().isoformat()
            return sum(written.values())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.stats, "rejected_by_field": dict(self.stats["rejected_by_field"]), "buffered": self._buffered}


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_collector_app(
    raw_dir: Path | str,
    key: bytes,
    *,
    flush_events: int = 5000,
    flush_seconds: float = 5.0,
    retention_days: int = 90,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The collector as an ASGI app writing to `raw_dir` (`<data_dir>/usage/raw`), pseudonymising
    user refs with `key` (`Settings.from_env().pseudonym_key`)."""
    collector = Collector(raw_dir, key, flush_events=flush_events, flush_seconds=flush_seconds, retention_days=retention_days, clock=clock)
    ticker: dict[str, asyncio.Task[None] | None] = {"task": None}

    async def tick() -> None:
        # Flush a quiet buffer even when no further request arrives.
        while True:
            await asyncio.sleep(max(0.05, flush_seconds / 2))
            if collector.due():
                await run_in_threadpool(collector.flush)

    def ensure_ticker() -> None:
        task = ticker["task"]
        if task is None or task.done():
            ticker["task"] = asyncio.get_running_loop().create_task(tick())

    async def post_events(request: Request) -> Response:
        ensure_ticker()
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _json(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _json(400, {"error": "body is not valid JSON"})
        events = payload.get("events") if isinstance(payload, dict) else payload
        if not isinstance(events, list):
            return _json(400, {"error": "expected a JSON array of events (or an object with an 'events' array)"})
        from analytics.usage_events import MAX_BATCH

        if not 1 <= len(events) <= MAX_BATCH:
            return _json(400, {"error": f"a batch holds 1 to {MAX_BATCH} events, got {len(events)}"})
        accepted, rejections = collector.accept(events)
        if collector.due():
            await run_in_threadpool(collector.flush)
        body_out = {"accepted": accepted, "rejected_count": len(rejections), "rejected": [r.as_dict() for r in rejections]}
        return _json(200 if accepted else 422, body_out)

    async def post_flush(request: Request) -> Response:
        written = await run_in_threadpool(collector.flush)
        return _json(200, {"written": written})

    async def get_stats(request: Request) -> Response:
        return _json(200, collector.snapshot())

    async def health(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        task = ticker["task"]
        if task is not None:
            task.cancel()
        await run_in_threadpool(collector.flush)

    app = Starlette(
        routes=[
            Route("/events", post_events, methods=["POST"]),
            Route("/flush", post_flush, methods=["POST"]),
            Route("/stats", get_stats, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.collector = collector
    return app
