"""Rate limits as the platforms state them in their answers' headers.

`seconds_until_reset`: how long a platform asks us to wait, read from the headers of its 429.
`budget_of`: what is left of an endpoint's window, from the headers of any answer (for `status`).

Each network names its reset differently: X sends `x-rate-limit-reset` (epoch seconds), Bluesky
`ratelimit-reset` (epoch seconds) and sometimes `Retry-After`, Mastodon `X-RateLimit-Reset` (an
ISO 8601 time). The wait is measured against our injected clock, not the server's `Date`: the
sandbox emulators run on an injected clock while `http.server` stamps `Date` from the real one,
and a real server's skew only makes one retry early, which answers 429 again with a fresh reset.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bot.retry import server_wait

log = logging.getLogger("bot.platforms.ratelimits")

# (limit, remaining, reset) header names: X, Bluesky, Mastodon (case does not matter).
_HEADER_SETS = (
    ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"),
    ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"),
    ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"),
)
# Ids in paths (X and Mastodon snowflakes, DIDs, @handles, and the letters-and-digits ids of
# other servers: GoToSocial's ULIDs, Pleroma's flake ids), so one endpoint is one budget row, not
# one per status; the API version (`/2`, `/v1`) is too short to be an id.
_ID_SEGMENT = re.compile(r"/(?:\d{3,}|did:[^/]+|@[^/]+|(?=[A-Za-z]*\d)[0-9A-Za-z]{10,})(?=/|$)")


@dataclass(frozen=True)
class RateBudget:
    """What an endpoint's rate window has left, as the platform last said."""

    endpoint: str  # "POST /2/tweets", "POST /xrpc/com.atproto.repo.createRecord", "GET /api/v1/statuses/:id"
    limit: int
    remaining: int
    reset_at: datetime | None


def endpoint_of(method: str, url: str) -> str:
    """The endpoint family of a request: method and path, with ids replaced by `:id`."""
    return f"{method.upper()} {_ID_SEGMENT.sub('/:id', urlsplit(url).path)}"


def budget_of(method: str, url: str, headers: Mapping[str, str]) -> RateBudget | None:
    """The budget an answer's headers state, or None when they state none."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for limit_name, remaining_name, reset_name in _HEADER_SETS:
        limit, remaining = lowered.get(limit_name), lowered.get(remaining_name)
        if limit is None or remaining is None:
            continue
        try:
            # Bluesky may add a policy after the number ("3000;w=300"): the number comes first.
            count, left = int(limit.split(";")[0]), int(remaining.split(";")[0])
        except ValueError:
            continue
        return RateBudget(endpoint_of(method, url), count, left, _parse_time(lowered.get(reset_name)))
    return None


def seconds_until_reset(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait before retrying, never negative; None when the answer names no reset."""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after is not None:
        try:
            return server_wait(float(retry_after))  # `inf`, `1e300`, `nan`: clamped or None
        except ValueError:
            pass  # an HTTP-date: fall through to the reset headers, which say the same
    reset = _parse_time(
        lowered.get("x-rate-limit-reset")
        or lowered.get("ratelimit-reset")
        or lowered.get("x-ratelimit-reset")
    )
    if reset is None:
        return None
    return server_wait((reset - now).total_seconds())


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


BudgetSink = Callable[[RateBudget], None]


def requests_budget_hook(sink: BudgetSink) -> Callable[..., None]:
    """A `requests` response hook (tweepy's and Mastodon.py's sessions) that reports budgets."""

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        _report(sink, response.request.method, response.url, response.headers)

    return hook


def httpx_budget_hook(sink: BudgetSink) -> Callable[[Any], None]:
    """An httpx response event hook (atproto's client) that reports budgets."""

    def hook(response: Any) -> None:
        _report(sink, response.request.method, str(response.request.url), response.headers)

    return hook


def _report(sink: BudgetSink, method: str, url: str, headers: Mapping[str, str]) -> None:
    budget = budget_of(method, url, headers)
    if budget is None:
        return
    try:
        sink(budget)
    except Exception:  # a budget note must never fail the call it rode on
        log.debug("could not record a rate budget", exc_info=True)
