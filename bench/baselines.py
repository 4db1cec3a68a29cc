"""The baselines of the detection benchmark, each built as its source describes it.

Flagger (https://docs.flagger.app): a control loop that runs its analysis every `interval`; each
metric check compares one value over the last `interval` with a `thresholdRange`; a failed check
(or a query that returns no values) increments the canary's failed-checks counter, which is not
reset during a canary run, and at `threshold` failed checks the canary is rolled back; every
passing check advances the weight by `stepWeight` until `maxWeight`, then the canary is promoted.
(docs.flagger.app/usage/deployment-strategies, "Canary Release"; docs.flagger.app/usage/metrics,
"Builtin metrics".) With `analysis.mirror: true` mirroring is "a pre-stage in a Canary release"
(docs.flagger.app/faq, "When can I use traffic mirroring?"): traffic is mirrored to the canary
"instead of shifted for one canary period", then shifting proceeds as usual (fluxcd/flagger,
pkg/controller, the commit that added TestScheduler_Mirroring).

- `flagger_docs`: the documented defaults: interval 1m, threshold 5, stepWeight 10, maxWeight 50,
  `request-success-rate` >= 99% (non-5xx: a 424 or 429 counts as a success) and
  `request-duration` (P99) <= a fixed threshold (1.5x the simulator's healthy P99, as before), no
  mirroring.
- `flagger_equal`: the same loop with our tolerances, as a custom `MetricTemplate` whose query
  compares the canary with the primary over the same minute: error rate (our policy's status
  codes) <= primary's + 0.5 points, P90 <= 1.2x primary's, P99 <= 1.5x primary's; and the mirror
  pre-stage (one interval, at the mirror percentage Safe Rollout uses).

rsethur/saferollout (github.com/rsethur/saferollout, .github/workflows/auto_saferollout.yml, with
the action github.com/rsethur/validate-metrics, metrics/validate_metrics.py): a GitHub workflow
that sets 10%, then (after the environment's 5-minute wait timer) runs validate-metrics twice over
the last `num_intervals: 2` minutes at `interval: PT1M`: `RequestsPerMinute` filtered on
`deployment eq '<rc>' and statusCodeClass ne '2xx'` with `metrics_condition: lte`, `threshold: 0`
(any non-2xx request of the new deployment fails), and `RequestLatency_P90` of the new deployment
`lte` a fixed threshold (30 ms for their model; here 1.2x the simulator's healthy P90: our latency
tolerance). Every per-minute value is compared; no series at all passes (`allow_empty_metrics`
defaults to True). A failed validation fails the job, so the later jobs never run: the traffic
stays where it is (no rollback). Passed: 50%, the same wait and validations, then 100% and the same
again, then the old deployment is deleted. (The stored version of auto_saferollout.yml defines the
10% validation jobs; the 50% and 100% ones it `needs` are modelled on them.)

Every baseline judges only minutes in which the split it last ordered was in force: an Azure
traffic update blocks until it is applied (`az ml online-endpoint update`), and the loop's timer
starts after that. Each returns (outcome, minute of the rollback or stop).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.simulator import Simulator
from shared.rollout.model import TrafficSplit

READY_AFTER = 5  # green's provisioning takes this long (minutes after the start)

# Flagger's documented canary analysis (docs.flagger.app/usage/deployment-strategies)
FLAGGER_THRESHOLD = 5
FLAGGER_STEP = 10
FLAGGER_MAX = 50
FLAGGER_SUCCESS_RATE = 0.99

# Our tolerances (the "catch" margins of Safe Rollout's default policy)
ERROR_TOLERANCE = 0.005  # points over blue
LATENCY_TOLERANCE = 0.2  # P90, relative to blue
TAIL_TOLERANCE = 0.5  # P99, relative to blue

# rsethur/saferollout auto_saferollout.yml
RSETHUR_STEPS = (10, 50, 100)
RSETHUR_WAIT = 5  # environment wait timer, minutes
RSETHUR_INTERVALS = 2  # num_intervals at PT1M


@dataclass(frozen=True)
class Thresholds:
    flagger_p99_ms: float  # docs-default Flagger's request-duration threshold
    rsethur_p90_ms: float  # rsethur's RequestLatency_P90 threshold
    error_codes: tuple[str, ...]  # what our policy counts as an error
    mirror_percent: int  # Safe Rollout's mirror percentage


def _split(green: int) -> TrafficSplit:
    if green >= 100:
        return TrafficSplit(live={"green": 100})
    return TrafficSplit(live={"blue": 100 - green, "green": green})


def _in_force(sim: Simulator, m: int, split: TrafficSplit) -> bool:
    return m >= 0 and sim.split_at(m) == split


def _flagger_check(sim: Simulator, m: int, equal: bool, th: Thresholds) -> bool:
    green = sim.minute("green", m)
    if green is None or green.requests == 0:
        return False  # "no values found for metric": a failed check
    if not equal:
        success = 1 - green.server_errors / green.requests
        return success >= FLAGGER_SUCCESS_RATE and green.percentile(99) <= th.flagger_p99_ms
    blue = sim.minute("blue", m)
    if blue is None or blue.requests == 0:
        return False
    g_rate = green.errors(th.error_codes) / green.requests
    b_rate = blue.errors(th.error_codes) / blue.requests
    return (
        g_rate <= b_rate + ERROR_TOLERANCE
        and green.percentile(90) <= (1 + LATENCY_TOLERANCE) * blue.percentile(90)
        and green.percentile(99) <= (1 + TAIL_TOLERANCE) * blue.percentile(99)
    )


def flagger(sim: Simulator, provisioning_fails: bool, th: Thresholds, *, equal: bool) -> tuple[str, int | None]:
    mirror = equal  # the equal-tolerance variant uses Flagger's mirror pre-stage
    weight, mirroring, failed = 0, False, 0
    current: TrafficSplit | None = None
    for minute in range(1, sim.horizon):
        sim.advance(minute)
        if minute < READY_AFTER:
            continue
        if provisioning_fails:
            return "failed", None
        if current is None:  # canary ready: first step (mirror pre-stage, or the first weight)
            if mirror:
                mirroring = True
                current = TrafficSplit(live={"blue": 100}, mirror={"green": th.mirror_percent})
            else:
                weight = FLAGGER_STEP
                current = _split(weight)
            sim.order(minute, current)
            continue
        if not _in_force(sim, minute - 1, current):
            continue  # the traffic update has not been applied for a whole interval yet
        if not _flagger_check(sim, minute - 1, equal, th):
            failed += 1  # never reset during the run
            if failed >= FLAGGER_THRESHOLD:
                sim.order(minute, _split(0))
                return "rolled back", minute
            continue
        if mirroring:
            mirroring, weight = False, FLAGGER_STEP
        elif weight < FLAGGER_MAX:
            weight += FLAGGER_STEP
        else:
            sim.order(minute, _split(100))  # promotion: all traffic to the new version
            return "promoted", None
        current = _split(weight)
        sim.order(minute, current)
    return "pending", None


def _rsethur_validate(sim: Simulator, end: int, th: Thresholds) -> bool:
    for m in range(end - RSETHUR_INTERVALS, end):
        green = sim.minute("green", m)
        if green is None or green.requests == 0:
            continue  # no series for that minute: passes
        if green.non_2xx > 0:  # RequestsPerMinute of non-2xx lte 0
            return False
        if green.percentile(90) > th.rsethur_p90_ms:  # RequestLatency_P90 lte threshold
            return False
    return True


def rsethur(sim: Simulator, provisioning_fails: bool, th: Thresholds) -> tuple[str, int | None]:
    minute = READY_AFTER
    sim.advance(minute)
    if provisioning_fails:
        return "failed", None
    for percent in RSETHUR_STEPS:
        split = _split(percent)
        sim.order(minute, split)
        sim.advance(minute + 1)
        while not _in_force(sim, minute, split) and minute < sim.horizon - 1:  # the update call blocks
            minute += 1
            sim.advance(minute + 1)
        minute += RSETHUR_WAIT  # the job ends when the update is applied; then the wait timer
        if minute >= sim.horizon:
            return "pending", None
        sim.advance(minute)
        if not _rsethur_validate(sim, minute, th):
            return "stopped", minute  # the workflow fails here; traffic stays where it is
    return "promoted", None
