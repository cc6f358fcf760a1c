"""The X adapter with the real tweepy against the sandbox X emulator, checked in /_sandbox/state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.errors import AuthFailed, Duplicate, RateLimited, Rejected, Transient
from bot.platforms import Batch, Media, Outgoing, Published
from bot.platforms.tid import make_tid
from bot.platforms.x import XClient
from tests.clock import START
from tests.emulated import Emulated, emulated, posts_of, read_all
from tests.imagefiles import png


class Sandbox(Emulated):
    def client(self, index: int = 0, timeout: float = 5, **changes: str) -> XClient:
        client = self.open(self.account(index, **changes), timeout=timeout)
        assert isinstance(client, XClient)
        return client

    def posts(self) -> list[dict[str, Any]]:
        posts: list[dict[str, Any]] = self.state()["posts"]
        return posts


@pytest.fixture
def x() -> Iterator[Sandbox]:
    with emulated(Sandbox, "x") as sandbox:
        yield sandbox


def message(text: str, **fields: Any) -> Outgoing:
    return Outgoing(text=text, nonce=make_tid(START), **fields)


def test_verify_names_the_account(x: Sandbox) -> None:
    assert x.client(0).verify() == "ntfi_main"
    assert x.client(1).verify() == "ntfi_account2"


def test_a_post_lands_once_with_its_text(x: Sandbox) -> None:
    published = x.client().publish(message("Drop the ICE contracts. #NoTechForICE https://example.org/p"))
    posts = x.posts()
    assert [p["text"] for p in posts] == ["Drop the ICE contracts. #NoTechForICE https://example.org/p"]
    assert posts[0]["id"] == published.id
    assert published.url.endswith(f"/status/{published.id}")


def test_a_thread_is_a_reply_chain(x: Sandbox) -> None:
    client = x.client()
    first = client.publish(message("Part one"))
    second = client.publish(message("Part two", reply_to=first, root=first))
    third = client.publish(message("Part three", reply_to=second, root=first))
    by_id = {p["id"]: p for p in x.posts()}
    assert by_id[first.id]["in_reply_to"] is None
    assert by_id[second.id]["in_reply_to"] == first.id
    assert by_id[third.id]["in_reply_to"] == second.id


def test_images_carry_their_alt_text(x: Sandbox, tmp_path: Path) -> None:
    rally, banner = tmp_path / "rally.png", tmp_path / "banner.png"
    rally.write_bytes(png(8, 4))
    banner.write_bytes(png(3, 3))
    x.client().publish(
        message(
            "Rally today",
            images=(Media(rally, "People holding a banner"), Media(banner, "The banner: No Tech for ICE")),
        )
    )
    (post,) = x.posts()
    assert [m["alt"] for m in post["media"]] == ["People holding a banner", "The banner: No Tech for ICE"]


def test_refused_credentials_are_auth_failed_and_never_shown(x: Sandbox) -> None:
    client = x.client(access_token_secret="wrong-secret-value")
    with pytest.raises(AuthFailed) as raised:
        client.publish(message("hello"))
    assert "wrong-secret-value" not in str(raised.value)
    assert "wrong-secret-value" not in repr(client)
    assert x.posts() == []


def test_one_account_refused_while_the_other_posts(x: Sandbox) -> None:
    with pytest.raises(AuthFailed):
        x.client(0, consumer_secret="nope").publish(message("from main"))
    x.client(1).publish(message("from account2"))
    assert [p["author"] for p in x.posts()] == ["ntfi_account2"]


def test_a_duplicate_is_its_own_rejection_with_x_message(x: Sandbox) -> None:
    client = x.client()
    client.publish(message("Same words twice"))
    with pytest.raises(Duplicate, match="duplicate content"):
        client.publish(message("Same words twice"))


def test_an_over_long_post_is_rejected_with_x_message(x: Sandbox) -> None:
    with pytest.raises(Rejected, match="not permitted"):
        x.client().publish(message("a" * 281))
    assert x.posts() == []


def test_503_is_transient_and_429_says_when_to_retry(x: Sandbox) -> None:
    client = x.client()
    x.fault(method="POST", path="/2/tweets", status=503)
    with pytest.raises(Transient):
        client.publish(message("try again"))
    x.fault(method="POST", path="/2/tweets", status=429, reset_in=30)
    with pytest.raises(RateLimited) as raised:
        client.publish(message("try again"))
    assert raised.value.retry_after == pytest.approx(30, abs=1)
    client.publish(message("try again"))
    assert len(x.posts()) == 1


def test_a_timeout_is_transient(x: Sandbox) -> None:
    client = x.client(timeout=0.2)
    x.fault(method="POST", path="/2/tweets", latency_ms=600)
    with pytest.raises(Transient):
        client.publish(message("slow"))


def test_lost_answer_after_the_write_is_found(x: Sandbox) -> None:
    client = x.client()
    claimed = x.clock()
    x.fault(method="POST", path="/2/tweets", drop="after")
    with pytest.raises(Transient):
        client.publish(message("Sign the petition & share: https://example.org/p"))
    found = client.find_published(message("Sign the petition & share: https://example.org/p"), since=claimed)
    (post,) = x.posts()
    assert found is not None and found.id == post["id"]


def test_the_lookup_after_a_lost_answer_follows_next_tokens_past_short_pages(x: Sandbox) -> None:
    """X fills a page from its index and then drops deleted posts: a page of 100 can come back
    empty with a next_token. Stopping there would miss the post and resend it."""
    client = x.client()
    claimed = x.clock()
    x.fault(method="POST", path="/2/tweets", drop="after")
    with pytest.raises(Transient):
        client.publish(message("The one that went out"))
    later = [client.publish(message(f"Since retracted {n}")) for n in range(100)]
    for published in later:
        client.delete(published)
    found = client.find_published(message("The one that went out"), since=claimed)
    assert found is not None and found.id == x.posts()[0]["id"]


def test_lost_request_before_the_write_is_not_found(x: Sandbox) -> None:
    client = x.client()
    claimed = x.clock()
    x.fault(method="POST", path="/2/tweets", drop="before")
    with pytest.raises(Transient):
        client.publish(message("Never arrived"))
    assert client.find_published(message("Never arrived"), since=claimed) is None
    assert x.posts() == []


def test_the_same_text_from_an_earlier_cycle_is_not_mistaken_for_the_lost_one(x: Sandbox) -> None:
    client = x.client()
    client.publish(message("Call your representative today"))
    x.clock.now += timedelta(days=1)
    assert client.find_published(message("Call your representative today"), since=x.clock()) is None


def test_another_accounts_post_is_not_ours(x: Sandbox) -> None:
    claimed = x.clock()
    x.client(1).publish(message("Shared words"))
    assert x.client(0).find_published(message("Shared words"), since=claimed) is None


def test_delete_removes_the_post_and_can_be_repeated(x: Sandbox) -> None:
    client = x.client()
    published = client.publish(message("Retract me"))
    client.delete(published)
    client.delete(published)
    (post,) = x.posts()
    assert post["deleted"] is True


def test_repost_retweets_an_allys_post(x: Sandbox) -> None:
    (ally,) = x.audience(kind="hashtag", author="ally", text="Tech workers say no #NoTechForICE")
    reposted = x.client().repost(ally["id"])
    assert reposted.id == ally["id"]
    retweets = [p for p in x.posts() if p["id"] != ally["id"]]
    assert len(retweets) == 1
    assert retweets[0]["raw"]["referenced_tweets"] == [{"type": "retweeted", "id": ally["id"]}]


def test_thread_reply_to_a_deleted_part_is_rejected(x: Sandbox) -> None:
    client = x.client()
    first = client.publish(message("Part one"))
    client.delete(first)
    with pytest.raises(Rejected):
        client.publish(message("Part two", reply_to=Published(first.id, first.url)))


# -- monitoring reads ------------------------------------------------------------------------


def test_replies_and_mentions_are_read_once_with_their_links(x: Sandbox) -> None:
    client = x.client()
    ours = client.publish(message("Drop the contracts #NoTechForICE"))
    x.clock.now += timedelta(minutes=1)
    x.audience(kind="reply", author="alice", text="Agreed!", to=ours.id)
    x.audience(kind="mention", author="bob", text="what do you think?")

    def read(cursor: str | None) -> Batch:
        return client.read_notifications(cursor, START - timedelta(hours=1))

    first = read_all(read)
    mentions = posts_of(first)
    assert [(m.author, m.in_reply_to, m.mentions_us) for m in mentions] == [
        ("alice", ours.id, True),
        ("bob", None, True),
    ]
    assert mentions[0].text.endswith("Agreed!")
    assert posts_of(read_all(read, first[-1].cursor)) == []
    x.audience(kind="mention", author="carol", text="hello")
    assert [m.author for m in posts_of(read_all(read, first[-1].cursor))] == ["carol"]


def test_hashtag_search_pages_through_and_tells_our_posts_apart(x: Sandbox) -> None:
    client = x.client()
    client.publish(message("Our own #NoTechForICE post"))
    x.clock.now += timedelta(minutes=1)
    x.audience(kind="hashtag", author="dana", text="Solidarity #NoTechForICE", count=150)

    def read(cursor: str | None) -> Batch:
        return client.read_hashtags(["NoTechForICE"], cursor, START - timedelta(days=1))

    pages = read_all(read)
    found = posts_of(pages)
    others = [m for m in found if m.author_id != client.identity()]
    assert len(pages) == 2 and len(found) == 151
    assert len(others) == 150 and {m.author for m in others} == {"dana"}
    assert all("NoTechForICE" in m.hashtags for m in found)
    assert posts_of(read_all(read, pages[-1].cursor)) == []


def test_a_search_cursor_older_than_seven_days_restarts_inside_the_window(x: Sandbox) -> None:
    client = x.client()

    def read(cursor: str | None) -> Batch:
        return client.read_hashtags(["NoTechForICE"], cursor, START)

    x.audience(kind="hashtag", author="erin", text="Old #NoTechForICE")
    cursor = read_all(read)[-1].cursor
    x.clock.now += timedelta(days=8)
    x.audience(kind="hashtag", author="erin", text="New #NoTechForICE")
    assert [m.text for m in posts_of(read_all(read, cursor))] == ["New #NoTechForICE"]


def test_a_read_only_token_fails_verify_and_posting_as_the_accounts_failure(x: Sandbox) -> None:
    x.control("settings", read_only=["main"])
    with pytest.raises(AuthFailed, match="x-access-level: read") as refused:
        x.client().verify()
    assert "Read and write" in str(refused.value)
    with pytest.raises(AuthFailed, match="oauth1 app permissions"):
        x.client().publish(message("Never posted"))
    assert x.client(1).verify() == "ntfi_account2" and x.posts() == []


@pytest.mark.parametrize("body", ['{"data": null}', '{"data": {"id": "1"}}', '{"dat'])
def test_a_malformed_users_me_answer_is_transient_never_a_bare_error(x: Sandbox, body: str) -> None:
    x.fault(method="GET", path="/2/users/me", body=body)
    with pytest.raises(Transient, match="X: malformed answer"):
        x.client().verify()
