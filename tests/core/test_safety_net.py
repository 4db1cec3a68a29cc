"""The safety net in the pure core: every active phase has a way out, a bad policy value is refused
where it is parsed, versions are ordered only where the order is known, and commands never send
users to a green that cannot serve them. Each case failed on the core before these rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from shared.rollout.actions import ROLE_PROD, ROLE_TAG, SetTraffic, TagDeployment
from shared.rollout.machine import CommandKind, CommandRejectedError, apply_command, decide, split_for
from shared.rollout.model import ModelRef, PendingDelete, Rollout, RolloutPhase, TrafficSplit
from shared.rollout.observation import DeploymentState, EndpointState, Observation
from shared.rollout.policy import RolloutPolicy, format_duration
from shared.rollout.versions import compare_versions, model_of, not_newer_reason
from tests.builders import ENDPOINT, T0, minutes, observe, started

P = RolloutPhase
POLICY = RolloutPolicy()


def at(rollout: Rollout, phase: P, step: int = -1, **extra: object) -> Rollout:
    split = split_for(rollout, POLICY, phase, step)
    update = {"phase": phase, "step": step, "desired": split, "traffic_confirmed": True, **extra}
    return rollout.model_copy(update=update)


def endpoint(live: dict[str, int], states: dict[str, str], mirror: dict[str, int] | None = None) -> EndpointState:
    return EndpointState(
        name=ENDPOINT.name,
        traffic=TrafficSplit(live=live, mirror=mirror or {}),
        deployments={n.lower(): DeploymentState(name=n, provisioning_state=s) for n, s in states.items()},
    )


# --- 1. policy values are refused where they are parsed ------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("keep_failed_green_for", "-PT1H", "positive"),
        ("keep_failed_green_for", -600, "positive"),
        ("keep_old_blue_for", "-PT10M", "positive"),
        ("deadline", "0s", "positive"),
        ("deadline", "1e300d", "duration"),
        ("deadline", "400d", "at most 365d"),
        ("analysis", {"interval": "0s"}, "positive"),
        ("mirror", {"percent": True}, "integer"),
        ("steps", [{"percent": 10.5}], "integer"),
        ("errors", {"status_codes": ["5xx", "abc"]}, "status codes"),
        ("errors", {"status_codes": ["600"]}, "status codes"),
        ("errors", {"status_codes": []}, "at least one"),
        ("latency", {"percentile": 99.5}, "P50, P90, P95, P99"),
        ("latency", {"max_increase": True}, "number"),
        ("bake", {"approval": "yes"}, "boolean"),
    ],
)
def test_bad_policy_values_are_refused_naming_the_field(field, value, says):
    with pytest.raises(ValidationError) as caught:
        RolloutPolicy.model_validate({field: value})
    text = str(caught.value)
    assert field in text
    assert says in text


def test_every_policy_duration_round_trips_through_the_snapshot():
    policy = RolloutPolicy.model_validate(
        {"keep_old_blue_for": 1000001, "deadline": "1.5s", "analysis": {"interval": "90s"}}
    )
    again = RolloutPolicy.model_validate_json(policy.model_dump_json())
    assert again == policy
    assert format_duration(timedelta(seconds=1000001)) == "1000001s"


# --- 2. a not-found is believed only when confirmed ----------------------------------------------


def test_one_transient_404_changes_nothing_and_is_forgotten_when_the_endpoint_answers():
    rollout = at(started(), P.CANARY, 1)
    missed = decide(rollout, POLICY, Observation(endpoint=None), T0 + minutes(3))
    assert missed.rollout.phase == P.CANARY
    assert missed.actions == ()
    back = decide(missed.rollout, POLICY, observe(missed.rollout), T0 + minutes(4))
    assert back.rollout.endpoint_missing == 0
    assert back.rollout.phase == P.CANARY


# --- 4. every active phase has a way out ---------------------------------------------------------


def test_rollback_onto_a_deleted_blue_is_handed_to_a_person_not_retried_forever():
    baking = at(started(), P.BAKING)
    rolling = apply_command(baking, POLICY, CommandKind.ROLLBACK, T0 + minutes(1), actor="alert:x").rollout
    gone_blue = Observation(endpoint=endpoint({rolling.green: 100}, {rolling.green: "Succeeded"}))
    decision = decide(rolling, POLICY, gone_blue, T0 + minutes(2))
    assert decision.rollout.phase == P.PAUSED
    assert decision.rollout.resume_to == P.ROLLING_BACK
    assert "blue blue no longer exists" in decision.reason
    assert not any(isinstance(a, SetTraffic) for a in decision.actions)
    # The deadline does not start the impossible rollback again and again.
    later = decide(decision.rollout, POLICY, gone_blue, T0 + timedelta(hours=30))
    assert later.rollout.phase == P.PAUSED
    assert later.actions == ()
    # A person keeps green: it bakes under the checks, then succeeds.
    kept = apply_command(
        decision.rollout, POLICY, CommandKind.PROMOTE_FULL, T0 + minutes(3), actor="ana", endpoint=gone_blue.endpoint
    )
    assert kept.rollout.phase == P.BAKING


def test_an_order_azure_keeps_refusing_pauses_with_azures_words():
    rollout = at(started(), P.CANARY, 0).model_copy(update={"traffic_confirmed": False})
    stuck = Observation(endpoint=endpoint({"blue": 100}, {"blue": "Succeeded", rollout.green: "Succeeded"}))
    rollout = rollout.model_copy(update={"last_action_error": "(BadRequest) traffic refused"})
    phases = []
    for i in range(POLICY.consecutive_error_limit):
        decision = decide(rollout, POLICY, stuck, T0 + minutes(1 + i))
        phases.append(decision.rollout.phase)
        rollout = decision.rollout
    assert phases[:-1] == [P.CANARY] * (POLICY.consecutive_error_limit - 1)
    assert phases[-1] == P.PAUSED
    assert "traffic refused" in decision.reason
    # Paused, it orders nothing more.
    assert decide(rollout, POLICY, stuck, T0 + minutes(10)).actions == ()


def test_a_rollback_that_azure_refuses_pauses_after_the_limit():
    rolling = apply_command(at(started(), P.CANARY, 1), POLICY, CommandKind.ROLLBACK, T0, actor="bob").rollout
    stuck = Observation(
        endpoint=endpoint({"blue": 50, rolling.green: 50}, {"blue": "Succeeded", rolling.green: "Succeeded"})
    )
    for i in range(POLICY.consecutive_error_limit):
        decision = decide(rolling, POLICY, stuck, T0 + minutes(1 + i))
        rolling = decision.rollout
    assert rolling.phase == P.PAUSED
    resumed = apply_command(rolling, POLICY, CommandKind.RESUME, T0 + minutes(9), actor="ana")
    assert resumed.rollout.phase == P.ROLLING_BACK
    assert traffic_of(resumed) == TrafficSplit(live={"blue": 100})


def test_deadline_applies_while_traffic_is_still_being_applied():
    rollout = at(started(), P.CANARY, 0).model_copy(update={"traffic_confirmed": False})
    stuck = Observation(endpoint=endpoint({"blue": 100}, {"blue": "Succeeded", rollout.green: "Succeeded"}))
    decision = decide(rollout, POLICY, stuck, T0 + timedelta(hours=25))
    assert decision.rollout.phase == P.ROLLING_BACK
    assert "deadline" in decision.reason


def test_stage_timeout_applies_while_the_endpoint_cannot_be_read():
    rollout = at(started(), P.CANARY, 0, stage_started_at=T0)
    decision = decide(rollout, POLICY, Observation(endpoint_error="HTTP 503"), T0 + minutes(61))
    assert decision.rollout.phase == P.PAUSED
    assert "no verdict within 1h" in decision.reason


def test_provisioning_timeout_applies_while_the_endpoint_cannot_be_read():
    rollout = started()
    decision = decide(rollout, POLICY, Observation(endpoint_error="HTTP 500"), T0 + minutes(61))
    assert decision.rollout.phase == P.FAILED


def test_approval_timeout_applies_while_the_endpoint_is_not_found():
    waiting = at(started(), P.CANARY, 0).model_copy(
        update={"phase": P.AWAITING_APPROVAL, "gate_to": P.CANARY, "step": 1, "stage_started_at": T0}
    )
    decision = decide(waiting, POLICY, Observation(endpoint=None), T0 + timedelta(hours=25))
    assert decision.rollout.phase == P.ROLLING_BACK


# --- 8. a failed green never gets users by a click, and a pause notices it -----------------------


def test_promote_on_a_paused_rollout_whose_green_failed_is_refused():
    paused = at(started(), P.CANARY, 0).model_copy(update={"phase": P.PAUSED, "resume_to": P.CANARY})
    failed = endpoint({"blue": 90, paused.green: 10}, {"blue": "Succeeded", paused.green: "Failed"})
    for kind in (CommandKind.PROMOTE, CommandKind.PROMOTE_FULL, CommandKind.RESUME):
        with pytest.raises(CommandRejectedError, match="is Failed"):
            apply_command(paused, POLICY, kind, T0, actor="ana", endpoint=failed)


def test_a_paused_rollout_rolls_back_when_its_green_fails():
    paused = at(started(), P.CANARY, 0).model_copy(update={"phase": P.PAUSED, "resume_to": P.CANARY})
    failed = endpoint({"blue": 90, paused.green: 10}, {"blue": "Succeeded", paused.green: "Failed"})
    decision = decide(paused, POLICY, Observation(endpoint=failed), T0 + minutes(1))
    assert decision.rollout.phase == P.ROLLING_BACK
    assert traffic_of(decision) == TrafficSplit(live={"blue": 100})


# --- 6. rollback wins, even over a promotion that landed a moment before --------------------------


def test_rollback_just_after_success_undoes_it_while_blue_is_kept():
    done = at(started(), P.SUCCEEDED).model_copy(
        update={"cleanup": (PendingDelete(deployment="blue", not_before=T0 + timedelta(hours=1), why="old"),)}
    )
    undo = apply_command(done, POLICY, CommandKind.ROLLBACK, T0 + minutes(1), actor="alert:latency")
    assert undo.rollout.phase == P.ROLLING_BACK
    assert traffic_of(undo) == TrafficSplit(live={"blue": 100})
    assert TagDeployment(name="blue", tags={ROLE_TAG: ROLE_PROD}) in undo.actions
    assert all(item.deployment != "blue" for item in undo.rollout.cleanup)  # never delete the way back
    gone = done.model_copy(update={"cleanup": ()})
    with pytest.raises(CommandRejectedError, match="no longer kept"):
        apply_command(gone, POLICY, CommandKind.ROLLBACK, T0 + minutes(1), actor="ana")


def traffic_of(decision) -> TrafficSplit:
    (action,) = [a for a in decision.actions if isinstance(a, SetTraffic)]
    return action.split


# --- 9. versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [("10", "9", 1), ("1.10", "1.9", 1), ("2", "2.0", 0), ("3", "3", 0), ("9a", "10", None), ("v2", "v1", None)],
)
def test_versions_are_ordered_only_where_the_order_is_known(a, b, order):
    assert compare_versions(a, b) == order


def test_what_serves_production_is_read_from_the_deployments_model():
    arm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"
    assert model_of(f"{arm}/models/fraud-model/versions/3") == ModelRef(name="fraud-model", version="3")
    assert model_of("azureml:fraud-model:4") == ModelRef(name="fraud-model", version="4")
    assert model_of(None) is None
    v2, v3 = ModelRef(name="fraud-model", version="2"), ModelRef(name="fraud-model", version="3")
    assert "already runs fraud-model:3" in str(not_newer_reason(v2, v3, "production"))
    assert not_newer_reason(v3, v2, "production") is None
    assert "cannot tell" in str(not_newer_reason(ModelRef(name="fraud-model", version="9a"), v3, "production"))
    assert not_newer_reason(v2, ModelRef(name="other", version="9"), "production") is None


# --- found by the stateful test of the whole service ---------------------------------------------


def test_repeating_a_refused_order_keeps_the_audit_count_in_step_with_its_rows():
    rollout = at(started(), P.CANARY, 0).model_copy(update={"traffic_confirmed": False})
    stuck = Observation(endpoint=endpoint({"blue": 100}, {"blue": "Succeeded", rollout.green: "Succeeded"}))
    for i in range(POLICY.consecutive_error_limit + 2):
        decision = decide(rollout, POLICY, stuck, T0 + minutes(1 + i))
        assert decision.rollout.decisions == rollout.decisions + int(decision.record)
        rollout = decision.rollout


def test_a_rollback_before_green_had_traffic_orders_nothing():
    pending = started()  # blue 100%, seen so; green still provisioning
    decision = apply_command(pending, POLICY, CommandKind.ROLLBACK, T0 + minutes(1), actor="ana")
    assert decision.rollout.phase == P.ROLLING_BACK
    assert not any(isinstance(a, SetTraffic) for a in decision.actions)  # a person's split is left alone
    emptied = Observation(endpoint=endpoint({}, {"blue": "Deleting", pending.green: "Creating"}))
    assert decide(decision.rollout, POLICY, emptied, T0 + minutes(2)).rollout.phase == P.ROLLED_BACK


def test_a_superseded_rollout_whose_blue_is_gone_ends_instead_of_pausing_beside_its_successor():
    rolling = apply_command(at(started(), P.BAKING), POLICY, CommandKind.ROLLBACK, T0, actor="x").rollout
    superseded = rolling.model_copy(update={"finish_as": P.SUPERSEDED})
    gone_blue = Observation(endpoint=endpoint({superseded.green: 100}, {superseded.green: "Succeeded"}))
    decision = decide(superseded, POLICY, gone_blue, T0 + minutes(1))
    assert decision.rollout.phase == P.SUPERSEDED
    assert "traffic is left to the newer rollout" in decision.reason


# --- found by an independent review ----------------------------------------------------------------


def test_a_rollout_paused_out_of_an_impossible_rollback_does_not_loop_when_green_fails():
    rolling = apply_command(at(started(), P.BAKING), POLICY, CommandKind.ROLLBACK, T0, actor="x").rollout
    gone_blue = Observation(endpoint=endpoint({rolling.green: 100}, {rolling.green: "Succeeded"}))
    paused = decide(rolling, POLICY, gone_blue, T0 + minutes(1)).rollout
    failed = Observation(endpoint=endpoint({paused.green: 100}, {paused.green: "Failed"}))
    later = decide(paused, POLICY, failed, T0 + minutes(2))
    assert later.rollout.phase == P.PAUSED
    assert later.actions == ()
    assert not later.record  # no audit row, no event, tick after tick


def test_a_finished_rollout_does_not_believe_one_missing_endpoint_read():
    done = at(started(), P.SUCCEEDED).model_copy(
        update={"cleanup": (PendingDelete(deployment="blue", not_before=T0 + timedelta(hours=1), why="old"),)}
    )
    once = decide(done, POLICY, Observation(endpoint=None), T0 + minutes(1))
    assert once.rollout.cleanup == done.cleanup  # still kept: an alert may still undo the promotion


def test_a_start_whose_inherited_split_never_lands_rolls_back_instead_of_failing_ownerless():
    inherited = started().model_copy(update={"traffic_confirmed": False})  # supersede: blue 100 ordered
    stuck = Observation(
        endpoint=endpoint({"blue": 50, "old-green": 50}, {"blue": "Succeeded", "old-green": "Succeeded"})
    )
    decision = decide(inherited, POLICY, stuck, T0 + minutes(61))
    assert decision.rollout.phase == P.ROLLING_BACK  # it keeps the endpoint until the split is right


def test_errors_in_a_row_are_forgotten_once_the_endpoint_answers():
    rollout = at(started(), P.CANARY, 0, stage_started_at=T0, consecutive_errors=4)
    calm = decide(rollout, POLICY, observe(rollout), T0 + minutes(2))  # observing: no window yet
    assert calm.rollout.consecutive_errors == 0


def test_a_step_the_fallback_policy_lacks_is_named_not_crashed_on():
    from shared.rollout.stages import stage_label

    assert stage_label(POLICY, P.CANARY, 3) == "canary step 4"


def test_superseding_where_there_is_no_blue_leaves_users_on_green_and_keeps_it():
    from shared.rollout.commands import supersede

    first = at(started(blue=None), P.BAKING)  # a first deployment: green serves everyone
    decision = supersede(
        first, POLICY, ModelRef(name="fraud-model", version="3"), T0, blue_gone=True, green_serves=True
    )
    assert decision.rollout.phase == P.SUPERSEDED
    assert not any(isinstance(a, SetTraffic) for a in decision.actions)  # users are not moved anywhere
    assert not any(isinstance(a, TagDeployment) and a.name == first.green for a in decision.actions)
    assert all(item.deployment != first.green for item in decision.rollout.cleanup)  # the next rollout's blue
