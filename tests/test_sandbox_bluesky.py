"""The Bluesky emulator, driven by the real atproto.Client over HTTP (and plain HTTP for /_sandbox/)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from atproto import Client, client_utils, models
from atproto.exceptions import (
    BadRequestError,
    NetworkError,
    RateLimitExceededError,
    RequestException,
    UnauthorizedError,
)

from bot.platforms.tid import make_tid
from bot.sandbox.bluesky import BlueskyEmulator
from bot.sandbox.bluesky_richtext import detect_facets
from bot.sandbox.server import SandboxServer
from tests.clock import Clock

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 64
GIF = b"GIF89a" + b"\0" * 64
WEBP = b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 64


@pytest.fixture
def clock() -> Clock:
    # Starts at the real now: the SDK refreshes a session by the real clock.
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def emulator(clock: Clock) -> BlueskyEmulator:
    return BlueskyEmulator(accounts=2, clock=clock)


@pytest.fixture
def server(emulator: BlueskyEmulator) -> Iterator[SandboxServer]:
    srv = SandboxServer(emulator).start()
    yield srv
    srv.stop()


@pytest.fixture
def connect(server: SandboxServer, emulator: BlueskyEmulator) -> Iterator[Callable[..., Client]]:
    """Log in as one of the sandbox accounts (by index); every client is closed afterwards."""
    clients: list[Client] = []

    def login(index: int = 0, session_string: str | None = None) -> Client:
        client = Client(base_url=server.base_url)
        clients.append(client)
        account = emulator.credentials()[index]
        if session_string:
            client.login(session_string=session_string)
        else:
            client.login(account["handle"], account["app_password"])
        return client

    yield login
    for client in clients:
        client.request.close()


@pytest.fixture
def bot(connect: Callable[..., Client]) -> Client:
    return connect(0)


def control(server: SandboxServer, route: str, **payload: Any) -> requests.Response:
    return requests.post(f"{server.base_url}/_sandbox/{route}", json=payload, timeout=5)


def state(server: SandboxServer) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{server.base_url}/_sandbox/state", timeout=5).json()
    return answer


def rkey_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def upload(client: Client, data: bytes) -> models.BlobRef:
    # send_images/upload_blob pass raw bytes as httpx `data=`, a DeprecationWarning under
    # httpx 0.28; `content=` is the warning-free path (docs/platforms.md).
    return client.com.atproto.repo.upload_blob(None, content=data).blob  # type: ignore[arg-type]


def jwt_payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def xrpc_error(exc: pytest.ExceptionInfo[Any]) -> tuple[int, str, str]:
    response = exc.value.response
    return response.status_code, response.content.error, response.content.message


# -- sessions ------------------------------------------------------------------------------


def test_login_gives_jwts_with_the_real_lifetimes_and_keeps_the_client_here(
    bot: Client, server: SandboxServer, emulator: BlueskyEmulator
) -> None:
    assert bot.me is not None and bot.me.handle == "main.sandbox.test"
    session = bot._session
    assert session is not None
    access, refresh = jwt_payload(session.access_jwt), jwt_payload(session.refresh_jwt)
    assert access["exp"] - access["iat"] == 120 * 60
    assert refresh["exp"] - refresh["iat"] == 90 * 24 * 3600
    assert session.pds_endpoint is not None and session.pds_endpoint.startswith(server.base_url)
    assert emulator.credentials() == [
        {
            "name": "main",
            "handle": "main.sandbox.test",
            "app_password": emulator.credentials()[0]["app_password"],
        },
        {
            "name": "account2",
            "handle": "account2.sandbox.test",
            "app_password": emulator.credentials()[1]["app_password"],
        },
    ]
    assert BlueskyEmulator(clock=emulator.clock).credentials() == emulator.credentials()  # deterministic


def test_wrong_password_answers_401_as_the_pds_does(server: SandboxServer) -> None:
    client = Client(base_url=server.base_url)
    with pytest.raises(UnauthorizedError) as exc:
        client.login("main.sandbox.test", "not-the-password")
    client.request.close()
    assert xrpc_error(exc) == (401, "AuthenticationRequired", "Invalid identifier or password")


def test_refresh_rotates_and_a_used_refresh_token_is_revoked(connect: Callable[..., Client]) -> None:
    bot = connect(0)
    saved = bot.export_session_string()
    bot._refresh_and_set_session()
    assert bot.export_session_string() != saved
    bot.send_post("still logged in after the refresh")

    stale = Client()
    with pytest.raises(BadRequestError) as exc:
        stale._import_session_string(saved)
        stale._refresh_and_set_session()
    stale.request.close()
    assert xrpc_error(exc) == (400, "ExpiredToken", "Token has been revoked")


def test_session_string_reimport_makes_no_create_session(
    connect: Callable[..., Client], server: SandboxServer
) -> None:
    saved = connect(0).export_session_string()
    # Any createSession now would fail, so a working import proves none was sent.
    control(
        server, "faults", method="POST", path="/xrpc/com.atproto.server.createSession", status=503, times=5
    )
    again = connect(0, session_string=saved)
    assert again.me is not None and again.me.handle == "main.sandbox.test"
    assert again.send_post("posted on a saved session").uri.startswith("at://did:plc:")


def test_expired_and_forged_access_tokens(bot: Client, clock: Clock, server: SandboxServer) -> None:
    clock.advance(hours=3)  # the emulator's clock only: the SDK still believes its token fresh
    with pytest.raises(BadRequestError) as exc:
        bot.send_post("too late")
    assert xrpc_error(exc) == (400, "ExpiredToken", "Token has expired")
    bot._refresh_and_set_session()  # the refresh token lives 90 days
    assert bot.send_post("fresh again").uri

    url = f"{server.base_url}/xrpc/app.bsky.notification.listNotifications"
    forged = requests.get(url, headers={"Authorization": "Bearer e30.e30.c2ln"}, timeout=5)
    assert (forged.status_code, forged.json()["error"]) == (400, "InvalidToken")
    missing = requests.get(url, timeout=5)
    assert (missing.status_code, missing.json()) == (
        401,
        {"error": "AuthMissing", "message": "Authentication Required"},
    )


def test_get_session_names_the_account(bot: Client) -> None:
    session = bot.com.atproto.server.get_session()
    assert (session.handle, session.did, session.active) == ("main.sandbox.test", bot.me.did, True)  # type: ignore[union-attr]


def test_no_limits_preset_never_refuses_but_still_counts(
    server: SandboxServer, emulator: BlueskyEmulator
) -> None:
    account = emulator.credentials()[0]
    login = {"identifier": account["handle"], "password": account["app_password"]}
    with requests.Session() as http:
        answers = [
            http.post(f"{server.base_url}/xrpc/com.atproto.server.createSession", json=login)
            for _ in range(31)
        ]
    assert {a.status_code for a in answers} == {200}
    assert [answers[0].headers["RateLimit-Remaining"], answers[-1].headers["RateLimit-Remaining"]] == [
        "29",
        "0",
    ]
    assert answers[-1].headers["RateLimit-Policy"] == "30;w=300"


def test_resolve_handle_and_profile(bot: Client) -> None:
    did = bot.resolve_handle("account2.sandbox.test").did
    assert bot.get_profile(did).handle == "account2.sandbox.test"
    with pytest.raises(BadRequestError) as exc:
        bot.resolve_handle("nobody.example")
    assert xrpc_error(exc)[1] == "InvalidRequest"


# -- writes --------------------------------------------------------------------------------


def test_post_with_facets_keeps_their_byte_offsets(bot: Client, server: SandboxServer) -> None:
    text = (
        client_utils.TextBuilder()
        .text("Tech workers say no ✊ ")
        .tag("#NoTechForICE", "NoTechForICE")
        .text(" ")
        .link("https://example.org/petition", "https://example.org/petition")
    )
    posted = bot.send_post(text, langs=["en"])
    stored = bot.get_post(rkey_of(posted.uri)).value
    offsets = [(f.index.byte_start, f.index.byte_end) for f in stored.facets or []]
    assert offsets == [(24, 37), (38, 66)]  # ✊ is 3 bytes in UTF-8
    raw = next(p["raw"] for p in state(server)["posts"] if p["id"] == posted.uri)
    data = raw["text"].encode()
    assert [data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in raw["facets"]] == [
        "#NoTechForICE",
        "https://example.org/petition",
    ]


@pytest.mark.parametrize(
    ("start", "end", "complaint"),
    [
        (24, 99, "byteEnd must not be greater than the text's length in UTF-8 bytes (37)"),
        (21, 37, "byteStart must fall on a UTF-8 character boundary"),  # inside ✊: counted in code points
    ],
)
def test_facets_outside_the_text_are_refused(bot: Client, start: int, end: int, complaint: str) -> None:
    facet = models.AppBskyRichtextFacet.Main(
        index=models.AppBskyRichtextFacet.ByteSlice(byte_start=start, byte_end=end),
        features=[models.AppBskyRichtextFacet.Tag(tag="NoTechForICE")],
    )
    with pytest.raises(BadRequestError) as exc:
        bot.send_post("Tech workers say no ✊ #NoTechForICE", facets=[facet])
    status, error, message = xrpc_error(exc)
    assert (status, error) == (400, "InvalidRequest")
    assert message == f"Invalid app.bsky.feed.post record: Record/facets/0/index/{complaint}"


def test_text_limits_are_300_graphemes_and_3000_bytes(bot: Client) -> None:
    assert bot.send_post("é" * 300).uri  # 300 graphemes, 600 bytes
    with pytest.raises(BadRequestError) as exc:
        bot.send_post("a" * 301)
    assert xrpc_error(exc) == (
        400,
        "InvalidRequest",
        "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes",
    )
    family = "👩‍👩‍👧‍👦"  # one grapheme, 25 bytes: 121 of them fit the graphemes, not the bytes
    with pytest.raises(BadRequestError) as exc:
        bot.send_post(family * 121)
    assert xrpc_error(exc)[2].endswith("Record/text must not be longer than 3000 characters")


POST_OK = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-01-01T00:00:00.000Z"}
BAD_RECORDS = [
    (
        {**POST_OK, "createdAt": "yesterday"},
        "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)",
    ),
    ({**POST_OK, "langs": ["en", "es", "fr", "de"]}, "Record/langs must not have more than 3 elements"),
    (
        {"$type": "app.bsky.feed.post", "createdAt": "2026-01-01T00:00:00Z"},
        'Record must have the property "text"',
    ),
    (
        {**POST_OK, "facets": [{"index": {"byteStart": 0, "byteEnd": 2}, "features": [{"tag": "x"}]}]},
        'Record/facets/0/features/0 must be an object which includes the "$type" property',
    ),
    (
        {**POST_OK, "reply": {"root": {"uri": "at://x/y/z", "cid": "bafyreiexample"}}},
        'Record/reply must have the property "parent"',
    ),
    ({**POST_OK, "tags": ["t"] * 9}, "Record/tags must not have more than 8 elements"),
]


@pytest.mark.parametrize(
    ("collection", "record", "message"),
    [("app.bsky.feed.post", r, f"Invalid app.bsky.feed.post record: {m}") for r, m in BAD_RECORDS]
    + [
        (
            "app.bsky.feed.post",
            {**POST_OK, "$type": "app.bsky.feed.like"},
            "Invalid $type: expected app.bsky.feed.post, got app.bsky.feed.like",
        ),
        (
            "app.bsky.feed.repost",
            {"$type": "app.bsky.feed.repost", "createdAt": "2026-01-01T00:00:00Z"},
            'Invalid app.bsky.feed.repost record: Record must have the property "subject"',
        ),
        ("com.example.thing", {"$type": "com.example.thing"}, "Lexicon not found: lex:com.example.thing"),
    ],
)
def test_records_that_break_the_lexicon_are_400s(
    bot: Client, server: SandboxServer, collection: str, record: dict[str, Any], message: str
) -> None:
    assert bot._session is not None
    answer = requests.post(
        f"{server.base_url}/xrpc/com.atproto.repo.createRecord",
        headers={"Authorization": f"Bearer {bot._session.access_jwt}"},
        json={"repo": bot._session.did, "collection": collection, "record": record, "validate": True},
        timeout=5,
    )
    assert (answer.status_code, answer.json()) == (400, {"error": "InvalidRequest", "message": message})
    assert state(server)["posts"] == []


@pytest.mark.parametrize(
    ("data", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")]
)
def test_upload_blob_sniffs_the_type_from_the_bytes(bot: Client, data: bytes, mime: str) -> None:
    blob = upload(bot, data)
    assert (blob.mime_type, blob.size) == (mime, len(data))
    assert blob.ref.link.startswith("bafkrei")


def test_post_with_images_and_alt_text(bot: Client, server: SandboxServer) -> None:
    first, second = upload(bot, PNG), upload(bot, JPEG)
    embed = models.AppBskyEmbedImages.Main(
        images=[
            models.AppBskyEmbedImages.Image(
                alt="People holding a banner",
                image=first,
                aspect_ratio=models.AppBskyEmbedDefs.AspectRatio(width=4, height=3),
            ),
            models.AppBskyEmbedImages.Image(alt="", image=second),
        ]
    )
    posted = bot.send_post("Rally today #NoTechForICE", embed=embed)
    view = bot.get_posts([posted.uri]).posts[0]
    assert isinstance(view.embed, models.AppBskyEmbedImages.View)
    assert [i.alt for i in view.embed.images] == ["People holding a banner", ""]
    assert requests.get(view.embed.images[0].fullsize, timeout=5).content == PNG
    shown = next(p for p in state(server)["posts"] if p["id"] == posted.uri)
    assert shown["media"] == [
        {"id": first.ref.link, "alt": "People holding a banner"},
        {"id": second.ref.link, "alt": ""},
    ]


def test_send_images_works_but_the_sdk_warns_under_httpx_028(bot: Client) -> None:
    with pytest.warns(DeprecationWarning, match="content="):
        posted = bot.send_images("two images", images=[PNG, GIF], image_alts=["a", "b"])
    assert len(bot.get_posts([posted.uri]).posts[0].embed.images) == 2  # type: ignore[union-attr]


def test_image_embed_errors(bot: Client) -> None:
    big = upload(bot, PNG + b"\0" * (1_060_000 - len(PNG)))
    small = upload(bot, PNG)

    def images(*blobs: models.BlobRef) -> models.AppBskyEmbedImages.Main:
        return models.AppBskyEmbedImages.Main(
            images=[models.AppBskyEmbedImages.Image(alt="x", image=b) for b in blobs]
        )

    with pytest.raises(BadRequestError) as exc:
        bot.send_post("too big", embed=images(big))
    assert xrpc_error(exc) == (
        400,
        "BlobTooLarge",
        "This file is too large. It is 1.01MB but the maximum size is 976.56KB.",  # the real wording
    )
    assert bot.me is not None
    blob = {"$type": "blob", "ref": {"$link": small.ref.link}, "mimeType": "image/png", "size": small.size}

    def create(image: dict[str, Any], count: int = 1) -> None:
        embed = {"$type": "app.bsky.embed.images", "images": [image] * count}
        record = {
            "$type": "app.bsky.feed.post",
            "text": "x",
            "createdAt": bot.get_current_time_iso(),
            "embed": embed,
        }
        bot.com.atproto.repo.create_record(
            {"repo": bot.me.did, "collection": "app.bsky.feed.post", "record": record}
        )  # type: ignore[union-attr]

    with pytest.raises(BadRequestError) as exc:
        create({"alt": "", "image": blob}, count=5)  # the SDK refuses five client-side
    assert xrpc_error(exc)[2].endswith("Record/embed/images must not have more than 4 elements")
    with pytest.raises(BadRequestError) as exc:
        create({"image": blob})
    assert xrpc_error(exc)[2].endswith('Record/embed/images/0 must have the property "alt"')
    with pytest.raises(BadRequestError) as exc:
        create({"alt": "ghost", "image": {**blob, "ref": {"$link": "bafkreinotuploaded0000000000"}}})
    assert xrpc_error(exc) == (400, "BlobNotFound", "Could not find blob: bafkreinotuploaded0000000000")


def test_upload_over_the_pds_cap_is_413(bot: Client) -> None:
    with pytest.raises(NetworkError) as exc:  # the SDK maps 413 to NetworkError
        upload(bot, PNG + b"\0" * (6 * 1024 * 1024))
    assert exc.value.response.status_code == 413


def test_external_card_and_quote(connect: Callable[..., Client]) -> None:
    bot, other = connect(0), connect(1)
    thumb = upload(bot, JPEG)
    card = models.AppBskyEmbedExternal.Main(
        external=models.AppBskyEmbedExternal.External(
            uri="https://example.org/p", title="Petition", description="Sign it", thumb=thumb
        )
    )
    posted = bot.send_post("Sign https://example.org/p", embed=card)
    view = bot.get_posts([posted.uri]).posts[0]
    assert isinstance(view.embed, models.AppBskyEmbedExternal.View)
    assert view.embed.external.title == "Petition" and view.embed.external.thumb
    quote = other.send_post(
        "Read this", embed=models.AppBskyEmbedRecord.Main(record=models.create_strong_ref(posted))
    )
    quoted = other.get_posts([quote.uri]).posts[0].embed
    assert isinstance(quoted, models.AppBskyEmbedRecord.View)
    assert isinstance(quoted.record, models.AppBskyEmbedRecord.ViewRecord)
    assert bot.get_posts([posted.uri]).posts[0].quote_count == 1


def test_a_thread_of_replies_with_root_and_parent(bot: Client) -> None:
    root = bot.send_post("1/3 Tech companies sell tools to ICE")
    root_ref = models.create_strong_ref(root)
    second = bot.send_post("2/3", reply_to=models.AppBskyFeedPost.ReplyRef(root=root_ref, parent=root_ref))
    third = bot.send_post(
        "3/3",
        reply_to=models.AppBskyFeedPost.ReplyRef(root=root_ref, parent=models.create_strong_ref(second)),
    )
    down = bot.get_post_thread(root.uri).thread
    assert isinstance(down, models.AppBskyFeedDefs.ThreadViewPost)
    assert down.post.reply_count == 1
    assert down.replies is not None and down.replies[0].replies[0].post.record.text == "3/3"  # type: ignore[union-attr]
    up = bot.get_post_thread(third.uri).thread
    assert isinstance(up, models.AppBskyFeedDefs.ThreadViewPost)
    assert up.parent.post.record.text == "2/3" and up.parent.parent.post.uri == root.uri  # type: ignore[union-attr]

    bot.delete_post(second.uri)
    orphan = bot.get_post_thread(third.uri).thread
    assert isinstance(orphan.parent, models.AppBskyFeedDefs.NotFoundPost)  # type: ignore[union-attr]
    ghost = models.ComAtprotoRepoStrongRef.Main(
        uri=root.uri.replace(rkey_of(root.uri), make_tid(EPOCH + timedelta(microseconds=1), clock_id=0)),
        cid=root.cid,
    )
    with pytest.raises(BadRequestError) as exc:
        bot.send_post("to nowhere", reply_to=models.AppBskyFeedPost.ReplyRef(root=ghost, parent=ghost))
    assert "Record/reply/root does not reference an existing record" in xrpc_error(exc)[2]


def test_explicit_tid_rkey_then_the_pds_500_on_reuse(bot: Client, server: SandboxServer) -> None:
    assert bot.me is not None
    rkey = make_tid(EPOCH + timedelta(microseconds=1_790_000_000_000_000), clock_id=42)
    record = models.AppBskyFeedPost.Record(text="exactly once", created_at=bot.get_current_time_iso())
    first = bot.app.bsky.feed.post.create(bot.me.did, record, rkey=rkey)
    assert rkey_of(first.uri) == rkey
    with pytest.raises(RequestException) as exc:
        bot.app.bsky.feed.post.create(bot.me.did, record, rkey=rkey)
    assert type(exc.value) is RequestException
    assert xrpc_error(exc) == (500, "InternalServerError", "Internal Server Error")
    assert bot.get_post(rkey).value.text == "exactly once"  # how a client learns it was posted
    assert [p["text"] for p in state(server)["posts"]] == ["exactly once"]
    with pytest.raises(BadRequestError) as exc:
        bot.app.bsky.feed.post.create(bot.me.did, record, rkey="not-a-tid")
    assert xrpc_error(exc) == (400, "InvalidRequest", "Invalid record key for app.bsky.feed.post")


def test_get_record_missing_and_delete(bot: Client, server: SandboxServer) -> None:
    assert bot.me is not None
    with pytest.raises(BadRequestError) as exc:
        bot.get_post(make_tid(EPOCH + timedelta(microseconds=5), clock_id=0))
    status, error, message = xrpc_error(exc)
    assert (status, error) == (400, "RecordNotFound") and message.startswith("Could not locate record: at://")
    posted = bot.send_post("to be retracted #NoTechForICE")
    assert bot.delete_post(posted.uri) is True
    with pytest.raises(BadRequestError):
        bot.get_post(rkey_of(posted.uri))
    with pytest.raises(BadRequestError) as exc:
        bot.get_post_thread(posted.uri)
    assert xrpc_error(exc) == (400, "NotFound", f"Post not found: {posted.uri}")
    assert state(server)["posts"][0]["deleted"] is True
    assert bot.delete_post(posted.uri) is True  # deleting again is a no-op on the PDS


def test_put_and_list_records(bot: Client) -> None:
    assert bot.me is not None
    posted = [bot.send_post(f"post {i}") for i in range(3)]
    page = bot.com.atproto.repo.list_records(
        {"repo": bot.me.did, "collection": "app.bsky.feed.post", "limit": 2}
    )
    assert [r.uri for r in page.records] == [posted[2].uri, posted[1].uri] and page.cursor
    rest = bot.com.atproto.repo.list_records(
        {"repo": bot.me.did, "collection": "app.bsky.feed.post", "limit": 2, "cursor": page.cursor}
    )
    assert [r.uri for r in rest.records] == [posted[0].uri] and rest.cursor is None
    record = models.AppBskyFeedPost.Record(text="post 0, edited", created_at=bot.get_current_time_iso())
    put = bot.com.atproto.repo.put_record(
        {
            "repo": bot.me.did,
            "collection": "app.bsky.feed.post",
            "rkey": rkey_of(posted[0].uri),
            "record": record,
        }
    )
    assert put.uri == posted[0].uri and put.cid != posted[0].cid
    assert bot.get_post(rkey_of(posted[0].uri)).value.text == "post 0, edited"


def test_repost_for_amplification(connect: Callable[..., Client], server: SandboxServer) -> None:
    bot, other = connect(0), connect(1)
    ally = control(server, "audience", kind="hashtag", author="ally.example.org", text="Join us").json()[
        "posts"
    ][0]
    ally_cid = bot.get_posts([ally["id"]]).posts[0].cid
    repost = bot.repost(ally["id"], ally_cid)
    assert repost.uri.split("/")[-2] == "app.bsky.feed.repost"
    assert bot.get_posts([ally["id"]]).posts[0].repost_count == 1
    assert state(server)["reposts"] == [
        {"id": repost.uri, "author": "main.sandbox.test", "subject": ally["id"]}
    ]
    ours = other.send_post("from account2")
    bot.repost(ours.uri, ours.cid)
    reasons = [n.reason for n in other.app.bsky.notification.list_notifications().notifications]
    assert reasons == ["repost"]


# -- reads ---------------------------------------------------------------------------------


def test_a_tag_in_q_finds_posts_without_facets_the_tag_parameter_does_not(
    bot: Client, server: SandboxServer
) -> None:
    def handles(**params: Any) -> list[str]:
        found = bot.app.bsky.feed.search_posts(models.AppBskyFeedSearchPosts.Params(**params)).posts
        return sorted(p.author.handle for p in found)

    control(server, "audience", kind="hashtag", author="faceted", text="with a facet #NoTechForICE")
    control(server, "audience", kind="hashtag", author="plain", text="no facet #NOTECHFORICE", plain=True)
    control(
        server,
        "audience",
        kind="hashtag",
        author="tagged",
        text="tags only",
        plain=True,
        tags=["notechforice"],
    )
    records = {p["author"]: p["raw"] for p in state(server)["posts"]}
    assert "facets" not in records["plain.test"] and records["tagged.test"]["tags"] == ["notechforice"]

    assert handles(q="#notechforice") == ["faceted.test", "plain.test", "tagged.test"]
    assert handles(q="*", tag=["NoTechForICE"]) == ["faceted.test", "tagged.test"]


def test_an_audience_post_may_claim_any_valid_created_at(server: SandboxServer, bot: Client) -> None:
    for moment in ("1970-01-01T00:00:00Z", "2999-12-31T23:59:59.999Z"):
        answer = control(server, "audience", kind="hashtag", text="time", created_at=moment)
        assert answer.status_code == 200 and answer.json()["posts"][0]["raw"]["createdAt"] == moment
    refused = control(server, "audience", kind="hashtag", text="time", created_at="yesterday")
    assert refused.status_code == 400 and "createdAt" in refused.json()["error"]
    assert len(bot.app.bsky.feed.search_posts(models.AppBskyFeedSearchPosts.Params(q="time")).posts) == 2


def test_search_by_words_tags_time_and_cursor(bot: Client, server: SandboxServer, clock: Clock) -> None:
    def search(**params: Any) -> models.AppBskyFeedSearchPosts.Response:
        return bot.app.bsky.feed.search_posts(models.AppBskyFeedSearchPosts.Params(**params))

    control(server, "audience", kind="hashtag", author="alice", text="Drop the contract", count=3)
    clock.advance(hours=1)
    since = clock.now.isoformat()
    control(server, "audience", kind="hashtag", author="bob", text="Tech workers #Solidarity")
    bot.send_post("plain text mentioning notechforice without a facet")

    assert len(search(q="#NoTechForICE").posts) == 4
    assert [p.author.handle for p in search(q="#notechforice", since=since).posts] == ["bob.test"]
    assert len(search(q="*", tag=["NoTechForICE", "solidarity"]).posts) == 1
    assert len(search(q="contract", until=since).posts) == 3
    assert search(q="notechforice").posts[0].author.handle == "main.sandbox.test"
    first = search(q="#NoTechForICE", limit=3)
    assert len(first.posts) == 3 and first.cursor
    rest = search(q="#NoTechForICE", limit=3, cursor=first.cursor)
    assert len(rest.posts) == 1 and rest.cursor is None
    assert {p.uri for p in first.posts}.isdisjoint(p.uri for p in rest.posts)
    assert first.posts[0].author.handle == "bob.test"  # sort=latest: newest first
    too_many = raw_get(
        server, "app.bsky.feed.searchPosts", q="x", limit=101
    )  # the SDK refuses it client-side
    assert too_many == {"error": "InvalidRequest", "message": "Params/limit can not be greater than 100"}


def test_notifications_reasons_subjects_and_cursor(
    connect: Callable[..., Client], server: SandboxServer
) -> None:
    bot, other = connect(0), connect(1)
    posted = bot.send_post("Our call #NoTechForICE")
    control(server, "audience", kind="reply", author="alice", text="agreed", to=posted.uri)
    control(server, "audience", kind="mention", author="bob", text="look at this")
    other.send_post("Quoting", embed=models.AppBskyEmbedRecord.Main(record=models.create_strong_ref(posted)))
    other.like(posted.uri, posted.cid)

    def notifications(**params: Any) -> models.AppBskyNotificationListNotifications.Response:
        return bot.app.bsky.notification.list_notifications(
            models.AppBskyNotificationListNotifications.Params(**params)
        )

    everything = notifications()
    assert [n.reason for n in everything.notifications] == ["like", "quote", "mention", "reply"]
    replies = notifications(reasons=["reply", "mention", "quote"])
    assert [n.reason for n in replies.notifications] == ["quote", "mention", "reply"]
    reply = replies.notifications[-1]
    assert (reply.reason_subject, reply.record.text, reply.author.handle) == (
        posted.uri,
        "agreed",
        "alice.test",
    )
    page = notifications(reasons=["reply", "mention", "quote"], limit=2)
    assert page.cursor is not None
    rest = notifications(reasons=["reply", "mention", "quote"], limit=2, cursor=page.cursor)
    assert [n.reason for n in rest.notifications] == ["reply"] and rest.cursor is None
    assert other.app.bsky.notification.list_notifications().notifications == []  # no self-notifications


# -- rate limits and faults ----------------------------------------------------------------


def test_write_points_headers_count_down_even_without_limits(server: SandboxServer, bot: Client) -> None:
    assert bot._session is not None
    answer = requests.post(
        f"{server.base_url}/xrpc/com.atproto.repo.createRecord",
        headers={"Authorization": f"Bearer {bot._session.access_jwt}"},
        json={
            "repo": bot._session.did,
            "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2026-01-01T00:00:00Z"},
        },
        timeout=5,
    )
    assert answer.status_code == 200
    headers = {k: answer.headers[k] for k in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Policy")}
    assert headers == {
        "RateLimit-Limit": "5000",
        "RateLimit-Remaining": "4997",
        "RateLimit-Policy": "5000;w=3600",
    }


def test_create_session_limit_gives_429_and_resets_on_the_clock(clock: Clock) -> None:
    emulator = BlueskyEmulator(limits="platform", clock=clock)
    server = SandboxServer(emulator).start()
    account = emulator.credentials()[0]
    client = Client(base_url=server.base_url)
    try:
        for _ in range(30):
            client.login(account["handle"], account["app_password"], fetch_bsky_profile=False)
        with pytest.raises(RateLimitExceededError) as exc:
            client.login(account["handle"], account["app_password"], fetch_bsky_profile=False)
        assert exc.value.response.content.error == "RateLimitExceeded"
        assert (exc.value.limit, exc.value.remaining, exc.value.policy) == (30, 0, "30;w=300")
        assert exc.value.reset_at == clock.now + timedelta(minutes=5)
        clock.advance(minutes=5)
        client.login(account["handle"], account["app_password"], fetch_bsky_profile=False)
    finally:
        client.request.close()
        server.stop()


def test_write_points_run_out_after_1666_posts_an_hour(clock: Clock) -> None:
    emulator = BlueskyEmulator(limits="platform", clock=clock)
    server = SandboxServer(emulator).start()
    account = emulator.credentials()[0]
    with requests.Session() as http:
        session = http.post(
            f"{server.base_url}/xrpc/com.atproto.server.createSession",
            json={"identifier": account["handle"], "password": account["app_password"]},
        ).json()
        http.headers["Authorization"] = f"Bearer {session['accessJwt']}"

        def create() -> requests.Response:
            record = {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-01-01T00:00:00Z"}
            body = {"repo": session["did"], "collection": "app.bsky.feed.post", "record": record}
            return http.post(f"{server.base_url}/xrpc/com.atproto.repo.createRecord", json=body)

        statuses = [create().status_code for _ in range(1666)]
        refused = create()
        clock.advance(hours=1)
        again = create()
    server.stop()
    assert set(statuses) == {200}
    assert refused.status_code == 429
    assert refused.json() == {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
    assert refused.headers["RateLimit-Remaining"] == "0" and int(refused.headers["Retry-After"]) == 3600
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("status", "raised", "body"),
    [
        (503, RequestException, {"error": "NotEnoughResources", "message": "Not Enough Resources"}),
        (502, NetworkError, {"error": "UpstreamFailure", "message": "Upstream Failure"}),
        (500, RequestException, {"error": "InternalServerError", "message": "Internal Server Error"}),
    ],
)
def test_status_faults_answer_xrpc_error_bodies(
    bot: Client, server: SandboxServer, status: int, raised: type[Exception], body: dict[str, str]
) -> None:
    control(server, "faults", method="POST", path="/xrpc/com.atproto.repo.createRecord", status=status)
    with pytest.raises(raised) as exc:
        bot.send_post("unlucky")
    response = exc.value.response  # type: ignore[attr-defined]
    assert (response.status_code, response.content.error, response.content.message) == (
        status,
        *body.values(),
    )
    assert state(server)["posts"] == []


def test_dropped_answer_after_the_write_is_reconciled_with_get_record(
    bot: Client, server: SandboxServer
) -> None:
    assert bot.me is not None
    control(
        server,
        "faults",
        method="POST",
        path="/xrpc/com.atproto.repo.createRecord",
        drop="after",
        account="main",
    )
    rkey = make_tid(EPOCH + timedelta(microseconds=1_790_000_000_000_000), clock_id=0)
    record = models.AppBskyFeedPost.Record(text="lost answer", created_at=bot.get_current_time_iso())
    # The SDK maps only httpx's timeouts and NetworkError; a closed connection escapes raw.
    with pytest.raises(httpx.RemoteProtocolError):
        bot.app.bsky.feed.post.create(bot.me.did, record, rkey=rkey)
    assert bot.get_post(rkey).value.text == "lost answer"


def test_rate_limit_fault_carries_reset_headers(bot: Client, server: SandboxServer, clock: Clock) -> None:
    control(server, "faults", method="POST", path="/xrpc/com.atproto.repo.*", status=429, reset_in=30)
    with pytest.raises(RateLimitExceededError) as exc:
        bot.send_post("slow down")
    assert exc.value.reset_at == clock.now + timedelta(seconds=30)
    assert exc.value.retry_after == 30


# -- audience and state --------------------------------------------------------------------


def test_audience_through_plain_http(bot: Client, server: SandboxServer) -> None:
    ours = bot.send_post("Our call")
    reply = control(server, "audience", kind="reply", author="alice", text="agreed", to=ours.uri).json()[
        "posts"
    ][0]
    assert (reply["author"], reply["in_reply_to"]) == ("alice.test", ours.uri)
    mention = control(server, "audience", kind="mention", author="bob", text="hello").json()["posts"][0]
    assert mention["text"] == "@main.sandbox.test hello"
    assert mention["raw"]["facets"][0]["features"][0]["did"] == bot.me.did  # type: ignore[union-attr]
    tagged = control(server, "audience", kind="hashtag", author="carol", text="Drop it", count=2).json()[
        "posts"
    ]
    assert [p["text"] for p in tagged] == ["Drop it #NoTechForICE"] * 2
    assert control(server, "audience", kind="reply", author="alice", text="to what?").status_code == 400

    posts = state(server)["posts"]
    assert [p["author"] for p in posts] == [
        "main.sandbox.test",
        "alice.test",
        "bob.test",
        "carol.test",
        "carol.test",
    ]
    assert set(posts[0]) == {
        "id",
        "url",
        "author",
        "text",
        "created_at",
        "in_reply_to",
        "media",
        "raw",
    }
    assert state(server)["accounts"] == {"main": "main.sandbox.test", "account2": "account2.sandbox.test"}
    assert posts[0]["url"] == f"{server.base_url}/profile/main.sandbox.test/post/{rkey_of(ours.uri)}"
    assert control(server, "reset").ok
    assert state(server)["posts"] == []
    assert bot.send_post("sessions survive a reset").uri


# -- contract: lexicons, minimal responses, AppView snapshots -------------------------------

DATA = Path(__file__).parent / "data" / "bluesky"


def load_lexicons() -> dict[str, dict[str, Any]]:
    return {(lex := json.loads(p.read_text()))["id"]: lex for p in (DATA / "lexicons").glob("*.json")}


def check_lexicon(value: Any, ref: str, lexicons: dict[str, dict[str, Any]], path: str = "") -> list[str]:
    """A small generic lexicon validator, independent of the emulator's own: the problems found."""
    nsid, _, name = ref.partition("#")
    if nsid not in lexicons:
        return []  # a lexicon not in tests/data/ (e.g. app.bsky.embed.defs): not checked here
    return check_def(value, lexicons[nsid]["defs"][name or "main"], nsid, lexicons, path)


def check_def(
    value: Any, d: dict[str, Any], nsid: str, lexicons: dict[str, dict[str, Any]], path: str
) -> list[str]:
    kind = d["type"]
    if kind == "record":
        return check_def(value, d["record"], nsid, lexicons, path)
    if kind == "ref":
        target = d["ref"] if not d["ref"].startswith("#") else nsid + d["ref"]
        return check_lexicon(value, target, lexicons, path)
    if kind == "union":
        if not isinstance(value, dict) or "$type" not in value:
            return [f"{path}: union member without $type"]
        return (
            check_lexicon(value, value["$type"], lexicons, path)
            if value["$type"] in d["refs"]
            or any(value["$type"] == (r if not r.startswith("#") else nsid + r) for r in d["refs"])
            else []
        )
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        problems = [f"{path}/{k}: required" for k in d.get("required", []) if k not in value]
        for key, sub in d.get("properties", {}).items():
            if key in value:
                problems += check_def(value[key], sub, nsid, lexicons, f"{path}/{key}")
        return problems
    if kind == "array":
        if not isinstance(value, list) or len(value) > d.get("maxLength", len(value)):
            return [f"{path}: bad array"]
        return [
            p
            for i, item in enumerate(value)
            for p in check_def(item, d["items"], nsid, lexicons, f"{path}/{i}")
        ]
    if kind == "string":
        ok = isinstance(value, str) and len(value.encode()) <= d.get("maxLength", 10**9)
        return [] if ok else [f"{path}: bad string"]
    if kind == "integer":
        ok = isinstance(value, int) and value >= d.get("minimum", value)
        return [] if ok else [f"{path}: bad integer"]
    if kind == "blob":
        ok = (
            isinstance(value, dict)
            and value.get("$type") == "blob"
            and value["size"] <= d.get("maxSize", 10**12)
        )
        return [] if ok else [f"{path}: bad blob"]
    return []


def test_every_stored_post_validates_against_the_lexicon(
    connect: Callable[..., Client], server: SandboxServer
) -> None:
    bot, other = connect(0), connect(1)
    text = (
        client_utils.TextBuilder()
        .text("Rally ✊ ")
        .tag("#NoTechForICE", "NoTechForICE")
        .text(" ")
        .mention(
            "@account2",
            other.me.did,  # type: ignore[union-attr]
        )
    )
    image = upload(bot, PNG)
    posted = bot.send_post(
        text,
        langs=["en", "es"],
        embed=models.AppBskyEmbedImages.Main(
            images=[models.AppBskyEmbedImages.Image(alt="banner", image=image)]
        ),
    )
    ref = models.create_strong_ref(posted)
    bot.send_post("reply", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))
    other.send_post(
        "card",
        embed=models.AppBskyEmbedExternal.Main(
            external=models.AppBskyEmbedExternal.External(uri="https://e.org", title="t", description="d")
        ),
    )
    control(
        server,
        "audience",
        kind="reply",
        author="alice",
        text="yes #NoTechForICE https://x.org",
        to=posted.uri,
    )
    control(server, "audience", kind="mention", author="bob", text="hi")
    lexicons = load_lexicons()
    posts = state(server)["posts"]
    assert len(posts) == 5
    for post in posts:
        assert check_lexicon(post["raw"], "app.bsky.feed.post", lexicons) == [], post["text"]


def same_shape(ours: Any, reference: Any, path: str = "") -> list[str]:
    """Every key of the reference is in ours with the same JSON type (recursively, first list items)."""
    if isinstance(reference, dict):
        if not isinstance(ours, dict):
            return [f"{path}: not an object"]
        return [
            p
            for k, v in reference.items()
            for p in (same_shape(ours[k], v, f"{path}/{k}") if k in ours else [f"{path}/{k}: missing"])
        ]
    if isinstance(reference, list):
        if not isinstance(ours, list):
            return [f"{path}: not an array"]
        return same_shape(ours[0], reference[0], f"{path}/0") if reference and ours else []
    return (
        []
        if type(ours) is type(reference)
        else [f"{path}: {type(ours).__name__} is not {type(reference).__name__}"]
    )


def raw_get(server: SandboxServer, nsid: str, token: str | None = None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{server.base_url}/xrpc/{nsid}", params=params, headers=headers, timeout=5).json()


def test_answers_have_the_shapes_of_the_minimal_responses(
    connect: Callable[..., Client], server: SandboxServer, emulator: BlueskyEmulator
) -> None:
    bot = connect(0)
    assert bot._session is not None and bot.me is not None
    token = bot._session.access_jwt
    minimal = json.loads((DATA / "minimal_responses.json").read_text())
    login = requests.post(
        f"{server.base_url}/xrpc/com.atproto.server.createSession",
        json={"identifier": "main.sandbox.test", "password": emulator.credentials()[0]["app_password"]},
        timeout=5,
    ).json()
    posted = bot.send_post("Stop #NoTechForICE")
    reply = control(server, "audience", kind="reply", author="alice", text="agreed", to=posted.uri).json()[
        "posts"
    ][0]
    answers = {
        "com.atproto.server.createSession": login,
        "app.bsky.actor.getProfile": raw_get(server, "app.bsky.actor.getProfile", actor="main.sandbox.test"),
        "com.atproto.repo.getRecord": raw_get(
            server,
            "com.atproto.repo.getRecord",
            repo=bot.me.did,
            collection="app.bsky.feed.post",
            rkey=rkey_of(posted.uri),
        ),
        "app.bsky.feed.searchPosts": raw_get(server, "app.bsky.feed.searchPosts", q="#NoTechForICE", limit=1),
        "app.bsky.notification.listNotifications": raw_get(
            server, "app.bsky.notification.listNotifications", token
        ),
        "app.bsky.feed.getPostThread": raw_get(server, "app.bsky.feed.getPostThread", uri=posted.uri),
    }
    answers["app.bsky.notification.listNotifications"]["cursor"] = "x"  # only sent when more follow
    answers["app.bsky.feed.searchPosts"]["cursor"] = "x"
    reference = {k: v for k, v in minimal.items() if k in answers}
    reference["app.bsky.feed.getPostThread"]["thread"]["replies"] = reference["app.bsky.feed.getPostThread"][
        "thread"
    ]["replies"][:1]
    for nsid, body in reference.items():
        assert same_shape(answers[nsid], body, nsid) == []
    assert answers["app.bsky.feed.getPostThread"]["thread"]["replies"][0]["post"]["uri"] == reply["id"]


def snapshots(name: str) -> dict[str, Any]:
    """The AppView's Vitest snapshots, as JSON (they are JS literals with trailing commas)."""
    import re

    text = (DATA / f"bsky_appview_snapshot_{name}.test.ts.snap").read_text()
    found = {}
    for title, body in re.findall(r"exports\[`(.+?)`\] = `\n(.*?)\n`;", text, re.S):
        found[title] = json.loads(re.sub(r",(\s*[}\]])", r"\1", body))
    return found


def keys_of(views: list[dict[str, Any]], part: str | None = None) -> set[str]:
    return {k for v in views for k in (v[part] if part else v) if (v.get(part) if part else v) is not None}


def test_views_use_the_keys_and_types_of_the_appview_snapshots(
    connect: Callable[..., Client], server: SandboxServer
) -> None:
    bot = connect(0)
    posted = bot.send_post("thanks bob")
    control(server, "audience", kind="reply", author="bob", text="hear that", to=posted.uri)
    ours = raw_get(server, "app.bsky.feed.getPosts", uris=posted.uri)["posts"][0]
    real_posts = snapshots("posts")["pds posts views > fetches posts 1"]
    real_keys = keys_of(real_posts)
    assert set(ours) == real_keys - {"embed"}  # ours has no embed; some of theirs do
    assert set(ours["author"]) <= keys_of(real_posts, "author")
    assert set(ours["viewer"]) <= keys_of(real_posts, "viewer")
    real_post = {k: v for k, v in real_posts[0].items() if k != "labels"}
    real_post["author"] = {k: v for k, v in real_post["author"].items() if k != "avatar"}  # we have none
    real_post["record"] = {k: v for k, v in real_post["record"].items() if k != "labels"}  # self-labels
    assert same_shape(ours, real_post) == []

    thread = raw_get(server, "app.bsky.feed.getPostThread", uri=posted.uri)["thread"]
    real_thread = snapshots("thread")["appview thread views > fetches ancestors 1"]
    assert thread["$type"] == real_thread["$type"] == "app.bsky.feed.defs#threadViewPost"
    assert set(thread) == {"$type", "post", "replies", "threadContext"} <= set(real_thread) | {"replies"}
    assert thread["replies"][0]["$type"] == "app.bsky.feed.defs#threadViewPost"

    token = bot._session.access_jwt  # type: ignore[union-attr]
    note = raw_get(server, "app.bsky.notification.listNotifications", token)["notifications"][0]
    real_notes = snapshots("notifications")[
        "notification views > fetches notifications without a last-seen 1"
    ]
    real_reply = next(n for n in real_notes if n["reason"] == "reply")
    assert set(note) == set(real_reply)
    assert same_shape(note, {k: v for k, v in real_reply.items() if k != "author"}) == []
    assert note["record"]["$type"] == "app.bsky.feed.post"


def test_a_recorded_real_thread_has_the_shape_our_thread_has(bot: Client, server: SandboxServer) -> None:
    real = json.loads((DATA / "marshalx_thread_view_post_with_embed_media.json").read_text())["thread"]
    posted = bot.send_post("test")
    ours = raw_get(server, "app.bsky.feed.getPostThread", uri=posted.uri)["thread"]
    real_post = {k: v for k, v in real["post"].items() if k not in ("embed", "labels")}
    real_post["author"] = {k: v for k, v in real_post["author"].items() if k not in ("avatar", "labels")}
    real_post["record"] = {
        k: v for k, v in real_post["record"].items() if k in ("$type", "text", "createdAt")
    }
    assert same_shape(ours["post"], real_post) == []
    record = json.loads((DATA / "marshalx_post_record.json").read_text())
    got = raw_get(
        server,
        "com.atproto.repo.getRecord",
        repo="main.sandbox.test",
        collection="app.bsky.feed.post",
        rkey=rkey_of(posted.uri),
    )
    assert same_shape(got, record) == []


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("Tech workers say no ✊ #NoTechForICE!!", ["NoTechForICE"]),  # trailing punctuation stripped
        ("x#a (#b) #1234 #2024election", ["2024election"]),  # the tag rules of rich-text/detection.ts
        ("＃全角 tag", ["全角"]),
    ],
)
def test_audience_facets_follow_the_apps_tag_rules(text: str, tags: list[str]) -> None:
    facets = detect_facets(text, lambda handle: None)
    data = text.encode()
    assert [f["features"][0]["tag"] for f in facets] == tags
    for facet, tag in zip(facets, tags, strict=True):
        assert data[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode()[1:] == tag
