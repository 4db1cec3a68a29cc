"""decide() and the commands, one transition rule per case. No fakes: data in, data out."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from shared.rollout.actions import CreateDeployment, DeleteDeployment, SetTraffic, TagDeployment
from shared.rollout.analysis import Verdict, WindowMetrics
from shared.rollout.machine import (
    CommandKind,
    CommandRejectedError,
    StartRejectedError,
    apply_command,
    decide,
    plan_start,
    supersede,
)
from shared.rollout.model import ModelRef, Rollout, RolloutPhase, TrafficSplit
from shared.rollout.observation import EndpointState, Observation, SmokeResult
from shared.rollout.policy import BakeStage, CanaryStep, MirrorStage, RolloutPolicy, SmokeTest
from tests.builders import ENDPOINT, MODEL, T0, deployment_metrics, endpoint_state, minutes, observe, started

P = RolloutPhase
POLICY = RolloutPolicy()


def healthy(rng_seed: int = 0, green_requests: int = 20_000, **green_kw: float) -> WindowMetrics:
    """A window with enough traffic to prove a healthy green within every margin."""
    rng = np.random.default_rng(rng_seed)
    green_kw = {"error_rate": 0.002, **green_kw}
    return WindowMetrics(
        start=T0,
        end=T0 + minutes(10),
        green=deployment_metrics(rng, green_requests, samples=min(green_requests, 5000), **green_kw),
        blue=deployment_metrics(rng, 100_000, samples=5000, error_rate=0.002),
    )


def at(rollout: Rollout, phase: P, step: int = -1, policy: RolloutPolicy = POLICY, **extra: object) -> Rollout:
    """A rollout positioned in a stage, holding that stage's confirmed split."""
    from shared.rollout.machine import split_for

    split = split_for(rollout, policy, phase, step)
    exposed = split.live_of(rollout.green) or split.mirror_of(rollout.green)
    update = {"phase": phase, "step": step, "desired": split, "traffic_confirmed": True}
    update["window_started_at"] = rollout.stage_started_at if exposed else None
    return rollout.model_copy(update=update | extra)


def traffic_of(decision) -> TrafficSplit:
    (action,) = [a for a in decision.actions if isinstance(a, SetTraffic)]
    return action.split


# --- start -------------------------------------------------------------------------------------


def test_start_names_blue_and_creates_green_as_its_copy():
    decision = plan_start(ENDPOINT, MODEL, endpoint_state(), POLICY, T0, trigger="event:1")
    assert decision.rollout.blue == "blue"
    assert decision.rollout.phase == P.PENDING
    (create,) = decision.actions
    assert isinstance(create, CreateDeployment)
    assert create.copy_from == "blue"
    assert create.model == MODEL
    assert [e.type for e in decision.events] == ["Started"]


def test_start_refuses_a_split_endpoint():
    with pytest.raises(StartRejectedError, match="splits live traffic"):
        plan_start(ENDPOINT, MODEL, endpoint_state(live={"a": 50, "b": 50}), POLICY, T0, trigger="t")


def test_start_on_an_empty_endpoint_has_no_blue():
    decision = plan_start(ENDPOINT, MODEL, endpoint_state(live={}), POLICY, T0, trigger="t")
    assert decision.rollout.blue is None
    assert decision.rollout.desired == TrafficSplit()


# --- pending -----------------------------------------------------------------------------------


def test_pending_recreates_green_if_it_is_missing():
    rollout = started()
    obs = Observation(endpoint=endpoint_state())
    decision = decide(rollout, POLICY, obs, T0 + minutes(1))
    assert isinstance(decision.actions[0], CreateDeployment)
    assert decision.rollout.phase == P.PENDING


def test_pending_waits_while_green_provisions():
    rollout = started()
    decision = decide(rollout, POLICY, observe(rollout, {rollout.green: "Creating"}), T0 + minutes(5))
    assert decision.rollout.phase == P.PENDING
    assert decision.actions == ()
    assert "waiting for green" in decision.reason


def test_pending_fails_when_provisioning_outlives_its_timeout():
    rollout = started()
    decision = decide(rollout, POLICY, observe(rollout, {rollout.green: "Creating"}), T0 + minutes(61))
    assert decision.rollout.phase == P.FAILED
    assert "not ready within" in decision.reason
    assert decision.rollout.cleanup[0].deployment == rollout.green


@pytest.mark.parametrize("state", ["Failed", "Canceled"])
def test_pending_fails_when_provisioning_fails(state):
    rollout = started()
    decision = decide(rollout, POLICY, observe(rollout, {rollout.green: state}), T0 + minutes(5))
    assert decision.rollout.phase == P.FAILED
    assert state in decision.reason
    assert not any(isinstance(a, SetTraffic) for a in decision.actions)


def test_ready_green_starts_mirroring_with_the_policy_percent():
    rollout = started()
    decision = decide(rollout, POLICY, observe(rollout), T0 + minutes(5))
    assert decision.rollout.phase == P.MIRRORING
    assert traffic_of(decision) == TrafficSplit(live={"blue": 100}, mirror={rollout.green: 20})
    assert decision.rollout.traffic_confirmed is False


def test_without_mirror_stage_green_goes_to_the_first_step():
    policy = RolloutPolicy(mirror=None)
    rollout = started(policy)
    decision = decide(rollout, policy, observe(rollout), T0 + minutes(5))
    assert decision.rollout.phase == P.CANARY
    assert traffic_of(decision).live_of(rollout.green) == 10


def test_first_deployment_goes_straight_to_bake_with_absolute_checks():
    rollout = started(blue=None)
    decision = decide(rollout, POLICY, observe(rollout), T0 + minutes(5))
    assert decision.rollout.phase == P.BAKING
    assert traffic_of(decision) == TrafficSplit(live={rollout.green: 100})


def test_smoke_test_pending_holds_then_failure_never_mirrors():
    policy = RolloutPolicy(smoke_test=SmokeTest(requests=({"data": [1]},)))
    rollout = started(policy)
    hold = decide(rollout, policy, observe(rollout), T0 + minutes(5))
    assert hold.rollout.phase == P.PENDING
    assert "smoke-testing" in hold.reason
    failed = decide(
        rollout,
        policy,
        observe(rollout, smoke=SmokeResult(sent=1, failed=1, detail="HTTP 500")),
        T0 + minutes(5),
    )
    assert failed.rollout.phase == P.FAILED
    assert "smoke test failed" in failed.reason
    assert not any(isinstance(a, SetTraffic) for a in failed.actions)
    assert failed.evidence[0].check == "smoke"


def test_smoke_test_pass_starts_mirroring():
    policy = RolloutPolicy(smoke_test=SmokeTest(requests=({"data": [1]},)))
    rollout = started(policy)
    decision = decide(rollout, policy, observe(rollout, smoke=SmokeResult(sent=1, failed=0)), T0 + minutes(5))
    assert decision.rollout.phase == P.MIRRORING
    assert decision.rollout.smoke_passed is True


# --- traffic convergence and drift -------------------------------------------------------------


def test_unconfirmed_traffic_is_ordered_again_until_seen():
    rollout = at(started(), P.MIRRORING).model_copy(update={"traffic_confirmed": False})
    stale = Observation(endpoint=endpoint_state(deployments={"blue": "Succeeded", rollout.green: "Succeeded"}))
    decision = decide(rollout, POLICY, stale, T0 + minutes(1))
    assert traffic_of(decision) == rollout.desired
    seen = decide(rollout, POLICY, observe(rollout), T0 + minutes(1))
    assert seen.rollout.traffic_confirmed


def test_drift_pauses_without_touching_traffic():
    rollout = at(started(), P.CANARY, 0)
    hand = Observation(
        endpoint=endpoint_state(live={"blue": 50, rollout.green: 50}),
    )
    decision = decide(rollout, POLICY, hand, T0 + minutes(3))
    assert decision.rollout.phase == P.PAUSED
    assert decision.actions == ()
    assert "changed outside Safe Rollout" in decision.reason
    assert [e.type for e in decision.events] == ["DriftDetected"]


# --- judging stages ----------------------------------------------------------------------------


def test_a_stage_is_judged_from_its_first_settled_minute():
    rollout = at(started(), P.MIRRORING)
    early = decide(rollout, POLICY, observe(rollout, metrics=healthy()), T0 + minutes(2.5))
    assert early.rollout.phase == P.MIRRORING
    assert "observing mirror 20%" in early.reason  # the first minute is not settled yet
    assert early.evidence == ()


def test_a_proven_stage_still_soaks_for_its_minimum_time():
    rollout = at(started(), P.MIRRORING)
    proven = decide(rollout, POLICY, observe(rollout, metrics=healthy()), T0 + minutes(4))
    assert proven.rollout.phase == P.MIRRORING
    assert "proven within its margin; soaking until 12:05 UTC (5m)" in proven.reason
    assert {r.verdict for r in proven.evidence if r.required} == {Verdict.PASS}


def test_a_regression_is_rolled_back_before_the_soak_time_ends():
    rollout = at(started(), P.MIRRORING)
    slow = decide(rollout, POLICY, observe(rollout, metrics=healthy(latency_ms=200.0)), T0 + minutes(3))
    assert slow.rollout.phase == P.ROLLING_BACK
    assert "latency" in slow.reason
    assert "proven worse" in slow.reason


def test_healthy_mirror_advances_to_first_step_in_one_put():
    rollout = at(started(), P.MIRRORING)
    decision = decide(rollout, POLICY, observe(rollout, metrics=healthy()), T0 + minutes(12))
    assert decision.rollout.phase == P.CANARY
    assert traffic_of(decision) == TrafficSplit(live={"blue": 90, rollout.green: 10}, mirror={})
    assert {r.check for r in decision.evidence} >= {"errors", "latency"}


def test_slow_green_is_rolled_back_during_mirroring():
    rollout = at(started(), P.MIRRORING)
    decision = decide(rollout, POLICY, observe(rollout, metrics=healthy(latency_ms=200.0)), T0 + minutes(12))
    assert decision.rollout.phase == P.ROLLING_BACK
    assert traffic_of(decision) == TrafficSplit(live={"blue": 100})
    assert "latency" in decision.reason


def test_not_enough_requests_holds_and_never_passes():
    rollout = at(started(), P.CANARY, 0)
    decision = decide(rollout, POLICY, observe(rollout, metrics=healthy(green_requests=50)), T0 + minutes(20))
    assert decision.rollout.phase == P.CANARY
    assert "NoData" in decision.reason
    assert decision.actions == ()


@pytest.mark.parametrize(("on_timeout", "phase"), [("pause", P.PAUSED), ("rollback", P.ROLLING_BACK)])
def test_no_data_past_the_stage_deadline_follows_the_policy(on_timeout, phase):
    policy = RolloutPolicy(on_stage_timeout=on_timeout)
    rollout = at(started(policy), P.CANARY, 0, policy)
    decision = decide(rollout, policy, observe(rollout, metrics=healthy(green_requests=50)), T0 + minutes(61))
    assert decision.rollout.phase == phase
    assert "reached no verdict" in decision.reason


def test_metrics_errors_count_then_follow_the_policy():
    rollout = at(started(), P.CANARY, 0)
    for i in range(1, 5):
        decision = decide(rollout, POLICY, observe(rollout, metrics_error="HTTP 503"), T0 + minutes(20 + i))
        rollout = decision.rollout
        assert rollout.phase == P.CANARY
        assert rollout.consecutive_errors == i
    decision = decide(rollout, POLICY, observe(rollout, metrics_error="HTTP 503"), T0 + minutes(25))
    assert decision.rollout.phase == P.PAUSED
    assert "5 provider errors in a row" in decision.reason


def test_a_good_read_resets_the_error_count():
    rollout = at(started(), P.CANARY, 0).model_copy(update={"consecutive_errors": 3})
    decision = decide(rollout, POLICY, observe(rollout, metrics=healthy(green_requests=50)), T0 + minutes(20))
    assert decision.rollout.consecutive_errors == 0


def test_last_step_passes_into_bake_at_full_traffic():
    rollout = at(started(), P.CANARY, 1)
    decision = decide(rollout, POLICY, observe(rollout, metrics=healthy()), T0 + minutes(13))
    assert decision.rollout.phase == P.BAKING
    assert traffic_of(decision) == TrafficSplit(live={rollout.green: 100})


def test_bake_success_tags_roles_and_schedules_blue_deletion():
    rollout = at(started(), P.BAKING)
    decision = decide(rollout, POLICY, observe(rollout, metrics=healthy()), T0 + minutes(13))
    assert decision.rollout.phase == P.SUCCEEDED
    tags = {a.name: a.tags["rollout-role"] for a in decision.actions if isinstance(a, TagDeployment)}
    assert tags == {rollout.green: "PROD_DEPLOYMENT", "blue": "OLD_PROD"}
    (pending,) = decision.rollout.cleanup
    assert pending.deployment == "blue"
    assert pending.not_before == T0 + minutes(13) + timedelta(hours=1)


def _baked(policy: RolloutPolicy = POLICY) -> Rollout:
    """A rollout that judged its last canary step (blue's figures recorded) and now bakes."""
    rollout = at(started(policy), P.CANARY, len(policy.steps) - 1, policy)
    step = decide(rollout, policy, observe(rollout, metrics=healthy()), T0 + minutes(13))
    assert step.rollout.phase == P.BAKING
    assert step.rollout.baseline is not None
    confirmed = decide(step.rollout, policy, observe(step.rollout), T0 + minutes(14))
    return confirmed.rollout


def _bake_window(green_error_rate: float) -> WindowMetrics:
    rng = np.random.default_rng(3)
    green = deployment_metrics(rng, 20_000, samples=5000, error_rate=green_error_rate)
    return WindowMetrics(start=T0 + minutes(15), end=T0 + minutes(25), green=green, blue=None)


def test_the_bake_compares_green_with_blues_recorded_figures():
    baking = _baked()
    assert baking.phase == P.BAKING
    assert baking.traffic_confirmed
    # 4% errors is under the 5% ceiling: only the comparison with blue's 0.2% can catch it.
    bad = decide(baking, POLICY, observe(baking, metrics=_bake_window(0.04)), T0 + minutes(20))
    assert bad.rollout.phase == P.ROLLING_BACK
    errors = next(r for r in bad.evidence if r.check == "errors")
    assert errors.verdict == Verdict.FAIL
    assert errors.evidence["blue_source"] == "blue's recorded figures"
    good = decide(baking, POLICY, observe(baking, metrics=_bake_window(0.002)), T0 + minutes(20))
    assert good.rollout.phase == P.SUCCEEDED


def test_the_bake_passes_when_no_regression_is_proven_over_its_duration():
    """Across time the comparison rarely proves equivalence; the bake asks that it prove no regression."""
    baking = _baked()
    rng = np.random.default_rng(5)
    few = deployment_metrics(rng, 600, samples=600, error_rate=0.002)  # too few to prove +0.5 points
    window = WindowMetrics(start=T0 + minutes(15), end=T0 + minutes(25), green=few, blue=None)
    early = decide(baking, POLICY, observe(baking, metrics=window), T0 + minutes(16))
    assert early.rollout.phase == P.BAKING
    done = decide(baking, POLICY, observe(baking, metrics=window), T0 + minutes(20))
    assert done.rollout.phase == P.SUCCEEDED, done.reason
    assert "no regression proven against blue's recorded figures" in done.reason
    empty = WindowMetrics(start=T0, end=T0, green=deployment_metrics(rng, 10), blue=None)
    held = decide(baking, POLICY, observe(baking, metrics=empty), T0 + minutes(20))
    assert held.rollout.phase == P.BAKING  # a check without data never passes


def test_the_error_ceiling_vetoes_even_without_a_blue():
    policy = RolloutPolicy(bake=BakeStage(duration=timedelta(minutes=5)))
    rollout = at(started(policy, blue=None), P.BAKING, policy=policy)
    decision = decide(rollout, policy, observe(rollout, metrics=healthy(error_rate=0.3)), T0 + minutes(8))
    assert decision.rollout.phase == P.ROLLING_BACK
    assert "ceiling" in decision.reason


def test_approval_gate_waits_and_approve_enters_the_step():
    policy = RolloutPolicy(steps=(CanaryStep(percent=10), CanaryStep(percent=50, approval=True)))
    rollout = at(started(policy), P.CANARY, 0, policy)
    gate = decide(rollout, policy, observe(rollout, metrics=healthy()), T0 + minutes(12))
    assert gate.rollout.phase == P.AWAITING_APPROVAL
    assert gate.actions == ()
    assert [e.type for e in gate.events] == ["ApprovalRequested"]
    approved = apply_command(gate.rollout, policy, CommandKind.APPROVE, T0 + minutes(30), actor="ana")
    assert approved.rollout.phase == P.CANARY
    assert traffic_of(approved).live_of(rollout.green) == 50
    assert approved.actor == "ana"


def test_approval_nobody_gives_rolls_back_by_default():
    policy = RolloutPolicy(mirror=MirrorStage(approval=True), approval_timeout=timedelta(hours=2))
    rollout = started(policy)
    gate = decide(rollout, policy, observe(rollout), T0 + minutes(5))
    assert gate.rollout.phase == P.AWAITING_APPROVAL
    late = decide(gate.rollout, policy, observe(gate.rollout), T0 + minutes(5) + timedelta(hours=3))
    assert late.rollout.phase == P.ROLLING_BACK
    assert "no approval within" in late.reason


def test_overall_deadline_rolls_back():
    rollout = at(started(), P.PAUSED, resume_to=P.CANARY)
    decision = decide(rollout, POLICY, observe(rollout), T0 + timedelta(hours=25))
    assert decision.rollout.phase == P.ROLLING_BACK
    assert "deadline" in decision.reason


def test_green_gone_mid_canary_rolls_back():
    rollout = at(started(), P.CANARY, 0)
    obs = Observation(endpoint=EndpointState(name="e", traffic=rollout.desired, deployments={}))
    decision = decide(rollout, POLICY, obs, T0 + minutes(3))
    assert decision.rollout.phase == P.ROLLING_BACK


def test_deleted_endpoint_fails_the_rollout_once_confirmed():
    rollout = at(started(), P.CANARY, 0)
    for i in range(1, 3):  # a not-found is not believed until reads agree
        decision = decide(rollout, POLICY, Observation(endpoint=None), T0 + minutes(3 + i))
        assert decision.rollout.phase == P.CANARY
        assert not decision.actions
        rollout = decision.rollout
    decision = decide(rollout, POLICY, Observation(endpoint=None), T0 + minutes(6))
    assert decision.rollout.phase == P.FAILED
    assert "no longer exists" in decision.reason


# --- rollback lands once green holds no traffic -----------------------------------------------


def test_rollback_finishes_only_when_green_holds_nothing():
    rolling = apply_command(at(started(), P.CANARY, 1), POLICY, CommandKind.ROLLBACK, T0, actor="bob").rollout
    still = Observation(endpoint=endpoint_state(live={"blue": 50, rolling.green: 50}))
    again = decide(rolling, POLICY, still, T0 + minutes(1))
    assert again.rollout.phase == P.ROLLING_BACK
    assert traffic_of(again) == TrafficSplit(live={"blue": 100})
    done = decide(rolling, POLICY, observe(rolling), T0 + minutes(1))
    assert done.rollout.phase == P.ROLLED_BACK
    assert done.rollout.cleanup[0].deployment == rolling.green
    assert [e.type for e in done.events] == ["RolledBack"]


def test_terminal_cleanup_deletes_when_due_and_untouched():
    finished = decide(
        apply_command(at(started(), P.CANARY, 0), POLICY, CommandKind.ROLLBACK, T0, actor="x").rollout,
        POLICY,
        observe(started()),
        T0,
    ).rollout
    assert finished.phase == P.ROLLED_BACK
    early = decide(finished, POLICY, observe(finished), T0 + minutes(30))
    assert not any(isinstance(a, DeleteDeployment) for a in early.actions)
    due = decide(finished, POLICY, observe(finished), T0 + timedelta(hours=3))
    assert [a for a in due.actions if isinstance(a, DeleteDeployment)] == [DeleteDeployment(name=finished.green)]
    assert due.rollout.phase == P.ROLLED_BACK
    gone = decide(due.rollout, POLICY, Observation(endpoint=endpoint_state()), T0 + timedelta(hours=3))
    assert gone.rollout.cleanup == ()
    assert not gone.rollout.due


def test_cleanup_never_deletes_a_deployment_that_carries_traffic_again():
    finished = started().model_copy(update={"phase": P.SUCCEEDED})
    from shared.rollout.model import PendingDelete

    finished = finished.model_copy(update={"cleanup": (PendingDelete(deployment="blue", not_before=T0, why="x"),)})
    obs = Observation(endpoint=endpoint_state(live={"blue": 100}, deployments={"blue": "Succeeded"}))
    decision = decide(finished, POLICY, obs, T0 + timedelta(hours=2))
    assert decision.actions == ()
    assert decision.rollout.cleanup == ()
    assert "carries traffic again" in decision.reason


# --- commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "step", "command", "lands_in"),
    [
        (P.MIRRORING, -1, CommandKind.PAUSE, P.PAUSED),
        (P.CANARY, 0, CommandKind.PROMOTE, P.CANARY),
        (P.CANARY, 1, CommandKind.PROMOTE, P.BAKING),
        (P.BAKING, -1, CommandKind.PROMOTE, P.SUCCEEDED),
        (P.MIRRORING, -1, CommandKind.PROMOTE_FULL, P.BAKING),
        (P.BAKING, -1, CommandKind.PROMOTE_FULL, P.SUCCEEDED),
        (P.CANARY, 0, CommandKind.ROLLBACK, P.ROLLING_BACK),
        (P.PENDING, -1, CommandKind.ROLLBACK, P.ROLLING_BACK),
        (P.CANARY, 0, CommandKind.ABORT, P.ROLLING_BACK),
    ],
)
def test_command_table(phase, step, command, lands_in):
    rollout = at(started(), phase, step)
    decision = apply_command(rollout, POLICY, command, T0 + minutes(1), actor="ana", reason="because")
    assert decision.rollout.phase == lands_in
    assert decision.record
    assert "ana" in decision.reason


@pytest.mark.parametrize(
    ("phase", "command", "message"),
    [
        (P.SUCCEEDED, CommandKind.ROLLBACK, "has finished"),
        (P.MIRRORING, CommandKind.RESUME, "only a paused rollout"),
        (P.CANARY, CommandKind.APPROVE, "nothing awaits approval"),
        (P.PENDING, CommandKind.PROMOTE, "green serves no traffic yet"),
        (P.CANARY, CommandKind.RETRY, "only an aborted rollout"),
        (P.PAUSED, CommandKind.PAUSE, "cannot pause"),
    ],
)
def test_commands_refused_in_the_wrong_phase(phase, command, message):
    rollout = at(started(), phase, 0 if phase == P.CANARY else -1, resume_to=P.CANARY if phase == P.PAUSED else None)
    with pytest.raises(CommandRejectedError, match=message):
        apply_command(rollout, POLICY, command, T0, actor="ana")


def test_resume_reorders_our_split_and_judges_afresh():
    rollout = at(started(), P.CANARY, 0)
    paused = apply_command(rollout, POLICY, CommandKind.PAUSE, T0 + minutes(5), actor="ana").rollout
    resumed = apply_command(paused, POLICY, CommandKind.RESUME, T0 + minutes(30), actor="ana")
    assert resumed.rollout.phase == P.CANARY
    assert resumed.rollout.stage_started_at == T0 + minutes(30)
    assert traffic_of(resumed) == rollout.desired


def test_abort_then_retry_restarts_from_green_readiness():
    rollout = at(started(), P.CANARY, 0)
    aborting = apply_command(rollout, POLICY, CommandKind.ABORT, T0, actor="ana").rollout
    aborted = decide(aborting, POLICY, observe(aborting), T0 + minutes(1)).rollout
    assert aborted.phase == P.ABORTED
    assert aborted.cleanup == ()  # green kept for the retry
    retried = apply_command(aborted, POLICY, CommandKind.RETRY, T0 + minutes(2), actor="ana").rollout
    assert retried.phase == P.PENDING
    again = decide(retried, POLICY, observe(retried), T0 + minutes(3))
    assert again.rollout.phase == P.MIRRORING


def test_promote_from_a_paused_gate_enters_the_gated_stage():
    policy = RolloutPolicy(steps=(CanaryStep(percent=10, approval=True),))
    rollout = started(policy)
    gate = decide(
        at(rollout, P.MIRRORING, policy=policy),
        policy,
        observe(at(rollout, P.MIRRORING, policy=policy), metrics=healthy()),
        T0 + minutes(12),
    ).rollout
    paused = apply_command(gate, policy, CommandKind.PAUSE, T0 + minutes(13), actor="a").rollout
    promoted = apply_command(paused, policy, CommandKind.PROMOTE, T0 + minutes(14), actor="a")
    assert promoted.rollout.phase == P.CANARY
    assert traffic_of(promoted).live_of(rollout.green) == 10


def test_supersede_sends_traffic_back_to_blue_first():
    rollout = at(started(), P.CANARY, 1)
    decision = supersede(rollout, POLICY, ModelRef(name=MODEL.name, version="3"), T0)
    assert decision.rollout.phase == P.ROLLING_BACK
    assert decision.rollout.finish_as == P.SUPERSEDED
    assert traffic_of(decision) == TrafficSplit(live={"blue": 100})
    done = decide(decision.rollout, POLICY, observe(decision.rollout), T0 + minutes(1))
    assert done.rollout.phase == P.SUPERSEDED


def test_hold_reasons_are_recorded_once_not_every_minute():
    rollout = at(started(), P.MIRRORING)
    first = decide(rollout, POLICY, observe(rollout), T0 + minutes(1))
    second = decide(first.rollout, POLICY, observe(first.rollout), T0 + minutes(2))
    assert first.record
    assert not second.record


def test_lost_role_tags_are_reapplied_but_never_over_a_newer_tag():
    from shared.rollout.model import PendingDelete
    from shared.rollout.observation import DeploymentState

    done = at(started(), P.SUCCEEDED).model_copy(
        update={"cleanup": (PendingDelete(deployment="blue", not_before=T0 + timedelta(hours=1), why="x"),)}
    )

    def with_tag(tag: str | None) -> Observation:
        obs = observe(done)
        deployments = dict(obs.endpoint.deployments)
        deployments[done.green] = DeploymentState(
            name=done.green, provisioning_state="Succeeded", tags={"rollout-role": tag} if tag else {}
        )
        return Observation(endpoint=obs.endpoint.model_copy(update={"deployments": deployments}))

    lost = decide(done, POLICY, with_tag("RELEASE_CANDIDATE"), T0 + minutes(5))
    assert TagDeployment(name=done.green, tags={"rollout-role": "PROD_DEPLOYMENT"}) in lost.actions
    newer = decide(done, POLICY, with_tag("OLD_PROD"), T0 + minutes(5))
    assert not any(isinstance(a, TagDeployment) for a in newer.actions)
