"""Other people's words on their way into our files: spreadsheet cells, log fields, JSON lines.

Everything the bot writes that a stranger can fill (a post's text, an author's name, a URL a
server gave) passes through one of these before it reaches an export, a log line or the mentions
log. Pure functions: the lowest layer, beside `bot.errors`.
"""

from __future__ import annotations

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
