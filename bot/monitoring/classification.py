"""Which kind of post someone else made, if it is one we report (docs/design.md, monitoring). Pure.

Each post gets the first kind that applies:

    reply     answers or quotes one of our posts (linked to the delivery it answers)
    mention   names one of our accounts
    hashtag   uses a tracked hashtag (case-insensitive)

A post uses a tag when its structured tags (Bluesky facets and `tags`, Mastodon `tags`, X
`entities`) or its text carry it, the text read by the network's own rule
(`bot.render.hashtags`): many clients post plain text. The tags a sighting reports are in the
campaign's spelling (config.yaml) when tracked, as first written otherwise.

and none at all when it is ours, not public (a DM, a followers-only post), or by a handle in
`monitor.ignore`: those are never logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bot.campaign.model import Platform
from bot.ledger.ourposts import OurPost
from bot.platforms import Mention
from bot.render.hashtags import hashtags_in_text

Kind = Literal["reply", "mention", "hashtag"]


def normalize_handle(handle: str) -> str:
    """`@Alice@Example.social` is `alice@example.social`; `@bob.bsky.social` is `bob.bsky.social`."""
    return handle.strip().removeprefix("@").lower()


def normalize_tag(tag: str) -> str:
    return tag.strip().lstrip("#＃").casefold()


@dataclass(frozen=True)
class Ours:
    """What classification knows about us on one platform."""

    accounts: Mapping[str, str]  # identity (Mention.author_id form) -> account name
    hashtags: Mapping[str, str]  # normalized (without '#', case-folded) -> the campaign's spelling
    ignore: frozenset[str] = frozenset()  # normalized handles

    @classmethod
    def build(cls, accounts: Mapping[str, str], hashtags: Iterable[str], ignore: Iterable[str] = ()) -> Ours:
        return cls(
            accounts={identity.lower(): name for identity, name in accounts.items()},
            hashtags=campaign_spelling(hashtags),
            ignore=frozenset(normalize_handle(h) for h in ignore),
        )

    def is_ours(self, identity: str | None) -> bool:
        return identity is not None and identity.lower() in self.accounts

    def account_of(self, identity: str) -> str | None:
        return self.accounts.get(identity.lower())


@dataclass(frozen=True)
class Sighting:
    """A post by someone else, classified: what the log line and the mentions log show."""

    kind: Kind
    platform: Platform
    account: str | None  # our account it concerns; None for a hashtag post
    post: Mention
    in_reply_to: str | None  # our post's URL, for a reply
    tracked: bool = field(default=False)  # uses a tracked hashtag (whatever its kind): amplifiable
    hashtags: tuple[str, ...] = ()  # every tag it uses: tracked ones in the campaign's spelling

    @property
    def created_at(self) -> datetime | None:
        return self.post.created_at


@dataclass(frozen=True)
class Thread:
    """A reported reply to one of our posts, as its author's next part of a thread sees it."""

    author: str  # normalized handle
    account: str | None
    our_url: str | None


def campaign_spelling(hashtags: Iterable[str]) -> dict[str, str]:
    """Normalized tag -> the campaign's spelling of it (config.yaml's `hashtags`, without '#')."""
    spelling: dict[str, str] = {}
    for tag in hashtags:
        spelling.setdefault(normalize_tag(tag), tag.strip().lstrip("#＃"))
    return spelling


def spell_tags(tags: Iterable[str], spelling: Mapping[str, str]) -> tuple[str, ...]:
    """`tags` once each whatever their case: tracked ones first and spelled as the campaign
    spells them, the others as first written."""
    found: dict[str, str] = {}
    for tag in tags:
        name = tag.strip().lstrip("#＃")
        if name:
            found.setdefault(normalize_tag(name), name)
    tracked = [spelling[k] for k in found if k in spelling]
    return (*tracked, *(name for k, name in found.items() if k not in spelling))


def tags_used(post: Mention, platform: Platform, ours: Ours) -> tuple[str, ...]:
    """The post's tags from its structure and its text, in the campaign's spelling."""
    return spell_tags((*post.hashtags, *hashtags_in_text(platform, post.text)), ours.hashtags)


def classify(
    post: Mention,
    platform: Platform,
    ours: Ours,
    answered: Mapping[str, OurPost],
    polled_by: str | None = None,
    threads: Mapping[str, Thread] | None = None,
) -> Sighting | None:
    """The post's kind, or None when it is not reported.

    `answered` maps the ids of our published posts (those this post might answer) to where
    they are; `polled_by` is the account whose notifications the post came from, if any;
    `threads` the replies to us already reported, by id: the same author's answer to one of
    them continues it (a self-reply thread) and is a reply to our post too.
    """
    if not post.public or ours.is_ours(post.author_id) or normalize_handle(post.author) in ours.ignore:
        return None
    tags = tags_used(post, platform, ours)
    tracked = bool(tags) and normalize_tag(tags[0]) in ours.hashtags
    delivered = answered.get(post.in_reply_to) if post.in_reply_to else None
    if delivered is not None:
        return Sighting("reply", platform, delivered.account, post, delivered.url, tracked, tags)
    if post.in_reply_to is not None and ours.is_ours(post.in_reply_to_author):
        # One of our posts that no delivery knows (written by hand, or before the ledger).
        account = ours.account_of(post.in_reply_to_author or "") or polled_by
        return Sighting("reply", platform, account, post, post.in_reply_to_url, tracked, tags)
    thread = (threads or {}).get(post.in_reply_to or "")
    if thread is not None and thread.author == normalize_handle(post.author):
        return Sighting("reply", platform, thread.account, post, thread.our_url, tracked, tags)
    named = [ours.account_of(i) for i in post.mentioned if ours.is_ours(i)]
    if named or post.mentions_us:
        return Sighting("mention", platform, named[0] if named else polled_by, post, None, tracked, tags)
    if tracked:
        return Sighting("hashtag", platform, None, post, None, tracked, tags)
    return None
