"""Green's size per stage, the scale before each step, blue's shrink after success and its growth
back before an undo, and the capacity check. Pure functions of data: no clock, no Azure.

Sizing (policy `capacity:`; off without it, green then copies blue's size):
- proportional: green's share of the load at the stage (mirrored copies count: green serves them)
  times blue's count, rounded up, at least `min_instances`;
- absolute: the count the policy gives per stage;
then bounded by blue's count (green never outgrows the deployment it replaces) and by the
autoscale limits the deployment carries (a TargetUtilization scale setting's min/max instances).

Before a step up, green is scaled to the next stage's size and the step waits until Azure shows the
scale done (count reached, provisioning Succeeded). A scale Azure refuses or fails, or one slower
than `scale_timeout`, counts as a provider error with its reason: the rollout never steps onto too
few instances, and the limit on errors in a row still ends the wait. The stage keeps being judged
meanwhile (green serves its current share).

The capacity check compares green's CPU per instance with blue's over the same window, where green
carries a like load per instance (requests per instance per minute), with memory and 429s beside it.
Per-minute log CPU of each side, compared by the difference of means with an asymptotic confidence
sequence (Waudby-Smith, Arnold, Wu, Wang, Ramdas 2024, "Time-uniform central limit theory and
asymptotic confidence sequences", Annals of Statistics 52(6); boundary as in sequential.py), and
judged three-way with the same margins as the other checks.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from datetime import datetime

from shared.rollout import sequential
from shared.rollout.actions import Action, Decision, ScaleDeployment, SetTraffic
from shared.rollout.analysis import (
    MINUTE_TARGET,
    Budget,
    CheckResult,
    DeploymentMetrics,
    EvidenceValue,
    Verdict,
    WindowMetrics,
    _round,
    _three_way,
)
from shared.rollout.ledger import bound
from shared.rollout.model import InstanceSpan, Rollout, RolloutPhase, ScaleOrder
from shared.rollout.observation import PROVISIONING_FAILED, PROVISIONING_IN_PROGRESS, EndpointState
from shared.rollout.policy import RolloutPolicy, format_duration
from shared.rollout.sizing import first_size, green_size, load_ratio, shrink_old_blue, stage_share
from shared.rollout.stages import next_stage, stage_label
from shared.rollout.transitions import make_decision

P = RolloutPhase
# (rollout, why, holding, actions) -> a decision counting one more provider error (machine.py's).
CountError = Callable[[Rollout, str, str, Sequence[Action]], Decision]
MIN_CAPACITY_MINUTES = 3
# CPU grows with load; green's CPU is compared with blue's only while green carries no more load per
# instance than blue (within noise), so a higher CPU on green is green's own, never its load's.
MAX_LOAD_RATIO = 1.1
# The ratio the cost gate projects green's size with is taken only at a like load per instance.
LIKE_LOAD = 0.9
# re-exported: the sizing rules live in sizing.py (transitions.py needs them without this module)
__all__ = ["first_size", "green_size", "load_ratio", "shrink_old_blue", "stage_share"]


# -- what Azure shows: the ledger -----------------------------------------------------------------


def observe(rollout: Rollout, endpoint: EndpointState | None, now: datetime) -> Rollout:
    """Note green's and blue's sizes as seen (a change starts a new span; a deployment gone, 0), and
    blue's count while it serves (an undo scales it back to that)."""
    if endpoint is None:
        return rollout
    ledger = list(rollout.ledger)
    for name in (rollout.green, rollout.blue):
        if not name:
            continue
        dep = endpoint.deployment(name)
        last = next((s for s in reversed(ledger) if s.deployment == name.lower()), None)
        if dep is None:
            if last is not None and last.instances:
                ledger.append(
                    InstanceSpan(deployment=name.lower(), instance_type=last.instance_type, instances=0, since=now)
                )
            continue
        if dep.instance_count is None:
            continue
        kind = dep.instance_type or (last.instance_type if last else "unknown")
        if last is None or (last.instances, last.instance_type) != (dep.instance_count, kind):
            ledger.append(
                InstanceSpan(deployment=name.lower(), instance_type=kind, instances=dep.instance_count, since=now)
            )
    update: dict[str, object] = {}
    if tuple(ledger) != rollout.ledger:
        update["ledger"], update["ledger_folded"] = bound(rollout, ledger, now)  # older spans folded
    blue = endpoint.deployment(rollout.blue)
    if (
        blue is not None
        and blue.instance_count is not None
        and rollout.phase.active
        and rollout.phase != P.ROLLING_BACK
        and rollout.scaling is None
        and rollout.desired.live_of(rollout.blue) > 0  # only while blue serves users: not in the bake
        and blue.instance_count > (rollout.blue_instances or 0)  # the most it served with
    ):
        update["blue_instances"] = blue.instance_count
    return rollout.model_copy(update=update) if update else rollout


# -- the scale before a step ----------------------------------------------------------------------


def step_up(
    rollout: Rollout,
    policy: RolloutPolicy,
    endpoint: EndpointState,
    now: datetime,
    reason: str,
    evidence: Sequence[CheckResult],
    *,
    count_error: CountError,
    advance: Callable[[Rollout, str, Sequence[CheckResult]], Decision],
    gate: Callable[[Rollout, Sequence[CheckResult]], Decision | CheckResult | None],
) -> Decision:
    """Instead of stepping at once: green scaled to the next stage's size first (and the cost gate
    before full traffic); then `advance`."""

    def then(ready: Rollout, why: str) -> Decision:
        stop = gate(ready, evidence)
        if isinstance(stop, Decision):
            return stop
        return advance(ready, why, [*evidence, stop] if stop is not None else evidence)

    nxt = next_stage(rollout, policy, rollout.phase, rollout.step)
    if nxt is None or policy.capacity is None or not rollout.blue:
        return then(rollout, reason)
    green = endpoint.deployment(rollout.green)
    blue = endpoint.deployment(rollout.blue)
    label = stage_label(policy, nxt[0], nxt[1])
    if green is None or blue is None or green.instance_count is None or blue.instance_count is None:
        # Without both counts the size cannot be checked: never a step onto an unknown size.
        why = f"cannot read the instance counts of green {rollout.green} and blue {rollout.blue} before {label}"
        unread = rollout.scaling or ScaleOrder(deployment=rollout.green.lower(), instances=0, ordered_at=now)
        return _counted(rollout, unread, count_error, why, f"{reason}; {why}", ())
    base = rollout.blue_instances or blue.instance_count
    target = green_size(policy.capacity, policy, nxt[0], nxt[1], base, green.autoscale or blue.autoscale)
    order = rollout.scaling
    if order is not None and (order.deployment != rollout.green.lower() or order.instances != target):
        order = None  # an order for another size (or a stale one): ordered afresh below
    if green.instance_count >= target and green.provisioning_state == "Succeeded":
        done = rollout.model_copy(update={"scaling": None, "last_action_error": ""}) if rollout.scaling else rollout
        note = f"; green at {green.instance_count} instances" if rollout.scaling else ""
        return then(done, f"{reason}{note}")
    scale = ScaleDeployment(name=rollout.green, instances=target)
    what = f"scaling green {rollout.green} from {green.instance_count} to {target} instances before {label}"
    if order is None:
        ordered = rollout.model_copy(
            update={
                "scaling": ScaleOrder(deployment=rollout.green.lower(), instances=target, ordered_at=now),
                "last_action_error": "",
            }
        )
        return make_decision(rollout, ordered, now, f"{reason}; {what}", actions=[scale], evidence=evidence)
    waited = now - order.ordered_at
    refused = f": {rollout.last_action_error}" if rollout.last_action_error else ""
    if green.provisioning_state in PROVISIONING_FAILED:
        why = f"{what} failed (green is {green.provisioning_state}){refused}"
        return _counted(rollout, order, count_error, why, f"{why}; ordering the scale again", (scale,))
    busy = green.provisioning_state in PROVISIONING_IN_PROGRESS
    if waited > policy.capacity.scale_timeout:
        limit = format_duration(policy.capacity.scale_timeout)
        why = f"{what}: not done after {format_duration(waited)} (limit {limit}; green is {green.provisioning_state})"
        return _counted(rollout, order, count_error, why, why, () if busy else (scale,))
    if not busy and (rollout.last_action_error or green.instance_count != target):
        # Azure refused the order (quota, a 409 while another operation ran) or never started it.
        shows = refused or f" (green still shows {green.instance_count})"
        why = f"{what}: the scale is not under way{shows}"
        return _counted(rollout, order, count_error, why, f"{why}; ordering it again", (scale,))
    return make_decision(
        rollout,
        rollout,
        now,
        f"{reason}; waiting for Azure: {what} (green is {green.provisioning_state})",
        evidence=evidence,
    )


def _counted(
    rollout: Rollout, order: ScaleOrder, count_error: CountError, why: str, holding: str, actions: Sequence[Action]
) -> Decision:
    """One more provider error on the scale waited for: counted on the order, since judging the stage
    each tick resets the rollout's own count."""
    counted = rollout.model_copy(
        update={
            "consecutive_errors": order.failures,
            "scaling": order.model_copy(update={"failures": order.failures + 1}),
        }
    )
    return count_error(counted, why, holding, actions)


def keeps_failed_scale(rollout: Rollout, endpoint: EndpointState) -> bool:
    """Green shows Failed because our scale failed (not its provisioning): a provider error for
    step_up to count and retry, not a broken green to roll back from at once."""
    green = endpoint.deployment(rollout.green)
    order = rollout.scaling
    return (
        green is not None
        and order is not None
        and order.purpose == "step"
        and order.deployment == rollout.green.lower()
        and green.provisioning_state in PROVISIONING_FAILED
        and green.instance_count is not None
        and green.instance_count >= 1
    )


# -- blue after success, and back before an undo --------------------------------------------------


def scale_back_first(rollout: Rollout, policy: RolloutPolicy, undo: Decision, now: datetime) -> Decision:
    """An undo of a promotion whose old blue was ordered to shrink (or was seen below its size):
    blue is scaled back to its size first; the traffic order waits for it (await_blue). Decided
    from the order, not the ledger: the shrink ordered at success may not be seen yet."""
    if not rollout.blue or rollout.blue_instances is None:
        return undo
    if not shrink_old_blue(rollout, policy) and not _shrunk(rollout):
        return undo
    waiting = undo.rollout.model_copy(
        update={
            "scaling": ScaleOrder(
                deployment=rollout.blue.lower(), instances=rollout.blue_instances, ordered_at=now, purpose="undo"
            ),
            "traffic_confirmed": False,
        }
    )
    actions = [a for a in undo.actions if a.kind != "traffic"]
    why = (
        f"{undo.reason}; scaling blue {rollout.blue} back to {rollout.blue_instances} instances before traffic returns"
    )
    return undo.model_copy(
        update={
            "rollout": waiting,
            "actions": (ScaleDeployment(name=rollout.blue, instances=rollout.blue_instances), *actions),
            "reason": why,
        }
    )


def _shrunk(rollout: Rollout) -> bool:
    last = next((s for s in reversed(rollout.ledger) if rollout.blue and s.deployment == rollout.blue.lower()), None)
    return last is not None and rollout.blue_instances is not None and 0 < last.instances < rollout.blue_instances


def await_blue(
    rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState, now: datetime, *, count_error: CountError
) -> Decision | None:
    """During an undo: until blue is back at its size, traffic stays on green (None once it is, the
    rollback then orders the traffic as usual)."""
    order = rollout.scaling
    if order is None or order.purpose != "undo":
        return None
    blue = endpoint.deployment(order.deployment)
    if blue is None:
        return None  # nothing to wait for: the rollback reports a missing blue itself
    if (blue.instance_count or 0) >= order.instances and blue.provisioning_state == "Succeeded":
        ready = rollout.model_copy(update={"scaling": None, "last_action_error": ""})
        why = f"blue {order.deployment} is back at {blue.instance_count} instances; moving traffic back to it"
        return make_decision(rollout, ready, now, why, actions=[SetTraffic(split=ready.desired)])
    scale = ScaleDeployment(name=order.deployment, instances=order.instances)
    what = f"scaling blue {order.deployment} back to {order.instances} instances before traffic returns"
    waited = now - order.ordered_at
    cap = policy.capacity.scale_timeout if policy.capacity is not None else None
    if blue.provisioning_state in PROVISIONING_FAILED or (cap is not None and waited > cap):
        how = "failed" if blue.provisioning_state in PROVISIONING_FAILED else "too slow"
        why = f"{what}: {how} (blue is {blue.provisioning_state})"
        return count_error(rollout, why, f"{why}; ordering it again", (scale,))
    if blue.provisioning_state not in PROVISIONING_IN_PROGRESS and blue.instance_count != order.instances:
        # Refused while another operation ran (blue's own shrink, a 409), or never started: again.
        why = f"{what}: not under way (blue shows {blue.instance_count}); ordering it again"
        return make_decision(rollout, rollout, now, why, actions=[scale])
    return make_decision(rollout, rollout, now, f"waiting for Azure: {what} (blue is {blue.provisioning_state})")


# -- the capacity check ---------------------------------------------------------------------------


def window_instances(rollout: Rollout, name: str | None, start: datetime, end: datetime) -> float | None:
    """A deployment's instance count over a window, weighted by time (a scale within it counts from
    when it was seen ordered: an overestimate while it runs, so green's load reads lower, never higher)."""
    if not name or end <= start:
        return None
    spans = [s for s in rollout.ledger if s.deployment == name.lower()]
    total = 0.0
    for i, span in enumerate(spans):
        until = spans[i + 1].since if i + 1 < len(spans) else end
        lo, hi = max(span.since, start), min(until, end)
        if hi > lo:
            total += span.instances * (hi - lo).total_seconds()
    if total <= 0:
        last = [s for s in spans if s.since <= end]
        return float(last[-1].instances) if last and last[-1].instances > 0 else None
    return total / (end - start).total_seconds()


def _per_instance_rpm(d: DeploymentMetrics, instances: float) -> float:
    minutes = max(1, len(d.minutes))
    return d.requests / minutes / instances


def check_capacity(policy: RolloutPolicy, metrics: WindowMetrics, rollout: Rollout) -> CheckResult | None:
    """Green's per-instance load against blue's; None when the policy has no capacity check.

    Required (it holds the stage until proven, or the stage's timeout) in a canary step while blue
    serves live traffic and green's load per instance is like blue's: the last place before green
    gets all users where the comparison means something. Elsewhere, and where the loads are unlike
    (not applicable by design), a veto only: it can fail a stage, never hold one."""
    cap = policy.capacity
    if cap is None or not cap.check.enabled:
        return None
    settings = cap.check
    green, blue = metrics.green, metrics.blue
    g_n = window_instances(rollout, rollout.green, metrics.start, metrics.end)
    b_n = window_instances(rollout, rollout.blue, metrics.start, metrics.end)
    evidence: dict[str, EvidenceValue] = {
        "green_instances": None if g_n is None else _round(g_n),
        "blue_instances": None if b_n is None else _round(b_n),
    }
    live = rollout.phase == P.CANARY and rollout.desired.live_of(rollout.blue) > 0

    def unjudged(verdict: Verdict, summary: str, required: bool) -> CheckResult:
        return CheckResult(check="capacity", verdict=verdict, summary=summary, evidence=evidence, required=required)

    if blue is None or blue.requests == 0 or g_n is None or b_n is None:
        if live:  # blue serves users, yet no load or count of it is known: held, never passed
            return unjudged(Verdict.NO_DATA, "no blue load or instance count to compare green's with", True)
        # Blue serves nothing (the bake): not applicable here; the stages before compared it.
        return unjudged(Verdict.NO_DATA, "not applicable: blue serves no load to compare green's with", False)
    g_rpi, b_rpi = _per_instance_rpm(green, g_n), _per_instance_rpm(blue, b_n)
    evidence |= {
        "green_rpm_per_instance": _round(g_rpi),
        "blue_rpm_per_instance": _round(b_rpi),
        "green_memory": _round(statistics.fmean(green.memory_percent)) if green.memory_percent else None,
        "blue_memory": _round(statistics.fmean(blue.memory_percent)) if blue.memory_percent else None,
        "green_throttled": green.throttled,
        "blue_throttled": blue.throttled,
    }
    load = g_rpi / b_rpi if b_rpi > 0 else math.inf
    if math.isfinite(load):
        evidence["load_ratio"] = _round(load)
    if load > MAX_LOAD_RATIO:
        return unjudged(
            Verdict.NO_DATA,
            f"not applicable: green's instances carry {g_rpi:.0f} req/min each, more than blue's {b_rpi:.0f}; "
            "compared in the stages where green carries no more than blue per instance",
            False,
        )
    if load < settings.min_load_ratio:
        return unjudged(
            Verdict.NO_DATA,
            f"not applicable: green's instances carry {g_rpi:.0f} req/min each, blue's {b_rpi:.0f}: too light "
            f"a load to compare (at least {settings.min_load_ratio:.0%} of blue's)",
            False,
        )
    g_cpu = [math.log(v) for v in green.cpu_percent if v > 0]
    b_cpu = [math.log(v) for v in blue.cpu_percent if v > 0]
    if len(g_cpu) < MIN_CAPACITY_MINUTES or len(b_cpu) < MIN_CAPACITY_MINUTES:
        return unjudged(
            Verdict.NO_DATA,
            f"{min(len(g_cpu), len(b_cpu))} minutes of CPU on each side; {MIN_CAPACITY_MINUTES} needed",
            live,
        )
    floor = 0.05**2  # a few identical minutes prove nothing (as analysis.MIN_MINUTE_LOG_SD)
    var = max(floor, _var(g_cpu)) / len(g_cpu) + max(floor, _var(b_cpu)) / len(b_cpu)
    mean = statistics.fmean(g_cpu) - statistics.fmean(b_cpu)
    budget = Budget(alpha=policy.check_alpha(), beta=policy.analysis.missed_regression_rate)
    bound = sequential.mean_bounds(
        mean, var, alpha_lower=budget.alpha, alpha_upper=budget.beta, v_opt=MINUTE_TARGET / len(g_cpu) / var
    )
    lower, upper, estimate = math.expm1(bound.lower), math.expm1(bound.upper), math.expm1(mean)
    g_typ, b_typ = math.exp(statistics.fmean(g_cpu)), math.exp(statistics.fmean(b_cpu))
    evidence |= {
        "green_cpu": _round(g_typ),
        "blue_cpu": _round(b_typ),
        "cpu_ratio": _round(1 + estimate),
        "lower": _round(lower),
        "upper": _round(upper),
        "leave_alone": settings.leave,
        "max_increase": settings.max_increase,
        "method": "confidence sequence on the difference of mean per-minute log CPU (asymptotic CS)",
    }
    what = (
        f"green CPU {g_typ:.0f}% per instance at {g_rpi:.0f} req/min vs blue {b_typ:.0f}% at {b_rpi:.0f} req/min"
        f" ({1 + estimate:.2f}x)"
    )
    result = _three_way("capacity", lower, upper, settings.leave, settings.max_increase, "ratio", what, evidence)
    result = result.model_copy(update={"required": live})
    if green.throttled and green.requests and blue.requests:
        g_rate, b_rate = green.throttled / green.requests, blue.throttled / blue.requests
        if g_rate > 0.01 and g_rate > 2 * b_rate and result.verdict != Verdict.FAIL:
            # Throttling is the errors check's to judge (429 counts as an error by default); here it
            # only keeps a capacity pass from standing while green sheds load.
            return result.model_copy(
                update={
                    "verdict": Verdict.INCONCLUSIVE,
                    "summary": f"{what}; green answers {g_rate:.1%} of requests with 429 (blue {b_rate:.1%})",
                }
            )
    return result


def remember(rollout: Rollout, result: CheckResult) -> Rollout:
    """Keep the CPU ratio the check measured (the cost gate projects green's size with it later,
    when green carries more per instance than blue and the check cannot measure)."""
    ratio, load = load_ratio([result]), result.evidence.get("load_ratio")
    if ratio is None or not isinstance(load, int | float) or load < LIKE_LOAD:
        return rollout  # measured with green lighter than blue per instance: says little of its needs
    return rollout.model_copy(update={"capacity_ratio": ratio})


def _var(values: Sequence[float]) -> float:
    return statistics.variance(values) if len(values) > 1 else 0.0
