"""How long a platform asks us to wait, read from the headers of its 429 answer.

Each network names its reset differently: X sends `x-rate-limit-reset` (epoch seconds), Bluesky
`ratelimit-reset` (epoch seconds) and sometimes `Retry-After`, Mastodon `X-RateLimit-Reset` (an
ISO 8601 time). The wait is measured against our injected clock, not the server's `Date`: the
sandbox emulators run on an injected clock while `http.server` stamps `Date` from the real one,
and a real server's skew only makes one retry early, which answers 429 again with a fresh reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime


def seconds_until_reset(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait before retrying, never negative; None when the answer names no reset."""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass  # an HTTP-date: fall through to the reset headers, which say the same
    reset = _parse_time(
        lowered.get("x-rate-limit-reset")
        or lowered.get("ratelimit-reset")
        or lowered.get("x-ratelimit-reset")
    )
    if reset is None:
        return None
    return max(0.0, (reset - now).total_seconds())


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    value = value.strip()
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError):
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
