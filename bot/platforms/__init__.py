"""The one small interface every network adapter implements, and the values that cross it.

The core never imports an SDK: it hands an adapter an `Outgoing` message and gets back a
`Published` reference or one of the errors of `bot.errors` (RateLimited, Transient, Rejected,
AuthFailed). Each adapter module (x, bluesky, mastodon, facebook, instagram) is loaded by name
through `open_client`, so the core never names tweepy, atproto or Mastodon.py.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from bot.campaign.contentfiles import read_content_image
from bot.campaign.model import Account, LinkCard, Platform
from bot.errors import Transient


@dataclass(frozen=True)
class Media:
    path: Path  # absolute, inside the content folder
    alt: str
    root: Path | None = None  # the content folder (None: the file's own folder)

    def read(self) -> bytes:
        """The image's bytes, read again now: a regular file inside the content folder reached
        without a link, and the image its name claims (`bot.campaign.contentfiles`)."""
        return read_content_image(self.root or self.path.parent, self.path)


@dataclass(frozen=True)
class Facet:
    """A Bluesky rich-text facet over UTF-8 byte offsets [start, end) of the text."""

    start: int
    end: int
    kind: Literal["tag", "link", "mention"]
    value: str  # the tag without '#', the URI, or the handle without '@'


@dataclass(frozen=True)
class Published:
    """Where one part landed: enough to reply to it, link to it, delete it."""

    id: str  # tweet id, at:// URI, or status id
    url: str
    cid: str | None = None  # Bluesky: with the URI, the strong ref a reply needs


@dataclass(frozen=True)
class Outgoing:
    """One part of a post as it goes to one account, exactly as rendered."""

    text: str
    nonce: str  # chosen when the delivery was claimed: Bluesky's TID rkey, Mastodon's Idempotency-Key
    images: tuple[Media, ...] = ()
    facets: tuple[Facet, ...] = ()  # Bluesky only
    spoiler_text: str | None = None  # Mastodon only
    visibility: str | None = None  # Mastodon only
    language: str | None = None
    link_card: LinkCard | bool = False  # Bluesky only
    link: str | None = None  # Facebook only: the link the post shares
    reply_to: Published | None = None  # the previous part of the thread
    root: Published | None = None  # the thread's first part
    # Two-step publishing (Instagram): what an earlier attempt made (a container id), and how to
    # record a new one in the ledger before the final call; the call is not made if that fails.
    checkpoint: str | None = None
    on_checkpoint: Callable[[str], bool] | None = field(default=None, compare=False, repr=False)


# The author of a post a network names nobody for (Instagram's hashtag search gives no
# username; Facebook hides a visitor's name from some tokens): never one person.
UNNAMED_AUTHORS = {"facebook": "Facebook user", "instagram": "Instagram user"}


@dataclass(frozen=True)
class Mention:
    """A post by someone else that monitoring saw.

    Authors and named accounts are given twice: `author` is the handle people read (X
    username, Bluesky handle, Mastodon `user@domain`), `author_id` the stable identity that
    `PlatformClient.identity()` returns for our own accounts (X user id, Bluesky DID, Mastodon
    `user@domain` lower-cased), so monitoring can tell our posts and our names apart.
    """

    id: str
    url: str
    author: str
    text: str
    # None when the network gave no time we can use (missing, unparsable, or a year UTC cannot
    # hold): monitoring then records the time it saw the post.
    created_at: datetime | None
    hashtags: tuple[str, ...] = ()  # as written, without '#'
    in_reply_to: str | None = None  # the id of the post it answers or quotes, when it does
    mentions_us: bool = False  # the platform notified the polling account of a mention
    public: bool = True  # False for DMs and followers-only posts: never logged
    author_id: str = ""
    mentioned: tuple[str, ...] = ()  # identities of the accounts it names
    in_reply_to_author: str | None = None  # identity of the author of the post answered or quoted
    in_reply_to_url: str | None = None  # that post's web address, when the adapter can tell
    edited: bool = False  # edited since it was posted (Mastodon's `edited_at`): said in the log line


@dataclass(frozen=True)
class Batch:
    """One page of a monitoring read.

    `cursor` is opaque to the caller: store it and hand it back on the next read. `more` says
    another page is waiting now (a gap longer than a page): call again at once, budget allowing.
    Posts come newest first or oldest first as the platform serves them; the caller sorts.
    """

    posts: tuple[Mention, ...]
    cursor: str | None
    more: bool = False
    skipped: int = 0  # posts on this page the adapter could not read (each logged)


T = TypeVar("T")
log = logging.getLogger("bot.platforms")
# What reading a malformed post raises: a missing key, a wrong type, a number out of range.
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


def answer_id(platform: str, read: Callable[[], object]) -> str:
    """An id read from a server's answer (`read` digs it out): a non-empty string or number, or
    `Transient`, since a malformed answer to a write may hide a write that landed (the next
    attempt looks first). Never `None` recorded as a post's id."""
    try:
        value = read()
    except MALFORMED as exc:
        raise Transient(f"{platform}: malformed answer ({type(exc).__name__})") from exc
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise Transient(f"{platform}: answer without a usable id")
    return str(value)


def utc_time(value: object) -> datetime | None:
    """An aware UTC datetime from a datetime or ISO 8601 text; None when missing, unparsable,
    or not representable in UTC (`0001-01-01T00:00:00+14:00` is valid ISO 8601 and a year-0
    instant: a PDS accepts it as a post's `createdAt`)."""
    try:
        if isinstance(value, str) and value:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def read_each(
    items: Iterable[T], to_mention: Callable[[T], Mention], where: str
) -> tuple[list[Mention], int]:
    """Each item of a page as a Mention; one that cannot be read is logged and skipped alone,
    never failing the page (a stranger's malformed post must not stop a stream)."""
    posts, skipped = [], 0
    for item in items:
        try:
            posts.append(to_mention(item))
        except MALFORMED as exc:
            skipped += 1
            log.warning("%s: skipped a post that cannot be read (%s)", where, type(exc).__name__)
    return posts, skipped


class PlatformClient(Protocol):
    """One account on one network. Every method raises only `bot.errors.PlatformError`s."""

    platform: Platform
    account: str

    def verify(self) -> str:
        """One read-only call that proves the credentials; returns the account's handle."""
        ...

    def publish(self, message: Outgoing) -> Published:
        """Post one part (a reply when `message.reply_to` is set)."""
        ...

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        """Reconcile a lost answer: the part if this account already posted it after `since`.

        Bluesky looks up the record by its rkey (`nonce`); X and Mastodon look among the
        account's recent posts for the exact text posted after `since`.
        """
        ...

    def delete(self, published: Published) -> None: ...

    def repost(self, post_id: str) -> Published:
        """Retweet, repost or boost someone else's post."""
        ...

    def close(self) -> None:
        """Close the HTTP connection pool (an unclosed one leaks its sockets until collected)."""
        ...

    # -- monitoring reads (docs/design.md, monitoring) -------------------------------------

    def identity(self) -> str:
        """This account's identity as `Mention.author_id` spells it; cached after the first call."""
        ...

    def read_hashtags(
        self, tags: Sequence[str], cursor: str | None, start: datetime, conversations: Sequence[str] = ()
    ) -> Batch:
        """Public posts using any of `tags` (without '#') after `cursor`, or since `start` without one.

        X: recent search `(#a OR #b OR conversation_id:ID ...) -is:retweet`; `conversations`
        are our recent posts whose replies are wanted (X has no reply notifications on Free).
        Bluesky (searchPosts) and Mastodon (the tag timeline) take exactly one tag and ignore
        `conversations`.
        """
        ...

    def read_notifications(self, cursor: str | None, start: datetime) -> Batch:
        """Replies, quotes and mentions addressed to this account after `cursor` (or since `start`).

        X: users/:id/mentions; Bluesky: listNotifications (reply, quote, mention); Mastodon:
        notifications of type mention (replies are mentions there), DMs marked not public.
        """
        ...


def open_client(account: Account, **options: object) -> PlatformClient:
    """Build the adapter for `account`, importing its SDK only now.

    Options every adapter takes: `timeout` (seconds per HTTP call), and for Bluesky
    `load_session`/`save_session` callables backed by the ledger, so a restart reuses the
    session instead of calling createSession (limited to 30 per 5 minutes).
    """
    module = importlib.import_module(f"bot.platforms.{account.platform}")
    client: PlatformClient = module.open_client(account, **options)
    return client
