"""What a Bluesky post record carries that the SDK's `send_post(text)` would leave out.

Facets (hashtags, links and mentions are only clickable as facets over UTF-8 byte offsets),
reply refs with both strong refs, image embeds with their aspect ratios, and link cards, from
the post's own `{title, description, image}` or read from the page (OpenGraph) with a timeout.
Building them takes a few PDS calls (resolveHandle, getRecord for a missing cid, uploadBlob);
`BlueskyClient` makes them inside its `_call`, which translates errors and renews sessions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atproto_client import models
from atproto_client.exceptions import BadRequestError
from atproto_client.models.utils import get_response_model
from atproto_core.uri import AtUri

from bot.campaign.contentfiles import read_content_image
from bot.campaign.images import IMAGE_LIMITS, inspect_image
from bot.campaign.model import LinkCard
from bot.errors import Rejected
from bot.platforms import Facet, Media, Outgoing, Published
from bot.platforms.media import read_media
from bot.platforms.opengraph import LinkPreview, fetch_link_preview

log = logging.getLogger(__name__)

URL_PATTERN = re.compile(r"https?://[^\s<>\"']+")


def read_image(media: Media) -> tuple[bytes, Media]:
    """The image's bytes, refused before any upload when the PDS would refuse them."""
    return read_media(media, "bluesky"), media


class RecordParts:
    """The parts of one account's post records; `client` is the account's SDK client."""

    def __init__(self, client: Any, account: str, content_dir: Path, link_card_timeout: float) -> None:
        self._client = client
        self._account = account
        self._content_dir = content_dir
        self._link_card_timeout = link_card_timeout
        self._dids: dict[str, str | None] = {}  # handle -> DID, resolved once per client

    def facets(self, text: str, facets: Sequence[Facet]) -> list[models.AppBskyRichtextFacet.Main]:
        built = []
        for facet in facets:
            feature: Any
            if facet.kind == "tag":
                feature = models.AppBskyRichtextFacet.Tag(tag=facet.value)
            elif facet.kind == "link":
                feature = models.AppBskyRichtextFacet.Link(uri=facet.value)
            else:
                did = self._resolve_handle(facet.value)
                if did is None:
                    continue  # as the official app does: an unknown handle stays plain text
                feature = models.AppBskyRichtextFacet.Mention(did=did)
            built.append(
                models.AppBskyRichtextFacet.Main(
                    features=[feature],
                    index=models.AppBskyRichtextFacet.ByteSlice(byte_start=facet.start, byte_end=facet.end),
                )
            )
        return built

    def _resolve_handle(self, handle: str) -> str | None:
        if handle not in self._dids:
            try:
                answer = self._client.com.atproto.identity.resolve_handle(
                    models.ComAtprotoIdentityResolveHandle.Params(handle=handle)
                )
                self._dids[handle] = answer.did
            except BadRequestError:
                log.info("bluesky %s: @%s does not resolve; left as plain text", self._account, handle)
                self._dids[handle] = None
        return self._dids[handle]

    def reply_ref(self, message: Outgoing) -> models.AppBskyFeedPost.ReplyRef | None:
        if message.reply_to is None:
            return None
        parent = self.strong_ref(message.reply_to)
        root = self.strong_ref(message.root) if message.root is not None else parent
        return models.AppBskyFeedPost.ReplyRef(root=root, parent=parent)

    def strong_ref(self, published: Published) -> models.ComAtprotoRepoStrongRef.Main:
        cid = published.cid
        if cid is None:  # e.g. a part recorded before its cid was known: ask the PDS
            uri = AtUri.from_str(published.id)
            cid = self._client.com.atproto.repo.get_record(
                models.ComAtprotoRepoGetRecord.Params(
                    repo=uri.hostname, collection=uri.collection, rkey=uri.rkey
                )
            ).cid
            if cid is None:
                raise Rejected(f"Bluesky: no cid for {published.id}")
        return models.ComAtprotoRepoStrongRef.Main(uri=published.id, cid=cid)

    def _upload(self, data: bytes) -> models.blob_ref.BlobRef:
        # Not `upload_blob()`: it hands the bytes to httpx as `data=`, which httpx deprecates with
        # a DeprecationWarning on every upload. `content=` is the same request. And the SDK sends
        # `*/*`; naming the type spares the PDS a guess.
        response = self._client.invoke_procedure(
            "com.atproto.repo.uploadBlob",
            data=None,
            content=data,
            input_encoding=inspect_image(data).mime,
            output_encoding="application/json",
        )
        return get_response_model(response, models.ComAtprotoRepoUploadBlob.Response).blob

    def embed(self, message: Outgoing, images: list[tuple[bytes, Media]]) -> Any:
        if images:
            embedded = []
            for data, media in images:
                info = inspect_image(data)
                ratio = None
                if info.width and info.height:
                    ratio = models.AppBskyEmbedDefs.AspectRatio(width=info.width, height=info.height)
                embedded.append(
                    models.AppBskyEmbedImages.Image(
                        alt=media.alt, image=self._upload(data), aspect_ratio=ratio
                    )
                )
            return models.AppBskyEmbedImages.Main(images=embedded)
        if message.link_card is False:
            return None
        url = first_link(message.text, message.facets)
        if url is None:
            return None
        preview = self._link_preview(url, message.link_card)
        if preview is None:
            return None
        thumb = self._upload(preview.image) if preview.image else None
        return models.AppBskyEmbedExternal.Main(
            external=models.AppBskyEmbedExternal.External(
                uri=preview.url, title=preview.title, description=preview.description, thumb=thumb
            )
        )

    def _link_preview(self, url: str, card: LinkCard | bool) -> LinkPreview | None:
        if isinstance(card, LinkCard):
            image = None
            if card.image:
                try:
                    image = read_content_image(self._content_dir, self._content_dir / card.image)
                except Rejected as exc:
                    log.warning(
                        "bluesky %s: link card image refused, card sent without it: %s", self._account, exc
                    )
                    image = None
                if image is not None and len(image) > IMAGE_LIMITS["bluesky"].max_bytes:
                    log.warning("bluesky %s: link card image over 1 MB, card sent without it", self._account)
                    image = None
            return LinkPreview(url, card.title, card.description, image)
        return fetch_link_preview(url, self._link_card_timeout)


def first_link(text: str, facets: Sequence[Facet]) -> str | None:
    links = sorted((f for f in facets if f.kind == "link"), key=lambda f: f.start)
    if links:
        return links[0].value
    match = URL_PATTERN.search(text)
    return match.group(0).rstrip(".,;:!?)") if match else None
