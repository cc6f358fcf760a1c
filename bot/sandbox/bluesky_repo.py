"""The PDS side of the Bluesky emulator: an account's repo of records, and its blobs.

Writes are checked as the PDS checks them: the record against its lexicon (`validate: true`),
the rkey as a TID, then every blob the record references against its field's constraints.
Where the PDS itself is lax the emulator is stricter on purpose, and says so (facet ranges,
reply references; docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.campaign.images import UNKNOWN, inspect_image
from bot.platforms.tid import is_tid, make_tid
from bot.sandbox.bluesky_appview import Actor, Blob, Network, Record
from bot.sandbox.bluesky_lexicon import (
    POST,
    RecordInvalid,
    check_facet_ranges,
    make_cid,
    record_cid,
    validate_record,
)
from bot.sandbox.bluesky_xrpc import XrpcError, limit_param, param, read_body
from bot.sandbox.server import Request, Response

# The PDS's own upload cap (PDS_BLOB_UPLOAD_LIMIT, 5 MiB by default); the 1,000,000-byte image
# limit is the lexicon's and is checked when a record references the blob, as the PDS does.
UPLOAD_LIMIT = 5 * 1024 * 1024


def sniff_mime(data: bytes, declared: str | None) -> str:
    """The PDS trusts the bytes, then the header (the SDK always sends `*/*`)."""
    sniffed = inspect_image(data).mime
    if sniffed != UNKNOWN:
        return sniffed
    if declared and declared != "*/*" and "/" in declared:
        return declared.split(";")[0].strip()
    return UNKNOWN


class Repo:
    """Every account's repo over one `Network`; `clock` stamps records (strictly increasing)."""

    def __init__(self, net: Network, clock: Callable[[], datetime]) -> None:
        self.net = net
        self.clock = clock
        self._last_stamp: datetime | None = None

    # -- repo writes ----------------------------------------------------------------------

    def create_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        body = read_body(request)
        actor = self._own_repo(body, actor)
        collection, rkey = str(body.get("collection", "")), body.get("rkey")
        validate = body.get("validate") is not False
        if rkey is not None:
            if validate and not is_tid(str(rkey)):
                # The post lexicon's key type is "tid"; the SDK sends validate: true.
                raise XrpcError(400, "InvalidRequest", f"Invalid record key for {collection}")
            existing = self.net.live(f"at://{actor.did}/{collection}/{rkey}")
            if existing is not None:
                # The MST throws "There is already a value at key"; the PDS answers a bare 500
                # (bluesky-social/atproto#3718), not a 409. Clients must check getRecord.
                raise XrpcError(500, "InternalServerError", "Internal Server Error")
        record = self._checked(collection, body.get("record"), validate)
        stored = self.store(actor, collection, str(rkey) if rkey else None, record, self.stamp())
        return self._write_answer(stored)

    def put_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        body = read_body(request)
        actor = self._own_repo(body, actor)
        collection, rkey = str(body.get("collection", "")), str(body.get("rkey", ""))
        validate = body.get("validate") is not False
        if validate and not is_tid(rkey):
            raise XrpcError(400, "InvalidRequest", f"Invalid record key for {collection}")
        record = self._checked(collection, body.get("record"), validate)
        existing = self.net.live(f"at://{actor.did}/{collection}/{rkey}")
        if existing is None:
            return self._write_answer(self.store(actor, collection, rkey, record, self.stamp()))
        existing.value, existing.cid = record, record_cid(record)
        return self._write_answer(existing)

    def delete_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        body = read_body(request)
        actor = self._own_repo(body, actor)
        existing = self.net.live(f"at://{actor.did}/{body.get('collection')}/{body.get('rkey')}")
        if existing is None:
            return {}  # the PDS treats deleting a missing record as a no-op
        existing.deleted = True
        return {"commit": self._commit()}

    def upload_blob(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        assert actor is not None
        if len(request.body) > UPLOAD_LIMIT:
            raise XrpcError(413, "PayloadTooLarge", "request entity too large")
        mime = sniff_mime(request.body, request.headers.get("Content-Type"))
        blob = Blob(make_cid(request.body, raw=True), actor.did, mime, request.body)
        self.net.blobs[blob.cid] = blob
        return {
            "blob": {
                "$type": "blob",
                "ref": {"$link": blob.cid},
                "mimeType": blob.mime_type,
                "size": blob.size,
            }
        }

    def _checked(self, collection: str, record: Any, validate: bool) -> dict[str, Any]:
        """Validate a record as the PDS does: lexicon, then (emulator) facet ranges, reply refs, blobs."""
        if not isinstance(record, dict):
            raise XrpcError(400, "InvalidRequest", 'Input must have the property "record"')
        if not validate:
            return record
        try:
            refs = validate_record(collection, record)
            if collection == POST:
                check_facet_ranges(record)
        except RecordInvalid as exc:
            raise XrpcError(400, exc.error, exc.message) from None
        for ref in refs.replies:
            target = self.net.records.get(ref.uri)
            if target is None or target.cid != ref.cid:
                # Stricter than the PDS, which stores replies to anything: a reference that never
                # existed in the sandbox is a bug in the caller (docs/decisions.md).
                raise XrpcError(
                    400,
                    "InvalidRequest",
                    f"Invalid {collection} record: {ref.path} does not reference an existing record",
                )
        for blob_ref in refs.blobs:
            blob = self.net.blobs.get(blob_ref.cid)
            if blob is None:
                raise XrpcError(400, "BlobNotFound", f"Could not find blob: {blob_ref.cid}")
            if blob.size > blob_ref.max_size:
                raise XrpcError(
                    400,
                    "BlobTooLarge",
                    f"This file is too large. It is {_pretty_bytes(blob.size)} but the maximum size is "
                    f"{_pretty_bytes(blob_ref.max_size)}.",
                )
            if not blob.mime_type.startswith(blob_ref.accept.removesuffix("*")):
                raise XrpcError(
                    400,
                    "InvalidMimeType",
                    f"Wrong type of file. It is {blob.mime_type} but it must match {blob_ref.accept}.",
                )
        return record

    def _own_repo(self, body: dict[str, Any], actor: Actor | None) -> Actor:
        assert actor is not None
        repo = str(body.get("repo", ""))
        if repo not in (actor.did, actor.handle):
            if self.net.actor(repo) is None:
                raise XrpcError(400, "InvalidRequest", f"Could not find repo: {repo}")
            raise XrpcError(401, "AuthenticationRequired", "Authentication Required")
        return actor

    def stamp(self) -> datetime:
        """The clock, made strictly increasing by the millisecond so that order and cursors are exact."""
        now = self.clock()
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def store(
        self, actor: Actor, collection: str, rkey: str | None, value: dict[str, Any], at: datetime
    ) -> Record:
        rkey = rkey or make_tid(at, clock_id=7)
        uri = f"at://{actor.did}/{collection}/{rkey}"
        record = Record(uri, record_cid(value), actor.did, collection, rkey, value, at)
        self.net.index(record)
        return record

    def _commit(self) -> dict[str, str]:
        rev = make_tid(self.stamp(), clock_id=3)
        return {"cid": make_cid(rev.encode()), "rev": rev}

    def _write_answer(self, record: Record) -> dict[str, Any]:
        return {"uri": record.uri, "cid": record.cid, "commit": self._commit(), "validationStatus": "valid"}

    # -- repo reads -----------------------------------------------------------------------

    def get_record(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        repo = self._repo_param(request)
        uri = f"at://{repo.did}/{param(request, 'collection')}/{param(request, 'rkey')}"
        record = self.net.live(uri)
        if record is None:
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        return {"uri": record.uri, "cid": record.cid, "value": record.value}

    def list_records(self, request: Request, actor: Actor | None) -> dict[str, Any]:
        repo = self._repo_param(request)
        collection = param(request, "collection")
        limit = limit_param(request, default=50)
        reverse = request.arg("reverse") == "true"
        cursor = request.arg("cursor")
        records = sorted(
            (
                r
                for r in self.net.records.values()
                if r.did == repo.did and r.collection == collection and not r.deleted
            ),
            key=lambda r: r.rkey,
            reverse=not reverse,  # newest (highest TID) first unless reverse=true
        )
        if cursor:
            records = [r for r in records if (r.rkey > cursor if reverse else r.rkey < cursor)]
        page = records[:limit]
        answer: dict[str, Any] = {"records": [{"uri": r.uri, "cid": r.cid, "value": r.value} for r in page]}
        if len(records) > limit:
            answer["cursor"] = page[-1].rkey
        return answer

    def _repo_param(self, request: Request) -> Actor:
        repo = param(request, "repo")
        actor = self.net.actor(repo)
        if actor is None:
            raise XrpcError(400, "InvalidRequest", f"Could not find repo: {repo}")
        return actor

    def get_blob(self, request: Request, actor: Actor | None) -> Response:
        blob = self.net.blobs.get(param(request, "cid"))
        if blob is None:
            raise XrpcError(400, "BlobNotFound", "Blob not found")
        return Response(200, blob.data, {"Content-Type": blob.mime_type})

    def image_bytes(self, cid: str) -> Response:
        blob = self.net.blobs.get(cid)
        if blob is None:
            return Response(404, b"not found", {"Content-Type": "text/plain"})
        return Response(200, blob.data, {"Content-Type": blob.mime_type})


def _pretty_bytes(size: int) -> str:
    """As the PDS prints sizes: binary units, two decimals at most ("976.56KB", "1.01MB")."""
    for unit, scale in (("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{round(size / scale, 2):g}{unit}"
    return f"{size}B"
