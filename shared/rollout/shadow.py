"""Where the model checks join a stage's checks (hooks of machine.py; pure).

- The prediction comparison (predictions.py) is judged while green is mirrored and serves no user
  (and, with `before_mirror`, at 0% before the mirror): scoring both deployments costs requests, and
  once green serves users its own answers are judged by the KPIs. The mirror stage passes only when
  the comparison passes; a proven disagreement rolls back in the shadow.
- KPI checks (kpi.py) are judged wherever blue and green both serve users (the canary steps): a
  business figure needs users on both sides.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.rollout import analysis, kpi, predictions
from shared.rollout.actions import Decision
from shared.rollout.analysis import Budget, CheckResult, Verdict
from shared.rollout.model import Rollout, RolloutPhase
from shared.rollout.observation import Observation
from shared.rollout.policy import RolloutPolicy, format_duration
from shared.rollout.tally import PredictionTally
from shared.rollout.transitions import fail_before_traffic, hold


def _budget(policy: RolloutPolicy) -> Budget:
    return Budget(alpha=policy.check_alpha(), beta=policy.analysis.missed_regression_rate)


def comparing_predictions(rollout: Rollout, policy: RolloutPolicy) -> bool:
    """Whether the shell should score inputs on both deployments now."""
    check = policy.predictions
    if check is None or rollout.blue is None:
        return False
    split = rollout.desired
    if rollout.phase == RolloutPhase.PENDING:
        return check.before_mirror
    return bool(split.mirror_of(rollout.green)) and not split.live_of(rollout.green)


def judging_kpis(rollout: Rollout, policy: RolloutPolicy) -> bool:
    """Whether the KPI queries should be run now: blue and green both serve users."""
    split = rollout.desired
    return bool(policy.kpis and rollout.blue and split.live_of(rollout.green) and split.live_of(rollout.blue))


def fold_scored(rollout: Rollout, policy: RolloutPolicy, observation: Observation) -> Rollout:
    """This tick's scored pairs added to the tally, whatever the tick decides (a tick that cannot
    judge yet, waiting for its first settled minute, keeps them: they were paid for)."""
    check = policy.predictions
    batch = observation.predictions
    if check is None or batch is None or not comparing_predictions(rollout, policy):
        return rollout
    if (
        rollout.predictions is not None
        and rollout.predictions.last_at is not None
        and batch.at <= rollout.predictions.last_at
    ):
        return rollout  # already counted (the same observation decided twice)
    return rollout.model_copy(update={"predictions": predictions.fold(rollout.predictions, check, batch)})


def _prediction_results(
    rollout: Rollout, policy: RolloutPolicy, observation: Observation
) -> tuple[Rollout, tuple[CheckResult, ...]]:
    check = policy.predictions
    assert check is not None
    results = predictions.judge(check, rollout.predictions, _budget(policy))
    if observation.predictions_error is not None and analysis.overall(results) != Verdict.FAIL:
        results += (
            CheckResult(
                check="prediction_inputs",
                verdict=Verdict.NO_DATA,
                summary=f"cannot score inputs this tick: {observation.predictions_error}"[:300],
            ),
        )
    return rollout, results


def model_checks(
    rollout: Rollout, policy: RolloutPolicy, observation: Observation
) -> tuple[Rollout, tuple[CheckResult, ...]]:
    """The prediction and KPI checks that apply to this tick's window (none for other policies)."""
    results: tuple[CheckResult, ...] = ()
    if comparing_predictions(rollout, policy):
        rollout, results = _prediction_results(rollout, policy, observation)
    if judging_kpis(rollout, policy):
        assert rollout.blue is not None
        results += kpi.judge(policy.kpis, observation.kpis, rollout.blue, rollout.green, _budget(policy))
    return rollout, results


def pre_mirror_limit(policy: RolloutPolicy) -> timedelta:
    """How long the comparison at 0% may go on: the mirror stage's max_duration (the first stage's
    if there is no mirror stage)."""
    if policy.mirror is not None:
        return policy.mirror.max_duration
    return policy.steps[0].max_duration if policy.steps else policy.bake.max_duration


def _no_pass_coming(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> str:
    """Why the comparison at 0% will not pass any more ('' while it still may)."""
    check, t = policy.predictions, rollout.predictions
    assert check is not None
    assert t is not None
    assert t.started_at is not None
    if t.scored >= check.max_requests_per_stage:
        return f"the stage's budget of {check.max_requests_per_stage} inputs is spent without a pass"
    if t.exhausted and check.inputs.data_collector is None:  # collected inputs may still come
        return f"the sample is exhausted after {t.scored} inputs without a pass"
    limit = pre_mirror_limit(policy)
    if now - t.started_at > limit:
        return f"no pass within {format_duration(limit)} (the mirror stage's max_duration)"
    return ""


def before_mirror(
    rollout: Rollout, policy: RolloutPolicy, observation: Observation, now: datetime
) -> tuple[Rollout, Decision | None]:
    """At 0% before the mirror: hold until the comparison passes; a proven disagreement fails the
    rollout before any traffic, and so does a comparison that cannot pass any more (its budget
    spent, its sample exhausted, or the mirror stage's max_duration past since it began): green
    never served users. No decision: go on (no such comparison, or it passed), with the rollout
    holding this tick's pairs."""
    if policy.predictions is None or not policy.predictions.before_mirror or rollout.blue is None:
        return rollout, None
    if rollout.predictions is None or rollout.predictions.started_at is None:  # the clock starts now
        begun = (rollout.predictions or PredictionTally()).model_copy(update={"started_at": now})
        rollout = rollout.model_copy(update={"predictions": begun})
    rollout, results = _prediction_results(rollout, policy, observation)
    verdict = analysis.overall(results)
    if verdict == Verdict.PASS:
        return rollout, None
    if verdict == Verdict.FAIL:
        failed = "; ".join(f"{r.check}: {r.summary}" for r in results if r.verdict == Verdict.FAIL)
        decision = fail_before_traffic(rollout, policy, now, f"prediction comparison at 0% failed: {failed}")
        return rollout, decision.model_copy(update={"evidence": results})
    pending = ", ".join(r.check for r in results if r.required and r.verdict != Verdict.PASS)
    if why_not := _no_pass_coming(rollout, policy, now):
        reason = f"prediction comparison at 0% cannot pass: {why_not} ({verdict}: {pending}); green served no user"
        decision = fail_before_traffic(rollout, policy, now, reason)
        return rollout, decision.model_copy(update={"evidence": results})
    why = f"comparing green's predictions with blue's at 0%: {verdict} ({pending})"
    return rollout, hold(rollout, now, why, results)
