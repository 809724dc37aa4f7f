"""The project's retry policy, the pure part: how long to wait before the next attempt.

Used by every HTTP client of the project (`providers.backstage_api`, `collectors.apis.http`), which
keep the I/O (sending, sleeping) to themselves and ask this module only for numbers:

- `backoff_delay`: exponential backoff with "equal jitter" (between half and all of the capped
  delay). Jitter spreads the retries of many workers; keeping the lower half avoids near-zero waits
  that would hammer a server that is already failing.
- `parse_retry_after`: a `Retry-After` header value (seconds, or an HTTP date per RFC 9110 §10.2.3)
  as seconds from `now`; None when absent or unparseable (the caller falls back to its backoff).
- `rate_limit_wait`: GitHub's primary rate limit (`x-ratelimit-remaining: 0` and
  `x-ratelimit-reset`, epoch seconds): how long until the window resets; None when not exhausted.
- `server_wait`: what the server asks for, `Retry-After` first, then the rate-limit reset.

No project imports, no I/O: the model layer.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone

RETRY_AFTER = "retry-after"
RATELIMIT_REMAINING = "x-ratelimit-remaining"
RATELIMIT_RESET = "x-ratelimit-reset"


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries after the first attempt (so at most `max_retries + 1` tries); backoff
    `backoff_base * 2**(retry - 1)` capped at `backoff_max`, with equal jitter; a server asking for
    a wait longer than `max_retry_after` is not waited for in-process (the caller fails and resumes
    from its cursor later)."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {self.max_retries}")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return backoff_delay(attempt, self.backoff_base, self.backoff_max, rng)


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """The wait after failed attempt number `attempt` (1-based): between half and all of
    `min(cap, base * 2**(attempt - 1))`."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from `now` (epoch seconds) for a `Retry-After` value, never negative."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """GitHub-style exhausted rate limit: seconds until `x-ratelimit-reset` when
    `x-ratelimit-remaining` is 0, else None. `headers` must look keys up case-insensitively
    (httpx.Headers does) or carry them in lower case."""
    remaining = headers.get(RATELIMIT_REMAINING)
    reset = headers.get(RATELIMIT_RESET)
    if remaining is None or reset is None:
        return None
    try:
        if int(remaining.strip()) > 0:
            return None
        return max(0.0, float(reset.strip()) - now)
    except ValueError:
        return None


def server_wait(headers: Mapping[str, str], now: float) -> float | None:
    """What the server asks to wait: `Retry-After` first (GitHub documents it for secondary rate
    limits, Jira and PagerDuty for 429), then an exhausted rate-limit window's reset."""
    wait = parse_retry_after(headers.get(RETRY_AFTER), now)
    return wait if wait is not None else rate_limit_wait(headers, now)
