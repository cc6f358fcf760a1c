"""The report's charts: matplotlib figures rendered to inline SVG (docs/decisions.md, Operations).

The only module that imports matplotlib, and only `report` imports it: the daemon never pays its
import time or memory. No pyplot (no global figure state, no GUI backend): each chart is a
`Figure` saved as SVG with its text left as text (`svg.fonttype: none`), so the page's own font
draws it, it stays searchable and sharp in print, and no font file is embedded or fetched.
Each returns None when there is nothing to draw: the page then says "nothing yet".
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

from bot.report.figures import OUTCOMES, Account, Figures

NETWORK_COLOURS = {"x": "#1d1d1f", "bluesky": "#1185fe", "mastodon": "#6364ff", "facebook": "#1877f2"}
OTHER_COLOURS = ("#00897b", "#8e24aa", "#f4511e")
OUTCOME_COLOURS = {"sent": "#2e7d32", "retried": "#f9a825", "failed": "#c62828", "waiting": "#90a4ae"}
_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.size": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "legend.frameon": False,
}
_SIZE_ATTRS = re.compile(r'(<svg[^>]*?)\s(?:width|height)="[^"]*"')


def network_colour(platform: str, order: Sequence[str]) -> str:
    if platform in NETWORK_COLOURS:
        return NETWORK_COLOURS[platform]
    return OTHER_COLOURS[order.index(platform) % len(OTHER_COLOURS)]


def _svg(figure: Figure, name: str) -> str:
    """The figure as an inline <svg> that scales to its box (viewBox kept, fixed size dropped)."""
    out = io.StringIO()
    # Ids inside each SVG (clip paths) are salted by chart name: several charts share one page.
    with rc_context({"svg.hashsalt": name}):
        figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg") :]
    for _ in range(2):
        text = _SIZE_ATTRS.sub(r"\1", text, count=1)
    return text.replace("<svg", f'<svg role="img" aria-label="{name}" class="chart"', 1)


def _ticks(axes: Axes, labels: Sequence[str]) -> None:
    """At most six labels under the bars, evenly spread: they must not overlap on a narrow chart."""
    every = max(1, -(-len(labels) // 6))
    positions = list(range(0, len(labels), every))
    axes.set_xticks(positions, [labels[i] for i in positions], rotation=0)
    axes.set_xlim(-0.6, len(labels) - 0.4)


def _stacked(
    axes: Axes, labels: Sequence[str], layers: dict[str, list[int]], colours: dict[str, str]
) -> None:
    bottom = [0] * len(labels)
    for name, values in layers.items():
        if any(values):
            axes.bar(range(len(labels)), values, bottom=bottom, color=colours[name], label=name, width=0.8)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    _ticks(axes, labels)


def timeline_chart(figures: Figures, kind: str, title: str) -> str | None:
    """Bars per step of the period, stacked by network, for one kind (hashtag, reply)."""
    period = figures.period
    buckets = period.buckets()
    platforms = sorted({p for (_, k, p) in figures.timeline if k == kind})
    if not platforms:
        return None
    layers = {p: [figures.timeline[(b, kind, p)] for b in buckets] for p in platforms}
    with rc_context(_STYLE):
        figure = Figure(figsize=(6.4, 2.6))
        axes = figure.add_subplot()
        _stacked(
            axes,
            [period.label(b) for b in buckets],
            layers,
            {p: network_colour(p, platforms) for p in platforms},
        )
        axes.set_title(title, loc="left", pad=18)
        axes.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=len(platforms), fontsize=9)
        return _svg(figure, title)


def outcomes_chart(figures: Figures, accounts: Sequence[Account]) -> str | None:
    """Per account, one row of bars: sent, retried, failed and waiting per step."""
    shown = [a for a in accounts if any(acc == a for (_, acc, _) in figures.outcomes)]
    if not shown:
        return None
    period = figures.period
    buckets = period.buckets()
    labels = [period.label(b) for b in buckets]
    with rc_context(_STYLE):
        figure = Figure(figsize=(6.4, 0.5 + 1.2 * len(shown)))
        grid = figure.subplots(len(shown), 1, sharex=True, squeeze=False, gridspec_kw={"hspace": 0.7})
        for axes, account in zip(grid[:, 0], shown, strict=True):
            layers = {o: [figures.outcomes[(b, account, o)] for b in buckets] for o in OUTCOMES}
            _stacked(axes, labels, layers, OUTCOME_COLOURS)
            axes.set_title(f"{account[0]} / {account[1]}", loc="left", fontsize=9)
        # One legend with every outcome, at the top, even those no account had.
        handles = [Patch(color=OUTCOME_COLOURS[o], label=o) for o in OUTCOMES]
        grid[0, 0].legend(
            handles=handles, loc="lower right", bbox_to_anchor=(1, 1), ncols=len(OUTCOMES), fontsize=9
        )
        return _svg(figure, "Delivery outcomes per account")


def voices_chart(figures: Figures) -> str | None:
    """How many of the most active voices post on each network."""
    per_network: dict[str, int] = {}
    for voice in figures.voices:
        for platform in voice.platforms:
            per_network[platform] = per_network.get(platform, 0) + 1
    if not per_network:
        return None
    platforms = sorted(per_network)
    with rc_context(_STYLE):
        figure = Figure(figsize=(6.4, 0.6 + 0.45 * len(platforms)))
        axes = figure.add_subplot()
        axes.barh(
            platforms,
            [per_network[p] for p in platforms],
            color=[network_colour(p, platforms) for p in platforms],
        )
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.invert_yaxis()
        axes.set_title("Voices per network", loc="left")
        return _svg(figure, "Voices per network")
