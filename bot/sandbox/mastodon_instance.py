"""What a Mastodon 4.6.4 instance says about itself, and its error bodies.

The documents copy the recorded `/api/v1/instance/` and `/api/v2/instance/` answers
(tests/data/mastodon/test_instance*.yaml) with the emulator's own address in place of
`localhost:3000`, and the streaming URL pointing at the emulator itself: the real server names
another port (`ws://localhost:4000`), which Mastodon.py rewrites to http:// and connects to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bot.sandbox.mastodon_entities import (
    CHARACTERS_RESERVED_PER_URL,
    DESCRIPTION_LIMIT,
    MAX_MEDIA_ATTACHMENTS,
    VERSION,
)

SUPPORTED_MIME_TYPES = [
    "image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp", "image/avif",
    "video/webm", "video/mp4", "video/quicktime", "video/ogg", "audio/wave", "audio/wav", "audio/x-wav",
    "audio/x-pn-wave", "audio/vnd.wave", "audio/ogg", "audio/vorbis", "audio/mpeg", "audio/mp3",
    "audio/webm", "audio/flac", "audio/aac", "audio/m4a", "audio/x-m4a", "audio/mp4", "audio/3gpp",
    "video/x-ms-asf",
]  # fmt: skip

VAPID_KEY = "BAhxXyHfAoMqrZECjRI56F5QrE4ynVlkZFMdKSpTIsWRNoWUVgut-Bnz2xsMSwiN4AF0b4I7ixF24OwiicOJivw="
POLLS = {"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2629746}

# `/api/v1/instance/` answers with this header on the real server; Mastodon.py turns it into
# a MastodonDeprecationWarning on an explicit `instance_v1()` (its own version probe silences it).
V1_DEPRECATION = "@1668384000"

# Mastodon's API error bodies (Api::BaseController's rescues and config/locales/en.yml).
ERRORS = {
    400: "The request you submitted was invalid or malformed.",
    401: "The access token is invalid",
    403: "This action is not allowed",
    404: "Not Found",
    410: "The page you were looking for doesn't exist here anymore.",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal Server Error",
    503: "There was a temporary problem serving your request, please try again",
}

# nginx in front of Mastodon answers 502 and 504 itself, with an HTML page (Mastodon.py then
# has no error text and raises MastodonBadGatewayError / MastodonGatewayTimeoutError).
NGINX_PAGES = {
    502: "502 Bad Gateway",
    504: "504 Gateway Time-out",
}


def nginx_page(status: int) -> bytes:
    title = NGINX_PAGES.get(status, f"{status} Error")
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def _host(base_url: str) -> str:
    return urlsplit(base_url).netloc


def _streaming(base_url: str) -> str:
    return "ws://" + _host(base_url)


def _statuses(max_characters: int) -> dict[str, int]:
    return {
        "max_characters": max_characters,
        "max_media_attachments": MAX_MEDIA_ATTACHMENTS,
        "characters_reserved_per_url": CHARACTERS_RESERVED_PER_URL,
    }


def instance_v1(
    base_url: str, max_characters: int, users: int, statuses: int, streaming: bool = True
) -> dict[str, Any]:
    return {
        "uri": _host(base_url),
        "title": "Mastodon",
        "short_description": "",
        "description": "",
        "email": "",
        "version": VERSION,
        "urls": {"streaming_api": _streaming(base_url)} if streaming else {},
        "stats": {"user_count": users, "status_count": statuses, "domain_count": 1},
        "thumbnail": f"{base_url}/packs/images/preview.png",
        "languages": ["en"],
        "registrations": True,
        "approval_required": False,
        "invites_enabled": True,
        "configuration": {
            "accounts": {"max_featured_tags": 10},
            "statuses": _statuses(max_characters),
            "media_attachments": {
                "supported_mime_types": SUPPORTED_MIME_TYPES,
                "image_size_limit": 16777216,
                "image_matrix_limit": 33177600,
                "video_size_limit": 103809024,
                "video_frame_rate_limit": 120,
                "video_matrix_limit": 8294400,
            },
            "polls": POLLS,
        },
        "contact_account": None,
        "rules": [],
    }


def instance_v2(base_url: str, max_characters: int, streaming: bool = True) -> dict[str, Any]:
    public = {"local": "public", "remote": "public"}
    document: dict[str, Any] = {
        "domain": _host(base_url),
        "title": "Mastodon",
        "version": VERSION,
        "source_url": "https://github.com/mastodon/mastodon",
        "description": "",
        "usage": {"users": {"active_month": 0}},
        "thumbnail": {"url": f"{base_url}/packs/images/preview.png", "description": "Mastodon"},
        "icon": [
            {"src": f"{base_url}/packs/icons/android-chrome-{n}x{n}.png", "size": f"{n}x{n}"}
            for n in (36, 48, 72, 96, 144, 192, 256, 384, 512)
        ],
        "languages": ["en"],
        "configuration": {
            "urls": {
                "streaming": _streaming(base_url),
                "status": None,
                "about": f"{base_url}/about",
                "privacy_policy": f"{base_url}/privacy-policy",
                "terms_of_service": None,
            },
            "vapid": {"public_key": VAPID_KEY},
            "accounts": {
                "max_display_name_length": 40,
                "max_note_length": 500,
                "max_avatar_description_length": 150,
                "max_header_description_length": 150,
                "max_featured_tags": 10,
                "max_pinned_statuses": 5,
                "max_profile_fields": 4,
                "profile_field_name_limit": 255,
                "profile_field_value_limit": 255,
            },
            "statuses": _statuses(max_characters),
            "media_attachments": {
                "description_limit": DESCRIPTION_LIMIT,
                "image_matrix_limit": 33177600,
                "image_size_limit": 16777216,
                "supported_mime_types": SUPPORTED_MIME_TYPES,
                "video_frame_rate_limit": 120,
                "video_matrix_limit": 8294400,
                "video_size_limit": 103809024,
            },
            "polls": POLLS,
            "translation": {"enabled": False},
            "timelines_access": {
                "live_feeds": public,
                "hashtag_feeds": public,
                "trending_link_feeds": public,
            },
            "limited_federation": False,
        },
        "registrations": {
            "enabled": True,
            "approval_required": False,
            "reason_required": False,
            "message": None,
            "min_age": None,
            "url": None,
        },
        "api_versions": {"mastodon": 11},
        "wrapstodon": None,
        "contact": {"email": "", "account": None},
        "rules": [],
    }
    if not streaming:
        del document["configuration"]["urls"]["streaming"]
    return document
