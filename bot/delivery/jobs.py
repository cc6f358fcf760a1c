"""From a post of a queue to the delivery jobs it makes: one per (platform, account) target.

The text rules render each part per platform and account; this module only turns that into the
`Outgoing` messages the adapters take (images as absolute paths inside the content folder), and
picks the targets: the queue's platforms that are enabled, the queue's accounts (default all),
less any account whose credentials are missing (`run` refuses to start it; docs/design.md, config.yaml).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from bot.campaign.model import Account, Config, Post, Queue
from bot.delivery.courier import Job
from bot.ledger.deliveries import Delivery
from bot.planning.planner import refuses_repeats, targets_of
from bot.render.textrules import render_post, to_outgoing


def targets(config: Config, queue: Queue, platforms: Collection[str] | None = None) -> list[Account]:
    """The accounts a post of `queue` goes to, in platform order, less those missing credentials."""
    return [a for a in _queue_accounts(config, queue, platforms) if not a.missing]


def held_targets(config: Config, queue: Queue, platforms: Collection[str] | None = None) -> list[Account]:
    """The accounts a post of `queue` is owed to but cannot reach yet: their secrets are unset.

    Their deliveries are held (a released claim) and sent once the secrets are set, never
    dropped: an account that cannot post spends nothing of the queue.
    """
    return [a for a in _queue_accounts(config, queue, platforms) if a.missing]


def owed_targets(config: Config, queue: Queue, platforms: Collection[str] | None = None) -> list[Account]:
    """Every account a post of `queue` goes to, held ones (`held_targets`) included, in platform order."""
    return _queue_accounts(config, queue, platforms)


def missing_line(accounts: Collection[Account], refused: Mapping[tuple[str, str], str] | None = None) -> str:
    """`x/main missing X_CONSUMER_KEY, X_ACCESS_TOKEN; x/account2 credentials refused (…)`"""
    return "; ".join(f"{a.platform}/{a.name} {held_why(a, refused or {})}" for a in accounts)


def held_why(account: Account, refused: Mapping[tuple[str, str], str]) -> str:
    """Why an account holds its posts: its secrets are unset, or the network refused them."""
    if account.missing:
        return f"missing {', '.join(account.missing)}"
    return f"credentials refused ({refused.get((account.platform, account.name), 'unknown')})"


def held_until(account: Account) -> str:
    """When a held account's posts go out (the daemon probes a refused account every 15 minutes
    and after each config change)."""
    return "sent once set" if account.missing else "sent once the account can post again"


def held_deliveries(
    config: Config, pending: Iterable[Delivery], refused: Mapping[tuple[str, str], str] | None = None
) -> list[tuple[Delivery, Account]]:
    """Of the unconfirmed claims, those waiting for an account that cannot post: its secrets
    are unset, or the network refused its credentials (`refused`: unhealthy accounts and their
    error, until a probe finds them healthy)."""
    refused = refused or {}
    held: dict[tuple[str, str], Account] = {
        (a.platform, a.name): a
        for p in config.enabled_platforms()
        for a in config.accounts(p)
        if a.missing or (a.platform, a.name) in refused
    }
    found = ((row, held.get((row.key.platform, row.key.account))) for row in pending)
    return [(row, account) for row, account in found if account is not None]


def _queue_accounts(config: Config, queue: Queue, platforms: Collection[str] | None) -> list[Account]:
    chosen: list[Account] = []
    for platform, names in targets_of(queue, config).items():
        if platforms and platform not in platforms:
            continue
        chosen.extend(a for a in config.accounts(platform) if a.name in names)
    return chosen


def build_job(config: Config, queue: Queue, post: Post, cycle: int, account: Account) -> Job:
    rendered = render_post(queue, post, account.platform, account.name)
    parts = tuple(
        to_outgoing(rendered, index, content_dir=config.content_dir, nonce="")
        for index in range(len(rendered.parts))
    )
    return Job(queue.name, post.id, cycle, account.platform, account.name, parts)


def build_jobs(
    config: Config, queue: Queue, post: Post, cycle: int, platforms: Collection[str] | None = None
) -> list[Job]:
    return [
        build_job(config, queue, post, cycle, account)
        for account in targets(config, queue, platforms)
        if not refuses_repeats(account.platform, cycle)
    ]


def describe_post(config: Config, queue: Queue, post: Post, accounts: list[Account]) -> list[dict[str, Any]]:
    """The exact payload of a post per account, as `post --dry-run` prints it."""
    described = []
    for account in accounts:
        rendered = render_post(queue, post, account.platform, account.name)
        parts = []
        for index, part in enumerate(rendered.parts):
            message = to_outgoing(rendered, index, content_dir=config.content_dir, nonce="")
            parts.append(
                {
                    "text": part.text,
                    "length": part.length,
                    "limit": part.limit,
                    "fits": part.fits,
                    "images": [{"path": str(m.path), "alt": m.alt} for m in message.images],
                    "facets": [
                        {"start": f.start, "end": f.end, "kind": f.kind, "value": f.value}
                        for f in message.facets
                    ],
                    "spoiler_text": message.spoiler_text,
                    "visibility": message.visibility,
                    "language": message.language,
                    "link_card": message.link_card
                    if isinstance(message.link_card, bool)
                    else vars(message.link_card),
                    "link": message.link,
                }
            )
        described.append(
            {
                "target": f"{account.platform}/{account.name}",
                "queue": queue.name,
                "post": post.id,
                "held_for": list(account.missing),  # secrets unset: held until they are set
                "parts": parts,
            }
        )
    return described
