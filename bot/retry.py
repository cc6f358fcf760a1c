"""One retry policy for every call that retries: a delivery, a retraction, a monitoring poll.

Waits double from a base delay up to a cap; a wait the platform names (a 429's reset) is taken
instead, clamped to a day, since a server can send `Retry-After: 1e300` or `inf`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_SERVER_WAIT = 24 * 3600.0  # a longer wait named by a server is a broken header, not advice


def server_wait(seconds: float | None) -> float | None:
    """A wait a server named, within [0, a day]; None when it named none, or not a number."""
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_SERVER_WAIT)


@dataclass(frozen=True)
class RetryPolicy:
    """How long one call keeps trying: `max_attempts` calls, `max_wait` seconds of waiting in all."""

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 120.0
    # A rate window on X is 15 minutes: a reset inside it is worth waiting for, one past it is not.
    max_wait: float = 15 * 60.0

    def backoff(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row: base, 2 × base, 4 × base, ... capped."""
        return float(min(self.max_delay, self.base_delay * 2.0 ** min(max(0, failures - 1), 64)))

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """The wait before the next call: the platform's own reset when it names one (never
        below the base delay), else the backoff."""
        reset = server_wait(retry_after)
        return max(reset, self.base_delay) if reset is not None else self.backoff(failures)

    def gives_up(self, failures: int, waited: float, delay: float) -> bool:
        """Whether to stop after `failures` failed calls, having waited `waited` seconds so far."""
        return failures >= self.max_attempts or waited + delay > self.max_wait
