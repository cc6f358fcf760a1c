"""The X emulator's records (users, tweets, media) and how X renders them on the wire.

Wire facts (X's OpenAPI spec; tweepy's `tweet.py` and `utils.py`): ids are strings, every tweet carries
`edit_history_tweet_ids`, `created_at` has milliseconds, optional fields appear only when asked
for through `tweet.fields` / `user.fields`, and empty ones are left out rather than sent empty.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from twitter_text import extract_urls

# Twitter's snowflake epoch (2010-11-04T01:42:54.657Z): an id's top bits are milliseconds since.
SNOWFLAKE_EPOCH_MS = 1288834974657

TWEET_FIELDS = frozenset(
    [
        "article",
        "attachments",
        "author_id",
        "card_uri",
        "community_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "display_text_range",
        "edit_controls",
        "edit_history_tweet_ids",
        "entities",
        "geo",
        "id",
        "in_reply_to_user_id",
        "lang",
        "media_metadata",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "scopes",
        "source",
        "suggested_source_links",
        "text",
        "withheld",
    ]
)
USER_FIELDS = frozenset(
    [
        "affiliation",
        "connection_status",
        "created_at",
        "description",
        "entities",
        "id",
        "location",
        "most_recent_tweet_id",
        "name",
        "pinned_tweet_id",
        "profile_banner_url",
        "profile_image_url",
        "protected",
        "public_metrics",
        "receives_your_dm",
        "subscription_type",
        "url",
        "username",
        "verified",
        "verified_type",
        "withheld",
    ]
)
MEDIA_FIELDS = frozenset(
    [
        "alt_text",
        "duration_ms",
        "height",
        "media_key",
        "non_public_metrics",
        "organic_metrics",
        "preview_image_url",
        "promoted_metrics",
        "public_metrics",
        "type",
        "url",
        "variants",
        "width",
    ]
)

_HASHTAG = re.compile(r"(?<![\w&#＃])[#＃](\w*[^\W\d_]\w*)")
_MENTION = re.compile(r"(?<![\w@＠])[@＠](\w{1,15})(?!\w)")


def snowflake_at(moment: datetime) -> int:
    """The smallest tweet id X could give a tweet created at `moment`."""
    return (int(moment.timestamp() * 1000) - SNOWFLAKE_EPOCH_MS) << 22


def time_of_snowflake(tweet_id: int) -> datetime:
    return datetime.fromtimestamp(((tweet_id >> 22) + SNOWFLAKE_EPOCH_MS) / 1000, UTC)


def format_time(moment: datetime) -> str:
    """X's timestamps: UTC with exactly three decimals (tweepy's parser needs the `.%f`)."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def stable_digits(seed: str, digits: int = 19) -> str:
    """A deterministic number of `digits` digits, for ids that must not change between runs."""
    number = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    low = 10 ** (digits - 1)
    return str(low + number % (9 * low))


def stable_token(seed: str, length: int) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int(hashlib.sha256(seed.encode()).hexdigest() * 2, 16)
    out = []
    for _ in range(length):
        number, digit = divmod(number, len(alphabet))
        out.append(alphabet[digit])
    return "".join(out)


def hashtags_of(text: str) -> list[str]:
    return [m.group(1) for m in _HASHTAG.finditer(text)]


def mentions_of(text: str) -> list[str]:
    return [m.group(1) for m in _MENTION.finditer(text)]


@dataclass
class XUser:
    id: str
    username: str
    name: str
    created_at: datetime
    account: str | None = None  # our sandbox account name; None for the audience

    def render(self, fields: frozenset[str], tweet_count: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "username": self.username}
        optional: dict[str, Any] = {
            "created_at": format_time(self.created_at),
            "description": "",
            "protected": False,
            "verified": False,
            "verified_type": "none",
            "profile_image_url": "https://abs.twimg.com/sticky/default_profile_images/default_profile_normal.png",
            "public_metrics": {
                "followers_count": 0,
                "following_count": 0,
                "tweet_count": tweet_count,
                "listed_count": 0,
                "like_count": 0,
                "media_count": 0,
            },
        }
        out |= {k: v for k, v in optional.items() if k in fields}
        return out


@dataclass
class XMedia:
    id: str
    owner_id: str
    mime: str
    width: int
    height: int
    size: int
    created_at: datetime
    alt: str | None = None
    expires_after: timedelta = timedelta(hours=24)

    @property
    def key(self) -> str:
        return f"{16 if self.mime == 'image/gif' else 3}_{self.id}"

    def render(self, fields: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "media_key": self.key,
            "type": "animated_gif" if self.key[0] == "1" else "photo",
        }
        if "width" in fields:
            out["width"] = self.width
        if "height" in fields:
            out["height"] = self.height
        if "alt_text" in fields and self.alt is not None:
            out["alt_text"] = self.alt
        if "url" in fields:
            out["url"] = f"https://pbs.twimg.com/media/{self.id}.{self.mime.split('/')[1]}"
        return out


@dataclass
class XTweet:
    id: str
    author: XUser
    posted_text: str  # as the client sent it
    created_at: datetime
    conversation_id: str
    in_reply_to_user_id: str | None = None
    referenced: list[tuple[str, str]] = field(default_factory=list)  # (replied_to|quoted|retweeted, id)
    media: list[XMedia] = field(default_factory=list)
    deleted: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # the sandbox's audience `fields`
    # No hashtag entities though the text has tags: a long post's entities come under
    # `note_tweet`, and some clients' text is read back without them (docs/sandbox.md, `plain`).
    plain: bool = False

    @property
    def text(self) -> str:
        """The text as X returns it: every link replaced by a 23-character t.co link."""
        text = self.posted_text
        for url in self.urls():
            text = text.replace(url, self._tco(url), 1)
        return text

    def urls(self) -> list[str]:
        return list(extract_urls(self.posted_text))

    def _tco(self, url: str) -> str:
        return "https://t.co/" + stable_token(f"{self.id}:{url}", 10)

    def kind(self, name: str) -> str | None:
        return next((ref for kind, ref in self.referenced if kind == name), None)

    def entities(self, users_by_name: dict[str, XUser]) -> dict[str, Any]:
        text = self.text
        out: dict[str, Any] = {}
        hashtags = [
            {"start": m.start(), "end": m.end(), "tag": m.group(1)}
            for m in _HASHTAG.finditer(text)
            if not self.plain
        ]
        mentions = []
        for m in _MENTION.finditer(text):
            mention: dict[str, Any] = {"start": m.start(), "end": m.end(), "username": m.group(1)}
            user = users_by_name.get(m.group(1).lower())
            if user is not None:
                mention["id"] = user.id
            mentions.append(mention)
        urls = []
        for url in self.urls():
            tco = self._tco(url)
            start = text.find(tco)
            expanded = url if "://" in url else f"http://{url}"
            display = expanded.split("://", 1)[1]
            urls.append(
                {
                    "start": start,
                    "end": start + len(tco),
                    "url": tco,
                    "expanded_url": expanded,
                    "display_url": display if len(display) <= 26 else display[:25] + "…",
                }
            )
        for name, items in (("hashtags", hashtags), ("mentions", mentions), ("urls", urls)):
            if items:
                out[name] = items
        return out

    def render(
        self, fields: frozenset[str], users_by_name: dict[str, XUser], reply_count: int = 0
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text, "edit_history_tweet_ids": [self.id]}
        if "author_id" in fields:
            out["author_id"] = self.author.id
        if "conversation_id" in fields:
            out["conversation_id"] = self.conversation_id
        if "created_at" in fields:
            out["created_at"] = format_time(self.created_at)
        if "in_reply_to_user_id" in fields and self.in_reply_to_user_id:
            out["in_reply_to_user_id"] = self.in_reply_to_user_id
        if "referenced_tweets" in fields and self.referenced:
            out["referenced_tweets"] = [{"type": kind, "id": ref} for kind, ref in self.referenced]
        if "attachments" in fields and self.media:
            out["attachments"] = {"media_keys": [m.key for m in self.media]}
        if "entities" in fields:
            entities = self.entities(users_by_name)
            if entities:
                out["entities"] = entities
        if "lang" in fields:
            out["lang"] = "en"
        if "possibly_sensitive" in fields:
            out["possibly_sensitive"] = False
        if "reply_settings" in fields:
            out["reply_settings"] = "everyone"
        if "public_metrics" in fields:
            out["public_metrics"] = {
                "retweet_count": 0,
                "reply_count": reply_count,
                "like_count": 0,
                "quote_count": 0,
                "bookmark_count": 0,
                "impression_count": 0,
            }
        if "edit_controls" in fields:
            out["edit_controls"] = {
                "edits_remaining": 5,
                "is_edit_eligible": not self.referenced,
                "editable_until": format_time(self.created_at + timedelta(hours=1)),
            }
        # As X would: a field the request did not ask for is not sent, hostile or not.
        out.update({k: v for k, v in self.overrides.items() if k in out or k in fields})
        return out
