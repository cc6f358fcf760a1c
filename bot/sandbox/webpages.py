"""The few HTML pages the emulators serve to a person: the OAuth consent pages and their codes.

A person opens these in a browser while `python -m bot connect` waits; a test reads them as a
browser would (the hidden fields of the form, the code shown).
"""

from __future__ import annotations

from html import escape

from bot.sandbox.server import Response


def page(status: int, title: str, body: str) -> Response:
    """A small HTML page; `body` is already HTML (escape what came from the request)."""
    text = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title></head>\n<body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return Response(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})


def hidden_fields(fields: dict[str, str]) -> str:
    return "".join(
        f"<input type='hidden' name='{escape(name)}' value='{escape(value)}'>\n"
        for name, value in fields.items()
    )


def account_choice(names: list[str], labels: dict[str, str]) -> str:
    """The sandbox's stand-in for being signed in: which of our accounts approves."""
    options = "".join(f"<option value='{escape(n)}'>{escape(labels.get(n, n))}</option>" for n in names)
    return f"<p><label>Signed in as <select name='account'>{options}</select></label></p>\n"


def redirect(location: str) -> Response:
    return Response(302, b"", {"Location": location, "Content-Type": "text/html; charset=utf-8"})
