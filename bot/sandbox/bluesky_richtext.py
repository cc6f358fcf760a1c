"""Rich text as the official app writes it: mention, link and tag facets found in typed text.

The rules are those of the TS `packages/api/src/rich-text/detection.ts` (bluesky-social/atproto):
`#` only at the start or after whitespace, at least one character that is not a digit or
punctuation, trailing punctuation stripped, tags over 64 graphemes dropped; links lose trailing
`.,;:!?` and an unmatched `)`. Offsets are UTF-8 bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import regex

from bot.sandbox.bluesky_lexicon import FACET_LINK, FACET_MENTION, FACET_TAG, count_graphemes

_MENTION = regex.compile(r"(?:^|\s|\()@([a-zA-Z0-9][a-zA-Z0-9.-]*[a-zA-Z0-9])")
_LINK = regex.compile(r"(?:^|\s|\()(https?://\S+)")
_INVISIBLE = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_TAG = regex.compile(rf"(?:^|\s)([#＃])([^\s{_INVISIBLE}]*[^\d\s\p{{P}}{_INVISIBLE}]+[^\s{_INVISIBLE}]*)?")
_TRAILING_PUNCT = regex.compile(r"\p{P}+$")


def detect_facets(text: str, resolve_handle: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """Mention, link and tag facets with UTF-8 byte offsets, by the rules of the TS rich-text code.

    Used for the audience's posts: people post from the app, which always sends facets.
    Mentions of handles that do not resolve are left out, as the app does.
    """

    def span(start: int, end: int) -> dict[str, int]:
        return {"byteStart": len(text[:start].encode()), "byteEnd": len(text[:end].encode())}

    facets: list[dict[str, Any]] = []
    for match in _MENTION.finditer(text):
        did = resolve_handle(match.group(1).rstrip("."))
        if did is not None:
            end = match.start(1) + len(match.group(1).rstrip("."))
            facets.append(
                {"index": span(match.start(1) - 1, end), "features": [{"$type": FACET_MENTION, "did": did}]}
            )
    for match in _LINK.finditer(text):
        uri = match.group(1).rstrip(".,;:!?")
        if uri.endswith(")") and "(" not in uri:
            uri = uri[:-1]
        start = match.start(1)
        facets.append(
            {"index": span(start, start + len(uri)), "features": [{"$type": FACET_LINK, "uri": uri}]}
        )
    for match in _TAG.finditer(text):
        if match.group(2) is None:
            continue
        tag = _TRAILING_PUNCT.sub("", match.group(2))
        if not tag or count_graphemes(tag) > 64:
            continue
        start = match.start(1)
        facets.append(
            {"index": span(start, start + 1 + len(tag)), "features": [{"$type": FACET_TAG, "tag": tag}]}
        )
    return sorted(facets, key=lambda f: int(f["index"]["byteStart"]))


def text_tags(text: str) -> set[str]:
    """The tags the text carries by the app's facet rule, lower-cased, whether or not faceted."""
    found = set()
    for match in _TAG.finditer(text):
        tag = _TRAILING_PUNCT.sub("", match.group(2) or "")
        if tag and count_graphemes(tag) <= 64:
            found.add(tag.lower())
    return found
