"""Traffic changes are started, not waited for: Azure applies an endpoint update over tens of
seconds and refuses a second PUT meanwhile (409). The core confirms a split only when the endpoint
is seen holding it with its update finished, waits for a busy endpoint without counting errors for
a while, and still ends every phase in bounded time."""

from __future__ import annotations

from shared.rollout.actions import SetTraffic
from shared.rollout.machine import ENDPOINT_UPDATE_PATIENCE, analysis_window, decide
from shared.rollout.model import BUSY_REFUSAL, RolloutPhase
from shared.rollout.observation import Observation
from shared.rollout.policy import RolloutPolicy
from tests.builders import T0, minutes, observe, started

P = RolloutPhase
POLICY = RolloutPolicy()


def _ordered_mirror():
    """A rollout that has just ordered the mirror split (not yet seen on the endpoint)."""
    rollout = started().model_copy(update={"phase": P.MIRRORING, "stage_started_at": T0})
    from shared.rollout.stages import split_for

    return rollout.model_copy(
        update={"desired": split_for(rollout, POLICY, P.MIRRORING, -1), "traffic_confirmed": False}
    )


def _busy(rollout, state="Updating", traffic=None) -> Observation:
    obs = observe(rollout)
    assert obs.endpoint is not None
    endpoint = obs.endpoint.model_copy(update={"provisioning_state": state})
    if traffic is not None:
        endpoint = endpoint.model_copy(update={"traffic": traffic})
    return Observation(endpoint=endpoint)


def test_a_split_shown_while_the_update_runs_is_not_confirmed_nor_ordered_again():
    rollout = _ordered_mirror()
    decision = decide(rollout, POLICY, _busy(rollout), T0 + minutes(1))
    assert not decision.rollout.traffic_confirmed
    assert not any(isinstance(a, SetTraffic) for a in decision.actions)  # a PUT now would get a 409
    assert decision.rollout.consecutive_errors == 0
    assert "waiting for Azure to finish updating the endpoint" in decision.reason


def test_old_split_shown_while_busy_is_waited_for_too():
    rollout = _ordered_mirror()
    old = observe(started()).endpoint
    assert old is not None
    decision = decide(rollout, POLICY, _busy(rollout, traffic=old.traffic), T0 + minutes(1))
    assert decision.actions == ()
    assert decision.rollout.consecutive_errors == 0


def test_the_stage_clock_starts_when_azure_is_seen_holding_the_split():
    rollout = _ordered_mirror()
    seen_at = T0 + minutes(2)
    decision = decide(rollout, POLICY, observe(rollout), seen_at)
    confirmed = decision.rollout
    assert confirmed.traffic_confirmed
    assert confirmed.stage_started_at == seen_at
    assert confirmed.window_started_at == seen_at
    # The judged data start at the first whole minute after Azure was seen holding the split and end
    # at the last whole minute before now - ingestion lag: minutes before it applied are not data.
    assert analysis_window(confirmed, POLICY, seen_at + minutes(2.9)) is None  # no settled minute yet
    assert analysis_window(confirmed, POLICY, seen_at + minutes(3)) == (seen_at, seen_at + minutes(1))
    assert analysis_window(rollout, POLICY, T0 + minutes(30)) is None  # never judged unconfirmed
    late = confirmed.model_copy(update={"window_started_at": seen_at + minutes(0.25)})
    assert analysis_window(late, POLICY, seen_at + minutes(13.5)) == (seen_at + minutes(1), seen_at + minutes(11))


def test_after_a_409_the_split_is_ordered_again_once_idle_without_counting_an_error():
    rollout = _ordered_mirror().model_copy(update={"last_action_error": f"{BUSY_REFUSAL}HTTP 409 Conflict"})
    old = observe(started())
    decision = decide(rollout, POLICY, old, T0 + minutes(1))
    assert SetTraffic(split=rollout.desired) in decision.actions
    assert decision.rollout.consecutive_errors == 0
    assert decision.rollout.last_action_error == ""


def test_an_endpoint_busy_past_the_patience_counts_errors_until_the_policy_acts():
    rollout = _ordered_mirror()
    now = T0 + minutes(1)
    decision = decide(rollout, POLICY, _busy(rollout), now)
    rollout = decision.rollout
    assert rollout.endpoint_busy_since == now
    now = now + ENDPOINT_UPDATE_PATIENCE + minutes(1)
    for _ in range(POLICY.consecutive_error_limit):
        decision = decide(rollout, POLICY, _busy(rollout), now)
        rollout = decision.rollout
        now += minutes(1)
        if rollout.phase != P.MIRRORING:
            break
    assert rollout.phase != P.MIRRORING, "an endpoint stuck updating must not hold the rollout forever"
    assert "Updating" in decision.reason


def test_a_rollback_lands_only_when_the_update_that_removes_green_has_finished():
    mirroring = _ordered_mirror().model_copy(update={"traffic_confirmed": True})
    from shared.rollout.transitions import begin_rollback

    rolling = begin_rollback(mirroring, T0 + minutes(3), "green is slow").rollout
    assert rolling.phase == P.ROLLING_BACK
    # Azure shows the requested split (green at 0) while the update is still running.
    shown = decide(rolling, POLICY, _busy(rolling), T0 + minutes(4))
    assert shown.rollout.phase == P.ROLLING_BACK
    assert shown.actions == ()
    done = decide(shown.rollout, POLICY, observe(rolling), T0 + minutes(5))
    assert done.rollout.phase == P.ROLLED_BACK
    assert done.reason.startswith("green is slow")  # the cause, not the last wait


def test_a_rollback_whose_endpoint_never_stops_updating_finishes_once_green_is_dry_and_patience_spent():
    mirroring = _ordered_mirror().model_copy(update={"traffic_confirmed": True})
    from shared.rollout.transitions import begin_rollback

    rolling = begin_rollback(mirroring, T0 + minutes(3), "green is slow").rollout
    now = T0 + minutes(4)
    for _ in range(int(ENDPOINT_UPDATE_PATIENCE / minutes(1)) + 2):
        decision = decide(rolling, POLICY, _busy(rolling), now)  # shows blue 100%, green dry, Updating
        rolling = decision.rollout
        now += minutes(1)
        if rolling.phase != P.ROLLING_BACK:
            break
    assert rolling.phase == P.ROLLED_BACK
    assert "still reads Updating" in decision.reason
    assert rolling.consecutive_errors == 0


def test_the_wait_for_a_busy_endpoint_starts_afresh_with_each_new_order():
    """A wait spent in one rollback does not shorten the patience of a later order (after an
    abort and a retry, or a pause and a resume)."""
    from shared.rollout.machine import CommandKind, apply_command

    mirroring = _ordered_mirror().model_copy(update={"traffic_confirmed": True})
    aborted = apply_command(mirroring, POLICY, CommandKind.ABORT, T0 + minutes(3), actor="ana").rollout
    waiting = decide(aborted, POLICY, _busy(aborted), T0 + minutes(4)).rollout
    assert waiting.endpoint_busy_since == T0 + minutes(4)
    done = decide(waiting, POLICY, observe(waiting), T0 + minutes(5)).rollout
    assert done.phase == P.ABORTED
    assert done.endpoint_busy_since is None
    retried = apply_command(done, POLICY, CommandKind.RETRY, T0 + minutes(60), actor="ana").rollout
    assert retried.endpoint_busy_since is None
    # Its next order meets an endpoint busy with that very update: a wait, not an error.
    ordered = _ordered_mirror().model_copy(update={"endpoint_busy_since": T0 + minutes(4)})
    resumed = ordered.model_copy(update={"phase": P.PAUSED, "resume_to": P.MIRRORING})
    resumed = apply_command(resumed, POLICY, CommandKind.RESUME, T0 + minutes(60), actor="ana").rollout
    after = decide(resumed, POLICY, _busy(resumed), T0 + minutes(61))
    assert after.rollout.consecutive_errors == 0
    assert "waiting for Azure" in after.reason
