"""Test helpers shared across test modules."""

from __future__ import annotations

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
