"""Point tweepy at another host (the sandbox emulator) without touching its OAuth signature.

tweepy's v2 `Client` hardcodes `https://api.twitter.com` and has no base-URL option. A transport
adapter mounted on `client.session` rewrites each request's URL after requests_oauthlib has
signed it, so the signature still covers X's own host, as the emulator expects (reference
x/NOTES.md §1). The original host travels in the `Host` header.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import requests
from requests.adapters import HTTPAdapter

X_HOSTS = ("https://api.twitter.com/", "https://api.x.com/", "https://upload.twitter.com/")


class RedirectAdapter(HTTPAdapter):
    def __init__(self, base_url: str, **kwargs: Any) -> None:
        split = urllib.parse.urlsplit(base_url)
        self.scheme = split.scheme or "http"
        self.netloc = split.netloc
        self.prefix = split.path.rstrip("/")
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urllib.parse.urlsplit(request.url or "")
        request.headers["Host"] = url.netloc
        request.url = urllib.parse.urlunsplit(
            (self.scheme, self.netloc, self.prefix + url.path, url.query, "")
        )
        return super().send(request, *args, **kwargs)


def redirect_session(session: requests.Session, base_url: str) -> None:
    """Send every request for X's hosts on `session` to `base_url` (e.g. http://127.0.0.1:8801)."""
    adapter = RedirectAdapter(base_url)
    for host in X_HOSTS:
        session.mount(host, adapter)
