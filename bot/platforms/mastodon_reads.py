"""Mastodon's monitoring reads through Mastodon.py: mention and quote notifications and a tag's
timeline (quote notifications are Mastodon 4.5's; older servers ignore the unknown type).

Both page newest first with `since_id` (the mark) and `max_id` (the sweep's next page); the
first read has no mark and stops at the start time. Replies are mentions on Mastodon (a reply
names the author it answers), linked by `in_reply_to_id`. Direct and followers-only statuses
come back marked not public, so they are never logged. Accounts are named `user@domain`
everywhere: the API says just `user` for accounts of the instance asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.platforms import Batch, Mention, read_each, utc_time
from bot.platforms.paging import Sweep, key

PAGE_SIZE = 40  # the API's maximum for notifications and timelines
PUBLIC = ("public", "unlisted")  # unlisted is public, only kept out of feeds
NOTIFIED = ["mention", "quote"]

Call = Callable[[Callable[[], Any]], Any]


def full_acct(acct: str, host: str) -> str:
    return acct if "@" in acct else f"{acct}@{host}"


def read_notifications(
    call: Call, api: Any, host: str, to_text: Callable[[str], str], cursor: str | None, start: datetime
) -> Batch:
    sweep = Sweep.load(cursor)
    page = call(
        lambda: api.notifications(types=NOTIFIED, since_id=sweep.mark, max_id=sweep.page, limit=PAGE_SIZE)
    )
    items = [(str(n["id"]), n.get("status")) for n in page if n.get("type") in NOTIFIED]
    return _batch(sweep, [str(n["id"]) for n in page], items, host, to_text, start, mentions_us=True)


def read_tag(
    call: Call,
    api: Any,
    host: str,
    to_text: Callable[[str], str],
    tag: str,
    cursor: str | None,
    start: datetime,
) -> Batch:
    sweep = Sweep.load(cursor)
    page = call(
        lambda: api.timeline_hashtag(tag.lstrip("#"), since_id=sweep.mark, max_id=sweep.page, limit=PAGE_SIZE)
    )
    items = [(str(s["id"]), s) for s in page]
    return _batch(sweep, [i for i, _ in items], items, host, to_text, start, mentions_us=False)


def _batch(
    sweep: Sweep,
    page_ids: Sequence[str],
    items: Sequence[tuple[str, Mapping[str, Any] | None]],
    host: str,
    to_text: Callable[[str], str],
    start: datetime,
    mentions_us: bool,
) -> Batch:
    statuses, reached = [], False
    for _, status in items:
        if status is None:
            continue
        created = utc_time(status.get("created_at"))
        if sweep.mark is None and created is not None and created < start:
            reached = True  # the first read goes back to the start time only
            break
        statuses.append(status)
    posts, skipped = read_each(statuses, lambda s: to_mention(s, host, to_text, mentions_us), "mastodon")
    newest = max(page_ids, key=key, default=None)
    oldest = min(page_ids, key=key, default=None)
    full = len(page_ids) >= PAGE_SIZE
    after, more = sweep.advance(newest, oldest if full else None, reached_end=reached)
    return Batch(tuple(posts), after.dump(), more, skipped)


def to_mention(
    status: Mapping[str, Any], host: str, to_text: Callable[[str], str], mentions_us: bool
) -> Mention:
    account = status.get("account") or {}
    author = full_acct(str(account.get("acct", "")), host)
    mentions = list(status.get("mentions") or [])
    answered = status.get("in_reply_to_id")
    answered_author, answered_url = None, None
    if answered is not None:
        for m in mentions:
            if str(m.get("id")) == str(status.get("in_reply_to_account_id")):
                answered_author = full_acct(str(m.get("acct", "")), host).lower()
                answered_url = f"{str(m.get('url', '')).rstrip('/')}/{answered}" if m.get("url") else None
    else:
        # Mastodon 4.5 quotes: the quoted status, when the server shows it.
        quoted = (status.get("quote") or {}).get("quoted_status") or {}
        if quoted.get("id") is not None:
            answered = quoted["id"]
            answered_author = full_acct(str((quoted.get("account") or {}).get("acct", "")), host).lower()
            answered_url = quoted.get("url")
    return Mention(
        id=str(status["id"]),
        url=str(status.get("url") or status.get("uri") or ""),
        author=author,
        text=to_text(str(status.get("content") or "")),
        created_at=utc_time(status.get("created_at")),
        hashtags=tuple(str(t.get("name", "")) for t in status.get("tags") or []),
        in_reply_to=str(answered) if answered is not None else None,
        mentions_us=mentions_us,
        public=status.get("visibility") in PUBLIC,
        author_id=author.lower(),
        mentioned=tuple(full_acct(str(m.get("acct", "")), host).lower() for m in mentions),
        in_reply_to_author=answered_author,
        in_reply_to_url=answered_url,
        edited=status.get("edited_at") is not None,
    )
