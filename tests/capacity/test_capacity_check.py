"""The capacity check and the cost gate, end to end through the real service and SDK adapters
against the emulator; and the check itself on hand-made windows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from emulator.traffic import Scenario
from shared.rollout import analysis
from shared.rollout.analysis import DeploymentMetrics, Verdict, WindowMetrics
from shared.rollout.capacity import check_capacity
from shared.rollout.machine import CommandKind
from shared.rollout.model import EndpointRef, InstanceSpan, ModelRef, Rollout, RolloutPhase, WorkspaceRef
from shared.rollout.policy import RolloutPolicy
from tests.capacity.test_rollout_sizing import _watch
from tests.capacity.world import CAPACITY, SIZED, sized_world

P = RolloutPhase
# Green's model needs twice blue's CPU per request: at blue's load per instance it runs at ~58%
# where blue runs at ~34% (under the 90% ceiling, so only the capacity check can see it).
HUNGRY = Scenario(capacity_rpm_per_instance=100.0, cpu_percent=10.0, cpu_per_100rpm=80.0)
# 1.3x blue's CPU: within a generous capacity margin, but green would need 13 instances, not 10.
HEAVIER = Scenario(capacity_rpm_per_instance=100.0, cpu_percent=13.0, cpu_per_100rpm=52.0)


def test_the_capacity_check_catches_a_green_that_needs_more_capacity_before_it_gets_all_users():
    env = sized_world(green=HUNGRY, **CAPACITY)
    service = env.service()
    env.register(service)
    seen = _watch(env, service, 150, until={P.ROLLED_BACK, P.SUCCEEDED, P.PAUSED})
    stored = env.only()
    assert stored.rollout.phase == P.ROLLED_BACK, stored.rollout.last_reason
    assert "capacity: green CPU" in stored.rollout.last_reason
    assert all(s.green_share < 100 for s in seen)  # caught before it served everyone
    failing = [r for d in env.store.decisions(stored.rollout.id) for r in d.evidence if r.check == "capacity"]
    fail = next(r for r in failing if r.verdict == Verdict.FAIL)
    assert fail.evidence["green_rpm_per_instance"] is not None
    assert fail.evidence["blue_rpm_per_instance"] is not None
    assert float(fail.evidence["lower"]) > float(fail.evidence["leave_alone"])  # type: ignore[arg-type]


def test_a_healthy_green_passes_the_capacity_check():
    env = sized_world(green=SIZED, **CAPACITY)
    service = env.service()
    env.register(service)
    _watch(env, service, 150, until={P.ROLLED_BACK, P.SUCCEEDED, P.PAUSED})
    stored = env.only()
    assert stored.rollout.phase == P.SUCCEEDED, stored.rollout.last_reason
    verdicts = {r.verdict for d in env.store.decisions(stored.rollout.id) for r in d.evidence if r.check == "capacity"}
    assert Verdict.PASS in verdicts


def _gated(action: str):
    policy = {
        "capacity": {"check": {"max_increase": 1.0}},  # the check lets 1.3x pass ...
        "cost": {"max_increase": 0.1, "action": action},  # ... the gate does not let +30% cost pass
        # long enough a mirror (green and blue at a like load per instance) to prove the 1.3x
        "mirror": {"percent": 20, "min_duration": "10m", "min_requests": 100, "max_duration": "20m"},
    }
    env = sized_world(green=HEAVIER, **policy)
    service = env.service()
    env.register(service)
    seen = _watch(env, service, 150, until={P.AWAITING_APPROVAL, P.ROLLED_BACK, P.SUCCEEDED, P.PAUSED})
    return env, service, seen


def test_the_cost_gate_asks_for_approval_with_the_figures_before_full_traffic():
    env, service, seen = _gated("approval")
    stored = env.only()
    assert stored.rollout.phase == P.AWAITING_APPROVAL, stored.rollout.last_reason
    assert stored.rollout.gate_to == P.BAKING
    assert "cost gate: green projected at" in stored.rollout.last_reason
    assert all(s.green_share <= 50 for s in seen)
    last = env.store.decisions(stored.rollout.id)[-1]
    cost = next(r for r in last.evidence if r.check == "cost")
    assert cost.verdict == Verdict.FAIL
    assert cost.evidence["green_instances"] > cost.evidence["blue_instances"] == 10  # type: ignore[operator]
    assert cost.evidence["green_monthly"] > cost.evidence["blue_monthly"] * 1.1  # type: ignore[operator]
    assert "ApprovalRequested" in {e.type for e in env.events.events}
    service.command(stored.rollout.id, CommandKind.APPROVE, actor="alice", reason="worth it")
    _watch(env, service, 60, until={P.SUCCEEDED, P.ROLLED_BACK})
    assert env.phase() == P.SUCCEEDED


def test_the_cost_gate_can_refuse():
    env, _, seen = _gated("refuse")
    stored = env.only()
    assert stored.rollout.phase in (P.ROLLED_BACK, P.ROLLING_BACK), stored.rollout.last_reason
    assert "cost gate" in stored.rollout.rollback_reason
    assert all(s.green_share <= 50 for s in seen)


# -- the check on hand-made windows ---------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rollout(green_n: int, blue_n: int, phase: RolloutPhase = P.MIRRORING) -> Rollout:
    desired = {"live": {"blue": 100}, "mirror": {"green": 20}}
    if phase == P.CANARY:
        desired = {"live": {"blue": 90, "green": 10}}
    return Rollout(
        id="r1",
        endpoint=EndpointRef(
            workspace=WorkspaceRef(subscription_id="s", resource_group="g", workspace="w"), name="ep1"
        ),
        model=ModelRef(name="m", version="2"),
        blue="blue",
        green="green",
        phase=phase,
        step=0 if phase == P.CANARY else -1,
        created_at=T0,
        updated_at=T0,
        stage_started_at=T0,
        desired=desired,
        ledger=(
            InstanceSpan(deployment="green", instance_type="x", instances=green_n, since=T0),
            InstanceSpan(deployment="blue", instance_type="x", instances=blue_n, since=T0),
        ),
    )


def _window(green_cpu: list[float], blue_cpu: list[float], green_rpm: int, blue_rpm: int) -> WindowMetrics:
    n = len(green_cpu)

    def dep(cpu: list[float], rpm: int) -> DeploymentMetrics:
        from shared.rollout.analysis import MinuteSample

        return DeploymentMetrics(
            requests=rpm * n,
            errors=0,
            minutes=tuple(MinuteSample(at=T0 + timedelta(minutes=i), requests=rpm) for i in range(n)),
            cpu_percent=tuple(cpu),
        )

    return WindowMetrics(
        start=T0, end=T0 + timedelta(minutes=n), green=dep(green_cpu, green_rpm), blue=dep(blue_cpu, blue_rpm)
    )


POLICY = RolloutPolicy.model_validate({"capacity": {}})


def test_check_three_ways():
    same = [34.0, 35.0, 33.0, 36.0, 34.0, 35.0, 33.0, 34.0, 35.0, 34.0]
    double = [v * 1.8 for v in same]
    ok = check_capacity(POLICY, _window(same, same, 120, 600), _rollout(2, 10))
    bad = check_capacity(POLICY, _window(double, same, 120, 600), _rollout(2, 10))
    few = check_capacity(POLICY, _window(same[:2], same[:2], 120, 600), _rollout(2, 10))
    assert ok is not None
    assert bad is not None
    assert few is not None
    assert ok.verdict == Verdict.PASS
    assert bad.verdict == Verdict.FAIL
    assert few.verdict == Verdict.NO_DATA
    assert not bad.required  # a veto: it can fail a stage, never hold one


def test_check_skips_when_green_carries_more_per_instance_than_blue():
    same = [34.0] * 10
    heavy = check_capacity(POLICY, _window([60.0] * 10, same, 600, 600), _rollout(5, 10))  # 120 vs 60 per instance
    assert heavy is not None
    assert heavy.verdict == Verdict.NO_DATA
    assert "more than blue's" in heavy.summary
    assert check_capacity(RolloutPolicy(), _window(same, same, 120, 600), _rollout(2, 10)) is None


def test_an_unproven_cpu_ratio_holds_a_canary_step_where_blue_serves_users_at_a_like_load():
    same = [34.0, 35.0, 33.0, 36.0, 34.0, 35.0, 33.0, 34.0, 35.0, 34.0]
    more = [v * 1.18 for v in same]  # neither proven within the margin nor proven above it
    canary = _rollout(1, 10, P.CANARY)
    unproven = check_capacity(POLICY, _window(more, same, 54, 540), canary)  # 54 req/min per instance each
    assert unproven is not None
    assert unproven.verdict == Verdict.INCONCLUSIVE, unproven.summary
    assert unproven.required
    assert analysis.overall([unproven]) == Verdict.INCONCLUSIVE  # the step is held, not passed
    proven = check_capacity(POLICY, _window(same, same, 54, 540), canary)
    assert proven is not None
    assert proven.verdict == Verdict.PASS
    assert proven.required
    # green on 1 instance carrying 3x blue's load per instance: not applicable, said so, never held
    unlike = check_capacity(POLICY, _window(more, same, 150, 450), canary)
    assert unlike is not None
    assert unlike.verdict == Verdict.NO_DATA
    assert not unlike.required
    assert unlike.summary.startswith("not applicable: ")
