"""Mastodon's HTTP conventions: request parameters, error answers, rate windows, `Link` paging."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from bot.sandbox.mastodon_store import paginate
from bot.sandbox.server import Clock, Request

# (limit, period in seconds) per bucket: docs api/rate-limits.md and the cassettes' headers.
RATE_LIMITS = {
    "api": (300, 5 * 60),  # every request, per account (or per address without a token)
    "statuses": (300, 3 * 3600),  # RateLimiter family :statuses, counted on creation only
    "media": (30, 30 * 60),  # POST /api/v{1,2}/media
    "deletes": (30, 30 * 60),  # DELETE /api/v1/statuses/:id and unreblog
}
FALSE_VALUES = ("0", "f", "false", "off", "")


class ApiError(Exception):
    """An answer that ends the request: Mastodon's `{"error": ...}` with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bucket_of(method: str, path: str) -> str:
    """The rate bucket whose numbers the answer's `X-RateLimit-*` headers show."""
    if method == "POST" and path in ("/api/v2/media", "/api/v1/media"):
        return "media"
    if (method == "DELETE" and path.startswith("/api/v1/statuses/")) or (
        method == "POST" and path.endswith("/unreblog")
    ):
        return "deletes"
    if method == "POST" and path == "/api/v1/statuses":
        return "statuses"
    return "api"


class AlignedWindows:
    """Rack::Attack's fixed windows: aligned on multiples of the period since the epoch.

    The reset is `now + (period - now % period)` with the request's fraction of a second kept,
    which is why the real `X-RateLimit-Reset` reads `2026-08-01T15:00:00.792409Z`.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._used: dict[tuple[str, str], tuple[int, int]] = {}

    def peek(self, account: str, bucket: str) -> tuple[int, int, datetime]:
        """(limit, remaining, reset_at) of the current window."""
        limit, period = RATE_LIMITS[bucket]
        now = self._clock()
        seconds = int(now.timestamp())
        window, used = self._used.get((account, bucket), (seconds // period, 0))
        if window != seconds // period:
            used = 0
        return limit, max(0, limit - used), now + timedelta(seconds=period - seconds % period)

    def spend(self, account: str, bucket: str) -> None:
        _, period = RATE_LIMITS[bucket]
        window = int(self._clock().timestamp()) // period
        seen, used = self._used.get((account, bucket), (window, 0))
        self._used[(account, bucket)] = (window, (used if seen == window else 0) + 1)

    def clear(self) -> None:
        self._used.clear()


def flag(value: str | None) -> bool:
    """Rails' boolean casting: `0`, `false`, `off` and the like are false, anything else true."""
    return value is not None and value.strip().lower() not in FALSE_VALUES


def int_arg(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def params_of(request: Request) -> dict[str, list[str]]:
    """Query, form or JSON parameters as lists of strings; `media_ids[]` and `media_ids` alike."""
    params: dict[str, list[str]] = {k.removesuffix("[]"): v for k, v in request.query.items()}
    content_type = request.headers.get("Content-Type", "")
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.body:
        if content_type.startswith("application/json"):
            for key, value in (request.json() or {}).items():
                if value is None:
                    continue  # JSON null: as if absent
                values = value if isinstance(value, list) else [value]
                params[key.removesuffix("[]")] = [
                    ("1" if v else "0") if isinstance(v, bool) else str(v) for v in values
                ]
        elif content_type.startswith("application/x-www-form-urlencoded"):
            params.update({k.removesuffix("[]"): v for k, v in request.form().items()})
    return params


def first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def page_of(
    request: Request,
    base_url: str,
    items: list[Any],
    key: Callable[[Any], str | int],
    *,
    default: int,
    maximum: int,
    carried: tuple[str, ...],
) -> tuple[list[Any], dict[str, str]]:
    """One page of `items` (newest first) and its `Link` header, as Mastodon builds them.

    The links keep the filters named in `carried` (as the client sent them), and, like Rails'
    `to_query`, sort the encoded parameters: `?max_id=23&types%5B%5D=follow&types%5B%5D=mention`.
    An empty page has no `Link`.
    """
    limit = max(1, min(int_arg(request.arg("limit")) or default, maximum))
    page = paginate(
        items,
        key,
        max_id=request.arg("max_id") or None,
        since_id=request.arg("since_id") or None,
        min_id=request.arg("min_id") or None,
        limit=limit,
    )
    if not page:
        return page, {}

    def link(core: str, value: str | int) -> str:
        pieces = [f"{core}={value}"]
        for name in carried:
            for values in (request.query.get(name),):
                if not values:
                    continue
                kept = values if name.endswith("[]") else values[:1]
                pieces.append("&".join(f"{quote(name, safe='')}={quote(v, safe='')}" for v in kept))
        return f"{base_url}{request.path}?{'&'.join(sorted(pieces))}"

    header = f'<{link("max_id", key(page[-1]))}>; rel="next", <{link("min_id", key(page[0]))}>; rel="prev"'
    return page, {"Link": header}
