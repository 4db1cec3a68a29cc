"""Random sequences of observations, commands and clock steps against the invariants of safety.

- decide() never emits a split Azure would refuse (it never raises: a refused split cannot be built);
- terminal phases absorb every input (phase fixed, no traffic or creation orders);
- rollback is reachable in one step from every active phase, and orders green to 0 live, 0 mirrored;
- green's ordered live share never exceeds what the current stage allows.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from shared.rollout.actions import CreateDeployment, Decision, SetTraffic
from shared.rollout.analysis import WindowMetrics
from shared.rollout.machine import (
    CommandKind,
    CommandRejectedError,
    apply_command,
    decide,
    max_green_live,
    supersede,
)
from shared.rollout.model import ModelRef, Rollout, RolloutPhase, TrafficSplit
from shared.rollout.observation import DeploymentState, EndpointState, Observation, SmokeResult
from shared.rollout.policy import CanaryStep, MirrorStage, RolloutPolicy, SmokeTest
from tests.builders import ENDPOINT, T0, deployment_metrics, started

P = RolloutPhase

policies = st.builds(
    RolloutPolicy,
    mirror=st.one_of(st.none(), st.builds(MirrorStage, percent=st.integers(1, 50), approval=st.booleans())),
    steps=st.lists(st.integers(1, 99), max_size=3, unique=True).map(
        lambda ps: tuple(CanaryStep(percent=p, approval=p % 3 == 0) for p in sorted(ps))
    ),
    smoke_test=st.one_of(st.none(), st.just(SmokeTest(requests=({"x": 1},)))),
    on_stage_timeout=st.sampled_from(["pause", "rollback"]),
    on_provider_errors=st.sampled_from(["pause", "rollback"]),
)


def metrics(kind: str, seed: int) -> WindowMetrics:
    rng = np.random.default_rng(seed)
    green_kw = {"healthy": {}, "slow": {"latency_ms": 300.0}, "errors": {"error_rate": 0.2}}.get(kind, {})
    requests = 30 if kind == "sparse" else 1500
    return WindowMetrics(
        start=T0,
        end=T0,
        green=deployment_metrics(rng, requests, samples=min(requests, 400), **green_kw),
        blue=deployment_metrics(rng, 5000, samples=400),
    )


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.policy = RolloutPolicy()
        self.rollout: Rollout = started()
        self.actual = self.rollout.desired
        self.green_state = "Creating"
        self.last: Decision | None = None

    @initialize(policy=policies, first=st.booleans())
    def start(self, policy: RolloutPolicy, first: bool) -> None:
        self.policy = policy
        self.rollout = started(policy, blue=None if first else "blue")
        self.actual = self.rollout.desired

    def _apply(self, decision: Decision) -> None:
        before = self.rollout
        self.last = decision
        after = decision.rollout
        undo = before.phase == P.SUCCEEDED and after.phase == P.ROLLING_BACK and decision.actor != "safe-rollout"
        if before.phase.terminal and not undo:
            # Terminal phases absorb every input, but for a person's or an alert's rollback just
            # after a success, while the old blue is kept for exactly that.
            assert after.phase == before.phase, "terminal phases absorb every input"
            assert not any(isinstance(a, SetTraffic | CreateDeployment) for a in decision.actions)
        if undo:
            assert after.desired == TrafficSplit(live={before.blue: 100}), "an undo puts everyone back on blue"
        for action in decision.actions:
            if isinstance(action, SetTraffic):
                assert action.split.live_of(after.green) <= max_green_live(after, self.policy), (
                    f"{after.phase} step {after.step}: green ordered {action.split.describe()}"
                )
        self.rollout = after

    def _endpoint(self, drift: bool) -> EndpointState:
        green, blue = self.rollout.green, self.rollout.blue
        traffic = self.actual
        if drift and blue:
            traffic = TrafficSplit(live={blue: 50, green: 50})
        deployments = {green: DeploymentState(name=green, provisioning_state=self.green_state)}
        if blue:
            deployments[blue] = DeploymentState(name=blue, provisioning_state="Succeeded")
        return EndpointState(name=ENDPOINT.name, traffic=traffic, deployments=deployments)

    @rule(
        minutes=st.integers(0, 40),
        applied=st.booleans(),
        drift=st.booleans(),
        data=st.sampled_from(["healthy", "slow", "errors", "sparse", "none", "error"]),
        green_state=st.sampled_from(["Creating", "Succeeded", "Succeeded", "Succeeded", "Failed"]),
        smoke_fails=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def tick(self, minutes, applied, drift, data, green_state, smoke_fails, seed) -> None:
        self.now += timedelta(minutes=minutes)
        self.green_state = green_state
        if applied:
            self.actual = self.rollout.desired
        obs = Observation(
            endpoint=self._endpoint(drift and not applied),
            metrics=metrics(data, seed) if data not in ("none", "error") else None,
            metrics_error="HTTP 503" if data == "error" else None,
            smoke=SmokeResult(sent=1, failed=int(smoke_fails)),
        )
        self._apply(decide(self.rollout, self.policy, obs, self.now))

    @rule(kind=st.sampled_from(list(CommandKind)))
    def command(self, kind: CommandKind) -> None:
        try:
            decision = apply_command(self.rollout, self.policy, kind, self.now, actor="hypothesis")
        except CommandRejectedError:
            return
        self._apply(decision)

    @precondition(lambda self: self.rollout.phase.active)
    @rule()
    def rollback_is_one_step_away(self) -> None:
        if self.rollout.phase == P.ROLLING_BACK and self.rollout.finish_as == P.ROLLED_BACK:
            return
        decision = apply_command(self.rollout, self.policy, CommandKind.ROLLBACK, self.now, actor="alert")
        assert decision.rollout.phase == P.ROLLING_BACK
        orders = [a.split for a in decision.actions if isinstance(a, SetTraffic)]
        # Green ordered off; or, where it was never ordered any traffic (and seen so), no order at all.
        ordered = orders[0] if orders else decision.rollout.desired
        assert len(orders) <= 1
        assert orders or decision.rollout.traffic_confirmed
        assert ordered.live_of(self.rollout.green) == 0
        assert ordered.mirror_of(self.rollout.green) == 0
        # keep exploring from where we were: this rule only proves reachability

    @precondition(lambda self: self.rollout.phase.active)
    @rule()
    def newer_version(self) -> None:
        decision = supersede(self.rollout, self.policy, ModelRef(name="m", version="99"), self.now)
        assert decision.rollout.phase == P.ROLLING_BACK
        assert decision.rollout.finish_as == P.SUPERSEDED

    @invariant()
    def ordered_split_is_valid(self) -> None:
        split = self.rollout.desired
        TrafficSplit.model_validate(split.model_dump())  # re-validate against Azure's rules
        if self.rollout.phase in (P.ROLLED_BACK, P.SUPERSEDED, P.FAILED, P.ABORTED):
            assert split.live_of(self.rollout.green) == 0 or self.rollout.blue is None


TestRolloutMachine = RolloutMachine.TestCase
TestRolloutMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
