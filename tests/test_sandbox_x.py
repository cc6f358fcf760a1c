"""The X emulator, driven by the real tweepy.Client over HTTP (redirected as the bot does it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import tweepy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tweepy.auth import OAuth1UserHandler

from bot.platforms.x_transport import redirect_session
from bot.sandbox.server import SandboxServer
from bot.sandbox.x import XEmulator
from bot.sandbox.x_tweets import snowflake_at
from tests.clock import Clock
from tests.imagefiles import gif, jpeg, png, webp

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
DUPLICATE = {
    "detail": "You are not allowed to create a Tweet with duplicate content.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}


class Sandbox:
    def __init__(self, emulator: XEmulator, server: SandboxServer, clock: Clock) -> None:
        self.emulator, self.server, self.clock = emulator, server, clock
        self.url = server.base_url

    def client(self, account: int = 0, raw: bool = False, **override: str) -> tweepy.Client:
        keys = {**self.emulator.credentials()[account], **override}
        client = tweepy.Client(
            consumer_key=keys["consumer_key"],
            consumer_secret=keys["consumer_secret"],
            access_token=keys["access_token"],
            access_token_secret=keys["access_token_secret"],
            return_type=requests.Response if raw else tweepy.Response,
        )
        redirect_session(client.session, self.url)
        return client

    def upload(self, client: tweepy.Client, data: bytes, category: str = "tweet_image") -> requests.Response:
        """The v2 upload tweepy has no method for, through the client's own session."""
        return client.session.post(
            "https://api.x.com/2/media/upload",
            auth=self._auth(client),
            files={"media": ("image", data, "application/octet-stream")},
            data={"media_category": category},
        )

    def alt_text(self, client: tweepy.Client, media_id: str, text: str) -> requests.Response:
        return client.session.post(
            "https://api.x.com/2/media/metadata",
            auth=self._auth(client),
            json={"id": media_id, "metadata": {"alt_text": {"text": text}}},
        )

    def _auth(self, client: tweepy.Client) -> Any:
        return OAuth1UserHandler(
            client.consumer_key, client.consumer_secret, client.access_token, client.access_token_secret
        ).apply_auth()

    def control(self, route: str, **payload: Any) -> Any:
        answer = requests.post(f"{self.url}/_sandbox/{route}", json=payload, timeout=5)
        assert answer.ok, answer.text
        return answer.json()

    def state(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/_sandbox/state", timeout=5).json()["posts"]


def start(limits: str = "none", accounts: int = 2) -> tuple[XEmulator, SandboxServer, Clock]:
    clock = Clock(START)
    emulator = XEmulator(accounts=accounts, limits=limits, clock=clock)
    return emulator, SandboxServer(emulator).start(), clock


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    emulator, server, clock = start()
    yield Sandbox(emulator, server, clock)
    server.stop()


@pytest.fixture
def free() -> Iterator[Sandbox]:
    emulator, server, clock = start(limits="free")
    yield Sandbox(emulator, server, clock)
    server.stop()


# -- users/me and signatures ---------------------------------------------------------------


def test_get_me_names_the_account_whose_keys_signed(sandbox: Sandbox) -> None:
    main, second = sandbox.client(0).get_me().data, sandbox.client(1).get_me().data
    assert (main.username, second.username) == ("ntfi_main", "ntfi_account2")
    # tweepy reads the user id from the access token, as X issues them ("<id>-...").
    assert str(main.id) == sandbox.emulator.credentials()[0]["access_token"].split("-")[0]
    assert main.id != second.id


@pytest.mark.parametrize("key", ["consumer_secret", "access_token_secret", "consumer_key"])
def test_a_wrong_key_is_refused_with_xs_401(sandbox: Sandbox, key: str) -> None:
    client = sandbox.client(raw=True, **{key: "not-the-right-one"})
    with pytest.raises(tweepy.Unauthorized) as caught:
        client.create_tweet(text="signed with the wrong key")
    assert caught.value.response.json() == UNAUTHORIZED
    assert sandbox.state() == []


def test_search_without_user_auth_sends_no_signature_and_is_refused(sandbox: Sandbox) -> None:
    # tweepy's default (user_auth=False) sends "Bearer None" when only OAuth 1.0a keys are set.
    with pytest.raises(tweepy.Unauthorized):
        sandbox.client().search_recent_tweets("#NoTechForICE")


def test_signature_covers_the_host_the_client_signed(sandbox: Sandbox) -> None:
    client = sandbox.client()
    auth = OAuth1UserHandler(
        client.consumer_key, client.consumer_secret, client.access_token, client.access_token_secret
    ).apply_auth()
    signed = requests.Request("GET", "https://api.twitter.com/2/users/me", auth=auth).prepare()
    assert requests.get(f"{sandbox.url}/2/users/me", headers={**signed.headers}, timeout=5).status_code == 401
    forwarded = {**signed.headers, "Host": "api.twitter.com"}
    assert requests.get(f"{sandbox.url}/2/users/me", headers=forwarded, timeout=5).status_code == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(min_size=1, max_size=40), extra=st.text(max_size=10))
def test_signature_check_accepts_any_parameters_tweepys_signer_produces(
    sandbox: Sandbox, query: str, extra: str
) -> None:
    # Percent-encoding is where OAuth verifiers go wrong: spaces, "+", "~", "*", non-ASCII.
    client = sandbox.client()
    answer = client.session.get(
        "https://api.twitter.com/2/tweets/search/recent",
        params={"query": query, "tweet.fields": extra},
        auth=sandbox._auth(client),
    )
    assert answer.status_code != 401, (query, extra)


def test_credentials_are_stable_per_account_name() -> None:
    first, second = XEmulator(accounts=3), XEmulator(accounts=2)
    assert first.credentials()[:2] == second.credentials()
    assert [c["name"] for c in first.credentials()] == ["main", "account2", "account3"]
    assert len({c["consumer_key"] for c in first.credentials()}) == 3
    assert set(first.credentials()[0]) == {
        "name",
        "consumer_key",
        "consumer_secret",
        "access_token",
        "access_token_secret",
    }


# -- posting -------------------------------------------------------------------------------


def test_create_tweet_answers_xs_shape(sandbox: Sandbox) -> None:
    answer = sandbox.client(raw=True).create_tweet(text="Drop the contracts #NoTechForICE")
    assert answer.status_code == 201
    data = answer.json()["data"]
    assert data["text"] == "Drop the contracts #NoTechForICE"
    assert isinstance(data["id"], str) and data["edit_history_tweet_ids"] == [data["id"]]
    assert answer.headers["location"] == f"https://api.twitter.com/2/tweets/{data['id']}"
    [post] = sandbox.state()
    assert (post["id"], post["author"]) == (data["id"], "ntfi_main")
    assert requests.get(f"{sandbox.url}/_sandbox/state", timeout=5).json()["accounts"]["main"] == "ntfi_main"
    assert post["created_at"] == "2026-03-02T12:00:00.000Z"


def test_tweet_ids_grow_with_time_and_carry_their_creation_time(sandbox: Sandbox) -> None:
    client = sandbox.client()
    first = int(client.create_tweet(text="one").data["id"])
    second = int(client.create_tweet(text="two").data["id"])  # same millisecond: still larger
    sandbox.clock.advance(minutes=1)
    third = int(client.create_tweet(text="three").data["id"])
    assert first < second < third
    assert first >= snowflake_at(START) and third >= snowflake_at(START + timedelta(minutes=1))


def test_links_come_back_as_23_character_tco_links(sandbox: Sandbox) -> None:
    text = "Sign the petition: https://example.org/a/very/long/path/that/goes/on?and=on"
    data = sandbox.client().create_tweet(text=text).data
    assert data["text"].startswith("Sign the petition: https://t.co/")
    assert len(data["text"]) == len("Sign the petition: ") + 23
    [post] = sandbox.state()
    assert post["text"] == text  # state shows the text as posted
    [url] = post["raw"]["entities"]["urls"]
    assert url["expanded_url"] == "https://example.org/a/very/long/path/that/goes/on?and=on"


def test_a_thread_is_one_conversation(sandbox: Sandbox) -> None:
    client = sandbox.client()
    root = client.create_tweet(text="1/ Hundreds of employees asked").data["id"]
    middle = client.create_tweet(text="2/ Salesforce employees too", in_reply_to_tweet_id=root).data["id"]
    last = client.create_tweet(text="3/ Call your rep", in_reply_to_tweet_id=middle).data["id"]
    found = client.search_recent_tweets(
        f"conversation_id:{root}",
        user_auth=True,
        tweet_fields=["conversation_id", "referenced_tweets", "in_reply_to_user_id"],
    )
    assert [t.id for t in found.data] == [int(last), int(middle), int(root)]
    assert {t.conversation_id for t in found.data} == {int(root)}
    assert found.data[0].referenced_tweets[0].type == "replied_to"
    assert found.data[0].referenced_tweets[0].id == int(middle)
    assert [p["in_reply_to"] for p in sandbox.state()] == [None, root, middle]


def test_reply_to_a_deleted_tweet_is_refused(sandbox: Sandbox) -> None:
    client = sandbox.client()
    gone = client.create_tweet(text="soon gone").data["id"]
    client.delete_tweet(gone)
    with pytest.raises(tweepy.Forbidden, match="deleted or not visible"):
        client.create_tweet(text="answer", in_reply_to_tweet_id=gone)


def test_quote_tweet_references_the_quoted_one(sandbox: Sandbox) -> None:
    client = sandbox.client()
    quoted = client.create_tweet(text="original").data["id"]
    client.create_tweet(text="look at this", quote_tweet_id=quoted)
    raw = sandbox.state()[1]["raw"]
    assert raw["referenced_tweets"] == [{"type": "quoted", "id": quoted}]


def test_over_length_text_is_refused_as_x_does(sandbox: Sandbox) -> None:
    client = sandbox.client()
    assert client.create_tweet(text="a" * 280).data["id"]
    assert client.create_tweet(text="漢" * 140).data["id"]  # CJK weighs 2
    assert client.create_tweet(text="b" * 256 + " https://example.org/" + "x" * 200).data["id"]  # URL = 23
    for text in ("a" * 281, "字" * 141):
        with pytest.raises(tweepy.Forbidden) as caught:
            client.create_tweet(text=text)
        assert caught.value.api_messages == ["You are not permitted to perform this action."]
    assert len(sandbox.state()) == 3


def test_duplicate_text_is_refused_per_account_for_recent_tweets(sandbox: Sandbox) -> None:
    main, second = sandbox.client(0, raw=True), sandbox.client(1)
    first = main.create_tweet(text="Call your representative today").json()["data"]["id"]
    with pytest.raises(tweepy.Forbidden) as caught:
        main.create_tweet(text="Call your representative today")
    assert caught.value.response.json() == DUPLICATE
    assert second.create_tweet(text="Call your representative today").data  # another account may
    main.delete_tweet(first)
    assert main.create_tweet(text="Call your representative today").status_code == 201  # once deleted
    sandbox.clock.advance(days=8)
    assert main.create_tweet(text="Call your representative today").status_code == 201  # no longer recent


def test_empty_tweet_is_a_bad_request(sandbox: Sandbox) -> None:
    with pytest.raises(tweepy.BadRequest):
        sandbox.client().create_tweet(text="")


# -- deleting ------------------------------------------------------------------------------


def test_delete_keeps_the_tweet_in_state_marked_deleted(sandbox: Sandbox) -> None:
    client = sandbox.client(raw=True)
    tweet_id = client.create_tweet(text="retract me").json()["data"]["id"]
    answer = client.delete_tweet(tweet_id)
    assert (answer.status_code, answer.json()) == (200, {"data": {"deleted": True}})
    [post] = sandbox.state()
    assert post["deleted"] is True
    assert sandbox.client().get_users_tweets(sandbox.client().get_me().data.id, user_auth=True).data is None


def test_only_the_author_may_delete(sandbox: Sandbox) -> None:
    tweet_id = sandbox.client(0).create_tweet(text="mine").data["id"]
    with pytest.raises(tweepy.Forbidden):
        sandbox.client(1).delete_tweet(tweet_id)
    with pytest.raises(tweepy.NotFound):
        sandbox.client(0).delete_tweet("1234567890")
    assert "deleted" not in sandbox.state()[0]


# -- media ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "mime", "size"),
    [
        (png(3, 2), "image/png", (3, 2)),
        (jpeg(640, 480), "image/jpeg", (640, 480)),
        (gif(5, 7), "image/gif", (5, 7)),
        (webp(20, 10), "image/webp", (20, 10)),
    ],
)
def test_upload_recognises_the_image_from_its_bytes(
    sandbox: Sandbox, image: bytes, mime: str, size: tuple[int, int]
) -> None:
    answer = sandbox.upload(sandbox.client(), image)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert isinstance(data["id"], str) and data["media_key"].endswith("_" + data["id"])
    assert data["size"] == len(image) and data["expires_after_secs"] == 86400
    assert data["image"] == {"image_type": mime, "w": size[0], "h": size[1]}


def test_upload_refuses_what_is_not_an_image(sandbox: Sandbox) -> None:
    answer = sandbox.upload(sandbox.client(), b"%PDF-1.7 not an image")
    assert answer.status_code == 400
    assert answer.json()["title"] == "Invalid Request"
    missing_category = sandbox.upload(sandbox.client(), png(1, 1), category="")
    assert missing_category.status_code == 400


def test_image_with_alt_text_goes_into_a_tweet(sandbox: Sandbox) -> None:
    client = sandbox.client()
    media_id = sandbox.upload(client, png(2, 2)).json()["data"]["id"]
    alt = sandbox.alt_text(client, media_id, "People holding a banner that reads No Tech for ICE")
    assert alt.json() == {
        "data": {
            "id": media_id,
            "associated_metadata": {
                "alt_text": {"text": "People holding a banner that reads No Tech for ICE"}
            },
        }
    }
    client.create_tweet(text="Rally today", media_ids=[media_id])
    [post] = sandbox.state()
    assert post["media"] == [{"id": media_id, "alt": "People holding a banner that reads No Tech for ICE"}]
    assert post["raw"]["attachments"] == {"media_keys": [f"3_{media_id}"]}


def test_alt_text_over_1000_characters_is_refused(sandbox: Sandbox) -> None:
    client = sandbox.client()
    media_id = sandbox.upload(client, png(1, 1)).json()["data"]["id"]
    assert sandbox.alt_text(client, media_id, "x" * 1000).status_code == 200
    too_long = sandbox.alt_text(client, media_id, "x" * 1001)
    assert too_long.status_code == 400
    assert "metadata.alt_text.text" in too_long.json()["errors"][0]["parameters"]


def test_invalid_media_ids_get_xs_400(sandbox: Sandbox) -> None:
    others = sandbox.upload(sandbox.client(1), png(1, 1)).json()["data"]["id"]
    for media_ids in (["1900000000000000001"], [others]):
        with pytest.raises(tweepy.BadRequest) as caught:
            sandbox.client().create_tweet(text="img", media_ids=media_ids)
        assert caught.value.response.json() == {
            "errors": [
                {"parameters": {"media.media_ids": media_ids}, "message": "Your media IDs are invalid."}
            ],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }


def test_uploaded_media_expires_after_a_day(sandbox: Sandbox) -> None:
    client = sandbox.client()
    media_id = sandbox.upload(client, png(1, 1)).json()["data"]["id"]
    sandbox.clock.advance(hours=25)
    with pytest.raises(tweepy.BadRequest):
        client.create_tweet(text="late", media_ids=[media_id])


# -- search --------------------------------------------------------------------------------

FIELDS = ["created_at", "author_id", "conversation_id", "referenced_tweets", "entities"]


def test_search_finds_hashtag_posts_with_their_authors(sandbox: Sandbox) -> None:
    ours = sandbox.client().create_tweet(text="Our call #NoTechForICE").data["id"]
    sandbox.control("audience", kind="hashtag", author="alice", text="Marching today #notechforice")
    sandbox.control("audience", kind="hashtag", author="bob", text="unrelated #Other")
    found = sandbox.client().search_recent_tweets(
        "#NoTechForICE -is:retweet", user_auth=True, tweet_fields=FIELDS, expansions="author_id"
    )
    assert [t.text for t in found.data] == ["Marching today #notechforice", "Our call #NoTechForICE"]
    assert found.data[1].id == int(ours)
    assert {u.username for u in found.includes["users"]} == {"alice", "ntfi_main"}
    alice = next(u for u in found.includes["users"] if u.username == "alice")
    assert found.data[0].author_id == alice.id
    assert found.data[0].created_at == START
    assert found.data[0].entities["hashtags"] == [{"start": 15, "end": 28, "tag": "notechforice"}]
    assert found.meta == {
        "newest_id": str(found.data[0].id),
        "oldest_id": str(found.data[1].id),
        "result_count": 2,
    }


def test_search_leaves_out_retweets_when_asked(sandbox: Sandbox) -> None:
    ally = sandbox.control("audience", kind="hashtag", author="ally", text="Join us #NoTechForICE")["posts"][
        0
    ]
    client = sandbox.client()
    assert client.retweet(ally["id"]).data == {"retweeted": True}
    assert client.retweet(ally["id"]).data == {"retweeted": True}  # a second retweet changes nothing
    everything = client.search_recent_tweets(
        "#NoTechForICE", user_auth=True, tweet_fields=["referenced_tweets"]
    )
    originals = client.search_recent_tweets("#NoTechForICE -is:retweet", user_auth=True)
    assert [t.text for t in everything.data] == ["RT @ally: Join us #NoTechForICE", "Join us #NoTechForICE"]
    assert everything.data[0].referenced_tweets[0].type == "retweeted"
    assert [t.text for t in originals.data] == ["Join us #NoTechForICE"]


def test_retweet_needs_the_callers_own_user_id(sandbox: Sandbox) -> None:
    ally = sandbox.control("audience", kind="hashtag", author="ally", text="Join us")["posts"][0]
    other_id = sandbox.client(1).get_me().data.id
    with pytest.raises(tweepy.Forbidden):
        sandbox.client(0)._make_request(
            "POST", f"/2/users/{other_id}/retweets", json={"tweet_id": ally["id"]}, user_auth=True
        )
    assert len(sandbox.state()) == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("surveillance", ["Stop surveillance now #NoTechForICE"]),
        ("SURVEILLANCE contracts", []),
        ("from:carol", ["Drop the contracts"]),
        ("contracts OR surveillance", ["Drop the contracts", "Stop surveillance now #NoTechForICE"]),
        ('"drop the" -from:dave', ["Drop the contracts"]),
        ("(#NoTechForICE OR from:carol) -surveillance", ["Drop the contracts"]),
    ],
)
def test_search_query_operators(sandbox: Sandbox, query: str, expected: list[str]) -> None:
    sandbox.control("audience", kind="hashtag", author="dave", text="Stop surveillance now")
    sandbox.control("audience", kind="hashtag", author="carol", text="Drop the contracts #x")
    found = sandbox.client().search_recent_tweets(query, user_auth=True)
    texts = [t.text.removesuffix(" #x") for t in found.data or []]
    assert sorted(texts) == sorted(expected)


def test_empty_search_has_no_data_key(sandbox: Sandbox) -> None:
    raw = sandbox.client(raw=True).search_recent_tweets("#nothing", user_auth=True)
    assert raw.json() == {"meta": {"result_count": 0}}
    assert sandbox.client().search_recent_tweets("#nothing", user_auth=True).data is None


def test_search_max_results_must_be_10_to_100(sandbox: Sandbox) -> None:
    with pytest.raises(tweepy.BadRequest) as caught:
        sandbox.client().search_recent_tweets("#NoTechForICE", user_auth=True, max_results=5)
    assert caught.value.api_messages == [
        "The `max_results` query parameter value [5] is not between 10 and 100"
    ]
    assert caught.value.api_errors[0]["parameters"] == {"max_results": ["5"]}


def test_search_pages_with_next_token(sandbox: Sandbox) -> None:
    for _ in range(25):
        sandbox.control("audience", kind="hashtag", author="crowd", text="Protest #NoTechForICE")
    pages = list(
        tweepy.Paginator(
            sandbox.client().search_recent_tweets, "#NoTechForICE", user_auth=True, max_results=10
        )
    )
    assert [len(page.data) for page in pages] == [10, 10, 5]
    ids = [t.id for page in pages for t in page.data]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 25
    assert "next_token" not in pages[-1].meta


def test_search_since_id_returns_only_newer(sandbox: Sandbox) -> None:
    first = sandbox.control("audience", kind="hashtag", author="a", text="one")["posts"][0]["id"]
    sandbox.control("audience", kind="hashtag", author="b", text="two")
    found = sandbox.client().search_recent_tweets("#NoTechForICE", user_auth=True, since_id=first)
    assert [t.text for t in found.data] == ["two #NoTechForICE"]


def test_search_since_id_older_than_seven_days_is_refused_with_xs_message(sandbox: Sandbox) -> None:
    old = sandbox.control("audience", kind="hashtag", author="a", text="old")["posts"][0]["id"]
    sandbox.clock.advance(days=8)
    with pytest.raises(tweepy.BadRequest) as caught:
        sandbox.client().search_recent_tweets("#NoTechForICE", user_auth=True, since_id=old)
    boundary = sandbox.clock.now - timedelta(days=7)
    assert caught.value.api_messages == [
        "'since_id' must be a tweet id created after 2026-03-03T12:00Z. "
        f"Please use a 'since_id' that is larger than {snowflake_at(boundary)}"
    ]
    assert caught.value.api_errors[0]["parameters"] == {"since_id": [old]}


def test_search_sees_only_the_last_seven_days(sandbox: Sandbox) -> None:
    sandbox.control("audience", kind="hashtag", author="a", text="old")
    sandbox.clock.advance(days=7, seconds=1)
    sandbox.control("audience", kind="hashtag", author="a", text="new")
    found = sandbox.client().search_recent_tweets("#NoTechForICE", user_auth=True)
    assert [t.text for t in found.data] == ["new #NoTechForICE"]


def test_unknown_tweet_field_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(tweepy.BadRequest, match=r"tweet.fields` query parameter value \[colour\]"):
        sandbox.client().search_recent_tweets("#x", user_auth=True, tweet_fields=["colour"])


# -- mentions and timelines ------------------------------------------------------------------


def test_mentions_show_replies_and_mentions_of_the_account(sandbox: Sandbox) -> None:
    client = sandbox.client()
    me = client.get_me().data
    ours = client.create_tweet(text="Our post").data["id"]
    reply = sandbox.control("audience", kind="reply", author="alice", text="Agreed!", to=ours)["posts"][0]
    mention = sandbox.control("audience", kind="mention", author="bob", text="see this")["posts"][0]
    sandbox.control("audience", kind="mention", author="eve", text="@ntfi_account2 only you")
    assert reply["text"] == "@ntfi_main Agreed!" and reply["in_reply_to"] == ours
    assert mention["text"] == "@ntfi_main see this"
    found = client.get_users_mentions(
        me.id, user_auth=True, tweet_fields=FIELDS, expansions="author_id", max_results=5
    )
    assert [t.text for t in found.data] == ["@ntfi_main see this", "@ntfi_main Agreed!"]
    assert found.data[1].conversation_id == int(ours)
    assert found.data[1].referenced_tweets[0].id == int(ours)
    assert [u.username for u in found.includes["users"]] == ["bob", "alice"]


def test_mentions_page_with_pagination_token_and_since_id(sandbox: Sandbox) -> None:
    me = sandbox.client().get_me().data
    posts = [
        sandbox.control("audience", kind="mention", author=f"u{i}", text=f"hi {i}")["posts"][0]
        for i in range(7)
    ]
    pages = list(tweepy.Paginator(sandbox.client().get_users_mentions, me.id, user_auth=True, max_results=5))
    assert [len(p.data) for p in pages] == [5, 2]
    newer = sandbox.client().get_users_mentions(me.id, user_auth=True, since_id=posts[4]["id"])
    assert [t.text for t in newer.data] == ["@ntfi_main hi 6", "@ntfi_main hi 5"]


def test_user_tweets_are_the_accounts_recent_posts(sandbox: Sandbox) -> None:
    client = sandbox.client()
    me = client.get_me().data
    ids = [client.create_tweet(text=f"post {i}").data["id"] for i in range(6)]
    sandbox.client(1).create_tweet(text="someone else's")
    page = client.get_users_tweets(me.id, user_auth=True, max_results=5, tweet_fields=["created_at"])
    assert [t.id for t in page.data] == [int(i) for i in reversed(ids[1:])]
    assert "next_token" in page.meta
    rest = client.get_users_tweets(me.id, user_auth=True, pagination_token=page.meta["next_token"])
    assert [t.text for t in rest.data] == ["post 0"]
    since = client.get_users_tweets(me.id, user_auth=True, since_id=ids[3])
    assert [t.text for t in since.data] == ["post 5", "post 4"]


def test_unknown_route_is_xs_404(sandbox: Sandbox) -> None:
    with pytest.raises(tweepy.NotFound) as caught:
        sandbox.client()._make_request("GET", "/2/no/such/thing", user_auth=True)
    assert caught.value.api_codes == [34]
    assert caught.value.response.json() == {
        "errors": [{"message": "Sorry, that page does not exist", "code": 34}]
    }


# -- rate limits ---------------------------------------------------------------------------


def test_every_answer_carries_rate_limit_headers(sandbox: Sandbox) -> None:
    client = sandbox.client(raw=True)
    first, second = client.get_me(), client.get_me()
    assert int(first.headers["x-rate-limit-remaining"]) == int(second.headers["x-rate-limit-remaining"]) + 1
    assert int(first.headers["x-rate-limit-reset"]) == int((START + timedelta(minutes=15)).timestamp())


def test_free_tier_search_is_one_per_15_minutes(free: Sandbox) -> None:
    client = free.client(raw=True)
    ok = client.search_recent_tweets("#NoTechForICE", user_auth=True)
    assert (ok.headers["x-rate-limit-limit"], ok.headers["x-rate-limit-remaining"]) == ("1", "0")
    with pytest.raises(tweepy.TooManyRequests) as caught:
        client.search_recent_tweets("#NoTechForICE", user_auth=True)
    reset = int((START + timedelta(minutes=15)).timestamp())
    assert caught.value.response.json() == {
        "title": "Too Many Requests",
        "detail": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
    }
    assert int(caught.value.response.headers["x-rate-limit-reset"]) == reset
    assert free.client(1).search_recent_tweets("#x", user_auth=True).meta == {"result_count": 0}  # per user
    free.clock.advance(minutes=15)
    assert client.search_recent_tweets("#NoTechForICE", user_auth=True).status_code == 200


def test_free_tier_posts_17_a_day_with_24_hour_headers(free: Sandbox) -> None:
    client = free.client(raw=True)
    answers = [client.create_tweet(text=f"post {i}") for i in range(17)]
    last = answers[-1].headers
    assert last["x-user-limit-24hour-limit"] == "17" and last["x-user-limit-24hour-remaining"] == "0"
    assert last["x-app-limit-24hour-limit"] == "17"
    with pytest.raises(tweepy.TooManyRequests) as caught:
        client.create_tweet(text="one too many")
    assert int(caught.value.response.headers["x-rate-limit-reset"]) == int(
        (START + timedelta(hours=24)).timestamp()
    )
    assert len(free.state()) == 17
    free.clock.advance(hours=24)
    assert client.create_tweet(text="next day").status_code == 201


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(ValueError, match="enterprise"):
        XEmulator(limits="enterprise")


# -- faults and audience through plain HTTP ------------------------------------------------


def test_injected_503_has_xs_body_and_writes_nothing(sandbox: Sandbox) -> None:
    sandbox.control("faults", method="POST", path="/2/tweets", status=503)
    with pytest.raises(tweepy.TwitterServerError) as caught:
        sandbox.client().create_tweet(text="during an outage")
    assert caught.value.response.json() == {
        "title": "Service Unavailable",
        "detail": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
    }
    assert sandbox.state() == []


def test_injected_429_carries_its_reset_for_one_account_only(sandbox: Sandbox) -> None:
    sandbox.control("faults", method="GET", path="/2/users/me", status=429, reset_in=30, account="main")
    with pytest.raises(tweepy.TooManyRequests) as caught:
        sandbox.client(0).get_me()
    assert int(caught.value.response.headers["x-rate-limit-reset"]) == int(
        (START + timedelta(seconds=30)).timestamp()
    )
    assert sandbox.client(1).get_me().data.username == "ntfi_account2"
    assert sandbox.client(0).get_me().data.username == "ntfi_main"


@pytest.mark.parametrize(("drop", "applied"), [("before", 0), ("after", 1)])
def test_dropped_connection_before_or_after_the_write(sandbox: Sandbox, drop: str, applied: int) -> None:
    sandbox.control("faults", method="POST", path="/2/tweets", drop=drop)
    with pytest.raises(requests.ConnectionError):
        sandbox.client().create_tweet(text="is it there?")
    assert len(sandbox.state()) == applied


def test_audience_kinds_shape_their_text(sandbox: Sandbox) -> None:
    tagged = sandbox.control("audience", kind="hashtag", author="alice", text="Already #tagged")["posts"][0]
    untagged = sandbox.control("audience", kind="hashtag", author="alice", text="No tag")["posts"][0]
    named = sandbox.control("audience", kind="mention", author="bob", text="hey @ntfi_account2")["posts"][0]
    assert (tagged["text"], untagged["text"], named["text"]) == (
        "Already #tagged",
        "No tag #NoTechForICE",
        "hey @ntfi_account2",
    )
    burst = sandbox.control("audience", kind="hashtag", author="crowd", text="x", count=3)["posts"]
    assert len({p["id"] for p in burst}) == 3 and {p["author"] for p in burst} == {"crowd"}
    assert tagged["raw"]["author_id"] == untagged["raw"]["author_id"] != named["raw"]["author_id"]


def test_reply_audience_needs_a_known_tweet(sandbox: Sandbox) -> None:
    answer = requests.post(
        f"{sandbox.url}/_sandbox/audience", json={"kind": "reply", "text": "hi", "to": "42"}, timeout=5
    )
    assert answer.status_code == 400


def test_reset_empties_everything(sandbox: Sandbox) -> None:
    sandbox.client().create_tweet(text="before reset")
    sandbox.control("reset")
    assert sandbox.state() == []
    assert sandbox.client().create_tweet(text="before reset").data  # no longer a duplicate


def test_search_refuses_an_unknown_operator_in_xs_words(sandbox: Sandbox) -> None:
    with pytest.raises(tweepy.BadRequest, match="Reference to invalid operator 'colour'"):
        sandbox.client().search_recent_tweets("#NoTechForICE colour:red", user_auth=True)
    with pytest.raises(tweepy.BadRequest):
        sandbox.client().search_recent_tweets("(#NoTechForICE", user_auth=True)


def test_a_page_short_of_deleted_posts_still_carries_its_next_token(sandbox: Sandbox) -> None:
    client = sandbox.client()
    me = client.get_me().data
    ids = [client.create_tweet(text=f"post {i}").data["id"] for i in range(8)]
    for tweet_id in ids[3:]:
        client.delete_tweet(tweet_id, user_auth=True)
    empty = client.get_users_tweets(me.id, user_auth=True, max_results=5)
    assert empty.data is None and empty.meta["result_count"] == 0 and "next_token" in empty.meta
    short = client.get_users_tweets(
        me.id, user_auth=True, max_results=5, pagination_token=empty.meta["next_token"]
    )
    assert [t.text for t in short.data] == ["post 2", "post 1", "post 0"] and "next_token" not in short.meta


def test_every_answer_says_the_tokens_access_level_and_a_read_only_app_cannot_write(sandbox: Sandbox) -> None:
    raw = sandbox.client(raw=True)
    assert raw.get_me(user_auth=True).headers["x-access-level"] == "read-write-directmessages"
    sandbox.control("settings", read_only=["main"])
    me = raw.get_me(user_auth=True)
    assert me.status_code == 200 and me.headers["x-access-level"] == "read"
    with pytest.raises(tweepy.Forbidden) as refused:
        sandbox.client().create_tweet(text="from a read-only app")
    body = refused.value.response.json()
    assert body["type"] == "https://api.twitter.com/2/problems/oauth1-permissions"
    assert body["detail"].startswith("Your client app is not configured with the appropriate oauth1")
    assert refused.value.response.headers["x-access-level"] == "read" and sandbox.state() == []
    assert sandbox.client(1).create_tweet(text="another app still writes").data["id"]
    bad = requests.post(f"{sandbox.url}/_sandbox/settings", json={"read_only": ["nobody"]}, timeout=5)
    assert bad.status_code == 400


def test_tweet_lookup_one_or_several_with_partial_errors(sandbox: Sandbox) -> None:
    client = sandbox.client()
    ids = [client.create_tweet(text=f"look {i}").data["id"] for i in range(3)]
    client.delete_tweet(ids[1], user_auth=True)
    one = client.get_tweet(ids[0], user_auth=True, tweet_fields=["created_at", "author_id"])
    assert one.data.text == "look 0" and one.data.author_id is not None
    several = client.get_tweets([ids[2], ids[1], ids[0]], user_auth=True)
    assert [t.text for t in several.data] == ["look 2", "look 0"]
    assert [e["resource_id"] for e in several.errors] == [ids[1]]
    gone = client.get_tweet(ids[1], user_auth=True)
    assert gone.data is None and gone.errors[0]["type"].endswith("/resource-not-found")


def test_a_retweet_can_be_undone_and_undoing_twice_is_harmless(sandbox: Sandbox) -> None:
    original = sandbox.control("audience", kind="hashtag", author="ally", text="boost me")["posts"][0]["id"]
    client = sandbox.client()
    client.retweet(original, user_auth=True)
    assert any(p["text"].startswith("RT @ally") and not p.get("deleted") for p in sandbox.state())
    assert client.unretweet(original, user_auth=True).data == {"retweeted": False}
    assert all(p.get("deleted") for p in sandbox.state() if p["text"].startswith("RT @ally"))
    assert client.unretweet(original, user_auth=True).data == {"retweeted": False}


def test_a_tag_query_is_an_exact_case_blind_match_in_originals_replies_and_quotes(sandbox: Sandbox) -> None:
    """X's `#` operator matches a recognized hashtag exactly (not as a prefix), in any case."""
    ours = sandbox.client().create_tweet(text="Ours #NoTechForICE").data["id"]
    sandbox.control("audience", kind="reply", author="alice", text="Yes #NOTECHFORICE", to=ours)
    sandbox.control("audience", kind="quote", author="bob", text="See this #notechforice", to=ours)
    sandbox.control("audience", kind="hashtag", author="carol", text="Longer #NoTechForICEnow")
    found = sandbox.client().search_recent_tweets("#notechforice -is:retweet", user_auth=True)
    assert sorted(t.text for t in found.data) == [
        "@ntfi_main Yes #NOTECHFORICE",
        "Ours #NoTechForICE",
        "See this #notechforice",
    ]
