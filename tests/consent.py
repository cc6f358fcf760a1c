"""A person in a browser on the emulators' consent pages: approve or refuse, read the code shown."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests

_HIDDEN = re.compile(r"type='hidden' name='([^']+)' value='([^']*)'")


def _form(url: str) -> tuple[str, dict[str, str]]:
    page = requests.get(url, timeout=5)
    page.raise_for_status()
    fields = dict(_HIDDEN.findall(page.text))
    assert fields, f"no consent form at {url}: {page.text[:300]}"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", fields


def mastodon_code(url: str, account: str = "main", scope: str | None = None) -> str:
    """Press "Authorize" (with `scope`, a tampered form asking for less) and read the code shown."""
    base, fields = _form(url)
    if scope is not None:
        fields["scope"] = scope
    answer = requests.post(f"{base}/oauth/authorize", data={**fields, "account": account}, timeout=5)
    found = re.search(r"class='oauth-code' readonly type='text' value='([^']+)'", answer.text)
    assert found, answer.text
    return found.group(1)


def mastodon_deny(url: str) -> str:
    base, fields = _form(url)
    return requests.post(f"{base}/oauth/authorize", data={**fields, "_method": "delete"}, timeout=5).text


def x_pin(url: str, account: str = "main") -> str:
    """Press "Authorize app" and read the PIN shown."""
    base, fields = _form(url)
    answer = requests.post(
        f"{base}/oauth/authorize", data={**fields, "account": account, "allow": "1"}, timeout=5
    )
    found = re.search(r"<kbd id='oauth_pin'>(\d+)</kbd>", answer.text)
    assert found, answer.text
    return found.group(1)


def x_cancel(url: str) -> str:
    base, fields = _form(url)
    return requests.post(f"{base}/oauth/authorize", data={**fields, "cancel": "1"}, timeout=5).text
