"""Test helpers shared across test modules."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from typing import Any

from catalog_pipelines.model import process_entity
from catalog_pipelines.model.entity import ProcessedEntity, RawEntity
from catalog_pipelines.storage.catalog import CatalogStore
from catalog_pipelines.storage.db import get_engine
from catalog_pipelines.storage.ledger import Ledger


def seed_catalog(url: str, entities: list[dict[str, Any]], provider: str = "seed") -> CatalogStore:
    """Validate Backstage entity dicts and store them as one complete cycle of `provider`.

    Invalid entities raise: a test seeding bad data by accident should fail loudly.
    """
    engine = get_engine(url)
    store, ledger = CatalogStore(engine), Ledger(engine)
    processed: list[ProcessedEntity] = []
    for index, entity in enumerate(entities):
        outcome = process_entity(RawEntity(entity=entity, location=f"test:{provider}", doc_index=index))
        if not isinstance(outcome, ProcessedEntity):
            raise ValueError(f"seed entity {index} rejected: {outcome.message}")
        processed.append(outcome)
    ingestion = ledger.start_cycle(provider)
    seq = (ledger.last_mark(ingestion.id).sequence + 1) if ledger.last_mark(ingestion.id) else 0
    store.write_chunk(
        provider=provider, ingestion_id=ingestion.id, sequence=seq, cursor_in=None, cursor=None,
        done=True, entities=processed, rejections=[],
    )
    return store


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_groups(procs: list[subprocess.Popen], grace: float = 10) -> None:
    """Stop processes started with `start_new_session=True`, and their children: SIGTERM the
    groups, wait up to `grace` seconds in all, then SIGKILL what is left."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
