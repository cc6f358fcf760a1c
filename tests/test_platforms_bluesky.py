"""The Bluesky adapter with the real atproto SDK against the sandbox PDS, checked in /_sandbox/state."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.campaign.model import Account, LinkCard
from bot.errors import AuthFailed, RateLimited, Rejected, Transient
from bot.platforms import Batch, Facet, Media, Outgoing, Published
from bot.platforms.bluesky import BlueskyClient
from bot.platforms.sealing import seal, session_key, unseal
from bot.platforms.tid import make_tid
from tests.clock import START
from tests.emulated import Emulated, emulated, posts_of, read_all
from tests.imagefiles import png

CREATE_SESSION = "/xrpc/com.atproto.server.createSession"
CREATE_RECORD = "/xrpc/com.atproto.repo.createRecord"


@dataclass
class SessionStore:
    """What the ledger does for the adapter: keep the last session string per account."""

    saved: list[str] = field(default_factory=list)

    def load(self) -> str | None:
        return self.saved[-1] if self.saved else None

    def save(self, session: str) -> None:
        self.saved.append(session)


class Sandbox(Emulated):
    def client(
        self,
        index: int = 0,
        store: SessionStore | None = None,
        now: Callable[[], datetime] | None = None,
        **options: Any,
    ) -> BlueskyClient:
        store = store or SessionStore()
        return self.open(
            self.account(index),
            now=now or self.clock,
            load_session=store.load,
            save_session=store.save,
            **options,
        )

    def open(self, account: Account, **options: Any) -> BlueskyClient:
        client = super().open(account, **options)
        assert isinstance(client, BlueskyClient)
        return client

    def posts(self) -> list[dict[str, Any]]:
        """Our accounts' posts, the audience's left out."""
        return [p for p in self.state()["posts"] if p["author"].endswith("sandbox.test")]

    def did_of(self, handle: str) -> str:
        answer = requests.get(
            f"{self.url}/xrpc/com.atproto.identity.resolveHandle", params={"handle": handle}, timeout=5
        )
        did: str = answer.json()["did"]
        return did


@pytest.fixture
def bsky() -> Iterator[Sandbox]:
    with emulated(Sandbox, "bluesky") as sandbox:
        yield sandbox


_clock_ids = iter(range(1024))


def message(text: str, **fields: Any) -> Outgoing:
    return Outgoing(text=text, nonce=make_tid(START, clock_id=next(_clock_ids) % 1024), **fields)


PETITION = "Tech workers say no ✊ #NoTechForICE https://example.org/petition"
PETITION_FACETS = (
    Facet(24, 37, "tag", "NoTechForICE"),
    Facet(38, 66, "link", "https://example.org/petition"),
)


def sliced(record: dict[str, Any]) -> dict[str, bytes]:
    """Each facet's feature type, with the bytes of the text it covers."""
    text = record["text"].encode("utf-8")
    out = {}
    for facet in record["facets"]:
        (feature,) = facet["features"]
        out[feature["$type"].rsplit("#", 1)[1]] = text[
            facet["index"]["byteStart"] : facet["index"]["byteEnd"]
        ]
    return out


def refs(record: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A record's reply refs as (uri, cid) pairs."""
    return {k: (v["uri"], v["cid"]) for k, v in record["reply"].items() if k in ("root", "parent")}


# -- posting ---------------------------------------------------------------------------------


def test_verify_names_the_account(bsky: Sandbox) -> None:
    assert bsky.client().verify() == "main.sandbox.test"


def test_facets_slice_back_to_the_hashtag_and_the_link(bsky: Sandbox) -> None:
    published = bsky.client().publish(message(PETITION, facets=PETITION_FACETS, language="en"))
    (post,) = bsky.posts()
    record = post["raw"]
    assert post["id"] == published.id and published.cid
    assert sliced(record) == {"tag": b"#NoTechForICE", "link": b"https://example.org/petition"}
    tag, link = (f["features"][0] for f in record["facets"])
    assert tag["tag"] == "NoTechForICE" and link["uri"] == "https://example.org/petition"
    assert record["langs"] == ["en"]
    assert published.id.endswith("/app.bsky.feed.post/" + published.id.rsplit("/", 1)[1])


def test_the_record_key_is_the_delivery_nonce(bsky: Sandbox) -> None:
    outgoing = message("keyed")
    published = bsky.client().publish(outgoing)
    assert published.id.rsplit("/", 1)[1] == outgoing.nonce


def test_a_mention_is_resolved_to_the_accounts_did(bsky: Sandbox) -> None:
    text = "Thanks @account2.sandbox.test and @nobody.invalid"
    facets = (Facet(7, 29, "mention", "account2.sandbox.test"), Facet(34, 49, "mention", "nobody.invalid"))
    bsky.client().publish(message(text, facets=facets))
    (post,) = bsky.posts()
    (facet,) = post["raw"]["facets"]  # the handle that does not resolve stays plain text
    assert facet["features"][0]["did"] == bsky.did_of("account2.sandbox.test")
    assert sliced(post["raw"]) == {"mention": b"@account2.sandbox.test"}


def test_a_thread_has_the_right_root_and_parent(bsky: Sandbox) -> None:
    client = bsky.client()
    first = client.publish(message("Part one"))
    second = client.publish(message("Part two", reply_to=first, root=first))
    third = client.publish(message("Part three", reply_to=second, root=first))
    by_id = {p["id"]: p["raw"] for p in bsky.posts()}
    assert "reply" not in by_id[first.id]
    assert refs(by_id[second.id]) == {"root": (first.id, first.cid), "parent": (first.id, first.cid)}
    assert refs(by_id[third.id]) == {"root": (first.id, first.cid), "parent": (second.id, second.cid)}


def test_a_reply_to_a_part_known_without_its_cid(bsky: Sandbox) -> None:
    client = bsky.client()
    first = client.publish(message("Part one"))
    second = client.publish(message("Part two", reply_to=Published(first.id, first.url)))
    by_id = {p["id"]: p["raw"] for p in bsky.posts()}
    assert refs(by_id[second.id]) == {"root": (first.id, first.cid), "parent": (first.id, first.cid)}


def test_images_carry_alt_text_and_aspect_ratio(bsky: Sandbox, tmp_path: Path) -> None:
    wide, square = tmp_path / "wide.png", tmp_path / "square.png"
    wide.write_bytes(png(16, 9))
    square.write_bytes(png(5, 5))
    bsky.client().publish(
        message("Rally", images=(Media(wide, "People holding a banner"), Media(square, "The banner")))
    )
    (post,) = bsky.posts()
    images = post["raw"]["embed"]["images"]
    assert [i["alt"] for i in images] == ["People holding a banner", "The banner"]
    assert [(i["aspectRatio"]["width"], i["aspectRatio"]["height"]) for i in images] == [(16, 9), (5, 5)]
    assert [i["image"]["mimeType"] for i in images] == ["image/png", "image/png"]
    assert [m["alt"] for m in post["media"]] == ["People holding a banner", "The banner"]


def test_an_image_over_a_megabyte_is_refused_before_anything_is_sent(bsky: Sandbox, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png(2, 2) + b"\x00" * 1_000_001)
    with pytest.raises(Rejected, match="Bluesky takes at most 1,000,000"):
        bsky.client().publish(message("too big", images=(Media(big, "big"),)))
    assert bsky.posts() == []


def test_a_link_card_given_in_the_content(bsky: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "card.png").write_bytes(png(12, 6))
    card = LinkCard(title="Sign the petition", description="Drop the contracts", image="card.png")
    bsky.client(content_dir=tmp_path).publish(message(PETITION, facets=PETITION_FACETS, link_card=card))
    (post,) = bsky.posts()
    external = post["raw"]["embed"]["external"]
    assert external["uri"] == "https://example.org/petition"
    assert (external["title"], external["description"]) == ("Sign the petition", "Drop the contracts")
    assert external["thumb"]["mimeType"] == "image/png"


@pytest.fixture
def page() -> Iterator[str]:
    """A campaign page with OpenGraph tags, on 127.0.0.1."""
    html = (
        b'<html><head><meta property="og:title" content="No Tech for ICE">'
        b'<meta property="og:description" content="Sign the letter">'
        b'<meta property="og:image" content="/og.png"></head></html>'
    )
    image = png(6, 3)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body, ctype = (image, "image/png") if self.path == "/og.png" else (html, "text/html")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/letter"
    server.shutdown()
    server.server_close()


def test_a_link_card_read_from_the_pages_opengraph_tags(bsky: Sandbox, page: str) -> None:
    text = f"Read and sign: {page}"
    bsky.client().publish(message(text, facets=(Facet(15, len(text), "link", page),), link_card=True))
    (post,) = bsky.posts()
    external = post["raw"]["embed"]["external"]
    assert (external["uri"], external["title"], external["description"]) == (
        page,
        "No Tech for ICE",
        "Sign the letter",
    )
    assert external["thumb"]["mimeType"] == "image/png"


def test_an_unreachable_page_costs_the_card_not_the_post(bsky: Sandbox) -> None:
    url = "http://127.0.0.1:9/nothing-listens"
    bsky.client(link_card_timeout=0.5).publish(message(f"Sign: {url}", link_card=True))
    (post,) = bsky.posts()
    assert "embed" not in post["raw"]


# -- errors ----------------------------------------------------------------------------------


def test_a_wrong_app_password_is_auth_failed_and_never_shown(bsky: Sandbox) -> None:
    account = bsky.account(app_password="wrong-pass-word")
    client = bsky.open(account)
    with pytest.raises(AuthFailed) as raised:
        client.publish(message("hello"))
    assert "wrong-pass-word" not in str(raised.value) and "wrong-pass-word" not in repr(client)


def test_one_account_refused_while_the_other_posts(bsky: Sandbox) -> None:
    with pytest.raises(AuthFailed):
        bsky.open(bsky.account(0, app_password="nope")).publish(message("a"))
    bsky.client(1).publish(message("from account2"))
    assert [p["author"] for p in bsky.posts()] == ["account2.sandbox.test"]


def test_a_post_over_300_graphemes_is_rejected_with_the_pds_message(bsky: Sandbox) -> None:
    with pytest.raises(Rejected, match="300 graphemes"):
        bsky.client().publish(message("a" * 301))
    assert bsky.posts() == []


def test_503_is_transient_and_429_says_when_to_retry(bsky: Sandbox) -> None:
    client = bsky.client()
    client.verify()
    bsky.fault(method="POST", path=CREATE_RECORD, status=503)
    with pytest.raises(Transient):
        client.publish(message("try again"))
    bsky.fault(method="POST", path=CREATE_RECORD, status=429, reset_in=40)
    with pytest.raises(RateLimited) as raised:
        client.publish(message("try again"))
    assert raised.value.retry_after == pytest.approx(40, abs=1)


# -- reconciliation --------------------------------------------------------------------------


def test_lost_answer_after_the_write_is_found_by_its_rkey(bsky: Sandbox) -> None:
    client = bsky.client()
    outgoing = message("Sign today")
    bsky.fault(method="POST", path=CREATE_RECORD, drop="after")
    with pytest.raises(Transient):
        client.publish(outgoing)
    found = client.find_published(outgoing, since=START)
    (post,) = bsky.posts()
    assert found is not None and found.id == post["id"] and found.cid
    # The found part is good to reply to: the next part of a thread continues from it.
    client.publish(message("Part two", reply_to=found, root=found))
    assert refs(bsky.posts()[1]["raw"])["parent"] == (found.id, found.cid)
    assert found.id.endswith(outgoing.nonce)


def test_lost_request_before_the_write_is_not_found(bsky: Sandbox) -> None:
    client = bsky.client()
    outgoing = message("Never arrived")
    bsky.fault(method="POST", path=CREATE_RECORD, drop="before")
    with pytest.raises(Transient):
        client.publish(outgoing)
    assert client.find_published(outgoing, since=START) is None
    assert bsky.posts() == []


def test_a_repeat_of_an_existing_rkey_is_a_500_that_reconciliation_settles(bsky: Sandbox) -> None:
    client = bsky.client()
    outgoing = message("Only once")
    client.publish(outgoing)
    with pytest.raises(Transient):  # the real PDS answers 500, not 409, for an existing rkey
        client.publish(outgoing)
    assert client.find_published(outgoing, since=START) is not None
    assert len(bsky.posts()) == 1


# -- delete and repost ---------------------------------------------------------------------


def test_delete_removes_the_post_and_can_be_repeated(bsky: Sandbox) -> None:
    client = bsky.client()
    published = client.publish(message("Retract me"))
    client.delete(published)
    client.delete(published)
    (post,) = bsky.posts()
    assert post["deleted"] is True


def test_repost_of_an_allys_post(bsky: Sandbox) -> None:
    (ally,) = bsky.audience(
        kind="hashtag", author="ally.example.org", text="Tech workers say no #NoTechForICE"
    )
    reposted = bsky.client().repost(ally["id"])
    (repost,) = bsky.state()["reposts"]
    assert repost["subject"] == ally["id"] and repost["id"] == reposted.id
    assert repost["author"] == "main.sandbox.test"


# -- sessions --------------------------------------------------------------------------------


def test_a_new_session_is_saved_and_reused_without_create_session(bsky: Sandbox) -> None:
    store = SessionStore()
    bsky.client(store=store).publish(message("first run"))
    assert len(store.saved) == 1
    bsky.fault(method="POST", path=CREATE_SESSION, status=500, times=100)  # a createSession would fail
    bsky.client(store=store).publish(message("after a restart"))
    assert len(bsky.posts()) == 2


def test_threads_sharing_a_new_client_create_one_session(bsky: Sandbox) -> None:
    store = SessionStore()
    client = bsky.client(store=store)
    messages = [message(f"thread {n}") for n in range(12)]
    start = threading.Barrier(len(messages))

    def post(outgoing: Outgoing) -> None:
        start.wait()
        client.publish(outgoing)

    threads = [threading.Thread(target=post, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bsky.posts()) == len(messages)
    assert len(store.saved) == 1  # one createSession (30 per 5 minutes), not one per thread


def test_an_expired_session_is_refreshed_without_create_session_and_resaved(bsky: Sandbox) -> None:
    store = SessionStore()
    client = bsky.client(store=store)
    client.publish(message("before"))
    bsky.fault(method="POST", path=CREATE_SESSION, status=500, times=100)
    bsky.clock.now += timedelta(hours=3)  # the access token (2 h) has expired
    client.publish(message("after"))
    assert len(store.saved) == 2 and store.saved[0] != store.saved[1]
    bsky.client(store=store).publish(message("after a restart, with the refreshed session"))
    assert len(bsky.posts()) == 3


def test_a_token_the_pds_calls_expired_is_renewed_and_the_call_repeated(bsky: Sandbox) -> None:
    store = SessionStore()
    bsky.client(store=store).verify()
    bsky.clock.now += timedelta(hours=3)
    # This client's clock lags, so the SDK sees no reason to refresh: the PDS refuses the token.
    lagging = bsky.client(store=store, now=lambda: START)
    bsky.fault(method="POST", path=CREATE_SESSION, status=500, times=100)
    lagging.publish(message("renewed"))
    assert len(bsky.posts()) == 1 and len(store.saved) == 2


def test_a_rotated_away_session_falls_back_to_create_session(bsky: Sandbox) -> None:
    first, second = SessionStore(), SessionStore()
    bsky.client(store=first).verify()
    second.saved.append(first.saved[-1])
    bsky.clock.now += timedelta(hours=3)
    bsky.client(store=first).verify()  # refreshes: the saved refresh token is now revoked
    bsky.client(store=second).publish(message("with a new session"))
    assert len(bsky.posts()) == 1
    assert len(second.saved) == 2  # the new session, saved


def test_a_session_key_is_derived_once_per_account_and_process() -> None:
    derived = session_key.cache_info().misses
    first = session_key("app-pass-one", "one.example")
    assert session_key("app-pass-one", "two.example") != first  # another account: derived
    assert session_key("app-pass-one", "one.example") is first
    assert session_key.cache_info().misses == derived + 2


def _sealing(bsky: Sandbox) -> bytes:
    """The key the adapter seals account 0's saved session with."""
    credentials = bsky.account(0).credentials
    return session_key(credentials["app_password"], credentials["handle"])


def _opened(bsky: Sandbox, blob: str) -> dict[str, Any]:
    """A saved session as the adapter stored it: sealed JSON naming the config it was made for."""
    text = unseal(_sealing(bsky), blob)
    assert text is not None
    return dict(json.loads(text))


def _sealed(bsky: Sandbox, saved: dict[str, Any]) -> str:
    return seal(_sealing(bsky), json.dumps(saved))


# A restarted daemon's monitoring asks each account's identity first, Bluesky's from the session
# it saved: that needs neither atproto (about 0.5 s to import) nor the network.
IDENTITY_ALONE = """
import json, sys
from datetime import UTC, datetime
from bot.campaign.model import Account
from bot.platforms import open_client
given = json.loads(sys.stdin.read())
account = Account("bluesky", given["name"], given["url"], credentials=given["credentials"])
client = open_client(account, now=lambda: datetime.now(UTC), load_session=lambda: given["saved"])
print(json.dumps({"did": client.identity(), "sdk": "atproto_client" in sys.modules}))
"""


def test_a_saved_session_tells_the_identity_without_the_sdk_or_the_network(bsky: Sandbox) -> None:
    store = SessionStore()
    did = bsky.client(store=store).identity()
    assert _opened(bsky, store.saved[-1])["did"] == did
    account = bsky.account(0)
    bsky.server.stop()  # nothing answers now
    given = {"name": account.name, "url": bsky.url, "credentials": dict(account.credentials)}
    done = subprocess.run(
        [sys.executable, "-c", IDENTITY_ALONE],
        input=json.dumps({**given, "saved": store.saved[-1]}),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {"did": did, "sdk": False}


@contextlib.contextmanager
def moved_account(bsky: Sandbox) -> Iterator[tuple[Sandbox, SessionStore]]:
    """A session saved by an earlier run on `bsky`, and the same account (same handle, DID and
    password) on a new host. The config's `service` is the new host, as an entryway would be
    (it stays; the PDS behind it moves), so the saved session still matches the config."""
    store = SessionStore()
    bsky.client(store=store).publish(message("before the move"))
    saved = _opened(bsky, store.saved[-1])
    with emulated(Sandbox, "bluesky", bsky.clock) as new:
        store.saved.append(_sealed(bsky, {**saved, "service": new.url}))
        yield new, store


def test_a_saved_session_whose_host_stopped_answering_logs_in_afresh_once(
    bsky: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with moved_account(bsky) as (new, store):
        bsky.server.stop()  # the old PDS is gone
        client = new.client(store=store)
        with caplog.at_level(logging.WARNING, logger="bot.platforms.bluesky"):
            client.publish(message("after the move"))
            client.publish(message("and again"))
        assert [p["text"] for p in new.posts()] == ["after the move", "and again"]
        said = [r.getMessage() for r in caplog.records if "logging in afresh" in r.getMessage()]
        assert len(said) == 1 and "does not answer" in said[0] and new.url in said[0]
        assert _opened(bsky, store.saved[-1])["service"] == new.url  # the new session, saved
        new.client(store=store).publish(message("a restart reuses it"))
        assert len(new.posts()) == 3 and len(caplog.records) == len(said)


def test_a_saved_session_its_host_refuses_logs_in_afresh(
    bsky: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    with moved_account(bsky) as (new, store):
        for method in ("GET", "POST"):  # the old PDS deactivated the account when it moved
            bsky.fault(method=method, path="/xrpc/*", status=401, times=100)
        with caplog.at_level(logging.WARNING, logger="bot.platforms.bluesky"):
            new.client(store=store).publish(message("after the move"))
        assert [p["text"] for p in new.posts()] == ["after the move"]
        assert any("refused it" in r.getMessage() for r in caplog.records)


def test_a_session_saved_for_another_service_or_handle_is_not_used(
    bsky: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionStore()
    bsky.client(store=store).verify()
    made_for_old = _opened(bsky, store.saved[-1])
    store.saved.append(_sealed(bsky, {**made_for_old, "service": "https://old.example"}))
    with caplog.at_level(logging.WARNING, logger="bot.platforms.bluesky"):
        bsky.client(store=store).publish(message("staff changed the service"))
    assert len(bsky.posts()) == 1 and len(store.saved) == 3
    assert any("made for another service or handle" in r.getMessage() for r in caplog.records)


def test_a_nonce_that_is_not_a_tid_is_refused(bsky: Sandbox) -> None:
    with pytest.raises(ValueError, match="TID"):
        bsky.client().publish(Outgoing(text="x", nonce="not-a-tid"))


# -- monitoring reads ------------------------------------------------------------------------


def test_replies_and_mentions_are_read_once_with_their_links(bsky: Sandbox) -> None:
    client = bsky.client()
    first_part = client.publish(message("Part one #NoTechForICE"))
    second_part = client.publish(message("Part two", reply_to=first_part, root=first_part))
    bsky.clock.now += timedelta(minutes=1)
    bsky.audience(kind="reply", author="alice.example", text="Agreed!", to=second_part.id)
    bsky.clock.now += timedelta(seconds=1)
    bsky.audience(kind="mention", author="bob.example", text="what do you think?")

    def read(cursor: str | None) -> Batch:
        return client.read_notifications(cursor, START - timedelta(hours=1))

    first = read_all(read)
    mentions = posts_of(first)
    assert [(m.author, m.in_reply_to, m.mentions_us) for m in mentions] == [
        ("alice.example", second_part.id, False),
        ("bob.example", None, True),
    ]
    assert mentions[0].text == "Agreed!"
    bsky.clock.now += timedelta(seconds=1)
    bsky.audience(kind="mention", author="carol.example", text="hello")
    later = posts_of(read_all(read, first[-1].cursor))
    assert [m.author for m in later if m.id not in {f.id for f in mentions}] == ["carol.example"]
    assert "alice.example" not in [m.author for m in later]


def test_hashtag_search_pages_through_and_tells_our_posts_apart(bsky: Sandbox) -> None:
    client = bsky.client()
    client.publish(message("Our own #NoTechForICE post", facets=(Facet(9, 22, "tag", "NoTechForICE"),)))
    bsky.clock.now += timedelta(minutes=1)
    bsky.audience(kind="hashtag", author="dana.example", text="Solidarity #NoTechForICE", count=150)

    def read(cursor: str | None) -> Batch:
        return client.read_hashtags(["NoTechForICE"], cursor, START - timedelta(days=1))

    pages = read_all(read)
    found = posts_of(pages)
    others = [m for m in found if m.author_id != client.identity()]
    assert len(pages) == 2 and len(found) == 151
    assert len(others) == 150 and {m.author for m in others} == {"dana.example"}
    bsky.clock.now += timedelta(minutes=1)
    bsky.audience(kind="hashtag", author="erin.example", text="Later #NoTechForICE")
    later = posts_of(read_all(read, pages[-1].cursor))
    assert "erin.example" in [m.author for m in later]
    assert len(later) < 5  # only the boundary post may come again
