"""Observations -> one verdict per check, each with the bounds behind it.

Each comparison of green with blue is a confidence sequence (sequential.py): bounds that hold at
every look, so the judge looks every minute from the first settled minute, in every phase where
green holds traffic, without spending more of its budget. Every check has two margins and three
outcomes:

- Pass: the bound proves green within `max_increase` (the harm the check promises to catch);
- Fail: the bound proves green worse than `leave_alone` (the smaller change it promises not to roll
  back for), or above an absolute ceiling;
- Inconclusive: neither yet; the stage keeps collecting until its `max_duration`.

A check that cannot run (no requests, nothing to compare with) is NoData and holds the stage; only
a policy that disables a check skips it. Resource ceilings are vetoes judged every minute.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from shared.rollout import sequential
from shared.rollout.model import Baseline, Frozen
from shared.rollout.policy import RolloutPolicy

EvidenceValue = float | int | str | None

# A per-minute percentile from fewer requests than this says little (and reads fast: the sample
# P90 of a handful of requests is biased low); such minutes are left out of per-minute comparisons.
MIN_MINUTE_REQUESTS = 20
# Per-minute comparisons need this many paired minutes before a bound means anything.
MIN_PAIRED_MINUTES = 3
# Floor on the spread of per-minute log-latency ratios: a few identical minutes prove nothing.
MIN_MINUTE_LOG_SD = 0.05
# Where the bounds are tightest (their validity does not depend on these): green requests for
# error rates, paired minutes for per-minute comparisons.
ERROR_TARGET_REQUESTS = 2000
MINUTE_TARGET = 10
BASELINE_MINUTES = 90


class Verdict(StrEnum):
    PASS = "Pass"  # noqa: S105 - a verdict, not a password
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    NO_DATA = "NoData"
    ERROR = "Error"


class MinuteSample(Frozen):
    """One minute of one deployment's traffic, as Azure Monitor reports it at its PT1M grain."""

    at: datetime  # the minute's start (UTC)
    requests: int = 0
    errors: int = 0  # requests whose status the policy counts as an error
    latency_ms: float | None = None  # the latency check's percentile that minute (RequestLatency_Pxx)
    tail_ms: float | None = None  # the tail check's percentile that minute


class DeploymentMetrics(Frozen):
    """One deployment's traffic over the analysis window."""

    requests: int
    errors: int  # requests whose status the policy counts as an error
    # Per-request durations from the traffic log ("request"), or, without a traffic log, the
    # per-minute percentile values ("minute"; the comparison then pairs `minutes` by minute).
    latency_ms: tuple[float, ...] = ()
    latency_kind: Literal["request", "minute"] = "request"
    minutes: tuple[MinuteSample, ...] = ()  # per-minute figures, oldest first, empty minutes left out
    cpu_percent: tuple[float, ...] = ()  # per minute, oldest first, empty minutes left out
    memory_percent: tuple[float, ...] = ()
    throttled: int = 0  # requests answered 429 (capacity.py: a sign of too few instances)


class WindowMetrics(Frozen):
    start: datetime
    end: datetime
    green: DeploymentMetrics
    blue: DeploymentMetrics | None = None


class CheckResult(Frozen):
    check: str
    verdict: Verdict
    summary: str
    evidence: dict[str, EvidenceValue] = {}
    required: bool = True  # a veto-only check (resources) can fail a stage but never hold it


# -- evidence helpers ----------------------------------------------------------------------------


def _round(value: float) -> float | str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "nan"
    return float(f"{value:.6g}")


def _pct(value: float) -> str:
    if math.isinf(value):
        return "+∞" if value > 0 else "-∞"
    return f"{value:+.2%}"


def _ratio(value: float) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "0x"
    return f"{max(value, 0.0):.2f}x"


class Budget(Frozen):
    """What one check may spend: `alpha` on a rollback (its lower bound), `beta` on a pass."""

    alpha: float
    beta: float


def _three_way(
    check: str,
    lower: float,
    upper: float,
    leave_alone: float,
    max_increase: float,
    fmt: str,
    what: str,
    evidence: dict[str, EvidenceValue],
) -> CheckResult:
    """The three outcomes from a bound on green's excess over blue."""
    show = _pct if fmt == "points" else (lambda x: _ratio(1 + x))
    if math.isinf(lower) and math.isinf(upper):
        bounds = "too few samples for bounds yet"
    elif math.isinf(upper):
        bounds = f"lower bound {show(lower)}, no upper bound yet"
    elif math.isinf(lower):
        bounds = f"upper bound {show(upper)}, no lower bound yet"
    else:
        bounds = f"bounds {show(lower)} .. {show(upper)}"
    return verdict_of(check, lower, upper, leave_alone, max_increase, show, bounds, what, evidence)


def verdict_of(
    check: str,
    lower: float,
    upper: float,
    leave_alone: float,
    catch: float,
    show: Callable[[float], str],
    bounds: str,
    what: str,
    evidence: dict[str, EvidenceValue],
) -> CheckResult:
    """Two margins, three outcomes: Fail once the lower bound of green's excess passes what is left
    alone, Pass once its upper bound is within the margin to catch, else Inconclusive."""
    if lower > leave_alone:
        return CheckResult(
            check=check,
            verdict=Verdict.FAIL,
            summary=f"{what}: proven worse than the {show(leave_alone)} left alone ({bounds})",
            evidence=evidence,
        )
    if upper <= catch:
        return CheckResult(
            check=check,
            verdict=Verdict.PASS,
            summary=f"{what}: proven within {show(catch)} ({bounds})",
            evidence=evidence,
        )
    return CheckResult(
        check=check,
        verdict=Verdict.INCONCLUSIVE,
        summary=f"{what}: not yet proven within {show(catch)} ({bounds})",
        evidence=evidence,
    )


# -- errors ------------------------------------------------------------------------------------


def _smoothed(errors: int, requests: int) -> float:
    """Rate for a variance: never 0 or 1 (no errors in 500 requests is not proof of none)."""
    return (errors + 1) / (requests + 2)


def _clustered_variance(green: DeploymentMetrics, blue: DeploymentMetrics) -> float:
    """Variance of the rate difference from per-minute residuals (cluster-robust), which grows with
    bursts and minute-to-minute drift that a binomial variance ignores."""
    if not green.minutes or not blue.minutes or not green.requests or not blue.requests:
        return 0.0
    pg, pb = green.errors / green.requests, blue.errors / blue.requests
    by_minute: dict[datetime, float] = {}
    for m in green.minutes:
        by_minute[m.at] = by_minute.get(m.at, 0.0) + (m.errors - pg * m.requests) / green.requests
    for m in blue.minutes:
        by_minute[m.at] = by_minute.get(m.at, 0.0) - (m.errors - pb * m.requests) / blue.requests
    k = len(by_minute)
    if k < 2:
        return 0.0
    return k / (k - 1) * sum(v * v for v in by_minute.values())


def _minute_rate_variance(green: DeploymentMetrics, recorded: Sequence[tuple[int, int]]) -> float:
    """Variance of green's rate minus blue's recorded rate from minute-to-minute spread: each side's
    per-minute rates around its own mean (weighted by requests), as for a two-sample comparison."""

    def side(minutes: Sequence[tuple[int, int]]) -> float:
        minutes = [(n, e) for n, e in minutes if n > 0]
        total = sum(n for n, _ in minutes)
        k = len(minutes)
        if k < MIN_PAIRED_MINUTES or total == 0:
            return 0.0
        rate = sum(e for _, e in minutes) / total
        return k / (k - 1) * sum((e - rate * n) ** 2 for n, e in minutes) / total**2

    return side([(m.requests, m.errors) for m in green.minutes]) + side(recorded)


def check_errors(
    policy: RolloutPolicy,
    metrics: WindowMetrics,
    min_requests: int,
    budget: Budget,
    baseline: Baseline | None,
    compare: bool,
) -> CheckResult:
    cfg = policy.errors
    green = metrics.green
    evidence: dict[str, EvidenceValue] = {
        "green_requests": green.requests,
        "green_errors": green.errors,
        "min_requests": min_requests,
        "alpha": _round(budget.alpha),
        "beta": _round(budget.beta),
    }
    if green.requests < min_requests:
        return CheckResult(
            check="errors",
            verdict=Verdict.NO_DATA,
            summary=f"green served {green.requests} requests in this stage; {min_requests} needed",
            evidence=evidence,
        )
    green_rate = green.errors / green.requests
    evidence["green_rate"] = _round(green_rate)
    if cfg.ceiling is not None:
        # A score-type bound: the variance the rate would have at the ceiling itself (Howard et al.
        # 2021's sub-Bernoulli case), so a handful of errors early on cannot trip it.
        var = cfg.ceiling * (1 - cfg.ceiling) / green.requests
        lower = green_rate - sequential.radius(var, budget.alpha, ERROR_TARGET_REQUESTS / var / green.requests)
        evidence |= {"ceiling": cfg.ceiling, "green_rate_lower": _round(lower)}
        if lower > cfg.ceiling:
            return CheckResult(
                check="errors",
                verdict=Verdict.FAIL,
                summary=f"green error rate {green_rate:.2%} proven above the {cfg.ceiling:.2%} ceiling "
                f"(at least {lower:.2%})",
                evidence=evidence,
            )
    if not compare:
        return CheckResult(
            check="errors",
            verdict=Verdict.PASS,
            summary=f"green error rate {green_rate:.2%}: no blue to compare with (first deployment); ceiling only",
            evidence=evidence,
        )
    blue = metrics.blue if metrics.blue is not None and metrics.blue.requests > 0 else None
    if blue is not None:
        nb, eb, source = blue.requests, blue.errors, "same window"
    elif baseline is not None and baseline.requests > 0:
        nb, eb, source = baseline.requests, baseline.errors, "blue's recorded figures"
    else:
        return CheckResult(
            check="errors",
            verdict=Verdict.NO_DATA,
            summary="blue served no requests to compare with",
            evidence=evidence,
        )
    blue_rate = eb / nb
    increase = green_rate - blue_rate
    pb = _smoothed(eb, nb)
    blue_var = pb * (1 - pb) / nb

    def binomial(green_rate_then: float) -> float:
        p = min(max(green_rate_then, 1 / (green.requests + 2)), 1 - 1 / (green.requests + 2))
        return p * (1 - p) / green.requests + blue_var

    # Across minutes: clustered by minute when blue served beside green; in the bake, green's
    # minutes against blue's recorded minutes (time-to-time variation a pooled count ignores).
    spread = (
        _clustered_variance(green, blue)
        if blue is not None
        else _minute_rate_variance(green, baseline.error_minutes if baseline is not None else ())
    )
    # The rollback side is a test of "green is at most leave_alone worse": the variance green's
    # rate would have there (a score test), so a clear excess is proven on few requests; the pass
    # side uses the rate seen (smoothed: no errors in 500 requests is not proof of none).
    var_lower = max(binomial(pb + cfg.leave_alone_margin), spread)
    var_upper = max(binomial(_smoothed(green.errors, green.requests)), spread)
    per_request = ERROR_TARGET_REQUESTS / green.requests
    lower = increase - sequential.radius(var_lower, budget.alpha, per_request / var_lower)
    upper = increase + sequential.radius(var_upper, budget.beta, per_request / var_upper)
    evidence |= {
        "blue_requests": nb,
        "blue_errors": eb,
        "blue_rate": _round(blue_rate),
        "blue_source": source,
        "increase": _round(increase),
        "lower": _round(lower),
        "upper": _round(upper),
        "leave_alone": cfg.leave_alone_margin,
        "max_increase": cfg.max_increase,
        "variance": "by minute" if spread > binomial(_smoothed(green.errors, green.requests)) else "binomial",
        "method": "confidence sequence (normal mixture)",
    }
    what = f"green {green_rate:.2%} vs blue {blue_rate:.2%} ({_pct(increase)})"
    return _three_way("errors", lower, upper, cfg.leave_alone_margin, cfg.max_increase, "points", what, evidence)


# -- latency and the tail -----------------------------------------------------------------------


def _blue_quantile(
    blue: DeploymentMetrics | None, baseline: Baseline | None, q: float, budget: Budget, tail: bool
) -> tuple[sequential.Interval, str] | None:
    """Blue's quantile: its lower bound at beta/2 (for a proof), its upper at alpha/2 (for a fail)."""
    if blue is not None and blue.latency_kind == "request" and blue.latency_ms:
        values = sorted(blue.latency_ms)
        return (
            sequential.quantile_bounds(values, q / 100, alpha_lower=budget.beta / 2, alpha_upper=budget.alpha / 2),
            "same window",
        )
    if baseline is not None and baseline.latency_kind == "request":
        est, lo, hi = (
            (baseline.tail_ms, baseline.tail_lower_ms, baseline.tail_upper_ms)
            if tail
            else (baseline.latency_ms, baseline.latency_lower_ms, baseline.latency_upper_ms)
        )
        if est is not None and lo is not None and hi is not None:
            return sequential.Interval(estimate=est, lower=lo, upper=hi), "blue's recorded figures"
    return None


@dataclass(frozen=True)
class LatencyQuestion:
    """One latency comparison: the check's name, its percentile, its two margins and its ceiling."""

    check: str
    percentile: float
    leave_alone: float
    max_increase: float
    ceiling_ms: float | None = None


def _per_request(
    ask: LatencyQuestion,
    metrics: WindowMetrics,
    min_requests: int,
    budget: Budget,
    baseline: Baseline | None,
    compare: bool,
) -> CheckResult:
    check, q, leave, catch, ceiling_ms = ask.check, ask.percentile, ask.leave_alone, ask.max_increase, ask.ceiling_ms
    green = metrics.green
    evidence: dict[str, EvidenceValue] = {
        "percentile": q,
        "sample_kind": "request",
        "green_samples": len(green.latency_ms),
        "alpha": _round(budget.alpha),
        "beta": _round(budget.beta),
    }
    if green.requests < min_requests or not green.latency_ms:
        return CheckResult(
            check=check,
            verdict=Verdict.NO_DATA,
            summary=f"{len(green.latency_ms)} latency samples for green; {min_requests} requests needed",
            evidence=evidence,
        )
    g = sequential.quantile_bounds(
        sorted(green.latency_ms), q / 100, alpha_lower=budget.alpha / 2, alpha_upper=budget.beta / 2
    )
    evidence |= {"green_ms": _round(g.estimate), "green_lower_ms": _round(g.lower), "green_upper_ms": _round(g.upper)}
    if ceiling_ms is not None:
        evidence["ceiling_ms"] = ceiling_ms
        if g.lower > ceiling_ms:
            return CheckResult(
                check=check,
                verdict=Verdict.FAIL,
                summary=f"green P{q:g} proven above the {ceiling_ms:.0f} ms ceiling (at least {g.lower:.0f} ms)",
                evidence=evidence,
            )
    if not compare:
        return CheckResult(
            check=check,
            verdict=Verdict.PASS,
            summary=f"green P{q:g} {g.estimate:.0f} ms: no blue to compare with (first deployment)",
            evidence=evidence,
        )
    found = _blue_quantile(metrics.blue, baseline, q, budget, tail=check == "tail")
    if found is None:
        return CheckResult(
            check=check,
            verdict=Verdict.NO_DATA,
            summary="no latency samples for blue to compare with",
            evidence=evidence,
        )
    b, source = found
    lower = g.lower / b.upper - 1 if b.upper > 0 and math.isfinite(b.upper) else -math.inf
    upper = g.upper / b.lower - 1 if b.lower > 0 and math.isfinite(g.upper) else math.inf
    estimate = g.estimate / b.estimate - 1 if b.estimate > 0 else math.inf
    evidence |= {
        "blue_samples": len(metrics.blue.latency_ms) if metrics.blue is not None else 0,
        "blue_ms": _round(b.estimate),
        "blue_lower_ms": _round(b.lower),
        "blue_upper_ms": _round(b.upper),
        "blue_source": source,
        "increase": _round(estimate),
        "lower": _round(lower),
        "upper": _round(upper),
        "leave_alone": leave,
        "max_increase": catch,
        "method": "quantile confidence sequences (normal mixture)",
    }
    what = f"green P{q:g} {g.estimate:.0f} ms vs blue {b.estimate:.0f} ms ({_ratio(1 + estimate)})"
    return _three_way(check, lower, upper, leave, catch, "ratio", what, evidence)


def _minute_values(d: DeploymentMetrics, tail: bool) -> dict[datetime, float]:
    """A deployment's per-minute percentile, from minutes with enough requests to mean something."""
    out: dict[datetime, float] = {}
    for m in d.minutes:
        v = m.tail_ms if tail else m.latency_ms
        if v is not None and v > 0 and m.requests >= MIN_MINUTE_REQUESTS:
            out[m.at] = v
    return out


def _by_minute(
    green: DeploymentMetrics, blue: DeploymentMetrics | None, baseline: Baseline | None, tail: bool
) -> tuple[float, float, int, str] | None:
    """(mean log ratio of green's per-minute percentile to blue's, its variance, minutes, how).
    Paired by minute while blue serves beside green (load and downstream slowness hit both alike);
    in the bake, green's minutes against blue's recorded minutes as two samples, so that the
    variation from minute to minute is in the variance. None: nothing to compare with."""
    mine = _minute_values(green, tail)
    if blue is not None and blue.requests > 0:
        theirs = _minute_values(blue, tail)
        diffs = [math.log(mine[t] / theirs[t]) for t in sorted(mine) if t in theirs]
        if not diffs:
            return None
        var = max(MIN_MINUTE_LOG_SD**2, _sample_var(diffs)) / len(diffs)
        return sum(diffs) / len(diffs), var, len(diffs), "paired by minute"
    recorded: tuple[float, ...] = ()
    if baseline is not None:
        floor = MIN_MINUTE_REQUESTS
        recorded = baseline.tail_minutes(floor) if tail else baseline.latency_minutes(floor)
    if not recorded or not mine:
        return None
    g = [math.log(v) for v in mine.values()]
    b = [math.log(v) for v in recorded if v > 0]
    var = max(MIN_MINUTE_LOG_SD**2, _sample_var(g)) / len(g) + max(MIN_MINUTE_LOG_SD**2, _sample_var(b)) / len(b)
    return sum(g) / len(g) - sum(b) / len(b), var, min(len(g), len(b)), "against blue's recorded minutes"


def _minutes_suffice(green: DeploymentMetrics) -> bool:
    """Whether green's traffic is heavy enough for per-minute percentiles (the judge's choice for
    the P90 even with a traffic log: pairing by minute cancels what load does to both)."""
    return bool(green.minutes) and green.requests >= MIN_MINUTE_REQUESTS * len(green.minutes)


def _per_minute(
    ask: LatencyQuestion,
    metrics: WindowMetrics,
    min_requests: int,
    budget: Budget,
    baseline: Baseline | None,
    compare: bool,
) -> CheckResult:
    check, q, leave, catch, ceiling_ms = ask.check, ask.percentile, ask.leave_alone, ask.max_increase, ask.ceiling_ms
    green = metrics.green
    tail = check == "tail"
    values = [m.tail_ms if tail else m.latency_ms for m in green.minutes]
    usable = [
        v for m, v in zip(green.minutes, values, strict=True) if v is not None and m.requests >= MIN_MINUTE_REQUESTS
    ]
    evidence: dict[str, EvidenceValue] = {
        "percentile": q,
        "sample_kind": "minute",
        "green_minutes": len(usable),
        "min_minute_requests": MIN_MINUTE_REQUESTS,
        "alpha": _round(budget.alpha),
        "beta": _round(budget.beta),
    }
    if green.requests < min_requests or len(usable) < MIN_PAIRED_MINUTES:
        return CheckResult(
            check=check,
            verdict=Verdict.NO_DATA,
            summary=f"{len(usable)} minutes of green's P{q:g} from at least {MIN_MINUTE_REQUESTS} requests; "
            f"{MIN_PAIRED_MINUTES} minutes and {min_requests} requests needed",
            evidence=evidence,
        )
    if ceiling_ms is not None:
        logs = [math.log(v) for v in usable if v > 0]
        mean = sum(logs) / len(logs)
        var = max(MIN_MINUTE_LOG_SD**2, _sample_var(logs)) / len(logs)
        bound = sequential.mean_bounds(
            mean, var, alpha_lower=budget.alpha, alpha_upper=budget.beta, v_opt=MINUTE_TARGET / len(logs) / var
        )
        evidence |= {"ceiling_ms": ceiling_ms, "green_lower_ms": _round(math.exp(bound.lower))}
        if math.exp(bound.lower) > ceiling_ms:
            return CheckResult(
                check=check,
                verdict=Verdict.FAIL,
                summary=f"green's per-minute P{q:g} proven above the {ceiling_ms:.0f} ms ceiling",
                evidence=evidence,
            )
    if not compare:
        return CheckResult(
            check=check,
            verdict=Verdict.PASS,
            summary=f"green's per-minute P{q:g}: no blue to compare with (first deployment)",
            evidence=evidence,
        )
    found = _by_minute(green, metrics.blue, baseline, tail)
    n = found[2] if found is not None else 0
    source = found[3] if found is not None else "nothing to compare with"
    evidence |= {"paired_minutes": n, "blue_source": source}
    if found is None or n < MIN_PAIRED_MINUTES:
        return CheckResult(
            check=check,
            verdict=Verdict.NO_DATA,
            summary=f"{n} minutes to compare with blue ({source}); {MIN_PAIRED_MINUTES} needed",
            evidence=evidence,
        )
    mean, var, _, _ = found
    # Typical per-minute values, for people and charts (the bounds come from the log ratios).
    green_typical = statistics.median(usable)
    blue_typical = green_typical / math.exp(mean)
    evidence |= {"green_ms": _round(green_typical), "blue_ms": _round(blue_typical)}
    bound = sequential.mean_bounds(
        mean, var, alpha_lower=budget.alpha, alpha_upper=budget.beta, v_opt=MINUTE_TARGET / n / var
    )
    lower, upper, estimate = math.expm1(bound.lower), math.expm1(bound.upper), math.expm1(mean)
    evidence |= {
        "increase": _round(estimate),
        "lower": _round(lower),
        "upper": _round(upper),
        "leave_alone": leave,
        "max_increase": catch,
        "method": "confidence sequence on per-minute log ratios (normal mixture)",
    }
    what = (
        f"green P{q:g} {green_typical:.0f} ms vs blue {blue_typical:.0f} ms per minute "
        f"({_ratio(1 + estimate)}, {source})"
    )
    return _three_way(check, lower, upper, leave, catch, "ratio", what, evidence)


def _sample_var(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def check_latency(
    policy: RolloutPolicy,
    metrics: WindowMetrics,
    min_requests: int,
    budget: Budget,
    baseline: Baseline | None,
    compare: bool,
) -> CheckResult:
    cfg = policy.latency
    per_request = metrics.green.latency_kind == "request" and not _minutes_suffice(metrics.green)
    judge = _per_request if per_request else _per_minute
    ask = LatencyQuestion("latency", cfg.percentile, cfg.leave_alone_margin, cfg.max_increase, cfg.ceiling_ms)
    return judge(ask, metrics, min_requests, budget, baseline, compare)


def check_tail(
    policy: RolloutPolicy,
    metrics: WindowMetrics,
    min_requests: int,
    budget: Budget,
    baseline: Baseline | None,
    compare: bool,
) -> CheckResult:
    cfg = policy.tail_latency
    blue_serves = metrics.blue is not None and metrics.blue.requests > 0
    # In the bake blue's recorded minutes carry the variation from one minute to the next that
    # recorded quantile bounds cannot; per request otherwise (a P99 needs many requests).
    bake_by_minute = not blue_serves and baseline is not None and bool(baseline.tail_minutes(MIN_MINUTE_REQUESTS))
    per_request = metrics.green.latency_kind == "request" and not (bake_by_minute and _minutes_suffice(metrics.green))
    judge = _per_request if per_request else _per_minute
    ask = LatencyQuestion("tail", cfg.percentile, cfg.leave_alone_margin, cfg.max_increase)
    return judge(ask, metrics, min_requests, budget, baseline, compare)


def check_resource(name: str, values: Sequence[float], ceiling: float | None, sustained: int) -> CheckResult:
    evidence: dict[str, EvidenceValue] = {"ceiling": ceiling, "minutes": len(values)}
    if ceiling is None:
        return CheckResult(check=name, verdict=Verdict.PASS, summary="no ceiling set", required=False)
    if len(values) < sustained:
        return CheckResult(
            check=name,
            verdict=Verdict.NO_DATA,
            summary=f"{len(values)} minutes of {name} data; {sustained} needed for the ceiling",
            evidence=evidence,
            required=False,
        )
    recent = [float(v) for v in values[-sustained:]]
    evidence |= {"recent": ", ".join(f"{v:.1f}" for v in recent), "latest": _round(recent[-1])}
    if min(recent) > ceiling:
        return CheckResult(
            check=name,
            verdict=Verdict.FAIL,
            summary=f"green {name} above {ceiling:g}% for the last {sustained} minutes",
            evidence=evidence,
            required=False,
        )
    return CheckResult(
        check=name,
        verdict=Verdict.PASS,
        summary=f"green {name} {recent[-1]:.1f}% under the {ceiling:g}% ceiling",
        evidence=evidence,
        required=False,
    )


def analyse(
    policy: RolloutPolicy,
    metrics: WindowMetrics,
    min_requests: int,
    compare: bool,
    baseline: Baseline | None = None,
) -> tuple[CheckResult, ...]:
    """Run every enabled check. `compare` is False when the rollout has no blue at all (a first
    deployment): ceilings only. `baseline` holds blue's recorded figures for windows (the bake)
    in which blue serves nothing."""
    budget = Budget(alpha=policy.check_alpha(), beta=policy.analysis.missed_regression_rate)
    results: list[CheckResult] = []
    if policy.errors.enabled:
        results.append(check_errors(policy, metrics, min_requests, budget, baseline, compare))
    if policy.latency.enabled:
        results.append(check_latency(policy, metrics, min_requests, budget, baseline, compare))
    if policy.tail_latency.enabled:
        results.append(check_tail(policy, metrics, min_requests, budget, baseline, compare))
    res = policy.resources
    results.append(check_resource("cpu", metrics.green.cpu_percent, res.cpu_ceiling, res.sustained_minutes))
    results.append(check_resource("memory", metrics.green.memory_percent, res.memory_ceiling, res.sustained_minutes))
    if not any(r.required for r in results):
        # With every comparison disabled, traffic volume still gates: never pass on no data.
        enough = metrics.green.requests >= min_requests
        results.append(
            CheckResult(
                check="requests",
                verdict=Verdict.PASS if enough else Verdict.NO_DATA,
                summary=f"green served {metrics.green.requests} requests; {min_requests} needed",
                evidence={"green_requests": metrics.green.requests, "min_requests": min_requests},
            )
        )
    return tuple(results)


def record_baseline(policy: RolloutPolicy, metrics: WindowMetrics, previous: Baseline | None) -> Baseline | None:
    """Blue's figures from this window, for a later window in which blue serves nothing (the bake).
    Bounds are kept at the levels the comparisons spend. A window in which blue served nothing
    keeps the previous figures."""
    blue = metrics.blue
    if blue is None or blue.requests == 0:
        return previous
    budget = Budget(alpha=policy.check_alpha(), beta=policy.analysis.missed_regression_rate)
    # Figures this window cannot bound (too few samples for a P99) keep the previous window's.
    update: dict[str, object] = previous.model_dump() if previous is not None else {}
    update |= {
        "start": metrics.start,
        "end": metrics.end,
        "requests": blue.requests,
        "errors": blue.errors,
        "latency_kind": blue.latency_kind,
    }
    if blue.latency_kind == "request" and blue.latency_ms:
        values = sorted(blue.latency_ms)
        for name, q in (("latency", policy.latency.percentile), ("tail", policy.tail_latency.percentile)):
            b = sequential.quantile_bounds(values, q / 100, alpha_lower=budget.beta / 2, alpha_upper=budget.alpha / 2)
            if math.isfinite(b.lower) and math.isfinite(b.upper):
                update |= {f"{name}_ms": b.estimate, f"{name}_lower_ms": b.lower, f"{name}_upper_ms": b.upper}
    # Minutes from every window blue served in, merged by minute: the bake compares with all of them.
    merged = {m[0]: m for m in (previous.minutes if previous is not None else ())}
    for m in blue.minutes:
        if m.requests > 0:
            at = int(m.at.timestamp() // 60)
            merged[at] = (at, m.requests, m.errors, _compact(m.latency_ms), _compact(m.tail_ms))
    update["minutes"] = tuple(merged[k] for k in sorted(merged)[-BASELINE_MINUTES:])
    return Baseline.model_validate(update)


def _compact(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def overall(results: Sequence[CheckResult]) -> Verdict:
    """Fail beats Error beats the holds; a stage passes only when every required check passes."""
    verdicts = [r.verdict for r in results]
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.ERROR in verdicts:
        return Verdict.ERROR
    required = [r.verdict for r in results if r.required]
    if Verdict.INCONCLUSIVE in required:
        return Verdict.INCONCLUSIVE
    if Verdict.NO_DATA in required:
        return Verdict.NO_DATA
    return Verdict.PASS


def summarise(results: Sequence[CheckResult]) -> str:
    return "; ".join(f"{r.check}: {r.summary}" for r in results if r.verdict != Verdict.PASS) or "all checks pass"
