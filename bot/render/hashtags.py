"""The hashtags a text carries, by each network's own rule. Pure.

A post's structured tags (Bluesky facets and `tags`, Mastodon's `tags`, X's `entities`) are
not the whole story: the atproto SDK's `send_post(text)`, cross-posters and scripts publish
plain text without facets, and servers differ in what they put in `tags`. Monitoring reads the
text too, by the rule the network itself uses to link a tag (docs/monitoring.md):

- Bluesky: the official app's facet rule (`bot.render.facets`, the same one the bot posts by);
- Mastodon: `Tag::HASHTAG_RE` (app/models/concerns/tag/naming.rb): `#` or `＃` at the start or
  after whitespace; letters, marks, digits, connectors and `_ · ・ ZWNJ`, at least one letter;
- X: twitter-text's `validHashtag`: `#` or `＃` not after a letter, digit, `_` or `&`, at
  least one letter, not followed by another `#` or `://`, and not inside a URL.
"""

from __future__ import annotations

import regex
from twitter_text.extract_urls import extract_urls_with_indices

from bot.campaign.model import Platform
from bot.render.facets import tag_positions

_SEPARATORS = "_\u00b7\u30fb\u200c"
_WORD = r"\p{L}\p{M}\p{Nd}\p{Pc}"  # Ruby's [[:word:]]
_ALPHA = r"\p{L}\p{M}"  # Ruby's [[:alpha:]]
_MASTODON = regex.compile(
    rf"(?<=^|\s)[#＃]("
    rf"[{_WORD}_][{_WORD}{_SEPARATORS}]*[{_ALPHA}{_SEPARATORS}][{_WORD}{_SEPARATORS}]*[{_WORD}_]"
    rf"|[{_WORD}_]*[{_ALPHA}][{_WORD}_]*)"
)

_X_ALNUM = (
    r"\p{L}\p{M}\p{Nd}_\u200c\u200d\ua67e\u05be\u05f3\u05f4\uff5e\u301c"
    r"\u309b\u309c\u30a0\u30fb\u3003\u0f0b\u0f0c\u00b7"
)
_X = regex.compile(rf"(?<![{_X_ALNUM}&])[#＃](?!\ufe0f|\u20e3)([{_X_ALNUM}]*[\p{{L}}\p{{M}}][{_X_ALNUM}]*)")
_X_END = regex.compile(r"[#＃]|://")


def _x_tags(text: str) -> list[str]:
    urls: list[list[int]] | None = None
    found = []
    for m in _X.finditer(text):
        if _X_END.match(text, m.end()):
            continue
        if m.start() > 0 and not text[m.start() - 1].isspace():
            # Only a `#` glued to what precedes it can sit inside a URL (`…/#frag`); finding
            # URLs is most of the cost, so it is done only then.
            if urls is None:
                urls = [u["indices"] for u in extract_urls_with_indices(text)]
            if any(start < m.end() and m.start() < end for start, end in urls):
                continue
        found.append(m.group(1))
    return found


def hashtags_in_text(platform: Platform, text: str) -> tuple[str, ...]:
    """The tags `text` carries on `platform`, without `#`, as written, first use first, once each."""
    if "#" not in text and "＃" not in text:
        return ()
    if platform == "bluesky":
        tags = [tag for _, tag in tag_positions(text)]
    elif platform == "mastodon":
        tags = [m.group(1) for m in _MASTODON.finditer(text)]
    else:
        tags = _x_tags(text)
    return tuple(dict.fromkeys(tags))
