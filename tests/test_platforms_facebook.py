"""The Facebook adapter (our Graph client on requests) against the sandbox Graph emulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.errors import AuthFailed, Duplicate, RateLimited, Rejected, Transient
from bot.platforms import Media, Outgoing, Published
from bot.platforms.facebook import FacebookClient
from bot.platforms.graph import split_version, usage_of
from tests.clock import START
from tests.emulated import Emulated, emulated
from tests.imagefiles import png

FEED = "/*/feed"


class Sandbox(Emulated):
    def client(self, index: int = 0, **changes: str) -> FacebookClient:
        client = self.open(self.account(index, **changes))
        assert isinstance(client, FacebookClient)
        return client

    def posts(self) -> list[dict[str, Any]]:
        return list(self.state()["posts"])


@pytest.fixture
def fb() -> Iterator[Sandbox]:
    with emulated(Sandbox, "facebook") as sandbox:
        yield sandbox


def message(text: str, **fields: Any) -> Outgoing:
    return Outgoing(text=text, nonce="unused", **fields)


def test_verify_names_the_page_and_its_token(fb: Sandbox) -> None:
    assert fb.client().verify() == "Fight for the Future (token never expires)"
    fb.control("settings", expires_at=int(START.timestamp()) + 86_400)
    assert fb.client().verify() == "Fight for the Future (token expires 2026-12-02 14:00 UTC)"
    fb.control("settings", scopes=["pages_show_list", "pages_read_engagement"])
    with pytest.raises(
        AuthFailed, match=r"lacks the permission\(s\) pages_manage_posts, pages_read_user_content"
    ):
        fb.client().verify()


def test_a_bad_token_or_proof_is_auth_failed_and_never_shows_the_token(fb: Sandbox) -> None:
    with pytest.raises(AuthFailed, match=r"code 190") as bad:
        fb.client(access_token="EAAGwrong").publish(message("Hello"))
    assert "EAAGwrong" not in str(bad.value)
    with pytest.raises(Rejected, match="appsecret_proof") as proof:
        fb.client(app_secret="not-the-secret").verify()
    assert "not-the-secret" not in str(proof.value)
    fb.control("settings", require_proof=True)
    assert fb.client().verify().startswith("Fight for the Future")  # the right proof is sent


def test_text_link_and_images_with_alt_text_make_one_post(fb: Sandbox, tmp_path: Path) -> None:
    images = []
    for n, alt in enumerate(["A march", ""]):
        path = tmp_path / f"{n}.png"
        path.write_bytes(png(4, 4))
        images.append(Media(path, alt))
    published = fb.client().publish(
        message("Drop ICE #NoTechForICE", link="https://example.org/act", images=tuple(images))
    )
    (post,) = fb.posts()
    assert published.id == post["id"]
    assert published.url == post["raw"]["permalink_url"]
    assert post["text"] == "Drop ICE #NoTechForICE" and post["raw"]["link"] == "https://example.org/act"
    assert [m["alt"] for m in post["media"]] == ["A march", None]


def test_an_image_that_became_a_link_out_of_content_is_never_uploaded(fb: Sandbox, tmp_path: Path) -> None:
    content = tmp_path / "content"
    content.mkdir()
    secret = tmp_path / "secret.png"  # beside config.yaml, as .env is
    secret.write_bytes(png(3, 3))
    (content / "banner.png").symlink_to(secret)
    with pytest.raises(Rejected, match="link"):
        fb.client().publish(message("Drop ICE", images=(Media(content / "banner.png", "", content),)))
    assert fb.posts() == []


def test_a_lost_answer_is_found_among_the_pages_posts(fb: Sandbox) -> None:
    client = fb.client()
    fb.fault(method="POST", path=FEED, drop="after")
    with pytest.raises(Transient):
        client.publish(message("Lost answer"))
    found = client.find_published(message("Lost answer"), since=START)
    assert found is not None and found.id == fb.posts()[0]["id"]
    assert client.find_published(message("Never sent"), since=START) is None
    # 506 on the retry is a reason to look, and the look finds it.
    with pytest.raises(Duplicate, match="code 506"):
        client.publish(message("Lost answer"))


def test_graph_errors_become_ours(fb: Sandbox) -> None:
    client = fb.client()
    fb.fault(method="POST", path=FEED, code=2)
    with pytest.raises(Transient, match="code 2"):
        client.publish(message("One"))
    fb.fault(method="POST", path=FEED, code=368)
    with pytest.raises(Rejected, match="policy; not retried") as blocked:
        client.publish(message("Two"))
    assert not isinstance(blocked.value, Duplicate)
    fb.fault(method="POST", path=FEED, status=429, reset_in=900)
    with pytest.raises(RateLimited) as limited:
        client.publish(message("Three"))
    assert limited.value.retry_after == 900  # estimated_time_to_regain_access: 15 minutes
    fb.clock.advance(minutes=5)
    with pytest.raises(RateLimited) as waiting:  # no call until then: calls would extend the block
        client.publish(message("Three"))
    assert waiting.value.retry_after == 600
    fb.clock.advance(minutes=10)
    fb.fault(method="POST", path=FEED, code=613)
    with pytest.raises(RateLimited) as no_estimate:
        client.publish(message("Four"))
    assert no_estimate.value.retry_after is None  # the retry policy's own backoff then
    fb.fault(method="POST", path=FEED, status=503)
    with pytest.raises(Transient):
        client.publish(message("Five"))
    assert fb.posts() == []


def test_delete_twice_is_fine_and_repost_is_refused(fb: Sandbox) -> None:
    client = fb.client()
    published = client.publish(message("Retract me"))
    client.delete(published)
    client.delete(published)
    assert fb.posts()[0].get("deleted") is True
    with pytest.raises(AuthFailed, match="code 200"):  # another Page's post: a permission error
        client.delete(Published(id=fb.client(1).publish(message("Not ours")).id, url=""))
    with pytest.raises(Rejected, match="cannot share"):
        client.repost("123_456")


def test_notifications_are_comments_on_our_posts_and_mentions_of_the_page(fb: Sandbox) -> None:
    client = fb.client()
    ours = client.publish(message("Our ask"))
    fb.clock.advance(60)
    comment = fb.audience("reply", "Signed! #NoTechForICE", author="alice", to=ours.id)[0]
    fb.audience("reply", "Me too", author="bob", to=comment["id"])
    fb.audience("mention", "is right about this", author="carol")
    fb.audience("hashtag", "nobody lists this", author="dan")
    batch = client.read_notifications(None, START)
    by_author = {m.author: m for m in batch.posts}
    assert set(by_author) == {"alice", "bob", "carol"}
    assert by_author["alice"].in_reply_to == ours.id and by_author["alice"].hashtags == ("NoTechForICE",)
    assert by_author["bob"].in_reply_to == ours.id
    assert by_author["carol"].mentions_us and by_author["carol"].mentioned == (client.identity(),)
    fb.clock.advance(60)
    again = client.read_notifications(batch.cursor, START)
    # Only the newest second is read again (whole-second times); the ledger drops the repeats.
    assert {m.id for m in again.posts} <= {m.id for m in batch.posts}
    fb.clock.advance(60)
    fb.audience("reply", "Later", author="erin", to=ours.id)
    fb.clock.advance(60)
    latest = client.read_notifications(again.cursor, START)
    assert sorted(m.author for m in latest.posts) == ["alice", "bob", "carol", "erin"]
    assert [m.author for m in client.read_notifications(latest.cursor, START).posts] == ["erin"]
    assert client.read_hashtags(["NoTechForICE"], None, START).posts == ()


def test_comments_without_ids_are_told_apart_by_their_permalinks(fb: Sandbox) -> None:
    fb.control("settings", moderate=False)  # a token without the MODERATE task gets no comment ids
    client = fb.client()
    ours = client.publish(message("Our ask"))
    posted = [
        fb.audience("reply", text, author=name, to=ours.id)[0] for name, text in [("a", "1"), ("b", "2")]
    ]
    batch = client.read_notifications(None, START)
    assert sorted(m.id for m in batch.posts) == sorted(p["id"] for p in posted)


def test_usage_headers_and_versions_are_read() -> None:
    buc = '{"123":[{"type":"pages","call_count":97,"total_cputime":3,"estimated_time_to_regain_access":7}]}'
    assert usage_of({"X-Business-Use-Case-Usage": buc}) == (97, 7)
    assert usage_of({"x-app-usage": '{"call_count":28,"total_time":25,"total_cputime":99}'}) == (99, 0)
    assert usage_of({"X-App-Usage": "not json", "X-Business-Use-Case-Usage": "[]"}) is None
    assert split_version("https://graph.facebook.com/v27.0") == ("https://graph.facebook.com", "v27.0")
    assert split_version("http://127.0.0.1:8804/") == ("http://127.0.0.1:8804", "v27.0")


def test_the_token_is_in_no_url_and_no_error(fb: Sandbox) -> None:
    account = fb.account()
    token = account.credentials["access_token"]
    unreachable = fb.open(replace(account, base_url="http://127.0.0.1:9"))
    with pytest.raises(Transient) as failed:
        unreachable.verify()
    chain = f"{failed.value} {failed.value.__cause__!r} {failed.value.__cause__}"
    assert token not in chain and "ConnectionError" in str(failed.value)
