"""`preview`: the coming slots in time order, each with the exact payload per platform and account.

Built from the same `plan` and `render_post` the daemon uses, so what it shows is what goes out.
Pure: the loaded config and queues, `now` and what the ledger says was sent come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.campaign.model import Config, LinkCard, Platform, Queue
from bot.planning.planner import PlannedSlot, Progress, plan, targets_of
from bot.render.textrules import Rendered, RenderedPart, render_post


@dataclass(frozen=True)
class PreviewEntry:
    """One slot of one queue and what it sends to each platform and account."""

    queue: Queue
    planned: PlannedSlot
    payloads: tuple[Rendered, ...]


def build_preview(
    config: Config,
    queues: Sequence[Queue],
    now: datetime,
    days: int,
    *,
    queue_name: str | None = None,
    platform: Platform | None = None,
    progress: Mapping[str, Progress] | None = None,
) -> list[PreviewEntry]:
    """Every slot in [now, now + days) of the chosen queues, in firing order.

    `progress` gives each queue's state from the ledger (default: nothing sent yet).
    """
    entries: list[PreviewEntry] = []
    for queue in queues:
        if queue_name is not None and queue.name != queue_name:
            continue
        targets = targets_of(queue, config)
        if platform is not None:
            targets = {p: names for p, names in targets.items() if p == platform}
        for planned in plan(queue, now, now + timedelta(days=days), (progress or {}).get(queue.name)):
            payloads: list[Rendered] = []
            if planned.post is not None:
                for target, accounts in targets.items():
                    payloads.extend(render_post(queue, planned.post, target, a) for a in accounts)
            entries.append(PreviewEntry(queue, planned, tuple(payloads)))
    return sorted(entries, key=lambda e: (e.planned.slot.fire_at, e.queue.name))


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
        "payloads": [_payload_record(p) for p in entry.payloads],
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
            lines.extend(_payload_lines(rendered))
        lines.append("")
    return "\n".join(lines)


def _payload_lines(rendered: Rendered) -> list[str]:
    extras = []
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
