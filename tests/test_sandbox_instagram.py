"""The Instagram emulator over real HTTP: containers fetched from a real URL, publishing, quota, reads."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.sandbox import start_sandbox
from bot.sandbox.imagehost import ImageHost
from tests.imagefiles import jpeg, png


class Ig:
    def __init__(self, described: dict[str, Any], images: str) -> None:
        self.base = described["base_url"]
        self.user = described["accounts"][0]["ig_user_id"]
        self.token = described["accounts"][0]["access_token"]
        self.images = images

    def call(self, method: str, path: str, **params: str) -> requests.Response:
        params["access_token"] = self.token
        key = "data" if method == "POST" else "params"
        return requests.request(method, f"{self.base}/v27.0{path}", timeout=5, **{key: params})

    def control(self, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = requests.post(f"{self.base}/_sandbox/{route}", data=json.dumps(payload), timeout=5)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def container(self, image: str, **extra: str) -> str:
        answer = self.call("POST", f"/{self.user}/media", image_url=f"{self.images}/{image}", **extra)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    def status(self, container: str, until: str | None = None) -> str:
        for _ in range(100):
            code = str(self.call("GET", f"/{container}", fields="status_code,status").json()["status_code"])
            if until is None or code != "IN_PROGRESS":
                return code
            time.sleep(0.02)
        return code


@pytest.fixture
def ig(tmp_path: Path) -> Iterator[Ig]:
    (tmp_path / "card.jpg").write_bytes(jpeg(1080, 1080))
    (tmp_path / "tall.jpg").write_bytes(jpeg(500, 1000))
    (tmp_path / "card.png").write_bytes(png(100, 100))
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    sandbox, host = start_sandbox(accounts=2), ImageHost(tmp_path).start()
    try:
        ig = Ig(sandbox.describe()["instagram"], host.base_url)
        ig.control("settings", {"processing_seconds": 0})
        yield ig
    finally:
        host.stop()
        sandbox.stop()


def test_a_container_is_fetched_then_published_once(ig: Ig) -> None:
    container = ig.container("card.jpg", caption="Drop ICE #NoTechForICE", alt_text="A protest sign")
    assert ig.status(container, until="done") == "FINISHED"
    published = ig.call("POST", f"/{ig.user}/media_publish", creation_id=container)
    assert published.status_code == 200, published.text
    media_id = published.json()["id"]
    assert ig.status(container) == "PUBLISHED"
    again = ig.call("POST", f"/{ig.user}/media_publish", creation_id=container).json()["error"]
    assert (again["code"], again["error_subcode"]) == (24, 2207008)
    listed = ig.call("GET", f"/{ig.user}/media", fields="id,caption,permalink,alt_text").json()["data"]
    assert [(m["id"], m["caption"], m["alt_text"]) for m in listed] == [
        (media_id, "Drop ICE #NoTechForICE", "A protest sign")
    ]
    limit = ig.call("GET", f"/{ig.user}/content_publishing_limit", fields="quota_usage,config").json()
    assert limit["data"] == [{"quota_usage": 1, "config": {"quota_total": 50, "quota_duration": 86400}}]


@pytest.mark.parametrize(
    ("image", "subcode"),
    [("missing.jpg", 2207052), ("card.png", 2207005), ("broken.jpg", 2207005), ("tall.jpg", 2207009)],
)
def test_an_image_instagram_cannot_use_ends_in_error(ig: Ig, image: str, subcode: int) -> None:
    container = ig.container(image)
    assert ig.status(container, until="done") == "ERROR"
    status = ig.call("GET", f"/{container}", fields="status").json()["status"]
    assert str(subcode) in status
    refused = ig.call("POST", f"/{ig.user}/media_publish", creation_id=container).json()["error"]
    assert refused["code"] == -1


def test_publishing_before_finished_and_past_the_quota_is_refused(ig: Ig) -> None:
    ig.control("settings", {"processing_seconds": 3600, "publish_quota": 1})
    early = ig.container("card.jpg")
    refused = ig.call("POST", f"/{ig.user}/media_publish", creation_id=early).json()["error"]
    assert (refused["code"], refused["error_subcode"]) == (9007, 2207027)
    ig.control("settings", {"processing_seconds": 0})
    first, second = ig.container("card.jpg"), ig.container("card.jpg")
    ig.status(first, until="done"), ig.status(second, until="done")
    assert ig.call("POST", f"/{ig.user}/media_publish", creation_id=first).status_code == 200
    spent = ig.call("POST", f"/{ig.user}/media_publish", creation_id=second).json()["error"]
    assert (spent["code"], spent["error_subcode"]) == (9, 2207042)


def test_a_carousel_needs_two_to_ten_items_without_captions(ig: Ig) -> None:
    one = ig.container("card.jpg", is_carousel_item="true")
    alone = ig.call("POST", f"/{ig.user}/media", media_type="CAROUSEL", children=one).json()["error"]
    assert alone["error_subcode"] == 2207028
    captioned = ig.call(
        "POST", f"/{ig.user}/media", image_url=f"{ig.images}/card.jpg", is_carousel_item="true", caption="x"
    )
    assert captioned.status_code == 400
    two = ig.container("card.jpg", is_carousel_item="true")
    album = ig.call(
        "POST", f"/{ig.user}/media", media_type="CAROUSEL", children=f"{one},{two}", caption="Both"
    )
    album_id = album.json()["id"]
    assert ig.status(album_id, until="done") == "FINISHED"
    media_id = ig.call("POST", f"/{ig.user}/media_publish", creation_id=album_id).json()["id"]
    shown = ig.call("GET", f"/{media_id}", fields="media_type,children").json()
    assert shown["media_type"] == "CAROUSEL_ALBUM" and len(shown["children"]["data"]) == 2


def test_comments_tags_and_hashtag_search_within_their_limits(ig: Ig) -> None:
    container = ig.container("card.jpg", caption="Ours")
    ig.status(container, until="done")
    media_id = ig.call("POST", f"/{ig.user}/media_publish", creation_id=container).json()["id"]
    comment = ig.control("audience", {"kind": "reply", "to": media_id, "text": "Agreed", "author": "bob"})
    ig.control("audience", {"kind": "reply", "to": comment["posts"][0]["id"], "text": "Same", "author": "cy"})
    read = ig.call(
        "GET", f"/{media_id}/comments", fields="id,text,username,timestamp,replies{id,text}"
    ).json()
    assert [(c["username"], c["text"], len(c["replies"]["data"])) for c in read["data"]] == [
        ("bob", "Agreed", 1)
    ]
    ig.control("audience", {"kind": "mention", "text": "look", "author": "dee"})
    tags = ig.call("GET", f"/{ig.user}/tags", fields="id,caption,username").json()["data"]
    assert tags[0]["caption"] == "@fightforthefuture look" and tags[0]["username"] == "dee"
    ig.control("audience", {"kind": "hashtag", "text": "Big tech out", "author": "eve"})
    tag_id = ig.call("GET", "/ig_hashtag_search", user_id=ig.user, q="NoTechForICE").json()["data"][0]["id"]
    recent = ig.call("GET", f"/{tag_id}/recent_media", user_id=ig.user, fields="id,caption").json()["data"]
    assert [m["caption"] for m in recent] == ["Big tech out #NoTechForICE"]
    assert ig.call("GET", f"/{tag_id}/recent_media", user_id=ig.user, fields="username").status_code == 400
    for n in range(29):
        assert ig.call("GET", "/ig_hashtag_search", user_id=ig.user, q=f"tag{n}").status_code == 200
    assert ig.call("GET", "/ig_hashtag_search", user_id=ig.user, q="notechforice").status_code == 200  # again
    assert ig.call("GET", "/ig_hashtag_search", user_id=ig.user, q="onemore").json()["error"]["code"] == 18


def test_errors_come_in_the_graph_envelope(ig: Ig) -> None:
    bad = requests.get(f"{ig.base}/v27.0/{ig.user}/media", params={"access_token": "nope"}, timeout=5).json()
    assert bad["error"]["code"] == 190 and "fbtrace_id" in bad["error"]
    long = ig.call("POST", f"/{ig.user}/media", image_url=f"{ig.images}/card.jpg", caption="#a " * 31).json()
    assert (long["error"]["code"], long["error"]["error_subcode"]) == (36004, 2207010)
    ig.control("faults", {"method": "POST", "path": "/*/media_publish", "code": 80002})
    limited = ig.call("POST", f"/{ig.user}/media_publish", creation_id="1").json()["error"]
    assert limited["code"] == 80002 and limited["is_transient"] is True
