"""decide(): the rollout state machine as a pure function of data.

decide(rollout, policy, observation, now) -> Decision(next rollout, actions, events, reason,
evidence): observe what the endpoint holds, find the way out of a stalled phase, judge the stage.
The stage plan lives in stages.py, the transitions in transitions.py, people's commands, starts
and supersedes in commands.py (re-exported here). Nothing here reads a clock or touches Azure.

Traffic is level-triggered: the rollout keeps the split it last ordered (`desired`) and whether the
endpoint was seen holding it (`traffic_confirmed`). Until confirmed, the order is repeated, which
finishes a tick that died half way. Once confirmed, a different split on the endpoint was made by
someone else: the rollout pauses and reports instead of fighting them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.rollout import analysis, capacity, cost, shadow
from shared.rollout.actions import (
    ROLE_CANDIDATE,
    ROLE_OLD_PROD,
    ROLE_PROD,
    ROLE_ROLLED_BACK,
    ROLE_TAG,
    ROLLOUT_TAG,
    Action,
    CreateDeployment,
    Decision,
    DeleteDeployment,
    SetTraffic,
    TagDeployment,
)
from shared.rollout.analysis import CheckResult, Verdict
from shared.rollout.commands import (  # re-exported: the state machine's whole surface in one place
    SAFE_WITHOUT_POLICY,
    TOWARD_GREEN,
    CommandKind,
    CommandRejectedError,
    StartRejectedError,
    annotate,
    apply_command,
    green_name_for,
    plan_start,
    rollout_id_for,
    supersede,
    unrecorded,
)
from shared.rollout.model import (
    BUSY_REFUSAL,
    EXPOSED_PHASES,
    PendingDelete,
    Rollout,
    RolloutPhase,
    TrafficSplit,
)
from shared.rollout.observation import (
    PROVISIONING_FAILED,
    PROVISIONING_IN_PROGRESS,
    EndpointState,
    Observation,
)
from shared.rollout.policy import RolloutPolicy, format_duration
from shared.rollout.stages import (
    analysis_window,
    max_green_live,
    paused_out_of_rollback,
    safe_split,
    split_for,
    stage_label,
    stage_limits,
)
from shared.rollout.transitions import (
    advance,
    begin_rollback,
    event,
    fail_before_traffic,
    finish,
    hold,
    make_decision,
    on_policy_action,
    pause,
)

P = RolloutPhase

__all__ = [
    "SAFE_WITHOUT_POLICY",
    "TOWARD_GREEN",
    "CommandKind",
    "CommandRejectedError",
    "StartRejectedError",
    "analysis_window",
    "annotate",
    "apply_command",
    "decide",
    "decide_isolated",
    "green_name_for",
    "max_green_live",
    "plan_start",
    "rollout_id_for",
    "safe_split",
    "split_for",
    "stage_label",
    "supersede",
    "unrecorded",
]


# A not-found is believed only when this many reads in a row agree (ARM can answer a transient 404).
ENDPOINT_GONE_AFTER = 3
# How long an endpoint busy with an update (ours or anyone's) is waited for before each further
# tick counts as an error. Traffic updates take tens of seconds; ten minutes is far past that.
ENDPOINT_UPDATE_PATIENCE = timedelta(minutes=10)
PATIENCE = format_duration(ENDPOINT_UPDATE_PATIENCE)


def decide(rollout: Rollout, policy: RolloutPolicy, observation: Observation, now: datetime) -> Decision:
    """One reconcile step. Every branch returns data; nothing is carried out here.

    Ways out come before any early return: the deadline first, then (wherever the rollout cannot
    make progress this tick) the stage's own timeout, then the limit on errors in a row. So every
    active phase ends, or is handed to a person, in bounded time whatever Azure answers.
    """
    if rollout.traffic_confirmed and rollout.endpoint_busy_since is not None:
        rollout = rollout.model_copy(update={"endpoint_busy_since": None})  # that wait is over
    rollout = capacity.observe(rollout, observation.endpoint, now)  # sizes seen: the cost ledger
    if rollout.phase.terminal:
        return _cleanup(rollout, observation, now)
    if _past_deadline(rollout, policy, now):
        return begin_rollback(rollout, now, f"the rollout passed its {format_duration(policy.deadline)} deadline")
    if observation.endpoint_error is not None:
        return _stalled(rollout, policy, now, f"cannot read the endpoint: {observation.endpoint_error}")
    endpoint = observation.endpoint
    if endpoint is None:
        return _endpoint_missing(rollout, policy, now)
    if rollout.endpoint_missing:
        rollout = rollout.model_copy(update={"endpoint_missing": 0})

    actual = endpoint.traffic
    if rollout.phase == P.ROLLING_BACK:
        count = _error_counter(policy, now)
        return capacity.await_blue(rollout, policy, endpoint, now, count_error=count) or _rolling_back(
            rollout, policy, endpoint, now
        )

    green = endpoint.deployment(rollout.green)
    green_broken = green is None or green.provisioning_state in PROVISIONING_FAILED
    waiting = rollout.phase in (P.PAUSED, P.AWAITING_APPROVAL) and not paused_out_of_rollback(rollout)
    if waiting and green_broken and _green_touched(rollout, actual):
        # Waiting is no shelter: a green that failed while it holds traffic is rolled back now.
        state = "is gone" if green is None else f"is {green.provisioning_state}"
        return begin_rollback(rollout, now, f"green {rollout.green} {state} while {rollout.phase}")

    if not rollout.traffic_confirmed:
        if actual == rollout.desired and not _busy(endpoint):
            rollout = _confirmed(rollout, now)
        elif rollout.phase == P.PAUSED:
            # A pause orders nothing: the split is ordered again when a person resumes.
            return hold(rollout, now, rollout.last_reason)
        else:
            return _overdue(rollout, policy, now) or _order_again(rollout, policy, now, endpoint)
    elif actual != rollout.desired and rollout.phase != P.PAUSED:
        why = (
            f"traffic was changed outside Safe Rollout: expected {rollout.desired.describe()}, "
            f"found {actual.describe()}; paused without touching it"
        )
        paused = rollout.model_copy(update={"phase": P.PAUSED, "resume_to": rollout.phase})
        return make_decision(
            rollout,
            paused,
            now,
            why,
            events=[event(paused, "DriftDetected", why, found=actual.model_dump())],
        )

    rollout = shadow.fold_scored(rollout, policy, observation)  # inputs scored this tick are never lost
    if rollout.phase == P.PENDING:
        return _pending(rollout, policy, endpoint, observation, now)
    if rollout.phase in EXPOSED_PHASES:
        return _judge(rollout, policy, endpoint, observation, now)
    if rollout.phase == P.AWAITING_APPROVAL:
        return _overdue(rollout, policy, now) or _watch(rollout, policy, observation, now)
    if rollout.phase == P.PAUSED and actual == rollout.desired:
        return _watch(rollout, policy, observation, now)
    return hold(rollout, now, rollout.last_reason)  # Aborted, or paused on a split not ours: a person decides


def _error_counter(policy: RolloutPolicy, now: datetime) -> capacity.CountError:
    def count(rollout: Rollout, why: str, holding: str, actions: Sequence[Action]) -> Decision:
        return _count_error(rollout, policy, now, why, holding, actions=actions)

    return count


def _step_up(
    rollout: Rollout,
    policy: RolloutPolicy,
    endpoint: EndpointState,
    now: datetime,
    reason: str,
    evidence: Sequence[CheckResult] = (),
) -> Decision:
    """advance(), after green is scaled to the next stage's size and past the cost gate (capacity.py)."""
    return capacity.step_up(
        rollout,
        policy,
        endpoint,
        now,
        reason,
        evidence,
        count_error=_error_counter(policy, now),
        advance=lambda r, why, ev: advance(r, policy, now, why, evidence=ev),
        gate=lambda r, ev: cost.gate_decision(r, policy, now, list(ev)),
    )


def _busy(endpoint: EndpointState) -> bool:
    """An update to the endpoint is in flight: what a read shows is not yet what serves users, and a
    PUT now would be refused (409)."""
    return endpoint.provisioning_state in PROVISIONING_IN_PROGRESS


def _confirmed(rollout: Rollout, now: datetime) -> Rollout:
    """The endpoint was seen holding our split, its update finished. A stage's clock (its minimum
    time and its analysis window) starts now, not when the split was ordered: minutes before Azure
    applied it belong to the stage before."""
    update: dict[str, object] = {
        "traffic_confirmed": True,
        "last_action_error": "",
        "consecutive_errors": 0,
        "endpoint_busy_since": None,
    }
    if rollout.phase in EXPOSED_PHASES:
        update["stage_started_at"] = now
    # The judged data start now: minutes before Azure applied the split belong to the split before.
    # A split confirmed again after a pause keeps its window: looks are free, resuming spends nothing.
    exposed = rollout.desired.live_of(rollout.green) or rollout.desired.mirror_of(rollout.green)
    if not exposed or rollout.phase == P.ROLLING_BACK:
        update["window_started_at"] = None
    elif rollout.window_started_at is None:
        update["window_started_at"] = now
    return rollout.model_copy(update=update)


def _blue_can_serve(rollout: Rollout, endpoint: EndpointState) -> bool:
    """Whether traffic can go back to blue: it is there and not being deleted."""
    blue = endpoint.deployment(rollout.blue)
    return rollout.blue is None or (blue is not None and blue.provisioning_state != "Deleting")


def _green_touched(rollout: Rollout, actual: TrafficSplit) -> bool:
    """Whether green holds, or was last ordered to hold, any live or mirrored traffic."""
    return any(split.live_of(rollout.green) or split.mirror_of(rollout.green) for split in (actual, rollout.desired))


def _past_deadline(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> bool:
    """The whole rollout's deadline. A rollback under way, or one that could not be carried out and
    was handed to a person, is not started again (that would loop)."""
    if rollout.phase == P.ROLLING_BACK or paused_out_of_rollback(rollout):
        return False
    return now - rollout.created_at > policy.deadline


def _overdue(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> Decision | None:
    """The current stage's own time limit, checked wherever a tick cannot make progress."""
    waited = now - rollout.stage_started_at
    if rollout.phase == P.PENDING and waited > policy.provisioning_timeout:
        if not rollout.traffic_confirmed:
            # A newer version's start whose order (traffic back to blue) never landed: it keeps the
            # endpoint and rolls back, so the split it inherited is never left without an owner.
            limit = format_duration(policy.provisioning_timeout)
            why = f"green {rollout.green} was not ready, nor the split applied, within {limit}"
            return begin_rollback(rollout, now, why)
        return fail_before_traffic(
            rollout,
            policy,
            now,
            f"green {rollout.green} was not ready within {format_duration(policy.provisioning_timeout)}",
        )
    if rollout.phase == P.AWAITING_APPROVAL:
        timeout = policy.approval_timeout
        if timeout is not None and waited > timeout:
            why = f"no approval within {format_duration(timeout)}"
            if policy.on_approval_timeout == "rollback":
                return begin_rollback(rollout, now, why)
            return pause(rollout, now, why)
    if rollout.phase in EXPOSED_PHASES:
        _, max_duration, _ = stage_limits(policy, rollout)
        if waited > max_duration:
            label = stage_label(policy, rollout.phase, rollout.step)
            why = f"{label} reached no verdict within {format_duration(max_duration)} ({rollout.last_reason})"
            return on_policy_action(policy.on_stage_timeout, rollout, now, why)
    return None


def _stalled(rollout: Rollout, policy: RolloutPolicy, now: datetime, why: str) -> Decision:
    """A tick that cannot act (Azure unreadable): counted, and past the limit handed on."""
    return _overdue(rollout, policy, now) or _count_error(
        rollout, policy, now, why, f"provider error, will retry: {why}"
    )


def _order_again(rollout: Rollout, policy: RolloutPolicy, now: datetime, endpoint: EndpointState) -> Decision:
    """Our split is not on the endpoint yet. While Azure is busy with an update (ours, or anyone's),
    wait for it: a PUT now would be refused. After a 409, order again once the endpoint is idle. Both
    without counting an error, for ENDPOINT_UPDATE_PATIENCE; past that, and for every other miss,
    order again and count the miss as an error (so the limit on errors in a row still ends it)."""
    actual = endpoint.traffic
    found = f"ordered {rollout.desired.describe()}, found {actual.describe()}"
    refused_busy = rollout.last_action_error.startswith(BUSY_REFUSAL)
    since = rollout.endpoint_busy_since or now
    if (_busy(endpoint) or refused_busy) and now - since < ENDPOINT_UPDATE_PATIENCE:
        if _busy(endpoint):
            waiting = rollout.model_copy(update={"endpoint_busy_since": since})
            why = f"waiting for Azure to finish updating the endpoint (it is {endpoint.provisioning_state}; {found})"
            return _overdue(waiting, policy, now) or make_decision(rollout, waiting, now, why)
        again = rollout.model_copy(update={"endpoint_busy_since": since, "last_action_error": ""})
        why = f"the endpoint is idle again: ordering the split Azure refused while busy ({found})"
        return _overdue(again, policy, now) or make_decision(
            rollout, again, now, why, actions=[SetTraffic(split=rollout.desired)]
        )
    if _busy(endpoint):
        waited = format_duration(now - since)
        why = f"the endpoint has been {endpoint.provisioning_state} for {waited}, past the {PATIENCE} allowed ({found})"
        return _overdue(rollout, policy, now) or _count_error(rollout, policy, now, why, why)
    refused = f": Azure said {rollout.last_action_error}" if rollout.last_action_error else ""
    why = f"traffic not applied yet ({found}){refused}"
    return _overdue(rollout, policy, now) or _count_error(
        rollout,
        policy,
        now,
        why,
        f"applying traffic ({rollout.desired.describe()})",
        actions=[SetTraffic(split=rollout.desired)],
    )


def _count_error(
    rollout: Rollout,
    policy: RolloutPolicy,
    now: datetime,
    why: str,
    holding: str,
    *,
    actions: Sequence[Action] = (),
) -> Decision:
    """One more provider error in a row. Below the limit: `holding` (with `actions`, the order to
    repeat). At the limit: the policy's action in an exposed phase; a rollback that cannot be
    completed goes to a person, unless it was a newer version's supersede (that rollout owns the
    endpoint now, so this one simply ends)."""
    errors = rollout.consecutive_errors + 1
    counted = rollout.model_copy(update={"consecutive_errors": errors})
    evidence = [
        CheckResult(
            check="provider",
            verdict=Verdict.ERROR,
            summary=why,
            evidence={"consecutive_errors": errors, "limit": policy.consecutive_error_limit},
        )
    ]
    if errors >= policy.consecutive_error_limit:
        reason = f"{errors} provider errors in a row (limit {policy.consecutive_error_limit}): {why}"
        if rollout.phase in EXPOSED_PHASES:
            return on_policy_action(policy.on_provider_errors, counted, now, reason, evidence)
        if rollout.phase == P.ROLLING_BACK:
            return _rollback_impossible(counted, policy, now, f"{reason}; the rollback could not be completed")
    return make_decision(rollout, counted, now, holding, actions=actions, evidence=evidence)


def _rollback_impossible(rollout: Rollout, policy: RolloutPolicy, now: datetime, why: str) -> Decision:
    if rollout.finish_as == P.SUPERSEDED:
        return finish(rollout, policy, now, P.SUPERSEDED, f"{why}; traffic is left to the newer rollout")
    return pause(rollout, now, f"{why}; a person must decide")


def _endpoint_missing(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> Decision:
    missing = rollout.endpoint_missing + 1
    if missing < ENDPOINT_GONE_AFTER:
        counted = rollout.model_copy(update={"endpoint_missing": missing})
        overdue = _overdue(counted, policy, now)
        if overdue is not None:
            return overdue
        why = f"endpoint {rollout.endpoint.name} not found ({missing} of {ENDPOINT_GONE_AFTER} reads); looking again"
        return make_decision(rollout, counted, now, why)
    after = rollout.model_copy(update={"phase": P.FAILED, "finished_at": now, "endpoint_missing": missing})
    why = f"endpoint {rollout.endpoint.name} no longer exists ({missing} reads in a row found none)"
    return make_decision(rollout, after, now, why, events=[event(after, "Failed", why)])


def _rolling_back(rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState, now: datetime) -> Decision:
    actual = endpoint.traffic
    green_dry = actual.live_of(rollout.green) == 0 and actual.mirror_of(rollout.green) == 0
    busy_too_long = (
        _busy(endpoint)
        and rollout.endpoint_busy_since is not None
        and now - rollout.endpoint_busy_since >= ENDPOINT_UPDATE_PATIENCE
    )
    if green_dry and (not _busy(endpoint) or busy_too_long):
        # While an update runs the endpoint shows the split that still serves (the recorded
        # sessions): green dry there is green dry now. An update that never ends does not keep
        # the rollout (and the endpoint) from finishing once the patience is spent.
        finish_as = rollout.finish_as or P.ROLLED_BACK
        cause = rollout.rollback_reason or rollout.last_reason
        note = f"; the endpoint still reads {endpoint.provisioning_state}" if busy_too_long else ""
        return finish(rollout, policy, now, finish_as, f"{cause} (green holds no traffic{note})")
    if not _blue_can_serve(rollout, endpoint):
        why = (
            f"cannot roll back: blue {rollout.blue} no longer exists and green {rollout.green} serves "
            f"{actual.describe()} (promote-full keeps green, or restore blue and resume)"
        )
        return _rollback_impossible(rollout, policy, now, why)
    return _order_again(rollout, policy, now, endpoint)


def _pending(
    rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState, observation: Observation, now: datetime
) -> Decision:
    green = endpoint.deployment(rollout.green)
    waited = now - rollout.stage_started_at
    if green is None or green.provisioning_state in PROVISIONING_IN_PROGRESS:
        if waited > policy.provisioning_timeout:
            return fail_before_traffic(
                rollout,
                policy,
                now,
                f"green {rollout.green} was not ready within {format_duration(policy.provisioning_timeout)}",
            )
        if green is None:
            create = CreateDeployment(
                name=rollout.green,
                model=rollout.model,
                copy_from=rollout.blue,
                tags={ROLE_TAG: ROLE_CANDIDATE, ROLLOUT_TAG: rollout.id},
                instance_count=capacity.first_size(rollout, policy, endpoint),
            )
            return make_decision(rollout, rollout, now, f"creating green {rollout.green}", actions=[create])
        return hold(rollout, now, f"waiting for green {rollout.green} to be provisioned")
    if green.provisioning_state in PROVISIONING_FAILED or green.provisioning_state == "Deleting":
        return fail_before_traffic(
            rollout, policy, now, f"green {rollout.green} provisioning ended {green.provisioning_state}"
        )
    if green.provisioning_state != "Succeeded":  # a state we do not know is never taken for ready
        if waited > policy.provisioning_timeout:
            return fail_before_traffic(
                rollout,
                policy,
                now,
                f"green {rollout.green} was not ready within {format_duration(policy.provisioning_timeout)} "
                f"(state {green.provisioning_state})",
            )
        return hold(rollout, now, f"waiting for green {rollout.green} ({green.provisioning_state})")
    if rollout.blue and endpoint.deployment(rollout.blue) is None:
        return pause(rollout, now, f"blue {rollout.blue} no longer exists; a person must decide")
    # The smoke test comes first: a green that cannot answer is not worth comparing. Its pass is kept,
    # so it runs once, whatever the comparison at 0% then takes.
    smoke_evidence: list[CheckResult] = []
    smoke_sent = 0
    if policy.smoke_test is not None and rollout.smoke_passed is None:
        smoke = observation.smoke
        if smoke is None:
            # A test that cannot run (the app cannot reach the scoring URI) never passes; it fails
            # before traffic once it has not run for as long as green may take to become ready.
            if rollout.smoke_since is None:
                rollout = rollout.model_copy(update={"smoke_since": now})
            assert rollout.smoke_since is not None
            why = f": {observation.smoke_error}" if observation.smoke_error else ""
            if now - rollout.smoke_since > policy.provisioning_timeout:
                return fail_before_traffic(
                    rollout,
                    policy,
                    now,
                    f"the smoke test of green {rollout.green} could not run for "
                    f"{format_duration(policy.provisioning_timeout)}{why}",
                )
            if why:
                return hold(rollout, now, f"the smoke test of green {rollout.green} cannot run yet{why}")
            return hold(rollout, now, f"smoke-testing green {rollout.green}")
        smoke_evidence = [
            CheckResult(
                check="smoke",
                verdict=Verdict.FAIL if smoke.failed > policy.smoke_test.max_failures else Verdict.PASS,
                summary=f"{smoke.failed} of {smoke.sent} sample requests failed"
                + (f": {smoke.detail}" if smoke.detail else ""),
                evidence={
                    "sent": smoke.sent,
                    "failed": smoke.failed,
                    "max_failures": policy.smoke_test.max_failures,
                },
            )
        ]
        if smoke.failed > policy.smoke_test.max_failures:
            failed = fail_before_traffic(rollout, policy, now, f"smoke test failed: {smoke_evidence[0].summary}")
            return failed.model_copy(update={"evidence": tuple(smoke_evidence)})
        rollout = rollout.model_copy(update={"smoke_passed": True})
        smoke_sent = smoke.sent
    rollout, gate = shadow.before_mirror(rollout, policy, observation, now)
    if gate is not None:
        return gate
    if smoke_evidence:
        return _step_up(
            rollout, policy, endpoint, now, f"green ready; smoke test passed ({smoke_sent} requests)", smoke_evidence
        )
    return _step_up(rollout, policy, endpoint, now, f"green {rollout.green} is ready")


def _results(
    rollout: Rollout, policy: RolloutPolicy, observation: Observation, min_requests: int
) -> tuple[Rollout, tuple[CheckResult, ...]]:
    """The checks on this tick's window; blue's figures are kept for the bake as they come."""
    metrics = observation.metrics
    if metrics is None:
        return rollout, (CheckResult(check="metrics", verdict=Verdict.NO_DATA, summary="no metrics for the window"),)
    # Only a policy with a stage where blue serves beside green can compare in the bake.
    compare = rollout.blue is not None and (policy.mirror is not None or bool(policy.steps))
    results = analysis.analyse(policy, metrics, min_requests, compare, rollout.baseline)
    if (found := capacity.check_capacity(policy, metrics, rollout)) is not None:
        results = (*results, found)
        rollout = capacity.remember(rollout, found)
    rollout, model_results = shadow.model_checks(rollout, policy, observation)  # predictions, KPIs
    results += model_results
    baseline = analysis.record_baseline(policy, metrics, rollout.baseline)
    checks = tuple((r.check, str(r.verdict), r.summary[:300]) for r in results)
    rollout = rollout.model_copy(update={"baseline": baseline, "checks": checks})
    return rollout, results


def _failed(label: str, results: Sequence[CheckResult]) -> str:
    return f"{label} failed: " + "; ".join(f"{r.check}: {r.summary}" for r in results if r.verdict == Verdict.FAIL)


def _watch(rollout: Rollout, policy: RolloutPolicy, observation: Observation, now: datetime) -> Decision:
    """Waiting (for an approval, or a person who paused) is no shelter: while green holds traffic the
    window is judged as in any stage, for regressions only. A proven one rolls back (unless the
    policy says `while_paused: hold` and a person paused it); nothing advances."""
    window = analysis_window(rollout, policy, now)
    if window is None:
        return hold(rollout, now, rollout.last_reason)
    waiting = rollout.last_reason.split(" | judged while waiting: ")[0]
    if observation.metrics_error is not None:
        # Not counted towards a pause: the rollout already waits for a person; said, and kept.
        return hold(rollout, now, f"{waiting} | judged while waiting: cannot read metrics: {observation.metrics_error}")
    rollout, results = _results(rollout, policy, observation, min_requests=1)
    label = f"green at {rollout.desired.describe()} (while {rollout.phase})"
    if analysis.overall(results) == Verdict.FAIL:
        why = _failed(label, results)
        if rollout.phase == P.PAUSED and policy.while_paused == "hold":
            return hold(rollout, now, f"{waiting} | judged while waiting: {why}; held (while_paused: hold)", results)
        return begin_rollback(rollout, now, why, evidence=results)
    return hold(rollout, now, f"{waiting} | judged while waiting: no regression proven", results)


def _judge(
    rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState, observation: Observation, now: datetime
) -> Decision:
    green = endpoint.deployment(rollout.green)
    failed = green is not None and green.provisioning_state in PROVISIONING_FAILED
    if green is None or (failed and not capacity.keeps_failed_scale(rollout, endpoint)):
        state = "is gone" if green is None else f"is {green.provisioning_state}"
        return begin_rollback(rollout, now, f"green {rollout.green} {state}")
    if rollout.blue and endpoint.deployment(rollout.blue) is None and rollout.phase != P.BAKING:
        return pause(rollout, now, f"blue {rollout.blue} no longer exists; a person must decide")
    blue = endpoint.deployment(rollout.blue)
    if blue is not None and blue.provisioning_state in PROVISIONING_FAILED:
        # Rolling back onto a broken blue could hurt users more than holding: a person decides.
        return pause(rollout, now, f"blue {rollout.blue} is {blue.provisioning_state}; a person must decide")
    min_duration, max_duration, min_requests = stage_limits(policy, rollout)
    label = stage_label(policy, rollout.phase, rollout.step)
    window = analysis_window(rollout, policy, now)
    if window is None:  # the endpoint answered and holds our split: errors are no longer in a row
        return hold(
            rollout.model_copy(update={"consecutive_errors": 0}),
            now,
            f"observing {label}: a minute is judged {format_duration(policy.analysis.ingestion_lag)} after it ends",
        )
    if observation.metrics_error is not None:
        return _stalled(rollout, policy, now, f"cannot read metrics: {observation.metrics_error}")
    rollout = rollout.model_copy(update={"consecutive_errors": 0})
    rollout, results = _results(rollout, policy, observation, min_requests)
    verdict = analysis.overall(results)
    if verdict == Verdict.FAIL:
        return begin_rollback(rollout, now, _failed(label, results), evidence=results)
    soaked = now - rollout.stage_started_at
    judged = all(r.verdict in (Verdict.PASS, Verdict.INCONCLUSIVE) for r in results if r.required)
    if rollout.phase == P.BAKING and verdict == Verdict.INCONCLUSIVE and judged and soaked >= min_duration:
        # Blue serves nothing in the bake: green is compared with blue's minutes recorded in the
        # stages before, where it was proven within every margin beside blue. Across time that
        # comparison can rarely prove equivalence; the bake asks that it prove no regression.
        return _step_up(
            rollout,
            policy,
            endpoint,
            now,
            f"{label} passed: no regression proven against blue's recorded figures in {format_duration(soaked)}",
            results,
        )
    if verdict == Verdict.PASS:
        if soaked >= min_duration:
            return _step_up(rollout, policy, endpoint, now, f"{label} passed", results)
        return hold(
            rollout,
            now,
            f"{label}: every check proven within its margin; soaking until "
            f"{(rollout.stage_started_at + min_duration):%H:%M} UTC ({format_duration(min_duration)})",
            evidence=results,
        )
    if soaked > max_duration:
        why = (
            f"{label} reached no verdict within {format_duration(max_duration)} "
            f"({verdict}: {analysis.summarise(results)})"
        )
        return on_policy_action(policy.on_stage_timeout, rollout, now, why, results)
    pending = ", ".join(r.check for r in results if r.required and r.verdict != Verdict.PASS)
    return hold(rollout, now, f"holding {label}: {verdict} ({pending})", evidence=results)


def _final_roles(rollout: Rollout) -> dict[str, str]:
    if rollout.phase == P.SUCCEEDED:
        roles = {rollout.green: ROLE_PROD}
        if rollout.blue:
            roles[rollout.blue] = ROLE_OLD_PROD
        return roles
    return {rollout.green: ROLE_ROLLED_BACK}


def _cleanup(rollout: Rollout, observation: Observation, now: datetime) -> Decision:
    """Terminal phases absorb every input; only retained deployments are deleted when due, and
    role tags a crash may have lost are re-applied (never over a tag someone else has set since)."""
    if not rollout.cleanup or observation.endpoint_error is not None:
        return make_decision(rollout, rollout, now, rollout.last_reason)
    endpoint = observation.endpoint
    if endpoint is None and rollout.endpoint_missing + 1 < ENDPOINT_GONE_AFTER:
        # As for active rollouts, a not-found is believed only when reads in a row agree.
        counted = rollout.model_copy(update={"endpoint_missing": rollout.endpoint_missing + 1})
        return make_decision(rollout, counted, now, rollout.last_reason)
    if endpoint is not None and rollout.endpoint_missing:
        rollout = rollout.model_copy(update={"endpoint_missing": 0})
    keep: list[PendingDelete] = []
    actions: list[Action] = []
    notes: list[str] = []
    if endpoint is not None:
        for name, role in _final_roles(rollout).items():
            dep = endpoint.deployment(name)
            if dep is not None and dep.tags.get(ROLE_TAG) in (None, ROLE_CANDIDATE) and name == rollout.green:
                actions.append(TagDeployment(name=name, tags={ROLE_TAG: role}))
    for item in rollout.cleanup:
        dep = endpoint.deployment(item.deployment) if endpoint else None
        if dep is None:
            notes.append(f"{item.deployment} deleted")
            continue
        assert endpoint is not None
        if now < item.not_before:
            keep.append(item)
        elif endpoint.traffic.live_of(item.deployment) or endpoint.traffic.mirror_of(item.deployment):
            notes.append(f"kept {item.deployment}: it carries traffic again")
        else:
            keep.append(item)
            if dep.provisioning_state != "Deleting":
                actions.append(DeleteDeployment(name=item.deployment))
    after = rollout.model_copy(update={"cleanup": tuple(keep)})
    reason = "; ".join(notes) if notes else rollout.last_reason
    deletes = [a.name for a in actions if isinstance(a, DeleteDeployment)]
    if deletes:
        reason = "deleting " + ", ".join(deletes)
    return make_decision(rollout, after, now, reason, actions=actions)


# ---------------------------------------------------------------------------------------------


def decide_isolated(rollout: Rollout, observation: Observation, now: datetime, error: str) -> Decision:
    """A rollout whose stored policy snapshot cannot be read: it cannot be judged, so it is paused
    for a person (a rollback under way finishes, a pause stays one) under the default policy's
    limits, which only ever end it safely. The other rollouts never notice."""
    if rollout.phase.terminal or rollout.phase in (P.ROLLING_BACK, P.PAUSED, P.ABORTED):
        return decide(rollout, RolloutPolicy(), observation, now)
    why = f"its stored policy cannot be read ({error}); paused: a person can roll back or abort"
    return pause(rollout, now, why)
