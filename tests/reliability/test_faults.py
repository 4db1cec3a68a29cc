"""Azure faults, drift and deadlines: each ends in a documented safe state, with a clear reason, an
event for operators and a log line. The table below is the one in docs/RELIABILITY.md."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from emulator.azure import Fault
from shared.rollout.machine import max_green_live
from shared.rollout.model import RolloutPhase, TrafficSplit
from tests.reliability.world import GREEN, Fast, fast

P = RolloutPhase


@dataclass(frozen=True)
class Case:
    name: str
    inject_in: P | None  # inject when the rollout reaches this phase (None: before it starts)
    inject: Callable[[Fast], None]
    ends_in: P
    reason: str
    event: str
    users_safe: bool = True  # afterwards, all users are on blue or nothing changed by us
    policy: dict | None = None
    rpm: float = 600.0


def _metrics_down(env: Fast) -> None:
    env.world.emu.faults.append(Fault("metrics", status=503, times=10_000))


CASES = [
    Case(
        "provisioning fails (quota)",
        None,
        lambda e: e.world.emu.provisioning_outcomes.update({GREEN: "Failed"}),
        P.FAILED,
        "provisioning ended Failed",
        "Failed",
    ),
    Case(
        "provisioning is cancelled",
        None,
        lambda e: e.world.emu.provisioning_outcomes.update({GREEN: "Canceled"}),
        P.FAILED,
        "provisioning ended Canceled",
        "Failed",
    ),
    Case(
        "provisioning never finishes",
        None,
        lambda e: e.world.emu.hung_provisioning.add(GREEN),
        P.FAILED,
        "was not ready within 15m",
        "Failed",
    ),
    Case(
        "provisioning reports a state we do not know",
        None,
        lambda e: e.world.emu.provisioning_outcomes.update({GREEN: "Migrating"}),
        P.FAILED,
        "was not ready within 15m (state Migrating)",
        "Failed",
    ),
    Case("metrics unavailable in canary", P.CANARY, _metrics_down, P.PAUSED, "5 provider errors in a row", "Paused"),
    Case(
        "metrics arrive too late",
        None,
        lambda e: setattr(e.world.emu, "metrics_lag", timedelta(hours=2)),
        P.PAUSED,
        "reached no verdict within 20m",
        "Paused",
    ),
    Case("no traffic at all", None, lambda e: None, P.PAUSED, "reached no verdict within 20m", "Paused", rpm=0),
    Case(
        "blue deleted mid-canary",
        P.CANARY,
        lambda e: e.world.emu.delete_behind_our_back("fraud-scorer", "blue"),
        P.PAUSED,
        "blue blue no longer exists; a person must decide",
        "Paused",
        users_safe=False,
    ),
    Case(
        "green deleted mid-canary",
        P.CANARY,
        lambda e: e.world.emu.delete_behind_our_back("fraud-scorer", GREEN),
        P.ROLLED_BACK,
        f"green {GREEN} is gone",
        "RolledBack",
    ),
    Case(
        "endpoint deleted",
        P.MIRRORING,
        lambda e: e.world.emu.delete_behind_our_back("fraud-scorer"),
        P.FAILED,
        "endpoint fraud-scorer no longer exists",
        "Failed",
        users_safe=False,
    ),
    Case(
        "a person changes the split",
        P.CANARY,
        lambda e: e.world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 70, GREEN: 30}),
        P.PAUSED,
        "traffic was changed outside Safe Rollout",
        "DriftDetected",
        users_safe=False,
    ),
    Case(
        "nobody approves",
        None,
        lambda e: None,
        P.ROLLED_BACK,
        "no approval within 30m",
        "RolledBack",
        policy={
            "steps": [
                {"percent": 10, "min_duration": "3m", "min_requests": 50},
                {"percent": 50, "approval": True, "min_duration": "3m"},
            ],
            "approval_timeout": "30m",
        },
    ),
    Case(
        "429 with Retry-After on every traffic change",
        None,
        lambda e: e.world.emu.faults.append(Fault("endpoint.put", status=429, times=3, retry_after=20)),
        P.SUCCEEDED,
        "bake at 100% passed",
        "Succeeded",
    ),
    Case(
        "bursts of 5xx on deployment creation",
        None,
        lambda e: e.world.emu.faults.append(Fault("deployment.put", status=500, times=8)),
        P.SUCCEEDED,
        "bake at 100% passed",
        "Succeeded",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_fault_ends_in_a_safe_state_with_a_reason_an_event_and_a_log(case, caplog):
    caplog.set_level(logging.INFO, logger="safe_rollout")
    env = fast(rpm=case.rpm, **(case.policy or {}))
    service = env.service()
    if case.inject_in is None:
        case.inject(env)
    outcome = env.register(service)
    assert outcome.status == "started", outcome
    injected = case.inject_in is None
    for _ in range(150):
        stored = env.only()
        # Injected once the stage's split is in place (Azure applied it and we saw it).
        if not injected and stored.rollout.phase == case.inject_in and stored.rollout.traffic_confirmed:
            case.inject(env)
            injected = True
        if stored.rollout.phase == case.ends_in and injected:
            break
        if stored.rollout.phase.terminal:
            break
        env.world.advance(1)
        service.reconcile_all()
    stored = env.only()
    assert stored.rollout.phase == case.ends_in, stored.rollout.last_reason
    trail = env.store.decisions(stored.rollout.id)
    assert any(case.reason in d.reason for d in trail), [d.reason for d in trail][-4:]
    assert case.event in {e.type for e in env.events.events}
    assert case.reason in caplog.text  # operators see it in the Functions logs too
    if case.users_safe and case.ends_in in (P.ROLLED_BACK, P.FAILED):
        assert env.split() == TrafficSplit(live={"blue": 100})
    if case.users_safe and case.ends_in == P.PAUSED:  # a pause holds, never exposes more than its stage
        assert env.split().live_of(GREEN) <= max_green_live(stored.rollout, stored.policy)
    # a paused or finished rollout never touches traffic again on its own
    before = env.world.emu.splits("fraud-scorer")
    for _ in range(5):
        env.world.advance(1)
        service.reconcile_all()
    assert env.world.emu.splits("fraud-scorer") == before
