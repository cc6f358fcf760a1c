"""Link cards read from a page's OpenGraph tags, for Bluesky posts with `link_card: true`.

Bluesky's SDK fetches no metadata (the official app does it client-side), so we read
`og:title`, `og:description` and `og:image` ourselves, with a short timeout and a size cap: a
slow or huge page must cost the post its card, never the post itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

log = logging.getLogger(__name__)

MAX_PAGE_BYTES = 512 * 1024  # the <head> is all we read; pages past this are cut
MAX_IMAGE_BYTES = 1_000_000  # Bluesky's blob limit for thumbnails


@dataclass(frozen=True)
class LinkPreview:
    url: str
    title: str
    description: str = ""
    image: bytes | None = None


class _MetaParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            values = {k.lower(): v for k, v in attrs if v is not None}
            key = (values.get("property") or values.get("name") or "").lower()
            if key and "content" in values and key not in self.meta:
                self.meta[key] = values["content"].strip()
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def parse_link_preview(url: str, html: str) -> tuple[str, str, str | None] | None:
    """(title, description, absolute image URL) from a page, or None when it has no title."""
    parser = _MetaParser()
    parser.feed(html)
    parser.close()
    meta = parser.meta
    title = meta.get("og:title") or meta.get("twitter:title") or parser.title.strip()
    if not title:
        return None
    description = meta.get("og:description") or meta.get("description") or ""
    image = meta.get("og:image") or meta.get("og:image:url") or meta.get("twitter:image")
    return title, description, urljoin(url, image) if image else None


def fetch_link_preview(
    url: str, timeout: float, session: requests.Session | None = None
) -> LinkPreview | None:
    """The page's card, or None when the page cannot be read in time (logged, never raised)."""
    http = session or requests.Session()
    try:
        page = _read_capped(http, url, timeout, MAX_PAGE_BYTES)
        if page is None:
            return None
        body, encoding = page
        found = parse_link_preview(url, body.decode(encoding or "utf-8", errors="replace"))
        if found is None:
            log.info("no link card: %s has no title", url)
            return None
        title, description, image_url = found
        image = None
        if image_url:
            fetched = _read_capped(http, image_url, timeout, MAX_IMAGE_BYTES, refuse_larger=True)
            image = fetched[0] if fetched else None
        return LinkPreview(url, title, description, image)
    except (requests.RequestException, UnicodeError, LookupError) as exc:
        log.info("no link card for %s: %s", url, type(exc).__name__)
        return None
    finally:
        if session is None:
            http.close()


def _read_capped(
    http: requests.Session, url: str, timeout: float, cap: int, refuse_larger: bool = False
) -> tuple[bytes, str | None] | None:
    with http.get(url, timeout=timeout, stream=True, headers={"User-Agent": "campaign-bot"}) as response:
        if response.status_code != 200:
            log.info("no link card: %s answered %s", url, response.status_code)
            return None
        # requests' timeout bounds each read, not the whole body: a page that drips slowly
        # must not hold the post, so the body gets its own deadline.
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(16384):
            if time.monotonic() > deadline:
                log.info("link card: %s too slow, using what arrived", url)
                if refuse_larger:
                    return None
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                if refuse_larger:
                    log.info("link card image %s is over %d bytes: card without image", url, cap)
                    return None
                break
        content_type = response.headers.get("Content-Type", "")
        _, _, charset = content_type.partition("charset=")
        return b"".join(chunks)[:cap], charset.split(";")[0].strip() or None
