"""Point tweepy at another X API base URL (the sandbox) without touching its OAuth signature.

tweepy.Client has no base-URL option and hard-codes `https://api.twitter.com`. A transport
adapter mounted on the client's documented `session` runs *after* OAuth 1.0a signing (requests
applies `auth` while preparing a request, before an adapter sends it): it rewrites the URL to the
target and keeps the original host in the `Host` header, so the signature still covers
`https://api.twitter.com/...`, as X (and the sandbox emulator) verifies it.

    client = tweepy.Client(consumer_key=..., consumer_secret=..., access_token=..., access_token_secret=...)
    redirect_session(client.session, "http://127.0.0.1:8801")

The v2 media upload (`https://api.x.com/2/media/upload`, which tweepy has no method for) goes
through the same session and is redirected too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from bot.platforms.deadline import DeadlineAdapter

# Every host tweepy or the bot sends X API calls to.
X_HOSTS = ("https://api.twitter.com/", "https://api.x.com/", "https://upload.twitter.com/")


class RedirectAdapter(DeadlineAdapter):
    """Sends each request to `base_url` instead, with the original host kept in `Host` (and the
    same total deadline as every other request: `bot.platforms.deadline`)."""

    def __init__(self, base_url: str, seconds: float = 20.0, **kwargs: Any) -> None:
        target = urlsplit(base_url)
        self.scheme, self.netloc = target.scheme or "http", target.netloc
        super().__init__(seconds, **kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        request.headers["Host"] = url.netloc
        request.url = urlunsplit((self.scheme, self.netloc, url.path, url.query, ""))
        return super().send(request, *args, **kwargs)


def redirect_session(session: requests.Session, base_url: str, seconds: float = 20.0) -> None:
    """Route the session's X API calls (api.twitter.com, api.x.com, upload.twitter.com) to `base_url`."""
    adapter = RedirectAdapter(base_url, seconds)
    for prefix in X_HOSTS:
        session.mount(prefix, adapter)
