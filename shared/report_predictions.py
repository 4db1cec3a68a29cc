"""The prediction comparison in the report: the confusion matrix of blue's and green's labels and
the two score distributions, drawn from the evidence of the decision that judged them (the
rollback, or else the last decision with that evidence). Plain HTML and SVG attributes: the page's
content security policy allows no inline styles and no scripts."""

from __future__ import annotations

import html
from collections.abc import Sequence

from shared.ports import DecisionRecord
from shared.report_charts import format_tick, nice_ticks
from shared.rollout.analysis import CheckResult

BLUE, GREEN = "#2563eb", "#16a34a"


def _deciding(decisions: Sequence[DecisionRecord], check: str) -> CheckResult | None:
    found = [(d, e) for d in decisions for e in d.evidence if e.check == check and e.evidence]
    if not found:
        return None
    failed = [e for _, e in found if e.verdict == "Fail"]
    return failed[0] if failed else found[-1][1]


def confusion_table(e: CheckResult) -> str:
    cells: dict[tuple[str, str], int] = {}
    for part in str(e.evidence.get("confusion") or "").split("; "):
        if "→" not in part or " " not in part:
            continue
        pair, _, n = part.rpartition(" ")
        blue, _, green = pair.partition("→")
        if n.isdigit():
            cells[(blue, green)] = int(n)
    if not cells:
        return ""
    rows = sorted({b for b, _ in cells})
    cols = sorted({g for _, g in cells} | set(rows))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        f"<tr><th>{html.escape(b)}</th>"
        + "".join(
            f"<td>{'<b>' if b != g and cells.get((b, g)) else ''}{cells.get((b, g), 0)}"
            f"{'</b>' if b != g and cells.get((b, g)) else ''}</td>"
            for g in cols
        )
        + "</tr>"
        for b in rows
    )
    return (
        "<figure><figcaption>Blue's label (rows) against green's (columns) on the same inputs; "
        f"disagreements in bold ({html.escape(str(e.verdict))})</figcaption>"
        f"<table class='summary'><thead><tr><th>blue \\ green</th>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</figure>"
    )


def histogram_svg(e: CheckResult) -> str:
    try:
        blue = [int(x) for x in str(e.evidence.get("blue_histogram") or "").split(",") if x]
        green = [int(x) for x in str(e.evidence.get("green_histogram") or "").split(",") if x]
    except ValueError:
        return ""
    if not blue or len(blue) != len(green) or not sum(blue) or not sum(green):
        return ""
    width, height, pad, left = 720, 180, 24, 48
    shares = [(100 * b / sum(blue), 100 * g / sum(green)) for b, g in zip(blue, green, strict=True)]
    top, ticks = nice_ticks(max(max(s) for s in shares), 4)
    tick_step = ticks[1] - ticks[0] if len(ticks) > 1 else top
    axis = "".join(
        f'<text class="ytick" x="{left - 6}" y="{height - pad - (height - 2 * pad) * v / top + 4:.1f}" '
        f'text-anchor="end">{format_tick(v, tick_step, "%")}</text>'
        for v in ticks
    )
    step = (width - left - pad) / len(shares)
    bars = [axis]
    for i, (b, g) in enumerate(shares):
        x = left + i * step
        for j, (share, color) in enumerate(((b, BLUE), (g, GREEN))):
            h = (height - 2 * pad) * share / top
            bars.append(
                f'<rect x="{x + j * step / 2:.1f}" y="{height - pad - h:.1f}" width="{step / 2 - 1:.1f}" '
                f'height="{h:.1f}" fill="{color}"/>'
            )
    caption = (
        f"Score distributions on the same inputs, share of each side's scores per bin, blue and green "
        f"({html.escape(str(e.evidence.get('bins', '')))}): "
        + (f"KS {e.evidence.get('ks')}, PSI {e.evidence.get('psi')} " if "ks" in e.evidence else "")
        + f"({html.escape(e.check)}: {html.escape(str(e.verdict))})"
    )
    return (
        f'<figure><figcaption>{caption} <span class="key"><i class="sw-blue"></i>blue</span>'
        f'<span class="key"><i class="sw-green"></i>green</span></figcaption>'
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="score histograms">{"".join(bars)}'
        f'<line x1="{left}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#9ca3af"/>'
        "</svg></figure>"
    )


def prediction_figures(decisions: Sequence[DecisionRecord]) -> str:
    """Nothing for a rollout without a prediction comparison."""
    out = ""
    labels = _deciding(decisions, "predictions")
    if labels is not None:
        out += confusion_table(labels)
    scores = _deciding(decisions, "score_distribution") or _deciding(decisions, "score_shift")
    if scores is not None:
        out += histogram_svg(scores)
    return out
