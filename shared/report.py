"""A self-contained HTML report of rollouts: traffic split over time, blue vs green latency and
error rate, every decision marked on the timeline with its reason and evidence.

Pure rendering from data (stored decisions and a per-minute metrics timeline); inline SVG, no
scripts and no external assets, so the file opens anywhere and can be attached to a ticket.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.ports import DecisionRecord, StoredRollout, Timeline

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 920, 190, 56, 16, 14, 26
BLUE, GREEN, MIRROR, FAIL, PASS, NOTE = "#2563eb", "#16a34a", "#a3e635", "#dc2626", "#16a34a", "#6b7280"


@dataclass(frozen=True)
class ReportItem:
    stored: StoredRollout
    decisions: Sequence[DecisionRecord]
    timeline: Timeline | None


def _x(t: datetime, t0: datetime, t1: datetime) -> float:
    span = max((t1 - t0).total_seconds(), 60.0)
    return PAD_L + (W - PAD_L - PAD_R) * (t - t0).total_seconds() / span


def _y(v: float, vmax: float) -> float:
    return PAD_T + (H - PAD_T - PAD_B) * (1 - (v / vmax if vmax > 0 else 0))


def _polyline(
    points: Sequence[tuple[datetime, float | None]],
    t0: datetime,
    t1: datetime,
    vmax: float,
    color: str,
    *,
    step: bool = False,
    dash: str = "",
) -> str:
    """One line per run of known values: empty minutes leave a gap instead of a fake zero."""
    runs: list[list[str]] = [[]]
    prev_y: float | None = None
    for t, v in points:
        if v is None:
            runs.append([])
            prev_y = None
            continue
        x, y = _x(t, t0, t1), _y(v, vmax)
        if step and prev_y is not None:
            runs[-1].append(f"{x:.1f},{prev_y:.1f}")
        runs[-1].append(f"{x:.1f},{y:.1f}")
        prev_y = y
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return "".join(
        f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash_attr} points="{" ".join(r)}"/>'
        for r in runs
        if len(r) > 1
    )


def _axes(t0: datetime, t1: datetime, vmax: float, unit: str) -> str:
    parts = [f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#9ca3af"/>']
    for frac in (0, 0.5, 1):
        y = _y(vmax * frac, vmax)
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{vmax * frac:.3g}{unit}</text>')
    minutes = max(1, int((t1 - t0).total_seconds() // 60))
    every = max(5, (minutes // 8 // 5) * 5)
    for m in range(0, minutes + 1, every):
        t = t0.fromtimestamp(t0.timestamp() + m * 60, t0.tzinfo)
        x = _x(t, t0, t1)
        parts.append(f'<text x="{x:.1f}" y="{H - 8}" text-anchor="middle">{t:%H:%M}</text>')
    return "".join(parts)


def _markers(decisions: Sequence[DecisionRecord], t0: datetime, t1: datetime) -> str:
    out = []
    for d in decisions:
        if d.from_phase == d.to_phase and not d.actions:
            continue
        failed = any(e.verdict == "Fail" for e in d.evidence) or d.to_phase in ("RollingBack", "RolledBack")
        color = FAIL if failed else (PASS if d.actions else NOTE)
        x = _x(d.at, t0, t1)
        evidence = "; ".join(f"{e.check}: {e.verdict} - {e.summary}" for e in d.evidence)
        title = html.escape(
            f"{d.at:%H:%M} {d.from_phase} -> {d.to_phase}: {d.reason}" + (f" | {evidence}" if evidence else "")
        )
        out.append(
            f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}" stroke="{color}" '
            f'stroke-width="1.5" stroke-dasharray="3,3"><title>{title}</title></line>'
        )
    return "".join(out)


def _chart(title: str, lines: str, axes: str, markers: str, legend: Sequence[tuple[str, str]]) -> str:
    keys = "".join(f'<span class="key"><i class="{_SWATCH[c]}"></i>{html.escape(n)}</span>' for n, c in legend)
    return (
        f"<figure><figcaption>{html.escape(title)} {keys}</figcaption>"
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">{axes}{lines}{markers}</svg>'
        "</figure>"
    )


def _traffic_points(item: ReportItem, t1: datetime) -> tuple[list[tuple[datetime, float | None]], ...]:
    green = item.stored.rollout.green
    live: list[tuple[datetime, float | None]] = []
    mirror: list[tuple[datetime, float | None]] = []
    for d in item.decisions:
        live.append((d.at, float(d.traffic.live_of(green))))
        mirror.append((d.at, float(d.traffic.mirror_of(green))))
    if live:
        live.append((t1, live[-1][1]))
        mirror.append((t1, mirror[-1][1]))
    return live, mirror


def _section(item: ReportItem) -> str:
    r = item.stored.rollout
    decisions = list(item.decisions)
    t0 = r.created_at
    t1 = max([r.finished_at or r.updated_at, *(d.at for d in decisions)])
    if item.timeline is not None and item.timeline.minutes:
        t1 = max(t1, item.timeline.minutes[-1])
    live, mirror = _traffic_points(item, t1)
    markers = _markers(decisions, t0, t1)
    charts = [
        _chart(
            "Green's share of traffic (%)",
            _polyline(live, t0, t1, 100, GREEN, step=True)
            + _polyline(mirror, t0, t1, 100, MIRROR, step=True, dash="6,3"),
            _axes(t0, t1, 100, "%"),
            markers,
            [("live", GREEN), ("mirrored", MIRROR)],
        )
    ]
    tl = item.timeline
    if tl is not None and tl.minutes:
        lat = [v for v in (*tl.blue_latency_ms, *tl.green_latency_ms) if v is not None]
        lat_max = max(lat) * 1.1 if lat else 1.0
        charts.append(
            _chart(
                f"Latency P{tl.percentile:g} per minute (ms)",
                _polyline(list(zip(tl.minutes, tl.blue_latency_ms, strict=True)), t0, t1, lat_max, BLUE)
                + _polyline(list(zip(tl.minutes, tl.green_latency_ms, strict=True)), t0, t1, lat_max, GREEN),
                _axes(t0, t1, lat_max, ""),
                markers,
                [("blue", BLUE), ("green", GREEN)],
            )
        )
        err = [v for v in (*tl.blue_error_rate, *tl.green_error_rate) if v is not None]
        err_max = max(max(err) * 110, 1.0) if err else 1.0
        pct = [[None if v is None else v * 100 for v in series] for series in (tl.blue_error_rate, tl.green_error_rate)]
        charts.append(
            _chart(
                "Error rate per minute (%)",
                _polyline(list(zip(tl.minutes, pct[0], strict=True)), t0, t1, err_max, BLUE)
                + _polyline(list(zip(tl.minutes, pct[1], strict=True)), t0, t1, err_max, GREEN),
                _axes(t0, t1, err_max, "%"),
                markers,
                [("blue", BLUE), ("green", GREEN)],
            )
        )
    rows = []
    for d in decisions:
        evidence = "".join(
            f"<li><b class='{html.escape(str(e.verdict))}'>{html.escape(e.check)}: {html.escape(str(e.verdict))}</b> "
            f"{html.escape(e.summary)}"
            + (
                f"<br><small>{html.escape(', '.join(f'{k}={v}' for k, v in e.evidence.items()))}</small>"
                if e.evidence
                else ""
            )
            + "</li>"
            for e in d.evidence
        )
        rows.append(
            f"<tr><td>{d.at:%H:%M}</td><td>{html.escape(str(d.from_phase))} &rarr; {html.escape(str(d.to_phase))}</td>"
            f"<td>{html.escape(d.actor)}</td><td>{html.escape(d.reason)}"
            + (f"<ul>{evidence}</ul>" if evidence else "")
            + f"</td><td>{html.escape(d.traffic.describe())}</td></tr>"
        )
    verdict_class = "ok" if r.phase == "Succeeded" else ("bad" if r.phase in ("RolledBack", "Failed") else "")
    return (
        f"<section><h2>{html.escape(r.model.label)} on {html.escape(r.endpoint.name)} "
        f'<span class="phase {verdict_class}">{html.escape(str(r.phase))}</span></h2>'
        f"<p>blue <b>{html.escape(r.blue or '(none)')}</b>, green <b>{html.escape(r.green)}</b>; "
        f"started {r.created_at:%Y-%m-%d %H:%M} UTC; {html.escape(r.last_reason)}</p>"
        + "".join(charts)
        + "<table><thead><tr><th>time</th><th>phase</th><th>by</th><th>reason and evidence</th><th>traffic</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


# Legend swatches are coloured by class, not by a style attribute, so the page needs no inline styles.
_SWATCH = {BLUE: "sw-blue", GREEN: "sw-green", MIRROR: "sw-mirror"}
STYLE = (
    "".join(f".key i.{name}{{background:{color}}}" for color, name in _SWATCH.items())
    + """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:960px;color:#111827}
h1{font-size:22px}h2{font-size:17px;margin-top:36px;border-top:1px solid #e5e7eb;padding-top:16px}
figure{margin:12px 0}figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:auto;background:#fafafa}
svg text{font-size:11px;fill:#6b7280}.key{font-weight:400;margin-left:12px}.key i{display:inline-block;width:10px;
height:10px;margin-right:4px;border-radius:2px}table{border-collapse:collapse;width:100%;margin-top:8px}
td,th{border-bottom:1px solid #e5e7eb;padding:6px;vertical-align:top;text-align:left}ul{margin:4px 0;padding-left:18px}
.phase{font-size:13px;padding:2px 8px;border-radius:10px;background:#e5e7eb}
.ok{background:#dcfce7}.bad{background:#fee2e2}
b.Fail{color:#dc2626}b.Pass{color:#16a34a}small{color:#6b7280}
"""
)
# The page's only active content is the <style> above, allowed by its hash: no scripts, no inline
# style attributes, nothing loaded from anywhere, no framing.
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def render_report(items: Sequence[ReportItem], title: str = "Safe Rollout report") -> str:
    body = "".join(_section(i) for i in items) or "<p>No rollouts.</p>"
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Dashed lines mark decisions; hover one for its reason and evidence.</p>"
        f"{body}</body></html>"
    )
