"""What `safe-rollout get --watch` draws: one frame from GET /api/rollouts/{id}."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

BAR_WIDTH = 40
TERMINAL = {"Succeeded", "RolledBack", "Failed", "Superseded"}
_SHORT = re.compile(r"^(\d+)\s*([smhd])$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: Any) -> float | None:
    """A policy duration as the API shows it (`10m`, `90s`, `PT10M`), in seconds; None if unreadable."""
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str):
        return None
    if found := _SHORT.match(text.strip()):
        return int(found[1]) * _UNITS[found[2]]
    if (found := _ISO.match(text.strip().upper())) and any(found.groups()):
        d, h, m, s = (int(g or 0) for g in found.groups())
        return float(timedelta(days=d, hours=h, minutes=m, seconds=s).total_seconds())
    return None


def stages(policy: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The stages a rollout goes through, in order, with their policy."""
    out: list[tuple[str, dict[str, Any]]] = []
    if policy.get("mirror"):
        out.append(("Mirroring", policy["mirror"]))
    out.extend(("Canary", step) for step in policy.get("steps") or [])
    if policy.get("bake"):
        out.append(("Baking", policy["bake"]))
    return out


def current_stage(view: dict[str, Any]) -> tuple[int, int, dict[str, Any] | None]:
    """(k, n, the stage's policy): k is 1-based, 0 when the rollout is not in a judged stage."""
    all_stages = stages(view.get("policy") or {})
    phase, stage = view.get("phase"), str(view.get("stage", ""))
    for k, (kind, spec) in enumerate(all_stages, start=1):
        if kind != phase:
            continue
        if kind == "Canary" and not stage.endswith(f" {spec.get('percent')}%"):
            continue
        return k, len(all_stages), spec
    return 0, len(all_stages), None


def bar(percent: int, colour: str) -> Text:
    filled = round(BAR_WIDTH * max(0, min(100, percent)) / 100)
    return Text.assemble(("█" * filled, colour), ("░" * (BAR_WIDTH - filled), "grey37"), f" {percent:3d}%")


def _progress(done: float, needed: float, unit: str) -> Text:
    share = 1.0 if needed <= 0 else min(1.0, done / needed)
    filled = round(BAR_WIDTH * share)
    colour = "green" if share >= 1 else "yellow"
    return Text.assemble(
        ("█" * filled, colour), ("░" * (BAR_WIDTH - filled), "grey37"), f" {done:.0f}/{needed:.0f} {unit}"
    )


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _samples_in_stage(view: dict[str, Any]) -> int | None:
    """Green's requests in the current stage, from its last judged decision (its evidence)."""
    started = _when(view.get("stageStartedAt"))
    for decision in reversed(view.get("decisions") or []):
        at = _when(decision.get("at"))
        if started is not None and at is not None and at < started:
            return None
        for check in decision.get("evidence") or []:
            evidence = check.get("evidence") or {}
            if "green_requests" in evidence:
                return int(evidence["green_requests"])
    return None


def frame(view: dict[str, Any], *, next_poll: float, frame_no: int) -> RenderableType:
    model = view.get("model") or {}
    label = f"{model.get('name')}:{model.get('version')}"
    if model.get("registry"):
        label += f" (registry {model['registry']})"
    phase = str(view.get("phase"))
    colour = {"Succeeded": "green", "RolledBack": "red", "Failed": "red", "Paused": "yellow"}.get(phase, "cyan")
    k, n, spec = current_stage(view)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("rollout", f"{view.get('id')}  {label} on {view.get('endpoint')}")
    head.add_row("phase", Text.assemble((phase, f"bold {colour}"), f"  {view.get('stage', '')}"))
    head.add_row("stage", f"{k} of {n}" if k else f"- of {n}")
    green = str(view.get("green") or "")
    traffic = view.get("traffic") or {}
    live = int((traffic.get("live") or {}).get(green.lower(), 0))
    mirror = int((traffic.get("mirror") or {}).get(green.lower(), 0))
    head.add_row("green live", bar(live, "green"))
    head.add_row("green mirrored", bar(mirror, "magenta"))
    if not traffic.get("confirmed", True):
        head.add_row("", Text("ordered; waiting for Azure to apply the split", style="yellow"))
    if spec is not None:
        now, started = _when(view.get("now")), _when(view.get("stageStartedAt"))
        needed = seconds(spec.get("min_duration") or spec.get("duration"))
        if now is not None and started is not None and needed:
            elapsed = max(0.0, (now - started).total_seconds())
            head.add_row("minimum time", _progress(elapsed / 60, needed / 60, "min"))
        samples, wanted = _samples_in_stage(view), spec.get("min_requests")
        if wanted:
            head.add_row(
                "sample size",
                _progress(samples, float(wanted), "requests") if samples is not None else Text("no judged window yet"),
            )
    head.add_row("reason", str(view.get("reason", "")))
    cost = view.get("cost") or {}
    if cost.get("summary"):
        head.add_row("cost", str(cost["summary"]))  # shared/rollout/cost.py
    if phase not in TERMINAL:
        head.add_row("next look", "every minute (the timer); a minute is judged once Azure Monitor has settled it")
    checks = Table(title="checks on the last judged window", expand=True, title_justify="left")
    for column in ("check", "verdict", "bounds against the margins"):
        checks.add_column(column, overflow="fold")
    verdict_colour = {"Pass": "green", "Fail": "red", "Inconclusive": "yellow", "NoData": "grey50", "Error": "red"}
    for c in view.get("checks") or []:
        verdict = str(c.get("verdict", ""))
        checks.add_row(str(c.get("check", "")), Text(verdict, style=verdict_colour.get(verdict, "")), c.get("summary"))
    decisions = Table(title="last decisions", expand=True, title_justify="left")
    for column in ("at", "actor", "to", "reason"):
        decisions.add_column(column, overflow="fold")
    for d in (view.get("decisions") or [])[-5:]:
        decisions.add_row(str(d.get("at", ""))[11:16], str(d.get("actor", "")), str(d.get("to", "")), d.get("reason"))
    # In the title, so that a frame taller than the terminal loses old decisions, not this line.
    status = (
        f"{phase}: finished"
        if phase in TERMINAL
        else f"frame {frame_no} · next refresh in {next_poll:.0f}s · Ctrl-C to stop"
    )
    parts: list[RenderableType] = [head, checks, decisions] if view.get("checks") else [head, decisions]
    return Panel(Group(*parts), title=f"safe-rollout · {status}", title_align="left", border_style=colour)
