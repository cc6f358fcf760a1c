"""`check` on a large queue: 1,000 posts (goal <= 2 s) and 10,000 (goal <= 1.5 s).

Writes a campaign into a temporary folder (config.yaml plus one queue of realistic posts: a
link and the hashtag in each text, every tenth a thread of three, every twentieth with one of
the shipped images) and times `python -m bot check` end to end as a subprocess, best of 3.
Beside it, the floor (`FLOOR`): the imports, libyaml's composing and one URL pass per text.

    python bench/check_scale.py [--sizes 1000,10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from timing import PYTHON, REPO, Timing, best_of, load_average

GOALS = {1000: 2.0, 10000: 1.5}  # queue size -> seconds

CONFIG = """\
campaign: BenchCampaign
timezone: America/New_York
hashtags: ["#NoTechForICE"]
content: content/
database: sqlite:///state/bot.sqlite3
platforms:
  x:
    enabled: true
    tier: basic
    accounts:
      - name: main
        consumer_key: "${X_CONSUMER_KEY}"
        consumer_secret: "${X_CONSUMER_SECRET}"
        access_token: "${X_ACCESS_TOKEN}"
        access_token_secret: "${X_ACCESS_TOKEN_SECRET}"
  bluesky:
    enabled: true
    accounts:
      - name: main
        service: https://bsky.social
        handle: "${BSKY_HANDLE}"
        app_password: "${BSKY_APP_PASSWORD}"
  mastodon:
    enabled: true
    accounts:
      - {name: main, api_base_url: https://mastodon.social, access_token: "${MASTODON_ACCESS_TOKEN}"}
"""

QUEUE_HEAD = """\
schedule:
  cron: "0 9,13,17 * * 1-5"
  timezone: America/New_York
  jitter: 10m
  quiet_hours: "22:00-07:00"
start: 2026-01-01
order: sequential
when_exhausted: repeat
platforms: [x, bluesky, mastodon]
hashtags: ["#NoTechForICE"]
language: en
mastodon: {visibility: public}
posts:
"""

ENV = {
    "X_CONSUMER_KEY": "k",
    "X_CONSUMER_SECRET": "s",
    "X_ACCESS_TOKEN": "t",
    "X_ACCESS_TOKEN_SECRET": "ts",
    "BSKY_HANDLE": "bench.bsky.social",
    "BSKY_APP_PASSWORD": "p",
    "MASTODON_ACCESS_TOKEN": "m",
}

ASKS = [
    "Tech companies are selling ICE the tools it uses to track and detain our neighbors.",
    "Call your representative and ask what they are doing to stop ICE buying surveillance tools.",
    "Work in tech? Ask where your company's products end up, and who they are used against.",
    "Cloud companies choose their customers. Ask them to stop hosting ICE's data.",
    "Students: ask recruiters at the career fair what their software is used for.",
]


# What `check` cannot go below while it keeps each key's line and twitter-text's counts: importing
# the libraries it measures with, composing the file with libyaml, and twitter-text's URL pattern
# once over every text (X's count needs it).
FLOOR = """
import sys, yaml, pydantic, regex, twitter_text
from twitter_text.extract_urls import extract_urls_with_indices
text = open(sys.argv[1], encoding="utf-8").read()
node = yaml.compose(text, Loader=yaml.CSafeLoader)
for line in text.splitlines():
    if line.strip().startswith(("text:", "x:", "- '", '- "')):
        extract_urls_with_indices(line)
"""


def write_campaign(folder: Path, size: int) -> Path:
    """A config and one queue of `size` posts in `folder`; returns the config's path."""
    content = folder / "content"
    (content / "images").mkdir(parents=True)
    images = sorted(p for p in (REPO / "content" / "images").iterdir() if p.suffix in {".png", ".jpg"})
    for image in images:
        shutil.copy(image, content / "images" / image.name)
    lines = [QUEUE_HEAD]
    for n in range(size):
        ask = ASKS[n % len(ASKS)]
        link = f"https://example.org/a/{n}"
        lines.append(f"  - id: post-{n:05d}\n")
        if n % 10 == 9:
            lines.append("    thread:\n")
            lines.append(f'      - "Thread {n}: {ask} #NoTechForICE"\n')
            lines.append(f'      - "Part two of thread {n}: what we ask of them. {link}"\n')
            lines.append(f'      - "Part three: add your name at {link}"\n')
        else:
            lines.append(f'    text: "{ask} Number {n}: {link} #NoTechForICE"\n')
            if n % 7 == 3:
                lines.append(f'    x: "{ask[:120]} {link}"\n')
        if n % 20 == 4:
            image = images[n % len(images)].name
            lines.append(f"    images: [{{path: images/{image}, alt: 'Campaign banner number {n}'}}]\n")
    (content / "bench.yaml").write_text("".join(lines), encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="queue sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    failed = False
    figures: dict[int, Timing] = {}
    print(f"(load average {load_average():.1f} on {os.cpu_count()} cores; best of {args.runs})")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            config = write_campaign(Path(tmp), size)
            figures[size] = timing = best_of(
                args.runs, [PYTHON, "-m", "bot", "--config", str(config), "check"], ENV
            )
            queue = config.parent / "content" / "bench.yaml"
            floor = best_of(args.runs, [PYTHON, "-c", FLOOR, str(queue)])
        figure = f"check {size} posts: {timing.wall:.2f} s ({timing.cpu:.2f} s CPU)"
        figure += f"; floor {floor.wall:.2f} s ({floor.cpu:.2f} s CPU)"
        if size in GOALS:
            verdict = "ok" if timing.wall <= GOALS[size] else "MISSED"
            failed |= verdict != "ok"
            figure += f" (goal <= {GOALS[size]:g} s): {verdict}"
        print(figure)
    if len(figures) > 1:
        small, large = min(figures), max(figures)
        growth = figures[large].cpu / figures[small].cpu
        print(f"check growth {small} -> {large} posts: x{growth:.1f} CPU time for x{large // small} posts")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
