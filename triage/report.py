"""The routing story as files: one self-contained HTML page (plotly.js inline: it opens offline and prints to
PDF), a PDF printed from that page by a headless Chromium where one is installed, and JSON (every figure).
The figures are triage.story's, the same the Routing page shows."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import plotly.graph_objects as go

from triage import story as story_mod
from triage.errors import InputError

FORMATS = (".html", ".pdf", ".json")
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_COLOURS = {story_mod.IN: "#7f7f7f", story_mod.LOCAL: "#2ca02c", story_mod.HAIKU: "#1f77b4",
            story_mod.SONNET: "#9467bd", story_mod.SETTLED: "#17becf", story_mod.REVIEW: "#ff7f0e",
            story_mod.UNSETTLED: "#bcbd22", story_mod.CONFIRMED: "#2ca02c", story_mod.CORRECTED: "#d62728",
            story_mod.WAITING: "#c7c7c7"}


# the Sankey's columns and where each sits (fraction of the width): the last one short of the right edge, so
# every label is drawn to the right of its node, in the gap before the next column, never over another node
_COLUMN = {story_mod.IN: 0, story_mod.LOCAL: 1, story_mod.HAIKU: 1, story_mod.SONNET: 2, story_mod.SETTLED: 3,
           story_mod.REVIEW: 3, story_mod.UNSETTLED: 3, story_mod.CONFIRMED: 4, story_mod.CORRECTED: 4,
           story_mod.WAITING: 4}
_X = (0.001, 0.18, 0.37, 0.56, 0.78)
# short names on the chart (the hover and the tables give the full ones): each fits its gap at 1024 px
_SHORT = {story_mod.SETTLED: "Auto-settled", story_mod.CONFIRMED: "Operator confirmed",
          story_mod.CORRECTED: "Operator corrected"}
_PAD = 18  # px between the nodes of a column
_HEIGHT = 460


def sankey(p: story_mod.Period) -> go.Figure:
    """The flow of the period's tickets through the tiers to their outcomes (link width: tickets). Nodes are placed
    (x, y) column by column, each column stacked from the top in the order of story.NODES, labels on two lines
    (name; tickets and spend) so they stay legible at 1024 px."""
    used = [n for n in story_mod.NODES if any(n in (f.source, f.target) for f in p.flows)]
    index = {n: i for i, n in enumerate(used)}
    size = {n: max(p.into(n) if n != story_mod.IN else p.tickets,
                   sum(f.tickets for f in p.flows if f.source == n)) for n in used}
    labels, hover = [], []
    for n in used:
        t = p.tier(n)
        extra = f" · {story_mod.usd(t.spend)}" if t is not None else ""
        labels.append(f"{_SHORT.get(n, n)}<br>{size[n]:,}{extra}")
        hover.append(f"{n}: {size[n]:,} tickets{extra}")
    xs, ys = _positions(used, size)
    links: list[tuple[int, int, float, str]] = [(index[f.source], index[f.target], f.tickets, _link_text(f, p))
                                                for f in p.flows]
    colours = [_COLOURS[n] for n in used]
    if used:  # plotly draws the last column's labels to the left of its nodes, over the links: an empty node of
        # no height one column further keeps them on the right, where the chart leaves them room
        last = max(used, key=lambda n: _COLUMN[n])
        labels, hover, colours = [*labels, ""], [*hover, ""], [*colours, "rgba(0,0,0,0)"]
        xs, ys = [*xs, 0.999], [*ys, ys[index[last]]]
        links.append((index[last], len(used), 1e-9, ""))  # plotly drops a node whose links are all 0
    fig = go.Figure(go.Sankey(
        arrangement="fixed",
        node={"label": labels, "pad": _PAD, "thickness": 14, "color": colours, "x": xs, "y": ys,
              "line": {"width": 0},  # a number: Streamlit's plotly.js takes no list here (labels go astray)
              "customdata": hover, "hovertemplate": "%{customdata}<extra></extra>"},
        link={"source": [a for a, _, _, _ in links], "target": [b for _, b, _, _ in links],
              "value": [v for _, _, v, _ in links], "customdata": [c for _, _, _, c in links],
              "color": ["rgba(0,0,0,0.2)" if c else "rgba(0,0,0,0)" for _, _, _, c in links],
              "hovertemplate": "%{customdata}<extra></extra>"}))
    fig.update_layout(title=f"Tickets from {p.start} to {p.end}: where they went", height=_HEIGHT,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, font={"size": 12})
    return fig


def _positions(used: list[str], size: dict[str, int]) -> tuple[list[float], list[float]]:
    """Each node's centre: its column's x, and y stacked from the top at the scale plotly draws (the fullest
    column fills the height, less the padding between its nodes)."""
    columns: dict[int, list[str]] = {}
    for n in used:
        columns.setdefault(_COLUMN[n], []).append(n)
    plot = _HEIGHT - 50  # less the margins
    scale = min((1 - _PAD * (len(c) - 1) / plot) / (sum(size[n] for n in c) or 1) for c in columns.values())
    ys: dict[str, float] = {}
    for c, col in columns.items():
        heights = [size[n] * scale for n in col]
        free = max(0.0, 1 - sum(heights) - _PAD / plot * (len(col) - 1))
        # spread a column over the height (its last node at the bottom, by what flows into it from below);
        # Sonnet alone at the bottom, under the Haiku tickets it takes
        gap = _PAD / plot + (free / (len(col) - 1) if len(col) > 1 else 0)
        top = free if len(col) == 1 and c == _COLUMN[story_mod.SONNET] else 0.0
        for n, h in zip(col, heights, strict=True):
            ys[n] = min(max(top + h / 2, 0.001), 0.999)
            top += h + gap
    return [_X[_COLUMN[n]] for n in used], [ys[n] for n in used]


def _link_text(f: story_mod.Flow, p: story_mod.Period) -> str:
    share = f" ({f.tickets / p.tickets:.0%} of tickets)" if p.tickets else ""
    demo = f", {f.demo_tickets:,} simulated (demo)" if f.demo_tickets else ""
    labels = (f"; labels: {f.from_review:,} from review, {f.from_import:,} imported"
              if f.target in (story_mod.CONFIRMED, story_mod.CORRECTED) else "")
    return f"{f.source} → {f.target}: {f.tickets:,} tickets{share}{demo}{labels}"


def path_rows(p: story_mod.Period) -> list[dict[str, str]]:
    """Each tier's line of the table under the Sankey: tickets, spend, and how often it was right."""
    rows = []
    for t in p.tiers:
        right = (f"{t.right_share:.0%} of {t.checked:,} labelled" if t.right_share is not None
                 else "no operator label yet")
        to_date = (f"{t.accuracy_to_date:.0%} of {t.labelled_to_date:,}" if t.accuracy_to_date is not None
                   else "—")
        rows.append({"Tier": t.name, "Tickets answered": f"{t.answered:,}", "Tickets decided": f"{t.decided:,}",
                     "Spend": story_mod.usd(t.spend, fine=True) + (
                         f" ({story_mod.usd(t.demo_spend, fine=True)} simulated)" if t.demo_spend else ""),
                     "Per 1,000 tickets": story_mod.usd(t.per_1000, fine=True),
                     "Right (this period's labels)": right, "Right (all labels to date)": to_date})
    return rows


def flow_rows(p: story_mod.Period) -> list[dict[str, str]]:
    return [{"From": f.source, "To": f.target, "Tickets": f"{f.tickets:,}",
             "Simulated (demo)": f"{f.demo_tickets:,}",
             "Labels it rests on": (f"{f.from_review:,} review, {f.from_import:,} imported"
                                    if f.target in (story_mod.CONFIRMED, story_mod.CORRECTED) else "")}
            for f in p.flows]


def _table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(st: story_mod.Story) -> str:
    """One self-contained page: plotly.js inline, no reference to any network address."""
    p = st.current
    chart = sankey(p).to_html(full_html=False, include_plotlyjs=True, config={"displaylogo": False,
                                                                            "displayModeBar": False})
    reviews = [{"Day": d.day, "Reviews": f"{d.reviews:,}", "Tickets": f"{d.tickets:,}",
                "Simulated (demo)": f"{d.demo_reviews:,}", "Hours": f"{d.hours:.1f}"} for d in p.reviews]
    demo = ("<p class='demo'><b>Includes simulated demo data</b> (<code>triage demo</code>): its tickets, calls "
            "and reviews are counted apart above and never toward a budget.</p>" if story_mod.demo_days(p) else "")
    esc = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Triage routing story {p.start} to {p.end}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; font-size: 90%; }}
th, td {{ border: 1px solid #ccc; padding: .25em .6em; text-align: left; }}
.demo {{ background: #fff3cd; padding: .5em; }} .meta {{ color: #555; font-size: 85%; }}
@media print {{ body {{ margin: 0; max-width: none; }} }}
</style></head><body>
<h1>Routing story: {p.start} to {p.end}</h1>
<p class="meta">Generated {esc(st.generated_at.strftime('%Y-%m-%d %H:%M UTC'))} from the database
<code>{esc(st.database)}</code> with the price table <code>{esc(st.price_table)}</code>. Days are UTC.</p>
{demo}
<h2>In short</h2><ul>{''.join(f'<li>{esc(x)}</li>' for x in st.headline)}</ul>
<h2>Against the {(p.end - p.start).days + 1} days before ({st.previous.start} to {st.previous.end})</h2>
<ul>{''.join(f'<li>{esc(x)}</li>' for x in st.comparison)}</ul>
<h2>Where the tickets went</h2>
{chart}
<h2>Each tier</h2>{_table(path_rows(p))}
<h2>Each path</h2>{_table(flow_rows(p))}
<h2>Reviewer time ({st.minutes_per_review:g} minutes a review)</h2>{_table(reviews)}
<p>Total: {p.review_count:,} reviews of {p.reviewed_tickets:,} tickets, about {p.review_hours:,.1f} hours; API
spend {esc(story_mod.usd(p.total, fine=True))} (exact: {esc(str(p.total))} USD).</p>
<h2>What the figures rest on</h2><ul>{''.join(f'<li>{esc(x)}</li>' for x in st.basis)}</ul>
</body></html>
"""


def find_chromium() -> str | None:
    """A headless Chromium to print the page to PDF: TRIAGE_CHROMIUM, else the first on PATH."""
    given = os.environ.get("TRIAGE_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    return next((found for name in CHROMIUMS if (found := shutil.which(name))), None)


class NoRenderer(InputError):
    """No PDF renderer on this machine."""


def write(st: story_mod.Story, out: Path) -> Path:
    """Write the story to `out` (.html, .pdf or .json, by its suffix)."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"the report is written as {', '.join(FORMATS)}; not {out.name!r}")
    if suffix == ".json":
        out.write_text(json.dumps(story_mod.as_json(st), indent=2) + "\n", encoding="utf-8")
    elif suffix == ".html":
        out.write_text(html_page(st), encoding="utf-8")
    else:
        out.write_bytes(pdf(html_page(st)))
    return out


def pdf(page: str) -> bytes:
    """The page printed to PDF by a headless Chromium (NoRenderer when none is installed)."""
    browser = find_chromium()
    if browser is None:
        raise NoRenderer("no PDF renderer here: no Chromium found (set TRIAGE_CHROMIUM to one); write the report "
                         "as .html instead and print it to PDF from a browser")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "story.html", Path(tmp) / "story.pdf"
        src.write_text(page, encoding="utf-8")
        try:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                            f"--user-data-dir={tmp}/profile", "--virtual-time-budget=5000",
                            f"--print-to-pdf={dst}", src.as_uri()],
                           check=True, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            raise NoRenderer(f"the PDF renderer ({browser}) failed: {type(exc).__name__}; write the report as "
                             ".html instead and print it to PDF from a browser") from None
        if not dst.exists() or not dst.read_bytes().startswith(b"%PDF"):
            raise NoRenderer(f"the PDF renderer ({browser}) wrote no PDF; write the report as .html instead")
        return dst.read_bytes()
