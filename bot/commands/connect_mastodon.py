"""Connecting a Mastodon account: its server, the bot's app there, then the authorization code.

The app's client id and secret are kept in `.env` beside the token, as `<TOKEN VARIABLE>_CLIENT_ID`
and `_CLIENT_SECRET` (register once per server; they also let the token be revoked later), so a
run stopped before the code was typed reuses the app instead of registering another.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dotenv import dotenv_values

from bot.commands.connect import NotConnected, Session
from bot.platforms.mastodon_onboarding import (
    CodeFlow,
    is_loopback,
    missing_scopes,
    register_app,
)
from bot.platforms.onboarding import CannotPost, CodeRefused

TRIES = 3


def connect(session: Session) -> None:
    say = session.dialogue.say
    say(f"Connecting the {session.label} (config.yaml line {session.fields.line}).")
    say(
        "Mastodon needs the bot registered as an app on the account's server, and the account's "
        "permission for that app. This takes about two minutes."
    )
    say("")
    say("Step 1 of 3: the server")
    base = _server(session)
    client_id, client_secret = _app(session, base)
    flow = CodeFlow(base, client_id, client_secret, session.timeout)
    url = flow.authorization_url()
    say("")
    say("Step 2 of 3: let the bot use the account")
    say(f"  1. Open this address in a web browser where you are signed in to {urlsplit(base).netloc}")
    say("     as the account that will post:")
    say(f"       {url}")
    say("  2. The page lists what campaign-bot asks for: to read the account, its posts, notifications")
    say('     and searches, and to publish posts and upload images. Press "Authorize".')
    say('  3. The page shows an "Authorization code". Copy it below.')
    token = _exchange(session, flow)
    say("")
    say("Step 3 of 3: checking the permissions...")
    _, scopes = flow.identify(token)
    lacking = missing_scopes(scopes) if scopes else []
    if lacking:
        raise NotConnected(f"the token lacks {', '.join(lacking)}; approve the request as it is")
    values = {"access_token": token}
    if session.variable("api_base_url"):
        values["api_base_url"] = base
    session.save_env(values)


def _server(session: Session) -> str:
    say, ask = session.dialogue.say, session.dialogue.ask
    if not session.variable("api_base_url"):
        base = session.account.base_url.rstrip("/")
        say(f"  config.yaml says the account is on {base}. If it is on another server, change")
        say(f"  api_base_url at line {session.fields.line} first, then run this again.")
        return base
    say("  Which server is the account on? It is the part after the second @ of its address:")
    say("  for @campaign@mastodon.social, type mastodon.social.")
    default = session.progress.get().get("server") or session.account.base_url or None
    for _ in range(TRIES):
        answer = ask("Server", urlsplit(default).netloc if default and not is_loopback(default) else default)
        found = server_url(answer)
        if found:
            return found
        say("  That is not a server address (like mastodon.social). Try again.")
    raise NotConnected("no server address given")


def server_url(text: str) -> str | None:
    """`mastodon.social`, `@me@mastodon.social` or `https://mastodon.social/@me` as a base URL."""
    text = text.strip().rstrip("/")
    if "@" in text and "://" not in text:
        text = text.rsplit("@", 1)[1]
    if "://" not in text:
        # Real servers are https; only a local one (the sandbox) is reached over plain http.
        text = f"{'http' if is_loopback(f'http://{text}') else 'https'}://{text}"
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or ("." not in host and host != "localhost"):
        return None
    if parts.scheme == "http" and not is_loopback(text):
        return None  # only the sandbox and local servers may use plain http
    return f"{parts.scheme}://{parts.netloc}"


def _app(session: Session, base: str) -> tuple[str, str]:
    token_variable = session.variable("access_token") or "MASTODON_ACCESS_TOKEN"
    names = f"{token_variable}_CLIENT_ID", f"{token_variable}_CLIENT_SECRET"
    saved = dotenv_values(session.env_path) if session.env_path.is_file() else {}
    kept_id, kept_secret = saved.get(names[0]), saved.get(names[1])
    registered_on = {session.progress.get().get("server"), session.account.base_url.rstrip("/")}
    if base in registered_on and kept_id and kept_secret:
        session.dialogue.say(f"  Continuing: campaign-bot is already registered on {base}.")
        return kept_id, kept_secret
    session.dialogue.say(f"  Registering campaign-bot as an app on {base}...")
    client_id, client_secret = register_app(base, session.timeout)
    session.save_env({names[0]: client_id, names[1]: client_secret})
    session.progress.save(server=base, step="authorize")
    return client_id, client_secret


def _exchange(session: Session, flow: CodeFlow) -> str:
    ask, say = session.dialogue.ask, session.dialogue.say
    again = f"python -m bot connect mastodon --account {session.account.name}"
    for attempt in range(TRIES):
        code = ask("Authorization code (or press Enter to stop)")
        if not code:
            raise NotConnected(
                'no code given. If you pressed "Deny", the account was not connected; '
                f"run `{again}` when ready"
            )
        try:
            return flow.finish(code)
        except CannotPost as exc:
            raise NotConnected(f"{exc}. Run `{again}` and press Authorize on the page as it is") from None
        except CodeRefused as exc:
            if attempt == TRIES - 1:
                raise NotConnected(f"{exc}. Run `{again}` for a new code") from None
            say(f"{exc}. Copy it again (the whole code) and paste it.")
    raise AssertionError("unreachable")
