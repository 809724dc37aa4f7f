"""Ingestion assets, one set per configured provider, and each provider's health check.

Each provider gets a chunk asset partitioned by a dynamic partitions definition whose keys are the
chunk's sequence number within a cycle ("00000", "00001", …; partitions.py). Keys are re-used every
cycle, so the partition count stays bounded by the largest cycle. A removal sweep closes each cycle,
and the catalog snapshot summarises the catalog after the sweeps for everything downstream.
"""


import dagster as dg

from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.partitions import chunk_key, chunk_partitions
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.model.asset_names import chunk_asset_name, sweep_asset_name

INGESTION_GROUP = "ingestion"
CATALOG_SNAPSHOT = dg.AssetKey("catalog_snapshot")


# Metadata key of the failure a refused chunk raises: the run-failure sensor leaves the ledger alone.
REFUSED = "catalog/refused"


def refused(reason: str) -> dg.Failure:
    """A chunk that must not run (it would lose ledger state): not retried, not a source failure."""
    return dg.Failure(description=reason, metadata={REFUSED: True}, allow_retries=False)


def run_failure_cause(step_failures: list, fallback: str) -> tuple[str, bool]:
    """(root cause, refused?) of a failed ingestion run, from its step failure events.

    The cause is what the asset raised (a Failure's description, or the user error under Dagster's
    retry wrappers), not the wrapper or the traceback: it is what the ledger's `last_error`, the
    CLI and `admin status` show. The run's own logs keep the traceback.
    """
    causes, refusal = [], False
    for event in step_failures:
        data = event.event_specific_data
        user = getattr(data, "user_failure_data", None)
        if user is not None and user.metadata and REFUSED in user.metadata:
            refusal = True
        if user is not None and user.description:
            causes.append(user.description)
            continue
        error = getattr(data, "error", None)
        while error is not None and error.cause is not None and (
            error.cls_name.startswith("Dagster") or error.cls_name == "RetryRequestedFromPolicy"
        ):
            error = error.cause
        causes.append(error.message.strip() if error is not None else (event.message or "step failed"))
    return ("; ".join(causes) or fallback), refusal


def failure_text(run_id: str, cause: str) -> str:
    """A failed run as the ledger's `last_error` keeps it: the cause first, then which run."""
    return f"{cause} (run {run_id})"


# The provider is in every name an operator sees: the lineage graph labels a node with the last part
# of its key, so `entity_chunk` under two providers looked like one asset twice. The names come
# from model/asset_names.py, which the dashboards' freshness lookups use as well.
def chunk_asset_key(provider: str) -> dg.AssetKey:
    return dg.AssetKey(chunk_asset_name(provider))


def sweep_asset_key(provider: str) -> dg.AssetKey:
    return dg.AssetKey(sweep_asset_name(provider))


def ingestion_group(provider: str) -> str:
    """One asset group per provider (`<provider>_ingestion`): the lineage graph boxes each apart."""
    return f"{provider}_{INGESTION_GROUP}"


def build_provider_assets(config: ProviderConfig) -> list[dg.AssetsDefinition]:
    name = config.name
    partitions = chunk_partitions(name)

    @dg.asset(
        key=chunk_asset_key(name),
        partitions_def=partitions,
        group_name=ingestion_group(name),
        kinds={"python", "sqlite"},
        description=(
            f"One chunk (up to {config.options.chunk_size} entities) of provider `{name}` ({config.type}). "
            "The partition key is the chunk's sequence within the current cycle; each chunk's entities are "
            "validated and written with their relations, rejections and the ledger mark in one transaction. "
            "A run writes one partition, or a range of them one chunk at a time (`chunks_per_run`)."
        ),
        tags={"catalog/provider": name},
        # Materialisations are yielded per committed chunk (a run may write several partitions).
        output_required=False,
        # Other errors (a database hiccup, a crash in the step) are retried inside the run; a
        # ProviderError is not (the provider retried its requests already). When retries run out the
        # run fails and the ledger's backoff schedule (run-failure sensor, or run_cycle) takes over.
        retry_policy=dg.RetryPolicy(
            max_retries=config.options.retry_max,
            delay=config.options.retry_delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
    )
    def entity_chunk(context: dg.AssetExecutionContext, catalog: CatalogDatabase):
        from catalog_pipelines.ingestion.chunks import ChunkOrderError, WalkRestarted
        from catalog_pipelines.ingestion.chunk_runs import run_chunks
        from catalog_pipelines.providers.base import ProviderError

        ledger = catalog.ledger()
        started_in = ledger.open_ingestion(name)
        # One partition, or a range of them (`chunks_per_run`, partitions.chunk_run): each chunk
        # committed is recorded at once as its own partition's materialisation, so a run that fails
        # at chunk k shows chunks before k materialised and k not, as the ledger has them.
        chunks = run_chunks(catalog.store(), ledger, config.build(), name, [int(k) for k in context.partition_keys],
                            config.options, retrying=context.retry_number > 0)
        try:
            for outcome in chunks:
                for rejection in outcome.result.rejections[:20]:
                    context.log.warning(f"rejected {rejection.location}: {rejection.message}")
                meta = outcome.metadata()
                yield dg.AssetMaterialization(
                    asset_key=chunk_asset_key(name),
                    partition=chunk_key(outcome.sequence),
                    metadata={
                        **{k: v for k, v in meta.items() if k not in ("cursor", "conflicts")},
                        "cursor": dg.MetadataValue.json(meta["cursor"] if meta["cursor"] is not None else {}),
                        "conflicts": dg.MetadataValue.json(meta["conflicts"]),
                        "dagster/row_count": outcome.result.accepted,
                    },
                )
        except ChunkOrderError as exc:
            raise refused(str(exc)) from exc
        except ProviderError as exc:
            # The provider already retried the request (its own max_retries, with backoff): retrying
            # the whole chunk as well would multiply them. The ledger's backoff schedule takes over.
            # A restarted walk (WalkRestarted) is not retried either: its cycle is closed, and the
            # next run starts the new cycle's walk at chunk 00000.
            raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False,
                             metadata={"cycle": started_in.cycle if started_in else -1,
                                       "walk_restarted": isinstance(exc, WalkRestarted)}) from exc

    @dg.asset(
        key=sweep_asset_key(name),
        deps=[entity_chunk],
        group_name=ingestion_group(name),
        kinds={"python", "sqlite"},
        description=(
            f"End-of-cycle removal sweep for `{name}`: entities it owns that no chunk of this cycle saw are "
            "removed, unless `reject_removals_above_percentage` or `reject_empty_source_collections` objects. "
            "A rejected sweep changes nothing and is retried next cycle. A walk that did not account for "
            "every entity the source reports is restarted from its first page instead of swept, and a "
            "source that can be asked (backstage_api) confirms each removal first."
        ),
        tags={"catalog/provider": name},
    )
    def removal_sweep(context: dg.AssetExecutionContext, catalog: CatalogDatabase) -> dg.MaterializeResult:
        from catalog_pipelines.ingestion.cycle import run_sweep

        ledger = catalog.ledger()
        ingestion = ledger.open_ingestion(name)
        if ingestion is None:
            raise dg.Failure(f"provider {name!r} has no open cycle to sweep")
        result = run_sweep(catalog.store(), ledger, ingestion, config.options, provider=config.build())
        (context.log.warning if result.outcome.startswith("rejected") else context.log.info)(result.message)
        return dg.MaterializeResult(
            metadata={
                "cycle": ingestion.cycle,
                "outcome": result.outcome,
                "message": result.message,
                "owned_before": result.owned,
                "seen_this_cycle": result.seen,
                "stale": result.stale,
                "removed": result.removed,
                "kept_live": result.kept_live,
                "stale_percentage": round(result.percentage, 2),
                "stale_sample": dg.MetadataValue.json(result.stale_sample),
            }
        )

    return [entity_chunk, removal_sweep]


def build_catalog_snapshot(configs: list[ProviderConfig]) -> dg.AssetsDefinition:
    @dg.asset(
        key=CATALOG_SNAPSHOT,
        deps=[sweep_asset_key(c.name) for c in configs],
        group_name="catalog",
        kinds={"python"},
        description="The catalog after the latest sweeps: counts by kind and provider, the read API's search rows refreshed. "
        "Insight assets start here.",
    )
    def catalog_snapshot(catalog: CatalogDatabase) -> dg.MaterializeResult:
        from catalog_pipelines.services.catalog_read import refresh_search

        store = catalog.store()
        search = refresh_search(store.engine)
        stats = store.stats()
        return dg.MaterializeResult(
            metadata={
                "search_entities_refreshed": search["entities_refreshed"],
                "search_entities_removed": search["entities_removed"],
                "search_rows_written": search["search_rows_written"],
                "search_refresh_seconds": search["seconds"],
                "entities": stats["entities"],
                "relation_pairs": stats["relation_pairs"],
                "rejected": stats["rejected"],
                "removed_total": stats["removed_total"],
                "by_kind": dg.MetadataValue.json(stats["by_kind"]),
                "by_provider": dg.MetadataValue.json(stats["by_provider"]),
                "dagster/row_count": stats["entities"],
            }
        )

    return catalog_snapshot


def build_health_check(config: ProviderConfig) -> dg.AssetChecksDefinition:
    name = config.name

    @dg.asset_check(
        asset=sweep_asset_key(name),
        name="provider_health",
        description=(
            f"Health of provider `{name}`: fails when it is backing off past its schedule or a guard "
            "blocked its removal sweep. Metadata: state, attempts, last error, next action, entities "
            "owned, last cycle duration and throughput."
        ),
    )
    def provider_health(catalog: CatalogDatabase) -> dg.AssetCheckResult:
        from catalog_pipelines.ingestion.health import provider_health_report

        report = provider_health_report(catalog.ledger(), catalog.store(), config)
        return dg.AssetCheckResult(
            passed=report["healthy"],
            severity=dg.AssetCheckSeverity.ERROR,
            description=report["reason"],
            metadata={k: (dg.MetadataValue.text(str(v)) if v is not None else dg.MetadataValue.text("-"))
                      for k, v in report.items() if k != "healthy"},
        )

    return provider_health
