"""The emulated instance's data: accounts, statuses, media, notifications, and who sees what.

No HTTP here: bot/sandbox/mastodon.py parses requests and calls these methods under the
emulator's lock. Statuses are rendered for a viewer, because Mastodon's answer depends on who
asks (`pinned` only for the author, `reblogged` for the viewer, private and direct statuses
only for their author and the accounts they mention).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from bot.sandbox.mastodon_entities import (
    Actor,
    Media,
    Notification,
    Status,
    account_json,
    card_json,
    extract_mentions,
    extract_tags,
    iso_ms,
    media_json,
    poll_json,
    render_content,
)

APPLICATION = {"name": "campaign-bot", "website": None}
# Our accounts exist since before any test clock: ids are snowflakes of this moment.
ACCOUNTS_CREATED = datetime(2026, 1, 1, tzinfo=UTC)
AUDIENCE_DOMAIN = "example.social"


def access_token(name: str) -> str:
    """A fixed token per sandbox account, shaped like Doorkeeper's (43 URL-safe characters)."""
    digest = hashlib.sha256(f"campaign-bot sandbox mastodon {name}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:43]


def snowflake(moment: datetime, sequence: int) -> int:
    """Mastodon's ids: milliseconds since the epoch in the high bits, a sequence in the low 16."""
    return (int(moment.timestamp() * 1000) << 16) + (sequence & 0xFFFF)


def id_order(value: str | int) -> tuple[int, str]:
    """Ids compare as (length, text): Mastodon's decimal snowflakes and GoToSocial's ULIDs alike."""
    text = str(value)
    return (len(text), text)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(moment: datetime, sequence: int) -> str:
    """GoToSocial's ids: ULIDs, 48 bits of milliseconds then 80 of (here) sequence, base 32."""
    number = (int(moment.timestamp() * 1000) << 80) + sequence
    return "".join(_CROCKFORD[(number >> shift) & 31] for shift in range(125, -1, -5))


def paginate(
    items: list[Any],
    key: Callable[[Any], str | int],
    *,
    max_id: str | None,
    since_id: str | None,
    min_id: str | None,
    limit: int,
) -> list[Any]:
    """Mastodon's paginate_by_id over items sorted newest first.

    `min_id` returns the oldest `limit` items after it (newest first), so that a reader moving
    forward misses nothing; `since_id` returns the newest `limit` after it.
    """
    chosen = [
        item
        for item in items
        if (max_id is None or id_order(key(item)) < id_order(max_id))
        and (since_id is None or id_order(key(item)) > id_order(since_id))
        and (min_id is None or id_order(key(item)) > id_order(min_id))
    ]
    if min_id is not None:
        return chosen[-limit:] if limit else []
    return chosen[:limit]


class MastodonStore:
    def __init__(self, names: list[str], clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.ours: list[Actor] = [
            Actor(
                id=str(snowflake(ACCOUNTS_CREATED, index)),
                username=name,
                created_at=ACCOUNTS_CREATED,
                token=access_token(name),
            )
            for index, name in enumerate(names, start=1)
        ]
        self.remote: dict[str, Actor] = {}
        self.statuses: dict[str, Status] = {}
        self.media: dict[str, Media] = {}
        self.notifications: list[Notification] = []
        self._last_id = 0
        self._sequence = 0
        self.ulid_ids = False  # GoToSocial mode: new ids are ULIDs, not numbers
        self._notification_id = 0

    # -- ids and accounts -----------------------------------------------------------------

    def new_id(self) -> str:
        self._sequence += 1
        self._last_id = max(self._last_id + 1, snowflake(self.clock(), self._sequence))
        return ulid(self.clock(), self._last_id & 0xFFFFFFFF) if self.ulid_ids else str(self._last_id)

    def by_token(self, token: str) -> Actor | None:
        return next((actor for actor in self.ours if actor.token == token), None)

    def actor(self, actor_id: str) -> Actor | None:
        for actor in (*self.ours, *self.remote.values()):
            if actor.id == actor_id:
                return actor
        return None

    def audience_actor(self, author: str) -> Actor:
        """Someone else's account, `alice` (on example.social) or `alice@other.example`."""
        username, _, domain = author.lstrip("@").partition("@")
        acct = f"{username}@{domain or AUDIENCE_DOMAIN}"
        if acct.lower() not in self.remote:
            self.remote[acct.lower()] = Actor(
                id=self.new_id(), username=username, domain=domain or AUDIENCE_DOMAIN, created_at=self.clock()
            )
        return self.remote[acct.lower()]

    def resolve_mentions(self, text: str, host: str) -> list[Actor]:
        """The known accounts a text mentions: ours (`@main`, `@main@host`) and the audience's."""
        found: list[Actor] = []
        for username, domain in extract_mentions(text):
            actor: Actor | None = None
            if domain is None or domain.lower() == host.lower():
                actor = next((a for a in self.ours if a.username.lower() == username.lower()), None)
            else:
                actor = self.remote.get(f"{username}@{domain}".lower())
            if actor is not None and actor not in found:
                found.append(actor)
        return found

    # -- statuses -------------------------------------------------------------------------

    def create_status(
        self,
        author: Actor,
        text: str,
        *,
        host: str,
        spoiler_text: str = "",
        visibility: str = "public",
        sensitive: bool = False,
        language: str | None = "en",
        in_reply_to: Status | None = None,
        media: Iterable[Media] = (),
        quote: Status | None = None,
    ) -> Status:
        status = Status(
            id=self.new_id(),
            author=author,
            text=text,
            spoiler_text=spoiler_text,
            visibility=visibility,
            sensitive=sensitive or bool(spoiler_text),
            language=language,
            created_at=self.clock(),
            in_reply_to=in_reply_to,
            media=list(media),
            tags=extract_tags(text),
            mentions=self.resolve_mentions(text, host),
            quote=quote,
        )
        for item in status.media:
            item.status_id = status.id
        self._add(status)
        for mentioned in status.mentions:
            if mentioned.domain is None and mentioned is not author:
                self.notify("mention", mentioned, author, status)
        if quote is not None and quote.author.domain is None and quote.author is not author:
            self.notify("quote", quote.author, author, status)  # Mastodon 4.5's quote notification
        return status

    def reblog(self, actor: Actor, original: Status, visibility: str) -> Status:
        existing = self.reblog_by(actor, original)
        if existing is not None:
            return existing
        status = Status(
            id=self.new_id(),
            author=actor,
            text="",
            spoiler_text="",
            visibility=visibility,
            sensitive=False,
            language=None,
            created_at=self.clock(),
            reblog=original,
        )
        self._add(status)
        if original.author.domain is None and original.author is not actor:
            self.notify("reblog", original.author, actor, original)
        return status

    def delete(self, status: Status) -> None:
        if not status.deleted:
            status.deleted = True
            status.author.statuses_count -= 1

    def _add(self, status: Status) -> None:
        self.statuses[status.id] = status
        status.author.statuses_count += 1
        status.author.last_status_at = status.created_at
        if status.in_reply_to is not None:
            status.in_reply_to.replies.append(status)
        if status.reblog is not None:
            status.reblog.reblogs.append(status)

    def reblog_by(self, actor: Actor, original: Status) -> Status | None:
        return next((s for s in original.reblogs if s.author is actor and not s.deleted), None)

    def notify(self, kind: str, recipient: Actor, sender: Actor, status: Status | None) -> None:
        self._notification_id += 1
        self.notifications.append(
            Notification(self._notification_id, kind, recipient, sender, self.clock(), status)
        )

    def visible(self, status: Status, viewer: Actor | None) -> bool:
        """Mastodon's StatusPolicy#show?, without followers: private is for the author and the mentioned."""
        if status.deleted:
            return False
        if status.visibility in ("public", "unlisted"):
            return True
        return viewer is not None and (viewer is status.author or viewer in status.mentions)

    def live_statuses(self) -> list[Status]:
        """Every status not deleted, newest first."""
        return [s for s in reversed(self.statuses.values()) if not s.deleted]  # ids only grow

    def context(self, status: Status, viewer: Actor | None) -> tuple[list[Status], list[Status]]:
        ancestors: list[Status] = []
        parent = status.in_reply_to
        while parent is not None:
            if self.visible(parent, viewer):
                ancestors.insert(0, parent)
            parent = parent.in_reply_to
        descendants: list[Status] = []

        def walk(node: Status) -> None:
            for child in node.replies:
                if self.visible(child, viewer):
                    descendants.append(child)
                    walk(child)

        walk(status)
        return ancestors, descendants

    # -- rendering ------------------------------------------------------------------------

    def account_json(self, actor: Actor, base_url: str) -> dict[str, Any]:
        return account_json(actor, base_url, actor.statuses_count, actor.last_status_at)

    def status_json(
        self, status: Status, viewer: Actor | None, base_url: str, *, source: bool = False
    ) -> dict[str, Any]:
        """A Status as `viewer` gets it; `source`: with `text` instead of `content` (DELETE's answer)."""
        author = status.author
        parent = status.in_reply_to
        replies = sum(1 for s in status.replies if not s.deleted)
        reblogs = sum(1 for s in status.reblogs if not s.deleted)
        out: dict[str, Any] = {
            "id": status.id,
            "created_at": iso_ms(status.created_at),
            "in_reply_to_id": parent.id if parent else None,
            "in_reply_to_account_id": parent.author.id if parent else None,
            "sensitive": status.sensitive,
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": status.language,
            "uri": status.uri(base_url),
            "url": status.url(base_url),
            "replies_count": replies,
            "reblogs_count": reblogs,
            "favourites_count": 0,
            "quotes_count": sum(1 for s in self.statuses.values() if s.quote is status and not s.deleted),
            "edited_at": iso_ms(status.edited_at) if status.edited_at else None,
        }
        if viewer is not None:
            out.update(self._viewer_fields(status, viewer))
        if source:
            out["text"] = status.text
        else:
            mentioned = {a.acct.lower(): a for a in status.mentions}
            out["content"] = render_content(status.text, base_url, mentioned) if status.reblog is None else ""
        if viewer is not None:
            out["filtered"] = []
        out["reblog"] = self.status_json(status.reblog, viewer, base_url) if status.reblog else None
        if author.domain is None:
            # Mastodon shows the posting application only for local accounts, and a boost's as
            # null (recorded: a reblog's `application` is null).
            out["application"] = APPLICATION if status.reblog is None else None
        out["account"] = self.account_json(author, base_url)
        out["media_attachments"] = [media_json(m, base_url) for m in status.media]
        out["mentions"] = [
            {"id": a.id, "username": a.username, "url": a.url(base_url), "acct": a.acct}
            for a in status.mentions
        ]
        shown = status.tags if status.shown_tags is None else status.shown_tags
        out["tags"] = [{"name": tag, "url": f"{base_url}/tags/{tag.lower()}"} for tag in shown]
        out["emojis"] = []
        out["tagged_collections"] = []
        out["quote"] = self._quote_json(status, viewer, base_url)
        out["card"] = card_json(status.card_url) if status.card_url else None
        out["poll"] = poll_json(status, viewer is status.author)
        out["quote_approval"] = {"automatic": ["public"], "manual": [], "current_user": "automatic"}
        out.update(status.overrides)
        return out

    def _quote_json(self, status: Status, viewer: Actor | None, base_url: str) -> dict[str, Any] | None:
        """Mastodon 4.5's Quote: `accepted` with the quoted status while it can be seen."""
        if status.quote is None:
            return None
        if not self.visible(status.quote, viewer):
            return {"state": "deleted" if status.quote.deleted else "unauthorized", "quoted_status": None}
        return {"state": "accepted", "quoted_status": self.status_json(status.quote, viewer, base_url)}

    def edit(self, status: Status, text: str, host: str) -> None:
        """PUT /api/v1/statuses/:id as its author would: new text, tags and mentions, `edited_at`."""
        status.text = text
        status.tags = extract_tags(text)
        status.mentions = self.resolve_mentions(text, host)
        status.edited_at = self.clock()

    def suspend(self, actor: Actor) -> list[Status]:
        """A suspended account's statuses are gone from every read."""
        actor.suspended = True
        gone = [s for s in self.statuses.values() if s.author is actor and not s.deleted]
        for status in gone:
            self.delete(status)
        return gone

    def _viewer_fields(self, status: Status, viewer: Actor) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "favourited": False,
            "reblogged": self.reblog_by(viewer, status) is not None,
            "muted": False,
            "bookmarked": False,
        }
        if viewer is status.author and status.reblog is None and status.visibility != "direct":
            fields["pinned"] = False  # StatusSerializer#pinnable?: only the author's own posts
        return fields

    def stream_json(self, status: Status, base_url: str) -> dict[str, Any]:
        """A Status as the streaming server pushes it: the viewer's fields come last."""
        out = self.status_json(status, None, base_url)
        out.update({"favourited": False, "reblogged": False, "muted": False, "bookmarked": False})
        if status.author.domain is None and status.reblog is None:
            out["pinned"] = False
        out["filtered"] = []
        return out

    def notification_json(self, item: Notification, base_url: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(item.id),
            "type": item.kind,
            "created_at": iso_ms(item.created_at),
            "group_key": f"ungrouped-{item.id}",
            "account": self.account_json(item.sender, base_url),
        }
        if item.status is not None:
            out["status"] = self.status_json(item.status, item.recipient, base_url)
        return out
