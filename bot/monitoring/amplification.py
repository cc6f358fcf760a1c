"""Reposting allies (`amplify`, docs/design.md): each hashtag post by an allowed account, once, within
`max_per_day` per platform.

The repost is claimed in the ledger before the call, so it is made at most once, even across
restarts and several workers; a call that fails after the claim is logged and not retried (a
missed repost of an ally costs less than a doubled one on Bluesky, where a second repost record
shows twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from bot.campaign.model import AmplifyRule, Platform
from bot.errors import PlatformError
from bot.ledger.mentions import MonitorStore
from bot.monitoring.classification import Sighting, normalize_handle
from bot.platforms import PlatformClient

log = logging.getLogger("bot.monitor")


def start_of_day(moment: datetime) -> datetime:
    """Midnight UTC of `moment`'s day: `max_per_day` counts UTC days."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def is_ally(sighting: Sighting, rule: AmplifyRule | None) -> bool:
    if rule is None or not sighting.tracked:
        return False
    return normalize_handle(sighting.post.author) in {normalize_handle(h) for h in rule.allow}


class Amplifier:
    def __init__(
        self, rules: Mapping[Platform, AmplifyRule], store: MonitorStore, now: Callable[[], datetime]
    ) -> None:
        self.rules = rules
        self.store = store
        self.now = now

    def amplify(self, sightings: Iterable[Sighting], client: PlatformClient) -> list[Sighting]:
        """Repost the allies' posts among `sightings` (new ones, oldest first) with `client`."""
        reposted = []
        for sighting in sightings:
            rule = self.rules.get(sighting.platform)
            if rule is None or not is_ally(sighting, rule):
                continue
            now = self.now()
            cap = (rule.max_per_day, start_of_day(now))
            if not self.store.record_amplification(
                sighting.platform, sighting.post.id, client.account, now, cap=cap
            ):
                # Reposted before (another worker, or before a restart), or today's reposts are done.
                if self.store.count_amplifications(sighting.platform, cap[1]) >= rule.max_per_day:
                    log.info(
                        "amplify %s: %d reposts today already; not reposting %s",
                        sighting.platform,
                        rule.max_per_day,
                        sighting.post.url,
                    )
                continue
            try:
                client.repost(sighting.post.id)
            except PlatformError as exc:
                log.warning(
                    "amplify %s/%s: repost of %s failed: %s",
                    sighting.platform,
                    client.account,
                    sighting.post.url,
                    exc,
                )
                continue
            log.info(
                "amplified %s/%s @%s %s",
                sighting.platform,
                client.account,
                sighting.post.author,
                sighting.post.url,
            )
            reposted.append(sighting)
        return reposted
