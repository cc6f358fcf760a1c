"""`check --online` names what is wrong with each account, and where to fix it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from urllib.parse import urlencode

import requests
from requests_oauthlib import OAuth1

from bot.platforms.x_transport import RedirectAdapter
from bot.sandbox import Sandbox
from bot.sandbox.bluesky import sandbox_password
from tests.consent import mastodon_code
from tests.conversation import clean_env, run

OOB = "urn:ietf:wg:oauth:2.0:oob"


def _mastodon_token(base: str, scopes: str) -> tuple[str, str, str]:
    """A token granted through OAuth to an app registered with just `scopes`: (token, id, secret)."""
    app = requests.post(
        f"{base}/api/v1/apps",
        data={"client_name": "by hand", "redirect_uris": OOB, "scopes": scopes},
        timeout=5,
    ).json()
    query = {"client_id": app["client_id"], "response_type": "code", "redirect_uri": OOB, "scope": scopes}
    url = f"{base}/oauth/authorize?{urlencode(query)}"
    token = requests.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": mastodon_code(url),
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
            "redirect_uri": OOB,
        },
        timeout=5,
    ).json()["access_token"]
    return str(token), str(app["client_id"]), str(app["client_secret"])


def test_each_account_problem_is_named_with_its_fix(sandbox: Sandbox, tmp_path: Path) -> None:
    d = sandbox.describe()
    x1, x2 = d["x"]["accounts"]
    urls = {name: server.base_url for name, server in sandbox.servers.items()}
    # X: main's app is read-only; account2's token is revoked.
    requests.post(f"{urls['x']}/_sandbox/settings", json={"app_permissions": {"main": "read"}}, timeout=5)
    session = requests.Session()
    session.mount("https://api.x.com/", RedirectAdapter(urls["x"]))
    auth = OAuth1(x2["consumer_key"], x2["consumer_secret"], x2["access_token"], x2["access_token_secret"])
    session.post("https://api.x.com/1.1/oauth/invalidate_token", auth=auth, timeout=5).raise_for_status()
    # Mastodon: one token without write scopes, one revoked.
    reader, _, _ = _mastodon_token(urls["mastodon"], "read:accounts read:notifications")
    revoked, client_id, client_secret = _mastodon_token(urls["mastodon"], "read write")
    requests.post(
        f"{urls['mastodon']}/oauth/revoke",
        data={"client_id": client_id, "client_secret": client_secret, "token": revoked},
        timeout=5,
    ).raise_for_status()
    bsky = d["bluesky"]["accounts"][0]
    env = clean_env(
        X1_KEY=x1["consumer_key"], X1_SECRET=x1["consumer_secret"],
        X1_TOKEN=x1["access_token"], X1_TOKEN_SECRET=x1["access_token_secret"],
        X2_KEY=x2["consumer_key"], X2_SECRET=x2["consumer_secret"],
        X2_TOKEN=x2["access_token"], X2_TOKEN_SECRET=x2["access_token_secret"],
        READER=reader, REVOKED=revoked, MAIN_PASSWORD=sandbox_password("main"),
    )  # fmt: skip
    config = tmp_path / "config.yaml"
    (tmp_path / "content").mkdir()
    config.write_text(
        textwrap.dedent(
            f"""\
            platforms:
              x:
                api_base_url: {urls["x"]}
                accounts:
                  - {{name: readonly, consumer_key: "${{X1_KEY}}", consumer_secret: "${{X1_SECRET}}",
                      access_token: "${{X1_TOKEN}}", access_token_secret: "${{X1_TOKEN_SECRET}}"}}
                  - {{name: revoked, consumer_key: "${{X2_KEY}}", consumer_secret: "${{X2_SECRET}}",
                      access_token: "${{X2_TOKEN}}", access_token_secret: "${{X2_TOKEN_SECRET}}"}}
              bluesky:
                accounts:
                  - {{name: mainpw, service: "{urls["bluesky"]}", handle: {bsky["handle"]},
                      app_password: "${{MAIN_PASSWORD}}"}}
                  - {{name: unset, service: "{urls["bluesky"]}", handle: other.test,
                      app_password: "${{NOT_SET}}"}}
              mastodon:
                accounts:
                  - {{name: reader, api_base_url: "{urls["mastodon"]}", access_token: "${{READER}}"}}
                  - {{name: revoked, api_base_url: "{urls["mastodon"]}", access_token: "${{REVOKED}}"}}
            """
        )
    )
    try:
        result = run(config, "check", "--online", env=env)
    finally:
        requests.post(
            f"{urls['x']}/_sandbox/settings", json={"app_permissions": {"main": "read-write"}}, timeout=5
        )
    assert result.returncode == 3, result.stdout + result.stderr
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines() if ": FAILED " in line}
    assert "the X app can only read" in lines["x readonly"]
    assert 'set App permissions to "Read and write"' in lines["x readonly"]
    assert "connect x --account readonly" in lines["x readonly"]
    assert "X refused the access token: it was revoked" in lines["x revoked"]
    assert "Connected apps" in lines["x revoked"]
    assert "main password, not an app password" in lines["bluesky mainpw"]
    assert "Privacy and security > App passwords" in lines["bluesky mainpw"]
    # An unset secret is already a warning: the account is not checked, and not a failure.
    unset = next(line for line in result.stdout.splitlines() if line.startswith("bluesky unset:"))
    assert "not checked (secrets not set)" in unset and "connect bluesky --account unset" in unset
    assert "NOT_SET" in result.stderr
    assert (
        "lacks write:statuses, write:media, so the bot cannot post or attach images"
        in lines["mastodon reader"]
    )
    assert "it was revoked (Preferences > Account > Authorized apps)" in lines["mastodon revoked"]
    for secret in (reader, revoked, sandbox_password("main"), x1["access_token"], x2["access_token_secret"]):
        assert secret not in result.stdout + result.stderr
    # With email sign-in codes on, a main password cannot even sign in: the same fix is named.
    requests.post(f"{urls['bluesky']}/_sandbox/settings", json={"email_auth_factor": True}, timeout=5)
    try:
        coded = run(config, "check", "--online", env=env)
    finally:
        requests.post(f"{urls['bluesky']}/_sandbox/settings", json={"email_auth_factor": False}, timeout=5)
    line = next(ln for ln in coded.stdout.splitlines() if ln.startswith("bluesky mainpw:"))
    assert "asked for an email sign-in code" in line and "Add App Password" in line
