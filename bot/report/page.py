"""The report as one self-contained HTML file: inline CSS and SVG, no script, nothing fetched.

A Content-Security-Policy forbids every fetch (`default-src 'none'`), so a browser opening the file
offline or online loads nothing from anywhere, and anything that tried would show as an error.
Fonts are the reader's own (`system-ui`). The layout is one column that reads on a phone, tables
scroll sideways inside their box, and print CSS drops colours and breaks between sections only.
Every other person's text stays out: handles and counts only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from bot.report.figures import KINDS, Account, Figures
from bot.report.runway import Runway

NOTHING_YET = "Nothing yet"
CSS = """
:root { color-scheme: light; --ink: #1d1d1f; --muted: #5f6368; --line: #dadce0; --accent: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: #fff; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
header h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
header p { margin: 0; color: var(--muted); }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; border-bottom: 2px solid var(--ink); padding-bottom: .2rem; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .5rem;
  margin: 1rem 0; padding: 0; list-style: none; }
.figures li { border: 1px solid var(--line); border-radius: .5rem; padding: .6rem .75rem; }
.figures b { display: block; font-size: 1.8rem; line-height: 1.1; }
.figures li.bad b { color: var(--accent); }
.figures span { color: var(--muted); font-size: .9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.when { white-space: nowrap; }
/* Charts keep a readable size: on a phone they scroll sideways in their box. */
svg.chart { display: block; width: 100%; min-width: 30rem; max-width: 46rem; height: auto; margin: .75rem 0; }
svg.chart text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.empty { color: var(--muted); border: 1px dashed var(--line); border-radius: .5rem; padding: 1rem;
  text-align: center; }
.bad { color: var(--accent); }
a { color: #0b57d0; overflow-wrap: anywhere; }
td a { display: inline-block; margin-right: .6rem; white-space: nowrap; }
.meta { color: var(--muted); font-size: .88rem; }
footer { margin: 2rem 0 1rem; color: var(--muted); font-size: .85rem; }
@media (max-width: 40rem) {
  body { font-size: 15px; } main { padding: .75rem; } .figures b { font-size: 1.4rem; }
}
@media print {
  @page { margin: 14mm; }
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  a { color: inherit; text-decoration: none; }
  .figures li { border-color: #999; }
  .scroll { overflow: visible; }
  h2 { break-after: avoid; }
  tr, svg.chart { break-inside: avoid; }
}
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _nothing(what: str) -> str:
    return f'<p class="empty">{NOTHING_YET}: {_e(what)}</p>'


def _chart(svg: str | None, what: str) -> str:
    return f'<div class="scroll">{svg}</div>' if svg is not None else _nothing(what)


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """Cells are HTML already (escaped by the caller); columns in `numeric` align right."""
    cls = [' class="n"' if i in numeric else "" for i in range(len(head))]
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f"<th{cls[i]}>{_e(h)}</th>" for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td{cls[i]}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment is not None else "–"


def _headline(figures: Figures) -> str:
    sent, failed = sum(figures.sent.values()), sum(figures.failed.values())
    cards = [
        ("sent", sent, "posts sent", False),
        ("failed", failed, "failures", failed > 0),
        ("reply", figures.total("reply"), "replies", False),
        ("mention", figures.total("mention"), "mentions", False),
        ("hashtag", figures.total("hashtag"), "hashtag posts by others", False),
        ("reposts", sum(figures.reposts.values()), "reposts of allies", False),
    ]
    items = "".join(
        f'<li{" class=bad" if bad else ""} data-figure="{key}"><b>{n}</b><span>{_e(label)}</span></li>'
        for key, n, label, bad in cards
    )
    return f'<ul class="figures">{items}</ul>'


def _per_account(figures: Figures, accounts: Sequence[Account]) -> str:
    rows = []
    for account in accounts:
        who = _e("/".join(account))
        sent, failed = figures.sent[account], figures.failed[account]
        rows.append(
            [
                _e(account[0]),
                _e(account[1]),
                f'<span data-figure="sent:{who}">{sent}</span>',
                f'<span data-figure="failed:{who}"{" class=bad" if failed else ""}>{failed}</span>',
            ]
        )
    return _table(["network", "account", "posts sent", "failures"], rows, numeric=(2, 3))


def _by_network(figures: Figures) -> str:
    platforms = sorted({p for (_, p) in figures.seen} | set(figures.reposts))
    if not platforms:
        return ""
    rows = [[_e(p), *(str(figures.seen[(k, p)]) for k in KINDS), str(figures.reposts[p])] for p in platforms]
    return _table(
        ["network", "replies", "mentions", "hashtag posts", "reposts of allies"], rows, (1, 2, 3, 4)
    )


def _ranked(figures: Figures, zone: ZoneInfo, top: int = 15) -> str:
    if not figures.ranked:
        return _nothing("none of our posts went out in this period")
    rows = []
    for post in figures.ranked[:top]:
        links = " ".join(
            f'<a href="{_e(link.url)}">{_e(link.platform)}/{_e(link.account)}</a>' for link in post.links
        )
        text = post.text if len(post.text) <= 140 else post.text[:139] + "…"
        sent = f'<span class="when">sent {_e(_when(post.first_sent, zone))}</span>'
        rows.append(
            [
                f'<span data-figure="replies:{_e(post.queue)}/{_e(post.post_id)}">{post.replies}</span>',
                f"<b>{_e(post.queue)}/{_e(post.post_id)}</b><br>{_e(text) + '<br>' if text else ''}"
                f'<span class="meta">{sent} · {links}</span>',
            ]
        )
    return _table(["replies", "post, when it went out and its copies"], rows, numeric=(0,))


def _health(figures: Figures, zone: ZoneInfo) -> str:
    if not figures.health:
        return _nothing("no failure and no change of account health")
    rows = [
        [_e(_when(e.at, zone)), _e(f"{e.platform}/{e.account}"), f'<span class="bad">{_e(e.what)}</span>']
        if not e.what.startswith("healthy")
        else [_e(_when(e.at, zone)), _e(f"{e.platform}/{e.account}"), _e(e.what)]
        for e in figures.health[-30:]
    ]
    return _table(["when", "account", "event"], rows)


def _runways(runways: Sequence[Runway], zone: ZoneInfo) -> str:
    if not runways:
        return _nothing("no queue in content/")
    rows = []
    for r in runways:
        if r.last_at is not None:
            then = "starts its next cycle" if r.state == "repeats" else "runs dry"
            outlook = f"last post {_e(_when(r.last_at, zone))}, then {then}"
        else:
            outlook = {"repeats": "starts its next cycle at its next slot"}.get(r.state, r.state)
        rows.append(
            [
                _e(r.queue),
                str(r.cycle),
                f'<span data-figure="left:{_e(r.queue)}">{r.left}</span>',
                _e(outlook),
            ]
        )
    return _table(["queue", "cycle", "posts left", "outlook"], rows, numeric=(1, 2))


def _voices(figures: Figures) -> str:
    if not figures.voices:
        return _nothing("nobody else has used the hashtag in this period")
    rows = [[_e(v.author), _e(", ".join(v.platforms)), str(v.posts)] for v in figures.voices]
    return _table(["handle", "networks", "hashtag posts"], rows, numeric=(2,))


def render_page(
    campaign: str,
    figures: Figures,
    runways: Sequence[Runway],
    accounts: Sequence[Account],
    charts: Mapping[str, str | None],
    generated_at: datetime,
) -> str:
    zone = figures.period.zone
    step = figures.period.step
    per = "day" if step.days else "hour" if step.seconds >= 3600 else f"{int(step.total_seconds())} s"
    if 60 <= step.total_seconds() < 3600:
        per = f"{int(step.total_seconds() // 60)} min"
    intro = (
        _nothing("no post, reply or hashtag post in this period. Run the bot, then make the report again.")
        if figures.empty
        else ""
    )
    voices = _chart(charts["voices"], "") if charts.get("voices") else ""
    body = f"""
<header><h1>{_e(campaign)}: campaign report</h1>
<p>{_e(figures.period.describe())}</p></header>
{intro}
<section><h2>Headline</h2>{_headline(figures)}
{_per_account(figures, accounts)}{_by_network(figures)}</section>
<section><h2>Hashtag posts and replies, per {_e(per)}</h2>
{_chart(charts.get("hashtag"), "no hashtag post by others")}
{_chart(charts.get("reply"), "no reply to our posts")}</section>
<section><h2>Our posts by the replies they drew</h2>{_ranked(figures, zone)}</section>
<section><h2>Delivery per account, per {_e(per)}</h2>
{_chart(charts.get("outcomes"), "no delivery in this period")}
<h3>Account health and failures</h3>{_health(figures, zone)}</section>
<section><h2>Queues: runway</h2>{_runways(runways, zone)}</section>
<section><h2>Voices using the hashtag</h2>{voices}{_voices(figures)}</section>
<footer>Made by campaign-bot on {_e(_when(generated_at, zone))} ({_e(zone.key)}). Times are the campaign's;
replies, mentions and hashtag posts count when the bot saw them. Handles only; other people's posts
are kept no longer than the campaign's retention.</footer>"""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(campaign)}: campaign report</title>\n"
        f"<style>{CSS}</style></head>\n"
        f"<body><main>{body}\n</main></body></html>\n"
    )
