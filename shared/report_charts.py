"""Axis arithmetic for the report's charts: 1-2-5 ticks that people read at a glance, and minute
ticks on the time axis. Pure functions, no rendering."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

# Minute steps of the time axis: the 1-2-5 idea for clocks (quarter and half hours read naturally).
_MINUTE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)


def nice_step(span: float, max_ticks: int = 5) -> float:
    """The smallest 1, 2 or 5 times a power of ten that covers `span` in at most `max_ticks` steps."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max_ticks
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if mult * power >= raw - 1e-12 * power:
            return mult * power
    return 10 * power  # pragma: no cover - the loop always returns


def nice_ticks(vmax: float, max_ticks: int = 5) -> tuple[float, list[float]]:
    """Ticks from 0 to the first 1-2-5 multiple at or above vmax; returns (axis top, ticks)."""
    vmax = vmax if vmax > 0 and math.isfinite(vmax) else 1.0
    step = nice_step(vmax, max_ticks)
    count = math.ceil(vmax / step - 1e-9)
    ticks = [round(i * step, 12) for i in range(count + 1)]
    return ticks[-1], ticks


def decimals_for(step: float) -> int:
    """How many decimals a tick of this step needs, and no more (0.2 -> 1, 0.05 -> 2, 50 -> 0)."""
    if step <= 0 or step >= 1:
        return 0
    return max(0, -math.floor(math.log10(step) + 1e-9))


def format_tick(value: float, step: float, unit: str = "") -> str:
    return f"{value:.{decimals_for(step)}f}{unit}"


def minute_step(span: timedelta, max_ticks: int = 8) -> int:
    minutes = max(span.total_seconds() / 60, 1.0)
    for step in _MINUTE_STEPS:
        if minutes / step <= max_ticks:
            return step
    return _MINUTE_STEPS[-1]


def time_ticks(t0: datetime, t1: datetime, max_ticks: int = 8) -> list[datetime]:
    """Round clock times (multiples of the step since midnight) between t0 and t1, inclusive."""
    step = minute_step(t1 - t0, max_ticks)
    midnight = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    since = (t0 - midnight).total_seconds() / 60
    first = math.ceil(since / step - 1e-9) * step
    out = []
    t = midnight + timedelta(minutes=first)
    while t <= t1:
        out.append(t)
        t += timedelta(minutes=step)
    return out
