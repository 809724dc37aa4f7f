"""`config/notifications.yaml`: channels, routing rules and delivery, as a pydantic model.

Parsed through `model.config_files` (every problem as `file:line: path: message`, unknown keys with
"did you mean"); `parse_notifications` adds the cross-field rules (channels named by
`default_channel` / `operators_channel` exist). No I/O here: `services.notify` reads the file and
resolves `url_env` through `settings.env_value`.

Channels live in this file, never in the catalog. A Group entity chooses one by *name* with the
annotation `catalog-pipelines.io/notify-channel: <channel>`: whoever can edit a catalog descriptor
can then only pick among the channels operators declared, not point the pipeline at an arbitrary
URL (an apprise URL carries tokens and reaches any host: a URL in an annotation would leak secrets
into the catalog and let a descriptor make the pipeline call any address). An unknown name, or no
annotation, means the `default_channel`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from catalog_pipelines.model import config_files
from catalog_pipelines.model.config_files import ConfigIssue

NOTIFY_CHANNEL_ANNOTATION = "catalog-pipelines.io/notify-channel"
OPERATORS = "operators"  # the recipient of operator notifications (ingestion, stale assets)
RULES = ("scorecard_regressions", "orphans", "campaign_deadlines", "survey_response_rate", "ingestion", "stale_assets")
_CHANNEL = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
ChannelName = Annotated[str, StringConstraints(pattern=_CHANNEL)]


class NotificationsConfigError(ValueError):
    """The notifications file is invalid: one `file:line: path: message` per problem (`issues`)."""

    def __init__(self, message: str, issues: list[ConfigIssue] | None = None):
        super().__init__(message)
        self.issues = issues or []


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelModel(_Strict):
    urls: list[str] = Field(default_factory=list, description="apprise URLs (mailto://, json://, slack://, msteams://, ...); "
                            "prefer url_env for any URL that holds a token")
    url_env: list[str] = Field(default_factory=list, description="names of environment variables, each holding one apprise URL")
    description: str | None = None

    @field_validator("urls")
    @classmethod
    def _has_scheme(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not re.match(r"^[a-z][a-z0-9+.-]*://", url):
                raise ValueError(f"{url!r} is not an apprise URL (scheme://...)")
        return urls


class _Rule(_Strict):
    enabled: bool = True


class RegressionsRule(_Rule):
    lookback_hours: int = Field(48, ge=1, description="regressions of evaluations this recent are considered (older ones were due earlier)")


class OrphansRule(_Rule):
    min_severity: Literal["error", "warning", "info"] = "error"
    categories: list[str] | None = Field(None, description="only these orphan report categories (default all)")
    remind_after_days: int | None = Field(None, ge=1, description="send a finding that is still open again after this many days (default never)")


class CampaignsRule(_Rule):
    lead_days: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [14, 3],
                                                         description="notify when the deadline is this many days away or closer (once per step)")


class SurveyRule(_Rule):
    pass


class IngestionRule(_Rule):
    lookback_hours: int = Field(24, ge=1, description="guard refusals and refused operations this recent")


class StaleRule(_Rule):
    pass


class RulesModel(_Strict):
    scorecard_regressions: RegressionsRule = RegressionsRule()
    orphans: OrphansRule = OrphansRule()
    campaign_deadlines: CampaignsRule = CampaignsRule()
    survey_response_rate: SurveyRule = SurveyRule()
    ingestion: IngestionRule = IngestionRule()
    stale_assets: StaleRule = StaleRule()


class DeliveryModel(_Strict):
    attempts: int = Field(3, ge=1, le=10, description="tries per digest before it is recorded as failed")
    backoff_seconds: float = Field(2.0, ge=0, description="wait before the second try; doubled each time")
    max_backoff_seconds: float = Field(30.0, ge=0)
    max_items_per_message: int = Field(50, ge=1, description="a digest lists at most this many items, then 'and N more'")


class NotificationsFile(_Strict):
    channels: dict[ChannelName, ChannelModel] = Field(default_factory=dict)
    default_channel: ChannelName = Field(description="the channel of a team whose Group has no (known) notify-channel annotation")
    operators_channel: ChannelName = Field(description="the channel of ingestion, provider and stale-asset notifications")
    rules: RulesModel = RulesModel()
    delivery: DeliveryModel = DeliveryModel()


def parse_notifications(doc: Any, source: str = "<notifications>") -> NotificationsFile:
    """Validate a decoded file (from `config_files.load_yaml`, for lines); raises
    NotificationsConfigError with every problem."""
    model, issues = config_files.validate(NotificationsFile, doc, source)
    if model is not None:
        for key in ("default_channel", "operators_channel"):
            name = getattr(model, key)
            if name not in model.channels:
                issues.append(ConfigIssue(source, config_files.line_of(doc, (key,)), f"{name!r} is not a declared channel"
                                          + config_files.did_you_mean(name, model.channels), key))
    if issues:
        raise NotificationsConfigError("\n".join(map(str, issues)), issues)
    return model  # type: ignore[return-value]


def parse_notifications_text(text: str, source: str) -> NotificationsFile:
    import yaml

    try:
        doc = config_files.load_yaml(text)
    except yaml.YAMLError as exc:
        issue = config_files.yaml_issue(exc, source)
        raise NotificationsConfigError(str(issue), [issue]) from exc
    return parse_notifications(doc if doc is not None else {}, source)
