"""Our X weighted length and grapheme count are the libraries' figures, only faster (bench/check_scale.py)."""

import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from twitter_text import extract_urls_with_indices, parse_tweet
from twitter_text.regexp.emoji import emoji_list

from bot.render.facets import count_graphemes
from bot.render.tweetlength import find_urls, x_length

EMOJIS = sorted({e.emoji for e in emoji_list})
PIECES = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="#*0123456789 \r\n\u20e3\ufe0f", max_size=6),  # keycap emoji and their near misses
    st.sampled_from(EMOJIS),
    st.sampled_from(["https://example.org/p?a=1#x", "example.org", "t.co/abc", "@user", "#NoTechForICE"]),
    st.sampled_from(["漢字", "é", "e\u0301", "’", "—", "\U0001f3fd", "\u200d"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_weighted_length_is_parse_tweets(text: str) -> None:
    expected = parse_tweet(text).weightedLength if text else 0
    assert x_length(text) == expected


URLS = st.sampled_from(
    [
        "HTTP://Example.ORG/a",
        "http://t.co/" + "a" * 41,
        "https://例え.jp/x",
        "ftp://x.org",
        "a.b.example.com:80/p?q",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES | URLS, max_size=12).map("".join))
def test_urls_with_a_protocol_are_those_mastodon_counts(text: str) -> None:
    """One extraction serves X (every URL) and Mastodon (`extract_urls_without_protocol=False`)."""
    found = find_urls(text)
    assert [(s, e, u) for s, e, u, _ in found] == [
        (*u["indices"], u["url"]) for u in extract_urls_with_indices(text)
    ]
    with_protocol = [(s, e, u) for s, e, u, has_protocol in found if has_protocol]
    mastodon = extract_urls_with_indices(text, extract_urls_without_protocol=False)
    assert with_protocol == [(*u["indices"], u["url"]) for u in mastodon]


def test_emoji_next_to_links_and_keycaps() -> None:
    assert x_length("1️⃣ #️⃣ 👩‍👩‍👧‍👦 https://example.org/" + "p" * 100) == 2 + 1 + 2 + 1 + 2 + 1 + 23
    assert x_length("a\r\nb") == 3  # CR LF is one character


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)) | st.lists(PIECES, max_size=8).map("".join))
def test_grapheme_count_is_the_unicode_clusters(text: str) -> None:
    assert count_graphemes(text) == len(regex.findall(r"\X", text))
