"""Bluesky through the atproto SDK's `Client`.

Records are written with `createRecord` and an explicit TID rkey (the delivery's nonce), so a
lost answer is settled by `getRecord` on that key. Facets, images with aspect ratios and link
cards are built by `bluesky_records`: `send_post` adds none of them. The session is saved through the
`save_session` callable on every create and refresh and reused through `load_session`, since
createSession is limited to 30 per 5 minutes and refresh tokens rotate.

A saved session is tied to the config it was made for (service and handle, stored beside it):
made for another, it is not used. Accounts move between PDS hosts, so when the host a saved
session names stops answering, or refuses the session and its refresh, the client logs in
afresh at the configured service (which resolves where the account lives now), once, and says
so in the log.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pydantic

from bot.campaign.model import Account, Platform
from bot.errors import Rejected, Transient
from bot.platforms import Batch, Outgoing, PlatformClient, Published, answer_id
from bot.platforms.deadline import DeadlineTransport
from bot.platforms.ratelimits import BudgetSink, httpx_budget_hook
from bot.platforms.sealing import seal, session_key, unseal
from bot.platforms.tid import is_tid

if TYPE_CHECKING:
    from atproto_client import models
    from atproto_client.client.session import Session, SessionEvent

    from bot.platforms.bluesky_records import RecordParts
    from bot.platforms.bluesky_sdk import ClockedClient

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_SERVICE = "https://bsky.social"
DEFAULT_TIMEOUT = 30.0
LINK_CARD_TIMEOUT = 5.0  # seconds for fetching a link card's page and image
# Errors that mean "this session is no good", as opposed to "this request is no good".
# AccountDeactivated: what the old PDS says after the account moved to another.
SESSION_ERRORS = frozenset(
    {"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing", "AccountDeactivated"}
)


class BlueskyClient:
    platform: Platform = "bluesky"

    def __init__(
        self,
        account: Account,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        now: Callable[[], datetime],
        load_session: Callable[[], str | None] | None = None,
        save_session: Callable[[str], None] | None = None,
        content_dir: Path | None = None,
        link_card_timeout: float = LINK_CARD_TIMEOUT,
        on_budget: BudgetSink | None = None,
    ) -> None:
        self.account = account.name
        self._handle = account.credentials.get("handle", "")
        self._password = account.credentials.get("app_password", "")
        self._service = (account.base_url or DEFAULT_SERVICE).rstrip("/")
        self._now = now
        self._load_session = load_session
        self._save_session = save_session
        self._timeout = timeout
        self._hooks = {"response": [httpx_budget_hook(on_budget)]} if on_budget is not None else {}
        self._content_dir = content_dir or Path.cwd()
        self._link_card_timeout = link_card_timeout
        # The SDK's client and the record builder, made at the first call that needs them.
        self._sdk: ClockedClient | None = None
        self._parts: RecordParts | None = None
        self._sdk_lock = threading.RLock()
        self._did: str | None = None
        self._session_handle: str | None = None
        self._has_session = False
        self._sealing_key: bytes | None = None  # derived on first use (scrypt takes ~50 ms)
        self._imported = False  # the session came from the ledger, made by an earlier run
        # Delivery threads share the client: the first calls of a new one must not each load or
        # create a session (createSession allows 30 per 5 minutes).
        self._session_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BlueskyClient(account={self.account!r})"  # never the password or the session

    def close(self) -> None:
        """Close the connection pool (an unclosed one leaks its sockets until garbage collection)."""
        if self._sdk is not None:
            self._sdk.request.close()

    @property
    def _client(self) -> ClockedClient:
        """The SDK's client: the SDK is imported here, at the first call to the network."""
        with self._sdk_lock:
            if self._sdk is None:
                from bot.platforms.bluesky_sdk import ClockedClient, Request

                # DeadlineTransport: each request whole within `timeout`, its answer size capped.
                request = Request(
                    timeout=httpx.Timeout(self._timeout),
                    event_hooks=self._hooks,
                    transport=DeadlineTransport(self._timeout),
                )
                self._sdk = ClockedClient(self._service, request, self._now)
                self._sdk.on_session_change(self._on_session_change)
            return self._sdk

    @property
    def _records(self) -> RecordParts:
        with self._sdk_lock:
            if self._parts is None:
                from bot.platforms.bluesky_records import RecordParts

                self._parts = RecordParts(
                    self._client, self.account, self._content_dir, self._link_card_timeout
                )
            return self._parts

    # -- the PlatformClient protocol -------------------------------------------------------

    def verify(self) -> str:
        """`com.atproto.server.getSession`: read-only, and it proves the (saved or new) session."""
        answer = self._call(lambda: self._client.com.atproto.server.get_session())
        return str(answer.handle)

    def publish(self, message: Outgoing) -> Published:
        from bot.platforms.bluesky_records import read_image
        from bot.platforms.bluesky_sdk import models

        if not is_tid(message.nonce):
            raise ValueError("a Bluesky delivery needs a TID nonce (bot.platforms.tid.make_tid)")
        images = [read_image(media) for media in message.images]  # refuse before any upload

        def create() -> models.AppBskyFeedPost.CreateRecordResponse:
            record = models.AppBskyFeedPost.Record(
                created_at=_timestamp(self._now()),
                text=message.text,
                facets=self._records.facets(message.text, message.facets) or None,
                langs=[message.language] if message.language else None,
                reply=self._records.reply_ref(message),
                embed=self._records.embed(message, images),
            )
            return self._client.app.bsky.feed.post.create(self._own_did(), record, rkey=message.nonce)

        created = self._call(create)
        uri = answer_id("Bluesky", lambda: created.uri)
        return Published(id=uri, url=self._web_url(uri), cid=answer_id("Bluesky", lambda: created.cid))

    def find_published(self, message: Outgoing, since: datetime) -> Published | None:
        """The record at the delivery's rkey, if it exists: the PDS answers 500 for an existing rkey."""
        from bot.platforms.bluesky_sdk import BadRequestError, error_name

        try:
            found = self._call(lambda: self._client.app.bsky.feed.post.get(self._own_did(), message.nonce))
        except Rejected as exc:
            if isinstance(exc.__cause__, BadRequestError) and error_name(exc.__cause__) == "RecordNotFound":
                return None
            raise
        return Published(id=found.uri, url=self._web_url(found.uri), cid=found.cid)

    def delete(self, published: Published) -> None:
        from atproto_core.uri import AtUri

        from bot.platforms.bluesky_sdk import models

        uri = AtUri.from_str(published.id)
        self._call(
            lambda: self._client.com.atproto.repo.delete_record(
                models.ComAtprotoRepoDeleteRecord.Data(
                    repo=uri.hostname, collection=uri.collection, rkey=uri.rkey
                )
            )
        )

    def repost(self, post_id: str) -> Published:
        """An `app.bsky.feed.repost` record for the post at `post_id` (an at:// URI)."""
        from bot.platforms.bluesky_sdk import models

        subject = self._records.strong_ref(Published(id=post_id, url=""))

        def create() -> models.AppBskyFeedRepost.CreateRecordResponse:
            record = models.AppBskyFeedRepost.Record(created_at=_timestamp(self._now()), subject=subject)
            return self._client.app.bsky.feed.repost.create(self._own_did(), record)

        created = self._call(create)
        return Published(id=created.uri, url=self._web_url(post_id), cid=created.cid)

    # -- monitoring reads (bot.monitoring.monitor) ------------------------------------------------------

    def identity(self) -> str:
        """The account's DID: the saved session's (read without the SDK or the network), or
        that of the session the first call brings up."""
        if self._did is None and not self._has_session:
            saved = self._saved_session(quiet=True)
            if saved is not None and saved[1]:
                self._did = saved[1]
        if self._did is not None:
            return self._did
        return self._call(self._own_did)

    def read_hashtags(
        self, tags: Sequence[str], cursor: str | None, start: datetime, conversations: Sequence[str] = ()
    ) -> Batch:
        """One page of searchPosts for one tag (`bot.platforms.bluesky_reads`)."""
        from bot.platforms import bluesky_reads

        (tag,) = tags
        return bluesky_reads.read_search(self._call, self._client, tag, cursor, start)

    def read_notifications(self, cursor: str | None, start: datetime) -> Batch:
        """One page of listNotifications: replies, quotes and mentions of this account."""
        from bot.platforms import bluesky_reads

        return bluesky_reads.read_notifications(self._call, self._client, cursor, start)

    # -- sessions ------------------------------------------------------------------------------

    def _on_session_change(self, event: SessionEvent, session: Session) -> None:
        from bot.platforms.bluesky_sdk import SessionEvent

        self._did = session.did
        self._session_handle = session.handle
        if event in (SessionEvent.CREATE, SessionEvent.REFRESH) and self._save_session is not None:
            # The string holds the tokens: stored sealed (`bot.platforms.sealing`), never logged.
            # The config it was made for goes with it, so a changed service or handle does not
            # reuse it; the DID too, so that `identity` needs neither the SDK nor the network.
            made_for = {"service": self._service, "handle": self._handle.lower()}
            blob = json.dumps({**made_for, "did": session.did, "session": session.export()})
            self._save_session(seal(self._session_key(), blob))

    def _saved_session(self, quiet: bool = False) -> tuple[str, str | None] | None:
        """The saved session string and its DID (None when saved before the DID was kept), if
        there is one, it unseals, and it was made for this config. `quiet`: say nothing of a
        session that will not do (the next call that needs one says it)."""
        sealed = self._load_session() if self._load_session is not None else None
        saved = unseal(self._session_key(), sealed) if sealed else None
        if not saved:
            return None
        try:
            blob = json.loads(saved)
            made_for = (str(blob["service"]), str(blob["handle"]))
            session = str(blob["session"])
            did = str(blob["did"]) if blob.get("did") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            if not quiet:
                log.warning("bluesky %s: the saved session is unreadable; creating a new one", self.account)
            return None
        if made_for != (self._service, self._handle.lower()):
            if not quiet:
                log.warning(
                    "bluesky %s: the saved session was made for another service or handle; logging in afresh",
                    self.account,
                )
            return None
        return session, did

    def _ensure_session(self) -> None:
        if self._has_session:
            return
        from bot.platforms.bluesky_sdk import AtProtocolError

        saved = self._saved_session()
        if saved:
            try:
                # No network here: the SDK refreshes an expiring import on the next call, and a
                # refused one is replaced by _renew_session.
                self._client.login(session_string=saved[0], fetch_bsky_profile=False)
                self._has_session = self._imported = True
                return
            except (ValueError, AtProtocolError):
                log.warning("bluesky %s: the saved session is unreadable; creating a new one", self.account)
        self._create_session()

    def _session_key(self) -> bytes:
        if self._sealing_key is None:
            self._sealing_key = session_key(self._password, self._handle)
        return self._sealing_key

    def _create_session(self) -> None:
        # An imported session moves the client to the PDS it names; a new one starts at the service.
        self._imported = False
        self._client.update_base_url(self._service)
        self._client.login(self._handle, self._password, fetch_bsky_profile=False)
        self._has_session = True

    def _login_afresh(self, why: str) -> None:
        """The saved session's host is gone: the account may have moved. Said once, then a new
        session at the configured service, which finds where the account lives now."""
        log.warning(
            "bluesky %s: the saved session's server %s %s; logging in afresh at %s",
            self.account,
            str(self._client._base_url).removesuffix("/xrpc"),
            why,
            self._service,
        )
        self._create_session()

    def _renew_session(self) -> None:
        """The session was refused: refresh it, and only when that is refused too, create one."""
        from bot.platforms.bluesky_sdk import BadRequestError, LoginRequiredError, UnauthorizedError

        imported = self._imported
        try:
            self._client._refresh_and_set_session()  # the SDK's own refresh, which fires REFRESH
            return
        except (BadRequestError, UnauthorizedError, LoginRequiredError) as exc:
            if imported:
                self._login_afresh(f"refused it ({type(exc).__name__})")
                return
            log.info("bluesky %s: session refresh refused (%s); creating a new session", self.account, exc)
        self._create_session()

    def _own_did(self) -> str:
        if self._did is None:
            from bot.platforms.bluesky_sdk import LoginRequiredError

            raise LoginRequiredError
        return self._did

    def _web_url(self, uri: str) -> str:
        from atproto_core.uri import AtUri

        at = AtUri.from_str(uri)
        who = self._session_handle if at.hostname == self._did and self._session_handle else at.hostname
        return f"https://bsky.app/profile/{who}/post/{at.rkey}"

    # -- errors ------------------------------------------------------------------------------

    def _call(self, send: Callable[[], T]) -> T:
        """Run one SDK call, renewing a refused session once, and translate what it raises."""
        from bot.platforms import bluesky_sdk as sdk

        try:
            if not self._has_session:
                with self._session_lock:
                    self._ensure_session()
            try:
                return send()
            except (sdk.BadRequestError, sdk.UnauthorizedError) as exc:
                if sdk.error_name(exc) not in SESSION_ERRORS or self._password == "":
                    raise
                self._renew_session()
                return send()
            except (sdk.NetworkError, sdk.InvokeTimeoutError, httpx.TransportError) as exc:
                answered = isinstance(exc, sdk.RequestErrorBase) and exc.response is not None
                if not self._imported or answered or self._password == "":
                    raise
                self._login_afresh(f"does not answer ({type(exc).__name__})")
                return send()
        except sdk.AtProtocolError as exc:
            raise sdk.translate_error(exc, self._now()) from exc
        except httpx.HTTPError as exc:
            # The SDK maps only httpx's timeouts and NetworkErrors; a connection closed before
            # any answer (RemoteProtocolError) escapes it raw.
            raise Transient(f"Bluesky: {type(exc).__name__}") from exc
        except ValueError as exc:
            if isinstance(exc, pydantic.ValidationError):
                raise  # our own record did not validate: a bug, not the server's answer
            # A truncated answer: the SDK parses JSON (pydantic_core.from_json) unguarded.
            raise Transient("Bluesky: malformed answer (not JSON)") from exc


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def open_client(account: Account, **options: Any) -> PlatformClient:
    return BlueskyClient(
        account,
        timeout=float(options.get("timeout") or DEFAULT_TIMEOUT),
        now=options.get("now") or (lambda: datetime.now(UTC)),
        load_session=options.get("load_session"),
        save_session=options.get("save_session"),
        content_dir=options.get("content_dir"),
        link_card_timeout=float(options.get("link_card_timeout") or LINK_CARD_TIMEOUT),
        on_budget=options.get("on_budget"),
    )
