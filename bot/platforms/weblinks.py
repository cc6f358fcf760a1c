"""Web links of posts made on a local emulator point at that emulator, not at x.com or bsky.app.

The X and Bluesky adapters build a post's web address from the network's public site, since
neither API returns one. Against the sandbox (an API on a loopback host) those addresses would
name posts that exist nowhere; the emulator serves each post at the same path on its own
address (`/_sandbox/state` `url`), so the links printed by `post`, the daemon's log and the
mentions log open what was really posted. Mastodon needs nothing: its API returns each status's
own `url`, which is the emulator's already.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bot.platforms import Batch, Mention, Outgoing, PlatformClient, Published

PUBLIC_SITES = {
    "x": "https://x.com",
    "bluesky": "https://bsky.app",
    "facebook": "https://www.facebook.com",
    "instagram": "https://www.instagram.com",
}


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_site(platform: str, api_base_url: str) -> str | None:
    """The emulator's address when `platform`'s API is on a loopback host and its links need moving."""
    if platform not in PUBLIC_SITES or not is_loopback(api_base_url):
        return None
    parts = urlsplit(api_base_url)  # the emulator serves its posts at its root, whatever API path
    return f"{parts.scheme}://{parts.netloc}"


class LocalLinks:
    """A client whose post links are moved from the public site to the local emulator."""

    def __init__(self, client: PlatformClient, site: str) -> None:
        self._client = client
        self._public = PUBLIC_SITES[client.platform] + "/"
        self._local = site + "/"
        self.platform = client.platform
        self.account = client.account

    def __getattr__(self, name: str) -> Any:  # verify, delete, identity, close, ... unchanged
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return f"LocalLinks({self._client!r})"

    def _move(self, url: str | None) -> str | None:
        if url is not None and url.startswith(self._public):
            return self._local + url.removeprefix(self._public)
        return url

    def _published(self, published: Published | None) -> Published | None:
        if published is None:
            return None
        return dataclasses.replace(published, url=self._move(published.url) or "")

    def _batch(self, batch: Batch) -> Batch:
        posts = tuple(self._mention(m) for m in batch.posts)
        return dataclasses.replace(batch, posts=posts)

    def _mention(self, mention: Mention) -> Mention:
        return dataclasses.replace(
            mention, url=self._move(mention.url) or "", in_reply_to_url=self._move(mention.in_reply_to_url)
        )

    def publish(self, message: Outgoing) -> Published:
        published = self._published(self._client.publish(message))
        assert published is not None
        return published

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        return self._published(self._client.find_published(message, since))

    def repost(self, post_id: str) -> Published:
        published = self._published(self._client.repost(post_id))
        assert published is not None
        return published

    def read_hashtags(
        self, tags: Sequence[str], cursor: str | None, start: datetime, conversations: Sequence[str] = ()
    ) -> Batch:
        return self._batch(self._client.read_hashtags(tags, cursor, start, conversations))

    def read_notifications(self, cursor: str | None, start: datetime) -> Batch:
        return self._batch(self._client.read_notifications(cursor, start))
