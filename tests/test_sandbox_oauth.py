"""The emulators' sign-in endpoints, over real HTTP with the real client libraries."""

from __future__ import annotations

import base64
import json

import pytest
import requests
import tweepy
from mastodon import Mastodon
from mastodon.errors import MastodonAPIError, MastodonIllegalArgumentError

from bot.platforms.x_onboarding import PinFlow
from bot.sandbox import Sandbox
from bot.sandbox.bluesky import sandbox_password
from tests.consent import mastodon_code, mastodon_deny, x_cancel, x_pin

SCOPES = ["read:accounts", "write:statuses"]
OOB_URI = "urn:ietf:wg:oauth:2.0:oob"


def _mastodon_app(base: str) -> tuple[str, str]:
    cid, secret = Mastodon.create_app("campaign-bot", scopes=SCOPES, api_base_url=base)
    return str(cid), str(secret)


def _api(base: str, cid: str, secret: str, token: str | None = None) -> Mastodon:
    return Mastodon(
        client_id=cid, client_secret=secret, access_token=token, api_base_url=base, mastodon_version="4.3.0"
    )


def test_mastodon_app_registration_answers_as_mastodon(sandbox: Sandbox) -> None:
    base = sandbox.servers["mastodon"].base_url
    app = requests.post(
        f"{base}/api/v1/apps",
        json={
            "client_name": "x",
            "redirect_uris": ["urn:ietf:wg:oauth:2.0:oob"],
            "scopes": "read write:media",
        },
        timeout=5,
    )
    assert app.status_code == 200
    assert app.json()["scopes"] == ["read", "write:media"] and app.json()["client_secret_expires_at"] == 0
    bad = requests.post(
        f"{base}/api/v1/apps", data={"client_name": "x", "redirect_uris": "nowhere"}, timeout=5
    )
    assert bad.status_code == 422
    assert bad.json() == {"error": "Validation failed: Redirect URI must be an absolute URI."}
    assert requests.post(f"{base}/api/v1/apps", data={}, timeout=5).status_code == 422
    known = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=5).json()
    assert known["token_endpoint"] == f"{base}/oauth/token"


def test_mastodon_code_flow_with_mastodon_py(sandbox: Sandbox) -> None:
    base = sandbox.servers["mastodon"].base_url
    cid, secret = _mastodon_app(base)
    api = _api(base, cid, secret)
    url = api.auth_request_url(scopes=SCOPES, allow_http=True)
    code = mastodon_code(url, account="account2")
    with pytest.raises(MastodonIllegalArgumentError, match="invalid_grant"):
        api.log_in(code="not-the-code", scopes=SCOPES, allow_http=True)
    token = api.log_in(code=code, scopes=SCOPES, allow_http=True)  # a wrong code spent nothing
    with pytest.raises(MastodonIllegalArgumentError):
        _api(base, cid, secret).log_in(code=code, scopes=SCOPES, allow_http=True)  # a code works once
    me = _api(base, cid, secret, token)
    assert me.account_verify_credentials()["acct"] == "account2"
    assert me.app_verify_credentials()["scopes"] == SCOPES
    assert me.status_post("hello")["account"]["acct"] == "account2"
    requests.post(
        f"{base}/oauth/revoke", data={"client_id": cid, "client_secret": secret, "token": token}, timeout=5
    ).raise_for_status()
    gone = requests.get(
        f"{base}/api/v1/accounts/verify_credentials", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert gone.status_code == 401


def test_mastodon_token_without_write_scope_cannot_post(sandbox: Sandbox) -> None:
    base = sandbox.servers["mastodon"].base_url
    cid, secret = _mastodon_app(base)
    url = _api(base, cid, secret).auth_request_url(scopes=SCOPES, allow_http=True)
    code = mastodon_code(url, scope="read:accounts")  # a form tampered to ask for less
    with pytest.raises(MastodonAPIError, match="Granted scopes"):
        _api(base, cid, secret).log_in(code=code, scopes=SCOPES, allow_http=True)
    answer = requests.post(
        f"{base}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": mastodon_code(url, scope="read:accounts"),
            "client_id": cid,
            "client_secret": secret,
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
        },
        timeout=5,
    ).json()
    assert answer["scope"] == "read:accounts"
    posted = requests.post(
        f"{base}/api/v1/statuses",
        data={"status": "hi"},
        headers={"Authorization": f"Bearer {answer['access_token']}"},
        timeout=5,
    )
    assert posted.status_code == 403
    assert posted.json() == {"error": "This action is outside the authorized scopes"}


def test_mastodon_refusals(sandbox: Sandbox) -> None:
    base = sandbox.servers["mastodon"].base_url
    cid, secret = _mastodon_app(base)
    url = _api(base, cid, secret).auth_request_url(scopes=SCOPES, allow_http=True)
    assert "denied the request" in mastodon_deny(url)
    wrong_client = requests.post(
        f"{base}/oauth/token",
        data={"grant_type": "authorization_code", "code": "x", "client_id": cid, "client_secret": "no"},
        timeout=5,
    )
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"
    unknown = requests.get(f"{base}/oauth/authorize?client_id=nobody&response_type=code", timeout=5)
    assert unknown.status_code == 400 and "unknown client" in unknown.text


def _x_keys(sandbox: Sandbox, index: int = 0) -> dict[str, str]:
    keys: dict[str, str] = sandbox.describe()["x"]["accounts"][index]
    return keys


def test_x_pin_flow_with_tweepy(sandbox: Sandbox) -> None:
    base, keys = sandbox.servers["x"].base_url, _x_keys(sandbox)
    flow = PinFlow(keys["consumer_key"], keys["consumer_secret"], base)
    pin = x_pin(flow.authorization_url(), account="account2")
    token, secret = flow.finish(pin)
    client = tweepy.Client(
        consumer_key=keys["consumer_key"],
        consumer_secret=keys["consumer_secret"],
        access_token=token,
        access_token_secret=secret,
        return_type=requests.Response,
    )
    from bot.platforms.x_transport import redirect_session

    redirect_session(client.session, base)
    me = client.get_me(user_auth=True)
    assert me.json()["data"]["username"] == "ntfi_account2"
    assert me.headers["x-access-level"] == "read-write"
    assert token.startswith(me.json()["data"]["id"] + "-")


def test_x_wrong_pin_cancel_and_callbacks(sandbox: Sandbox) -> None:
    from requests_oauthlib import OAuth1Session
    from requests_oauthlib.oauth1_session import TokenRequestDenied

    from bot.platforms.onboarding import CodeRefused
    from bot.platforms.x_transport import RedirectAdapter

    base, keys = sandbox.servers["x"].base_url, _x_keys(sandbox)
    flow = PinFlow(keys["consumer_key"], keys["consumer_secret"], base)
    pin = x_pin(flow.authorization_url())
    with pytest.raises(CodeRefused):
        flow.finish("0000000" if pin != "0000000" else "1111111")
    flow.finish(pin)  # a wrong PIN does not spend the request token
    with pytest.raises(CodeRefused):
        flow.finish(pin)  # a PIN works once
    url = PinFlow(keys["consumer_key"], keys["consumer_secret"], base).authorization_url()
    assert "not authorized" in x_cancel(url)
    assert "request token for this page is invalid" in requests.get(url, timeout=5).text
    no_callback = OAuth1Session(keys["consumer_key"], client_secret=keys["consumer_secret"])
    no_callback.mount("https://api.x.com/", RedirectAdapter(base))
    with pytest.raises(TokenRequestDenied, match="415"):
        no_callback.fetch_request_token("https://api.x.com/oauth/request_token")


def test_x_read_only_app_gets_read_tokens_that_cannot_post(sandbox: Sandbox) -> None:
    base, keys = sandbox.servers["x"].base_url, _x_keys(sandbox, 1)
    requests.post(f"{base}/_sandbox/settings", json={"app_permissions": {"account2": "read"}}, timeout=5)
    try:
        flow = PinFlow(keys["consumer_key"], keys["consumer_secret"], base)
        token, secret = flow.finish(x_pin(flow.authorization_url(), account="account2"))
        requests.post(
            f"{base}/_sandbox/settings", json={"app_permissions": {"account2": "read-write"}}, timeout=5
        )
        client = tweepy.Client(
            consumer_key=keys["consumer_key"],
            consumer_secret=keys["consumer_secret"],
            access_token=token,
            access_token_secret=secret,
        )
        from bot.platforms.x_transport import redirect_session

        redirect_session(client.session, base)
        with pytest.raises(tweepy.Forbidden) as refused:  # the token kept the level it was made with
            client.create_tweet(text="hello", user_auth=True)
        assert refused.value.response.json()["type"].endswith("/oauth1-permissions")
    finally:
        requests.post(
            f"{base}/_sandbox/settings", json={"app_permissions": {"account2": "read-write"}}, timeout=5
        )


def _scope(jwt: str) -> str:
    payload = jwt.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["scope"])


def test_bluesky_tells_main_and_app_passwords_apart_in_the_token(sandbox: Sandbox) -> None:
    base = sandbox.servers["bluesky"].base_url
    account = sandbox.describe()["bluesky"]["accounts"][0]
    url = f"{base}/xrpc/com.atproto.server.createSession"
    app = requests.post(
        url, json={"identifier": account["handle"], "password": account["app_password"]}, timeout=5
    )
    main = requests.post(
        url, json={"identifier": account["handle"], "password": sandbox_password("main")}, timeout=5
    )
    assert _scope(app.json()["accessJwt"]) == "com.atproto.appPass"
    assert _scope(main.json()["accessJwt"]) == "com.atproto.access"
    assert set(app.json()) == set(main.json())  # nothing else tells them apart
    wrong = requests.post(url, json={"identifier": account["handle"], "password": "nope"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "AuthenticationRequired"


def test_odd_but_valid_requests_are_answered_as_the_servers_do(sandbox: Sandbox) -> None:
    base = sandbox.servers["mastodon"].base_url
    cid, secret = _mastodon_app(base)
    url = _api(base, cid, secret).auth_request_url(scopes=SCOPES, allow_http=True)
    # Client credentials in HTTP Basic instead of the body; the body as JSON.
    token = requests.post(
        f"{base}/oauth/token",
        json={"grant_type": "authorization_code", "code": mastodon_code(url), "redirect_uri": OOB_URI},
        auth=(cid, secret),
        timeout=5,
    )
    assert token.status_code == 200 and token.json()["scope"] == " ".join(SCOPES)
    assert requests.post(f"{base}/oauth/token", data=b"\xff\xfe", timeout=5).status_code == 400
    assert requests.post(f"{base}/oauth/token", data={"grant_type": "password"}, timeout=5).json()[
        "error"
    ] == ("unsupported_grant_type")
    x = sandbox.servers["x"].base_url
    garbage = requests.post(
        f"{x}/oauth/access_token", data=b"\xff", headers={"Authorization": "OAuth x"}, timeout=5
    )
    assert garbage.status_code == 401
    page = requests.post(f"{x}/oauth/authorize", data=b"\xff\xfe", timeout=5)
    assert page.status_code == 200 and "Whoa there!" in page.text


def test_bluesky_email_codes_stop_main_passwords_only(sandbox: Sandbox) -> None:
    base = sandbox.servers["bluesky"].base_url
    account = sandbox.describe()["bluesky"]["accounts"][0]
    url = f"{base}/xrpc/com.atproto.server.createSession"
    requests.post(f"{base}/_sandbox/settings", json={"email_auth_factor": True}, timeout=5).raise_for_status()
    try:
        main = requests.post(
            url, json={"identifier": account["handle"], "password": sandbox_password("main")}, timeout=5
        )
        app = requests.post(
            url, json={"identifier": account["handle"], "password": account["app_password"]}, timeout=5
        )
    finally:
        requests.post(f"{base}/_sandbox/reset", timeout=5)
    assert main.status_code == 401 and main.json()["error"] == "AuthFactorTokenRequired"
    assert app.status_code == 200
