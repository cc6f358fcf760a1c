"""The part of X's search query language the emulator understands.

    query   := group ("OR" group)*
    group   := unary+                    terms side by side are ANDed
    unary   := "-"? atom
    atom    := "(" query ")" | "#tag" | "@user" | '"phrase"' | word | operator:value

Operators: from:, to:, conversation_id:, is:retweet|reply|quote, has:media|links|hashtags|
mentions, lang:. Words match whole words, case-insensitively, as X's tokenizer does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(r'-?"[^"]*"|\(|\)|[^\s()]+')


@dataclass(frozen=True)
class Candidate:
    """What a query can see of one tweet (all names lower-case, without # or @)."""

    text: str
    author: str
    hashtags: frozenset[str]
    mentions: frozenset[str]
    conversation_id: str
    in_reply_to_user: str | None
    is_retweet: bool
    is_reply: bool
    is_quote: bool
    has_media: bool
    has_links: bool
    lang: str = "en"


Predicate = Callable[[Candidate], bool]


class QueryError(ValueError):
    """A query X would refuse; the message is X's wording."""


def _word(word: str) -> Predicate:
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)
    return lambda c: bool(pattern.search(c.text))


_IS = {
    "retweet": lambda c: c.is_retweet,
    "reply": lambda c: c.is_reply,
    "quote": lambda c: c.is_quote,
}
_HAS = {
    "media": lambda c: c.has_media,
    "links": lambda c: c.has_links,
    "hashtags": lambda c: bool(c.hashtags),
    "mentions": lambda c: bool(c.mentions),
}


def _operator(name: str, value: str, position: int) -> Predicate:
    value_l = value.lower()
    if name == "from":
        return lambda c: c.author == value_l.lstrip("@")
    if name == "to":
        return lambda c: c.in_reply_to_user == value_l.lstrip("@")
    if name == "conversation_id":
        return lambda c: c.conversation_id == value
    if name == "lang":
        return lambda c: c.lang == value_l
    if name == "is" and value_l in _IS:
        return _IS[value_l]
    if name == "has" and value_l in _HAS:
        return _HAS[value_l]
    raise QueryError(
        f"Reference to invalid operator '{name}'. Operator is not available in current product or "
        f"product packaging. Please refer to complete available operator list at "
        f"https://t.co/operators. (at position {position})"
    )


def _atom(token: str, position: int) -> Predicate:
    if token.startswith('"'):
        return _word(token.strip('"'))
    if token.startswith("#") and len(token) > 1:
        tag = token[1:].lower()
        return lambda c: tag in c.hashtags
    if token.startswith("@") and len(token) > 1:
        user = token[1:].lower()
        return lambda c: user in c.mentions
    name, colon, value = token.partition(":")
    if colon and value and re.fullmatch(r"[a-z_]+", name) and not value.startswith("//"):
        return _operator(name, value, position)
    return _word(token)


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = [(m.group(), m.start() + 1) for m in _TOKEN.finditer(query)]
        self.at = 0

    def parse(self) -> Predicate:
        if not self.tokens:
            raise QueryError("There were errors processing your request: empty query (at position 1)")
        predicate = self._query()
        if self.at < len(self.tokens):
            token, position = self.tokens[self.at]
            raise QueryError(
                f"There were errors processing your request: no viable alternative at input "
                f"'{token}' (at position {position})"
            )
        return predicate

    def _query(self) -> Predicate:
        groups = [self._group()]
        while self._peek() == "OR":
            self.at += 1
            groups.append(self._group())
        return groups[0] if len(groups) == 1 else lambda c: any(g(c) for g in groups)

    def _group(self) -> Predicate:
        terms: list[Predicate] = []
        while self._peek() not in (None, ")", "OR"):
            terms.append(self._unary())
        if not terms:
            position = self.tokens[self.at][1] if self.at < len(self.tokens) else len(self.tokens) + 1
            raise QueryError(
                f"There were errors processing your request: missing term (at position {position})"
            )
        return terms[0] if len(terms) == 1 else lambda c: all(t(c) for t in terms)

    def _unary(self) -> Predicate:
        token, position = self.tokens[self.at]
        self.at += 1
        if token == "(":
            inner = self._query()
            if self._peek() != ")":
                raise QueryError(
                    f"There were errors processing your request: missing ')' (at position {position})"
                )
            self.at += 1
            return inner
        if token.startswith("-") and len(token) > 1:
            positive = _atom(token[1:], position + 1)
            return lambda c: not positive(c)
        return _atom(token, position)

    def _peek(self) -> str | None:
        return self.tokens[self.at][0] if self.at < len(self.tokens) else None


def compile_query(query: str) -> Predicate:
    """A predicate over tweets for one search query; QueryError if X would refuse it."""
    return _Parser(query).parse()
