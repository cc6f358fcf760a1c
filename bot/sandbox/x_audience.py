"""The X emulator's audience (`POST /_sandbox/audience`, docs/sandbox.md): other accounts that
post, reply, quote, mention, delete and get suspended."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.sandbox.x_store import XStore
from bot.sandbox.x_tweets import XTweet, XUser, hashtags_of, mentions_of

CAMPAIGN_HASHTAG = "#NoTechForICE"


def audience_act(
    store: XStore, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any]
) -> XTweet | dict[str, Any]:
    """The tweet someone else posted, or for `delete` and `suspend` what they took away."""
    user = store.audience_user(author)
    if user.id in store.suspended:
        raise ValueError(f"{user.username} is suspended")
    if kind in ("delete", "suspend", "edit"):
        return _change(store, kind, user, to)
    parent = None
    quoted = None
    if kind == "quote":
        quoted = store.live(str(to))
        if quoted is None:
            raise ValueError(f"quote needs `to`: the id of a tweet, not {to!r}")
    elif kind == "reply":
        parent = store.tweets_by_id.get(str(to))
        if parent is None:
            raise ValueError(f"no tweet {to} to reply to")
        # X starts a reply's text with the replied-to author's @username (not one's own: a thread).
        named = {m.lower() for m in mentions_of(text)}
        if parent.author is not user and parent.author.username.lower() not in named:
            text = f"@{parent.author.username} {text}"
    elif kind == "mention":
        ours = {a.username.lower() for a in store.accounts}
        if not ours & {m.lower() for m in mentions_of(text)}:
            text = f"@{store.accounts[0].username} {text}"
    elif kind == "hashtag" and not hashtags_of(text):
        text = f"{text} {CAMPAIGN_HASHTAG}"
    tweet = store.add_tweet(user, text, parent=parent, quoted=quoted.id if quoted else None)
    tweet.plain = bool(options.get("plain"))
    return tweet


def _change(store: XStore, kind: str, user: XUser, to: str | None) -> dict[str, Any]:
    """Someone deletes a tweet of theirs, or is suspended: their tweets vanish from every read
    (search, mentions, lookups), as a suspended account's do. X's edits are not emulated."""
    if kind == "edit":
        raise ValueError("edit: only the Mastodon emulator edits posts")
    if kind == "suspend":
        store.suspended.add(user.id)
        gone = [t for t in store.tweets_by_id.values() if t.author is user and not t.deleted]
    else:
        tweet = store.live(str(to))
        if tweet is None or tweet.author is not user:
            raise ValueError(f"delete needs `to`: the id of a live tweet by {user.username}, not {to!r}")
        gone = [tweet]
    for tweet in gone:
        tweet.deleted = True
    return {"author": user.username, "deleted": [t.id for t in gone]}
