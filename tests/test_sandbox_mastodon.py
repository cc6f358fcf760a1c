"""The Mastodon emulator, driven by Mastodon.py 2.3.3 over real HTTP (and plain HTTP for /_sandbox/)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonBadGatewayError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServiceUnavailableError,
    MastodonUnauthorizedError,
    StreamListener,
)
from mastodon.errors import MastodonDeprecationWarning

from bot.sandbox.mastodon import MastodonEmulator
from bot.sandbox.mastodon_entities import status_length
from bot.sandbox.server import SandboxServer
from tests.clock import Clock
from tests.imagefiles import png

PNG = png(2, 3)
MP4 = b"\0\0\0\x18ftypmp42" + b"\0" * 64


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 8, 1, 13, 53, 57, 755000, tzinfo=UTC))


def start(clock: Clock, limits: str = "none") -> SandboxServer:
    return SandboxServer(MastodonEmulator(accounts=2, limits=limits, clock=clock)).start()


@pytest.fixture
def server(clock: Clock) -> Iterator[SandboxServer]:
    srv = start(clock)
    yield srv
    srv.stop()


def client(server: SandboxServer, index: int = 0, token: str | None = None) -> Mastodon:
    if token is None:
        token = server.emulator.credentials()[index]["access_token"]
    return Mastodon(access_token=token, api_base_url=server.base_url, ratelimit_method="throw")


def control(server: SandboxServer, route: str, payload: dict[str, Any]) -> Any:
    answer = requests.post(f"{server.base_url}/_sandbox/{route}", json=payload, timeout=5)
    assert answer.ok, answer.text
    return answer.json()


def audience(server: SandboxServer, **payload: Any) -> list[dict[str, Any]]:
    return list(control(server, "audience", payload)["posts"])


def state(server: SandboxServer) -> list[dict[str, Any]]:
    return list(requests.get(f"{server.base_url}/_sandbox/state", timeout=5).json()["posts"])


def raw(server: SandboxServer, method: str, path: str, index: int = 0, **kwargs: Any) -> requests.Response:
    token = server.emulator.credentials()[index]["access_token"]
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return requests.request(method, server.base_url + path, headers=headers, timeout=5, **kwargs)


def error_text(exc: pytest.ExceptionInfo[Exception]) -> Any:
    return exc.value.args[3]


# -- instance, credentials -------------------------------------------------------------------


def test_instance_v2_describes_limits_and_points_streaming_at_the_emulator(server: SandboxServer) -> None:
    instance = client(server).instance_v2()
    assert instance.version.startswith("4.")
    assert instance.configuration.statuses.max_characters == 500
    assert instance.configuration.statuses.max_media_attachments == 4
    assert instance.configuration.statuses.characters_reserved_per_url == 23
    assert instance.configuration.media_attachments.description_limit == 10000
    assert instance.configuration.urls.streaming == "ws://" + server.base_url.removeprefix("http://")


def test_instance_v1_answers_with_the_trailing_slash_and_is_deprecated(server: SandboxServer) -> None:
    with pytest.warns(MastodonDeprecationWarning):
        instance = client(server).instance_v1()
    assert instance.urls.streaming_api == "ws://" + server.base_url.removeprefix("http://")
    assert raw(server, "GET", "/api/v1/instance/").json()["version"] == "4.6.4"


def test_verify_credentials_names_the_account_and_its_posting_defaults(server: SandboxServer) -> None:
    me = client(server, 1).account_verify_credentials()
    assert (me.username, me.acct) == ("account2", "account2")
    assert me.source.privacy == "public"


def test_a_bad_token_is_refused_as_mastodon_does(server: SandboxServer) -> None:
    with pytest.raises(MastodonUnauthorizedError) as exc:
        client(server, token="not-a-token").account_verify_credentials()
    assert error_text(exc) == "The access token is invalid"
    with pytest.raises(MastodonUnauthorizedError):
        client(server, token="not-a-token").status_post("hello")
    assert state(server) == []


def test_credentials_are_fixed_per_account_name(clock: Clock) -> None:
    first, second = MastodonEmulator(accounts=3, clock=clock), MastodonEmulator(accounts=3, clock=clock)
    assert first.credentials() == second.credentials()
    assert [c["name"] for c in first.credentials()] == ["main", "account2", "account3"]
    assert len({c["access_token"] for c in first.credentials()}) == 3


# -- statuses --------------------------------------------------------------------------------


def test_status_post_with_content_warning_language_and_default_visibility(server: SandboxServer) -> None:
    control(server, "settings", {"default_visibility": "unlisted"})
    status = client(server).status_post("Toot!", spoiler_text="immigration detention", language="de")
    assert (status.visibility, status.spoiler_text, status.sensitive) == (
        "unlisted",
        "immigration detention",
        True,
    )
    assert status.language == "de"
    assert status.content == "<p>Toot!</p>"
    assert status.account.acct == "main"


def test_hashtags_mentions_and_links_are_rendered_as_mastodon_renders_them(server: SandboxServer) -> None:
    status = client(server).status_post("Drop the contracts #NoTechForICE @account2\nhttps://example.org/p")
    base = server.base_url
    assert status.content == (
        f'<p>Drop the contracts <a href="{base}/tags/notechforice" class="mention hashtag" rel="tag">'
        "#<span>NoTechForICE</span></a> "
        f'<span class="h-card" translate="no"><a href="{base}/@account2" class="u-url mention">'
        "@<span>account2</span></a></span><br />"
        '<a href="https://example.org/p" target="_blank" rel="nofollow noopener" translate="no">'
        '<span class="invisible">https://</span><span class="">example.org/p</span>'
        '<span class="invisible"></span></a></p>'
    )
    assert [(t.name, t.url) for t in status.tags] == [("notechforice", f"{base}/tags/notechforice")]
    assert [m.acct for m in status.mentions] == ["account2"]


def test_reply_context_get_and_delete(server: SandboxServer) -> None:
    api = client(server)
    first = api.status_post("Part one")
    second = api.status_post("Part two", in_reply_to_id=first.id)
    assert second.in_reply_to_id == first.id
    assert [s.id for s in api.status_context(first.id).descendants] == [second.id]
    assert [s.id for s in api.status_context(second.id).ancestors] == [first.id]
    assert api.status(first.id).replies_count == 1

    deleted = raw(server, "DELETE", f"/api/v1/statuses/{second.id}").json()
    assert deleted["text"] == "Part two" and "content" not in deleted
    with pytest.raises(MastodonNotFoundError) as exc:
        api.status(second.id)
    assert error_text(exc) == "Not Found"
    assert [p.get("deleted", False) for p in state(server)] == [False, True]


def test_replying_to_a_missing_status_is_a_404(server: SandboxServer) -> None:
    with pytest.raises(MastodonNotFoundError):
        client(server).status_post("hello", in_reply_to_id="1234")


def test_only_the_author_may_delete(server: SandboxServer) -> None:
    status = client(server).status_post("mine")
    with pytest.raises(MastodonNotFoundError):
        client(server, 1).status_delete(status.id)
    assert "deleted" not in state(server)[0]


def test_form_and_json_bodies_are_both_accepted(server: SandboxServer) -> None:
    answer = raw(
        server, "POST", "/api/v1/statuses", json={"status": "as JSON", "sensitive": True, "language": None}
    )
    assert answer.status_code == 200
    assert (answer.json()["sensitive"], answer.json()["language"]) == (True, "en")


@pytest.mark.parametrize(
    ("text", "spoiler", "length"),
    [
        ("a" * 500, "", 500),
        ("see " + "https://example.org/" + "x" * 200, "", 4 + 23),
        ("hi @alice@a-very-long-instance-name.example", "", len("hi @alice")),
        ("👩‍👩‍👧‍👦" * 3, "", 3),
        ("body", "warning", 11),
        ("body", "https://example.org/" + "x" * 30, 4 + 50),  # the warning is counted as it is
    ],
)
def test_status_length_counts_as_mastodon(text: str, spoiler: str, length: int) -> None:
    assert status_length(text, spoiler) == length


def test_over_the_limit_is_a_422_and_the_content_warning_counts(server: SandboxServer) -> None:
    api = client(server)
    api.status_post("a" * 500)
    api.status_post("https://example.org/" + "x" * 600)  # one URL: 23 characters
    with pytest.raises(MastodonAPIError) as exc:
        api.status_post("a" * 491, spoiler_text="ten chars!")
    assert exc.value.args[1] == 422
    assert error_text(exc) == "Validation failed: Text character limit of 500 exceeded"
    assert len(state(server)) == 2


def test_a_blank_status_is_a_422(server: SandboxServer) -> None:
    with pytest.raises(MastodonAPIError) as exc:
        client(server).status_post("   ")
    assert (exc.value.args[1], error_text(exc)) == (422, "Validation failed: Text can't be blank")


def test_bad_visibility_is_a_422(server: SandboxServer) -> None:
    answer = raw(server, "POST", "/api/v1/statuses", data={"status": "x", "visibility": "bogus"})
    assert (answer.status_code, answer.json()) == (422, {"error": "'bogus' is not a valid visibility"})


# -- idempotency -----------------------------------------------------------------------------


def test_a_repeated_idempotency_key_returns_the_first_status(server: SandboxServer, clock: Clock) -> None:
    api = client(server)
    first = api.status_post("Sign the petition", idempotency_key="delivery-1")
    clock.advance(minutes=59)
    again = api.status_post("a different body is ignored", idempotency_key="delivery-1")
    assert again.id == first.id and again.content == "<p>Sign the petition</p>"
    assert len(state(server)) == 1
    # Keys are per account, and last an hour.
    assert client(server, 1).status_post("x", idempotency_key="delivery-1").id != first.id
    clock.advance(minutes=2)
    assert api.status_post("Sign the petition", idempotency_key="delivery-1").id != first.id


def test_a_failed_attempt_does_not_use_the_key_up(server: SandboxServer) -> None:
    api = client(server)
    with pytest.raises(MastodonAPIError):
        api.status_post("a" * 501, idempotency_key="delivery-2")
    status = api.status_post("short now", idempotency_key="delivery-2")
    assert status.content == "<p>short now</p>"
    assert api.status_post("short now", idempotency_key="delivery-2").id == status.id


def test_a_key_whose_status_was_deleted_answers_404(server: SandboxServer) -> None:
    api = client(server)
    status = api.status_post("gone soon", idempotency_key="delivery-3")
    api.status_delete(status.id)
    with pytest.raises(MastodonNotFoundError):
        api.status_post("gone soon", idempotency_key="delivery-3")


def test_gotosocial_mode_ignores_the_key_and_answers_400_over_the_limit(server: SandboxServer) -> None:
    control(server, "settings", {"idempotency": False})
    api = client(server)
    first = api.status_post("same", idempotency_key="delivery-4")
    assert api.status_post("same", idempotency_key="delivery-4").id != first.id
    with pytest.raises(MastodonAPIError) as exc:
        api.status_post("a" * 491, spoiler_text="ten chars!")
    assert exc.value.args[1] == 400
    assert error_text(exc) == (
        "Bad Request: status too long, 501 characters provided (including spoiler/content warning) "
        "but limit is 500"
    )
    assert len(state(server)) == 2


def test_unknown_settings_are_refused(server: SandboxServer) -> None:
    answer = requests.post(f"{server.base_url}/_sandbox/settings", json={"idempotence": False}, timeout=5)
    assert answer.status_code == 400


# -- media -----------------------------------------------------------------------------------


def test_an_image_is_ready_at_once_and_carries_its_alt_text(server: SandboxServer) -> None:
    api = client(server)
    media = api.media_post(io.BytesIO(PNG), mime_type="image/png", description="A banner: No Tech for ICE")
    assert media.type == "image" and media.url.startswith(server.base_url)
    assert (media.meta.original.width, media.meta.original.height) == (2, 3)
    status = api.status_post("With a picture", media_ids=[media])
    assert [m.description for m in status.media_attachments] == ["A banner: No Tech for ICE"]
    assert state(server)[0]["media"] == [{"id": media.id, "alt": "A banner: No Tech for ICE"}]


def test_alt_text_over_the_description_limit_is_a_422(server: SandboxServer) -> None:
    with pytest.raises(MastodonAPIError) as exc:
        client(server).media_post(io.BytesIO(PNG), mime_type="image/png", description="x" * 10001)
    assert exc.value.args[1] == 422


def test_the_asynchronous_path_202_then_206_then_200(server: SandboxServer) -> None:
    control(server, "settings", {"media_processing": True})
    upload = raw(server, "POST", "/api/v2/media", files={"file": ("a.png", PNG, "image/png")})
    assert upload.status_code == 202 and upload.json()["url"] is None
    media_id = upload.json()["id"]
    api = client(server)
    with pytest.raises(MastodonAPIError) as exc:
        api.status_post("too early", media_ids=[media_id])
    assert error_text(exc) == "Cannot attach files that have not finished processing. Try again in a moment!"
    polled = raw(server, "GET", f"/api/v1/media/{media_id}")
    assert (polled.status_code, polled.json()["url"]) == (206, None)
    assert api.media(media_id).url is not None
    assert api.status_post("now", media_ids=[media_id]).media_attachments[0].id == media_id


def test_video_always_takes_the_asynchronous_path(server: SandboxServer, clock: Clock) -> None:
    api = client(server)
    video = api.media_post(io.BytesIO(MP4), mime_type="video/mp4", description="a clip")
    assert video.type == "video" and video.url is None
    clock.advance(seconds=6)  # processing ends on the emulator's clock too
    assert api.media(video).url is not None


def test_more_than_four_attachments_are_refused(server: SandboxServer) -> None:
    api = client(server)
    ids = [api.media_post(io.BytesIO(PNG), mime_type="image/png", description=str(i)).id for i in range(5)]
    with pytest.raises(MastodonAPIError):
        api.status_post("five", media_ids=ids)


# -- notifications, timelines ----------------------------------------------------------------


def test_mentions_arrive_as_notifications_with_their_status(server: SandboxServer) -> None:
    ours = client(server).status_post("Call your representative")
    audience(server, kind="reply", author="alice", text="Done!", to=ours.id)
    audience(server, kind="mention", author="bob@other.example", text="@main thank you")
    found = client(server).notifications(types=["mention"])
    assert [n.status.account.acct for n in found] == ["bob@other.example", "alice@example.social"]
    assert [type(n.id) for n in found] == [str, str]
    reply = found[1].status
    assert reply.in_reply_to_id == ours.id and reply.content.startswith('<p><span class="h-card"')
    assert client(server, 1).notifications() == []
    assert client(server).notifications(exclude_types=["mention"]) == []


def test_notification_paging_follows_the_link_header(server: SandboxServer) -> None:
    audience(server, kind="mention", author="alice", text="@main hello", count=5)
    api = client(server)
    page = api.notifications(types=["mention"], limit=2)
    ids = [n.id for n in page]
    while (page := api.fetch_next(page)) is not None and len(page):
        ids += [n.id for n in page]
    assert ids == ["5", "4", "3", "2", "1"]
    assert [n.id for n in api.notifications(since_id="3")] == ["5", "4"]
    assert [n.id for n in api.notifications(min_id="1", limit=2)] == ["3", "2"]

    answer = raw(server, "GET", "/api/v1/notifications?types%5B%5D=mention&limit=2")
    base = f"{server.base_url}/api/v1/notifications"
    assert answer.headers["Link"] == (
        f'<{base}?limit=2&max_id=4&types%5B%5D=mention>; rel="next", '
        f'<{base}?limit=2&min_id=5&types%5B%5D=mention>; rel="prev"'
    )
    empty = raw(server, "GET", "/api/v1/notifications?types%5B%5D=follow_request")
    assert empty.json() == [] and "Link" not in empty.headers


def test_hashtag_timeline_shows_public_posts_only(server: SandboxServer) -> None:
    api = client(server)
    older = audience(server, kind="hashtag", author="alice", text="Drop the contracts")[0]
    assert older["text"] == "Drop the contracts #NoTechForICE"
    api.status_post("Quiet #NoTechForICE", visibility="unlisted")
    api.status_post("Secret #NoTechForICE @account2", visibility="direct")
    api.status_post("Followers #NoTechForICE", visibility="private")
    control(server, "settings", {"audience_visibility": "direct"})
    audience(server, kind="hashtag", author="carol", text="@main psst #notechforice")
    newer = api.status_post("Loud #notechforice")
    timeline = api.timeline_hashtag("NoTechForICE")
    assert [s.id for s in timeline] == [newer.id, older["id"]]
    assert [s.id for s in api.timeline_hashtag("notechforice", min_id=older["id"])] == [newer.id]
    assert [s.id for s in api.timeline_hashtag("NoTechForICE", local=True)] == [newer.id]
    # The direct post is still seen by the one it names.
    assert len(client(server, 1).notifications(types=["mention"])) == 1


def test_hashtag_timeline_link_header(server: SandboxServer) -> None:
    post = audience(server, kind="hashtag", author="alice", text="#NoTechForICE")[0]
    answer = raw(server, "GET", "/api/v1/timelines/tag/NoTechForICE?local=1&limit=5")
    base = f"{server.base_url}/api/v1/timelines/tag/NoTechForICE"
    assert answer.json() == []
    answer = raw(server, "GET", "/api/v1/timelines/tag/NoTechForICE?limit=5")
    assert answer.headers["Link"] == (
        f'<{base}?limit=5&max_id={post["id"]}>; rel="next", <{base}?limit=5&min_id={post["id"]}>; rel="prev"'
    )


def test_account_statuses_paging_and_filters(server: SandboxServer) -> None:
    api = client(server)
    me = api.account_verify_credentials()
    first = api.status_post("one")
    second = api.status_post("two", in_reply_to_id=first.id)  # a thread: kept by exclude_replies
    other = audience(server, kind="hashtag", author="alice", text="hi")[0]
    reply = api.status_post("@alice@example.social three", in_reply_to_id=other["id"])
    assert [s.id for s in api.account_statuses(me, limit=2)] == [reply.id, second.id]
    assert [s.id for s in api.account_statuses(me, exclude_replies=True)] == [second.id, first.id]
    assert [s.id for s in api.account_statuses(me, since_id=first.id)] == [reply.id, second.id]


def test_reblog_for_amplification(server: SandboxServer) -> None:
    ally = audience(server, kind="hashtag", author="ally", text="Join us")[0]
    api = client(server)
    boost = api.status_reblog(ally["id"])
    assert boost.reblog.id == ally["id"] and boost.reblog.reblogged is True
    assert api.status_reblog(ally["id"]).id == boost.id  # once only
    assert [p["id"] for p in state(server)] == [ally["id"]]  # a boost is not a post
    reposts = requests.get(f"{server.base_url}/_sandbox/state", timeout=5).json()["reposts"]
    assert reposts == [{"id": boost.id, "author": "main", "subject": ally["id"]}]
    assert api.status(ally["id"]).reblogs_count == 1


def test_a_direct_status_is_hidden_from_everyone_else(server: SandboxServer) -> None:
    status = client(server).status_post("@account2 between us", visibility="direct")
    assert client(server, 1).status(status.id).id == status.id
    answer = requests.get(f"{server.base_url}/api/v1/statuses/{status.id}", timeout=5)
    assert answer.status_code == 404


# -- streaming -------------------------------------------------------------------------------


class Collector(StreamListener):
    def __init__(self) -> None:
        self.updates: list[Any] = []
        self.deletes: list[Any] = []
        self.beats = 0
        self.arrived = threading.Event()

    def on_update(self, status: Any) -> None:
        self.updates.append(status)
        self.arrived.set()

    def on_delete(self, status_id: Any) -> None:
        self.deletes.append(status_id)
        self.arrived.set()

    def handle_heartbeat(self) -> None:
        self.beats += 1


def test_a_hashtag_stream_receives_the_audience_within_a_second(server: SandboxServer) -> None:
    # Closing a stream waits for its next chunk (urllib3 drains it): keep heartbeats short.
    control(server, "settings", {"stream_heartbeat": 0.1})
    api, listener = client(server), Collector()
    handle = api.stream_hashtag("NoTechForICE", listener, run_async=True)
    try:
        threading.Event().wait(0.1)  # let the stream connect before the post
        control(server, "settings", {"audience_visibility": "direct"})
        audience(server, kind="hashtag", author="carol", text="@main not for the stream")
        control(server, "settings", {"audience_visibility": "public"})
        post = audience(server, kind="hashtag", author="alice", text="Out on the street today")[0]
        assert listener.arrived.wait(1.0)
        assert [s.id for s in listener.updates] == [post["id"]]
        assert listener.updates[0].account.acct == "alice@example.social"
    finally:
        handle.close()


def test_the_stream_frames_heartbeats_and_deletes(server: SandboxServer) -> None:
    control(server, "settings", {"stream_heartbeat": 0.05})
    token = server.emulator.credentials()[0]["access_token"]
    with requests.get(
        f"{server.base_url}/api/v1/streaming/hashtag/local?tag=notechforice",
        headers={"Authorization": f"Bearer {token}"},
        stream=True,
        timeout=5,
    ) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        chunks = stream.iter_content(chunk_size=None)
        assert next(chunks) == b":)\n"
        status = client(server).status_post("Local #NoTechForICE")
        client(server).status_delete(status.id)
        seen = b""
        while b"event: delete" not in seen or b":thump" not in seen:
            seen += next(chunks)
    assert seen.count(b"event: update\ndata: {") == 1
    assert f"event: delete\ndata: {status.id}\n\n".encode() in seen
    assert b":thump\n" in seen


def test_a_stream_needs_a_valid_token(server: SandboxServer) -> None:
    answer = requests.get(f"{server.base_url}/api/v1/streaming/hashtag?tag=x", timeout=5)
    assert answer.status_code == 401
    assert client(server).stream_healthy() is True


def test_stopping_the_server_ends_open_streams(clock: Clock) -> None:
    srv = start(clock)
    handle = client(srv).stream_hashtag("NoTechForICE", Collector(), run_async=True)
    threading.Event().wait(0.1)
    srv.stop()
    handle.join(2.0)
    assert not handle.is_alive()


# -- rate limits -----------------------------------------------------------------------------


def test_every_answer_carries_the_rate_limit_headers(server: SandboxServer) -> None:
    ok = raw(server, "GET", "/api/v1/accounts/verify_credentials")
    missing = raw(server, "GET", "/api/v1/statuses/1")
    for answer in (ok, missing):
        assert answer.headers["X-RateLimit-Limit"] == "300"
        assert answer.headers["X-RateLimit-Reset"] == "2026-08-01T13:55:00.755000Z"
    assert (ok.headers["X-RateLimit-Remaining"], missing.headers["X-RateLimit-Remaining"]) == ("299", "298")
    posted = raw(server, "POST", "/api/v1/statuses", data={"status": "x"})
    assert posted.headers["X-RateLimit-Reset"] == "2026-08-01T15:00:00.755000Z"  # the 3-hour window
    assert posted.headers["X-RateLimit-Remaining"] == "299"


def test_media_uploads_are_limited_to_30_per_half_hour(clock: Clock) -> None:
    srv = start(clock, limits="mastodon")
    try:
        api = client(srv)
        for _ in range(30):
            api.media_post(io.BytesIO(PNG), mime_type="image/png", description="x")
        with pytest.raises(MastodonRatelimitError):
            api.media_post(io.BytesIO(PNG), mime_type="image/png", description="x")
        answer = raw(srv, "POST", "/api/v2/media", files={"file": ("a.png", PNG, "image/png")})
        assert (answer.status_code, answer.json()) == (429, {"error": "Too many requests"})
        assert answer.headers["X-RateLimit-Remaining"] == "0"
        clock.advance(minutes=7)  # 14:00: a new half-hour window
        assert api.media_post(io.BytesIO(PNG), mime_type="image/png", description="x").url
    finally:
        srv.stop()


def test_statuses_are_limited_to_300_per_three_hours(clock: Clock) -> None:
    srv = start(clock, limits="mastodon")
    try:
        session = requests.Session()
        session.headers["Authorization"] = "Bearer " + srv.emulator.credentials()[0]["access_token"]
        for i in range(300):
            if i == 250:
                clock.advance(minutes=6)  # past 14:00: the 5-minute request window starts over
            assert session.post(f"{srv.base_url}/api/v1/statuses", data={"status": str(i)}, timeout=5).ok
        refused = session.post(f"{srv.base_url}/api/v1/statuses", data={"status": "one more"}, timeout=5)
        assert refused.status_code == 429
        assert refused.headers["X-RateLimit-Reset"].startswith("2026-08-01T15:00:00.")
        assert session.get(f"{srv.base_url}/api/v1/accounts/verify_credentials", timeout=5).ok
    finally:
        srv.stop()


def test_the_none_preset_never_refuses(server: SandboxServer) -> None:
    api = client(server)
    for _ in range(31):
        api.media_post(io.BytesIO(PNG), mime_type="image/png", description="x")
    assert len(server.emulator.store.media) == 31  # type: ignore[attr-defined]


# -- faults, audience, state over plain HTTP -------------------------------------------------


def test_faults_answer_with_mastodon_errors(server: SandboxServer) -> None:
    api = client(server)
    control(server, "faults", {"method": "POST", "path": "/api/v1/statuses", "status": 503})
    with pytest.raises(MastodonServiceUnavailableError):
        api.status_post("first try")
    control(server, "faults", {"method": "POST", "path": "/api/v1/statuses", "status": 502})
    with pytest.raises(MastodonBadGatewayError):
        api.status_post("second try")
    control(server, "faults", {"method": "POST", "path": "/api/v1/statuses", "status": 429, "reset_in": 30})
    with pytest.raises(MastodonRatelimitError):
        api.status_post("third try")
    assert state(server) == []
    control(
        server, "faults", {"method": "POST", "path": "/api/v1/statuses", "drop": "after", "account": "main"}
    )
    with pytest.raises(MastodonNetworkError):
        api.status_post("lost answer")
    assert [p["text"] for p in state(server)] == ["lost answer"]


def test_state_posts_have_the_design_shape(server: SandboxServer) -> None:
    status = client(server).status_post("Hello #NoTechForICE", spoiler_text="CW", visibility="unlisted")
    audience(server, kind="reply", author="alice", text="hi", to=status.id)
    ours, theirs = state(server)
    assert set(ours) == {
        "id",
        "url",
        "author",
        "text",
        "created_at",
        "in_reply_to",
        "media",
        "raw",
    }
    assert set(theirs) == set(ours)
    assert (ours["author"], ours["text"], ours["in_reply_to"]) == ("main", "Hello #NoTechForICE", None)
    accounts = requests.get(f"{server.base_url}/_sandbox/state", timeout=5).json()["accounts"]
    assert accounts["main"] == ours["author"] != theirs["author"]
    assert (ours["raw"]["spoiler_text"], ours["raw"]["visibility"]) == ("CW", "unlisted")
    assert ours["created_at"] == "2026-08-01T13:53:57.755Z"
    assert (theirs["author"], theirs["in_reply_to"], theirs["text"]) == (
        "alice@example.social",
        status.id,
        "@main hi",
    )
    assert theirs["url"].startswith("https://example.social/@alice/")


def test_a_reply_needs_an_existing_status(server: SandboxServer) -> None:
    answer = requests.post(
        f"{server.base_url}/_sandbox/audience", json={"kind": "reply", "text": "hi", "to": "1"}, timeout=5
    )
    assert answer.status_code == 400


def test_reset_empties_everything(server: SandboxServer) -> None:
    control(server, "settings", {"idempotency": False})
    client(server).status_post("x", idempotency_key="k")
    control(server, "reset", {})
    assert state(server) == []
    assert (
        client(server).status_post("x", idempotency_key="k").id
        == client(server).status_post("y", idempotency_key="k").id
    )


def test_the_instance_limit_is_a_setting_the_instance_reports(server: SandboxServer) -> None:
    control(server, "settings", {"max_characters": 50})
    api = client(server)
    assert api.instance_v2().configuration.statuses.max_characters == 50
    api.status_post("a" * 50)
    with pytest.raises(MastodonAPIError) as exc:
        api.status_post("a" * 51)
    assert error_text(exc) == "Validation failed: Text character limit of 50 exceeded"


def test_the_tag_timeline_has_replies_and_quotes_not_boosts_and_splits_local_from_remote(
    server: SandboxServer,
) -> None:
    """Mastodon's TagFeed: public statuses tagged with the tag, whatever its case, replies
    included, boosts left out; `local` keeps this server's accounts, `remote` the others."""
    api = client(server)
    ours = api.status_post("Ours #NoTechForICE")
    reply = audience(server, kind="reply", author="alice", text="Agreed #NOTECHFORICE", to=str(ours.id))[0]
    quote = audience(server, kind="quote", author="bob", text="Quoting #notechforice", to=str(ours.id))[0]
    client(server, 1).status_reblog(ours.id)
    everything = [str(s.id) for s in api.timeline_hashtag("notechforice")]
    assert everything == [quote["id"], reply["id"], str(ours.id)]
    assert [str(s.id) for s in api.timeline_hashtag("NoTechForICE", local=True)] == [str(ours.id)]
    assert [str(s.id) for s in api.timeline_hashtag("NoTechForICE", remote=True)] == [
        quote["id"],
        reply["id"],
    ]
    shown = api.status(quote["id"])
    assert shown.quote.state == "accepted" and shown.quote.quoted_status.id == ours.id
