"""The X emulator's memory: users, tweets and media, and how pages of them are rendered."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from bot.sandbox.server import Clock
from bot.sandbox.x_query import Candidate
from bot.sandbox.x_timeline import Page
from bot.sandbox.x_tweets import (
    TWEET_FIELDS,
    XMedia,
    XTweet,
    XUser,
    format_time,
    hashtags_of,
    mentions_of,
    snowflake_at,
    stable_digits,
    time_of_snowflake,
)

# How far back X looks for "duplicate content" is not documented; a week keeps a daily
# campaign from repeating itself verbatim, which is what X refuses in practice.
DUPLICATE_WINDOW = timedelta(days=7)


class XStore:
    def __init__(self, accounts: list[XUser], clock: Clock) -> None:
        self.accounts = accounts
        self.clock = clock
        self.tweets: list[XTweet] = []  # oldest first: ids grow with time
        self.tweets_by_id: dict[str, XTweet] = {}
        self.media: dict[str, XMedia] = {}
        self.audience: dict[str, XUser] = {}
        self.suspended: set[str] = set()  # audience user ids
        self._last_id = 0

    def clear(self) -> None:
        self.tweets.clear()
        self.tweets_by_id.clear()
        self.media.clear()
        self.audience.clear()
        self.suspended.clear()

    # -- writing -----------------------------------------------------------------------------

    def next_id(self) -> str:
        """Snowflake-like: the clock's milliseconds in the top bits, strictly increasing."""
        self._last_id = max(snowflake_at(self.clock()), self._last_id + 1)
        return str(self._last_id)

    def add_tweet(
        self,
        author: XUser,
        text: str,
        *,
        parent: XTweet | None = None,
        quoted: str | None = None,
        retweeted: XTweet | None = None,
        media: list[XMedia] | None = None,
    ) -> XTweet:
        tweet_id = self.next_id()
        referenced: list[tuple[str, str]] = []
        if parent is not None:
            referenced.append(("replied_to", parent.id))
        if quoted is not None:
            referenced.append(("quoted", quoted))
        if retweeted is not None:
            referenced.append(("retweeted", retweeted.id))
        tweet = XTweet(
            id=tweet_id,
            author=author,
            posted_text=text,
            created_at=time_of_snowflake(int(tweet_id)),
            conversation_id=parent.conversation_id if parent else tweet_id,
            in_reply_to_user_id=parent.author.id if parent else None,
            referenced=referenced,
            media=list(media or []),
        )
        self.tweets.append(tweet)
        self.tweets_by_id[tweet.id] = tweet
        return tweet

    def audience_user(self, author: str) -> XUser:
        """Someone else, created on first sight: an X username is 1-15 of [A-Za-z0-9_]."""
        username = re.sub(r"\W", "_", author.lstrip("@"), flags=re.ASCII)[:15] or "someone"
        key = username.lower()
        if key not in self.audience:
            born = datetime(2024, 1, 1, tzinfo=self.clock().tzinfo)
            self.audience[key] = XUser(stable_digits(f"x-audience:{key}"), username, author, born)
        return self.audience[key]

    # -- reading -----------------------------------------------------------------------------

    def live(self, tweet_id: str) -> XTweet | None:
        tweet = self.tweets_by_id.get(tweet_id)
        return tweet if tweet is not None and not tweet.deleted else None

    def is_duplicate(self, user: XUser, text: str) -> bool:
        now = self.clock()
        return any(
            t.author is user
            and not t.deleted
            and t.posted_text == text
            and now - t.created_at < DUPLICATE_WINDOW
            for t in self.tweets
        )

    def user_by_id(self, user_id: str) -> XUser | None:
        return next((u for u in [*self.accounts, *self.audience.values()] if u.id == user_id), None)

    def users_by_name(self) -> dict[str, XUser]:
        return {u.username.lower(): u for u in [*self.accounts, *self.audience.values()]}

    def tweet_count(self, user: XUser) -> int:
        return sum(1 for t in self.tweets if t.author is user and not t.deleted)

    def reply_count(self, tweet: XTweet) -> int:
        return sum(1 for t in self.tweets if not t.deleted and t.kind("replied_to") == tweet.id)

    def candidate(self, tweet: XTweet) -> Candidate:
        replied = self.user_by_id(tweet.in_reply_to_user_id or "")
        return Candidate(
            text=tweet.posted_text,
            author=tweet.author.username.lower(),
            hashtags=frozenset(h.lower() for h in hashtags_of(tweet.posted_text)),
            mentions=frozenset(m.lower() for m in mentions_of(tweet.posted_text)),
            conversation_id=tweet.conversation_id,
            in_reply_to_user=replied.username.lower() if replied else None,
            is_retweet=tweet.kind("retweeted") is not None,
            is_reply=tweet.kind("replied_to") is not None,
            is_quote=tweet.kind("quoted") is not None,
            has_media=bool(tweet.media),
            has_links=bool(tweet.urls()),
        )

    # -- rendering ---------------------------------------------------------------------------

    def render_page(self, page: Page) -> dict[str, Any]:
        """A timeline or search answer; an empty one has no `data` key, as X sends it."""
        if not page.tweets:
            empty: dict[str, Any] = {"result_count": 0}
            if page.next_token:
                empty["next_token"] = page.next_token
            return {"meta": empty}
        users = self.users_by_name()
        body: dict[str, Any] = {
            "data": [t.render(page.tweet_fields, users, self.reply_count(t)) for t in page.tweets]
        }
        includes = self._includes(page)
        if includes:
            body["includes"] = includes
        meta: dict[str, Any] = {
            "newest_id": page.tweets[0].id,
            "oldest_id": page.tweets[-1].id,
            "result_count": len(page.tweets),
        }
        if page.next_token:
            meta["next_token"] = page.next_token
        body["meta"] = meta
        return body

    def _includes(self, page: Page) -> dict[str, Any]:
        includes: dict[str, Any] = {}
        users: dict[str, XUser] = {}
        if "author_id" in page.expansions:
            users |= {t.author.id: t.author for t in page.tweets}
        if "in_reply_to_user_id" in page.expansions:
            for t in page.tweets:
                replied = self.user_by_id(t.in_reply_to_user_id or "")
                if replied is not None:
                    users.setdefault(replied.id, replied)
        if users:
            includes["users"] = [u.render(page.user_fields, self.tweet_count(u)) for u in users.values()]
        if "referenced_tweets.id" in page.expansions:
            referenced = [
                ref for t in page.tweets for _, ref_id in t.referenced if (ref := self.live(ref_id))
            ]
            if referenced:
                names = self.users_by_name()
                includes["tweets"] = [t.render(page.tweet_fields, names) for t in referenced]
        if "attachments.media_keys" in page.expansions:
            media = [m.render(page.media_fields) for t in page.tweets for m in t.media]
            if media:
                includes["media"] = media
        return includes

    def state_posts(self, site: str) -> list[dict[str, Any]]:
        """Every tweet for GET /_sandbox/state (docs/sandbox.md), `raw` with every field X can send.

        `site` is the emulator's own address: a tweet's `url` is X's path on it, where the
        emulator serves it, since on x.com it does not exist.
        """
        users = self.users_by_name()
        return [self.state_post(tweet, site, users) for tweet in self.tweets]

    def state_post(self, tweet: XTweet, site: str, users: dict[str, XUser] | None = None) -> dict[str, Any]:
        """One tweet as GET /_sandbox/state shows it (alone: audience answers need no more)."""
        users = users if users is not None else self.users_by_name()
        post: dict[str, Any] = {
            "id": tweet.id,
            "url": f"{site}/{tweet.author.username}/status/{tweet.id}",
            "author": tweet.author.username,
            "text": tweet.posted_text,
            "created_at": format_time(tweet.created_at),
            "in_reply_to": tweet.kind("replied_to"),
            "media": [{"id": m.id, "alt": m.alt} for m in tweet.media],
            "raw": tweet.render(TWEET_FIELDS, users, self.reply_count(tweet)),
        }
        if tweet.deleted:
            post["deleted"] = True
        return post
