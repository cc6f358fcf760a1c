"""`new-queue NAME`: a commented queue file to start from.

`check` refuses it until its placeholder post (`PLACEHOLDER`) is rewritten, so it is never published.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.campaign.model import Config
from bot.campaign.posts import PLACEHOLDER

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

TEMPLATE = """\
# Queue {name}: one post per slot, in the order below. Check it with `python -m bot check`
# and see what goes out when with `python -m bot preview --queue {name}`.
schedule:
  cron: "0 12 * * 1-5"          # crontab fields, local time: noon, Monday to Friday
  # every: 4h                   # ... or every 4 hours from `start`
  # at: [2026-12-10T12:00]      # ... or at these times only (give exactly one of the three)
  timezone: {timezone}
  jitter: 5m                    # up to 5 minutes later, so posts do not look automated
  quiet_hours: "22:00-07:00"    # no posts at night
# start: 2026-12-01             # first day (default: now)
# expires: 2027-01-31           # last day (the end of that day)
order: sequential               # or shuffle
when_exhausted: stop            # or repeat (X then gets the first round only)
# platforms: [x, bluesky, mastodon]   # default: every enabled platform
posts:
  - id: first-post              # a word; keep it when you edit the text
    text: >-
      {placeholder} The campaign hashtag is added at the end when the text
      lacks it.
  # - id: second-post
  #   text: "Another post."
  #   x: "A shorter text for X."
  #   images: [{{path: images/banner.jpg, alt: "What the image shows"}}]  # JPEG for Instagram
"""


def new_queue(config: Config, name: str) -> tuple[Path | None, str]:
    """Write content/NAME.yaml; (the file, '') or (None, why not)."""
    name = name.removesuffix(".yaml")  # `new-queue daily.yaml`: the file's name, meant as NAME
    if not _NAME.fullmatch(name):
        return None, f"{name!r} is not a queue name: letters, digits, '.', '_' or '-', such as daily-asks"
    path = config.content_dir / f"{name}.yaml"
    if path.exists():
        return None, f"{path} already exists: pick another name or edit that file"
    config.content_dir.mkdir(parents=True, exist_ok=True)
    text = TEMPLATE.format(name=name, timezone=config.timezone, placeholder=PLACEHOLDER)
    path.write_text(text, encoding="utf-8")
    return path, ""
