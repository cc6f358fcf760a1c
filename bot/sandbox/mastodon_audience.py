"""The Mastodon emulator's audience (`POST /_sandbox/audience`, docs/sandbox.md): remote accounts
that post, reply, quote, mention, edit, delete and get suspended, with what strangers' posts carry
and ours never do (media, polls, cards; a `tags` array that differs from the text)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.sandbox.mastodon_entities import Actor, Media, Status, extract_tags
from bot.sandbox.mastodon_store import MastodonStore

CAMPAIGN_TAG = "NoTechForICE"


@dataclass
class Audience:
    store: MastodonStore
    publish: Callable[[str, Status], None]  # to the streams: update, status.update, delete
    describe: Callable[[Status], dict[str, Any]]  # the state shape
    host: str
    visibility: str  # the `audience_visibility` setting

    def act(
        self, kind: str, author: str, text: str, to: str | None, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        actor = self.store.audience_actor(author)
        if actor.suspended:
            raise ValueError(f"{actor.acct} is suspended")
        host = self.host
        if kind in ("edit", "delete", "suspend"):
            return self._change(kind, actor, text, to)
        parent: Status | None = None
        quote: Status | None = None
        if kind == "quote":
            quote = self.store.statuses.get(str(to))
            if quote is None or quote.deleted:
                raise ValueError(f"quote needs `to`: the id of an existing status, not {to!r}")
        elif kind == "reply":
            parent = self.store.statuses.get(str(to)) if to is not None else None
            if parent is None or parent.deleted:
                raise ValueError(f"reply needs `to`: the id of an existing status, not {to!r}")
            # Mastodon clients start a reply with the mention of the author replied to and of
            # those it mentions, never oneself (the web composer): a self-reply thread keeps
            # naming whom its first part answered.
            named = self.store.resolve_mentions(text, host)
            carried = [a for a in (parent.author, *parent.mentions) if a is not actor and a not in named]
            text = " ".join([*dict.fromkeys(f"@{a.acct}" for a in carried), text])
        elif kind == "mention":
            if not any(a.domain is None for a in self.store.resolve_mentions(text, host)):
                text = f"@{self.store.ours[0].username} {text}"
        elif kind == "hashtag" and CAMPAIGN_TAG.lower() not in extract_tags(text):
            text = f"{text} #{CAMPAIGN_TAG}"
        status = self.store.create_status(
            actor,
            text,
            host=host,
            visibility=self.visibility,
            in_reply_to=parent,
            quote=quote,
            media=[self._image(actor, str(alt)) for alt in options.get("media") or []],
        )
        # What strangers' posts carry and ours never do (the recorded server's shapes).
        if options.get("poll"):
            status.poll_options = [str(o) for o in options["poll"]]
        if options.get("card"):
            status.card_url = str(options["card"])
        if options.get("plain"):
            status.shown_tags = []  # the text has the tag, the `tags` array does not
        elif options.get("tags") is not None:
            status.shown_tags = [str(t) for t in options["tags"]]
        self.publish("update", status)
        return self.describe(status)

    def _change(self, kind: str, actor: Actor, text: str, to: str | None) -> dict[str, Any]:
        """Someone edits or deletes a status of theirs, or is suspended (their statuses go)."""
        if kind == "suspend":
            gone = self.store.suspend(actor)
            for status in gone:
                self.publish("delete", status)
            return {"author": actor.acct, "deleted": [s.id for s in gone]}
        changed = self.store.statuses.get(str(to))
        if changed is None or changed.deleted or changed.author is not actor:
            raise ValueError(f"{kind} needs `to`: the id of a live status by {actor.acct}, not {to!r}")
        if kind == "delete":
            self.store.delete(changed)
            self.publish("delete", changed)
            return {"author": actor.acct, "deleted": [changed.id]}
        self.store.edit(changed, text, self.host)
        self.publish("status.update", changed)
        return self.describe(changed)

    def _image(self, actor: Actor, alt: str) -> Media:
        media = Media(
            self.store.new_id(), actor, "image", "image/jpeg", alt or None, self.store.clock(), 640, 480
        )
        self.store.media[media.id] = media
        return media
