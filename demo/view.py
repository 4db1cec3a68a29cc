"""The demo's terminal view (rich): per rollout its phase, a traffic bar (live and mirrored), blue vs
green on the key metrics, and each decision with its reason. Without a terminal, plain lines."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

BAR = 30


def _bar(live: int, mirror: int) -> Text:
    g = round(BAR * live / 100)
    m = round(BAR * mirror / 100)
    text = Text()
    text.append("█" * g, style="green")
    text.append("░" * m, style="bright_green")
    text.append("·" * max(0, BAR - g - m), style="blue")
    text.append(f" {live:>3}% live" + (f", {mirror}% mirrored" if mirror else ""))
    return text


def _metrics(decisions: Sequence[Any]) -> str:
    for d in reversed(decisions):
        ev = {e.check: e.evidence for e in d.evidence}
        lat, err = ev.get("latency") or {}, ev.get("errors") or {}
        if lat.get("green_ms") is not None:
            blue = f"{lat['blue_ms']:.0f}" if lat.get("blue_ms") is not None else "-"
            rate = err.get("green_rate")
            blue_rate = err.get("blue_rate")
            return (
                f"P90 blue {blue} / green {lat['green_ms']:.0f} ms; errors blue "
                f"{'-' if blue_rate is None else f'{blue_rate:.2%}'} / green {'-' if rate is None else f'{rate:.2%}'}"
            )
    return ""


class LiveView:
    def __init__(self, *, plain: bool) -> None:
        self.plain = plain
        self.console = Console(highlight=False, width=None if not plain else 150)
        self._seen: set[tuple[str, int]] = set()
        self._live: Live | None = None
        self._lines: list[Text] = []

    def say(self, text: str) -> None:
        self.console.print(text)

    @contextmanager
    def running(self, env: Any) -> Iterator[None]:
        env.on_tick = self.update
        if self.plain:
            yield
            self.update(env)
            return
        with Live(console=self.console, refresh_per_second=8, transient=False) as live:
            self._live = live
            yield
            self.update(env)
        self._live = None

    def update(self, env: Any) -> None:
        rows = []
        for stored in env.service.store.find():
            r = stored.rollout
            decisions = env.service.store.decisions(r.id)
            for d in decisions:
                if (r.id, d.seq) in self._seen:
                    continue
                self._seen.add((r.id, d.seq))
                if d.from_phase == d.to_phase and not d.actions and d.actor == "safe-rollout":
                    continue  # holds: shown in the table, not as decisions
                line = Text(f"{d.at:%H:%M} ", style="dim")
                line.append(f"{r.model.label:<15} ", style="bold")
                colour = "red" if "RollingBack" in (d.to_phase,) or "RolledBack" in (d.to_phase,) else "cyan"
                line.append(f"{d.from_phase:>11} → {d.to_phase:<12}", style=colour)
                # Plain lines carry the whole reason (logs, CI); the live view cuts it to fit its pane.
                reason = d.reason if self.plain else d.reason[:110]
                line.append(f" {reason}" + (f"  [{d.actor}]" if d.actor != "safe-rollout" else ""))
                if self.plain:
                    self.console.print(line, soft_wrap=True)  # one decision, one line, however long
                else:
                    self._lines = [*self._lines[-14:], line]
            rows.append((r, decisions))
        if self._live is None:
            return
        done = len(env.outcomes)
        progress = f"version {min(done + 1, env.chapters)} of {env.chapters}" if env.chapters else ""
        table = Table(
            title=f"Safe Rollout · fraud-scorer · simulated {env.clock.now():%H:%M} · {progress}", expand=True
        )
        for col in ("model", "phase", "green's traffic", "blue vs green", "latest reason"):
            table.add_column(col, overflow="fold")
        for r, decisions in rows:
            style = {"Succeeded": "green", "RolledBack": "red"}.get(str(r.phase), "yellow")
            table.add_row(
                r.model.label,
                Text(str(r.phase), style=style),
                _bar(r.desired.live_of(r.green), r.desired.mirror_of(r.green)),
                _metrics(decisions),
                r.last_reason[:80],
            )
        self._live.update(Group(table, Text("decisions", style="bold"), *self._lines))

    def summary(self, outcomes: Sequence[Any], report: Path, seconds: float) -> None:
        table = Table(title="Outcomes")
        for col in ("version", "story", "phase", "simulated min", "as expected", "why"):
            table.add_column(col, overflow="fold")
        for o in outcomes:
            table.add_row(
                o.chapter.version,
                o.chapter.title,
                str(o.phase),
                str(o.minutes),
                Text("yes" if o.ok else "NO", style="green" if o.ok else "bold red"),
                o.why,
            )
        self.console.print(table)
        for o in outcomes:  # what each rollout cost beyond production (shared/rollout/cost.py)
            if o.cost:
                self.console.print(f"cost of v{o.chapter.version}: {o.cost}")
        size = report.stat().st_size if report.exists() else 0
        self.console.print(f"report: {report} ({size / 1024:.0f} KiB); took {seconds:.1f}s of wall time")
