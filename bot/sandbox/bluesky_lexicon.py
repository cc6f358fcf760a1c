"""atproto formats (TIDs, CIDs, datetimes) and the lexicon checks the PDS applies to our records.

The PDS validates a record against its lexicon when the client sends `validate: true` (the
SDK always does) and answers 400 `InvalidRequest` "Invalid <collection> record: <path> <rule>".
The messages follow @atproto/lexicon's wording; the current exact wording was not verified
against a live PDS, so callers should match on the error name.

Blob constraints are not checked here: as on the PDS, validation collects every blob reference
with its field's constraints, and the repo checks them against the uploaded blobs afterwards
(`BlobNotFound`, `BlobTooLarge`, `InvalidMimeType`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import regex

POST = "app.bsky.feed.post"
REPOST = "app.bsky.feed.repost"
LIKE = "app.bsky.feed.like"
COLLECTIONS = (POST, REPOST, LIKE)

FACET_MENTION = "app.bsky.richtext.facet#mention"
FACET_LINK = "app.bsky.richtext.facet#link"
FACET_TAG = "app.bsky.richtext.facet#tag"

EMBED_IMAGES = "app.bsky.embed.images"
EMBED_EXTERNAL = "app.bsky.embed.external"
EMBED_RECORD = "app.bsky.embed.record"
EMBED_RECORD_WITH_MEDIA = "app.bsky.embed.recordWithMedia"

# The images embed's blob limit. The lexicon snapshot in tests/data/ says 2,000,000 (raised by
# @atproto/api 0.19.7); older PDS deployments still enforce 1,000,000, so the emulator holds
# the bot to the older, stricter figure (docs/design.md, platform facts).
IMAGE_MAX_SIZE = 1_000_000
THUMB_MAX_SIZE = 1_000_000  # app.bsky.embed.external#external.thumb

_DATETIME = re.compile(
    r"^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\.[0-9]{1,20})?"
    r"(Z|[+-][0-2][0-9]:[0-5][0-9])$"
)
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_URI = re.compile(r"^\w+:(?://)?[^\s/][^\s]*$")
_AT_URI = re.compile(r"^at://[a-zA-Z0-9._:%-]+(/[a-zA-Z0-9.-]+(/[a-zA-Z0-9._~:@!$&')(*+,;=%-]+)?)?$")
_CID = re.compile(r"^[a-zA-Z0-9+=]{8,256}$")
_LANGUAGE = re.compile(r"^(i|[a-z]{2,3})(-[a-zA-Z0-9]+)*$")
_GRAPHEME = regex.compile(r"\X")


def make_cid(data: bytes, *, raw: bool = False) -> str:
    """A CIDv1 (sha2-256) in base32: `bafkrei…` for raw blob bytes, `bafyrei…` for records (dag-cbor)."""
    prefix = bytes([0x01, 0x55 if raw else 0x71, 0x12, 0x20])
    digest = base64.b32encode(prefix + hashlib.sha256(data).digest()).decode().lower().rstrip("=")
    return "b" + digest


def record_cid(value: Any) -> str:
    """A stable CID for a record (canonical JSON stands in for DAG-CBOR)."""
    return make_cid(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def count_graphemes(text: str) -> int:
    return len(_GRAPHEME.findall(text))


def parse_datetime(text: str) -> datetime | None:
    """An atproto datetime (RFC 3339 with a zone), or None."""
    if not _DATETIME.match(text) or text.endswith("-00:00"):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class BlobRef:
    """A blob a record points at, with the constraints of the field it sits in."""

    path: str
    cid: str
    mime_type: str
    size: int
    max_size: int
    accept: str  # "image/*"


@dataclass(frozen=True)
class StrongRef:
    path: str
    uri: str
    cid: str


@dataclass
class RecordRefs:
    """What a valid record points at, for the repo's checks after validation."""

    blobs: list[BlobRef] = field(default_factory=list)
    replies: list[StrongRef] = field(default_factory=list)  # reply root and parent


class RecordInvalid(Exception):
    """A 400 from the PDS: `error` is the XRPC error name, `message` the whole message."""

    def __init__(self, message: str, error: str = "InvalidRequest") -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class _Invalid(Exception):
    """A lexicon rule broken at a path; becomes RecordInvalid with the collection's prefix."""


def validate_record(collection: str, record: Any) -> RecordRefs:
    """Check a record as the PDS does with `validate: true`; raise RecordInvalid, else return its refs."""
    if collection not in COLLECTIONS:
        raise RecordInvalid(f"Lexicon not found: lex:{collection}")
    if not isinstance(record, dict):
        raise RecordInvalid(f"Invalid {collection} record: Record must be an object")
    rtype = record.get("$type")
    if rtype != collection:
        raise RecordInvalid(f"Invalid $type: expected {collection}, got {rtype}")
    refs = RecordRefs()
    try:
        if collection == POST:
            _check_post(record, refs)
        else:  # reposts and likes: {subject: strongRef, createdAt}
            _require(record, "Record", "subject", "createdAt")
            _check_strong_ref(record["subject"], "Record/subject")
            _check_datetime(record["createdAt"], "Record/createdAt")
    except _Invalid as exc:
        raise RecordInvalid(f"Invalid {collection} record: {exc}") from None
    return refs


def check_facet_ranges(record: dict[str, Any]) -> None:
    """Facet byte ranges must lie inside the text and on character boundaries.

    The lexicon alone does not ask this (the AppView drops a bad facet silently); the emulator
    refuses it so that an offset counted in code points instead of UTF-8 bytes shows up in
    tests instead of as an unclickable hashtag (docs/decisions.md).
    """
    data = str(record.get("text", "")).encode()
    for i, facet in enumerate(record.get("facets") or []):
        start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
        path = f"Record/facets/{i}/index"
        if end > len(data):
            raise RecordInvalid(
                f"Invalid {POST} record: {path}/byteEnd must not be greater than the text's length "
                f"in UTF-8 bytes ({len(data)})"
            )
        if start > end:
            raise RecordInvalid(f"Invalid {POST} record: {path}/byteStart must not be greater than byteEnd")
        for name, offset in (("byteStart", start), ("byteEnd", end)):
            if offset < len(data) and data[offset] & 0xC0 == 0x80:
                raise RecordInvalid(
                    f"Invalid {POST} record: {path}/{name} must fall on a UTF-8 character boundary"
                )


# -- app.bsky.feed.post ------------------------------------------------------------------


def _check_post(record: dict[str, Any], refs: RecordRefs) -> None:
    _require(record, "Record", "text", "createdAt")
    _check_string(record["text"], "Record/text", max_bytes=3000, max_graphemes=300)
    _check_datetime(record["createdAt"], "Record/createdAt")
    if "facets" in record:
        for i, facet in enumerate(_check_array(record["facets"], "Record/facets")):
            _check_facet(facet, f"Record/facets/{i}")
    if "reply" in record:
        reply = _check_object(record["reply"], "Record/reply")
        _require(reply, "Record/reply", "root", "parent")
        for key in ("root", "parent"):
            uri, cid = _check_strong_ref(reply[key], f"Record/reply/{key}")
            refs.replies.append(StrongRef(f"Record/reply/{key}", uri, cid))
    if "embed" in record:
        _check_embed(record["embed"], "Record/embed", refs, with_media_only=False)
    if "langs" in record:
        for i, lang in enumerate(_check_array(record["langs"], "Record/langs", max_items=3)):
            _check_string(lang, f"Record/langs/{i}")
            if not _LANGUAGE.match(lang):
                raise _Invalid(f"Record/langs/{i} must be a well-formed BCP 47 language tag")
    if "tags" in record:
        for i, tag in enumerate(_check_array(record["tags"], "Record/tags", max_items=8)):
            _check_string(tag, f"Record/tags/{i}", max_bytes=640, max_graphemes=64)
    if "labels" in record:
        _check_union(record["labels"], "Record/labels")


def _check_facet(facet: Any, path: str) -> None:
    facet = _check_object(facet, path)
    _require(facet, path, "index", "features")
    index = _check_object(facet["index"], f"{path}/index")
    _require(index, f"{path}/index", "byteStart", "byteEnd")
    for key in ("byteStart", "byteEnd"):
        _check_integer(index[key], f"{path}/index/{key}", minimum=0)
    for j, feature in enumerate(_check_array(facet["features"], f"{path}/features")):
        fpath = f"{path}/features/{j}"
        ftype = _check_union(feature, fpath)
        if ftype == FACET_MENTION:
            _require(feature, fpath, "did")
            _check_string(feature["did"], f"{fpath}/did")
            if not _DID.match(feature["did"]):
                raise _Invalid(f"{fpath}/did must be a valid did")
        elif ftype == FACET_LINK:
            _require(feature, fpath, "uri")
            _check_uri(feature["uri"], f"{fpath}/uri")
        elif ftype == FACET_TAG:
            _require(feature, fpath, "tag")
            _check_string(feature["tag"], f"{fpath}/tag", max_bytes=640, max_graphemes=64)
        # Lexicon unions are open: an unknown feature $type passes, as on the PDS.


def _check_embed(embed: Any, path: str, refs: RecordRefs, *, with_media_only: bool) -> None:
    etype = _check_union(embed, path)
    if etype == EMBED_IMAGES:
        images = (
            _check_array(embed.get("images"), f"{path}/images", max_items=4) if "images" in embed else None
        )
        if images is None:
            raise _Invalid(f'{path} must have the property "images"')
        for i, image in enumerate(images):
            ipath = f"{path}/images/{i}"
            image = _check_object(image, ipath)
            _require(image, ipath, "image", "alt")
            _check_string(image["alt"], f"{ipath}/alt")
            refs.blobs.append(_check_blob(image["image"], f"{ipath}/image", IMAGE_MAX_SIZE))
            if "aspectRatio" in image:
                ratio = _check_object(image["aspectRatio"], f"{ipath}/aspectRatio")
                _require(ratio, f"{ipath}/aspectRatio", "width", "height")
                for key in ("width", "height"):
                    _check_integer(ratio[key], f"{ipath}/aspectRatio/{key}", minimum=1)
    elif etype == EMBED_EXTERNAL:
        _require(embed, path, "external")
        external = _check_object(embed["external"], f"{path}/external")
        _require(external, f"{path}/external", "uri", "title", "description")
        _check_uri(external["uri"], f"{path}/external/uri")
        _check_string(external["title"], f"{path}/external/title")
        _check_string(external["description"], f"{path}/external/description")
        if "thumb" in external:
            refs.blobs.append(_check_blob(external["thumb"], f"{path}/external/thumb", THUMB_MAX_SIZE))
    elif etype == EMBED_RECORD and not with_media_only:
        _require(embed, path, "record")
        _check_strong_ref(embed["record"], f"{path}/record")
    elif etype == EMBED_RECORD_WITH_MEDIA and not with_media_only:
        _require(embed, path, "record", "media")
        record = _check_object(embed["record"], f"{path}/record")
        _require(record, f"{path}/record", "record")
        _check_strong_ref(record["record"], f"{path}/record/record")
        _check_embed(embed["media"], f"{path}/media", refs, with_media_only=True)
    # video and gallery embeds are accepted unchecked: the bot sends neither.


# -- primitive rules, worded as @atproto/lexicon words them --------------------------------


def _require(obj: dict[str, Any], path: str, *keys: str) -> None:
    for key in keys:
        if key not in obj:
            raise _Invalid(f'{path} must have the property "{key}"')


def _check_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{path} must be an object")
    return value


def _check_array(value: Any, path: str, max_items: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"{path} must be an array")
    if max_items is not None and len(value) > max_items:
        raise _Invalid(f"{path} must not have more than {max_items} elements")
    return value


def _check_string(
    value: Any, path: str, max_bytes: int | None = None, max_graphemes: int | None = None
) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{path} must be a string")
    # The lexicon's string maxLength counts UTF-8 bytes.
    if max_bytes is not None and len(value.encode()) > max_bytes:
        raise _Invalid(f"{path} must not be longer than {max_bytes} characters")
    if max_graphemes is not None and count_graphemes(value) > max_graphemes:
        raise _Invalid(f"{path} must not be longer than {max_graphemes} graphemes")
    return value


def _check_integer(value: Any, path: str, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"{path} must be an integer")
    if minimum is not None and value < minimum:
        raise _Invalid(f"{path} can not be less than {minimum}")
    return value


def _check_union(value: Any, path: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("$type"), str):
        raise _Invalid(f'{path} must be an object which includes the "$type" property')
    return str(value["$type"])


def _check_datetime(value: Any, path: str) -> None:
    if not isinstance(value, str) or parse_datetime(value) is None:
        raise _Invalid(f"{path} must be an valid atproto datetime (both RFC-3339 and ISO-8601)")


def _check_uri(value: Any, path: str) -> None:
    _check_string(value, path)
    if not _URI.match(value):
        raise _Invalid(f"{path} must be a uri")


def _check_strong_ref(value: Any, path: str) -> tuple[str, str]:
    ref = _check_object(value, path)
    _require(ref, path, "uri", "cid")
    uri, cid = _check_string(ref["uri"], f"{path}/uri"), _check_string(ref["cid"], f"{path}/cid")
    if not _AT_URI.match(uri):
        raise _Invalid(f"{path}/uri must be a valid at-uri")
    if not _CID.match(cid):
        raise _Invalid(f"{path}/cid must be a cid string")
    return uri, cid


def _check_blob(value: Any, path: str, max_size: int) -> BlobRef:
    blob = value if isinstance(value, dict) else {}
    link = blob.get("ref", {}).get("$link") if isinstance(blob.get("ref"), dict) else None
    mime, size = blob.get("mimeType"), blob.get("size")
    if blob.get("$type") != "blob" or not isinstance(link, str) or not isinstance(mime, str):
        raise _Invalid(f"{path} should be a blob ref")
    if not isinstance(size, int) or isinstance(size, bool):
        raise _Invalid(f"{path} should be a blob ref")
    return BlobRef(path, link, mime, size, max_size, "image/*")
