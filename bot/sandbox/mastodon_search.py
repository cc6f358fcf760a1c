"""`GET /api/v2/search` as a Mastodon 4.6 server without a full-text index answers it.

Accounts match on username or `acct` (prefix, any case); hashtags on their name; statuses only
when `q` is the URL or URI of a status the viewer may see (full-text status search needs
Elasticsearch, which the recorded server did not run: its `type=statuses` search came back
empty). `type` narrows to one list; the answer always has all four keys, `collections` (4.6)
empty (Mastodon.py's recorded cassette test_search).
"""

from __future__ import annotations

from bot.sandbox.mastodon_entities import Actor
from bot.sandbox.mastodon_http import ApiError, int_arg
from bot.sandbox.mastodon_store import MastodonStore
from bot.sandbox.server import Request, Response

TYPES = ("accounts", "statuses", "hashtags")


def search(store: MastodonStore, request: Request, viewer: Actor | None, base_url: str) -> Response:
    q = (request.arg("q") or "").strip()
    kind = request.arg("type")
    if kind is not None and kind not in TYPES:
        raise ApiError(400, "Invalid search type")
    limit = max(1, min(int_arg(request.arg("limit")) or 20, 40))
    word = q.lstrip("@#").lower()
    accounts, statuses, hashtags = [], [], []
    if word and kind in (None, "accounts"):
        actors = [*store.ours, *store.remote.values()]
        found = [a for a in actors if a.username.lower().startswith(word) or a.acct.lower().startswith(word)]
        accounts = [store.account_json(a, base_url) for a in found[:limit]]
    if q and kind in (None, "statuses"):
        statuses = [
            store.status_json(s, viewer, base_url)
            for s in store.live_statuses()
            if q in (s.url(base_url), s.uri(base_url)) and store.visible(s, viewer)
        ]
    if word and kind in (None, "hashtags"):
        names = sorted({t for s in store.live_statuses() for t in s.tags if t.startswith(word)})
        hashtags = [{"name": n, "url": f"{base_url}/tags/{n}", "history": []} for n in names[:limit]]
    body = {"accounts": accounts, "statuses": statuses, "hashtags": hashtags, "collections": []}
    return Response.json(200, body)
