"""The shape config.yaml must have, as pydantic models, and their errors mapped back to YAML lines.

Used only by `bot.campaign.config`; the models never leave the loader (the core reads `bot.campaign.model`).
Messages never carry an input value: a value may have come from a secret ${VAR}.
"""

from __future__ import annotations

import ipaddress
import re
import types
import zoneinfo
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot.campaign.durations import parse_duration
from bot.campaign.findings import Findings, describe_path, did_you_mean
from bot.campaign.model import DEFAULT_DATABASE
from bot.campaign.yamlsource import YamlPath


def _to_duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    raise ValueError("write a duration like 30s, 5m, 2h or 1d")


def _valid_url(value: str) -> str:
    # Empty is let through: it is what a missing ${VAR} leaves, reported as that instead.
    if value and (problem := check_url(value)):
        raise ValueError(problem)
    return value


def _valid_timezone(name: str) -> str:
    if problem := check_timezone(name):
        raise ValueError(problem)
    return name


def _valid_hashtag(tag: str) -> str:
    if not re.fullmatch(r"#\w+", tag):
        raise ValueError(f"{tag!r} should be # followed by letters or digits")
    return tag


def valid_database(url: str) -> str:
    # Never echo the URL: a PostgreSQL URL may carry a password.
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("should be a URL like sqlite:///state/bot.sqlite3 or postgresql+psycopg://host/db")
    if scheme not in ("sqlite", "postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError(f"unsupported scheme {scheme!r}; use sqlite:/// or postgresql+psycopg://")
    if rest.split("/", 1)[0].count("@") > 1:
        # Parsed anyway, the part after the first '@' becomes the host name, and a connection
        # error would then print part of the password.
        raise ValueError("the user or password holds an '@': write it as %40 in the URL")
    return url


Duration = Annotated[timedelta, BeforeValidator(_to_duration)]
PositiveInt = Annotated[int, Field(ge=1)]
ServerUrl = Annotated[str, AfterValidator(_valid_url)]
TimeZone = Annotated[str, AfterValidator(_valid_timezone)]
Hashtag = Annotated[str, AfterValidator(_valid_hashtag)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsShape(_Shape):
    posts_per_day: PositiveInt | None = None
    min_gap: Duration | None = None


class _XAccountIn(_Shape):
    name: str
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str
    limits: LimitsShape = LimitsShape()


class _BlueskyAccountIn(_Shape):
    name: str
    service: ServerUrl = "https://bsky.social"
    handle: str
    app_password: str
    limits: LimitsShape = LimitsShape()


class _MastodonAccountIn(_Shape):
    name: str
    api_base_url: ServerUrl
    access_token: str
    limits: LimitsShape = LimitsShape()


def _page_id(value: object) -> object:
    # YAML reads an unquoted page id as a number; the Graph API's ids are strings of digits.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value and not value.isdigit():
        raise ValueError("should be the Page's numeric id (Page settings, About, Page ID)")
    return value


def _graph_version(value: object) -> object:
    # `api_version: 27.0` is a number in YAML, and "27.0" lacks Meta's "v": both mean v27.0.
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{float(value):.1f}"
    if isinstance(value, str) and re.fullmatch(r"v?\d+\.\d+", value.strip()):
        return "v" + value.strip().removeprefix("v")
    raise ValueError("should be a Graph API version such as v27.0")


class _FacebookAccountIn(_Shape):
    name: str
    page_id: Annotated[str, BeforeValidator(_page_id)]
    access_token: str
    app_secret: str | None = None  # sends appsecret_proof when set
    limits: LimitsShape = LimitsShape()


def _ig_user_id(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value and not value.isdigit():
        raise ValueError(
            "should be the Instagram account's numeric id (GET /{page-id}?fields=instagram_business_account)"
        )
    return value


class _InstagramAccountIn(_Shape):
    name: str
    ig_user_id: Annotated[str, BeforeValidator(_ig_user_id)]
    access_token: str
    media_base_url: ServerUrl | None = None  # where content/ images are served; else the platform's
    page_id: Annotated[str | None, BeforeValidator(_page_id)] = None  # host images on this Page
    limits: LimitsShape = LimitsShape()


class _XIn(_Shape):
    enabled: bool = True
    api_base_url: ServerUrl = "https://api.x.com"
    tier: Literal["free", "basic", "pro", "pay-per-use"] = "free"
    accounts: list[_XAccountIn] = []


class _BlueskyIn(_Shape):
    enabled: bool = True
    accounts: list[_BlueskyAccountIn] = []


class _MastodonIn(_Shape):
    enabled: bool = True
    accounts: list[_MastodonAccountIn] = []


class _FacebookIn(_Shape):
    enabled: bool = True
    api_base_url: ServerUrl = "https://graph.facebook.com"
    api_version: Annotated[str, BeforeValidator(_graph_version)] = "v27.0"
    accounts: list[_FacebookAccountIn] = []


class _InstagramIn(_Shape):
    enabled: bool = True
    api_base_url: ServerUrl = "https://graph.facebook.com"
    api_version: Annotated[str, BeforeValidator(_graph_version)] = "v27.0"
    media_base_url: ServerUrl | None = None
    accounts: list[_InstagramAccountIn] = []


class _PlatformsIn(_Shape):
    x: _XIn | None = None
    bluesky: _BlueskyIn | None = None
    mastodon: _MastodonIn | None = None
    facebook: _FacebookIn | None = None
    instagram: _InstagramIn | None = None


class _LoggingIn(_Shape):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"
    mentions_log: str = "logs/mentions.jsonl"


class _AlertsIn(_Shape):
    webhook: ServerUrl | None = None


class _MonitorIn(_Shape):
    hashtags_every: Duration = timedelta(minutes=2)
    replies_every: Duration = timedelta(minutes=5)
    backfill: Duration = timedelta(hours=24)
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30  # a day count timedelta can hold
    ignore: list[str] = []


class AmplifyRuleShape(_Shape):
    allow: list[str]
    max_per_day: Annotated[int, Field(ge=0)] = 10


class _AmplifyIn(_Shape):
    x: AmplifyRuleShape | None = None
    bluesky: AmplifyRuleShape | None = None
    mastodon: AmplifyRuleShape | None = None


class ConfigShape(_Shape):
    campaign: str | None = None
    timezone: TimeZone = "UTC"
    hashtags: Annotated[list[Hashtag], Field(min_length=1)] = ["#NoTechForICE"]
    content: str = "content/"
    database: Annotated[str, AfterValidator(valid_database)] = DEFAULT_DATABASE
    schedule_grace: Duration = timedelta(hours=1)
    logging: _LoggingIn = _LoggingIn()
    alerts: _AlertsIn = _AlertsIn()
    monitor: _MonitorIn = _MonitorIn()
    platforms: _PlatformsIn
    amplify: _AmplifyIn = _AmplifyIn()


# --- pydantic errors, back to lines ---------------------------------------------------------

_FRIENDLY = {
    "dict_type": "should be a mapping (key: value lines)",
    "model_type": "should be a mapping (key: value lines)",
    "model_attributes_type": "should be a mapping (key: value lines)",
    "list_type": "should be a list",
    "string_type": "should be text",
    "bool_type": "should be true or false",
    "bool_parsing": "should be true or false",
    "int_type": "should be a whole number",
    "int_parsing": "should be a whole number",
    "int_from_float": "should be a whole number",
}


def report_validation(exc: ValidationError, findings: Findings, skip: set[YamlPath]) -> None:
    for error in exc.errors(include_url=False, include_input=False):
        loc: YamlPath = tuple(error["loc"])
        kind = error["type"]
        if loc in skip:
            continue
        if kind == "missing":
            parent, name = loc[:-1], loc[-1]
            where = f"{describe_path(parent)}: " if parent else ""
            findings.error(parent, f"{where}missing required key {name!r}")
        elif kind == "extra_forbidden":
            parent, key = loc[:-1], str(loc[-1])
            where = f"{describe_path(parent)}: " if parent else ""
            hint = did_you_mean(key, _fields_at(ConfigShape, parent))
            if parent == ("platforms",):  # worded as the queues word it
                findings.error(loc, f"platforms: unknown platform {key!r}{hint}; use x, bluesky or mastodon")
            else:
                findings.error(loc, f"{where}unknown key {key!r}{hint}")
        else:
            message = _FRIENDLY.get(kind) or str(error["msg"]).removeprefix("Value error, ")
            findings.error(loc, f"{describe_path(loc)}: {message}")


def _fields_at(model: type[BaseModel], loc: YamlPath) -> list[str]:
    """The keys the shape accepts at `loc`, for "did you mean"."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, str) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = annotation.model_fields.get(part)
            if found is None:
                return []
            annotation = found.annotation
        elif isinstance(part, int) and get_args(annotation):
            annotation = get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(options[0]) if options else annotation
    return annotation


# --- checks pydantic cannot make, and building the model ------------------------------------

_LOOPBACK_NAMES = {"localhost"}


def check_url(url: str) -> str | None:
    """Why a server URL is refused, or None. https://, or http:// to a loopback host only."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "should be a URL starting with https://"
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return "plain http:// is accepted only for loopback hosts (127.0.0.1, ::1, localhost); use https://"
    return None


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_timezone(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r}{did_you_mean(name, zoneinfo.available_timezones())}"
    return None
