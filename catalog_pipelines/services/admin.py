"""Ingestion admin operations: the one implementation behind every door.

The CLI (`catalog-pipelines admin …`), the HTTP routes (`catalog_pipelines/web/admin.py`, Backstage's
paths under `/api/catalog/incremental/`) and the Dagster job (`ingestion_admin_job`) all call
`IngestionAdmin`; none of them touches the ledger itself. Each call:

0. (HTTP routes and the Dagster job) resolves the caller's operator token to the actor with
   `authenticate`; no or an unknown token is audited and raises `NotAuthenticated`;
1. checks the permission (`catalog.ingestion.read` for reads, `catalog.ingestion.manage` for
   mutations) with the injected `Authorizer`; a denial changes nothing, is written to the audit log
   and raises `PermissionDenied`. Refusals (0 and 1) are audited through
   `storage.audit.record_refusal`, bounded per minute so a flood cannot fill the disk;
2. resolves the provider against the configuration (`NotFound` otherwise, audited as a failure);
3. changes the ledger the way the state machine (`ingestion/engine.py`) reads it, and
4. appends an audit row (who, what, when, outcome) for every mutation.

Results are Backstage's JSON shapes (`{"success": true, "message": …}`, `{"healthy": …}`, …) so
the HTTP door returns them unchanged; the CLI and the Dagster job print or log them.

Where the semantics differ from Backstage (see docs/admin.md):
- `cancel` sets next_action 'cancel': the next tick closes the cycle and starts a new one (unless
  paused or halted). Backstage parks the provider with an action its engine does not know.
- `health` is also unhealthy when a provider is (engine.health), not only on duplicate cycles.
- `DELETE …/marks` deletes the chunk marks of finished cycles but keeps their cycle rows (history
  for `status`) and the per-ref mark rows (one per provider and ref, needed by the sweep).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from catalog_pipelines.ingestion import engine as machine
from catalog_pipelines.ingestion.config import ProviderConfig
from catalog_pipelines.permissions import (
    INGESTION_MANAGE,
    INGESTION_READ,
    Authorizer,
    PolicyError,
    identity_for_token,
    normalize_actor,
)

# The storage layer (SQLAlchemy) is imported where it is used: jobs.py imports this module while
# the code location loads, and that import must stay light.
if TYPE_CHECKING:
    import sqlalchemy as sa

    from catalog_pipelines.storage.ledger import Ingestion, Ledger, Mark

# The ledger bound to the transaction of the mutation running in this thread or task (the HTTP
# door runs operations on a thread pool, so this cannot be an attribute of the shared admin object).
_CHANGE_LEDGER: ContextVar[tuple[Any, Any] | None] = ContextVar("admin_change_ledger", default=None)

# Mutations, in the order the docs and the launchpad list them.
MUTATIONS = (
    "trigger", "start", "cancel", "pause", "resume", "delay", "reset", "clear_marks",
    "halt_all", "resume_all", "cleanup",
)
GLOBAL_OPERATIONS = frozenset({"halt_all", "resume_all", "cleanup"})
TIMED_OPERATIONS = frozenset({"delay", "halt_all"})
AUDIT_PREFIX = "ingestion."
ALL_PROVIDERS = "ingestion-provider:*"

DEFAULT_DELAY_HOURS = 24.0
MAX_DELAY_HOURS = 24.0 * 366
# Backstage parks a reset provider for a day so a purge does not immediately hammer the source;
# `trigger` or `start` begins the next cycle sooner.
RESET_REST = dt.timedelta(hours=24)
NOT_STARTED = "rest complete, waiting to start"  # Backstage's wording for "no open cycle"


class AdminError(Exception):
    """An admin operation was refused; subclasses say why (the doors map them to exit/HTTP codes)."""


class PermissionDenied(AdminError):
    def __init__(self, actor: str, permission: str, operation: str, policy: str | None = None):
        self.actor, self.permission, self.operation = actor, permission, operation
        where = f" (policy: {policy})" if policy else ""
        super().__init__(f"{actor} is not allowed to {operation.replace('_', ' ')}: needs {permission}{where}")


class NotAuthenticated(AdminError):
    """No operator token, or one that maps to nobody (HTTP 401, a failed Dagster run)."""

    def __init__(self, operation: str, reason: str):
        self.operation, self.reason = operation, reason
        super().__init__(f"not authenticated: {reason}; {operation.replace('_', ' ')} needs a valid operator token")


class NotFound(AdminError):
    def __init__(self, provider: str):
        self.provider = provider
        super().__init__(f"Provider '{provider}' not found")


class InvalidRequest(AdminError, ValueError):
    """The request itself is malformed (a missing provider, hours out of range)."""


def utcnow() -> dt.datetime:
    # The ingestion engine's one clock (tests may replace it there).
    from catalog_pipelines.storage.catalog import utcnow as engine_clock

    return engine_clock()


def target_of(provider: str | None) -> str:
    return f"ingestion-provider:{provider}" if provider else ALL_PROVIDERS


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def mark_record(mark: Mark) -> dict[str, Any]:
    """A chunk mark as JSON: Backstage's MarkRecord fields (id, ingestion_id, sequence, cursor,
    created_at) plus what this ledger also knows about the chunk."""
    return {
        "id": mark.id,
        "ingestion_id": mark.ingestion_id,
        "sequence": mark.sequence,
        "cursor": mark.cursor,
        "cursor_in": mark.cursor_in,
        "done": mark.done,
        "entity_count": mark.entity_count,
        "added": mark.added,
        "changed": mark.changed,
        "unchanged": mark.unchanged,
        "rejected": mark.rejected,
        "source_total": mark.source_total,
        "duration_ms": mark.duration_ms,
        "created_at": _iso(mark.created_at),
    }


# ------------------------------------------------------------------------------------ the admin


class IngestionAdmin:
    """Admin operations on the ingestion ledger, permission-checked and audited.

    `channel` names the door ("cli", "http", "dagster") in every audit row; `clock` is injectable
    so tests and the state machine agree on "now".
    """

    def __init__(
        self,
        engine: sa.Engine,
        providers: list[ProviderConfig],
        authorizer: Authorizer,
        *,
        channel: str = "api",
        clock: Callable[[], dt.datetime] = utcnow,
        audit_context: dict[str, Any] | None = None,
    ):
        from catalog_pipelines.storage.ledger import Ledger

        self.engine = engine
        self.configs = {c.name: c for c in providers}
        self.authorizer = authorizer
        self.channel = channel
        self.clock = clock
        # Added to every audit row's details (the CLI records the OS login behind a claimed actor).
        self.audit_context = dict(audit_context or {})
        self._ledger = Ledger(engine)

    # ------------------------------------------------------------------------------ plumbing

    @property
    def ledger(self) -> Ledger:
        """The ledger on the engine; inside a mutation, the ledger on that mutation's transaction."""
        bound = _CHANGE_LEDGER.get()
        return bound[1] if bound is not None and bound[0] is self else self._ledger

    def _policy_name(self) -> str | None:
        return getattr(self.authorizer, "source", None)

    def _audit(self, actor: str, operation: str, provider: str | None, outcome: str, details: dict[str, Any],
               bind: Any = None) -> None:
        from catalog_pipelines.storage.audit import record

        record(
            bind if bind is not None else self.engine,
            actor=actor or "anonymous",
            action=AUDIT_PREFIX + operation,
            target=target_of(provider),
            outcome=outcome,
            details={"channel": self.channel, **self.audit_context, **details},
            at=self.clock(),
        )

    def _refuse(self, actor: str, operation: str, provider: str | None, reason: str, source: str,
                details: dict[str, Any]) -> None:
        """Audit a refused attempt (bounded per minute: storage.audit.record_refusal)."""
        from catalog_pipelines.storage.audit import record_refusal

        record_refusal(
            self.engine,
            actor=actor or "anonymous",
            action=AUDIT_PREFIX + operation,
            target=target_of(provider),
            reason=reason,
            source=source,
            details={"channel": self.channel, **self.audit_context, **details},
            at=self.clock(),
        )

    def authenticate(self, tokens: Mapping[str, str], presented: str | None, operation: str,
                     provider: str | None = None, *, source: str, details: dict[str, Any] | None = None) -> str:
        """The actor `presented` (an operator token) maps to in `tokens`
        (permissions.identity_for_token); otherwise the attempt is audited as a refusal and
        `NotAuthenticated` raised. Every door that cannot trust a claimed actor calls this."""
        actor = identity_for_token(tokens, presented)
        if actor is not None:
            return actor
        reason = "no token" if not presented else "unknown token"
        self._refuse("anonymous", operation, provider, reason, source, dict(details or {}))
        raise NotAuthenticated(operation, reason)

    def _authorize(self, actor: str, permission: str, operation: str, provider: str | None, details: dict[str, Any]) -> str:
        try:
            who = normalize_actor(actor)
        except PolicyError:
            who = None
        if who is None or not self.authorizer.is_allowed(who, permission, target_of(provider)):
            shown = who or (actor if isinstance(actor, str) and actor.strip() else "anonymous")
            self._refuse(shown, operation, provider, "no permission" if who else "no actor", shown,
                         {**details, "permission": permission})
            raise PermissionDenied(shown, permission, operation, self._policy_name())
        return who

    def _config(self, who: str, operation: str, provider: str, details: dict[str, Any]) -> ProviderConfig:
        config = self.configs.get(provider)
        if config is None:
            self._audit(who, operation, provider, "failure", {**details, "error": f"Provider '{provider}' not found"})
            raise NotFound(provider)
        return config

    def _read(self, operation: str, actor: str, provider: str | None = None) -> ProviderConfig | None:
        # Successful reads are not audited (health is polled); denied ones are, as security events.
        self._authorize(actor, INGESTION_READ, operation, provider, {})
        if provider is None:
            return None
        config = self.configs.get(provider)
        if config is None:
            raise NotFound(provider)
        return config

    def _mutate(self, operation: str, actor: str, provider: str | None, change: Callable[..., dict[str, Any]],
                **details: Any) -> dict[str, Any]:
        details = {k: v for k, v in details.items() if v is not None}
        who = self._authorize(actor, INGESTION_MANAGE, operation, provider, details)
        args = []
        if provider is not None:
            args.append(self._config(who, operation, provider, details))
        from catalog_pipelines.storage.ledger import Ledger

        # The change and its audit row commit together, or neither does: no unaudited change
        # survives a crash between the two. A failed change is rolled back, then audited on its own.
        try:
            with self.engine.begin() as conn:
                token = _CHANGE_LEDGER.set((self, Ledger(conn)))
                try:
                    result = change(who, *args)
                    self._audit(who, operation, provider, "success", {**details, "result": result}, bind=conn)
                finally:
                    _CHANGE_LEDGER.reset(token)
        except Exception as exc:
            self._audit(who, operation, provider, "failure", {**details, "error": f"{type(exc).__name__}: {exc}"})
            raise
        return result

    @staticmethod
    def _hours(hours: Any) -> float:
        try:
            value = float(hours)
        except (TypeError, ValueError):
            raise InvalidRequest(f"hours must be a number, got {hours!r}") from None
        if not math.isfinite(value) or value <= 0 or value > MAX_DELAY_HOURS:
            raise InvalidRequest(f"hours must be above 0 and at most {MAX_DELAY_HOURS:g}, got {hours!r}")
        return value

    def _warning(self, provider: str) -> dict[str, Any]:
        """Operators trigger a provider and wait; say so when its controls will keep it still."""
        controls = self.ledger.controls(provider)
        if controls["paused"]:
            return {"warning": f"{provider} is paused: nothing runs until it is resumed"}
        until = controls["halted_until"]
        if until is not None and until > self.clock():
            return {"warning": f"{provider} is halted until {until.isoformat()}: nothing runs before then"}
        return {}

    def _controls_json(self, provider: str) -> dict[str, Any]:
        c = self.ledger.controls(provider)
        return {"paused": bool(c["paused"]), "halted_until": _iso(c["halted_until"]), "updated_by": c["updated_by"],
                "updated_at": _iso(c["updated_at"])}

    def _finish_rest(self, ingestion: Ingestion, now: dt.datetime) -> None:
        from catalog_pipelines.ingestion.cycle import finish_rest

        finish_rest(self.ledger, ingestion, now)

    def _rest_after_reset(self, provider: str, now: dt.datetime) -> None:
        # No ingestion_completed_at: no cycle completed, so the health record's "last cycle" and a
        # cron schedule both ignore this row, and the rest ends at next_action_at.
        self.ledger.start_cycle(provider, status=machine.RESTING, next_action=machine.REST,
                                next_action_at=now + RESET_REST)

    # ---------------------------------------------------------------------------------- reads

    def health(self, actor: str) -> dict[str, Any]:
        """Backstage's `{healthy, duplicateIngestions}`, also unhealthy when any provider is
        (backing off past its schedule, or a guard blocked its sweep: engine.health)."""
        self._read("health", actor)
        duplicates = self.ledger.duplicate_open_ingestions()
        unhealthy = [
            {"provider": r["provider"], "state": r["state"], "reason": r["reason"]}
            for r in (self._report(c) for c in self.configs.values())
            if not r["healthy"]
        ]
        if not duplicates and not unhealthy:
            return {"healthy": True}
        return {"healthy": False, "duplicateIngestions": duplicates, "unhealthyProviders": unhealthy}

    def providers(self, actor: str) -> dict[str, Any]:
        self._read("providers", actor)
        return {"success": True, "providers": sorted(self.configs)}

    def _report(self, config: ProviderConfig) -> dict[str, Any]:
        from catalog_pipelines.ingestion.health import provider_health_report
        from catalog_pipelines.storage.catalog import CatalogStore

        report = provider_health_report(self.ledger, CatalogStore(self.engine), config, now=self.clock())
        controls = self.ledger.controls(config.name)
        # Who paused or delayed it matters when an operator finds a provider standing still.
        return {**report, "paused": bool(controls["paused"]), "halted_until": _iso(controls["halted_until"]),
                "controls_updated_by": controls["updated_by"]}

    def report(self, provider: str, actor: str) -> dict[str, Any]:
        """The provider's health record (ingestion/health.py, as the asset check shows it) plus its
        controls: state, attempts, last error, next action at, entities owned, last cycle figures."""
        return self._report(self._read("status", actor, provider))

    def reports(self, actor: str) -> list[dict[str, Any]]:
        self._read("status", actor)
        return [self._report(c) for c in self.configs.values()]

    def status(self, provider: str, actor: str) -> dict[str, Any]:
        """Backstage's `{success, status: {current_action, next_action_at}, last_error}`, plus
        `details` (the provider's health record and controls)."""
        details = self.report(provider, actor)
        current = self.ledger.open_ingestion(provider)
        if current is None:
            body: dict[str, Any] = {"success": True, "status": {"current_action": NOT_STARTED}}
        else:
            body = {
                "success": True,
                "status": {"current_action": current.status, "next_action_at": _iso(current.next_action_at)},
                "last_error": current.last_error,
            }
        body["details"] = details
        return body

    def marks(self, provider: str, actor: str) -> dict[str, Any]:
        """The open cycle's chunk marks, newest first (Backstage: `{success, records}`)."""
        self._read("marks", actor, provider)
        current = self.ledger.open_ingestion(provider)
        if current is None:
            return {"success": True, "message": "No records yet (provider is restarting)"}
        return {"success": True, "records": [mark_record(m) for m in reversed(self.ledger.marks(current.id))]}

    # ------------------------------------------------------------------------------ mutations

    def trigger(self, provider: str, actor: str) -> dict[str, Any]:
        """Act now: end a rest, a backoff wait or a pause between bursts at the next tick."""

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            now = self.clock()
            current = self.ledger.open_ingestion(provider)
            if current is None:
                return {"success": True, "message": "Unable to trigger next action (provider is restarting)"}
            if current.status == machine.RESTING:
                # Closing the rest now is what the next tick would do at next_action_at; doing it
                # here also works for cron-scheduled providers, whose rest ignores next_action_at.
                self._finish_rest(current, now)
            else:
                self.ledger.update(current.id, next_action_at=now)
            return {"success": True, "message": f"{provider}: Next action triggered.", **self._warning(provider)}

        return self._mutate("trigger", actor, provider, change)

    def start(self, provider: str, actor: str) -> dict[str, Any]:
        """Start a brand-new cycle: a resting one is completed, a running one canceled."""

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            now = self.clock()
            current = self.ledger.open_ingestion(provider)
            if current is None:
                return {"success": True, "message": "Provider is already restarting"}
            if current.status == machine.RESTING:
                self._finish_rest(current, now)
            else:
                self.ledger.update(current.id, status=machine.CANCELING, next_action=machine.CANCEL, next_action_at=now)
            return {"success": True, "message": f"{provider}: Next cycle triggered.", **self._warning(provider)}

        return self._mutate("start", actor, provider, change)

    def cancel(self, provider: str, actor: str) -> dict[str, Any]:
        """Cancel the running cycle; the next tick closes it and starts a new one (never parks)."""

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            now = self.clock()
            current = self.ledger.open_ingestion(provider)
            if current is None:
                return {"success": True, "message": "Provider is currently restarting, please wait."}
            if current.status == machine.RESTING:
                # The cycle is finished; canceling it would only cut its rest short (that is `start`).
                return {"success": True, "message": f"{provider}: nothing to cancel, resting until "
                                                    f"{current.next_action_at.isoformat()}."}
            self.ledger.update(current.id, status=machine.CANCELING, next_action=machine.CANCEL, next_action_at=now)
            return {"success": True, "message": f"{provider}: Current ingestion canceled; a new cycle starts at the next tick.",
                    **self._warning(provider)}

        return self._mutate("cancel", actor, provider, change)

    def reset(self, provider: str, actor: str) -> dict[str, Any]:
        """Purge the provider's ledger (cycles, marks, mark refs) and rest it for 24 h.

        Its entities stay in the catalog: the next cycle's sweep compares what the source emits
        with what the provider owns, so nothing is orphaned.
        """

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            counts = self.ledger.reset_provider(provider)
            self._rest_after_reset(provider, self.clock())
            return {"provider": provider, "ingestionsDeleted": counts["ingestions"], "marksDeleted": counts["marks"],
                    "markEntitiesDeleted": counts["mark_entities"]}

        return self._mutate("reset", actor, provider, change)

    def clear_marks(self, provider: str, actor: str) -> dict[str, Any]:
        """Delete the chunk marks of finished cycles (the open cycle's marks are its resume points)."""

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            deleted = self.ledger.clear_marks(provider, keep_cycles=0)
            return {
                "success": True,
                "message": f"Expired marks for provider '{provider}' removed.",
                # Backstage nests the counts twice (the route wraps the manager's {deletions}).
                "deletions": {"deletions": {"markEntitiesDeleted": 0, "marksDeleted": deleted, "ingestionsDeleted": 0}},
            }

        return self._mutate("clear_marks", actor, provider, change)

    def cleanup(self, actor: str) -> dict[str, Any]:
        """Purge every provider's ledger (including providers no longer configured) and rest the
        configured ones for 24 h (Backstage's POST /incremental/cleanup)."""

        def change(who: str) -> dict[str, Any]:
            totals = {"ingestionsDeleted": 0, "ingestionMarksDeleted": 0, "markEntitiesDeleted": 0}
            for name in sorted(set(self.ledger.providers()) | set(self.configs)):
                counts = self.ledger.reset_provider(name)
                totals["ingestionsDeleted"] += counts["ingestions"]
                totals["ingestionMarksDeleted"] += counts["marks"]
                totals["markEntitiesDeleted"] += counts["mark_entities"]
            now = self.clock()
            for name in sorted(self.configs):
                self._rest_after_reset(name, now)
            return totals

        return self._mutate("cleanup", actor, None, change)

    def pause(self, provider: str, actor: str) -> dict[str, Any]:
        """No new runs for this provider until `resume` (a running chunk finishes)."""

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            self.ledger.set_controls(provider, actor=who, paused=True)
            return {"success": True, "message": f"{provider}: paused; no new runs until it is resumed.",
                    "controls": self._controls_json(provider)}

        return self._mutate("pause", actor, provider, change)

    def resume(self, provider: str, actor: str) -> dict[str, Any]:
        """Lift a pause and any delay or halt on this provider."""

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            self.ledger.set_controls(provider, actor=who, paused=False, halted_until=None)
            return {"success": True, "message": f"{provider}: resumed.", "controls": self._controls_json(provider)}

        return self._mutate("resume", actor, provider, change)

    def delay(self, provider: str, actor: str, hours: float = DEFAULT_DELAY_HOURS) -> dict[str, Any]:
        """No new runs for this provider for `hours` (default 24); it resumes by itself afterwards."""

        def change(who: str, config: ProviderConfig) -> dict[str, Any]:
            until = self.clock() + dt.timedelta(hours=self._hours(hours))
            self.ledger.set_controls(provider, actor=who, halted_until=until)
            return {"success": True, "message": f"{provider}: delayed until {until.isoformat()}.",
                    "controls": self._controls_json(provider), **self._warning_if_paused(provider)}

        return self._mutate("delay", actor, provider, change, hours=hours)

    def _warning_if_paused(self, provider: str) -> dict[str, Any]:
        if self.ledger.controls(provider)["paused"]:
            return {"warning": f"{provider} is also paused: it stays still after the delay until resumed"}
        return {}

    def halt_all(self, actor: str, hours: float = DEFAULT_DELAY_HOURS) -> dict[str, Any]:
        """Every configured provider: no new runs for `hours` (default 24)."""

        def change(who: str) -> dict[str, Any]:
            until = self.clock() + dt.timedelta(hours=self._hours(hours))
            for name in sorted(self.configs):
                self.ledger.set_controls(name, actor=who, halted_until=until)
            return {"success": True, "message": f"all providers halted until {until.isoformat()}.",
                    "providers": sorted(self.configs), "halted_until": until.isoformat()}

        return self._mutate("halt_all", actor, None, change, hours=hours)

    def resume_all(self, actor: str) -> dict[str, Any]:
        """Lift every halt and delay. Individually paused providers stay paused: a pause is a
        deliberate per-provider decision that a global resume should not overrule."""

        def change(who: str) -> dict[str, Any]:
            resumed, still_paused = [], []
            for name in sorted(self.configs):
                controls = self.ledger.controls(name)
                if controls["halted_until"] is not None:
                    self.ledger.set_controls(name, actor=who, halted_until=None)
                    resumed.append(name)
                if controls["paused"]:
                    still_paused.append(name)
            message = "all halts and delays lifted."
            if still_paused:
                message += f" Still paused (resume each): {', '.join(still_paused)}."
            return {"success": True, "message": message, "resumed": resumed, "paused": still_paused}

        return self._mutate("resume_all", actor, None, change)

    # ------------------------------------------------------------------------------ dispatch

    def run(self, operation: str, actor: str, provider: str | None = None, hours: float | None = None) -> dict[str, Any]:
        """Run a mutation by name (the Dagster job and scripts use this)."""
        if operation not in MUTATIONS:
            raise InvalidRequest(f"unknown operation {operation!r}; one of {', '.join(MUTATIONS)}")
        if operation in GLOBAL_OPERATIONS:
            if provider:
                raise InvalidRequest(f"{operation} applies to every provider: do not name one")
            args: list[Any] = [actor]
        else:
            if not provider:
                raise InvalidRequest(f"{operation} needs a provider")
            args = [provider, actor]
        kwargs = {"hours": hours} if operation in TIMED_OPERATIONS and hours is not None else {}
        return getattr(self, operation)(*args, **kwargs)
