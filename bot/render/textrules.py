"""What a post becomes on each platform, and whether it fits.

`render_post` turns one post of a queue into the exact payload for one platform and account:
the queue's hashtags appended to the first part when the text lacks them, the platform's own
text or thread when the post gives one, and per part its length measured the platform's way:

- X: twitter-text v3 weighted length (CJK and emoji 2, any URL 23, after NFC), limit 280;
- Bluesky: 300 graphemes and 3000 UTF-8 bytes (the PDS checks both, the SDK neither), plus the
  rich-text facets that make tags, links and mentions clickable (`bot.render.facets`);
- Mastodon: graphemes of content warning + text, each http(s) URL as 23 and `@user@domain` as
  `@user` (StatusLengthValidator), limit 500 (Mastodon's default: an
  instance may allow more, but a post that fits 500 fits every instance);
- Facebook: characters (code points), limit 63,206. A thread becomes one post: its parts joined
  by a blank line, every part's images on it, the hashtag at its end (docs/content.md).
- Instagram: one caption, as Facebook's: characters, limit 2,200, 30 hashtags, 20 @mentions.
  Its images (the card image of the queue or post when it has none) go with it: one image, or a
  carousel of up to 10.

The adapters send what this returns, so `preview` shows exactly what goes out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import regex
from twitter_text.has_invalid_characters import has_invalid_characters

from bot.campaign.model import Image, LinkCard, Part, Platform, PlatformOptions, Post, Queue
from bot.errors import Problem
from bot.platforms import Facet, Media, Outgoing, Published
from bot.render.facets import count_graphemes, detect_facets, utf8_length
from bot.render.tweetlength import find_urls, x_length

X_LIMIT = 280
BLUESKY_GRAPHEMES = 300
BLUESKY_BYTES = 3000
MASTODON_LIMIT = 500  # Mastodon's default; an instance may allow more, the bot keeps to 500
MASTODON_URL_LENGTH = 23
FACEBOOK_LIMIT = 63_206  # the Page post limit third-party counters cite; Meta documents none
THREAD_JOIN = "\n\n"  # Facebook and Instagram have no threads: parts become paragraphs of one post
INSTAGRAM_LIMIT = 2200
INSTAGRAM_HASHTAGS = 30
INSTAGRAM_MENTIONS = 20
INSTAGRAM_IMAGES = 10  # a carousel's items at most
_IG_HASHTAG = re.compile(r"(?<![\w&])[#＃]\w+")
_IG_MENTION = re.compile(r"(?<![\w.])@[\w.]+")


@dataclass(frozen=True)
class RenderedPart:
    """One message as sent: `length` is measured the platform's way, against `limit`."""

    text: str
    length: int
    limit: int
    images: tuple[Image, ...] = ()
    facets: tuple[Facet, ...] = ()  # Bluesky only
    byte_length: int | None = None  # Bluesky's second limit
    byte_limit: int | None = None
    invalid_characters: bool = False  # X refuses some code points (U+FFFE, U+FFFF, ...)

    @property
    def fits(self) -> bool:
        over_bytes = self.byte_limit is not None and (self.byte_length or 0) > self.byte_limit
        return self.length <= self.limit and not over_bytes and not self.invalid_characters


@dataclass(frozen=True)
class Rendered:
    """One post for one platform and account; a thread has several parts, sent as a reply chain."""

    queue: str
    post_id: str
    platform: Platform
    account: str
    parts: tuple[RenderedPart, ...]
    spoiler_text: str | None = None  # Mastodon: the content warning, on every part
    visibility: str | None = None  # Mastodon
    language: str | None = None
    link_card: bool | LinkCard = field(default=False)  # Bluesky: on the first part
    link: str | None = None  # Facebook: the link the post shares


def add_hashtags(text: str, hashtags: tuple[str, ...]) -> str:
    """Append each hashtag the text lacks (compared case-insensitively, as a whole tag)."""
    missing = [tag for tag in hashtags if not _has_hashtag(text, tag)]
    if not missing:
        return text
    separator = "" if not text or text[-1].isspace() else " "
    return text + separator + " ".join(missing)


def _has_hashtag(text: str, tag: str) -> bool:
    return _hashtag_pattern(tag).search(text) is not None


@lru_cache(maxsize=64)
def _hashtag_pattern(tag: str) -> re.Pattern[str]:
    word = tag.lstrip("#＃")
    # A longer tag (#NoTechForICEs) is another tag, so the match must end at a non-word character.
    return re.compile(rf"(?<![\w#＃])[#＃]{re.escape(word)}(?!\w)", re.IGNORECASE)


_NO_OPTIONS = PlatformOptions()


def _options(queue: Queue, post: Post, platform: Platform) -> PlatformOptions:
    """The post's options for this platform over the queue's defaults."""
    base = queue.defaults.get(platform, _NO_OPTIONS)
    own = post.overrides.get(platform)
    if own is None:  # most posts: the queue's options as they are
        return base
    return PlatformOptions(
        parts=own.parts if own.parts is not None else base.parts,
        spoiler_text=own.spoiler_text if own.spoiler_text is not None else base.spoiler_text,
        visibility=own.visibility if own.visibility is not None else base.visibility,
        link_card=own.link_card if own.link_card is not False else base.link_card,
        language=own.language if own.language is not None else base.language,
        link=own.link if own.link is not None else base.link,
        image=own.image if own.image is not None else base.image,
    )


def render_post(
    queue: Queue,
    post: Post,
    platform: Platform,
    account_name: str,
    *,
    facets: bool = True,
) -> Rendered:
    """The exact payload of `post` for one platform and account.

    `facets=False`: without Bluesky's facets, for what only measures (they change no length).
    """
    options = _options(queue, post, platform)
    # The loader already put the post's images on the first part of a platform's own text.
    parts = options.parts if options.parts is not None else post.parts
    if platform in ("facebook", "instagram") and len(parts) > 1:
        joined = THREAD_JOIN.join(p.text for p in parts)
        parts = (Part(joined, tuple(image for p in parts for image in p.images)),)
    if platform == "instagram" and not parts[0].images and options.image is not None:
        parts = (Part(parts[0].text, (options.image,)),)
    texts = [add_hashtags(parts[0].text, queue.hashtags), *(p.text for p in parts[1:])]
    spoiler = options.spoiler_text if platform == "mastodon" else None
    rendered = tuple(
        _measure(platform, text, part.images, spoiler, facets)
        for text, part in zip(texts, parts, strict=True)
    )
    return Rendered(
        queue=queue.name,
        post_id=post.id,
        platform=platform,
        account=account_name,
        parts=rendered,
        spoiler_text=spoiler,
        visibility=options.visibility if platform == "mastodon" else None,
        language=options.language or queue.language,
        link_card=options.link_card if platform == "bluesky" else False,
        link=options.link if platform == "facebook" else None,
    )


def to_outgoing(
    rendered: Rendered,
    index: int,
    *,
    content_dir: Path,
    nonce: str,
    reply_to: Published | None = None,
    root: Published | None = None,
) -> Outgoing:
    """Part `index` of a rendered post as the adapter takes it: what preview showed, nothing else.

    Images become absolute paths inside the content folder; the link card goes with the first
    part only; the content warning, visibility and language go with every part (Mastodon.py's
    own `status_reply` copies the CW the same way).
    """
    part = rendered.parts[index]
    return Outgoing(
        text=part.text,
        nonce=nonce,
        images=tuple(Media(content_dir / image.path, image.alt, content_dir) for image in part.images),
        facets=part.facets,
        spoiler_text=rendered.spoiler_text,
        visibility=rendered.visibility,
        language=rendered.language,
        link_card=rendered.link_card if index == 0 else False,
        link=rendered.link if index == 0 else None,
        reply_to=reply_to,
        root=root,
    )


def _measure(
    platform: Platform, text: str, images: tuple[Image, ...], spoiler: str | None, facets: bool
) -> RenderedPart:
    if platform == "x":
        invalid = has_invalid_characters(text)
        return RenderedPart(text, x_length(text), X_LIMIT, images, invalid_characters=invalid)
    if platform == "bluesky":
        return RenderedPart(
            text,
            count_graphemes(text),
            BLUESKY_GRAPHEMES,
            images,
            facets=detect_facets(text) if facets else (),
            byte_length=utf8_length(text),
            byte_limit=BLUESKY_BYTES,
        )
    if platform == "facebook":
        return RenderedPart(text, len(text), FACEBOOK_LIMIT, images)
    if platform == "instagram":
        return RenderedPart(text, len(text), INSTAGRAM_LIMIT, images)
    return RenderedPart(text, mastodon_length(text, spoiler), MASTODON_LIMIT, images)


# Account::MENTION_RE: the username, then optionally @domain; not after a word character, = or /.
_MASTODON_MENTION = regex.compile(
    r"(?<![=/\w])@(([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@[\w.-]+\w+)?)", regex.IGNORECASE
)
# twitter-text's end_mention_match: a mention followed by @ or :// is not one.
_MENTION_END = regex.compile(r"@|://")


def mastodon_length(text: str, spoiler_text: str | None = None) -> int:
    """Graphemes of content warning + text, URLs as 23, `@user@domain` as `@user`."""
    entities: list[tuple[int, int, str]] = []
    # Mastodon counts only URLs with a protocol (twitter-text's extract_url_without_protocol: false).
    for start, end, _, has_protocol in find_urls(text):
        if has_protocol:
            entities.append((start, end, "x" * MASTODON_URL_LENGTH))
    for m in _MASTODON_MENTION.finditer(text):
        if _MENTION_END.match(text, m.end()):
            continue
        entities.append((m.start(), m.end(), "@" + m.group(2)))
    countable, cursor = [], 0
    # Extractor.remove_overlapping_entities: earliest first, a later overlapping one is dropped.
    for start, end, replacement in sorted(entities):
        if start < cursor:
            continue
        countable.append(text[cursor:start])
        countable.append(replacement)
        cursor = end
    countable.append(text[cursor:])
    return count_graphemes((spoiler_text or "") + "".join(countable))


def length_problems(
    queue: Queue,
    targets: Mapping[Platform, Sequence[str]],
) -> list[Problem]:
    """Every part of every post that does not fit a target platform, at the post's line.

    `targets` maps each platform to its account names. No limit depends on the account, so each
    post is measured once per platform.
    """
    problems: list[Problem] = []
    for post in queue.posts:
        for platform, accounts in targets.items():
            if not accounts:
                continue
            rendered = render_post(queue, post, platform, accounts[0], facets=False)
            problems.extend(_part_problems(queue, post, rendered))
    return problems


def _length_advice(queue: Queue, post: Post, rendered: Rendered, index: int) -> str:
    """How much of the count is the added hashtag, and the way out: a shorter per-platform text."""
    bare = render_post(replace(queue, hashtags=()), post, rendered.platform, rendered.account, facets=False)
    added = rendered.parts[index - 1].length - bare.parts[index - 1].length
    tags = " ".join(queue.hashtags)
    share = f" ({added} of them the added {tags})" if added > 0 else ""
    has_own = rendered.platform in post.overrides and post.overrides[rendered.platform].parts is not None
    if len(rendered.parts) > 1:
        other = "" if has_own else f", or give a `{rendered.platform}:` thread"
        fix = f"shorten it or split it in two{other}"
    else:
        fix = "shorten it" if has_own else f"shorten it, or give a shorter `{rendered.platform}:` text"
    return f"{share}; {fix}"


def _part_problems(queue: Queue, post: Post, rendered: Rendered) -> list[Problem]:
    problems = []
    many = len(rendered.parts) > 1
    for index, part in enumerate(rendered.parts, start=1):
        where = f"post {post.id!r}" + (f" part {index}" if many else "")
        on = f"on {rendered.platform}"
        unit = {
            "x": "weighted characters",
            "bluesky": "graphemes",
            "mastodon": "characters",
            "facebook": "characters",
            "instagram": "characters",
        }
        if part.length > part.limit:
            what = unit[rendered.platform]
            if rendered.spoiler_text:
                what += " with the content warning"
            advice = _length_advice(queue, post, rendered, index)
            own = rendered.platform if rendered.platform in post.text_lines else ""
            text_line = (
                (post.text_lines.get(f"{own}#{index}") if many else None)
                or post.text_lines.get(own)
                or post.line
            )
            problems.append(
                Problem(
                    str(queue.file),
                    text_line,
                    f"{where} is too long {on}: {part.length} {what}, limit {part.limit}{advice}",
                )
            )
        if part.byte_limit is not None and (part.byte_length or 0) > part.byte_limit:
            problems.append(
                Problem(
                    str(queue.file),
                    post.line,
                    f"{where} is too long {on}: {part.byte_length} UTF-8 bytes, limit {part.byte_limit}",
                )
            )
        if part.invalid_characters:
            problems.append(
                Problem(str(queue.file), post.line, f"{where} holds characters X refuses (e.g. U+FFFE)")
            )
        if not part.text.strip():
            problems.append(Problem(str(queue.file), post.line, f"{where} is empty {on}"))
        if rendered.platform == "instagram":
            problems += [
                Problem(str(queue.file), post.line, f"{where} {p}") for p in instagram_problems(part)
            ]
    return problems


def instagram_problems(part: RenderedPart) -> list[str]:
    """What Instagram refuses in a caption and its images, beyond the length."""
    found = []
    if not part.images:
        found.append(
            "has no image on instagram, which takes no text-only posts: "
            "add images, or a card image to the queue (instagram: {image: {path, alt}})"
        )
    if len(part.images) > INSTAGRAM_IMAGES:
        found.append(
            f"has {len(part.images)} images on instagram; a carousel takes at most {INSTAGRAM_IMAGES}"
        )
    tags, mentions = len(_IG_HASHTAG.findall(part.text)), len(_IG_MENTION.findall(part.text))
    if tags > INSTAGRAM_HASHTAGS:
        found.append(f"has {tags} hashtags on instagram; a caption takes at most {INSTAGRAM_HASHTAGS}")
    if mentions > INSTAGRAM_MENTIONS:
        found.append(f"has {mentions} @mentions on instagram; a caption takes at most {INSTAGRAM_MENTIONS}")
    return found
