"""A self-contained HTML report of rollouts: a summary of each, traffic split over time, blue vs
green latency and error rate with the policy's limits and each stage's analysis window, and every
decision numbered on the timeline, listed in a legend and told in words.

Pure rendering from data (stored decisions, the policy snapshot and a per-minute metrics
timeline); inline SVG, no scripts and no external assets, so the file opens anywhere, prints, and
can be attached to a ticket.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.ports import DecisionRecord, StoredRollout, Timeline
from shared.report_charts import format_tick, nice_ticks, time_ticks
from shared.report_predictions import prediction_figures
from shared.rollout.analysis import CheckResult
from shared.rollout.cost import summary as cost_summary
from shared.rollout.model import EXPOSED_PHASES, RolloutPhase

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 920, 210, 56, 16, 30, 26
BLUE, GREEN, MIRROR, FAIL, PASS, NOTE = "#2563eb", "#16a34a", "#a3e635", "#dc2626", "#16a34a", "#6b7280"
LIMIT, WINDOW = "#b91c1c", "#fde68a"
P = RolloutPhase


@dataclass(frozen=True)
class ReportItem:
    stored: StoredRollout
    decisions: Sequence[DecisionRecord]
    timeline: Timeline | None


# -- numbers for people ------------------------------------------------------------------------


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def pct(rate: float) -> str:
    """An error rate (a fraction) as people read it: 6.9%, 0.25%, 0%."""
    p = rate * 100
    if p == 0:
        return "0%"
    if abs(p) >= 10:
        return f"{p:.0f}%"
    if abs(p) >= 1:
        return f"{p:.1f}%"
    return f"{p:.2f}%" if abs(p) >= 0.01 else "<0.01%"


def points(rate: float) -> str:
    """A difference of error rates in percentage points: 0.005 -> '0.5 points'."""
    text = f"{rate * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text} points"


def p_text(p_value: float) -> str:
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.2g}"


def count(n: float) -> str:
    return f"{round(n):,}"


def duration_text(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


_VERDICT_WORDS = {"Pass": "within", "Fail": "exceeds", "Inconclusive": "higher, not yet significant"}


_BOUND_WORDS = {"Pass": "proven within", "Fail": "proven worse than", "Inconclusive": "not yet proven within"}


def _signed_points(rate: float) -> str:
    return ("+" if rate >= 0 else "-") + points(abs(rate))


def _span(lo: str | None, hi: str | None) -> str:
    """Confidence bounds in words; an open bound (too few samples to close it) is said, not drawn as ∞."""
    if lo is not None and hi is not None:
        return f"bounds {lo} .. {hi}"
    if lo is not None:
        return f"lower bound {lo}, no upper bound yet"
    if hi is not None:
        return f"upper bound {hi}, no lower bound yet"
    return "too few samples for bounds yet"


def _bounds_words(e: CheckResult) -> str | None:
    """A check judged by confidence bounds: the estimate, the bounds and the margin they decided on."""
    ev = e.evidence
    lower, upper = _num(ev.get("lower")), _num(ev.get("upper"))
    leave, catch, est = _num(ev.get("leave_alone")), _num(ev.get("max_increase")), _num(ev.get("increase"))
    if leave is None or catch is None or est is None:
        return None
    verdict = str(e.verdict)
    margin = leave if verdict == "Fail" else catch
    words = _BOUND_WORDS.get(verdict, verdict.lower())
    if e.check == "errors":
        green, blue = _num(ev.get("green_rate")), _num(ev.get("blue_rate"))
        head = f"errors: green {pct(green or 0)} vs blue {pct(blue or 0)} ({_signed_points(est)})"
        span = _span(*(None if b is None else _signed_points(b) for b in (lower, upper)))
        return f"{head}, {span}: {words} {_signed_points(margin)}"
    q = _num(ev.get("percentile"))
    green, blue = _num(ev.get("green_ms")), _num(ev.get("blue_ms"))
    name = "latency" if e.check == "latency" else "slow tail"
    span = _span(*(None if b is None else f"{1 + b:.2f}x" for b in (lower, upper)))
    if green is not None and blue is not None and q is not None:
        head = f"{name}: green P{q:g} {green:.0f} ms vs blue {blue:.0f} ms ({1 + est:.2f}x)"
    else:
        head = f"{name}: green {1 + est:.2f}x blue's per-minute P{q or 0:g}"
    return f"{head}, {span}: {words} {1 + margin:.2f}x"


def evidence_words(e: CheckResult) -> str:
    """One check's evidence as a sentence, numbers rounded for people (raw values kept elsewhere)."""
    ev = e.evidence
    verdict = str(e.verdict)
    bounded = _bounds_words(e) if e.check in ("errors", "latency", "tail") else None
    if bounded is not None:
        return bounded
    p_value = _num(ev.get("p_value"))
    tail = f" ({p_text(p_value)})" if p_value is not None else ""
    if e.check == "errors":
        green, blue, limit = _num(ev.get("green_rate")), _num(ev.get("blue_rate")), _num(ev.get("max_increase"))
        ceiling = _num(ev.get("ceiling"))
        if green is not None and blue is not None and limit is not None:
            words = _VERDICT_WORDS.get(verdict, verdict.lower())
            return f"errors: green {pct(green)} vs blue {pct(blue)}: {words} +{points(limit)}{tail}"
        if green is not None and ceiling is not None and verdict == "Fail":
            return f"errors: green {pct(green)} is above the {pct(ceiling)} ceiling{tail}"
        if green is not None:
            return f"errors: green {pct(green)} (no baseline to compare)"
    if e.check in ("latency", "tail"):
        q = _num(ev.get("percentile"))
        green, blue, limit = _num(ev.get("green_ms")), _num(ev.get("blue_ms")), _num(ev.get("max_increase"))
        name = "latency" if e.check == "latency" else "slow tail"
        if q is not None and green is not None and blue is not None and limit is not None:
            words = _VERDICT_WORDS.get(verdict, verdict.lower())
            if e.check == "tail" and verdict == "Pass" and p_value is not None:
                words = "higher but not significant vs"
                return f"{name}: green P{q:g} {green:.0f} ms, blue {blue:.0f} ms: {words} +{limit:.0%}{tail}"
            return f"{name}: green P{q:g} {green:.0f} ms vs blue {blue:.0f} ms: {words} +{limit:.0%}{tail}"
        ceiling = _num(ev.get("ceiling_ms"))
        if q is not None and green is not None and ceiling is not None and verdict == "Fail":
            return f"{name}: green P{q:g} {green:.0f} ms is above the {ceiling:.0f} ms ceiling"
        if q is not None and green is not None:
            return f"{name}: green P{q:g} {green:.0f} ms (no baseline to compare)"
    return f"{e.check}: {_plain(e.summary)}"


def _plain(text: str) -> str:
    """A sentence with scientific-notation numbers (p<1e-12) told as people read them."""

    def fix_p(m: re.Match[str]) -> str:
        return p_text(float(m.group(1)))

    def fix(m: re.Match[str]) -> str:
        value = float(m.group(0))
        return "<0.001" if 0 < value < 0.001 else f"{value:.2g}"

    text = re.sub(r"\bp[=<](\d+(?:\.\d+)?(?:e[-+]?\d+)?)", fix_p, text)
    return re.sub(r"\d+(?:\.\d+)?e[-+]?\d+", fix, text)


def _raw(e: CheckResult) -> str:
    return ", ".join(f"{k}={v}" for k, v in e.evidence.items())


# -- stages, windows, limits -------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    live: int  # green's live share
    entered: datetime
    window: tuple[datetime, datetime] | None  # the last judged analysis window
    verdict: DecisionRecord | None  # the decision that judged it (with evidence)
    green_requests: int  # requests green served in that window


def _stage_name(phase: RolloutPhase, live: int, mirror: int) -> str:
    if phase == P.MIRRORING:
        return f"mirror {mirror}%"
    if phase == P.CANARY:
        return f"canary {live}%"
    return "bake"


def stages_of(item: ReportItem) -> list[Stage]:
    """The exposed stages the rollout went through, each with the window its verdict judged."""
    green = item.stored.rollout.green
    lag = item.stored.policy.analysis.ingestion_lag
    out: list[Stage] = []
    key: tuple[RolloutPhase, int, int] | None = None
    entered: datetime | None = None
    clock: datetime | None = None
    judged: DecisionRecord | None = None

    def close() -> None:
        if key is None or entered is None:
            return
        window = None
        requests = 0
        if judged is not None:
            start = clock or entered
            window = (start, max(start, judged.at - lag))
            errors = next((e for e in judged.evidence if e.check == "errors"), None)
            requests = int(_num(errors.evidence.get("green_requests")) or 0) if errors else 0
        out.append(Stage(_stage_name(*key), key[1], entered, window, judged, requests))

    for d in item.decisions:
        exposed = d.to_phase in EXPOSED_PHASES
        new_key = (d.to_phase, d.traffic.live_of(green), d.traffic.mirror_of(green)) if exposed else None
        if d.evidence and key is not None and any(e.check != "metrics" for e in d.evidence):
            judged = d  # judges the stage it was in (it may also leave it)
        if new_key != key:
            close()
            key, entered, clock, judged = new_key, d.at, None, None
        elif key is not None and d.from_phase == d.to_phase and not d.actions and d.reason.startswith("observing"):
            clock = clock or d.at  # the stage's clock starts when Azure was seen holding the split
    close()
    return out


def _limits(stage: Stage) -> dict[str, float]:
    """The policy's limits as they applied to a stage's verdict (relative to blue in that window)."""
    out: dict[str, float] = {}
    if stage.verdict is None:
        return out
    for e in stage.verdict.evidence:
        ev = e.evidence
        if e.check == "errors":
            blue, inc = _num(ev.get("blue_rate")), _num(ev.get("max_increase"))
            if blue is not None and inc is not None:
                out["errors"] = (blue + inc) * 100
        if e.check == "latency":
            blue, inc = _num(ev.get("blue_ms")), _num(ev.get("max_increase"))
            if blue is not None and inc is not None:
                out["latency"] = blue * (1 + inc)
    return out


# -- drawing -----------------------------------------------------------------------------------


def _x(t: datetime, t0: datetime, t1: datetime) -> float:
    span = max((t1 - t0).total_seconds(), 60.0)
    frac = min(max((t - t0).total_seconds() / span, 0.0), 1.0)
    return PAD_L + (W - PAD_L - PAD_R) * frac


def _y(v: float, vmax: float) -> float:
    return PAD_T + (H - PAD_T - PAD_B) * (1 - (min(v, vmax) / vmax if vmax > 0 else 0))


def _polyline(
    points_: Sequence[tuple[datetime, float | None]],
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
    for t, v in points_:
        if v is None or t > t1:
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


def _axes(t0: datetime, t1: datetime, ticks: Sequence[float], unit: str) -> str:
    vmax = ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else vmax
    parts = [f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#9ca3af"/>']
    for v in ticks:
        y = _y(v, vmax)
        parts.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(
            f'<text class="ytick" x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{format_tick(v, step, unit)}</text>'
        )
    for t in time_ticks(t0, t1):
        x = _x(t, t0, t1)
        parts.append(f'<text class="xtick" x="{x:.1f}" y="{H - 8}" text-anchor="middle">{t:%H:%M}</text>')
    return "".join(parts)


def _windows(stages: Sequence[Stage], t0: datetime, t1: datetime, *, labels: bool) -> str:
    out = []
    for s in stages:
        if s.window is None:
            continue
        x0, x1 = _x(s.window[0], t0, t1), _x(s.window[1], t0, t1)
        out.append(
            f'<rect class="window" x="{x0:.1f}" y="{PAD_T}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{H - PAD_T - PAD_B}" fill="{WINDOW}" fill-opacity="0.45">'
            f"<title>{html.escape(s.name)} analysis window {s.window[0]:%H:%M}-{s.window[1]:%H:%M}</title></rect>"
        )
        if labels:
            out.append(
                f'<text class="wlabel" x="{(x0 + x1) / 2:.1f}" y="{PAD_T + 14}" '
                f'text-anchor="middle">{html.escape(s.name)}</text>'
            )
    return "".join(out)


def _limit_lines(stages: Sequence[Stage], which: str, t0: datetime, t1: datetime, vmax: float, unit: str) -> str:
    out = []
    for s in stages:
        value = _limits(s).get(which)
        if value is None or s.window is None:
            continue
        x0, x1 = _x(s.window[0], t0, t1), _x(s.window[1], t0, t1)
        y = _y(value, vmax)
        label = f"{value:.2f}%" if unit == "%" else f"{value:.0f} ms"
        out.append(
            f'<line class="limit" x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{LIMIT}" '
            f'stroke-width="1.5" stroke-dasharray="6,3"><title>{html.escape(s.name)} limit {label}</title></line>'
            f'<text class="llabel" x="{x1 - 2:.1f}" y="{y - 3:.1f}" text-anchor="end">limit {label}</text>'
        )
    return "".join(out)


@dataclass(frozen=True)
class Marker:
    number: int
    decision: DecisionRecord
    color: str
    on_chart: bool


def _marker_list(decisions: Sequence[DecisionRecord], t1: datetime) -> list[Marker]:
    out: list[Marker] = []
    for d in decisions:
        if d.from_phase == d.to_phase and not d.actions:
            continue
        failed = any(e.verdict == "Fail" for e in d.evidence) or d.to_phase in (P.ROLLING_BACK, P.ROLLED_BACK)
        color = FAIL if failed else (PASS if d.actions else NOTE)
        out.append(Marker(len(out) + 1, d, color, d.at <= t1))
    return out


def _markers(markers: Sequence[Marker], t0: datetime, t1: datetime) -> str:
    out = []
    last_x = -100.0
    row = 0
    for m in markers:
        if not m.on_chart:
            continue
        d = m.decision
        x = _x(d.at, t0, t1)
        row = row + 1 if x - last_x < 18 and row < 2 else 0
        last_x = x
        cy = 10  # badges stay in the top band; crowded ones shift sideways, inwards at the right edge
        cx = x + row * 18 if x + row * 18 <= W - 9 else x - row * 18
        title = html.escape(f"{m.number}. {d.at:%H:%M} {d.from_phase} -> {d.to_phase}: {_plain(d.reason)}")
        out.append(
            f'<g class="marker"><title>{title}</title>'
            f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}" stroke="{m.color}" '
            f'stroke-width="1.5" stroke-dasharray="3,3"/>'
            f'<circle cx="{cx:.1f}" cy="{cy + 8}" r="8" fill="{m.color}"/>'
            f'<text class="mlabel" x="{cx:.1f}" y="{cy + 12}" text-anchor="middle">{m.number}</text></g>'
        )
    return "".join(out)


_VERDICT_NAMES = {"NoData": "No data"}
_TALLY_WORDS = {"Pass": "passed", "Fail": "failed", "Inconclusive": "inconclusive", "NoData": "without data yet"}


def _verdict_name(verdict: str) -> str:
    return _VERDICT_NAMES.get(verdict, verdict)


def _evidence_items(checks: Sequence[CheckResult]) -> str:
    return "".join(
        f"<li><b class='{html.escape(str(e.verdict))}'>{html.escape(_verdict_name(str(e.verdict)))}</b> "
        f"{html.escape(evidence_words(e))}</li>"
        for e in checks
    )


def _chart(title: str, body: str, legend: Sequence[tuple[str, str]], note: str = "") -> str:
    keys = "".join(f'<span class="key"><i class="{_SWATCH[c]}"></i>{html.escape(n)}</span>' for n, c in legend)
    extra = f'<span class="key">{html.escape(note)}</span>' if note else ""
    return (
        f"<figure><figcaption>{html.escape(title)} {keys}{extra}</figcaption>"
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">{body}</svg>'
        "</figure>"
    )


def _traffic_points(item: ReportItem, t1: datetime) -> tuple[list[tuple[datetime, float | None]], ...]:
    green = item.stored.rollout.green
    live: list[tuple[datetime, float | None]] = []
    mirror: list[tuple[datetime, float | None]] = []
    for d in item.decisions:
        if d.at > t1:
            break
        live.append((d.at, float(d.traffic.live_of(green))))
        mirror.append((d.at, float(d.traffic.mirror_of(green))))
    if live:
        live.append((t1, live[-1][1]))
        mirror.append((t1, mirror[-1][1]))
    return live, mirror


def _end(item: ReportItem) -> datetime:
    """Where the time axis ends: the last minute with data, or the last decision that changed the
    rollout's course, whichever is later. Cleanup long after the outcome stays off the chart."""
    r = item.stored.rollout
    course = [d.at for d in item.decisions if not d.from_phase.terminal]
    t1 = max([r.created_at + timedelta(minutes=1), *course])
    tl = item.timeline
    if tl is not None:
        series = (tl.blue_latency_ms, tl.green_latency_ms, tl.blue_error_rate, tl.green_error_rate)
        with_data = [m for i, m in enumerate(tl.minutes) if any(s[i] is not None for s in series)]
        if with_data:
            t1 = max(t1, with_data[-1])
    return t1


# -- the summary -------------------------------------------------------------------------------


def _deciding(item: ReportItem) -> DecisionRecord | None:
    for d in item.decisions:
        if d.to_phase in (P.ROLLING_BACK, P.SUCCEEDED, P.ROLLED_BACK, P.FAILED, P.SUPERSEDED):
            return d
    return None


def _cell(text: str) -> str:
    """A summary cell: one line, or a first line and a list (one check of the evidence per line)."""
    first, *rest = text.split("\n")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in rest)
    return html.escape(first) + (f'<ul class="ev">{items}</ul>' if rest else "")


def _summary(item: ReportItem, stages: Sequence[Stage]) -> str:
    r = item.stored.rollout
    end = r.finished_at or r.updated_at
    state = "took" if r.finished_at else "running for"
    deciding = _deciding(item)
    why = _plain((deciding.reason if deciding else r.last_reason).split(":")[0])
    rows = [("Outcome", f"{r.phase}: {why}" if why else str(r.phase))]
    rows.append(("Duration", f"{state} {duration_text(end - r.created_at)} ({r.created_at:%H:%M}-{end:%H:%M} UTC)"))
    live_stages = [s for s in stages if s.live > 0]
    if not live_stages:
        exposed = "none: green never served users live" + (" (it only received mirrored copies)" if stages else "")
    else:
        counted = sum(s.green_requests for s in live_stages)
        reached = ", ".join(s.name for s in live_stages)
        if counted:
            exposed = f"about {count(counted)} requests served by green live in the analysis windows ({reached})"
        else:
            exposed = f"green served users live ({reached}); the request count was not recorded"
    rows.append(("Users exposed to green", exposed))
    if stages:
        rows.append(("Stages", " → ".join(s.name for s in stages)))
    rows.append(("Cost", cost_summary(r, item.stored.policy, end, r.capacity_ratio).describe()))  # rollout/cost.py
    if deciding is not None:
        failed = [e for e in deciding.evidence if e.verdict == "Fail"]
        shown = failed or [e for e in deciding.evidence if e.required and e.check != "metrics"]
        lines = [evidence_words(e) for e in shown] or [_plain(deciding.reason)]
        rows.append(("Deciding evidence", f"at {deciding.at:%H:%M}\n" + "\n".join(lines)))
    cls = "ok" if r.phase == P.SUCCEEDED else ("bad" if r.phase in (P.ROLLED_BACK, P.FAILED) else "")
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
    return f'<table class="summary {cls}">{body}</table>'


# -- a rollout's section -----------------------------------------------------------------------


def _section(item: ReportItem) -> str:
    r = item.stored.rollout
    policy = item.stored.policy
    decisions = list(item.decisions)
    t0 = r.created_at
    t1 = _end(item)
    stages = stages_of(item)
    markers = _marker_list(decisions, t1)
    drawn = _markers(markers, t0, t1)
    live, mirror = _traffic_points(item, t1)
    _, pct_ticks = nice_ticks(100, 4)
    charts = [
        _chart(
            "Green's share of traffic (%)",
            _axes(t0, t1, pct_ticks, "%")
            + _windows(stages, t0, t1, labels=True)
            + _polyline(live, t0, t1, 100, GREEN, step=True)
            + _polyline(mirror, t0, t1, 100, MIRROR, step=True, dash="6,3")
            + drawn,
            [("live", GREEN), ("mirrored", MIRROR), ("analysis window", WINDOW)],
        )
    ]
    tl = item.timeline
    if tl is not None and tl.minutes:
        lat_limits = [v for s in stages if (v := _limits(s).get("latency")) is not None]
        lat = [v for v in (*tl.blue_latency_ms, *tl.green_latency_ms) if v is not None]
        ceiling_ms = policy.latency.ceiling_ms
        top = max([*lat, *lat_limits, 1.0])
        note = ""
        if ceiling_ms is not None and ceiling_ms <= top * 1.5:
            top = max(top, ceiling_ms)
        elif ceiling_ms is not None:
            note = f"ceiling {ceiling_ms:.0f} ms (off the scale)"
        lat_top, lat_ticks = nice_ticks(top)
        ceiling_line = ""
        if ceiling_ms is not None and not note:
            y = _y(ceiling_ms, lat_top)
            ceiling_line = (
                f'<line class="limit" x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="{LIMIT}" '
                f'stroke-width="1"/><text class="llabel" x="{W - PAD_R - 2}" y="{y - 3:.1f}" '
                f'text-anchor="end">ceiling {ceiling_ms:.0f} ms</text>'
            )
        charts.append(
            _chart(
                f"Latency P{tl.percentile:g} per minute (ms)",
                _axes(t0, t1, lat_ticks, "")
                + _windows(stages, t0, t1, labels=False)
                + _polyline(list(zip(tl.minutes, tl.blue_latency_ms, strict=True)), t0, t1, lat_top, BLUE)
                + _polyline(list(zip(tl.minutes, tl.green_latency_ms, strict=True)), t0, t1, lat_top, GREEN)
                + _limit_lines(stages, "latency", t0, t1, lat_top, "ms")
                + ceiling_line
                + drawn,
                [("blue", BLUE), ("green", GREEN), (f"limit: blue +{policy.latency.max_increase:.0%}", LIMIT)],
                note,
            )
        )
        pct_series = [
            [None if v is None else v * 100 for v in series] for series in (tl.blue_error_rate, tl.green_error_rate)
        ]
        err_limits = [v for s in stages if (v := _limits(s).get("errors")) is not None]
        err = [v for v in (*pct_series[0], *pct_series[1]) if v is not None]
        top = max([*err, *err_limits, 0.1])
        note = ""
        ceiling = policy.errors.ceiling
        if ceiling is not None and ceiling * 100 <= top * 1.5:
            top = max(top, ceiling * 100)
        elif ceiling is not None:
            note = f"ceiling {pct(ceiling)} (off the scale)"
        err_top, err_ticks = nice_ticks(top)
        ceiling_line = ""
        if ceiling is not None and not note:
            y = _y(ceiling * 100, err_top)
            ceiling_line = (
                f'<line class="limit" x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="{LIMIT}" '
                f'stroke-width="1"/><text class="llabel" x="{W - PAD_R - 2}" y="{y - 3:.1f}" '
                f'text-anchor="end">ceiling {pct(ceiling)}</text>'
            )
        charts.append(
            _chart(
                "Error rate per minute (%)",
                _axes(t0, t1, err_ticks, "%")
                + _windows(stages, t0, t1, labels=False)
                + _polyline(list(zip(tl.minutes, pct_series[0], strict=True)), t0, t1, err_top, BLUE)
                + _polyline(list(zip(tl.minutes, pct_series[1], strict=True)), t0, t1, err_top, GREEN)
                + _limit_lines(stages, "errors", t0, t1, err_top, "%")
                + ceiling_line
                + drawn,
                [("blue", BLUE), ("green", GREEN), (f"limit: blue +{points(policy.errors.max_increase)}", LIMIT)],
                note,
            )
        )
    legend = "".join(
        f'<li class="{"off" if not m.on_chart else ""}"><b class="badge {_BADGE[m.color]}">{m.number}</b> '
        f"{m.decision.at:%H:%M} {html.escape(str(m.decision.from_phase))} &rarr; "
        f"{html.escape(str(m.decision.to_phase))}: {html.escape(_plain(m.decision.reason))}"
        + ("" if m.on_chart else " <small>(after the chart's end)</small>")
        + "</li>"
        for m in markers
    )
    number = {id(m.decision): m.number for m in markers}
    rows = []
    previous_traffic = ""
    for d in decisions:
        n = number.get(id(d))
        # A row that only holds (no marker: no move, no action) shows the checks that hold it; the rest fold.
        shown = list(d.evidence) if n else [e for e in d.evidence if e.required and e.verdict != "Pass"]
        folded = [e for e in d.evidence if e not in shown]
        evidence = _evidence_items(shown)
        more = ""
        if folded:
            tally = Counter(_TALLY_WORDS.get(str(e.verdict), str(e.verdict)) for e in folded)
            counts = ", ".join(f"{v} {k}" for k, v in tally.items())
            checks = ("other " if shown else "") + ("check" if len(folded) == 1 else "checks")
            more = (
                f'<details class="more"><summary>{len(folded)} {checks}: {html.escape(counts)}</summary>'
                f"<ul>{_evidence_items(folded)}</ul></details>"
            )
        raw = "".join(
            f"<li>{html.escape(e.check)}: {html.escape(e.summary)}"
            + (f"<br><code>{html.escape(_raw(e))}</code>" if e.evidence else "")
            + "</li>"
            for e in d.evidence
        )
        badge = f'<b class="badge {_BADGE[markers[n - 1].color]}">{n}</b> ' if n else ""
        described = d.traffic.describe()
        traffic = (
            "<small>unchanged</small>"
            if described == previous_traffic
            else html.escape(described).replace("; ", "<br>")
        )
        previous_traffic = described
        rows.append(
            f"<tr><td>{badge}{d.at:%H:%M}</td><td>{html.escape(str(d.from_phase))} &rarr; "
            f"{html.escape(str(d.to_phase))}</td><td>{html.escape(d.actor)}</td><td>{html.escape(_plain(d.reason))}"
            + (f"<ul>{evidence}</ul>" if evidence else "")
            + more
            + (f'<details class="raw"><summary>raw evidence</summary><ul>{raw}</ul></details>' if raw else "")
            + f"</td><td>{traffic}</td></tr>"
        )
    verdict_class = "ok" if r.phase == P.SUCCEEDED else ("bad" if r.phase in (P.ROLLED_BACK, P.FAILED) else "")
    return (
        f"<section><h2>{html.escape(r.model.label)} on {html.escape(r.endpoint.name)} "
        f'<span class="phase {verdict_class}">{html.escape(str(r.phase))}</span></h2>'
        f"<p>blue <b>{html.escape(r.blue or '(none)')}</b>, green <b>{html.escape(r.green)}</b>; "
        f"started {r.created_at:%Y-%m-%d %H:%M} UTC</p>"
        + _summary(item, stages)
        + "".join(charts)
        + prediction_figures(decisions)  # blue's and green's answers compared (shared/report_predictions.py)
        + (f'<ol class="legend">{legend}</ol>' if legend else "")
        + "<table class='trail'><thead><tr><th>time</th><th>phase</th><th>by</th><th>reason and evidence</th>"
        "<th>traffic</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


# Legend swatches are coloured by class, not by a style attribute, so the page needs no inline styles.
_SWATCH = {BLUE: "sw-blue", GREEN: "sw-green", MIRROR: "sw-mirror", LIMIT: "sw-limit", WINDOW: "sw-window"}
_BADGE = {FAIL: "b-fail", PASS: "b-pass", NOTE: "b-note"}
STYLE = (
    "".join(f".key i.{name}{{background:{color}}}" for color, name in _SWATCH.items())
    + "".join(f".badge.{name}{{background:{color}}}" for color, name in _BADGE.items())
    + """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:960px;padding:0 16px;
color:#111827}
h1{font-size:22px}h2{font-size:17px;margin-top:36px;border-top:1px solid #e5e7eb;padding-top:16px}
figure{margin:12px 0;break-inside:avoid}figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;height:auto;background:#fafafa}
svg text{font-size:12px;fill:#6b7280}svg text.mlabel{fill:#fff;font-weight:700;font-size:11px}
svg text.llabel{fill:#b91c1c}svg text.wlabel{fill:#92400e}
svg text.llabel,svg text.wlabel{paint-order:stroke;stroke:#fafafa;stroke-width:3px;stroke-linejoin:round}
.key{font-weight:400;margin-left:12px;white-space:nowrap}.key i{display:inline-block;width:10px;
height:10px;margin-right:4px;border-radius:2px}table{border-collapse:collapse;width:100%;margin-top:8px}
td,th{border-bottom:1px solid #e5e7eb;padding:6px;vertical-align:top;text-align:left}ul{margin:4px 0;padding-left:18px}
table.summary{border:1px solid #e5e7eb}table.summary th{width:170px;background:#f9fafb}
table.summary.ok{border-left:4px solid #16a34a}table.summary.bad{border-left:4px solid #dc2626}
.phase{font-size:13px;padding:2px 8px;border-radius:10px;background:#e5e7eb}
.ok .phase,.phase.ok{background:#dcfce7}.phase.bad{background:#fee2e2}
.badge{display:inline-block;min-width:18px;height:18px;line-height:18px;border-radius:9px;color:#fff;
text-align:center;font-size:11px;margin-right:2px}
ol.legend{list-style:none;padding-left:0;margin:4px 0 12px}ol.legend li{margin:2px 0}ol.legend li.off{color:#6b7280}
b.Fail{color:#dc2626}b.Pass{color:#16a34a}small{color:#6b7280}
details.raw{margin-top:4px;color:#6b7280;font-size:12px}details.raw code{word-break:break-all}
table.summary ul.ev{margin:2px 0 0}
table.trail{font-size:13px}table.trail td:first-child{white-space:nowrap}table.trail td:nth-child(4){width:50%}
table.trail td:nth-child(3){color:#6b7280;font-size:12px;min-width:84px}
table.trail td:last-child{min-width:130px;font-size:12px}
details.more{margin-top:2px;color:#4b5563}details.more summary{color:#6b7280;font-size:12px}
@media (max-width:860px){svg text{font-size:14px}table.summary th{width:110px}table.trail td{padding:5px 4px}}
@media print{details.raw{display:none}body{max-width:none}tr{break-inside:avoid}}
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
        "<p>Numbered markers are the rollout's decisions, listed under each rollout's charts; shaded bands "
        "are the analysis windows each stage was judged on; dashed red lines are the policy's limits there.</p>"
        f"{body}</body></html>"
    )
