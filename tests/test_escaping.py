"""Log fields and JSON lines: exactly the characters that can break or turn a line are escaped,
whichever way the text goes (most text is printable and skips the escaping altogether)."""

from __future__ import annotations

import json
import sys
import unicodedata

from bot.escaping import json_line_safe, log_field

BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}
CHARACTERS = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


def breaks_a_line(char: str) -> bool:
    """C0 and C1 controls, DEL, the line and paragraph separators, bidi embeddings and isolates."""
    return unicodedata.category(char) == "Cc" or ord(char) in {0x2028, 0x2029, *BIDI}


def test_every_character_that_can_break_a_line_is_escaped_in_printable_text() -> None:
    breaking = [c for c in CHARACTERS if breaks_a_line(c)]
    assert len(breaking) == 65 + 2 + 9
    for char in breaking:
        text = f"hashtag mastodon @alice {char}forged"
        assert char not in log_field(text), hex(ord(char))
        line = json_line_safe(json.dumps({"text": text}, ensure_ascii=False))
        assert char not in line and json.loads(line) == {"text": text}, hex(ord(char))


def test_every_other_character_is_kept() -> None:
    kept = "".join(c for c in CHARACTERS if not breaks_a_line(c))
    assert log_field(kept) == kept
    assert json_line_safe(json.dumps(kept[0x20:], ensure_ascii=False)) == json.dumps(
        kept[0x20:], ensure_ascii=False
    )
    for text in ("Post 1: drop your ICE contracts #NoTechForICE", "Café 🌍 ＃タグ"):  # printable text
        assert log_field(text) == text
        assert json_line_safe(json.dumps(text, ensure_ascii=False)) == json.dumps(text, ensure_ascii=False)
