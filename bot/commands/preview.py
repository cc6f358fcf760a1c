"""`preview`: the coming slots in time order, each with the exact payload per platform and account.

Built from the same `plan` and `render_post` the daemon uses, so what it shows is what goes out.
Pure: the loaded config and queues, `now` and what the ledger says was sent come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.campaign.model import Config, LinkCard, Platform, Queue
from bot.planning.limits import AccountClock
from bot.planning.planner import PlannedSlot, Progress, plan, refuses_repeats, targets_of
from bot.render.textrules import Rendered, RenderedPart, render_post


@dataclass(frozen=True)
class PreviewEntry:
    """One slot of one queue and what it sends to each platform and account."""

    queue: Queue
    planned: PlannedSlot
    payloads: tuple[Rendered, ...]
    # Targets whose secrets are unset: their deliveries will be held until set (design.md).
    held: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # When each target's delivery really goes out, where an account limit delays it.
    send_at: Mapping[tuple[str, str], datetime] = field(default_factory=dict)
    # Targets left out: X in a repeating queue's later rounds (it refuses a text seen before).
    skipped: tuple[str, ...] = ()


def build_preview(
    config: Config,
    queues: Sequence[Queue],
    now: datetime,
    days: int,
    *,
    queue_name: str | None = None,
    platform: Platform | None = None,
    progress: Mapping[str, Progress] | None = None,
    posted: Mapping[tuple[str, str], list[datetime]] | None = None,
) -> list[PreviewEntry]:
    """Every slot in [now, now + days) of the chosen queues, in firing order.

    `progress` gives each queue's state from the ledger (default: nothing sent yet), `posted`
    each account's post times of the last day (for its limits).
    """
    entries: list[PreviewEntry] = []
    held: dict[tuple[str, str], tuple[str, ...]] = {
        (a.platform, a.name): a.missing
        for p in config.enabled_platforms()
        for a in config.accounts(p)
        if a.missing
    }
    for queue in queues:
        targets = targets_of(queue, config)
        for planned in plan(queue, now, now + timedelta(days=days), (progress or {}).get(queue.name)):
            payloads: list[Rendered] = []
            skipped: list[str] = []
            if planned.post is not None:
                for target, accounts in targets.items():
                    if refuses_repeats(target, planned.cycle):
                        skipped.extend(f"{target}/{a}" for a in accounts)
                        continue
                    payloads.extend(render_post(queue, planned.post, target, a) for a in accounts)
            entries.append(PreviewEntry(queue, planned, tuple(payloads), held, skipped=tuple(skipped)))
    entries.sort(key=lambda e: (e.planned.slot.fire_at, e.queue.name))
    # Filtered only now: another queue's posts on a shared account still delay this one's.
    return [
        replace(
            entry,
            payloads=tuple(p for p in entry.payloads if platform in (None, p.platform)),
            skipped=tuple(t for t in entry.skipped if platform in (None, t.split("/")[0])),
        )
        for entry in _apply_limits(config, entries, posted or {})
        if queue_name in (None, entry.queue.name)
        and (platform is None or platform in targets_of(entry.queue, config))  # a queue that goes there
    ]


def _apply_limits(
    config: Config, entries: list[PreviewEntry], posted: Mapping[tuple[str, str], list[datetime]]
) -> list[PreviewEntry]:
    """Each delivery's real time under its account's limits, in the order the daemon meets them.

    Every queue is planned here, so a `--queue` or `--platform` filter still sees the others'
    posts on a shared account: those filters only hide entries afterwards.
    """
    clocks = {
        (a.platform, a.name): AccountClock(a.limits, sorted(posted.get((a.platform, a.name), [])))
        for p in config.enabled_platforms()
        for a in config.accounts(p)
        if a.limits.min_gap is not None or a.limits.posts_per_day is not None
    }
    timed = []
    for entry in entries:
        send_at: dict[tuple[str, str], datetime] = {}
        for rendered in entry.payloads:
            clock = clocks.get((rendered.platform, rendered.account))
            if clock is not None:
                send_at[(rendered.platform, rendered.account)] = clock.send_at(
                    entry.planned.slot.fire_at, len(rendered.parts)
                )
        timed.append(replace(entry, send_at=send_at))
    return timed


# --- output -------------------------------------------------------------------------------------


def preview_records(entries: Sequence[PreviewEntry]) -> list[dict[str, Any]]:
    """The JSON form of `preview --json`: one object per slot."""
    return [_entry_record(entry) for entry in entries]


def _entry_record(entry: PreviewEntry) -> dict[str, Any]:
    slot, zone = entry.planned.slot, ZoneInfo(entry.queue.schedule.timezone)
    return {
        "queue": entry.queue.name,
        "slot": slot.name,
        "time": slot.fire_at.isoformat(),
        "local_time": slot.fire_at.astimezone(zone).isoformat(),
        "post_id": entry.planned.post.id if entry.planned.post else None,
        "pinned": slot.pinned is not None,
        "cycle": entry.planned.cycle,
        "exhausted": entry.planned.exhausted,
        "skipped": list(entry.skipped),
        "payloads": [
            {
                **_payload_record(p),
                "held_for": list(entry.held.get((p.platform, p.account), ())),
                "send_at": entry.send_at.get((p.platform, p.account), slot.fire_at).isoformat(),
            }
            for p in entry.payloads
        ],
    }


def _payload_record(rendered: Rendered) -> dict[str, Any]:
    return {
        "platform": rendered.platform,
        "account": rendered.account,
        "spoiler_text": rendered.spoiler_text,
        "visibility": rendered.visibility,
        "language": rendered.language,
        "link_card": _link_card_record(rendered.link_card),
        "link": rendered.link,
        "parts": [_part_record(part) for part in rendered.parts],
    }


def _link_card_record(card: bool | LinkCard) -> bool | dict[str, Any]:
    if isinstance(card, LinkCard):
        return {"title": card.title, "description": card.description, "image": card.image}
    return card


def _part_record(part: RenderedPart) -> dict[str, Any]:
    record: dict[str, Any] = {
        "text": part.text,
        "length": part.length,
        "limit": part.limit,
        "fits": part.fits,
        "images": [{"path": i.path, "alt": i.alt} for i in part.images],
    }
    if part.byte_limit is not None:
        record["bytes"] = part.byte_length
        record["byte_limit"] = part.byte_limit
        record["facets"] = [
            {"kind": f.kind, "start": f.start, "end": f.end, "value": f.value} for f in part.facets
        ]
    return record


def format_preview(entries: Sequence[PreviewEntry]) -> str:
    """The human form: a heading per slot, then each payload with its length against the limit."""
    lines: list[str] = []
    for entry in entries:
        slot, zone = entry.planned.slot, ZoneInfo(entry.queue.schedule.timezone)
        when = slot.fire_at.astimezone(zone).strftime("%a %Y-%m-%d %H:%M:%S %Z")
        head = f"{when}  {entry.queue.name}  slot {slot.name}"
        post = entry.planned.post
        if post is None:
            reason = "queue exhausted" if entry.planned.exhausted else "nothing to send"
            lines += [head, f"  ({reason})", ""]
            continue
        cycle = "pinned" if slot.pinned else f"cycle {entry.planned.cycle}"
        lines.append(f"{head}  post {post.id} ({cycle})")
        for rendered in entry.payloads:
            target = (rendered.platform, rendered.account)
            late = entry.send_at.get(target, slot.fire_at)
            extra = (
                [f"goes out {late.astimezone(zone):%a %H:%M:%S} (account limits)"]
                if late > slot.fire_at
                else []
            )
            lines.extend(payload_lines(rendered, entry.held.get(target, ()), extra))
        lines.extend(
            f"  {target}  not sent: X refuses a text it already posted (round {entry.planned.cycle})"
            for target in entry.skipped
        )
        lines.append("")
    return "\n".join(lines)


def payload_lines(
    rendered: Rendered, missing: tuple[str, ...] = (), extras: list[str] | None = None
) -> list[str]:
    extras = list(extras or [])
    extras += [f"HELD until {', '.join(missing)} set"] if missing else []
    if rendered.spoiler_text:
        extras.append(f"CW: {rendered.spoiler_text!r}")
    if rendered.visibility:
        extras.append(f"visibility: {rendered.visibility}")
    if rendered.language:
        extras.append(f"language: {rendered.language}")
    if rendered.link_card:
        card = rendered.link_card
        extras.append("link card: " + (card.title if isinstance(card, LinkCard) else "from the link's page"))
    if rendered.link:
        extras.append(f"link: {rendered.link}")
    lines = [f"  {rendered.platform}/{rendered.account}" + (f"  {'; '.join(extras)}" if extras else "")]
    many = len(rendered.parts) > 1
    for n, part in enumerate(rendered.parts, start=1):
        measure = f"{part.length}/{part.limit}"
        if part.byte_limit is not None:
            measure += f" graphemes, {part.byte_length}/{part.byte_limit} bytes"
        flag = "" if part.fits else "  TOO LONG"
        label = f"part {n}/{len(rendered.parts)}  " if many else ""
        lines.append(f"    {label}{measure}{flag}")
        lines.extend(f"      | {line}" for line in part.text.splitlines() or [""])
        for image in part.images:
            lines.append(f"      image {image.path}  alt: {image.alt!r}")
        if part.facets:
            shown = ", ".join(f"{f.kind} {f.value} [{f.start}:{f.end}]" for f in part.facets)
            lines.append(f"      facets: {shown}")
    return lines
