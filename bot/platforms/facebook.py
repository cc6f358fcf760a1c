"""Facebook Pages through the Graph API (`bot.platforms.graph`): one account is one Page and its token.

Posting: text (and a shared `link`) go to `POST /{page-id}/feed`; images are first uploaded
unpublished to `/{page-id}/photos` (with their alt text as `alt_text_custom`), then attached to
the feed post (`attached_media[i]`), so a post with one image or four takes one path. A thread
reaches this adapter already joined into one post (bot.render.textrules).

Exactly once: the Graph API has no idempotency key, so a lost answer is looked up among the
Page's recent posts (`find_published`: same message, created since the attempt), and a 506
"duplicate status message" is a reason to look (bot.delivery.courier), never proof.

Monitoring: comments on our recent posts are replies; visitors' posts on the Page and posts that
tag it are mentions. Facebook has no public hashtag search (`read_hashtags` reads nothing), and
no API shares another Page's post (`repost` is refused): docs/monitoring.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.campaign.images import inspect_image
from bot.campaign.model import Account, Platform
from bot.errors import AuthFailed, Rejected
from bot.platforms import (
    UNNAMED_AUTHORS,
    Batch,
    Media,
    Mention,
    Outgoing,
    PlatformClient,
    Published,
    answer_id,
)
from bot.platforms.graph import GraphClient, as_dict, as_list, graph_time, hashtags_in, normalized
from bot.platforms.media import read_media
from bot.platforms.ratelimits import BudgetSink

DEFAULT_TIMEOUT = 30.0
CLOCK_SKEW = timedelta(minutes=2)  # created_time is Meta's clock, `since` ours
RECENT_POSTS = 25  # a lost post is among the newest few
WATCHED_POSTS = 25  # our newest posts whose comments are read
POST_FIELDS = "id,message,created_time,permalink_url"
COMMENT_FIELDS = "id,message,created_time,from{id,name},parent{id},permalink_url"
FEED_FIELDS = "id,message,created_time,from{id,name},message_tags,permalink_url"
# What a campaign Page's token needs: posting (pages_manage_posts with pages_read_engagement)
# and reading comments and visitors' posts (pages_read_user_content).
NEEDED_SCOPES = ("pages_manage_posts", "pages_read_engagement", "pages_read_user_content")


class FacebookClient:
    platform: Platform = "facebook"

    def __init__(
        self,
        account: Account,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        now: Callable[[], datetime],
        on_budget: BudgetSink | None = None,
    ) -> None:
        self.account = account.name
        self.page_id = account.credentials.get("page_id", "")
        self._now = now
        self._token = account.credentials.get("access_token", "")
        self._graph = GraphClient(
            account.base_url,
            self._token,
            label="Facebook",
            timeout=timeout,
            now=now,
            app_secret=account.credentials.get("app_secret") or None,
            on_budget=on_budget,
        )

    def __repr__(self) -> str:
        return f"FacebookClient(account={self.account!r})"  # never the token

    def close(self) -> None:
        self._graph.close()

    # -- the PlatformClient protocol -------------------------------------------------------

    def verify(self) -> str:
        """The Page's name, with what `/debug_token` says of the token (validity, expiry, permissions).

        A token that is invalid or lacks a permission the bot needs fails here (AuthFailed), so
        `check --online` shows it and the daemon does not spend posts on the account.
        """
        page = self._graph.get(self.page_id, fields="id,name")
        name = str(page.get("name") or self.page_id)
        try:
            info = self._graph.get("debug_token", input_token=self._token).get("data") or {}
        except (AuthFailed, Rejected) as exc:  # not every token may inspect itself
            return f"{name} (token expiry and permissions not readable: {exc})"
        if not isinstance(info, dict) or info.get("is_valid") is False:
            raise AuthFailed("Facebook: the Page access token is not valid (debug_token)")
        scopes = as_list(info.get("scopes"))
        missing = [s for s in NEEDED_SCOPES if s not in scopes]
        if missing:
            raise AuthFailed(f"Facebook: the Page access token lacks the permission(s) {', '.join(missing)}")
        return f"{name} ({_expiry(info.get('expires_at'))})"

    def publish(self, message: Outgoing) -> Published:
        data = {"message": message.text}
        if message.link:
            data["link"] = message.link
        for index, media in enumerate(message.images):
            data[f"attached_media[{index}]"] = json.dumps({"media_fbid": self._upload(media)})
        answer = self._graph.post(f"{self.page_id}/feed", data)
        post_id = answer_id("Facebook", lambda: answer["id"])  # none: it may have landed, look first
        return Published(id=post_id, url=_permalink(post_id))

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        """Among the Page's newest posts since `since`, the one whose message is exactly ours."""
        earliest = int((since - CLOCK_SKEW).timestamp())
        wanted = normalized(message.text)
        posts = self._graph.pages(
            f"{self.page_id}/posts", 1, fields=POST_FIELDS, since=str(earliest), limit=str(RECENT_POSTS)
        )
        for post in posts:
            if post.get("id") and normalized(str(post.get("message") or "")) == wanted:
                return Published(
                    id=str(post["id"]), url=str(post.get("permalink_url") or _permalink(post["id"]))
                )
        return None

    def delete(self, published: Published) -> None:
        self._graph.delete(published.id)

    def repost(self, post_id: str) -> Published:
        raise Rejected("Facebook: the Graph API cannot share another Page's post; amplify is not offered")

    # -- monitoring reads -------------------------------------------------------------------

    def identity(self) -> str:
        return self.page_id

    def read_hashtags(
        self, tags: Sequence[str], cursor: str | None, start: datetime, conversations: Sequence[str] = ()
    ) -> Batch:
        """Facebook offers no public hashtag search: nothing to read (no stream asks for it)."""
        return Batch((), cursor)

    def read_notifications(self, cursor: str | None, start: datetime) -> Batch:
        """Comments on our newest posts (replies) and posts on or tagging the Page (mentions)
        newer than the cursor, a time: Graph lists carry no id order to resume from."""
        mark = graph_time(cursor) if cursor else None
        since = mark or start
        found: list[Mention] = []
        # At most 100 visitors' posts and 100 comments per post in one read: a Page busier than
        # that between two polls loses the oldest of them.
        for post in self._graph.pages(f"{self.page_id}/feed", 2, fields=FEED_FIELDS, limit="50"):
            created = graph_time(post.get("created_time"))
            if created is None or not post.get("id"):
                continue  # unreadable: skipped, not the end of the list
            if created < since:
                break  # newest first: the rest is older
            author = as_dict(post.get("from"))
            if str(author.get("id")) != self.page_id:
                found.append(self._mention(post, created, mentions_us=True))
        ours = self._graph.pages(f"{self.page_id}/posts", 1, fields=POST_FIELDS, limit=str(WATCHED_POSTS))
        for post in [p for p in ours if p.get("id")]:
            comments = self._graph.pages(
                f"{post['id']}/comments",
                1,
                fields=COMMENT_FIELDS,
                filter="stream",
                order="reverse_chronological",
                limit="100",
            )
            for comment in comments:
                created = graph_time(comment.get("created_time"))
                if created is None:
                    continue
                if created < since:
                    break
                reply = self._reply(comment, created, post)
                if reply is not None:
                    found.append(reply)
        # Times are whole seconds: the next read starts at the newest one again (not past it),
        # so a comment made later in that second is not skipped; the ledger drops repeats.
        newest = max((m.created_at for m in found if m.created_at is not None), default=since)
        return Batch(tuple(found), max(newest, since).isoformat())

    def _mention(self, post: Mapping[str, Any], created: datetime, *, mentions_us: bool) -> Mention:
        author = as_dict(post.get("from"))
        tags = as_list(post.get("message_tags"))
        return Mention(
            id=str(post.get("id")),
            url=str(post.get("permalink_url") or _permalink(post.get("id"))),
            author=str(author.get("name") or UNNAMED_AUTHORS["facebook"]),
            text=str(post.get("message") or ""),
            created_at=created,
            hashtags=hashtags_in(str(post.get("message") or "")),
            mentions_us=mentions_us,
            author_id=str(author.get("id") or ""),
            mentioned=tuple(str(t.get("id")) for t in tags if isinstance(t, dict)),
        )

    def _reply(
        self, comment: Mapping[str, Any], created: datetime, post: Mapping[str, Any]
    ) -> Mention | None:
        # The comment id comes only to a token with the MODERATE task; its permalink names it too.
        comment_id = comment.get("id") or _comment_id(post, comment.get("permalink_url"))
        if not comment_id:
            return None  # nothing to tell it from the next one by: not logged
        # The commenter is shown only to the Page's own token, and not always even then.
        author = as_dict(comment.get("from"))
        return Mention(
            id=str(comment_id),
            url=str(comment.get("permalink_url") or post.get("permalink_url") or ""),
            author=str(author.get("name") or UNNAMED_AUTHORS["facebook"]),
            text=str(comment.get("message") or ""),
            created_at=created,
            hashtags=hashtags_in(str(comment.get("message") or "")),
            author_id=str(author.get("id") or ""),
            in_reply_to=str(post["id"]),
            in_reply_to_author=self.page_id,
            in_reply_to_url=str(post.get("permalink_url") or _permalink(post["id"])),
        )

    # -- the rest ---------------------------------------------------------------------------

    def _upload(self, media: Media) -> str:
        data = read_media(media, "facebook")  # a regular file inside content/, and an image
        form = {"published": "false"}
        if media.alt:
            form["alt_text_custom"] = media.alt
        files = {"source": (media.path.name, data, inspect_image(data).mime)}
        answer = self._graph.post(f"{self.page_id}/photos", form, files)
        return answer_id("Facebook", lambda: answer["id"])


def _comment_id(post: Mapping[str, Any], permalink: object) -> str | None:
    """`{post-number}_{comment-id}` from a permalink's `comment_id` parameter."""
    found = parse_qs(urlsplit(permalink).query).get("comment_id") if isinstance(permalink, str) else None
    if not found:
        return None
    return f"{str(post.get('id')).rpartition('_')[2]}_{found[0]}"


def _permalink(post_id: object) -> str:
    page, _, number = str(post_id).partition("_")
    return f"https://www.facebook.com/{page}/posts/{number}" if number else f"https://www.facebook.com/{page}"


def _expiry(expires_at: object) -> str:
    if not isinstance(expires_at, int) or expires_at <= 0:
        return "token never expires"
    return f"token expires {datetime.fromtimestamp(expires_at, tz=UTC):%Y-%m-%d %H:%M} UTC"


def open_client(account: Account, **options: Any) -> PlatformClient:
    return FacebookClient(
        account,
        timeout=float(options.get("timeout") or DEFAULT_TIMEOUT),
        now=options.get("now") or (lambda: datetime.now(UTC)),
        on_budget=options.get("on_budget"),
    )
