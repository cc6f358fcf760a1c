"""The Mastodon adapter with the real Mastodon.py against the sandbox Mastodon, checked in /_sandbox/state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.errors import AuthFailed, RateLimited, Rejected, Transient
from bot.platforms import Batch, Media, Outgoing
from bot.platforms.mastodon import MastodonClient
from bot.platforms.tid import make_tid
from tests.clock import START
from tests.emulated import Emulated, emulated, posts_of, read_all
from tests.imagefiles import png

STATUSES = "/api/v1/statuses"


class Sandbox(Emulated):
    def client(self, index: int = 0, timeout: float = 5, **changes: str) -> MastodonClient:
        client = self.open(self.account(index, **changes), timeout=timeout)
        assert isinstance(client, MastodonClient)
        return client

    def posts(self) -> list[dict[str, Any]]:
        """Our statuses and the audience's (boosts are listed apart, under `reposts`)."""
        return list(self.state()["posts"])


@pytest.fixture
def masto() -> Iterator[Sandbox]:
    with emulated(Sandbox, "mastodon") as sandbox:
        yield sandbox


_clock_ids = iter(range(10**6))


def message(text: str, **fields: Any) -> Outgoing:
    return Outgoing(text=text, nonce=make_tid(START, clock_id=next(_clock_ids) % 1024), **fields)


# -- posting ---------------------------------------------------------------------------------


def test_verify_names_the_account(masto: Sandbox) -> None:
    assert masto.client(0).verify() == "main"
    assert masto.client(1).verify() == "account2"


def test_a_post_with_content_warning_visibility_and_language(masto: Sandbox) -> None:
    published = masto.client().publish(
        message(
            "Drop the ICE contracts. #NoTechForICE https://example.org/p",
            spoiler_text="immigration detention",
            visibility="unlisted",
            language="en",
        )
    )
    (post,) = masto.posts()
    assert post["id"] == published.id and published.url == post["url"]
    assert post["text"] == "Drop the ICE contracts. #NoTechForICE https://example.org/p"
    raw = post["raw"]
    assert (raw["spoiler_text"], raw["visibility"], raw["language"]) == (
        "immigration detention",
        "unlisted",
        "en",
    )


def test_the_idempotency_key_makes_a_repeat_return_the_first_status(masto: Sandbox) -> None:
    client = masto.client()
    outgoing = message("Sign the letter")
    first = client.publish(outgoing)
    again = client.publish(outgoing)  # a retry after a lost answer, with the same nonce
    assert again.id == first.id
    assert len(masto.posts()) == 1


def test_a_thread_is_a_reply_chain(masto: Sandbox) -> None:
    client = masto.client()
    first = client.publish(message("Part one"))
    second = client.publish(message("Part two", reply_to=first, root=first))
    third = client.publish(message("Part three", reply_to=second, root=first))
    by_id = {p["id"]: p for p in masto.posts()}
    assert by_id[first.id]["in_reply_to"] is None
    assert by_id[second.id]["in_reply_to"] == first.id
    assert by_id[third.id]["in_reply_to"] == second.id


def test_images_carry_their_description(masto: Sandbox, tmp_path: Path) -> None:
    rally, banner = tmp_path / "rally.png", tmp_path / "banner.png"
    rally.write_bytes(png(8, 4))
    banner.write_bytes(png(3, 3))
    masto.client().publish(
        message("Rally", images=(Media(rally, "People holding a banner"), Media(banner, "The banner")))
    )
    (post,) = masto.posts()
    assert [m["alt"] for m in post["media"]] == ["People holding a banner", "The banner"]
    assert [m["description"] for m in post["raw"]["media_attachments"]] == [
        "People holding a banner",
        "The banner",
    ]


# -- errors ----------------------------------------------------------------------------------


def test_a_refused_token_is_auth_failed_and_never_shown(masto: Sandbox) -> None:
    client = masto.client(access_token="not-the-token")
    with pytest.raises(AuthFailed) as raised:
        client.publish(message("hello"))
    assert "not-the-token" not in str(raised.value) and "not-the-token" not in repr(client)


def test_one_account_refused_while_the_other_posts(masto: Sandbox) -> None:
    with pytest.raises(AuthFailed):
        masto.client(0, access_token="nope").publish(message("from main"))
    masto.client(1).publish(message("from account2"))
    assert [p["author"] for p in masto.posts()] == ["account2"]


def test_an_over_long_post_is_rejected_with_the_servers_message(masto: Sandbox) -> None:
    with pytest.raises(Rejected, match="500"):
        masto.client().publish(message("a" * 501))
    assert masto.posts() == []


def test_a_content_warning_counts_toward_the_limit(masto: Sandbox) -> None:
    with pytest.raises(Rejected, match="character limit"):
        masto.client().publish(message("a" * 480, spoiler_text="b" * 30))


def test_503_is_transient_and_429_says_when_to_retry(masto: Sandbox) -> None:
    client = masto.client()
    masto.control("faults", method="POST", path=STATUSES, status=503)
    with pytest.raises(Transient):
        client.publish(message("try again"))
    masto.control("faults", method="POST", path=STATUSES, status=429, reset_in=45)
    with pytest.raises(RateLimited) as raised:
        client.publish(message("try again"))
    assert raised.value.retry_after == pytest.approx(45, abs=1)


def test_a_timeout_is_transient(masto: Sandbox) -> None:
    client = masto.client(timeout=0.2)
    masto.control("faults", method="POST", path=STATUSES, latency_ms=600)
    with pytest.raises(Transient):
        client.publish(message("slow"))


# -- reconciliation --------------------------------------------------------------------------


def test_lost_answer_after_the_write_is_found(masto: Sandbox) -> None:
    client = masto.client()
    outgoing = message("Sign & share:\nhttps://example.org/p #NoTechForICE")
    masto.control("faults", method="POST", path=STATUSES, drop="after")
    with pytest.raises(Transient):
        client.publish(outgoing)
    found = client.find_published(outgoing, since=START)
    (post,) = masto.posts()
    assert found is not None and found.id == post["id"]


def test_a_lost_answer_is_matched_on_the_source_text_not_the_rendered_html(masto: Sandbox) -> None:
    """Mastodon shows `@alice@example.social` as `@alice` in its HTML: only the status's source
    (`GET /api/v1/statuses/:id/source`, what real Mastodon has) gives back what was sent."""
    masto.control("audience", kind="hashtag", author="alice", text="hello")  # alice exists
    client = masto.client()
    outgoing = message("Thanks @alice@example.social for marching #NoTechForICE")
    masto.control("faults", method="POST", path=STATUSES, drop="after")
    with pytest.raises(Transient):
        client.publish(outgoing)
    (ours,) = [p for p in masto.posts() if p["author"] == "main"]
    assert "@alice@example.social" not in ours["raw"]["content"]
    found = client.find_published(outgoing, since=START)
    assert found is not None and found.id == ours["id"]


def test_lost_request_before_the_write_is_not_found(masto: Sandbox) -> None:
    client = masto.client()
    outgoing = message("Never arrived")
    masto.control("faults", method="POST", path=STATUSES, drop="before")
    with pytest.raises(Transient):
        client.publish(outgoing)
    assert client.find_published(outgoing, since=START) is None


def test_without_idempotency_the_lookup_is_what_prevents_a_double(masto: Sandbox) -> None:
    masto.control("settings", idempotency=False)  # GoToSocial ignores Idempotency-Key
    client = masto.client()
    outgoing = message("Only once, please")
    client.publish(outgoing)
    assert len({client.publish(outgoing).id, masto.posts()[0]["id"]}) == 2  # the key alone does not help
    masto.control("reset")
    masto.control("settings", idempotency=False)
    masto.control("faults", method="POST", path=STATUSES, drop="after")
    with pytest.raises(Transient):
        client.publish(outgoing)
    assert client.find_published(outgoing, since=START) is not None  # so the engine does not resend


def test_the_same_text_from_an_earlier_cycle_is_not_mistaken_for_the_lost_one(masto: Sandbox) -> None:
    client = masto.client()
    client.publish(message("Call your representative"))
    masto.clock.now += timedelta(days=1)
    assert client.find_published(message("Call your representative"), since=masto.clock()) is None


def test_another_accounts_post_is_not_ours(masto: Sandbox) -> None:
    masto.client(1).publish(message("Shared words"))
    assert masto.client(0).find_published(message("Shared words"), since=START) is None


# -- delete and boost ----------------------------------------------------------------------


def test_delete_removes_the_post_and_can_be_repeated(masto: Sandbox) -> None:
    client = masto.client()
    published = client.publish(message("Retract me"))
    client.delete(published)
    client.delete(published)
    (post,) = masto.posts()
    assert post["deleted"] is True


def test_boost_of_an_allys_post(masto: Sandbox) -> None:
    (ally,) = masto.audience(kind="hashtag", author="ally", text="Tech workers say no #NoTechForICE")
    boosted = masto.client().repost(ally["id"])
    (reblog,) = [r for r in masto.state()["reposts"] if r["subject"] == ally["id"]]
    assert reblog["id"] == boosted.id and reblog["author"] == "main"


# -- monitoring reads ------------------------------------------------------------------------


def test_replies_and_mentions_are_read_once_with_their_links(masto: Sandbox) -> None:
    client = masto.client()
    ours = client.publish(message("Drop the contracts #NoTechForICE"))
    masto.clock.now += timedelta(minutes=1)
    masto.audience(kind="reply", author="alice", text="Agreed!", to=ours.id)
    masto.audience(kind="mention", author="bob", text="what do you think?")

    def read(cursor: str | None) -> Batch:
        return client.read_notifications(cursor, START - timedelta(hours=1))

    first = read_all(read)
    mentions = posts_of(first)
    assert [(m.author.split("@")[0], m.in_reply_to, m.public) for m in mentions] == [
        ("alice", ours.id, True),
        ("bob", None, True),
    ]
    assert "Agreed!" in mentions[0].text
    assert posts_of(read_all(read, first[-1].cursor)) == []
    masto.audience(kind="mention", author="carol", text="hello")
    assert [m.author.split("@")[0] for m in posts_of(read_all(read, first[-1].cursor))] == ["carol"]


def test_hashtag_timeline_pages_through_and_tells_our_posts_apart(masto: Sandbox) -> None:
    client = masto.client()

    def read(cursor: str | None) -> Batch:
        return client.read_hashtags(["NoTechForICE"], cursor, START - timedelta(days=1))

    first = read_all(read)
    client.publish(message("Our own #NoTechForICE post"))
    masto.audience(kind="hashtag", author="dana", text="Solidarity #NoTechForICE", count=150)
    pages = read_all(read, first[-1].cursor)
    found = posts_of(pages)
    others = [m for m in found if m.author_id != client.identity()]
    assert len(pages) == 4 and len(found) == 151
    assert len(others) == 150 and {m.author.split("@")[0] for m in others} == {"dana"}
    assert all("notechforice" in [h.lower() for h in m.hashtags] for m in found)
    assert posts_of(read_all(read, pages[-1].cursor)) == []


def test_a_429_names_its_own_reset_while_other_threads_share_the_client(masto: Sandbox) -> None:
    """The reset comes from the 429's own headers, never from another thread's answer."""
    import sys
    import threading

    client = masto.client()
    client.verify()  # the account id is known: every call below is one request
    masto.control(
        "faults", method="GET", path="/api/v1/accounts/verify_credentials", status=429, reset_in=1, times=40
    )
    waits: list[float | None] = []
    lock = threading.Lock()

    def call() -> None:
        for _ in range(10):
            try:
                client.verify()
            except RateLimited as exc:
                with lock:
                    waits.append(exc.retry_after)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a shared last answer gets overwritten
    try:
        threads = [threading.Thread(target=call) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(interval)
    # Exactly the 40 injected 429s: an answer that was not one must not raise RateLimited. (The
    # emulator's resets are behind the wall clock, which Mastodon.py compares them with, so an
    # instance shared between threads sets its reset to None under another's `+=` and raises.)
    assert len(waits) == 40
    assert all(wait is not None and wait <= 2 for wait in waits), sorted(w or 0 for w in waits)[-5:]
