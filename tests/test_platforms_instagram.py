"""The Instagram adapter against the emulator over real HTTP: waiting for a container (with an
injected sleeper), the container's status deciding after a lost answer, and the monitoring reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.campaign.model import Account
from bot.errors import Rejected, Transient
from bot.platforms import Media, Outgoing
from bot.platforms.instagram import WAITS, InstagramClient
from bot.sandbox import start_sandbox
from bot.sandbox.imagehost import ImageHost
from tests.imagefiles import jpeg


class World:
    def __init__(self, content: Path) -> None:
        self.sandbox = start_sandbox(accounts=1)
        self.host = ImageHost(content).start()
        described = self.sandbox.describe()["instagram"]
        self.base = described["base_url"]
        account = described["accounts"][0]
        self.user = account["ig_user_id"]
        self.slept: list[float] = []
        self.client = InstagramClient(
            Account(
                "instagram",
                "main",
                f"{self.base}/v27.0",
                {**account, "media_base_url": self.host.base_url},
            ),
            now=lambda: datetime.now(UTC),
            sleep=self.slept.append,
        )
        self.image = Media(content / "sign.jpg", "A sign", content)
        self.settings(processing_seconds=0)

    def settings(self, **values: Any) -> None:
        requests.post(f"{self.base}/_sandbox/settings", data=json.dumps(values), timeout=5).raise_for_status()

    def audience(self, **payload: Any) -> list[dict[str, Any]]:
        answer = requests.post(f"{self.base}/_sandbox/audience", data=json.dumps(payload), timeout=5)
        posts: list[dict[str, Any]] = answer.json()["posts"]
        return posts

    def state(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(f"{self.base}/_sandbox/state", timeout=5).json()
        return answer


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    (tmp_path / "sign.jpg").write_bytes(jpeg(1080, 1080))
    world = World(tmp_path)
    try:
        yield world
    finally:
        world.client.close()
        world.host.stop()
        world.sandbox.stop()


def test_a_container_still_processing_is_waited_for_within_bounds(world: World) -> None:
    world.settings(processing_seconds=3600)
    recorded: list[str] = []
    message = Outgoing(
        "Drop ICE", nonce="n", images=(world.image,), on_checkpoint=lambda c: recorded.append(c) or True
    )
    with pytest.raises(Transient, match="still processing"):
        world.client.publish(message)
    assert world.slept == list(WAITS) and len(recorded) == 1
    # The next attempt finds the same container (the ledger kept it) and publishes it once ready.
    world.settings(processing_seconds=0)
    again = Outgoing("Drop ICE", nonce="n", images=(world.image,), checkpoint=recorded[0])
    assert world.client.find_published(again, since=datetime.now(UTC)) is None
    published = world.client.publish(again)
    assert [c["id"] for c in world.state()["containers"]] == recorded
    # Once published, the container says so and the media is found by its caption.
    found = world.client.find_published(again, since=datetime.now(UTC) - timedelta(minutes=1))
    assert found is not None and found.id == published.id and found.url.endswith("/")


def test_a_lost_claim_stops_before_media_publish(world: World) -> None:
    message = Outgoing("Drop ICE", nonce="n", images=(world.image,), on_checkpoint=lambda c: False)
    with pytest.raises(Transient, match="claim was lost"):
        world.client.publish(message)
    assert world.state()["posts"] == []


def test_no_image_is_refused_before_any_call(world: World) -> None:
    with pytest.raises(Rejected, match="needs an image"):
        world.client.publish(Outgoing("Words only", nonce="n"))


def test_comments_tags_and_the_hashtag_are_read_with_one_hashtag_search(world: World) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    media = world.client.publish(Outgoing("Ours #NoTechForICE", nonce="n", images=(world.image,)))
    comment = world.audience(kind="reply", to=media.id, text="Count me in", author="bob")[0]
    world.audience(kind="reply", to=comment["id"], text="Me too", author="cy")
    world.audience(kind="mention", text="look at this", author="dee")
    world.audience(kind="hashtag", text="Big tech out", author="eve")
    notes = world.client.read_notifications(None, start)
    seen = sorted((m.author, m.text, m.in_reply_to is not None, m.mentions_us) for m in notes.posts)
    assert seen == [
        ("bob", "Count me in", True, False),
        ("cy", "Me too", True, False),
        ("dee", "@fightforthefuture look at this", False, True),
    ]
    again = world.client.read_notifications(notes.cursor, start)
    assert {m.id for m in again.posts} <= {m.id for m in notes.posts}  # at most the same second again
    tags = world.client.read_hashtags(["NoTechForICE"], None, start)
    assert sorted(m.text for m in tags.posts) == ["Big tech out #NoTechForICE", "Ours #NoTechForICE"]
    world.client.read_hashtags(["NoTechForICE"], tags.cursor, start)
    # The id is searched once and cached: the account's 30-per-7-days budget spends one tag.
    assert world.state()["hashtag_searches"] == {"main": ["notechforice"]}


def test_without_media_base_url_the_facebook_page_hosts_the_image(world: World) -> None:
    page = world.sandbox.describe()["facebook"]["accounts"][0]
    account = world.sandbox.describe()["instagram"]["accounts"][0]
    client = InstagramClient(
        Account("instagram", "main", f"{world.base}/v27.0", {**account, "page_id": page["page_id"]}),
        now=lambda: datetime.now(UTC),
        sleep=world.slept.append,
    )
    try:
        published = client.publish(Outgoing("Hosted by the Page", nonce="n", images=(world.image,)))
    finally:
        client.close()
    (media,) = [p for p in world.state()["posts"] if p["id"] == published.id]
    assert media["text"] == "Hosted by the Page"
    facebook = requests.get(f"{world.sandbox.servers['facebook'].base_url}/_sandbox/state", timeout=5).json()
    assert facebook["posts"] == []  # an unpublished photo: on no feed


def test_a_published_container_whose_media_is_not_found_is_never_published_again(world: World) -> None:
    recorded: list[str] = []
    first = Outgoing(
        "Drop ICE", nonce="n", images=(world.image,), on_checkpoint=lambda c: recorded.append(c) or True
    )
    world.client.publish(first)
    # The caption changed since (staff edited the queue): the lookup by caption misses it.
    again = Outgoing("Drop ICE, edited", nonce="n", images=(world.image,), checkpoint=recorded[0])
    assert world.client.find_published(again, since=datetime.now(UTC) - timedelta(minutes=1)) is None
    with pytest.raises(Rejected, match="already published"):
        world.client.publish(again)
    assert len(world.state()["posts"]) == 1 and len(world.state()["containers"]) == 1
