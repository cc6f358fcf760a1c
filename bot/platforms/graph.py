"""A thin client of Meta's Graph API on `requests`, shared by the Facebook and Instagram adapters.

Why not python-facebook-api (docs/decisions.md, Platforms): it has no publishing helpers to
gain, never checks the HTTP status, and raises bare KeyError/TypeError on answers a real server
sends (no Content-Type, an unknown key in a usage header). This client sends what the Graph API
documents (docs/platforms.md, Facebook) and turns every answer into a dict or one of our errors:

    codes 1, 2, is_transient, 5xx, timeouts   Transient (the write may have landed: look first)
    Instagram subcodes 2207001/3/27/32         Transient (its error table says retry)
    Instagram subcode 2207042 (24 h quota)     RateLimited, an hour
    codes 4, 17, 32, 341, 613, 80001-6        RateLimited, waiting `estimated_time_to_regain_access`
    codes 102, 104, 190, 10, 200-299           AuthFailed (the token is refused or lacks a permission)
    code 506 (duplicate status message)        Duplicate (a sign an earlier call landed)
    code 368 (blocked for policy) and others   Rejected (never retried; the courier alerts)

Tokens and the app secret never enter a message: errors carry the Graph message and code only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from bot.errors import AuthFailed, Duplicate, PlatformError, RateLimited, Rejected, Transient
from bot.platforms.ratelimits import BudgetSink, RateBudget
from bot.retry import server_wait

DEFAULT_VERSION = "v27.0"
_VERSION = re.compile(r"/(v\d+\.\d+)/?$")
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80001, 80002, 80003, 80004, 80005, 80006})
AUTH_CODES = frozenset({102, 104, 190, 10, *range(200, 300)})
MAX_ERROR_TEXT = 300
# Instagram's publishing errors whose table says retry (server error, download timed out,
# container creation failed, not ready yet); the quota error waits an hour and tries again.
IG_RETRY_SUBCODES = frozenset({2207001, 2207003, 2207032, 2207027})
IG_QUOTA_SPENT = 2207042
IG_QUOTA_WAIT = 3600.0


def split_version(base_url: str) -> tuple[str, str]:
    """`https://graph.facebook.com/v27.0` -> (`https://graph.facebook.com`, `v27.0`); else the default."""
    match = _VERSION.search(base_url)
    if match is None:
        return base_url.rstrip("/"), DEFAULT_VERSION
    return base_url[: match.start()].rstrip("/"), match.group(1)


class GraphClient:
    """Calls on one host and version with one token; thread-safe (one `requests.Session`)."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        *,
        label: str,
        timeout: float,
        now: Callable[[], datetime],
        app_secret: str | None = None,
        on_budget: BudgetSink | None = None,
    ) -> None:
        self.root, self.version = split_version(base_url)
        self.label = label  # "Facebook": the start of every error message
        self._token = access_token
        self._proof = (
            hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()
            if app_secret
            else None
        )
        self._timeout = timeout
        self._now = now
        self._on_budget = on_budget
        self._blocked_until: datetime | None = None  # Meta's estimate of when calls work again
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "campaign-bot"

    def __repr__(self) -> str:
        return f"GraphClient({self.root}/{self.version})"  # never the token

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, **params: str) -> dict[str, Any]:
        return self.call("GET", path, params=params)

    def post(
        self, path: str, data: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]] | None = None
    ) -> dict[str, Any]:
        return self.call("POST", path, data=data, files=files)

    def delete(self, path: str) -> None:
        """Delete an object; one already gone (no such object, code 100/33) counts as deleted."""
        try:
            self.call("DELETE", path)
        except Rejected as exc:
            if "(code 100/33)" not in str(exc):
                raise

    def pages(self, path: str, pages: int, **params: str) -> Iterator[dict[str, Any]]:
        """The items of a list, page by page through `after` cursors, at most `pages` calls.

        Only the cursor of `paging.next` is followed: never its host nor the token it embeds.
        A page can be empty and still have a next one, so the end is when `next` is gone.
        """
        after: str | None = None
        for _ in range(pages):
            answer = self.get(path, **params, **({"after": after} if after else {}))
            data = answer.get("data")
            yield from (item for item in data if isinstance(item, dict)) if isinstance(data, list) else ()
            paging = answer.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) and paging.get("next") else None
            if not isinstance(after, str) or not after:
                return

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        blocked = self._blocked_until
        if blocked is not None and self._now() < blocked:
            # Meta: once limited, stop calling; every call made meanwhile extends the block.
            wait = (blocked - self._now()).total_seconds()
            raise RateLimited(f"{self.label}: rate limited, waiting as Meta estimated", retry_after=wait)
        # The token goes in the Authorization header (the API takes `Bearer` as well as the
        # `access_token` parameter), so no URL, and no error message quoting one, carries it.
        query, form = dict(params or {}), dict(data or {})
        if self._proof:
            (form if method == "POST" else query)["appsecret_proof"] = self._proof
        url = f"{self.root}/{self.version}/{path.lstrip('/')}"
        try:
            response = self._session.request(
                method,
                url,
                params=query,
                data=form or None,
                files=files,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise Transient(f"{self.label}: {type(exc).__name__}") from exc
        self._note_usage(response.headers)
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = dict(body["error"])
            error["message"] = str(error.get("message") or "").replace(self._token, "[token]")
            raise translate_error(self.label, error, response.status_code, response.headers)
        if response.status_code >= 500 or (response.status_code < 400 and not isinstance(body, dict)):
            # A write answered with nothing readable may have landed: the caller looks first.
            raise Transient(f"{self.label} {response.status_code}: unreadable answer")
        if response.status_code >= 400:
            raise Rejected(f"{self.label} {response.status_code}: {response.reason}")
        assert isinstance(body, dict)
        return body

    def _note_usage(self, headers: Mapping[str, str]) -> None:
        """Pace by the usage headers: no call until `estimated_time_to_regain_access` has passed,
        and the highest percentage to `status` as a budget."""
        usage = usage_of(headers)
        if usage is None:
            return
        percent, minutes = usage
        wait = server_wait(minutes * 60) if minutes else None
        reset_at = self._now() + timedelta(seconds=wait) if wait else None
        self._blocked_until = reset_at
        if self._on_budget is None:
            return
        budget = RateBudget(f"{self.label} Graph API usage (%)", 100, max(0, 100 - percent), reset_at)
        with contextlib.suppress(Exception):  # a budget note must never fail the call it rode on
            self._on_budget(budget)


def usage_of(headers: Mapping[str, str]) -> tuple[int, float] | None:
    """(the highest usage percentage, the longest `estimated_time_to_regain_access` in minutes)
    of the `X-App-Usage` and `X-Business-Use-Case-Usage` headers; None when neither is readable.
    Their absence is normal: they appear only once enough calls were made."""
    lowered = {k.lower(): v for k, v in headers.items()}
    entries: list[Mapping[str, Any]] = []
    for name in ("x-app-usage", "x-page-usage", "x-business-use-case-usage"):
        try:
            value = json.loads(lowered.get(name) or "null")
        except ValueError:
            continue
        if isinstance(value, dict) and name != "x-business-use-case-usage":
            entries.append(value)
        elif isinstance(value, dict):
            entries.extend(e for group in value.values() if isinstance(group, list) for e in group)
    numbers = [e for e in entries if isinstance(e, dict)]
    if not numbers:
        return None
    percent = max(_number(e.get(k)) for e in numbers for k in ("call_count", "total_cputime", "total_time"))
    minutes = max(_number(e.get("estimated_time_to_regain_access")) for e in numbers)
    return int(percent), minutes


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def translate_error(
    label: str, error: Mapping[str, Any], status: int, headers: Mapping[str, str]
) -> PlatformError:
    """A Graph error envelope as one of ours, with its message and code (never a token)."""
    code = error.get("code")
    code = code if isinstance(code, int) else -1
    subcode = error.get("error_subcode")
    text = str(error.get("message") or "no message")[:MAX_ERROR_TEXT]
    message = f"{label} {status}: {text} (code {code}" + (f"/{subcode})" if subcode else ")")
    if code in RATE_LIMIT_CODES:
        usage = usage_of(headers)
        wait = server_wait(usage[1] * 60) if usage is not None and usage[1] else None
        return RateLimited(message, retry_after=wait)
    if subcode == IG_QUOTA_SPENT:  # Instagram's 24-hour publishing quota: wait, do not fail
        return RateLimited(f"{message}: the publishing quota is spent", retry_after=IG_QUOTA_WAIT)
    if code in (1, 2) or status >= 500 or subcode in IG_RETRY_SUBCODES:
        return Transient(message)
    if code in AUTH_CODES:
        return AuthFailed(message)
    if code == 506:
        return Duplicate(message)
    if code == 368:
        return Rejected(f"{message}: blocked for policy; not retried")
    if error.get("is_transient") is True:
        return Transient(message)
    return Rejected(message)


# -- reading answers (Facebook and Instagram alike) -----------------------------------------

_HASHTAG = re.compile(r"(?<![\w#＃&])[#＃](\w*[^\W\d_]\w*)")


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def graph_time(value: object) -> datetime | None:
    """`2019-05-17T16:24:04+0000` (or any ISO time) as an aware datetime; None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("+0000", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def hashtags_in(text: str) -> tuple[str, ...]:
    """Tags as written, without '#': Graph texts carry no tag entities."""
    return tuple(dict.fromkeys(_HASHTAG.findall(text)))


def normalized(text: str) -> str:
    """A text as compared with the one we sent: NFC, LF line ends, no outer blanks."""
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()
