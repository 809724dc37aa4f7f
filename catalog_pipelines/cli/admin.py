"""`catalog-pipelines admin …`: the command-line door to the ingestion admin operations.

Every command calls `IngestionAdmin` (catalog_pipelines/services/admin.py), which checks the
permission for the acting identity and audits every mutation. The identity is `--as`, else
CATALOG_PIPELINES_ACTOR, else `user:default/<OS login>`. The CLI trusts that claim and asks for no
operator token: it runs with the catalog database's URL and credentials, so whoever can run it can
change the ledger and the audit log directly anyway; the permission check stops mistakes, and each
audit row also records the OS login (`os_user`) behind the claim. The HTTP routes and the Dagster
job are where identities are proven (operator tokens; docs/admin.md, "Trust model").

Exit codes: 0 done, 3 not permitted, 4 unknown provider, 2 bad usage.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

import click

from catalog_pipelines.cli.output import emit_json, table

ACTOR_ENV = "CATALOG_PIPELINES_ACTOR"


def os_login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def default_actor() -> str:
    from catalog_pipelines.settings import Settings

    actor = Settings.from_env().actor
    if actor:
        return actor
    return f"user:default/{os_login().lower()}"


class AdminFailure(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _admin(channel: str = "cli"):
    from catalog_pipelines.services.admin import IngestionAdmin
    from catalog_pipelines.ingestion.config import configured_providers
    from catalog_pipelines.permissions import StaticPolicy
    from catalog_pipelines.services.catalog import engine_from_env

    return IngestionAdmin(
        engine_from_env(),
        configured_providers(),
        StaticPolicy.from_env(),
        channel=channel,
        # The CLI's actor is a claim; the account that made it goes into every audit row.
        audit_context={"os_user": os_login()} if channel == "cli" else None,
    )


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from catalog_pipelines.services.admin import InvalidRequest, NotFound, PermissionDenied

    try:
        return fn(*args, **kwargs)
    except PermissionDenied as exc:
        raise AdminFailure(f"not permitted: {exc}", 3) from None
    except NotFound as exc:
        configured = sorted(getattr(getattr(fn, "__self__", None), "configs", {}))
        raise AdminFailure(f"{exc}; configured: {', '.join(configured) or 'none'}", 4) from None
    except InvalidRequest as exc:
        raise click.UsageError(str(exc)) from None


def _echo_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    click.echo(result.get("message") or ", ".join(f"{k}={v}" for k, v in result.items()))
    if result.get("warning"):
        click.echo(f"warning: {result['warning']}", err=True)


actor_option = click.option(
    "--as", "actor", default=default_actor, show_default=f"${ACTOR_ENV} or user:default/<login>",
    help="Identity to act as (an entity ref).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def admin() -> None:
    """Operate ingestion: status, trigger/start/cancel cycles, pause, delay, halt, reset, marks.

    The same operations as the HTTP routes (`admin serve`) and the Dagster job
    `ingestion_admin_job`. Mutations need catalog.ingestion.manage (config/permissions.yaml)
    and are written to the audit log.
    """


# ------------------------------------------------------------------------------------------ reads


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _when(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else ""


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@admin.command()
@click.argument("providers", nargs=-1)
@actor_option
@json_option
def status(providers: tuple[str, ...], actor: str, as_json: bool) -> None:
    """Every provider (or those named): state, health, cycle, attempts, next action, entities
    owned, last cycle duration and throughput, last error."""
    adm = _admin()
    if providers:
        reports = [_call(adm.report, p, actor) for p in providers]
    else:
        reports = _call(adm.reports, actor)
    if as_json:
        emit_json(reports)
        return
    if not reports:
        click.echo("no providers configured (CATALOG_PIPELINES_PROVIDERS)")
        return
    rows = [
        (
            r["provider"],
            r["state"] + ("" if r["healthy"] else " (UNHEALTHY)"),
            r["cycle"] or "",
            r["attempts"],
            _when(r["next_action_at"]),
            r["entities_owned"],
            _age(r["last_cycle_seconds"]),
            f"{r['last_cycle_entities_per_second']:,.0f}/s" if r["last_cycle_entities_per_second"] else "",
            _short(r["last_error"]),
        )
        for r in reports
    ]
    click.echo(table(rows, ["provider", "state", "cycle", "attempts", "next action at (UTC)", "entities",
                            "last cycle", "throughput", "last error"]))
    for r in reports:
        if not r["healthy"]:
            click.echo(f"\n{r['provider']}: {r['reason']}")


@admin.command()
@actor_option
@json_option
def providers(actor: str, as_json: bool) -> None:
    """The configured providers."""
    result = _call(_admin().providers, actor)
    if as_json:
        emit_json(result)
    else:
        click.echo("\n".join(result["providers"]) or "no providers configured")


@admin.command()
@actor_option
@json_option
def health(actor: str, as_json: bool) -> None:
    """Overall ingestion health; exits 1 when unhealthy."""
    result = _call(_admin().health, actor)
    if as_json:
        emit_json(result)
    elif result["healthy"]:
        click.echo("healthy")
    else:
        click.echo("UNHEALTHY")
        for name in result.get("duplicateIngestions", []):
            click.echo(f"  {name}: more than one unfinished cycle")
        for item in result.get("unhealthyProviders", []):
            click.echo(f"  {item['provider']} ({item['state']}): {item['reason']}")
    if not result["healthy"]:
        raise SystemExit(1)


@admin.command()
@click.argument("provider")
@actor_option
@json_option
def marks(provider: str, actor: str, as_json: bool) -> None:
    """The current cycle's chunk marks, newest first."""
    result = _call(_admin().marks, provider, actor)
    if as_json:
        emit_json(result)
        return
    records = result.get("records")
    if not records:
        click.echo(result.get("message") or "no marks yet in this cycle")
        return
    rows = [(m["sequence"], m["entity_count"], m["added"], m["changed"], m["unchanged"], m["rejected"],
             "yes" if m["done"] else "", m["duration_ms"], m["created_at"]) for m in records]
    click.echo(table(rows, ["chunk", "entities", "added", "changed", "unchanged", "rejected", "last", "ms", "written at"]))


# -------------------------------------------------------------------------------------- mutations


def _provider_command(name: str, method: str, help_text: str, *, confirm: str | None = None) -> None:
    @click.argument("provider")
    @actor_option
    @json_option
    def command(provider: str, actor: str, as_json: bool, **kwargs: Any) -> None:
        if confirm and not kwargs.pop("yes", False):
            click.confirm(confirm.format(provider=provider), abort=True)
        kwargs.pop("yes", None)
        adm = _admin()
        _echo_result(_call(getattr(adm, method), provider, actor), as_json)

    command.__doc__ = help_text
    if confirm:
        command = click.option("--yes", is_flag=True, help="Do not ask for confirmation.")(command)
    admin.command(name)(command)


_provider_command("trigger", "trigger", "Act now: end the provider's rest, backoff wait or pause between bursts.")
_provider_command("start", "start", "Start a brand-new cycle (a resting cycle completes, a running one is canceled).")
_provider_command("cancel", "cancel", "Cancel the running cycle; a new one starts at the next tick (unless paused).")
_provider_command("pause", "pause", "No new runs for the provider until `admin resume`.")
_provider_command("resume", "resume", "Lift the provider's pause and any delay or halt.")
_provider_command("clear-marks", "clear_marks", "Delete the chunk marks of the provider's finished cycles.")
_provider_command(
    "reset", "reset",
    "Purge the provider's ledger (cycles, marks, mark refs) and rest it for 24 h. Its entities stay.",
    confirm="Purge the ingestion ledger of {provider}?",
)


@admin.command()
@click.argument("provider")
@click.option("--hours", type=float, default=24.0, show_default=True, help="How long to hold the provider.")
@actor_option
@json_option
def delay(provider: str, hours: float, actor: str, as_json: bool) -> None:
    """No new runs for the provider for --hours; it resumes by itself afterwards."""
    _echo_result(_call(_admin().delay, provider, actor, hours=hours), as_json)


@admin.command("halt-all")
@click.option("--hours", type=float, default=24.0, show_default=True, help="How long to hold every provider.")
@actor_option
@json_option
def halt_all(hours: float, actor: str, as_json: bool) -> None:
    """Halt every provider for --hours (lift early with `admin resume-all`)."""
    _echo_result(_call(_admin().halt_all, actor, hours=hours), as_json)


@admin.command("resume-all")
@actor_option
@json_option
def resume_all(actor: str, as_json: bool) -> None:
    """Lift every halt and delay (individually paused providers stay paused)."""
    _echo_result(_call(_admin().resume_all, actor), as_json)


@admin.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@actor_option
@json_option
def cleanup(yes: bool, actor: str, as_json: bool) -> None:
    """Purge every provider's ingestion ledger and rest the configured ones for 24 h."""
    if not yes:
        click.confirm("Purge the ingestion ledger of every provider?", abort=True)
    _echo_result(_call(_admin().cleanup, actor), as_json)


# ---------------------------------------------------------------------------------------- serve


@admin.command()
@click.argument("identity")
def token(identity: str) -> None:
    """Make an operator token for IDENTITY (an entity ref) and print its configuration entry.

    The token goes to its owner (it proves who they are to the HTTP routes and the Dagster admin
    job); the entry `sha256:<digest>=IDENTITY` goes into CATALOG_PIPELINES_ADMIN_TOKENS
    (comma-separated) of `admin serve` and of the Dagster code location. The configuration then
    holds no secret.
    """
    from catalog_pipelines.permissions import TOKENS_ENV, PolicyError, new_token, normalize_actor, token_digest

    try:
        who = normalize_actor(identity)
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from None
    secret = new_token()
    click.echo(f"token (give it to {who}; it is not stored anywhere): {secret}")
    click.echo(f"{TOKENS_ENV} entry: {token_digest(secret)}={who}")


@admin.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=7008, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the HTTP admin routes under /api/catalog/incremental/ (Backstage's paths).

    Callers authenticate with `Authorization: Bearer <operator token>`; tokens map to identities
    through CATALOG_PIPELINES_ADMIN_TOKENS='sha256:<digest>=user:default/alice,…' (`admin token`
    makes a token and its entry). Refused requests are audited, at most 11 rows a minute.
    """
    import uvicorn

    from catalog_pipelines.web.admin import PREFIX, create_admin_app
    from catalog_pipelines.permissions import TOKENS_ENV, PolicyError, tokens_from_env

    try:
        tokens = tokens_from_env()
    except PolicyError as exc:
        raise click.UsageError(str(exc)) from None
    if not tokens:
        raise click.UsageError(f"no operator tokens configured: set {TOKENS_ENV}='sha256:<digest>=user:default/name,…' "
                               "(`catalog-pipelines admin token NAME` makes one)")
    adm = _admin(channel="http")
    click.echo(f"admin routes on http://{host}:{port}{PREFIX}/ for {len(tokens)} token(s); "
               f"policy {getattr(adm.authorizer, 'source', '?')}", err=True)
    uvicorn.run(create_admin_app(adm, tokens), host=host, port=port, log_level="info")
