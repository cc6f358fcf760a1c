"""Mastodon (and servers of the same API) through Mastodon.py.

Mastodon.py is built with `ratelimit_method="throw"` (its default sleeps, unbounded, inside the
call; retries are the scheduler's job) and with `mastodon_version="4.3.0",
version_check_mode="created"`: that skips the instance probe, yet still makes `media_post` use
`/api/v2/media` (in mode "none" a given version is never parsed and the legacy v1 route is used).

A Mastodon.py instance is not thread-safe: it keeps the last answer's rate limit on itself, unlocked
(`ratelimit_reset` is set, then `+=` the server's clock skew, then set to None once past), and a
thread that meets another's None raises MastodonRatelimitError, even for a 200 (a status that was
posted, reported as rate limited). So each thread gets its own instance over the one shared session.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
    MastodonVersionError,
)

from bot.campaign.images import inspect_image
from bot.campaign.model import Account, Platform
from bot.errors import AuthFailed, PlatformError, RateLimited, Rejected, Transient
from bot.platforms import (
    Batch,
    Media,
    Mention,
    Outgoing,
    PlatformClient,
    Published,
    answer_id,
    mastodon_reads,
    mastodon_stream,
)
from bot.platforms.deadline import mount_deadline
from bot.platforms.media import read_media
from bot.platforms.paging import key
from bot.platforms.ratelimits import BudgetSink, requests_budget_hook, seconds_until_reset

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
# created_at is the server's clock, `since` ours: the skew allowed when looking for a lost part.
CLOCK_SKEW = timedelta(minutes=2)
RECENT_STATUSES = 40  # the API's page maximum; a lost part is among the newest few


class MastodonClient:
    platform: Platform = "mastodon"

    def __init__(
        self,
        account: Account,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        now: Callable[[], datetime],
        on_budget: BudgetSink | None = None,
    ) -> None:
        self.account = account.name
        self._now = now
        # Per thread: several delivery threads (and monitoring) share one client, and another
        # thread's answer must not lend a 429 its reset (it did: 300 s instead of 1 s), nor may
        # another thread's call touch this one's Mastodon.py instance (see the module docstring).
        self._per_thread = threading.local()
        self._session = requests.Session()  # one connection pool for all the threads' instances
        mount_deadline(self._session, timeout)  # each request whole within `timeout`, size capped
        # Mastodon.py's throw mode raises on a 429 without the reset it has just read; keep the
        # headers of each answer so RateLimited can say how long to wait. requests runs the hook
        # in the thread that made the request.
        self._session.hooks["response"].append(self._remember_headers)
        if on_budget is not None:
            self._session.hooks["response"].append(requests_budget_hook(on_budget))
        self._access_token = account.credentials.get("access_token", "")
        self._timeout = timeout
        self._base_url = account.base_url
        self._per_thread.api = self._new_api()  # a bad base URL fails here, not at the first call
        self._own_id: str | None = None
        self._has_source_route = True  # until the server answers 404 for it

    def __repr__(self) -> str:
        return f"MastodonClient(account={self.account!r})"  # never the token

    def close(self) -> None:
        """Close the connection pool (an unclosed one leaks its sockets until garbage collection)."""
        self._session.close()

    @property
    def _api(self) -> Mastodon:
        """This thread's Mastodon.py instance (made on its first call; none makes a request)."""
        api: Mastodon | None = getattr(self._per_thread, "api", None)
        if api is None:
            api = self._per_thread.api = self._new_api()
        return api

    def _new_api(self) -> Mastodon:
        return Mastodon(
            access_token=self._access_token,
            api_base_url=self._base_url,
            ratelimit_method="throw",
            request_timeout=self._timeout,
            mastodon_version="4.3.0",
            version_check_mode="created",
            session=self._session,
            user_agent="campaign-bot",
        )

    # -- the PlatformClient protocol -------------------------------------------------------

    def verify(self) -> str:
        """`GET /api/v1/accounts/verify_credentials`; the account id is kept for lookups."""
        me = self._call(self._api.account_verify_credentials)
        self._own_id = str(me["id"])
        return str(me["acct"])

    def publish(self, message: Outgoing) -> Published:
        media_ids = [self._upload(media) for media in message.images]
        status = self._call(
            lambda: self._api.status_post(
                message.text,
                in_reply_to_id=message.reply_to.id if message.reply_to else None,
                media_ids=media_ids or None,
                spoiler_text=message.spoiler_text or None,
                visibility=message.visibility,
                language=message.language,
                # Mastodon returns the first status for a repeat within an hour; GoToSocial
                # ignores the key, which is why find_published exists.
                idempotency_key=message.nonce,
            )
        )
        return _published(status)

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        """Among the account's newest statuses since `since`, the one whose source text is exactly ours.

        `content` is server-rendered HTML (links wrapped, `@user@domain` shown as `@user`), so
        the comparison uses the source text: the `text` field where the server sends it
        (GoToSocial does for one's own statuses), else `GET /api/v1/statuses/:id/source`.
        """
        if self._own_id is None:
            self.verify()
        statuses = self._call(
            lambda: self._api.account_statuses(self._own_id, exclude_reblogs=True, limit=RECENT_STATUSES)
        )
        earliest = since - CLOCK_SKEW
        wanted = _normalized(message.text)
        candidates = [s for s in statuses if s.get("created_at") is None or s["created_at"] >= earliest]
        # Oldest first; GoToSocial's ULIDs sort like Mastodon's numbers by (length, text).
        for status in sorted(candidates, key=lambda s: key(str(s["id"]))):
            if _normalized(self._source_text(status)) == wanted:
                return _published(status)
        return None

    def delete(self, published: Published) -> None:
        def delete_once() -> None:
            # Already gone is done: retracting twice is not an error.
            with contextlib.suppress(MastodonNotFoundError):
                self._api.status_delete(published.id)

        self._call(delete_once)

    def repost(self, post_id: str) -> Published:
        """Boost; the answer is our reblog status wrapping the original."""
        reblog = self._call(lambda: self._api.status_reblog(post_id))
        original = reblog.get("reblog") or {}
        return Published(id=str(reblog["id"]), url=str(original.get("url") or reblog.get("url") or ""))

    # -- monitoring reads (bot.monitoring.monitor) ------------------------------------------------------

    def identity(self) -> str:
        """`user@domain`, lower-cased: how other statuses name this account."""
        return f"{self._call(self._api.account_verify_credentials)['acct']}@{self._domain()}".lower()

    def read_hashtags(
        self, tags: Sequence[str], cursor: str | None, start: datetime, conversations: Sequence[str] = ()
    ) -> Batch:
        """One page of this instance's timeline for one tag (`bot.platforms.mastodon_reads`)."""
        (tag,) = tags
        return mastodon_reads.read_tag(
            self._call, self._api, self._domain(), html_to_text, tag, cursor, start
        )

    def read_notifications(self, cursor: str | None, start: datetime) -> Batch:
        """One page of mention notifications (replies mention the author they answer)."""
        return mastodon_reads.read_notifications(
            self._call, self._api, self._domain(), html_to_text, cursor, start
        )

    def open_hashtag_stream(
        self, tag: str, deliver: Callable[[Mention], None]
    ) -> mastodon_stream.HashtagStream | None:
        """Hold the tag's stream open in the background, or None when the instance offers none.

        Each streamed status goes to `deliver` (from Mastodon.py's stream thread). Not part of
        the PlatformClient protocol: only Mastodon streams (`bot.monitoring.livestreams`).
        """
        return mastodon_stream.open_hashtag_stream(
            access_token=str(self._api.access_token or ""),
            api_base_url=self._base_url,
            tag=tag,
            host=self._domain(),
            to_text=html_to_text,
            deliver=deliver,
            call=self._call,
            timeout=float(self._api.request_timeout),
        )

    def _domain(self) -> str:
        # The API says `user` for accounts of its own instance and `user@domain` for others.
        return (urlsplit(self._base_url).hostname or self._base_url).lower()

    # -- the rest ------------------------------------------------------------------------------

    def _upload(self, media: Media) -> str:
        data = read_media(media, "mastodon")
        attachment = self._call(
            lambda: self._api.media_post(
                data, mime_type=inspect_image(data).mime, description=media.alt, file_name=media.path.name
            )
        )
        return answer_id("Mastodon", lambda: attachment["id"])

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._per_thread.headers = dict(response.headers)

    def _source_text(self, status: Mapping[str, Any]) -> str:
        if status.get("text"):
            return str(status["text"])
        if self._has_source_route:
            try:
                return str(self._call(lambda: self._api.status_source(status["id"]))["text"])
            except Rejected as exc:
                if not isinstance(exc.__cause__, MastodonNotFoundError):
                    raise
                self._has_source_route = False
        # A server without the source route (before Mastodon 3.5): the rendered HTML is all we have.
        return html_to_text(str(status.get("content") or ""))

    def _call(self, send: Callable[[], T]) -> T:
        try:
            return send()
        except MastodonError as exc:
            headers: Mapping[str, str] = getattr(self._per_thread, "headers", {})
            raise translate_error(exc, headers, self._now()) from exc
        except ValueError as exc:  # Mastodon.py checks some arguments (visibility) itself
            raise Rejected(f"Mastodon: {exc}") from exc


def translate_error(exc: MastodonError, headers: Mapping[str, str], now: datetime) -> PlatformError:
    """A Mastodon.py exception as one of ours, with the server's own message (never the token)."""
    if isinstance(exc, MastodonRatelimitError):
        return RateLimited("Mastodon 429: rate limited", retry_after=seconds_until_reset(headers, now))
    if isinstance(exc, MastodonNetworkError):
        return Transient(f"Mastodon: {type(exc).__name__}")
    if isinstance(exc, MastodonIllegalArgumentError | MastodonVersionError):
        return Rejected(f"Mastodon: {exc}")
    if not isinstance(exc, MastodonAPIError):
        return Transient(f"Mastodon: {type(exc).__name__}")
    # Mastodon.py raises API errors as (text, status, reason, the body's "error").
    if len(exc.args) < 4:
        return Transient(f"Mastodon: unreadable answer ({type(exc).__name__})")
    _, status, reason, error = exc.args[:4]
    message = f"Mastodon {status}: {error or reason}"
    if isinstance(exc, MastodonUnauthorizedError):
        return AuthFailed(message)
    if isinstance(exc, MastodonServerError):
        return Transient(message)
    if error and "not finished processing" in str(error):
        # Media still being processed: nothing was posted, and a moment later it will work.
        return Transient(message)
    return Rejected(message)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(content: str) -> str:
    """Mastodon's rendered `content` back to text: paragraphs and line breaks kept, tags dropped."""
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    return "".join(parser.parts)


def _normalized(text: str) -> str:
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()


def _published(status: Mapping[str, Any]) -> Published:
    status_id = answer_id("Mastodon", lambda: status["id"])
    return Published(id=status_id, url=str(status.get("url") or status.get("uri") or ""))


def open_client(account: Account, **options: Any) -> PlatformClient:
    return MastodonClient(
        account,
        timeout=float(options.get("timeout") or DEFAULT_TIMEOUT),
        now=options.get("now") or (lambda: datetime.now(UTC)),
        on_budget=options.get("on_budget"),
    )
