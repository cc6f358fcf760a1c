"""X's weighted length (twitter-text v3), the same figure as `twitter_text.parse_tweet`, faster.

parse_tweet runs twitter-text's emoji pattern (an alternation of some 3,600 emoji sequences)
from every position of the text; at about 1 ms a post that was most of `check`'s time on a
1,000-post queue (bench/check_scale.py). Every emoji starts with one of a known set of code
points, so we try the pattern only where one occurs; the rest of the count is parse_tweet's
own loop: URLs weigh 23, an emoji 2, other characters by the v3 code point ranges, after NFC
and with CR LF counted as one character.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from twitter_text.config import config
from twitter_text.extract_urls import extract_urls_with_indices
from twitter_text.regexp.emoji import emoji as _EMOJI
from twitter_text.regexp.emoji import emoji_list as _EMOJI_LIST

_V3 = config["version3"]
_SCALE: int = _V3["scale"]
_URL_WEIGHT: int = _V3["transformed_url_length"] * _SCALE
_DEFAULT_WEIGHT: int = _V3["default_weight"]
_RANGES: list[tuple[int, int, int]] = [(r["start"], r["end"], r["weight"]) for r in _V3["ranges"]]


def _candidate_pattern(emojis: list[tuple[str, ...]]) -> re.Pattern[str]:
    """Where an emoji may start: any non-ASCII character, or an ASCII one (a keycap's # * 0-9)
    followed by what can follow it in an emoji, so that digits in links are not tried."""
    followers: dict[str, set[str]] = {}
    for chars in emojis:
        if chars[0].isascii():
            followers.setdefault(chars[0], set()).update(chars[1:2] or [""])
    ascii_starts = []
    for start, after in sorted(followers.items()):
        lookahead = "" if "" in after else "(?=[" + "".join(sorted(map(re.escape, after))) + "])"
        ascii_starts.append(re.escape(start) + lookahead)
    return re.compile("|".join([*ascii_starts, r"[\x80-\U0010ffff]"]))


# twitter-text builds its pattern from this same list, so these are exactly the code points an
# emoji can start with. A scan for candidates (`_CANDIDATE`) then a set lookup is much faster than a
# character class of them all: most lie beyond U+FFFF, where re checks ranges one by one.
_EMOJI_CHARS = [tuple(chr(int(c, 16)) for c in e.codepoint.split()) for e in _EMOJI_LIST]
_EMOJI_STARTS = frozenset(chars[0] for chars in _EMOJI_CHARS)
_CANDIDATE = _candidate_pattern(_EMOJI_CHARS)
_LINE_ENDING = re.compile(r"\r\n|\r|\n")


def x_length(text: str) -> int:
    """twitter-text v3 weighted length (0 for the empty text)."""
    if not text:
        return 0
    normalized = _LINE_ENDING.sub("\n", unicodedata.normalize("NFC", text))
    urls = {start: url for start, _, url, _ in find_urls(normalized)}
    emojis = find_emojis(normalized)
    weighted, index = 0, 0
    for start in sorted(urls.keys() | emojis.keys()):
        if start < index:  # inside a URL or emoji already counted, as parse_tweet skips it
            continue
        weighted += plain_weight(normalized[index:start])
        if start in urls:  # parse_tweet looks for a URL first
            weighted += _URL_WEIGHT
            index = start + len(urls[start])
        else:
            weighted += _DEFAULT_WEIGHT
            index = start + len(emojis[start])
    weighted += plain_weight(normalized[index:])
    return weighted // _SCALE


@lru_cache(maxsize=64)
def find_urls(text: str) -> tuple[tuple[int, int, str, bool], ...]:
    """twitter-text's URLs of `text`, with and without a protocol: (start, end, url, has protocol).

    Cached for the few texts measured last: X counts the URLs of a text, Mastodon those of them
    that have a protocol (what `extract_urls_without_protocol=False` finds, from the same
    matches), and twitter-text's pattern is most of a post's measuring time.
    """
    return tuple(
        (*url["indices"], url["url"], url["url"][:8].lower().startswith(_PROTOCOLS))
        for url in extract_urls_with_indices(text)
    )


_PROTOCOLS = ("http://", "https://")


def find_emojis(text: str) -> dict[int, str]:
    """The emojis of `text` by start index, as `_EMOJI.finditer` finds them (leftmost, no overlap)."""
    found: dict[int, str] = {}
    position = 0
    while (candidate := _CANDIDATE.search(text, position)) is not None:
        start = candidate.start()
        match = _EMOJI.match(text, start) if text[start] in _EMOJI_STARTS else None
        if match is None:
            position = start + 1
            continue
        found[match.start()] = match.group(0)
        position = match.end()
    return found


def plain_weight(text: str) -> int:
    """The weight of text with no URL or emoji in it."""
    if text.isascii():
        return _ASCII_WEIGHT * len(text)
    return sum(map(character_weight, text))


def character_weight(char: str) -> int:
    code = ord(char)
    for start, end, weight in _RANGES:
        if start <= code <= end:
            return weight
    return _DEFAULT_WEIGHT


_ASCII_WEIGHT = character_weight("a")  # v3 weighs all of U+0000-U+10FF alike
