"""One analysis rule per case: verdicts and the evidence people will read."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from shared.rollout.analysis import (
    CheckResult,
    DeploymentMetrics,
    Verdict,
    analyse,
    check_errors,
    check_latency,
    check_resource,
    overall,
)
from shared.rollout.policy import ErrorCheck, LatencyCheck, RolloutPolicy
from tests.builders import deployment_metrics, window

POLICY = RolloutPolicy()
ALPHA = POLICY.per_look_alpha()


def dm(
    requests: int, errors: int = 0, latency: tuple[float, ...] = (), kind: Literal["request", "minute"] = "request"
) -> DeploymentMetrics:
    return DeploymentMetrics(requests=requests, errors=errors, latency_ms=latency, latency_kind=kind)


@pytest.mark.parametrize(
    ("green", "blue", "compare", "verdict", "says"),
    [
        # too few requests is never a pass
        (dm(50, 0), dm(5000, 50), True, Verdict.NO_DATA, "50 requests; 200 needed"),
        (dm(500, 5), dm(100, 1), True, Verdict.NO_DATA, "blue served 100"),
        (dm(500, 5), None, True, Verdict.NO_DATA, "blue served 0"),
        # within the allowed increase: pass with the numbers
        (dm(2000, 20), dm(20000, 200), True, Verdict.PASS, "within +0.50%"),
        (dm(2000, 28), dm(20000, 200), True, Verdict.PASS, "green 1.40% vs blue 1.00%"),
        # a clear increase with enough data: fail
        (dm(5000, 175), dm(50000, 500), True, Verdict.FAIL, "exceeds +0.50%"),
        # higher, but too little data to be sure: inconclusive (hold)
        (dm(200, 6), dm(2000, 10), True, Verdict.INCONCLUSIVE, "not yet significant"),
        # absolute ceiling is a veto, even with no baseline
        (dm(1000, 300), None, False, Verdict.FAIL, "above the 5.00% ceiling"),
        (dm(1000, 10), None, False, Verdict.PASS, "no baseline"),
        # just above the ceiling on few requests is not yet significant, so no veto
        (dm(200, 11), None, False, Verdict.PASS, "within the ceiling"),
    ],
)
def test_error_rate_rules(green, blue, compare, verdict, says):
    result = check_errors(POLICY, window(green, blue), 200, compare, ALPHA)
    assert result.verdict == verdict, result.summary
    assert says in result.summary
    assert result.evidence["green_requests"] == green.requests


def test_error_failure_carries_test_and_p_value():
    result = check_errors(POLICY, window(dm(5000, 175), dm(50000, 500)), 200, True, ALPHA)
    assert result.evidence["test"] == "Fisher exact, one-sided"
    assert isinstance(result.evidence["p_value"], float)
    assert result.evidence["p_value"] < ALPHA
    assert result.evidence["blue_rate"] == pytest.approx(0.01)


def lat(rng: np.random.Generator, n: int, median: float, sigma: float = 0.3) -> tuple[float, ...]:
    return tuple(float(x) for x in rng.lognormal(np.log(median), sigma, n))


@pytest.mark.parametrize(
    ("green_ms", "blue_ms", "n_green", "n_blue", "verdict", "says"),
    [
        (100, 100, 2000, 10000, Verdict.PASS, "within +20%"),
        (110, 100, 2000, 10000, Verdict.PASS, "within +20%"),
        (200, 100, 2000, 10000, Verdict.FAIL, "exceeds +20%"),
        (150, 100, 1000, 5000, Verdict.FAIL, "exceeds +20%"),
        (150, 100, 20, 5000, Verdict.NO_DATA, "not enough"),
    ],
)
def test_latency_rules(green_ms, blue_ms, n_green, n_blue, verdict, says):
    rng = np.random.default_rng(7)
    green = dm(n_green, 0, lat(rng, n_green, green_ms))
    blue = dm(n_blue, 0, lat(rng, n_blue, blue_ms))
    result = check_latency(POLICY, window(green, blue), 200, True, ALPHA)
    assert result.verdict == verdict, result.summary
    assert says in result.summary


def test_latency_slower_but_not_significant_is_inconclusive():
    # Per-minute percentiles: a few samples, clearly slower on average, but not provably so.
    green = dm(1000, 0, (130.0, 90.0, 160.0, 100.0), kind="minute")
    blue = dm(5000, 0, (100.0, 95.0, 105.0, 98.0), kind="minute")
    result = check_latency(POLICY, window(green, blue), 200, True, ALPHA)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert result.evidence["test"] == "Mann-Whitney U, one-sided"


def test_latency_ceiling_is_a_veto_without_baseline():
    rng = np.random.default_rng(1)
    policy = RolloutPolicy(latency=LatencyCheck(ceiling_ms=150))
    green = dm(1000, 0, lat(rng, 1000, 300))
    result = check_latency(policy, window(green, None), 200, False, ALPHA)
    assert result.verdict == Verdict.FAIL
    assert "above the 150 ms ceiling" in result.summary


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ((50, 60, 95, 96, 97), Verdict.FAIL),
        ((95, 96, 97, 50), Verdict.PASS),  # a spike that ended
        ((95, 96), Verdict.NO_DATA),
    ],
)
def test_resource_ceiling_needs_sustained_breach(values, verdict):
    result = check_resource("cpu", values, 90, 3)
    assert result.verdict == verdict
    assert not result.required


def test_resource_without_data_never_blocks_but_failure_does():
    no_data = CheckResult(check="cpu", verdict=Verdict.NO_DATA, summary="", required=False)
    passing = CheckResult(check="errors", verdict=Verdict.PASS, summary="")
    failing = CheckResult(check="memory", verdict=Verdict.FAIL, summary="", required=False)
    assert overall([passing, no_data]) == Verdict.PASS
    assert overall([passing, no_data, failing]) == Verdict.FAIL
    assert overall([CheckResult(check="errors", verdict=Verdict.NO_DATA, summary=""), no_data]) == Verdict.NO_DATA


def test_with_every_comparison_disabled_volume_still_gates():
    policy = RolloutPolicy(errors=ErrorCheck(enabled=False), latency=LatencyCheck(enabled=False))
    results = analyse(policy, window(dm(10), None), 200, compare=False)
    assert overall(results) == Verdict.NO_DATA
    results = analyse(policy, window(dm(500), None), 200, compare=False)
    assert overall(results) == Verdict.PASS


# --- calibration ------------------------------------------------------------------------------

HEALTHY_WINDOWS = 2000


def test_calibration_healthy_windows_fail_within_the_budget():
    """Same distribution for blue and green: false fails must stay within the per-look budget."""
    rng = np.random.default_rng(20261122)
    policy = RolloutPolicy()
    fails = 0
    for _ in range(HEALTHY_WINDOWS):
        requests = int(rng.integers(200, 3000))
        blue = deployment_metrics(rng, requests * 5, samples=2000)
        green = deployment_metrics(rng, requests, samples=min(requests, 2000))
        results = analyse(policy, window(green, blue), 200, compare=True)
        fails += overall(results) == Verdict.FAIL
    # Each window is one look; the per-look budget is alpha * comparisons.
    budget = policy.per_look_alpha() * policy.comparisons() * HEALTHY_WINDOWS
    assert fails <= max(1, 3 * budget), f"{fails} false fails in {HEALTHY_WINDOWS} healthy windows"


@pytest.mark.parametrize(
    ("green_kw", "check"),
    [
        ({"latency_ms": 200.0}, "latency"),  # 2x latency
        ({"latency_ms": 150.0}, "latency"),  # 1.5x latency
        ({"error_rate": 0.04}, "errors"),  # +3 points of errors
    ],
)
def test_calibration_clear_regressions_fail(green_kw, check):
    rng = np.random.default_rng(3)
    detected = 0
    for _ in range(50):
        blue = deployment_metrics(rng, 10_000, samples=2000)
        green = deployment_metrics(rng, 2_000, **green_kw)
        results = {r.check: r for r in analyse(RolloutPolicy(), window(green, blue), 200, compare=True)}
        detected += results[check].verdict == Verdict.FAIL
    assert detected == 50


@pytest.mark.parametrize(
    ("tail_rate", "multiplier", "verdict"),
    [(0.0, 1.0, Verdict.PASS), (0.03, 4.0, Verdict.FAIL), (0.002, 1.3, Verdict.PASS)],
)
def test_tail_check_catches_a_slow_few_percent_that_p90_misses(tail_rate, multiplier, verdict):
    from shared.rollout.analysis import check_tail

    rng = np.random.default_rng(11)
    base = rng.lognormal(np.log(80), 0.35, 4000)
    green = rng.lognormal(np.log(80), 0.35, 2000)
    slow = rng.random(2000) < tail_rate
    green[slow] *= multiplier
    g, b = dm(2000, 0, tuple(green.tolist())), dm(4000, 0, tuple(base.tolist()))
    result = check_tail(POLICY, window(g, b), 200, True, ALPHA)
    assert result.verdict == verdict, result.summary
    assert not result.required  # a veto: it can fail a stage, never hold one
    if verdict == Verdict.FAIL:
        assert result.evidence["test"] == "Fisher exact on exceedances, one-sided"
        latency = check_latency(POLICY, window(g, b), 200, True, ALPHA)
        assert latency.verdict == Verdict.PASS  # the P90 check alone would have let it through


def test_tail_check_needs_per_request_samples():
    from shared.rollout.analysis import check_tail

    minutes = dm(1000, 0, (100.0,) * 10, kind="minute")
    assert check_tail(POLICY, window(minutes, minutes), 200, True, ALPHA).verdict == Verdict.NO_DATA
