"""Other people's words on their way into our files: spreadsheet cells, log fields, JSON lines.

Everything the bot writes that a stranger can fill (a post's text, an author's name, a URL a
server gave) passes through one of these before it reaches an export, a log line or the mentions
log. Pure functions: the lowest layer, beside `bot.errors`.
"""

from __future__ import annotations

import re

# The OWASP rule for CSV injection: a cell starting with one of these is a formula (or, for tab
# and carriage return, may become one after a spreadsheet trims it). A leading `'` makes every
# spreadsheet show the cell as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> str:
    """`value` as a CSV cell that no spreadsheet runs as a formula (None is an empty cell)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


# What ends a line for some reader or turns text around: C0 and C1 controls (NEL, U+0085, among
# them), DEL, the Unicode line and paragraph separators (JavaScript and `str.splitlines` break
# lines there), and the bidi embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Inside JSON text those can only sit in strings, where `\\uXXXX` means the same character.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def log_field(value: object) -> str:
    """`value` for one line of a log: every character that could end the line, forge another or
    reverse the text is shown escaped (`\\n`, `\\u2028`, `\\u202e`), never acted on."""
    text = str(value)
    # Every character escaped is unprintable (Cc, Zl, Zp, Cf): most text skips the regex.
    return text if text.isprintable() else _UNSAFE.sub(_escape, text)


def json_line_safe(line: str) -> str:
    """A JSON text (from `json.dumps(..., ensure_ascii=False)`) that every line-based reader
    reads as one line: U+2028/2029, NEL, other C1 controls and bidi controls as `\\uXXXX`."""
    if line.isprintable():  # as in log_field: nothing to escape (most lines)
        return line
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
