"""OAuth 1.0a HMAC-SHA1 verification, as X checks every user-context request (RFC 5849 §3.4).

The X emulator sits behind a transport that rewrites tweepy's `https://api.twitter.com/...`
URLs to 127.0.0.1 but keeps the original `Host` header (`bot.platforms.x_transport`), so the
base string URI is rebuilt from `https://{Host}{path}`: the URL the client actually signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

_PARAM = re.compile(r'([A-Za-z0-9_]+)="([^"]*)"')


@dataclass(frozen=True)
class OAuthHeader:
    """The `oauth_*` parameters of an `Authorization: OAuth ...` header, decoded."""

    params: dict[str, str]

    @property
    def consumer_key(self) -> str:
        return self.params.get("oauth_consumer_key", "")

    @property
    def token(self) -> str:
        return self.params.get("oauth_token", "")

    @property
    def signature(self) -> str:
        return self.params.get("oauth_signature", "")


def parse_oauth_header(value: str | None) -> OAuthHeader | None:
    """The OAuth parameters of an Authorization header, or None for any other scheme (`Bearer None`)."""
    if not value or not value.startswith("OAuth "):
        return None
    params = {name: unquote(raw) for name, raw in _PARAM.findall(value[len("OAuth ") :])}
    params.pop("realm", None)  # RFC 5849 §3.4.1.3.1: realm is not signed
    return OAuthHeader(params)


def _encode(text: str) -> str:
    # RFC 5849 §3.6: every byte but the unreserved ALPHA / DIGIT / "-" / "." / "_" / "~".
    return quote(text, safe="~")


def signature_base_string(
    method: str, host: str, path: str, query: list[tuple[str, str]], oauth: OAuthHeader, form: bytes = b""
) -> str:
    """The string X signs: method, `https://{host}{path}`, then the sorted, encoded parameters.

    `form` is the body when it is application/x-www-form-urlencoded (the only body that is
    signed; JSON and multipart bodies are not).
    """
    params = [(k, v) for k, v in oauth.params.items() if k != "oauth_signature"]
    params += query
    if form:
        params += parse_qsl(form.decode("utf-8"), keep_blank_values=True)
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in params))
    host = host.lower().removesuffix(":443")
    return "&".join((method.upper(), _encode(f"https://{host}{path}"), _encode(normalized)))


def sign_hmac_sha1(base_string: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{_encode(consumer_secret)}&{_encode(token_secret)}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_signature(base_string: str, signature: str, consumer_secret: str, token_secret: str) -> bool:
    expected = sign_hmac_sha1(base_string, consumer_secret, token_secret)
    return hmac.compare_digest(expected.encode(), signature.encode())
