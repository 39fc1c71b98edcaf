"""The one retry policy: which failures are retried, how long to wait, how many tries; and the one
loop (``run``) that applies it, to the token refresh and to every API request alike."""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pipelines.client.errors import ApiError

T = TypeVar("T")
log = logging.getLogger("whitespace.retry")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Transient answers. 500 is included because the platform reports passing faults as bare 500s;
Sync Gateway's 500 for a rejected refresh token is recognised by its reason and never retried."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    """Tries in all, the first included."""
    backoff_base: float = 0.5
    """Seconds before the second try; doubles each time, with equal jitter: a wait is at least half
    its ceiling (so retries never hammer a struggling server) and at most all of it (so many clients
    spread out)."""
    backoff_cap: float = 20.0
    retry_after_cap: float = 60.0
    """A ``Retry-After`` longer than this is cut down to it."""
    max_rate_limited: int = 20
    """A 429 that says when to come back (``Retry-After``) is waited out without using up a try, this
    many times at most: being asked to slow down is not a failure."""

    def delay(self, attempt: int, retry_after: str | None = None, now: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        hinted = parse_retry_after(retry_after, now)
        if hinted is not None:
            return min(hinted, self.retry_after_cap)
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def should_retry(self, attempt: int) -> bool:
        return attempt < self.max_attempts


def run(policy: RetryPolicy, attempt: Callable[[], T], what: str) -> T:
    """``attempt()`` until it returns, retrying the failures it marks transient (``ApiError.transient``:
    408, 429, 5xx, timeouts, dropped connections, bodies that are not whole JSON) with ``policy``'s
    waits; any other error, or the last try's, is raised as it is."""
    failures = limited = 0
    while True:
        try:
            return attempt()
        except ApiError as exc:
            retry_after = getattr(exc, "retry_after", None)
            if not exc.transient:
                raise
            if exc.status == 429 and retry_after:
                limited += 1
                if limited >= policy.max_rate_limited:
                    raise
            else:
                failures += 1
                if not policy.should_retry(failures):
                    raise
            wait = policy.delay(max(failures, 1), retry_after)
            log.warning("%s: %s; try %d of %d in %.1f s", what, exc, failures + 1, policy.max_attempts, wait)
            sleep(wait)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def sleep(seconds: float) -> None:
    """Indirection so tests can patch the waiting out."""
    time.sleep(seconds)
