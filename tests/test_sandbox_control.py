"""The sandbox control API (docs/design.md), checked from outside on all three emulators alike.

Each test drives one emulator through `/_sandbox/` over real HTTP and posts through the bot's own
adapter (the real SDK underneath), the way an outside checker would: the key set of a state
post, every documented fault variant, the audience kinds with `count`, `settings` and `reset`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from bot.campaign.model import Account
from bot.errors import PlatformError, RateLimited, Transient
from bot.platforms import Outgoing, PlatformClient, open_client
from bot.platforms.tid import make_tid
from bot.sandbox import Sandbox, start_sandbox

PLATFORMS = ("x", "bluesky", "mastodon")
POST_PATHS = {
    "x": "/2/tweets",
    "bluesky": "/xrpc/com.atproto.repo.createRecord",
    "mastodon": "/api/v1/statuses",
}
STATE_KEYS = {"id", "url", "author", "text", "created_at", "in_reply_to", "media", "raw"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sandbox = start_sandbox(accounts=2)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def clients(sandbox: Sandbox) -> Iterator[dict[str, PlatformClient]]:
    for platform in PLATFORMS:
        control(sandbox, platform, "reset", {})
    opened = {platform: open_client(account(sandbox, platform, 0), timeout=5) for platform in PLATFORMS}
    yield opened
    for client in opened.values():
        client.close()  # type: ignore[attr-defined]


def account(sandbox: Sandbox, platform: str, index: int) -> Account:
    emulator = sandbox.servers[platform].emulator
    creds = dict(emulator.credentials()[index])
    name = creds.pop("name")
    return Account(platform=platform, name=name, base_url=emulator.base_url, credentials=creds)  # type: ignore[arg-type]


def control(sandbox: Sandbox, platform: str, route: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{sandbox.servers[platform].base_url}/_sandbox/{route}", json=body, timeout=5)


def state(sandbox: Sandbox, platform: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(
        f"{sandbox.servers[platform].base_url}/_sandbox/state", timeout=5
    ).json()
    return answer


def texts(sandbox: Sandbox, platform: str) -> list[str]:
    return [p["text"] for p in state(sandbox, platform)["posts"]]


def message(text: str) -> Outgoing:
    return Outgoing(text=text, nonce=make_tid(datetime.now(UTC)))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_state_posts_have_exactly_the_documented_keys(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    ours = clients[platform].publish(message("Drop the contracts #NoTechForICE"))
    control(sandbox, platform, "audience", {"kind": "reply", "author": "alice", "text": "yes", "to": ours.id})
    clients[platform].delete(ours)
    posts = state(sandbox, platform)["posts"]
    assert [set(p) for p in posts] == [STATE_KEYS | {"deleted"}, STATE_KEYS]
    assert posts[0]["deleted"] is True
    assert posts[1]["in_reply_to"] == ours.id
    assert posts[0]["text"] == "Drop the contracts #NoTechForICE"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_state_names_our_accounts_as_config_yaml_does(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    clients[platform].publish(message("from main"))
    control(sandbox, platform, "audience", {"kind": "hashtag", "author": "alice", "text": "#NoTechForICE"})
    answer = state(sandbox, platform)
    authors = [p["author"] for p in answer["posts"]]
    assert set(answer["accounts"]) == {"main", "account2"}
    assert [a == answer["accounts"]["main"] for a in authors] == [True, False]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_status_fault_answers_with_the_platform_error_and_writes_nothing(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    control(
        sandbox,
        platform,
        "faults",
        {"method": "POST", "path": POST_PATHS[platform], "status": 503, "times": 1},
    )
    with pytest.raises(Transient):
        clients[platform].publish(message("first try"))
    clients[platform].publish(message("second try"))
    assert texts(sandbox, platform) == ["second try"]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize(("drop", "written"), [("before", []), ("after", ["lost answer"])])
def test_drop_before_or_after_the_write(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str, drop: str, written: list[str]
) -> None:
    control(sandbox, platform, "faults", {"method": "POST", "path": POST_PATHS[platform], "drop": drop})
    with pytest.raises(Transient):
        clients[platform].publish(message("lost answer"))
    assert texts(sandbox, platform) == written


@pytest.mark.parametrize("platform", PLATFORMS)
def test_rate_limit_fault_gives_the_reset(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    control(
        sandbox,
        platform,
        "faults",
        {"method": "POST", "path": POST_PATHS[platform], "status": 429, "reset_in": 30},
    )
    with pytest.raises(RateLimited) as refused:
        clients[platform].publish(message("too soon"))
    assert refused.value.retry_after is not None and 20 <= refused.value.retry_after <= 31
    assert texts(sandbox, platform) == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_latency_fault_delays_the_answer(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    control(sandbox, platform, "faults", {"method": "POST", "path": POST_PATHS[platform], "latency_ms": 300})
    started = datetime.now(UTC)
    clients[platform].publish(message("slow"))
    assert (datetime.now(UTC) - started).total_seconds() >= 0.3
    assert texts(sandbox, platform) == ["slow"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_fault_for_one_account_spares_the_other(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    other = open_client(account(sandbox, platform, 1), timeout=5)
    try:
        control(
            sandbox,
            platform,
            "faults",
            {
                "method": "POST",
                "path": POST_PATHS[platform],
                "status": 503,
                "account": "account2",
                "times": 5,
            },
        )
        clients[platform].publish(message("main is fine"))
        with pytest.raises(PlatformError):
            other.publish(message("account2 is not"))
    finally:
        other.close()  # type: ignore[attr-defined]
    assert texts(sandbox, platform) == ["main is fine"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_audience_kinds_and_count(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    ours = clients[platform].publish(message("ours"))
    for body in (
        {"kind": "reply", "author": "alice", "text": "a reply", "to": ours.id, "count": 2},
        {"kind": "mention", "author": "bob", "text": "a mention"},
        {"kind": "hashtag", "author": "carol", "text": "a tag #NoTechForICE", "count": 3},
    ):
        answer = control(sandbox, platform, "audience", body)
        assert answer.status_code == 200
        assert len(answer.json()["posts"]) == body.get("count", 1)
    posts = state(sandbox, platform)["posts"][1:]
    assert [p["in_reply_to"] for p in posts[:2]] == [ours.id, ours.id]
    main = state(sandbox, platform)["accounts"]["main"]
    assert f"@{main}".lower() in posts[2]["text"].lower()  # a mention names one of our accounts
    assert all("#NoTechForICE" in p["text"] for p in posts[3:]) and len(posts) == 6


def test_mastodon_without_idempotency_posts_twice(
    sandbox: Sandbox, clients: dict[str, PlatformClient]
) -> None:
    assert control(sandbox, "mastodon", "settings", {"idempotency": False}).status_code == 200
    repeat = message("same key twice")
    first, second = clients["mastodon"].publish(repeat), clients["mastodon"].publish(repeat)
    assert first.id != second.id  # GoToSocial ignores Idempotency-Key
    control(sandbox, "mastodon", "reset", {})
    first, second = clients["mastodon"].publish(repeat), clients["mastodon"].publish(repeat)
    assert first.id == second.id  # reset restores Mastodon's own behaviour


@pytest.mark.parametrize("platform", PLATFORMS)
def test_reset_empties_everything(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    clients[platform].publish(message("gone after reset"))
    control(sandbox, platform, "faults", {"method": "POST", "path": POST_PATHS[platform], "status": 503})
    assert control(sandbox, platform, "reset", {}).status_code == 200
    assert state(sandbox, platform)["posts"] == []
    clients[platform].publish(message("the fault went too"))
    assert texts(sandbox, platform) == ["the fault went too"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_post_urls_lead_to_the_emulator_that_holds_the_post(
    sandbox: Sandbox, clients: dict[str, PlatformClient], platform: str
) -> None:
    base = sandbox.servers[platform].base_url
    ours = clients[platform].publish(message("Where does this link go?"))
    (post,) = state(sandbox, platform)["posts"]
    assert post["url"].startswith(base + "/")  # not x.com or bsky.app, where it does not exist
    opened = requests.get(post["url"], timeout=5)
    assert opened.status_code == 200 and opened.json()["id"] == ours.id
