"""`python -m bot connect PLATFORM`, end to end against the sandbox through the real command line.

A test plays the person: it types what the prompts ask on stdin and approves (or refuses) on
the emulators' consent pages as a browser would. After each connection `check --online`, with
nothing but `.env` to go on, must pass for the account.
"""

from __future__ import annotations

import json
import stat
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from dotenv import dotenv_values

from bot.sandbox import Sandbox
from bot.sandbox.bluesky import sandbox_password
from tests.consent import mastodon_code, mastodon_deny, x_cancel, x_pin
from tests.conversation import Conversation, run

URL = r"(http://127\.0\.0\.1:\d+/oauth/authorize\?\S+)"


@pytest.fixture
def campaign(sandbox: Sandbox, tmp_path: Path) -> Path:
    """A campaign folder whose accounts point at the sandbox and whose secrets are all unset."""
    urls = {name: server.base_url for name, server in sandbox.servers.items()}
    (tmp_path / "content").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            campaign: Test
            platforms:
              x:
                api_base_url: {urls["x"]}
                accounts:
                  - name: main
                    consumer_key: "${{X_CONSUMER_KEY}}"
                    consumer_secret: "${{X_CONSUMER_SECRET}}"
                    access_token: "${{X_ACCESS_TOKEN}}"
                    access_token_secret: "${{X_ACCESS_TOKEN_SECRET}}"
              bluesky:
                accounts:
                  - name: main
                    service: {urls["bluesky"]}
                    handle: "${{BSKY_HANDLE}}"
                    app_password: "${{BSKY_APP_PASSWORD}}"
              mastodon:
                accounts:
                  - name: main
                    api_base_url: "${{MASTODON_URL}}"
                    access_token: "${{MASTODON_ACCESS_TOKEN}}"
            """
        )
    )
    (tmp_path / ".env").write_text("# kept as written\nDATABASE_URL='sqlite:///elsewhere.db'\n")
    (tmp_path / ".env").chmod(0o600)
    return config


@pytest.fixture
def x_keys(sandbox: Sandbox) -> dict[str, str]:
    keys: dict[str, str] = sandbox.describe()["x"]["accounts"][0]
    return keys


@pytest.fixture
def read_only_x(sandbox: Sandbox) -> Iterator[None]:
    base = sandbox.servers["x"].base_url
    requests.post(f"{base}/_sandbox/settings", json={"app_permissions": {"main": "read"}}, timeout=5)
    yield
    requests.post(f"{base}/_sandbox/settings", json={"app_permissions": {"main": "read-write"}}, timeout=5)


def env_of(campaign: Path) -> dict[str, str | None]:
    return dotenv_values(campaign.parent / ".env")


def assert_private(campaign: Path, *texts: str, outputs: tuple[str, ...]) -> None:
    """.env is owner-only, kept its other lines, and no secret reached the terminal."""
    env_file = campaign.parent / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text().startswith("# kept as written\nDATABASE_URL='sqlite:///elsewhere.db'\n")
    for text in texts:
        assert text and all(text not in output for output in outputs)


def check_online(campaign: Path, platform: str) -> str:
    result = run(campaign, "check", "--online")
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(f"{platform} main:")), "")
    assert line, result.stdout + result.stderr
    return line


# --- X ----------------------------------------------------------------------------------


def test_x_connects_with_the_pin_flow(campaign: Path, x_keys: dict[str, str]) -> None:
    talk = Conversation(campaign, "connect", "x")
    talk.wait_for(r"API Key \(also called consumer key\)")
    assert "/console" in talk.out
    talk.type(x_keys["consumer_key"], x_keys["consumer_secret"])
    url = talk.wait_for(URL).group(1)
    talk.wait_for(r"PIN \(or press Enter to stop\): ")
    talk.type(x_pin(url))
    assert talk.end() == 0, talk.out + talk.err
    assert 'Connected: the X account "main" is @ntfi_main and can post.' in talk.out
    env = env_of(campaign)
    assert env["X_CONSUMER_KEY"] == x_keys["consumer_key"]
    assert str(env["X_ACCESS_TOKEN"]).split("-")[0].isdigit()
    assert env["X_ACCESS_TOKEN"] != x_keys["access_token"]  # a new token, granted by the PIN flow
    secrets = (
        x_keys["consumer_key"],
        x_keys["consumer_secret"],
        str(env["X_ACCESS_TOKEN"]),
        str(env["X_ACCESS_TOKEN_SECRET"]),
    )
    assert_private(campaign, *secrets, outputs=(talk.out, talk.err))
    assert not (campaign.parent / ".connect-progress.json").exists()
    assert check_online(campaign, "x") == "x main: ok @ntfi_main"


def test_x_wrong_keys_and_wrong_pin_are_asked_again(campaign: Path, x_keys: dict[str, str]) -> None:
    talk = Conversation(campaign, "connect", "x")
    talk.type("not-the-key", "not-the-secret")
    talk.wait_for(r"did not accept the API Key and API Key Secret.*Try again")
    assert "X_CONSUMER_KEY" not in env_of(campaign)  # nothing saved that X refused
    talk.type(x_keys["consumer_key"], x_keys["consumer_secret"])
    url = talk.wait_for(URL).group(1)
    pin = x_pin(url)
    talk.type("0000000" if pin != "0000000" else "1111111")
    talk.wait_for(r"did not accept that PIN.*type it again")
    talk.type(pin)
    assert talk.end() == 0, talk.out + talk.err


def test_x_cancelled_authorization_then_resumed(campaign: Path, x_keys: dict[str, str]) -> None:
    talk = Conversation(campaign, "connect", "x")
    talk.type(x_keys["consumer_key"], x_keys["consumer_secret"])
    assert "not authorized" in x_cancel(talk.wait_for(URL).group(1))
    talk.wait_for(r"PIN \(or press Enter to stop\)")
    talk.type("")
    assert talk.end() == 3
    assert "If you pressed Cancel, the account was not connected" in talk.err
    progress = json.loads((campaign.parent / ".connect-progress.json").read_text())
    assert progress == {"x/main": {"step": "authorize"}}  # and no secret in it
    # Run again: the app's keys are not asked for a second time.
    again = Conversation(campaign, "connect", "x")
    url = again.wait_for(URL).group(1)
    assert "Continuing" in again.out and "API Key (also" not in again.out
    again.wait_for(r"PIN")
    again.type(x_pin(url))
    assert again.end() == 0, again.out + again.err
    assert not (campaign.parent / ".connect-progress.json").exists()


def test_x_interrupted_at_the_pin_resumes(campaign: Path, x_keys: dict[str, str]) -> None:
    talk = Conversation(campaign, "connect", "x")
    talk.type(x_keys["consumer_key"], x_keys["consumer_secret"])
    talk.wait_for(r"PIN \(or press Enter to stop\)")
    assert talk.end() == 3  # the input ends, as when the terminal is closed
    assert "What was done is kept: run `python -m bot connect x --account main` to continue" in talk.err
    assert env_of(campaign).get("X_CONSUMER_KEY") == x_keys["consumer_key"]
    again = Conversation(campaign, "connect", "x", "--account", "main")
    url = again.wait_for(URL).group(1)
    again.wait_for(r"PIN")
    again.type(x_pin(url))
    assert again.end() == 0, again.out + again.err


def test_x_read_only_app_is_named_as_the_problem_then_fixed(
    campaign: Path, sandbox: Sandbox, x_keys: dict[str, str], read_only_x: None
) -> None:
    talk = Conversation(campaign, "connect", "x")
    talk.type(x_keys["consumer_key"], x_keys["consumer_secret"])
    url = talk.wait_for(URL).group(1)
    talk.wait_for(r"PIN")
    talk.type(x_pin(url))
    assert talk.end() == 3
    assert "the X app can only read" in talk.err and '"Read and write"' in talk.err
    assert "console.x.com" in talk.err
    assert "X_ACCESS_TOKEN" not in env_of(campaign)  # a token that cannot post is not kept
    # The person switches the app to Read and write, and runs the command again.
    base = sandbox.servers["x"].base_url
    requests.post(f"{base}/_sandbox/settings", json={"app_permissions": {"main": "read-write"}}, timeout=5)
    again = Conversation(campaign, "connect", "x")
    url = again.wait_for(URL).group(1)
    again.wait_for(r"PIN")
    again.type(x_pin(url))
    assert again.end() == 0, again.out + again.err
    # Later, to make a new token: the saved app keys are offered.
    third = Conversation(campaign, "connect", "x")
    third.wait_for(r"Use them\? \(yes/no\) \[yes\]: ")
    third.type("")
    url = third.wait_for(URL).group(1)
    third.wait_for(r"PIN")
    third.type(x_pin(url))
    assert third.end() == 0, third.out + third.err
    assert "API Key (also" not in third.out
    env_text = (campaign.parent / ".env").read_text()
    assert env_text.count("X_ACCESS_TOKEN=") == 1 and env_text.count("X_CONSUMER_KEY=") == 1


# --- Mastodon ---------------------------------------------------------------------------


def _mastodon_start(campaign: Path, sandbox: Sandbox, *args: str) -> tuple[Conversation, str]:
    talk = Conversation(campaign, "connect", "mastodon", *args)
    talk.wait_for(r"Server( \[[^\]]*\])?: ")
    talk.type(sandbox.servers["mastodon"].base_url)
    url = talk.wait_for(URL).group(1)
    talk.wait_for(r"Authorization code \(or press Enter to stop\): ")
    return talk, url


def test_mastodon_connects_with_an_authorization_code(campaign: Path, sandbox: Sandbox) -> None:
    talk, url = _mastodon_start(campaign, sandbox)
    assert "force_login" not in url and "scope=read%3Aaccounts+read%3Astatuses" in url
    talk.type("wrong-code")
    talk.wait_for(r"did not accept that code.*paste it")
    talk.type(mastodon_code(url))
    assert talk.end() == 0, talk.out + talk.err
    env = env_of(campaign)
    assert env["MASTODON_URL"] == sandbox.servers["mastodon"].base_url
    assert env["MASTODON_ACCESS_TOKEN_CLIENT_ID"] and env["MASTODON_ACCESS_TOKEN_CLIENT_SECRET"]
    secrets = (str(env["MASTODON_ACCESS_TOKEN"]), str(env["MASTODON_ACCESS_TOKEN_CLIENT_SECRET"]))
    assert_private(campaign, *secrets, outputs=(talk.out, talk.err))
    host = sandbox.servers["mastodon"].base_url.removeprefix("http://")
    assert 'Connected: the Mastodon account "main" is @main@' + host + " and can post." in talk.out
    assert check_online(campaign, "mastodon") == f"mastodon main: ok @main@{host}"
    again, url = _mastodon_start(campaign, sandbox)  # a new token later: the same app
    assert "already registered" in again.out
    again.type(mastodon_code(url))
    assert again.end() == 0, again.out + again.err


def test_mastodon_denied_then_resumed_without_a_second_app(campaign: Path, sandbox: Sandbox) -> None:
    talk, url = _mastodon_start(campaign, sandbox)
    assert "denied the request" in mastodon_deny(url)
    talk.type("")
    assert talk.end() == 3
    assert 'If you pressed "Deny", the account was not connected' in talk.err
    client_id = env_of(campaign)["MASTODON_ACCESS_TOKEN_CLIENT_ID"]
    again, url = _mastodon_start(campaign, sandbox)
    assert "already registered" in again.out
    again.type(mastodon_code(url))
    assert again.end() == 0, again.out + again.err
    assert env_of(campaign)["MASTODON_ACCESS_TOKEN_CLIENT_ID"] == client_id


def test_mastodon_token_without_write_scope_is_refused(campaign: Path, sandbox: Sandbox) -> None:
    talk, url = _mastodon_start(campaign, sandbox)
    talk.type(mastodon_code(url, scope="read:accounts read:statuses"))  # approved less than asked
    assert talk.end() == 3
    assert "granted fewer permissions than the bot asked for" in talk.err
    assert "MASTODON_ACCESS_TOKEN" not in env_of(campaign)


# --- Bluesky ----------------------------------------------------------------------------


def test_bluesky_refuses_the_main_password_and_takes_an_app_password(
    campaign: Path, sandbox: Sandbox
) -> None:
    account = sandbox.describe()["bluesky"]["accounts"][0]
    talk = Conversation(campaign, "connect", "bluesky")
    talk.wait_for(r"Handle, without the @")
    talk.type("@" + account["handle"], sandbox_password("main"))
    talk.wait_for(r"That is not an app password")
    talk.type(account["app_password"])
    assert talk.end() == 0, talk.out + talk.err
    env = env_of(campaign)
    assert env["BSKY_HANDLE"] == account["handle"] and env["BSKY_APP_PASSWORD"] == account["app_password"]
    assert_private(campaign, account["app_password"], sandbox_password("main"), outputs=(talk.out, talk.err))
    assert check_online(campaign, "bluesky") == f"bluesky main: ok {account['handle']}"


def test_bluesky_wrong_app_password_is_asked_again(campaign: Path, sandbox: Sandbox) -> None:
    (campaign.parent / ".env").unlink()  # no .env yet: it is created owner-only
    account = sandbox.describe()["bluesky"]["accounts"][0]
    talk = Conversation(campaign, "connect", "bluesky")
    talk.type(account["handle"], "aaaa-bbbb-cccc-dddd")
    talk.wait_for(r"did not accept main\.sandbox\.test with that app password")
    talk.type(account["handle"], account["app_password"])
    assert talk.end() == 0, talk.out + talk.err
    assert stat.S_IMODE((campaign.parent / ".env").stat().st_mode) == 0o600


# --- what the command refuses -------------------------------------------------------------


def test_a_readable_env_file_is_made_owner_only(campaign: Path, sandbox: Sandbox) -> None:
    (campaign.parent / ".env").chmod(0o644)
    account = sandbox.describe()["bluesky"]["accounts"][0]
    result = run(campaign, "connect", "bluesky", stdin=f"{account['handle']}\n{account['app_password']}\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "readable by its owner only" in result.stdout
    assert_private(campaign, account["app_password"], outputs=(result.stdout, result.stderr))


def test_unknown_account_and_secret_written_in_config(campaign: Path) -> None:
    unknown = run(campaign, "connect", "x", "--account", "nobody")
    assert unknown.returncode == 2
    assert "has no X account named 'nobody' (accounts: main)" in unknown.stderr
    text = campaign.read_text().replace('"${MASTODON_ACCESS_TOKEN}"', "abc123")
    campaign.write_text(text)
    literal = run(campaign, "connect", "mastodon")
    assert literal.returncode == 1
    assert literal.stderr.count("\n") == 1
    expected = "config.yaml:21: platforms.mastodon.accounts[0].access_token is written in the file itself"
    assert expected in literal.stderr
    assert "abc123" not in literal.stderr
