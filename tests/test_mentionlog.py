"""The mentions log line keeps someone else's text on one line and unable to forge or garble it."""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from bot.monitoring.mentionlog import one_line

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from([*BIDI, "\x85", "\x7f", "\r"])))
def test_no_control_or_bidi_character_survives(text: str) -> None:
    shown = one_line(text, limit=10_000)
    assert not any(unicodedata.category(ch) == "Cc" or ch in BIDI for ch in shown)
    # everything else is kept, whitespace runs aside
    visible = [ch for ch in text if unicodedata.category(ch) != "Cc" and ch not in BIDI and not ch.isspace()]
    assert [ch for ch in shown if not ch.isspace()] == [
        c for ch in visible for c in ({"\\": "\\\\", '"': '\\"'}.get(ch, ch))
    ]
