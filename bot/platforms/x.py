"""X (Twitter) through tweepy's v2 `Client`, OAuth 1.0a user context.

tweepy 4.17 has no v2 media upload, no base-URL option and no request timeout, so this adapter
adds all three on the `requests.Session` tweepy exposes: media goes to `POST /2/media/upload`
and `/2/media/metadata` signed with the same OAuth 1.0a keys, a session subclass gives every
call a timeout, and `x_transport.redirect_session` points the session at the sandbox.
"""

from __future__ import annotations

import contextlib
import html
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import requests
import tweepy

from bot.campaign.images import inspect_image
from bot.campaign.model import Account, Platform
from bot.errors import AuthFailed, Duplicate, PlatformError, RateLimited, Rejected, Transient
from bot.platforms import Batch, Outgoing, PlatformClient, Published, answer_id, x_reads
from bot.platforms.deadline import mount_deadline
from bot.platforms.media import read_media
from bot.platforms.ratelimits import BudgetSink, requests_budget_hook, seconds_until_reset
from bot.platforms.x_transport import redirect_session

REAL_HOSTS = ("https://api.x.com", "https://api.twitter.com")
MEDIA_HOST = "https://api.x.com"  # v2 media lives on api.x.com; tweepy's own calls use api.twitter.com
DEFAULT_TIMEOUT = 30.0
# A post's created_at comes from X's clock and `since` from ours: allow this much skew when
# looking for a part whose answer was lost. A repeat cycle is hours away, never this close.
CLOCK_SKEW = timedelta(minutes=2)
READ_ONLY_FIX = (
    "Set the app's permissions to Read and write in the X developer portal, then regenerate "
    "the access token and secret: `python -m bot connect x`, or put them in .env."
)
LOOKUP_PAGES = 5  # pages of 100 read after a lost answer: the window since the attempt, bounded


class _TimeoutSession(requests.Session):
    """A session whose every request has a timeout: tweepy passes none, so a hung call would hang forever."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


class XClient:
    platform: Platform = "x"

    def __init__(
        self,
        account: Account,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        now: Callable[[], datetime],
        on_budget: BudgetSink | None = None,
    ) -> None:
        self.account = account.name
        creds = account.credentials
        self._keys = (
            creds.get("consumer_key", ""),
            creds.get("consumer_secret", ""),
            creds.get("access_token", ""),
            creds.get("access_token_secret", ""),
        )
        self._now = now
        self._client = tweepy.Client(
            consumer_key=self._keys[0],
            consumer_secret=self._keys[1],
            access_token=self._keys[2],
            access_token_secret=self._keys[3],
        )
        self._client.session = _TimeoutSession(timeout)
        mount_deadline(self._client.session, timeout)
        if on_budget is not None:
            self._client.session.hooks["response"].append(requests_budget_hook(on_budget))
        base = account.base_url.rstrip("/")
        if base and base not in REAL_HOSTS:
            redirect_session(self._client.session, base, timeout)
        self._user_id: str | None = None
        self._username: str | None = None

    def __repr__(self) -> str:
        return f"XClient(account={self.account!r})"  # never the keys

    def close(self) -> None:
        """Close the connection pool (an unclosed one leaks its sockets until garbage collection)."""
        self._client.session.close()

    # -- the PlatformClient protocol -------------------------------------------------------

    def verify(self) -> str:
        """`GET /2/users/me`; its id is cached, since X allows 25 of these a day on Free.

        A token made while the app was read-only passes `users/me` and then fails every post;
        X says so in `x-access-level` on every answer, so a `read` level fails here already.
        """
        response = self._call(lambda: self._client.request("GET", "/2/users/me", user_auth=True))
        self._user_id = answer_id("X", lambda: response.json()["data"]["id"])
        self._username = answer_id("X", lambda: response.json()["data"]["username"])
        level = response.headers.get("x-access-level")
        if level is not None and "write" not in level:
            raise AuthFailed(
                f"X: this account's access token is read-only (x-access-level: {level}). {READ_ONLY_FIX}"
            )
        return self._username

    def publish(self, message: Outgoing) -> Published:
        media_ids = [self._upload_image(read_media(image, "x"), image.alt) for image in message.images]
        response = self._call(
            lambda: self._client.create_tweet(
                text=message.text,
                media_ids=media_ids or None,
                in_reply_to_tweet_id=message.reply_to.id if message.reply_to else None,
                user_auth=True,
            )
        )
        return self._published(answer_id("X", lambda: response.data["id"]))

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        """The account's own posts since `since` (`users/:id/tweets`), matched on their exact text.

        X rewrites what it stores: links become t.co links (expanded back through `entities`),
        a media link is appended, and `&`, `<`, `>` come back as HTML entities.
        """
        start = since.astimezone(UTC) - CLOCK_SKEW
        tweets: list[Any] = []
        token: str | None = None
        # X's pages can be short, even empty, and still carry a next_token: follow it, or a post
        # that went out is missed and its resend refused as duplicate content.
        for _ in range(LOOKUP_PAGES):

            def read_page(token: str | None = token) -> Any:
                return self._client.get_users_tweets(
                    self._own_id(),
                    user_auth=True,
                    start_time=start,
                    max_results=100,
                    pagination_token=token,
                    tweet_fields=["created_at", "entities"],
                )

            response = self._call(read_page)
            tweets.extend(response.data or [])
            token = (response.meta or {}).get("next_token")
            if not token:
                break
        wanted = _normalized(message.text)
        # Oldest first, so that of two identical copies the reconciliation keeps the first.
        for tweet in reversed(tweets):
            if _normalized(_plain_text(tweet.text, tweet.data.get("entities") or {})) == wanted:
                return self._published(str(tweet.id))
        return None

    def delete(self, published: Published) -> None:
        def delete_once() -> None:
            # Already gone is done: retracting twice is not an error.
            with contextlib.suppress(tweepy.NotFound):
                self._client.delete_tweet(published.id, user_auth=True)

        self._call(delete_once)

    def repost(self, post_id: str) -> Published:
        """Retweet; X answers `{"retweeted": true}` without an id, so this returns the original."""
        # tweepy's retweet() reads the user id from the access token's shape; ours is checked.
        route = f"/2/users/{self._own_id()}/retweets"
        self._call(lambda: self._client.request("POST", route, json={"tweet_id": post_id}, user_auth=True))
        return self._published(post_id, own=False)

    # -- monitoring reads (bot.monitoring.monitor) ------------------------------------------------------

    def identity(self) -> str:
        """The user id: free from the access token's shape (users/me costs 1 of 25 a day on Free)."""
        return self._own_id()

    def read_hashtags(
        self, tags: Sequence[str], cursor: str | None, start: datetime, conversations: Sequence[str] = ()
    ) -> Batch:
        """One page of recent search for the tags and our conversations (`bot.platforms.x_reads`)."""
        return x_reads.read_search(
            self._call, self._client, _plain_text, tags, conversations, cursor, start, self._now()
        )

    def read_notifications(self, cursor: str | None, start: datetime) -> Batch:
        """One page of `users/:id/mentions`: replies to us start with our @username, so they are here."""
        user_id = self._own_id()
        return x_reads.read_mentions(
            self._call, self._client, _plain_text, user_id, cursor, start, self._now()
        )

    # -- the rest ------------------------------------------------------------------------------

    def _own_id(self) -> str:
        # X issues OAuth 1.0a user access tokens as "<user id>-<secret part>", which is how
        # tweepy itself finds the user for retweet(); only a token of another shape costs a
        # users/me call, and that answer is kept for the life of the client.
        if self._user_id is None:
            prefix, dash, _ = self._keys[2].partition("-")
            if dash and prefix.isdigit():
                self._user_id = prefix
            else:
                self.verify()
        assert self._user_id is not None
        return self._user_id

    def _published(self, tweet_id: str, own: bool = True) -> Published:
        who = self._username if own and self._username else "i/web"
        return Published(id=tweet_id, url=f"https://x.com/{who}/status/{tweet_id}")

    def _upload_image(self, data: bytes, alt: str) -> str:
        """v2 upload, then the alt text through the media metadata endpoint (tweepy has neither)."""
        auth = tweepy.OAuth1UserHandler(*self._keys).apply_auth()
        mime = inspect_image(data).mime
        upload = self._raw_call(
            lambda: self._client.session.post(
                f"{MEDIA_HOST}/2/media/upload",
                auth=auth,
                files={"media": ("image", data, mime)},
                data={"media_category": "tweet_image"},
            )
        )
        media_id = answer_id("X", lambda: upload["data"]["id"])
        if alt:
            self._raw_call(
                lambda: self._client.session.post(
                    f"{MEDIA_HOST}/2/media/metadata",
                    auth=auth,
                    json={"id": media_id, "metadata": {"alt_text": {"text": alt}}},
                )
            )
        return media_id

    def _raw_call(self, send: Callable[[], requests.Response]) -> Any:
        try:
            response = send()
        except requests.RequestException as exc:
            raise Transient(f"X: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            self._raise_for(response, tweepy.HTTPException(response))
        try:
            return response.json()
        except ValueError as exc:
            raise Transient(f"X: unreadable answer ({response.status_code})") from exc

    def _call(self, send: Callable[[], Any]) -> Any:
        try:
            return send()
        except tweepy.HTTPException as exc:
            self._raise_for(exc.response, exc)
        except requests.RequestException as exc:
            raise Transient(f"X: {type(exc).__name__}") from exc
        except tweepy.TweepyException as exc:
            raise Rejected(f"X: {exc}") from exc

    def _raise_for(self, response: requests.Response, exc: tweepy.HTTPException) -> NoReturn:
        try:
            body = response.json()
        except ValueError:
            body = None
        problem = body if isinstance(body, dict) else {}
        messages = exc.api_messages or ([str(problem["detail"])] if problem.get("detail") else [])
        raise translate_error(
            response.status_code, messages, response.headers, self._now(), str(problem.get("type", ""))
        ) from exc


def translate_error(
    status: int, messages: list[str], headers: Mapping[str, str], now: datetime, problem_type: str = ""
) -> PlatformError:
    """X's answer as one of our errors, with X's own message (never a credential)."""
    text = "; ".join(str(m) for m in messages) or f"HTTP {status}"
    message = f"X {status}: {text}"
    error: PlatformError
    if status == 429:
        error = RateLimited(message, retry_after=seconds_until_reset(headers, now))
    elif status == 401:
        error = AuthFailed(message)
    elif status == 403 and problem_type.endswith("/oauth1-permissions"):
        # The token was made while the app was read-only: every write will fail the same way,
        # so it is the account's failure (unhealthy, one alert), not this post's.
        error = AuthFailed(f"{message} {READ_ONLY_FIX}")
    elif status >= 500:
        error = Transient(message)
    elif status == 403 and "duplicate content" in text.lower():
        # Only a hint that the part may already be up (a lost answer, a retry): the caller looks.
        error = Duplicate(message)
    else:
        error = Rejected(message)
    return error


def _plain_text(text: str, entities: Mapping[str, Any]) -> str:
    """A tweet's text as it was written: t.co links expanded, the appended media link removed."""
    for url in entities.get("urls") or []:
        short = url.get("url")
        if not short:
            continue
        if url.get("media_key") or str(url.get("display_url", "")).startswith("pic."):
            text = text.replace(" " + short, "").replace(short, "")
        elif url.get("expanded_url"):
            text = text.replace(short, url["expanded_url"])
    return html.unescape(text)


def _normalized(text: str) -> str:
    # X stores text NFC-normalized and trims surrounding whitespace.
    return unicodedata.normalize("NFC", text).strip()


def open_client(account: Account, **options: Any) -> PlatformClient:
    now = options.get("now") or (lambda: datetime.now(UTC))
    return XClient(
        account,
        timeout=float(options.get("timeout") or DEFAULT_TIMEOUT),
        now=now,
        on_budget=options.get("on_budget"),
    )
