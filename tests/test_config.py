from datetime import timedelta
from pathlib import Path

import pytest

from bot.campaign.config import load_config
from bot.errors import InputError, Problem

REPO = Path(__file__).resolve().parent.parent
SECRETS = {
    "X_CONSUMER_KEY": "ck-s3cret-value",
    "X_CONSUMER_SECRET": "cs-s3cret-value",
    "X_ACCESS_TOKEN": "at-s3cret-value",
    "X_ACCESS_TOKEN_SECRET": "ats-s3cret-value",
    "BSKY_HANDLE": "campaign.example.org",
    "BSKY_APP_PASSWORD": "bsky-s3cret-value",
    "MASTODON_ACCESS_TOKEN": "masto-s3cret-value",
    "FB_PAGE_ID": "104830741234567",
    "FB_PAGE_ACCESS_TOKEN": "EAAG-s3cret-value",
    "IG_USER_ID": "17841400000000001",
    "IG_MEDIA_BASE_URL": "https://example.org/campaign-content",
}

MINIMAL = """\
platforms:
  mastodon:
    accounts:
      - {name: main, api_base_url: https://mastodon.example, access_token: "${MASTODON_ACCESS_TOKEN}"}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages show paths relative to the current folder, as `check` run from the repo does.
    monkeypatch.chdir(tmp_path)


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(path: Path, environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(InputError) as caught:
        load_config(path, SECRETS if environ is None else environ)
    return caught.value.problems


def messages(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def test_the_shipped_config_loads_with_its_documented_values() -> None:
    config, warnings = load_config(REPO / "config.yaml", SECRETS)
    assert warnings == []
    assert config.campaign == "NoTechForICE"
    assert config.timezone == "America/New_York"
    assert config.enabled_platforms() == ("x", "bluesky", "mastodon", "facebook", "instagram")
    (ig,) = config.accounts("instagram")
    assert ig.credentials["media_base_url"] == "https://example.org/campaign-content"
    assert config.database_url == f"sqlite:///{REPO}/state/bot.sqlite3"
    assert config.content_dir == REPO / "content/"
    assert config.logging.mentions_log == REPO / "logs" / "mentions.jsonl"
    assert config.alerts_webhook is None  # ${ALERT_WEBHOOK_URL:-} with the variable unset
    (x,) = config.accounts("x")
    assert x.credentials["consumer_key"] == "ck-s3cret-value"
    assert x.limits.min_gap == timedelta(minutes=20)
    assert config.platforms["x"].tier == "free"


def test_defaults_fill_every_optional_key(tmp_path: Path) -> None:
    config, _ = load_config(write(tmp_path / "my-campaign", MINIMAL), SECRETS)
    assert config.campaign == "my-campaign"  # the config folder's name
    assert config.timezone == "UTC"
    assert config.hashtags == ("#NoTechForICE",)
    assert config.schedule_grace == timedelta(hours=1)
    assert config.monitor.hashtags_every == timedelta(minutes=2)
    assert config.monitor.backfill == timedelta(hours=24)
    assert config.database_url == f"sqlite:///{tmp_path}/my-campaign/state/bot.sqlite3"
    assert config.enabled_platforms() == ("mastodon",)


def test_variables_come_from_environment_then_dotenv(tmp_path: Path) -> None:
    text = MINIMAL + "campaign: ${CAMPAIGN}\ntimezone: ${TZ_NAME:-Europe/Berlin}\n"
    path = write(tmp_path, text)
    (tmp_path / ".env").write_text("CAMPAIGN=from-dotenv\nMASTODON_ACCESS_TOKEN=dotenv-token\n")
    config, warnings = load_config(path, {"MASTODON_ACCESS_TOKEN": "env-token"})
    assert warnings == []
    assert config.campaign == "from-dotenv"
    assert config.timezone == "Europe/Berlin"
    assert config.accounts("mastodon")[0].credentials["access_token"] == "env-token"  # environment wins


def test_heroku_postgres_url_is_normalised_for_psycopg(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "database: ${DATABASE_URL}\n")
    config, _ = load_config(path, {**SECRETS, "DATABASE_URL": "postgres://u:pw@db.example:5432/bot"})
    assert config.database_url == "postgresql+psycopg://u:pw@db.example:5432/bot"
    assert "pw" not in repr(config)


def test_missing_account_variable_is_a_warning_naming_it_never_a_value(tmp_path: Path) -> None:
    text = """\
platforms:
  x:
    accounts:
      - name: main
        consumer_key: "${X_CONSUMER_KEY}"
        consumer_secret: "${X_CONSUMER_SECRET}"
        access_token: "${X_ACCESS_TOKEN}"
        access_token_secret: "${X_ACCESS_TOKEN_SECRET}"
"""
    environ = {k: v for k, v in SECRETS.items() if k != "X_ACCESS_TOKEN"}
    config, warnings = load_config(write(tmp_path, text), environ)
    assert messages(warnings) == [
        "config.yaml:4: warning: platforms.x.accounts[0]: environment variable X_ACCESS_TOKEN is not set; "
        "this account's posts are held until then"
    ]
    (account,) = config.accounts("x")
    assert account.missing == ("X_ACCESS_TOKEN",)
    shown = repr(config) + "".join(messages(warnings))
    for secret in SECRETS.values():
        assert secret not in shown


def test_a_disabled_platform_needs_no_accounts_or_secrets(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
  bluesky:
    enabled: false
    accounts:
      - {name: main, handle: "${BSKY_HANDLE}", app_password: "${BSKY_APP_PASSWORD}"}
  x: {enabled: false}
"""
    )
    config, warnings = load_config(write(tmp_path, text), {"MASTODON_ACCESS_TOKEN": "t"})
    assert warnings == []
    assert config.enabled_platforms() == ("mastodon",)


def test_missing_variable_outside_an_account_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "database: ${DATABASE_URL}\n")
    assert messages(errors_of(path)) == [
        "config.yaml:5: database: environment variable DATABASE_URL is not set "
        "(write ${DATABASE_URL:-default} to give a default)"
    ]


def test_plain_http_only_for_loopback_hosts(tmp_path: Path) -> None:
    text = """\
alerts: {webhook: "http://hooks.example.com/T0KEN"}
platforms:
  mastodon:
    accounts:
      - {name: a, api_base_url: "http://127.0.0.1:8080", access_token: t}
      - {name: b, api_base_url: "http://localhost:9", access_token: t}
      - {name: c, api_base_url: "http://[::1]:9", access_token: t}
      - {name: d, api_base_url: "http://mastodon.example", access_token: t}
"""
    problems = messages(errors_of(write(tmp_path, text)))
    rule = "plain http:// is accepted only for loopback hosts (127.0.0.1, ::1, localhost); use https://"
    assert problems == [
        f"config.yaml:1: alerts.webhook: {rule}",
        f"config.yaml:8: platforms.mastodon.accounts[3].api_base_url: {rule}",
    ]
    assert "T0KEN" not in "".join(problems)


def test_unknown_keys_get_did_you_mean_at_their_line(tmp_path: Path) -> None:
    text = """\
timezon: UTC
monitor:
  replies_evry: 5m
platforms:
  mastodn: {enabled: false}
  x: {enabled: false, tire: free}
"""
    assert messages(errors_of(write(tmp_path, text))) == [
        "config.yaml:1: unknown key 'timezon' (did you mean 'timezone'?)",
        "config.yaml:3: monitor: unknown key 'replies_evry' (did you mean 'replies_every'?)",
        "config.yaml:5: platforms: unknown platform 'mastodn' (did you mean 'mastodon'?); "
        "use x, bluesky or mastodon",
        "config.yaml:6: platforms.x: unknown key 'tire' (did you mean 'tier'?)",
    ]


def test_every_error_is_reported_at_once_with_its_field(tmp_path: Path) -> None:
    text = """\
timezone: America/New_Yrok
hashtags: [NoTechForICE]
schedule_grace: soon
logging: {format: xml}
platforms:
  x:
    tier: gold
    accounts:
      - {name: main, consumer_key: a, consumer_secret: b, access_token: c}
  bluesky: {}
"""
    assert messages(errors_of(write(tmp_path, text))) == [
        "config.yaml:1: timezone: unknown timezone 'America/New_Yrok' (did you mean 'America/New_York'?)",
        "config.yaml:2: hashtags[0]: 'NoTechForICE' should be # followed by letters or digits",
        "config.yaml:3: schedule_grace: 'soon' is not a duration: write it like 30s, 5m, 2h or 1d",
        "config.yaml:4: logging.format: Input should be 'text' or 'json'",
        "config.yaml:7: platforms.x.tier: Input should be 'free', 'basic', 'pro' or 'pay-per-use'",
        "config.yaml:9: platforms.x.accounts[0]: missing required key 'access_token_secret'",
    ]


def test_enabled_platform_without_accounts_and_duplicate_names(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
      - {name: main, api_base_url: https://other.example, access_token: t}
  bluesky: {enabled: true}
"""
    )
    assert messages(errors_of(write(tmp_path, text))) == [
        "config.yaml:5: platforms.mastodon: account name 'main' is used twice",
        "config.yaml:6: platforms.bluesky: enabled but lists no accounts",
    ]


def test_yaml_syntax_error_at_the_line_yaml_reports(tmp_path: Path) -> None:
    path = write(tmp_path, "campaign: x\nplatforms:\n  x: {enabled: false\n  bluesky: {}\n")
    (problem,) = errors_of(path)
    assert problem.line == 4
    assert str(problem).startswith("config.yaml:4: YAML syntax error:")


def test_config_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- campaign\n- platforms\n")
    assert messages(errors_of(path)) == [
        "config.yaml:1: config.yaml must be a mapping of settings (key: value lines)"
    ]


def test_missing_platforms_and_missing_file(tmp_path: Path) -> None:
    assert messages(errors_of(write(tmp_path, "campaign: x\n"))) == [
        "config.yaml:1: missing required key 'platforms'"
    ]
    (problem,) = errors_of(tmp_path / "nope.yaml")
    assert problem.message == "file not found"
