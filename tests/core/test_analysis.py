"""The checks: three outcomes from bounds that hold at every look, per request and per minute, the
bake against blue's recorded figures, and never a pass without proof."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from shared.rollout.analysis import (
    MIN_MINUTE_REQUESTS,
    DeploymentMetrics,
    MinuteSample,
    Verdict,
    WindowMetrics,
    analyse,
    check_resource,
    overall,
    record_baseline,
)
from shared.rollout.policy import RolloutPolicy
from tests.builders import T0, deployment_metrics, window

POLICY = RolloutPolicy()


def by_check(results, name):
    return next(r for r in results if r.check == name)


def traffic(
    rng: np.random.Generator,
    minutes: int,
    rpm: float,
    *,
    error_rate: float = 0.002,
    latency_ms: float = 80.0,
    sigma: float = 0.35,
    tail_rate: float = 0.0,
    tail_factor: float = 4.0,
    kind: str = "request",
    noise: np.ndarray | None = None,
) -> DeploymentMetrics:
    """Minute-by-minute traffic of one deployment; `noise` (log-latency per minute) is shared with
    the other deployment when given, as load and downstream slowness are."""
    samples: list[float] = []
    out: list[MinuteSample] = []
    errors_total = 0
    for m in range(minutes):
        n = int(rng.poisson(rpm))
        shift = float(noise[m]) if noise is not None else 0.0
        lat = rng.lognormal(np.log(latency_ms) + shift, sigma, n)
        slow = rng.random(n) < tail_rate
        lat[slow] *= tail_factor
        errors = int(rng.binomial(n, error_rate))
        errors_total += errors
        samples += lat.tolist()
        out.append(
            MinuteSample(
                at=T0 + timedelta(minutes=m),
                requests=n,
                errors=errors,
                latency_ms=float(np.percentile(lat, 90)) if n else None,
                tail_ms=float(np.percentile(lat, 99)) if n else None,
            )
        )
    requests = sum(m.requests for m in out)
    if kind == "minute":
        values = tuple(m.latency_ms for m in out if m.latency_ms is not None)
        return DeploymentMetrics(
            requests=requests, errors=errors_total, latency_ms=values, latency_kind="minute", minutes=tuple(out)
        )
    if len(samples) > 5000:  # the traffic log is sampled as production samples it
        samples = rng.choice(np.asarray(samples), 5000, replace=False).tolist()
    return DeploymentMetrics(requests=requests, errors=errors_total, latency_ms=tuple(samples), minutes=tuple(out))


def mirror_window(rng, minutes=10, kind="request", **green_kw) -> WindowMetrics:
    """Mirror at 20% of a 1,200 rpm endpoint: blue serves everyone, green a fifth of the copies."""
    noise = rng.normal(0, 0.1, minutes)
    blue = traffic(rng, minutes, 1200, kind=kind, noise=noise)
    green = traffic(rng, minutes, 240, kind=kind, noise=noise, **green_kw)
    return WindowMetrics(start=T0, end=T0 + timedelta(minutes=minutes), green=green, blue=blue)


# --- three outcomes -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["request", "minute"])
def test_a_healthy_green_is_proven_within_every_margin(kind):
    results = analyse(POLICY, mirror_window(np.random.default_rng(1), minutes=15, kind=kind), 200, compare=True)
    assert overall(results) == Verdict.PASS, [r.summary for r in results]
    latency = by_check(results, "latency")
    assert latency.evidence["upper"] <= POLICY.latency.max_increase
    # With 240 requests a minute the P90 is compared minute by minute even with a traffic log
    # (pairing cancels what load does to both); the P99 per request when there is one.
    assert latency.evidence["blue_source"] == "paired by minute"
    tail = by_check(results, "tail")
    assert tail.evidence["sample_kind"] == kind


def test_at_low_traffic_the_p90_is_compared_per_request():
    rng = np.random.default_rng(13)
    noise = np.zeros(30)
    blue = traffic(rng, 30, 54, noise=noise)
    green = traffic(rng, 30, 6, noise=noise)  # six requests a minute: per-minute P90s mean little
    latency = by_check(analyse(POLICY, WindowMetrics(start=T0, end=T0, green=green, blue=blue), 100, True), "latency")
    assert latency.evidence["sample_kind"] == "request"
    assert latency.evidence["method"].startswith("quantile")


@pytest.mark.parametrize("kind", ["request", "minute"])
@pytest.mark.parametrize(
    ("green_kw", "check"),
    [
        ({"latency_ms": 160.0}, "latency"),  # 2x
        ({"error_rate": 0.022}, "errors"),  # +2 points
        ({"tail_rate": 0.03, "tail_factor": 4.0}, "tail"),  # 3% of requests 4x slower: P90 barely moves
    ],
)
def test_regressions_are_proven_within_minutes_in_both_modes(kind, green_kw, check):
    results = analyse(POLICY, mirror_window(np.random.default_rng(2), minutes=10, kind=kind, **green_kw), 200, True)
    failed = by_check(results, check)
    assert failed.verdict == Verdict.FAIL, failed.summary
    assert failed.evidence["lower"] > failed.evidence["leave_alone"]
    assert "proven worse" in failed.summary


def test_a_tail_only_regression_passes_p90_and_fails_the_tail():
    results = analyse(POLICY, mirror_window(np.random.default_rng(3), minutes=10, tail_rate=0.03), 200, True)
    assert by_check(results, "latency").verdict != Verdict.FAIL
    assert by_check(results, "tail").verdict == Verdict.FAIL


def test_between_the_margins_the_stage_keeps_collecting():
    """+0.35 points of errors: more than the 0.25 left alone, less than the 0.5 to catch. Early on,
    neither is proven: the stage neither passes nor rolls back."""
    results = analyse(POLICY, mirror_window(np.random.default_rng(4), minutes=5, error_rate=0.0055), 200, True)
    errors = by_check(results, "errors")
    assert errors.verdict == Verdict.INCONCLUSIVE
    assert errors.evidence["lower"] <= errors.evidence["leave_alone"] < errors.evidence["max_increase"]
    assert errors.evidence["upper"] > errors.evidence["max_increase"]
    assert overall(results) == Verdict.INCONCLUSIVE


def test_the_evidence_says_the_bounds_in_words():
    results = analyse(POLICY, mirror_window(np.random.default_rng(5), minutes=5, latency_ms=160.0), 200, True)
    latency = by_check(results, "latency")
    assert "proven worse than the 1.10x left alone" in latency.summary
    assert "bounds" in latency.summary
    assert {"lower", "upper", "leave_alone", "max_increase", "alpha", "beta"} <= set(latency.evidence)


# --- never a pass without proof ----------------------------------------------------------------


def test_too_few_requests_is_no_data_never_a_pass():
    rng = np.random.default_rng(6)
    results = analyse(POLICY, window(deployment_metrics(rng, 50), deployment_metrics(rng, 5000)), 200, True)
    assert overall(results) == Verdict.NO_DATA


def test_nothing_to_compare_with_holds_the_stage():
    rng = np.random.default_rng(7)
    green = traffic(rng, 10, 1200)
    empty_blue = DeploymentMetrics(requests=0, errors=0)
    results = analyse(POLICY, WindowMetrics(start=T0, end=T0, green=green, blue=empty_blue), 100, True)
    assert by_check(results, "errors").verdict == Verdict.NO_DATA
    assert "blue served no requests" in by_check(results, "errors").summary
    assert overall(results) == Verdict.NO_DATA


def test_per_minute_percentiles_from_a_handful_of_requests_are_not_used():
    rng = np.random.default_rng(8)
    noise = np.zeros(30)
    blue = traffic(rng, 30, 60, kind="minute", noise=noise)
    green = traffic(rng, 30, 6, kind="minute", noise=noise)  # 10% of 60 rpm: six requests a minute
    results = analyse(POLICY, WindowMetrics(start=T0, end=T0, green=green, blue=blue), 100, True)
    latency = by_check(results, "latency")
    assert latency.verdict == Verdict.NO_DATA
    assert f"at least {MIN_MINUTE_REQUESTS} requests" in latency.summary


def test_with_every_comparison_disabled_volume_still_gates():
    policy = RolloutPolicy.model_validate(
        {"errors": {"enabled": False}, "latency": {"enabled": False}, "tail_latency": {"enabled": False}}
    )
    rng = np.random.default_rng(9)
    few = analyse(policy, window(deployment_metrics(rng, 10), None), 200, compare=False)
    assert overall(few) == Verdict.NO_DATA


def test_a_first_deployment_has_ceilings_only():
    rng = np.random.default_rng(10)
    results = analyse(POLICY, window(deployment_metrics(rng, 5000, error_rate=0.2), None), 100, compare=False)
    errors = by_check(results, "errors")
    assert errors.verdict == Verdict.FAIL
    assert "proven above the 5.00% ceiling" in errors.summary


@pytest.mark.parametrize(("values", "verdict"), [((95, 96, 97), Verdict.FAIL), ((95, 80, 97), Verdict.PASS)])
def test_resource_ceiling_needs_a_sustained_breach(values, verdict):
    assert check_resource("cpu", values, 90, 3).verdict == verdict


# --- the bake: blue's recorded figures ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["request", "minute"])
def test_the_bake_judges_green_against_blues_recorded_figures(kind):
    rng = np.random.default_rng(11)
    earlier = mirror_window(rng, minutes=15, kind=kind)
    baseline = record_baseline(POLICY, earlier, None)
    assert baseline is not None
    assert baseline.requests == earlier.blue.requests
    for green_kw, verdict in (({}, {Verdict.PASS}), ({"latency_ms": 160.0}, {Verdict.FAIL})):
        green = traffic(rng, 10, 1200, kind=kind, **green_kw)
        bake = WindowMetrics(start=T0, end=T0, green=green, blue=DeploymentMetrics(requests=0, errors=0))
        results = analyse(POLICY, bake, 100, True, baseline)
        latency = by_check(results, "latency")
        assert latency.verdict in verdict, latency.summary
        assert "recorded" in latency.evidence["blue_source"]


def test_a_window_without_blue_keeps_the_recorded_figures():
    rng = np.random.default_rng(12)
    baseline = record_baseline(POLICY, mirror_window(rng), None)
    green_only = WindowMetrics(start=T0, end=T0, green=traffic(rng, 5, 1200), blue=None)
    assert record_baseline(POLICY, green_only, baseline) == baseline


# --- calibration: looks every minute spend nothing ---------------------------------------------


def _stage_fails(rng, minutes: int, **green_kw) -> bool:
    """A stage judged after every minute of a mirror at 20%: does any look roll it back?"""
    noise = rng.normal(0, 0.1, minutes)
    blue = traffic(rng, minutes, 600, noise=noise)
    green = traffic(rng, minutes, 120, noise=noise, **green_kw)
    for m in range(1, minutes + 1):

        def cut(d: DeploymentMetrics, m: int = m) -> DeploymentMetrics:
            kept = d.minutes[:m]
            n = sum(x.requests for x in kept)
            share = n / max(1, d.requests)
            lat = d.latency_ms[: int(len(d.latency_ms) * share)]
            return DeploymentMetrics(requests=n, errors=sum(x.errors for x in kept), latency_ms=lat, minutes=kept)

        w = WindowMetrics(start=T0, end=T0, green=cut(green), blue=cut(blue))
        if overall(analyse(POLICY, w, 100, True)) == Verdict.FAIL:
            return True
    return False


def test_a_green_judged_every_minute_is_rarely_rolled_back_when_healthy_or_within_leave_alone():
    rng = np.random.default_rng(20261122)
    healthy = sum(_stage_fails(rng, 20) for _ in range(40))
    # +0.25 points of errors and 1.1x latency: exactly the changes the policy promises to leave alone.
    within = sum(_stage_fails(rng, 20, error_rate=0.0045) for _ in range(40))
    within += sum(_stage_fails(rng, 20, latency_ms=88.0) for _ in range(40))
    assert healthy == 0
    assert within <= 2


def test_blues_minutes_from_every_stage_are_kept_for_the_bake():
    rng = np.random.default_rng(14)
    mirror = mirror_window(rng, minutes=10)
    first = record_baseline(POLICY, mirror, None)
    later = traffic(rng, 5, 600)
    shifted = later.model_copy(
        update={"minutes": tuple(m.model_copy(update={"at": m.at + timedelta(minutes=10)}) for m in later.minutes)}
    )
    canary = WindowMetrics(start=T0, end=T0, green=traffic(rng, 5, 600), blue=shifted)
    both = record_baseline(POLICY, canary, first)
    assert first is not None
    assert both is not None
    assert len(first.minutes) == 10
    assert len(both.minutes) == 15  # merged by minute, the mirror's kept
    assert both.requests == shifted.requests  # the counts are the latest window's
    assert len(both.latency_minutes(MIN_MINUTE_REQUESTS)) == 15
