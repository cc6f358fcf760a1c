"""Loading config.yaml (docs/design.md, config.yaml) into the frozen `bot.campaign.model.Config`.

Steps: parse the YAML (keeping lines), replace `${VAR}` and `${VAR:-default}` from the
environment and then from a `.env` file beside the config (the environment wins), validate the
shape with pydantic, then check what pydantic cannot (URLs, time zones, account names) and build
the model objects. Every error is collected and raised at once as InputError, each at the line
of the field it names. A variable missing for an enabled account is only a warning here (staff
validate content without holding the secrets): the account records the variable's name in
`Account.missing`, and `run` refuses to start it.

Secrets: values that came from variables never appear in a message; messages name the field
and the variable only. Pydantic's error `input` is never used.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from dotenv.parser import parse_stream
from pydantic import ValidationError

from bot.campaign.configshape import (
    AmplifyRuleShape,
    ConfigShape,
    LimitsShape,
    report_validation,
    valid_database,
)
from bot.campaign.envfile import literal_secrets
from bot.campaign.findings import Findings, describe_path, display_path
from bot.campaign.model import (
    DEFAULT_DATABASE,
    Account,
    AccountLimits,
    AmplifyRule,
    Config,
    LoggingConfig,
    MonitorConfig,
    Platform,
    PlatformConfig,
)
from bot.campaign.moments import zone_hint
from bot.campaign.yamlsource import YamlPath, read_yaml
from bot.errors import InputError, Problem

# Which account key holds the account's server, per platform (the rest are credentials).
_BASE_URL_KEY: Mapping[Platform, str | None] = {
    "x": None,
    "bluesky": "service",
    "mastodon": "api_base_url",
    "facebook": None,
    "instagram": None,
}
_NOT_CREDENTIALS = {"name", "limits", "service", "api_base_url"}
# What makes two entries of one platform the same account: the same server (when the network
# has several) and the same value of this key; shown in the message as its words.
_IDENTITY: Mapping[Platform, tuple[str, str]] = {
    "x": ("access_token", "access token"),
    "bluesky": ("handle", "handle"),
    "mastodon": ("access_token", "access token"),
    "facebook": ("page_id", "Page id"),
    "instagram": ("ig_user_id", "Instagram user id"),
}


# --- loading --------------------------------------------------------------------------------


def load_config(path: Path, environ: Mapping[str, str]) -> tuple[Config, list[Problem]]:
    """Load and validate config.yaml; returns it with its warnings, or raises InputError with every error."""
    shown = display_path(path)
    doc = read_yaml(path, shown)
    findings = Findings(doc)
    if not isinstance(doc.data, dict):
        findings.error((), "config.yaml must be a mapping of settings (key: value lines)")
        raise InputError(findings.problems)

    for where, message in literal_secrets(doc.data):
        findings.warning(where, message)
    variables = _Variables(environ, _read_dotenv(path.parent / ".env"))
    findings.problems.extend(dotenv_problems(path.parent / ".env"))
    data = _substitute(doc.data, (), variables, findings)
    assert isinstance(data, dict)

    _report_missing(findings, variables, data)

    try:
        shape = ConfigShape.model_validate(data)
    except ValidationError as exc:
        # A value left empty by a missing variable is reported as that, not as a bad value.
        report_validation(exc, findings, skip=set(variables.missing))
        raise InputError(_in_line_order([p for p in findings.problems if p.severity == "error"])) from None

    config = _Builder(path.absolute(), shape, findings, variables.missing).build()
    if environ.get("DYNO") and config.database_url.startswith("sqlite"):
        findings.warning(
            ("database",),
            "database: a SQLite file on Heroku (DYNO is set) is lost at every dyno restart, and with it "
            "what was sent: posts would go out again; add Heroku Postgres (it sets DATABASE_URL)",
        )
    if findings.has_errors:
        raise InputError(_in_line_order([p for p in findings.problems if p.severity == "error"]))
    return config, _in_line_order([p for p in findings.problems if p.severity == "warning"])


def rescue_database_url(path: Path, environ: Mapping[str, str]) -> tuple[str, str]:
    """Where the ledger is when config.yaml does not load, for `pause`: its `database` line if
    that one is valid, else DATABASE_URL (as hosts set it), else the default; with which it was."""
    shown = display_path(path)
    folder = path.absolute().parent
    variables = _Variables(environ, _read_dotenv(folder / ".env"))
    try:
        doc = read_yaml(path, shown)
    except InputError:
        doc = None
    if doc is not None and isinstance(doc.data, dict):
        findings = Findings(doc)
        url = _substitute(doc.data.get("database", DEFAULT_DATABASE), ("database",), variables, findings)
        line = f"{shown}'s `database`" if "database" in doc.data else "the default"
        if isinstance(url, str) and url and not findings.has_errors and not variables.missing:
            with contextlib.suppress(ValueError):
                return absolute_database_url(valid_database(url), folder), line
    if url := environ.get("DATABASE_URL", ""):
        with contextlib.suppress(ValueError):
            return absolute_database_url(valid_database(url), folder), "DATABASE_URL"
    return absolute_database_url(DEFAULT_DATABASE, folder), "the default"


def absolute_database_url(url: str, folder: Path) -> str:
    """psycopg 3 for every PostgreSQL spelling; a relative SQLite path from the config's folder."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg"):
        # Heroku sets postgres://; SQLAlchemy wants the driver named, and psycopg 3 is ours.
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        file = rest.removeprefix("/")
        if file in ("", ":memory:") or rest.startswith("//"):
            return url  # in memory, or already absolute (sqlite:////abs/path)
        return f"sqlite:///{(folder / file).as_posix()}"
    return url


def _in_line_order(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: p.line)


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


# python-dotenv logs a line it cannot read without naming the file; `dotenv_problems` says it
# as FILE:LINE instead.
logging.getLogger("dotenv.main").setLevel(logging.ERROR)


def dotenv_problems(path: Path) -> list[Problem]:
    """A warning per `.env` line that sets nothing: not NAME=value, or a NAME with no `=`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    shown, problems = display_path(path), []
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            problems.append(Problem(shown, line, "cannot read this line: write NAME=value", "warning"))
        elif binding.key is not None and binding.value is None:
            message = f"{binding.key} has no value: write {binding.key}=..."
            problems.append(Problem(shown, line, message, "warning"))
    return problems


# --- ${VAR} substitution --------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_REFERENCE_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass
class _Variables:
    environ: Mapping[str, str]
    dotenv: Mapping[str, str]
    missing: dict[YamlPath, list[str]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def lookup(self, name: str) -> str | None:
        # Shell semantics: an empty value counts as unset (so `${VAR:-default}` uses the default).
        self.used.add(name)
        value = self.environ.get(name) or self.dotenv.get(name)
        return value or None

    def named(self, name: str) -> str:
        """`NAME`, with a hint when .env sets a close name nothing uses (`MASTODON_ACCES_TOKEN`)."""
        unused = [key for key in self.dotenv if key not in self.used]
        close = difflib.get_close_matches(name, unused, n=1, cutoff=0.8)
        return f"{name} (.env sets {close[0]}: did you mean {name} there?)" if close else name


def _substitute(value: object, path: YamlPath, variables: _Variables, findings: Findings) -> object:
    if isinstance(value, dict):
        return {k: _substitute(v, (*path, k), variables, findings) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*path, i), variables, findings) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        body = _REFERENCE_BODY.fullmatch(match.group(1))
        if body is None:
            findings.error(
                path, f"{describe_path(path)}: {match.group(0)!r} is not ${{VAR}} or ${{VAR:-default}}"
            )
            return ""
        name, default = body.group(1), body.group(2)
        found = variables.lookup(name)
        if found is not None:
            return found
        if default is not None:
            return default
        variables.missing.setdefault(path, []).append(name)
        return ""

    if "${" in _REFERENCE.sub("", value):
        findings.error(path, f"{describe_path(path)}: a ${{ is not closed (write ${{VAR}})")
    return _REFERENCE.sub(replace, value)


def _report_missing(findings: Findings, variables: _Variables, data: Mapping[str, Any]) -> None:
    """Missing variables: a warning per account of an enabled platform, an error anywhere else."""
    per_account: dict[YamlPath, list[str]] = {}
    for path, names in variables.missing.items():
        if len(path) > 1 and path[0] == "platforms" and not _is_enabled(data, str(path[1])):
            continue  # a disabled platform needs no secrets
        if len(path) >= 4 and path[0] == "platforms" and path[2] == "accounts":
            per_account.setdefault(path[:4], []).extend(names)
            continue
        for name in names:
            findings.error(
                path,
                f"{describe_path(path)}: environment variable {variables.named(name)} is not set "
                f"(write ${{{name}:-default}} to give a default)",
            )
    for account_path, names in per_account.items():
        unique = list(dict.fromkeys(names))
        noun, verb = ("variable", "is") if len(unique) == 1 else ("variables", "are")
        listed = ", ".join(variables.named(name) for name in unique)
        findings.warning(
            account_path,
            f"{describe_path(account_path)}: environment {noun} {listed} {verb} not set; "
            "this account's posts are held until then",
        )


def _is_enabled(data: Mapping[str, Any], platform: str) -> bool:
    platforms = data.get("platforms")
    section = platforms.get(platform) if isinstance(platforms, dict) else None
    if not isinstance(section, dict):
        return False
    return str(section.get("enabled", True)).lower() not in ("false", "no", "off", "0")


class _Builder:
    def __init__(
        self, path: Path, shape: ConfigShape, findings: Findings, missing: Mapping[YamlPath, list[str]]
    ) -> None:
        self.path = path
        self.folder = path.parent
        self.shape = shape
        self.findings = findings
        self.missing = missing

    def build(self) -> Config:
        shape, findings = self.shape, self.findings
        platforms = self._platforms()
        enabled_used = {p for p, pc in platforms.items() if pc.enabled}
        if not enabled_used:
            findings.warning(("platforms",), "platforms: no platform is enabled, so nothing will be posted")
        if hint := zone_hint(shape.timezone):
            findings.warning(("timezone",), hint)
        webhook = shape.alerts.webhook or None
        mentions_log = shape.logging.mentions_log
        return Config(
            path=self.path,
            campaign=shape.campaign or self.folder.name,
            platforms=platforms,
            timezone=shape.timezone,
            hashtags=tuple(shape.hashtags),
            content_dir=self.folder / shape.content,
            database_url=absolute_database_url(shape.database, self.folder),
            schedule_grace=shape.schedule_grace,
            logging=LoggingConfig(
                level=shape.logging.level,
                format=shape.logging.format,
                mentions_log=None if mentions_log == "-" else self.folder / mentions_log,
            ),
            alerts_webhook=webhook,
            monitor=MonitorConfig(
                hashtags_every=shape.monitor.hashtags_every,
                replies_every=shape.monitor.replies_every,
                backfill=shape.monitor.backfill,
                retention_days=shape.monitor.retention_days,
                ignore=tuple(shape.monitor.ignore),
            ),
            amplify=self._amplify(enabled_used),
        )

    def _platforms(self) -> dict[Platform, PlatformConfig]:
        given = self.shape.platforms
        result: dict[Platform, PlatformConfig] = {}
        if given.x is not None:
            x = given.x
            self._require_url(("platforms", "x", "api_base_url"), x.api_base_url, x.enabled)
            result["x"] = self._platform("x", x.enabled, x.accounts, x.api_base_url, x.tier)
        if given.bluesky is not None:
            result["bluesky"] = self._platform(
                "bluesky", given.bluesky.enabled, given.bluesky.accounts, "", None
            )
        if given.mastodon is not None:
            result["mastodon"] = self._platform(
                "mastodon", given.mastodon.enabled, given.mastodon.accounts, "", None
            )
        if given.facebook is not None:
            fb = given.facebook
            self._require_url(("platforms", "facebook", "api_base_url"), fb.api_base_url, fb.enabled)
            # The adapter reads the version back from the end of the URL.
            graph = f"{fb.api_base_url.rstrip('/')}/{fb.api_version}" if fb.api_base_url else ""
            result["facebook"] = self._platform("facebook", fb.enabled, fb.accounts, graph, None)
        if given.instagram is not None:
            result["instagram"] = self._instagram(given.instagram)
        return result

    def _instagram(self, ig: Any) -> PlatformConfig:
        """Like Facebook's, plus where Instagram fetches images: each account's `media_base_url`
        (or the platform's), else its Facebook Page as the host (`page_id`)."""
        where: YamlPath = ("platforms", "instagram")
        self._require_url((*where, "api_base_url"), ig.api_base_url, ig.enabled)
        graph = f"{ig.api_base_url.rstrip('/')}/{ig.api_version}" if ig.api_base_url else ""
        accounts = [
            a if a.media_base_url else a.model_copy(update={"media_base_url": ig.media_base_url})
            for a in ig.accounts
        ]
        for i, account in enumerate(accounts):
            unset = self.missing.get((*where, "accounts", i, "media_base_url"))
            if ig.enabled and not account.media_base_url and not account.page_id and not unset:
                self.findings.error(
                    (*where, "accounts", i),
                    f"platforms.instagram: account {account.name!r} has no public place for its images: "
                    "Instagram fetches each image from a URL; set media_base_url (where content/ is "
                    "served) or page_id (the account's Facebook Page hosts them)",
                )
        return self._platform("instagram", ig.enabled, accounts, graph, None)

    def _platform(
        self,
        platform: Platform,
        enabled: bool,
        accounts_in: list[Any],
        base_url: str,
        tier: Literal["free", "basic", "pro", "pay-per-use"] | None,
    ) -> PlatformConfig:
        where: YamlPath = ("platforms", platform)
        if not enabled:
            return PlatformConfig(platform=platform, enabled=False, tier=tier)
        if not accounts_in:
            self.findings.error(where, f"platforms.{platform}: enabled but lists no accounts")
        accounts: list[Account] = []
        seen: set[str] = set()
        for i, account_in in enumerate(accounts_in):
            account_path: YamlPath = (*where, "accounts", i)
            if account_in.name in seen:
                self.findings.error(
                    (*account_path, "name"),
                    f"platforms.{platform}: account name {account_in.name!r} is used twice",
                )
            seen.add(account_in.name)
            accounts.append(self._account(platform, account_in, account_path, base_url))
        self._same_accounts(platform, accounts)
        return PlatformConfig(platform=platform, enabled=True, accounts=tuple(accounts), tier=tier)

    def _same_accounts(self, platform: Platform, accounts: list[Account]) -> None:
        """An error for an entry that is an earlier one under another name: each post would go out twice."""
        key, words = _IDENTITY[platform]
        first: dict[tuple[str, str], Account] = {}
        for i, account in enumerate(accounts):
            value = account.credentials.get(key, "").strip()
            if key == "handle":  # handles are not case-sensitive; tokens are
                value = value.lstrip("@").lower()
            if not value:
                continue  # unset: nothing to compare yet
            earlier = first.setdefault((account.base_url.rstrip("/").lower(), value), account)
            if earlier is not account:
                self.findings.error(
                    ("platforms", platform, "accounts", i),
                    f"{platform}/{account.name} is the same account as {platform}/{earlier.name}: "
                    f"the same {words}; every post would go out twice, so remove one",
                )

    def _account(self, platform: Platform, account_in: Any, path: YamlPath, platform_url: str) -> Account:
        values: dict[str, Any] = dict(account_in)
        missing = [name for key in values for name in self.missing.get((*path, key), [])]
        url_key = _BASE_URL_KEY[platform]
        base_url = values[url_key] if url_key else platform_url
        if url_key:
            self._require_url((*path, url_key), base_url, True)
        limits: LimitsShape = account_in.limits
        return Account(
            platform=platform,
            name=account_in.name,
            base_url=base_url,
            credentials={k: v for k, v in values.items() if k not in _NOT_CREDENTIALS and v is not None},
            limits=AccountLimits(posts_per_day=limits.posts_per_day, min_gap=limits.min_gap),
            missing=tuple(dict.fromkeys(missing)),
            line=self.findings.doc.line(path),
        )

    def _require_url(self, path: YamlPath, url: str, enabled: bool) -> None:
        # An empty URL passed validation; it is an error unless a missing ${VAR} explains it.
        if enabled and not url and not self.missing.get(path):
            self.findings.error(path, f"{describe_path(path)}: should be a URL starting with https://")

    def _amplify(self, enabled: set[Platform]) -> dict[Platform, AmplifyRule]:
        rules: dict[Platform, AmplifyRule] = {}
        for platform in ("x", "bluesky", "mastodon"):
            rule: AmplifyRuleShape | None = getattr(self.shape.amplify, platform)
            if rule is None:
                continue
            if platform not in enabled:
                self.findings.warning(
                    ("amplify", platform),
                    f"amplify.{platform}: {platform} is not enabled, so nothing is amplified",
                )
            rules[platform] = AmplifyRule(allow=tuple(rule.allow), max_per_day=rule.max_per_day)
        return rules
