"""The X API v2 emulator, for tweepy.Client redirected to it (`bot.platforms.x_transport`).

Every request but an unknown route must carry an OAuth 1.0a signature of one sandbox account
(`x_auth`), is counted against the chosen tier's limits (`x_limits`), and is answered in X's
exact shapes (`x_tweets`, `x_errors`). Search understands the operators the bot uses (`x_query`);
pages, cursors and the 7-day `since_id` rule live in `x_timeline`; the state in `x_store`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from twitter_text import parse_tweet

from bot.campaign.images import inspect_image
from bot.sandbox.server import Clock, Emulator, Request, Response, account_names, utc_now
from bot.sandbox.x_audience import audience_act
from bot.sandbox.x_auth import OAuthHeader, parse_oauth_header, signature_base_string, verify_signature
from bot.sandbox.x_errors import (
    DUPLICATE,
    NOT_PERMITTED,
    OAUTH1_PERMISSIONS,
    OAUTH1_PERMISSIONS_DETAIL,
    invalid_request,
    missing_user,
    not_found,
    problem,
    unknown_route,
)
from bot.sandbox.x_limits import (
    DELETE_TWEET,
    MEDIA_METADATA,
    MEDIA_UPLOAD,
    MENTIONS,
    POST_TWEETS,
    RETWEET,
    SEARCH_RECENT,
    TWEET_LOOKUP,
    TWEETS_LOOKUP,
    UNRETWEET,
    USER_TWEETS,
    USERS_ME,
    WRITES,
    RateBook,
)
from bot.sandbox.x_lookup import lookup, undo_retweet
from bot.sandbox.x_oauth import XOAuth
from bot.sandbox.x_query import QueryError, compile_query
from bot.sandbox.x_store import XStore
from bot.sandbox.x_timeline import RECENT, TimelineError, read_page
from bot.sandbox.x_tweets import XMedia, XTweet, XUser, mentions_of, stable_digits, stable_token

MEDIA_CATEGORIES = frozenset(
    [
        "amplify_video",
        "tweet_gif",
        "tweet_image",
        "tweet_video",
        "dm_gif",
        "dm_image",
        "dm_video",
        "subtitles",
    ]
)
IMAGE_MAX_BYTES = {"image/gif": 15 * 1024 * 1024}
IMAGE_DEFAULT_MAX_BYTES = 5 * 1024 * 1024
ALT_TEXT_MAX = 1000

Handler = Callable[[Request, XUser, str], Response]


def account_user(name: str) -> XUser:
    """One of our sandbox accounts. X usernames are at most 15 characters."""
    born = datetime(2025, 1, 1, tzinfo=UTC)
    return XUser(
        stable_digits(f"x-user:{name}"), f"ntfi_{name}"[:15], f"No Tech for ICE ({name})", born, name
    )


class XEmulator(Emulator):
    name = "x"
    thread_limit = 280  # a thread's later parts name nobody: the whole limit

    def __init__(self, *, accounts: int = 2, limits: str = "none", clock: Clock = utc_now) -> None:
        super().__init__(accounts=accounts, limits=limits, clock=clock)
        self.book = RateBook(limits, self.rates)
        self.accounts = [account_user(name) for name in account_names(accounts)]
        self.store = XStore(self.accounts, clock)
        self.oauth = XOAuth(
            {self._keys(u)["consumer_key"]: (u, self._keys(u)["consumer_secret"]) for u in self.accounts}
        )
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("POST", re.compile(r"/2/tweets"), POST_TWEETS, self._create_tweet),
            ("DELETE", re.compile(r"/2/tweets/(\d{1,19})"), DELETE_TWEET, self._delete_tweet),
            ("GET", re.compile(r"/2/tweets/search/recent"), SEARCH_RECENT, self._search_recent),
            ("GET", re.compile(r"/2/users/me"), USERS_ME, self._users_me),
            ("GET", re.compile(r"/2/users/(\d{1,19})/mentions"), MENTIONS, self._mentions),
            ("GET", re.compile(r"/2/users/(\d{1,19})/tweets"), USER_TWEETS, self._user_tweets),
            ("POST", re.compile(r"/2/users/(\d{1,19})/retweets"), RETWEET, self._retweet),
            ("POST", re.compile(r"/2/media/upload"), MEDIA_UPLOAD, self._upload_media),
            ("POST", re.compile(r"/2/media/metadata"), MEDIA_METADATA, self._media_metadata),
            ("DELETE", re.compile(r"/2/users/(\d{1,19})/retweets/(\d{1,19})"), UNRETWEET, self._unretweet),
            ("GET", re.compile(r"/2/tweets/(\d{1,19})"), TWEET_LOOKUP, self._lookup),
            ("GET", re.compile(r"/2/tweets"), TWEETS_LOOKUP, self._lookup),
        ]
        self.read_only: set[str] = set()  # accounts whose app was read-only when the token was made

    # -- the shared-layer interface ----------------------------------------------------------

    def credentials(self) -> list[dict[str, str]]:
        return [self._keys(user) for user in self.accounts]

    def account_authors(self) -> dict[str, str]:
        return {str(user.account): user.username for user in self.accounts}

    def _keys(self, user: XUser) -> dict[str, str]:
        # Deterministic per account name, so a rehearsal's .env survives a sandbox restart.
        # tweepy reads the user id from the access token's prefix ("<user id>-..."), as X issues them.
        seed = f"x-keys:{user.account}"
        return {
            "name": str(user.account),
            "consumer_key": stable_token(seed + ":ck", 25),
            "consumer_secret": stable_token(seed + ":cs", 50),
            "access_token": f"{user.id}-{stable_token(seed + ':at', 40)}",
            "access_token_secret": stable_token(seed + ":ats", 45),
        }

    def account_of(self, request: Request) -> str | None:
        oauth = parse_oauth_header(request.headers.get("Authorization"))
        if oauth is None:
            return None
        user = self._user_by_keys(oauth.consumer_key, oauth.token)
        granted = self.oauth.granted_token(oauth.consumer_key, oauth.token)
        user = user or (granted.user if granted else None)
        return user.account if user else None

    def error_response(self, status: int) -> Response:
        if status == 404:
            return unknown_route()
        if status == 429:
            return self.rate_limited_response(self.clock() + timedelta(minutes=15))
        if status == 400:
            return invalid_request("One or more parameters to your request was invalid.")
        if status == 403:
            return problem(403, NOT_PERMITTED)
        return problem(status, HTTPStatus(status).phrase)

    def rate_limited_response(self, reset_at: datetime) -> Response:
        response = problem(429, "Too Many Requests")
        response.headers |= {
            "x-rate-limit-limit": "1",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(reset_at.timestamp())),
        }
        return response

    def reset(self) -> None:
        super().reset()
        self.store.clear()
        self.read_only.clear()

    def apply_settings(self, settings: dict[str, Any]) -> None:
        """`read_only`: the accounts whose token was made while their app was read-only;
        `app_permissions`: each account's app's access level, for tokens made from now on."""
        unknown = sorted(set(settings) - {"read_only", "app_permissions"})
        if unknown:
            raise ValueError(f"unknown settings: {unknown}")
        chosen = settings.get("app_permissions", {})
        if not isinstance(chosen, dict):
            raise ValueError("app_permissions must map account names to a level")
        keys_of = {str(u.account): self._keys(u)["consumer_key"] for u in self.accounts}
        self.oauth.set_permissions(chosen, keys_of)
        if "read_only" in settings:
            names = {str(n) for n in settings["read_only"]}
            known = {str(u.account) for u in self.accounts}
            if not names <= known:
                raise ValueError(f"read_only: unknown accounts {sorted(names - known)}")
            self.read_only = names

    def state_posts(self) -> list[dict[str, Any]]:
        return self.store.state_posts(self.base_url)

    def add_audience(
        self, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        tweet_or_change = audience_act(self.store, kind, author, text, to, options or {})
        if isinstance(tweet_or_change, dict):
            return tweet_or_change
        return self.store.state_post(tweet_or_change, self.base_url)

    def amend(self, post_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        tweet = self.store.tweets_by_id[post_id]
        tweet.overrides.update(fields)
        return self.store.state_post(tweet, self.base_url)

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/oauth/") or request.path in ("/1.1/oauth/invalidate_token", "/console"):
            with self.lock:
                return self.oauth.route(request, self.accounts, self._authenticate, self._signed)
        route = self._route(request)
        if route is None:
            return unknown_route()
        endpoint, handler, argument = route
        with self.lock:
            signed = self._authenticate(request)
            if signed is None:
                return problem(401, "Unauthorized")
            user, level = signed
            if user.account in self.read_only:
                level = "read"
            if level == "read" and endpoint in WRITES:
                # Not counted against the limits, as X answers before the endpoint.
                response = problem(403, OAUTH1_PERMISSIONS_DETAIL, OAUTH1_PERMISSIONS)
                response.headers["x-access-level"] = level
                return response
            allowed, headers = self.book.spend(endpoint, user.id, self._keys(user)["consumer_key"])
            response = handler(request, user, argument) if allowed else problem(429, "Too Many Requests")
            response.headers |= headers | {"x-access-level": level}
            return response

    def _route(self, request: Request) -> tuple[str, Handler, str] | None:
        for method, pattern, endpoint, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return endpoint, handler, "/".join(match.groups())
        return None

    def _authenticate(self, request: Request) -> tuple[XUser, str] | None:
        """The signing account and its token's access level, if the signature holds."""
        oauth = parse_oauth_header(request.headers.get("Authorization"))
        if oauth is None or oauth.params.get("oauth_signature_method") != "HMAC-SHA1":
            return None  # tweepy's search without user_auth=True sends "Bearer None"
        user = self._user_by_keys(oauth.consumer_key, oauth.token)
        granted = self.oauth.granted_token(oauth.consumer_key, oauth.token)
        if user is not None:
            keys = self._keys(user)
            secrets_and_level = (
                keys["consumer_secret"],
                keys["access_token_secret"],
                # The accounts' own tokens were made with every permission, as the recorded
                # answers show; an `app_permissions` setting changes that.
                self.oauth.permissions.get(keys["consumer_key"], "read-write-directmessages"),
            )
        elif granted is not None:
            user = granted.user
            secrets_and_level = (self.oauth.apps[granted.consumer_key][1], granted.secret, granted.level)
        else:
            return None
        consumer_secret, token_secret, level = secrets_and_level
        if not self._signed(request, oauth, consumer_secret, token_secret):
            return None
        return user, level

    def _signed(self, request: Request, oauth: OAuthHeader, consumer_secret: str, token_secret: str) -> bool:
        query = [(k, v) for k, values in request.query.items() for v in values]
        form = b""
        if request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            form = request.body
        host = request.headers.get("Host", "")
        base = signature_base_string(request.method, host, request.path, query, oauth, form)
        return verify_signature(base, oauth.signature, consumer_secret, token_secret)

    def _user_by_keys(self, consumer_key: str, token: str) -> XUser | None:
        """The account whose fixed sandbox keys these are (unless the token was revoked)."""
        if token in self.oauth.revoked:
            return None
        for user in self.accounts:
            keys = self._keys(user)
            if keys["consumer_key"] == consumer_key and keys["access_token"] == token:
                return user
        return None

    # -- writes ------------------------------------------------------------------------------

    def _create_tweet(self, request: Request, user: XUser, _: str) -> Response:
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return invalid_request("Request body is not valid JSON.")
        text = str(body.get("text") or "")
        media_ids = [str(i) for i in (body.get("media") or {}).get("media_ids", [])]
        media = [self.store.media.get(i) for i in media_ids]
        now = self.clock()
        if len(media_ids) > 4 or any(
            m is None or m.owner_id != user.id or now > m.created_at + m.expires_after for m in media
        ):
            return invalid_request("Your media IDs are invalid.", "media.media_ids", media_ids)
        if not text and not media:
            return invalid_request("Post text and media are both empty.", "text", [text])
        if text and not parse_tweet(text).valid:
            # X answers an over-long text with its generic 403 (no dedicated message is known).
            return problem(403, NOT_PERMITTED)
        if text and self.store.is_duplicate(user, text):
            return problem(403, DUPLICATE)
        parent = None
        reply_to = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if reply_to is not None:
            parent = self.store.live(str(reply_to))
            if parent is None:
                return problem(
                    403, "You attempted to reply to a Tweet that is deleted or not visible to you."
                )
        quoted = body.get("quote_tweet_id")
        attached = [m for m in media if m is not None]
        tweet = self.store.add_tweet(
            user, text, parent=parent, quoted=str(quoted) if quoted else None, media=attached
        )
        host = request.headers.get("Host", "api.x.com")
        return Response.json(
            201,
            {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}},
            {"location": f"https://{host}/2/tweets/{tweet.id}"},
        )

    def _delete_tweet(self, request: Request, user: XUser, tweet_id: str) -> Response:
        tweet = self.store.live(tweet_id)
        if tweet is None:
            return not_found("tweet", tweet_id, "id")
        if tweet.author is not user:
            return problem(403, NOT_PERMITTED)
        tweet.deleted = True
        return Response.json(200, {"data": {"deleted": True}})

    def _retweet(self, request: Request, user: XUser, user_id: str) -> Response:
        if user_id != user.id:
            return problem(403, NOT_PERMITTED)
        try:
            tweet_id = str(request.json()["tweet_id"])
        except (ValueError, KeyError, TypeError):
            return invalid_request("The `tweet_id` field is required.", "tweet_id", [])
        original = self.store.live(tweet_id)
        if original is None:
            return not_found("tweet", tweet_id, "tweet_id")
        mine = (t for t in self.store.tweets if t.author is user and not t.deleted)
        if not any(t.kind("retweeted") == tweet_id for t in mine):  # X ignores a repeated retweet
            text = f"RT @{original.author.username}: {original.posted_text}"
            self.store.add_tweet(user, text, retweeted=original)
        return Response.json(200, {"data": {"retweeted": True}})

    def _unretweet(self, request: Request, user: XUser, argument: str) -> Response:
        return undo_retweet(self.store, user, argument)

    def _lookup(self, request: Request, user: XUser, tweet_id: str) -> Response:
        return lookup(self.store, request, tweet_id or None)

    def _upload_media(self, request: Request, user: XUser, _: str) -> Response:
        parts = {}
        if request.headers.get("Content-Type", "").startswith("multipart/form-data"):
            parts = request.multipart()
        category_parts = parts.get("media_category", [])
        category = category_parts[0].data.decode() if category_parts else ""
        if category.lower() not in MEDIA_CATEGORIES:
            return invalid_request(
                f"The `media_category` field value [{category}] is not one of "
                f"[{','.join(sorted(MEDIA_CATEGORIES))}]",
                "media_category",
                [category],
            )
        if not parts.get("media"):
            return invalid_request("The `media` field is required.", "media", [])
        data = parts["media"][0].data
        image = inspect_image(data)
        if image.width is None or image.height is None:
            return invalid_request("The media type is not supported.", "media", [])
        mime, width, height = image.mime, image.width, image.height
        if len(data) > IMAGE_MAX_BYTES.get(mime, IMAGE_DEFAULT_MAX_BYTES):
            return invalid_request("The media size exceeds the limit for its type.", "media", [])
        media = XMedia(self.store.next_id(), user.id, mime, width, height, len(data), self.clock())
        self.store.media[media.id] = media
        answer = {
            "id": media.id,
            "media_key": media.key,
            "size": media.size,
            "expires_after_secs": int(media.expires_after.total_seconds()),
            "image": {"image_type": mime, "w": width, "h": height},
        }
        return Response.json(200, {"data": answer})

    def _media_metadata(self, request: Request, user: XUser, _: str) -> Response:
        try:
            body = request.json()
            media_id = str(body["id"])
            alt = body["metadata"]["alt_text"]["text"]
        except (ValueError, KeyError, TypeError):
            return invalid_request("The `id` and `metadata` fields are required.", "id", [])
        media = self.store.media.get(media_id)
        if media is None or media.owner_id != user.id:
            return invalid_request("Your media IDs are invalid.", "id", [media_id])
        if not isinstance(alt, str) or len(alt) > ALT_TEXT_MAX:
            message = f"The alt text must be at most {ALT_TEXT_MAX} characters."
            return invalid_request(message, "metadata.alt_text.text", [str(alt)[:50]])
        media.alt = alt
        return Response.json(
            200, {"data": {"id": media.id, "associated_metadata": {"alt_text": {"text": alt}}}}
        )

    # -- reads -------------------------------------------------------------------------------

    def _users_me(self, request: Request, user: XUser, _: str) -> Response:
        fields = frozenset((request.arg("user.fields") or "").split(",")) - {""}
        return Response.json(200, {"data": user.render(fields, self.store.tweet_count(user))})

    def _search_recent(self, request: Request, user: XUser, _: str) -> Response:
        query = request.arg("query")
        if not query:
            return invalid_request("The `query` query parameter can not be empty", "query", [""])
        try:
            matches = compile_query(query)
        except QueryError as exc:
            return invalid_request(str(exc), "query", [query])
        week_ago = self.clock() - RECENT
        tweets = [
            t for t in self.store.tweets if t.created_at >= week_ago and matches(self.store.candidate(t))
        ]
        return self._page(request, tweets, min_results=10, token="next_token", seven_days=True)

    def _mentions(self, request: Request, user: XUser, user_id: str) -> Response:
        target = self.store.user_by_id(user_id)
        if target is None:
            return missing_user(user_id)
        name = target.username.lower()
        tweets = [
            t
            for t in self.store.tweets
            if t.author is not target
            and not t.kind("retweeted")
            and name in {m.lower() for m in mentions_of(t.posted_text)}
        ]
        return self._page(request, tweets, min_results=5, token="pagination_token")

    def _user_tweets(self, request: Request, user: XUser, user_id: str) -> Response:
        target = self.store.user_by_id(user_id)
        if target is None:
            return missing_user(user_id)
        exclude = set((request.arg("exclude") or "").split(","))
        tweets = [
            t
            for t in self.store.tweets
            if t.author is target
            and not ("retweets" in exclude and t.kind("retweeted"))
            and not ("replies" in exclude and t.kind("replied_to"))
        ][-3200:]  # X serves a user's 3,200 most recent posts
        return self._page(request, tweets, min_results=5, token="pagination_token")

    def _page(
        self,
        request: Request,
        tweets: list[XTweet],
        *,
        min_results: int,
        token: str,
        seven_days: bool = False,
    ) -> Response:
        try:
            page = read_page(request, tweets, self.clock(), min_results, token, seven_days)
        except TimelineError as exc:
            return invalid_request(exc.message, exc.parameter, [exc.value])
        return Response.json(200, self.store.render_page(page))
