"""Tweet lookup (`GET /2/tweets/:id`, `GET /2/tweets?ids=`) and undoing a retweet, as X answers them.

A lookup answers 200 with `data` for the tweets it can show and, for the others (unknown,
deleted), X's "partial error" entries in `errors` (a suspended author's: "Authorization Error",
`not-authorized-for-resource`, as X answers); one id that cannot be
shown is a 200 with only `errors`. Undoing a retweet that is not there is `{"retweeted": false}`
all the same (tweepy's recording of `unretweet`).
"""

from __future__ import annotations

import re

from bot.sandbox.server import Request, Response
from bot.sandbox.x_errors import (
    NOT_PERMITTED,
    invalid_request,
    not_authorized_error,
    not_found_error,
    problem,
)
from bot.sandbox.x_store import XStore
from bot.sandbox.x_timeline import Page, TimelineError, lookup_fields
from bot.sandbox.x_tweets import XUser

_IDS = re.compile(r"\d{1,19}(,\d{1,19}){0,99}")


def _suspended_author(store: XStore, tweet_id: str) -> bool:
    tweet = store.tweets_by_id.get(tweet_id)
    return tweet is not None and tweet.author.id in store.suspended


def lookup(store: XStore, request: Request, single: str | None) -> Response:
    """One tweet (`single`, from the path) or those of the `ids` parameter."""
    raw = single if single is not None else request.arg("ids") or ""
    if single is None and not _IDS.fullmatch(raw):
        return invalid_request(f"The `ids` query parameter value [{raw}] is not valid", "ids", [raw])
    try:
        fields = lookup_fields(request)
    except TimelineError as exc:
        return invalid_request(exc.message, exc.parameter, [exc.value])
    ids = list(dict.fromkeys(raw.split(",")))
    found = [t for i in ids if (t := store.live(i)) is not None]
    missing = [i for i in ids if store.live(i) is None]
    body = store.render_page(Page(found, None, *fields)) if found else {}
    body.pop("meta", None)
    if single is not None and found:
        body["data"] = body["data"][0]
    if missing:
        parameter = "id" if single is not None else "ids"
        body["errors"] = [
            not_authorized_error(i, parameter)
            if _suspended_author(store, i)
            else not_found_error("tweet", i, "id")
            for i in missing
        ]
    return Response.json(200, body)


def undo_retweet(store: XStore, user: XUser, argument: str) -> Response:
    """DELETE /2/users/:id/retweets/:source_tweet_id."""
    user_id, _, source_id = argument.partition("/")
    if user_id != user.id:
        return problem(403, NOT_PERMITTED)
    for tweet in store.tweets:
        if tweet.author is user and not tweet.deleted and tweet.kind("retweeted") == source_id:
            tweet.deleted = True
    return Response.json(200, {"data": {"retweeted": False}})
