"""Races: a timer tick, an alert and people's commands on several workers at once.

Each worker is its own service instance (as on scale-out) sharing Table state and Azure. Every
port call passes a turnstile, and a seeded scheduler picks which waiting worker goes next: each
seed is one reproducible interleaving. Rollback must win, no update may be lost, and every command
is either applied (and in the audit trail) or answered as a conflict.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from shared.payloads import AlertNotice
from shared.ports import ConflictError, DecisionRecord
from shared.rollout.machine import CommandKind, CommandRejectedError, plan_start, split_for
from shared.rollout.model import ModelRef, RolloutPhase, TrafficSplit
from tests.reliability.world import GREEN, Fast, fast

P = RolloutPhase
RUNS = 200
PORTS = {
    "store": ("get", "find", "save", "create", "has_marker", "active_for"),
    "gateway": ("read_endpoint", "set_traffic", "tag_deployment", "delete_deployment", "create_deployment"),
    "metrics": ("fetch",),
}


class Turnstile:
    """Lets one worker at a time run from one port call to the next; a seeded RNG picks who."""

    def __init__(self, rng: random.Random, workers: list[str]) -> None:
        self.rng = rng
        self.cv = threading.Condition()
        self.alive = set(workers)
        self.waiting: set[str] = set()
        self.current: str | None = None
        self.steps = 0

    def point(self, worker: str) -> None:
        with self.cv:
            if self.current == worker:
                self.current = None
            self.waiting.add(worker)
            self.cv.notify_all()
            while self.current != worker:
                self.cv.wait()
            self.waiting.discard(worker)

    def done(self, worker: str) -> None:
        with self.cv:
            self.alive.discard(worker)
            if self.current == worker:
                self.current = None
            self.cv.notify_all()

    def schedule(self) -> None:
        with self.cv:
            while self.alive:
                ready = self.cv.wait_for(
                    lambda: not self.alive or (self.current is None and self.waiting >= self.alive), timeout=20
                )
                assert ready, f"deadlock: alive={self.alive} waiting={self.waiting} current={self.current}"
                if not self.alive:
                    break
                self.current = self.rng.choice(sorted(self.waiting))
                self.steps += 1
                self.cv.notify_all()


class Gate:
    def __init__(self, target: Any, kind: str, worker: str, turnstile: Turnstile) -> None:
        self._target, self._kind, self._worker, self._turnstile = target, kind, worker, turnstile

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if attr not in PORTS[self._kind]:
            return value

        def gated(*args: Any, **kwargs: Any) -> Any:
            self._turnstile.point(self._worker)
            return value(*args, **kwargs)

        return gated


def canary_in_flight(seed: int, phase: P = P.CANARY) -> tuple[Fast, str]:
    """A rollout at canary 10% (or baking at 100%) whose window is ready, so the timer wants to
    move it on (to 50%, or to Succeeded)."""
    env = fast(seed=seed)
    emu, policy = env.world.emu, env.policy.policy_for(env.policy.targets[0])
    emu.register_model("fraud-model", "2")
    emu.add_deployment("fraud-scorer", GREEN, ("fraud-model", "2"))
    state = env.service().gateway.read_endpoint(env.world.endpoint)
    start = env.world.clock.now()
    pending = plan_start(
        env.world.endpoint, ModelRef(name="fraud-model", version="2"), state, policy, start, trigger="test"
    ).rollout
    pending = pending.model_copy(update={"green": GREEN})
    step = 0 if phase == P.CANARY else -1
    rollout = pending.model_copy(
        update={
            "phase": phase,
            "step": step,
            "stage_started_at": start,
            "desired": split_for(pending, policy, phase, step),
            "decisions": 1,
        }
    )
    emu.set_traffic_by_hand("fraud-scorer", dict(rollout.desired.live))
    env.world.advance(6)
    record = DecisionRecord(
        seq=1, at=start, actor="test", from_phase=P.PENDING, to_phase=phase, reason="set up", traffic=rollout.desired
    )
    env.store.create(rollout, policy, record)
    return env, rollout.id


def alert(green_id: str) -> AlertNotice:
    return AlertNotice(
        alert_id="a-1",
        rule="p99",
        condition="Fired",
        severity="Sev1",
        target_ids=(green_id,),
        deployments=(),
        fired_at=None,
    )


def one_interleaving(seed: int, phase: P = P.CANARY) -> dict[str, str]:
    """Run the four workers in the order the seed picks; return what each was told."""
    rng = random.Random(seed)
    env, rollout_id = canary_in_flight(seed, phase)
    workers = ["timer", "alert", "promote", "pause"]
    rng.shuffle(workers)
    turnstile = Turnstile(rng, workers)
    results: dict[str, str] = {}
    green_id = env.world.endpoint.deployment_arm_id(GREEN).lower()
    jobs: dict[str, Callable[[Any], Any]] = {
        "timer": lambda s: s.reconcile_all(),
        "alert": lambda s: s.alert(alert(green_id)),
        "promote": lambda s: s.command(rollout_id, CommandKind.PROMOTE, actor="ana", reason="looks good"),
        "pause": lambda s: s.command(rollout_id, CommandKind.PAUSE, actor="bob", reason="wait"),
    }

    def work(name: str) -> None:
        service = env.service(max_concurrency=1)
        for kind in PORTS:
            setattr(service, kind, Gate(getattr(service, kind), kind, name, turnstile))
        try:
            answer = jobs[name](service)
            results[name] = "applied" if name != "alert" else str(answer)
        except (CommandRejectedError, ConflictError) as exc:
            results[name] = f"409 {type(exc).__name__}"
        except BaseException as exc:  # reported by the caller, with the seed
            results[name] = f"CRASH {type(exc).__name__}: {exc}"
        finally:
            turnstile.done(name)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in workers]
    for t in threads:
        t.start()
    turnstile.schedule()
    for t in threads:
        t.join(timeout=20)
    assert not any(r.startswith("CRASH") for r in results.values()), (seed, results)
    # settle: later ticks converge whatever landed last
    plain = env.service()
    for _ in range(3):
        env.world.clock.advance(timedelta(minutes=1))
        plain.reconcile_all()
    stored = env.store.get(rollout_id)
    assert stored is not None
    assert stored.rollout.phase == P.ROLLED_BACK, (seed, workers, results, stored.rollout.last_reason)
    assert env.world.emu.current_split("fraud-scorer") == TrafficSplit(live={"blue": 100}), (seed, results)
    trail = env.store.decisions(rollout_id)
    assert [d.seq for d in trail] == list(range(1, len(trail) + 1)), (seed, "lost or duplicated audit rows")
    actors = {d.actor for d in trail}
    for name, actor in (("promote", "ana"), ("pause", "bob")):
        if results[name] == "applied":
            assert actor in actors, (seed, f"{name} applied but not in the audit trail")
    assert any(d.actor.startswith("alert:") for d in trail), (seed, "the alert's rollback is not recorded")
    assert "rolled back" in results["alert"], (seed, results)
    return results


@pytest.mark.parametrize("batch", range(4))
def test_rollback_wins_and_nothing_is_lost_under_any_interleaving(batch):
    runs = RUNS // 4
    outcomes: dict[str, int] = {}
    for seed in range(batch * runs, (batch + 1) * runs):
        results = one_interleaving(seed)
        key = f"{results['promote']}|{results['pause']}"
        outcomes[key] = outcomes.get(key, 0) + 1
    print(f"\nbatch {batch}: {runs} interleavings; promote|pause outcomes: {outcomes}")


def test_rollback_wins_over_a_promotion_out_of_the_bake():
    """In the bake, a promote ends the rollout Succeeded: an alert that fired meanwhile still wins
    (the old blue is kept for exactly this), whichever lands first."""
    outcomes: dict[str, int] = {}
    for seed in range(RUNS // 4):
        results = one_interleaving(1000 + seed, P.BAKING)
        outcomes[results["promote"]] = outcomes.get(results["promote"], 0) + 1
    print(f"\nbake: {RUNS // 4} interleavings; promote outcomes: {outcomes}")
    assert outcomes.get("applied", 0) > 0  # the promotion did land first in some of them
