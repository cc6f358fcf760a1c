"""Connecting a Bluesky account: its handle and an app password, never the main password."""

from __future__ import annotations

from bot.commands.connect import NotConnected, Session
from bot.errors import AuthFailed
from bot.platforms.bluesky import DEFAULT_SERVICE
from bot.platforms.bluesky_onboarding import MAIN_PASSWORD, SETTINGS, looks_like_app_password, sign_in
from bot.platforms.onboarding import CannotPost

TRIES = 3


def connect(session: Session) -> None:
    say, ask, ask_secret = session.dialogue.say, session.dialogue.ask, session.dialogue.ask_secret
    service = (session.account.base_url or DEFAULT_SERVICE).rstrip("/")
    say(f"Connecting the {session.label} (config.yaml line {session.fields.line}).")
    say(
        "Bluesky needs the account's handle and an app password: a password only for the bot, "
        "which you can delete at any time. Never give the bot the password you sign in with."
    )
    say("")
    say("Step 1 of 3: make an app password")
    if service == DEFAULT_SERVICE:
        say("  1. In Bluesky (https://bsky.app or the app), signed in as the account that will post,")
        say(f"     open {SETTINGS}.")
        say('  2. Press "Add App Password", name it campaign-bot, leave direct messages off, and')
        say("     press Next. Bluesky shows the password once (four groups of four letters and digits).")
    else:
        say(f"  This account is on {service}. Its app passwords are at {service}/settings/app-passwords")
    say("")
    say("Step 2 of 3: the account")
    handle = session.saved("handle")
    if session.variable("handle") or not handle:
        default = session.progress.get().get("handle") or handle or None
        handle = ask("Handle, without the @ (like yourgroup.bsky.social)", default).lstrip("@")
        if not handle:
            raise NotConnected("the handle is needed to go on")
        session.progress.save(handle=handle, step="password")
    else:
        say(f"  config.yaml names the account {handle}.")
    for attempt in range(TRIES):
        password = ask_secret("App password")
        if not password:
            raise NotConnected("the app password is needed to go on")
        if not looks_like_app_password(password):
            say(
                "  That is not an app password: those look like abcd-efgh-ijkl-mnop. If you typed the "
                "password you sign in with, it was not sent anywhere. Make an app password as in step 1."
            )
            continue
        say("")
        say("Step 3 of 3: signing in with it...")
        try:
            who = sign_in(service, handle, password, session.timeout)
        except AuthFailed:
            if attempt == TRIES - 1:
                break
            say(f"  Bluesky did not accept {handle} with that app password. Check both and try again.")
            handle = ask("Handle", handle).lstrip("@")
            continue
        except CannotPost as exc:
            raise NotConnected(str(exc)) from None
        if who.kind == "main":
            raise NotConnected(MAIN_PASSWORD.format(account=session.account.name))
        values = {"app_password": password.strip()}
        if session.variable("handle"):
            values["handle"] = who.handle
        session.save_env(values)
        return
    raise NotConnected(
        f"no app password was accepted. Check the handle and make a new app password ({SETTINGS})"
    )
