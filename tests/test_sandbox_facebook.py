"""The Facebook Pages emulator over real HTTP: the Graph API's paths, tokens, errors and paging."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bot.sandbox import start_sandbox
from bot.sandbox.server import SandboxServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def fb() -> Iterator[Graph]:
    sandbox = start_sandbox(accounts=2)
    try:
        yield Graph(sandbox.servers["facebook"])
    finally:
        sandbox.stop()


class Graph:
    def __init__(self, server: SandboxServer) -> None:
        described = server.emulator.describe()
        self.base = described["base_url"]
        self.accounts = described["accounts"]
        self.page = self.accounts[0]["page_id"]
        self.token = self.accounts[0]["access_token"]

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
        token = token or self.token
        if method == "POST":
            kw["data"] = {**kw.get("data", {}), "access_token": token}
        else:
            kw["params"] = {**kw.get("params", {}), "access_token": token}
        return requests.request(method, f"{self.base}{path}", timeout=5, **kw)

    def control(self, route: str, payload: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.base}/_sandbox/{route}", data=json.dumps(payload), timeout=5)

    def state(self) -> list[dict[str, Any]]:
        posts: list[dict[str, Any]] = requests.get(f"{self.base}/_sandbox/state", timeout=5).json()["posts"]
        return posts


def test_a_post_is_made_on_any_version_or_none_and_deleted(fb: Graph) -> None:
    ids = []
    for prefix in ("/v27.0", "/v19.0", ""):
        answer = fb.call("POST", f"{prefix}/{fb.page}/feed", data={"message": f"Drop ICE {prefix}"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("application/json")
        ids.append(answer.json()["id"])
    assert all(i.startswith(f"{fb.page}_") for i in ids)
    assert fb.call("DELETE", f"/v27.0/{ids[0]}").json() == {"success": True}
    live = [p["text"] for p in fb.state() if not p.get("deleted")]
    assert live == ["Drop ICE /v19.0", "Drop ICE "]


def test_bad_or_missing_tokens_get_the_graph_error_envelope(fb: Graph) -> None:
    bad = fb.call("GET", f"/v27.0/{fb.page}/posts", token="EAAGnotatoken")
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == 190 and error["type"] == "OAuthException" and error["fbtrace_id"]
    missing = requests.get(f"{fb.base}/v27.0/{fb.page}/posts", timeout=5)
    assert missing.json()["error"]["code"] == 104
    bearer = requests.get(
        f"{fb.base}/v27.0/me", headers={"Authorization": f"Bearer {fb.token}"}, params={"fields": "id,name"}
    )
    assert bearer.json() == {"id": fb.page, "name": "Fight for the Future"}


def test_the_same_message_twice_in_a_row_is_refused_with_506_unless_allowed(fb: Graph) -> None:
    assert fb.call("POST", f"/{fb.page}/feed", data={"message": "Same"}).status_code == 200
    again = fb.call("POST", f"/{fb.page}/feed", data={"message": "Same"})
    assert again.status_code == 400 and again.json()["error"]["code"] == 506
    assert fb.control("settings", {"duplicates": "allow"}).status_code == 200
    assert fb.call("POST", f"/{fb.page}/feed", data={"message": "Same"}).status_code == 200
    assert fb.control("settings", {"duplicates": "maybe"}).status_code == 400


def test_photos_unpublished_then_attached_to_one_post_with_their_alt_text(fb: Graph) -> None:
    photo_ids = []
    for alt in ("A march", "A sign"):
        answer = fb.call(
            "POST",
            f"/v27.0/{fb.page}/photos",
            data={"published": "False", "alt_text_custom": alt},
            files={"source": ("a.png", PNG, "image/png")},
        )
        assert answer.status_code == 200, answer.text
        assert set(answer.json()) == {"id"}
        photo_ids.append(answer.json()["id"])
    media = {f"attached_media[{i}]": json.dumps({"media_fbid": pid}) for i, pid in enumerate(photo_ids)}
    post = fb.call("POST", f"/v27.0/{fb.page}/feed", data={"message": "Two photos", **media})
    assert post.status_code == 200, post.text
    (state,) = [p for p in fb.state() if p["id"] == post.json()["id"]]
    assert state["media"] == [{"id": photo_ids[0], "alt": "A march"}, {"id": photo_ids[1], "alt": "A sign"}]
    reused = fb.call("POST", f"/v27.0/{fb.page}/feed", data={"message": "Again", **media})
    assert reused.json()["error"]["code"] == 100  # a photo goes into one post only
    published = fb.call(
        "POST", f"/{fb.page}/photos", data={"url": "https://example.org/a.jpg", "caption": "Hi"}
    )
    assert set(published.json()) == {"id", "post_id"}
    not_an_image = fb.call("POST", f"/{fb.page}/photos", files={"source": ("a.png", b"text", "image/png")})
    assert not_an_image.json()["error"]["code"] == 324


def test_posts_page_by_cursor_newest_first_and_since_filters(fb: Graph) -> None:
    for i in range(5):
        fb.call("POST", f"/{fb.page}/feed", data={"message": f"Post {i}"})
    seen: list[str] = []
    answer = fb.call("GET", f"/v27.0/{fb.page}/posts", params={"limit": "2", "fields": "id,message"}).json()
    while True:
        seen += [p["message"] for p in answer["data"]]
        if "next" not in answer.get("paging", {}):
            break
        answer = requests.get(answer["paging"]["next"], timeout=5).json()
    assert seen == [f"Post {i}" for i in reversed(range(5))]
    assert fb.call("GET", f"/{fb.page}/posts", params={"limit": "101"}).json()["error"]["code"] == 100
    later = fb.call("GET", f"/{fb.page}/posts", params={"since": "2999-01-01T00:00:00+0000"}).json()
    assert later["data"] == []


def test_the_audience_comments_replies_and_mentions_and_only_the_page_sees_who(fb: Graph) -> None:
    post_id = fb.call("POST", f"/{fb.page}/feed", data={"message": "Ours"}).json()["id"]
    comment = fb.control("audience", {"kind": "reply", "author": "alice", "text": "Yes", "to": post_id})
    comment_id = comment.json()["posts"][0]["id"]
    fb.control("audience", {"kind": "reply", "author": "bob", "text": "Agreed", "to": comment_id})
    fb.control("audience", {"kind": "mention", "author": "carol", "text": "look at this"})
    fb.control("audience", {"kind": "hashtag", "author": "dan", "text": "hello"})

    top = fb.call("GET", f"/{post_id}/comments").json()["data"]
    assert [c["message"] for c in top] == ["Yes"] and top[0]["from"]["name"] == "alice"
    stream = fb.call("GET", f"/{post_id}/comments", params={"filter": "stream"}).json()["data"]
    assert [c.get("parent", {}).get("id") for c in stream] == [None, comment_id]
    other_page = fb.accounts[1]["access_token"]
    hidden = fb.call("GET", f"/{post_id}/comments", token=other_page).json()["data"]
    assert "from" not in hidden[0]
    feed = fb.call("GET", f"/{fb.page}/feed", params={"fields": "message,from,message_tags"}).json()["data"]
    assert [p["message"] for p in feed] == ["Fight for the Future look at this", "Ours"]
    assert feed[0]["message_tags"][0]["id"] == fb.page
    own = fb.call("GET", f"/{fb.page}/posts").json()["data"]
    assert [p["message"] for p in own] == ["Ours"]  # no visitor posts, no stranger's hashtag
    assert fb.control("audience", {"kind": "reply", "text": "x", "to": "nope"}).status_code == 400


def test_faults_match_with_or_without_the_version_and_take_graph_codes(fb: Graph) -> None:
    assert fb.control("faults", {"method": "POST", "path": f"/{fb.page}/feed", "code": 368}).ok
    blocked = fb.call("POST", f"/v27.0/{fb.page}/feed", data={"message": "Blocked"})
    assert blocked.json()["error"]["code"] == 368
    assert fb.control("faults", {"method": "POST", "path": "/v*/*/feed", "status": 500}).ok
    broken = fb.call("POST", f"/v27.0/{fb.page}/feed", data={"message": "Broken"})
    assert broken.status_code == 500 and broken.json()["error"]["code"] == 2
    assert fb.control("faults", {"method": "POST", "path": "/*/feed", "status": 429, "reset_in": 600}).ok
    limited = fb.call("POST", f"/v27.0/{fb.page}/feed", data={"message": "Limited"})
    assert limited.json()["error"]["code"] == 80001
    usage = json.loads(limited.headers["X-Business-Use-Case-Usage"])
    assert next(iter(usage.values()))[0]["estimated_time_to_regain_access"] == 10
    assert fb.control("faults", {"method": "POST", "path": "/*", "code": 12345}).status_code == 400
    assert [p["text"] for p in fb.state()] == []


def test_usage_headers_appear_after_a_few_calls_and_the_budget_ends_in_80001(fb: Graph) -> None:
    first = fb.call("GET", f"/{fb.page}")
    assert "X-Business-Use-Case-Usage" not in first.headers  # absent at first, as on the real API
    for _ in range(3):
        later = fb.call("GET", f"/{fb.page}")
    assert json.loads(later.headers["X-Business-Use-Case-Usage"])[fb.page][0]["type"] == "pages"


def test_debug_token_reports_validity_expiry_and_scopes(fb: Graph) -> None:
    fb.control("settings", {"expires_at": 1893456000, "scopes": ["pages_show_list"]})
    data = fb.call("GET", "/v27.0/debug_token", params={"input_token": fb.token}).json()["data"]
    assert data["is_valid"] and data["expires_at"] == 1893456000 and data["scopes"] == ["pages_show_list"]
    bad = fb.call("GET", "/debug_token", params={"input_token": "nope"}).json()["data"]
    assert bad["is_valid"] is False


def test_a_wrong_appsecret_proof_is_refused(fb: Graph) -> None:
    answer = fb.call("GET", f"/{fb.page}", params={"appsecret_proof": "0" * 64})
    assert answer.json()["error"]["message"] == "Invalid appsecret_proof provided in the API argument"
    fb.control("settings", {"require_proof": True})
    assert fb.call("GET", f"/{fb.page}").json()["error"]["code"] == 100


def test_odd_but_valid_requests_are_taken_and_garbage_is_a_graph_error(fb: Graph) -> None:
    photo = fb.call(
        "POST", f"/{fb.page}/photos", data={"published": "0"}, files={"f": ("x.jpg", PNG, "image/png")}
    )
    body = {"message": "As JSON", "attached_media": [{"media_fbid": photo.json()["id"]}], "published": True}
    answer = requests.post(
        f"{fb.base}/v27.0/{fb.page}/feed",
        json=body,
        headers={"Authorization": f"OAuth {fb.token}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    trailing = fb.call("GET", f"/v27.0/{fb.page}/posts/", params={"fields": "id,,message{"})
    assert [p["message"] for p in trailing.json()["data"]] == ["As JSON"]
    for garbage in (b"\xff\xfe not utf-8", b"[1, 2]", b"{not json"):
        bad = requests.post(
            f"{fb.base}/v27.0/{fb.page}/feed",
            data=garbage,
            headers={"Authorization": f"Bearer {fb.token}", "Content-Type": "application/json"},
            timeout=5,
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == 100
    assert fb.call("POST", f"/{fb.page}/feed", data={"message": "x", "published": "maybe"}).status_code == 400
    assert fb.call("GET", f"/{fb.page}/posts", params={"after": "%%%"}).json()["error"]["code"] == 100
