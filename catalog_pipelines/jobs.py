"""Every job of the code location.

- ingestion: per provider `<provider>_chunk_job` (one chunk partition) and `<provider>_sweep_job`,
  plus `catalog_snapshot_job`; in-process by default, Celery when selected (executors.py);
- `survey_responses_job` (survey wave partitions), `usage_days_job` (usage day partitions);
- `insights_job`: every insight asset downstream of the catalog snapshot (the demo runs it);
- `ingestion_admin_job`, launched by hand (below).

`ingestion_admin_job` is the Dagster door to the ingestion admin operations (trigger, start, cancel,
pause, resume, delay, reset, clear marks, halt all, resume all, cleanup).

Open the job in the UI, pick the operation and provider from the launchpad's typed config, paste
your operator token into `token`, launch. Open-source Dagster has no logged-in user, so the job
never trusts a name typed into the launchpad: the token is resolved to the acting identity by
`IngestionAdmin.authenticate` (the same token → actor resolution as the HTTP routes, tokens from
CATALOG_PIPELINES_ADMIN_TOKENS in the code location's environment). Then the op calls the same
`IngestionAdmin` as the CLI and the HTTP routes: the actor's permission is checked against
config/permissions.yaml, the change goes to the ledger the sensors read, and an audit row records
it (channel "dagster"). A refused operation (no or an unknown token, no permission, unknown
provider) is audited and fails the run with one line saying why. See docs/admin.md (trust model).

(No `from __future__ import annotations` here: Dagster reads the op's `Config` annotation.)
"""

import enum
import hashlib
from collections.abc import Callable, Mapping
from typing import Optional

import dagster as dg
from pydantic import Field

from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT, chunk_asset_key, sweep_asset_key
from catalog_pipelines.assets.surveys import SURVEY_RESPONSES
from catalog_pipelines.assets.usage import USAGE_DAILY_ACTIVITY, USAGE_EVENTS, USAGE_RETENTION
from catalog_pipelines.executors import job_executor
from catalog_pipelines.services.admin import DEFAULT_DELAY_HOURS, GLOBAL_OPERATIONS, MUTATIONS, TIMED_OPERATIONS
from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.permissions import Authorizer, PolicyError
from catalog_pipelines.resources import CatalogDatabase

INGESTION_ADMIN_JOB = "ingestion_admin_job"
PROVIDER_HEALTH_JOB = "provider_health_job"
USAGE_RETENTION_JOB = "usage_retention_job"
ADMIN_OP = "ingestion_admin_operation"
SURVEY_RESPONSES_JOB = "survey_responses_job"
USAGE_DAYS_JOB = "usage_days_job"
DELIVERY_DAYS_JOB = "delivery_days_job"
INSIGHTS_JOB = "insights_job"


# ---------------------------------------------------------------------------------------------
# ingestion


def chunk_job_name(provider: str) -> str:
    return f"{provider}_chunk_job"


def sweep_job_name(provider: str) -> str:
    return f"{provider}_sweep_job"


def build_ingestion_jobs(configs: list[ProviderConfig]) -> list:
    # In-process by default (the multiprocess executor costs seconds per step, a chunk ~0.1 s);
    # CATALOG_PIPELINES_EXECUTOR=celery runs the steps on Celery workers instead.
    executor = job_executor(dg.in_process_executor)
    jobs = []
    for c in configs:
        jobs.append(dg.define_asset_job(
            chunk_job_name(c.name), selection=[chunk_asset_key(c.name)], executor_def=executor,
            tags={"catalog/provider": c.name},
            description=f"One chunk of provider `{c.name}` ({c.type}): launched by `{c.name}_ingestion_sensor` "
                        "(or `catalog-pipelines ingest`), one partition per chunk; runs carry the cycle in the "
                        "`catalog/cycle` tag (filter the Runs page by it)."))
        jobs.append(dg.define_asset_job(
            sweep_job_name(c.name), selection=[sweep_asset_key(c.name)], executor_def=executor,
            tags={"catalog/provider": c.name},
            description=f"The end-of-cycle removal sweep of provider `{c.name}`, launched by its ingestion sensor "
                        "after the last chunk; its `provider_health` check runs with it."))
    jobs.append(dg.define_asset_job(
        "catalog_snapshot_job", selection=[CATALOG_SNAPSHOT], executor_def=executor,
        description="Summarises the catalog after the sweeps (counts by kind and provider); insight assets start here."))
    return jobs


def build_provider_health_job(configs: list[ProviderConfig]):
    """Every provider's `provider_health` check, without materialising anything."""
    return dg.define_asset_job(
        PROVIDER_HEALTH_JOB,
        selection=dg.AssetSelection.checks_for_assets(*[sweep_asset_key(c.name) for c in configs]),
        executor_def=dg.in_process_executor,
        tags={"catalog/area": "ingestion"},
        description="Re-evaluates every provider's `provider_health` check (backing off past its schedule, a "
                    "sweep blocked by a guard) between cycles; the check also runs with every sweep.",
    )


# ---------------------------------------------------------------------------------------------
# insights, surveys, usage

survey_responses_job = dg.define_asset_job(
    SURVEY_RESPONSES_JOB, selection=[SURVEY_RESPONSES], executor_def=dg.in_process_executor, tags={"catalog/area": "surveys"},
    description="Lands one survey wave (a partition) from the survey tool's exports; launched by "
                "`survey_exports_sensor` when a wave's export files change, or `catalog-pipelines surveys load`.",
)

usage_days_job = dg.define_asset_job(
    USAGE_DAYS_JOB,
    selection=[USAGE_EVENTS, USAGE_DAILY_ACTIVITY],
    executor_def=dg.in_process_executor,
    tags={"catalog/area": "usage"},
    description="Compacts one UTC day (a partition) of portal usage events and summarises its activity; "
                "launched by `usage_days_schedule` after midnight and `usage_arrivals_sensor` for late events.",
)

usage_retention_job = dg.define_asset_job(
    USAGE_RETENTION_JOB, selection=[USAGE_RETENTION], executor_def=dg.in_process_executor,
    tags={"catalog/area": "usage"},
    description="Deletes raw usage events older than the retention period (CATALOG_PIPELINES_USAGE_RETENTION_DAYS); "
                "daily by `usage_retention_schedule`.",
)


def insight_selection() -> dg.AssetSelection:
    """Every insight asset downstream of the catalog snapshot (the snapshot and ingestion excluded),
    except the daily-partitioned delivery events (a job holds one partitioning: `delivery_days_job`
    closes their days)."""
    from catalog_pipelines.assets.delivery import DELIVERY_EVENTS_DAILY

    snapshot = dg.AssetSelection.keys(CATALOG_SNAPSHOT)
    return snapshot.downstream() - snapshot.upstream() - dg.AssetSelection.keys(DELIVERY_EVENTS_DAILY)


def build_delivery_days_job():
    from catalog_pipelines.assets.delivery import DELIVERY_EVENTS_DAILY

    return dg.define_asset_job(
        DELIVERY_DAYS_JOB, selection=[DELIVERY_EVENTS_DAILY], executor_def=dg.in_process_executor,
        tags={"catalog/area": "delivery"},
        description="Closes UTC days (partitions) of delivery events: counts per kind and entity, checks their "
                    "times; launched by `delivery_days_schedule` after midnight, backfilled over a range by hand.")


def build_insights_job():
    return dg.define_asset_job(
        INSIGHTS_JOB, selection=insight_selection(), executor_def=job_executor(dg.multiprocess_executor),
        description="Every insight asset downstream of the catalog snapshot (facts, scorecards, surveys, usage, "
                    "catalog health, dashboards) in one run: what `make demo` runs. In operation the automation "
                    "conditions (`insights_automation_sensor`) materialise them on their own cadences.")


# ---------------------------------------------------------------------------------------------
# ingestion admin (launched by hand)

# The launchpad shows an enum as a drop-down, so a typo cannot reach the ledger.
AdminOperation = enum.Enum("AdminOperation", {name: name for name in MUTATIONS})


def _provider_type(names: list[str]) -> type:
    """Configured providers as a drop-down too. With none configured, or a name Enum refuses
    (`mro`), any string is accepted and answered with "not found" if unknown."""
    if not names:
        return str
    try:
        # Dagster registers config enums by class name: a name per provider set keeps two
        # Definitions (e.g. a test's and the code location's) from sharing one drop-down.
        suffix = hashlib.sha1(",".join(sorted(names)).encode()).hexdigest()[:8]
        return enum.Enum(f"ProviderName_{suffix}", {n: n for n in names})
    except ValueError:
        return str


def build_ingestion_admin_job(
    configs: list[ProviderConfig],
    authorizer: Optional[Callable[[], Authorizer]] = None,
    tokens: Optional[Callable[[], Mapping[str, str]]] = None,
) -> dg.JobDefinition:
    """The admin job for these providers; `authorizer` builds the policy at run time
    (default: StaticPolicy.from_env, i.e. config/permissions.yaml), `tokens` the operator tokens
    (default: permissions.tokens_from_env, i.e. CATALOG_PIPELINES_ADMIN_TOKENS)."""
    ProviderName = _provider_type([c.name for c in configs])

    class IngestionAdminConfig(dg.Config):
        operation: AdminOperation = Field(
            description="What to do. halt_all, resume_all and cleanup apply to every provider; the rest to one."
        )
        provider: Optional[ProviderName] = Field(  # type: ignore[valid-type]
            default=None, description="The provider to act on (leave empty for halt_all, resume_all, cleanup)."
        )
        hours: float = Field(
            default=DEFAULT_DELAY_HOURS, description="delay / halt_all: how long to hold the provider(s), in hours."
        )
        token: str = Field(
            default="",
            description="Your operator token (`catalog-pipelines admin token`): the run acts as the identity it "
            "maps to. Required: without a valid token the run is refused and the attempt audited.",
        )
        actor: Optional[str] = Field(
            default=None,
            description="Not trusted and not needed: the acting identity is the token's. A name given here is only "
            "recorded in the audit row as the claimed actor.",
        )

    @dg.op(
        name=ADMIN_OP,
        out=dg.Out(dg.Nothing),
        tags={"catalog/admin": "ingestion"},
    )
    def ingestion_admin_operation(
        context: dg.OpExecutionContext, config: IngestionAdminConfig, catalog: CatalogDatabase
    ) -> None:
        """Run one ingestion admin operation through IngestionAdmin (permission-checked, audited)."""
        from catalog_pipelines.services.admin import AdminError, IngestionAdmin
        from catalog_pipelines.permissions import StaticPolicy, tokens_from_env

        operation = config.operation.value
        provider = None
        if config.provider is not None:
            provider = config.provider.value if isinstance(config.provider, enum.Enum) else config.provider
        provider = provider if operation not in GLOBAL_OPERATIONS else None
        admin = IngestionAdmin(catalog.get_engine(), configs, (authorizer or StaticPolicy.from_env)(), channel="dagster")
        claimed = {"claimed_actor": config.actor} if config.actor else {}
        actor, misconfigured = None, ""
        try:
            try:
                table = (tokens or tokens_from_env)()
            except PolicyError as exc:  # the message never echoes a token
                table, misconfigured = {}, f" ({exc})"
            actor = admin.authenticate(table, config.token or None, operation, provider,
                                       source=f"dagster run {context.run_id}", details=claimed)
            result = admin.run(
                operation,
                actor,
                provider=provider,
                hours=config.hours if operation in TIMED_OPERATIONS else None,
            )
        except AdminError as exc:
            # One line, no chained traceback: the reason is the message. Retrying cannot turn a
            # refusal or an unknown provider into a success.
            hint = "; put your operator token in `token`" if actor is None else ""
            raise dg.Failure(
                description=f"{exc}{hint}{misconfigured if actor is None else ''}",
                metadata={"operation": operation, "provider": provider or "", "actor": actor or "(not authenticated)"},
                allow_retries=False,
            ) from None
        message = result.get("message") or ", ".join(f"{k}={v}" for k, v in result.items())
        context.log.info(f"{operation} {provider or '(all providers)'} as {actor}: {message}")
        if result.get("warning"):
            context.log.warning(result["warning"])
        context.add_output_metadata(
            {
                "operation": operation,
                "provider": provider or "(all)",
                "actor": actor,
                "message": message,
                "result": dg.MetadataValue.json(result),
            }
        )

    @dg.job(
        name=INGESTION_ADMIN_JOB,
        description=(
            "Ingestion admin operations from the launchpad: trigger/start/cancel a cycle, pause, resume, "
            "delay, reset a provider's ledger, clear its marks, halt or resume all. Same implementation as "
            "`catalog-pipelines admin` and the /api/catalog/incremental/ routes; permission-checked and audited."
        ),
        executor_def=dg.in_process_executor,
        tags={"catalog/admin": "ingestion"},
    )
    def ingestion_admin_job() -> None:
        ingestion_admin_operation()

    return ingestion_admin_job
