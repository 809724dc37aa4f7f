"""Notifications: what the insights found, routed to the people who can act, one digest each.

Every door calls `run_notifications` (the `notifications` asset, `catalog-pipelines notify`). A run:

1. collects *items* from the stored insights, one rule each (config/notifications.yaml `rules:`):
   - `scorecard_regressions`: pass -> fail and certification levels lost (`SCORECARDS.regressions`,
     recent evaluations) to the entity's owner;
   - `orphans`: orphan report findings (`ORPHANS.report`, at least `min_severity`) to the group
     the report names (`notify_group`);
   - `campaign_deadlines`: a campaign `lead_days` or fewer days from its deadline, to every team
     with entities still open and to the campaign's owner (once per lead step);
   - `survey_response_rate`: a wave whose overall response rate collapsed, to the survey's `owner`,
     read only through the published, k-verified tables, and only rates about k or more
     respondents (`analytics.surveys.publication.k_violations` re-checks the rows used);
   - `ingestion`: walk-guard refusals of the removal sweep, failing and unhealthy providers
     (`ingestion.health`), refused ingestion admin operations (`storage.audit`), to operators;
   - `stale_assets`: insight assets past their declared freshness (`model.freshness`), to operators;
2. drops the items the sent-log (`storage.notifications`) says the recipient already has;
3. builds one digest per recipient (a team, or `operators`): at most one message per team per run;
4. resolves the recipient's channel: the Group's `catalog-pipelines.io/notify-channel` annotation
   names a channel of the YAML (else `default_channel`), operators use `operators_channel`;
5. sends each digest with apprise, retrying with exponential backoff, and records the outcome; a
   sent digest logs its items (one that reached only some of its channel's URLs logs them for those
   URLs, which the next run skips). Nothing here raises on a failed delivery: a receiver that is down
   costs at most `attempts` tries (apprise's own timeouts bound each) and is retried next run.

`dry_run` does steps 1-4 and returns what would be sent: nothing is sent or recorded.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog_pipelines.services.notify_config import NOTIFY_CHANNEL_ANNOTATION, OPERATORS, RULES, NotificationsFile

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy as sa

RULE_TITLES = {
    "scorecard_regressions": "Scorecard regressions",
    "orphans": "Orphaned and broken catalog entries",
    "campaign_deadlines": "Campaign deadlines approaching",
    "survey_response_rate": "Survey response rate collapsed",
    "ingestion": "Ingestion: guard refusals and provider failures",
    "stale_assets": "Stale insight assets",
}
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
GUARD_OUTCOMES = ("rejected-threshold", "rejected-empty", "skipped-incomplete", "walk-restarted")
DRY_RUN, SENT, FAILED, NO_URL = "dry-run", "sent", "failed", "no-url"

# (urls, title, body) -> (delivered, error); the default sends with apprise.
Sender = Callable[[str, str, str], tuple[bool, str | None]]


@dataclass(frozen=True)
class Item:
    """One thing to tell one recipient; `key` identifies it in the sent-log."""

    rule: str
    recipient: str
    key: str
    text: str


@dataclass
class Digest:
    recipient: str
    channel: str
    items: list[Item]
    max_items: int = 50
    urls: list[str] = field(default_factory=list, repr=False)  # never printed or stored (tokens)
    outcome: str = DRY_RUN
    attempts: int = 0
    backoff_seconds: float = 0.0
    error: str | None = None
    # URLs that hold every item now (this run, or an earlier run that failed on another URL), and
    # the item keys each URL already received before this run
    delivered_urls: list[str] = field(default_factory=list, repr=False)
    received: dict[str, set[str]] = field(default_factory=dict, repr=False)

    @property
    def title(self) -> str:
        n = len(self.items)
        return f"catalog-pipelines: {n} notification{'s' if n != 1 else ''} for {self.recipient}"

    @property
    def body(self) -> str:
        by_rule: dict[str, list[Item]] = defaultdict(list)
        for item in self.items:
            by_rule[item.rule].append(item)
        parts, shown = [], 0
        for rule in RULES:
            if rule not in by_rule:
                continue
            lines = []
            for item in by_rule[rule]:
                if shown >= self.max_items:
                    break
                lines.append(f"- {item.text}")
                shown += 1
            if lines:
                parts.append(f"{RULE_TITLES[rule]}\n" + "\n".join(lines))
        if shown < len(self.items):
            parts.append(f"... and {len(self.items) - shown} more")
        return "\n\n".join(parts) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {"recipient": self.recipient, "channel": self.channel, "title": self.title, "body": self.body,
                "items": [{"rule": i.rule, "key": i.key, "text": i.text} for i in self.items],
                "outcome": self.outcome, "attempts": self.attempts, "backoff_seconds": self.backoff_seconds, "error": self.error}


# ---------------------------------------------------------------------------------------------
# configuration


def config_path() -> Path:
    from catalog_pipelines.settings import Settings

    return Settings.from_env().notifications_config


def load_config(path: Path | None = None) -> NotificationsFile | None:
    """The notifications file (None when it does not exist). Raises NotificationsConfigError."""
    from catalog_pipelines.services.notify_config import parse_notifications_text

    path = path or config_path()
    if not path.exists():
        return None
    return parse_notifications_text(path.read_text(encoding="utf-8"), str(path))


def channel_urls(config: NotificationsFile, channel: str) -> list[str]:
    """The channel's apprise URLs: literal ones and those of its environment variables that are set."""
    from catalog_pipelines.settings import env_value

    declared = config.channels[channel]
    return [*declared.urls, *(url for name in declared.url_env if (url := env_value(name)))]


def team_channels(engine: "sa.Engine") -> dict[str, str]:
    """Group ref -> the channel name its `catalog-pipelines.io/notify-channel` annotation names."""
    from catalog_pipelines.model.refs import canonical_ref
    from catalog_pipelines.storage.catalog import CatalogStore

    out = {}
    for entity in CatalogStore(engine).iter_entities(kinds=["Group"]):
        meta = entity.get("metadata") or {}
        name = (meta.get("annotations") or {}).get(NOTIFY_CHANNEL_ANNOTATION)
        if isinstance(name, str) and name.strip():
            out[canonical_ref("group", meta.get("namespace"), meta.get("name", ""))] = name.strip()
    return out


# ---------------------------------------------------------------------------------------------
# the rules: stored insights -> items


def _utc(value: Any) -> datetime | None:
    import pandas as pd

    if value is None or (not isinstance(value, datetime) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


def _frame(engine: "sa.Engine", table: Any) -> "pd.DataFrame | None":
    from catalog_pipelines.storage.insights import read_frame

    frame = read_frame(engine, table)
    return frame if frame is not None and len(frame) else None


def regression_items(engine: "sa.Engine", config: NotificationsFile, now: datetime) -> list[Item]:
    import pandas as pd

    from catalog_pipelines.model.insight_tables import SCORECARDS

    rows = _frame(engine, SCORECARDS.regressions)
    if rows is None:
        return []
    cutoff = now - timedelta(hours=config.rules.scorecard_regressions.lookback_hours)
    at = pd.to_datetime(rows["evaluated_at"], utc=True, errors="coerce")
    rows = rows[at >= pd.Timestamp(cutoff)]
    checks = _frame(engine, SCORECARDS.checks)
    names = dict(zip(checks["check_id"], checks["name"])) if checks is not None else {}
    items = []
    for r in rows.itertuples(index=False):
        recipient = r.owner if isinstance(r.owner, str) and r.owner != "(unowned)" else OPERATORS
        if r.subject_type == "track":
            text = f"{r.entity_ref}: track {r.subject_id} level lost ({r.previous} -> {r.current})"
        else:
            label = names.get(r.subject_id, r.subject_id)
            text = f"{r.entity_ref}: check {label!s} ({r.subject_id}) {r.previous} -> {r.current}"
        items.append(Item("scorecard_regressions", recipient, f"regression:{r.evaluation_id}:{r.entity_ref}:{r.subject_type}:{r.subject_id}", text))
    return items


def orphan_items(engine: "sa.Engine", config: NotificationsFile, now: datetime) -> list[Item]:
    from catalog_pipelines.model.insight_tables import ORPHANS

    rule = config.rules.orphans
    report = _frame(engine, ORPHANS.report)
    if report is None:
        return []
    keep = report["severity"].map(SEVERITY_RANK).fillna(0) >= SEVERITY_RANK[rule.min_severity]
    if rule.categories is not None:
        keep &= report["category"].isin(rule.categories)
    items = []
    for r in report[keep].itertuples(index=False):
        recipient = r.notify_group if isinstance(r.notify_group, str) and r.notify_group else OPERATORS
        related = r.related_ref if isinstance(r.related_ref, str) else ""
        detail = f": {r.detail}" if isinstance(r.detail, str) and r.detail else ""
        items.append(Item("orphans", recipient, f"orphan:{r.category}:{r.ref}:{related}", f"[{r.severity}] {r.category} {r.ref}{detail}"))
    return items


def campaign_items(engine: "sa.Engine", config: NotificationsFile, now: datetime) -> list[Item]:
    from datetime import date

    from catalog_pipelines.model.insight_tables import SCORECARDS

    campaigns = _frame(engine, SCORECARDS.campaigns)
    members = _frame(engine, SCORECARDS.campaign_members)
    entities = _frame(engine, SCORECARDS.entities)
    steps = sorted(set(config.rules.campaign_deadlines.lead_days))
    if campaigns is None or members is None or not steps:
        return []
    owners = dict(zip(entities["entity_ref"], entities["owner"])) if entities is not None else {}
    items = []
    for c in campaigns.itertuples(index=False):
        deadline = date.fromisoformat(str(c.deadline)[:10])
        days_left = (deadline - now.date()).days
        step = next((d for d in steps if days_left <= d), None)
        if days_left < 0 or step is None:
            continue
        scope = members[members["campaign_id"] == c.campaign_id]
        open_ = scope[~scope["done"].astype(bool)]
        if open_.empty:
            continue
        key = f"campaign:{c.campaign_id}:{deadline.isoformat()}:{step}"
        when = f"deadline {deadline.isoformat()} ({days_left} day{'s' if days_left != 1 else ''} left)"
        per_team = open_.assign(owner=open_["entity_ref"].map(owners).fillna(OPERATORS)).groupby("owner")
        for owner, rows in per_team:
            total = int(scope["entity_ref"].map(owners).eq(owner).sum())
            examples = ", ".join(sorted(rows["entity_ref"])[:5]) + (", ..." if len(rows) > 5 else "")
            items.append(Item("campaign_deadlines", str(owner), key,
                              f"campaign {c.name!s}: {len(rows)} of your {total} entities still open, {when}: {examples}"))
        if isinstance(c.owner, str) and c.owner:
            done = int(scope["done"].astype(bool).sum())
            items.append(Item("campaign_deadlines", c.owner, key,
                              f"campaign {c.name!s} (you own it): {done} of {len(scope)} entities done, {len(open_)} open, {when}"))
    return items


def survey_items(engine: "sa.Engine", config: NotificationsFile, now: datetime) -> list[Item]:
    """Collapsed response rates, from figures about k or more respondents only.

    Read through `services.surveys.published_table` (which refuses tables that break the k rule);
    every wave row whose total is suppressed, about fewer than k respondents or about nobody
    invited loses its rate before the collapse test, and the rows a message quotes pass
    `k_violations` again. A survey without `owner` goes to operators."""
    import pandas as pd

    from analytics.surveys.config import load_surveys
    from analytics.surveys.publication import k_violations
    from analytics.surveys.trends import response_rate_collapses
    from catalog_pipelines.model.insight_tables import SURVEYS
    from catalog_pipelines.services.surveys import SurveysUnavailable, published_table, surveys_config_dir

    try:
        waves = published_table(SURVEYS.waves, engine)
    except SurveysUnavailable:
        return []
    definitions = {s.id: s for s in load_surveys(surveys_config_dir())}
    respondents = pd.to_numeric(waves["respondents"], errors="coerce")
    invited = pd.to_numeric(waves["invited"], errors="coerce")
    suppressed = waves["suppressed"].fillna(True).astype(bool) if "suppressed" in waves.columns else False
    shown = ~suppressed & respondents.notna() & (respondents >= waves["min_group_size"]) & (invited > 0)
    waves = waves.assign(response_rate=waves["response_rate"].where(shown))
    items = []
    for survey_id, frame in waves.groupby("survey"):
        survey = definitions.get(survey_id)
        if survey is None:
            continue
        for c in response_rate_collapses(frame, survey.collapse).itertuples(index=False):
            quoted = frame[frame["wave"].isin([c.wave, c.previous_wave]) & frame["response_rate"].notna()]
            if k_violations({"waves": quoted}):  # pragma: no cover - the filter above makes this unreachable
                continue
            text = f"survey {survey.title}, wave {c.wave}: response rate {c.response_rate:.0f}% ({c.reason})"
            items.append(Item("survey_response_rate", survey.owner or OPERATORS, f"survey-collapse:{survey_id}:{c.wave}", text))
    return items


def ingestion_items(engine: "sa.Engine", config: NotificationsFile, now: datetime) -> list[Item]:
    from catalog_pipelines.ingestion.config import ConfigError, load_providers
    from catalog_pipelines.ingestion.health import provider_health_report
    from catalog_pipelines.settings import Settings
    from catalog_pipelines.storage.audit import entries
    from catalog_pipelines.storage.catalog import CatalogStore
    from catalog_pipelines.storage.ledger import Ledger

    cutoff = now - timedelta(hours=config.rules.ingestion.lookback_hours)
    ledger, store = Ledger(engine), CatalogStore(engine)
    try:
        configs = {c.name: c for c in load_providers(Settings.from_env().providers_config)}
    except ConfigError:
        configs = {}
    items = []
    for name in ledger.providers():
        if name in configs:
            health = provider_health_report(ledger, store, configs[name], now=now)
            cycle = health["cycle"]
            if not health["healthy"]:
                items.append(Item("ingestion", OPERATORS, f"provider-unhealthy:{name}:{cycle}:{health['state']}",
                                  f"provider {name} is unhealthy ({health['state']}, cycle {cycle}): {health['reason']}"))
            elif health["attempts"] and health["last_error"]:
                items.append(Item("ingestion", OPERATORS, f"provider-failing:{name}:{cycle}",
                                  f"provider {name} is failing (cycle {cycle}, {health['attempts']} attempt(s)): {health['last_error']}"))
        for ingestion in ledger.history(name, limit=5):
            ended = ingestion.ingestion_completed_at or ingestion.created_at
            if ingestion.sweep_outcome in GUARD_OUTCOMES and ended is not None and _utc(ended) >= cutoff:
                why = f": {ingestion.sweep_message}" if ingestion.sweep_message else ""
                items.append(Item("ingestion", OPERATORS, f"guard:{name}:{ingestion.cycle}:{ingestion.sweep_outcome}",
                                  f"provider {name} cycle {ingestion.cycle}: removal sweep {ingestion.sweep_outcome}{why}"))
    for entry in entries(engine, action_prefix="ingestion.", since=cutoff):
        if entry.outcome == "denied":
            reason = entry.details.get("reason") or entry.details.get("error") or ""
            items.append(Item("ingestion", OPERATORS, f"audit:{entry.id}",
                              f"refused {entry.action} on {entry.target} by {entry.actor}" + (f": {reason}" if reason else "")))
    return items


def stale_items(engine: "sa.Engine", config: NotificationsFile, now: datetime, materialized: Mapping[str, datetime] | None) -> list[Item]:
    from catalog_pipelines.model.freshness import FRESHNESS, STALE, statuses

    if materialized is None:
        return []
    items = []
    for name, state in statuses(materialized, now).items():
        if state.state == STALE and state.last is not None and state.stale_since is not None:
            items.append(Item("stale_assets", OPERATORS, f"stale:{name}:{state.last.isoformat()}",
                              f"{name}: stale since {state.stale_since:%Y-%m-%d %H:%M} UTC, last materialised "
                              f"{state.last:%Y-%m-%d %H:%M} UTC ({FRESHNESS[name].describe()})"))
    return items


def collect_items(engine: "sa.Engine", config: NotificationsFile, *, now: datetime,
                  materialized: Mapping[str, datetime] | None = None) -> tuple[list[Item], list[str]]:
    """Every enabled rule's items, and one warning per rule that could not run (the others still do)."""
    rules: dict[str, Callable[[], list[Item]]] = {
        "scorecard_regressions": lambda: regression_items(engine, config, now),
        "orphans": lambda: orphan_items(engine, config, now),
        "campaign_deadlines": lambda: campaign_items(engine, config, now),
        "survey_response_rate": lambda: survey_items(engine, config, now),
        "ingestion": lambda: ingestion_items(engine, config, now),
        "stale_assets": lambda: stale_items(engine, config, now, materialized),
    }
    items: list[Item] = []
    warnings = []
    if materialized is None and config.rules.stale_assets.enabled:
        warnings.append("stale_assets: asset materialisation times unavailable (no Dagster instance), not checked")
    for rule, collect in rules.items():
        if not getattr(config.rules, rule).enabled:
            continue
        try:
            items += collect()
        except Exception as exc:  # noqa: BLE001 - one broken area must not silence the others
            warnings.append(f"{rule}: not evaluated ({type(exc).__name__}: {exc})")
    return items, warnings


# ---------------------------------------------------------------------------------------------
# digests


def pending(engine: "sa.Engine", config: NotificationsFile, items: Sequence[Item], now: datetime) -> tuple[list[Item], int]:
    """Items the sent-log does not hold for their recipient (orphan reminders: not within
    `remind_after_days`), each (recipient, key) once; and how many were dropped as already sent."""
    from catalog_pipelines.storage.notifications import already_sent

    unique = list({(i.recipient, i.key): i for i in items}.values())
    remind = config.rules.orphans.remind_after_days
    since = now - timedelta(days=remind) if remind else None
    plain = [(i.recipient, i.key) for i in unique if not (since and i.rule == "orphans")]
    reminders = [(i.recipient, i.key) for i in unique if since and i.rule == "orphans"]
    sent = already_sent(engine, plain) | (already_sent(engine, reminders, since=since) if reminders else set())
    out = [i for i in unique if (i.recipient, i.key) not in sent]
    return out, len(unique) - len(out)


def build_digests(config: NotificationsFile, items: Sequence[Item], channels_of_teams: Mapping[str, str]) -> tuple[list[Digest], list[str]]:
    """One digest per recipient, with its channel: operators -> `operators_channel`; a team ->
    its annotation's channel when the YAML declares it, else `default_channel`."""
    by_recipient: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_recipient[item.recipient].append(item)
    digests, warnings = [], []
    for recipient in sorted(by_recipient):
        if recipient == OPERATORS:
            channel = config.operators_channel
        else:
            named = channels_of_teams.get(recipient)
            channel = named if named in config.channels else config.default_channel
            if named and named not in config.channels:
                warnings.append(f"{recipient}: annotation {NOTIFY_CHANNEL_ANNOTATION} names unknown channel {named!r}; using {channel!r}")
        digests.append(Digest(recipient, channel, by_recipient[recipient], config.delivery.max_items_per_message,
                              urls=channel_urls(config, channel)))
    return digests, warnings


# ---------------------------------------------------------------------------------------------
# delivery


def destination(recipient: str, url: str) -> str:
    """The sent-log name of one URL of a recipient's channel: a digest that reached some URLs and
    not others logs its items under the URLs it reached, so the next run resends to the others
    only. The URL appears only as a hash (it may hold a token)."""
    import hashlib

    return f"{recipient} via url:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def apprise_send(url: str, title: str, body: str) -> tuple[bool, str | None]:
    """Send one message to one apprise URL; (delivered, what apprise logged when it was not)."""
    import logging

    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return False, f"not a usable apprise URL (scheme {url.split('://', 1)[0]!r})"
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as logs:
        delivered = notifier.notify(title=title, body=body)
    if delivered:
        return True, None
    lines = [line.strip() for line in logs.getvalue().splitlines() if line.strip()]
    return False, (lines[-1] if lines else "delivery failed")[:500]


def deliver(digest: Digest, config: NotificationsFile, *, send: Sender = apprise_send,
            sleep: Callable[[float], None] = time.sleep) -> Digest:
    """Send the digest to each of its channel's URLs, each retried with exponential backoff
    (`delivery.attempts`, `backoff_seconds` doubling up to `max_backoff_seconds`); `sleep` is the
    wait (tests record it). Never raises: the outcome and the last error land on the digest."""
    policy = config.delivery
    if not digest.urls:
        digest.outcome, digest.error = NO_URL, f"channel {digest.channel!r} has no URL configured (urls / url_env)"
        return digest
    errors = []
    for url in digest.urls:
        received = digest.received.get(url, set())
        items = [i for i in digest.items if i.key not in received]
        if not items:  # an earlier run reached this URL with all of it
            digest.delivered_urls.append(url)
            continue
        part = digest if len(items) == len(digest.items) else Digest(digest.recipient, digest.channel, items, digest.max_items)
        title, body = part.title, part.body
        for attempt in range(1, policy.attempts + 1):
            digest.attempts += 1
            try:
                delivered, error = send(url, title, body)
            except Exception as exc:  # noqa: BLE001 - a sender bug must not fail the pipeline
                delivered, error = False, f"{type(exc).__name__}: {exc}"
            if delivered:
                digest.delivered_urls.append(url)
                break
            if attempt < policy.attempts:
                wait = min(policy.backoff_seconds * 2 ** (attempt - 1), policy.max_backoff_seconds)
                digest.backoff_seconds += wait
                sleep(wait)
        else:
            errors.append(error or "delivery failed")
    digest.outcome = FAILED if errors else SENT
    digest.error = "; ".join(errors) or None
    return digest


def run_notifications(
    engine: "sa.Engine",
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    materialized: Mapping[str, datetime] | None = None,
    config: NotificationsFile | None = None,
    send: Sender = apprise_send,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One notification run (see the module docstring); returns what happened, as data:
    `digests` (each with recipient, channel, title, body, items, outcome), `already_sent`,
    `warnings`, `dry_run`. Raises NotificationsConfigError for an invalid file only."""
    from catalog_pipelines.storage.notifications import already_sent, record_delivery

    now = now or datetime.now(timezone.utc)
    config = config or load_config()
    if config is None:
        return {"dry_run": dry_run, "digests": [], "already_sent": 0, "items": 0,
                "warnings": [f"no notifications file at {config_path()}: nothing to do"]}
    items, warnings = collect_items(engine, config, now=now, materialized=materialized)
    fresh, skipped = pending(engine, config, items, now)
    digests, routing = build_digests(config, fresh, team_channels(engine) if fresh else {})
    warnings += routing
    for digest in digests:
        if dry_run:
            continue
        if len(digest.urls) > 1:  # what an earlier, partly failed run already brought to each URL
            names = {destination(digest.recipient, url): url for url in digest.urls}
            logged = already_sent(engine, [(name, i.key) for name in names for i in digest.items])
            for name, key in logged:
                digest.received.setdefault(names[name], set()).add(key)
        deliver(digest, config, send=send, sleep=sleep)
        if digest.outcome in (SENT, FAILED):
            # sent: the recipient has every item; failed: only the URLs it reached have them
            logged_as = None if digest.outcome == SENT else [destination(digest.recipient, url) for url in digest.delivered_urls]
            record_delivery(engine, recipient=digest.recipient, channel=digest.channel, title=digest.title,
                            items=[(i.rule, i.key) for i in digest.items], outcome=digest.outcome,
                            attempts=digest.attempts, backoff_seconds=digest.backoff_seconds, error=digest.error, at=now,
                            logged_as=logged_as)
        else:
            warnings.append(f"{digest.recipient}: {digest.error}; not sent")
    return {"dry_run": dry_run, "digests": [d.as_dict() for d in digests], "already_sent": skipped, "items": len(items), "warnings": warnings}
