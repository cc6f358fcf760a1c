"""What real people send that our own posts never are: a long answer as a self-reply thread, and
a post whose author is suspended after the bot saw it. Through the emulators and the monitor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from bot.sandbox.server import thread_texts
from tests.test_monitor_sandbox import World, running

NETWORKS = ("x", "bluesky", "mastodon")


@pytest.mark.parametrize("platform", NETWORKS)
def test_a_thread_answering_our_post_is_logged_part_by_part_as_replies_to_it(
    platform: str, tmp_path: Path
) -> None:
    with running(platform, tmp_path) as world:  # type: ignore[arg-type]
        ours = world.publish("Drop the contracts. #NoTechForICE")
        world.poll()
        parts = world.control("audience", kind="thread", author="farah", to=ours.id, parts=12)["posts"]
        assert len(parts) == 12
        assert [p["in_reply_to"] for p in parts[1:]] == [p["id"] for p in parts[:-1]]
        found = world.poll()
        assert [(s.kind, s.in_reply_to) for s in found] == [("reply", ours.url)] * 12
        assert [s.post.id for s in found] == [p["id"] for p in parts]
        assert "技術者として" in found[1].post.text and "🧵" in found[0].post.text
        assert world.poll() == []
        assert len(world.logged()) == 12


def test_thread_parts_mix_scripts_and_fill_some_to_the_limit() -> None:
    texts = thread_texts(9, 300)
    assert [len(t) == 300 for t in texts] == [i % 4 == 3 for i in range(9)]
    assert any(not t.isascii() for t in texts)


@pytest.mark.parametrize("platform", NETWORKS)
def test_a_post_whose_author_is_suspended_later_is_kept_like_a_deleted_one(
    platform: str, tmp_path: Path
) -> None:
    with running(platform, tmp_path) as world:  # type: ignore[arg-type]
        world.poll()
        (post,) = world.audience("hashtag", "Buy followers now", author="spammer1")
        assert [s.post.id for s in world.poll()] == [post["id"]]
        answer = world.control("audience", kind="suspend", author="spammer1")
        assert answer["posts"][0]["deleted"] == [post["id"]]
        [gone] = [p for p in world.state()["posts"] if p["id"] == post["id"]]
        assert gone["deleted"] is True
        assert lookup_says_gone(world, platform, post)
        # Nothing new is reported, and what was seen stays until the retention, as a deletion.
        assert world.poll() == []
        assert [r["id"] for r in world.logged()] == [post["id"]]
        refused = requests.post(
            f"{world.url}/_sandbox/audience",
            json={"kind": "hashtag", "author": "spammer1", "text": "again"},
            headers=world.control_headers,
            timeout=5,
        )
        assert refused.status_code == 400


def lookup_says_gone(world: World, platform: str, post: dict[str, Any]) -> bool:
    """The network's own read of the post (or its author) says it is gone, as it says it."""
    base = world.url
    if platform == "mastodon":
        return requests.get(f"{base}/api/v1/statuses/{post['id']}", timeout=5).status_code == 404
    if platform == "bluesky":
        author = str(post["author"])
        profile = requests.get(f"{base}/xrpc/app.bsky.actor.getProfile", params={"actor": author}, timeout=5)
        return profile.status_code == 400 and profile.json()["error"] == "AccountTakedown"
    # X, through tweepy: a 200 with only the error object a suspended author's tweet gets.
    answer = world.client()._client.get_tweet(post["id"], user_auth=True)  # type: ignore[attr-defined]
    [error] = answer.errors
    return answer.data is None and error["title"] == "Authorization Error" and error["value"] == post["id"]
