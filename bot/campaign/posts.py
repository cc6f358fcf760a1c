"""Reading the posts of a content queue: text or thread, images, per-platform options, times.

Called by `bot.campaign.queues` for each queue file; every problem goes to the file's Findings at the
line of the field, and reading carries on so that one run reports every error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Literal, cast
from zoneinfo import ZoneInfo

from bot.campaign.findings import Findings, describe_path
from bot.campaign.images import IMAGE_LIMITS, image_problem
from bot.campaign.model import PLATFORMS, Image, LinkCard, Part, Platform, PlatformOptions, Post
from bot.campaign.moments import Role, parse_moment
from bot.campaign.yamlsource import YamlPath

POST_KEYS = (
    "id",
    "text",
    "thread",
    "images",
    "x",
    "bluesky",
    "mastodon",
    "facebook",
    "instagram",
    "at",
    "start",
    "expires",
)
# What each platform's options may hold; a queue's defaults may not hold text or thread.
OPTION_KEYS: Mapping[Platform, tuple[str, ...]] = {
    "x": ("text", "thread", "language"),
    "bluesky": ("text", "thread", "link_card", "language"),
    "mastodon": ("text", "thread", "spoiler_text", "visibility", "language"),
    "facebook": ("text", "thread", "link", "language"),
    "instagram": ("text", "thread", "image", "language"),
}
_ONLY_ON = {"spoiler_text": "mastodon", "visibility": "mastodon", "link_card": "bluesky", "link": "facebook"}
_VISIBILITIES = ("public", "unlisted", "private", "direct")
_IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
MAX_IMAGES = 4  # the limit on X, Bluesky and Mastodon alike
MAX_ALT = 1000  # X's alt text limit, the lowest of the three
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_URL = re.compile(r"https?://\S+")
# The text `new-queue` writes as its first post: an error until replaced, so it is never published.
PLACEHOLDER = "Write the first post here."


@dataclass
class PostReader:
    """What reading a queue's posts needs to know about the queue."""

    findings: Findings
    content_dir: Path
    zone: ZoneInfo
    platforms: tuple[Platform, ...]  # the queue's platforms, for the checks that depend on them

    def read_posts(self, value: object) -> tuple[Post, ...]:
        path: YamlPath = ("posts",)
        if value is None:
            self.findings.error(path, "missing posts: list the queue's posts, each with an id and text")
            return ()
        if not isinstance(value, list):
            self.findings.error(path, "posts: should be a list (one `- id: ...` entry per post)")
            return ()
        posts: list[Post] = []
        first_line: dict[str, int] = {}
        for i, item in enumerate(value):
            errors = len(self.findings.problems)
            post = self.read_post(item, ("posts", i))
            if post is None:
                continue
            # A post with an error of its own is left out, so the others can still be measured.
            own_error = any(p.severity == "error" for p in self.findings.problems[errors:])
            if post.id in first_line:
                self.findings.error(
                    ("posts", i, "id"),
                    f"id {post.id!r} is used twice in this queue (first at line {first_line[post.id]}); "
                    "ids must be unique because delivery state is kept by id",
                )
                continue
            first_line[post.id] = post.line
            if not own_error:
                posts.append(post)
        return tuple(posts)

    def read_post(self, value: object, path: YamlPath) -> Post | None:
        if not isinstance(value, dict):
            self.findings.error(path, f"{describe_path(path)}: a post should be a mapping with id and text")
            return None
        self.findings.check_keys(path, value, POST_KEYS)
        post_id = self._post_id(value, path)
        images = self.read_images(value["images"], (*path, "images")) if "images" in value else ()
        parts = self.read_body(value, path, images, required=True) or ()
        overrides: dict[Platform, PlatformOptions] = {}
        for platform in PLATFORMS:
            if platform not in value:
                continue
            if platform not in self.platforms:
                self.findings.warning(
                    (*path, platform),
                    f"{platform}: this queue does not post to {platform}, so this is unused",
                )
            options = self.read_options(platform, value[platform], (*path, platform), images)
            if options is not None:
                overrides[platform] = options
        start = self.read_moment(value, path, "start")
        expires = self.read_moment(value, path, "expires")
        at = self.read_moment(value, path, "at")
        self.check_window(path, start, expires)
        if at is not None and expires is not None and at >= expires:
            self.findings.error(
                (*path, "at"), f"at ({at.isoformat()}) is not before expires ({expires.isoformat()})"
            )
        if at is not None and start is not None and at < start:
            self.findings.error((*path, "at"), f"at ({at.isoformat()}) is before start ({start.isoformat()})")
        if post_id is None:
            return None
        doc = self.findings.doc
        own = next((key for key in ("text", "thread") if key in value), None)
        text_lines = {"": doc.line((*path, own))} if own else {}
        text_lines.update({p: doc.line((*path, p)) for p in overrides if overrides[p].parts is not None})
        # A thread's parts at their own lines, as "#N" (the post's) or "x#N" (an override's).
        for prefix, body in (("", value), *((p, value[p]) for p in overrides)):
            thread = body.get("thread") if isinstance(body, dict) else None
            base = (*path, prefix, "thread") if prefix else (*path, "thread")
            for i in range(len(thread) if isinstance(thread, list) else 0):
                text_lines[f"{prefix}#{i + 1}"] = doc.line((*base, i))
        post = Post(
            id=post_id,
            parts=parts,
            line=self.findings.doc.line(path),
            text_lines=text_lines,
            overrides=overrides,
            at=at,
            start=start,
            expires=expires,
        )
        if parts:
            self.check_link_card(post, path)
        return post

    def _post_id(self, value: Mapping[str, object], path: YamlPath) -> str | None:
        if "id" not in value:
            self.findings.error(path, "post has no id: give it one, such as `id: petition-launch`")
            return None
        post_id = value["id"]
        if isinstance(post_id, bool):  # YAML reads yes/no/on/off/true/false as a truth value
            self.findings.error(
                (*path, "id"),
                'id: YAML reads yes, no, on, off, true and false as true/false; quote it: id: "yes"',
            )
            return None
        if not isinstance(post_id, str) or not _ID.fullmatch(post_id):
            self.findings.error(
                (*path, "id"),
                f"id {post_id!r} should be a word of letters, digits, '.', '_' or '-' (in quotes)",
            )
            return None
        return post_id

    def read_body(
        self, value: Mapping[str, object], path: YamlPath, images: tuple[Image, ...], *, required: bool
    ) -> tuple[Part, ...] | None:
        """The text (one part) or thread (several) of a post or an override; `images` join part one."""
        has_text, has_thread = "text" in value, "thread" in value
        if has_text and has_thread:
            self.findings.error((*path, "thread"), "give text or thread, not both")
            return None
        if has_text:
            text = self.read_text(value["text"], (*path, "text"))
            return (Part(text, images),) if text is not None else None
        if has_thread:
            return self.read_thread(value["thread"], (*path, "thread"), images)
        if required:
            self.findings.error(path, f"{describe_path(path)}: needs text or thread")
        return None

    def read_text(self, value: object, path: YamlPath) -> str | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            self.findings.error(
                path, f'{describe_path(path)}: {value!r} is read as a number: put it in quotes ("{value}")'
            )
            return None
        if not isinstance(value, str) or not value.strip():
            self.findings.error(path, f"{describe_path(path)}: should be non-empty text")
            return None
        if PLACEHOLDER in value:
            self.findings.error(
                path, f"{describe_path(path)}: still the `new-queue` placeholder: write the post's own text"
            )
        return value.strip()

    def read_thread(
        self, value: object, path: YamlPath, images: tuple[Image, ...]
    ) -> tuple[Part, ...] | None:
        if not isinstance(value, list) or not value:
            self.findings.error(path, "thread: should be a list of parts (each a text, or {text, images})")
            return None
        parts: list[Part] = []
        for i, item in enumerate(value):
            part_path = (*path, i)
            extra = images if i == 0 else ()
            if isinstance(item, dict):
                self.findings.check_keys(part_path, item, ("text", "images"))
                text = self.read_text(item.get("text"), (*part_path, "text"))
                own = self.read_images(item["images"], (*part_path, "images")) if "images" in item else ()
            else:
                text, own = self.read_text(item, part_path), ()
            if len(extra) + len(own) > MAX_IMAGES:
                self.findings.error(
                    part_path, f"a part can carry at most {MAX_IMAGES} images (the post's included)"
                )
            if text is not None:
                parts.append(Part(text, extra + own))
        return tuple(parts) if len(parts) == len(value) else None

    def read_images(self, value: object, path: YamlPath) -> tuple[Image, ...]:
        if not isinstance(value, list):
            self.findings.error(path, "images: should be a list of {path, alt}")
            return ()
        if len(value) > MAX_IMAGES:
            self.findings.error(
                path, f"images: {len(value)} images; every platform takes at most {MAX_IMAGES}"
            )
        images: list[Image] = []
        for i, item in enumerate(value):
            item_path = (*path, i)
            if not isinstance(item, dict):
                self.findings.error(
                    item_path, 'an image should be a mapping: {path: images/x.png, alt: "..."}'
                )
                continue
            self.findings.check_keys(item_path, item, ("path", "alt"))
            image_path = self.read_image_path(item.get("path"), (*item_path, "path"))
            alt = item.get("alt")
            if alt is None or (isinstance(alt, str) and not alt.strip()):
                self.findings.error(
                    item_path, "image has no alt text: describe it for people who cannot see it (alt: ...)"
                )
                continue
            if not isinstance(alt, str):
                self.findings.error((*item_path, "alt"), "alt: should be text")
                continue
            if len(alt) > MAX_ALT:
                self.findings.error(
                    (*item_path, "alt"), f"alt text is {len(alt)} characters; X accepts {MAX_ALT}"
                )
            if image_path is not None:
                images.append(Image(image_path, alt.strip()))
        return tuple(images)

    def read_image_path(self, value: object, path: YamlPath) -> str | None:
        """A path relative to the content folder that stays inside it and names an existing image."""
        if not isinstance(value, str) or not value.strip():
            self.findings.error(
                path, "image needs a path, relative to the content folder (path: images/x.png)"
            )
            return None
        if (
            PurePosixPath(value).is_absolute()
            or PureWindowsPath(value).is_absolute()
            or value.startswith("~")
        ):
            self.findings.error(
                path, f"image path {value!r} is absolute; write it relative to the content folder"
            )
            return None
        folder = self.content_dir.resolve()
        target = (folder / value).resolve()
        if not target.is_relative_to(folder):
            self.findings.error(
                path, f"image path {value!r} leaves the content folder; keep images inside it"
            )
            return None
        if not target.is_file():
            self.findings.error(path, f"image {value!r} not found in the content folder")
            return None
        if target != Path(os.path.normpath(folder / value)):
            # Send time follows no link below the content folder (bot.campaign.contentfiles).
            self.findings.error(path, f"image {value!r} is a link; put the file itself in the content folder")
            return None
        if target.suffix.lower() not in _IMAGE_TYPES:
            self.findings.error(path, f"image {value!r} should be PNG, JPEG, GIF or WebP")
            return None
        size = target.stat().st_size
        largest = max(limits.max_gif_bytes for limits in IMAGE_LIMITS.values())
        try:
            # The bytes, not the name: a text file called fake.png is refused here, not at posting.
            problem = (
                image_problem(target.read_bytes(), self.platforms)
                if size <= largest
                else f"is {size:,} bytes; too large for every platform"
            )
        except OSError as exc:
            problem = f"cannot be read: {exc.strerror}"
        if problem is not None:
            self.findings.error(path, f"image {value!r} {problem}")
        return value

    def read_options(
        self, platform: Platform, value: object, path: YamlPath, images: tuple[Image, ...] | None
    ) -> PlatformOptions | None:
        """Per-platform options of a post (`images` given) or a queue's defaults (`images` None)."""
        if isinstance(value, str) and images is not None:
            text = self.read_text(value, path)
            return PlatformOptions(parts=(Part(text, images),)) if text is not None else None
        if not isinstance(value, dict):
            what = "a text or options" if images is not None else "options"
            self.findings.error(path, f"{platform}: should be {what} (a mapping such as {{language: en}})")
            return None
        allowed = OPTION_KEYS[platform]
        for key in value:
            if key in _ONLY_ON and _ONLY_ON[key] != platform:
                self.findings.error((*path, key), f"{platform}: {key} applies only to {_ONLY_ON[key]}")
            elif key in ("text", "thread") and images is None:
                self.findings.error(
                    (*path, key), f"{platform}: a queue's defaults cannot hold {key}; put it on a post"
                )
        # Keys of another platform, or text in a queue's defaults, were reported just above.
        self.findings.check_keys(path, value, [*allowed, *_ONLY_ON, "text", "thread"])
        parts = self.read_body(value, path, images, required=False) if images is not None else None
        return PlatformOptions(
            parts=parts,
            spoiler_text=self._spoiler(value, path) if platform == "mastodon" else None,
            visibility=self._visibility(value, path) if platform == "mastodon" else None,
            link_card=self._link_card(value, path, parts) if platform == "bluesky" else False,
            language=self.read_language(value, path),
            link=self._link(value, path) if platform == "facebook" else None,
            image=self._card_image(value, path) if platform == "instagram" else None,
        )

    def _card_image(self, value: Mapping[str, object], path: YamlPath) -> Image | None:
        """`image: {path, alt}`: what Instagram shows for a post without images of its own."""
        if value.get("image") is None:
            return None
        images = self.read_images([value["image"]], (*path, "image"))
        return images[0] if images else None

    def _link(self, value: Mapping[str, object], path: YamlPath) -> str | None:
        link = value.get("link")
        if link is None:
            return None
        if not isinstance(link, str) or not _URL.fullmatch(link.strip()):
            self.findings.error((*path, "link"), "link: should be one web address starting with https://")
            return None
        return link.strip()

    def _spoiler(self, value: Mapping[str, object], path: YamlPath) -> str | None:
        spoiler = value.get("spoiler_text")
        if spoiler is None:
            return None
        if not isinstance(spoiler, str) or not spoiler.strip():
            self.findings.error((*path, "spoiler_text"), "spoiler_text: should be non-empty text")
            return None
        return spoiler.strip()

    def _visibility(
        self, value: Mapping[str, object], path: YamlPath
    ) -> Literal["public", "unlisted", "private", "direct"] | None:
        visibility = value.get("visibility")
        if visibility is None:
            return None
        if visibility not in _VISIBILITIES:
            self.findings.error(
                (*path, "visibility"),
                f"visibility: {visibility!r} should be one of {', '.join(_VISIBILITIES)}",
            )
            return None
        return cast(Literal["public", "unlisted", "private", "direct"], visibility)

    def _link_card(
        self, value: Mapping[str, object], path: YamlPath, parts: tuple[Part, ...] | None
    ) -> bool | LinkCard:
        card = value.get("link_card", False)
        card_path = (*path, "link_card")
        if isinstance(card, bool):
            return card
        if not isinstance(card, dict):
            self.findings.error(card_path, "link_card: should be true, false or {title, description, image}")
            return False
        self.findings.check_keys(card_path, card, ("title", "description", "image"))
        title, description = card.get("title"), card.get("description", "")
        if not isinstance(title, str) or not title.strip():
            self.findings.error(card_path, "link_card: needs a title")
            return False
        if not isinstance(description, str):
            self.findings.error((*card_path, "description"), "link_card.description: should be text")
            return False
        image = self.read_image_path(card["image"], (*card_path, "image")) if "image" in card else None
        return LinkCard(title=title.strip(), description=description.strip(), image=image)

    def check_link_card(self, post: Post, path: YamlPath) -> None:
        """A link card needs a link in the text it goes with."""
        options = post.overrides.get("bluesky")
        if options is None or options.link_card is False:
            return
        parts = options.parts or post.parts
        if not _URL.search(parts[0].text):
            self.findings.warning(
                (*path, "bluesky"), "bluesky.link_card: the first part has no link to make a card of"
            )

    def read_language(self, value: Mapping[str, object], path: YamlPath) -> str | None:
        language = value.get("language")
        if language is None:
            return None
        if not isinstance(language, str) or not LANGUAGE.fullmatch(language):
            self.findings.error(
                (*path, "language"), f"language: {language!r} should be a code such as en or es"
            )
            return None
        return language

    def read_moment(self, value: Mapping[str, object], path: YamlPath, role: Role) -> datetime | None:
        if role not in value:
            return None
        try:
            return parse_moment(value[role], self.zone, role)
        except ValueError as exc:
            self.findings.error((*path, role), f"{role}: {exc}")
            return None

    def check_window(self, path: YamlPath, start: datetime | None, expires: datetime | None) -> None:
        if start is not None and expires is not None and expires <= start:
            self.findings.error(
                (*path, "expires"),
                f"expires ({expires.isoformat()}) is not after start ({start.isoformat()}): "
                "nothing could ever be sent",
            )
