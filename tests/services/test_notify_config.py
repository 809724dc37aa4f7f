"""config/notifications.yaml: the shipped file is valid; every problem names file, line and key."""

from __future__ import annotations

import pytest

from catalog_pipelines.services.notify_config import NotificationsConfigError, parse_notifications_text
from helpers import REPO_ROOT


def test_the_shipped_notifications_file_is_valid_and_keeps_urls_out_of_git():
    config = parse_notifications_text((REPO_ROOT / "config" / "notifications.yaml").read_text(), "config/notifications.yaml")
    assert config.operators_channel in config.channels and config.default_channel in config.channels
    assert all(not channel.urls and channel.url_env for channel in config.channels.values())
    assert config.rules.campaign_deadlines.lead_days == [14, 3]


@pytest.mark.parametrize("text, expected", [
    ("channels:\n  ops: {urls: [ops]}\ndefault_channel: ops\noperators_channel: ops\n",
     "n.yaml:2: channels.ops.urls: 'ops' is not an apprise URL (scheme://...)"),
    ("channels:\n  ops: {urls: ['json://x']}\ndefault_channel: ops\noperators_channel: opps\n",
     "n.yaml:4: operators_channel: 'opps' is not a declared channel (did you mean 'ops'?)"),
    ("channels:\n  ops: {urls: ['json://x']}\ndefault_channel: ops\noperators_channel: ops\nrules:\n  orphan: {}\n",
     "n.yaml:6: rules.orphan: unknown key 'orphan' (did you mean 'orphans'?)"),
    ("channels:\n  ops: {urls: ['json://x']}\ndefault_channel: ops\noperators_channel: ops\ndelivery:\n  attempts: 0\n",
     "n.yaml:6: delivery.attempts: Input should be greater than or equal to 1, got 0"),
    ("channels: [\n", "n.yaml:2: invalid YAML"),
])
def test_a_bad_notifications_file_names_file_line_and_key(text, expected):
    with pytest.raises(NotificationsConfigError) as caught:
        parse_notifications_text(text, "n.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)
