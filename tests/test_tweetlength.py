"""Our X weighted length and grapheme count are the libraries' figures, only faster (bench/check_scale.py)."""

import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet
from twitter_text.regexp.emoji import emoji_list

from bot.render.facets import count_graphemes
from bot.render.tweetlength import x_length

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


def test_emoji_next_to_links_and_keycaps() -> None:
    assert x_length("1️⃣ #️⃣ 👩‍👩‍👧‍👦 https://example.org/" + "p" * 100) == 2 + 1 + 2 + 1 + 2 + 1 + 23
    assert x_length("a\r\nb") == 3  # CR LF is one character


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)) | st.lists(PIECES, max_size=8).map("".join))
def test_grapheme_count_is_the_unicode_clusters(text: str) -> None:
    assert count_graphemes(text) == len(regex.findall(r"\X", text))
