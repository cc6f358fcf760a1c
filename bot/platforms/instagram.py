"""Instagram (a professional account behind a Facebook Page) through the Graph API (`bot.platforms.graph`).

Posting takes three calls (docs/platforms.md, Instagram): `POST /{ig-user-id}/media` makes a
container from an image URL that Instagram fetches itself, the container is polled until its
`status_code` is FINISHED (bounded: `WAITS`, through an injectable sleeper), then
`POST /{ig-user-id}/media_publish` publishes it. A post reaches this adapter as one caption (a
thread joined, bot.render.textrules); one image makes an image post, two to ten a carousel.

Images must be at a public URL: the account's `media_base_url` (where the content folder is
served) plus the image's path inside the content folder; without one, the account's Facebook
Page (`page_id`, the same Page token) hosts each image as an unpublished photo, whose public
`images` source Instagram then fetches.

Exactly once: the Graph API has no idempotency key. The container id is recorded in the ledger
(`Outgoing.on_checkpoint`) before `media_publish`; after a lost answer `find_published` asks the
container: PUBLISHED means the media exists (found among the account's newest media by caption,
since no field links a container to its media), FINISHED means publish that same container
again, ERROR or EXPIRED mean nothing was published and a new container is made.

Monitoring: comments on our newest media are replies; media that tag the account are mentions
(no endpoint lists caption @mentions; they come by webhook only); the hashtag through hashtag
search, its id cached, within 30 unique hashtags per 7 days (docs/monitoring.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

import requests

from bot.campaign.model import Account, Platform
from bot.errors import Rejected, Transient
from bot.platforms import UNNAMED_AUTHORS, Batch, Media, Mention, Outgoing, PlatformClient, Published
from bot.platforms.graph import GraphClient, as_dict, as_list, graph_time, hashtags_in, normalized
from bot.platforms.ratelimits import BudgetSink

DEFAULT_TIMEOUT = 30.0
CLOCK_SKEW = timedelta(minutes=2)  # timestamps are Meta's clock, `since` ours
# Seconds between polls of a processing container: about a minute in all, inside the ledger's
# lease (Meta advises at most once a minute for five minutes; an image is usually ready in seconds).
WAITS = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 13.0, 13.0)
MAX_CAROUSEL = 10
RECENT_MEDIA = 25  # a lost publish is among the newest few
WATCHED_MEDIA = 10  # our newest media whose comments are read
MEDIA_FIELDS = "id,caption,timestamp,permalink,username"
COMMENT_FIELDS = "id,text,username,timestamp,from,replies{id,text,username,timestamp,from}"
HASHTAG_FIELDS = "id,caption,timestamp,permalink"
Sleeper = Callable[[float], None]
CHECKED_IMAGES = 100  # `check --online` asks about this many content images at most
IMAGE_CHECK_TIMEOUT = 10.0


class InstagramClient:
    platform: Platform = "instagram"

    def __init__(
        self,
        account: Account,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        now: Callable[[], datetime],
        sleep: Sleeper = time.sleep,
        on_budget: BudgetSink | None = None,
    ) -> None:
        self.account = account.name
        self.user_id = account.credentials.get("ig_user_id", "")
        self.media_base_url = (account.credentials.get("media_base_url") or "").rstrip("/")
        self.page_id = account.credentials.get("page_id") or ""  # hosts images when no media_base_url
        self._now = now
        self._sleep = sleep
        self._graph = GraphClient(
            account.base_url,
            account.credentials.get("access_token", ""),
            label="Instagram",
            timeout=timeout,
            now=now,
            on_budget=on_budget,
        )
        self._hashtag_ids: dict[str, str] = {}  # one search per tag: the 30-per-7-days budget

    def __repr__(self) -> str:
        return f"InstagramClient(account={self.account!r})"  # never the token

    def close(self) -> None:
        self._graph.close()

    # -- the PlatformClient protocol -------------------------------------------------------

    def verify(self) -> str:
        user = self._graph.get(self.user_id, fields="id,username")
        return f"@{user.get('username') or self.user_id}"

    def publish(self, message: Outgoing) -> Published:
        container = message.checkpoint
        status = self._status(container) if container is not None else ""
        if status == "PUBLISHED":  # `find_published` looked for its media by caption and missed
            raise Rejected(
                "Instagram: this post's container was already published, but its media was not found"
                " by caption among the account's newest; not published again"
            )
        if container is None or status not in ("FINISHED", "IN_PROGRESS"):
            container = self._create(message)
            if message.on_checkpoint is not None and not message.on_checkpoint(container):
                raise Transient("Instagram: the delivery's claim was lost before publishing; not published")
        self._wait_until_ready(container)
        answer = self._graph.post(f"{self.user_id}/media_publish", {"creation_id": container})
        media_id = str(answer.get("id") or "")
        if not media_id:
            raise Transient("Instagram: the publish answer names no media id")  # it may have landed
        return Published(id=media_id, url=self._permalink(media_id))

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        """Did an earlier attempt publish? The recorded container says; its media is found by caption."""
        if message.checkpoint is not None and self._status(message.checkpoint) != "PUBLISHED":
            return None  # FINISHED: `publish` publishes it; ERROR, EXPIRED: nothing went out
        earliest = since - CLOCK_SKEW
        wanted = normalized(message.text)
        for media in self._graph.pages(
            f"{self.user_id}/media", 1, fields=MEDIA_FIELDS, limit=str(RECENT_MEDIA)
        ):
            created = graph_time(media.get("timestamp"))
            if created is not None and created < earliest:
                break  # newest first: the rest is older
            if media.get("id") and normalized(str(media.get("caption") or "")) == wanted:
                return Published(id=str(media["id"]), url=str(media.get("permalink") or ""))
        return None

    def delete(self, published: Published) -> None:
        self._graph.delete(published.id)

    def repost(self, post_id: str) -> Published:
        raise Rejected(
            "Instagram: the Graph API cannot share another account's media; amplify is not offered"
        )

    # -- monitoring reads -------------------------------------------------------------------

    def identity(self) -> str:
        return self.user_id

    def read_hashtags(
        self, tags: Sequence[str], cursor: str | None, start: datetime, conversations: Sequence[str] = ()
    ) -> Batch:
        """Public media with the tag from the last 24 hours (all `recent_media` offers), newer
        than the cursor."""
        since = graph_time(cursor) or start
        found: list[Mention] = []
        for tag in tags:
            hashtag_id = self._hashtag_id(tag)
            # At most 50 a page and not always newest first: one page, filtered by time.
            for media in self._graph.pages(
                f"{hashtag_id}/recent_media", 1, user_id=self.user_id, fields=HASHTAG_FIELDS, limit="50"
            ):
                created = graph_time(media.get("timestamp"))
                if created is None or not media.get("id") or created < since:
                    continue
                unnamed = UNNAMED_AUTHORS["instagram"]  # the hashtag search names no one
                found.append(self._mention(media, created, author=unnamed, mentions_us=False))
        newest = max((m.created_at for m in found if m.created_at is not None), default=since)
        return Batch(tuple(found), max(newest, since).isoformat())

    def read_notifications(self, cursor: str | None, start: datetime) -> Batch:
        """Comments (and replies) on our newest media, and media that tag the account, newer
        than the cursor."""
        since = graph_time(cursor) or start
        found: list[Mention] = []
        for media in self._graph.pages(f"{self.user_id}/tags", 1, fields=MEDIA_FIELDS, limit="50"):
            created = graph_time(media.get("timestamp"))
            if created is not None and created >= since and media.get("id"):
                author = str(media.get("username") or UNNAMED_AUTHORS["instagram"])
                found.append(self._mention(media, created, author=author, mentions_us=True))
        ours = self._graph.pages(f"{self.user_id}/media", 1, fields=MEDIA_FIELDS, limit=str(WATCHED_MEDIA))
        for media in [m for m in ours if m.get("id")]:
            comments = self._graph.pages(f"{media['id']}/comments", 1, fields=COMMENT_FIELDS, limit="50")
            for comment in comments:
                replies = as_dict(comment.get("replies")).get("data")
                for item in [comment, *(replies if isinstance(replies, list) else [])]:
                    reply = self._reply(as_dict(item), media, since)
                    if reply is not None:
                        found.append(reply)
        newest = max((m.created_at for m in found if m.created_at is not None), default=since)
        return Batch(tuple(found), max(newest, since).isoformat())

    def _mention(
        self, media: Mapping[str, Any], created: datetime, *, author: str, mentions_us: bool
    ) -> Mention:
        caption = str(media.get("caption") or "")
        return Mention(
            id=str(media["id"]),
            url=str(media.get("permalink") or ""),
            author=author,
            text=caption,
            created_at=created,
            hashtags=hashtags_in(caption),
            mentions_us=mentions_us,
        )

    def _reply(self, comment: Mapping[str, Any], media: Mapping[str, Any], since: datetime) -> Mention | None:
        created = graph_time(comment.get("timestamp"))
        if created is None or created < since or not comment.get("id"):
            return None
        author = as_dict(comment.get("from"))
        if str(author.get("id") or "") == self.user_id:
            return None  # our own answer
        text = str(comment.get("text") or "")
        return Mention(
            id=str(comment["id"]),
            url=str(media.get("permalink") or ""),
            author=str(comment.get("username") or author.get("username") or UNNAMED_AUTHORS["instagram"]),
            text=text,
            created_at=created,
            hashtags=hashtags_in(text),
            author_id=str(author.get("id") or ""),
            in_reply_to=str(media["id"]),
            in_reply_to_author=self.user_id,
            in_reply_to_url=str(media.get("permalink") or ""),
        )

    # -- the rest ---------------------------------------------------------------------------

    def _create(self, message: Outgoing) -> str:
        images = message.images
        if not images:
            raise Rejected("Instagram: a post needs an image (Instagram has no text-only posts)")
        if len(images) > MAX_CAROUSEL:
            raise Rejected(f"Instagram: {len(images)} images; a carousel takes at most {MAX_CAROUSEL}")
        if len(images) == 1:
            return self._container(self._image_form(images[0]) | {"caption": message.text})
        children = [self._container(self._image_form(m) | {"is_carousel_item": "true"}) for m in images]
        form = {"media_type": "CAROUSEL", "children": ",".join(children), "caption": message.text}
        return self._container(form)

    def _container(self, form: dict[str, str]) -> str:
        answer = self._graph.post(f"{self.user_id}/media", form)
        container = str(answer.get("id") or "")
        if not container:
            raise Rejected("Instagram: the container answer names no id")
        return container

    def _image_form(self, media: Media) -> dict[str, str]:
        form = {"image_url": self.image_url(media)}
        if media.alt:
            form["alt_text"] = media.alt
        return form

    def image_url(self, media: Media) -> str:
        """Where Instagram fetches the image: `media_base_url` plus its path in the content folder,
        else the public copy of an unpublished photo uploaded to the account's Facebook Page."""
        if not self.media_base_url:
            return self._page_hosted(media)
        relative = media.path.relative_to(media.root) if media.root else PurePath(media.path.name)
        return f"{self.media_base_url}/{quote(relative.as_posix())}"

    def image_problems(self, content_dir: Path) -> list[str]:
        """`check --online`: each JPEG of the content folder where Instagram will fetch it, asked
        with HEAD; one sentence per image that does not answer 200 (at most `CHECKED_IMAGES`)."""
        if not self.media_base_url:
            return []  # hosted by the Page at send time: nothing to ask beforehand
        files = sorted(p for p in content_dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
        problems = []
        with requests.Session() as session:
            for path in files[:CHECKED_IMAGES]:
                url = self.image_url(Media(path, "", content_dir))
                try:
                    status = session.head(url, timeout=IMAGE_CHECK_TIMEOUT, allow_redirects=True).status_code
                except requests.RequestException as exc:
                    problems.append(
                        f"{url} does not answer ({type(exc).__name__}): Instagram cannot fetch it"
                    )
                    continue
                if status != 200:
                    problems.append(
                        f"{url} answers {status}: Instagram cannot fetch it; is media_base_url right?"
                    )
        return problems

    def _page_hosted(self, media: Media) -> str:
        if not self.page_id:
            raise Rejected("Instagram: no media_base_url nor page_id; Instagram fetches images from a URL")
        data = media.read()
        files = {"source": (media.path.name, data, "image/jpeg")}
        photo = self._graph.post(f"{self.page_id}/photos", {"published": "false"}, files)
        photo_id = str(photo.get("id") or "")
        if not photo_id:
            raise Rejected("Instagram: the Page's photo upload names no photo id")
        # The Photo node's `images`: the same picture at several sizes, each with a public URL.
        sizes = [as_dict(i) for i in as_list(self._graph.get(photo_id, fields="images").get("images"))]
        best = max(sizes, key=lambda i: i["width"] if isinstance(i.get("width"), int) else 0, default={})
        if not best.get("source"):
            raise Rejected("Instagram: the Page's photo has no public image URL")
        return str(best["source"])

    def _status(self, container: str) -> str:
        answer = self._graph.get(container, fields="status_code,status")
        return str(answer.get("status_code") or "")

    def _wait_until_ready(self, container: str) -> None:
        for wait in (0.0, *WAITS):
            if wait:
                self._sleep(wait)
            answer = self._graph.get(container, fields="status_code,status")
            status = str(answer.get("status_code") or "")
            if status == "FINISHED":
                return
            if status in ("ERROR", "EXPIRED", "PUBLISHED"):
                raise Rejected(
                    f"Instagram: the media container is {status}: {answer.get('status') or 'no detail'}"
                )
        raise Transient(f"Instagram: the media container was still processing after {sum(WAITS):.0f}s")

    def _permalink(self, media_id: str) -> str:
        try:
            return str(self._graph.get(media_id, fields="permalink").get("permalink") or "")
        except (Transient, Rejected):  # published already: a missing link is no failure
            return ""

    def _hashtag_id(self, tag: str) -> str:
        key = tag.lstrip("#").lower()
        if key not in self._hashtag_ids:
            answer = self._graph.get("ig_hashtag_search", user_id=self.user_id, q=key)
            data = answer.get("data")
            first = as_dict(data[0]) if isinstance(data, list) and data else {}
            if not first.get("id"):
                raise Rejected(f"Instagram: no hashtag #{key}")
            self._hashtag_ids[key] = str(first["id"])
        return self._hashtag_ids[key]


def open_client(account: Account, **options: Any) -> PlatformClient:
    return InstagramClient(
        account,
        timeout=float(options.get("timeout") or DEFAULT_TIMEOUT),
        now=options.get("now") or (lambda: datetime.now(UTC)),
        sleep=options.get("sleep") or time.sleep,
        on_budget=options.get("on_budget"),
    )
