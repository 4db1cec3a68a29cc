"""Observations -> one verdict per check, each with the evidence behind it.

Green is compared with blue over the same window (during mirroring both see the same requests).
A check fails only when the effect is larger than the policy tolerates *and* a one-sided test says
it is not noise at the per-look significance level (Kayenta's idea, with the error rate budgeted
over every look of the rollout). Absolute ceilings are vetoes. Too few requests is NoData, never a
pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal

import numpy as np
from scipy import stats

from shared.rollout.model import Frozen
from shared.rollout.policy import RolloutPolicy

EvidenceValue = float | int | str | None

# Per-minute percentiles are few; below this many minutes a latency comparison says nothing.
MIN_LATENCY_MINUTES = 3


class Verdict(StrEnum):
    PASS = "Pass"  # noqa: S105 - a verdict, not a password
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    NO_DATA = "NoData"
    ERROR = "Error"


class DeploymentMetrics(Frozen):
    """One deployment's traffic over the analysis window."""

    requests: int
    errors: int  # requests whose status the policy counts as an error
    # Per-request durations from the traffic log, or per-minute percentiles from metrics.
    latency_ms: tuple[float, ...] = ()
    latency_kind: Literal["request", "minute"] = "request"
    cpu_percent: tuple[float, ...] = ()  # per minute, oldest first, empty minutes left out
    memory_percent: tuple[float, ...] = ()


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


def _rate(errors: int, requests: int) -> float:
    return errors / requests if requests else 0.0


def _p(value: float) -> str:
    return "p<1e-12" if value < 1e-12 else f"p={value:.2g}"


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def check_errors(
    policy: RolloutPolicy, metrics: WindowMetrics, min_requests: int, compare: bool, alpha: float
) -> CheckResult:
    cfg = policy.errors
    green, blue = metrics.green, metrics.blue
    evidence: dict[str, EvidenceValue] = {
        "green_requests": green.requests,
        "green_errors": green.errors,
        "min_requests": min_requests,
        "alpha": _round(alpha),
    }
    if green.requests < min_requests:
        return CheckResult(
            check="errors",
            verdict=Verdict.NO_DATA,
            summary=f"green served {green.requests} requests; {min_requests} needed",
            evidence=evidence,
        )
    green_rate = _rate(green.errors, green.requests)
    evidence["green_rate"] = _round(green_rate)
    if cfg.ceiling is not None and green_rate > cfg.ceiling:
        p_value = stats.binomtest(green.errors, green.requests, cfg.ceiling, alternative="greater").pvalue
        evidence |= {"ceiling": cfg.ceiling, "test": "binomial, one-sided", "p_value": _round(p_value)}
        if p_value < alpha:
            return CheckResult(
                check="errors",
                verdict=Verdict.FAIL,
                summary=f"green error rate {green_rate:.2%} is above the {cfg.ceiling:.2%} ceiling ({_p(p_value)})",
                evidence=evidence,
            )
    if not compare:
        return CheckResult(
            check="errors",
            verdict=Verdict.PASS,
            summary=f"green error rate {green_rate:.2%} within the ceiling (no baseline to compare)",
            evidence=evidence,
        )
    if blue is None or blue.requests < min_requests:
        evidence["blue_requests"] = blue.requests if blue else 0
        return CheckResult(
            check="errors",
            verdict=Verdict.NO_DATA,
            summary=f"blue served {blue.requests if blue else 0} requests; {min_requests} needed",
            evidence=evidence,
        )
    blue_rate = _rate(blue.errors, blue.requests)
    increase = green_rate - blue_rate
    evidence |= {
        "blue_requests": blue.requests,
        "blue_errors": blue.errors,
        "blue_rate": _round(blue_rate),
        "increase": _round(increase),
        "max_increase": cfg.max_increase,
    }
    if increase <= cfg.max_increase:
        return CheckResult(
            check="errors",
            verdict=Verdict.PASS,
            summary=f"green {green_rate:.2%} vs blue {blue_rate:.2%}: within +{cfg.max_increase:.2%}",
            evidence=evidence,
        )
    table = [
        [green.errors, green.requests - green.errors],
        [blue.errors, blue.requests - blue.errors],
    ]
    result = stats.fisher_exact(table, alternative="greater")
    p_value = float(result.pvalue)
    evidence |= {"test": "Fisher exact, one-sided", "p_value": _round(p_value)}
    if p_value < alpha:
        return CheckResult(
            check="errors",
            verdict=Verdict.FAIL,
            summary=f"green {green_rate:.2%} vs blue {blue_rate:.2%}: +{increase:.2%} exceeds "
            f"+{cfg.max_increase:.2%} ({_p(p_value)})",
            evidence=evidence,
        )
    return CheckResult(
        check="errors",
        verdict=Verdict.INCONCLUSIVE,
        summary=f"green {green_rate:.2%} vs blue {blue_rate:.2%}: higher, not yet significant ({_p(p_value)})",
        evidence=evidence,
    )


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def _enough_latency(metrics: DeploymentMetrics, min_requests: int) -> bool:
    needed = min_requests if metrics.latency_kind == "request" else MIN_LATENCY_MINUTES
    return len(metrics.latency_ms) >= needed


def check_latency(
    policy: RolloutPolicy, metrics: WindowMetrics, min_requests: int, compare: bool, alpha: float
) -> CheckResult:
    cfg = policy.latency
    green, blue = metrics.green, metrics.blue
    q = cfg.percentile
    evidence: dict[str, EvidenceValue] = {
        "percentile": q,
        "green_samples": len(green.latency_ms),
        "sample_kind": green.latency_kind,
        "alpha": _round(alpha),
    }
    if green.requests < min_requests or not _enough_latency(green, min_requests):
        return CheckResult(
            check="latency",
            verdict=Verdict.NO_DATA,
            summary=f"{len(green.latency_ms)} latency samples for green; not enough to judge",
            evidence=evidence,
        )
    green_q = _percentile(green.latency_ms, q)
    evidence["green_ms"] = _round(green_q)
    if cfg.ceiling_ms is not None and green_q > cfg.ceiling_ms:
        evidence["ceiling_ms"] = cfg.ceiling_ms
        return CheckResult(
            check="latency",
            verdict=Verdict.FAIL,
            summary=f"green P{q:g} {green_q:.0f} ms is above the {cfg.ceiling_ms:.0f} ms ceiling",
            evidence=evidence,
        )
    if not compare:
        return CheckResult(
            check="latency",
            verdict=Verdict.PASS,
            summary=f"green P{q:g} {green_q:.0f} ms (no baseline to compare)",
            evidence=evidence,
        )
    if blue is None or not _enough_latency(blue, min_requests):
        evidence["blue_samples"] = len(blue.latency_ms) if blue else 0
        return CheckResult(
            check="latency",
            verdict=Verdict.NO_DATA,
            summary="not enough latency samples for blue",
            evidence=evidence,
        )
    blue_q = _percentile(blue.latency_ms, q)
    ratio = green_q / blue_q - 1 if blue_q > 0 else (0.0 if green_q <= 0 else float("inf"))
    evidence |= {
        "blue_samples": len(blue.latency_ms),
        "blue_ms": _round(blue_q),
        "increase": _round(ratio),
        "max_increase": cfg.max_increase,
    }
    if ratio <= cfg.max_increase:
        return CheckResult(
            check="latency",
            verdict=Verdict.PASS,
            summary=f"green P{q:g} {green_q:.0f} ms vs blue {blue_q:.0f} ms: within +{cfg.max_increase:.0%}",
            evidence=evidence,
        )
    result = stats.mannwhitneyu(green.latency_ms, blue.latency_ms, alternative="greater")
    p_value = float(result.pvalue)
    evidence |= {"test": "Mann-Whitney U, one-sided", "statistic": _round(float(result.statistic))}
    evidence["p_value"] = _round(p_value)
    if p_value < alpha:
        return CheckResult(
            check="latency",
            verdict=Verdict.FAIL,
            summary=f"green P{q:g} {green_q:.0f} ms vs blue {blue_q:.0f} ms: +{ratio:.0%} exceeds "
            f"+{cfg.max_increase:.0%} ({_p(p_value)})",
            evidence=evidence,
        )
    return CheckResult(
        check="latency",
        verdict=Verdict.INCONCLUSIVE,
        summary=f"green P{q:g} {green_q:.0f} ms vs blue {blue_q:.0f} ms: slower, not yet significant ({_p(p_value)})",
        evidence=evidence,
    )


def check_tail(
    policy: RolloutPolicy, metrics: WindowMetrics, min_requests: int, compare: bool, alpha: float
) -> CheckResult:
    """Exceedances of blue's tail percentile: green's share vs blue's (Fisher exact, one-sided)."""
    cfg = policy.tail_latency
    green, blue = metrics.green, metrics.blue
    q = cfg.percentile
    evidence: dict[str, EvidenceValue] = {
        "percentile": q,
        "green_samples": len(green.latency_ms),
        "alpha": _round(alpha),
    }
    if not compare:
        return CheckResult(
            check="tail",
            verdict=Verdict.PASS,
            summary="no baseline to compare the tail with",
            evidence=evidence,
            required=False,
        )
    if (
        green.latency_kind != "request"
        or blue is None
        or len(green.latency_ms) < min_requests
        or len(blue.latency_ms) < min_requests
    ):
        # Per-minute percentiles cannot describe a tail; the P90 check and ceilings still apply.
        return CheckResult(
            check="tail",
            verdict=Verdict.NO_DATA,
            summary="needs per-request latencies",
            evidence=evidence,
            required=False,
        )
    g = np.asarray(green.latency_ms, dtype=float)
    b = np.asarray(blue.latency_ms, dtype=float)
    cut = float(np.percentile(b, q))
    green_q = float(np.percentile(g, q))
    ratio = green_q / cut - 1 if cut > 0 else 0.0
    g_over, b_over = int((g > cut).sum()), int((b > cut).sum())
    evidence |= {
        "blue_ms": _round(cut),
        "green_ms": _round(green_q),
        "increase": _round(ratio),
        "max_increase": cfg.max_increase,
        "green_over": g_over,
        "blue_over": b_over,
        "blue_samples": len(b),
    }
    if ratio <= cfg.max_increase:
        return CheckResult(
            check="tail",
            verdict=Verdict.PASS,
            summary=f"green P{q:g} {green_q:.0f} ms vs blue {cut:.0f} ms: within +{cfg.max_increase:.0%}",
            evidence=evidence,
            required=False,
        )
    result = stats.fisher_exact([[g_over, len(g) - g_over], [b_over, len(b) - b_over]], alternative="greater")
    p_value = float(result.pvalue)
    evidence |= {"test": "Fisher exact on exceedances, one-sided", "p_value": _round(p_value)}
    share = f"{g_over / len(g):.1%} of green's requests vs {b_over / len(b):.1%} of blue's slower than {cut:.0f} ms"
    if p_value < alpha:
        return CheckResult(
            check="tail",
            verdict=Verdict.FAIL,
            summary=f"tail P{q:g} +{ratio:.0%} exceeds +{cfg.max_increase:.0%}: {share} ({_p(p_value)})",
            evidence=evidence,
            required=False,
        )
    return CheckResult(
        check="tail",
        verdict=Verdict.PASS,
        summary=f"tail P{q:g} higher but not significant: {share} ({_p(p_value)})",
        evidence=evidence,
        required=False,
    )


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


def analyse(policy: RolloutPolicy, metrics: WindowMetrics, min_requests: int, compare: bool) -> tuple[CheckResult, ...]:
    """Run every enabled check. `compare` is False when blue serves nothing to compare with."""
    alpha = policy.per_look_alpha()
    results: list[CheckResult] = []
    if policy.errors.enabled:
        results.append(check_errors(policy, metrics, min_requests, compare, alpha))
    if policy.latency.enabled:
        results.append(check_latency(policy, metrics, min_requests, compare, alpha))
    if policy.tail_latency.enabled:
        results.append(check_tail(policy, metrics, min_requests, compare, alpha))
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
