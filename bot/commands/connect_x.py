"""Connecting an X account: the app's keys, then the PIN flow as the posting account."""

from __future__ import annotations

from bot.commands.connect import NotConnected, Session
from bot.errors import AuthFailed
from bot.platforms.onboarding import CannotPost, CodeRefused
from bot.platforms.x_onboarding import PinFlow, check_can_post, identify, is_real_x

TRIES = 3


def connect(session: Session) -> None:
    say = session.dialogue.say
    base = session.account.base_url
    say(f"Connecting the {session.label} (config.yaml line {session.fields.line}).")
    say(
        "X needs two things: a developer app, which identifies the bot to X, and the permission "
        "of the account that will post to let that app post for it. This takes about five minutes."
    )
    flow, url = _start(session, base)
    session.progress.save(step="authorize")
    say("")
    say("Step 2 of 3: let the app post as the account")
    if is_real_x(base):
        say("  1. Open this address in a web browser where you are signed in to X as the account")
        say("     that will post (sign out first if another account is signed in):")
    else:
        say('  1. Open this address in a web browser and choose the posting account under "Signed in as":')
    say(f"       {url}")
    say('  2. Check the app name and press "Authorize app".')
    say("  3. X shows a PIN of 7 digits. Type it below.")
    token, secret = _exchange(session, flow)
    say("")
    say("Step 3 of 3: checking what the app may do...")
    who = identify(flow.consumer_key, flow.consumer_secret, token, secret, base, session.timeout)
    try:
        check_can_post(who, session.account.name)
    except CannotPost as exc:
        raise NotConnected(str(exc)) from None
    session.save_env({"access_token": token, "access_token_secret": secret})


def _start(session: Session, base: str) -> tuple[PinFlow, str]:
    """Step 1: the app's API Key and Secret (kept from an earlier run when X still takes them)."""
    say, ask_secret = session.dialogue.say, session.dialogue.ask_secret
    resumed = session.progress.get().get("step") == "authorize"
    key, secret = session.saved("consumer_key"), session.saved("consumer_secret")
    if key and secret and not resumed:
        say("")
        keep = session.dialogue.ask("An app's API Key and Secret are already set. Use them? (yes/no)", "yes")
        resumed = keep.lower().startswith("y")
    if resumed and key and secret:
        say("")
        say("Continuing with the app's API Key and Secret saved earlier.")
        try:
            flow = PinFlow(key, secret, base, session.timeout)
            return flow, flow.authorization_url()  # getting a request token proves the keys
        except AuthFailed as exc:
            say(f"{exc}.")
    say("")
    say("Step 1 of 3: the app's keys")
    if is_real_x(base):
        say("  1. Sign in at https://console.x.com (the X Developer Console) with the X account that")
        say("     will own the app. It may be the account that posts, or another of your organization.")
        say("     The first time, X asks to accept its developer agreement and to describe the use:")
        say("     say the app posts your organization's campaign messages. The free plan is enough.")
        say('  2. Create an app, or open the existing one. In its "User authentication settings" choose')
        say('     App permissions "Read and write", type of app "Native App" (or "Web App"), any')
        say("     Callback URI such as http://127.0.0.1/ and your website as Website URL, and save.")
        say('  3. On the app\'s "Keys and tokens" page, under Consumer Keys, show (or regenerate) the')
        say("     API Key and API Key Secret, and copy them below.")
    else:
        say(f"  This account points at the sandbox ({base}). Its developer console, with every")
        say(f"  sandbox app's API Key and API Key Secret, is at {base}/console")
    for attempt in range(TRIES):
        key = ask_secret("API Key (also called consumer key)")
        secret = ask_secret("API Key Secret (also called consumer secret)")
        if not key or not secret:
            raise NotConnected("the API Key and Secret are needed to go on")
        flow = PinFlow(key, secret, base, session.timeout)
        try:
            url = flow.authorization_url()
        except AuthFailed as exc:
            if attempt == TRIES - 1:
                raise NotConnected(str(exc)) from None
            say(f"{exc}. Try again.")
            continue
        session.save_env({"consumer_key": key, "consumer_secret": secret})
        return flow, url
    raise AssertionError("unreachable")


def _exchange(session: Session, flow: PinFlow) -> tuple[str, str]:
    ask, say = session.dialogue.ask, session.dialogue.say
    for attempt in range(TRIES):
        pin = ask("PIN (or press Enter to stop)")
        if not pin:
            raise NotConnected(
                "no PIN given. If you pressed Cancel, the account was not connected; "
                f"run `python -m bot connect x --account {session.account.name}` again when ready"
            )
        try:
            return flow.finish(pin)
        except CodeRefused as exc:
            if attempt == TRIES - 1:
                raise NotConnected(
                    f"{exc}. Run `python -m bot connect x --account {session.account.name}` "
                    "again for a new address and a new PIN"
                ) from None
            say(f"{exc}. Check the digits and type it again.")
    raise AssertionError("unreachable")
