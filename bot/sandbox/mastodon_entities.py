"""Mastodon's entities and text rules, as a real Mastodon 4.6.4 answers them.

Pure functions and small records: the emulator (bot/sandbox/mastodon.py) keeps the state and
calls these to count a status, render its HTML, and serialise Accounts, Statuses, media and
notifications in the field order and shapes of the recorded cassettes
(tests/data/mastodon/*.yaml).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import regex
from twitter_text import extract_urls_with_indices

VERSION = "4.6.4"
MAX_CHARACTERS = 500
MAX_MEDIA_ATTACHMENTS = 4
CHARACTERS_RESERVED_PER_URL = 23
DESCRIPTION_LIMIT = 10000
VISIBILITIES = ("public", "unlisted", "private", "direct")

# Mastodon's Tag::HASHTAG_RE, simplified: letters, digits, `_` and `·`, not all digits, not
# preceded by a word character, `/` or `)` (so URL fragments are not tags).
HASHTAG_RE = regex.compile(r"(?<![\w/)])#([\w·]*[^\W\d][\w·]*)")
# Account::MENTION_RE: @user or @user@domain, not inside a word, URL or e-mail address.
MENTION_RE = regex.compile(
    r"(?<![=/\w])@(([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@(\w+(?:[.-]+\w+)*))?)", regex.IGNORECASE
)


def iso_ms(moment: datetime) -> str:
    """Mastodon's timestamps: UTC with milliseconds, `Z` (`2026-08-01T13:53:57.755Z`)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_us(moment: datetime) -> str:
    """`X-RateLimit-Reset`: UTC with microseconds (`2026-08-01T15:00:00.792409Z`)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- counting -------------------------------------------------------------------------------


def countable_text(text: str) -> str:
    """StatusLengthValidator#countable_text: each URL as 23 `x`, `@user@domain` as `@user`."""
    if not text.strip():
        return ""
    entities: list[tuple[int, int, str]] = []
    for url in extract_urls_with_indices(text, extract_urls_without_protocol=False):
        start, end = url["indices"]
        entities.append((start, end, "x" * CHARACTERS_RESERVED_PER_URL))
    for match in MENTION_RE.finditer(text):
        if not any(s < match.end() and match.start() < e for s, e, _ in entities):
            entities.append((match.start(), match.end(), "@" + match.group(2)))
    out, last = [], 0
    for start, end, replacement in sorted(entities):
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out)


def status_length(text: str, spoiler_text: str) -> int:
    """Mastodon's count: grapheme clusters of the content warning plus the countable text.

    The content warning is joined as it is: only the body gets the URL and mention discounts.
    """
    return len(regex.findall(r"\X", spoiler_text + countable_text(text)))


def gotosocial_length(text: str, spoiler_text: str) -> int:
    """GoToSocial's count: code points of text plus content warning, URLs at full length."""
    return len(text) + len(spoiler_text)


def extract_tags(text: str) -> list[str]:
    """Hashtag names in order of first use, lower-cased, without duplicates."""
    seen: list[str] = []
    for match in HASHTAG_RE.finditer(text):
        name = match.group(1).lower()
        if name not in seen:
            seen.append(name)
    return seen


def extract_mentions(text: str) -> list[tuple[str, str | None]]:
    """(username, domain or None) for each `@mention` in the text."""
    return [(m.group(2), m.group(3)) for m in MENTION_RE.finditer(text)]


# -- records --------------------------------------------------------------------------------


@dataclass(eq=False)
class Actor:
    """An account: one of ours (local, with a token) or someone else's (remote, `domain` set)."""

    id: str
    username: str
    created_at: datetime
    domain: str | None = None
    token: str | None = None
    default_visibility: str = "public"
    statuses_count: int = 0  # not deleted
    last_status_at: datetime | None = None
    suspended: bool = False

    @property
    def acct(self) -> str:
        return self.username if self.domain is None else f"{self.username}@{self.domain}"

    def url(self, base_url: str) -> str:
        if self.domain is None:
            return f"{base_url}/@{self.username}"
        return f"https://{self.domain}/@{self.username}"

    def uri(self, base_url: str) -> str:
        if self.domain is None:
            return f"{base_url}/ap/users/{self.id}"
        return f"https://{self.domain}/users/{self.username}"


@dataclass(eq=False)
class Media:
    id: str
    owner: Actor
    kind: str  # image | video | audio | gifv
    mime_type: str
    description: str | None
    created_at: datetime
    width: int = 0
    height: int = 0
    focus: tuple[float, float] | None = None
    polls_until_ready: int = 0  # >0: still processing (asynchronous path)
    status_id: str | None = None


@dataclass(eq=False)
class Status:
    id: str
    author: Actor
    text: str
    spoiler_text: str
    visibility: str
    sensitive: bool
    language: str | None
    created_at: datetime
    in_reply_to: Status | None = None
    media: list[Media] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # what the tag timeline indexes it under
    # What its `tags` array says when that differs from the text (None: the same). Servers
    # differ here: a remote status's array is what its home server sent, not what its text says.
    shown_tags: list[str] | None = None
    mentions: list[Actor] = field(default_factory=list)
    reblog: Status | None = None
    quote: Status | None = None  # Mastodon 4.5 quotes: the status this one quotes
    poll_options: list[str] | None = None
    card_url: str | None = None  # the link preview the server made (audience posts)
    edited_at: datetime | None = None
    deleted: bool = False
    replies: list[Status] = field(default_factory=list)  # direct replies, oldest first
    reblogs: list[Status] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)  # the sandbox's audience `fields`

    def url(self, base_url: str) -> str:
        if self.author.domain is None:
            return f"{base_url}/@{self.author.username}/{self.id}"
        return f"https://{self.author.domain}/@{self.author.username}/{self.id}"

    def uri(self, base_url: str) -> str:
        suffix = "/activity" if self.reblog is not None else ""
        return f"{self.author.uri(base_url)}/statuses/{self.id}{suffix}"


@dataclass(eq=False)
class Notification:
    id: int
    kind: str  # mention | reblog | favourite | follow | ...
    recipient: Actor
    sender: Actor
    created_at: datetime
    status: Status | None = None


# -- rendering ------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """HTML escaping as Rails does it: `'` becomes `&#39;` (the cassette's `it&#39;s cool guy`)."""
    return html.escape(text).replace("&#x27;", "&#39;")


def _link_url(url: str) -> str:
    """Mastodon's link markup: the scheme hidden, the display cut at 30 characters."""
    scheme, _, rest = url.partition("://")
    prefix = f"{scheme}://" if rest else ""
    shown = rest or url
    display, hidden, css = shown, "", ""
    if len(shown) > 30:
        display, hidden, css = shown[:30], shown[30:], "ellipsis"
    return (
        f'<a href="{_escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{_escape(prefix)}</span>'
        f'<span class="{css}">{_escape(display)}</span>'
        f'<span class="invisible">{_escape(hidden)}</span></a>'
    )


def render_content(text: str, base_url: str, mentioned: dict[str, Actor]) -> str:
    """The HTML `content` of a status, as Mastodon's TextFormatter writes it.

    `mentioned` maps a lower-cased `user` or `user@domain` to the account it names; other
    `@mentions` stay plain text, as on a server that cannot resolve them.
    """
    entities: list[tuple[int, int, str]] = []
    for url in extract_urls_with_indices(text, extract_urls_without_protocol=False):
        start, end = url["indices"]
        entities.append((start, end, _link_url(url["url"])))

    def free(start: int, end: int) -> bool:
        return not any(s < end and start < e for s, e, _ in entities)

    for match in MENTION_RE.finditer(text):
        actor = mentioned.get(match.group(1).lower())
        if actor is not None and free(match.start(), match.end()):
            markup = (
                f'<span class="h-card" translate="no"><a href="{_escape(actor.url(base_url))}" '
                f'class="u-url mention">@<span>{_escape(actor.username)}</span></a></span>'
            )
            entities.append((match.start(), match.end(), markup))
    for match in HASHTAG_RE.finditer(text):
        start = match.start()
        if free(start, match.end()):
            name = match.group(1)
            markup = (
                f'<a href="{base_url}/tags/{_escape(name.lower())}" class="mention hashtag" '
                f'rel="tag">#<span>{_escape(name)}</span></a>'
            )
            entities.append((start, match.end(), markup))
    out, last = [], 0
    for start, end, markup in sorted(entities):
        out.append(_escape(text[last:start]))
        out.append(markup)
        last = end
    out.append(_escape(text[last:]))
    body = "".join(out).replace("\r\n", "\n")
    # Rails' simple_format: paragraphs on blank lines, <br /> on single newlines.
    paragraphs = [p for p in regex.split(r"\n\s*\n", body) if p.strip()]
    return "".join(f"<p>{p.strip(chr(10)).replace(chr(10), '<br />')}</p>" for p in paragraphs)


def account_json(
    actor: Actor, base_url: str, statuses_count: int, last_status_at: datetime | None
) -> dict[str, Any]:
    """An Account, in the field order of the recorded answers."""
    missing_avatar = f"{base_url}/avatars/original/missing.png"
    missing_header = f"{base_url}/headers/original/missing.png"
    local = actor.domain is None
    return {
        "id": actor.id,
        "username": actor.username,
        "acct": actor.acct,
        "display_name": "",
        "locked": False,
        "bot": False,
        "discoverable": None if local else True,
        "indexable": False,
        "group": False,
        "created_at": iso_ms(actor.created_at),
        "note": "",
        "url": actor.url(base_url),
        "uri": actor.uri(base_url),
        "avatar": missing_avatar,
        "avatar_static": missing_avatar,
        "avatar_description": "",
        "header": missing_header,
        "header_static": missing_header,
        "header_description": "",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": statuses_count,
        "last_status_at": last_status_at.strftime("%Y-%m-%d") if last_status_at else None,
        "hide_collections": None,
        "show_media": True,
        "show_media_replies": True,
        "show_featured": True,
        "noindex": False,
        "feature_approval": {"automatic": [], "manual": [], "current_user": "denied"},
        "emojis": [],
        "roles": [],
        "fields": [],
    }


def credential_account_json(account: dict[str, Any], actor: Actor) -> dict[str, Any]:
    """verify_credentials: the Account plus `source` (the posting defaults) and `role`."""
    head = {k: v for k, v in account.items() if k not in ("emojis", "roles", "fields")}
    return {
        **head,
        "source": {
            "privacy": actor.default_visibility,
            "sensitive": False,
            "language": None,
            "note": "",
            "fields": [],
            "follow_requests_count": 0,
            "hide_collections": None,
            "discoverable": None,
            "indexable": False,
            "attribution_domains": [],
            "quote_policy": "public",
        },
        "emojis": [],
        "roles": [],
        "fields": [],
        "role": {
            "id": "-99",
            "name": "",
            "permissions": "65536",
            "color": "",
            "highlighted": False,
            "collection_limit": 10,
        },
    }


def media_path(media_id: str, style: str, extension: str) -> str:
    """Mastodon's storage path: the id split in groups of three digits."""
    groups = "/".join(media_id.zfill(18)[i : i + 3] for i in range(0, 18, 3))
    return f"/system/media_attachments/files/{groups}/{style}/{media_id[-16:]}.{extension}"


def media_json(media: Media, base_url: str) -> dict[str, Any]:
    """A MediaAttachment; `url` stays null while the server is still processing it."""
    extension = media.mime_type.split("/")[-1].replace("jpeg", "jpg").replace("quicktime", "mov")
    ready = media.polls_until_ready <= 0
    small_w, small_h = _small_size(media.width, media.height)
    original: dict[str, Any] = {
        "width": media.width,
        "height": media.height,
        "size": f"{media.width}x{media.height}",
        "aspect": round(media.width / media.height, 6) if media.height else 1.0,
    }
    meta: dict[str, Any] = {}
    if media.kind in ("video", "audio"):
        # Recorded: a video's `original` has frame rate, duration and bitrate, no size or
        # aspect, and `colors` come with it; audio has no picture.
        meta["colors"] = {"background": "#d9f3f3", "foreground": "#0c0c0c", "accent": "#0c0c0c"}
        picture = {"width": media.width, "height": media.height, "frame_rate": "30/1"}
        original = {**(picture if media.kind == "video" else {}), "duration": 7.3, "bitrate": 2187124}
    meta |= {
        "original": original,
        "small": {
            "width": small_w,
            "height": small_h,
            "size": f"{small_w}x{small_h}",
            "aspect": round(small_w / small_h, 6) if small_h else 1.0,
        },
    }
    if media.focus is not None:
        meta["focus"] = {"x": media.focus[0], "y": media.focus[1]}
    return {
        "id": media.id,
        "type": media.kind,
        "url": base_url + media_path(media.id, "original", extension) if ready else None,
        "preview_url": base_url + media_path(media.id, "small", "jpg"),
        "remote_url": None,
        "preview_remote_url": None,
        "text_url": None,
        "meta": meta,
        "description": media.description,
        "blurhash": "UPN1Ddxup{IT9an~.8RjK-oy%gkE%#W?i^t6",
    }


def poll_json(status: Status, viewer_is_author: bool) -> dict[str, Any] | None:
    """A Poll (docs.joinmastodon.org/entities/Poll): a day long, no votes yet."""
    if status.poll_options is None:
        return None
    return {
        "id": status.id,
        "expires_at": iso_ms(status.created_at + timedelta(days=1)),
        "expired": False,
        "multiple": False,
        "votes_count": 0,
        "voters_count": 0,
        "options": [{"title": title, "votes_count": 0} for title in status.poll_options],
        "emojis": [],
        "voted": viewer_is_author,
        "own_votes": [],
    }


def card_json(url: str) -> dict[str, Any]:
    """A PreviewCard of a plain link, in the recorded shape (test_status_card)."""
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return {
        "url": url,
        "title": host,
        "description": "",
        "language": "en",
        "type": "link",
        "author_name": "",
        "author_url": "",
        "provider_name": "",
        "provider_url": "",
        "html": "",
        "width": 0,
        "height": 0,
        "image": None,
        "image_description": "",
        "embed_url": "",
        "blurhash": None,
        "published_at": None,
        "missing_attribution": False,
        "authors": [],
    }


def _small_size(width: int, height: int) -> tuple[int, int]:
    """Mastodon's `small` style fits in 480x480 (about 230,400 pixels)."""
    if width <= 480 and height <= 480:
        return width, height
    scale = 480 / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))
