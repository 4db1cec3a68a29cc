"""Crash consistency: kill the process after each side effect in turn; the next worker converges.

A clean run records every side effect (the store's creates and decision saves, each Azure action,
each publish). Then, for each of them, the same story is run again and the process dies right
after it (and once before the very first): the event is redelivered or the next timer tick runs on
a fresh worker. Every run must end as the clean run did, with no green left behind, no split more
exposed than the stage in force, and an unbroken audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from emulator.traffic import Scenario
from shared.rollout.model import RolloutPhase, TrafficSplit
from tests.reliability.world import GREEN, Fast, fast

P = RolloutPhase
EFFECTS = {
    "store": ("create", "save"),
    "gateway": ("create_deployment", "set_traffic", "tag_deployment", "delete_deployment"),
    "events": ("publish",),
}


class ProcessDied(BaseException):
    """The worker process died here (BaseException: no `except Exception` in the app catches it)."""


@dataclass
class Plan:
    crash_at: int | None = None
    before: bool = False
    log: list[str] = field(default_factory=list)
    fired: bool = False

    def around(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if name.endswith(".save") and args[2] is None and not kwargs.get("markers"):
            return fn(*args, **kwargs)  # a status-only save (updated_at): not a decision
        if name.endswith(".publish") and not args[0]:
            return fn(*args, **kwargs)
        index = len(self.log)
        self.log.append(name)
        if index == self.crash_at and self.before and not self.fired:
            self.fired = True
            raise ProcessDied(f"before {name}")
        result = fn(*args, **kwargs)
        if index == self.crash_at and not self.before and not self.fired:
            self.fired = True
            raise ProcessDied(f"after {name}")
        return result


class Proxy:
    def __init__(self, target: Any, kind: str, plan: Plan) -> None:
        self._target, self._kind, self._plan = target, kind, plan

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if attr in EFFECTS[self._kind]:
            return lambda *a, **kw: self._plan.around(f"{self._kind}.{attr}", value, *a, **kw)
        return value


def worker(env: Fast, plan: Plan) -> Any:
    service = env.service()
    service.store = Proxy(service.store, "store", plan)  # type: ignore[assignment]
    service.gateway = Proxy(service.gateway, "gateway", plan)  # type: ignore[assignment]
    service.events = Proxy(service.events, "events", plan)  # type: ignore[assignment]
    return service


def run(scenario: Scenario, plan: Plan, max_ticks: int = 90) -> Fast:
    env = fast(rpm=400)
    service = worker(env, plan)
    while True:
        try:
            env.register(service, "2", scenario)
            break
        except ProcessDied:
            service = worker(env, plan)  # Event Grid redelivers to a fresh worker
    for _ in range(max_ticks):
        stored = env.store.find()
        if stored and not stored[0].rollout.due:
            break
        env.world.advance(1)
        try:
            service.reconcile_all()
        except ProcessDied:
            service = worker(env, plan)  # the next tick runs on a fresh worker
    return env


def exposure_ok(env: Fast, slow: bool) -> str | None:
    """Every split the endpoint ever held is a stage split, in order, or all on blue."""
    allowed = [
        TrafficSplit(live={"blue": 100}),
        TrafficSplit(live={"blue": 100}, mirror={GREEN: 20}),
        TrafficSplit(live={"blue": 90, GREEN: 10}),
        TrafficSplit(live={"blue": 50, GREEN: 50}),
        TrafficSplit(live={GREEN: 100}),
    ]
    reached = 0
    for split in env.world.emu.splits("fraud-scorer"):
        if split not in allowed:
            return f"unexpected split {split.describe()}"
        level = allowed.index(split)
        if slow and split.live_of(GREEN):
            return f"users reached the slow green: {split.describe()}"
        if level > reached + 1:
            return f"skipped a stage: {split.describe()}"
        reached = max(reached, level) if level else reached
    return None


def check(env: Fast, clean_phases: list[P], expected: P, slow: bool) -> None:
    stored = env.only()
    assert stored.rollout.phase == expected, stored.rollout.last_reason
    assert not stored.rollout.due, f"stuck with pending cleanup: {stored.rollout.cleanup}"
    gone = GREEN if expected != P.SUCCEEDED else "blue"
    assert ("fraud-scorer", gone.lower()) not in env.world.emu.deployments, f"{gone} left behind"
    assert (problem := exposure_ok(env, slow)) is None, problem
    trail = env.store.decisions(stored.rollout.id)
    assert [d.seq for d in trail] == list(range(1, len(trail) + 1)), "a gap in the audit trail"
    phases = [p for i, p in enumerate(d.to_phase for d in trail) if i == 0 or p != trail[i - 1].to_phase]
    assert [p for p in phases if p in clean_phases] == clean_phases, f"{phases} vs {clean_phases}"


@pytest.mark.parametrize(
    ("scenario", "expected", "slow"),
    [(Scenario(), P.SUCCEEDED, False), (Scenario(latency_ms=200), P.ROLLED_BACK, True)],
    ids=["healthy", "slow"],
)
def test_a_crash_after_any_side_effect_converges(scenario, expected, slow):
    clean = Plan()
    env = run(scenario, clean)
    trail = env.store.decisions(env.only().rollout.id)
    clean_phases = [p for i, p in enumerate(d.to_phase for d in trail) if i == 0 or p != trail[i - 1].to_phase]
    check(env, clean_phases, expected, slow)
    points = len(clean.log)
    assert points >= 10, clean.log
    survived = 0
    for index in range(points):
        plan = Plan(crash_at=index)
        check(run(scenario, plan), clean_phases, expected, slow)
        assert plan.fired
        survived += 1
    before_first = Plan(crash_at=0, before=True)
    check(run(scenario, before_first), clean_phases, expected, slow)
    print(f"\n{scenario!r}: {points + 1} crash points injected, {survived + 1} converged")
