"""The pure retry policy (`model.retry`) shared by the Backstage provider and the API collectors."""

from __future__ import annotations

import email.utils
import random

import pytest

from catalog_pipelines.model.retry import RetryPolicy, backoff_delay, parse_retry_after, rate_limit_wait, server_wait

NOW = 1_800_000_000.0


@pytest.mark.parametrize("attempt,low,high", [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (10, 5.0, 10.0)])
def test_backoff_is_between_half_and_all_of_the_capped_exponential_delay(attempt, low, high):
    rng = random.Random(1)
    delays = [backoff_delay(attempt, 0.5, 10, rng) for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high


def test_retry_after_in_seconds_as_an_http_date_and_unparseable():
    assert parse_retry_after("7", NOW) == 7.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    assert parse_retry_after(email.utils.formatdate(NOW + 90, usegmt=True), NOW) == 90.0
    assert parse_retry_after(email.utils.formatdate(NOW - 90, usegmt=True), NOW) == 0.0  # in the past
    assert parse_retry_after("soon", NOW) is None and parse_retry_after(None, NOW) is None


def test_github_rate_limit_waits_for_the_reset_only_when_the_window_is_exhausted():
    assert rate_limit_wait({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}, NOW) == 30.0
    assert rate_limit_wait({"x-ratelimit-remaining": "12", "x-ratelimit-reset": str(int(NOW) + 30)}, NOW) is None
    assert rate_limit_wait({}, NOW) is None


def test_retry_after_wins_over_the_rate_limit_reset():
    headers = {"retry-after": "5", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 300)}
    assert server_wait(headers, NOW) == 5.0


def test_a_negative_retry_count_is_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
